"""The wiring of the `Overlapping` condition (`handlers.overlaps`): the catalog tiers it reads, the
writes and Events of a pass, and passes folded together while one runs."""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from typing import Any, cast

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from jitaccess import metrics
from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.api import names
from jitaccess.domain.overlaps import Tier
from jitaccess.handlers import overlaps
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.factories import lands


class Cluster:
    """Stored Entitlements, with `Kube.update_status`'s read-modify-write."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.writes = 0

    def update_status(
        self, plural: str, name: str, change: Any, current: Any = None, *, uid: Any = None
    ) -> dict[str, Any] | None:
        assert plural == names.ENTITLEMENTS
        obj = self.objects.get(name)
        if obj is None or not lands(obj, uid, current):
            return None
        fields = change(copy.deepcopy(obj))
        if fields is None:
            return None
        self.writes += 1
        obj.setdefault("status", {}).update(fields)
        return copy.deepcopy(obj)


def entitlement(name: str, generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "kind": names.ENTITLEMENT,
        "metadata": {"name": name, "uid": f"uid-{name}", "generation": generation},
        "spec": {"owner": "payments", "identityCenter": {"groupName": "payments-prod"}, **spec},
        "status": {},
    }


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


@pytest.fixture
def rt(cluster: Cluster) -> Runtime:
    return Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, cluster))


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, bool]]:
    found: list[tuple[str, str, bool]] = []

    def record(obj: dict[str, Any], reason: str, message: str, *, warning: bool = False, **_: Any) -> None:
        found.append((obj["metadata"]["name"], reason, warning))

    monkeypatch.setattr(overlaps, "record", record)
    return found


def conditions(cluster: Cluster, name: str) -> dict[str, tuple[str, str]]:
    listed = cluster.objects[name].get("status", {}).get("conditions", [])
    return {c["type"]: (c["status"], c["reason"]) for c in listed}


def test_a_pass_writes_both_once_and_clears_after_a_deletion(
    rt: Runtime, cluster: Cluster, recorded: list[tuple[str, str, bool]]
) -> None:
    cluster.objects = {"a": entitlement("a"), "b": entitlement("b", owner="ledger")}
    overlaps.reconcile(rt, list(copy.deepcopy(cluster.objects).values()))
    assert conditions(cluster, "a") == {names.OVERLAPPING: ("True", names.SAME_ACCESS)}
    assert conditions(cluster, "b") == {names.OVERLAPPING: ("True", names.SAME_ACCESS)}
    assert recorded == [("a", names.SAME_ACCESS, True), ("b", names.SAME_ACCESS, True)]
    # A stale index (the pass's own writes not seen yet): the fresh read finds nothing to do.
    overlaps.reconcile(rt, [entitlement("a"), entitlement("b", owner="ledger")])
    assert cluster.writes == 2 and len(recorded) == 2
    del cluster.objects["b"]
    overlaps.reconcile(rt, list(copy.deepcopy(cluster.objects).values()))
    assert conditions(cluster, "a") == {names.OVERLAPPING: ("False", names.NO_OVERLAP)}
    assert recorded[-1] == ("a", names.NO_OVERLAP, False)
    overlaps.reconcile(rt, list(copy.deepcopy(cluster.objects).values()))
    assert cluster.writes == 3, "nothing more to write"


def test_an_entitlement_changed_since_the_index_is_left_to_its_next_event(
    rt: Runtime, cluster: Cluster, recorded: list[tuple[str, str, bool]]
) -> None:
    cluster.objects = {"a": entitlement("a", generation=2), "b": entitlement("b")}
    overlaps.reconcile(rt, [entitlement("a", generation=1), entitlement("b")])
    assert conditions(cluster, "a") == {}
    assert conditions(cluster, "b") == {names.OVERLAPPING: ("True", names.DUPLICATE)}
    assert recorded == [("b", names.DUPLICATE, False)]


def test_the_catalog_index_keeps_each_tiers_group_accounts_arn_and_recorded_group_id() -> None:
    body = kopf.Body(
        {
            "metadata": {"name": "payments"},
            "spec": {
                "baseline": {"groupName": "eng-payments", "accounts": ["111122223333"]},
                "production": {"groupName": "prod-eng-payments", "accounts": ["444455556666"]},
            },
            "status": {
                "production": {
                    "permissionSetArn": "arn:aws:sso:::permissionSet/ssoins-1/ps-2",
                    "groupName": "prod-eng-payments",
                    "groupId": "g-prod",
                },
                # Resolved from a groupName the spec no longer names: not the group's id now.
                "baseline": {"groupName": "eng-payments-old", "groupId": "g-old"},
            },
        }
    )
    indexed = asyncio.run(overlaps.catalog_tiers(name="payments", body=body))
    assert indexed == {
        "payments": [
            Tier("catalog:payments/baseline", "eng-payments", frozenset({"111122223333"})),
            Tier(
                "catalog:payments/production",
                "prod-eng-payments",
                frozenset({"444455556666"}),
                "arn:aws:sso:::permissionSet/ssoins-1/ps-2",
                "g-prod",
            ),
        ]
    }


def test_events_during_a_pass_make_one_more_pass_not_one_each(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[int] = []
    started = threading.Event()

    def reconcile(_: Runtime, listed: list[dict[str, Any]], tiers: list[Tier]) -> None:
        passes.append(len(listed))
        started.set()
        time.sleep(0.2)

    monkeypatch.setattr(overlaps, "reconcile", reconcile)
    index = {"a": [entitlement("a")], "b": [entitlement("b")]}

    async def events() -> None:
        memo = kopf.Memo(runtime=rt)
        first = asyncio.create_task(overlaps.watch_overlaps(memo=memo, entitlements=index, catalog_tiers={}))
        await asyncio.to_thread(started.wait, 5)
        await asyncio.gather(
            *(overlaps.watch_overlaps(memo=memo, entitlements=index, catalog_tiers={}) for _ in range(10))
        )
        await first

    asyncio.run(events())
    assert passes == [2, 2]
    assert not rt.overlap_passes.running


def test_a_failing_pass_is_tried_again_for_as_long_as_it_fails_each_pause_twice_the_last_up_to_a_cap(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failures = 8
    passes: list[int] = []

    def reconcile(_: Runtime, listed: list[dict[str, Any]], tiers: list[Tier]) -> None:
        passes.append(len(listed))
        if len(passes) <= failures:
            exc = ApiException(status=503, reason="Service Unavailable")
            exc.body = '{"message": "etcd leader changed"}'
            raise exc

    pauses: list[float] = []
    pause = asyncio.sleep

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await pause(0)

    monkeypatch.setattr(overlaps, "reconcile", reconcile)
    monkeypatch.setattr(overlaps.asyncio, "sleep", sleep)
    errors = metrics.ERRORS.labels("handler")._value.get()
    memo = kopf.Memo(runtime=rt)
    with caplog.at_level(logging.WARNING, logger="jitaccess.handlers.overlaps"):
        asyncio.run(overlaps.watch_overlaps(memo=memo, entitlements={"a": [entitlement("a")]}, catalog_tiers={}))
    assert passes == [1] * (failures + 1), "tried until a pass went through"
    assert pauses == [5.0, 10.0, 20.0, 40.0, 80.0, 120.0, 120.0, 120.0]
    assert overlaps.MAX_RETRY_SECONDS == 120.0
    warnings = [r for r in caplog.records if r.name == "jitaccess.handlers.overlaps"]
    assert len(warnings) == failures and {r.levelno for r in warnings} == {logging.WARNING}, "once each, no ERROR"
    assert "(the API server answered 503: etcd leader changed): tried again in 5s" in warnings[0].getMessage()
    assert "tried again in 120s" in warnings[-1].getMessage()
    assert metrics.ERRORS.labels("handler")._value.get() == errors + failures
    assert not rt.overlap_passes.running


def test_after_a_pass_goes_through_the_next_failure_pauses_the_shortest_again(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes = iter(["fail", "fail", "ok, and an event meanwhile", "fail", "ok"])
    pauses: list[float] = []
    pause = asyncio.sleep

    def reconcile(_: Runtime, listed: list[dict[str, Any]], tiers: list[Tier]) -> None:
        outcome = next(outcomes)
        if outcome == "fail":
            raise ConnectionError("connection refused")
        if outcome != "ok":
            rt.overlap_passes.again = True  # as `watch_overlaps` does for an event during the pass

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await pause(0)

    monkeypatch.setattr(overlaps, "reconcile", reconcile)
    monkeypatch.setattr(overlaps.asyncio, "sleep", sleep)
    memo = kopf.Memo(runtime=rt)
    asyncio.run(overlaps.watch_overlaps(memo=memo, entitlements={"a": [entitlement("a")]}, catalog_tiers={}))
    assert pauses == [5.0, 10.0, 5.0]
    assert next(outcomes, None) is None, "every pass made"

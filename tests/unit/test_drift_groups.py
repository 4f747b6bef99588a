"""Which groups an Entitlement's drift scan covers besides its own: those its Active grants are in,
from the index of Active grants (each with its group id), with no API read at each pass; and the
group a pass no longer scans, said by the Runtime that scanned it (`Runtime.scanned`)."""

from __future__ import annotations

import asyncio
import copy
from types import SimpleNamespace
from typing import Any, cast

import kopf
import pytest

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.api import audit, names
from jitaccess.api.models import Entitlement
from jitaccess.handlers import catalog, indexes
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit import test_drift_settling as drift
from tests.unit.test_overlaps import ARN, ent


def _grant(name: str, group_name: str, group_id: str | None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": {"entitlement": "prod", "user": f"{name}@example.com", "userId": f"u-{name}", "groupName": group_name,
                 **spec},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Active"}],
                   **({"groupId": group_id} if group_id else {})},
    }  # fmt: skip


class _NoReads:
    def get(self, *_: Any) -> Any:
        raise AssertionError("no API read at each pass")


def _runtime(*grants: dict[str, Any]) -> Runtime:
    rt = Runtime(Settings(), SimpleNamespace(), _NoReads())  # type: ignore[arg-type]
    memo = kopf.Memo(runtime=rt)
    for grant in grants:
        asyncio.run(indexes.observe_grant(type="ADDED", body=kopf.Body(grant), memo=memo))
    return rt


def test_the_groups_grants_are_in_besides_the_entitlements_own() -> None:
    rt = _runtime(_grant("a", "old-group", "g-old"), _grant("b", "new-group", "g-new"), _grant("c", "g-old", "g-old"))
    moved = ent("prod", identityCenter={"groupName": "new-group"})
    assert catalog._granted_groups(rt, moved, ("new-group", "g-new")) == {"g-old": "old-group"}
    # Its group does not resolve now (a typo): both groups its grants are in are still scanned.
    typo = ent("prod", identityCenter={"groupName": "new-grup"})
    assert catalog._granted_groups(rt, typo, None) == {"g-old": "old-group", "g-new": "new-group"}


def test_account_assignment_entitlements_have_no_groups_to_scan_and_read_nothing() -> None:
    assignment = {"permissionSet": {"arn": ARN}, "accounts": ["111111111111"]}
    grants = [_grant(f"g{i}", ARN, None, accountAssignment=assignment) for i in range(100)]
    rt = _runtime(*grants)
    assert catalog._granted_groups(rt, ent("prod", identityCenter={"accountAssignment": assignment}), None) == {}


class _NoOtherEntitlements:
    def list(self, plural: str, **_: Any) -> list[dict[str, Any]]:
        return []


def test_a_group_the_last_pass_scanned_is_said_given_up_by_the_runtime_that_scanned_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    said: list[tuple[str, str]] = []
    monkeypatch.setattr(catalog, "record", lambda body, reason, message, **_: said.append((reason, message)))
    rt = Runtime(Settings(), SimpleNamespace(), _NoOtherEntitlements())  # type: ignore[arg-type]
    moved = ent("prod", identityCenter={"groupName": "new-group"})
    current = ("new-group", "g-new")
    catalog._report_unscanned(rt, moved, {"g-old": "old-group", "g-new": "new-group"}, current)
    assert said == []
    catalog._report_unscanned(rt, moved, {"g-new": "new-group"}, current)
    [(reason, message)] = said
    assert reason == names.SCAN_STOPPED and "no longer scans Identity Center group old-group (id g-old)" in message
    catalog._report_unscanned(rt, moved, {"g-new": "new-group"}, current)
    assert len(said) == 1, "said once"
    # A Runtime of its own (a process started anew) knows of no pass before: it says nothing.
    fresh = Runtime(Settings(), SimpleNamespace(), _NoOtherEntitlements())  # type: ignore[arg-type]
    catalog._report_unscanned(fresh, moved, {"g-new": "new-group"}, current)
    assert len(said) == 1
    catalog._report_unscanned(fresh, moved, {}, None)
    assert len(said) == 2 and "group new-group (id g-new)" in said[1][1]
    # A released Entitlement is forgotten: its last pass is said of by nothing to come.
    catalog._report_unscanned(fresh, moved, {"g-new": "new-group"}, current)
    fresh.scanned.forget(catalog._scan_key(moved))
    catalog._report_unscanned(fresh, moved, {}, None)
    assert len(said) == 2


ASSIGNMENT = {"permissionSet": {"arn": ARN}, "accounts": ["111111111111"]}


def test_an_entitlement_switched_to_account_assignment_mode_still_has_its_grants_groups() -> None:
    # A grant keeps the target it was made with: those of group mode are still in their group.
    rt = _runtime(_grant("a", "old-group", "g-old"), _grant("b", ARN, None, accountAssignment=ASSIGNMENT))
    switched = ent("prod", identityCenter={"accountAssignment": ASSIGNMENT})
    assert catalog._granted_groups(rt, switched, None) == {"g-old": "old-group"}


def _switched(uid: str = "u-prod", **metadata: Any) -> dict[str, Any]:
    return {"kind": names.ENTITLEMENT, "metadata": {"name": "prod", "uid": uid, **metadata},
            "spec": {"owner": "payments", "identityCenter": {"accountAssignment": ASSIGNMENT}},
            "status": {"groupId": "g-old"}}  # fmt: skip


def _scanning(
    *grants: dict[str, Any], entitlement: dict[str, Any] | None = None, **members: str
) -> tuple[drift.Cluster, drift.Store, Runtime]:
    """A cluster holding the switched Entitlement (or `entitlement`) and `grants`, a group holding
    `members` (membership id -> user id), and a Runtime whose indexes show the grants."""
    cluster, store = drift.Cluster(), drift.Store(**members)
    cluster.add(names.ENTITLEMENTS, copy.deepcopy(entitlement or _switched()))
    for grant in grants:
        cluster.add(names.GRANTS, grant)
    rt = Runtime(Settings(), cast(IdentityCenter, store), cast(Kube, cluster))
    for grant in grants:
        asyncio.run(indexes.observe_grant(type="ADDED", body=kopf.Body(grant), memo=kopf.Memo(runtime=rt)))
    return cluster, store, rt


def test_the_group_its_grants_are_in_is_kept_clear_after_a_switch_to_account_assignment_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    said: list[tuple[str, str]] = []
    monkeypatch.setattr(catalog, "record", lambda body, reason, message, **_: said.append((reason, message)))
    grant = _grant("a", "old-group", "g-old")
    cluster, store, rt = _scanning(grant, **{"m-a": "u-a", "m-eve": "eve"})
    switched = Entitlement.model_validate(cluster.objects[(names.ENTITLEMENTS, "prod")])
    rt.scanned.replace(catalog._scan_key(switched), {"g-old": "old-group"})  # the pass before the switch
    catalog._watch(rt, switched, None)
    assert store.members == {"m-a": "u-a"}, "added by hand: removed; the grant's member stays"
    assert [reason for reason, _ in said] == [names.DRIFT_FOUND], "still scanned: no ScanStopped"
    # The grant ends: the group is given up, and the Event says why.
    asyncio.run(indexes.observe_grant(type="DELETED", body=kopf.Body(grant), memo=kopf.Memo(runtime=rt)))
    catalog._watch(rt, switched, None)
    (reason, message) = said[-1]
    assert reason == names.SCAN_STOPPED and "group old-group (id g-old)" in message
    assert "the Entitlement is in account-assignment mode now, and no active grant of it is in that group" in message


def test_a_deleted_entitlement_switched_to_account_assignment_mode_keeps_its_grants_group_clear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(catalog, "record", lambda *_, **__: None)
    deleted = _switched(deletionTimestamp="2026-12-01T10:00:00Z")
    _, store, rt = _scanning(_grant("a", "old-group", "g-old"), entitlement=deleted, **{"m-a": "u-a", "m-eve": "eve"})
    with pytest.raises(kopf.TemporaryError, match="its group is kept clear of anyone else until then"):
        catalog._release(rt, deleted)
    assert store.members == {"m-a": "u-a"}
    # Grants of account-assignment mode only: no group is scanned, and the message claims none.
    _, store, rt = _scanning(_grant("b", ARN, None, accountAssignment=ASSIGNMENT), entitlement=deleted)
    with pytest.raises(kopf.TemporaryError) as waits:
        catalog._release(rt, deleted)
    assert "still active (b): it goes when they end; to end them now:" in str(waits.value)


def _other(name: str, group_id: str, reason: str, generation: int = 1, **target: Any) -> dict[str, Any]:
    ready = {
        "type": "Ready",
        "status": "True" if reason == names.RESOLVED else "False",
        "reason": reason,
        "observedGeneration": 1,
    }
    return {"metadata": {"name": name, "generation": generation},
            "spec": {"identityCenter": target or {"groupName": "old-group"}},
            "status": {"groupId": group_id, "conditions": [ready]}}  # fmt: skip


class _Entitlements:
    def __init__(self, *stored: dict[str, Any]) -> None:
        self.stored = stored

    def list(self, plural: str, **_: Any) -> list[dict[str, Any]]:
        return list(self.stored) if plural == names.ENTITLEMENTS else []


def test_a_group_is_said_still_watched_only_by_an_entitlement_that_names_it_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    said: list[tuple[str, bool]] = []
    monkeypatch.setattr(catalog, "record", lambda body, reason, message, **kw: said.append((message, kw["warning"])))
    moved = ent("prod", identityCenter={"groupName": "new-group"})
    current = ("new-group", "g-new")
    stale = [
        # Each left g-old in status.groupId, and names it no more.
        _other("typo", "g-old", names.GROUP_NOT_FOUND, identityCenter={"groupName": "old-grup"}),
        _other("renamed", "g-old", names.RESOLVED, generation=2, groupName="other-group"),
        _other("switched", "g-old", names.RESOLVED, generation=2, accountAssignment=ASSIGNMENT),
    ]
    for others, watched in ((stale, None), ([*stale, _other("same", "g-old", names.RESOLVED)], "same")):
        rt = Runtime(Settings(), SimpleNamespace(), _Entitlements(*others))  # type: ignore[arg-type]
        catalog._report_unscanned(rt, moved, {"g-old": "old-group", "g-new": "new-group"}, current)
        catalog._report_unscanned(rt, moved, {"g-new": "new-group"}, current)
        (message, warning) = said.pop()
        if watched is None:
            assert warning and "still watched" not in message and "remove those assignments" in message
        else:
            assert not warning and message.endswith(f"still watched through Entitlement(s) {watched}")


def test_a_released_entitlement_handed_over_before_its_record_is_archived_names_the_owner_at_the_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Let go while payments owned it; its `released` record waits for the archive (S3 down) while a
    GitOps hand-over gives the deleted Entitlement's spec to ledger: the record names payments."""
    monkeypatch.setattr(catalog, "record", lambda *_, **__: None)
    deleted = _switched(deletionTimestamp="2026-12-01T10:00:00Z")
    cluster, _, rt = _scanning(entitlement=deleted)
    released = catalog._release(rt, deleted) or {}
    assert released["status"]["releasedOwnerTeam"] == "payments"
    cluster.objects[(names.ENTITLEMENTS, "prod")]["spec"]["owner"] = "ledger"
    (record,) = [
        r for r in audit.records_of(cluster.objects[(names.ENTITLEMENTS, "prod")]) if r["action"] == "released"
    ]
    assert record["ownerTeam"] == "payments"

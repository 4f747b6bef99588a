"""A scheduled start taken late grants no more than the window it was approved for (attack 149).

lena approved alice's request for Tue 06:00, 4 h. Started at 06:30 (the operator down for half an
hour), the grant ends at 10:00, not 10:30; taken after 10:00 (the operator down across the window,
or the cluster restored from a backup taken while the request waited), nothing is granted: the
request fails saying why and what to do, and Identity Center is not asked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import pytest

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.api import names
from jitaccess.api.models import AccessGrant, AccessRequest
from jitaccess.domain import requests as rules
from jitaccess.handlers import backing as backing_handlers
from jitaccess.handlers import grants
from jitaccess.handlers import requests as request_handlers
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.conftest import T0
from tests.unit.factories import condition, entitlement, request, team
from tests.unit.test_activation_time import _grant, _Known
from tests.unit.test_grant_ended_while_provisioning import _Kube

START = T0 + dt.timedelta(hours=18)  # approved at T0 for the next morning
PASSED = (
    "not granted: its window 2026-12-02T00:00:00Z..2026-12-02T01:00:00Z passed before the operator could begin "
    "it (the operator was down, or the cluster was restored from a backup); request access again"
)


def _scheduled(start: dt.datetime = START) -> dict[str, Any]:
    """bob's request for 1 h from `start`, approved by paula at T0, as stored (`Scheduled`)."""
    req = request(
        annotations={"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": "paula@example.com"},
        conditions=[condition("Approved", "True", "Approved", T0), condition("Ready", "False", "Scheduled", T0)],
        created=T0 - dt.timedelta(minutes=5),
        startTime=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        duration="1h",
    )
    req.metadata.uid = "uid-r1"
    wired = req.wire()
    wired["metadata"] |= {"resourceVersion": "1", "generation": 1}
    return wired


TEAM = {"spec": team().wire()}


class _Unasked:
    """Identity Center that must not be asked."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"Identity Center asked ({name}) for a window that has passed")


class _Cluster:
    """The request as stored; a grant's creation is counted."""

    def __init__(self, stored: dict[str, Any]) -> None:
        self.stored, self.created = stored, 0

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        found = {names.REQUESTS: self.stored, names.ENTITLEMENTS: entitlement().wire(), names.TEAMS: TEAM}
        return found.get(plural)

    def create(self, plural: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        self.created += 1
        return body, True

    def update_status(self, plural: str, name: str, change: Any, current: Any = None, *, uid: Any = None) -> Any:
        fields = change(self.stored)
        if fields is None:
            return None
        self.stored = {**self.stored, "status": {**self.stored.get("status", {}), **fields}}
        return self.stored


def test_a_start_taken_after_its_window_ends_the_request_without_a_grant(monkeypatch: pytest.MonkeyPatch) -> None:
    """The etcd restore: the request comes back `Scheduled` after its window; the start is taken."""
    monkeypatch.setattr(request_handlers, "utcnow", lambda: START + dt.timedelta(hours=2))
    events: list[tuple[str, str]] = []
    monkeypatch.setattr(request_handlers, "record", lambda obj, reason, message, **_: events.append((reason, message)))
    cluster = _Cluster(_scheduled())
    rt = Runtime(Settings(), cast(IdentityCenter, _Unasked()), cast(Kube, cluster))
    req = AccessRequest.model_validate(cluster.stored)
    request_handlers.ensure_grant(rt, req, {}, {})
    assert cluster.created == 0
    ready = [c for c in cluster.stored["status"]["conditions"] if c["type"] == "Ready"]
    assert [(c["reason"], c["message"]) for c in ready] == [("Failed", PASSED)]
    assert events == [("Failed", PASSED)], "its record, as every other ending's"


def test_a_start_within_its_window_is_granted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(request_handlers, "utcnow", lambda: START + dt.timedelta(minutes=59))
    monkeypatch.setattr(request_handlers, "activation_refusal", lambda *_: None)
    cluster = _Cluster(_scheduled())
    rt = Runtime(Settings(), cast(IdentityCenter, _Unasked()), cast(Kube, cluster))
    req = AccessRequest.model_validate(cluster.stored)
    request_handlers._create_grant(rt, req, rules.validate(req, entitlement(), team(), rt.settings.limits))
    assert cluster.created == 1


def test_a_grant_begun_late_ends_at_its_windows_end(clock: list[dt.datetime]) -> None:
    """Begun 30 min into its hour, the grant has the half hour left, persisted as its expiration
    (what expiry and extensions read); a request without a start has its full duration."""
    clock[0] = START + dt.timedelta(minutes=30)
    for stored, ends in ((_scheduled(), "2026-12-02T01:00:00Z"), (request().wire(), "2026-12-02T01:30:00Z")):
        kube = _Kube()
        rt = Runtime(Settings(), _Known(), kube)  # type: ignore[arg-type]
        kube.put(names.GRANTS, _grant(clock[0]))
        grants.activate(rt, AccessGrant.model_validate(kube.get(names.GRANTS, "r1")), request=stored)
        status = (kube.get(names.GRANTS, "r1") or {})["status"]
        assert (status["activationTime"], status["expirationTime"]) == ("2026-12-02T00:30:00Z", ends)
        assert f"until {ends}" in next(c for c in status["conditions"] if c["type"] == "Ready")["message"]


def test_a_grant_whose_window_passed_before_its_handler_ran_adds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Created a moment before the window's end (or by hand), its handler runs after it: failed,
    Identity Center not asked."""
    stored = AccessRequest.model_validate(_scheduled())
    made = AccessGrant.model_validate(_grant(START))
    made.metadata.labels = {names.LABEL_REQUEST: "uid-r1"}
    made.spec.request, made.spec.user_id, made.spec.group_name = "r1", None, "prod-eng-payments"
    made.spec.entitlement = "prod-eng-payments"
    rt = Runtime(Settings(), cast(IdentityCenter, _Unasked()), cast(Kube, _Cluster(stored.wire())))
    monkeypatch.setattr(backing_handlers, "utcnow", lambda: START + dt.timedelta(hours=1))
    message = backing_handlers.unbacked_by(rt, made, stored, entitlement(), team())
    assert message is not None and message.endswith(
        f"(AccessRequest r1: {PASSED}). Grants are created by the operator from approved requests only"
    )

"""When a grant's time starts. Identity Center keeps no time of a membership's creation, and a grant
becomes Active in a status write after the membership is added: if that write is lost (the process
killed, the API server erring) and the grant is tried again later, the membership found there must
not start a fresh duration, or a 1h grant retried 2h later would end 3h after its access began."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from jitaccess.api import names
from jitaccess.api.models import AccessGrant
from jitaccess.domain.schedule import CLOCK_SKEW
from jitaccess.handlers import grants
from jitaccess.handlers.runtime import Attempts, Runtime
from jitaccess.settings import Settings
from tests.unit.conftest import T0
from tests.unit.test_grant_ended_while_provisioning import GROUP, _IdentityCenter, _Kube


class _Known(_IdentityCenter):
    def resolve_user(self, _: str) -> str:
        return "id-bob"


def _grant(created: dt.datetime) -> dict[str, Any]:
    return {
        "metadata": {"name": "r1", "uid": "uid-g1", "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "spec": {"user": "bob@example.com", "userId": "id-bob", "entitlement": GROUP, "groupName": GROUP,
                 "request": "r1", "duration": "1h", "ownerTeam": "payments", "reason": "CHG-1"},
        "status": {},
    }  # fmt: skip


def test_a_membership_added_fresh_starts_the_grant_now(clock: list[dt.datetime]) -> None:
    kube, ic = _Kube(), _Known()
    rt = Runtime(Settings(), ic, kube)  # type: ignore[arg-type]
    kube.put(names.GRANTS, _grant(T0 - dt.timedelta(minutes=5)))  # queued five minutes for the quota
    grants.activate(rt, AccessGrant.model_validate(kube.get(names.GRANTS, "r1")))
    status = (kube.get(names.GRANTS, "r1") or {})["status"]
    assert (status["activationTime"], status["expirationTime"]) == ("2026-12-01T06:00:00Z", "2026-12-01T07:00:00Z")


def test_a_lost_active_write_retried_later_counts_from_the_grants_creation(
    clock: list[dt.datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    kube, ic = _Kube(), _Known()
    rt = Runtime(Settings(), ic, kube)  # type: ignore[arg-type]
    kube.put(names.GRANTS, _grant(T0))
    written = kube.update_status

    def lost(*_: Any, **__: Any) -> None:
        raise RuntimeError("the API server did not answer the Active write")

    monkeypatch.setattr(kube, "update_status", lost)
    with pytest.raises(RuntimeError):
        grants.activate(rt, AccessGrant.model_validate(kube.get(names.GRANTS, "r1")))
    assert ic.members, "the first attempt added the membership at 06:00"

    monkeypatch.setattr(kube, "update_status", written)
    clock[0] = T0 + dt.timedelta(hours=2)  # kopf's retry, or the next process, two hours later
    grants.activate(rt, AccessGrant.model_validate(copy.deepcopy(kube.get(names.GRANTS, "r1"))))
    status = (kube.get(names.GRANTS, "r1") or {})["status"]
    assert (status["activationTime"], status["expirationTime"]) == ("2026-12-01T06:00:00Z", "2026-12-01T07:00:00Z")


def test_an_assignment_counts_from_now_only_at_its_first_attempt_since_the_controller_began() -> None:
    attempts = Attempts()
    begun = attempts.since
    new = begun + CLOCK_SKEW + dt.timedelta(seconds=1)  # the API server's clock may run ahead of ours
    assert attempts.first("g-new", new)
    assert not attempts.first("g-new", new), "tried before in this controller"
    assert not attempts.first("g-old", begun - dt.timedelta(seconds=1)), "a previous leader may have tried it"
    assert not attempts.first("g-near", begun + dt.timedelta(seconds=1)), "a previous leader's, its clock behind"
    assert not attempts.first("g-unknown", None)
    attempts.begin()  # the next acquisition of the Lease: a grant created since is new again
    assert attempts.first("g-later", attempts.since + CLOCK_SKEW + dt.timedelta(seconds=1))


def test_a_membership_of_another_holder_counts_from_the_grants_creation(clock: list[dt.datetime]) -> None:
    kube, ic = _Kube(), _Known()
    ic.members[("gid-" + GROUP, "id-bob")] = "m-0"  # there already: another grant, or standing access
    rt = Runtime(Settings(), ic, kube)  # type: ignore[arg-type]
    kube.put(names.GRANTS, _grant(T0 - dt.timedelta(seconds=3)))
    grants.activate(rt, AccessGrant.model_validate(kube.get(names.GRANTS, "r1")))
    status = (kube.get(names.GRANTS, "r1") or {})["status"]
    assert status["activationTime"] == "2026-12-01T05:59:57Z"


def test_a_grant_whose_active_write_keeps_failing_loses_its_access_when_its_time_is_over(
    clock: list[dt.datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The membership is added, then the `Active` write fails (a policy refusing it, RBAC changed)
    for hours: nothing persisted says when the access ends, and the expiry scheduler knows only
    Active grants. While the grant's time runs the access stays (the retry may succeed); once it is
    over, the failing write takes it out, and no later attempt adds it again: the grant fails."""
    monkeypatch.setattr(grants, "record", lambda *a, **k: None)  # no kopf Event poster here
    kube, ic = _Kube(), _Known()
    rt = Runtime(Settings(), ic, kube)  # type: ignore[arg-type]
    rt.attempts.since = T0 - dt.timedelta(hours=1)  # this controller began before the grant was made
    kube.put(names.GRANTS, _grant(T0))
    written = kube.update_status

    def refused(*_: Any, **__: Any) -> None:
        raise RuntimeError("admission policy refused the status write")

    monkeypatch.setattr(kube, "update_status", refused)
    for minutes in (0, 30, 59):  # kopf's retries while the grant's hour runs
        clock[0] = T0 + dt.timedelta(minutes=minutes)
        with pytest.raises(RuntimeError):
            grants.activate(rt, AccessGrant.model_validate(kube.get(names.GRANTS, "r1")))
        assert ic.members, f"taken out {minutes} min into the grant's hour"
    clock[0] = T0 + dt.timedelta(hours=1, minutes=1)
    with pytest.raises(RuntimeError):
        grants.activate(rt, AccessGrant.model_validate(kube.get(names.GRANTS, "r1")))
    assert not ic.members, "held past the grant's hour with no end written"
    clock[0] = T0 + dt.timedelta(hours=3)  # the write works again: the grant fails, nothing is added
    monkeypatch.setattr(kube, "update_status", written)
    assert not grants.activate(rt, AccessGrant.model_validate(kube.get(names.GRANTS, "r1")))
    assert not ic.members
    ready = next(c for c in (kube.get(names.GRANTS, "r1") or {})["status"]["conditions"] if c["type"] == "Ready")
    assert (
        ready["reason"] == names.FAILED
        and "its time ran out while its Active status could not be written" in (ready["message"])
    ), ready


def test_a_grant_created_just_after_a_controller_began_may_have_been_tried_before_it() -> None:
    """The creation time is the API server's clock, `since` this process's: a grant the previous
    leader created as it stopped can read as created after `since` when the API server's clock runs
    ahead, and must count as maybe tried (attack 129's wait, an assignment's time from creation)."""
    attempts = Attempts()
    assert attempts.before(attempts.since + dt.timedelta(seconds=20))
    assert attempts.earlier_adds_settled(attempts.since + dt.timedelta(seconds=20), attempts.since) > 0
    assert not attempts.before(attempts.since + dt.timedelta(minutes=2))

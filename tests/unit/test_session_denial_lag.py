"""A revoked user's sessions are denied from when their membership was taken out, not from when
the revocation began (attack 123): until the removal has succeeded the user still holds the group
and may sign in again, and Identity Center may throttle or refuse the removal for a while (the
end is retried). The grant's `deniedUsers` entry moves with each attempt and is recorded again
once the removal is done, so that no session issued before the removal outlives it
(`sessions.deny`, `grants.end_grant`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from jitaccess.adapters.kube import BY_NAME
from jitaccess.api import names
from jitaccess.errors import RetryLater
from jitaccess.handlers import grants, permissionsets, sessions
from jitaccess.handlers.indexes import holdings
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.factories import T0
from tests.unit.test_grant_ended_while_provisioning import _Kube
from tests.unit.test_grant_spellings import ACTIVE
from tests.unit.test_session_denial_by_group_id import GROUP_ID, _catalog

HOUR = timedelta(hours=1)  # the production tier's sessionDuration
SECOND = timedelta(seconds=1)


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


class _IdentityCenter:
    """alice (`u-alice`) in the production group; the removal refused `refusals` times (throttled),
    each refusal, and the removal itself, taking `takes` of the clock."""

    identity_store_id = "d-1234567890"

    def __init__(self, clock: Clock, refusals: int = 0, takes: timedelta = timedelta(0)) -> None:
        self.clock, self.refusals, self.takes = clock, refusals, takes
        self.members = {(GROUP_ID, "u-alice")}

    def resolve_group(self, _: str) -> str:
        return GROUP_ID

    def remove_member(self, group_id: str, user_id: str, membership_id: str | None = None) -> bool:
        self.clock.at += self.takes
        if self.refusals:
            self.refusals -= 1
            raise RetryLater("ThrottlingException: Rate exceeded")
        self.members.discard((group_id, user_id))
        return True


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(sessions, "now", clock.now)
    monkeypatch.setattr(grants, "now", clock.now)
    monkeypatch.setattr(grants, "record", lambda *a, **k: None)  # no kopf Event poster here
    monkeypatch.setattr(grants, "follow_request", lambda *a, **k: None)
    return clock


def _system(ic: _IdentityCenter) -> tuple[Runtime, _Kube]:
    kube = _Kube()
    rt = Runtime(Settings(), ic, kube)  # type: ignore[arg-type]
    kube.put(names.CATALOGS, _catalog())
    permissionsets.observe(rt, kube.get(names.CATALOGS, "payments"), "payments")
    spec = {"user": "alice@example.com", "userId": "u-alice", "entitlement": "prod-eng-payments",
            "groupName": "prod-eng-payments", "request": "g-alice", "duration": "1h", "ownerTeam": "payments",
            "reason": "INC-1 x"}  # fmt: skip
    status = {"groupId": GROUP_ID, "userId": "u-alice", "membershipId": "m-1", "conditions": [ACTIVE]}
    grant = {"metadata": {"name": "g-alice", "uid": "uid-g-alice"}, "spec": spec, "status": status}
    kube.put(names.GRANTS, grant)
    rt.holders.file("g-alice", holdings(grant), "g-alice")
    return rt, kube


def _entry(kube: _Kube) -> tuple[str, str, str]:
    [entry] = (kube.get(names.CATALOGS, "payments") or {})["status"]["production"]["deniedUsers"]
    return entry["grant"], entry["since"], entry["until"]


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _revoke(rt: Runtime) -> None:
    grants.end_grant(rt, "g-alice", names.REVOKED, rt.holders, who="paula@example.com", why="stolen", uid=BY_NAME)


def test_a_removal_refused_for_minutes_denies_the_sessions_issued_meanwhile_from_its_end(clock: Clock) -> None:
    """Revoked at T0, the removal throttled until T0+10m: alice could sign in until then, and the
    sessions she got live an hour from their issue. The entry ends an hour after the removal (and
    the second it fell in), not an hour after T0; meanwhile each attempt moved it along."""
    ic = _IdentityCenter(clock, refusals=2)
    rt, kube = _system(ic)
    with pytest.raises(RetryLater):
        _revoke(rt)
    assert _entry(kube) == ("g-alice", _stamp(T0), _stamp(T0 + SECOND + HOUR)), "recorded before the removal"
    clock.at = T0 + timedelta(minutes=5)
    with pytest.raises(RetryLater):
        _revoke(rt)
    assert _entry(kube) == ("g-alice", _stamp(clock.at), _stamp(clock.at + SECOND + HOUR)), "moved with the attempt"
    clock.at = T0 + timedelta(minutes=10)
    _revoke(rt)
    assert ic.members == set()
    assert kube.get(names.GRANTS, "g-alice")["status"]["conditions"][-1]["reason"] == names.REVOKED
    assert _entry(kube) == ("g-alice", _stamp(clock.at), _stamp(clock.at + SECOND + HOUR))


def test_a_removal_that_takes_seconds_is_recorded_again_once_done(clock: Clock) -> None:
    """One attempt, Identity Center slow (its client retrying a throttled call): the entry is
    recorded before the removal and again after it, from the removal's second."""
    ic = _IdentityCenter(clock, takes=timedelta(seconds=7))
    rt, kube = _system(ic)
    _revoke(rt)
    assert ic.members == set()
    done = T0 + timedelta(seconds=7)
    assert _entry(kube) == ("g-alice", _stamp(done), _stamp(done + SECOND + HOUR))


def test_a_removal_within_the_second_writes_the_entry_once(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    denials: list[Any] = []
    deny = sessions.deny
    monkeypatch.setattr(grants.sessions, "deny", lambda *a, **k: denials.append(k) or deny(*a, **k))
    rt, kube = _system(_IdentityCenter(clock))
    _revoke(rt)
    assert len(denials) == 1
    assert _entry(kube) == ("g-alice", _stamp(T0), _stamp(T0 + SECOND + HOUR))


def test_an_entry_only_ever_moves_later(clock: Clock) -> None:
    """An older end of the same user's, recorded after a later one, never shortens its entry: the
    sessions issued before the later end stay denied as long."""
    rt, kube = _system(_IdentityCenter(clock))
    grant = grants.AccessGrant.model_validate(kube.get(names.GRANTS, "g-alice"))
    older = grant.model_copy(update={"metadata": grant.metadata.model_copy(update={"name": "g-alice-before"})})
    clock.at = later = T0 + timedelta(minutes=5)
    assert sessions.deny(rt, grant, "u-alice") == 1
    assert sessions.deny(rt, older, "u-alice", since=T0) == 1
    assert _entry(kube)[1:] == (_stamp(later), _stamp(later + SECOND + HOUR))

"""One group, spelled two ways by two Entitlements (its DisplayName here, its GroupId there): the
grants of both share one membership, one lock and one reference count (`grants.membership_of`,
`grants.holders_of`, `indexes.holdings`), so ending or failing a grant of one spelling never takes
away the membership a grant of the other still holds, and the last to end takes it out, also while
the grant index has not caught up with a grant this process failed a moment before. And, on the
same grants, whom the audit line of an end names."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jitaccess.adapters.kube import BY_NAME
from jitaccess.api import names
from jitaccess.api.models import AccessGrant
from jitaccess.handlers import grants
from jitaccess.handlers.indexes import holdings
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.test_grant_ended_while_provisioning import _Kube

ACTIVE = {
    "type": "Ready",
    "status": "True",
    "reason": "Active",
    "message": "",
    "lastTransitionTime": "2026-01-01T00:00:00Z",
}


class _IdentityCenter:
    """One group, `g-123`, whose DisplayName is `Admins`; alice (`u-1`) a member of it."""

    identity_store_id = "d-1234567890"

    def __init__(self) -> None:
        self.members = {("g-123", "u-1"): "m-1"}

    def resolve_user(self, _: str) -> str:
        return "u-1"

    def resolve_group(self, _: str) -> str:
        return "g-123"

    def remove_member(self, group_id: str, user_id: str, membership_id: str | None = None) -> bool:
        return self.members.pop((group_id, user_id), None) is not None


def _grant(name: str, spelled: str, active: bool) -> dict[str, Any]:
    status = {"groupId": "g-123", "userId": "u-1", "membershipId": "m-1", "conditions": [ACTIVE]} if active else {}
    spec = {"user": "alice@example.com", "userId": "u-1", "entitlement": "e", "groupName": spelled,
            "request": name, "duration": "1h", "ownerTeam": "t", "reason": "INC-1 x"}  # fmt: skip
    return {"metadata": {"name": name, "uid": f"uid-{name}"}, "spec": spec, "status": status}


@pytest.fixture
def system(monkeypatch: pytest.MonkeyPatch) -> tuple[Runtime, _Kube, _IdentityCenter]:
    return one_group(monkeypatch)


def one_group(monkeypatch: pytest.MonkeyPatch) -> tuple[Runtime, _Kube, _IdentityCenter]:
    """A runtime whose identity center has one group, alice in it; no Events, requests or sessions."""
    monkeypatch.setattr(grants, "record", lambda *a, **k: None)  # no kopf Event poster here
    monkeypatch.setattr(grants, "follow_request", lambda *a, **k: None)
    monkeypatch.setattr(grants.sessions, "deny", lambda *a, **k: None)
    kube, ic = _Kube(), _IdentityCenter()
    return Runtime(Settings(), ic, kube), kube, ic  # type: ignore[arg-type]


def _store(rt: Runtime, kube: _Kube, *objs: dict[str, Any]) -> None:
    for obj in objs:
        kube.put(names.GRANTS, obj)
        rt.holders.file(obj["metadata"]["name"], holdings(obj), obj["metadata"]["name"])


def test_a_grant_of_the_name_that_fails_keeps_the_membership_a_grant_of_the_id_holds(system: Any) -> None:
    rt, kube, ic = system
    _store(rt, kube, _grant("by-id", "g-123", active=True), _grant("by-name", "Admins", active=False))
    grants.fail(rt, AccessGrant.model_validate(kube.get(names.GRANTS, "by-name")), "no longer backed")
    assert kube.get(names.GRANTS, "by-name")["status"]["conditions"][-1]["reason"] == names.FAILED
    assert ic.members == {("g-123", "u-1"): "m-1"}


def test_a_grant_of_the_name_revoked_before_it_began_keeps_the_membership_a_grant_of_the_id_holds(
    system: Any,
) -> None:
    rt, kube, ic = system
    _store(rt, kube, _grant("by-id", "g-123", active=True), _grant("by-name", "Admins", active=False))
    grants.end_grant(rt, "by-name", names.REVOKED, rt.holders, why="its request was withdrawn", uid=BY_NAME)
    assert ic.members == {("g-123", "u-1"): "m-1"}
    grants.end_grant(rt, "by-id", names.REVOKED, rt.holders, why="the last one", uid=BY_NAME)
    assert ic.members == {}


def test_the_last_grant_to_end_takes_the_membership_out_while_the_index_lags(system: Any) -> None:
    """b fails (its Failed not yet seen by the index, which still files it), then a ends: nothing
    holds the membership any more, and a's end must not count b."""
    rt, kube, ic = system
    _store(rt, kube, _grant("a", "Admins", active=True), _grant("b", "Admins", active=False))
    grants.fail(rt, AccessGrant.model_validate(copy.deepcopy(kube.get(names.GRANTS, "b"))), "no longer backed")
    assert ic.members, "a still holds it"
    grants.end_grant(rt, "a", names.REVOKED, rt.holders, why="revoked", uid=BY_NAME)
    assert ic.members == {}


@pytest.mark.parametrize(
    ("reason", "who", "named"),
    [
        (names.REVOKED, "", "system:jitaccess"),  # deleted, or its request gone: nobody stamped it
        (names.REVOKED, "paula@example.com", "paula@example.com"),
        (names.EXPIRED, "", "alice@example.com"),
    ],
)
def test_the_end_line_names_who_ended_it_never_the_grantee_for_an_unstamped_revocation(
    system: Any, monkeypatch: pytest.MonkeyPatch, reason: str, who: str, named: str
) -> None:
    """A revocation nobody stamped (a deletion past the webhook) was the operator's, as its `revoked`
    record says; its audit line named the grantee as the one who ended it (attack 124)."""
    rt, kube, _ = system
    lines: list[tuple[str, str]] = []
    monkeypatch.setattr(grants, "record", lambda obj, event, message, **fields: lines.append((event, fields["who"])))
    _store(rt, kube, _grant("a", "Admins", active=True))
    grants.end_grant(rt, "a", reason, rt.holders, who=who, why="the AccessGrant was deleted", uid=BY_NAME)
    assert lines == [(reason, named)]


def test_a_request_that_cannot_follow_its_ended_grant_does_not_make_the_end_fail(
    system: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The grant's end is written and its membership gone; the request's status write is refused
    (a policy on requests only). That is the request's to catch up on (the laggards' repair), not
    an end of the grant refused: `end_grant` returns, and says so in a WARNING."""
    rt, kube, ic = system

    def refused(*_: Any, **__: Any) -> None:
        raise grants.Refused(422, "accessrequests/by-id is invalid: status.grant: Too long")

    monkeypatch.setattr(grants, "follow_request", refused)
    _store(rt, kube, _grant("by-id", "g-123", active=True))
    assert grants.end_grant(rt, "by-id", names.REVOKED, rt.holders, why="revoked", uid=BY_NAME) is None
    assert kube.get(names.GRANTS, "by-id")["status"]["conditions"][-1]["reason"] == names.REVOKED
    assert ic.members == {}
    assert "its AccessRequest by-id could not be brought in line yet" in caplog.text


@pytest.mark.parametrize("active", [True, False], ids=["active", "provisioning"])
def test_an_assignment_grant_ended_before_it_was_active_is_taken_back_not_unassigned_blind(
    system: Any, monkeypatch: pytest.MonkeyPatch, active: bool
) -> None:
    """Account-assignment mode: an Active grant's assignments are removed (`unassign`); one not
    Active yet may have a creation of an earlier attempt still in progress, which a removal sent now
    would not stop: it is taken back as a failing grant's is (`take_back`: those creations waited
    for, then only the assignments that exist removed, and listed in `status.takeBack`)."""
    rt, kube, _ = system
    called: list[str] = []
    monkeypatch.setattr(grants.assignments, "others_holding", lambda *a, **k: [])
    monkeypatch.setattr(grants.assignments, "unassign", lambda *a, **k: called.append("unassign") or ["111"])
    monkeypatch.setattr(grants.assignments, "take_back", lambda *a, **k: called.append("take_back") or ["111"])
    grant = _grant("direct", "catalog:payments/production", active=active)
    grant["spec"]["accountAssignment"] = {
        "permissionSet": {"catalog": "payments", "tier": "production"},
        "accounts": ["111111111111"],
    }
    _store(rt, kube, grant)
    grants.end_grant(rt, "direct", names.REVOKED, rt.holders, why="revoked", uid=BY_NAME)
    assert called == (["unassign"] if active else ["take_back"])
    ended = kube.get(names.GRANTS, "direct")["status"]
    assert ended["conditions"][-1]["reason"] == names.REVOKED
    assert ("takeBack" in ended) is not active, ended

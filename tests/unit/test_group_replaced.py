"""A group deleted and created again under its name (a Terraform replace) while its id is cached
(`Runtime.cached`): the add to the old id answers `NotFound`, and the grant is not failed for it.
The name is resolved afresh and the add tried once more, in the group it names now, whose id is the
grant's `status.groupId`. A name that resolves to no group, or to the same id (what was not found is
the user), fails the grant as before, after one lookup: never a loop. The eligibility and on-call
checks, which ask whether the user is in groups by their cached ids, do the same; so does the
eligibility re-check, which lists the group and confirms each lapse (`handlers.lapses`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import kopf
import pytest

from jitaccess.api import names
from jitaccess.api.models import AccessGrant
from jitaccess.domain import requests as request_rules
from jitaccess.domain.eligibility import Directory, User
from jitaccess.domain.schedule import CLOCK_SKEW
from jitaccess.errors import NotFound
from jitaccess.handlers import grants
from jitaccess.handlers.eligibility import eligibility_problem
from jitaccess.handlers.lapses import Listings, recheck
from jitaccess.handlers.oncall import on_call_group
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit import factories
from tests.unit.test_activation import LIMITS as ELIGIBILITY_LIMITS
from tests.unit.test_activation_time import _grant
from tests.unit.test_eligibility_lapse import StoredKube, active_grant, holder, ready_of
from tests.unit.test_grant_ended_while_provisioning import GROUP, _IdentityCenter, _Kube


class _Store(_IdentityCenter):
    """Groups by name, which a replace gives a new id; an add to an id no group has is `NotFound`,
    as AWS answers `CreateGroupMembership`."""

    def __init__(self) -> None:
        super().__init__()
        self.groups = {GROUP: "gid-1"}
        self.users = {"id-bob"}
        self.resolved: list[str] = []
        self.adds: list[str] = []

    def resolve_user(self, _: str) -> str:
        return "id-bob"

    def resolve_group(self, name: str) -> str:
        self.resolved.append(name)
        if name not in self.groups:
            raise NotFound("GROUP not found.", operation="GetGroupId", code="ResourceNotFoundException")
        return self.groups[name]

    def replace(self, name: str, new_id: str | None) -> None:
        """Delete the group, and create it again under its name as `new_id` (None: not again)."""
        old = self.groups.pop(name)
        self.members = {k: v for k, v in self.members.items() if k[0] != old}
        if new_id is not None:
            self.groups[name] = new_id

    def ensure_member(self, group_id: str, user_id: str) -> tuple[str, bool]:
        self.adds.append(group_id)
        if group_id not in self.groups.values() or user_id not in self.users:
            raise NotFound("Group does not exist", operation="CreateGroupMembership", code="ResourceNotFoundException")
        return super().ensure_member(group_id, user_id)


def _cached_then(monkeypatch: pytest.MonkeyPatch, change: Any) -> tuple[Runtime, _Kube, _Store]:
    """A runtime whose cache holds the group's first id, the store then changed by `change`, and
    the grant created: ready for `activate`."""
    monkeypatch.setattr(grants, "record", lambda *a, **k: None)  # no kopf Event poster here
    kube, ic = _Kube(), _Store()
    rt = Runtime(Settings(), ic, kube)  # type: ignore[arg-type]
    # The grant is this controller's own (its creation, stamped in whole seconds, after it began
    # by more than the clocks' allowed skew): no earlier controller's add to wait for (attack 129).
    rt.attempts.since -= CLOCK_SKEW + dt.timedelta(seconds=1)
    assert rt.cached("group", GROUP, ic.resolve_group) == "gid-1"  # an earlier grant's lookup
    change(ic)
    ic.resolved.clear()
    kube.put(names.GRANTS, _grant(dt.datetime.now(dt.UTC)))
    return rt, kube, ic


def _activated(rt: Runtime, kube: _Kube) -> dict[str, Any]:
    grants.activate(rt, AccessGrant.model_validate(kube.get(names.GRANTS, "r1")))
    stored = kube.get(names.GRANTS, "r1")
    assert stored is not None
    return stored


def _ready(grant: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in grant["status"]["conditions"] if c["type"] == names.READY)


def test_a_grant_in_a_group_replaced_under_its_cached_name_is_added_to_the_new_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt, kube, ic = _cached_then(monkeypatch, lambda ic: ic.replace(GROUP, "gid-2"))
    grant = _activated(rt, kube)
    assert _ready(grant)["reason"] == names.ACTIVE, _ready(grant)["message"]
    assert grant["status"]["groupId"] == "gid-2", "the id the member was added to, which the holders index files by"
    assert ic.members == {("gid-2", "id-bob"): "m-1"}
    assert ic.adds == ["gid-1", "gid-2"] and ic.resolved == [GROUP], "resolved again once, tried again once"
    assert rt.cached("group", GROUP, ic.resolve_group) == "gid-2" and ic.resolved == [GROUP], "the new id is cached"


def test_a_group_deleted_and_not_created_again_fails_the_grant_after_one_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt, kube, ic = _cached_then(monkeypatch, lambda ic: ic.replace(GROUP, None))
    grant = _activated(rt, kube)
    assert _ready(grant)["reason"] == names.FAILED
    assert f"Identity Center group {GROUP!r} or user bob@example.com disappeared" in _ready(grant)["message"]
    assert ic.adds == ["gid-1"], "no group to try again in"
    assert "groupId" not in grant["status"] and ic.members == {}


def test_a_user_gone_from_a_group_that_stays_fails_the_grant_without_a_second_add(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt, kube, ic = _cached_then(monkeypatch, lambda ic: ic.users.clear())
    grant = _activated(rt, kube)
    assert _ready(grant)["reason"] == names.FAILED
    assert ic.adds == ["gid-1"], "the name names the same group: the add is not tried again"


def test_a_group_replaced_again_meanwhile_is_tried_once_more_only(monkeypatch: pytest.MonkeyPatch) -> None:
    rt, kube, ic = _cached_then(monkeypatch, lambda ic: ic.replace(GROUP, "gid-2"))
    added = ic.ensure_member

    def replaced_meanwhile(group_id: str, user_id: str) -> tuple[str, bool]:
        if group_id == "gid-2":
            ic.replace(GROUP, "gid-3")  # replaced again between the new lookup and the add
        return added(group_id, user_id)

    monkeypatch.setattr(ic, "ensure_member", replaced_meanwhile)
    grant = _activated(rt, kube)
    assert _ready(grant)["reason"] == names.FAILED
    assert ic.adds == ["gid-1", "gid-2"] and ic.members == {}


# --- reads: eligibility and on-call with a replaced group's id cached --------------------------------


class _Directory:
    """Group ids by name, which a replace changes, and who is in which group by name. Asked about an
    id no group has, `IsMemberInGroups` answers `NotFound`, as AWS does."""

    identity_store_id = "d-0000000000"

    def __init__(self) -> None:
        self.ids = {"prod-eligible": "gid-1"}
        self.members = {"prod-eligible": {"u-bob@example.com"}}
        self.accounts = {"u-bob@example.com"}
        self.asked: list[list[str]] = []
        self.listed: list[str] = []
        self.removed: list[tuple[str, str]] = []

    def resolve_user(self, name: str) -> str:
        return f"u-{name}"

    def resolve_group(self, name: str) -> str:
        if name not in self.ids:
            raise NotFound("GROUP not found.", operation="GetGroupId", code="ResourceNotFoundException")
        return self.ids[name]

    def missing_groups(self, user_id: str, group_ids: list[str]) -> list[str]:
        self.asked.append(list(group_ids))
        names_of = {gid: name for name, gid in self.ids.items()}
        if user_id not in self.accounts or any(g not in names_of for g in group_ids):
            raise NotFound("not found.", operation="IsMemberInGroups", code="ResourceNotFoundException")
        return [g for g in group_ids if user_id not in self.members[names_of[g]]]

    def user_enabled(self, user_id: str) -> bool:
        if user_id not in self.accounts:
            raise NotFound("USER not found.", operation="DescribeUser", code="ResourceNotFoundException")
        return True

    def group_members(self, group_id: str) -> dict[str, str]:
        """`ListGroupMemberships`: an id no group has is `NotFound`, as the strict emulator answers."""
        self.listed.append(group_id)
        names_of = {gid: name for name, gid in self.ids.items()}
        if group_id not in names_of:
            raise NotFound("GROUP not found.", operation="ListGroupMemberships", code="ResourceNotFoundException")
        return {user_id: f"m-{user_id}" for user_id in self.members[names_of[group_id]]}

    def users(self) -> dict[str, User]:
        return {user_id: User(user_id.removeprefix("u-")) for user_id in self.accounts}

    def remove_member(self, group_id: str, user_id: str, membership_id: str | None = None) -> bool:
        self.removed.append((group_id, user_id))
        return True


def _eligible_with_stale_id(directory: _Directory) -> tuple[Runtime, request_rules.ValidRequest]:
    rt = Runtime(Settings(), directory, object())  # type: ignore[arg-type]
    assert rt.cached("group", "prod-eligible", directory.resolve_group) == "gid-1"
    wanted = factories.entitlement(eligibility={"identityCenterGroups": ["prod-eligible"]})
    valid = request_rules.validate(factories.request(), wanted, factories.team(), ELIGIBILITY_LIMITS)
    return rt, valid


def test_a_member_of_a_replaced_eligibility_group_is_eligible_while_its_old_id_is_cached() -> None:
    directory = _Directory()
    rt, valid = _eligible_with_stale_id(directory)
    directory.ids["prod-eligible"] = "gid-2"  # deleted and created again; bob added to the new one
    assert eligibility_problem(rt, valid) is None
    assert directory.asked == [["gid-1"], ["gid-2"]]
    # A requester not in the new group is refused for that, not as a user who no longer exists.
    directory.members["prod-eligible"] = set()
    problem = eligibility_problem(rt, valid, fresh=True)
    assert problem is not None and "is not in the Identity Center group(s) prod-eligible" in problem


def test_a_user_gone_is_still_said_so_after_one_fresh_lookup() -> None:
    directory = _Directory()
    rt, valid = _eligible_with_stale_id(directory)
    directory.accounts.clear()
    problem = eligibility_problem(rt, valid)
    assert problem is not None and "no longer exists" in problem
    assert directory.asked == [["gid-1"]], "the same ids are not asked about twice"


def test_the_on_call_group_replaced_keeps_its_members_on_call() -> None:
    directory = _Directory()
    directory.ids["payments-oncall"] = "gid-oncall-1"
    directory.members["payments-oncall"] = {"u-bob@example.com"}
    rt = Runtime(Settings(), directory, object())  # type: ignore[arg-type]
    assert rt.cached("group", "payments-oncall", directory.resolve_group) == "gid-oncall-1"
    directory.ids["payments-oncall"] = "gid-oncall-2"
    wanted = factories.entitlement(approval={"autoApproveIdentityCenterGroups": ["payments-oncall"]})
    valid = request_rules.validate(factories.request(), wanted, factories.team(), ELIGIBILITY_LIMITS)
    assert on_call_group(rt, valid) == "payments-oncall (Identity Center group)"


# --- the eligibility re-check (handlers.lapses) with a replaced group's id cached --------------------

BOB = "u-bob@example.com"
REQUIRING = factories.entitlement(eligibility={"identityCenterGroups": ["prod-eligible"]})


def _rechecking(monkeypatch: pytest.MonkeyPatch) -> tuple[Runtime, _Directory, StoredKube]:
    """bob's Active grant of an Entitlement that requires prod-eligible, whose first id is cached."""
    monkeypatch.setattr(kopf, "event", lambda *_, **__: None)  # no operator to post Events through
    directory = _Directory()
    entitlement = {"apiVersion": names.API_VERSION, "kind": names.ENTITLEMENT, **REQUIRING.wire()}
    kube = StoredKube(active_grant("bob-1", "bob@example.com", BOB), entitlement)
    rt = Runtime(Settings(), directory, kube)  # type: ignore[arg-type]
    rt.holders.observe("bob-1", ((BOB, "prod-eng-payments"), "bob-1"))
    assert rt.cached("group", "prod-eligible", directory.resolve_group) == "gid-1"
    return rt, directory, kube


def test_the_recheck_lists_a_replaced_eligibility_group_by_its_new_id(monkeypatch: pytest.MonkeyPatch) -> None:
    rt, directory, kube = _rechecking(monkeypatch)
    directory.ids["prod-eligible"] = "gid-2"  # deleted and created again; bob added to the new one
    listed = Listings(max_age=30).directory(rt, ["prod-eligible"])
    assert listed.members == {"prod-eligible": frozenset({BOB})}, "the new group's members, not no group"
    assert directory.listed == ["gid-1", "gid-2"]
    recheck(rt, REQUIRING, listed, [holder("bob-1", "bob@example.com", BOB)], [], [])
    assert ready_of(kube.status(names.GRANTS, "bob-1"))["reason"] == names.ACTIVE and directory.removed == []
    published = kube.status(names.ENTITLEMENTS, REQUIRING.metadata.name)
    assert published["eligibleUsers"] == [{"userId": BOB, "username": "bob@example.com"}]


@pytest.mark.parametrize(
    "change",
    [lambda d: d.ids.update({"prod-eligible": "gid-2"}), lambda d: d.ids.pop("prod-eligible")],
    ids=["replaced", "deleted"],
)
def test_a_lapse_read_from_a_group_gone_since_its_id_was_cached_ends_no_grant(
    monkeypatch: pytest.MonkeyPatch, change: Any
) -> None:
    """A listing in which bob is out of the group: AWS's answer to `ListGroupMemberships` of an id no
    group has is not documented, and an empty page would read so. Identity Center is asked before
    the grant ends: by the new id, bob is in the group; with no group, the `NotFound` is the group's
    (his account is there), and nobody lapses over a group that does not exist."""
    rt, directory, kube = _rechecking(monkeypatch)
    change(directory)
    listing = Directory({BOB: User("bob@example.com")}, {"prod-eligible": frozenset()})
    recheck(rt, REQUIRING, listing, [holder("bob-1", "bob@example.com", BOB)], [], [])
    assert ready_of(kube.status(names.GRANTS, "bob-1"))["reason"] == names.ACTIVE
    assert directory.removed == []


def test_a_grantee_gone_still_lapses_after_the_groups_are_resolved_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    rt, directory, kube = _rechecking(monkeypatch)
    directory.accounts.clear()
    listing = Directory({}, {"prod-eligible": frozenset()})
    recheck(rt, REQUIRING, listing, [holder("bob-1", "bob@example.com", BOB)], [], [])
    ended = ready_of(kube.status(names.GRANTS, "bob-1"))
    assert ended["reason"] == names.ELIGIBILITY_LAPSED and "no longer exists" in ended["message"]
    assert directory.removed == [("g-prod-eng-payments", BOB)]

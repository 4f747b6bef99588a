"""Eligibility that lapses: the pure decision (domain/eligibility.py), the listings one re-check
pass shares between Entitlements (handlers/lapses.py), the audit record of a lapse, and the
check before an activation noticing a disabled account."""

from __future__ import annotations

import copy
import io
import logging
import threading
from collections.abc import Sequence
from typing import Any, cast

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from jitaccess import metrics
from jitaccess.adapters.identitycenter import IdentityCenter, _enabled
from jitaccess.adapters.kube import Kube
from jitaccess.api import audit, names
from jitaccess.cli import objects as o
from jitaccess.cli import views
from jitaccess.cli.kube import ApiError
from jitaccess.cli.session import ClusterFlags, Session
from jitaccess.domain import requests as request_rules
from jitaccess.domain.eligibility import Directory, Holder, Lapse, User, eligible, known, lapse_reason, lapses
from jitaccess.errors import NotFound, PermanentFailure, RetryLater
from jitaccess.handlers import lapses as recheck_handlers
from jitaccess.handlers.eligibility import eligibility_problem
from jitaccess.handlers.lapses import Listings, recheck
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.factories import entitlement, lands, request, selected, team

USERS = {
    "u-bob": User("bob@example.com"),
    "u-alice": User("alice@example.com"),
    "u-carol": User("carol@example.com", enabled=False),
}
GROUPS = ["prod-eligible", "pci-trained"]
DIRECTORY = Directory(
    USERS,
    {
        "prod-eligible": frozenset({"u-bob", "u-alice", "u-carol"}),
        "pci-trained": frozenset({"u-alice", "u-carol"}),
        "no-such-group": None,
    },
)


def test_a_user_in_every_group_has_not_lapsed() -> None:
    assert lapse_reason("alice@example.com", "u-alice", GROUPS, DIRECTORY) is None


def test_a_user_out_of_one_group_lapses_naming_it() -> None:
    why = lapse_reason("bob@example.com", "u-bob", GROUPS, DIRECTORY)
    assert why == request_rules.eligibility_message("bob@example.com", ["pci-trained"])


def test_a_deleted_user_lapses_whatever_the_groups() -> None:
    for groups in (GROUPS, []):
        why = lapse_reason("dave@example.com", "u-dave", groups, DIRECTORY)
        assert why is not None and "no longer exists in Identity Center" in why and "u-dave" in why


def test_a_disabled_user_lapses_even_in_every_group() -> None:
    why = lapse_reason("carol@example.com", "u-carol", GROUPS, DIRECTORY)
    assert why is not None and "disabled" in why


def test_a_group_that_does_not_exist_is_said_to_be_the_catalogs_mistake_not_the_users() -> None:
    """For a waiting request (which cannot be granted): the message blames the Entitlement's spec."""
    why = lapse_reason("alice@example.com", "u-alice", ["no-such-group"], DIRECTORY)
    assert why is not None and "no-such-group" in why and "does not exist in Identity Center" in why
    assert "alice@example.com is not in" not in why


def test_a_running_grant_is_held_only_to_groups_that_exist() -> None:
    """A typo in spec.eligibility.identityCenterGroups ends nobody's grant: `known` leaves it out."""
    held_to = known([*GROUPS, "no-such-group"], DIRECTORY)
    assert held_to == GROUPS
    assert lapse_reason("alice@example.com", "u-alice", held_to, DIRECTORY) is None
    # Another reason still counts: bob is out of a group that exists.
    assert lapse_reason("bob@example.com", "u-bob", held_to, DIRECTORY) == request_rules.eligibility_message(
        "bob@example.com", ["pci-trained"]
    )


def test_users_are_known_by_id_and_a_new_user_with_an_old_name_is_not_the_grantee() -> None:
    # alice's name now belongs to u-alice; a grant made for an earlier alice (u-old) has lapsed.
    assert lapse_reason("alice@example.com", "u-old", GROUPS, DIRECTORY) is not None
    # An object from before UserIds were stamped is found by name.
    assert lapse_reason("alice@example.com", None, GROUPS, DIRECTORY) is None


def test_lapses_of_two_grants_of_one_user_and_none_of_others() -> None:
    holders = [
        Holder("bob-1", "bob@example.com", "u-bob"),
        Holder("alice-1", "alice@example.com", "u-alice"),
        Holder("bob-2", "bob@example.com", "u-bob"),
    ]
    found = lapses(holders, GROUPS, DIRECTORY)
    assert [(lapse.name, lapse.user_id) for lapse in found] == [("bob-1", "u-bob"), ("bob-2", "u-bob")]
    assert all("pci-trained" in lapse.message for lapse in found)


def test_a_lapse_by_name_carries_the_id_found_for_it() -> None:
    (found,) = lapses([Holder("r", "bob@example.com", None)], GROUPS, DIRECTORY)
    assert found == Lapse("r", "bob@example.com", "u-bob", found.message)


def test_eligible_users_are_enabled_members_of_every_group_by_name() -> None:
    assert eligible(GROUPS, DIRECTORY) == [("u-alice", "alice@example.com")]
    assert eligible(["prod-eligible"], DIRECTORY) == [("u-alice", "alice@example.com"), ("u-bob", "bob@example.com")]
    assert eligible([], DIRECTORY) == [], "no group named: everyone is eligible, which is not listed"
    assert eligible(["no-such-group"], DIRECTORY) == []


def test_user_status_is_read_from_identity_center_and_absent_means_enabled() -> None:
    assert _enabled({"UserStatus": "ENABLED"}) and _enabled({})
    assert not _enabled({"UserStatus": "DISABLED"})


class CountingIdentityCenter:
    """Answers listings from dicts and counts the calls a pass makes, by operation."""

    identity_store_id = "d-test"

    def __init__(self, members: dict[str, set[str]], users: dict[str, User]) -> None:
        self.members, self.store = members, users
        self.calls: dict[str, int] = {}

    def _count(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1

    def resolve_group(self, name: str) -> str:
        self._count("GetGroupId")
        if name not in self.members:
            raise NotFound(f"{name}: no such group", operation="GetGroupId", code="ResourceNotFoundException")
        return f"g-{name}"

    def group_members(self, group_id: str) -> dict[str, str]:
        self._count("ListGroupMemberships")
        return {uid: f"m-{uid}" for uid in self.members[group_id.removeprefix("g-")]}

    def users(self) -> dict[str, User]:
        self._count("ListUsers")
        return dict(self.store)

    def resolve_user(self, name: str) -> str:
        self._count("GetUserId")
        return next(uid for uid, u in self.store.items() if u.name == name)

    def missing_groups(self, user_id: str, group_ids: Sequence[str]) -> list[str]:
        self._count("IsMemberInGroups")
        return [g for g in group_ids if user_id not in self.members[g.removeprefix("g-")]]

    def user_enabled(self, user_id: str) -> bool:
        self._count("DescribeUser")
        return self.store[user_id].enabled


@pytest.fixture
def ic() -> CountingIdentityCenter:
    return CountingIdentityCenter(
        {"prod-eligible": {"u-bob", "u-alice", "u-carol"}, "pci-trained": {"u-alice", "u-carol"}}, dict(USERS)
    )


@pytest.fixture
def rt(ic: CountingIdentityCenter) -> Runtime:
    return Runtime(Settings(), cast(IdentityCenter, ic), cast(Kube, None))


def test_one_pass_lists_the_store_once_and_each_group_once_for_all_entitlements(
    rt: Runtime, ic: CountingIdentityCenter
) -> None:
    listings = Listings(max_age=30)
    first = listings.directory(rt, ["prod-eligible"])
    second = listings.directory(rt, ["prod-eligible", "pci-trained"])
    assert ic.calls == {"ListUsers": 1, "GetGroupId": 2, "ListGroupMemberships": 2}
    assert first.members["prod-eligible"] == second.members["prod-eligible"] == frozenset(ic.members["prod-eligible"])


def test_the_users_are_listed_beside_the_groups_members(
    rt: Runtime, ic: CountingIdentityCenter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ListUsers` and `ListGroupMemberships` have a quota each: one listing does not wait for the other."""
    members_listed = threading.Event()
    list_users, list_members = ic.users, ic.group_members

    def users() -> dict[str, User]:
        assert members_listed.wait(5), "the store's users were listed before the groups' members, not beside"
        return list_users()

    def group_members(group_id: str) -> dict[str, str]:
        members_listed.set()
        return list_members(group_id)

    monkeypatch.setattr(ic, "users", users)
    monkeypatch.setattr(ic, "group_members", group_members)
    directory = Listings(max_age=30).directory(rt, ["prod-eligible"])
    assert directory.users == USERS and directory.members["prod-eligible"] == frozenset(ic.members["prod-eligible"])


def test_the_users_listing_failing_fails_the_pass(
    rt: Runtime, ic: CountingIdentityCenter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def users() -> dict[str, User]:
        raise RetryLater("ListUsers: throttled", operation="ListUsers", code="ThrottlingException")

    monkeypatch.setattr(ic, "users", users)
    listings = Listings(max_age=30)
    with pytest.raises(RetryLater, match="ListUsers"):
        listings.directory(rt, ["prod-eligible"])
    monkeypatch.undo()
    assert listings.directory(rt, ["prod-eligible"]).users == USERS  # nothing half-listed was kept


def test_the_next_pass_lists_again(rt: Runtime, ic: CountingIdentityCenter) -> None:
    listings = Listings(max_age=0)
    listings.directory(rt, ["prod-eligible"])
    ic.members["prod-eligible"].discard("u-bob")
    assert "u-bob" not in listings.directory(rt, ["prod-eligible"]).members["prod-eligible"]  # type: ignore[operator]
    assert ic.calls["ListUsers"] == 2 and ic.calls["ListGroupMemberships"] == 2


def test_a_group_deleted_from_identity_center_lists_as_nobody(rt: Runtime, ic: CountingIdentityCenter) -> None:
    assert Listings(max_age=30).directory(rt, ["gone"]).members == {"gone": None}


def _valid(requester: str, user_id: str) -> Any:
    req = request(requester=requester, requester_user_id=user_id)
    ent = entitlement(eligibility={"identityCenterGroups": ["prod-eligible"]})
    return request_rules.validate(req, ent, team(), Settings().limits)


def test_every_check_refuses_a_disabled_account(rt: Runtime, ic: CountingIdentityCenter) -> None:
    """At creation too (attack 128): an auto-approval is granted on that answer."""
    carol = _valid("carol@example.com", "u-carol")
    problem = eligibility_problem(rt, carol)
    assert problem is not None and "disabled" in problem, "at creation"
    problem = eligibility_problem(rt, carol, fresh=True)
    assert problem is not None and "disabled" in problem, "before an activation"
    alice = _valid("alice@example.com", "u-alice")
    assert eligibility_problem(rt, alice) is None
    asked = ic.calls["DescribeUser"]
    assert eligibility_problem(rt, alice) is None, "the few seconds' yes, groups and account alike"
    assert ic.calls["DescribeUser"] == asked
    assert eligibility_problem(rt, alice, fresh=True) is None
    assert ic.calls["DescribeUser"] == asked + 1


def test_a_disabled_requester_is_asked_about_once_within_seconds(rt: Runtime, ic: CountingIdentityCenter) -> None:
    """The "no" is remembered as briefly as a "yes" (attack 94): the webhook's check, the handler's and
    the one before an activation ask once; a "yes" is never taken from it."""
    carol = _valid("carol@example.com", "u-carol")
    for fresh in (False, False, True):
        problem = eligibility_problem(rt, carol, fresh=fresh)
        assert problem is not None and "disabled" in problem
    assert (ic.calls["DescribeUser"], ic.calls["IsMemberInGroups"]) == (1, 1)


def test_a_lapsed_grant_is_a_lapsed_audit_record_ending_when_it_was_ended() -> None:
    stored = {
        "apiVersion": names.API_VERSION,
        "kind": names.ACCESS_GRANT,
        "metadata": {"name": "g1", "uid": "u-g1"},
        "spec": {"user": "bob", "userId": "u-bob", "entitlement": "prod", "groupName": "prod-admins", "request": "g1"},
        "status": {
            "activationTime": "2026-11-23T12:00:00Z",
            "expirationTime": "2026-11-23T13:00:00Z",
            "revocationTime": "2026-11-23T12:20:00Z",
            "conditions": [
                {
                    "type": names.READY,
                    "status": "False",
                    "reason": names.ELIGIBILITY_LAPSED,
                    "message": "ended early, eligibility lapsed: bob is not in ... prod-eligible",
                    "lastTransitionTime": "2026-11-23T12:20:01Z",
                }
            ],
        },
    }
    granted, lapsed = audit.records_of_grant(stored)
    assert granted["action"] == audit.GRANTED and lapsed["action"] == audit.LAPSED
    assert lapsed["id"] == "u-g1/lapsed"
    assert lapsed["actor"] == {"username": audit.OPERATOR}
    assert lapsed["time"] == lapsed["endTime"] == "2026-11-23T12:20:00Z"
    assert "prod-eligible" in lapsed["message"]


class StoredObjects:
    """The little of the plugin's API client that `kubectl jit status` uses: GET by path."""

    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects

    def get(self, path: str, **_: Any) -> dict[str, Any]:
        if path not in self.objects:
            raise ApiError(404, "NotFound", f"{path} not found", {"name": path.rsplit("/", 1)[1]})
        return self.objects[path]


def test_kubectl_jit_status_says_a_lapsed_grant_lapsed_not_that_someone_revoked_it() -> None:
    name = "alice-prod-eng-payments-abcde"
    why = "ended early, eligibility lapsed: alice@example.com is not in the Identity Center group(s) prod-eligible"
    ready = {"type": names.READY, "status": "False", "reason": names.ELIGIBILITY_LAPSED, "message": why}
    request_ = {
        "metadata": {"name": name, "creationTimestamp": "2026-11-23T11:59:00Z"},
        "spec": {"entitlement": "prod-eng-payments", "requester": "alice@example.com", "reason": "INC-1 x"},
        "status": {"grant": name, "conditions": [ready]},
    }
    grant = {
        "metadata": {"name": name},
        "spec": {"user": "alice@example.com", "groupName": "prod-eng-payments"},
        "status": {
            "activationTime": "2026-11-23T12:00:00Z",
            "revocationTime": "2026-11-23T12:20:00Z",
            "conditions": [ready],
        },
    }
    shown = Session(ClusterFlags(), io.StringIO(), io.StringIO(), io.StringIO())
    shown.__dict__["api"] = StoredObjects({o.path(names.REQUESTS, name): request_, o.path(names.GRANTS, name): grant})
    assert views.status(shown, name, output="table") == 0
    text = shown.out.getvalue()  # type: ignore[attr-defined]
    assert "Lapsed:" in text and "Revoked:" not in text
    assert f"{name}: EligibilityLapsed" in text and "prod-eligible" in text


class StoredKube:
    """The Kubernetes adapter's read and status write, on a dict of objects."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {(plural_of(obj), obj["metadata"]["name"]): obj for obj in objects}

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((plural, name))
        return copy.deepcopy(found) if found is not None else None

    def update_status(
        self, plural: str, name: str, change: Any, current: dict[str, Any] | None = None, *, uid: Any = None
    ) -> dict[str, Any] | None:
        obj = self.get(plural, name)
        fields = change(obj) if obj is not None and lands(obj, uid, current) else None
        if obj is None or fields is None:
            return None
        obj["status"] = {**obj.get("status", {}), **fields}
        self.objects[(plural, name)] = obj
        return copy.deepcopy(obj)

    def list(self, plural: str, label_selector: str = "", *, fields: Any = None, **_: Any) -> list[dict[str, Any]]:
        return selected(self.objects, plural, fields)

    def status(self, plural: str, name: str) -> dict[str, Any]:
        return dict(self.objects[(plural, name)].get("status") or {})


def plural_of(obj: dict[str, Any]) -> str:
    return {v: k for k, v in names.KINDS.items()}[obj["kind"]]


def ready_of(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == names.READY)


NOON = "2026-11-23T12:00:00Z"
LAPSING = entitlement(eligibility={"identityCenterGroups": GROUPS})


def active_grant(name: str, user: str, user_id: str, entitlement_name: str = "prod-eng-payments") -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.ACCESS_GRANT,
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": {
            "user": user,
            "userId": user_id,
            "entitlement": entitlement_name,
            "groupName": "prod-eng-payments",
            "request": name,
            "duration": "1h",
        },
        "status": {
            "userId": user_id,
            "groupId": "g-prod-eng-payments",
            "membershipId": f"m-{name}",
            "activationTime": NOON,
            "expirationTime": "2026-11-23T13:00:00Z",
            "conditions": [{"type": names.READY, "status": "True", "reason": names.ACTIVE, "lastTransitionTime": NOON}],
        },
    }


def pending_request(name: str, requester: str, user_id: str) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.ACCESS_REQUEST,
        "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1},
        "spec": {
            "entitlement": "prod-eng-payments",
            "reason": "INC-1 x",
            "requester": requester,
            "requesterUserId": user_id,
        },
        "status": {
            "conditions": [
                {"type": names.READY, "status": "False", "reason": names.PENDING, "lastTransitionTime": NOON}
            ]
        },
    }


class RemovingIdentityCenter(CountingIdentityCenter):
    def __init__(self, members: dict[str, set[str]], users: dict[str, User]) -> None:
        super().__init__(members, users)
        self.removed: list[tuple[str, str]] = []

    def user_enabled(self, user_id: str) -> bool:
        if user_id not in self.store:
            raise NotFound("USER not found.", operation="DescribeUser", code="ResourceNotFoundException")
        return super().user_enabled(user_id)

    def missing_groups(self, user_id: str, group_ids: Sequence[str]) -> list[str]:
        if user_id not in self.store:
            raise NotFound("USER not found.", operation="IsMemberInGroups", code="ResourceNotFoundException")
        return super().missing_groups(user_id, group_ids)

    def remove_member(self, group_id: str, user_id: str, membership_id: str | None = None) -> bool:
        self.removed.append((group_id, user_id))
        return True


@pytest.fixture
def lapsing(monkeypatch: pytest.MonkeyPatch) -> tuple[Runtime, RemovingIdentityCenter, StoredKube]:
    monkeypatch.setattr(kopf, "event", lambda *_, **__: None)  # no operator to post Events through
    ic = RemovingIdentityCenter(
        {"prod-eligible": {"u-bob", "u-alice", "u-carol"}, "pci-trained": {"u-alice", "u-carol"}}, dict(USERS)
    )
    kube = StoredKube(
        active_grant("bob-1", "bob@example.com", "u-bob"),
        active_grant("alice-1", "alice@example.com", "u-alice"),
        active_grant("old-bob", "bob@example.com", "u-bob", "deleted-entitlement"),
        active_grant("old-dave", "dave@example.com", "u-dave", "deleted-entitlement"),
        pending_request("bob-r", "bob@example.com", "u-bob"),
        pending_request("alice-r", "alice@example.com", "u-alice"),
        {"apiVersion": names.API_VERSION, "kind": names.ENTITLEMENT, **LAPSING.wire()},
    )
    rt = Runtime(Settings(), cast(IdentityCenter, ic), cast(Kube, kube))
    for (plural, name), obj in kube.objects.items():
        if plural == names.GRANTS:  # what `indexes` keeps: who holds each (user, group) membership
            rt.holders.observe(name, ((obj["spec"]["userId"], obj["spec"]["groupName"]), name))
    return rt, ic, kube


def holder(name: str, user: str, user_id: str) -> Holder:
    """As the watch files it: with the stored object's uid (`pending_request`, `active_grant`)."""
    return Holder(name, user, user_id, uid=f"uid-{name}")


def test_a_pass_ends_lapsed_grants_refuses_lapsed_requests_and_lists_the_eligible(
    lapsing: tuple[Runtime, RemovingIdentityCenter, StoredKube],
) -> None:
    rt, ic, kube = lapsing
    grants = [holder("bob-1", "bob@example.com", "u-bob"), holder("alice-1", "alice@example.com", "u-alice")]
    # Grants of a deleted Entitlement: their groups are unknown, so only a user gone or disabled lapses.
    orphans = [holder("old-bob", "bob@example.com", "u-bob"), holder("old-dave", "dave@example.com", "u-dave")]
    waiting = [holder("bob-r", "bob@example.com", "u-bob"), holder("alice-r", "alice@example.com", "u-alice")]
    recheck(rt, LAPSING, DIRECTORY, grants, orphans, waiting)

    ended = kube.status(names.GRANTS, "bob-1")
    assert ready_of(ended)["reason"] == names.ELIGIBILITY_LAPSED and ended["revocationTime"]
    assert "eligibility lapsed" in ready_of(ended)["message"] and "pci-trained" in ready_of(ended)["message"]
    assert "no longer exists" in ready_of(kube.status(names.GRANTS, "old-dave"))["message"]
    for kept in ("alice-1", "old-bob"):
        assert ready_of(kube.status(names.GRANTS, kept))["reason"] == names.ACTIVE, kept
    # old-bob, still Active, holds bob's membership too: only dave's is removed.
    assert ic.removed == [("g-prod-eng-payments", "u-dave")]
    refused = ready_of(kube.status(names.REQUESTS, "bob-r"))
    assert refused["reason"] == names.NOT_ELIGIBLE and "pci-trained" in refused["message"]
    assert ready_of(kube.status(names.REQUESTS, "alice-r"))["reason"] == names.PENDING
    published = kube.status(names.ENTITLEMENTS, LAPSING.metadata.name)
    assert published["eligibleUsers"] == [{"userId": "u-alice", "username": "alice@example.com"}]
    assert published["eligibleUserCount"] == 1


@pytest.mark.parametrize(
    "successor",
    [
        pending_request("bob-r", "carol@example.com", "u-carol"),  # another's, under the name
        {**pending_request("bob-r", "bob@example.com", "u-bob2"), "metadata": {"name": "bob-r", "uid": "x"}},
        {
            **pending_request("bob-r", "bob@example.com", "u-bob"),
            "spec": {"entitlement": "prod-eng-ledger", "reason": "INC-1 x", "requester": "bob@example.com"},
        },
        # bob's own, asked again: another object, whose lapse (if any) is its own pass's to find.
        {**pending_request("bob-r", "bob@example.com", "u-bob"), "metadata": {"name": "bob-r", "uid": "y"}},
    ],
    ids=["another-user", "another-person-same-name", "another-entitlement", "the-same-asked-again"],
)
def test_a_lapse_refuses_only_the_request_it_was_found_on_not_one_created_since_under_its_name(
    lapsing: tuple[Runtime, RemovingIdentityCenter, StoredKube], successor: dict[str, Any]
) -> None:
    """bob's pending request lapsed in the listing; meanwhile withdrawn and created again under its
    name by someone else, by another person now called bob, for another Entitlement, or by bob
    himself: the refusal (it carries the uid of the request found) leaves that request as it is."""
    rt, _, kube = lapsing
    kube.objects[(names.REQUESTS, "bob-r")] = successor
    recheck(rt, LAPSING, DIRECTORY, [], [], [holder("bob-r", "bob@example.com", "u-bob")])
    assert ready_of(kube.status(names.REQUESTS, "bob-r"))["reason"] == names.PENDING


def test_a_lapse_ends_only_the_grant_it_was_found_on_not_one_stored_since_under_its_name(
    lapsing: tuple[Runtime, RemovingIdentityCenter, StoredKube],
) -> None:
    """bob's grant lapsed in the listing; meanwhile deleted and carol's stored under its name (its
    request's name taken again): the end (it carries the uid of the grant found) leaves carol's
    grant Active and her membership in place."""
    rt, ic, kube = lapsing
    carols = active_grant("bob-1", "carol@example.com", "u-carol")
    kube.objects[(names.GRANTS, "bob-1")] = {**carols, "metadata": {"name": "bob-1", "uid": "uid-carols"}}
    recheck(rt, LAPSING, DIRECTORY, [holder("bob-1", "bob@example.com", "u-bob")], [], [])
    assert ready_of(kube.status(names.GRANTS, "bob-1"))["reason"] == names.ACTIVE
    assert ic.removed == []


def test_a_stale_listing_is_confirmed_with_identity_center_before_anything_ends(
    lapsing: tuple[Runtime, RemovingIdentityCenter, StoredKube],
) -> None:
    rt, ic, kube = lapsing
    # The listing predates alice's joining pci-trained, which Identity Center now confirms.
    stale = Directory(USERS, {"prod-eligible": frozenset({"u-alice"}), "pci-trained": frozenset()})
    grants = [holder("alice-1", "alice@example.com", "u-alice")]
    recheck(rt, LAPSING, stale, grants, [], [holder("alice-r", "alice@example.com", "u-alice")])
    assert ready_of(kube.status(names.GRANTS, "alice-1"))["reason"] == names.ACTIVE
    assert ready_of(kube.status(names.REQUESTS, "alice-r"))["reason"] == names.PENDING
    assert ic.removed == [] and ic.calls["IsMemberInGroups"] == 2


def test_a_lapse_identity_center_refuses_to_end_is_logged_and_the_others_of_the_pass_go_on(
    lapsing: tuple[Runtime, RemovingIdentityCenter, StoredKube],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rt, ic, kube = lapsing
    erin = active_grant("old-erin", "erin@example.com", "u-erin", "deleted-entitlement")
    kube.objects[(names.GRANTS, "old-erin")] = erin
    rt.holders.observe("old-erin", (("u-erin", "prod-eng-payments"), "old-erin"))
    removed = ic.remove_member

    def refusing(group_id: str, user_id: str, membership_id: str | None = None) -> bool:
        if user_id == "u-dave":  # an IAM policy that denies this one removal, say
            raise PermanentFailure("DeleteGroupMembership: AccessDeniedException: denied", code="AccessDeniedException")
        return removed(group_id, user_id, membership_id)

    monkeypatch.setattr(ic, "remove_member", refusing)
    grants = [holder("bob-1", "bob@example.com", "u-bob")]
    orphans = [holder("old-dave", "dave@example.com", "u-dave"), holder("old-erin", "erin@example.com", "u-erin")]
    failures = metrics.ELIGIBILITY_RECHECK_FAILURES.labels("lapse", "refused")
    before = failures._value.get()
    with caplog.at_level("INFO", logger="jitaccess.handlers.lapses"):
        recheck(rt, LAPSING, DIRECTORY, grants, orphans, [holder("bob-r", "bob@example.com", "u-bob")])
    assert failures._value.get() == before + 1, "JitaccessEligibilityRecheckFailing counts it"
    # dave's grant stays Active for the next pass; erin's, after it, ends; the rest of the pass goes on.
    assert ready_of(kube.status(names.GRANTS, "old-dave"))["reason"] == names.ACTIVE
    assert ready_of(kube.status(names.GRANTS, "old-erin"))["reason"] == names.ELIGIBILITY_LAPSED
    assert ready_of(kube.status(names.GRANTS, "bob-1"))["reason"] == names.ELIGIBILITY_LAPSED
    assert ready_of(kube.status(names.REQUESTS, "bob-r"))["reason"] == names.NOT_ELIGIBLE
    assert kube.status(names.ENTITLEMENTS, LAPSING.metadata.name)["eligibleUserCount"] == 1
    assert ic.removed == [("g-prod-eng-payments", "u-erin")]
    refused = [r for r in caplog.records if "refused to end it" in r.getMessage()]
    assert [r.levelname for r in refused] == ["ERROR"] and "old-dave" in refused[0].getMessage()


def test_a_pass_identity_center_refuses_is_counted_apart_from_one_it_does_not_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An Entitlement's pass stopped at its listing (the operator's role lacking ListUsers, say):
    leavers keep their grants for as long as it lasts, which its own counter and alert say
    (`JitaccessEligibilityRecheckFailing`), beside the handler errors."""
    refused, unanswered = (metrics.ELIGIBILITY_RECHECK_FAILURES.labels("listing", o) for o in ("refused", "unanswered"))
    errors = metrics.ERRORS.labels("handler")

    def counts() -> tuple[float, float, float]:
        return refused._value.get(), unanswered._value.get(), errors._value.get()

    before = counts()
    with caplog.at_level("INFO", logger="jitaccess.handlers.lapses"):
        with recheck_handlers._until_next_pass("prod", "", "a listing", "no lapse is seen", logging.INFO, "listing"):
            raise RetryLater("ListUsers: ThrottlingException", operation="ListUsers")
        assert counts() == (before[0], before[1] + 1, before[2])
        with recheck_handlers._until_next_pass("prod", "", "a listing", "no lapse is seen", logging.INFO, "listing"):
            raise PermanentFailure("ListUsers: AccessDeniedException", operation="ListUsers")
    assert counts() == (before[0] + 1, before[1] + 1, before[2] + 1)
    assert [r.levelname for r in caplog.records] == ["INFO", "ERROR"]


def test_a_lapse_the_api_server_fails_is_logged_and_the_others_of_the_pass_go_on(
    lapsing: tuple[Runtime, RemovingIdentityCenter, StoredKube],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 503 (or a 429, a timeout) reading one lapsed grant costs that grant a pass, not the others:
    each lapse is acted on in a try of its own, whatever fails in it."""
    rt, _, kube = lapsing
    read = kube.get

    def failing(plural: str, name: str) -> dict[str, Any] | None:
        if (plural, name) == (names.GRANTS, "old-dave"):
            raise ApiException(status=503, reason="Service Unavailable")
        return read(plural, name)

    monkeypatch.setattr(kube, "get", failing)
    grants = [holder("bob-1", "bob@example.com", "u-bob")]
    orphans = [holder("old-dave", "dave@example.com", "u-dave")]
    with caplog.at_level("INFO", logger="jitaccess.handlers.lapses"):
        recheck(rt, LAPSING, DIRECTORY, grants, orphans, [holder("bob-r", "bob@example.com", "u-bob")])
    # dave's grant stays Active for the next pass; the rest of the pass goes on.
    assert ready_of(kube.status(names.GRANTS, "old-dave"))["reason"] == names.ACTIVE
    assert ready_of(kube.status(names.GRANTS, "bob-1"))["reason"] == names.ELIGIBILITY_LAPSED
    assert ready_of(kube.status(names.REQUESTS, "bob-r"))["reason"] == names.NOT_ELIGIBLE
    assert kube.status(names.ENTITLEMENTS, LAPSING.metadata.name)["eligibleUserCount"] == 1
    failed = [r for r in caplog.records if "old-dave" in r.getMessage() and "failed" in r.getMessage()]
    assert [r.levelname for r in failed] == ["WARNING"] and "Service Unavailable" in failed[0].getMessage()

"""Drift removals listed before they are made (`handlers.catalog`): what settles an entry left
unconfirmed, and what keeps a record from being written twice or for a removal that was a grant's.

The cluster and Identity Center here are small stand-ins holding the few facts these rules read;
the end-to-end tier kills a real operator in the middle of a removal (tests/e2e/test_drift.py)."""

from __future__ import annotations

import contextlib
import contextvars
import copy
import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.adapters.ssoadmin import Request
from jitaccess.api import audit, names
from jitaccess.api.models import Entitlement, TierStatus
from jitaccess.domain.grants import membership_key
from jitaccess.errors import NotFound
from jitaccess.handlers import catalog, permissionsets
from jitaccess.handlers.recording import DEFERRED, Deferred
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit import test_audit_trail as audit_trail
from tests.unit import test_permissions

GROUP, GROUP_ID = "prod-payments-admins", "gid-1"


class Cluster(audit_trail.Cluster):
    """Entitlements by name, read and status-written."""

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((plural, name))
        return copy.deepcopy(found) if found is not None else None


class Store:
    """The group's memberships (membership id -> user id); the delete can be made to find it gone."""

    def __init__(self, **members: str) -> None:
        self.members = dict(members)
        self.group_exists = True
        self.deleted: list[str] = []

    def group_members(self, group_id: str) -> dict[str, str]:
        return {user: membership for membership, user in self.members.items()}

    def find_membership(self, group_id: str, user_id: str) -> str | None:
        if not self.group_exists:
            raise NotFound(f"group {group_id}")
        return next((m for m, u in self.members.items() if u == user_id), None)

    def remove_member(self, group_id: str, user_id: str, membership_id: str | None = None) -> bool:
        self.deleted.append(str(membership_id))
        return self.members.pop(str(membership_id), None) is not None

    def user_name(self, user_id: str) -> str:
        return f"{user_id}@example.com"


@pytest.fixture(autouse=True)
def events() -> Iterator[Deferred]:
    # No kopf watch here to post Events from: they wait, as before a watch has begun.
    deferred = Deferred()
    token = DEFERRED.set(deferred)
    yield deferred
    DEFERRED.reset(token)


def setup(store: Store, *removals: dict[str, Any]) -> tuple[Cluster, Runtime]:
    cluster = Cluster()
    cluster.add(
        names.ENTITLEMENTS,
        {
            "kind": names.ENTITLEMENT,
            "metadata": {"name": "prod-payments", "uid": "u-e1"},
            "spec": {"owner": "payments", "identityCenter": {"groupName": GROUP}},
            "status": {"groupId": GROUP_ID, "driftRemovals": list(removals)},
        },
    )
    return cluster, Runtime(Settings(), cast(IdentityCenter, store), cast(Kube, cluster))


def begun(membership_id: str, user_id: str, **more: Any) -> dict[str, Any]:
    return {"membershipId": membership_id, "userId": user_id, "user": f"{user_id}@example.com",
            "groupId": GROUP_ID, "groupName": GROUP, "firstSeen": "2026-12-01T10:00:00Z", **more}  # fmt: skip


def active_grant(name: str, user_id: str) -> dict[str, Any]:
    """An Active grant of `user_id` in the group, as stored."""
    return {
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": {
            "user": f"{user_id}@example.com",
            "userId": user_id,
            "groupName": GROUP,
            "entitlement": "prod-payments",
        },
        "status": {"groupId": GROUP_ID, "conditions": [{"type": "Ready", "status": "True", "reason": "Active"}]},
    }


def stored(cluster: Cluster) -> dict[str, Any]:
    return cluster.objects[(names.ENTITLEMENTS, "prod-payments")]


def entitlement(cluster: Cluster) -> Entitlement:
    return Entitlement.model_validate(copy.deepcopy(stored(cluster)))


def removals(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {r["membershipId"]: r for r in stored(cluster)["status"]["driftRemovals"]}


def scan(cluster: Cluster, rt: Runtime, body: Entitlement | None = None, holders: Any = None) -> None:
    catalog._scan_drift(rt, body or entitlement(cluster), GROUP, GROUP_ID, holders or {})


def test_a_removal_is_listed_before_it_is_made_and_confirmed_after(events: Deferred) -> None:
    store = Store(**{"m-1": "eve"})
    listed_first: list[dict[str, Any]] = []
    remove = store.remove_member

    def watched(group_id: str, user_id: str, membership_id: str | None = None) -> bool:
        listed_first.append(copy.deepcopy(removals(cluster)))
        return remove(group_id, user_id, membership_id)

    cluster, rt = setup(store)
    store.remove_member = watched  # type: ignore[method-assign]
    scan(cluster, rt)
    assert [set(r) for r in listed_first] == [{"m-1"}] and "time" not in listed_first[0]["m-1"]
    confirmed = removals(cluster)["m-1"]
    assert confirmed["message"] == f"eve@example.com was in Identity Center group {GROUP} with no active grant: removed"
    assert [r["id"] for r in audit.records_of(stored(cluster))] == ["u-e1/drift-removed/m-1"]
    assert len(events) == 1


def test_entries_a_killed_operator_left_are_made_confirmed_or_taken_back(events: Deferred) -> None:
    # m-1: still there, unbacked (made now); m-2: gone meanwhile (confirmed); m-3: backed now (taken back).
    store = Store(**{"m-1": "eve", "m-3": "alice"})
    cluster, rt = setup(store, begun("m-1", "eve"), begun("m-2", "bob"), begun("m-3", "alice"))
    cluster.add(names.GRANTS, active_grant("g-alice", "alice"))
    scan(cluster, rt, holders={membership_key("alice", GROUP): ["g-alice"]})
    left = removals(cluster)
    assert sorted(left) == ["m-1", "m-2"] and store.members == {"m-3": "alice"}
    assert left["m-1"]["message"].endswith("with no active grant: removed")
    assert left["m-1"]["firstSeen"] == "2026-12-01T10:00:00Z", "the entry's own, not this pass's"
    assert "was begun and not confirmed" in left["m-2"]["message"] and left["m-2"]["time"]
    assert len(events) == 2


def test_a_stale_body_never_records_a_settled_removal_again(events: Deferred) -> None:
    store = Store()
    cluster, rt = setup(store, begun("m-1", "eve"))
    stale = entitlement(cluster)  # shows m-1 unconfirmed
    scan(cluster, rt)  # m-1 is gone: confirmed, then archived and dropped from the status
    assert removals(cluster)["m-1"]["time"] and len(events) == 1
    stored(cluster)["status"]["driftRemovals"] = []
    scan(cluster, rt, body=stale)
    assert removals(cluster) == {} and len(events) == 1


def test_a_member_found_gone_by_the_delete_is_a_grants_end_or_our_removal(events: Deferred) -> None:
    key = membership_key("eve", GROUP_ID)  # as grants key their memberships: by the group's id
    for ended_here in (True, False):
        store = Store(**{"m-1": "eve"})
        cluster, rt = setup(store)
        if ended_here:
            rt.mark_ended("g-eve", key)
        store.members.clear()  # the listing saw it; the delete finds it gone
        store.group_members = lambda group_id: {"eve": "m-1"}  # type: ignore[method-assign]
        scan(cluster, rt)
        if ended_here:
            assert removals(cluster) == {}, "a grant's expiry took it out: no drift"
        else:
            assert "removed (an earlier attempt had taken it out" in removals(cluster)["m-1"]["message"]
    assert len(events) == 1


def test_without_a_scan_an_entry_is_confirmed_when_gone_and_taken_back_when_not(events: Deferred) -> None:
    store = Store(**{"m-1": "eve"})
    cluster, rt = setup(store, begun("m-1", "eve"), begun("m-2", "bob"))
    catalog._settle_unscanned(rt, entitlement(cluster))
    assert sorted(removals(cluster)) == ["m-2"] and removals(cluster)["m-2"]["time"]
    assert store.members == {"m-1": "eve"}, "nothing is removed when no scan runs"
    store.group_exists = False
    cluster, rt = setup(store, begun("m-1", "eve"))
    catalog._settle_unscanned(rt, entitlement(cluster))
    assert removals(cluster)["m-1"]["time"], "a group gone has nobody in it"
    assert len(events) == 2


def test_no_member_is_removed_for_an_entitlement_applied_again_during_the_scan(events: Deferred) -> None:
    # The scan read the Entitlement (u-e1); it was deleted and applied again (u-e2) before the
    # removal was listed: a removal made now would have no entry to record it on.
    store = Store(**{"m-1": "eve"})
    cluster, rt = setup(store)
    scanned = entitlement(cluster)
    stored(cluster)["metadata"]["uid"] = "u-e2"
    scan(cluster, rt, body=scanned)
    assert store.members == {"m-1": "eve"} and store.deleted == []
    assert removals(cluster) == {} and len(events) == 0
    scan(cluster, rt)  # the new Entitlement's own scan lists, removes and records it
    assert store.members == {} and removals(cluster)["m-1"]["time"] and len(events) == 1


def test_an_assignment_is_not_removed_for_a_catalog_applied_again_during_the_pass() -> None:
    arn = "arn:aws:sso:::permissionSet/ssoins-1/ps-0a1b2c"
    key = (arn, "444455556666", "GROUP", "gid-hand-made")
    spec = cast(Any, type("Spec", (), {"name": "jit-payments-prod"}))
    cluster, rt = setup(Store())
    applied = copy.deepcopy(test_permissions.EXAMPLES[0])
    applied["metadata"] = {"name": "payments", "uid": "c-2"}
    cluster.add(names.CATALOGS, applied)
    old = permissionsets._Drift(rt, "payments", "c-1", "2026-12-01T10:00:00Z")
    assert old.begin(spec, key, wanted=True) is None and old.begun == {}
    assert "status" not in cluster.objects[(names.CATALOGS, "payments")]
    new = permissionsets._Drift(rt, "payments", "c-2", "2026-12-01T10:00:00Z")
    assert new.begin(spec, key, wanted=True) == (
        "jit-payments-prod: group gid-hand-made was assigned in 444455556666 outside jitaccess: removed"
    )
    # Listed meanwhile by another pass of the same catalog: listed all the same, and made.
    again = permissionsets._Drift(rt, "payments", "c-2", "2026-12-01T10:05:00Z")
    assert again.begin(spec, key, wanted=True) is not None and list(again.begun) == [key]
    assert len(cluster.objects[(names.CATALOGS, "payments")]["status"]["driftRemovals"]) == 1


class Assignments:
    """One permission set's assignments by account, as SSO Admin lists them; what was asked of it."""

    def __init__(self, **accounts: list[tuple[str, str]]) -> None:
        self.accounts = accounts
        self.asked: list[tuple[str, str, str]] = []

    def assignments(self, arn: str, account: str) -> list[tuple[str, str]]:
        return list(self.accounts.get(account, []))

    def assigned_accounts(self, arn: str) -> list[str]:
        return sorted(self.accounts)

    def assign(self, arn: str, account: str, principal: str) -> Any:
        self.asked.append(("assign", account, principal))
        return Request("create", f"r-{len(self.asked)}", "IN_PROGRESS")

    def unassign(self, arn: str, account: str, principal: str, principal_type: str) -> Any:
        self.asked.append(("unassign", account, principal))
        return Request("delete", f"r-{len(self.asked)}", "IN_PROGRESS")


def test_a_pass_of_a_catalog_applied_again_since_makes_no_drift_removal() -> None:
    # A hand-made group assignment in a wanted account (111) and in one the catalog no longer
    # lists (222): drift, each removed only once listed on the catalog the pass read.
    arn = "arn:aws:sso:::permissionSet/ssoins-1/ps-0a1b2c"
    spec = cast(Any, type("Spec", (), {"name": "jit-payments-prod", "group_name": "tier", "accounts": ["111"]}))
    cluster, rt = setup(Store())
    applied = copy.deepcopy(test_permissions.EXAMPLES[0])
    applied["metadata"] = {"name": "payments", "uid": "c-2"}
    cluster.add(names.CATALOGS, applied)
    for uid, unassigned in (("c-1", []), ("c-2", [("unassign", "111", "gid-hand"), ("unassign", "222", "gid-hand")])):
        sso = Assignments(**{"111": [("GROUP", "gid-tier"), ("GROUP", "gid-hand")], "222": [("GROUP", "gid-hand")]})
        drift = permissionsets._Drift(rt, "payments", uid, "2026-12-01T10:00:00Z")
        done = permissionsets._Pass()
        removals: dict[str, Any] = {}
        permissionsets._assignments(
            cast(Any, sso),
            spec,
            arn,
            "gid-tier",
            TierStatus(),
            done,
            lambda _: False,
            drift,
            lambda _: False,
            removals=removals,
        )
        assert [a for a in sso.asked if a[0] == "unassign"] == unassigned, uid
        # Each to be said once made (`_sync_tier`), not before.
        assert len(removals) == len(unassigned) and not done.drift, uid


def test_two_entitlements_scanning_one_group_record_one_removal(events: Deferred) -> None:
    # A rename: prod-payments and prod-payments-v2 both name the group, and their scans run at once.
    store = Store(**{"m-1": "eve"})
    cluster, rt = setup(store)
    renamed = copy.deepcopy(stored(cluster))
    renamed["metadata"] = {"name": "prod-payments-v2", "uid": "u-e2"}
    cluster.add(names.ENTITLEMENTS, renamed)
    both = threading.Barrier(2, timeout=1)
    listing = store.group_members

    def group_members(group_id: str) -> dict[str, str]:
        # Each scan goes on with its listing once the other has listed too, if it can.
        members = listing(group_id)
        with contextlib.suppress(threading.BrokenBarrierError):
            both.wait()
        return members

    store.group_members = group_members  # type: ignore[method-assign]
    bodies = [Entitlement.model_validate(copy.deepcopy(obj)) for obj in (stored(cluster), renamed)]
    # In the test's context, where Events wait (`events`), as the handlers' threads run in kopf's.
    scans = [threading.Thread(target=contextvars.copy_context().run, args=(scan, cluster, rt, body)) for body in bodies]
    for thread in scans:
        thread.start()
    for thread in scans:
        thread.join()
    assert store.members == {}
    recorded = [
        removal
        for name in ("prod-payments", "prod-payments-v2")
        for removal in cluster.objects[(names.ENTITLEMENTS, name)]["status"]["driftRemovals"]
    ]
    assert len(recorded) == 1 and recorded[0]["message"].endswith("with no active grant: removed")
    assert len(events) == 1


def handed_to(cluster: Cluster, team: str) -> None:
    """A GitOps hand-over of the Entitlement to another team (its spec as stored now)."""
    stored(cluster)["spec"]["owner"] = team


def test_a_removal_archived_after_a_hand_over_names_the_owner_at_the_removal(events: Deferred) -> None:
    """Removed while payments owned the Entitlement; its record waits in the status (S3 down) while
    the Entitlement is handed to ledger: archived later, it names payments (docs/audit.md)."""
    store = Store(**{"m-1": "eve"})
    cluster, rt = setup(store)
    scan(cluster, rt)
    assert removals(cluster)["m-1"]["ownerTeam"] == "payments"
    handed_to(cluster, "ledger")
    (record,) = audit.records_of(stored(cluster))
    assert record["ownerTeam"] == "payments"


def test_a_removal_left_unconfirmed_keeps_the_owner_it_was_listed_under(events: Deferred) -> None:
    """An operator stopped between listing and confirming (payments then); the Entitlement is handed to
    ledger; the scan or the settling of a restarted operator confirms it under payments. An entry listed
    by a version before the field is the owner's at its confirmation."""
    for settle in (scan, lambda cluster, rt: catalog._settle_unscanned(rt, entitlement(cluster))):
        store = Store()  # gone by the time it is looked at again
        cluster, rt = setup(store, begun("m-1", "eve", ownerTeam="payments"), begun("m-2", "bob"))
        handed_to(cluster, "ledger")
        settle(cluster, rt)
        owners = {r["id"].split("/")[-1]: r["ownerTeam"] for r in audit.records_of(stored(cluster))}
        assert owners == {"m-1": "payments", "m-2": "ledger"}

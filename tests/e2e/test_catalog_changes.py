"""Catalog changes from Git while access runs: the drift scan keeps every group that holds access clear.

A GitOps change to an Entitlement (its owner team deleted or misspelled, its group changed or
misspelled) must not leave a group that still holds a running grant unwatched: whoever adds
themselves to it by hand is removed as before (rule 1 of the API), and when a group stops being
scanned, the Entitlement says so (`ScanStopped`).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest

from devenv.controlplane import KubectlError
from tests.support.harness import Jit, entitlement, eventually

ALICE, BOB, PAULA = "alice@example.com", "bob@example.com", "paula@example.com"
REVOKED = "jitaccess.dev/revoked"


def _team(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "TeamOwnership",
        "metadata": {"name": name},
        "spec": {"members": [ALICE], "approvers": [PAULA]},
    }


def _group(system: Jit, name: str) -> str:
    try:
        system.ic.create_group(name)
    except Exception:  # made by an earlier test of the session
        system.ic.empty_group(name)
    return name


def _removed(system: Jit, group: str, who: str) -> None:
    """`who`, added by hand, is taken out within a few drift passes (RESYNC 5 s in the suite)."""
    system.ic.add_member(group, who)
    eventually(lambda: who not in system.members(group) or None, timeout=30, what=f"{who} removed from {group}")


def test_a_missing_owner_team_stops_requests_not_the_drift_scan(system: Jit) -> None:
    group = _group(system, "cc-owner-gone")
    system.apply(_team("cc-team"))
    system.apply(entitlement("cc-orphan", group, "cc-team"))
    system.wait_reason("entitlement", "cc-orphan", "Resolved", timeout=30)
    try:
        system.kubectl("delete", "teamownership", "cc-team")
        ready = system.wait_reason("entitlement", "cc-orphan", "OwnerNotFound", timeout=30)
        message = next(c for c in ready["status"]["conditions"] if c["type"] == "Ready")["message"]
        assert "add its TeamOwnership" in message and "still kept clear" in message
        _removed(system, group, BOB)
        drift = [e["message"] for e in system.events("cc-orphan", "Entitlement") if e["reason"] == "DriftFound"]
        assert any(BOB in m and group in m for m in drift), drift
    finally:
        system.kubectl("delete", "entitlement", "cc-orphan", "--ignore-not-found", "--timeout=60s")
        system.kubectl("delete", "teamownership", "cc-team", "--ignore-not-found")
        system.ic.empty_group(group)


@pytest.mark.parametrize("moved_to", ["cc-move-2", "cc-move-typo"])
def test_a_group_changed_under_a_running_grant_is_scanned_until_the_grant_ends(system: Jit, moved_to: str) -> None:
    """The Entitlement's group changed to another group, or to one that does not exist (GroupNotFound):
    the old group, where its grant still runs, is scanned until the grant ends, then said given up."""
    # Names of their own per case: a grant's name is remembered a while after it ends.
    named, grant = f"{moved_to}-e", f"{moved_to}-a"
    old = _group(system, "cc-move-1")
    if moved_to != "cc-move-typo":
        _group(system, moved_to)
    system.apply(entitlement(named, old))
    system.wait_reason("entitlement", named, "Resolved", timeout=30)
    try:
        system.request(grant, named, user=ALICE, duration="1h")
        system.wait_reason("accessgrant", grant, "Active")

        system.apply(entitlement(named, moved_to))
        eventually(
            lambda: moved_to in (system.condition("entitlement", named, "Ready") or {}).get("message", "") or None,
            timeout=30,
            what=f"the Entitlement checked with {moved_to}",
        )
        # The grant still holds access in the old group: someone adding themselves there is removed.
        _removed(system, old, BOB)
        assert ALICE in system.members(old)
        assert not [e for e in system.events(named, "Entitlement") if e["reason"] == "ScanStopped"]

        # The grant ends: the old group holds nothing of this Entitlement's any more, and that is said.
        system.kubectl("annotate", "accessgrant", grant, f"{REVOKED}=true", user=ALICE)
        system.wait_reason("accessgrant", grant, "Revoked")

        def stopped() -> list[dict[str, Any]] | None:
            found = [e for e in system.events(named, "Entitlement") if e["reason"] == "ScanStopped"]
            return found or None

        events = eventually(stopped, timeout=30, what="the ScanStopped Event")
        assert events[0]["type"] == "Warning"
        assert old in events[0]["message"] and "no active grant of it is in that group" in events[0]["message"]
        # And it is not scanned any more: a member added now stays (nobody of jitaccess watches it).
        system.ic.add_member(old, BOB)
        time.sleep(12)
        assert BOB in system.members(old)
    finally:
        system.clean()
        system.kubectl("delete", "entitlement", named, "--ignore-not-found", "--timeout=60s")
        for group in (old, "cc-move-2"):
            with contextlib.suppress(Exception):  # not made by this case
                system.ic.empty_group(group)


def test_an_eligibility_group_that_does_not_exist_is_not_ready(system: Jit) -> None:
    group = _group(system, "cc-elig")
    spec = entitlement("cc-elig", group)
    spec["spec"]["eligibility"]["identityCenterGroups"] = ["prod-eligible", "prod-eligble"]
    system.apply(spec)
    try:
        ready = system.wait_reason("entitlement", "cc-elig", "EligibilityGroupNotFound", timeout=30)
        message = next(c for c in ready["status"]["conditions"] if c["type"] == "Ready")["message"]
        assert "spec.eligibility.identityCenterGroups" in message and "'prod-eligble'" in message
        assert "fix the name or create the group" in message
        refused = system.request("cc-elig-a", "cc-elig", user=ALICE, check=False)
        assert refused.returncode != 0 and "prod-eligble" in refused.stderr
        # Fixed in Git: Ready again.
        system.apply(entitlement("cc-elig", group))
        system.wait_reason("entitlement", "cc-elig", "Resolved", timeout=30)
    finally:
        system.clean()
        system.kubectl("delete", "entitlement", "cc-elig", "--ignore-not-found", "--timeout=60s")


def test_an_on_call_group_that_does_not_exist_is_not_ready(system: Jit) -> None:
    """Nobody is on call in a group that does not exist: said, not left to an on-call engineer waiting."""
    group = _group(system, "cc-oncall")
    spec = entitlement("cc-oncall", group)
    spec["spec"]["approval"] = {"autoApproveIdentityCenterGroups": ["payments-oncal"]}
    system.apply(spec)
    try:
        ready = system.wait_reason("entitlement", "cc-oncall", "OnCallGroupNotFound", timeout=30)
        condition = next(c for c in ready["status"]["conditions"] if c["type"] == "Ready")
        assert condition["status"] == "False", condition
        message = condition["message"]
        assert "spec.approval.autoApproveIdentityCenterGroups names 'payments-oncal'" in message, message
        assert "fix the name or create the group" in message and "wait for the owner team's approvers" in message
        # Fixed in Git: Ready again.
        spec["spec"]["approval"] = {"autoApproveIdentityCenterGroups": ["payments-oncall"]}
        system.apply(spec)
        system.wait_reason("entitlement", "cc-oncall", "Resolved", timeout=30)
    finally:
        system.clean()
        system.kubectl("delete", "entitlement", "cc-oncall", "--ignore-not-found", "--timeout=60s")


def test_an_eligibility_typo_ends_no_running_grant(jit: Jit, tmp_path: Any) -> None:
    from devenv.operator_process import OperatorProcess
    from tests.support.harness import OPERATOR_ENV

    jit.operator.stop()
    env = {**OPERATOR_ENV, "JITACCESS_ELIGIBILITY_RECHECK_SECONDS": "2"}
    operator = OperatorProcess(jit.cluster.admin_kubeconfig, jit.ic.env(), tmp_path / "operator.log", extra_env=env)
    group = _group(jit, "cc-elig-typo")
    try:
        operator.start()
        system = Jit(jit.cluster, jit.ic, operator)
        system.apply(entitlement("cc-elig-typo", group))
        system.wait_reason("entitlement", "cc-elig-typo", "Resolved", timeout=30)
        system.request("cc-elig-typo-a", "cc-elig-typo", user=ALICE, duration="1h")
        system.wait_reason("accessgrant", "cc-elig-typo-a", "Active")
        typo = entitlement("cc-elig-typo", group)
        typo["spec"]["eligibility"]["identityCenterGroups"] = ["prod-eligible", "prod-eligble"]
        system.apply(typo)
        system.wait_reason("entitlement", "cc-elig-typo", "EligibilityGroupNotFound", timeout=30)
        time.sleep(8)  # four re-check passes
        assert system.ready_reason("accessgrant", "cc-elig-typo-a") == "Active"
        assert ALICE in system.members(group)
        # A real lapse still counts: alice out of a group that exists ends the grant, naming that group.
        client, store = jit.ic.client(), jit.ic.identity_store_id
        member = {"UserId": jit.ic.user_id(ALICE)}
        found = client.get_group_membership_id(
            IdentityStoreId=store, GroupId=jit.ic.group_id("prod-eligible"), MemberId=member
        )
        client.delete_group_membership(IdentityStoreId=store, MembershipId=found["MembershipId"])
        try:
            lapsed = system.wait_reason("accessgrant", "cc-elig-typo-a", "EligibilityLapsed", timeout=30)
        finally:
            jit.ic.add_member("prod-eligible", ALICE)
        message = next(c for c in lapsed["status"]["conditions"] if c["type"] == "Ready")["message"]
        assert "prod-eligible" in message and "prod-eligble" not in message
    finally:
        operator.stop()
        jit.operator.start()
        jit.clean()
        jit.kubectl("delete", "entitlement", "cc-elig-typo", "--ignore-not-found", "--timeout=60s")
        jit.ic.empty_group(group)


def test_an_assignment_to_a_catalog_that_does_not_exist_is_not_ready(system: Jit) -> None:
    """A typo in a catalog reference read Ready=True ("account-assignment mode: permission set
    catalog:paymnts/production ..."), while every grant of it then failed. A catalog not the owner
    team's is refused at admission now (attack 141), naming the team's own; the owner's own catalog
    not there (a team of this test's own, which has none) is admitted, and not Ready."""
    typo: dict[str, Any] = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "Entitlement",
        "metadata": {"name": "e2e-catalog-typo"},
        "spec": {
            "owner": "payments",
            "identityCenter": {
                "accountAssignment": {
                    "permissionSet": {"catalog": "paymnts", "tier": "production"},
                    "accounts": ["444455556666"],
                }
            },
            "eligibility": {"identityCenterGroups": ["prod-eligible"]},
        },
    }
    with pytest.raises(KubectlError) as refused:
        system.apply(typo)
    assert "names catalog:paymnts/production" in str(refused.value.stderr)
    assert "name a tier of PermissionCatalog payments, team payments's own" in str(refused.value.stderr)
    team = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "TeamOwnership",
        "metadata": {"name": "cc-no-catalog"},
        "spec": {"members": [ALICE], "approvers": [PAULA]},
    }
    system.apply(team)
    typo["spec"]["owner"] = "cc-no-catalog"
    typo["spec"]["identityCenter"]["accountAssignment"]["permissionSet"]["catalog"] = "cc-no-catalog"
    system.apply(typo)
    try:
        system.wait_reason("entitlement", "e2e-catalog-typo", "PermissionSetNotFound", timeout=30)
        ready = system.condition("entitlement", "e2e-catalog-typo", "Ready") or {}
        assert ready["status"] == "False"
        assert (
            "spec.identityCenter.accountAssignment.permissionSet names catalog:cc-no-catalog/production"
            in ready["message"]
        )
        assert "PermissionCatalog cc-no-catalog does not exist" in ready["message"]
    finally:
        system.kubectl("delete", "entitlement", "e2e-catalog-typo", "--ignore-not-found", "--timeout=60s")
        system.kubectl("delete", "teamownership", "cc-no-catalog", "--ignore-not-found", "--timeout=60s")

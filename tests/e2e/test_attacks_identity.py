"""Attacks 26-30 of docs/security.md: who a person is, who may end a grant, and when a request may go.

The same style as `test_attacks.py` (real identities, plain kubectl, the real API server, the
operator's webhooks, RBAC and the admission policy, the strict Identity Center emulator):

- 26, 27: two Identity Center users whose names differ only in case (`alice@example.com` and
  `Alice@example.com`, two Kubernetes identities too) are two people: neither's eligibility nor
  grant counts for the other;
- 28: the user is deleted and re-created under the same name between request and approval;
- 29: an owner-team approver ends a grant after its Entitlement was deleted;
- 30: a request is deleted while the access it led to runs;
- 109: the grant's owner team is renamed in Git (its TeamOwnership deleted): the approvers of the
  Entitlement's owner now end the grant; the approvers of another team still may not;
- 143: the Entitlement is handed to another team while a request waits: the approval by the new
  owner team's approver is recorded under that team, not the one first asked.

Kubernetes knows `Alice@example.com` only through impersonation by the administrator (who may);
RBAC lets that identity request, as it lets the other test users.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from devenv.paths import EXAMPLES
from jitaccess.api import audit
from tests.support.harness import REQUESTER_ROLE, Jit, entitlement, eventually

pytestmark = pytest.mark.e2e

ALICE, PAULA, LENA = "alice@example.com", "paula@example.com", "lena@example.com"
TWIN = "Alice@example.com"
PAYMENTS, LEDGER = "prod-eng-payments", "prod-eng-ledger"
REVOKED = "jitaccess.dev/revoked"
SEED = EXAMPLES / "identitycenter" / "seed.yaml"


def as_twin(system: Jit, *args: str, check: bool = True) -> Any:
    """kubectl as `Alice@example.com` of team-payments (impersonated by the administrator)."""
    return system.kubectl(*args, "--as", TWIN, "--as-group", "team-payments", check=check)


def twin_request(system: Jit, name: str, check: bool = True) -> Any:
    manifest = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name},
        "spec": {"entitlement": PAYMENTS, "reason": "INFRA-1 twin"},
    }
    return system.kubectl(
        "create", "-f", "-", "--as", TWIN, "--as-group", "team-payments", input=json.dumps(manifest), check=check
    )


def user_id(system: Jit, name: str) -> str:
    return system.ic.user_id(name)


def delete_ic_user(system: Jit, name: str) -> None:
    system.ic.client().delete_user(IdentityStoreId=system.ic.identity_store_id, UserId=user_id(system, name))


@pytest.fixture
def twin(system: Jit) -> Iterator[str]:
    """`Alice@example.com`: a second Identity Center user, in no eligibility group, who may request."""
    created = system.ic.create_user(TWIN, display_name="Alice Twin")
    system.kubectl("create", "clusterrolebinding", "e2e-twin", f"--clusterrole={REQUESTER_ROLE}", f"--user={TWIN}")
    eventually(
        lambda: as_twin(system, "auth", "can-i", "create", "accessrequests", check=False).returncode == 0,
        timeout=10,
        what="RBAC for the twin in effect",
    )
    try:
        yield created
    finally:
        system.clean()
        system.kubectl("delete", "clusterrolebinding", "e2e-twin", "--ignore-not-found")
        system.ic.client().delete_user(IdentityStoreId=system.ic.identity_store_id, UserId=created)


# --- 26. a case-variant user inherits another's eligibility ----------------------------------------


def test_26_eligibility_is_per_identity_center_user_not_per_case_folded_name(system: Jit, twin: str) -> None:
    assert user_id(system, TWIN) != user_id(system, ALICE)
    system.request("e26-alice", PAYMENTS, user=ALICE)
    # Within the seconds the eligibility answer for alice is remembered: the twin is still asked about.
    result = twin_request(system, "e26-twin", check=False)
    assert result.returncode != 0, "the twin, in no eligibility group, was admitted"
    assert "prod-eligible" in result.stderr and "pci-secure-code-trained" in result.stderr
    system.wait_reason("accessrequest", "e26-alice", "Granted")
    assert system.get("accessrequest", "e26-twin") is None
    assert system.members(PAYMENTS) == {ALICE}
    stamped = (system.get("accessrequest", "e26-alice") or {})["spec"]["requesterUserId"]
    assert stamped == user_id(system, ALICE)


# --- 27. revoking one of two case-variant users --------------------------------------------------


def test_27_revoking_one_of_two_case_variant_users_removes_exactly_theirs(system: Jit, twin: str) -> None:
    for group in ("prod-eligible", "pci-secure-code-trained"):
        system.ic.add_member(group, TWIN)
    system.request("e27-alice", PAYMENTS, user=ALICE)
    twin_request(system, "e27-twin")
    system.wait_reason("accessgrant", "e27-alice", "Active")
    system.wait_reason("accessgrant", "e27-twin", "Active")
    assert system.members(PAYMENTS) == {ALICE, TWIN}
    as_twin(system, "annotate", "accessgrant", "e27-twin", f"{REVOKED}=true")
    twin_grant = system.wait_reason("accessgrant", "e27-twin", "Revoked")
    eventually(lambda: system.members(PAYMENTS) == {ALICE}, what="the twin's membership removed, alice's kept")
    assert twin_grant["status"]["userId"] == twin_grant["spec"]["userId"] == twin
    system.kubectl("annotate", "accessgrant", "e27-alice", f"{REVOKED}=true", user=ALICE)
    eventually(lambda: system.members(PAYMENTS) == set(), what="alice's membership removed")


# --- 28. the user is re-created under the same name while the request waits ----------------------


def test_28_a_user_recreated_between_request_and_approval_gets_nothing(system: Jit) -> None:
    system.request("e28", LEDGER, user=ALICE)
    system.wait_reason("accessrequest", "e28", "Pending")
    asked = user_id(system, ALICE)
    try:
        delete_ic_user(system, ALICE)
        system.ic.seed(SEED)  # a new alice@example.com, eligible like the old one
        assert user_id(system, ALICE) != asked
        # Nothing the operator remembers of the old user helps: as after any restart.
        system.operator.stop()
        system.operator.start()
        # Two guards may stop it, whichever comes first: the eligibility re-check (the user who asked
        # is gone from Identity Center: the waiting request is refused, and so is a late approval),
        # or the check at activation (the name now belongs to someone else).
        approval = system.kubectl(
            "annotate", "accessrequest", "e28", "jitaccess.dev/approved=true", user=LENA, check=False
        )
        assert approval.returncode == 0 or "already finished" in approval.stderr, approval.stderr
        ended = system.wait_reason("accessrequest", "e28", "Failed", "NotEligible")
        message = next(c["message"] for c in ended["status"]["conditions"] if c["type"] == "Ready")
        assert ("no longer" in message and ALICE in message) or "eligibility lapsed" in message, message
        grant = system.get("accessgrant", "e28")
        assert grant is None or system.ready_reason("accessgrant", "e28") == "Failed"
        assert system.members(LEDGER) == set()
        assert (system.get("accessrequest", "e28") or {})["spec"]["requesterUserId"] == asked
    finally:
        system.ic.seed(SEED)


# --- 29. revocation by an owner-team approver once the Entitlement is gone ------------------------


@pytest.fixture
def short_lived_entitlement(system: Jit) -> Iterator[str]:
    """An Entitlement of team payments onto prod-eng-payments, that the test deletes."""
    system.apply(entitlement("e2e-payments-short-lived", PAYMENTS))
    system.wait_reason("entitlement", "e2e-payments-short-lived", "Resolved", timeout=30)
    try:
        yield "e2e-payments-short-lived"
    finally:
        system.clean()
        system.kubectl("delete", "entitlement", "e2e-payments-short-lived", "--ignore-not-found")


def test_29_owner_approver_revokes_after_the_entitlement_is_deleted(system: Jit, short_lived_entitlement: str) -> None:
    system.request("e29", short_lived_entitlement, user=ALICE, reason="INC-29 payments outage")
    system.wait_reason("accessgrant", "e29", "Active")
    # Deleted, it is kept (Deleting) while its grant runs, and nothing new can be asked of it.
    system.kubectl("delete", "entitlement", short_lived_entitlement, "--wait=false")
    system.wait_reason("entitlement", short_lived_entitlement, "Deleting", timeout=30)
    system.kubectl("annotate", "accessgrant", "e29", f"{REVOKED}=true", user=PAULA)
    revoked = system.wait_reason("accessgrant", "e29", "Revoked")
    eventually(lambda: system.get("entitlement", short_lived_entitlement) is None, timeout=40, what="entitlement gone")
    assert revoked["status"]["revokedBy"] == PAULA
    eventually(lambda: system.members(PAYMENTS) == set(), what="membership removed")
    # The grant itself records who owned it and why access was asked for, whatever becomes of the rest.
    assert revoked["spec"]["ownerTeam"] == "payments"
    assert revoked["spec"]["reason"] == "INC-29 payments outage"


# --- 109. revocation once the grant's owner team is gone ------------------------------------------


def _team(name: str, approvers: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "TeamOwnership",
        "metadata": {"name": name},
        "spec": {"members": [ALICE], "approvers": approvers},
    }


RENAMED_GROUP = "prod-e2e-renamed-team"


def _owned_by(team: str) -> dict[str, Any]:
    # A group of its own: payments' production group is team payments' alone (attack 112).
    return entitlement("e2e-renamed-team", RENAMED_GROUP, team)


def test_109_the_new_owner_teams_approver_revokes_once_the_recorded_team_is_gone(system: Jit) -> None:
    system.ic.create_group(RENAMED_GROUP)
    system.apply(_team("e2e-team-old", [PAULA]))
    system.apply(_owned_by("e2e-team-old"))
    system.wait_reason("entitlement", "e2e-renamed-team", "Resolved", timeout=30)
    try:
        system.request("e109", "e2e-renamed-team", user=ALICE)
        system.wait_reason("accessgrant", "e109", "Active")
        # The rename as one commit: the new team, the Entitlement pointing at it, the old one pruned.
        system.apply(_team("e2e-team-new", [PAULA]))
        system.apply(_owned_by("e2e-team-new"))
        system.kubectl("delete", "teamownership", "e2e-team-old")
        eventually(lambda: system.get("teamownership", "e2e-team-old") is None or None, what="old team gone")
        # Another team's approver is nobody here, before and after.
        other = system.kubectl("annotate", "accessgrant", "e109", f"{REVOKED}=true", user=LENA, check=False)
        assert other.returncode != 0 and "may not revoke" in other.stderr
        # It was refused for the new team's approver too ("an approver of team e2e-team-old (the
        # team no longer exists)"): only the grantee or a cluster administrator could end it.
        eventually(
            lambda: system.kubectl(
                "annotate", "accessgrant", "e109", f"{REVOKED}=true", user=PAULA, check=False
            ).returncode == 0 or None,
            timeout=15,
            what="the new owner team's approver may revoke",
        )  # fmt: skip
        revoked = system.wait_reason("accessgrant", "e109", "Revoked")
        assert revoked["status"]["revokedBy"] == PAULA and revoked["spec"]["ownerTeam"] == "e2e-team-old"
        eventually(lambda: system.members(RENAMED_GROUP) == set() or None, what="membership removed")
    finally:
        system.clean()
        system.kubectl("delete", "entitlement", "e2e-renamed-team", "--ignore-not-found", "--timeout=60s")
        for team in ("e2e-team-old", "e2e-team-new"):
            system.kubectl("delete", "teamownership", team, "--ignore-not-found")


# --- 143. an approval after the Entitlement was handed to another team ----------------------------

HANDED_GROUP = "prod-e2e-handed"


def _approving(name: str, approver: str) -> dict[str, Any]:
    """A team of one approver, whose member is that approver alone: alice waits for a decision."""
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "TeamOwnership",
        "metadata": {"name": name},
        "spec": {"members": [approver], "approvers": [approver]},
    }


def test_143_an_approval_after_a_hand_over_names_the_team_that_owns_the_entitlement_now(system: Jit) -> None:
    system.ic.create_group(HANDED_GROUP)
    system.apply(_approving("e2e-handed-old", PAULA))
    system.apply(_approving("e2e-handed-new", LENA))
    system.apply(entitlement("e2e-handed", HANDED_GROUP, "e2e-handed-old"))
    system.wait_reason("entitlement", "e2e-handed", "Resolved", timeout=30)
    try:
        system.request("e143", "e2e-handed", user=ALICE)
        pending = system.wait_reason("accessrequest", "e143", "Pending")
        assert pending["status"]["ownerTeam"] == "e2e-handed-old"
        # The pull request that hands the Entitlement to the new team.
        system.apply(entitlement("e2e-handed", HANDED_GROUP, "e2e-handed-new"))
        eventually(
            lambda: system.kubectl(
                "annotate", "accessrequest", "e143", "jitaccess.dev/approved=true", user=LENA, check=False
            ).returncode == 0 or None,
            timeout=15,
            what="the new owner team's approver may approve",
        )  # fmt: skip
        granted = system.wait_reason("accessrequest", "e143", "Granted", "Failed")
        assert next(c for c in granted["status"]["conditions"] if c["type"] == "Ready")["reason"] == "Granted"
        records = {r["action"]: r for r in audit.records_of_request(granted)}
        approved = records["approved"]
        # It read `ownerTeam: e2e-handed-old` beside lena, who is no approver of that team.
        assert approved["actor"]["username"] == LENA and approved["ownerTeam"] == "e2e-handed-new", approved
        assert (system.get("accessgrant", "e143") or {})["spec"]["ownerTeam"] == "e2e-handed-new"
        assert granted["status"]["ownerTeam"] == "e2e-handed-old", "the team first asked is kept"
    finally:
        system.clean()
        system.kubectl("delete", "entitlement", "e2e-handed", "--ignore-not-found", "--timeout=60s")
        for team in ("e2e-handed-old", "e2e-handed-new"):
            system.kubectl("delete", "teamownership", team, "--ignore-not-found")


# --- 30. a request deleted while its access runs -------------------------------------------------


@pytest.fixture
def lena_may_delete_requests(system: Jit) -> Iterator[str]:
    system.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "e2e-delete-requests"},
            "rules": [{"apiGroups": ["jitaccess.dev"], "resources": ["accessrequests"], "verbs": ["delete"]}],
        }
    )
    system.kubectl(
        "create", "clusterrolebinding", "e2e-delete-requests", "--clusterrole=e2e-delete-requests", f"--user={LENA}"
    )
    eventually(
        lambda: system.kubectl("auth", "can-i", "delete", "accessrequests", user=LENA, check=False).returncode == 0,
        timeout=10,
        what="RBAC for lena in effect",
    )
    try:
        yield LENA
    finally:
        system.kubectl("delete", "clusterrolebinding,clusterrole", "e2e-delete-requests", "--ignore-not-found")


def test_30_a_request_whose_access_runs_cannot_be_deleted(system: Jit, lena_may_delete_requests: str) -> None:
    system.request("e30", PAYMENTS, user=ALICE)
    system.wait_reason("accessgrant", "e30", "Active")
    result = system.kubectl("delete", "accessrequest", "e30", user=LENA, check=False)
    assert result.returncode != 0
    assert "kubectl jit revoke e30" in result.stderr and f"{REVOKED}=true" in result.stderr, result.stderr
    assert system.get("accessrequest", "e30") is not None
    assert system.members(PAYMENTS) == {ALICE}
    # Once the access has ended, the request may go: deleted by an approver of its owner team (attack 35).
    system.kubectl("annotate", "accessgrant", "e30", f"{REVOKED}=true", user=ALICE)
    system.wait_reason("accessrequest", "e30", "Revoked")
    system.kubectl("delete", "accessrequest", "e30", user=PAULA)


def test_30_a_request_with_no_access_may_be_deleted(system: Jit, lena_may_delete_requests: str) -> None:
    system.request("e30-pending", LEDGER, user=ALICE)
    system.wait_reason("accessrequest", "e30-pending", "Pending")
    # alice's pending request is hers to withdraw; an approver denies it, then may delete it (attack 124).
    system.kubectl("annotate", "accessrequest", "e30-pending", "jitaccess.dev/denied=true",
                   "jitaccess.dev/decision-reason=INFRA-30 not now", user=LENA)  # fmt: skip
    system.wait_reason("accessrequest", "e30-pending", "Denied")
    system.kubectl("delete", "accessrequest", "e30-pending", user=LENA)


def test_30_a_request_deleted_past_the_webhook_ends_its_grant(system: Jit) -> None:
    """The administrator is the operator's identity here, which the webhook lets through: as if the
    webhook were bypassed. The operator ends the grant rather than leave access behind."""
    system.request("e30-bypass", PAYMENTS, user=ALICE)
    system.wait_reason("accessgrant", "e30-bypass", "Active")
    system.kubectl("delete", "accessrequest", "e30-bypass")
    revoked = system.wait_reason("accessgrant", "e30-bypass", "Revoked")
    message = next(c["message"] for c in revoked["status"]["conditions"] if c["type"] == "Ready")
    assert "its AccessRequest was deleted" in message
    eventually(lambda: system.members(PAYMENTS) == set(), what="membership removed")

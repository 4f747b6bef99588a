"""The approvals of several (approvalsRequired, examples/03-pci.yaml) against what still counts.

Attack 108 of docs/security.md: with the operator's webhooks gone, the ValidatingAdmissionPolicy
alone keeps `jitaccess.dev/approvals` (the list the operator counts) and the break-glass review's
stamps the caller's own. And an approval that stops counting (its approver left the team) neither
fills the count nor keeps the request from being decided.

Real identities, plain kubectl, the real API server with the operator's webhooks, RBAC and the
admission policy.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.approval_policies import (
    ALICE,
    BOB,
    CAROL,
    LENA,
    PAULA,
    PCI,
    annotate,
    break_glass,
    pci,
    pci_approvers,
    status,
)
from tests.e2e.test_attacks_approvals import refused
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e
__all__ = ["pci"]
WEBHOOK_CONFIGURATION = "jitaccess.dev"
VAP = "ValidatingAdmissionPolicy"
APPROVALS = "jitaccess.dev/approvals"


def _webhooks_gone(system: Jit) -> None:
    system.operator.stop()
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        system.kubectl("delete", kind, WEBHOOK_CONFIGURATION, "--ignore-not-found")


def _entry(by: str, *groups: str) -> dict[str, Any]:
    return {"by": by, "groups": sorted(groups)}


def _list(*entries: dict[str, Any]) -> str:
    return json.dumps(list(entries), separators=(",", ":"), sort_keys=True)


def _groups(system: Jit, user: str) -> list[str]:
    """The groups the API server authenticates `user` with (system:authenticated among them)."""
    review = json.loads(system.kubectl("auth", "whoami", "-o", "json", user=user).stdout)
    return sorted(review["status"]["userInfo"].get("groups") or [])


def _events(system: Jit, name: str, reason: str) -> list[str]:
    return [e["message"] for e in system.events(name, "AccessRequest") if e["reason"] == reason]


# --- 108. the approvals list and the review stamps forged, the webhooks gone -----------------------


def test_108_approvals_list_and_review_stamps_held_by_the_policy_alone(pci: Jit) -> None:
    # A break-glass request revoked, to be reviewed below, while the webhooks still stamp.
    assert break_glass(pci, "carol-review").returncode == 0
    pci.wait_reason("accessrequest", "carol-review", "Granted")
    pci.kubectl("annotate", "accessgrant", "carol-review", "jitaccess.dev/revoked=true", user=CAROL)
    pci.wait_reason("accessgrant", "carol-review", "Revoked")
    lena_groups = _groups(pci, LENA)
    _webhooks_gone(pci)
    try:
        pci.apply(
            {
                "apiVersion": "jitaccess.dev/v1alpha1",
                "kind": "AccessRequest",
                "metadata": {"name": "vap-pci"},
                "spec": {"entitlement": PCI, "reason": "INFRA-1 vap", "requester": ALICE},
            },
            user=ALICE,
        )
        # One approver writing two approvals, or another approver's, or groups she does not have.
        for forged in (
            _list(_entry(PAULA), _entry(LENA)),
            _list(_entry(PAULA)),
            _list(_entry(LENA, "team-payments-approvers")),
            _list(_entry(LENA), _entry(LENA)),
        ):
            refused(
                annotate(pci, "vap-pci", f"{APPROVALS}={forged}", user=LENA),
                VAP,
                "jitaccess.dev/approvals",
            )
        # Her own entry, her own groups: what the webhook writes, the policy admits.
        own = _list(_entry(LENA, *lena_groups))
        assert annotate(pci, "vap-pci", f"{APPROVALS}={own}", user=LENA).returncode == 0
        # Then the list only grows, by the caller's one entry: never rewritten, shrunk or removed.
        refused(
            pci.kubectl(
                "annotate", "--overwrite", "accessrequest", "vap-pci", f"{APPROVALS}=[]", user=LENA, check=False
            ),
            VAP,
            "jitaccess.dev/approvals",
        )
        refused(annotate(pci, "vap-pci", f"{APPROVALS}-", user=LENA), VAP, "jitaccess.dev/approvals")
        both = _list(_entry(LENA, *lena_groups), _entry(PAULA))
        refused(
            pci.kubectl(
                "annotate", "--overwrite", "accessrequest", "vap-pci", f"{APPROVALS}={both}", user=LENA, check=False
            ),
            VAP,
            "jitaccess.dev/approvals",
        )
        # A break-glass requester reviewing her own access as someone else, or with groups not hers.
        refused(
            annotate(
                pci, "carol-review", "jitaccess.dev/reviewed=true", f"jitaccess.dev/reviewed-by={PAULA}", user=CAROL
            ),
            VAP,
            f"reviewed-by can only ever be the authenticated caller ({CAROL})",
        )
        refused(
            annotate(
                pci,
                "carol-review",
                "jitaccess.dev/reviewed=true",
                f"jitaccess.dev/reviewed-by={CAROL}",
                "jitaccess.dev/reviewed-by-groups=team-payments-approvers",
                user=CAROL,
            ),
            VAP,
            "reviewed-by-groups can only name groups of the authenticated caller",
        )
    finally:
        pci.operator.start()
    # The one entry the policy let through counts for one of two: nothing is granted.
    eventually(lambda: status(pci, "vap-pci").get("approvalSummary") == "1/2" or None, timeout=30)
    assert pci.ready_reason("accessrequest", "vap-pci") == "Pending"
    assert pci.members(PCI) == set()
    assert (pci.condition("accessrequest", "carol-review", "Reviewed") or {}).get("status") != "True"
    # With the webhooks back, the legitimate review is still stamped and admitted.
    assert annotate(pci, "carol-review", "jitaccess.dev/reviewed=true", user=PAULA).returncode == 0
    eventually(
        lambda: ((c := pci.condition("accessrequest", "carol-review", "Reviewed")) and c["status"] == "True") or None,
        timeout=30,
    )
    assert status(pci, "carol-review").get("reviewedBy") == PAULA


# --- an approval that stops counting -----------------------------------------------------------------


def test_an_approval_that_no_longer_counts_is_dropped_and_blocks_nothing(pci: Jit) -> None:
    pci.request("bob-pci", PCI, user=BOB)
    pci.wait_reason("accessrequest", "bob-pci", "Pending")
    assert annotate(pci, "bob-pci", "jitaccess.dev/approved=true", user=PAULA).returncode == 0
    eventually(lambda: status(pci, "bob-pci").get("approvalSummary") == "1/2" or None, timeout=15)
    pci_approvers(pci, [LENA, CAROL])  # paula leaves the team's approvers
    # lena's approval is the second stamped, but only the first that counts: it completes nothing.
    assert annotate(pci, "bob-pci", "jitaccess.dev/approved=true", user=LENA).returncode == 0
    annotations = pci.get("accessrequest", "bob-pci")["metadata"]["annotations"]
    assert "jitaccess.dev/approved-by" not in annotations
    eventually(lambda: [a["by"] for a in status(pci, "bob-pci").get("approvals") or []] == [LENA] or None, timeout=15)
    assert status(pci, "bob-pci")["approvalSummary"] == "1/2"
    ready = pci.condition("accessrequest", "bob-pci", "Ready")
    assert ready["reason"] == "Pending" and f"1 of 2 approvals ({LENA})" in ready["message"], ready
    ignored = eventually(lambda: _events(pci, "bob-pci", "DecisionIgnored") or None, timeout=15)
    assert any(f"the approval by {PAULA} no longer counts" in m for m in ignored), ignored
    # Another approver completes it.
    assert annotate(pci, "bob-pci", "jitaccess.dev/approved=true", user=CAROL).returncode == 0
    pci.wait_reason("accessrequest", "bob-pci", "Granted", timeout=30)
    assert status(pci, "bob-pci")["approvalSummary"] == "2/2"
    assert [a["by"] for a in status(pci, "bob-pci")["approvals"]] == [LENA, CAROL]
    assert pci.members(PCI) == {BOB}


def test_a_request_whose_approval_stopped_counting_can_still_be_denied(pci: Jit) -> None:
    pci.request("bob-pci-2", PCI, user=BOB)
    pci.wait_reason("accessrequest", "bob-pci-2", "Pending")
    assert annotate(pci, "bob-pci-2", "jitaccess.dev/approved=true", user=PAULA).returncode == 0
    eventually(lambda: status(pci, "bob-pci-2").get("approvalSummary") == "1/2" or None, timeout=15)
    pci_approvers(pci, [LENA, CAROL])
    assert annotate(pci, "bob-pci-2", "jitaccess.dev/approved=true", user=LENA).returncode == 0
    eventually(lambda: status(pci, "bob-pci-2").get("approvalSummary") == "1/2" or None, timeout=15)
    result = annotate(pci, "bob-pci-2", "jitaccess.dev/denied=true", user=CAROL)
    assert result.returncode == 0, result.stderr
    pci.wait_reason("accessrequest", "bob-pci-2", "Denied", timeout=30)
    assert pci.get("accessgrant", "bob-pci-2") is None

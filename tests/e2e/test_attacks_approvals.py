"""Attacks 60-69 of docs/security.md: the approval policies (examples/03-pci.yaml) abused.

Real identities, plain kubectl, the real API server with the operator's webhooks, RBAC and the
admission policy. Each attack is refused (at admission, or by the operator's count), and each
ends with nothing granted and nobody in the PCI group.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.approval_policies import (
    ALICE,
    BOB,
    CAROL,
    EMERGENCY,
    LENA,
    ONCALL,
    PAULA,
    PCI,
    annotate,
    break_glass,
    nothing_granted,
    pci,
    status,
)
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e
__all__ = ["pci"]


def refused(result: subprocess.CompletedProcess[str], *words: str) -> str:
    returncode, stderr = result.returncode, str(result.stderr)
    assert returncode != 0, "the API server accepted it"
    for word in words:
        assert word in stderr, stderr
    return stderr


# --- 60. break-glass by a user outside the allowed groups ------------------------------------------


def test_60_break_glass_outside_the_groups_is_refused(pci: Jit) -> None:
    refused(break_glass(pci, "alice-glass", user=ALICE), "spec.breakGlass", "only to members of the group(s) sre")
    assert pci.get("accessrequest", "alice-glass") is None
    nothing_granted(pci, "alice-glass")


# --- 61. break-glass with a short reason ------------------------------------------------------------


def test_61_break_glass_with_a_short_reason_is_refused(pci: Jit) -> None:
    refused(break_glass(pci, "carol-short", reason="INC-1 down"), "spec.reason", "needs at least 40")
    assert pci.get("accessrequest", "carol-short") is None
    nothing_granted(pci, "carol-short")


# --- 62. break-glass again and again, beyond the rate limit -----------------------------------------


def test_62_break_glass_beyond_the_rate_limit_is_refused(pci: Jit) -> None:
    for name in ("carol-glass-1", "carol-glass-2"):
        assert break_glass(pci, name).returncode == 0
        pci.wait_reason("accessrequest", name, "Granted")
    for name in ("carol-glass-1", "carol-glass-2"):
        pci.kubectl("annotate", "accessgrant", name, "jitaccess.dev/revoked=true", user=CAROL)
        pci.wait_reason("accessgrant", name, "Revoked")
    refused(break_glass(pci, "carol-glass-3"), "perUserPerDay is 2", "carol-glass-1, carol-glass-2")
    assert pci.get("accessrequest", "carol-glass-3") is None
    nothing_granted(pci, "carol-glass-3")


# --- 63. one approver approving twice to reach N ------------------------------------------------------


def test_63_one_approver_twice_counts_once(pci: Jit) -> None:
    pci.request("alice-twice", PCI, user=ALICE)
    pci.wait_reason("accessrequest", "alice-twice", "Pending")
    assert annotate(pci, "alice-twice", "jitaccess.dev/approved=true", user=PAULA).returncode == 0
    eventually(lambda: status(pci, "alice-twice").get("approvalSummary") == "1/2" or None, timeout=15)
    again = annotate(pci, "alice-twice", "jitaccess.dev/approved=true", user=PAULA)
    refused(again, "has already approved this request (1/2)", "counts once")
    forged = '[{"by":"paula@example.com","groups":["team-payments"]},{"by":"paula@example.com","groups":[]}]'
    refused(annotate(pci, "alice-twice", f"jitaccess.dev/approvals={forged}", "--overwrite", user=PAULA),
            "written only by the jitaccess admission webhook")  # fmt: skip
    assert pci.ready_reason("accessrequest", "alice-twice") == "Pending"
    nothing_granted(pci, "alice-twice")


# --- 64. the requester as one of the N ----------------------------------------------------------------


def test_64_the_requester_is_not_one_of_the_approvers(pci: Jit) -> None:
    pci.request("paula-own", PCI, user=PAULA)
    pci.wait_reason("accessrequest", "paula-own", "Pending")
    refused(annotate(pci, "paula-own", "jitaccess.dev/approved=true", user=PAULA), "cannot decide on it")
    assert annotate(pci, "paula-own", "jitaccess.dev/approved=true", user=LENA).returncode == 0
    eventually(lambda: status(pci, "paula-own").get("approvalSummary") == "1/2" or None, timeout=15)
    assert pci.ready_reason("accessrequest", "paula-own") == "Pending"
    nothing_granted(pci, "paula-own")


# --- 65. an on-call member whose on-call membership ended just before the request -----------------------


def test_65_on_call_that_ended_before_the_request_approves_nothing(pci: Jit) -> None:
    pci.ic.add_member(ONCALL, BOB)
    pci.ic.empty_group(ONCALL)  # the shift ended a moment before bob asks
    pci.request("bob-late", PCI, user=BOB)
    pending = pci.wait_reason("accessrequest", "bob-late", "Pending")
    assert pending["status"]["approvalSummary"] == "0/2", "waits for the approvers as any other request"
    assert pci.condition("accessrequest", "bob-late", "Approved") is None
    nothing_granted(pci, "bob-late")


# --- 66. a break-glass request reviewed by its own requester, or by someone outside the owner team -------


def test_66_break_glass_reviewed_by_the_requester_or_an_outsider_is_refused(pci: Jit) -> None:
    assert break_glass(pci, "carol-self-review").returncode == 0
    pci.wait_reason("accessrequest", "carol-self-review", "Granted")
    refused(annotate(pci, "carol-self-review", "jitaccess.dev/reviewed=true", user=CAROL), "cannot review it")
    # An engineer has no verb to annotate requests at all (RBAC); the webhook refuses any non-approver too.
    refused(annotate(pci, "carol-self-review", "jitaccess.dev/reviewed=true", user=BOB), "cannot patch")
    forged = annotate(pci, "carol-self-review", "jitaccess.dev/reviewed=true", f"jitaccess.dev/reviewed-by={PAULA}",
                      user=CAROL)  # fmt: skip
    refused(forged)
    reviewed = pci.condition("accessrequest", "carol-self-review", "Reviewed")
    assert reviewed is not None and reviewed["status"] == "False"
    pci.kubectl("annotate", "accessgrant", "carol-self-review", "jitaccess.dev/revoked=true", user=CAROL)
    pci.wait_reason("accessgrant", "carol-self-review", "Revoked")
    assert pci.members(PCI) == set(), "no membership left behind"


# --- 67. break-glass for longer than its cap ------------------------------------------------------------


def test_67_break_glass_beyond_its_duration_cap_is_refused(pci: Jit) -> None:
    refused(break_glass(pci, "carol-long", duration="2h"), "spec.duration", "ask for 1h or less")
    assert pci.get("accessrequest", "carol-long") is None
    nothing_granted(pci, "carol-long")


def test_67_break_glass_on_an_entitlement_without_it_is_refused(pci: Jit) -> None:
    result = pci.request("carol-ledger-glass", "prod-eng-ledger", reason=EMERGENCY, user=CAROL, check=False,
                         breakGlass=True)  # fmt: skip
    refused(result, "does not allow break-glass")
    assert pci.members("prod-eng-ledger") == set()


# --- 68. a break-glass request deleted, to drop it from its review and from the daily count -----------------


def test_68_a_break_glass_request_is_kept_for_its_review(pci: Jit) -> None:
    assert break_glass(pci, "carol-gone").returncode == 0
    pci.wait_reason("accessrequest", "carol-gone", "Granted")
    pci.kubectl("annotate", "accessgrant", "carol-gone", "jitaccess.dev/revoked=true", user=CAROL)
    pci.wait_reason("accessrequest", "carol-gone", "Revoked")
    # Its access has ended; it stays the record the review and perUserPerDay read.
    refused(
        pci.kubectl("delete", "accessrequest", "carol-gone", "--wait=false", user=PAULA, check=False),
        "is a break-glass request not reviewed yet: review it first",
    )
    refused(
        pci.kubectl("delete", "accessrequest", "carol-gone", "--wait=false", user=CAROL, check=False),
        "is your break-glass request",
    )
    assert pci.get("accessrequest", "carol-gone") is not None
    assert annotate(pci, "carol-gone", "jitaccess.dev/reviewed=true", user=PAULA).returncode == 0
    eventually(
        lambda: ((c := pci.condition("accessrequest", "carol-gone", "Reviewed")) and c["status"] == "True") or None,
        what="the review recorded",
    )
    # Reviewed, an approver of the owner team may delete it before the retention period ends.
    pci.kubectl("delete", "accessrequest", "carol-gone", "--timeout=30s", user=PAULA)
    assert pci.get("accessrequest", "carol-gone") is None

"""Extensions of a break-glass grant, probed as an attacker would (red-team regressions, no new
attack): carol, an SRE who may break glass on the PCI example and a backup approver of its team,
gets one hour without anyone's approval; her grant is then extended only as the Entitlement
approves any extension: within `maxDuration` from the activation, by two approvers of team pci,
never by herself, by being on call, or as a backup approver before any escalation. Plain kubectl
as the users of examples/, against the real API server, the webhooks, RBAC and the admission policy.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.e2e.approval_policies import CAROL, LENA, ONCALL, PAULA, break_glass, pci
from tests.e2e.test_attacks_extensions import APPROVED, refused, try_extend, unmoved
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e
__all__ = ["pci"]


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# --- a break-glass grant's extension: held to the Entitlement's approvals and maxDuration -------------


def test_a_break_glass_grant_is_extended_only_as_its_entitlement_approves_extensions(pci: Jit) -> None:
    assert break_glass(pci, "carol-glass-x").returncode == 0
    grant = pci.wait_reason("accessgrant", "carol-glass-x", "Active")
    # breakGlass.maxDuration 1h, the Entitlement's maxDuration 2h: never more than 2h in all.
    refused(
        try_extend(pci, "carol-glass-x-long", "carol-glass-x", "1h30m", CAROL),
        "above Entitlement prod-eng-payments-pci's maxDuration 2h",
        "extend by at most 1h",
    )
    assert try_extend(pci, "carol-glass-x-1", "carol-glass-x", "1h", CAROL).returncode == 0
    pending = pci.wait_reason("accessextension", "carol-glass-x-1", "Pending")
    assert pending["status"]["approvalSummary"] == "0/2", pending["status"]
    # Not her own approval (also a backup approver of team pci: an extension never escalates).
    own = pci.kubectl("annotate", "accessextension", "carol-glass-x-1", f"{APPROVED}=true", user=CAROL, check=False)
    refused(own, "requested this access and cannot decide on it")
    # Nor being on call now: on-call approval is the requests', never an extension's.
    pci.ic.add_member(ONCALL, CAROL)
    pci.kubectl("annotate", "accessextension", "carol-glass-x-1", f"{APPROVED}=true", user=PAULA)
    eventually(
        lambda: (pci.get("accessextension", "carol-glass-x-1") or {})["status"].get("approvalSummary") == "1/2" or None,
        timeout=15,
        what="paula's approval counted, 1/2",
    )
    assert pci.ready_reason("accessextension", "carol-glass-x-1") == "Pending"
    unmoved(pci, grant)
    # Two approvers of team pci: extended, to two hours from the activation and no further.
    pci.kubectl("annotate", "accessextension", "carol-glass-x-1", f"{APPROVED}=true", user=LENA)
    pci.wait_reason("accessextension", "carol-glass-x-1", "Extended")
    status = (pci.get("accessgrant", "carol-glass-x") or {})["status"]
    assert _at(status["expirationTime"]) - _at(status["activationTime"]) == timedelta(hours=2), status
    refused(try_extend(pci, "carol-glass-x-2", "carol-glass-x", "1m", CAROL), "it cannot be extended any more")

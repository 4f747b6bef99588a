"""Approval policies end to end, as the real users of examples/: two approvers for the PCI
entitlement, break-glass by an SRE and its review, the on-call engineer auto-approved."""

from __future__ import annotations

import json

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
    pci,
    status,
)
from tests.e2e.cli_run import Cli
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e
__all__ = ["pci"]


def test_two_approvers_grant_the_pci_entitlement(pci: Jit) -> None:
    pci.request("alice-pci", PCI, user=ALICE)
    assert pci.wait_reason("accessrequest", "alice-pci", "Pending")["status"]["approvalSummary"] == "0/2"
    assert annotate(pci, "alice-pci", "jitaccess.dev/approved=true", user=PAULA).returncode == 0
    counted = eventually(lambda: status(pci, "alice-pci").get("approvalSummary") == "1/2" or None, timeout=15)
    assert counted
    request = pci.get("accessrequest", "alice-pci") or {}
    notes = request["metadata"]["annotations"]
    assert "jitaccess.dev/approved" not in notes and '"by":"paula@example.com"' in notes["jitaccess.dev/approvals"]
    assert pci.ready_reason("accessrequest", "alice-pci") == "Pending" and pci.members(PCI) == set()
    table = pci.kubectl("get", "areq", "alice-pci", user=LENA).stdout
    assert "APPROVALS" in table.splitlines()[0] and "1/2" in table.splitlines()[1]
    assert "ApprovalCounted" in {e["reason"] for e in pci.events("alice-pci", "AccessRequest")}

    assert annotate(pci, "alice-pci", "jitaccess.dev/approved=true", user=LENA).returncode == 0
    granted = pci.wait_reason("accessrequest", "alice-pci", "Granted")
    assert [a["by"] for a in granted["status"]["approvals"]] == [PAULA, LENA]
    assert granted["status"]["approvalSummary"] == "2/2" and granted["status"]["approvedBy"] == LENA
    assert pci.members(PCI) == {ALICE}


def test_break_glass_is_granted_at_once_loudly_and_reviewed(pci: Jit) -> None:
    assert break_glass(pci, "carol-glass").returncode == 0
    granted = pci.wait_reason("accessrequest", "carol-glass", "Granted")
    assert granted["status"]["approvalSummary"] == "break-glass" and granted["status"]["duration"] == "1h"
    assert pci.members(PCI) == {CAROL}
    events = pci.events("carol-glass", "AccessRequest")
    assert any(e["reason"] == "BreakGlass" and e["type"] == "Warning" for e in events), events
    awaiting = pci.condition("accessrequest", "carol-glass", "Reviewed")
    assert awaiting is not None and awaiting["reason"] == "AwaitingReview"

    assert annotate(pci, "carol-glass", "jitaccess.dev/reviewed=true", user=PAULA).returncode == 0
    reviewed = eventually(
        lambda: (pci.condition("accessrequest", "carol-glass", "Reviewed") or {}).get("status") == "True" or None
    )
    assert reviewed and status(pci, "carol-glass")["reviewedBy"] == PAULA
    stamped = (pci.get("accessrequest", "carol-glass") or {})["metadata"]["annotations"]
    assert stamped["jitaccess.dev/reviewed-by"] == PAULA


def test_an_unreviewed_break_glass_is_warned_of_once(pci: Jit) -> None:
    pci.kubectl("patch", "entitlement", PCI, "--type=merge", "-p", '{"spec":{"breakGlass":{"reviewWithin":"2s"}}}')
    try:
        assert break_glass(pci, "carol-unreviewed").returncode == 0
        pci.wait_reason("accessrequest", "carol-unreviewed", "Granted")
        overdue = eventually(
            lambda: [e for e in pci.events("carol-unreviewed", "AccessRequest") if e["reason"] == "ReviewOverdue"],
            timeout=20,
        )
        assert overdue[0]["type"] == "Warning" and overdue[0].get("count", 1) == 1
        # It says the command that reviews that very request (the alert's runbook reads it from here).
        uid = (pci.get("accessrequest", "carol-unreviewed") or {})["metadata"]["uid"]
        assert overdue[0]["message"].endswith(f"`kubectl jit review carol-unreviewed --uid {uid}`"), overdue
        reviewed = pci.condition("accessrequest", "carol-unreviewed", "Reviewed")
        assert reviewed is not None and reviewed["reason"] == "ReviewOverdue"
    finally:
        pci.kubectl("patch", "entitlement", PCI, "--type=merge", "-p", '{"spec":{"breakGlass":{"reviewWithin":"24h"}}}')


def test_a_break_glass_is_reviewed_by_its_owner_team_after_its_entitlement_is_deleted(pci: Jit) -> None:
    """Renaming an Entitlement in Git deletes the old one: the use of production access made under
    it still wants its review, by the team that owned it then (`status.ownerTeam`). It was refused
    ("not an approver of the owner team"), and the request could then be neither reviewed nor
    deleted."""
    assert break_glass(pci, "carol-orphan").returncode == 0
    pci.wait_reason("accessrequest", "carol-orphan", "Granted")
    pci.kubectl("annotate", "accessgrant", "carol-orphan", "jitaccess.dev/revoked=true", user=CAROL)
    pci.wait_reason("accessgrant", "carol-orphan", "Revoked")
    pci.kubectl("delete", "entitlement", PCI, "--timeout=60s")
    eventually(lambda: pci.get("entitlement", PCI) is None or None, timeout=60, what="entitlement gone")
    self_review = annotate(pci, "carol-orphan", "jitaccess.dev/reviewed=true", user=CAROL)
    assert self_review.returncode != 0, "still never by the requester"
    reviewed = annotate(pci, "carol-orphan", "jitaccess.dev/reviewed=true", user=PAULA)
    assert reviewed.returncode == 0, reviewed.stderr
    eventually(
        lambda: (pci.condition("accessrequest", "carol-orphan", "Reviewed") or {}).get("status") == "True" or None,
        what="review recorded",
    )
    assert status(pci, "carol-orphan")["reviewedBy"] == PAULA


def test_the_on_call_engineer_is_approved_at_once(pci: Jit) -> None:
    pci.ic.add_member(ONCALL, BOB)
    pci.request("bob-oncall", PCI, user=BOB)
    granted = pci.wait_reason("accessrequest", "bob-oncall", "Granted")
    assert granted["status"]["approvalSummary"] == "auto (on call)"
    approved = pci.condition("accessrequest", "bob-oncall", "Approved")
    assert approved is not None and approved["reason"] == "AutoApproved"
    assert approved["message"].startswith("auto (on call): bob@example.com is in the on-call group payments-oncall")
    assert pci.members(PCI) == {BOB}


# --- kubectl jit ---------------------------------------------------------------------------------


def test_kubectl_jit_break_glass_review_and_two_approvals(pci: Jit) -> None:
    cli = Cli(pci)
    try:
        glass = cli.run("break-glass", PCI, "--reason", EMERGENCY, user=CAROL)
        assert glass.code == 0, glass
        name = next(w.rstrip(";") for w in glass.out.split() if w.startswith("carol-"))
        assert pci.members(PCI) == {CAROL}
        report = json.loads(cli.run("review", PCI, "-o", "json", user=PAULA).out)
        assert report["breakGlass"]["enabled"] and [g["request"] for g in report["breakGlass"]["unreviewed"]] == [name]
        bare = cli.run("review", name, user=PAULA)
        assert bare.code != 0 and f"{name} is a break-glass AccessRequest ({CAROL}, {PCI}), not an Entitlement" in (
            bare.err
        ), bare
        mine = cli.run("review", f"request/{name}", user=CAROL)
        assert mine.code != 0 and "cannot review it" in mine.err, mine

        def approved_by() -> str:
            holders = cli.run("who-has", PCI, "-o", "json", user=PAULA)
            assert holders.code == 0, holders
            [holder] = [h for h in json.loads(holders.out)["items"] if h["grant"] == name]
            return str(holder["approvedBy"])

        due = status(pci, name)["reviewDeadline"]
        assert approved_by() == f"break-glass (not reviewed yet, due {due})"
        reviewed = cli.run("review", f"request/{name}", user=PAULA)
        assert reviewed.code == 0 and f"reviewed break-glass accessrequest {name}" in reviewed.out, reviewed
        eventually(lambda: approved_by() == f"break-glass (reviewed by {PAULA})" or None, timeout=15)
        short = cli.run("break-glass", PCI, "--reason", "INC-1 down", user=CAROL)
        assert short.code != 0 and "needs at least 40" in short.err, short

        pending = cli.run("request", PCI, "--for", "30m", "--reason", "INC-901 x", "--no-wait", user=ALICE)
        asked = next(w for w in pending.out.split() if w.startswith("alice-"))
        first = cli.run("approve", asked, user=PAULA)
        assert first.code == 0 and "recorded your approval" in first.out, first
        eventually(lambda: status(pci, asked).get("approvalSummary") == "1/2" or None, timeout=15)
        second = cli.run("approve", asked, user=LENA)
        assert second.code == 0 and f"approved accessrequest {asked}" in second.out, second
        pci.wait_reason("accessrequest", asked, "Granted")
    finally:
        cli.stop_all()

"""Attack 128 of docs/security.md: a leaver whose Identity Center account is disabled, and who can
still reach the cluster, asks again for what waits for no approver.

Disabling a user in Identity Center (the console, or SCIM's `active: false` when the identity
provider offboards someone) is how a leaver's access is taken away there; the Kubernetes identity
goes with another system, at another pace (a client certificate, an OIDC token or refresh token
that is still valid). The eligibility re-check ends a disabled user's grants within its interval
(tests/e2e/test_eligibility_lapse.py), and a human approval is checked again, uncached, before
access begins. What waits for no approver (the owner team's auto-approval, an on-call group,
break-glass) took the eligibility answer of admission, which asked only for the groups: the leaver
was granted at once, again after each lapse.

Real identities (client certificates), plain kubectl, the real API server with the operator's
webhooks, the strict Identity Center emulator (`set_user_enabled`, as the console or SCIM does).

Attack 133 (the same file): a leader who has left approves, while the TeamOwnership still names
them, or their approval given before they left is acted upon at a scheduled start, or counted as
one of the several an entitlement needs (of a request, or of an extension of its grant).

A probe of the same angle that held is kept below: a user name reused while a window waits.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jitaccess.handlers.runtime import ELIGIBLE_SECONDS
from tests.e2e import approval_policies as policies
from tests.e2e.approval_policies import BOB, CAROL, EMERGENCY, ONCALL, PAULA, PCI, break_glass, nothing_granted, pci
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e
__all__ = ["pci"]
ALICE, LENA = "alice@example.com", "lena@example.com"
PAYMENTS, LEDGER = "prod-eng-payments", "prod-eng-ledger"
#: The name Identity Center gives the leaver's account, to hand `alice@example.com` to a new hire.
LEFT = "alice.left@example.com"


@pytest.fixture
def disabled(system: Jit) -> Iterator[list[str]]:
    """Users to disable in Identity Center for the test (append them): enabled again afterwards,
    as the emulator is the session's."""
    users: list[str] = []
    try:
        yield users
    finally:
        if users:
            enable(system, *users)


def disable(system: Jit, users: list[str], user: str) -> None:
    users.append(user)
    system.ic.set_user_enabled(user, False)
    # A "yes, enabled and eligible" the operator heard in the last few seconds (the test before
    # this one granted the same user) is still its answer for that long, by design: the webhook's
    # answer spares the handler a second identical call. A leaver disabled a moment ago is past it.
    time.sleep(ELIGIBLE_SECONDS)


def enable(system: Jit, *users: str) -> None:
    for user in users:
        system.ic.set_user_enabled(user, True)
    # Likewise its "no, disabled" (the webhooks, the count and the activation of one approval ask
    # once): an account enabled again is taken as enabled once that answer is past.
    time.sleep(ELIGIBLE_SECONDS)


def refused_as_disabled(result: object, user: str) -> None:
    out = f"{getattr(result, 'stdout', '')}{getattr(result, 'stderr', '')}"
    assert getattr(result, "returncode", 0) != 0, f"admitted: {out}"
    assert f"{user}'s Identity Center account" in out and "is disabled" in out, out


# --- 128. a disabled Identity Center user granted what waits for no approver ---------------------------


def test_128_a_disabled_user_is_not_auto_approved_as_a_member_of_the_owner_team(
    system: Jit, disabled: list[str]
) -> None:
    """alice, of team payments, is disabled in Identity Center; her client certificate still works."""
    disable(system, disabled, ALICE)
    refused_as_disabled(system.request("leaver-own", PAYMENTS, user=ALICE, check=False), ALICE)
    assert system.get("accessrequest", "leaver-own") is None
    assert system.get("accessgrant", "leaver-own") is None
    assert system.members(PAYMENTS) == set()
    # Enabled again (a mistake undone), the same request is admitted and granted as ever.
    enable(system, ALICE)
    system.request("leaver-own", PAYMENTS, user=ALICE)
    system.wait_reason("accessgrant", "leaver-own", "Active")
    assert system.members(PAYMENTS) == {ALICE}


def test_128_a_disabled_user_breaks_no_glass_and_is_not_auto_approved_on_call(pci: Jit, disabled: list[str]) -> None:
    """carol (sre) may break the glass on the PCI entitlement (examples/03-pci.yaml)."""
    disable(pci, disabled, CAROL)
    refused_as_disabled(break_glass(pci, "leaver-glass", reason=EMERGENCY), CAROL)
    assert pci.get("accessrequest", "leaver-glass") is None
    nothing_granted(pci, "leaver-glass")

    # On call for payments (the paging tool's Identity Center group), carol is approved at once: not
    # while disabled.
    pci.ic.add_member(ONCALL, CAROL)
    refused_as_disabled(pci.request("leaver-oncall", PCI, user=CAROL, check=False), CAROL)
    assert pci.get("accessrequest", "leaver-oncall") is None
    nothing_granted(pci, "leaver-oncall")


def _window_approved_by_lena(system: Jit, name: str) -> None:
    """alice's request for ledger's role from a start 12 s ahead, approved by lena: `Scheduled`."""
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=12)).replace(microsecond=0)
    system.request(name, LEDGER, duration="1m", user=ALICE, startTime=start.strftime("%Y-%m-%dT%H:%M:%SZ"))
    system.wait_reason("accessrequest", name, "Pending")
    system.kubectl("annotate", "accessrequest", name, "jitaccess.dev/approved=true", user=LENA)
    system.wait_reason("accessrequest", name, "Scheduled")


# --- 133. a leader who has left approves, or their approval given before is acted upon ------------


def test_133_a_disabled_approver_may_not_approve(system: Jit, disabled: list[str]) -> None:
    """lena, ledger's lead, has left: disabled in Identity Center; her client certificate still works,
    and ledger's TeamOwnership still names her. Her approval of alice's request is refused."""
    system.request("leaver-approves", LEDGER, user=ALICE)
    system.wait_reason("accessrequest", "leaver-approves", "Pending")
    disable(system, disabled, LENA)
    result = system.kubectl(
        "annotate", "accessrequest", "leaver-approves", "jitaccess.dev/approved=true", user=LENA, check=False
    )
    out = f"{result.stdout}{result.stderr}"
    assert result.returncode != 0, f"admitted: {out}"
    assert f"{LENA}'s Identity Center account" in out and "is disabled, so" in out, out
    assert "ask your identity team to enable your account, or ask another approver of team ledger" in out, out
    stored = system.get("accessrequest", "leaver-approves")
    assert stored is not None and "jitaccess.dev/approved-by" not in stored["metadata"].get("annotations", {})
    assert system.wait_reason("accessrequest", "leaver-approves", "Pending")
    assert system.members(LEDGER) == set()


def test_133_an_approval_given_before_the_approver_left_grants_nothing_at_the_start(
    system: Jit, disabled: list[str]
) -> None:
    """lena approves alice's window a few seconds ahead (`Scheduled`); before the start lena leaves
    and is disabled in Identity Center. At the start her approval no longer counts: nothing granted."""
    _window_approved_by_lena(system, "leaver-window-2")
    disable(system, disabled, LENA)

    ended = system.wait_reason("accessrequest", "leaver-window-2", "Failed", timeout=40)
    message = next(c["message"] for c in ended["status"]["conditions"] if c["type"] == "Ready")
    assert f"not granted: the approval by {LENA} no longer counts: {LENA}'s Identity Center account" in message, message
    assert "request access again" in message, message
    assert system.get("accessgrant", "leaver-window-2") is None
    assert system.members(LEDGER) == set()


def _approved_by_paula_who_left(pci: Jit, disabled: list[str], name: str) -> None:
    """bob's PCI request `name` (two approvals, of paula, lena and carol), approved by paula (1/2), who
    then leaves: disabled in Identity Center, team pci still naming her."""
    policies.pci_approvers(pci, [PAULA, LENA, CAROL])
    pci.request(name, PCI, user=BOB)
    pci.wait_reason("accessrequest", name, "Pending")
    assert policies.annotate(pci, name, "jitaccess.dev/approved=true", user=PAULA).returncode == 0
    eventually(lambda: policies.status(pci, name).get("approvalSummary") == "1/2" or None, timeout=15)
    disable(pci, disabled, PAULA)


def test_133_an_approval_of_two_given_before_the_approver_left_stops_counting(pci: Jit, disabled: list[str]) -> None:
    """The PCI entitlement needs two approvals (examples/03-pci.yaml). paula approves bob's request,
    then leaves: disabled in Identity Center, team pci still naming her. lena's approval is the second
    given but the first that counts: the request waits at 1/2, saying why; carol's completes it."""
    name = "leaver-one-of-two"
    _approved_by_paula_who_left(pci, disabled, name)

    result = policies.annotate(pci, name, "jitaccess.dev/approved=true", user=LENA)
    assert result.returncode == 0, result.stderr
    assert "jitaccess.dev/approved-by" not in pci.get("accessrequest", name)["metadata"]["annotations"]
    eventually(
        lambda: [a["by"] for a in policies.status(pci, name).get("approvals") or []] == [LENA] or None, timeout=15
    )
    ready = pci.condition("accessrequest", name, "Ready")
    assert ready["reason"] == "Pending" and policies.status(pci, name)["approvalSummary"] == "1/2", ready
    assert f"1 of 2 approvals ({LENA})" in ready["message"], ready
    assert f"the approval by {PAULA} no longer counts: {PAULA}'s Identity Center account" in ready["message"], ready
    assert "is disabled" in ready["message"], ready
    assert pci.members(PCI) == set()

    assert policies.annotate(pci, name, "jitaccess.dev/approved=true", user=CAROL).returncode == 0
    pci.wait_reason("accessrequest", name, "Granted", timeout=30)
    assert [a["by"] for a in policies.status(pci, name)["approvals"]] == [LENA, CAROL]
    assert policies.status(pci, name)["approvalSummary"] == "2/2"
    assert pci.members(PCI) == {BOB}


def _refused_while_identity_center_is_silent(
    pci: Jit, approve: Callable[[], subprocess.CompletedProcess[str]], kind: str, name: str
) -> None:
    """lena's approval, which would complete the count on paula's, given while DescribeUser fails:
    refused, saying why and when to give it again, and nothing of it recorded on `kind` `name`."""
    pci.ic.faults.flaky("DescribeUser", 1.0, error="ServiceUnavailableException")
    try:
        result = approve()
    finally:
        pci.ic.faults.clear()
    assert result.returncode != 0, result.stdout
    assert "Identity Center did not answer (DescribeUser" in result.stderr, result.stderr
    assert f"the approvals given before yours ({PAULA}) still count" in result.stderr, result.stderr
    assert "Approve again in a minute" in result.stderr, result.stderr
    annotations = pci.get(kind, name)["metadata"]["annotations"]
    assert "jitaccess.dev/approved-by" not in annotations and LENA not in annotations["jitaccess.dev/approvals"]


def test_133_the_approval_that_would_complete_a_count_waits_for_identity_center_to_answer(
    pci: Jit, disabled: list[str]
) -> None:
    """As above, but Identity Center does not answer (DescribeUser) at lena's approval: counted open,
    it was stamped as completing the count with paula's, the operator found 1/2 once Identity Center
    answered, and nobody could approve any more. It is refused, nothing recorded; given again once
    Identity Center answers, it is the first that counts, and carol's completes it."""
    name = "leaver-one-of-two-outage"
    _approved_by_paula_who_left(pci, disabled, name)

    _refused_while_identity_center_is_silent(
        pci, lambda: policies.annotate(pci, name, "jitaccess.dev/approved=true", user=LENA), "accessrequest", name
    )

    assert policies.annotate(pci, name, "jitaccess.dev/approved=true", user=LENA).returncode == 0
    assert "jitaccess.dev/approved-by" not in pci.get("accessrequest", name)["metadata"]["annotations"]
    eventually(
        lambda: [a["by"] for a in policies.status(pci, name).get("approvals") or []] == [LENA] or None, timeout=15
    )
    assert pci.members(PCI) == set()
    assert policies.annotate(pci, name, "jitaccess.dev/approved=true", user=CAROL).returncode == 0
    pci.wait_reason("accessrequest", name, "Granted", timeout=30)
    assert pci.members(PCI) == {BOB}


def test_133_an_extensions_approval_of_two_given_before_the_approver_left_stops_counting(
    pci: Jit, disabled: list[str]
) -> None:
    """bob's PCI grant is Active; his extension needs two approvals of team pci too. paula approves it,
    then leaves (disabled, team pci still naming her). lena's approval is the second given but the
    first that counts: the extension waits at 1/2, saying why, and nothing is extended; carol's
    completes it."""
    name, more = "leaver-ext-of-two", "leaver-ext-of-two-1"
    ends = _extension_approved_by_paula_who_left(pci, disabled, name, more)

    def approve(user: str) -> None:
        result = _approve_extension(pci, more, user)
        assert result.returncode == 0, result.stderr

    def extension() -> dict[str, Any]:
        return pci.get("accessextension", more) or {}

    approve(LENA)
    assert "jitaccess.dev/approved-by" not in extension()["metadata"]["annotations"]
    eventually(
        lambda: [a["by"] for a in extension()["status"].get("approvals") or []] == [LENA] or None,
        timeout=15,
        what="lena's approval the one that counts",
    )
    ready = pci.condition("accessextension", more, "Ready")
    assert ready["reason"] == "Pending" and extension()["status"]["approvalSummary"] == "1/2", ready
    assert f"1 of 2 approvals ({LENA})" in ready["message"], ready
    assert f"the approval by {PAULA} no longer counts: {PAULA}'s Identity Center account" in ready["message"], ready
    assert "is disabled" in ready["message"], ready
    assert pci.get("accessgrant", name)["status"]["expirationTime"] == ends, "extended on paula's approval"

    approve(CAROL)
    applied = pci.wait_reason("accessextension", more, "Extended", timeout=30)
    assert [a["by"] for a in applied["status"]["approvals"]] == [LENA, CAROL], applied["status"]
    assert applied["status"]["approvalSummary"] == "2/2"
    assert pci.get("accessgrant", name)["status"]["expirationTime"] != ends
    assert pci.members(PCI) == {BOB}


def _approve_extension(pci: Jit, extension: str, user: str) -> subprocess.CompletedProcess[str]:
    return pci.kubectl("annotate", "accessextension", extension, "jitaccess.dev/approved=true", user=user, check=False)


def _extension_approved_by_paula_who_left(pci: Jit, disabled: list[str], name: str, more: str) -> str:
    """bob's PCI grant `name` Active (two approvals), and his extension `more` of it (two approvals
    too), approved by paula (1/2), who then leaves; the grant's end before any extension."""
    policies.pci_approvers(pci, [PAULA, LENA, CAROL])
    pci.request(name, PCI, user=BOB)
    pci.wait_reason("accessrequest", name, "Pending")
    for approver in (PAULA, LENA):
        assert policies.annotate(pci, name, "jitaccess.dev/approved=true", user=approver).returncode == 0
    grant = pci.wait_reason("accessgrant", name, "Active", timeout=30)
    policies.extension_pending(pci, more, name, BOB, reason="INC-133 the close runs long")
    assert _approve_extension(pci, more, PAULA).returncode == 0
    eventually(
        lambda: (pci.get("accessextension", more) or {}).get("status", {}).get("approvalSummary") == "1/2" or None,
        timeout=15,
    )
    disable(pci, disabled, PAULA)
    return str(grant["status"]["expirationTime"])


def test_133_the_approval_that_would_complete_an_extensions_count_waits_for_identity_center_to_answer(
    pci: Jit, disabled: list[str]
) -> None:
    """As for a request: Identity Center does not answer (DescribeUser) at lena's approval of the
    extension paula approved before she left. Refused, nothing recorded, nothing extended; given again
    once Identity Center answers, it is the first that counts, and carol's completes it."""
    name, more = "leaver-ext-outage", "leaver-ext-outage-1"
    ends = _extension_approved_by_paula_who_left(pci, disabled, name, more)

    _refused_while_identity_center_is_silent(pci, lambda: _approve_extension(pci, more, LENA), "accessextension", more)
    assert pci.get("accessgrant", name)["status"]["expirationTime"] == ends

    assert _approve_extension(pci, more, LENA).returncode == 0
    assert "jitaccess.dev/approved-by" not in pci.get("accessextension", more)["metadata"]["annotations"]
    eventually(
        lambda: [a["by"] for a in pci.get("accessextension", more)["status"].get("approvals") or []] == [LENA] or None,
        timeout=15,
        what="lena's approval the one that counts",
    )
    assert pci.get("accessgrant", name)["status"]["expirationTime"] == ends, "extended on paula's approval"
    assert _approve_extension(pci, more, CAROL).returncode == 0
    pci.wait_reason("accessextension", more, "Extended", timeout=30)
    assert pci.get("accessgrant", name)["status"]["expirationTime"] != ends


# --- held: a user name handed to a new hire while the leaver's approved window waits ---------------


def _rename(system: Jit, user_id: str, user_name: str) -> None:
    system.ic.client().update_user(
        IdentityStoreId=system.ic.identity_store_id,
        UserId=user_id,
        Operations=[{"AttributePath": "userName", "AttributeValue": user_name}],
    )


@pytest.fixture
def leaver_renamed(system: Jit) -> Iterator[str]:
    """alice's Identity Center account renamed (its UserId kept, still enabled and in every group) and a
    new alice@example.com created, eligible too: the leaver's UserId. Put back afterwards."""
    leaver = system.ic.user_id(ALICE)
    try:
        yield leaver
    finally:
        system.clean()
        newcomer = system.ic.user_id(ALICE)
        if newcomer != leaver:
            system.ic.client().delete_user(IdentityStoreId=system.ic.identity_store_id, UserId=newcomer)
            _rename(system, leaver, ALICE)


def test_a_leavers_approved_window_is_not_granted_to_the_new_holder_of_the_name(
    system: Jit, leaver_renamed: str
) -> None:
    """alice asks for ledger's role from a start a few seconds ahead; lena approves (`Scheduled`).
    Before the start alice leaves: her account is renamed rather than deleted (so the eligibility
    re-check finds nothing wrong with it), and alice@example.com is a new hire's. At the start
    neither gets the access: the name no longer belongs to the UserId stamped at admission."""
    _window_approved_by_lena(system, "leaver-window")
    _rename(system, leaver_renamed, LEFT)
    newcomer = system.ic.create_user(ALICE, display_name="Alice New")
    system.ic.add_member("prod-eligible", ALICE)
    assert newcomer != leaver_renamed

    ended = system.wait_reason("accessrequest", "leaver-window", "Failed", "NotEligible", timeout=40)
    message = next(c["message"] for c in ended["status"]["conditions"] if c["type"] == "Ready")
    assert f"{ALICE} is no longer the one who asked" in message and newcomer in message, message
    assert ended["spec"]["requesterUserId"] == leaver_renamed
    assert system.members(LEDGER) == set()

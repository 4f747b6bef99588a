"""Eligibility that lapses (issue 16 item 1): a user taken out of an eligibility group, or deleted
from Identity Center, loses every Active grant and every request still waiting, within the
re-check interval, through the one end-grant path (membership removed, audit record written).

The lapse between approval and activation (no grant at all) is attack 24 in
tests/e2e/test_attacks_activation.py; it is not repeated here.

The shared operator re-checks every 5 minutes (the default): these tests run their own, re-checking
every few seconds, in its place (two operators would both act on every object).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from devenv.operator_process import OperatorProcess
from tests.support.harness import OPERATOR_ENV, REQUESTER_ROLE, Jit, eventually

RECHECK_SECONDS = 2.0
# The re-check promises a lapse within an interval and a tenth; the rest is for a loaded machine.
WITHIN = RECHECK_SECONDS * 1.1 + 8.0
ALICE, PAULA, BOB, LENA = (f"{n}@example.com" for n in ("alice", "paula", "bob", "lena"))
DORA = "dora@example.com"
PAYMENTS, LEDGER, ELIGIBLE, PCI = "prod-eng-payments", "prod-eng-ledger", "prod-eligible", "pci-secure-code-trained"
APPROVED = "jitaccess.dev/approved"


@pytest.fixture
def rechecking(jit: Jit, tmp_path: Path) -> Iterator[Jit]:
    """The shared system with its operator replaced by one that re-checks every few seconds."""
    jit.operator.stop()
    env = {**OPERATOR_ENV, "JITACCESS_ELIGIBILITY_RECHECK_SECONDS": str(RECHECK_SECONDS)}
    operator = OperatorProcess(jit.cluster.admin_kubeconfig, jit.ic.env(), tmp_path / "operator.log", extra_env=env)
    try:
        operator.start()
        yield Jit(jit.cluster, jit.ic, operator)
    finally:
        operator.stop()
        jit.operator.start()
        jit.clean()
        for group in (PAYMENTS, LEDGER):
            assert jit.members(group) == set(), f"memberships left behind in {group}"


def remove_from_group(system: Jit, group: str, user: str) -> float:
    """Take `user` out of `group` in Identity Center; when it happened (monotonic)."""
    client, store = system.ic.client(), system.ic.identity_store_id
    membership = client.get_group_membership_id(
        IdentityStoreId=store, GroupId=system.ic.group_id(group), MemberId={"UserId": system.ic.user_id(user)}
    )
    client.delete_group_membership(IdentityStoreId=store, MembershipId=membership["MembershipId"])
    return time.monotonic()


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def eligible_users(system: Jit, entitlement: str) -> list[str]:
    listed = ((system.get("entitlement", entitlement) or {}).get("status") or {}).get("eligibleUsers") or []
    return [str(u["username"]) for u in listed]


def audit_lines(system: Jit, action: str, kind: str, name: str) -> list[str]:
    text = system.operator.log_file.read_text(errors="replace")
    return [line for line in text.splitlines() if f"audit {action} {kind}/{name} " in line]


@pytest.fixture
def bob_eligible_again(jit: Jit) -> Iterator[None]:
    """bob back in prod-eligible afterwards (the emulator is shared by the session)."""
    try:
        yield None
    finally:
        jit.ic.add_member(ELIGIBLE, BOB)


def test_a_user_out_of_an_eligibility_group_loses_both_grants_and_the_request_waiting(
    rechecking: Jit, bob_eligible_again: None
) -> None:
    system = rechecking
    # bob holds ledger (his team's: auto-approved) and payments (approved by paula), and waits for another.
    system.request("lapse-ledger", LEDGER, user=BOB)
    system.request("lapse-payments", PAYMENTS, user=BOB)
    system.wait_reason("accessrequest", "lapse-payments", "Pending")
    system.kubectl("annotate", "accessrequest", "lapse-payments", f"{APPROVED}=true", user=PAULA)
    system.request("lapse-waiting", PAYMENTS, user=BOB)
    for name in ("lapse-ledger", "lapse-payments"):
        system.wait_reason("accessgrant", name, "Active")
    system.wait_reason("accessrequest", "lapse-waiting", "Pending")
    assert BOB in system.members(LEDGER) and BOB in system.members(PAYMENTS)
    eventually(lambda: BOB in eligible_users(system, LEDGER), timeout=WITHIN, what="bob listed as eligible")
    # alice holds payments too, and stays eligible: her grant must not move.
    system.request("lapse-alice", PAYMENTS, user=ALICE)
    system.wait_reason("accessgrant", "lapse-alice", "Active")

    removed = remove_from_group(system, ELIGIBLE, BOB)
    ended = {
        name: system.wait_reason("accessgrant", name, "EligibilityLapsed", timeout=WITHIN)
        for name in ("lapse-ledger", "lapse-payments")
    }
    took = time.monotonic() - removed
    print(f"both grants ended {took:.1f}s after the removal (re-check every {RECHECK_SECONDS}s)")
    for name, grant in ended.items():
        message = ready(grant)["message"]
        assert f"{BOB} is not in the Identity Center group(s) {ELIGIBLE}" in message, message
        assert grant["status"].get("revocationTime"), f"{name}: no revocationTime"
        request = system.wait_reason("accessrequest", name, "EligibilityLapsed")
        assert ELIGIBLE in ready(request)["message"]
    waiting = system.wait_reason("accessrequest", "lapse-waiting", "NotEligible", timeout=WITHIN)
    assert "eligibility lapsed" in ready(waiting)["message"] and ELIGIBLE in ready(waiting)["message"]
    assert system.get("accessgrant", "lapse-waiting") is None

    assert BOB not in system.members(LEDGER) and system.members(PAYMENTS) == {ALICE}
    assert system.ready_reason("accessgrant", "lapse-alice") == "Active"
    for name in ("lapse-ledger", "lapse-payments"):
        eventually(partial(audit_lines, system, "lapsed", "AccessGrant", name), timeout=10, what=f"{name} audited")
        reasons = {e.get("reason") for e in system.events(name, kind="AccessGrant")}
        assert "EligibilityLapsed" in reasons, reasons
    eventually(
        lambda: audit_lines(system, "not-eligible", "AccessRequest", "lapse-waiting"),
        timeout=10,
        what="refusal audited",
    )
    eventually(lambda: BOB not in eligible_users(system, LEDGER), timeout=WITHIN, what="bob no longer listed")
    assert ALICE in eligible_users(system, PAYMENTS)


@pytest.fixture
def dora(jit: Jit) -> Iterator[str]:
    """A new Identity Center user in both eligibility groups, who may request (as team-payments)."""
    user_id = jit.ic.create_user(DORA, display_name="Dora Dunn")
    for group in (ELIGIBLE, PCI):
        jit.ic.add_member(group, DORA)
    jit.kubectl("create", "clusterrolebinding", "e2e-dora", f"--clusterrole={REQUESTER_ROLE}", f"--user={DORA}")
    try:
        yield user_id
    finally:
        jit.kubectl("delete", "clusterrolebinding", "e2e-dora", "--ignore-not-found")
        client = jit.ic.client()
        if any(u["UserId"] == user_id for u in client.list_users(IdentityStoreId=jit.ic.identity_store_id)["Users"]):
            client.delete_user(IdentityStoreId=jit.ic.identity_store_id, UserId=user_id)


def test_a_user_deleted_from_identity_center_loses_every_grant(rechecking: Jit, dora: str) -> None:
    system = rechecking
    manifest = (
        '{"apiVersion": "jitaccess.dev/v1alpha1", "kind": "AccessRequest", "metadata": {"name": "lapse-dora"},'
        ' "spec": {"entitlement": "prod-eng-payments", "reason": "INFRA-1 deleted user"}}'
    )
    eventually(
        lambda: (
            system.kubectl(
                "create", "-f", "-", "--as", DORA, "--as-group", "team-payments", input=manifest, check=False
            ).returncode
            == 0
        ),
        timeout=10,
        what="dora's request admitted (RBAC in effect)",
    )
    system.wait_reason("accessgrant", "lapse-dora", "Active")
    assert DORA in system.members(PAYMENTS)

    system.ic.client().delete_user(IdentityStoreId=system.ic.identity_store_id, UserId=dora)
    grant = system.wait_reason("accessgrant", "lapse-dora", "EligibilityLapsed", timeout=WITHIN)
    assert "no longer exists in Identity Center" in ready(grant)["message"] and dora in ready(grant)["message"]
    system.wait_reason("accessrequest", "lapse-dora", "EligibilityLapsed")
    assert system.members(PAYMENTS) == set()
    eventually(lambda: audit_lines(system, "lapsed", "AccessGrant", "lapse-dora"), timeout=10, what="audited")


@pytest.fixture
def alice_enabled_again(jit: Jit) -> Iterator[None]:
    try:
        yield None
    finally:
        jit.ic.set_user_enabled(ALICE, True)


def test_a_user_disabled_in_identity_center_loses_every_grant_and_the_membership(
    rechecking: Jit, alice_enabled_again: None
) -> None:
    """Disabling keeps the user's group memberships in Identity Center: the operator removes them."""
    system = rechecking
    system.request("lapse-disabled", PAYMENTS, user=ALICE)
    system.wait_reason("accessgrant", "lapse-disabled", "Active")
    system.ic.set_user_enabled(ALICE, False)
    grant = system.wait_reason("accessgrant", "lapse-disabled", "EligibilityLapsed", timeout=WITHIN)
    assert "disabled" in ready(grant)["message"], ready(grant)["message"]
    assert system.members(PAYMENTS) == set()
    assert ALICE in system.members(ELIGIBLE), "disabling took no one out of the eligibility groups"
    eventually(lambda: ALICE not in eligible_users(system, PAYMENTS), timeout=WITHIN, what="alice no longer listed")

"""Two Entitlements that grant the same access: the operator says so on both (`Overlapping`), with
how their rules differ, and stops saying so once the second is gone; a PermissionCatalog tier's
group and the tier assigned directly are the same access too. Real API server, the operator as a
subprocess, Identity Center (and sso-admin) emulated."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devenv.paths import EXAMPLES
from tests.support.harness import Jit, eventually

ALICE = "alice@example.com"
GROUP = "e2e-overlap-prod"
GUARDED = "e2e-overlap-guarded"
QUICK = "e2e-overlap-quick"
#: What the guarded Entitlement requires, as the example prod-eng-payments does.
RULES: dict[str, Any] = {
    "owner": "payments",
    "maxDuration": "4h",
    "eligibility": {"identityCenterGroups": ["prod-eligible", "pci-secure-code-trained"]},
    "reasonPattern": "^[A-Z]+-[0-9]+",
}


def entitlement(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "Entitlement",
        "metadata": {"name": name},
        "spec": {"identityCenter": {"groupName": GROUP}, **spec},
    }


@pytest.fixture
def guarded(system: Jit) -> Iterator[str]:
    """An Entitlement to a group of its own (no other Entitlement grants it), with the example's rules."""
    system.ic.create_group(GROUP)
    system.apply(entitlement(GUARDED, **RULES))
    system.wait_reason("entitlement", GUARDED, "Resolved")
    yield GUARDED
    system.clean()  # its grants, before the Entitlement goes
    system.kubectl("delete", "entitlement", GUARDED, QUICK, "--ignore-not-found")


def overlapping(system: Jit, name: str, reason: str, status: str = "True") -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = system.condition("entitlement", name, "Overlapping")
        return found if found and found["status"] == status and found["reason"] == reason else None

    return eventually(
        check,
        timeout=20,
        what=f"entitlement/{name} Overlapping={status} {reason} (now "
        f"{system.condition('entitlement', name, 'Overlapping')}); log:\n{system.operator.tail(15)}",
    )


def overlapping_gauge(system: Jit, reason: str) -> float:
    """`jitaccess_entitlements_overlapping{reason}` as the operator serves it now (0: no series)."""
    url = f"http://127.0.0.1:{system.operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "jitaccess_entitlements_overlapping" and sample.labels == {"reason": reason}
    )


def reasons(system: Jit, name: str) -> list[tuple[str, str]]:
    return [(e["type"], e["reason"]) for e in system.events(name, kind="Entitlement")]


def test_a_second_entitlement_to_the_same_group_is_flagged_on_both_until_it_is_deleted(
    system: Jit, guarded: str
) -> None:
    assert system.condition("entitlement", guarded, "Overlapping") is None, "alone: no condition at all"
    # Another team's, to the same group, with no eligibility and twice the duration.
    system.apply(entitlement(QUICK, owner="ledger", maxDuration="8h"))
    mine = overlapping(system, guarded, "SameAccess")
    assert mine["message"] == (
        f"Entitlement {QUICK} also grants Identity Center group {GROUP}, under other rules: "
        "owner team payments here, ledger there; "
        "eligibility groups [pci-secure-code-trained, prod-eligible] here, none there; "
        "maxDuration 4h here, 8h there; reasonPattern '^[A-Z]+-[0-9]+' here, none there."
    )
    theirs = overlapping(system, QUICK, "SameAccess")
    assert theirs["message"].startswith(
        f"Entitlement {guarded} also grants Identity Center group {GROUP}, under other rules: "
        "owner team ledger here, payments there; eligibility groups none here, "
    )
    for name in (guarded, QUICK):
        eventually(lambda n=name: ("Warning", "SameAccess") in reasons(system, n) or None, timeout=10)
    eventually(lambda: overlapping_gauge(system, "SameAccess") >= 2 or None, timeout=10, what="the gauge counts both")
    table = system.kubectl("get", "ent", guarded, "-o", "wide").stdout.splitlines()
    header, row = (line.split() for line in table)
    assert dict(zip(header, row, strict=True))["OVERLAPPING"] == "True"
    # Ready is not touched: the guarded Entitlement still grants as before.
    assert system.ready_reason("entitlement", guarded) == "Resolved"
    system.request("alice-while-overlapping", guarded, user=ALICE)
    system.wait_reason("accessrequest", "alice-while-overlapping", "Granted")
    assert system.members(GROUP) == {ALICE}

    # The same rules, written otherwise: still two names for one access, but not a bypass.
    same = {
        **RULES,
        "maxDuration": "240m",
        "eligibility": {"identityCenterGroups": ["pci-secure-code-trained", "prod-eligible"]},
    }
    system.apply(entitlement(QUICK, **same))
    duplicate = overlapping(system, guarded, "Duplicate")
    assert duplicate["message"] == (
        f"Entitlement {QUICK} also grants Identity Center group {GROUP}, under the same rules: keep one of them."
    )
    eventually(lambda: ("Normal", "Duplicate") in reasons(system, guarded) or None, timeout=10)
    eventually(lambda: overlapping_gauge(system, "Duplicate") >= 2 or None, timeout=10, what="2 duplicates")

    system.kubectl("delete", "entitlement", QUICK)
    cleared = overlapping(system, guarded, "NoOverlap", status="False")
    assert cleared["message"] == "no other Entitlement grants the same access any more"
    eventually(lambda: ("Normal", "NoOverlap") in reasons(system, guarded) or None, timeout=10)
    warnings = [r for r in reasons(system, guarded) if r == ("Warning", "SameAccess")]
    assert len(warnings) == 1, "one Warning Event when it started overlapping, not one per pass"
    assert system.ready_reason("entitlement", guarded) == "Resolved"


def test_a_catalog_tiers_group_and_the_tier_assigned_directly_overlap(system: Jit) -> None:
    """examples/04-permissions.yaml assigns payments' production permission set to the group
    prod-eng-payments in 444455556666; examples/05-assignment.yaml assigns it directly there (and in
    555566667777), under the same rules as prod-eng-payments."""
    for group in ("eng-payments", "eng-ledger"):  # the catalogs' baseline groups, not in the seed
        system.ic.create_group(group)
    system.kubectl("apply", "-f", str(EXAMPLES / "04-permissions.yaml"))
    system.kubectl("apply", "-f", str(EXAMPLES / "05-assignment.yaml"))
    direct = overlapping(system, "payments-prod-direct", "Duplicate")
    assert direct["message"] == (
        "Entitlement prod-eng-payments also grants permission set catalog:payments/production in account "
        "444455556666, under the same rules."
    )

    # The tier by its ARN, in the account only the direct one names, with no reason policy: the way
    # round payments-prod-direct's, and nothing prod-eng-payments' group gives.
    def arn() -> str | None:
        production = ((system.get("permissioncatalog", "payments") or {}).get("status") or {}).get("production") or {}
        return production.get("permissionSetArn")

    provisioned = eventually(arn, timeout=60, what=f"payments production provisioned; log:\n{system.operator.tail(20)}")
    by_arn = {"accountAssignment": {"permissionSet": {"arn": provisioned}, "accounts": ["555566667777"]}}
    rules = {"owner": "payments", "maxDuration": "4h", "eligibility": RULES["eligibility"]}
    system.apply({**entitlement(QUICK, **rules), "spec": {"identityCenter": by_arn, **rules}})
    try:
        mine = overlapping(system, QUICK, "SameAccess")
        assert mine["message"] == (
            "Entitlement payments-prod-direct also grants permission set catalog:payments/production in account "
            "555566667777, under other rules: reasonPattern none here, '^[A-Z]+-[0-9]+' there."
        )
        theirs = overlapping(system, "payments-prod-direct", "SameAccess")["message"]
        assert theirs.startswith(f"Entitlement {QUICK} also grants permission set catalog:payments/production")
        assert "Entitlement prod-eng-payments also grants" in theirs, "both others are named"
    finally:
        system.kubectl("delete", "entitlement", QUICK, "--ignore-not-found")
    overlapping(system, "payments-prod-direct", "Duplicate")

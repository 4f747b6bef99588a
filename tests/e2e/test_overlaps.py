"""Two Entitlements that grant the same group: the operator says so on both (`Overlapping`), with
how their rules differ, and stops saying so once the second is gone. Real API server, the operator
as a subprocess, Identity Center emulated."""

from __future__ import annotations

import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.harness import Jit, eventually

ALICE = "alice@example.com"
QUICK = "e2e-payments-quick"


def quick(**spec: Any) -> dict[str, Any]:
    """Another team's Entitlement to the example prod-eng-payments's group, with no eligibility."""
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "Entitlement",
        "metadata": {"name": QUICK},
        "spec": {"owner": "ledger", "identityCenter": {"groupName": "prod-eng-payments"}, "maxDuration": "8h", **spec},
    }


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


def test_a_second_entitlement_to_the_same_group_is_flagged_on_both_until_it_is_deleted(system: Jit) -> None:
    system.apply(quick())
    try:
        mine = overlapping(system, "prod-eng-payments", "SameAccess")
        assert mine["message"] == (
            f"Entitlement {QUICK} also grants Identity Center group prod-eng-payments, under other rules: "
            "owner team payments here, ledger there; "
            "eligibility groups [pci-secure-code-trained, prod-eligible] here, none there; "
            "maxDuration 4h here, 8h there; reasonPattern '^[A-Z]+-[0-9]+' here, none there."
        )
        theirs = overlapping(system, QUICK, "SameAccess")
        assert theirs["message"].startswith(
            "Entitlement prod-eng-payments also grants Identity Center group prod-eng-payments, under other rules: "
            "owner team ledger here, payments there; eligibility groups none here, "
        )
        for name in ("prod-eng-payments", QUICK):
            eventually(lambda n=name: ("Warning", "SameAccess") in reasons(system, n) or None, timeout=10)
        eventually(lambda: overlapping_gauge(system, "SameAccess") == 2 or None, timeout=10, what="the gauge at 2")
        header, row = (
            line.split() for line in system.kubectl("get", "ent", "prod-eng-payments", "-o", "wide").stdout.splitlines()
        )
        assert dict(zip(header, row, strict=True))["OVERLAPPING"] == "True"
        # Ready is not touched: the example still grants as before.
        assert system.ready_reason("entitlement", "prod-eng-payments") == "Resolved"
        system.request("alice-while-overlapping", "prod-eng-payments", user=ALICE)
        system.wait_reason("accessrequest", "alice-while-overlapping", "Granted")
        assert system.members("prod-eng-payments") == {ALICE}

        # The same rules as the example's: still two names for one access, but not a bypass.
        system.apply(
            quick(
                owner="payments",
                maxDuration="240m",
                eligibility={"identityCenterGroups": ["pci-secure-code-trained", "prod-eligible"]},
                reasonPattern="^[A-Z]+-[0-9]+",
            )
        )
        duplicate = overlapping(system, "prod-eng-payments", "Duplicate")
        assert duplicate["message"] == (
            f"Entitlement {QUICK} also grants Identity Center group prod-eng-payments, under the same rules: "
            "keep one of them."
        )
        eventually(lambda: ("Normal", "Duplicate") in reasons(system, "prod-eng-payments") or None, timeout=10)
        eventually(lambda: overlapping_gauge(system, "Duplicate") == 2 or None, timeout=10, what="2 duplicates")
        assert overlapping_gauge(system, "SameAccess") == 0
    finally:
        system.kubectl("delete", "entitlement", QUICK, "--ignore-not-found")

    cleared = overlapping(system, "prod-eng-payments", "NoOverlap", status="False")
    assert cleared["message"] == "no other Entitlement grants the same access any more"
    eventually(lambda: ("Normal", "NoOverlap") in reasons(system, "prod-eng-payments") or None, timeout=10)
    warnings = [r for r in reasons(system, "prod-eng-payments") if r == ("Warning", "SameAccess")]
    assert len(warnings) == 1, "one Warning Event when it started overlapping, not one per pass"
    assert system.ready_reason("entitlement", "prod-eng-payments") == "Resolved"
    eventually(lambda: overlapping_gauge(system, "Duplicate") == 0 or None, timeout=10, what="the gauge back at 0")
    assert overlapping_gauge(system, "SameAccess") == 0

"""Identity Center refusing a removal (AccessDenied: the operator's IAM policy edited) is not given
up on, and is said where the on-call looks (docs/operations.md, "What to watch"): the grant stays
Active and overdue, one `ExpiryOverdue` Warning Event names the AWS error and the IAM action to
check, the log says it once a minute without a traceback; the removal is tried again until the
refusal ends, and the grant then ends as it should have.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.test_metrics import scrape, value
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e
PAYMENTS = "prod-eng-payments"
ALICE = "alice@example.com"


def overdue_event(system: Jit, name: str) -> dict[str, str]:
    def found() -> dict[str, str] | None:
        events = [e for e in system.events(name, "AccessGrant") if e["reason"] == "ExpiryOverdue"]
        return events[0] if events else None

    # 30 s of grace past the grant's end, then the next retry (every 5 s while refused).
    event: dict[str, str] = eventually(found, timeout=60, what=f"an ExpiryOverdue Event on {name}")
    return event


def said_since(system: Jit, start: int) -> str:
    return system.operator.log_file.read_text(errors="replace")[start:]


@pytest.mark.parametrize("ending", ["expiry", "revocation"])
def test_a_removal_identity_center_refuses_is_reported_and_retried(system: Jit, ending: str) -> None:
    name = f"refused-{ending}"
    system.request(name, PAYMENTS, duration="5s" if ending == "expiry" else "1h", user=ALICE)
    system.wait_reason("accessgrant", name, "Active")
    start = len(system.operator.log_file.read_text(errors="replace"))
    system.ic.faults.fail("DeleteGroupMembership", times=100_000, error="AccessDeniedException")
    try:
        if ending == "revocation":
            system.kubectl("annotate", "accessgrant", name, "jitaccess.dev/revoked=true", user=ALICE)
        event = overdue_event(system, name)
        assert event["type"] == "Warning"
        assert "AccessDeniedException" in event["message"], event["message"]
        assert "identitystore:DeleteGroupMembership" in event["message"], event["message"]
        assert ALICE in system.members(PAYMENTS)  # still there: the grant is overdue, not ended
        assert value(scrape(system), "jitaccess_grants_overdue") >= 1
        time.sleep(6)  # a retry or two more: still one Event
        assert [e["reason"] for e in system.events(name, "AccessGrant")].count("ExpiryOverdue") == 1
        said = said_since(system, start)
        lines = [line for line in said.splitlines() if f" {name}: Identity Center refuses it" in line]
        # Once a minute per grant, not at each retry: a WARNING within the grace, an ERROR past it.
        assert [line.split()[2] for line in lines] == ["WARNING", "ERROR"], lines
        assert " ERROR jitaccess.handlers.removals:" in lines[1] and "outlives the grant" in lines[1]
        assert "Traceback" not in said
    finally:
        system.ic.faults.clear()
    # Retried until the refusal ends: the grant ends, its membership removed.
    system.wait_reason("accessgrant", name, "Expired" if ending == "expiry" else "Revoked", timeout=30)
    ended = [e["message"] for e in system.events(name, "AccessGrant") if e["reason"] in ("Expired", "Revoked")]
    assert ended and f"{ALICE} removed from {PAYMENTS}" in ended[0], ended

"""Identity Center refusing a removal (AccessDenied: the operator's IAM policy edited) is not given
up on, and is said where the on-call looks (docs/operations.md, "What to watch"): the grant stays
Active and overdue, one `ExpiryOverdue` Warning Event names the AWS error and the IAM action to
check, the log says it once a minute without a traceback; the removal is tried again until the
refusal ends, and the grant then ends as it should have.
"""

from __future__ import annotations

import time
from typing import Any

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


HOLDING = "refuse-expired-end"
HOLD_REASON = "this grant's end is refused here (test)"


def _refusing_the_end_of(grant: str) -> dict[str, Any]:
    """A ValidatingAdmissionPolicy refusing, as Invalid (422), the operator's status write that ends
    `grant` Expired: a cluster's rule, or a schema bound, that no retry of the same write passes."""
    ended = "has(object.status.conditions) && object.status.conditions.exists(c, c.type == 'Ready' && c.reason == 'Expired')"
    refuses = (
        f"request.resource.resource == 'configmaps' ? object.metadata.name != '{HOLDING}'"
        f" : !(object.metadata.name == '{grant}' && {ended})"
    )
    rules = [
        {
            "apiGroups": ["jitaccess.dev"],
            "apiVersions": ["*"],
            "operations": ["UPDATE"],
            "resources": ["accessgrants/status"],
        },
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]},
    ]
    policy = {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": rules},
        "validations": [{"expression": refuses, "message": HOLD_REASON, "reason": "Invalid"}],
    }
    kinds = (
        ("ValidatingAdmissionPolicy", {"spec": policy}),
        (
            "ValidatingAdmissionPolicyBinding",
            {"spec": {"policyName": HOLDING, "validationActions": ["Deny"]}},
        ),
    )
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": HOLDING}, **rest}
            for kind, rest in kinds
        ],
    }


def test_an_expiry_whose_end_the_api_server_refuses_removes_the_access_and_says_so_rarely(system: Jit) -> None:
    """The API server refuses the grant's `Expired` as invalid (an admission policy): the membership
    is removed on time all the same (it comes first); the refusal is said in one WriteRefused Warning
    Event and an ERROR line a minute naming the grant and the policy's words, with no traceback, and
    tried again every minute, not every 5 s: once the policy goes, the grant ends Expired."""
    name = "refused-end"
    system.apply(_refusing_the_end_of(name))
    try:
        probe = ("create", "configmap", HOLDING, "-n", "default", "--dry-run=server")
        eventually(
            lambda: HOLD_REASON in system.kubectl(*probe, check=False).stderr or None,
            timeout=30,
            what="the policy in force",
        )
        start = len(system.operator.log_file.read_text(errors="replace"))
        system.request(name, PAYMENTS, duration="5s", user=ALICE)
        system.wait_reason("accessgrant", name, "Active")
        eventually(lambda: ALICE not in system.members(PAYMENTS) or None, timeout=15, what="alice out of payments")

        def refused() -> list[dict[str, str]] | None:
            events = [e for e in system.events(name, "AccessGrant") if e["reason"] == "WriteRefused"]
            return events or None

        event = eventually(refused, timeout=15, what=f"a WriteRefused Event on {name}")[0]
        assert event["type"] == "Warning" and HOLD_REASON in event["message"], event
        assert "its membership is removed" in event["message"], event
        time.sleep(12)  # at the 5 s of a retry without back-off, two more tries
        assert [e["reason"] for e in system.events(name, "AccessGrant")].count("WriteRefused") == 1
        grant = system.get("accessgrant", name)
        assert grant is not None
        assert next(c for c in grant["status"]["conditions"] if c["type"] == "Ready")["reason"] == "Active"
        assert ALICE not in system.members(PAYMENTS)
        said = said_since(system, start)
        lines = [line for line in said.splitlines() if name in line and "refused the status of" in line]
        errors = [line for line in lines if " ERROR " in line]
        assert len(errors) == 1 and f"accessgrants/{name}" in errors[0] and HOLD_REASON in errors[0], lines
        assert "Traceback" not in said
    finally:
        system.kubectl(
            "delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", HOLDING, "--ignore-not-found"
        )
    # Still retried, a minute apart: the policy gone, the grant ends Expired.
    system.wait_reason("accessgrant", name, "Expired", timeout=90)

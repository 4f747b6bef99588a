"""Attacks 31-32 of docs/security.md: what people write, and how a decision is spelled.

The same style as `test_attacks.py` (real identities, plain kubectl, the real API server, the
operator's webhooks, RBAC and the admission policy):

- 31: a reason that a terminal would act on (escape sequences, BEL, NUL, a right-to-left override,
  a newline) or that is 10,000 characters long: in the request, the decision or the revocation.
  The webhook refuses it naming the character and its position; with the webhooks gone, the CRD
  schema (`maxLength`, a CEL rule) still refuses it in the request.
- 32: a decision annotation spelled otherwise than exactly `true` (`TRUE`, `"true "`, `yes`, `1`).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.support.harness import WEBHOOK_CONFIGURATION, Jit

pytestmark = pytest.mark.e2e

ALICE, LENA = "alice@example.com", "lena@example.com"
LEDGER = "prod-eng-ledger"
APPROVED, DENIED, REVOKED = "jitaccess.dev/approved", "jitaccess.dev/denied", "jitaccess.dev/revoked"
DECISION_REASON, REVOKE_REASON = "jitaccess.dev/decision-reason", "jitaccess.dev/revoke-reason"
ONLY_TRUE = 'its only value is "true"'


def refused(result: subprocess.CompletedProcess[str], *fragments: str, how: str = "") -> str:
    assert result.returncode != 0, f"{how or result.args} was accepted:\n{result.stdout}"
    for fragment in fragments:
        assert fragment in result.stderr, f"{how}: {fragment!r} not in:\n{result.stderr}"
    return result.stderr


def request_body(name: str, reason: str) -> dict[str, Any]:
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name},
        "spec": {"entitlement": LEDGER, "reason": reason},
    }


def create(system: Jit, name: str, reason: str) -> subprocess.CompletedProcess[str]:
    # JSON, so that every character reaches the API server exactly as written (\u001b, \u0000).
    result: subprocess.CompletedProcess[str] = system.apply(
        json.dumps(request_body(name, reason)), user=ALICE, verb="create", check=False
    )
    return result


def merge_patch(system: Jit, kind: str, name: str, annotations: dict[str, str], user: str) -> Any:
    patch = json.dumps({"metadata": {"annotations": annotations}})
    return system.kubectl("patch", kind, name, "--type", "merge", "-p", patch, user=user, check=False)


def pending_request(system: Jit, name: str) -> None:
    system.request(name, LEDGER, user=ALICE)
    system.wait_reason("accessrequest", name, "Pending")


def no_access(system: Jit, name: str) -> None:
    assert system.get("accessgrant", name) is None
    assert system.members(LEDGER) == set()


# --- 31. a reason a terminal would act on, or without end ---------------------------------------

HOSTILE_REASONS = [
    ("INFRA-1 \x1b[2J\x1b[1;1Happroved by lena", "U+001B (ESC) at character 9"),
    ("INFRA-1 ding\x07", "U+0007 (BEL) at character 13"),
    ("INFRA-1\x00hidden", "U+0000 (NUL) at character 8"),
    ("INFRA-1 \u202egnp.exe", "U+202E (RIGHT-TO-LEFT OVERRIDE) at character 9"),
    ("INFRA-1\nApproved: yes", "U+000A (LF) at character 8"),
    # A second line in Slack, and text invisible to the approver that tools still read.
    ("INC-14 fix\u2028(pre-approved by paula)", "U+2028 (LINE SEPARATOR) at character 11"),
    ("INC-14 fix\U000e0041\U000e0042", "U+E0041 (TAG LATIN CAPITAL LETTER A) at character 11"),
    ("INC-14\u200b fix", "U+200B (ZERO WIDTH SPACE) at character 7"),
    # A byte per character, hidden after a visible one ("emoji smuggling"); a blank nothing collapses.
    ("INC-14 fix\U000e0100\U000e0101", "U+E0100 (VARIATION SELECTOR-17) at character 11"),
    ("INC-14\u2800\u2800 fix", "U+2800 (BRAILLE PATTERN BLANK) at character 7"),
]


@pytest.mark.parametrize(
    ("reason", "named"),
    HOSTILE_REASONS,
    ids=["esc", "bel", "nul", "rlo", "newline", "line-separator", "tags", "zero-width", "variation-selectors", "blank"],
)
def test_31_request_reason_with_terminal_controls_is_refused(system: Jit, reason: str, named: str) -> None:
    refused(create(system, "t-reason", reason), "admission webhook", f"spec.reason holds {named}", "plain text")
    assert system.get("accessrequest", "t-reason") is None
    no_access(system, "t-reason")


def test_31_request_reason_of_ten_thousand_characters_is_refused(system: Jit) -> None:
    reason = "INFRA-1 " + "x" * 9_992
    refused(create(system, "t-long", reason), "spec.reason is 10000 characters long, above the limit of 1024")
    assert system.get("accessrequest", "t-long") is None
    system.kubectl("create", "-f", "-", user=ALICE, input=json.dumps(request_body("t-long", "INFRA-1 " + "x" * 1016)))
    system.wait_reason("accessrequest", "t-long", "Pending")


def test_31_decision_and_revoke_reasons_are_checked_too(system: Jit) -> None:
    pending_request(system, "t-decide")
    for value, named in (("no\x1b]0;pwned\x07", "U+001B (ESC) at character 3"), ("x" * 1025, "1025 characters")):
        refused(
            merge_patch(system, "accessrequest", "t-decide", {DENIED: "true", DECISION_REASON: value}, LENA),
            f"metadata.annotations[{DECISION_REASON}]",
            named,
        )
    # kubectl annotate, as an approver would type it.
    annotate = ("annotate", "accessrequest", "t-decide", f"{APPROVED}=true", f"{DECISION_REASON}=ok\u2066")
    refused(system.kubectl(*annotate, user=LENA, check=False), "U+2066 (LEFT-TO-RIGHT ISOLATE) at character 3")
    assert system.ready_reason("accessrequest", "t-decide") == "Pending"
    no_access(system, "t-decide")
    system.kubectl("annotate", "accessrequest", "t-decide", f"{APPROVED}=true", f"{DECISION_REASON}=ok", user=LENA)
    system.wait_reason("accessgrant", "t-decide", "Active")
    refused(
        merge_patch(system, "accessgrant", "t-decide", {REVOKED: "true", REVOKE_REASON: "done\u202e"}, ALICE),
        f"metadata.annotations[{REVOKE_REASON}] holds U+202E (RIGHT-TO-LEFT OVERRIDE) at character 5",
    )
    assert system.ready_reason("accessgrant", "t-decide") == "Active"
    assert system.members(LEDGER) == {ALICE}


def test_31_the_crd_schema_refuses_them_with_the_webhooks_gone(system: Jit) -> None:
    system.operator.stop()
    try:
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            system.kubectl("delete", kind, WEBHOOK_CONFIGURATION, "--ignore-not-found")
        refused(create(system, "t-schema", "INFRA-1 " + "x" * 9_992), "spec.reason", "Too long", "1024")
        for reason, _ in HOSTILE_REASONS:
            refused(create(system, "t-schema", reason), "reason may not hold control characters", how=repr(reason))
        assert system.get("accessrequest", "t-schema") is None
    finally:
        system.operator.start()


# --- 32. a decision spelled otherwise than exactly "true" ---------------------------------------

VARIANTS = ["TRUE", "True", "true ", " true", "yes", "1"]


def test_32_variants_of_true_neither_approve_nor_deny(system: Jit) -> None:
    pending_request(system, "t-spelling")
    for flag in (APPROVED, DENIED):
        for value in VARIANTS:
            refused(
                system.kubectl("annotate", "accessrequest", "t-spelling", f"{flag}={value}", user=LENA, check=False),
                f"metadata.annotations[{flag}] is {value!r}: {ONLY_TRUE}",
                how=f"{flag}={value!r}",
            )
            refused(merge_patch(system, "accessrequest", "t-spelling", {flag: value}, LENA), ONLY_TRUE, how=value)
    annotations = (system.get("accessrequest", "t-spelling") or {})["metadata"].get("annotations") or {}
    assert APPROVED not in annotations and DENIED not in annotations, annotations
    assert system.ready_reason("accessrequest", "t-spelling") == "Pending"
    no_access(system, "t-spelling")


def test_32_variants_of_true_do_not_revoke(system: Jit) -> None:
    pending_request(system, "t-revoke-spelling")
    system.kubectl("annotate", "accessrequest", "t-revoke-spelling", f"{APPROVED}=true", user=LENA)
    system.wait_reason("accessgrant", "t-revoke-spelling", "Active")
    for value in VARIANTS:
        refused(
            system.kubectl(
                "annotate", "accessgrant", "t-revoke-spelling", f"{REVOKED}={value}", user=ALICE, check=False
            ),
            f"metadata.annotations[{REVOKED}] is {value!r}: {ONLY_TRUE}",
            how=repr(value),
        )
    assert system.ready_reason("accessgrant", "t-revoke-spelling") == "Active"
    assert system.members(LEDGER) == {ALICE}

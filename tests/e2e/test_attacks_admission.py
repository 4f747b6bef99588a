"""Attacks on the admission layers themselves, by someone who may edit them (an administrator's
mistake, a GitOps tool, cert-manager's CA injector): not removing them (attack 18, refused to users),
but narrowing them so that one user's writes are no longer checked while everyone else's are.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_metrics import gauge_becomes, scrape, value
from tests.e2e.test_webhook_trust import GAUGE, healthz
from tests.support.harness import ADMISSION_POLICY_NAME, WEBHOOK_CONFIGURATION, Jit, eventually

pytestmark = pytest.mark.e2e

MALLORY = "mallory@example.com"
VALIDATING = "validatingwebhookconfiguration"
CHECK = "accessrequests-check.jitaccess.dev"
#: The e2e tier's admission policy (examples/admission-policy.yaml), which its operator checks
#: (JITACCESS_ADMISSION_POLICY, tests/e2e/conftest.py).
POLICY = ADMISSION_POLICY_NAME


def logged(system: Jit, *fragments: str, since: int) -> str:
    """The first line of the operator's log after offset `since` holding every fragment (waited for)."""

    def line() -> str | None:
        with system.operator.log_file.open("rb") as log:
            log.seek(since)
            lines = log.read().decode(errors="replace").splitlines()
        return next((text for text in lines if all(f in text for f in fragments)), None)

    return eventually(line, timeout=15, what=f"a log line with {fragments}")


# --- 146. a webhook configuration narrowed so that one user's writes skip the checks -----------------


def test_146_a_match_condition_skipping_one_user_is_reported_and_so_is_its_removal(system: Jit) -> None:
    """A namespaceSelector, as AKS's Admissions Enforcer adds one, stays: it narrows nothing for
    cluster-scoped kinds, and once the matchCondition is gone the webhooks are as defined."""
    assert value(scrape(system), GAUGE) == 1
    configuration = json.loads(system.kubectl("get", VALIDATING, WEBHOOK_CONFIGURATION, "-o", "json").stdout)
    assert configuration["metadata"]["labels"]["admissions.enforcer/disabled"] == "true"
    webhooks = configuration["webhooks"]
    at = next(i for i, webhook in enumerate(webhooks) if webhook["name"] == CHECK)
    assert "matchConditions" not in webhooks[at]  # requests are checked whoever writes them
    skip = {"name": "x", "expression": f'request.userInfo.username != "{MALLORY}"'}
    enforcer = {"matchExpressions": [{"key": "control-plane", "operator": "DoesNotExist"}]}
    since = system.operator.log_file.stat().st_size
    system.kubectl(
        "patch", VALIDATING, WEBHOOK_CONFIGURATION, "--type=json",
        "-p", json.dumps([
            {"op": "add", "path": f"/webhooks/{at}/matchConditions", "value": [skip]},
            {"op": "replace", "path": f"/webhooks/{at}/namespaceSelector", "value": enforcer},
        ]),
    )  # fmt: skip
    try:
        # Checked every 30 s while in place: within that, and a scrape or two.
        gauge_becomes(system, GAUGE, 0, timeout=45)
        line = logged(system, " ERROR ", CHECK, "matchConditions", since=since)
        assert MALLORY in line and "go through unchecked" in line, line
        status, body = healthz(system)
        assert status == 200 and body["webhooks"].startswith("NOT AS DEFINED: "), body
    finally:
        system.kubectl(
            "patch", VALIDATING, WEBHOOK_CONFIGURATION, "--type=json",
            "-p", json.dumps([{"op": "remove", "path": f"/webhooks/{at}/matchConditions"}]),
        )  # fmt: skip
    try:
        # Checked every 5 s while not in place: back within seconds, and said.
        gauge_becomes(system, GAUGE, 1, timeout=20)
        logged(system, " INFO ", "the API server can call this server again", "matchConditions", since=since)
        eventually(lambda: healthz(system)[1]["webhooks"] == "configured", timeout=15)
    finally:
        system.kubectl(
            "patch", VALIDATING, WEBHOOK_CONFIGURATION, "--type=json",
            "-p", json.dumps([{"op": "replace", "path": f"/webhooks/{at}/namespaceSelector", "value": {}}]),
        )  # fmt: skip


def test_146_an_admission_policy_bound_without_deny_is_reported_and_so_is_its_repair(system: Jit) -> None:
    assert value(scrape(system), GAUGE) == 1
    since = system.operator.log_file.stat().st_size
    binding = "validatingadmissionpolicybinding"
    system.kubectl("patch", binding, POLICY, "--type=merge", "-p", '{"spec": {"validationActions": ["Warn"]}}')
    try:
        gauge_becomes(system, GAUGE, 0, timeout=45)
        line = logged(system, " ERROR ", f"ValidatingAdmissionPolicyBinding {POLICY}", "without 'Deny'", since=since)
        assert "lets writes through" in line, line
    finally:
        system.kubectl("patch", binding, POLICY, "--type=merge", "-p", '{"spec": {"validationActions": ["Deny"]}}')
    gauge_becomes(system, GAUGE, 1, timeout=20)
    logged(system, " INFO ", "admission policy in place again", since=since)

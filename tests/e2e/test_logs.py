"""The operator's log: a WARNING or ERROR line means something an operator should look at.

A refused admission is the webhook doing its job, and an expiry is the product working: both
leave INFO audit lines (who, what, why) and nothing louder.
"""

from __future__ import annotations

import re
import subprocess

from devenv.processes import child_env
from tests.support.harness import Jit

ALICE, PAULA, BOB = (f"{n}@example.com" for n in ("alice", "paula", "bob"))
LOUD = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) ")


def _lines_since(system: Jit, offset: int) -> list[str]:
    with system.operator.log_file.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace").splitlines()


def test_refusals_and_expiries_log_no_warnings_or_errors(system: Jit) -> None:
    offset = system.operator.log_file.stat().st_size
    system.request("quiet-pending", "prod-eng-ledger", user=ALICE)
    system.wait_reason("accessrequest", "quiet-pending", "Pending")
    # paula approves for payments, not ledger: the webhook refuses.
    refused = system.kubectl(
        "annotate", "accessrequest", "quiet-pending", "jitaccess.dev/approved=true", user=PAULA, check=False
    )
    assert refused.returncode != 0 and "not an approver" in refused.stderr, refused.stderr
    # Several expiries: the daemon that ends a grant used to be cancelled by kopf most of the time.
    grants = [("quiet-1", "prod-eng-payments", ALICE), ("quiet-2", "prod-eng-payments", PAULA)]
    grants += [("quiet-3", "prod-eng-ledger", BOB), ("quiet-4", "prod-eng-payments", ALICE)]
    for name, entitlement, user in grants:
        system.request(name, entitlement, duration="2s", user=user)
    for name, _, _ in grants:
        system.wait_reason("accessgrant", name, "Expired")
        system.wait_reason("accessrequest", name, "Expired")

    lines = _lines_since(system, offset)
    audit = [line for line in lines if " INFO jitaccess.audit: refused " in line]
    assert any(
        f"refused UPDATE AccessRequest/quiet-pending by {PAULA}" in line and "not an approver" in line for line in audit
    ), "\n".join(lines)
    assert [line for line in lines if LOUD.match(line)] == [], "\n".join(lines)


def test_a_policy_change_is_an_audit_line_naming_who_and_what(system: Jit) -> None:
    """The operator sees only the result of an edit; the webhook sees who made it (here a GitOps
    identity in system:masters: the admin of these tests is trusted as the operator)."""
    gitops = system.cluster.mint_kubeconfig("gitops@example.com", ["system:masters"])

    def as_gitops(*args: str) -> None:
        argv = [str(system.cluster.binary), "kubectl", "--kubeconfig", str(gitops), *args]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60, env=child_env())
        assert done.returncode == 0, done.stderr

    offset = system.operator.log_file.stat().st_size
    as_gitops("patch", "entitlement", "prod-eng-ledger", "--type=merge", "-p", '{"spec":{"maxDuration":"3h"}}')
    try:
        as_gitops("label", "teamownership", "ledger", "x=y")
        lines = _lines_since(system, offset)
        changed = [line for line in lines if "policy changed Entitlement/prod-eng-ledger by gitops@example.com" in line]
        assert len(changed) == 1, "\n".join(lines)
        assert 'spec.maxDuration: "4h" -> "3h"' in changed[0] and " INFO jitaccess.audit: " in changed[0]
        # A label is no policy: no line for it.
        assert not [line for line in lines if "policy changed TeamOwnership/ledger" in line], "\n".join(lines)
    finally:
        as_gitops("patch", "entitlement", "prod-eng-ledger", "--type=merge", "-p", '{"spec":{"maxDuration":"4h"}}')
        as_gitops("label", "teamownership", "ledger", "x-")

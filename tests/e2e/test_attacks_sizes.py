"""Attack 118 of docs/security.md: a team large enough that the operator's own status writes outgrow etcd.

A pending request's status says who may approve it: its Ready, and once it escalates its
Escalated too, each listing the owner team's approvers and backup approvers. A TeamOwnership may
name any number of them (its spec is bounded only by what etcd stores, about 1.5 MB): one with tens
of thousands of backup approver groups made every escalation a status write of twice that list,
which the API server refused, so its requests never escalated (their backup approvers could never
decide) and their status said nothing true. Written as GitOps would (the
admin, `kubectl create`), through the real API server and the operator's webhooks.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e
ALICE, LENA = "alice@example.com", "lena@example.com"
#: Backup approver groups: about 540 KB of spec, a list of 840 KB each time a message names them all.
GROUPS = [f"g{i:05d}" for i in range(60_000)]


# --- 118. a team whose approvers, listed whole, make a status write etcd refuses -------------------


@pytest.fixture
def large_team(system: Jit) -> Iterator[str]:
    """Team e2e-large (lena approves, 60,000 backup approver groups, escalating after 3 s) owning an
    Entitlement to a group of its own."""
    system.ic.create_group("prod-e2e-large")
    team = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "TeamOwnership",
        "metadata": {"name": "e2e-large"},
        "spec": {"members": [LENA], "approvers": [LENA], "backupApproverGroups": GROUPS, "escalateAfter": "3s"},
    }
    entitlement = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "Entitlement",
        "metadata": {"name": "e2e-large-prod"},
        "spec": {"owner": "e2e-large", "identityCenter": {"groupName": "prod-e2e-large"}, "maxDuration": "1h"},
    }
    # Created, not applied: kubectl's last-applied annotation would hold the team's spec a second time.
    system.apply({"apiVersion": "v1", "kind": "List", "items": [team, entitlement]}, verb="create")
    system.wait_reason("entitlement", "e2e-large-prod", "Resolved", timeout=30)
    yield "e2e-large-prod"
    system.clean()
    system.kubectl("delete", "entitlement/e2e-large-prod", "teamownership/e2e-large", "--ignore-not-found")


def test_118_a_request_of_a_team_naming_60000_backup_approver_groups_escalates(system: Jit, large_team: str) -> None:
    """alice's request waits for lena, then escalates: its status names ten and counts the rest."""
    system.request("alice-large-team", large_team, user=ALICE)
    system.wait_reason("accessrequest", "alice-large-team", "Pending")
    waiting = system.condition("accessrequest", "alice-large-team", "Ready") or {}
    assert waiting["message"] == "waiting for approval by an approver of team e2e-large (lena@example.com)"
    escalated = eventually(lambda: system.condition("accessrequest", "alice-large-team", "Escalated"), timeout=30)
    listed = ", ".join(f"group:{g}" for g in GROUPS[:10])
    assert escalated["status"] == "True"
    assert f"({listed} and 59990 more)" in escalated["message"]
    ready = system.condition("accessrequest", "alice-large-team", "Ready") or {}
    assert ready["reason"] == "Pending"
    assert (
        ready["message"]
        == f"waiting for approval by lena@example.com, {', '.join(f'group:{g}' for g in GROUPS[:9])} and 59991 more"
    )
    assert len(str(system.get("accessrequest", "alice-large-team"))) < 20_000

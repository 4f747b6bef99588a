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

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.controlplane import KubectlError
from tests.e2e.test_permission_sets import active_grant, catalog_of
from tests.e2e.test_permission_sets import catalogs as catalogs  # the fixture, for attack 119
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e
ALICE, LENA, PAULA = "alice@example.com", "lena@example.com", "paula@example.com"
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


# --- 119. a user who ends grant after grant early, growing the catalog's denied sessions -----------


def denials_of(user_id: str, count: int, until: dt.datetime) -> dict[str, Any]:
    """A status patch listing `count` denials of `user_id` in payments' production tier, each the size
    of the one a revocation of grant `ps-big-grant` adds: as `count` early ends of grants would."""
    since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = {"userId": user_id, "user": ALICE, "since": since, "until": until.strftime("%Y-%m-%dT%H:%M:%SZ")}
    listed = [{**entry, "grant": f"ps-{n:08d}"} for n in range(count)]
    return {"status": {"production": {"deniedUsers": listed}}}


def patch_status(system: Jit, patch: dict[str, Any], path: Path) -> bool:
    path.write_text(json.dumps(patch, separators=(",", ":")))
    result = system.kubectl(
        "patch", "permissioncatalog", "payments", "--subresource=status", "--type=merge", "--patch-file", str(path)
    )
    return bool(result.returncode == 0)


def test_119_revoking_a_grant_ends_it_whatever_the_user_ended_before(catalogs: Jit, tmp_path: Path) -> None:
    """alice's earlier early ends fill payments' `deniedUsers` to what the API server stores (as a
    script requesting and revoking her own team's role for hours would); her grant is revoked by
    paula all the same: the access goes, and the catalog lists her once."""
    alice = active_grant(catalogs, "ps-big-grant")
    until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)
    fits, over = 0, 20_000  # the most entries a status write may hold, found by halving
    while over - fits > 1:
        middle = (fits + over) // 2
        try:
            stored = patch_status(catalogs, denials_of(alice, middle, until), tmp_path / "patch.json")
        except KubectlError as refused:
            assert "too large" in str(refused.stderr), refused.stderr
            stored = False
        fits, over = (middle, over) if stored else (fits, middle)
    assert patch_status(catalogs, denials_of(alice, fits, until), tmp_path / "patch.json")
    try:
        catalogs.kubectl("annotate", "accessgrant", "ps-big-grant", "jitaccess.dev/revoked=true", user=PAULA)
        catalogs.wait_reason("accessgrant", "ps-big-grant", "Revoked", timeout=30)
        assert catalogs.members("prod-eng-payments") == set()
        denied = catalog_of(catalogs, "payments").status.production
        assert denied is not None and [(d.user, d.grant) for d in denied.denied_users or []] == [
            (ALICE, "ps-big-grant")
        ]
    finally:
        patch_status(catalogs, {"status": {"production": {"deniedUsers": []}}}, tmp_path / "patch.json")

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

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.controlplane import KubectlError
from tests.e2e.test_permission_sets import active_grant, catalog_of
from tests.e2e.test_permission_sets import catalogs as catalogs  # the fixture, for attack 119
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e
ALICE, LENA, PAULA = "alice@example.com", "lena@example.com", "paula@example.com"
#: Backup approver groups: about 540 KB of spec, a list of 840 KB each time a message names them all.
GROUPS = [f"g{i:05d}" for i in range(60_000)]


# --- 118. a team whose approvers, listed whole, make a status write etcd refuses -------------------


TEAM_CRD = Path(__file__).resolve().parents[2] / "crds" / "jitaccess.dev_teamownerships.yaml"


def _unbounded(node: Any) -> Any:
    """A schema without its bounds on lists, maps and strings (as before api.limits bounded them)."""
    if isinstance(node, dict):
        return {k: _unbounded(v) for k, v in node.items() if k not in ("maxItems", "maxLength", "maxProperties")}
    return [_unbounded(v) for v in node] if isinstance(node, list) else node


@contextlib.contextmanager
def stored_before_the_bounds(system: Jit) -> Iterator[None]:
    """While inside, the TeamOwnership CRD is the one before its lists were bounded; the current one after."""
    current = yaml.safe_load(TEAM_CRD.read_text())
    system.apply(_unbounded(current))
    try:
        yield
    finally:
        system.apply(current)


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
    # A team this large is refused now (api.limits): it is one stored before the bounds.
    with stored_before_the_bounds(system):
        eventually(lambda: system.apply(team, verb="create", check=False).returncode == 0, timeout=10)
    system.apply(entitlement, verb="create")
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


def test_118_a_team_over_the_bounds_is_refused_and_one_stored_before_still_changes_and_goes(system: Jit) -> None:
    """A team of 1001 members, or a name of 257 characters, is refused naming the field and the bound;
    one stored before the bounds (an upgrade) keeps them while they stay as they are: another field
    changes, the operator writes its status, a change of the list is refused, and it is deleted."""
    crowd = [f"user{i:04d}@example.com" for i in range(1001)]
    team = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "TeamOwnership",
        "metadata": {"name": "e2e-crowd"},
        "spec": {"members": crowd, "approvers": [LENA], "escalateAfter": "15m"},
    }
    refused = system.apply(team, verb="create", check=False)
    assert refused.returncode != 0
    assert "spec.members: Too many: 1001: must have at most 1000 items" in refused.stderr
    long_name = {**team, "spec": {"members": [LENA], "approvers": [LENA], "backupApprovers": ["b" * 257]}}
    refused = system.apply(long_name, verb="create", check=False)
    assert refused.returncode != 0
    assert "spec.backupApprovers[0]: Too long: may not be more than 256 bytes" in refused.stderr, refused.stderr
    assert system.get("teamownership", "e2e-crowd") is None

    with stored_before_the_bounds(system):
        eventually(lambda: system.apply(team, verb="create", check=False).returncode == 0, timeout=10)
    try:
        system.wait_reason("teamownership", "e2e-crowd", "Valid")
        assert (system.condition("teamownership", "e2e-crowd", "Ready") or {})[
            "message"
        ] == "1001 member(s), 1 approver(s), 0 backup approver(s)"
        # The list unchanged, another field changes (ratcheting), and the operator writes the status.
        system.kubectl("patch", "teamownership", "e2e-crowd", "--type=merge", "-p", '{"spec":{"escalateAfter":"5m"}}')

        def rewritten() -> bool:
            team = system.get("teamownership", "e2e-crowd") or {}
            ready = system.condition("teamownership", "e2e-crowd", "Ready") or {}
            diffbase = team.get("status", {}).get("kopf", {}).get("diffbase") or {}
            diffbase = json.loads(diffbase) if isinstance(diffbase, str) else diffbase
            return ready.get("observedGeneration") == 2 and diffbase.get("spec", {}).get("escalateAfter") == "5m"

        assert eventually(rewritten, timeout=20)
        added = system.kubectl(
            "patch",
            "teamownership",
            "e2e-crowd",
            "--type=json",
            "-p",
            json.dumps([{"op": "add", "path": "/spec/members/-", "value": ALICE}]),
            check=False,
        )
        assert added.returncode != 0 and "spec.members: Too many: 1002: must have at most 1000 items" in added.stderr
        assert len((system.get("teamownership", "e2e-crowd") or {})["spec"]["members"]) == 1001
    finally:
        system.kubectl("delete", "teamownership/e2e-crowd", "--wait=true", "--timeout=30s")
    assert system.get("teamownership", "e2e-crowd") is None


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

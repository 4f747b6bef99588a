"""Every way the product is used, end to end: real API server, real user identities (token
kubeconfigs), the operator as a subprocess with its admission webhooks, Identity Center emulated.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.paths import EXAMPLES
from tests.support.harness import Jit, eventually

ALICE, PAULA, BOB, LENA, CAROL = (f"{n}@example.com" for n in ("alice", "paula", "bob", "lena", "carol"))


def test_gitops_apply_of_examples_makes_everything_ready(system: Jit) -> None:
    system.kubectl("apply", "-f", str(EXAMPLES))
    for team in ("payments", "ledger"):
        assert system.wait_reason("teamownership", team, "Valid")["status"]["conditions"]
    for entitlement in ("prod-eng-payments", "prod-eng-ledger"):
        obj = system.wait_reason("entitlement", entitlement, "Resolved")
        assert obj["status"]["groupId"] == system.ic.group_id(entitlement)
    listed = system.kubectl("get", "jit", user=ALICE).stdout
    assert "teamownership.jitaccess.dev/payments" in listed and "entitlement.jitaccess.dev/prod-eng-ledger" in listed
    # The example catalogs (04-permissions.yaml) are admitted and readable by engineers.
    assert "permissioncatalog.jitaccess.dev/payments" in listed and "permissioncatalog.jitaccess.dev/ledger" in listed


def test_engineer_gets_own_team_role_at_once(system: Jit) -> None:
    manifest = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": "alice-own"},
        "spec": {"entitlement": "prod-eng-payments", "duration": "1h", "reason": "INFRA-2441 fix stuck batch"},
    }
    lookups = system.ic.faults.calls["GetUserId"]
    system.apply(manifest, user=ALICE)
    system.kubectl("wait", "--for=condition=Ready", "accessrequest/alice-own", "--timeout=20s", user=ALICE)
    assert system.members("prod-eng-payments") == {ALICE}
    # Identity Center is asked who alice is once, by admission: the grant, seconds later, takes
    # that fresh answer rather than spending the GetUserId quota on the same question.
    assert system.ic.faults.calls["GetUserId"] - lookups == 1
    request = system.get("accessrequest", "alice-own")
    assert request["spec"]["requester"] == ALICE, "stamped at admission from the authenticated caller"
    table = system.kubectl("get", "accessgrants", user=ALICE).stdout
    header, row = table.splitlines()[0].split(), table.splitlines()[1].split()
    assert header[:5] == ["NAME", "USER", "ENTITLEMENT", "STATUS", "EXPIRES"]
    assert row[:4] == ["alice-own", ALICE, "prod-eng-payments", "Active"]
    expires = dt.datetime.fromisoformat(row[4].replace("Z", "+00:00"))
    assert dt.timedelta(minutes=59) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=1)
    # The request's Events are its decisions; the access it led to is its grant's (same name).
    # Events outlive their objects, and other tests used this name: only these objects' count.
    grant = system.get("accessgrant", "alice-own") or {}

    def reasons(kind: str, obj: dict[str, Any]) -> set[str] | None:
        uid = obj["metadata"]["uid"]
        return {e["reason"] for e in system.events("alice-own", kind) if e["involvedObject"].get("uid") == uid} or None

    assert eventually(lambda: reasons("AccessGrant", grant), what="the grant's Event") == {"Granted"}
    assert eventually(lambda: reasons("AccessRequest", request), what="the request's Event") == {"AutoApproved"}


def test_other_team_role_waits_for_its_tech_lead(system: Jit) -> None:
    system.request("alice-ledger", "prod-eng-ledger", user=ALICE)
    pending = system.wait_reason("accessrequest", "alice-ledger", "Pending")
    assert LENA in next(c["message"] for c in pending["status"]["conditions"] if c["type"] == "Ready")
    assert system.members("prod-eng-ledger") == set()
    system.kubectl("annotate", "accessrequest", "alice-ledger", "jitaccess.dev/approved=true", user=LENA)
    granted = system.wait_reason("accessrequest", "alice-ledger", "Granted")
    assert granted["status"]["approvedBy"] == LENA
    assert granted["metadata"]["annotations"]["jitaccess.dev/approved-by"] == LENA
    assert system.members("prod-eng-ledger") == {ALICE}


def test_tech_lead_denies_with_a_reason(system: Jit) -> None:
    system.request("alice-ledger-no", "prod-eng-ledger", user=ALICE)
    system.wait_reason("accessrequest", "alice-ledger-no", "Pending")
    system.kubectl(
        "annotate",
        "accessrequest",
        "alice-ledger-no",
        "jitaccess.dev/denied=true",
        "jitaccess.dev/decision-reason=change freeze",
        user=LENA,
    )
    denied = system.wait_reason("accessrequest", "alice-ledger-no", "Denied")
    assert denied["status"]["deniedBy"] == LENA
    assert "change freeze" in next(c["message"] for c in denied["status"]["conditions"] if c["type"] == "Denied")
    assert system.get("accessgrant", "alice-ledger-no") is None
    assert system.members("prod-eng-ledger") == set()


@pytest.fixture
def fast_team(system: Jit) -> str:
    """A team that escalates after three seconds, owning an entitlement to a group of its own (the
    ledger catalog's production group is team ledger's alone)."""
    system.ic.create_group("prod-e2e-fast")
    system.apply("""
apiVersion: jitaccess.dev/v1alpha1
kind: TeamOwnership
metadata: {name: e2e-fast}
spec: {members: [lena@example.com], approvers: [lena@example.com], backupApprovers: [carol@example.com],
       escalateAfter: 3s}
---
apiVersion: jitaccess.dev/v1alpha1
kind: Entitlement
metadata: {name: e2e-fast-prod}
spec: {owner: e2e-fast, identityCenter: {groupName: prod-e2e-fast}, maxDuration: 1h}
""")
    system.wait_reason("entitlement", "e2e-fast-prod", "Resolved")
    return "e2e-fast-prod"


def test_pending_request_escalates_to_the_backup_approver(system: Jit, fast_team: str) -> None:
    system.request("alice-escalates", fast_team, user=ALICE)
    system.wait_reason("accessrequest", "alice-escalates", "Pending")
    escalated = eventually(lambda: system.condition("accessrequest", "alice-escalates", "Escalated"), timeout=15)
    assert escalated["status"] == "True" and CAROL in escalated["message"]
    assert "Escalated" in {e["reason"] for e in system.events("alice-escalates")}
    system.kubectl("annotate", "accessrequest", "alice-escalates", "jitaccess.dev/approved=true", user=CAROL)
    granted = system.wait_reason("accessrequest", "alice-escalates", "Granted")
    assert granted["status"]["approvedBy"] == CAROL
    assert system.members("prod-e2e-fast") == {ALICE}
    # An Entitlement with an active grant is kept until the grant ends (test_attacks_deletion).
    system.clean()
    system.kubectl("delete", "entitlement", fast_team)
    system.kubectl("delete", "teamownership", "e2e-fast")


def test_an_escalation_stands_when_the_team_lengthens_escalate_after(system: Jit, fast_team: str) -> None:
    """The request escalates to carol (backup approver); then a pull request sets the team's
    escalateAfter to 1h. Carol, told to act, approves: admitted, and granted. It used to be admitted
    and recorded Approved, and then the request Failed ("carol is a backup approver: they may decide
    only after the request has escalated"), the operator computing escalation from the new setting."""
    try:
        system.request("alice-kept-escalated", fast_team, user=ALICE)
        system.wait_reason("accessrequest", "alice-kept-escalated", "Pending")
        eventually(
            lambda: (
                (system.condition("accessrequest", "alice-kept-escalated", "Escalated") or {}).get("status") == "True"
                or None
            ),
            timeout=15,
            what="escalated",
        )
        system.kubectl("patch", "teamownership", "e2e-fast", "--type=merge", "-p", '{"spec":{"escalateAfter":"1h"}}')

        def seen() -> bool | None:
            team = system.get("teamownership", "e2e-fast") or {}
            ready = system.condition("teamownership", "e2e-fast", "Ready") or {}
            return ready.get("observedGeneration") == team.get("metadata", {}).get("generation") or None

        eventually(seen, timeout=15, what="the operator has the team's new escalateAfter")
        system.kubectl("annotate", "accessrequest", "alice-kept-escalated", "jitaccess.dev/approved=true", user=CAROL)
        ended = system.wait_reason("accessrequest", "alice-kept-escalated", "Granted", "Failed")
        ready = next(c for c in ended["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "Granted", ready
        assert ended["status"]["approvedBy"] == CAROL
        assert system.members("prod-e2e-fast") == {ALICE}
    finally:
        system.clean()
        system.kubectl("delete", "entitlement", fast_team, "--ignore-not-found")
        system.kubectl("delete", "teamownership", "e2e-fast", "--ignore-not-found")


def test_short_grant_expires_and_stays_listed(system: Jit) -> None:
    system.request("alice-short", "prod-eng-payments", duration="3s", user=ALICE)
    system.wait_reason("accessgrant", "alice-short", "Active")
    assert system.members("prod-eng-payments") == {ALICE}
    system.wait_reason("accessgrant", "alice-short", "Expired", timeout=15)
    assert system.members("prod-eng-payments") == set()
    system.wait_reason("accessrequest", "alice-short", "Expired")
    history = system.kubectl("get", "accessgrants", user=ALICE).stdout
    assert re.search(r"alice-short\s+alice@example.com\s+prod-eng-payments\s+Expired", history)


def test_grantee_ends_own_access_early_by_annotation(system: Jit) -> None:
    system.request("alice-done", "prod-eng-payments", user=ALICE)
    system.wait_reason("accessgrant", "alice-done", "Active")
    system.kubectl("annotate", "accessgrant", "alice-done", "jitaccess.dev/revoked=true", user=ALICE)
    revoked = system.wait_reason("accessgrant", "alice-done", "Revoked")
    assert revoked["status"]["revokedBy"] == ALICE and revoked["status"]["revocationTime"]
    system.wait_reason("accessrequest", "alice-done", "Revoked")
    assert system.members("prod-eng-payments") == set()


def test_approver_revokes_with_a_reason_then_deletes_the_ended_grant(system: Jit) -> None:
    system.request("alice-deleted", "prod-eng-payments", user=ALICE)
    system.wait_reason("accessgrant", "alice-deleted", "Active")
    # A live grant is revoked, which names who and why; deleting it is refused (attack 124).
    system.kubectl(
        "annotate", "accessgrant", "alice-deleted", "jitaccess.dev/revoked=true",
        "jitaccess.dev/revoke-reason=INC-7 done", user=PAULA,
    )  # fmt: skip
    revoked = system.wait_reason("accessgrant", "alice-deleted", "Revoked")
    assert revoked["status"]["revokedBy"] == PAULA
    assert system.members("prod-eng-payments") == set()
    system.wait_reason("accessrequest", "alice-deleted", "Revoked")
    offset = system.operator.log_file.stat().st_size
    system.kubectl("delete", "accessgrant", "alice-deleted", "--timeout=30s", user=PAULA)
    assert system.get("accessgrant", "alice-deleted") is None
    # The deletion left no stamp on the grant: the webhook's audit line names who deleted it.
    with system.operator.log_file.open("rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    deleted = f"AccessGrant alice-deleted ({ALICE}, Revoked) deleted by {PAULA}"
    assert [line for line in lines if deleted in line and " INFO jitaccess.audit: " in line], "\n".join(lines)


def test_overlapping_grants_keep_access_until_the_last_ends(system: Jit) -> None:
    system.request("alice-overlap-short", "prod-eng-payments", duration="3s", user=ALICE)
    system.request("alice-overlap-long", "prod-eng-payments", duration="1h", user=ALICE)
    system.wait_reason("accessgrant", "alice-overlap-short", "Active")
    system.wait_reason("accessgrant", "alice-overlap-long", "Active")
    system.wait_reason("accessgrant", "alice-overlap-short", "Expired", timeout=15)
    assert system.members("prod-eng-payments") == {ALICE}
    expired_event = next(e for e in system.events("alice-overlap-short", "AccessGrant") if e["reason"] == "Expired")
    assert "membership kept for alice-overlap-long" in expired_event["message"]
    system.kubectl("annotate", "accessgrant", "alice-overlap-long", "jitaccess.dev/revoked=true", user=ALICE)
    system.wait_reason("accessgrant", "alice-overlap-long", "Revoked")
    assert system.members("prod-eng-payments") == set()


def _past(system: Jit, grant: str) -> bool | None:
    obj = system.get("accessgrant", grant) or {}
    expiry = dt.datetime.fromisoformat(obj["status"]["expirationTime"].replace("Z", "+00:00"))
    return dt.datetime.now(dt.UTC) > expiry + dt.timedelta(seconds=1) or None


def test_operator_killed_while_grants_expire_revokes_them_on_restart(system: Jit) -> None:
    system.request("crash-alice-short", "prod-eng-payments", duration="3s", user=ALICE)
    system.request("crash-alice-long", "prod-eng-payments", duration="1h", user=ALICE)
    system.request("crash-bob-short", "prod-eng-ledger", duration="3s", user=BOB)
    for name in ("crash-alice-short", "crash-alice-long", "crash-bob-short"):
        system.wait_reason("accessgrant", name, "Active")
    system.operator.kill()
    for name in ("crash-alice-short", "crash-bob-short"):
        eventually(lambda n=name: _past(system, n), timeout=15, what=f"{name} overdue while the operator is down")
    assert system.members("prod-eng-ledger") == {BOB}, "nobody expired it while the operator was down"
    system.operator.start()
    system.wait_reason("accessgrant", "crash-bob-short", "Expired", timeout=10)
    system.wait_reason("accessgrant", "crash-alice-short", "Expired", timeout=10)
    # Ended as soon as the operator started, before kopf's watch began: their Events follow.
    for name in ("crash-alice-short", "crash-bob-short"):
        eventually(
            lambda n=name: any(e["reason"] == "Expired" for e in system.events(n, "AccessGrant")) or None,
            timeout=10,
            what=f"the Expired Event of {name}",
        )
    assert system.members("prod-eng-ledger") == set()
    assert system.members("prod-eng-payments") == {ALICE}, "the long grant still holds payments"
    assert system.ready_reason("accessgrant", "crash-alice-long") == "Active"
    memberships = system.ic.client().list_group_memberships(
        IdentityStoreId=system.ic.identity_store_id, GroupId=system.ic.group_id("prod-eng-payments")
    )
    assert len(memberships["GroupMemberships"]) == 1, "nothing was granted twice"


def _bad_examples() -> list[Path]:
    return sorted((EXAMPLES / "bad").glob("*.yaml"))


def test_every_example_passes_server_side_dry_run(system: Jit) -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        system.kubectl("apply", "--dry-run=server", "-f", str(path))
    for path in sorted((EXAMPLES / "requests").glob("*.yaml")):
        system.kubectl("create", "--dry-run=server", "-f", str(path), user=ALICE)


@pytest.mark.parametrize("path", _bad_examples(), ids=lambda p: p.stem)
def test_bad_examples_are_refused_with_their_message(system: Jit, path: Path) -> None:
    expected = re.search(r"^# expect: (.+)$", path.read_text(), re.M)
    assert expected, f"{path.name} must say what it expects in a '# expect:' line"
    doc = yaml.safe_load(path.read_text())
    user = ALICE if doc["kind"] == "AccessRequest" else None
    result = system.kubectl("create", "--dry-run=server", "-f", str(path), user=user, check=False)
    assert result.returncode != 0, f"{path.name} was accepted"
    assert expected.group(1) in result.stderr, result.stderr


def test_concurrent_requests_of_many_users_all_granted(system: Jit) -> None:
    users = [ALICE, PAULA]
    errors: list[BaseException] = []

    def ask(user: str, i: int) -> None:
        try:
            system.request(f"burst-{user.split('@')[0]}-{i}", "prod-eng-payments", duration="1h", user=user)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(u, i)) for u in users for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for user in users:
        for i in range(3):
            system.wait_reason("accessgrant", f"burst-{user.split('@')[0]}-{i}", "Active")
    assert system.members("prod-eng-payments") == set(users)

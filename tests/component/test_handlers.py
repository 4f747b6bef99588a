"""The kopf handlers in-process (`kopf.testing.KopfRunner`) against a real API server and the
strict Identity Center emulator: the lifecycle rules and every bad input of the core issue.

No admission webhook runs in this tier, so requests are created by the admin with
`spec.requester` already set, as the webhook would stamp it; the end-to-end tier adds the
webhooks and real user identities.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kubernetes
import pytest
from kopf.testing import KopfRunner
from prometheus_client.parser import text_string_to_metric_families

from devenv.controlplane import ControlPlane
from devenv.emulator import IdentityCenterEmulator
from devenv.paths import EXAMPLES, REPO
from devenv.processes import free_port
from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.handlers import runtime as runtime_module
from tests.support.harness import eventually


class Local:
    """The cluster and emulator with the in-process operator, and the verbs these tests use."""

    def __init__(self, cluster: ControlPlane, ic: IdentityCenterEmulator) -> None:
        self.cluster, self.ic = cluster, ic

    def apply(self, text: str) -> None:
        self.cluster.kubectl("apply", "-f", "-", input=text)

    def request(
        self,
        name: str,
        entitlement: str = "prod-eng-payments",
        requester: str = "alice@example.com",
        duration: str | None = "1h",
        reason: str = "INFRA-7 component test",
        **annotations: str,
    ) -> None:
        lines = [
            "apiVersion: jitaccess.dev/v1alpha1",
            "kind: AccessRequest",
            "metadata:",
            f"  name: {name}",
        ]
        if annotations:
            lines.append("  annotations:")
            lines += [f'    "{k}": "{v}"' for k, v in annotations.items()]
        lines += ["spec:", f"  entitlement: {entitlement}", f"  requester: {requester}", f"  reason: '{reason}'"]
        if duration:
            lines.append(f"  duration: '{duration}'")
        self.apply("\n".join(lines) + "\n")

    def get(self, kind: str, name: str) -> dict[str, Any]:
        import json

        result = self.cluster.kubectl("get", kind, name, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else {}

    def ready(self, kind: str, name: str) -> dict[str, Any] | None:
        return next(
            (c for c in self.get(kind, name).get("status", {}).get("conditions", []) if c["type"] == "Ready"), None
        )

    def wait(self, kind: str, name: str, reason: str, timeout: float = 20) -> dict[str, Any]:
        return eventually(
            lambda: (c := self.ready(kind, name)) and c["reason"] == reason and c,
            timeout,
            what=f"{kind}/{name} Ready.reason == {reason}; is {self.ready(kind, name)}",
        )

    def annotate(self, kind: str, name: str, **annotations: str) -> None:
        pairs = [f"{k.replace('__', '/').replace('_', '-')}={v}" for k, v in annotations.items()]
        self.cluster.kubectl("annotate", "--overwrite", kind, name, *pairs)


def prepare(control_plane: ControlPlane, patcher: pytest.MonkeyPatch, **env: str) -> IdentityCenterEmulator:
    """For handlers run in-process: a seeded emulator of their own, the environment that points
    them at it and at `control_plane` (with `env` on top), and the CRDs installed."""
    emulator = IdentityCenterEmulator().start()
    emulator.seed(EXAMPLES / "identitycenter" / "seed.yaml")
    for key, value in {
        **emulator.env(),
        "KUBECONFIG": str(control_plane.admin_kubeconfig),
        "JITACCESS_MIN_DURATION_SECONDS": "1",
        **env,
    }.items():
        patcher.setenv(key, value)
    control_plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    control_plane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    return emulator


@contextmanager
def in_process_operator(control_plane: ControlPlane, patcher: pytest.MonkeyPatch, **env: str) -> Iterator[Local]:
    """The operator's handlers run in-process over the examples' teams and entitlements."""
    emulator = prepare(control_plane, patcher, **{"JITACCESS_PENDING_TIMEOUT_SECONDS": "8", **env})
    system = Local(control_plane, emulator)
    with KopfRunner(["run", "-A", "--standalone", "-m", "jitaccess.handlers"], timeout=60) as runner:
        system.cluster.kubectl(
            "apply", "-f", str(EXAMPLES / "01-teams.yaml"), "-f", str(EXAMPLES / "02-entitlements.yaml")
        )
        system.wait("entitlement", "prod-eng-payments", "Resolved")
        try:
            yield system
        finally:
            # End every grant while the operator still runs, so its finalizer can clean up.
            control_plane.kubectl("delete", "accessgrants,accessrequests", "--all", "--timeout=60s", check=False)
            control_plane.kubectl("delete", "entitlements,teamownerships", "--all", "--timeout=60s", check=False)
    emulator.stop()
    assert runner.exception is None, runner.output[-3000:]
    assert "Traceback" not in runner.output, runner.output[-5000:]


@pytest.fixture(scope="module")
def local(control_plane: ControlPlane, monkeypatch_module: pytest.MonkeyPatch) -> Iterator[Local]:
    with in_process_operator(control_plane, monkeypatch_module, JITACCESS_METRICS_PORT=str(METRICS_PORT)) as system:
        yield system


METRICS_PORT = free_port()


def scraped(name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The in-process operator's samples of metric `name`, by their labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patcher:
        yield patcher


def test_owner_team_member_is_granted_and_expires(local: Local) -> None:
    local.request("c-auto", duration="3s")
    grant = local.wait("accessgrant", "c-auto", "Active")
    assert local.ic.members_of("prod-eng-payments") == {"alice@example.com"}
    request = local.get("accessrequest", "c-auto")
    assert {c["type"]: c["reason"] for c in request["status"]["conditions"]} == {
        "Approved": "AutoApproved",
        "Ready": "Granted",
    }
    assert request["status"]["grant"] == "c-auto"
    assert request["status"]["expirationTime"] == local.get("accessgrant", "c-auto")["status"]["expirationTime"]
    assert grant["status"] == "True"
    local.wait("accessgrant", "c-auto", "Expired")
    local.wait("accessrequest", "c-auto", "Expired")
    assert local.ic.members_of("prod-eng-payments") == set()


def test_outsider_waits_then_approver_approves(local: Local) -> None:
    local.request("c-pending", entitlement="prod-eng-ledger", duration="1h")
    pending = local.wait("accessrequest", "c-pending", "Pending")
    assert "lena@example.com" in pending["message"]
    local.annotate(
        "accessrequest",
        "c-pending",
        **{"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": "lena@example.com"},
    )
    local.wait("accessrequest", "c-pending", "Granted")
    assert local.get("accessrequest", "c-pending")["status"]["approvedBy"] == "lena@example.com"
    assert local.ic.members_of("prod-eng-ledger") == {"alice@example.com"}
    local.annotate(
        "accessgrant", "c-pending", **{"jitaccess.dev/revoked": "true", "jitaccess.dev/revoked-by": "lena@example.com"}
    )
    local.wait("accessgrant", "c-pending", "Revoked")
    local.wait("accessrequest", "c-pending", "Revoked")
    assert local.ic.members_of("prod-eng-ledger") == set()
    assert local.get("accessgrant", "c-pending")["status"]["revokedBy"] == "lena@example.com"


def test_denied_request_ignores_a_later_approval(local: Local) -> None:
    local.request("c-denied", entitlement="prod-eng-ledger")
    local.wait("accessrequest", "c-denied", "Pending")
    local.annotate(
        "accessrequest",
        "c-denied",
        **{
            "jitaccess.dev/denied": "true",
            "jitaccess.dev/denied-by": "lena@example.com",
            "jitaccess.dev/decision-reason": "not during the freeze",
        },
    )
    denied = local.wait("accessrequest", "c-denied", "Denied")
    assert "not during the freeze" in denied["message"]
    local.annotate(
        "accessrequest",
        "c-denied",
        **{"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": "lena@example.com"},
    )
    eventually(lambda: local.get("accessrequest", "c-denied")["metadata"]["annotations"].get("jitaccess.dev/approved"))
    assert local.ready("accessrequest", "c-denied")["reason"] == "Denied"
    assert local.get("accessgrant", "c-denied") == {}
    assert local.ic.members_of("prod-eng-ledger") == set()


def test_overlapping_grants_share_one_membership(local: Local) -> None:
    local.request("c-short", duration="2s")
    local.request("c-long", duration="1h")
    local.wait("accessgrant", "c-short", "Active")
    local.wait("accessgrant", "c-long", "Active")
    local.wait("accessgrant", "c-short", "Expired")
    assert local.ic.members_of("prod-eng-payments") == {"alice@example.com"}, "the long grant still holds it"
    local.cluster.kubectl("delete", "accessgrant", "c-long", "--timeout=30s")
    eventually(lambda: local.ic.members_of("prod-eng-payments") == set() or None, what="membership gone")


@pytest.mark.parametrize(
    ("name", "spec", "reason", "text"),
    [
        (
            "c-unknown-ent",
            {"entitlement": "prod-eng-nothing"},
            "Invalid",
            "names 'prod-eng-nothing', which does not exist",
        ),
        ("c-zero", {"duration": "0s"}, "Invalid", "zero: a duration must be positive"),
        ("c-too-long", {"duration": "999h"}, "Invalid", "above the entitlement's maxDuration 4h"),
        ("c-bad-reason", {"reason": "because"}, "Invalid", "does not match the entitlement's reasonPattern"),
        ("c-not-eligible", {"requester": "eve@example.com"}, "NotEligible", "prod-eligible, pci-secure-code-trained"),
        ("c-unknown-user", {"requester": "ghost@example.com"}, "NotEligible", "is not a user in Identity Center"),
    ],
)
def test_bad_input_gets_a_message_and_no_access(
    local: Local, name: str, spec: dict[str, str], reason: str, text: str
) -> None:
    local.request(name, **spec)
    ready = local.wait("accessrequest", name, reason)
    assert text in ready["message"]
    assert local.get("accessgrant", name) == {}
    assert local.ic.members_of("prod-eng-payments") == set()


def test_owner_team_missing_and_team_without_approvers(local: Local) -> None:
    local.apply("""
apiVersion: jitaccess.dev/v1alpha1
kind: TeamOwnership
metadata: {name: c-leaderless}
spec: {members: [lena@example.com]}
---
apiVersion: jitaccess.dev/v1alpha1
kind: Entitlement
metadata: {name: c-leaderless-prod}
spec: {owner: c-leaderless, identityCenter: {groupName: prod-eng-ledger}}
---
apiVersion: jitaccess.dev/v1alpha1
kind: Entitlement
metadata: {name: c-orphan}
spec: {owner: c-no-such-team, identityCenter: {groupName: prod-eng-ledger}}
""")
    team = local.wait("teamownership", "c-leaderless", "NoApprovers")
    assert "set spec.approvers" in team["message"]
    assert "does not exist" in local.wait("entitlement", "c-orphan", "OwnerNotFound")["message"]
    local.request("c-to-orphan", entitlement="c-orphan")
    assert (
        "owner team 'c-no-such-team' does not exist" in local.wait("accessrequest", "c-to-orphan", "Invalid")["message"]
    )
    local.request("c-to-leaderless", entitlement="c-leaderless-prod")
    assert "nobody can approve" in local.wait("accessrequest", "c-to-leaderless", "Invalid")["message"]
    local.cluster.kubectl("delete", "entitlement", "c-orphan", "c-leaderless-prod")
    local.cluster.kubectl("delete", "teamownership", "c-leaderless")
    assert local.ic.members_of("prod-eng-ledger") == set()


def test_entitlement_needing_more_approvals_than_its_team_can_give_is_not_ready(local: Local) -> None:
    local.apply("""
apiVersion: jitaccess.dev/v1alpha1
kind: TeamOwnership
metadata: {name: c-small}
spec: {members: [lena@example.com], approvers: [lena@example.com], backupApprovers: [carol@example.com]}
---
apiVersion: jitaccess.dev/v1alpha1
kind: Entitlement
metadata: {name: c-small-prod}
spec: {owner: c-small, identityCenter: {groupName: prod-eng-ledger}, approval: {approvalsRequired: 3}}
""")
    short = local.wait("entitlement", "c-small-prod", "TooFewApprovers")
    assert "approvalsRequired is 3, but team c-small names 2 who may approve" in short["message"]
    assert (local.get("entitlement", "c-small-prod").get("status") or {}).get("groupId")  # still resolved
    local.cluster.kubectl(
        "patch", "entitlement", "c-small-prod", "--type=merge", "-p", '{"spec":{"approval":{"approvalsRequired":2}}}'
    )
    local.wait("entitlement", "c-small-prod", "Resolved")
    local.cluster.kubectl("delete", "entitlement", "c-small-prod")
    local.cluster.kubectl("delete", "teamownership", "c-small")


def test_entitlement_whose_group_does_not_exist(local: Local) -> None:
    local.apply("""
apiVersion: jitaccess.dev/v1alpha1
kind: Entitlement
metadata: {name: c-no-group}
spec: {owner: payments, identityCenter: {groupName: prod-eng-vanished}}
""")
    assert "prod-eng-vanished" in local.wait("entitlement", "c-no-group", "GroupNotFound")["message"]
    # The readiness gauge, from the operator's watch of Entitlements.
    not_ready = (("ready", "false"), ("reason", "GroupNotFound"))
    eventually(lambda: scraped("jitaccess_entitlements").get(not_ready) == 1, 10, what="the gauge counts it")
    assert scraped("jitaccess_grants_overdue") == {(): 0}
    local.request("c-to-no-group", entitlement="c-no-group", reason="INFRA-1 x")
    failed = local.wait("accessgrant", "c-to-no-group", "Failed")
    assert "does not exist" in failed["message"]
    local.wait("accessrequest", "c-to-no-group", "Failed")
    local.cluster.kubectl("delete", "entitlement", "c-no-group")
    eventually(lambda: not_ready not in scraped("jitaccess_entitlements"), 10, what="the deleted one is not counted")


def test_group_deleted_in_identity_center_while_granted(local: Local) -> None:
    group_id = local.ic.create_group("prod-eng-doomed")
    local.apply("""
apiVersion: jitaccess.dev/v1alpha1
kind: Entitlement
metadata: {name: c-doomed}
spec: {owner: payments, identityCenter: {groupName: prod-eng-doomed}}
""")
    local.wait("entitlement", "c-doomed", "Resolved")
    local.request("c-doomed-1", entitlement="c-doomed", duration="4s")
    local.wait("accessgrant", "c-doomed-1", "Active")
    assert local.ic.members_of("prod-eng-doomed") == {"alice@example.com"}
    local.ic.client().delete_group(IdentityStoreId=local.ic.identity_store_id, GroupId=group_id)
    # Expiry still completes: a membership of a deleted group is gone already.
    local.wait("accessgrant", "c-doomed-1", "Expired")
    local.wait("entitlement", "c-doomed", "GroupNotFound", timeout=90)
    local.cluster.kubectl("delete", "entitlement", "c-doomed")


def test_pending_request_times_out(local: Local) -> None:
    local.request("c-timeout", entitlement="prod-eng-ledger")
    local.wait("accessrequest", "c-timeout", "Pending")
    assert "nobody decided within 8s" in local.wait("accessrequest", "c-timeout", "TimedOut", timeout=20)["message"]
    assert local.get("accessgrant", "c-timeout") == {}


def test_escalation_lets_the_backup_approver_approve(local: Local) -> None:
    local.apply("""
apiVersion: jitaccess.dev/v1alpha1
kind: TeamOwnership
metadata: {name: c-fast}
spec: {members: [lena@example.com], approvers: [lena@example.com], backupApprovers: [carol@example.com], escalateAfter: 2s}
---
apiVersion: jitaccess.dev/v1alpha1
kind: Entitlement
metadata: {name: c-fast-prod}
spec: {owner: c-fast, identityCenter: {groupName: prod-eng-ledger}}
""")
    local.wait("entitlement", "c-fast-prod", "Resolved")
    local.request("c-escalate", entitlement="c-fast-prod")
    local.wait("accessrequest", "c-escalate", "Pending")
    # Before escalation the backup approver's approval does not count.
    local.annotate(
        "accessrequest",
        "c-escalate",
        **{"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": "carol@example.com"},
    )
    escalated = eventually(
        lambda: next(
            (c for c in local.get("accessrequest", "c-escalate")["status"]["conditions"] if c["type"] == "Escalated"),
            None,
        ),
        timeout=15,
    )
    assert "carol@example.com" in escalated["message"]
    # After escalation, the decision is taken on the next look at the annotations.
    local.annotate("accessrequest", "c-escalate", **{"jitaccess.dev/decision-reason": "on call"})
    local.wait("accessrequest", "c-escalate", "Granted")
    assert local.get("accessrequest", "c-escalate")["status"]["approvedBy"] == "carol@example.com"
    local.cluster.kubectl("delete", "accessgrant", "c-escalate", "--timeout=30s")
    local.cluster.kubectl("delete", "entitlement", "c-fast-prod")
    local.cluster.kubectl("delete", "teamownership", "c-fast")


def test_unbacked_member_is_found_and_removed(local: Local) -> None:
    local.ic.add_member("prod-eng-payments", "mallory@example.com")
    # Re-checking the entitlement runs the drift scan (also every resync interval).
    local.cluster.kubectl("annotate", "--overwrite", "entitlement", "prod-eng-payments", "touch=1")
    local.cluster.kubectl("label", "--overwrite", "entitlement", "prod-eng-payments", "touch=1")
    eventually(
        lambda: local.ic.members_of("prod-eng-payments") == set() or None,
        timeout=90,
        what="mallory removed by the drift scan",
    )


def test_removals_a_killed_operator_began_are_settled_by_the_next_scan(local: Local) -> None:
    """Removals listed but never confirmed (the operator was killed between listing a removal and
    confirming it): one whose member is backed by a grant now is taken back, one whose member is
    still in the group unbacked is made, one whose member is gone is confirmed; each of the last two
    has its DriftFound Event, and every entry leaves the status once its record is printed."""
    group = "prod-eng-payments"
    local.request("c-intent-backed", duration="1h")
    local.wait("accessgrant", "c-intent-backed", "Active")
    backed = local.ic.add_member(group, "alice@example.com")  # hers already: the grant's membership
    first_seen = "2026-12-01T10:00:00Z"

    def intent(membership_id: str, user: str) -> dict[str, str]:
        user_id = local.ic.user_id(user)
        return {"membershipId": membership_id, "userId": user_id, "user": user, "firstSeen": first_seen}

    def drift_found() -> Counter[str]:
        shown = local.cluster.kubectl(
            "get", "events", "--field-selector", f"involvedObject.name={group},reason=DriftFound", "-o", "json"
        )
        return Counter(e["message"] for e in json.loads(shown.stdout)["items"])

    said_before = drift_found()  # an earlier test's removal of mallory has its Event too
    unbacked = local.ic.add_member(group, "mallory@example.com")
    intents = [
        intent(backed, "alice@example.com"),
        intent(unbacked, "mallory@example.com"),
        intent("m-gone-" + unbacked[-6:], "bob@example.com"),
    ]
    patch = json.dumps({"status": {"driftRemovals": intents}})
    local.cluster.kubectl("patch", "entitlement", group, "--subresource=status", "--type=merge", "-p", patch)
    # A change of spec re-checks the Entitlement (and scans its group) at once; it is put back after.
    before = local.get("entitlement", group)["spec"]["defaultDuration"]
    local.cluster.kubectl("patch", "entitlement", group, "--type=merge", "-p", '{"spec":{"defaultDuration":"59m"}}')

    def settled() -> list[str] | None:
        status = local.get("entitlement", group).get("status", {})
        ours = sorted((drift_found() - said_before).elements())
        return ours if len(ours) == 2 and not status.get("driftRemovals") else None

    said = eventually(settled, timeout=30, what="the three removals settled")
    assert said[0].startswith("bob@example.com was in Identity Center group prod-eng-payments with no active grant")
    assert "not confirmed" in said[0] and "gone when it was looked at again" in said[0], said
    assert said[1] == "mallory@example.com was in Identity Center group prod-eng-payments with no active grant: removed"
    assert local.ic.members_of(group) == {"alice@example.com"}, "the backed member stays"
    put_back = json.dumps({"spec": {"defaultDuration": before}})
    local.cluster.kubectl("patch", "entitlement", group, "--type=merge", "-p", put_back)
    local.cluster.kubectl("delete", "accessgrant", "c-intent-backed", "--timeout=30s")
    eventually(lambda: local.ic.members_of(group) == set() or None, what="membership gone")


def test_an_entitlement_given_its_groups_id_keeps_the_members_its_grants_hold(local: Local) -> None:
    """A GitOps edit gives the Entitlement its group's id beside the name it had: the group is the
    same, and the grants made under the name still hold their memberships. The drift scan that the
    change runs finds them backed (they are filed under the group's id too once Active), removes no
    one and reports no drift; a grant of the new spelling and one of the old share the membership."""
    group, entitlement = "prod-eng-payments", "prod-eng-payments"
    local.request("c-spelled-by-name", duration="1h")
    local.wait("accessgrant", "c-spelled-by-name", "Active")
    assert local.get("accessgrant", "c-spelled-by-name")["spec"]["groupName"] == group
    patch = json.dumps({"spec": {"identityCenter": {"groupId": local.ic.group_id(group)}}})
    local.cluster.kubectl("patch", "entitlement", entitlement, "--type=merge", "-p", patch)
    try:
        local.wait("entitlement", entitlement, "Resolved")
        local.request("c-spelled-by-id", duration="1h")
        local.wait("accessgrant", "c-spelled-by-id", "Active")
        assert local.get("accessgrant", "c-spelled-by-id")["spec"]["groupName"] == local.ic.group_id(group)
        # Re-check (and scan) at once, as a change of spec does; once kopf has recorded the change
        # as handled (its diff-base, written after the handler and its scan), nobody was taken out.
        local.cluster.kubectl(
            "patch", "entitlement", entitlement, "--type=merge", "-p", '{"spec":{"defaultDuration":"59m"}}'
        )

        def handled() -> bool:
            status = local.get("entitlement", entitlement).get("status") or {}
            return '"59m"' in str((status.get("kopf") or {}).get("diffbase"))

        eventually(lambda: handled() or None, what="the change handled (and the group scanned)")
        assert local.ic.members_of(group) == {"alice@example.com"}
        drift = local.cluster.kubectl(
            "get", "events", "--field-selector", f"involvedObject.name={entitlement},reason=DriftFound", "-o", "json"
        )
        assert not [e for e in json.loads(drift.stdout)["items"] if "alice@example.com" in e["message"]]
        # Ending the grant of the old spelling keeps the membership the other still holds.
        local.cluster.kubectl("delete", "accessgrant", "c-spelled-by-name", "--timeout=30s")
        time.sleep(1)
        assert local.ic.members_of(group) == {"alice@example.com"}
        local.cluster.kubectl("delete", "accessgrant", "c-spelled-by-id", "--timeout=30s")
        eventually(lambda: local.ic.members_of(group) == set() or None, what="membership gone with the last grant")
    finally:
        undo = json.dumps({"spec": {"identityCenter": {"groupId": None}, "defaultDuration": "1h"}})
        local.cluster.kubectl("patch", "entitlement", entitlement, "--type=merge", "-p", undo)
        local.wait("entitlement", entitlement, "Resolved")


def test_a_drift_scan_keeps_the_membership_a_fresh_grant_added_before_the_watch_showed_it(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An auto-approved grant is provisioned by its request's handler as soon as it is created; the
    watch event that files the grant as the membership's holder can come after a drift scan has
    listed the group with the new member in it (here: every filing of the grant by the watch comes
    3 s late, and the scan's listing is held 1.5 s). The scan finds the member backed all the same."""
    name, group = "c-drift-race", "prod-eng-payments"
    filing = runtime_module.ObjectIndex.file

    def lagging(self: runtime_module.ObjectIndex, name_: str, keys: tuple[Any, ...], value: Any) -> None:
        if name_ == name:
            threading.Timer(3.0, filing, (self, name_, keys, value)).start()
        else:
            filing(self, name_, keys, value)

    monkeypatch.setattr(runtime_module.ObjectIndex, "file", lagging)
    local.ic.faults.delay("ListGroupMemberships", 1.5, times=10)
    deletions = local.ic.faults.calls["DeleteGroupMembership"]
    # A change of spec re-checks the Entitlement, and scans its group, at once; the request follows.
    local.cluster.kubectl("patch", "entitlement", group, "--type=merge", "-p", '{"spec":{"defaultDuration":"59m"}}')
    try:
        time.sleep(0.3)
        local.apply(
            f"apiVersion: jitaccess.dev/v1alpha1\nkind: AccessRequest\nmetadata:\n  name: {name}\nspec:\n"
            "  entitlement: prod-eng-payments\n  requester: alice@example.com\n"
            f"  requesterUserId: {local.ic.user_id('alice@example.com')}\n  reason: 'INFRA-7 race'\n  duration: '1h'\n"
        )
        local.wait("accessgrant", name, "Active")
        time.sleep(6)  # the scan (its listing held) and the late filings are over
        assert (local.ready("accessgrant", name) or {}).get("reason") == "Active"
        assert local.ic.members_of(group) == {"alice@example.com"}, "the scan took the fresh grant's member out"
        assert local.ic.faults.calls["DeleteGroupMembership"] == deletions
    finally:
        local.ic.faults.clear()
        local.cluster.kubectl("patch", "entitlement", group, "--type=merge", "-p", '{"spec":{"defaultDuration":"1h"}}')
        local.cluster.kubectl("delete", "accessgrant,accessrequest", name, "--timeout=30s", check=False)
        eventually(lambda: local.ic.members_of(group) == set() or None, what="membership gone")


def test_grant_is_created_with_its_finalizer_not_patched_after(local: Local) -> None:
    """kopf's finalizer comes in the grant's creating write, sparing a PATCH and two webhook calls."""
    local.request("c-finalizer", duration="1h")
    local.wait("accessgrant", "c-finalizer", "Active")
    shown = local.cluster.kubectl("get", "accessgrant", "c-finalizer", "-o", "json", "--show-managed-fields")
    grant = json.loads(shown.stdout)
    assert grant["metadata"]["finalizers"] == ["jitaccess.dev/finalizer"]
    owners = [
        entry
        for entry in grant["metadata"]["managedFields"]
        if "f:finalizers" in entry["fieldsV1"].get("f:metadata", {})
    ]
    assert len(owners) == 1 and "f:spec" in owners[0]["fieldsV1"], "set by the write that created the spec"
    local.cluster.kubectl("delete", "accessgrant", "c-finalizer", "--timeout=30s")
    eventually(lambda: local.ic.members_of("prod-eng-payments") == set() or None, what="membership gone")


def _watch(
    cluster: ControlPlane, plural: str, name: str, seconds: int
) -> tuple[threading.Thread, list[dict[str, Any]]]:
    """Every watch event of the object `name` for `seconds`, from before it exists."""
    api = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(str(cluster.admin_kubeconfig)))
    seen: list[dict[str, Any]] = []
    ready = threading.Event()

    def run() -> None:
        stream = kubernetes.watch.Watch().stream(
            api.list_cluster_custom_object,
            "jitaccess.dev",
            "v1alpha1",
            plural,
            field_selector=f"metadata.name={name}",
            timeout_seconds=seconds,
        )
        ready.set()
        for event in stream:
            seen.append({"type": event["type"], "status": event["object"].get("status") or {}})

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    time.sleep(0.5)  # the watch request is on its way once the generator has started
    return thread, seen


def test_an_auto_approved_grant_costs_two_writes_of_its_request_and_one_of_itself(local: Local) -> None:
    """Provisioned by its request's handler, the grant's `Active` and the request's `Granted` carry
    kopf's diff-base of each (`handlers.diffbase`): kopf writes neither object again, and handles
    neither again (a request handled twice would be seen here as a third write of kopf's)."""
    _assert_two_writes_of_the_request_and_one_of_the_grant(local, "c-writes")


def test_an_auto_approved_grant_left_to_its_own_handler_costs_the_same_writes(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the membership quota is spent (a burst), the request's handler leaves the grant to the
    grant's own handler instead of waiting out the quota in a request thread: granted all the same,
    with the same writes, the request's `Granted` carrying the diff-base the request's handler left
    (`diffbase.defer`). The operator runs in this process: the quota is made spent here."""
    asked: list[str] = []

    def spent(_: IdentityCenter) -> bool:
        asked.append("CreateGroupMembership")
        return False

    monkeypatch.setattr(IdentityCenter, "can_add_member_now", spent)
    _assert_two_writes_of_the_request_and_one_of_the_grant(local, "c-writes-spent")
    assert asked == ["CreateGroupMembership"]


def _assert_two_writes_of_the_request_and_one_of_the_grant(local: Local, name: str) -> None:
    requests, request_events = _watch(local.cluster, "accessrequests", name, 12)
    grants, grant_events = _watch(local.cluster, "accessgrants", name, 12)
    local.request(name, duration="1h")
    local.wait("accessrequest", name, "Granted")
    requests.join(15)
    grants.join(15)

    def ready(status: dict[str, Any]) -> str:
        return next((c["reason"] for c in status.get("conditions", []) if c["type"] == "Ready"), "")

    assert [(e["type"], ready(e["status"])) for e in request_events] == [
        ("ADDED", ""),
        ("MODIFIED", "Pending"),  # the approval
        ("MODIFIED", "Granted"),
    ]
    assert [(e["type"], ready(e["status"])) for e in grant_events] == [("ADDED", ""), ("MODIFIED", "Active")]
    assert "diffbase" in request_events[-1]["status"]["kopf"] and "diffbase" in grant_events[-1]["status"]["kopf"]
    assert local.ic.members_of("prod-eng-payments") >= {"alice@example.com"}

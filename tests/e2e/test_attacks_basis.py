"""Attacks 33-35, 144 and 149 of docs/security.md: access only on an approval the webhook stamped, never
outliving its basis (issue 18).

The same style as `test_attacks.py` (real identities, plain kubectl, the real API server, the
operator's webhooks, RBAC and the admission policy, the strict Identity Center emulator):

- 33: whoever can act as the operator's identity (here the administrator, whom the harness's
  operator runs as) creates an AccessGrant by hand: with no request, or naming someone else's;
- 144: the same identity creates, by hand, the grant of a request approved for a later start,
  before the start;
- 149: a request approved for a later start whose start passes while the operator is stopped (or
  a cluster restored from a backup): granted only for what is left of its window, or not at all;
- 34: an AccessRequest is deleted while the operator is down (the webhook configurations deleted
  too, as an administrator could), or deleted and re-created under the same name;
- 35: someone deletes another user's pending request, or a finished one (the audit record);
  the requester withdraws their own (`kubectl jit withdraw`, or `kubectl delete`);
- 110: someone holding the operator's ServiceAccount token rewrites a TeamOwnership or an
  Entitlement (adds themselves as a member, drops the eligibility rule); and the local run's RBAC
  (examples/rbac.yaml, wider than the chart's) gives the chart's ServiceAccount nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from devenv.controlplane import OPERATOR_ACCOUNT
from devenv.processes import child_env
from tests.e2e.cli_run import Cli
from tests.support.harness import WEBHOOK_CONFIGURATION, Jit, eventually

pytestmark = pytest.mark.e2e

ALICE, LENA, MALLORY = "alice@example.com", "lena@example.com", "mallory@example.com"
PAYMENTS, LEDGER = "prod-eng-payments", "prod-eng-ledger"
WHY = "its AccessRequest was deleted"


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def refused(result: Any, *fragments: str) -> None:
    assert result.returncode != 0, f"expected a refusal, got: {result.stdout}"
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in {result.stderr!r}"


# --- 33. an AccessGrant created by the operator's identity, by hand ------------------------------


def forged_grant(system: Jit, name: str, request: str, **labels: str) -> dict[str, Any]:
    """What the operator would create for mallory, written by hand as the operator's identity."""
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessGrant",
        "metadata": {"name": name, "labels": {"jitaccess.dev/entitlement": PAYMENTS, **labels}},
        "spec": {
            "user": MALLORY,
            "userId": system.ic.user_id(MALLORY),
            "entitlement": PAYMENTS,
            "groupName": PAYMENTS,
            "request": request,
            "duration": "1h",
            "ownerTeam": "payments",
            "reason": "INFRA-1 forged",
        },
    }


def assert_failed_unbacked(system: Jit, name: str, *fragments: str) -> None:
    failed = system.wait_reason("accessgrant", name, "Failed", "Active")
    message = ready(failed)["message"]
    assert ready(failed)["reason"] == "Failed", message
    assert f"not provisioned: AccessGrant {name} is not backed by an approved AccessRequest" in message
    for fragment in fragments:
        assert fragment in message, message
    warnings = [e for e in system.events(name, "AccessGrant") if e["type"] == "Warning" and e["reason"] == "Failed"]
    assert warnings and "not backed by an approved AccessRequest" in warnings[0]["message"]
    assert MALLORY not in system.members(PAYMENTS)
    assert (failed["status"].get("membershipId"), failed["status"].get("activationTime")) == (None, None)


def test_33_a_grant_with_no_request_gives_nobody_access(system: Jit) -> None:
    system.apply(forged_grant(system, "e33-none", "no-such-request"), verb="create")
    assert_failed_unbacked(system, "e33-none", "AccessRequest no-such-request does not exist")


def test_33_a_grant_naming_someone_elses_approved_request_gives_nobody_access(system: Jit) -> None:
    system.request("e33-alice", PAYMENTS, user=ALICE)
    system.wait_reason("accessgrant", "e33-alice", "Active")
    request = system.get("accessrequest", "e33-alice")
    assert request is not None
    uid = request["metadata"]["uid"]
    # The request's own uid copied onto the label: the grant still is not the one the request leads to.
    system.apply(forged_grant(system, "e33-forged", "e33-alice", **{"jitaccess.dev/request": uid}), verb="create")
    assert_failed_unbacked(system, "e33-forged", "AccessRequest e33-alice leads to AccessGrant e33-alice")
    assert system.members(PAYMENTS) == {ALICE}
    # alice's request still follows her own grant, not the forged one.
    after = system.get("accessrequest", "e33-alice")
    assert after is not None and ready(after)["reason"] == "Granted"
    assert after["status"]["grant"] == "e33-alice"


def test_33_a_copy_of_an_approved_requests_grant_for_another_user_gives_nobody_access(system: Jit) -> None:
    """The request waits for its grant under its own name, but the grant is for someone else."""
    system.request("e33-wait", LEDGER, user=ALICE)
    system.wait_reason("accessrequest", "e33-wait", "Pending")
    system.operator.stop()
    try:
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            system.kubectl("delete", kind, WEBHOOK_CONFIGURATION, "--ignore-not-found")
        # Approved as lena would, and the status written as if the operator had recorded it, then
        # the grant created first, by hand, for mallory.
        stamps = [
            f"jitaccess.dev/approved-by={LENA}",
            "jitaccess.dev/approved-by-groups=system:authenticated,team-ledger",
        ]
        system.kubectl("annotate", "accessrequest", "e33-wait", "jitaccess.dev/approved=true", *stamps, user=LENA)
        request = system.get("accessrequest", "e33-wait")
        assert request is not None
        stamp = request["metadata"]["creationTimestamp"]
        approved = {
            "type": "Approved",
            "status": "True",
            "reason": "Approved",
            "message": "",
            "lastTransitionTime": stamp,
        }
        conditions = [approved, {**approved, "type": "Ready", "status": "False", "reason": "Pending"}]
        patch = {"status": {"approvedBy": LENA, "conditions": conditions}}
        system.kubectl(
            "patch", "accessrequest", "e33-wait", "--subresource=status", "--type=merge", "-p", json.dumps(patch)
        )
        grant = forged_grant(system, "e33-wait", "e33-wait", **{"jitaccess.dev/request": request["metadata"]["uid"]})
        grant["spec"]["entitlement"] = grant["metadata"]["labels"]["jitaccess.dev/entitlement"] = LEDGER
        grant["spec"]["groupName"], grant["spec"]["ownerTeam"] = LEDGER, "ledger"
        system.apply(grant, verb="create")
    finally:
        system.operator.start()
    failed = system.wait_reason("accessgrant", "e33-wait", "Failed", "Active")
    message = ready(failed)["message"]
    assert ready(failed)["reason"] == "Failed", message
    assert f"spec.user is '{MALLORY}', but AccessRequest e33-wait and its Entitlement yield '{ALICE}'" in message
    assert system.members(LEDGER) == set()


# --- 144. a grant made by hand for a request approved for a later start ---------------------------


def test_144_a_grant_made_by_hand_for_a_scheduled_request_gives_no_access_before_its_start(system: Jit) -> None:
    """alice's window on ledger begins in an hour; lena approved it, and it waits `Scheduled`, with
    no grant. The grant its start would create, written now by hand (the request's name, its uid on
    the label, what it yields), adds nobody: the access begins at the start or not at all."""
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    system.request("e144-window", LEDGER, duration="1h", user=ALICE, startTime=start)
    system.wait_reason("accessrequest", "e144-window", "Pending")
    system.kubectl("annotate", "accessrequest", "e144-window", "jitaccess.dev/approved=true", user=LENA)
    request = system.wait_reason("accessrequest", "e144-window", "Scheduled")
    grant = forged_grant(system, "e144-window", "e144-window", **{"jitaccess.dev/request": request["metadata"]["uid"]})
    grant["metadata"]["labels"]["jitaccess.dev/entitlement"] = LEDGER
    grant["spec"].update(
        user=ALICE, userId=system.ic.user_id(ALICE), entitlement=LEDGER, groupName=LEDGER, ownerTeam="ledger"
    )
    system.apply(grant, verb="create")
    failed = system.wait_reason("accessgrant", "e144-window", "Failed", "Active")
    message = ready(failed)["message"]
    assert ready(failed)["reason"] == "Failed", message
    assert (
        "not provisioned: AccessGrant e144-window is not backed by an approved AccessRequest (AccessRequest "
        f"e144-window is approved for a later start: its access begins at {start} (spec.startTime)"
    ) in message
    assert system.members(LEDGER) == set()
    assert (failed["status"].get("membershipId"), failed["status"].get("activationTime")) == (None, None)
    # The request follows its grant, as the operator's identity could have ended it anyway: no start to come.
    system.wait_reason("accessrequest", "e144-window", "Failed")


# --- 149. a scheduled start taken after its window, or late in it --------------------------------


def test_149_a_start_taken_late_grants_only_what_is_left_of_its_window(system: Jit) -> None:
    """Two of alice's ledger requests begin at the same second, one for 5 s, one for a minute; lena
    approves both, and the operator is stopped across the start (down, or a cluster restored from a
    backup taken while they waited). Back 8 s after it: the first window has passed, and nothing is
    granted; the second is granted for what is left of it, its grant ending at the window's end."""
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)).replace(microsecond=0)
    at = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    for name, duration in (("e149-passed", "5s"), ("e149-half", "1m")):
        system.request(name, LEDGER, duration=duration, user=ALICE, startTime=at)
        system.wait_reason("accessrequest", name, "Pending")
        system.kubectl("annotate", "accessrequest", name, "jitaccess.dev/approved=true", user=LENA)
        system.wait_reason("accessrequest", name, "Scheduled")
    system.operator.stop()
    try:
        time.sleep(max(0.0, (start + dt.timedelta(seconds=8) - dt.datetime.now(dt.UTC)).total_seconds()))
    finally:
        system.operator.start()
    failed = system.wait_reason("accessrequest", "e149-passed", "Failed")
    assert ready(failed)["message"] == (
        f"not granted: its window {at}..{(start + dt.timedelta(seconds=5)).strftime('%Y-%m-%dT%H:%M:%SZ')} passed "
        "before the operator could begin it (the operator was down, or the cluster was restored from a backup); "
        "request access again"
    )
    assert system.get("accessgrant", "e149-passed") is None
    active = system.wait_reason("accessgrant", "e149-half", "Active")
    ends = (start + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert active["status"]["expirationTime"] == ends, "the window's end, not a minute from the activation"
    assert active["status"]["activationTime"] >= (start + dt.timedelta(seconds=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert system.members(LEDGER) == {ALICE}


# --- 34. a request deleted while the operator is down -------------------------------------------


def webhooks_off_while_stopped(system: Jit) -> None:
    """The operator stopped and its webhook configurations deleted, as an administrator could:
    nothing sees the deletion that follows. The operator writes them again when it starts."""
    system.operator.stop()
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        system.kubectl("delete", kind, WEBHOOK_CONFIGURATION, "--ignore-not-found")


def assert_revoked_for_its_request(system: Jit, name: str) -> None:
    revoked = system.wait_reason("accessgrant", name, "Revoked", timeout=60)
    assert WHY in ready(revoked)["message"]
    eventually(lambda: system.members(PAYMENTS) == set(), what="membership removed")


def test_34_a_request_deleted_while_the_operator_is_down_ends_its_grant_at_start_up(system: Jit) -> None:
    system.request("e34", PAYMENTS, user=ALICE)
    system.wait_reason("accessgrant", "e34", "Active")
    try:
        webhooks_off_while_stopped(system)
        system.kubectl("delete", "accessrequest", "e34")
    finally:
        system.operator.start()
    assert_revoked_for_its_request(system, "e34")


def test_34_a_request_deleted_and_re_created_under_its_name_ends_the_grant(system: Jit) -> None:
    system.request("e34-again", PAYMENTS, user=ALICE)
    system.wait_reason("accessgrant", "e34-again", "Active")
    try:
        webhooks_off_while_stopped(system)
        system.kubectl("delete", "accessrequest", "e34-again")
        # The same name, a new object (a new uid): not the request the grant was made for.
        system.request("e34-again", PAYMENTS, user=ALICE)
    finally:
        system.operator.start()
    assert_revoked_for_its_request(system, "e34-again")


def test_34_a_deleted_requests_grant_whose_removal_is_refused_is_revoked_by_annotation(system: Jit) -> None:
    """Identity Center refuses the removal once (an IAM edit rolled out and back, say): the event
    handler that saw the deletion cannot wait that out, so it revokes the grant by annotation, in
    the operator's name, and the grant's own handler ends it."""
    system.request("e34-refused", PAYMENTS, user=ALICE)
    system.wait_reason("accessgrant", "e34-refused", "Active")
    system.ic.faults.fail("DeleteGroupMembership", error="AccessDeniedException")
    system.kubectl("delete", "accessrequest", "e34-refused")
    eventually(lambda: system.ic.faults.pending("DeleteGroupMembership") == 0 or None, what="the refusal")
    revoked = system.wait_reason("accessgrant", "e34-refused", "Revoked", timeout=60)
    annotations = revoked["metadata"]["annotations"]
    assert annotations["jitaccess.dev/revoked"] == "true"
    assert annotations["jitaccess.dev/revoke-reason"] == WHY
    assert annotations.get("jitaccess.dev/revoked-by") not in (None, "", ALICE), annotations
    eventually(lambda: system.members(PAYMENTS) == set(), what="membership removed")


# --- 35. someone else deletes a request; the requester withdraws their own -----------------------


def test_35_nobody_but_the_requester_withdraws_a_pending_request(system: Jit) -> None:
    system.request("e35", LEDGER, user=ALICE)
    system.wait_reason("accessrequest", "e35", "Pending")
    refused(
        system.kubectl("delete", "accessrequest", "e35", user=MALLORY, check=False),
        f"AccessRequest e35 is {ALICE}'s pending request: only {ALICE} may withdraw it",
        f"{MALLORY} may not",
    )
    assert system.get("accessrequest", "e35") is not None
    withdrawn = Cli(system).run("withdraw", "e35", user=ALICE)
    assert withdrawn.code == 0, withdrawn
    assert withdrawn.out == "withdrew accessrequest e35 (prod-eng-ledger): nothing is granted of it\n"
    assert system.get("accessrequest", "e35") is None
    # Nothing comes of it: not an approval arriving late, nor a grant.
    late = system.kubectl("annotate", "accessrequest", "e35", "jitaccess.dev/approved=true", user=LENA, check=False)
    assert late.returncode != 0 and "NotFound" in late.stderr
    assert system.get("accessgrant", "e35") is None
    assert system.members(LEDGER) == set()
    # Plain kubectl does the same.
    system.request("e35-kubectl", LEDGER, user=ALICE)
    system.kubectl("delete", "accessrequest", "e35-kubectl", user=ALICE)
    assert system.get("accessrequest", "e35-kubectl") is None


def test_35_a_finished_request_is_kept_as_the_record(system: Jit) -> None:
    system.request("e35-denied", LEDGER, user=ALICE)
    system.wait_reason("accessrequest", "e35-denied", "Pending")
    system.kubectl("annotate", "accessrequest", "e35-denied", "jitaccess.dev/denied=true",
                   "jitaccess.dev/decision-reason=INFRA-1 not now", user=LENA)  # fmt: skip
    system.wait_reason("accessrequest", "e35-denied", "Denied")
    for user in (ALICE, MALLORY):
        refused(
            system.kubectl("delete", "accessrequest", "e35-denied", user=user, check=False),
            "AccessRequest e35-denied is finished (Denied): it is the audit record of that outcome",
            f"{user} may not",
        )
    # An approver of the owner team may delete it before the retention period ends.
    system.kubectl("delete", "accessrequest", "e35-denied", user=LENA)


# --- 110. the operator's ServiceAccount token rewrites the policy ----------------------------------


def test_110_the_operators_token_cannot_rewrite_who_may_have_what(system: Jit, tmp_path: Path) -> None:
    """The operator's ClusterRole must `patch` TeamOwnerships and Entitlements (kopf's finalizers and
    annotations), which RBAC cannot keep to metadata, and its webhooks skipped the operator's writes:
    with its token, mallory added herself to team payments and dropped the Entitlement's eligibility,
    unseen by any check and any PolicyChanged line, then was auto-approved. The operator never
    writes the policy kinds' spec: such a write of its identity is now sent to the webhook, which
    refuses it; its metadata writes are still skipped."""
    sa = "system:serviceaccount:{}:{}".format(*OPERATOR_ACCOUNT)
    with system.replaced(tmp_path, JITACCESS_OPERATOR_USERNAMES=sa) as jit:
        token = jit.cluster.operator_kubeconfig(tmp_path / "sa")

        def as_operator(*args: str) -> subprocess.CompletedProcess[str]:
            argv = [str(jit.cluster.binary), "kubectl", "--kubeconfig", str(token), *args]
            return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60, env=child_env())

        for kind, name, patch in (
            ("teamownership", "payments", [{"op": "add", "path": "/spec/members/-", "value": MALLORY}]),
            ("entitlement", PAYMENTS, [{"op": "remove", "path": "/spec/eligibility"}]),
        ):
            refused = as_operator("patch", kind, name, "--type=json", "-p", json.dumps(patch))
            assert refused.returncode != 0, refused.stdout
            assert "never creates" in refused.stderr and "nor changes its spec" in refused.stderr, refused.stderr
        team = jit.get("teamownership", "payments") or {}
        assert MALLORY not in team["spec"].get("members", [])
        assert (jit.get("entitlement", PAYMENTS) or {})["spec"].get("eligibility")
        # Its own kind of write, metadata, is not held up.
        marked = as_operator("annotate", "teamownership", "payments", "example.com/checked=yes")
        assert marked.returncode == 0, marked.stderr
        jit.kubectl("annotate", "teamownership", "payments", "example.com/checked-")


def test_the_local_runs_rbac_gives_the_charts_service_account_nothing(system: Jit) -> None:
    """examples/rbac.yaml, which this session applied, gives the local run's operator more than the
    chart gives its own (Leases in every namespace, `create` on any webhook configuration). It used to
    bind that to the chart's ServiceAccount `jitaccess/jitaccess`: applied to a cluster with the chart
    installed, it widened the production operator's rights. It binds a dev-only ServiceAccount now,
    and the chart's, as the API server decides, may do nothing by it."""
    charts = "system:serviceaccount:jitaccess:jitaccess"
    local = "system:serviceaccount:{}:{}".format(*OPERATOR_ACCOUNT)
    assert charts != local

    def may(who: str, *args: str) -> bool:
        answer = system.kubectl("auth", "can-i", *args, f"--as={who}", check=False)
        return bool(answer.stdout.strip() == "yes")

    for args in (
        ("create", "leases.coordination.k8s.io", "--namespace=default"),
        ("create", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
        ("create", "accessgrants.jitaccess.dev"),
        ("patch", "accessrequests.jitaccess.dev", "--subresource=status"),
    ):
        assert may(local, *args), f"the local run's operator may not {args}"
        assert not may(charts, *args), f"the chart's ServiceAccount may {args} by examples/rbac.yaml"

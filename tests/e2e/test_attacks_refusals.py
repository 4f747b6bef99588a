"""Attack 120 of docs/security.md: the API server refusing the operator's Lease or its Events (a
ValidatingAdmissionPolicy of the cluster here, as a quota or RBAC would; docs/operations.md,
"Common situations").

- Events refused: the decisions go on (a grant is given and ends on time), each is still an audit
  line, and the lost Events are one WARNING line a minute, no ERROR and no traceback.
- The Lease refused: the leader stops at its renew deadline and nobody acts while it lasts (a grant
  that falls due stays Active, its member kept: never two leaders, never one without a Lease); each
  replica says so in an ERROR line in the policy's words, once, and its /healthz says why it does
  not lead; the policy gone, one replica leads again within a few seconds and ends the grant.

Attack 22's setting (the webhooks gone, the admission policy alone): a request being deleted (held
by the operator's finalizer) takes no approval, cancel or finalizer removal from a user, but the
garbage collector's own finalizer may still go; the operator's removal of its finalizer lets it go.

Attack 150: a grant whose access is in another identity store than the one the operator points at
now is not ended as gone: its end is refused and reported, naming both stores.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import time
from pathlib import Path
from typing import Any

import pytest

from devenv.replicas import Replicas
from jitaccess.api import names
from jitaccess.domain.election import Timing
from tests.e2e.test_attacks import VAP, WEBHOOK_CONFIGURATION, annotations_of, attempt, refused
from tests.support.harness import OPERATOR_ENV, Jit, eventually

pytestmark = pytest.mark.e2e
PAYMENTS = "prod-eng-payments"
ALICE = "alice@example.com"
POLICY = "refuse-ours"
SAID = "refused here (test)"


def refusing(resource: str, operations: list[str], expression: str) -> dict[str, Any]:
    """A ValidatingAdmissionPolicy refusing, as Invalid (422), what `expression` says is not allowed
    of `resource` (core or coordination.k8s.io); and a configmap named POLICY, to see it in force."""
    group = "coordination.k8s.io" if resource == "leases" else ""
    rules = [
        {"apiGroups": [group], "apiVersions": ["v1"], "operations": operations, "resources": [resource]},
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]},
    ]
    allowed = f"request.resource.resource == 'configmaps' ? object.metadata.name != '{POLICY}' : {expression}"
    policy = {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": rules},
        "validations": [{"expression": allowed, "message": SAID, "reason": "Invalid"}],
    }
    binding = {"policyName": POLICY, "validationActions": ["Deny"]}
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": POLICY}, "spec": spec}
            for kind, spec in (("ValidatingAdmissionPolicy", policy), ("ValidatingAdmissionPolicyBinding", binding))
        ],
    }


def in_force(system: Jit, policy: dict[str, Any]) -> None:
    system.apply(policy)
    probe = ("create", "configmap", POLICY, "-n", "default", "--dry-run=server")
    eventually(
        lambda: SAID in system.kubectl(*probe, check=False).stderr or None, timeout=30, what="the policy in force"
    )


def lift(system: Jit) -> None:
    system.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", POLICY, "--ignore-not-found")


# --- 120. the operator's Lease or its Events refused by the API server -----------------------------


def test_events_the_api_server_refuses_cost_no_decision_and_one_line_a_minute(system: Jit) -> None:
    name = "quiet-grant"
    start = len(system.operator.log_file.read_text(errors="replace"))
    in_force(system, refusing("events", ["CREATE"], f"object.involvedObject.name != '{name}'"))
    try:
        system.request(name, PAYMENTS, duration="4s", user=ALICE)
        system.wait_reason("accessgrant", name, "Active")
        system.wait_reason("accessgrant", name, "Expired", timeout=30)
        assert ALICE not in system.members(PAYMENTS)
        time.sleep(3)  # the last Events' posts
        assert system.events(name) == []
        said = system.operator.log_file.read_text(errors="replace")[start:]
        for decision in ("Granted", "Expired"):
            assert f" {decision} AccessGrant/{name}: " in said, decision  # the audit lines, all the same
        lost = [line for line in said.splitlines() if "an Event was not posted" in line]
        assert len(lost) == 1 and " WARNING " in lost[0] and SAID in lost[0], lost
        assert "Failed to post an event" not in said.replace(lost[0], "")
        assert " ERROR kopf._core.engines.posting" not in said
        assert "Traceback" not in said
    finally:
        lift(system)


def healthz(replicas: Replicas, n: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", replicas[n].liveness_port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        answer: dict[str, Any] = json.loads(conn.getresponse().read())
        return answer
    finally:
        conn.close()


def test_a_lease_the_api_server_refuses_is_not_led_and_says_so(replaced: Jit, tmp_path: Path) -> None:
    system, name = replaced, "lease-held"
    replicas = Replicas(2, system.cluster.admin_kubeconfig, system.ic.env(), tmp_path, env=OPERATOR_ENV)
    replicas.start()
    try:
        eventually(lambda: replicas.leaders() or None, timeout=10, what="a replica leads")
        system.request(name, PAYMENTS, duration="20s", user=ALICE)
        system.wait_reason("accessgrant", name, "Active")
        grant = system.get("accessgrant", name) or {}
        expires = dt.datetime.fromisoformat(grant["status"]["expirationTime"])
        in_force(system, refusing("leases", ["CREATE", "UPDATE"], f"object.metadata.name != '{replicas.lease}'"))
        refused = time.monotonic()
        eventually(lambda: replicas.leaders() == [] or None, timeout=Timing().renew_deadline + 3, what="no leader")
        assert time.monotonic() - refused <= Timing().renew_deadline + 3
        for n in (0, 1):
            status = eventually(
                lambda n=n: healthz(replicas, n)["leadership"].startswith("NOT ABLE TO LEAD") and healthz(replicas, n),
                timeout=15,
                what=f"replica {n}'s /healthz",
            )
            assert SAID in status["leadership"] and "(422)" in status["leadership"], status
        # Past the grant's end (and both Leases' terms): nobody has acted, nobody leads.
        time.sleep(max(0.0, (expires - dt.datetime.now(dt.UTC)).total_seconds()) + 3)
        assert replicas.leaders() == []
        assert system.ready_reason("accessgrant", name) == "Active"
        assert ALICE in system.members(PAYMENTS)
        for n in (0, 1):
            log = replicas[n].log_file.read_text(errors="replace")
            lines = [line for line in log.splitlines() if "the API server refuses Lease" in line]
            assert len(lines) == 1, lines  # tried every 2 s, said once a minute
            assert " ERROR " in lines[0] and f"default/{replicas.lease}" in lines[0] and SAID in lines[0], lines
            assert "Traceback" not in log
    finally:
        lift(system)
    try:
        eventually(lambda: len(replicas.leaders()) == 1 or None, timeout=10, what="a leader again")
        system.wait_reason("accessgrant", name, "Expired", timeout=15)
        assert ALICE not in system.members(PAYMENTS)
        for n in (0, 1):  # kopf answers /healthz from probes up to 10 s old
            eventually(
                lambda n=n: healthz(replicas, n)["leadership"] in ("leading", "standby") or None,
                timeout=15,
                what=f"replica {n}'s /healthz well again",
            )
    finally:
        system.clean()
        replicas.stop()


# --- 150. the operator pointed at another identity store while grants run -------------------------


def test_150_a_grant_given_in_another_store_is_not_ended_as_gone(system: Jit) -> None:
    """config.identityStoreId changed while alice's grant ran: the operator asked the new store to
    remove her, found no such membership, took it for gone and wrote the grant Expired ("no longer
    holds") while she stayed in the old store for good. One emulator is one store: the grant is
    written as one given in another (`status.identityStoreId`, as the operator writes it: the e2e
    admin is its identity). Revoked, its end is refused: it stays Active, nothing is removed, one
    `ExpiryOverdue` Warning Event names both stores and the command that removes it by hand. Pointed
    at its store again, the operator ends it as any other."""
    name, old = "alice-150", "d-0000000150"
    system.request(name, PAYMENTS, duration="1h", user=ALICE)
    grant = system.wait_reason("accessgrant", name, "Active")
    ours = system.ic.identity_store_id
    assert grant["status"]["identityStoreId"] == ours, grant["status"]
    moved = json.dumps({"status": {"identityStoreId": old}})
    system.kubectl("patch", "accessgrant", name, "--subresource=status", "--type=merge", "-p", moved)
    system.kubectl("annotate", "accessgrant", name, "jitaccess.dev/revoked=true", user=ALICE)

    def overdue() -> dict[str, str] | None:
        found = [e for e in system.events(name, "AccessGrant") if e["reason"] == "ExpiryOverdue"]
        return found[0] if found else None

    # 30 s of grace past the revocation, then the next retry (every 5 s while refused).
    event: dict[str, str] = eventually(overdue, timeout=60, what=f"an ExpiryOverdue Event on {name}")
    assert event["type"] == "Warning"
    message = event["message"]
    assert f"the operator now points at identity store {ours}; this access of {ALICE} is in {old}" in message
    assert f"aws identitystore delete-group-membership --identity-store-id {old} --membership-id" in message
    assert "IAM" not in message, message
    ready = system.condition("accessgrant", name, "Ready") or {}
    assert ready.get("reason") == "Active", ready  # never "no longer holds"
    assert ALICE in system.members(PAYMENTS)
    ended = [e for e in system.events(name, "AccessGrant") if e["reason"] in ("Revoked", "Expired")]
    assert ended == [], ended
    back = json.dumps({"status": {"identityStoreId": ours}})
    system.kubectl("patch", "accessgrant", name, "--subresource=status", "--type=merge", "-p", back)
    system.wait_reason("accessgrant", name, "Revoked", timeout=30)
    assert ALICE not in system.members(PAYMENTS)


# --- 22. a request being deleted, changed with the webhooks gone -----------------------------------


def test_22_a_request_being_deleted_takes_no_change_with_the_webhooks_gone(system: Jit) -> None:
    """The webhook refuses any change of a withdrawn request but the operator's; with the webhooks
    gone the admission policy did not: lena's approval (her own stamp) and cancel were written on
    alice's request while its finalizer held it. The policy now refuses them, and her removal of the
    operator's finalizer, in the webhook's words; the garbage collector's own finalizer (a deletion
    in the foreground, held by a dependent) may still go, as the webhook allows; the operator's
    removal of its own (the e2e admin is its identity) lets the request go."""
    name, ledger, lena = "p-withdrawn", "prod-eng-ledger", "lena@example.com"
    dependent = ("configmap", f"{name}-dependent", "-n", "default")
    system.operator.stop()
    try:
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            system.kubectl("delete", kind, WEBHOOK_CONFIGURATION, "--ignore-not-found")
        system.request(name, ledger, user=ALICE)
        # Held as the webhook holds every request, until the operator has archived its records.
        held = json.dumps({"metadata": {"finalizers": [names.RECORDS_FINALIZER]}})
        system.kubectl("patch", "accessrequest", name, "--type=merge", "-p", held)
        # A dependent that stays, so that the garbage collector keeps its foregroundDeletion on the request.
        uid = ((system.get("accessrequest", name) or {}).get("metadata") or {})["uid"]
        owner = {"apiVersion": "jitaccess.dev/v1alpha1", "kind": "AccessRequest", "name": name, "uid": uid}
        meta = {"name": dependent[1], "namespace": "default", "finalizers": ["example.com/hold"]}
        meta["ownerReferences"] = [owner | {"blockOwnerDeletion": True}]
        system.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta})
        system.kubectl("delete", "accessrequest", name, "--cascade=foreground", "--wait=false", user=ALICE)
        deleted_at = ((system.get("accessrequest", name) or {}).get("metadata") or {})["deletionTimestamp"]
        said = f"AccessRequest {name} was deleted at {deleted_at} and stays only until its audit records are archived"
        for change in (
            ("jitaccess.dev/approved=true", f"jitaccess.dev/approved-by={lena}"),
            ("jitaccess.dev/revoked=true", f"jitaccess.dev/revoked-by={lena}"),
        ):
            refused(
                attempt(system, "annotate", "accessrequest", name, *change, user=lena),
                VAP,
                said,
                "create a new AccessRequest if the access is still needed",
                how=change[0],
            )
        unheld = json.dumps({"metadata": {"finalizers": None}})
        refused(attempt(system, "patch", "accessrequest", name, "--type=merge", "-p", unheld, user=lena), VAP, said)
        assert not {k for k in annotations_of(system, "accessrequest", name) if k.startswith("jitaccess.dev/")}
        finalizers = ((system.get("accessrequest", name) or {}).get("metadata") or {}).get("finalizers")
        assert set(finalizers or []) == {names.RECORDS_FINALIZER, "foregroundDeletion"}, finalizers
        system.kubectl("patch", "accessrequest", name, "--type=merge", "-p", held, user=lena)
        system.kubectl("patch", "accessrequest", name, "--type=merge", "-p", unheld)
        eventually(lambda: system.get("accessrequest", name) is None or None, timeout=10, what=f"{name} gone")
    finally:
        unhold = json.dumps({"metadata": {"finalizers": None}})
        system.kubectl("patch", *dependent, "--type=merge", "-p", unhold, check=False)
        system.kubectl("delete", *dependent, "--ignore-not-found", "--wait=false")
        system.operator.start()

"""The chart as a user installs it, on a real node: the operator runs as Pods from the image built
here, and the API server calls its webhooks through their Service.

The tests run in file order and share one release: the last three change it (an upgrade, a Pod
deleted, the uninstall).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.helm.chart import CHART, Helm
from tests.node.conftest import DEPLOYMENT, NAMESPACE, RELEASE, pods
from tests.support.admission import AdmissionCalls
from tests.support.harness import Jit, eventually

ALICE, LENA, MALLORY = "alice@example.com", "lena@example.com", "mallory@example.com"
PAYMENTS, LEDGER = "prod-eng-payments", "prod-eng-ledger"
CRDS = ("accessgrants", "accessrequests", "entitlements", "teamownerships")


def test_the_operator_runs_as_two_pods_of_the_built_image(system: Jit, image: str) -> None:
    running = pods(system.cluster)
    assert len(running) == 2
    for pod in running:
        assert pod["spec"]["containers"][0]["image"] == image  # type: ignore[index]
        assert pod["spec"]["nodeName"] == "jitaccess-node"  # type: ignore[index]
        assert pod["status"]["phase"] == "Running"  # type: ignore[index]


def test_request_is_granted_then_expires(system: Jit) -> None:
    system.request("node-short", PAYMENTS, duration="3s", user=ALICE)
    system.wait_reason("accessgrant", "node-short", "Active")
    assert system.members(PAYMENTS) == {ALICE}
    assert system.get("accessrequest", "node-short")["spec"]["requester"] == ALICE  # type: ignore[index]
    system.wait_reason("accessgrant", "node-short", "Expired", timeout=20)
    assert system.members(PAYMENTS) == set()
    # The grant is cluster-scoped: its Events are in the Pods' namespace, the one the chart's Role
    # lets the operator create them in (a Pod's default namespace is its ServiceAccount's).
    events = eventually(
        lambda: [e for e in system.events("node-short", "AccessGrant") if e["reason"] == "Expired"] or None,
        what="the grant's Expired Event",
    )
    assert {e["metadata"]["namespace"] for e in events} == {NAMESPACE}


def test_tech_lead_approves_through_the_webhook_service(system: Jit) -> None:
    system.request("node-ledger", LEDGER, user=ALICE)
    system.wait_reason("accessrequest", "node-ledger", "Pending")
    system.kubectl("annotate", "accessrequest", "node-ledger", "jitaccess.dev/approved=true", user=LENA)
    granted = system.wait_reason("accessrequest", "node-ledger", "Granted")
    # The mutating webhook, served by a Pod, stamped who approved.
    assert granted["metadata"]["annotations"]["jitaccess.dev/approved-by"] == LENA
    assert system.members(LEDGER) == {ALICE}


def test_an_outsider_cannot_approve(system: Jit) -> None:
    system.request("node-attack", LEDGER, user=ALICE)
    system.wait_reason("accessrequest", "node-attack", "Pending")
    lead = system.kubectl(
        "annotate", "accessrequest", "node-attack", "jitaccess.dev/approved=true", user=MALLORY, check=False
    )
    assert lead.returncode != 0 and f'User "{MALLORY}" cannot' in lead.stderr, lead.stderr  # RBAC: no role at all
    # With the approver role (the chart binds it to teams), the webhook still refuses a wrong team.
    paula = system.kubectl(
        "annotate", "accessrequest", "node-attack", "jitaccess.dev/approved=true", user="paula@example.com", check=False
    )
    assert paula.returncode != 0, paula.stdout
    assert 'admission webhook "' in paula.stderr and "is not an approver of the owner team" in paula.stderr
    assert system.ready_reason("accessrequest", "node-attack") == "Pending"
    assert system.members(LEDGER) == set()


def test_kubectl_logs_reads_the_operator(system: Jit) -> None:
    logs = system.kubectl("logs", "-n", NAMESPACE, DEPLOYMENT, "--tail=200").stdout
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert records, logs[-2000:]


def test_metrics_answer_through_their_service(system: Jit) -> None:
    path = f"/api/v1/namespaces/{NAMESPACE}/services/{RELEASE}-metrics:metrics/proxy/metrics"
    text = system.kubectl("get", "--raw", path).stdout
    assert "jitaccess_" in text and "# TYPE" in text, text[:500]


def test_upgrade_to_a_changed_image_refuses_no_admission_call(
    system: Jit, helm: Helm, values_file: Path, images: tuple[str, str]
) -> None:
    changed = images[1]
    before = {p["metadata"]["name"] for p in pods(system.cluster)}  # type: ignore[index]
    with AdmissionCalls(system.cluster, ALICE, PAYMENTS) as calls:
        helm.run(
            "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--values", str(values_file),
            "--set", f"image.tag={changed.rsplit(':', 1)[1]}", "--wait", "--timeout", "5m",
            timeout=360,
        )  # fmt: skip
        system.kubectl("rollout", "status", "-n", NAMESPACE, DEPLOYMENT, "--timeout=120s")
    after = pods(system.cluster)
    assert {p["spec"]["containers"][0]["image"] for p in after} == {changed}  # type: ignore[index]
    assert not before & {p["metadata"]["name"] for p in after}  # type: ignore[index]
    assert calls.refused == [], calls.refused[:5]
    assert calls.admitted >= 50, f"only {calls.admitted} calls while rolling"
    # And the new Pods act: a request is granted.
    system.request("node-after-upgrade", PAYMENTS, duration="1h", user=ALICE)
    system.wait_reason("accessgrant", "node-after-upgrade", "Active", timeout=40)


def test_the_other_replica_serves_when_one_pod_is_deleted(system: Jit) -> None:
    # Without the chart's preStop delay (shutdownDelaySeconds) a call failed here now and then: the
    # API server still sent it to the stopping Pod ("http: server closed idle connection"). With the
    # delay but no drain, now and then a call the API server wrote on a kept connection as the
    # stopping server closed it got no answer ("EOF"). Three callers keep calls in flight then.
    victim, survivor = (p["metadata"]["name"] for p in pods(system.cluster))  # type: ignore[index]
    follow = system.cluster.kubectl_argv("logs", "--follow", "-n", NAMESPACE, victim)
    with (
        subprocess.Popen(follow, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as log,
        AdmissionCalls(system.cluster, ALICE, PAYMENTS, callers=3) as calls,
    ):
        system.kubectl("delete", "pod", "-n", NAMESPACE, victim, "--wait=true", "--timeout=60s")
        eventually(lambda: len(pods(system.cluster)) == 2, timeout=90, what="the Deployment replaces the Pod")
        system.kubectl("rollout", "status", "-n", NAMESPACE, DEPLOYMENT, "--timeout=120s")
        victims_log, _ = log.communicate(timeout=30)  # ends with the Pod
    assert survivor in {p["metadata"]["name"] for p in pods(system.cluster)}  # type: ignore[index]
    assert calls.refused == [], calls.refused[:5]
    assert calls.admitted >= 60, f"only {calls.admitted} calls"
    # The stopping Pod drained its webhooks before it stopped serving them (docs/operations.md).
    assert "draining the admission webhooks" in victims_log, victims_log[-3000:]
    assert "webhooks drained in" in victims_log, victims_log[-3000:]


def test_uninstall_keeps_the_crds_and_the_grants_memberships(installed: Jit, helm: Helm) -> None:
    system = installed
    system.request("node-kept", PAYMENTS, duration="1h", user=ALICE)
    system.wait_reason("accessgrant", "node-kept", "Active", timeout=40)
    helm.run("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "2m", timeout=180)
    eventually(lambda: not pods(system.cluster), timeout=60, what="the release's Pods are gone")
    for crd in CRDS:
        assert system.get("crd", f"{crd}.jitaccess.dev"), f"CRD {crd} removed"
    assert system.ready_reason("accessgrant", "node-kept") == "Active"
    # docs/upgrading.md: an uninstalled operator removes nobody from Identity Center.
    assert system.members(PAYMENTS) == {ALICE}
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        assert system.get(kind, "jitaccess.dev") is None, f"{kind} left behind"

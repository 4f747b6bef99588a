"""The Helm chart against the real control plane: applied server-side, installed, upgraded and
uninstalled; its RBAC proven enough for the operator's whole job; and two peered replicas, of which
one is active and the other takes over.

No kubelet runs here, so the chart's pods never start: these tests check what the API server
accepts and enforces (schemas, Pod Security admission, RBAC as the authorizer evaluates it, Helm's
resource policies), and run the operator as a subprocess authenticated as the chart's
ServiceAccount (a token from the TokenRequest API) where a pod would run.

Every test uses names of its own (release, namespace, cluster-scoped objects). Shared with the
session are only the jitaccess CRDs, which the chart carries unchanged (tests/unit/test_chart_crds.py)
and keeps on uninstall, and, while the operator runs with the chart's RBAC, the webhook
configurations, which the session's operator rewrites when it starts again.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from devenv.controlplane import ControlPlane
from devenv.emulator import IdentityCenterEmulator
from devenv.operator_process import OperatorProcess
from jitaccess.adapters.impersonation import DecisionError, Impersonator
from jitaccess.adapters.tls import generate_serving_files
from jitaccess.adapters.webhooks import configurations
from tests.helm.chart import CHART, REPO, Helm, documents, helm_binary
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e

JIT_CRDS = sorted(yaml.safe_load(p.read_text())["metadata"]["name"] for p in (REPO / "crds").glob("*.yaml"))
WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
TEST_USER = "chart-test-approver@example.com"  # not one of the session's test users


@pytest.fixture(scope="module")
def helm(control_plane: ControlPlane) -> Helm:
    return Helm(helm_binary()).for_cluster(control_plane.admin_kubeconfig)


@pytest.fixture
def suffix() -> str:
    return secrets.token_hex(3)


def get(cluster: ControlPlane, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
    result = cluster.kubectl(*args, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def can_i(
    cluster: ControlPlane, who: str, verb: str, resource: str, *, subresource: str = "", namespace: str = ""
) -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={who}", *([f"--namespace={namespace}"] if namespace else [])]
    if subresource:
        args.append(f"--subresource={subresource}")
    result = cluster.kubectl(*args, check=False)
    return result.stdout.strip() == "yes"


def restricted_namespace(cluster: ControlPlane, name: str) -> None:
    """A namespace that enforces the restricted Pod Security Standard (and warns about it)."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")},
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def delete_all(cluster: ControlPlane, objects: list[dict[str, Any]], namespace: str) -> None:
    """Remove what a test created, except CRDs (shared with the session) and then its namespace."""
    for obj in reversed(objects):
        if obj["kind"] == "CustomResourceDefinition":
            continue
        where = ["-n", namespace] if obj["metadata"].get("namespace") else []
        kind = f"{obj['kind'].lower()}.{obj['apiVersion'].split('/')[0]}" if "/" in obj["apiVersion"] else obj["kind"]
        cluster.kubectl(
            "delete", kind, obj["metadata"]["name"], *where, "--ignore-not-found", "--wait=false", check=False
        )
    # Without a controller-manager the namespace stays Terminating; its name is never reused.
    cluster.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false", check=False)


def apply_in(cluster: ControlPlane, namespace: str, objects: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """Apply `objects` server-side in `namespace`, as the chart tests' field manager."""
    return cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=jitaccess-chart-test",
        "-n",
        namespace,
        "-f",
        "-",
        input="\n---\n".join(yaml.safe_dump(o) for o in objects),
    )


def establish(cluster: ControlPlane, crds: list[dict[str, Any]], field_manager: str) -> None:
    """Apply CRDs server-side and wait until they are served.

    `--force-conflicts`: the session installed the jitaccess CRDs with kubectl's own field manager,
    and the same content applied by a second manager conflicts wherever a generated schema says
    `default: null` (the API server drops the null, so the two appliers look different to it).
    """
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={field_manager}",
        "-f",
        "-",
        input="\n---\n".join(yaml.safe_dump(crd) for crd in crds),
    )
    for crd in crds:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=60s")


def return_crds_to_the_session(cluster: ControlPlane) -> None:
    """Give the jitaccess CRDs back to the field manager the session installs them with (kubectl's)."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))


# --- server-side apply -------------------------------------------------------------------------


@pytest.fixture
def applied(control_plane: ControlPlane, helm: Helm, suffix: str) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    # A release name containing the chart name is the full name of its objects (as "jitaccess" is).
    release, namespace = f"jitaccess-ssa-{suffix}", f"jit-ssa-{suffix}"
    manifest = helm.template(
        release,
        namespace,
        include_crds=True,
        set_values={"leaderElection.leaseName": release, "rbac.approvers.users[0]": TEST_USER},
    )
    objects = documents(manifest)
    restricted_namespace(control_plane, namespace)
    try:
        yield release, namespace, objects
    finally:
        # The webhook configurations are only ever tried (a dry run): the session's are named alike.
        delete_all(control_plane, [o for o in objects if o["kind"] not in WEBHOOK_KINDS], namespace)
        return_crds_to_the_session(control_plane)


def test_rendered_chart_applies_server_side(
    control_plane: ControlPlane, applied: tuple[str, str, list[dict[str, Any]]]
) -> None:
    release, namespace, objects = applied
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    webhooks = [o for o in objects if o["kind"] in WEBHOOK_KINDS]
    rest = [o for o in objects if o["kind"] != "CustomResourceDefinition" and o not in webhooks]
    # CRDs first: served before anything of their kinds is applied (as Helm installs them).
    establish(control_plane, crds, "jitaccess-chart-test")
    result = apply_in(control_plane, namespace, rest)
    assert "Warning" not in result.stderr, result.stderr  # e.g. "would violate PodSecurity"
    # The webhook configurations, as the API server would store them (their CEL compiles): a
    # server-side dry run, under a name of their own so that it is not merged into the session's
    # configurations of the same default name (nothing is stored either way).
    assert len(webhooks) == 2
    tried = [{**o, "metadata": {**o["metadata"], "name": f"{release}-dry-run"}} for o in webhooks]
    stored = control_plane.kubectl(
        "apply", "--server-side", "--dry-run=server", "--field-manager=jitaccess-chart-test", "-o", "json", "-f", "-",
        input="\n---\n".join(yaml.safe_dump(o) for o in tried),
    )  # fmt: skip
    for obj in json.loads(stored.stdout)["items"]:
        for webhook in obj["webhooks"]:
            assert webhook["failurePolicy"] == "Fail" and webhook["clientConfig"]["caBundle"], webhook["name"]
            assert webhook["clientConfig"]["service"]["namespace"] == namespace, webhook["name"]

    deployment = get(control_plane, "deployment", release, namespace)
    assert deployment is not None
    pod_spec = deployment["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod_spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for crd in JIT_CRDS:
        stored = get(control_plane, "crd", crd)
        assert stored is not None and stored["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert get(control_plane, "role", f"{release}-lease", namespace) is not None
    assert get(control_plane, "secret", f"{release}-webhook-tls", namespace) is not None

    # The API server's own Pod Security admission accepts the pod the Deployment would create.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{release}-probe", "namespace": namespace},
        "spec": pod_spec,
    }
    admitted = control_plane.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(pod))
    assert json.loads(admitted.stdout)["spec"]["securityContext"]["runAsNonRoot"] is True
    privileged = json.loads(json.dumps(pod))
    privileged["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    refused = control_plane.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(privileged), check=False)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr


def test_rbac_as_the_api_server_evaluates_it(
    control_plane: ControlPlane, applied: tuple[str, str, list[dict[str, Any]]]
) -> None:
    release, namespace, objects = applied
    apply_in(
        control_plane,
        namespace,
        [
            o
            for o in objects
            if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
        ],
    )
    operator = f"system:serviceaccount:{namespace}:{release}"
    assert can_i(control_plane, operator, "patch", "accessgrants.jitaccess.dev", subresource="status")
    assert can_i(control_plane, operator, "create", "accessgrants.jitaccess.dev")
    assert can_i(control_plane, operator, "watch", "accessrequests.jitaccess.dev")
    # Leader election: its own Lease in its own namespace, and nothing else of the kind.
    assert can_i(control_plane, operator, "create", "leases.coordination.k8s.io", namespace=namespace)
    assert can_i(control_plane, operator, "update", f"leases.coordination.k8s.io/{release}", namespace=namespace)
    assert not can_i(control_plane, operator, "update", "leases.coordination.k8s.io/other", namespace=namespace)
    assert not can_i(control_plane, operator, "create", "leases.coordination.k8s.io", namespace="default")
    # Events: created in its own namespace, where kopf posts those of the cluster-scoped kinds; no other.
    assert can_i(control_plane, operator, "create", "events", namespace=namespace)
    assert not can_i(control_plane, operator, "create", "events", namespace="default")
    assert not can_i(control_plane, operator, "patch", "events", namespace=namespace)
    assert not can_i(control_plane, operator, "create", "events.events.k8s.io", namespace=namespace)
    # The chart installs the webhook configurations; the operator reads them and cannot change them.
    assert can_i(control_plane, operator, "get", "validatingwebhookconfigurations/jitaccess.dev")
    assert not can_i(control_plane, operator, "patch", "validatingwebhookconfigurations/jitaccess.dev")
    assert not can_i(control_plane, operator, "get", "validatingwebhookconfigurations/someone-elses")
    assert not can_i(control_plane, operator, "delete", "teamownerships.jitaccess.dev")
    assert not can_i(control_plane, operator, "update", "teamownerships.jitaccess.dev")
    assert not can_i(control_plane, operator, "get", "secrets")

    # The approver binding from the values: may annotate requests, never write status or grants.
    assert can_i(control_plane, TEST_USER, "patch", "accessrequests.jitaccess.dev")
    assert not can_i(control_plane, TEST_USER, "patch", "accessrequests.jitaccess.dev", subresource="status")
    assert not can_i(control_plane, TEST_USER, "create", "accessgrants.jitaccess.dev")


def token_kubeconfig(cluster: ControlPlane, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig in `path`'s folder acting as the ServiceAccount, with a token from the TokenRequest API,
    and its namespace as the default one, as a Pod of it has (its token's namespace file): kopf posts the
    Events of the cluster-scoped jitaccess objects there, where the chart's Role lets the operator."""
    kubeconfig = cluster.service_account_kubeconfig(namespace, account, path.parent)
    config = json.loads(kubeconfig.read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = namespace
    kubeconfig.write_text(json.dumps(config, indent=2) + "\n")
    return kubeconfig


def test_operator_does_its_whole_job_with_the_charts_rbac(
    system: Jit,
    control_plane: ControlPlane,
    identity_center: IdentityCenterEmulator,
    applied: tuple[str, str, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    """The operator, authenticated as the chart's ServiceAccount and nothing more, checks its webhook
    configurations (installed for it, as the chart does, calling this process), grants, expires and
    revokes: the chart's ClusterRole is enough (a 403 would stall it)."""
    release, namespace, objects = applied
    rbac = [
        o
        for o in objects
        if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    ]
    apply_in(control_plane, namespace, rbac)
    kubeconfig = token_kubeconfig(control_plane, namespace, release, tmp_path / "operator.kubeconfig")
    tls = generate_serving_files(["127.0.0.1", "localhost"], tmp_path / "tls")
    env = {
        "JITACCESS_MIN_DURATION_SECONDS": "1",
        "JITACCESS_RESYNC_SECONDS": "5",
        # As the session's operator: a revocation's session deny is held seconds, not the session
        # duration, so that later tests find the permission sets as the catalogs render them.
        "JITACCESS_REVOCATION_HOLD_SECONDS": "15",
        "JITACCESS_LOG_FORMAT": "json",
        "JITACCESS_WEBHOOK_MANAGED": "false",
        "JITACCESS_WEBHOOK_CERTFILE": str(tls.certfile),
        "JITACCESS_WEBHOOK_KEYFILE": str(tls.keyfile),
        "JITACCESS_WEBHOOK_CAFILE": str(tls.cafile),
    }
    charted = OperatorProcess(kubeconfig, identity_center.env(), tmp_path / "operator.log", extra_env=env)
    client = {
        "url": f"https://127.0.0.1:{charted.webhook_port}",
        "caBundle": base64.b64encode(tls.cafile.read_bytes()).decode(),
    }
    installed = configurations(client, [f"system:serviceaccount:{namespace}:{release}"])
    system.operator.stop()
    try:
        control_plane.kubectl(
            "apply", "--server-side", "--force-conflicts", "--field-manager=jitaccess-chart-test", "-f", "-",
            input="\n---\n".join(yaml.safe_dump(o) for o in installed),
        )  # fmt: skip
        charted.start()
        system.request("rbac-expiry", "prod-eng-payments", duration="2s")
        system.wait_reason("accessgrant", "rbac-expiry", "Expired", timeout=30)
        system.request("rbac-revoke", "prod-eng-payments", duration="1h")
        system.wait_reason("accessrequest", "rbac-revoke", "Granted")
        assert system.members("prod-eng-payments") == {"alice@example.com"}
        system.kubectl("annotate", "accessgrant", "rbac-revoke", "jitaccess.dev/revoked=true", user="alice@example.com")
        system.wait_reason("accessgrant", "rbac-revoke", "Revoked")
        assert system.members("prod-eng-payments") == set()
        revoked = [e for e in system.events("rbac-revoke") if e["reason"] == "Revoked"]
        assert revoked, "no Event posted"
        assert {e["metadata"]["namespace"] for e in revoked} == {namespace}, "Events land in the operator's namespace"
        log = charted.log_file.read_text()
        assert "Forbidden" not in log and " 403" not in log, charted.tail(30)
    finally:
        charted.stop()
        system.operator.start()


# --- helm install, upgrade, uninstall ----------------------------------------------------------


def adopt_crds(cluster: ControlPlane, release: str, namespace: str) -> None:
    """CRDs applied before with kubectl (as the session does) join the release: Helm's adoption."""
    for crd in JIT_CRDS:
        if get(cluster, "crd", crd) is None:
            continue
        cluster.kubectl("label", "crd", crd, "app.kubernetes.io/managed-by=Helm", "--overwrite")
        cluster.kubectl(
            "annotate",
            "crd",
            crd,
            "--overwrite",
            f"meta.helm.sh/release-name={release}",
            f"meta.helm.sh/release-namespace={namespace}",
        )


def next_version(tmp_path: Path) -> Path:
    """The same chart with the next patch version: what `helm upgrade` would get from a repository."""
    copy = tmp_path / "jitaccess"
    shutil.copytree(CHART, copy)
    chart = yaml.safe_load((copy / "Chart.yaml").read_text())
    major, minor, patch = chart["version"].split(".")
    chart["version"] = f"{major}.{minor}.{int(patch) + 1}"
    (copy / "Chart.yaml").write_text(yaml.safe_dump(chart, sort_keys=False))
    return copy


def test_install_upgrade_uninstall(control_plane: ControlPlane, helm: Helm, suffix: str, tmp_path: Path) -> None:
    release, namespace = f"jitaccess-helm-{suffix}", f"jit-helm-{suffix}"
    # Webhook configurations of their own name: the session's are called jitaccess.dev. Until the
    # uninstall, they refuse writes to jitaccess objects by anyone but this release's operator (there
    # is no pod behind their Service): this test makes none.
    webhooks = f"jit-helm-{suffix}"
    base = [
        "--namespace",
        namespace,
        "--set",
        f"leaderElection.leaseName={release}",
        "--set",
        f"webhook.configurationName={webhooks}",
    ]
    adopt_crds(control_plane, release, namespace)
    try:
        installed = helm.run("install", release, str(CHART), "--create-namespace", *base)
        assert "kubectl apply -f teams.yaml -f entitlements.yaml" in installed.stdout  # NOTES.txt
        assert f"{release}-requester" in installed.stdout
        secret_before = get(control_plane, "secret", f"{release}-webhook-tls", namespace)
        assert secret_before is not None
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            installed_webhooks = get(control_plane, kind, webhooks)
            assert installed_webhooks is not None, f"{kind} {webhooks} not installed"
            assert {w["clientConfig"]["caBundle"] for w in installed_webhooks["webhooks"]} == {
                secret_before["data"]["ca.crt"]
            }
        version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
        for crd in JIT_CRDS:
            stored = get(control_plane, "crd", crd)
            assert stored is not None and stored["metadata"]["labels"]["helm.sh/chart"] == f"jitaccess-{version}"

        upgraded_chart = next_version(tmp_path)
        values = tmp_path / "upgrade-values.yaml"
        values.write_text(yaml.safe_dump({"replicaCount": 3, "config": {"logFormat": "text", "rateLimit": 10}}))
        helm.run("upgrade", release, str(upgraded_chart), *base, "--values", str(values))

        history = json.loads(helm.run("history", release, "--namespace", namespace, "-o", "json").stdout)
        assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]
        deployment = get(control_plane, "deployment", release, namespace)
        assert deployment is not None and deployment["spec"]["replicas"] == 3
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["JITACCESS_LOG_FORMAT"] == "text" and env["JITACCESS_RATE_LIMIT"] == "10"
        new_version = yaml.safe_load((upgraded_chart / "Chart.yaml").read_text())["version"]
        for crd in JIT_CRDS:  # upgraded with the release, unlike CRDs in Helm's crds/ folder
            stored = get(control_plane, "crd", crd)
            assert stored is not None and stored["metadata"]["labels"]["helm.sh/chart"] == f"jitaccess-{new_version}"
        # The generated webhook certificate survives the upgrade (looked up, not generated again).
        secret_after = get(control_plane, "secret", f"{release}-webhook-tls", namespace)
        assert secret_after is not None and secret_after["data"] == secret_before["data"]

        # Rotated: a new CA and certificate, and for this one upgrade the webhooks trust both CAs
        # (replicas not yet restarted serve the previous certificate); the next upgrade drops the old.
        def bundles() -> set[str]:
            configured = get(control_plane, "validatingwebhookconfiguration", webhooks) or {}
            return {base64.b64decode(w["clientConfig"]["caBundle"]).decode() for w in configured["webhooks"]}

        rotate = ["--values", str(values), "--set", "webhook.certificate.rotate=true"]
        helm.run("upgrade", release, str(upgraded_chart), *base, *rotate)
        rotated = get(control_plane, "secret", f"{release}-webhook-tls", namespace)
        assert rotated is not None and rotated["data"]["ca.crt"] != secret_before["data"]["ca.crt"]
        new_ca, old_ca = (base64.b64decode(x["data"]["ca.crt"]).decode() for x in (rotated, secret_before))
        assert bundles() == {new_ca + old_ca}
        helm.run("upgrade", release, str(upgraded_chart), *base, "--values", str(values))
        assert bundles() == {new_ca}
        kept = get(control_plane, "secret", f"{release}-webhook-tls", namespace)
        assert kept is not None and kept["data"] == rotated["data"]

        uninstalled = helm.run("uninstall", release, "--namespace", namespace)
        assert "kept due to the resource policy" in uninstalled.stdout
        for crd in JIT_CRDS:
            assert get(control_plane, "crd", crd) is not None, f"{crd} was removed by the uninstall"
        assert get(control_plane, "deployment", release, namespace) is None
        assert get(control_plane, "clusterrole", f"{release}-operator") is None
        assert get(control_plane, "role", f"{release}-lease", namespace) is None
        assert get(control_plane, "validatingwebhookconfiguration", webhooks) is None
    finally:
        helm.run("uninstall", release, "--namespace", namespace, "--ignore-not-found", check=False)
        control_plane.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false", check=False)
        return_crds_to_the_session(control_plane)


# --- leader election: two replicas, one acts --------------------------------------------------


def said(operator: OperatorProcess, fragment: str) -> bool:
    lines = operator.log_file.read_text(errors="replace").splitlines()
    return any(fragment in json.loads(line)["message"] for line in lines if line.startswith("{"))


@pytest.fixture
def elected(control_plane: ControlPlane, helm: Helm, suffix: str, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """The chart's RBAC (with its Lease Role) in a namespace of its own, and a kubeconfig with it."""
    name, namespace = f"jitaccess-lease-{suffix}", f"jit-lease-{suffix}"
    objects = documents(helm.template(name, namespace, set_values={"leaderElection.leaseName": name}))
    kinds = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    applied = [o for o in objects if o["kind"] in kinds]
    control_plane.kubectl("create", "namespace", namespace)
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input="\n---\n".join(yaml.safe_dump(o) for o in applied))
    try:
        yield name, namespace, token_kubeconfig(control_plane, namespace, name, tmp_path / "replica.kubeconfig")
    finally:
        delete_all(control_plane, applied, namespace)
        control_plane.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false", check=False)


def active_grants(operator: OperatorProcess) -> float | None:
    """The operator's jitaccess_active_grants for payments; None when it shows none (it never listed)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "jitaccess_active_grants" and sample.labels == {"entitlement": "prod-eng-payments"}:
                return sample.value
    return None


def test_two_replicas_one_leads_with_the_charts_rbac(
    system: Jit,
    control_plane: ControlPlane,
    identity_center: IdentityCenterEmulator,
    elected: tuple[str, str, Path],
    tmp_path: Path,
) -> None:
    """The first replica takes the Lease, the second waits as a standby, and takes over at once when
    the first stops cleanly (it releases the Lease). The chart's Role is all the Lease needs."""
    name, namespace, kubeconfig = elected
    system.request("lease-grant", "prod-eng-payments", duration="1h")
    system.wait_reason("accessrequest", "lease-grant", "Granted")
    env = {
        "JITACCESS_LEADER_ELECTION": "true",
        "JITACCESS_LEASE_NAME": name,
        "JITACCESS_LEASE_NAMESPACE": namespace,
        "JITACCESS_LOG_FORMAT": "json",
        # The session's own operator works meanwhile: these two must not undo any of its work.
        "JITACCESS_REMOVE_UNBACKED_MEMBERS": "false",
        "JITACCESS_RESYNC_SECONDS": "3600",
    }
    first, second = replicas = [
        OperatorProcess(
            kubeconfig,
            identity_center.env(),
            tmp_path / f"{n}.log",
            extra_env={**env, "JITACCESS_LEADER_IDENTITY": n},
            webhooks=False,
        )
        for n in ("first", "second")
    ]

    def holder() -> str | None:
        lease = get(control_plane, "lease", name, namespace) or {}
        return (lease.get("spec") or {}).get("holderIdentity")

    try:
        first.start()
        eventually(lambda: holder() == "first" or None, what="the first replica takes the Lease")
        assert said(first, "leading: first holds")
        second.start()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # a standby stays one
            assert holder() == "first" and not said(second, "leading:")
            time.sleep(0.2)
        assert active_grants(second) == 1, "a standby keeps its indexes (and gauges) current too"

        first.stop()  # a clean stop stops its work, then releases the Lease: no waiting for it to expire
        stopped = time.monotonic()
        eventually(lambda: holder() == "second" or None, timeout=8, what="the second replica takes over")
        # Released, not expired: an expired Lease (12 s) could be taken no sooner than 10 s after the
        # stop (renewed every 2 s); a released one at the standby's next try (2 s). The margin is
        # for a loaded machine, where the API server itself can take a second or two.
        assert time.monotonic() - stopped < 8
        assert said(first, "released Lease")
        eventually(lambda: said(second, "leading: second holds") or None)
    finally:
        for replica in replicas:
            replica.stop()
    for replica in replicas:  # JITACCESS_LOG_FORMAT=json: every line one JSON object
        lines = [line for line in replica.log_file.read_text().splitlines() if line.strip()]
        assert lines and all({"time", "level", "logger", "message"} <= json.loads(line).keys() for line in lines)
        # RBAC's refusals only: the session operator's webhooks rightly refuse these replicas (another
        # identity) writing status it alone writes, e.g. a PermissionCatalog's after a pass.
        refused = [line for line in lines if "Forbidden" in line and "admission webhook" not in line]
        assert not refused, "the chart's RBAC lacks a permission"


# --- Slack: the impersonating identity ----------------------------------------------------------


def test_slack_impersonator_rbac_and_tokens(
    system: Jit, control_plane: ControlPlane, helm: Helm, suffix: str, tmp_path: Path
) -> None:
    """The chart's Slack identity as the API server sees it: the operator may obtain tokens of that
    one ServiceAccount (TokenRequest) and impersonates nobody itself; the ServiceAccount may
    impersonate exactly slack.approvers and do nothing else; a token obtained as the operator
    decides as an approver (a dry run, stamped by the session's webhook as that approver)."""
    release, namespace = f"jitaccess-slack-{suffix}", f"jit-slack-{suffix}"
    objects = documents(
        helm.template(
            release,
            namespace,
            values=[CHART / "ci" / "slack-values.yaml"],
            set_values={"leaderElection.leaseName": release},
        )
    )
    kinds = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", "Ingress")
    applied = [o for o in objects if o["kind"] in kinds]
    restricted_namespace(control_plane, namespace)
    try:
        result = apply_in(control_plane, namespace, applied)
        assert "Warning" not in result.stderr, result.stderr
        operator, account = f"system:serviceaccount:{namespace}:{release}", f"{release}-slack"
        impersonator = f"system:serviceaccount:{namespace}:{account}"
        token = "serviceaccounts"
        assert can_i(control_plane, operator, "create", f"{token}/{account}", subresource="token", namespace=namespace)
        assert not can_i(
            control_plane, operator, "create", f"{token}/{release}", subresource="token", namespace=namespace
        )
        assert not can_i(
            control_plane, operator, "create", f"{token}/default", subresource="token", namespace="default"
        )
        assert not can_i(control_plane, operator, "impersonate", "users/lena@example.com")
        assert can_i(control_plane, impersonator, "impersonate", "users/lena@example.com")
        for other in ("users/mallory@example.com", "groups/system:masters", "users/system:admin"):
            assert not can_i(control_plane, impersonator, "impersonate", other), other
        assert not can_i(control_plane, impersonator, "patch", "accessrequests.jitaccess.dev")
        assert not can_i(control_plane, impersonator, "get", "secrets", namespace=namespace)

        kubeconfig = token_kubeconfig(control_plane, namespace, release, tmp_path / "operator.kubeconfig")
        as_operator = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=as_operator, persist_config=False
        )
        slack = Impersonator.from_service_account(f"{namespace}/{account}", operator=as_operator)
        try:
            system.request("chart-slack", "prod-eng-ledger")
            system.wait_reason("accessrequest", "chart-slack", "Pending")
            decided = slack.annotate_request(
                "chart-slack", "lena@example.com", {"jitaccess.dev/approved": "true"}, dry_run=True
            )
            assert decided["metadata"]["annotations"]["jitaccess.dev/approved-by"] == "lena@example.com"
            with pytest.raises(DecisionError) as refused:
                slack.annotate_request("chart-slack", "mallory@example.com", {"jitaccess.dev/approved": "true"})
            assert refused.value.impersonation_refused, refused.value.message
            assert system.ready_reason("accessrequest", "chart-slack") == "Pending"
        finally:
            slack.close()
    finally:
        delete_all(control_plane, applied, namespace)

"""Session fixtures of the node tier: the chart installed as a user would, on a real node.

The image is built from the repository's Dockerfile (tests/image/build.sh), a control plane runs
with a node (`devenv.node`: containerd, kubelet, kube-scheduler), and ``helm install --wait``
installs charts/jitaccess with that image: the operator runs as two Pods whose webhooks the API
server calls through their Service. The Identity Center emulator is this tier's own (the e2e
tier's operator acts on the shared one), reached by the Pods through the node's bridge.

The tier is skipped only where a node cannot run at all: not root, or cgroup controllers missing
(the reason is the precondition). Anything else that fails is a failure.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from devenv.controlplane import ControlPlane
from devenv.emulator import IdentityCenterEmulator
from devenv.node import host_unsuitable
from devenv.paths import REPO, SEED_FILE
from devenv.processes import tail
from tests.helm.chart import CHART, Helm, helm_binary
from tests.support.harness import Jit, eventually

NAMESPACE = "jitaccess"
RELEASE = "jitaccess"
DEPLOYMENT = f"deployment/{RELEASE}"
#: The approvers of the example teams (payments, ledger): they may delete their teams' records.
APPROVERS = ("paula@example.com", "lena@example.com")
IMAGE_BUILD = REPO / "tests" / "image" / "build.sh"


def build_image(script: Path = IMAGE_BUILD) -> str:
    """The image tests/image/build.sh builds (or finds, by its content tag): its name."""
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed ({result.returncode}):\n{tail(result.stderr)}")
    return result.stdout.strip().splitlines()[-1]


class PodLogs:
    """What the harness reads from "the operator": here the logs of the release's Pods."""

    def __init__(self, cluster: ControlPlane) -> None:
        self._cluster = cluster
        self.running = True

    def tail(self, lines: int = 20) -> str:
        result = self._cluster.kubectl(
            "logs", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}", f"--tail={lines}", check=False
        )
        return result.stdout + result.stderr


def chart_values(image: str, emulator: IdentityCenterEmulator, endpoint: str) -> dict[str, object]:
    """Values a user would write: the image, the AWS settings, who may request and approve."""
    repository, tag = image.rsplit(":", 1)
    aws = {k: v for k, v in emulator.env().items() if k.startswith("AWS_") and k != "AWS_ENDPOINT_URL"}
    teams = ["team-payments", "team-ledger", "sre"]
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "config": {
            "identityStoreId": emulator.identity_store_id,
            "region": emulator.region,
            "minDurationSeconds": 1,
            "resyncSeconds": 5,
            "pendingTimeoutSeconds": 120,
            # The tests' callers send alice's dry runs ten times a second: no limit on her pace.
            "requestsPerUserPerMinute": 0,
            "extraEnv": [
                {"name": "AWS_ENDPOINT_URL", "value": f"http://{endpoint}"},
                *({"name": k, "value": v} for k, v in sorted(aws.items())),
            ],
        },
        "rbac": {"requesters": {"groups": teams}, "approvers": {"groups": teams}, "viewers": {"groups": teams}},
        "resources": {"requests": {"cpu": "10m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    }


@pytest.fixture(scope="session")
def node_cluster() -> Iterator[ControlPlane]:
    reason = host_unsuitable()
    if reason:
        pytest.skip(f"no node on this machine: {reason}")
    with ControlPlane(with_node=True).start() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def images(node_cluster: ControlPlane) -> tuple[str, str]:
    """The built image and a changed one (another image ID: one more label) for the upgrade, both
    in the node at once (a later build may remove them from podman)."""
    name = build_image()
    changed = f"{name}-upgrade"
    subprocess.run(
        ["podman", "build", "--runtime", "runc", "--quiet", "-t", changed, "-f", "-"],
        input=f"FROM {name}\nLABEL dev.jitaccess.test=upgrade\n",
        text=True,
        check=True,
        capture_output=True,
    )
    for image in (name, changed):
        node_cluster.node.load_image(image)
    return name, changed


@pytest.fixture(scope="session")
def image(images: tuple[str, str]) -> str:
    return images[0]


@pytest.fixture(scope="session")
def node_identity_center() -> Iterator[IdentityCenterEmulator]:
    emulator = IdentityCenterEmulator().start()
    try:
        emulator.seed(SEED_FILE)
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def helm(node_cluster: ControlPlane) -> Helm:
    return Helm(helm_binary()).for_cluster(node_cluster.admin_kubeconfig)


@pytest.fixture(scope="session")
def values_file(
    node_cluster: ControlPlane,
    image: str,
    node_identity_center: IdentityCenterEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    endpoint = node_cluster.node.expose(int(node_identity_center.endpoint_url.rsplit(":", 1)[1]))
    path = tmp_path_factory.mktemp("chart") / "values.yaml"
    path.write_text(yaml.safe_dump(chart_values(image, node_identity_center, endpoint)))
    return path


@pytest.fixture(scope="session")
def installed(
    node_cluster: ControlPlane, helm: Helm, values_file: Path, node_identity_center: IdentityCenterEmulator
) -> Iterator[Jit]:
    """The release installed with ``helm install --wait``, the examples applied and resolved."""
    helm.run(
        "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
        "--values", str(values_file), "--wait", "--timeout", "5m",
        timeout=360,
    )  # fmt: skip
    system = Jit(node_cluster, node_identity_center, PodLogs(node_cluster))  # type: ignore[arg-type]
    system.apply_examples()
    yield system


@pytest.fixture
def system(installed: Jit) -> Iterator[Jit]:
    """The installed system, its grants and requests cleaned after each test."""
    yield installed
    clean(installed)
    for group in ("prod-eng-payments", "prod-eng-ledger"):
        assert installed.members(group) == set(), f"memberships left behind in {group}"


#: What the approvers end, with their reason, before they delete: live access is revoked and an
#: undecided request denied (a deletion would name nobody in their records), each refused where it
#: is not theirs to end or has ended already.
_ENDS = (
    ("accessgrants", "jitaccess.dev/revoked=true", "jitaccess.dev/revoke-reason=the end of a node test"),
    ("accessrequests", "jitaccess.dev/denied=true", "jitaccess.dev/decision-reason=the end of a node test"),
)


def clean(system: Jit) -> None:
    """End, then delete, every grant and request as the owner teams' approvers: with the chart, the
    operator is its ServiceAccount, so admission refuses the admin what it refuses any non-approver
    (the e2e tier's operator runs as the admin, whom its webhooks let through)."""

    def done() -> bool:
        for approver in APPROVERS:
            for kind, end, reason in _ENDS:
                system.kubectl("annotate", kind, "--all", end, reason, user=approver, check=False)
            for kind in ("accessgrants", "accessrequests"):
                system.kubectl("delete", kind, "--all", "--wait=false", user=approver, check=False)
        left = system.kubectl("get", "accessgrants,accessrequests", "-o", "name").stdout.split()
        return not left

    eventually(done, timeout=30, interval=0.5, what="all grants and requests deleted by their approvers")


def pods(cluster: ControlPlane) -> list[dict[str, object]]:
    """The release's Pods that are not terminating."""
    out = cluster.kubectl("get", "pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "json")
    return [p for p in json.loads(out.stdout)["items"] if not p["metadata"].get("deletionTimestamp")]

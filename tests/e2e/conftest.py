"""Session fixtures of the end-to-end tier: CRDs and examples installed, operator running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jitaccess.devenv.controlplane import Cluster
from jitaccess.devenv.emulator import IdentityCenterEmulator
from jitaccess.devenv.operator_process import OperatorProcess
from tests.e2e.harness import EXAMPLES, REPO, Jit

WEBHOOK_CONFIGURATION = "jitaccess.dev"
OPERATOR_ENV = {
    "JITACCESS_MIN_DURATION_SECONDS": "1",
    "JITACCESS_RESYNC_SECONDS": "5",
    "JITACCESS_PENDING_TIMEOUT_SECONDS": "120",
}


def install(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd", "-l", "", "--all", "--timeout=60s")
    # Who may do what (RBAC), and the API server's own second layer under the webhooks (CEL).
    cluster.kubectl("apply", "-f", str(EXAMPLES / "rbac.yaml"), "-f", str(EXAMPLES / "admission-policy.yaml"))


@pytest.fixture(scope="session")
def jit(
    control_plane: Cluster, identity_center: IdentityCenterEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Jit]:
    install(control_plane)
    log_file = tmp_path_factory.mktemp("operator") / "operator.log"
    operator = OperatorProcess(control_plane.admin_kubeconfig, identity_center.env(), log_file, extra_env=OPERATOR_ENV)
    operator.start()
    system = Jit(control_plane, identity_center, operator)
    for name in ("01-teams.yaml", "02-entitlements.yaml"):
        system.kubectl("apply", "-f", str(EXAMPLES / name))
    for name in ("prod-eng-payments", "prod-eng-ledger"):
        system.wait_reason("entitlement", name, "Resolved", timeout=30)
    try:
        yield system
    finally:
        system.clean()
        operator.stop()
        # A failurePolicy=Fail webhook pointing at a dead port would block every later write.
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            control_plane.kubectl("delete", kind, WEBHOOK_CONFIGURATION, "--ignore-not-found", check=False)


@pytest.fixture
def system(jit: Jit) -> Iterator[Jit]:
    """The shared system, cleaned after each test so tests do not see each other's grants."""
    if not jit.operator.running:
        jit.operator.start()
    yield jit
    jit.clean()
    for group in ("prod-eng-payments", "prod-eng-ledger"):
        assert jit.members(group) == set(), f"memberships left behind in {group}"

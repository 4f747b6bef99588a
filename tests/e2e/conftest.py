"""Session fixtures of the end-to-end tier: CRDs and examples installed, operator running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devenv.controlplane import ControlPlane
from devenv.emulator import IdentityCenterEmulator
from devenv.operator_process import OperatorProcess
from tests.support.harness import OPERATOR_ENV, WEBHOOK_CONFIGURATION, Jit, install


@pytest.fixture(scope="session")
def jit(
    control_plane: ControlPlane, identity_center: IdentityCenterEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Jit]:
    install(control_plane)
    log_file = tmp_path_factory.mktemp("operator") / "operator.log"
    operator = OperatorProcess(control_plane.admin_kubeconfig, identity_center.env(), log_file, extra_env=OPERATOR_ENV)
    operator.start()
    system = Jit(control_plane, identity_center, operator)
    system.apply_examples()
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

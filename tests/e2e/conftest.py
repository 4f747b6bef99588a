"""Session fixtures of the end-to-end tier: CRDs and examples installed, operator running."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.controlplane import ControlPlane
from devenv.emulator import IdentityCenterEmulator
from devenv.eventsink import EventSinkReceiver
from devenv.notifications import LocalNotifications
from devenv.operator_process import OperatorProcess
from devenv.replicas import Replicas
from devenv.slack import SlackStandIn
from devenv.slack_identity import impersonator_kubeconfig
from tests.e2e.cli_run import Cli
from tests.support.harness import (
    ADMISSION_POLICY,
    ADMISSION_POLICY_NAME,
    OPERATOR_ENV,
    WEBHOOK_CONFIGURATION,
    Jit,
    eventually,
    install,
)


# Package-scoped, not session-scoped: the tier's operator stops, and its admission layer goes,
# when the tier's last test is done, so a tier that runs after it in the same pytest run (the
# component tier's in-process handlers, on the same shared control plane) finds the cluster as
# it would first.
@pytest.fixture(scope="package")
def notifications() -> Iterator[LocalNotifications]:
    """The example Slack workspace and a CloudEvents receiver, which the tier's operator tells."""
    local = LocalNotifications().start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def slack(notifications: LocalNotifications) -> SlackStandIn:
    return notifications.slack


@pytest.fixture
def events(notifications: LocalNotifications) -> EventSinkReceiver:
    return notifications.events


@pytest.fixture(scope="package")
def jit(
    control_plane: ControlPlane,
    identity_center: IdentityCenterEmulator,
    notifications: LocalNotifications,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Jit]:
    install(control_plane)
    workdir = tmp_path_factory.mktemp("operator")
    # Slack decisions are applied as the clicking user by the narrow impersonating identity.
    notifications.impersonator_kubeconfig = impersonator_kubeconfig(control_plane)
    # The operator checks the tier's admission policy too (examples/admission-policy.yaml, attack 146).
    env = OPERATOR_ENV | notifications.operator_env() | {"JITACCESS_ADMISSION_POLICY": ADMISSION_POLICY_NAME}
    if os.environ.get("JITACCESS_E2E_REPLICAS") == "2":
        operator = _survivor(control_plane, identity_center, workdir, env)
    else:
        operator = OperatorProcess(
            control_plane.admin_kubeconfig, identity_center.env(), workdir / "operator.log", extra_env=env
        )
        operator.start()
    system = Jit(control_plane, identity_center, operator, env)
    system.apply_examples()
    try:
        yield system
    finally:
        system.clean()
        operator.stop()
        # A failurePolicy=Fail webhook pointing at a dead port would block every later write.
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            control_plane.kubectl("delete", kind, WEBHOOK_CONFIGURATION, "--ignore-not-found", check=False)
        # The tier's admission policy too: the component tier writes objects as the webhooks would
        # have stamped them, which the policy (rightly) refuses.
        control_plane.kubectl("delete", "-f", str(ADMISSION_POLICY), "--ignore-not-found", check=False)


@pytest.fixture
def system(jit: Jit) -> Iterator[Jit]:
    """The shared system, cleaned after each test so tests do not see each other's grants."""
    if not jit.operator.running:
        jit.operator.start()
    yield jit
    jit.clean()
    for group in ("prod-eng-payments", "prod-eng-ledger"):
        assert jit.members(group) == set(), f"memberships left behind in {group}"


@pytest.fixture
def replaced(system: Jit) -> Iterator[Jit]:
    """The shared system with its operator stopped for a test's own replicas (devenv.replicas), and started again after."""
    system.operator.stop()
    try:
        yield system
    finally:
        system.operator.start()


@pytest.fixture
def cli(system: Jit) -> Iterator[Cli]:
    """`kubectl jit` run as the example users against the shared system (tests/e2e/cli_run.py)."""
    runner = Cli(system)
    yield runner
    runner.stop_all()


def _survivor(
    control_plane: ControlPlane, identity_center: IdentityCenterEmulator, workdir: Path, env: dict[str, str]
) -> OperatorProcess:
    """JITACCESS_E2E_REPLICAS=2: the operator scaled to two replicas electing a leader, and the one
    that led stopped: the tier runs against the standby that took over (and its webhooks)."""
    replicas = Replicas(2, control_plane.admin_kubeconfig, identity_center.env(), workdir, env=env)
    replicas.start()
    (leader,) = eventually(lambda: replicas.leaders() or None, timeout=10, what="a replica leads")
    replicas[leader].stop()
    eventually(lambda: replicas.leaders() == [1 - leader] or None, timeout=10, what="the other replica takes over")
    return replicas[1 - leader]


@pytest.fixture
def archived(jit: Jit, tmp_path: Any) -> Iterator[tuple[Jit, str]]:
    """The shared system with its operator replaced by one that archives to a fresh bucket (two
    operators would both act on every request); the shared one comes back afterwards."""
    bucket = jit.ic.create_bucket(f"audit-{secrets.token_hex(4)}", object_lock=True)
    jit.operator.stop()
    try:
        yield jit, bucket
    finally:
        jit.ic.faults.clear()
        if not jit.operator.running:
            jit.operator.start()
        jit.clean()

"""A crashed operator is restarted, as a Deployment would, and the cluster it left keeps its objects."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.controlplane import ControlPlane
from devenv.emulator import IdentityCenterEmulator
from devenv.operator_process import OperatorProcess, OperatorSupervisor, describe_exit
from tests.support.harness import eventually, install_rbac

# No owner team by that name: the operator answers each with Ready=False, OwnerNotFound.
ENTITLEMENT = """
apiVersion: jitaccess.dev/v1alpha1
kind: Entitlement
metadata:
  name: {name}
spec:
  owner: supervised-nobody
  identityCenter:
    groupName: prod-eng-payments
  defaultDuration: 1h
  maxDuration: 4h
"""


def reason(cluster: ControlPlane, name: str) -> str:
    out = cluster.kubectl(
        "get", "entitlement", name, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].reason}", check=False
    )
    return out.stdout.strip()


def wait_for_restart(supervisor: OperatorSupervisor, count: int, reports: list[str]) -> None:
    eventually(lambda: supervisor.restarts == count, 60, what=f"restart {count}; reports: {reports}")


@pytest.fixture
def supervised(
    control_plane: ControlPlane, fresh_identity_center: IdentityCenterEmulator, tmp_path: Path
) -> Iterator[tuple[OperatorSupervisor, list[str]]]:
    install_rbac(control_plane)
    operator = OperatorProcess(
        control_plane.admin_kubeconfig, fresh_identity_center.env(), tmp_path / "operator.log", webhooks=False
    )
    reports: list[str] = []
    supervisor = OperatorSupervisor(operator, reports.append, backoff=0.5, max_backoff=1.0, stable_after=3.0)
    with supervisor:
        try:
            yield supervisor, reports
        finally:
            # While the operator runs, so that its finalizers let them go.
            control_plane.kubectl(
                "delete", "entitlement", "supervised-a", "supervised-b", "--ignore-not-found", "--timeout=60s"
            )
    assert not operator.running


def test_a_killed_operator_is_restarted_and_finds_its_objects(
    control_plane: ControlPlane, supervised: tuple[OperatorSupervisor, list[str]]
) -> None:
    supervisor, reports = supervised
    operator = supervisor.operator
    control_plane.kubectl("apply", "-f", "-", input=ENTITLEMENT.format(name="supervised-a"))
    eventually(lambda: reason(control_plane, "supervised-a") == "OwnerNotFound", 30, what="supervised-a handled")

    first_pid = operator.pid
    assert first_pid is not None
    os.killpg(first_pid, signal.SIGKILL)
    eventually(lambda: supervisor.restarts == 1, 60, what=f"a restart; reports: {reports}")
    assert operator.running and operator.pid != first_pid
    assert reports[0].startswith("operator killed by SIGKILL; last lines in ")
    assert str(operator.log_file) in reports[0]
    assert reports[1].startswith("operator restarted (pid ")

    # The control plane stayed up with its objects, and the new operator acts on new ones.
    assert reason(control_plane, "supervised-a") == "OwnerNotFound"
    control_plane.kubectl("apply", "-f", "-", input=ENTITLEMENT.format(name="supervised-b"))
    eventually(lambda: reason(control_plane, "supervised-b") == "OwnerNotFound", 30, what="supervised-b handled")


def test_back_off_doubles_up_to_its_cap_then_resets_once_stable(
    supervised: tuple[OperatorSupervisor, list[str]],
) -> None:
    supervisor, reports = supervised
    operator = supervisor.operator
    for restarts in (1, 2, 3):
        pid = operator.pid
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
        wait_for_restart(supervisor, restarts, reports)
    crashes = [line for line in reports if "restarting it in" in line]
    assert [line.rsplit(" ", 2)[-2] for line in crashes] == ["0.5", "1", "1"]  # doubled, then capped
    time.sleep(3.5)  # up longer than stable_after: the back-off starts over
    pid = operator.pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)  # an exit it did not ask for, even a clean one, is a crash
    wait_for_restart(supervisor, 4, reports)
    assert [line for line in reports if "restarting it in" in line][-1].endswith(" in 0.5 s")


def test_exits_are_described() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(0) == "exited with code 0"

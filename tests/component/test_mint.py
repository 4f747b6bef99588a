"""Minting users at run time: a kubeconfig for any name and groups, trusted by the running API server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devenv.controlplane import ControlPlane
from devenv.mint import CONTROLPLANE_ENV
from devenv.paths import REPO
from devenv.processes import child_env
from tests.support.harness import install_rbac


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> ControlPlane:
    install_rbac(control_plane)  # examples/rbac.yaml binds roles to user names
    return control_plane


def kubectl(cluster: ControlPlane, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cluster.binary), "kubectl", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=child_env(),
    )


def whoami(cluster: ControlPlane, kubeconfig: Path) -> dict[str, object]:
    result = kubectl(cluster, kubeconfig, "auth", "whoami", "-o", "json")
    assert result.returncode == 0, result.stderr
    user_info: dict[str, object] = json.loads(result.stdout)["status"]["userInfo"]
    return user_info


def test_a_minted_user_is_who_it_says_and_rbac_applies(cluster: ControlPlane) -> None:
    kubeconfig = cluster.mint_kubeconfig("dave@example.com", ["team-payments", "sre"])
    assert kubeconfig.parent == cluster.users_dir / "minted"
    assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
    user = whoami(cluster, kubeconfig)
    assert user["username"] == "dave@example.com"
    assert user["groups"] == ["team-payments", "sre", "system:authenticated"]
    # No role is bound to dave: RBAC refuses him by his name.
    result = kubectl(cluster, kubeconfig, "get", "accessrequests")
    assert result.returncode != 0
    assert 'User "dave@example.com" cannot list resource "accessrequests"' in result.stderr


def _mint(env: dict[str, str], *args: str, check: bool) -> subprocess.CompletedProcess[str]:
    """`python -m devenv.mint` in a process of its own, from the repository's root."""
    return subprocess.run(
        [sys.executable, "-m", "devenv.mint", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
        cwd=REPO,
        env=env,
    )


def test_mint_from_another_process(cluster: ControlPlane) -> None:
    env = {**child_env(), CONTROLPLANE_ENV: str(cluster.workdir)}
    result = _mint(env, "alice@example.com", "--group", "team-ledger", check=True)
    kubeconfig = Path(result.stdout.strip())
    user = whoami(cluster, kubeconfig)
    assert (user["username"], user["groups"]) == ("alice@example.com", ["team-ledger", "system:authenticated"])
    # A minted alice acts as alice: the roles bound to her name apply.
    assert kubectl(cluster, kubeconfig, "auth", "can-i", "create", "accessrequests").stdout.strip() == "yes"
    assert kubectl(cluster, kubeconfig, "auth", "can-i", "delete", "accessgrants").stdout.strip() == "no"
    nobody = cluster.mint_kubeconfig("nobody")
    assert whoami(cluster, nobody)["groups"] == ["system:authenticated"]


def test_mint_without_a_control_plane_says_what_to_do() -> None:
    env = {key: value for key, value in child_env().items() if key != CONTROLPLANE_ENV}
    result = _mint(env, "dave", check=False)
    assert result.returncode == 2
    assert "env.sh" in result.stderr

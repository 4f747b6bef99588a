"""Smoke tests of the local control plane: version, admin, test users, RBAC, controller-manager."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from devenv.controlplane import TEST_USERS, ControlPlane
from devenv.paths import REPO

pytestmark = pytest.mark.e2e

EXPECTED_VERSION = (REPO / "tests" / "controlplane" / "VERSION").read_text().strip()


def eventually(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"smoke-{secrets.token_hex(4)}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def whoami(cluster: ControlPlane, user: str) -> dict[str, object]:
    review = json.loads(cluster.kubectl("auth", "whoami", "-o", "json", user=user).stdout)
    user_info: dict[str, object] = review["status"]["userInfo"]
    return user_info


def test_server_reports_the_built_version(control_plane: ControlPlane) -> None:
    version = json.loads(control_plane.kubectl("get", "--raw", "/version").stdout)
    assert EXPECTED_VERSION == "v1.35.4"
    assert version["gitVersion"] == EXPECTED_VERSION


def test_admin_creates_a_namespace(control_plane: ControlPlane, namespace: str) -> None:
    phase = control_plane.kubectl("get", "namespace", namespace, "-o", "jsonpath={.status.phase}")
    assert phase.stdout == "Active"


def test_alice_is_herself_in_team_payments(control_plane: ControlPlane) -> None:
    info = whoami(control_plane, "alice@example.com")
    assert info["username"] == "alice@example.com"
    assert set(info["groups"]) >= {"team-payments", "system:authenticated"}  # type: ignore[call-overload]


@pytest.mark.parametrize("user", sorted(TEST_USERS))
def test_every_test_user_has_its_groups(control_plane: ControlPlane, user: str) -> None:
    info = whoami(control_plane, user)
    assert info["username"] == user
    groups = set(info["groups"])  # type: ignore[call-overload]
    assert groups - {"system:authenticated"} == set(TEST_USERS[user])


def test_rbac_forbids_alice_to_list_secrets(control_plane: ControlPlane, namespace: str) -> None:
    result = control_plane.kubectl("get", "secrets", "-n", namespace, user="alice@example.com", check=False)
    assert result.returncode != 0
    assert "forbidden" in result.stderr.lower()
    can_i = control_plane.kubectl(
        "auth", "can-i", "list", "secrets", "-n", namespace, user="alice@example.com", check=False
    )
    assert can_i.stdout.strip() == "no"
    assert control_plane.kubectl("auth", "can-i", "list", "secrets", "-n", namespace).stdout.strip() == "yes"


def test_user_kubeconfig_works_with_the_python_client(control_plane: ControlPlane) -> None:
    if not isinstance(control_plane, ControlPlane):
        pytest.skip("the Python client ignores the impersonation in an existing cluster's user kubeconfigs")
    kubeconfig = str(control_plane.user_kubeconfig("bob@example.com"))
    with k8s_config.new_client_from_config(kubeconfig) as api:  # type: ignore[no-untyped-call]
        review = k8s.AuthenticationV1Api(api).create_self_subject_review(k8s.V1SelfSubjectReview())
    user_info = review.status.user_info if review.status else None
    assert user_info is not None
    assert user_info.username == "bob@example.com"
    assert "team-ledger" in (user_info.groups or [])


def test_controller_manager_serves_new_namespaces(controller_manager: ControlPlane, namespace: str) -> None:
    cluster = controller_manager

    def ready() -> bool:
        wanted = ("serviceaccount/default", "configmap/kube-root-ca.crt")
        return cluster.kubectl("get", *wanted, "-n", namespace, check=False).returncode == 0

    eventually(ready, "the default ServiceAccount and kube-root-ca.crt")
    token = cluster.kubectl("create", "token", "default", "-n", namespace).stdout.strip()
    token_review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    review = json.loads(cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(token_review)).stdout)
    assert review["status"]["authenticated"] is True
    assert review["status"]["user"]["username"] == f"system:serviceaccount:{namespace}:default"

    # The namespace controller empties and finalizes a deleted namespace.
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    eventually(
        lambda: cluster.kubectl("get", "namespace", namespace, check=False).returncode != 0,
        f"namespace {namespace} to be deleted",
    )

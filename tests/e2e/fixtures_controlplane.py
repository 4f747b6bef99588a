"""pytest fixtures for the real Kubernetes control plane and the Identity Center emulator.

Load this module as a plugin, always under this one name, from ``tests/conftest.py`` and/or
from test modules::

    pytest_plugins = ["tests.e2e.fixtures_controlplane"]

pytest registers a plugin once per name, so declaring it in several places still gives one
control plane per session.  (Importing the fixture functions into modules instead would give
each module its own session fixture, and so its own control plane.)

* ``control_plane`` (session): a `ControlPlane` started here, or the cluster named by
  ``$JITACCESS_TEST_KUBECONFIG``; nothing is installed in it.  The controller-manager is
  *not* started, so CRDs can be installed first (its garbage collector reads discovery only
  every 30 s).
* ``controller_manager`` (session): the same cluster once kube-controller-manager runs.
  A conftest that installs CRDs should override it to depend on that step first.
* ``identity_center`` (session): an `IdentityCenterEmulator` seeded from
  ``examples/identitycenter/seed.yaml``, shared by the whole session: tests that change it must
  undo what they did.  Faults a test left pending are cleared after it.
* ``fresh_identity_center`` (function): a new seeded emulator with a store of its own, for
  tests that change memberships or inject faults (about 0.2 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jitaccess.devenv.controlplane import Cluster, from_env
from jitaccess.devenv.emulator import IdentityCenterEmulator

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_FILE = REPO_ROOT / "examples" / "identitycenter" / "seed.yaml"


@pytest.fixture(scope="session")
def control_plane() -> Iterator[Cluster]:
    cluster = from_env(controller_manager=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def controller_manager(control_plane: Cluster) -> Cluster:
    control_plane.start_controller_manager()
    return control_plane


def _seeded_emulator() -> IdentityCenterEmulator:
    emulator = IdentityCenterEmulator().start()
    try:
        emulator.seed(SEED_FILE)
    except BaseException:
        emulator.stop()
        raise
    return emulator


@pytest.fixture(scope="session")
def identity_center() -> Iterator[IdentityCenterEmulator]:
    emulator = _seeded_emulator()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(autouse=True)
def _clear_identity_center_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    # A fault one test leaves pending on the shared emulator must not fail the next test.
    yield
    if "identity_center" in request.fixturenames:
        emulator: IdentityCenterEmulator = request.getfixturevalue("identity_center")
        emulator.faults.clear()


@pytest.fixture
def fresh_identity_center() -> Iterator[IdentityCenterEmulator]:
    emulator = _seeded_emulator()
    try:
        yield emulator
    finally:
        emulator.stop()

"""pytest fixtures for the real Kubernetes control plane and the Identity Center emulator.

``tests/conftest.py`` loads this module as a plugin, under this one name: pytest registers a
plugin once per name, so every tier shares one control plane per session. (Importing the fixture
functions into modules instead would give each module its own session fixture, and so its own
control plane.)

* ``control_plane`` (session): a `ControlPlane` started here; nothing is installed in it. The
  controller-manager is *not* started, so CRDs can be installed first (its garbage collector
  reads discovery only every 30 s).
* ``controller_manager`` (session): the same cluster once kube-controller-manager runs.
* ``identity_center`` (session): an `IdentityCenterEmulator` seeded from
  ``examples/identitycenter/seed.yaml``, shared by the whole session: tests that change it must
  undo what they did. Faults a test left pending are cleared after it.
* ``fresh_identity_center`` (function): a new seeded emulator with a store of its own, for
  tests that change memberships or inject faults (about 0.2 s).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devenv.controlplane import ControlPlane
from devenv.emulator import IdentityCenterEmulator
from devenv.paths import SEED_FILE


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    with ControlPlane().start(controller_manager=False) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def controller_manager(control_plane: ControlPlane) -> ControlPlane:
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

"""Fixtures more than one module of this tier uses: a seeded emulator of its own with a client
that does not retry (the emulator's tests), and the Identity Center adapter connected to a fresh
emulator (the adapter's tests)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config

from devenv.emulator import IdentityCenterEmulator
from devenv.paths import SEED_FILE
from jitaccess.adapters.identitycenter import IdentityCenter

NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def emulator() -> Iterator[IdentityCenterEmulator]:
    with IdentityCenterEmulator() as emulator:
        emulator.seed(SEED_FILE)
        yield emulator


@pytest.fixture
def client(emulator: IdentityCenterEmulator) -> Any:
    return emulator.client(config=NO_RETRIES)


@pytest.fixture
def adapter(fresh_identity_center: IdentityCenterEmulator, monkeypatch: pytest.MonkeyPatch) -> IdentityCenter:
    env = fresh_identity_center.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the emulator's dummy credentials
    return IdentityCenter.connect(
        env["JITACCESS_IDENTITY_STORE_ID"],
        region=env["AWS_DEFAULT_REGION"],
        endpoint_url=env["AWS_ENDPOINT_URL"],
        rate_limit=0,
        max_attempts=1,
    )

"""`IdentityCenter.quick`: the admission webhooks' client gives up within the webhook timeout, on
the same quota as the handlers'."""

from __future__ import annotations

import pytest

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.webhooks import TIMEOUT_SECONDS
from jitaccess.errors import PermanentFailure


def test_the_admission_client_tries_once_within_the_webhook_timeout_on_the_same_quota() -> None:
    handlers = IdentityCenter.connect("d-1234567890", region="us-east-1", rate_limit=20.0, max_attempts=3)
    asking = handlers.quick()
    config = asking._client.meta.config
    assert config.retries["total_max_attempts"] == 1
    assert config.connect_timeout + config.read_timeout < TIMEOUT_SECONDS
    assert handlers._client.meta.config.retries["total_max_attempts"] == 3  # the handlers' keep retrying
    assert asking.identity_store_id == handlers.identity_store_id
    assert asking._limiter("GetUserId") is handlers._limiter("GetUserId") and asking.queue is handlers.queue
    handlers.may_write = lambda: False
    assert asking.may_write() is False


def test_a_client_given_rather_than_connected_is_its_own_quick_one() -> None:
    given = IdentityCenter(object(), "d-1")
    assert given.quick() is given


def test_no_region_names_the_setting_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a region anywhere, botocore's NoRegionError names no setting: ours does."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(PermanentFailure, match="JITACCESS_REGION"):
        IdentityCenter.connect("d-1234567890", region=None)

"""A replica that loses the lease sends no membership change after it: neither a write that was
waiting for its rate limiter's token or its call queue's slot when the lease went, nor the SDK's own
retry of a write whose first attempt went out while it still led."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.errors import NotLeading


class _Client:
    def __init__(self, leading: dict[str, bool]) -> None:
        self.leading = leading
        self.sent: list[bool] = []

    def create_group_membership(self, **_: Any) -> dict[str, Any]:
        self.sent.append(self.leading["now"])
        return {"MembershipId": "m-1"}


def test_a_write_waiting_for_its_token_when_the_lease_goes_is_not_sent() -> None:
    leading = {"now": True}
    client = _Client(leading)
    ic = IdentityCenter(client, "d-1234567890", rate_limit=2.0)
    ic.may_write = lambda: leading["now"]
    ic._limiter("CreateGroupMembership")._tokens = 1  # one call now; the next waits half a second
    ic.ensure_member("g-1", "u-1")
    outcome: list[BaseException] = []

    def second() -> None:
        try:
            ic.ensure_member("g-1", "u-2")
        except BaseException as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=second)
    waiting.start()
    time.sleep(0.1)
    leading["now"] = False  # the lease is lost while the second write waits for a token
    waiting.join(5)
    assert client.sent == [True]
    assert len(outcome) == 1 and isinstance(outcome[0], NotLeading)


def test_the_sdks_retry_of_a_write_is_not_sent_once_the_lease_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    ic = IdentityCenter.connect(
        "d-1234567890", region="us-east-1", endpoint_url="http://127.0.0.1:9", rate_limit=0, max_attempts=3
    )
    leading = {"now": True}
    ic.may_write = lambda: leading["now"]
    attempts: list[bool] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        # In place of the network: the first attempt fails with a 503 (which the SDK retries), and
        # the lease is lost meanwhile.
        attempts.append(leading["now"])
        leading["now"] = False
        return AWSResponse(request.url, 503, {}, _Raw(b'{"__type":"ServiceUnavailable"}'))

    ic._client.meta.events.register("before-send", answer)
    with pytest.raises(NotLeading):
        ic.ensure_member("g-1", "u-1")
    assert attempts == [True]


def test_a_read_is_still_made_by_a_replica_that_does_not_lead() -> None:
    ic = IdentityCenter(_ReadOnly(), "d-1234567890", rate_limit=0)
    ic.may_write = lambda: False
    assert ic.resolve_user("alice@example.com") == "u-1"


class _ReadOnly:
    def get_user_id(self, **_: Any) -> dict[str, Any]:
        return {"UserId": "u-1"}


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = io.BytesIO(body)

    def stream(self, **_: Any) -> Any:
        yield self._body.read()

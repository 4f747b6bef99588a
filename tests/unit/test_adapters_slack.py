"""The Slack adapter against a scripted Web API served in-process: what each method sends, how every
kind of failure maps to SlackRetry or SlackRefused (one HTTP request per call, no sleeping inside),
the user lookup caches, the https rule, and that the token shows up nowhere but in the request."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from jitaccess.adapters.slack import DEFAULT_RETRY_AFTER, Slack, SlackRefused, SlackRetry
from jitaccess.errors import ForeignUser

TOKEN = "xoxb-unit-test-token-0123456789"
BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*alice@example.com* asks"}}]


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None
    text: str | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    disconnect: bool = False


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    authorization: str | None


class FakeSlack:
    """Answers each Web API method with the replies scripted for it, in order, then a plain ok."""

    def __init__(self) -> None:
        self.url = ""
        self.calls: list[Call] = []
        self.replies: dict[str, list[Reply]] = defaultdict(list)

    def script(self, method: str, *replies: Reply) -> None:
        self.replies[method].extend(replies)

    def methods(self) -> list[str]:
        return [call.method for call in self.calls]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            args |= await request.json()
        elif request.can_read_body:
            args |= dict(await request.post())
        self.calls.append(Call(method, args, request.headers.get("Authorization")))
        reply = self.replies[method].pop(0) if self.replies[method] else Reply(body={"ok": True})
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.disconnect:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if reply.body is not None:
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        return web.Response(
            status=reply.status, text=reply.text or "", content_type=reply.content_type, headers=reply.headers
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    app = web.Application()
    app.router.add_route("*", "/api/{method}", fake.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        fake.url = str(server.make_url("/api/"))
        yield fake


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def slack(fake: FakeSlack, clock: Clock) -> AsyncIterator[Slack]:
    slack = Slack(TOKEN, fake.url, timeout=2, clock=clock)
    yield slack
    await slack.close()


# --- what each method sends and returns

LITERAL = {"parse": "none", "link_names": False}


async def test_post_sends_text_and_blocks_and_returns_the_channel_id_and_ts(fake: FakeSlack, slack: Slack) -> None:
    fake.script("chat.postMessage", Reply(body={"ok": True, "channel": "D0ALICE01", "ts": "1700000000.000100"}))

    assert await slack.post("U0ALICE01", "alice asks", BLOCKS) == ("D0ALICE01", "1700000000.000100")

    [call] = fake.calls
    assert call.method == "chat.postMessage"
    # The text is shown as written: Slack links no bare URL and parses no @channel in it (attack 135).
    assert call.args == {"channel": "U0ALICE01", "text": "alice asks", "blocks": BLOCKS, **LITERAL}
    assert call.authorization == f"Bearer {TOKEN}"


async def test_update_ephemeral_and_open_view_send_what_slack_needs(fake: FakeSlack, slack: Slack) -> None:
    view = {"type": "modal", "callback_id": "deny", "private_metadata": "req-1", "blocks": []}

    await slack.update("C0LEDGER1", "1700000000.000100", "approved", BLOCKS)
    await slack.ephemeral("C0LEDGER1", "U0BOB0001", "you may not decide this one")
    await slack.open_view("trigger-123", view)

    assert [(call.method, call.args) for call in fake.calls] == [
        (
            "chat.update",
            {"channel": "C0LEDGER1", "ts": "1700000000.000100", "text": "approved", "blocks": BLOCKS, **LITERAL},
        ),
        (
            "chat.postEphemeral",
            {"channel": "C0LEDGER1", "user": "U0BOB0001", "text": "you may not decide this one", **LITERAL},
        ),
        ("views.open", {"trigger_id": "trigger-123", "view": view}),
    ]


# --- failures: one request each, mapped, never slept out inside the call


async def test_429_is_retry_after_slacks_retry_after_without_waiting_it_out(fake: FakeSlack, slack: Slack) -> None:
    fake.script(
        "chat.postMessage", Reply(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "30"})
    )

    started = time.monotonic()
    with pytest.raises(SlackRetry) as caught:
        await slack.post("C0LEDGER1", "text", BLOCKS)

    assert caught.value.after == 30
    assert time.monotonic() - started < 5
    assert fake.methods() == ["chat.postMessage"]


async def test_429_without_retry_after_is_retry_after_the_default(fake: FakeSlack, slack: Slack) -> None:
    fake.script("chat.update", Reply(status=429, body={"ok": False, "error": "ratelimited"}))

    with pytest.raises(SlackRetry) as caught:
        await slack.update("C0LEDGER1", "1.2", "text", BLOCKS)

    assert caught.value.after == DEFAULT_RETRY_AFTER


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=500, body={"ok": False, "error": "internal_error"}),
        Reply(status=502, text="<html>Bad Gateway</html>", content_type="text/html"),
        Reply(status=503, text="upstream unavailable", content_type="application/json"),
        Reply(status=200, body={"ok": False, "error": "fatal_error"}),
        Reply(status=200, body={"ok": False, "error": "service_unavailable"}),
        Reply(status=200, text="<html>sign in to the proxy</html>", content_type="text/html"),
    ],
    ids=["500", "502-html", "503-not-json", "fatal_error", "service_unavailable", "200-not-slack"],
)
async def test_server_errors_and_slacks_transient_errors_are_retry(fake: FakeSlack, slack: Slack, reply: Reply) -> None:
    fake.script("chat.postMessage", reply)

    with pytest.raises(SlackRetry) as caught:
        await slack.post("C0LEDGER1", "text", BLOCKS)

    assert caught.value.after == DEFAULT_RETRY_AFTER
    assert fake.methods() == ["chat.postMessage"]


@pytest.mark.parametrize(
    ("method", "error"),
    [
        ("chat.postMessage", "channel_not_found"),
        ("chat.postMessage", "not_in_channel"),
        ("chat.postMessage", "invalid_auth"),
        ("chat.postMessage", "not_authed"),
        ("chat.postMessage", "account_inactive"),
        ("chat.postMessage", "invalid_blocks"),
        ("chat.update", "message_not_found"),
        ("chat.postEphemeral", "user_not_in_channel"),
        ("views.open", "invalid_trigger_id"),
        ("views.open", "expired_trigger_id"),
    ],
)
async def test_permanent_errors_are_refused_with_slacks_error(
    fake: FakeSlack, slack: Slack, method: str, error: str
) -> None:
    fake.script(method, Reply(body={"ok": False, "error": error}))
    calls = {
        "chat.postMessage": lambda: slack.post("C0LEDGER1", "text", BLOCKS),
        "chat.update": lambda: slack.update("C0LEDGER1", "1.2", "text", BLOCKS),
        "chat.postEphemeral": lambda: slack.ephemeral("C0LEDGER1", "U0BOB0001", "text"),
        "views.open": lambda: slack.open_view("trigger-1", {"type": "modal"}),
    }

    with pytest.raises(SlackRefused) as caught:
        await calls[method]()

    assert caught.value.error == error
    assert method in str(caught.value)
    assert fake.methods() == [method]


async def test_a_4xx_that_is_not_slack_is_refused(fake: FakeSlack, slack: Slack) -> None:
    fake.script("chat.postMessage", Reply(status=404, text="no such path", content_type="text/plain"))

    with pytest.raises(SlackRefused) as caught:
        await slack.post("C0LEDGER1", "text", BLOCKS)

    assert caught.value.error == "http_404"


async def test_a_timeout_is_retry(fake: FakeSlack) -> None:
    fake.script("chat.postMessage", Reply(body={"ok": True, "channel": "C1", "ts": "1.1"}, delay=2))
    slack = Slack(TOKEN, fake.url, timeout=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(SlackRetry) as caught:
            await slack.post("C0LEDGER1", "text", BLOCKS)
        assert time.monotonic() - started < 1.5
        assert caught.value.after == DEFAULT_RETRY_AFTER
    finally:
        await slack.close()


async def test_a_dropped_connection_is_retry_after_one_attempt(fake: FakeSlack, slack: Slack) -> None:
    # slack_sdk's default retry handler would send this request a second time, after a pause.
    fake.script("chat.postMessage", Reply(disconnect=True))

    with pytest.raises(SlackRetry):
        await slack.post("C0LEDGER1", "text", BLOCKS)

    assert fake.methods() == ["chat.postMessage"]


async def test_nobody_listening_is_retry() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    slack = Slack(TOKEN, f"http://127.0.0.1:{port}/api/", timeout=2)
    try:
        with pytest.raises(SlackRetry) as caught:
            await slack.ephemeral("C0LEDGER1", "U0BOB0001", "text")
        assert caught.value.after == DEFAULT_RETRY_AFTER
    finally:
        await slack.close()


async def test_the_token_appears_in_no_exception_and_no_log_line(
    fake: FakeSlack, slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.script("chat.postMessage", Reply(body={"ok": False, "error": "invalid_auth"}))
    fake.script("chat.update", Reply(status=503, text="{not json", content_type="application/json"))

    failures: list[BaseException] = []
    for call in (slack.post("C0LEDGER1", "t", BLOCKS), slack.update("C0LEDGER1", "1.2", "t", BLOCKS)):
        with pytest.raises((SlackRefused, SlackRetry)) as caught:
            await call
        failures.append(caught.value)

    assert len(caplog.records) > 0  # slack_sdk did log the requests and answers
    assert TOKEN not in caplog.text
    for failure in failures:
        assert failure.__cause__ is None
        assert TOKEN not in str(failure)
        assert TOKEN not in repr(failure)
        assert TOKEN not in repr(vars(failure))


# --- user lookups and their caches


async def test_user_id_by_email_asks_once_then_answers_from_the_cache_for_an_hour(
    fake: FakeSlack, slack: Slack, clock: Clock
) -> None:
    fake.script("users.lookupByEmail", Reply(body={"ok": True, "user": {"id": "U0LENA001"}}))
    fake.script("users.lookupByEmail", Reply(body={"ok": True, "user": {"id": "U0LENA002"}}))

    assert await slack.user_id_by_email("lena@example.com") == "U0LENA001"
    clock.now += 3599
    assert await slack.user_id_by_email("lena@example.com") == "U0LENA001"
    assert [call.args for call in fake.calls] == [{"email": "lena@example.com"}]

    clock.now += 2
    assert await slack.user_id_by_email("lena@example.com") == "U0LENA002"
    assert fake.methods() == ["users.lookupByEmail"] * 2


async def test_an_unknown_email_is_none_and_asked_again_after_five_minutes(
    fake: FakeSlack, slack: Slack, clock: Clock
) -> None:
    fake.script("users.lookupByEmail", Reply(body={"ok": False, "error": "users_not_found"}))
    fake.script("users.lookupByEmail", Reply(body={"ok": True, "user": {"id": "U0NEW0001"}}))

    assert await slack.user_id_by_email("new@example.com") is None
    clock.now += 299
    assert await slack.user_id_by_email("new@example.com") is None
    assert fake.methods() == ["users.lookupByEmail"]

    clock.now += 2
    assert await slack.user_id_by_email("new@example.com") == "U0NEW0001"
    assert fake.methods() == ["users.lookupByEmail"] * 2


async def test_email_of_reads_the_profile_email_and_caches_it(fake: FakeSlack, slack: Slack) -> None:
    lena = {"id": "U0LENA001", "team_id": "T0ACME001", "profile": {"email": "lena@example.com"}}
    fake.script("users.info", Reply(body={"ok": True, "user": lena}))
    fake.script("auth.test", Reply(body={"ok": True, "team_id": "T0ACME001"}))

    assert await slack.email_of("U0LENA001") == "lena@example.com"
    assert await slack.email_of("U0LENA001") == "lena@example.com"

    # The bot's own workspace is asked once, to tell its members from people of other companies.
    assert [(call.method, call.args) for call in fake.calls] == [
        ("users.info", {"user": "U0LENA001"}),
        ("auth.test", {}),
    ]


async def test_email_of_someone_of_another_workspace_or_organization(fake: FakeSlack, slack: Slack) -> None:
    fake.script("auth.test", Reply(body={"ok": True, "team_id": "T0ACME001", "enterprise_id": "E0ACME001"}))
    outsider = {"id": "U0OUT0001", "team_id": "T0OTHER01", "profile": {"email": "lena@example.com"}}
    colleague = {"id": "U0COL0001", "team_id": "T0ACME002", "enterprise_user": {"enterprise_id": "E0ACME001"},
                 "profile": {"email": "carol@example.com"}}  # fmt: skip
    fake.script("users.info", Reply(body={"ok": True, "user": outsider}), Reply(body={"ok": True, "user": colleague}))
    with pytest.raises(ForeignUser, match="U0OUT0001 belongs to workspace T0OTHER01, not T0ACME001"):
        await slack.email_of("U0OUT0001")
    assert await slack.email_of("U0COL0001") == "carol@example.com"  # another workspace of the same organization


async def test_email_of_an_unknown_user_or_a_bot_is_none_and_cached_for_five_minutes(
    fake: FakeSlack, slack: Slack, clock: Clock
) -> None:
    fake.script("users.info", Reply(body={"ok": False, "error": "user_not_found"}))
    fake.script("users.info", Reply(body={"ok": True, "user": {"id": "B0BOT0001", "profile": {}}}))
    fake.script("users.info", Reply(body={"ok": False, "error": "user_not_found"}))

    assert await slack.email_of("U0GONE001") is None
    assert await slack.email_of("B0BOT0001") is None
    clock.now += 299
    assert await slack.email_of("U0GONE001") is None
    assert await slack.email_of("B0BOT0001") is None
    assert fake.methods() == ["users.info", "users.info", "auth.test"]

    clock.now += 2
    assert await slack.email_of("U0GONE001") is None
    assert fake.methods() == ["users.info", "users.info", "auth.test", "users.info"]


async def test_failed_lookups_raise_and_are_not_cached(fake: FakeSlack, slack: Slack) -> None:
    fake.script("users.lookupByEmail", Reply(body={"ok": False, "error": "missing_scope"}))
    fake.script("users.lookupByEmail", Reply(status=429, body={"ok": False}, headers={"Retry-After": "3"}))
    fake.script("users.info", Reply(status=500, text="oops", content_type="text/plain"))

    with pytest.raises(SlackRefused) as refused:
        await slack.user_id_by_email("lena@example.com")
    with pytest.raises(SlackRetry) as retry:
        await slack.user_id_by_email("lena@example.com")
    with pytest.raises(SlackRetry):
        await slack.email_of("U0LENA001")
    assert refused.value.error == "missing_scope"
    assert retry.value.after == 3

    fake.script("users.lookupByEmail", Reply(body={"ok": True, "user": {"id": "U0LENA001"}}))
    assert await slack.user_id_by_email("lena@example.com") == "U0LENA001"
    assert fake.methods() == ["users.lookupByEmail", "users.lookupByEmail", "users.info", "users.lookupByEmail"]


async def test_the_cache_is_bounded_and_forgets_the_least_recently_used_first(fake: FakeSlack, clock: Clock) -> None:
    fake.script("users.lookupByEmail", *[Reply(body={"ok": True, "user": {"id": f"U{n}"}}) for n in range(4)])
    slack = Slack(TOKEN, fake.url, clock=clock, cache_size=2)
    try:
        for user in ("a", "b", "a", "c"):  # c pushes out b, which was used less recently than a
            await slack.user_id_by_email(f"{user}@example.com")
        assert [call.args["email"] for call in fake.calls] == ["a@example.com", "b@example.com", "c@example.com"]

        await slack.user_id_by_email("a@example.com")
        await slack.user_id_by_email("b@example.com")
        assert [call.args["email"] for call in fake.calls][3:] == ["b@example.com"]
    finally:
        await slack.close()


# --- where the token may go


@pytest.mark.parametrize("url", ["http://slack.example.com/api/", "http://10.0.0.5/api/", "ftp://127.0.0.1/api/"])
def test_the_token_goes_over_https_only(url: str) -> None:
    with pytest.raises(ValueError, match="JITACCESS_SLACK_API_URL must be an https:// URL"):
        Slack(TOKEN, url)


@pytest.mark.parametrize(
    "url", ["https://slack.com/api/", "http://127.0.0.1:8080/api/", "http://localhost/api/", "http://[::1]:9/api/"]
)
def test_https_or_a_loopback_stand_in_is_accepted(url: str) -> None:
    Slack(TOKEN, url)

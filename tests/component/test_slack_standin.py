"""The Slack stand-in (devenv.slack) against Slack's own SDK: it answers as Slack does, refusals
included, limits and goes down when told to, and sends clicks and modal submissions signed so that
slack_sdk's SignatureVerifier accepts them, to a small interactivity endpoint started here.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from devenv.paths import REPO
from devenv.slack import STATE_ENV, LoopServer, SlackStandIn, SlackUser

TOKEN = "xoxb-jitaccess-test"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
LEDGER = "C0LEDGER1"
LENA = SlackUser("U0LENA", "lena@example.com", "lena")
CAROL = SlackUser("U0CAROL", "carol@example.com", "carol")
REQUEST = "ledger-read-x7k2p"


def _request_blocks(name: str) -> list[dict[str, Any]]:
    """An approvers' message as the operator's contract has it: the request's name in both buttons."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{name}* waits for a decision"}},
        {
            "type": "actions",
            "block_id": "decide",
            "elements": [
                {
                    "type": "button",
                    "action_id": "approve",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "style": "primary",
                    "value": name,
                },
                {
                    "type": "button",
                    "action_id": "deny",
                    "text": {"type": "plain_text", "text": "Deny"},
                    "style": "danger",
                    "value": name,
                },
            ],
        },
    ]


def _reason_modal(channel: str, ts: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "deny-reason",
        "private_metadata": json.dumps({"channel": channel, "ts": ts}),
        "title": {"type": "plain_text", "text": "Deny the request"},
        "submit": {"type": "plain_text", "text": "Deny"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "@here, see https://wiki.example/deny first"}},
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Why?"},
                "element": {"type": "plain_text_input", "action_id": "text", "max_length": 200},
            },
        ],
    }


class Interactions:
    """The operator's side of interactivity, as small as these tests need.

    It verifies each request with slack_sdk's SignatureVerifier (401 when that fails), records the
    payloads, asks for a reason in a modal when Deny is clicked (with the click's trigger, before
    answering, as Slack requires), and on the reason's submission updates the message after
    answering.
    """

    def __init__(self, slack: SlackStandIn) -> None:
        self.slack = slack
        self.verifier = SignatureVerifier(SECRET)
        self.payloads: list[dict[str, Any]] = []
        self.rejected = 0
        self.status = 200
        self._tasks: set[asyncio.Task[None]] = set()
        app = web.Application()
        app.router.add_post("/slack/interactions", self._handle)
        self.server = LoopServer(app, name="interactions")

    @property
    def url(self) -> str:
        return f"{self.server.url}/slack/interactions"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers.get("X-Slack-Request-Timestamp")
        if not self.verifier.is_valid(body, timestamp, request.headers.get("X-Slack-Signature")):
            self.rejected += 1
            return web.Response(status=401, text="invalid signature")
        assert request.content_type == "application/x-www-form-urlencoded"
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        self.payloads.append(payload)
        client = AsyncWebClient(token=TOKEN, base_url=self.slack.api_url)
        if payload["type"] == "block_actions" and payload["actions"][0]["action_id"] == "deny":
            container = payload["container"]
            await client.views_open(
                trigger_id=payload["trigger_id"], view=_reason_modal(container["channel_id"], container["message_ts"])
            )
        elif payload["type"] == "block_actions" and payload["user"]["id"] == CAROL.id:
            # A refusal, told to the clicker alone after the answer, as the operator tells it.
            channel = payload["container"]["channel_id"]
            task = asyncio.create_task(self._refused(client, channel, CAROL.id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif payload["type"] == "view_submission":
            where = json.loads(payload["view"]["private_metadata"])
            reason = payload["view"]["state"]["values"]["reason"]["text"]["value"]
            task = asyncio.create_task(self._decided(client, where, reason))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response(status=self.status)

    @staticmethod
    async def _refused(client: AsyncWebClient, channel: str, user: str) -> None:
        await client.chat_postEphemeral(channel=channel, user=user, text="You may not approve: not yet escalated.")

    @staticmethod
    async def _decided(client: AsyncWebClient, where: dict[str, str], reason: str) -> None:
        await client.chat_update(channel=where["channel"], ts=where["ts"], text=f"Denied: {reason}", blocks=[])


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(
        token=TOKEN, signing_secret=SECRET, channels={LEDGER: "ledger-oncall"}, users=[LENA, CAROL]
    ) as slack:
        yield slack


@pytest.fixture
def interactions(slack: SlackStandIn) -> Iterator[Interactions]:
    receiver = Interactions(slack)
    receiver.server.start()
    slack.interactions_url = receiver.url
    yield receiver
    receiver.server.stop()


@pytest.fixture
def client(slack: SlackStandIn) -> WebClient:
    return WebClient(token=TOKEN, base_url=slack.api_url)


def _post_request(client: WebClient, name: str = REQUEST) -> str:
    return str(client.chat_postMessage(channel=LEDGER, text=f"{name} waits", blocks=_request_blocks(name))["ts"])


def _refusal(call: Callable[[], Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value


async def _async_refusal(call: Awaitable[Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


# --- the Web API ------------------------------------------------------------------------------


def test_env_points_a_client_at_the_standin(slack: SlackStandIn) -> None:
    env = slack.env()
    client = WebClient(token=env["JITACCESS_SLACK_TOKEN"], base_url=env["JITACCESS_SLACK_API_URL"])
    answer = client.auth_test()
    assert answer["ok"] and answer["user_id"].startswith("U") and answer["team_id"].startswith("T")
    assert env["JITACCESS_SLACK_SIGNING_SECRET"] == SECRET
    assert [(c.method, c.status, c.error) for c in slack.calls()] == [("auth.test", 200, None)]


async def test_post_update_and_ephemeral_are_answered_and_recorded(slack: SlackStandIn) -> None:
    client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
    first = await client.chat_postMessage(channel=LEDGER, text="waits", blocks=_request_blocks(REQUEST))
    second = await client.chat_postMessage(channel=LEDGER, text="another")
    assert first["channel"] == LEDGER
    assert float(first["ts"]) < float(second["ts"])
    # Slack gives every block an id, and answers with the message as stored.
    assert all(block["block_id"] for block in first["message"]["blocks"])

    updated = await client.chat_update(channel=LEDGER, ts=first["ts"], text="approved by lena")
    assert updated["message"]["blocks"] == first["message"]["blocks"]  # left out: kept
    assert float(updated["message"]["edited"]["ts"]) > float(second["ts"])
    await client.chat_update(channel=LEDGER, ts=first["ts"], text="approved by lena", blocks=[])

    message = slack.messages(LEDGER)[0]
    assert (message.channel, message.ts, message.updates) == (LEDGER, first["ts"], 2)
    assert [text for text, _ in message.versions] == ["waits", "approved by lena", "approved by lena"]
    assert message.versions[1][1] == first["message"]["blocks"]
    assert (message.text, message.blocks) == ("approved by lena", [])

    posted = await client.chat_postEphemeral(channel=LEDGER, user=LENA.id, text="only you see this")
    [ephemeral] = slack.ephemerals()
    assert (ephemeral.channel, ephemeral.user, ephemeral.ts, ephemeral.text) == (
        LEDGER,
        LENA.id,
        posted["message_ts"],
        "only you see this",
    )
    assert ephemeral.blocks is None
    assert [c.method for c in slack.calls() if c.status == 200] == [
        "chat.postMessage",
        "chat.postMessage",
        "chat.update",
        "chat.update",
        "chat.postEphemeral",
    ]


async def test_a_message_is_rendered_as_slack_preprocesses_it(slack: SlackStandIn) -> None:
    """A mrkdwn text object not `verbatim` (Slack's default) links bare URLs, an email and a
    known channel's name, and turns `@channel` / `@here` into broadcasts; `verbatim` keeps the
    manual strings only (`<@U...>`, `<!here>`, `<url|label>`). The top-level text links bare URLs
    unless posted with `parse=none`, and parses names only with `link_names` or `parse=full`."""
    client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
    words = "@channel @here see https://evil.example/sso or evil.com, mail bob@example.com, in #ledger-oncall"

    def section(text: str, **verbatim: bool) -> dict[str, Any]:
        return {"type": "section", "text": {"type": "mrkdwn", "text": text, **verbatim}}

    mine = "<@U0LENA> may decide <https://jit.example/r|the request> <!subteam^S0LEAD> <#C0LEDGER1>"
    await client.chat_postMessage(channel=LEDGER, text=words, blocks=[section(words), section(mine)])
    shown = slack.rendered(slack.messages(LEDGER)[-1])
    assert shown.broadcasts == {"channel", "here"}
    assert shown.links == {"https://evil.example/sso", "evil.com", "mailto:bob@example.com", "https://jit.example/r"}
    assert shown.channels == {"ledger-oncall", LEDGER}
    assert shown.mentions == {LENA.id, "S0LEAD"}

    blocks = [section(words, verbatim=True), section(mine, verbatim=True), section("<!here> now", verbatim=True)]
    await client.chat_postMessage(channel=LEDGER, text=words, blocks=blocks, parse="none", link_names=False)
    shown = slack.rendered(slack.messages(LEDGER)[-1])
    assert (shown.broadcasts, shown.links) == ({"here"}, {"https://jit.example/r"})
    assert (shown.channels, shown.mentions) == ({LEDGER}, {LENA.id, "S0LEAD"})

    # The top-level text alone: linked by default, names parsed on request; an update's parsing counts.
    await client.chat_postMessage(channel=LEDGER, text=words)
    message = slack.messages(LEDGER)[-1]
    assert slack.rendered(message).links and not slack.rendered(message).broadcasts
    await client.chat_update(channel=LEDGER, ts=message.ts, text=words, link_names=True)
    assert slack.rendered(slack.messages(LEDGER)[-1]).broadcasts == {"channel", "here"}
    await client.chat_update(channel=LEDGER, ts=message.ts, text=words, parse="none")
    shown = slack.rendered(slack.messages(LEDGER)[-1])
    assert (shown.broadcasts, shown.links, shown.channels) == (set(), set(), set())


async def test_an_ephemeral_message_and_a_modal_are_rendered_as_slack_preprocesses_them(
    slack: SlackStandIn, interactions: Interactions
) -> None:
    """chat.postEphemeral takes `parse` and `link_names` as chat.postMessage does, and a modal's
    mrkdwn text objects are preprocessed as a message's are (its title and buttons are plain text)."""
    client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
    words = "@channel see https://evil.example/sso or evil.com, in #ledger-oncall"
    await client.chat_postEphemeral(channel=LEDGER, user=LENA.id, text=words)
    await client.chat_postEphemeral(channel=LEDGER, user=LENA.id, text=words, link_names=True)
    await client.chat_postEphemeral(channel=LEDGER, user=LENA.id, text=words, parse="none", link_names=False)
    default, named, literal = (slack.rendered(e) for e in slack.ephemerals())
    assert (default.links, default.broadcasts) == ({"https://evil.example/sso", "evil.com"}, set())
    assert (named.broadcasts, named.channels) == ({"channel"}, {"ledger-oncall"})
    assert (literal.broadcasts, literal.channels, literal.links) == (set(), set(), set())

    await client.chat_postMessage(channel=LEDGER, text="waits", blocks=_request_blocks(REQUEST))
    message, _ = slack.find_button(REQUEST, "deny")
    assert await asyncio.to_thread(slack.click, LENA.id, message, "deny") == (200, "")
    [view] = slack.views()
    shown = slack.rendered(view)
    assert (shown.broadcasts, shown.links) == ({"here"}, {"https://wiki.example/deny"})


async def test_a_user_id_as_channel_is_a_direct_message(slack: SlackStandIn) -> None:
    client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
    posted = await client.chat_postMessage(channel=LENA.id, text="your access ends in 10 minutes")
    assert posted["channel"].startswith("D")
    assert [m.text for m in slack.messages(LENA.id)] == ["your access ends in 10 minutes"]
    assert slack.messages(posted["channel"]) == slack.messages(LENA.id)
    # An update needs the conversation Slack answered with, not the user.
    refused = await _async_refusal(client.chat_update(channel=LENA.id, ts=posted["ts"], text="x"))
    assert refused.response["error"] == "channel_not_found"
    await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="your access ended")
    assert slack.messages(LENA.id)[0].updates == 1


async def test_posting_takes_a_channel_name_and_answers_its_id(slack: SlackStandIn) -> None:
    client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
    for name in ("ledger-oncall", "#ledger-oncall"):
        assert (await client.chat_postMessage(channel=name, text="by name"))["channel"] == LEDGER
    refused = await _async_refusal(client.chat_postEphemeral(channel="ledger-oncall", user=LENA.id, text="x"))
    assert refused.response["error"] == "channel_not_found"


async def test_users_are_found_by_email_and_id(slack: SlackStandIn) -> None:
    client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
    found = await client.users_lookupByEmail(email="Lena@Example.com")
    assert found["user"]["id"] == LENA.id
    info = await client.users_info(user=CAROL.id)
    assert info["user"]["profile"]["email"] == CAROL.email
    assert (await _async_refusal(client.users_lookupByEmail(email="eve@example.com"))).response[
        "error"
    ] == "users_not_found"
    assert (await _async_refusal(client.users_info(user="U0NOBODY"))).response["error"] == "user_not_found"
    refused = await _async_refusal(client.api_call("users.lookupByEmail", http_verb="GET", params={}))
    assert refused.response["error"] == "invalid_arguments"


def _blocks_with(**button: Any) -> list[dict[str, Any]]:
    element = {"type": "button", "action_id": "approve", "text": {"type": "plain_text", "text": "Approve"}, **button}
    return [{"type": "actions", "elements": [element]}]


STRICT = [
    ("no token", {"token": None}, "chat.postMessage", {"channel": LEDGER, "text": "x"}, "not_authed"),
    ("wrong token", {"token": "xoxb-wrong"}, "chat.postMessage", {"channel": LEDGER, "text": "x"}, "invalid_auth"),
    ("unknown method", {}, "chat.postMessages", {"channel": LEDGER, "text": "x"}, "unknown_method"),
    ("unknown channel", {}, "chat.postMessage", {"channel": "C0NOWHERE", "text": "x"}, "channel_not_found"),
    ("no channel", {}, "chat.postMessage", {"text": "x"}, "channel_not_found"),
    ("neither text nor blocks", {}, "chat.postMessage", {"channel": LEDGER}, "no_text"),
    ("text too long", {}, "chat.postMessage", {"channel": LEDGER, "text": "x" * 40_001}, "msg_too_long"),
    (
        "blocks not JSON",
        {},
        "chat.postMessage",
        {"channel": LEDGER, "text": "x", "blocks": "[{"},
        "invalid_blocks_format",
    ),
    (
        "51 blocks",
        {},
        "chat.postMessage",
        {"channel": LEDGER, "text": "x", "blocks": [{"type": "divider"}] * 51},
        "invalid_blocks",
    ),
    (
        "section text of 3001 characters",
        {},
        "chat.postMessage",
        {
            "channel": LEDGER,
            "text": "x",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}],
        },
        "invalid_blocks",
    ),
    (
        "verbatim in a plain_text object",
        {},
        "chat.postMessage",
        {
            "channel": LEDGER,
            "text": "x",
            "blocks": [{"type": "section", "text": {"type": "plain_text", "text": "y", "verbatim": True}}],
        },
        "invalid_blocks",
    ),
    (
        "action_id twice",
        {},
        "chat.postMessage",
        {"channel": LEDGER, "text": "x", "blocks": _blocks_with() + _blocks_with()},
        "invalid_blocks",
    ),
    (
        "button value of 2001 characters",
        {},
        "chat.postMessage",
        {"channel": LEDGER, "text": "x", "blocks": _blocks_with(value="v" * 2001)},
        "invalid_blocks",
    ),
    (
        "update of no message",
        {},
        "chat.update",
        {"channel": LEDGER, "ts": "1.000001", "text": "x"},
        "message_not_found",
    ),
    (
        "update in no channel",
        {},
        "chat.update",
        {"channel": "C0NOWHERE", "ts": "1.000001", "text": "x"},
        "channel_not_found",
    ),
    (
        "ephemeral to no user",
        {},
        "chat.postEphemeral",
        {"channel": LEDGER, "user": "U0NOBODY", "text": "x"},
        "user_not_found",
    ),
    (
        "trigger the stand-in never issued",
        {},
        "views.open",
        {"trigger_id": "1.2.3", "view": _reason_modal(LEDGER, "1.000001")},
        "invalid_trigger_id",
    ),
]


@pytest.mark.parametrize(
    ("client_args", "method", "args", "error"), [case[1:] for case in STRICT], ids=[case[0] for case in STRICT]
)
async def test_what_slack_refuses_is_refused_with_slacks_error(
    slack: SlackStandIn, client_args: dict[str, Any], method: str, args: dict[str, Any], error: str
) -> None:
    client = AsyncWebClient(**{"token": TOKEN, **client_args}, base_url=slack.api_url)
    refused = await _async_refusal(client.api_call(method, json=args))
    assert refused.response.status_code == 200
    assert refused.response["error"] == error
    if error == "invalid_blocks":
        # Slack says what is wrong and where, as a JSON pointer.
        assert refused.response["errors"] and all("[json-pointer:/blocks" in e for e in refused.response["errors"])
    [call] = slack.calls()
    assert (call.method, call.status, call.error) == (method, 200, error)
    assert not slack.messages()


def test_form_encoded_calls_and_form_tokens_are_taken_as_slack_takes_them(slack: SlackStandIn) -> None:
    # slack_sdk sends JSON; other clients send forms, with blocks as a JSON string and maybe the token.
    client = WebClient(base_url=slack.api_url)
    client.api_call(
        "chat.postMessage",
        data={"token": TOKEN, "channel": LEDGER, "text": "x", "blocks": json.dumps(_request_blocks(REQUEST))},
    )
    assert slack.messages(LEDGER)[0].blocks is not None
    assert "token" not in slack.calls()[0].args


def test_rate_limit_answers_429_with_retry_after_and_the_retry_handler_gets_through() -> None:
    standin = SlackStandIn(
        token=TOKEN,
        signing_secret=SECRET,
        channels={LEDGER: "ledger-oncall"},
        users=[LENA],
        rate_limit_per_minute=30,
        rate_limit_burst=1,
    )
    with standin:
        client = WebClient(token=TOKEN, base_url=standin.api_url)
        client.chat_postMessage(channel=LEDGER, text="first")
        refused = _refusal(lambda: client.chat_postMessage(channel=LEDGER, text="second"))
        assert refused.response.status_code == 429
        assert refused.response["error"] == "ratelimited"
        assert refused.response.headers["Retry-After"] == "2"  # one message every 2 s
        client.chat_postMessage(channel=LENA.id, text="another conversation has a limit of its own")

        patient = WebClient(
            token=TOKEN, base_url=standin.api_url, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)]
        )
        started = time.monotonic()
        patient.chat_postMessage(channel=LEDGER, text="second, again")
        assert time.monotonic() - started >= 1.0  # it waited as told
        statuses = [c.status for c in standin.calls("chat.postMessage")]
        assert statuses[:4] == [200, 429, 200, 429] and statuses[-1] == 200
        assert [m.text for m in standin.messages(LEDGER)] == ["first", "second, again"]


def test_an_outage_answers_503_until_slack_is_back(slack: SlackStandIn, client: WebClient) -> None:
    slack.down(True)
    refused = _refusal(lambda: client.chat_postMessage(channel=LEDGER, text="during the outage"))
    assert refused.response.status_code == 503
    assert [(c.method, c.status) for c in slack.calls()] == [("chat.postMessage", 503)]

    back = threading.Timer(0.5, slack.down, args=(False,))
    back.start()
    # Retrying every 0.1 s, as an operator's sender waits out an outage.
    every_tenth = ServerErrorRetryHandler(
        max_retry_count=100, interval_calculator=FixedValueRetryIntervalCalculator(0.1)
    )
    patient = WebClient(token=TOKEN, base_url=slack.api_url, retry_handlers=[every_tenth])
    patient.chat_postMessage(channel=LEDGER, text="after it")
    back.join()
    statuses = [c.status for c in slack.calls("chat.postMessage")]
    assert statuses.count(503) >= 3 and statuses[-1] == 200
    assert [m.text for m in slack.messages()] == ["after it"]


async def test_an_outage_is_a_503_to_the_async_client_too(slack: SlackStandIn) -> None:
    slack.down()
    client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
    refused = await _async_refusal(client.users_lookupByEmail(email=LENA.email))
    assert refused.response.status_code == 503
    slack.down(False)
    assert (await client.users_lookupByEmail(email=LENA.email))["user"]["id"] == LENA.id


# --- interactions -----------------------------------------------------------------------------


def test_a_click_is_sent_in_slacks_shape_and_signed_as_slack_signs(
    slack: SlackStandIn, interactions: Interactions, client: WebClient
) -> None:
    ts = _post_request(client)
    message, button = slack.find_button(REQUEST, "approve")
    assert (message.ts, button["value"]) == (ts, REQUEST)

    assert slack.click(LENA.id, message, "approve") == (200, "")
    [payload] = interactions.payloads
    assert payload["type"] == "block_actions"
    assert payload["user"] == {"id": LENA.id, "username": "lena", "name": "lena", "team_id": payload["team"]["id"]}
    assert payload["api_app_id"] and payload["token"] and payload["trigger_id"] and payload["response_url"]
    assert payload["container"] == {"type": "message", "message_ts": ts, "channel_id": LEDGER, "is_ephemeral": False}
    assert payload["channel"] == {"id": LEDGER, "name": "ledger-oncall"}
    assert payload["message"]["ts"] == ts and payload["message"]["blocks"] == message.blocks
    [action] = payload["actions"]
    assert action["action_id"] == "approve" and action["value"] == REQUEST and action["type"] == "button"
    assert action["block_id"] == "decide" and float(action["action_ts"]) > 0


def test_replays_pass_byte_for_byte_and_forgeries_fail(
    slack: SlackStandIn, interactions: Interactions, client: WebClient
) -> None:
    _post_request(client)
    message, _ = slack.find_button(REQUEST, "approve")
    slack.click(LENA.id, message, "approve")
    body, headers = slack.last_request

    # A replay is Slack's own request again (refusing it is the operator's job, not the signature's).
    assert slack.send_raw(body, headers)[0] == 200
    assert interactions.payloads[0] == interactions.payloads[1]

    tampered = body.replace(b"approve", b"deny")
    assert slack.send_raw(tampered, headers)[0] == 401
    stale = {**headers, **slack.sign(body, timestamp=int(time.time()) - 600)}
    assert slack.send_raw(body, stale)[0] == 401
    stamp = headers["X-Slack-Request-Timestamp"]
    other_secret = hmac.new(b"not-the-secret", f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    assert slack.send_raw(body, {**headers, "X-Slack-Signature": f"v0={other_secret}"})[0] == 401
    assert interactions.rejected == 3 and len(interactions.payloads) == 2
    # Signed afresh, the tampered body is Slack's again.
    assert slack.send_raw(tampered, {**headers, **slack.sign(tampered)})[0] == 200


def test_a_clicks_trigger_opens_one_modal_whose_submission_arrives(
    slack: SlackStandIn, interactions: Interactions, client: WebClient
) -> None:
    ts = _post_request(client)
    message, _ = slack.find_button(REQUEST, "deny")
    assert slack.click(LENA.id, message, "deny") == (200, "")
    [view] = slack.views()
    assert (view.user, view.callback_id) == (LENA.id, "deny-reason")
    assert json.loads(view.private_metadata or "") == {"channel": LEDGER, "ts": ts}

    trigger = interactions.payloads[0]["trigger_id"]
    reused = _refusal(lambda: client.views_open(trigger_id=trigger, view=_reason_modal(LEDGER, ts)))
    assert reused.response["error"] == "exchanged_trigger_id"

    with pytest.raises(ValueError, match="opened for U0LENA"):
        slack.submit_view(CAROL.id, view.id, {"reason": {"text": "no"}})
    with pytest.raises(ValueError, match="required"):
        slack.submit_view(LENA.id, view.id, {})
    with pytest.raises(ValueError, match="no input"):
        slack.submit_view(LENA.id, view.id, {"reason": {"other": "no"}})
    with pytest.raises(ValueError, match="at most 200"):
        slack.submit_view(LENA.id, view.id, {"reason": {"text": "x" * 201}})

    assert slack.submit_view(LENA.id, view.id, {"reason": {"text": "not during the freeze"}}) == (200, "")
    submission = interactions.payloads[-1]
    assert submission["type"] == "view_submission" and submission["user"]["id"] == LENA.id
    assert submission["view"]["id"] == view.id and submission["view"]["callback_id"] == "deny-reason"
    assert submission["view"]["state"]["values"] == {
        "reason": {"text": {"type": "plain_text_input", "value": "not during the freeze"}}
    }
    # The receiver updates the message after it has answered.
    updated = slack.wait_for(lambda s: s.messages(LEDGER)[0].updates == 1 and s.messages(LEDGER)[0])
    assert (updated.text, updated.blocks) == ("Denied: not during the freeze", [])
    with pytest.raises(ValueError, match="closed"):
        slack.submit_view(LENA.id, view.id, {"reason": {"text": "again"}})
    # Its buttons are gone: nobody can click them any more.
    with pytest.raises(LookupError):
        slack.find_button(REQUEST, "approve")
    with pytest.raises(ValueError, match="has no button 'approve'"):
        slack.click(LENA.id, updated, "approve")


def test_views_open_refuses_a_bad_modal_and_a_late_trigger(interactions: Interactions) -> None:
    standin = SlackStandIn(
        token=TOKEN, signing_secret=SECRET, channels={LEDGER: "ledger"}, users=[LENA], trigger_ttl=0.5
    )
    with standin:
        standin.interactions_url = interactions.url
        client = WebClient(token=TOKEN, base_url=standin.api_url)
        ts = _post_request(client)
        message, _ = standin.find_button(REQUEST, "approve")
        standin.click(LENA.id, message, "approve")
        trigger = interactions.payloads[-1]["trigger_id"]

        too_long = {**_reason_modal(LEDGER, ts), "title": {"type": "plain_text", "text": "t" * 25}}
        refused = _refusal(lambda: client.views_open(trigger_id=trigger, view=too_long))
        assert refused.response["error"] == "invalid_arguments"
        assert refused.response["response_metadata"]["messages"] == [
            "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]"
        ]
        time.sleep(0.6)
        late = _refusal(lambda: client.views_open(trigger_id=trigger, view=_reason_modal(LEDGER, ts)))
        assert late.response["error"] == "expired_trigger_id"
        assert not standin.views()


# --- the CLI ----------------------------------------------------------------------------------


def _cli(*args: str, state: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if state is not None:
        env[STATE_ENV] = str(state)
    return subprocess.run(
        [sys.executable, "-m", "devenv.slack", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_clicks_as_a_user_and_lists_messages(
    slack: SlackStandIn, interactions: Interactions, client: WebClient, tmp_path: Path
) -> None:
    state = tmp_path / "slack.json"
    slack.write_state(state)
    ts = _post_request(client)

    clicked = _cli("--state", str(state), "click", "--as", "lena@example.com", "approve", REQUEST)
    assert clicked.returncode == 0, clicked.stderr
    [payload] = interactions.payloads
    assert (payload["user"]["id"], payload["actions"][0]["action_id"]) == (LENA.id, "approve")
    assert payload["container"]["message_ts"] == ts

    missing = _cli("--state", str(state), "click", "--as", "lena@example.com", "deny", "no-such-request")
    assert missing.returncode == 1 and "no message has a button" in missing.stderr
    stranger = _cli("--state", str(state), "click", "--as", "eve@example.com", "approve", REQUEST)
    assert stranger.returncode == 2 and "eve@example.com is not a Slack user" in stranger.stderr
    interactions.status = 403
    refused = _cli("--state", str(state), "click", "--as", "carol@example.com", "approve", REQUEST)
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr
    assert len(interactions.payloads) == 2

    listing = _cli("messages", "--channel", LEDGER, state=state)
    assert listing.returncode == 0, listing.stderr
    assert f"{LEDGER} {ts}" in listing.stdout and f"{REQUEST} waits" in listing.stdout
    assert f"button approve: Approve (value {REQUEST})" in listing.stdout
    assert f"button deny: Deny (value {REQUEST})" in listing.stdout


def test_the_cli_shows_what_only_the_clicker_sees_and_completes_a_deny(
    slack: SlackStandIn, interactions: Interactions, client: WebClient, tmp_path: Path
) -> None:
    state = tmp_path / "slack.json"
    slack.write_state(state)
    _post_request(client)

    refused = _cli("--state", str(state), "click", "--as", CAROL.email, "approve", REQUEST)
    assert refused.returncode == 0, refused.stderr  # Slack answered; what it showed says the rest
    assert f"shown only to {CAROL.email}: You may not approve: not yet escalated." in refused.stdout

    nothing = _cli("--state", str(state), "submit", "--as", LENA.email, "--reason", "too early")
    assert nothing.returncode == 1 and "no dialog is open" in nothing.stderr
    denied = _cli("--state", str(state), "click", "--as", LENA.email, "deny", REQUEST)
    assert denied.returncode == 0, denied.stderr
    assert "a dialog opened: Deny the request;" in denied.stdout
    assert f"slack submit --as {LENA.email} --reason TEXT" in denied.stdout
    submitted = _cli("--state", str(state), "submit", "--as", LENA.email, "--reason", "not during the freeze")
    assert submitted.returncode == 0, submitted.stderr
    assert "the message was updated" in submitted.stdout
    assert slack.messages(LEDGER)[0].text == "Denied: not during the freeze"
    again = _cli("--state", str(state), "submit", "--as", LENA.email, "--reason", "again")
    assert again.returncode == 1 and "no dialog is open" in again.stderr


def test_the_cli_says_when_the_standin_is_not_running(tmp_path: Path) -> None:
    state = tmp_path / "slack.json"
    with SlackStandIn(token=TOKEN, signing_secret=SECRET, channels={}, users=[LENA]) as gone:
        gone.write_state(state)
    clicked = _cli("--state", str(state), "click", "--as", LENA.email, "approve", REQUEST)
    assert clicked.returncode == 1 and "cannot be reached" in clicked.stderr

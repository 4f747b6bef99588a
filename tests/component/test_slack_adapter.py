"""The Slack adapter against the strict local Slack stand-in (devenv.slack): messages posted, updated
and shown to one user land as Slack would keep them, lookups map emails and user ids both ways and
are cached, a click's trigger opens a modal once, and Slack's refusals, rate limits and outages come
back as SlackRefused and SlackRetry, after one request each."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from devenv.slack import SlackStandIn, SlackUser
from jitaccess.adapters.slack import DEFAULT_RETRY_AFTER, Slack, SlackRefused, SlackRetry
from jitaccess.errors import ForeignUser

TOKEN = "xoxb-jitaccess-component-test"
LEDGER = "C0LEDGER1"
LENA = SlackUser("U0LENA", "lena@example.com", "lena")
ALICE = SlackUser("U0ALICE", "alice@example.com", "alice")
# Of another company, in a Slack Connect channel: her company set her profile email to an approver's.
OUTSIDER = SlackUser("U0OUTSIDER", "lena@example.com", "outsider", team_id="T0OTHERCO")
REQUEST = "alice-ledger-read-x7k2p"


def asking(text: str) -> list[dict[str, Any]]:
    """An approvers' message as the lead's domain module builds it: text and the two buttons."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "approve",
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": REQUEST,
                },
                {
                    "type": "button",
                    "action_id": "deny",
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Deny"},
                    "value": REQUEST,
                },
            ],
        },
    ]


DENY_MODAL = {
    "type": "modal",
    "callback_id": "deny",
    "private_metadata": REQUEST,
    "title": {"type": "plain_text", "text": "Deny the request"},
    "submit": {"type": "plain_text", "text": "Deny"},
    "blocks": [
        {
            "type": "input",
            "block_id": "reason",
            "label": {"type": "plain_text", "text": "Why?"},
            "element": {"type": "plain_text_input", "action_id": "reason"},
        }
    ],
}


def stand_in(**limits: Any) -> SlackStandIn:
    return SlackStandIn(
        token=TOKEN,
        signing_secret="component-signing-secret",
        channels={LEDGER: "ledger-oncall"},
        users=[LENA, ALICE, OUTSIDER],
        **limits,
    )


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    with stand_in() as standin:
        yield standin


@pytest.fixture
async def slack(standin: SlackStandIn) -> AsyncIterator[Slack]:
    slack = Slack(TOKEN, standin.api_url, timeout=5)
    yield slack
    await slack.close()


# --- messages


async def test_a_posted_message_is_in_the_channel_and_an_update_replaces_it(
    standin: SlackStandIn, slack: Slack
) -> None:
    channel, ts = await slack.post(LEDGER, "alice asks for ledger-read", asking("*alice* asks for ledger-read"))
    await slack.update(
        channel, ts, "approved by lena", [{"type": "section", "text": {"type": "mrkdwn", "text": "approved"}}]
    )

    [message] = standin.messages(LEDGER)
    assert (message.channel, message.ts) == (channel, ts) == (LEDGER, ts)
    assert message.updates == 1
    assert message.text == "approved by lena"
    assert [block["type"] for block in message.blocks or []] == ["section"]
    first_text, first_blocks = message.versions[0]
    assert first_text == "alice asks for ledger-read"
    assert [block["type"] for block in first_blocks or []] == ["section", "actions"]


async def test_a_message_to_a_user_id_is_a_direct_message_that_can_be_updated(
    standin: SlackStandIn, slack: Slack
) -> None:
    channel, ts = await slack.post(ALICE.id, "your request was approved", [])
    assert channel.startswith("D")

    await slack.update(channel, ts, "your access is granted until 12:00", [])

    [message] = standin.messages(ALICE.id)
    assert (message.channel, message.ts, message.text) == (channel, ts, "your access is granted until 12:00")


async def test_an_ephemeral_message_goes_to_one_user_of_the_channel(standin: SlackStandIn, slack: Slack) -> None:
    await slack.ephemeral(LEDGER, ALICE.id, "you cannot approve your own request")

    [ephemeral] = standin.ephemerals()
    assert (ephemeral.channel, ephemeral.user, ephemeral.text) == (
        LEDGER,
        ALICE.id,
        "you cannot approve your own request",
    )


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda slack: slack.post("C0NOSUCH1", "text", []), "channel_not_found"),
        (lambda slack: slack.update(LEDGER, "1700000000.000001", "text", []), "message_not_found"),
        (lambda slack: slack.ephemeral(LEDGER, "U0NOBODY", "text"), "user_not_found"),
        (
            lambda slack: slack.post(
                LEDGER, "text", [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
            ),
            "invalid_blocks",
        ),
        (lambda slack: slack.open_view("1.2.not-issued", DENY_MODAL), "invalid_trigger_id"),
    ],
    ids=["channel_not_found", "message_not_found", "user_not_found", "invalid_blocks", "invalid_trigger_id"],
)
async def test_slacks_refusals_are_refused(standin: SlackStandIn, slack: Slack, call: Any, error: str) -> None:
    with pytest.raises(SlackRefused) as caught:
        await call(slack)

    assert caught.value.error == error
    [recorded] = standin.calls()
    assert recorded.error == error


async def test_a_wrong_token_is_refused(standin: SlackStandIn) -> None:
    slack = Slack("xoxb-not-the-workspaces", standin.api_url)
    try:
        with pytest.raises(SlackRefused) as caught:
            await slack.post(LEDGER, "text", [])
        assert caught.value.error == "invalid_auth"
        assert "xoxb-not-the-workspaces" not in str(caught.value)
    finally:
        await slack.close()


# --- lookups


async def test_a_user_of_another_workspace_is_nobody_here(standin: SlackStandIn, slack: Slack) -> None:
    """Whatever email another company gives its people, it names nobody in this workspace."""
    with pytest.raises(ForeignUser, match="U0OUTSIDER belongs to workspace T0OTHERCO"):
        await slack.email_of(OUTSIDER.id)
    assert await slack.email_of(LENA.id) == "lena@example.com"
    assert [call.method for call in standin.calls()].count("auth.test") == 1  # the workspace, asked once


async def test_lookups_map_emails_and_user_ids_both_ways_and_ask_once(standin: SlackStandIn, slack: Slack) -> None:
    for _ in range(2):
        assert await slack.user_id_by_email("lena@example.com") == LENA.id
        assert await slack.user_id_by_email("nobody@example.com") is None
        assert await slack.email_of(ALICE.id) == "alice@example.com"
        assert await slack.email_of("U0NOBODY") is None

    assert [(call.method, call.error) for call in standin.calls()] == [
        ("users.lookupByEmail", None),
        ("users.lookupByEmail", "users_not_found"),
        ("users.info", None),
        ("auth.test", None),  # once: whose workspace the bot is in, to tell its members from others
        ("users.info", "user_not_found"),
    ]


# --- a click's trigger opens the deny modal


@pytest.fixture
async def interactions(standin: SlackStandIn) -> AsyncIterator[list[dict[str, Any]]]:
    """An interactivity endpoint that only records the payloads the stand-in sends it."""
    payloads: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        form = parse_qs((await request.read()).decode())
        payloads.append(json.loads(form["payload"][0]))
        return web.Response()

    app = web.Application()
    app.router.add_post("/slack/interactions", receive)
    async with TestServer(app, host="127.0.0.1") as server:
        standin.interactions_url = str(server.make_url("/slack/interactions"))
        yield payloads


async def test_a_clicks_trigger_opens_the_modal_once(
    standin: SlackStandIn, slack: Slack, interactions: list[dict[str, Any]]
) -> None:
    await slack.post(LEDGER, "alice asks for ledger-read", asking("*alice* asks for ledger-read"))
    message, _ = standin.find_button(REQUEST, "deny")
    # The stand-in blocks until the endpoint answers, and the endpoint is served on this loop.
    status, _ = await asyncio.to_thread(standin.click, LENA.id, message, "deny")
    assert status == 200
    [payload] = interactions
    trigger_id = payload["trigger_id"]

    await slack.open_view(trigger_id, DENY_MODAL)

    [view] = standin.views()
    assert (view.user, view.callback_id, view.private_metadata) == (LENA.id, "deny", REQUEST)
    with pytest.raises(SlackRefused) as caught:
        await slack.open_view(trigger_id, DENY_MODAL)
    assert caught.value.error == "exchanged_trigger_id"


# --- rate limits and outages


async def test_past_the_rate_limit_is_retry_after_the_stand_ins_retry_after() -> None:
    with stand_in(rate_limit_per_minute=2, rate_limit_burst=1) as standin:
        slack = Slack(TOKEN, standin.api_url)
        try:
            await slack.post(LEDGER, "first", [])
            started = time.monotonic()
            with pytest.raises(SlackRetry) as caught:
                await slack.post(LEDGER, "second", [])
            assert time.monotonic() - started < 5  # the adapter did not sit out the limit
        finally:
            await slack.close()
        # A token every 30 s; the stand-in rounds up to whole seconds, less what has trickled in since.
        assert 25 <= caught.value.after <= 30
        assert caught.value.after == int(caught.value.after)
        assert [(call.status, call.error) for call in standin.calls("chat.postMessage")] == [
            (200, None),
            (429, "ratelimited"),
        ]


async def test_an_outage_is_retry_and_the_next_call_after_it_goes_through(standin: SlackStandIn, slack: Slack) -> None:
    standin.down()
    with pytest.raises(SlackRetry) as caught:
        await slack.post(LEDGER, "during the outage", [])
    assert caught.value.after == DEFAULT_RETRY_AFTER
    assert [(call.status, call.error) for call in standin.calls()] == [(503, "service_unavailable")]

    standin.down(False)
    await slack.post(LEDGER, "after the outage", [])
    assert [message.text for message in standin.messages(LEDGER)] == ["after the outage"]


async def test_a_stand_in_that_is_gone_is_retry(standin: SlackStandIn, slack: Slack) -> None:
    await slack.user_id_by_email("lena@example.com")  # a kept-alive connection to lose
    standin.stop()

    with pytest.raises(SlackRetry) as caught:
        await slack.post(LEDGER, "nobody listens", [])
    assert caught.value.after == DEFAULT_RETRY_AFTER
    with pytest.raises(SlackRetry):
        await slack.email_of(ALICE.id)

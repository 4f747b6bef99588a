"""A strict local stand-in for Slack's Web API and interactivity, for tests and `make dev`.

Slack cannot be reached from a development machine or CI; `SlackStandIn` plays it, as the strict
moto emulator plays AWS. It serves, on a loopback port, the Web API methods the operator uses
(`api_url` is slack_sdk's ``base_url``) and answers them as Slack does, refusals included: a
lax stand-in would hide the bugs real Slack finds. It records every call, message, update,
ephemeral message and modal, and sends button clicks and modal submissions to the operator's
interactivity endpoint signed as Slack signs them::

    with SlackStandIn(token="xoxb-jitaccess-test", signing_secret="s3cret",
                      channels={"C0LEDGER1": "ledger-oncall"},
                      users=[SlackUser("U0LENA", "lena@example.com", "lena")]) as slack:
        slack.interactions_url = "http://127.0.0.1:8089/slack/interactions"
        ... the operator posts its message ...
        message, _ = slack.find_button("ledger-read-x7k2p", "approve")
        status, body = slack.click("U0LENA", message, "approve")

**The contract the operator follows** so that tests (and people, through the CLI below) find the
buttons of a request: the message that asks the approvers carries an Approve button with
``action_id`` ``"approve"`` and a Deny button with ``action_id`` ``"deny"``, each with the
AccessRequest's ``NAME/UID`` as its ``value``. `find_button` looks for that, by the name.

What people see of a message is not what was posted: Slack turns bare URLs into links and
``@channel`` into a broadcast unless the text object is ``verbatim`` (and the top-level ``text``
is posted with ``parse=none``). `SlackStandIn.rendered` (or `Message.rendered`) shows a message as
Slack would: the broadcasts, mentions, channels and links it carries (`as_shown` says the rules);
so does it an ephemeral message (chat.postEphemeral takes ``parse`` and ``link_names`` too) and a modal.

Methods (POST with a form or JSON body, or GET with a query, as slack_sdk sends them; token in
``Authorization: Bearer``, or a ``token`` form field): ``auth.test``, ``chat.postMessage``
(a ``U...`` channel is a direct message: the answer names its ``D...`` conversation, which
`chat.update` then needs), ``chat.update`` (text and blocks left out are kept, as Slack does),
``chat.postEphemeral``, ``users.lookupByEmail``, ``users.info``, ``views.open`` (with a trigger id
a click issued, once, before it expires). Refusals are Slack's, HTTP 200 with
``{"ok": false, "error": ...}``: ``not_authed``, ``invalid_auth``, ``unknown_method``,
``invalid_arguments``, ``invalid_json``, ``channel_not_found``, ``no_text``, ``msg_too_long``,
``message_not_found``, ``user_not_found``, ``users_not_found``, ``invalid_blocks`` /
``invalid_blocks_format`` (Block Kit limits: 50 blocks, 3000 characters of section text, unique
``block_id`` and ``action_id``, a button's ``value`` at most 2000 characters, ...),
``invalid_trigger_id``, ``expired_trigger_id``, ``exchanged_trigger_id``. Writes through
``chat.*`` are limited per method and conversation by a token bucket: past it, HTTP 429 with
``Retry-After`` and ``{"ok": false, "error": "ratelimited"}``. `down` makes every call answer
HTTP 503 (an HTML page, as a load balancer in an outage does), until it is lifted.

Interactions are Slack's ``block_actions`` and ``view_submission`` payloads, form-encoded as
``payload=<json>``, signed with v0 signatures (``X-Slack-Request-Timestamp``,
``X-Slack-Signature``). Slack allows 3 s for the acknowledgement and for using a trigger id; the
stand-in's defaults are longer (a loaded 2-core machine is slower than Slack's users), and
parameters. A payload's ``response_url`` points at the stand-in, which does not serve it: update
messages with ``chat.update``.

The server runs in a thread with an event loop of its own, so blocking calls (`click`,
`wait_for`) must not be made from the event loop that serves the interactivity endpoint: from an
async test, ``await asyncio.to_thread(slack.click, ...)``.

From another process, with the state file `write_state` wrote (``--state`` or
``$JITACCESS_SLACK_STATE``)::

    python -m devenv.slack click --as lena@example.com approve ledger-read-x7k2p
    python -m devenv.slack messages --channel C0LEDGER1
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import hmac
import itertools
import json
import math
import os
import re
import secrets
import string
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self, TypeVar

import aiohttp
from aiohttp import web

__all__ = ["STATE_ENV", "LoopServer", "SlackStandIn", "SlackUser", "main", "poll"]

T = TypeVar("T")

#: The environment variable naming the state file of a running stand-in, for the CLI.
STATE_ENV: Final = "JITACCESS_SLACK_STATE"

_TEAM_ID: Final = "T0JITACCESS"
_TEAM_DOMAIN: Final = "jitaccess-dev"
_APP_ID: Final = "A0JITACCESS"
_BOT_ID: Final = "B0JITACCESS"
_BOT_USER_ID: Final = "U0JITBOT"
_BOT_NAME: Final = "jitaccess"

_CHANNEL_ID: Final = re.compile(r"^[CG][A-Z0-9]{2,}$")
_USER_ID: Final = re.compile(r"^[UW][A-Z0-9]{2,}$")

# Slack's documented limits (api.slack.com/reference/block-kit, chat.postMessage, views.open).
_MAX_TEXT: Final = 40_000
_MAX_MESSAGE_BLOCKS: Final = 50
_MAX_MODAL_BLOCKS: Final = 100
_MAX_SECTION_TEXT: Final = 3000
_MAX_FIELD_TEXT: Final = 2000
_MAX_FIELDS: Final = 10
_MAX_HEADER_TEXT: Final = 150
_MAX_CONTEXT_ELEMENTS: Final = 10
_MAX_ACTIONS_ELEMENTS: Final = 25
_MAX_BUTTON_TEXT: Final = 75
_MAX_BUTTON_VALUE: Final = 2000
_MAX_URL: Final = 3000
_MAX_ID: Final = 255
_MAX_LABEL: Final = 2000
_MAX_PLACEHOLDER: Final = 150
_MAX_INPUT_LENGTH: Final = 3000
_MAX_MODAL_TITLE: Final = 24
_MAX_PRIVATE_METADATA: Final = 3000
_MESSAGE_BLOCK_TYPES: Final = frozenset(
    {"actions", "context", "divider", "file", "header", "image", "input", "markdown", "rich_text", "section", "video"}
)
_MODAL_BLOCK_TYPES: Final = _MESSAGE_BLOCK_TYPES - {"file"}
#: Elements that send an interaction and so carry an action_id.
_INTERACTIVE: Final = frozenset(
    {
        "button",
        "checkboxes",
        "channels_select",
        "conversations_select",
        "datepicker",
        "datetimepicker",
        "email_text_input",
        "external_select",
        "multi_channels_select",
        "multi_conversations_select",
        "multi_external_select",
        "multi_static_select",
        "multi_users_select",
        "number_input",
        "overflow",
        "plain_text_input",
        "radio_buttons",
        "static_select",
        "timepicker",
        "url_text_input",
        "users_select",
    }
)

_OUTAGE_PAGE: Final = "<html><body><h1>503 Service Unavailable</h1>Slack is having trouble.</body></html>"


# -- the server thread, shared with devenv.eventsink ------------------------------------------


class LoopServer:
    """An aiohttp application on 127.0.0.1 (a free port), served by an event loop in a thread of its own.

    The thread keeps the server answering while its owner blocks (a test waiting for something,
    an operator process calling in); `run` hands a coroutine to that loop from any other thread.
    """

    def __init__(self, app: web.Application, *, name: str) -> None:
        self._app = app
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._failure: BaseException | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self._name} has already been started")
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name=self._name, daemon=True)
        self._thread.start()
        ready.wait()
        if self._failure is not None:
            self._thread.join()
            raise RuntimeError(f"{self._name} did not start") from self._failure

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = self._loop = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash."""
        if self._port is None:
            raise RuntimeError(f"start() {self._name} first")
        return f"http://127.0.0.1:{self._port}"

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the server's loop and wait for its result (never from that loop itself)."""
        if self._loop is None:
            coro.close()
            raise RuntimeError(f"start() {self._name} first")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        # Requests in flight when the server stops get a short while to finish, not aiohttp's minute.
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=1.0)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self._port = int(runner.addresses[0][1])
        except BaseException as error:  # reported to start(), in the owner's thread
            self._failure = error
            loop.run_until_complete(runner.cleanup())
            loop.close()
            ready.set()
            return
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def poll(predicate: Callable[[], T], timeout: float, what: str = "the condition") -> T:
    """The first truthy value of ``predicate()``, called until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} did not hold within {timeout} s")
        time.sleep(0.02)


# -- what the stand-in knows and records ------------------------------------------------------


@dataclass(frozen=True)
class SlackUser:
    """A member of the stand-in's workspace; its ``email`` is how the operator maps it to a Kubernetes user."""

    id: str
    email: str
    name: str
    #: Another workspace's id for someone a Slack Connect channel shares messages with.
    team_id: str = _TEAM_ID


@dataclass
class Message:
    """A message the bot posted; ``versions`` holds (text, blocks) as posted, then after each update."""

    channel: str
    ts: str
    versions: list[tuple[str | None, list[dict[str, Any]] | None]]
    #: When it was last updated, in Slack's ts format.
    edited_ts: str | None = None
    #: When the stand-in recorded the post (`time.time()`): what a latency measurement reads.
    received: float = field(default_factory=time.time)
    #: How Slack was asked to parse each version's ``text``: the call's ``parse`` and
    #: ``link_names`` arguments (absent: Slack's defaults).
    parsing: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str | None:
        return self.versions[-1][0]

    @property
    def blocks(self) -> list[dict[str, Any]] | None:
        return self.versions[-1][1]

    @property
    def updates(self) -> int:
        return len(self.versions) - 1

    def rendered(self, channel_names: Iterable[str] = ()) -> Rendered:
        """The message as it stands, as Slack shows it: whom it notifies, what it links to (`as_shown`)."""
        text, blocks = self.versions[-1]
        parsing = self.parsing[-1] if len(self.parsing) == len(self.versions) else {}
        return as_shown(text, blocks, channel_names=channel_names, **parsing)

    def request(self, action_id: str, *, as_posted: bool = False) -> str | None:
        """The AccessRequest this message's ``action_id`` button decides (the name of its
        ``NAME/UID`` value: the module docstring's contract), in the message as it stands or,
        with `as_posted`, as first posted; None without such a button."""
        _, blocks = self.versions[0] if as_posted else self.versions[-1]
        for block in blocks or ():
            for element in _elements(block):
                if element.get("type") == "button" and element.get("action_id") == action_id:
                    return button_request(element.get("value"))
        return None


def button_request(value: Any) -> str:
    """The AccessRequest a decision button is for: the name in its ``NAME/UID`` value (a bare name
    is that name)."""
    return str(value).partition("/")[0]


# -- what people see ---------------------------------------------------------------------------
#
# Slack preprocesses the text it is given before anyone reads it. Always, in mrkdwn: the manual
# parsing strings `<@U...>` (a mention), `<!here>` `<!channel>` `<!everyone>` (a broadcast: it
# notifies the whole channel), `<!subteam^S...>` (a user group), `<#C...>` (a channel) and
# `<https://...|label>` (a link). Besides, in a mrkdwn text object left `verbatim` false (Slack's
# default), "URLs will be auto-converted into links, conversation names will be link-ified, and
# certain mentions will be automatically parsed" (Block Kit's text object reference): a bare
# `https://...` becomes a link, `@channel` / `@here` / `@everyone` a broadcast, `#general` a link
# to that channel. `verbatim: true` keeps the manual strings and changes nothing else. A message's
# top-level `text` (the notification, the fallback of blocks) is mrkdwn too: its bare URLs are
# linked unless chat.postMessage / chat.update was given `parse=none`, and its names (`@here`,
# `#general`) parsed with `link_names` or `parse=full`. Plain text objects are shown as written.

_TOKEN: Final = re.compile(r"<([^<>]*)>")
_BROADCASTS: Final = {"channel": "channel", "group": "channel", "here": "here", "everyone": "everyone"}
_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_EMAIL: Final = re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# Slack detects URLs with rules of its own; these are the forms the stand-in links: a scheme, a
# `www.` and a bare domain under a common top-level domain (with or without a path).
_BARE_URL: Final = re.compile(
    r"(?:\b[A-Za-z][A-Za-z0-9+.-]*://|\bwww\.)[^\s<>|]+"
    r"|(?<![\w@./-])(?:[A-Za-z0-9-]+\.)+(?:com|net|org|io|dev|app|co|ai|me|info|biz|xyz)\b(?:/[^\s<>|]*)?"
)
_AT_BROADCAST: Final = re.compile(r"(?<![\w@])@(channel|here|everyone)\b")
_CHANNEL_NAME: Final = re.compile(r"(?<![\w&#])#([a-z0-9][a-z0-9_-]*)")


@dataclass
class Rendered:
    """Who a message notifies and what it links to, as Slack shows it (`as_shown`)."""

    #: ``channel``, ``here``, ``everyone``: each notifies the whole conversation.
    broadcasts: set[str] = field(default_factory=set)
    #: Users (``U...``, ``W...``) and user groups (``S...``) mentioned.
    mentions: set[str] = field(default_factory=set)
    #: Channels linked: by id (``<#C...>``) or by name (``general``, from a bare ``#general``).
    channels: set[str] = field(default_factory=set)
    #: Link targets (a bare email address is linked as ``mailto:``).
    links: set[str] = field(default_factory=set)

    def add(self, text: str, *, urls: bool, names: bool, channel_names: frozenset[str]) -> None:
        """``text`` as Slack parses mrkdwn: the manual strings always, bare URLs when ``urls``,
        bare broadcasts and channel names when ``names``."""
        for token in _TOKEN.findall(text):
            target = token.split("|", 1)[0]
            if target.startswith("@"):
                self.mentions.add(target[1:])
            elif target.startswith("!subteam^"):
                self.mentions.add(target.removeprefix("!subteam^"))
            elif target.startswith("!") and target[1:] in _BROADCASTS:
                self.broadcasts.add(_BROADCASTS[target[1:]])
            elif target.startswith("#"):
                self.channels.add(target[1:])
            elif _SCHEME.match(target):
                self.links.add(target)
        rest = _TOKEN.sub(" ", text)
        if urls:
            self.links.update(f"mailto:{email}" for email in _EMAIL.findall(rest))
            self.links.update(_BARE_URL.findall(_EMAIL.sub(" ", rest)))
        if names:
            self.broadcasts.update(_AT_BROADCAST.findall(rest))
            self.channels.update(n for n in _CHANNEL_NAME.findall(rest) if n in channel_names)


def as_shown(
    text: str | None,
    blocks: Sequence[Mapping[str, Any]] | None,
    *,
    parse: Any = None,
    link_names: Any = None,
    channel_names: Iterable[str] = (),
) -> Rendered:
    """What Slack makes of a message posted with ``text``, ``blocks`` and chat.postMessage's
    ``parse`` and ``link_names`` arguments (see the comment above); ``channel_names`` are the
    workspace's channels, which a bare ``#name`` links to."""
    names = frozenset(channel_names)
    seen = Rendered()
    if text:
        linked = parse == "full" or link_names in (True, 1, "1", "true")
        seen.add(text, urls=parse != "none", names=linked, channel_names=names)
    for obj in _mrkdwn_objects(blocks or ()):
        automatic = obj.get("verbatim") is not True
        seen.add(str(obj.get("text") or ""), urls=automatic, names=automatic, channel_names=names)
    return seen


def _mrkdwn_objects(value: Any) -> Iterator[Mapping[str, Any]]:
    """Every mrkdwn text object in blocks, wherever it sits (a section's text and fields, a context's elements...)."""
    if isinstance(value, Mapping):
        if value.get("type") == "mrkdwn" and "text" in value:
            yield value
            return
        for item in value.values():
            yield from _mrkdwn_objects(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _mrkdwn_objects(item)


@dataclass(frozen=True)
class Ephemeral:
    """A message shown to one user of a channel only (``chat.postEphemeral``)."""

    channel: str
    user: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    #: How Slack was asked to parse ``text`` (the call's ``parse`` and ``link_names``), as for a `Message`.
    parsing: dict[str, Any] = field(default_factory=dict)

    def rendered(self, channel_names: Iterable[str] = ()) -> Rendered:
        """The ephemeral message as its one reader sees it (`as_shown`)."""
        return as_shown(self.text, self.blocks, channel_names=channel_names, **self.parsing)


@dataclass
class View:
    """A modal opened with ``views.open`` for ``user``; ``view`` is the whole view as Slack stores it."""

    id: str
    user: str
    callback_id: str | None
    private_metadata: str | None
    view: dict[str, Any]
    #: A submission the operator accepted closes the modal; a closed modal cannot be submitted again.
    closed: bool = False

    def rendered(self, channel_names: Iterable[str] = ()) -> Rendered:
        """The modal's blocks as Slack shows them (`as_shown`; its title and buttons are plain text)."""
        return as_shown(None, self.view.get("blocks"), channel_names=channel_names)


@dataclass(frozen=True)
class Call:
    """One Web API call: its arguments (without the token), the HTTP status and Slack error answered."""

    method: str
    args: dict[str, Any]
    status: int
    error: str | None


class _SlackError(Exception):
    def __init__(self, error: str, *, status: int = 200, headers: Mapping[str, str] | None = None, **extra: Any):
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = dict(headers or {})
        self.extra = extra


def _problems_error(error: str, problems: Sequence[str]) -> _SlackError:
    # Slack's shape for Block Kit and view refusals: the problems with a JSON pointer each.
    extra: dict[str, Any] = {"response_metadata": {"messages": [f"[ERROR] {p}" for p in problems]}}
    if error == "invalid_blocks":
        extra["errors"] = list(problems)
    return _SlackError(error, **extra)


class _TokenBucket:
    """``per_minute`` tokens a minute, at most ``burst`` saved up."""

    def __init__(self, per_minute: int, burst: int) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = time.monotonic()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one is due."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


# -- Block Kit ---------------------------------------------------------------------------------


class _BlockChecker:
    """Collects Block Kit problems as Slack words them, ``<message> [json-pointer:/blocks/0/...]``."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self._block_ids: set[str] = set()
        self._action_ids: set[str] = set()

    def fail(self, pointer: str, message: str) -> None:
        self.problems.append(f"{message} [json-pointer:{pointer}]")

    def blocks(self, blocks: Any, pointer: str, *, limit: int, types: frozenset[str]) -> None:
        if not isinstance(blocks, list):
            self.fail(pointer, "must be an array")
            return
        if len(blocks) > limit:
            self.fail(pointer, f"no more than {limit} items allowed")
        for index, block in enumerate(blocks):
            self.block(block, f"{pointer}/{index}", types)

    def block(self, block: Any, pointer: str, types: frozenset[str]) -> None:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            self.fail(pointer, "must be an object with a type")
            return
        kind = block["type"]
        if kind not in types:
            self.fail(f"{pointer}/type", f"unsupported type: {kind}")
            return
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not 0 < len(block_id) <= _MAX_ID:
                self.fail(f"{pointer}/block_id", f"must be a string of 1 to {_MAX_ID} characters")
            elif block_id in self._block_ids:
                self.fail(f"{pointer}/block_id", f"duplicate block_id: {block_id}")
            else:
                self._block_ids.add(block_id)
        if kind == "section":
            if "text" not in block and "fields" not in block:
                self.fail(pointer, "must provide text or fields")
            if "text" in block:
                self.text(block["text"], f"{pointer}/text", _MAX_SECTION_TEXT)
            if "fields" in block:
                self.fields(block["fields"], f"{pointer}/fields")
            if "accessory" in block:
                self.element(block["accessory"], f"{pointer}/accessory")
        elif kind == "header":
            self.text(block.get("text"), f"{pointer}/text", _MAX_HEADER_TEXT, plain=True)
        elif kind == "context":
            self.list_of(block.get("elements"), f"{pointer}/elements", _MAX_CONTEXT_ELEMENTS, self.context_element)
        elif kind == "actions":
            self.list_of(block.get("elements"), f"{pointer}/elements", _MAX_ACTIONS_ELEMENTS, self.element)
        elif kind == "input":
            self.text(block.get("label"), f"{pointer}/label", _MAX_LABEL, plain=True)
            if "hint" in block:
                self.text(block["hint"], f"{pointer}/hint", _MAX_LABEL, plain=True)
            self.element(block.get("element"), f"{pointer}/element")
        elif kind == "image":
            if not isinstance(block.get("alt_text"), str):
                self.fail(f"{pointer}/alt_text", "must be provided")
            self.url(block.get("image_url"), f"{pointer}/image_url", required=True)

    def fields(self, fields: Any, pointer: str) -> None:
        def one(value: Any, where: str) -> None:
            self.text(value, where, _MAX_FIELD_TEXT)

        self.list_of(fields, pointer, _MAX_FIELDS, one)

    def list_of(self, items: Any, pointer: str, limit: int, check: Callable[[Any, str], None]) -> None:
        if not isinstance(items, list) or not items:
            self.fail(pointer, "must be a non-empty array")
            return
        if len(items) > limit:
            self.fail(pointer, f"no more than {limit} items allowed")
        for index, item in enumerate(items):
            check(item, f"{pointer}/{index}")

    def text(self, value: Any, pointer: str, limit: int, *, plain: bool = False) -> None:
        kinds = ("plain_text",) if plain else ("plain_text", "mrkdwn")
        if not isinstance(value, dict) or value.get("type") not in kinds:
            self.fail(pointer, f"must be a text object of type {' or '.join(kinds)}")
            return
        # "This field is only usable when type is mrkdwn" (Block Kit's text object reference).
        verbatim = value.get("verbatim")
        if verbatim is not None and (value["type"] != "mrkdwn" or not isinstance(verbatim, bool)):
            self.fail(f"{pointer}/verbatim", "must be a boolean, in a mrkdwn text object only")
        text = value.get("text")
        if not isinstance(text, str) or not text:
            self.fail(f"{pointer}/text", "must be more than 0 characters")
        elif len(text) > limit:
            self.fail(f"{pointer}/text", f"must be less than {limit + 1} characters")

    def url(self, value: Any, pointer: str, *, required: bool = False) -> None:
        if value is None and not required:
            return
        if not isinstance(value, str) or not 0 < len(value) <= _MAX_URL:
            self.fail(pointer, f"must be a URL of 1 to {_MAX_URL} characters")

    def context_element(self, element: Any, pointer: str) -> None:
        if isinstance(element, dict) and element.get("type") == "image":
            self.url(element.get("image_url"), f"{pointer}/image_url", required=True)
        else:
            self.text(element, pointer, _MAX_SECTION_TEXT)

    def element(self, element: Any, pointer: str) -> None:
        if not isinstance(element, dict) or not isinstance(element.get("type"), str):
            self.fail(pointer, "must be an object with a type")
            return
        kind = element["type"]
        if kind in _INTERACTIVE and "action_id" in element:
            action_id = element["action_id"]
            if not isinstance(action_id, str) or not 0 < len(action_id) <= _MAX_ID:
                self.fail(f"{pointer}/action_id", f"must be a string of 1 to {_MAX_ID} characters")
            elif action_id in self._action_ids:
                self.fail(f"{pointer}/action_id", f"duplicate action_id: {action_id}")
            else:
                self._action_ids.add(action_id)
        if kind == "button":
            self.text(element.get("text"), f"{pointer}/text", _MAX_BUTTON_TEXT, plain=True)
            value = element.get("value")
            if value is not None and (not isinstance(value, str) or len(value) > _MAX_BUTTON_VALUE):
                self.fail(f"{pointer}/value", f"must be less than {_MAX_BUTTON_VALUE + 1} characters")
            self.url(element.get("url"), f"{pointer}/url")
            if element.get("style") not in (None, "primary", "danger"):
                self.fail(f"{pointer}/style", "must be primary or danger")
            if "confirm" in element:
                self.confirm(element["confirm"], f"{pointer}/confirm")
        elif kind == "plain_text_input":
            for key in ("min_length", "max_length"):
                length = element.get(key)
                if length is not None and (not isinstance(length, int) or not 0 <= length <= _MAX_INPUT_LENGTH):
                    self.fail(f"{pointer}/{key}", f"must be an integer from 0 to {_MAX_INPUT_LENGTH}")
            if "placeholder" in element:
                self.text(element["placeholder"], f"{pointer}/placeholder", _MAX_PLACEHOLDER, plain=True)
        elif kind == "image":
            self.url(element.get("image_url"), f"{pointer}/image_url", required=True)

    def confirm(self, confirm: Any, pointer: str) -> None:
        if not isinstance(confirm, dict):
            self.fail(pointer, "must be a confirmation dialog object")
            return
        self.text(confirm.get("title"), f"{pointer}/title", 100, plain=True)
        self.text(confirm.get("text"), f"{pointer}/text", 300)
        self.text(confirm.get("confirm"), f"{pointer}/confirm", 30, plain=True)
        self.text(confirm.get("deny"), f"{pointer}/deny", 30, plain=True)


def _slack_id(prefix: str, length: int = 10) -> str:
    return prefix + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(length))


def _fill_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The blocks as Slack stores them: a block or interactive element without an id gets a generated one."""
    blocks = copy.deepcopy(blocks)
    for block in blocks:
        block.setdefault("block_id", secrets.token_urlsafe(4))
        for element in _elements(block):
            if element.get("type") in _INTERACTIVE:
                element.setdefault("action_id", secrets.token_urlsafe(4))
    return blocks


def _elements(block: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The interactive elements of one block: an actions block's, a section's accessory, an input's element."""
    if block.get("type") == "actions":
        yield from block.get("elements", [])
    for key in ("accessory", "element"):
        if isinstance(block.get(key), dict):
            yield block[key]


def _button(blocks: Sequence[Mapping[str, Any]] | None, action_id: str) -> tuple[str, dict[str, Any]] | None:
    for block in blocks or ():
        for element in _elements(block):
            if element.get("type") == "button" and element.get("action_id") == action_id:
                return str(block["block_id"]), element
    return None


def _parsing(args: Mapping[str, Any]) -> dict[str, Any]:
    """How a chat.postMessage, chat.update or chat.postEphemeral asks Slack to parse its ``text`` (see `as_shown`)."""
    return {key: args[key] for key in ("parse", "link_names") if key in args}


def _json_arg(value: Any) -> Any:
    """A structured argument: a form field carries it as a JSON string, a JSON body as itself."""
    if isinstance(value, str):
        return json.loads(value)
    return value


# -- the stand-in ------------------------------------------------------------------------------


class SlackStandIn:
    """Slack's Web API and interactivity on a loopback port; see the module docstring."""

    def __init__(
        self,
        *,
        token: str,
        signing_secret: str,
        channels: Mapping[str, str],
        users: Sequence[SlackUser],
        interactions_url: str | None = None,
        rate_limit_per_minute: int = 60,
        rate_limit_burst: int | None = None,
        trigger_ttl: float = 30.0,
        interaction_timeout: float = 10.0,
    ) -> None:
        for channel_id in channels:
            if not _CHANNEL_ID.match(channel_id):
                raise ValueError(f"{channel_id!r} is not a Slack channel id (C... or G...)")
        for user in users:
            if not _USER_ID.match(user.id):
                raise ValueError(f"{user.id!r} is not a Slack user id (U... or W...)")
        self.token = token
        self.signing_secret = signing_secret
        #: Where clicks and submissions are sent (the operator's POST /slack/interactions).
        self.interactions_url = interactions_url
        self._channels = dict(channels)
        self._users = {user.id: user for user in users}
        self._rate_per_minute = rate_limit_per_minute
        # A minute's worth saved up by default: tests never meet the limit unless they ask to.
        self._rate_burst = rate_limit_burst if rate_limit_burst is not None else rate_limit_per_minute
        self._trigger_ttl = trigger_ttl
        self._interaction_timeout = interaction_timeout
        # The verification token of Slack's payloads (deprecated by Slack, still sent).
        self._verification_token = secrets.token_urlsafe(18)

        self._lock = threading.Lock()
        self._down = False
        self._messages: list[Message] = []
        self._ephemerals: list[Ephemeral] = []
        self._views: dict[str, View] = {}
        self._calls: list[Call] = []
        self._buckets: dict[tuple[str, str], _TokenBucket] = {}
        #: trigger id -> (monotonic time issued, user it was issued to, exchanged already)
        self._triggers: dict[str, tuple[float, str, bool]] = {}
        self._trigger_counter = itertools.count(1_000_000_001)
        self._last_ts = 0
        self._last_request: tuple[bytes, dict[str, str]] | None = None
        self._session: aiohttp.ClientSession | None = None

        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/_standin/messages", self._control_messages)
        app.router.add_post("/_standin/click", self._control_click)
        app.router.add_post("/_standin/submit", self._control_submit)
        app.cleanup_ctx.append(self._client_session)
        self._server = LoopServer(app, name="slack-standin")
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "users.lookupByEmail": self._users_lookup_by_email,
            "users.info": self._users_info,
            "views.open": self._views_open,
        }

    # -- lifecycle and addresses ---------------------------------------------------------------

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        """The Web API's base URL, ``http://127.0.0.1:PORT/api/``: slack_sdk's ``base_url``."""
        return f"{self._server.url}/api/"

    def env(self) -> dict[str, str]:
        """Operator settings that point it at this stand-in."""
        return {
            "JITACCESS_SLACK_TOKEN": self.token,
            "JITACCESS_SLACK_SIGNING_SECRET": self.signing_secret,
            "JITACCESS_SLACK_API_URL": self.api_url,
        }

    def write_state(self, path: Path) -> None:
        """What the CLI needs to reach this stand-in from another process (``--state`` / `STATE_ENV`)."""
        state = {
            "api_url": self.api_url,
            "control_url": f"{self._server.url}/_standin/",
            "signing_secret": self.signing_secret,
            "interactions_url": self.interactions_url,
            # The CLI clicks as a member of the workspace, found by email: not as someone of another
            # company a Slack Connect channel shares messages with, whatever email theirs gave them.
            "users": [
                {"id": u.id, "email": u.email, "name": u.name} for u in self._users.values() if u.team_id == _TEAM_ID
            ],
        }
        path.write_text(json.dumps(state, indent=2) + "\n")

    def down(self, down: bool = True) -> None:
        """While down, every Web API call is answered HTTP 503, as in a Slack outage."""
        self._down = down

    # -- the recording -------------------------------------------------------------------------

    def messages(self, channel: str | None = None) -> list[Message]:
        """Messages posted (as they stand, with their earlier versions), oldest first; a user id means the DM."""
        if channel is not None and channel in self._users:
            channel = self._dm(channel)
        with self._lock:
            return [copy.deepcopy(m) for m in self._messages if channel is None or m.channel == channel]

    def ephemerals(self) -> list[Ephemeral]:
        with self._lock:
            return copy.deepcopy(self._ephemerals)

    def views(self) -> list[View]:
        with self._lock:
            return copy.deepcopy(list(self._views.values()))

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [copy.deepcopy(c) for c in self._calls if method is None or c.method == method]

    def rendered(self, shown: Message | Ephemeral | View) -> Rendered:
        """A message, an ephemeral message or a modal as Slack shows it in this workspace (a bare
        ``#name`` links one of its channels)."""
        return shown.rendered(self._channels.values())

    def wait_for(self, predicate: Callable[[Self], T], timeout: float = 10.0) -> T:
        """The first truthy ``predicate(self)``, polled until ``timeout``: e.g. ``lambda s: s.messages(c)``."""
        return poll(lambda: predicate(self), timeout, "the stand-in's recording")

    def find_button(
        self, request_name: str, action_id: str, channel: str | None = None
    ) -> tuple[Message, dict[str, Any]]:
        """The latest message with a button ``action_id`` for request ``request_name``, and that button.

        The operator's contract (module docstring): Approve is ``"approve"``, Deny ``"deny"``, each
        with the AccessRequest's ``NAME/UID`` as its value (a bare name matches that name's). Only messages as they stand count: a button an
        update took away cannot be clicked.
        """
        for message in reversed(self.messages(channel)):
            for block in message.blocks or ():
                for element in _elements(block):
                    if (
                        element.get("type") == "button"
                        and element.get("action_id") == action_id
                        and button_request(element.get("value")) == request_name
                    ):
                        return message, element
        raise LookupError(
            f"no message has a button with action_id {action_id!r} and value {request_name!r} "
            f"({len(self.messages(channel))} messages recorded)"
        )

    # -- interactions --------------------------------------------------------------------------

    def click(self, user_id: str, message: Message, action_id: str) -> tuple[int, str]:
        """``user_id`` clicks button ``action_id`` of ``message`` as it now stands: Slack's block_actions.

        Returns the HTTP status and body the interactivity endpoint answered; the payload's
        trigger id can then open a modal once.
        """
        return self._server.run(self._click(user_id, message.channel, message.ts, action_id))

    def submit_view(self, user_id: str, view_id: str, values: Mapping[str, Mapping[str, str]]) -> tuple[int, str]:
        """``user_id`` submits modal ``view_id`` with ``values`` (block_id -> action_id -> text).

        Like Slack's client, it refuses (ValueError) what a person could not do: submit another
        user's or a closed modal, type into an input the modal lacks, leave a required input
        empty or type past ``max_length``.
        """
        return self._server.run(self._submit_view(user_id, view_id, values))

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """Slack's v0 signature headers for ``body``, at ``timestamp`` (now by default)."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        digest = hmac.new(self.signing_secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest.hexdigest()}"}

    def send_raw(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        """POST exactly ``body`` with ``headers`` to the interactivity endpoint (a replay, a forgery)."""
        return self._server.run(self._send(body, headers))

    @property
    def last_request(self) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the last request sent to the interactivity endpoint, to replay it."""
        if self._last_request is None:
            raise LookupError("nothing has been sent to the interactivity endpoint")
        body, headers = self._last_request
        return body, dict(headers)

    # -- the server ----------------------------------------------------------------------------

    async def _client_session(self, _: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as self._session:
            yield
        self._session = None

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = {}
        try:
            if self._down:
                raise _SlackError("service_unavailable", status=503)
            args, form_token = await self._arguments(request)
            token = self._token(request, form_token)
            handler = self._methods.get(method)
            if handler is None:
                raise _SlackError("unknown_method", req_method=method)
            if token is None:
                raise _SlackError("not_authed")
            if not hmac.compare_digest(token.encode(), self.token.encode()):
                raise _SlackError("invalid_auth")
            answer = handler(args)
        except _SlackError as refusal:
            self._record(Call(method, args, refusal.status, refusal.error))
            if refusal.status == 503:
                return web.Response(status=503, text=_OUTAGE_PAGE, content_type="text/html")
            body = {"ok": False, "error": refusal.error, **refusal.extra}
            return web.json_response(body, status=refusal.status, headers=refusal.headers)
        self._record(Call(method, args, 200, None))
        return web.json_response({"ok": True, **answer})

    @staticmethod
    async def _arguments(request: web.Request) -> tuple[dict[str, Any], str | None]:
        """The call's arguments (query and body, without a token) and the token of a form body."""
        args: dict[str, Any] = dict(request.query)
        # Slack no longer takes a token in the query string.
        args.pop("token", None)
        if request.method != "POST" or not request.can_read_body:
            return args, None
        if request.content_type == "application/json":
            try:
                body = json.loads(await request.text())
            except ValueError:
                raise _SlackError("invalid_json") from None
            if not isinstance(body, dict):
                raise _SlackError("json_not_object")
            # Slack takes a JSON body's token from the Authorization header only.
            body.pop("token", None)
            args.update(body)
            return args, None
        form = dict(await request.post())
        form_token = form.pop("token", None)
        args.update(form)
        return args, form_token if isinstance(form_token, str) else None

    @staticmethod
    def _token(request: web.Request, form_token: str | None) -> str | None:
        authorization = request.headers.get("Authorization")
        if authorization is None:
            return form_token
        scheme, _, token = authorization.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def _rate_limit(self, method: str, channel: str) -> None:
        bucket = self._buckets.setdefault((method, channel), _TokenBucket(self._rate_per_minute, self._rate_burst))
        wait = bucket.take()
        if wait:
            raise _SlackError("ratelimited", status=429, headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def _next_ts(self) -> str:
        # Slack's message ids: seconds.microseconds, unique and increasing within a conversation.
        micros = max(time.time_ns() // 1000, self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    @staticmethod
    def _dm(user_id: str) -> str:
        return "D" + user_id[1:]

    def _conversation(self, channel: Any, *, posting: bool) -> str:
        """The conversation ``channel`` names.

        Posting, Slack also takes a channel's name and a user's id (the bot's DM with them), and
        answers with the conversation's id, which other methods need.
        """
        if isinstance(channel, str):
            if channel in self._channels:
                return channel
            if posting and channel in self._users:
                return self._dm(channel)
            if posting:
                by_name = [id_ for id_, name in self._channels.items() if name == channel.removeprefix("#")]
                if by_name:
                    return by_name[0]
            if channel.startswith("D") and any(self._dm(user) == channel for user in self._users):
                return channel
        raise _SlackError("channel_not_found")

    def _user(self, user_id: Any) -> SlackUser:
        if not isinstance(user_id, str) or not user_id:
            raise _SlackError("invalid_arguments")
        user = self._users.get(user_id)
        if user is None:
            raise _SlackError("user_not_found")
        return user

    def _content(self, args: Mapping[str, Any]) -> tuple[str | None, list[dict[str, Any]] | None]:
        text = args.get("text") or None
        if text is not None and not isinstance(text, str):
            raise _SlackError("invalid_arguments")
        if text is not None and len(text) > _MAX_TEXT:
            raise _SlackError("msg_too_long")
        blocks: Any = None
        if "blocks" in args:
            try:
                blocks = _json_arg(args["blocks"])
            except ValueError:
                raise _SlackError("invalid_blocks_format") from None
            if not isinstance(blocks, list):
                raise _SlackError("invalid_blocks_format")
            checker = _BlockChecker()
            checker.blocks(blocks, "/blocks", limit=_MAX_MESSAGE_BLOCKS, types=_MESSAGE_BLOCK_TYPES)
            if checker.problems:
                raise _problems_error("invalid_blocks", checker.problems)
            blocks = _fill_ids(blocks)
        return text, blocks

    def _message_json(self, message: Message) -> dict[str, Any]:
        """A message in Slack's shape (the ``message`` of answers and of block_actions payloads)."""
        text, blocks = message.versions[-1]
        body: dict[str, Any] = {
            "type": "message",
            "user": _BOT_USER_ID,
            "bot_id": _BOT_ID,
            "app_id": _APP_ID,
            "team": _TEAM_ID,
            "text": text or "",
            "ts": message.ts,
        }
        if blocks is not None:
            body["blocks"] = blocks
        if message.edited_ts is not None:
            body["edited"] = {"user": _BOT_USER_ID, "ts": message.edited_ts}
        return body

    # -- Web API methods (run on the server's loop) --------------------------------------------

    def _auth_test(self, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{_TEAM_DOMAIN}.slack.com/",
            "team": _TEAM_DOMAIN,
            "user": _BOT_NAME,
            "team_id": _TEAM_ID,
            "user_id": _BOT_USER_ID,
            "bot_id": _BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._conversation(args.get("channel"), posting=True)
        text, blocks = self._content(args)
        if text is None and not blocks:
            raise _SlackError("no_text")
        self._rate_limit("chat.postMessage", channel)
        message = Message(channel, self._next_ts(), [(text, blocks)], parsing=[_parsing(args)])
        with self._lock:
            self._messages.append(message)
            answer = {"channel": channel, "ts": message.ts, "message": self._message_json(message)}
        return copy.deepcopy(answer)

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._conversation(args.get("channel"), posting=False)
        ts = args.get("ts")
        with self._lock:
            message = next((m for m in self._messages if m.channel == channel and m.ts == ts), None)
        if message is None:
            raise _SlackError("message_not_found")
        text, blocks = self._content(args)
        if text is None and "blocks" not in args:
            raise _SlackError("no_text")
        self._rate_limit("chat.update", channel)
        edited_ts = self._next_ts()
        with self._lock:
            message.edited_ts = edited_ts
            old_text, old_blocks = message.versions[-1]
            # Slack keeps what an update leaves out; an empty blocks array removes the blocks.
            message.versions.append(
                (text if text is not None else old_text, blocks if "blocks" in args else old_blocks)
            )
            # A text left out is kept, and so is how it was parsed.
            message.parsing.append(_parsing(args) if text is not None else message.parsing[-1])
            answer = {
                "channel": channel,
                "ts": message.ts,
                "text": message.text or "",
                "message": self._message_json(message),
            }
        return copy.deepcopy(answer)

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._conversation(args.get("channel"), posting=False)
        user = self._user(args.get("user"))
        text, blocks = self._content(args)
        if text is None and not blocks:
            raise _SlackError("no_text")
        self._rate_limit("chat.postEphemeral", channel)
        ephemeral = Ephemeral(channel, user.id, self._next_ts(), text, blocks, _parsing(args))
        with self._lock:
            self._ephemerals.append(ephemeral)
        return {"message_ts": ephemeral.ts}

    def _user_json(self, user: SlackUser) -> dict[str, Any]:
        return {
            "id": user.id,
            "team_id": user.team_id,
            "name": user.name,
            "deleted": False,
            "real_name": user.name,
            "is_bot": False,
            "is_app_user": False,
            "profile": {
                "email": user.email,
                "real_name": user.name,
                "display_name": user.name,
                "team": user.team_id,
            },
        }

    def _users_lookup_by_email(self, args: dict[str, Any]) -> dict[str, Any]:
        email = args.get("email")
        if not isinstance(email, str) or not email:
            raise _SlackError("invalid_arguments")
        for user in self._users.values():
            # Slack finds the members of its own workspace by email, not people of other companies.
            if user.team_id == _TEAM_ID and user.email.casefold() == email.casefold():
                return {"user": self._user_json(user)}
        raise _SlackError("users_not_found")

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"user": self._user_json(self._user(args.get("user")))}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger_id = args.get("trigger_id")
        if not isinstance(trigger_id, str) or not trigger_id or "view" not in args:
            raise _SlackError("invalid_arguments")
        with self._lock:
            trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise _SlackError("invalid_trigger_id")
        issued, user_id, exchanged = trigger
        if exchanged:
            raise _SlackError("exchanged_trigger_id")
        if time.monotonic() - issued > self._trigger_ttl:
            raise _SlackError("expired_trigger_id")
        try:
            view = _json_arg(args["view"])
        except ValueError:
            raise _SlackError("invalid_arguments") from None
        problems = _view_problems(view)
        if problems:
            raise _problems_error("invalid_arguments", problems)
        view_id = _slack_id("V0")
        stored = {
            "id": view_id,
            "team_id": _TEAM_ID,
            "type": "modal",
            "title": view["title"],
            "blocks": _fill_ids(view.get("blocks", [])),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "root_view_id": view_id,
            "previous_view_id": None,
            "app_id": _APP_ID,
            "app_installed_team_id": _TEAM_ID,
            "bot_id": _BOT_ID,
        }
        record = View(view_id, user_id, view.get("callback_id"), view.get("private_metadata"), stored)
        with self._lock:
            self._triggers[trigger_id] = (issued, user_id, True)
            self._views[view_id] = record
        return {"view": copy.deepcopy(stored)}

    # -- interactions (on the server's loop) ---------------------------------------------------

    def _issue_trigger(self, user_id: str) -> str:
        trigger_id = f"{next(self._trigger_counter)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"
        with self._lock:
            self._triggers[trigger_id] = (time.monotonic(), user_id, False)
        return trigger_id

    def _clicker(self, user_id: str) -> dict[str, str]:
        user = self._users.get(user_id)
        if user is None:
            raise ValueError(f"{user_id} is not a user of the stand-in's workspace")
        return {"id": user.id, "username": user.name, "name": user.name, "team_id": _TEAM_ID}

    async def _click(self, user_id: str, channel: str, ts: str, action_id: str) -> tuple[int, str]:
        clicker = self._clicker(user_id)
        with self._lock:
            message = next((m for m in self._messages if m.channel == channel and m.ts == ts), None)
            if message is None:
                raise ValueError(f"no message {ts} in {channel}")
            found = _button(message.blocks, action_id)
            if found is None:
                raise ValueError(
                    f"message {ts} in {channel}, as it stands after {message.updates} update(s), "
                    f"has no button {action_id!r}"
                )
            message_json = copy.deepcopy(self._message_json(message))
        block_id, button = found
        action: dict[str, Any] = {
            "action_id": action_id,
            "block_id": block_id,
            "text": button["text"],
            "type": "button",
            "action_ts": f"{time.time():.6f}",
        }
        for key in ("value", "style"):
            if key in button:
                action[key] = button[key]
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": clicker,
            "api_app_id": _APP_ID,
            "token": self._verification_token,
            "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
            "trigger_id": self._issue_trigger(user_id),
            "team": {"id": _TEAM_ID, "domain": _TEAM_DOMAIN},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": self._channels.get(channel, "directmessage")},
            "message": message_json,
            "state": {"values": {}},
            "response_url": f"{self._server.url}/_standin/response/{secrets.token_hex(12)}",
            "actions": [action],
        }
        return await self._send_payload(payload)

    async def _submit_view(
        self, user_id: str, view_id: str, values: Mapping[str, Mapping[str, str]]
    ) -> tuple[int, str]:
        clicker = self._clicker(user_id)
        with self._lock:
            record = self._views.get(view_id)
            if record is None:
                raise ValueError(f"no modal {view_id} was opened")
            if record.user != user_id:
                raise ValueError(f"modal {view_id} was opened for {record.user}, not {user_id}")
            if record.closed:
                raise ValueError(f"modal {view_id} has been closed")
            view = copy.deepcopy(record.view)
        view["state"] = {"values": _state_values(view["blocks"], values)}
        payload: dict[str, Any] = {
            "type": "view_submission",
            "team": {"id": _TEAM_ID, "domain": _TEAM_DOMAIN},
            "user": clicker,
            "api_app_id": _APP_ID,
            "token": self._verification_token,
            "trigger_id": self._issue_trigger(user_id),
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        status, body = await self._send_payload(payload)
        if status == 200 and not _keeps_modal_open(body):
            with self._lock:
                self._views[view_id].closed = True
        return status, body

    async def _send_payload(self, payload: Mapping[str, Any]) -> tuple[int, str]:
        body = urllib.parse.urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            **self.sign(body),
        }
        return await self._send(body, headers)

    async def _send(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        url = self.interactions_url
        if url is None:
            raise RuntimeError("set interactions_url (the operator's interactivity endpoint) first")
        if self._session is None:
            raise RuntimeError("the stand-in is not running")
        self._last_request = (body, dict(headers))
        timeout = aiohttp.ClientTimeout(total=self._interaction_timeout)
        try:
            async with self._session.post(url, data=body, headers=dict(headers), timeout=timeout) as response:
                return response.status, await response.text()
        except TimeoutError:
            raise TimeoutError(f"{url} did not answer within {self._interaction_timeout} s") from None
        except aiohttp.ClientConnectionError as error:
            raise ConnectionError(f"{url} could not be reached: {error}") from error

    # -- control endpoints for the CLI ---------------------------------------------------------

    async def _control_messages(self, request: web.Request) -> web.Response:
        messages = self.messages(request.query.get("channel"))
        return web.json_response(
            [{"channel": m.channel, "ts": m.ts, "versions": m.versions, "updates": m.updates} for m in messages]
        )

    async def _control_click(self, request: web.Request) -> web.Response:
        ask = await request.json()
        try:
            message, _ = self.find_button(ask["request"], ask["action_id"])
            before = self._seen()
            status, body = await self._click(ask["user"], message.channel, message.ts, ask["action_id"])
        except (LookupError, ValueError, RuntimeError, OSError) as error:  # OSError: unreachable, timed out
            return web.json_response({"error": str(error)}, status=404)
        shown = await self._shown_after(ask["user"], before) if status == 200 else {}
        return web.json_response({"status": status, "body": body, **shown})

    async def _control_submit(self, request: web.Request) -> web.Response:
        """The user's newest open modal, its one text input filled with ``text``, submitted."""
        ask = await request.json()
        with self._lock:
            views = [v for v in self._views.values() if v.user == ask["user"] and not v.closed]
        if not views:
            return web.json_response({"error": "no dialog is open for this user: click Deny first"}, status=404)
        view = views[-1]
        inputs = [b for b in view.view.get("blocks") or [] if b.get("type") == "input"]
        if len(inputs) != 1:
            return web.json_response({"error": f"the dialog has {len(inputs)} inputs; the CLI fills one"}, status=404)
        values = {inputs[0]["block_id"]: {inputs[0]["element"].get("action_id"): ask["text"]}}
        before = self._seen()
        try:
            status, body = await self._submit_view(ask["user"], view.id, values)
        except (ValueError, RuntimeError, OSError) as error:
            return web.json_response({"error": str(error)}, status=404)
        shown = await self._shown_after(ask["user"], before) if status == 200 else {}
        return web.json_response({"status": status, "body": body, **shown})

    def _seen(self) -> tuple[int, frozenset[str], dict[tuple[str, str], int]]:
        """What has been shown so far: ephemerals, modals, and each message's versions."""
        with self._lock:
            versions = {(m.channel, m.ts): len(m.versions) for m in self._messages}
            return len(self._ephemerals), frozenset(self._views), versions

    async def _shown_after(
        self, user_id: str, before: tuple[int, frozenset[str], dict[tuple[str, str], int]], timeout: float = 5.0
    ) -> dict[str, Any]:
        """What Slack showed ``user_id`` after an interaction the endpoint acknowledged at once and then
        acted on: messages only they see (a refusal, say), a modal opened for them (the Deny dialog),
        or a message updated. Waits for the first of these, then a moment for the rest."""
        ephemerals, views, versions = before
        deadline, settle = time.monotonic() + timeout, None
        said: list[str] = []
        opened: list[View] = []
        updated = False
        while time.monotonic() < (settle or deadline):
            with self._lock:
                said = [e.text or "" for e in self._ephemerals[ephemerals:] if e.user == user_id]
                opened = [v for k, v in self._views.items() if k not in views and v.user == user_id]
                updated = any(len(m.versions) > versions.get((m.channel, m.ts), 1) for m in self._messages)
            if (said or opened or updated) and settle is None:
                settle = time.monotonic() + 0.3
            await asyncio.sleep(0.05)
        dialog = {"title": opened[-1].view.get("title", {}).get("text"), "id": opened[-1].id} if opened else None
        return {"ephemerals": said, "dialog": dialog, "updated": updated}


def _view_problems(view: Any) -> list[str]:
    """What Slack would refuse in a modal given to ``views.open``, each with its JSON pointer."""
    checker = _BlockChecker()
    if not isinstance(view, dict):
        checker.fail("/view", "must be an object")
        return checker.problems
    if view.get("type") != "modal":
        checker.fail("/view/type", "must be modal")
    checker.text(view.get("title"), "/view/title", _MAX_MODAL_TITLE, plain=True)
    blocks = view.get("blocks")
    checker.blocks(blocks, "/view/blocks", limit=_MAX_MODAL_BLOCKS, types=_MODAL_BLOCK_TYPES)
    has_input = isinstance(blocks, list) and any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
    if has_input or "submit" in view:
        checker.text(view.get("submit"), "/view/submit", _MAX_MODAL_TITLE, plain=True)
    if "close" in view:
        checker.text(view["close"], "/view/close", _MAX_MODAL_TITLE, plain=True)
    for key, limit in (("callback_id", _MAX_ID), ("external_id", _MAX_ID), ("private_metadata", _MAX_PRIVATE_METADATA)):
        value = view.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            checker.fail(f"/view/{key}", f"must be a string of at most {limit} characters")
    return checker.problems


def _state_values(blocks: Sequence[Mapping[str, Any]], values: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """A view_submission's ``state.values``: every input of the modal, with what was typed or null."""
    state: dict[str, Any] = {}
    inputs = {(b["block_id"], b["element"].get("action_id")): b for b in blocks if b.get("type") == "input"}
    for block_id, typed in values.items():
        for action_id in typed:
            if (block_id, action_id) not in inputs:
                raise ValueError(f"the modal has no input {block_id}/{action_id}")
    for (block_id, action_id), block in inputs.items():
        element = block["element"]
        if element.get("type") != "plain_text_input":
            raise ValueError(f"the stand-in submits plain_text_input only, not {element.get('type')}")
        value = values.get(block_id, {}).get(action_id) or None
        if value is None and not block.get("optional", False):
            raise ValueError(f"input {block_id}/{action_id} is required")
        if value is not None and len(value) > element.get("max_length", _MAX_INPUT_LENGTH):
            raise ValueError(f"input {block_id}/{action_id} takes at most {element.get('max_length')} characters")
        state.setdefault(block_id, {})[action_id] = {"type": "plain_text_input", "value": value}
    return state


def _keeps_modal_open(body: str) -> bool:
    """Whether an answer to a view_submission keeps the modal open (errors shown, view updated or pushed)."""
    try:
        answer = json.loads(body) if body.strip() else {}
    except ValueError:
        return True  # Slack shows "We had some trouble connecting" and leaves the modal open
    return isinstance(answer, dict) and answer.get("response_action") in ("errors", "update", "push")


# -- the CLI -----------------------------------------------------------------------------------


def _request(url: str, body: Mapping[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    # The stand-in is on loopback: a proxy from the environment must never see these requests.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=60) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


def _print_messages(messages: Sequence[Mapping[str, Any]]) -> None:
    for message in messages:
        text, blocks = message["versions"][-1]
        updated = f", updated {message['updates']} time(s)" if message["updates"] else ""
        print(f"{message['channel']} {message['ts']}{updated}")
        if text:
            print(f"  text: {text}")
        for block in blocks or ():
            for element in _elements(block):
                if element.get("type") == "button":
                    print(f"  button {element['action_id']}: {element['text']['text']} (value {element.get('value')})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devenv.slack", description="Act as a Slack user against a running Slack stand-in."
    )
    parser.add_argument("--state", default=os.environ.get(STATE_ENV), help=f"the stand-in's state file (${STATE_ENV})")
    commands = parser.add_subparsers(dest="command", required=True)
    click = commands.add_parser("click", help="click a request's Approve or Deny button in Slack")
    click.add_argument("--as", dest="email", required=True, help="the clicking Slack user's email")
    click.add_argument("action", choices=("approve", "deny"))
    click.add_argument("request", help="the AccessRequest's name (the button's value is NAME/UID)")
    submit = commands.add_parser("submit", help="type a reason into the dialog Deny opened, and submit it")
    submit.add_argument("--as", dest="email", required=True, help="the Slack user whose dialog it is")
    submit.add_argument("--reason", required=True, help="what to type into the dialog")
    listing = commands.add_parser("messages", help="the messages the bot posted, with their buttons")
    listing.add_argument("--channel", help="only this channel (or the DM with this user id)")
    args = parser.parse_args(argv)
    if not args.state:
        parser.error(f"name the stand-in's state file with --state or ${STATE_ENV}")
    state = json.loads(Path(args.state).read_text())
    try:
        return _command(args, state)
    except urllib.error.URLError as error:
        print(
            f"the stand-in at {state['api_url']} (from {args.state}) cannot be reached: {error.reason}", file=sys.stderr
        )
        return 1


def _command(args: argparse.Namespace, state: Mapping[str, Any]) -> int:
    control = state["control_url"]

    if args.command == "messages":
        query = f"?{urllib.parse.urlencode({'channel': args.channel})}" if args.channel else ""
        _print_messages(_request(f"{control}messages{query}"))
        return 0

    users = {u["email"].casefold(): u["id"] for u in state["users"]}
    user_id = users.get(args.email.casefold())
    if user_id is None:
        print(f"{args.email} is not a Slack user of the stand-in (known: {', '.join(sorted(users))})", file=sys.stderr)
        return 2
    if args.command == "submit":
        did = "submitted the dialog"
        answer = _request(f"{control}submit", {"user": user_id, "text": args.reason})
    else:
        did = f"clicked {args.action} on {args.request}"
        answer = _request(f"{control}click", {"user": user_id, "request": args.request, "action_id": args.action})
    if "error" in answer:
        print(f"cannot do that as {args.email}: {answer['error']}", file=sys.stderr)
        return 1
    if answer["status"] != 200:
        print(f"the interactivity endpoint refused: HTTP {answer['status']} {answer['body']}", file=sys.stderr)
        return 1
    print(f"{did} as {args.email} ({user_id}): HTTP 200 {answer['body']}".rstrip())
    return _print_shown(answer, args.email)


def _print_shown(answer: Mapping[str, Any], email: str) -> int:
    """What Slack showed the user afterwards (a refusal is shown to the clicker alone); 1 when a
    dialog's submission was refused (Slack keeps it open with the error under the input)."""
    for text in answer.get("ephemerals") or ():
        print(f"  shown only to {email}: {text}")
    if answer.get("dialog"):
        print(
            f"  a dialog opened: {answer['dialog']['title']}; fill it in with: slack submit --as {email} --reason TEXT"
        )
    if answer.get("updated"):
        print("  the message was updated (`slack messages` shows it)")
    if not (answer.get("ephemerals") or answer.get("dialog") or answer.get("updated")):
        print("  nothing else was shown within 5 s")
    try:
        body = json.loads(answer.get("body") or "{}")
    except ValueError:
        return 0
    return 1 if isinstance(body, dict) and body.get("response_action") == "errors" else 0


if __name__ == "__main__":
    sys.exit(main())

"""The Slack Web API, as the notifications and the interactivity endpoint use it (slack_sdk's
AsyncWebClient on aiohttp).

What it is for: post the approvers' Block Kit message and update it when the request is decided,
message requesters (a user id as channel posts in the app's direct messages with that user), answer
a click with an ephemeral message, open the deny-reason modal, and map between Kubernetes usernames
(emails) and Slack user ids.

Slack methods and the bot token scopes they need:
- chat.postMessage, chat.update, chat.postEphemeral: `chat:write`;
- users.lookupByEmail, and users.info's `profile.email`: `users:read` and `users:read.email`;
- views.open: no scope of its own (the click's short-lived trigger_id authorizes it).

Every failure is one of two exceptions. `SlackRetry` (HTTP 429 with Slack's Retry-After, 5xx,
Slack's own transient errors, timeouts, broken connections): try again after `after` seconds at
the earliest. `SlackRefused` (any other `ok: false`, or a 4xx with no Slack answer): Slack said no for good (channel_not_found,
not_in_channel, invalid_auth, invalid_blocks, expired_trigger_id, ...); the same call would fail the
same way. One call is one HTTP request: slack_sdk's retry handlers are off (`retry_handlers=[]`): its
default one pauses and tries again inside the call after a broken connection, its rate-limit one
sleeps out Retry-After there. The delivery worker owns retries and backoff, and one message waiting
out a rate limit or an outage must never hold up the others.

The token is a bearer credential: it is never logged, never part of an exception message, and
sent only over HTTPS (or to a loopback stand-in, see `require_https`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from jitaccess.adapters.eventsink import require_https, retry_after
from jitaccess.errors import ForeignUser

# A message's top-level text (its notification, and the fallback of its blocks), and an ephemeral
# message's, is shown as written (attack 135): `parse=none` links no bare URL, and no `link_names`
# parses no `@channel` or `#name` in it. Every chat.* call here sends these. Its words are escaped
# (domain/slackmessages.py `escape`), so it holds no `<...>` either.
LITERAL_TEXT: dict[str, Any] = {"parse": "none", "link_names": False}

#: Seconds to wait before trying again when Slack gave no Retry-After; the caller's backoff grows it.
DEFAULT_RETRY_AFTER = 1.0

# Slack's documented "try again later" errors; every other `ok: false` error is about the request,
# the token or the workspace, and the same request would be refused again.
_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org"}
)
# What users.lookupByEmail and users.info answer for someone Slack does not know.
_UNKNOWN_USER = frozenset({"users_not_found", "user_not_found"})

# Why cache user lookups: every approvers' message mentions each approver by Slack user id and
# every click maps the Slack user back to a username, while users.lookupByEmail and users.info are
# rate limited per workspace (tiers 3 and 4); a burst of requests or clicks must not spend the
# rate limit that chat.postMessage needs. An hour bounds how long a changed Slack profile email
# keeps mapping to the old username. Unknown answers are kept 5 minutes only, so a person who joins
# Slack is found soon. The bound keeps memory flat whatever the number of emails and users seen.
POSITIVE_TTL = 3600.0
NEGATIVE_TTL = 300.0
CACHE_SIZE = 10_000


class SlackRetry(Exception):
    """Slack did not answer this time (429, 5xx, timeout, network): try again `after` seconds from now."""

    def __init__(self, after: float, message: str) -> None:
        super().__init__(message)
        self.after = after


class SlackRefused(Exception):
    """Slack refused the call for good; `error` is Slack's error code (e.g. channel_not_found)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


class _Entry(NamedTuple):
    expires: float
    value: str | None


class _Cache:
    """A bounded map with a time to live per entry; the least recently used entry goes first."""

    def __init__(self, size: int, clock: Callable[[], float]) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._size = size
        self._clock = clock

    def get(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, value: str | None) -> None:
        ttl = POSITIVE_TTL if value is not None else NEGATIVE_TTL
        self._entries[key] = _Entry(self._clock() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


class Slack:
    """One workspace, through one bot token. Create it anywhere; it connects on its first call."""

    def __init__(
        self,
        token: str,
        api_url: str = "https://slack.com/api/",
        *,
        timeout: float = 10,
        clock: Callable[[], float] = time.monotonic,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        require_https(api_url, "JITACCESS_SLACK_API_URL")
        self._timeout = timeout
        self._client = AsyncWebClient(token=token, base_url=api_url, retry_handlers=[])
        self._emails = _Cache(cache_size, clock)
        self._user_ids = _Cache(cache_size, clock)
        self._workspace: tuple[str, str] | None = None  # (team id, enterprise id) of the bot's install

    async def post(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> tuple[str, str]:
        """Post a message; returns (channel id, ts), what `update` needs (a DM's channel id starts with D)."""
        response = await self._call(
            "chat.postMessage",
            self._web().chat_postMessage(channel=channel, text=text, blocks=blocks, **LITERAL_TEXT),
        )
        return str(response["channel"]), str(response["ts"])

    async def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        await self._call(
            "chat.update", self._web().chat_update(channel=channel, ts=ts, text=text, blocks=blocks, **LITERAL_TEXT)
        )

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        """A message only `user` sees, in `channel` (they must be a member of it)."""
        await self._call(
            "chat.postEphemeral", self._web().chat_postEphemeral(channel=channel, user=user, text=text, **LITERAL_TEXT)
        )

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        """Open a modal; `trigger_id` comes from a click and is good for 3 seconds, once."""
        await self._call("views.open", self._web().views_open(trigger_id=trigger_id, view=view))

    async def user_id_by_email(self, email: str) -> str | None:
        """The Slack user id whose profile email is `email`; None when Slack knows no such user."""
        cached = self._user_ids.get(email)
        if cached is not None:
            return cached.value
        try:
            response = await self._call("users.lookupByEmail", self._web().users_lookupByEmail(email=email))
        except SlackRefused as exc:
            if exc.error not in _UNKNOWN_USER:
                raise
            user_id = None
        else:
            user_id = str(response["user"]["id"])
        self._user_ids.put(email, user_id)
        return user_id

    async def email_of(self, user_id: str) -> str | None:
        """The profile email of a Slack user of the bot's own workspace (or Enterprise Grid
        organization); None when Slack knows no such user or it has no email (a bot). `ForeignUser`
        for anyone else: a profile email set by another company is no identity here."""
        cached = self._emails.get(user_id)
        if cached is not None:
            return cached.value
        try:
            response = await self._call("users.info", self._web().users_info(user=user_id))
        except SlackRefused as exc:
            if exc.error not in _UNKNOWN_USER:
                raise
            email = None
        else:
            user = response["user"]
            team, enterprise = await self._own_workspace()
            theirs = str(user.get("team_id") or "")
            their_enterprise = str((user.get("enterprise_user") or {}).get("enterprise_id") or "")
            if theirs != team and not (enterprise and their_enterprise == enterprise):
                raise ForeignUser(f"Slack user {user_id} belongs to workspace {theirs or 'unknown'}, not {team}")
            email = user.get("profile", {}).get("email") or None
        self._emails.put(user_id, email)
        return email

    async def _own_workspace(self) -> tuple[str, str]:
        """(team id, enterprise id) of the bot's install, asked once (`auth.test`)."""
        if self._workspace is None:
            response = await self._call("auth.test", self._web().auth_test())
            self._workspace = (str(response.get("team_id") or ""), str(response.get("enterprise_id") or ""))
        return self._workspace

    async def close(self) -> None:
        session, self._client.session = self._client.session, None
        if session is not None:
            await session.close()

    def _web(self) -> AsyncWebClient:
        # One aiohttp session for every call (kept-alive connections to Slack); aiohttp creates it
        # only inside a running event loop, hence here and not in __init__. slack_sdk only opens
        # a session of its own per request when it has none.
        if self._client.session is None or self._client.session.closed:
            self._client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        return self._client

    @staticmethod
    async def _call(method: str, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
        try:
            return await call
        except SlackApiError as exc:
            raise _failure(method, exc.response) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SlackRetry(DEFAULT_RETRY_AFTER, f"{method}: {type(exc).__name__}: {exc}") from exc


def _failure(method: str, response: Any) -> SlackRetry | SlackRefused:
    """What Slack's answer means. `response` is slack_sdk's response, or aiohttp's for a body that
    was no JSON. It is not chained to the exception: slack_sdk's keeps the request, token included."""
    if isinstance(response, AsyncSlackResponse):
        status, data = response.status_code, response.data
    else:
        status, data = int(response.status), None
    error = str(data.get("error") or "") if isinstance(data, dict) else ""
    if status == 429:
        after = retry_after(response.headers.get("Retry-After"), DEFAULT_RETRY_AFTER)
        return SlackRetry(after, f"{method}: rate limited, retry after {after:g} s")
    if error and status < 500 and error not in _TRANSIENT_ERRORS:
        return SlackRefused(error, f"{method}: {error}")
    if not error and 400 <= status < 500:
        # No Slack answer at all (a wrong JITACCESS_SLACK_API_URL, a proxy refusing): no retry mends it.
        return SlackRefused(f"http_{status}", f"{method}: HTTP {status}")
    # 5xx, Slack's transient errors, or no Slack answer at all (a proxy's or portal's page).
    return SlackRetry(DEFAULT_RETRY_AFTER, f"{method}: HTTP {status} {error}".rstrip())

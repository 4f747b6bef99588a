"""The generic webhook sink: each lifecycle step of requests, grants and entitlements, POSTed as one
CloudEvents 1.0 event in structured content mode (`application/cloudevents+json`, built with the
`cloudevents` package), for whatever a site wants to feed (a SIEM, a chat bridge, a ticket system).

Each body is signed: `X-Jitaccess-Signature: sha256=<hex>` is the HMAC-SHA256 of the exact body
bytes with the sink secret. A receiver recomputes it over the raw body before parsing, compares in
constant time, and deduplicates by the event id (`<uid>/<action>`, the same on every retry:
delivery is at-least-once).

Outcomes of `send`: a 2xx answer is done. 408, 429, 5xx, a timeout or a broken connection is
`SinkRetry` (try again `after` seconds from now at the earliest: the sink's Retry-After, else a
short default the caller backs off from). Any other answer is `SinkRefused`: a 4xx, and a 3xx too,
as redirects are not followed (following one would send the signed events somewhere
JITACCESS_EVENT_SINK_URL does not name). One call is one HTTP request; the caller owns retries.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cloudevents.core.bindings.http import to_structured_event
from cloudevents.core.v1.event import CloudEvent

SIGNATURE_HEADER = "X-Jitaccess-Signature"
#: Seconds to wait before trying again when the sink gave no Retry-After; the caller's backoff grows it.
DEFAULT_RETRY_AFTER = 1.0
# A Retry-After beyond this is taken as this: a misbehaving server must not park a notice for days.
_MAX_RETRY_AFTER = 3600.0
_RETRY_STATUSES = frozenset({408, 429})
# How much of a refusing answer's body goes into the exception message.
_SNIPPET = 200


class SinkRetry(Exception):
    """The sink did not take the event this time (408, 429, 5xx, timeout, network): try again `after` seconds from now."""

    def __init__(self, after: float, message: str) -> None:
        super().__init__(message)
        self.after = after


class SinkRefused(Exception):
    """The sink refused the event for good (`status`: a 4xx other than 408/429, or a redirect)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def require_https(url: str, setting: str) -> None:
    """Refuse a URL that is not https://, except plain http to a loopback address (a local stand-in).

    The events say who has access to what and who approved it, and a Slack token is a bearer
    credential (whoever reads it acts as the bot). The sink's HMAC authenticates the sender, not the
    channel: over plain http anyone on the path reads every event, and every token."""
    parts = urlsplit(url)
    if parts.hostname and (parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname))):
        return
    # Only scheme and host in the message: the rest of a webhook URL is often a secret of its own.
    raise ValueError(
        f"{setting} must be an https:// URL (plain http only to a loopback address); "
        f"it has scheme {parts.scheme!r} and host {parts.hostname!r}"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def retry_after(value: str | None, default: float) -> float:
    """Seconds from now that a Retry-After header asks for (a number of seconds, or an HTTP date)."""
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds):
        return default
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


class EventSink:
    """One webhook URL and its secret. Create it anywhere; it connects on its first `send`."""

    def __init__(self, url: str, secret: str, *, timeout: float = 10) -> None:
        require_https(url, "JITACCESS_EVENT_SINK_URL")
        if not secret:
            raise ValueError("JITACCESS_EVENT_SINK_SECRET is empty: every event is signed with it")
        self._url = url
        self._key = secret.encode()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        parts = urlsplit(url)
        self._where = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    async def send(self, *, type: str, id: str, source: str, subject: str, time: str, data: dict[str, Any]) -> None:
        """Deliver one event; `time` is RFC 3339 with a zone, `data` the audit record."""
        attributes: dict[str, Any] = {
            "specversion": "1.0",
            "type": type,
            "id": id,
            "source": source,
            "subject": subject,
            "time": datetime.fromisoformat(time),
            "datacontenttype": "application/json",
        }
        message = to_structured_event(CloudEvent(attributes, data))
        signature = hmac.new(self._key, message.body, hashlib.sha256).hexdigest()
        headers = {**message.headers, SIGNATURE_HEADER: f"sha256={signature}"}
        try:
            async with self._connect().post(
                self._url, data=message.body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    return
                wait = retry_after(response.headers.get("Retry-After"), DEFAULT_RETRY_AFTER)
                body = (await response.content.read(_SNIPPET)).decode(errors="replace")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SinkRetry(DEFAULT_RETRY_AFTER, f"{self._where}: {exc.__class__.__name__}: {exc}") from exc
        snippet = " ".join(body.split())
        answer = f"{self._where} answered {status} to {id}" + (f": {snippet}" if snippet else "")
        if status in _RETRY_STATUSES or status >= 500:
            raise SinkRetry(wait, answer)
        raise SinkRefused(status, answer)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _connect(self) -> aiohttp.ClientSession:
        # One session for every event (kept-alive connections); aiohttp creates it only inside a
        # running event loop, hence here and not in __init__.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

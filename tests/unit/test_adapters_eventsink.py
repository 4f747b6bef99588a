"""The CloudEvents sink against a scripted receiver served in-process: the structured body parses back
with cloudevents, its signature is the HMAC of the exact bytes, every kind of answer maps to done,
SinkRetry or SinkRefused, one connection serves many events, and the https rule."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat

from jitaccess.adapters.eventsink import DEFAULT_RETRY_AFTER, EventSink, SinkRefused, SinkRetry, retry_after

SECRET = "sink-secret-for-unit-tests"
RECORD = {
    "schema": "jitaccess.dev/audit/v1",
    "id": "6f1c9a52-0000-4000-8000-000000000001/approved",
    "action": "approved",
    "actor": "lena@example.com",
    "subject": "alice@example.com",
    "reason": "INC-4711 ledger replay",
}
EVENT: dict[str, Any] = {
    "type": "dev.jitaccess.request.approved",
    "id": RECORD["id"],
    "source": "/apis/jitaccess.dev/v1alpha1/accessrequests/alice-ledger-1",
    "subject": "alice-ledger-1",
    "time": "2026-11-30T10:15:00Z",
    "data": RECORD,
}


@dataclass
class Reply:
    status: int = 204
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    disconnect: bool = False


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int]


class FakeSink:
    """Answers each POST with the replies scripted, in order, then 204."""

    def __init__(self) -> None:
        self.base = ""
        self.received: list[Received] = []
        self.replies: list[Reply] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peer = request.transport.get_extra_info("peername")
        self.received.append(Received(request.path, dict(request.headers), await request.read(), peer))
        reply = self.replies.pop(0) if self.replies else Reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.disconnect:
            request.transport.close()
        return web.Response(status=reply.status, text=reply.text, headers=reply.headers)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSink]:
    fake = FakeSink()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", fake.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        fake.base = str(server.make_url("/"))
        yield fake


@pytest.fixture
async def sink(fake: FakeSink) -> AsyncIterator[EventSink]:
    sink = EventSink(fake.base + "events", SECRET, timeout=2)
    yield sink
    await sink.close()


# --- the event on the wire


async def test_the_body_is_a_structured_cloudevent_that_parses_back(fake: FakeSink, sink: EventSink) -> None:
    await sink.send(**EVENT)

    [received] = fake.received
    assert received.path == "/events"
    assert received.headers["Content-Type"] == "application/cloudevents+json"
    event = from_http(HTTPMessage(received.headers, received.body), JSONFormat())
    assert event.get_specversion() == "1.0"
    assert event.get_type() == "dev.jitaccess.request.approved"
    assert event.get_id() == RECORD["id"]
    assert event.get_source() == "/apis/jitaccess.dev/v1alpha1/accessrequests/alice-ledger-1"
    assert event.get_subject() == "alice-ledger-1"
    assert event.get_time() == datetime(2026, 11, 30, 10, 15, tzinfo=UTC)
    assert event.get_datacontenttype() == "application/json"
    assert event.get_data() == RECORD


async def test_the_signature_is_the_hmac_sha256_of_the_exact_body(fake: FakeSink, sink: EventSink) -> None:
    await sink.send(**EVENT)
    await sink.send(**(EVENT | {"id": "other/denied", "type": "dev.jitaccess.request.denied"}))

    for received in fake.received:
        expected = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(received.headers["X-Jitaccess-Signature"], expected)
    first, second = fake.received
    assert first.headers["X-Jitaccess-Signature"] != second.headers["X-Jitaccess-Signature"]


async def test_sending_the_same_event_again_sends_the_same_bytes(fake: FakeSink, sink: EventSink) -> None:
    # At-least-once: a retried event must be recognisable as the same one (id, body, signature).
    await sink.send(**EVENT)
    await sink.send(**EVENT)

    first, second = fake.received
    assert first.body == second.body
    assert first.headers["X-Jitaccess-Signature"] == second.headers["X-Jitaccess-Signature"]


async def test_events_share_one_kept_alive_connection(fake: FakeSink, sink: EventSink) -> None:
    for _ in range(3):
        await sink.send(**EVENT)

    assert len({received.peer for received in fake.received}) == 1


# --- answers


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_a_2xx_is_done(fake: FakeSink, sink: EventSink, status: int) -> None:
    fake.replies.append(Reply(status=status))

    await sink.send(**EVENT)

    assert len(fake.received) == 1


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_408_429_and_5xx_are_retry_after_the_sinks_retry_after(
    fake: FakeSink, sink: EventSink, status: int
) -> None:
    fake.replies.append(Reply(status=status, text="busy", headers={"Retry-After": "12"}))

    with pytest.raises(SinkRetry) as caught:
        await sink.send(**EVENT)

    assert caught.value.after == 12
    assert str(status) in str(caught.value)
    assert len(fake.received) == 1


async def test_retry_without_retry_after_is_the_default(fake: FakeSink, sink: EventSink) -> None:
    fake.replies.append(Reply(status=503))

    with pytest.raises(SinkRetry) as caught:
        await sink.send(**EVENT)

    assert caught.value.after == DEFAULT_RETRY_AFTER


async def test_retry_after_as_an_http_date(fake: FakeSink, sink: EventSink) -> None:
    when = datetime.now(UTC) + timedelta(seconds=90)
    fake.replies.append(Reply(status=429, headers={"Retry-After": format_datetime(when, usegmt=True)}))

    with pytest.raises(SinkRetry) as caught:
        await sink.send(**EVENT)

    assert 80 <= caught.value.after <= 90


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
async def test_other_4xx_are_refused(fake: FakeSink, sink: EventSink, status: int) -> None:
    fake.replies.append(Reply(status=status, text="signature\nmismatch " + "x" * 1000))

    with pytest.raises(SinkRefused) as caught:
        await sink.send(**EVENT)

    assert caught.value.status == status
    message = str(caught.value)
    assert f"answered {status} to {RECORD['id']}: signature mismatch" in message
    assert len(message) < 400
    assert SECRET not in message


async def test_a_redirect_is_refused_and_not_followed(fake: FakeSink, sink: EventSink) -> None:
    fake.replies.append(Reply(status=307, headers={"Location": fake.base + "elsewhere"}))

    with pytest.raises(SinkRefused) as caught:
        await sink.send(**EVENT)

    assert caught.value.status == 307
    assert [received.path for received in fake.received] == ["/events"]


async def test_a_timeout_is_retry(fake: FakeSink) -> None:
    fake.replies.append(Reply(delay=2))
    sink = EventSink(fake.base + "events", SECRET, timeout=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(SinkRetry) as caught:
            await sink.send(**EVENT)
        assert time.monotonic() - started < 1.5
        assert caught.value.after == DEFAULT_RETRY_AFTER
    finally:
        await sink.close()


async def test_a_dropped_connection_is_retry(fake: FakeSink, sink: EventSink) -> None:
    fake.replies.append(Reply(disconnect=True))

    with pytest.raises(SinkRetry):
        await sink.send(**EVENT)

    await sink.send(**EVENT)  # and the next event gets a connection of its own
    assert len(fake.received) == 2


async def test_nobody_listening_is_retry() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sink = EventSink(f"http://127.0.0.1:{port}/events", SECRET)
    try:
        with pytest.raises(SinkRetry) as caught:
            await sink.send(**EVENT)
        assert caught.value.after == DEFAULT_RETRY_AFTER
    finally:
        await sink.close()


# --- settings


@pytest.mark.parametrize(
    "url",
    ["http://siem.example.com/hooks/t0ps3cr3t", "http://10.0.0.7:8080/hooks/t0ps3cr3t", "ftp://127.0.0.1/x", "events"],
)
def test_a_url_that_is_not_https_is_refused_unless_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="JITACCESS_EVENT_SINK_URL must be an https:// URL") as caught:
        EventSink(url, SECRET)

    assert "t0ps3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["https://siem.example.com/hooks/jit", "http://127.0.0.1:8080/events", "http://localhost/events", "http://[::1]/"],
)
def test_https_or_loopback_is_accepted(url: str) -> None:
    EventSink(url, SECRET)


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="JITACCESS_EVENT_SINK_SECRET"):
        EventSink("https://siem.example.com/hooks/jit", "")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, 5.0), ("", 5.0), ("7", 7.0), ("2.5", 2.5), ("-3", 0.0), ("99999999", 3600.0), ("nan", 5.0), ("soon", 5.0)],
)
def test_retry_after_values(value: str | None, seconds: float) -> None:
    assert retry_after(value, 5.0) == seconds


def test_retry_after_a_past_http_date_is_now() -> None:
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 5.0) == 0.0

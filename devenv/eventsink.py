"""A CloudEvents webhook receiver for tests and `make dev`: where the operator's lifecycle events land.

`EventSinkReceiver` serves ``POST /events`` on a loopback port (`url`) and takes what the
operator's event sink must send: one CloudEvent 1.0 in structured mode (``Content-Type:
application/cloudevents+json``), signed with ``X-Jitaccess-Signature: sha256=<hex HMAC-SHA256 of
the exact body with the shared secret>``. It answers as a strict receiver would:

* 202 Accepted, and the event is recorded (`events`), parsed by the ``cloudevents`` package;
* 401 when the signature is missing or wrong; 415 for any other content type (binary mode
  included); 400 for a body that is not a valid CloudEvent 1.0;
* 503 while `down`, 500 for the next requests `fail_next` names: the sender must retry.

Every refusal is recorded too (`refusals`), so a test can see the operator's retries::

    with EventSinkReceiver("s3cret") as sink:
        env.update(sink.env())           # JITACCESS_EVENT_SINK_URL / _SECRET for the operator
        ...
        sink.wait_for(lambda s: [e for e in s.events() if e.get_type() == "dev.jitaccess.request.approved"])

Events are recorded as delivered: at-least-once delivery may record one event id twice.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Self, TypeVar

from aiohttp import web
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat

from devenv.slack import LoopServer, poll

__all__ = ["SIGNATURE_HEADER", "EventSinkReceiver", "Refusal", "signature"]

T = TypeVar("T")

SIGNATURE_HEADER: Final = "X-Jitaccess-Signature"
_STRUCTURED: Final = "application/cloudevents+json"


def signature(secret: str, body: bytes) -> str:
    """The ``X-Jitaccess-Signature`` value of ``body``: ``sha256=`` and the hex HMAC-SHA256 with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Refusal:
    """A delivery the receiver did not accept: the HTTP status answered, why, and the body as sent."""

    status: int
    reason: str
    body: bytes


class EventSinkReceiver:
    """A strict CloudEvents webhook on a loopback port; see the module docstring."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._lock = threading.Lock()
        self._events: list[BaseCloudEvent] = []
        self._refusals: list[Refusal] = []
        self._down = False
        self._failures = 0
        app = web.Application()
        app.router.add_post("/events", self._receive)
        self._server = LoopServer(app, name="event-sink")

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
    def url(self) -> str:
        """Where to POST events."""
        return f"{self._server.url}/events"

    def env(self) -> dict[str, str]:
        """Operator settings that point its event sink here."""
        return {"JITACCESS_EVENT_SINK_URL": self.url, "JITACCESS_EVENT_SINK_SECRET": self.secret}

    def down(self, down: bool = True) -> None:
        """While down, every delivery is answered 503."""
        self._down = down

    def fail_next(self, count: int) -> None:
        """Answer the next ``count`` deliveries 500, whatever they carry."""
        with self._lock:
            self._failures = count

    def events(self) -> list[BaseCloudEvent]:
        """Accepted events, in the order they arrived."""
        with self._lock:
            return copy.deepcopy(self._events)

    def refusals(self) -> list[Refusal]:
        with self._lock:
            return list(self._refusals)

    def wait_for(self, predicate: Callable[[Self], T], timeout: float = 10.0) -> T:
        """The first truthy ``predicate(self)``, polled until ``timeout``."""
        return poll(lambda: predicate(self), timeout, "the event sink's recording")

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        status, reason = self._verdict(request, body)
        if status != 202:
            with self._lock:
                self._refusals.append(Refusal(status, reason, body))
        return web.Response(status=status, text=reason)

    def _verdict(self, request: web.Request, body: bytes) -> tuple[int, str]:
        if self._down:
            return 503, "the event sink is down"
        with self._lock:
            if self._failures:
                self._failures -= 1
                return 500, "injected failure"
        sent = request.headers.get(SIGNATURE_HEADER)
        if sent is None:
            return 401, f"no {SIGNATURE_HEADER} header"
        if not hmac.compare_digest(sent, signature(self.secret, body)):
            return 401, f"{SIGNATURE_HEADER} does not match the body"
        if request.content_type != _STRUCTURED:
            return 415, f"expected one event in structured mode ({_STRUCTURED}), got {request.content_type}"
        try:
            # Only the content type: ce- headers would make from_http read the body in binary mode.
            event = from_http(HTTPMessage(headers={"content-type": request.content_type}, body=body), JSONFormat())
        except (BaseCloudEventException, ValueError, TypeError, AttributeError) as error:
            return 400, f"not a CloudEvent: {error}"
        if event.get_specversion() != "1.0":
            return 400, f"specversion {event.get_specversion()}: only 1.0 is accepted"
        with self._lock:
            self._events.append(event)
        return 202, "accepted"

"""The CloudEvents receiver (devenv.eventsink): it accepts a signed structured CloudEvent built with
the cloudevents package and refuses, with the status a strict receiver answers, what is unsigned,
mis-signed, not structured or not a CloudEvent 1.0; down or failing, it answers 503 or 500.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from cloudevents.core.bindings.http import HTTPMessage, to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from devenv.eventsink import SIGNATURE_HEADER, EventSinkReceiver, signature

SECRET = "sink-secret-for-tests"
RECORD = {"id": "0b4c/approved", "action": "approved", "request": "ledger-read-x7k2p", "by": "lena@example.com"}


def _event(**attributes: Any) -> CloudEvent:
    return CloudEvent(
        attributes={
            "id": "0b4c/approved",
            "type": "dev.jitaccess.request.approved",
            "source": "/apis/jitaccess.dev/v1alpha1/accessrequests/ledger-read-x7k2p",
            "subject": "ledger-read-x7k2p",
            "datacontenttype": "application/json",
            **attributes,
        },
        data=dict(RECORD),
    )


def _post(url: str, message: HTTPMessage, headers: Mapping[str, str] = {}) -> int:
    request = urllib.request.Request(url, data=message.body, headers={**message.headers, **headers}, method="POST")
    # The receiver is on loopback: no proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def _signed(message: HTTPMessage, secret: str = SECRET) -> dict[str, str]:
    return {SIGNATURE_HEADER: signature(secret, message.body)}


@pytest.fixture
def sink() -> Iterator[EventSinkReceiver]:
    with EventSinkReceiver(SECRET) as sink:
        yield sink


def test_a_signed_structured_event_is_accepted_and_parsed(sink: EventSinkReceiver) -> None:
    env = sink.env()
    assert env["JITACCESS_EVENT_SINK_SECRET"] == SECRET
    message = to_structured(_event(), JSONFormat())
    assert message.headers["content-type"] == "application/cloudevents+json"
    assert _post(env["JITACCESS_EVENT_SINK_URL"], message, _signed(message)) == 202

    [event] = sink.wait_for(lambda s: s.events())
    assert event.get_id() == "0b4c/approved"
    assert event.get_type() == "dev.jitaccess.request.approved"
    assert event.get_source() == "/apis/jitaccess.dev/v1alpha1/accessrequests/ledger-read-x7k2p"
    assert event.get_subject() == "ledger-read-x7k2p"
    assert event.get_specversion() == "1.0"
    assert event.get_data() == RECORD
    assert not sink.refusals()


def test_a_missing_or_wrong_signature_is_refused_401(sink: EventSinkReceiver) -> None:
    message = to_structured(_event(), JSONFormat())
    assert _post(sink.url, message) == 401
    assert _post(sink.url, message, _signed(message, "another-secret")) == 401
    altered = HTTPMessage(message.headers, message.body.replace(b"lena@", b"mallory@"))
    assert _post(sink.url, altered, _signed(message)) == 401
    assert [(r.status, r.reason) for r in sink.refusals()] == [
        (401, f"no {SIGNATURE_HEADER} header"),
        (401, f"{SIGNATURE_HEADER} does not match the body"),
        (401, f"{SIGNATURE_HEADER} does not match the body"),
    ]
    assert sink.refusals()[2].body == altered.body
    assert not sink.events()


def test_only_a_structured_cloudevent_1_0_is_accepted(sink: EventSinkReceiver) -> None:
    binary = to_binary(_event(), JSONFormat())
    assert _post(sink.url, binary, _signed(binary)) == 415

    attributes = json.loads(to_structured(_event(), JSONFormat()).body)
    for broken in ({k: v for k, v in attributes.items() if k != "source"}, {**attributes, "specversion": "0.3"}):
        message = HTTPMessage({"content-type": "application/cloudevents+json"}, json.dumps(broken).encode())
        assert _post(sink.url, message, _signed(message)) == 400
    not_json = HTTPMessage({"content-type": "application/cloudevents+json"}, b"{")
    assert _post(sink.url, not_json, _signed(not_json)) == 400
    assert [r.status for r in sink.refusals()] == [415, 400, 400, 400]
    assert not sink.events()


def test_down_answers_503_and_failures_500_until_lifted(sink: EventSinkReceiver) -> None:
    message = to_structured(_event(), JSONFormat())
    sink.down(True)
    assert _post(sink.url, message, _signed(message)) == 503
    sink.down(False)
    sink.fail_next(2)
    assert [_post(sink.url, message, _signed(message)) for _ in range(3)] == [500, 500, 202]
    assert [r.status for r in sink.refusals()] == [503, 500, 500]
    # What was delivered again is recorded again: delivery is at least once.
    assert _post(sink.url, message, _signed(message)) == 202
    assert [e.get_id() for e in sink.events()] == ["0b4c/approved", "0b4c/approved"]

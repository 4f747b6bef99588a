"""The request handed from the request handler to its new grant's handler (`Runtime.handoffs`):
taken once, by the grant of that request, and only while as fresh as a read."""

from __future__ import annotations

import pytest

from jitaccess.handlers import runtime
from jitaccess.handlers.runtime import Handoffs

REQUEST = {"metadata": {"name": "r", "uid": "u-req", "resourceVersion": "7"}}


def test_a_handed_request_is_taken_once_by_its_grant() -> None:
    handoffs = Handoffs()
    handoffs.put("r", REQUEST)
    assert handoffs.take("other") is None
    assert handoffs.take("r") == REQUEST
    assert handoffs.take("r") is None  # a second look reads the API server


def test_a_handed_request_older_than_a_read_would_be_is_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    handoffs, clock = Handoffs(seconds=5.0), [100.0]
    monkeypatch.setattr(runtime.time, "monotonic", lambda: clock[0])
    handoffs.put("u-late", REQUEST)
    handoffs.put("u-swept", REQUEST)
    clock[0] += 5.5
    assert handoffs.take("u-late") is None
    handoffs.put("u-new", REQUEST)  # a put sweeps what nobody took in time
    assert handoffs._items.keys() == {"u-new"}


def test_a_handed_request_exactly_as_old_as_a_read_may_be_is_still_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    handoffs, clock = Handoffs(seconds=5.0), [100.0]
    monkeypatch.setattr(runtime.time, "monotonic", lambda: clock[0])
    handoffs.put("u-edge", REQUEST)
    clock[0] += 5.0
    handoffs.put("u-new", REQUEST)  # the sweep drops only what `take` would no longer give
    assert handoffs.take("u-edge") == REQUEST

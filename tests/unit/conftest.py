"""Fixtures more than one module of this tier uses: a settable clock for the grant handlers (the
modules that drive `jitaccess.handlers.grants` through time). test_adapters_slack has a `clock`
of its own, for Slack's cache, which pytest prefers there."""

from __future__ import annotations

import datetime as dt

import pytest

from jitaccess.handlers import grants

#: Where `clock` starts.
T0 = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """The grant handlers' now, at T0 until a test sets `clock[0]`; their Events go nowhere."""
    at = [T0]
    monkeypatch.setattr(grants, "now", lambda: at[0])
    monkeypatch.setattr(grants, "record", lambda *a, **k: None)  # no kopf Event poster here
    return at

"""What the operator's log says at ERROR: only what someone should look at; and how a JSON line tells its time."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime

import pytest

from jitaccess.logs import JsonFormatter, ProbeRetriesAreNotErrors


def record(message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("kopf.activities.probe", level, __file__, 1, message, None, None)


def test_a_probe_answering_not_yet_is_no_error() -> None:
    line = record("Activity 'webhooks' failed temporarily: the admission webhook server is not serving yet")
    assert ProbeRetriesAreNotErrors().filter(line)
    assert (line.levelno, line.levelname) == (logging.INFO, "INFO")


def test_a_probe_that_fails_for_good_stays_an_error() -> None:
    for message in ("Activity 'webhooks' failed permanently: gave up", "Activity 'webhooks' failed with an exception"):
        line = record(message)
        assert ProbeRetriesAreNotErrors().filter(line)
        assert line.levelno == logging.ERROR


def test_a_json_line_tells_its_time_in_utc_with_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 3339 with `Z`, whatever the zone of the node the operator runs on."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        line = record("granted", logging.INFO)
        line.created = datetime(2026, 12, 2, 2, 40, 13, 123999, tzinfo=UTC).timestamp()
        entry = json.loads(JsonFormatter().format(line))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert entry["time"] == "2026-12-02T02:40:13.123Z"  # truncated, as the seconds are
    assert (entry["level"], entry["message"]) == ("INFO", "granted")


def test_a_json_line_of_now_parses_as_rfc_3339() -> None:
    entry = json.loads(JsonFormatter().format(record("now", logging.INFO)))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    assert abs(datetime.fromisoformat(entry["time"]).timestamp() - time.time()) < 5

"""What the operator's log says at ERROR: only what someone should look at; and how a JSON line tells its time."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jitaccess.logs import EVENT_POSTING, Due, EventsAreAuxiliary, JsonFormatter, OncePer, ProbeRetriesAreNotErrors


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


def test_a_repeated_line_is_said_at_once_then_once_a_window_with_the_count_kept_quiet() -> None:
    now = [0.0]
    said = OncePer(60, clock=lambda: now[0])
    assert said.due("a") == Due(again=False, unsaid=0)
    for second in (1, 30, 59.9):
        now[0] = second
        assert said.due("a") is None
    assert said.due("b") == Due(again=False, unsaid=0), "each key has its own window"
    now[0] = 60.0
    assert said.due("a") == Due(again=True, unsaid=3)
    assert said.due("a") is None, "the window starts again when it is said"
    now[0] = 120.0
    assert said.due("a") == Due(again=True, unsaid=1)
    now[0] = 500.0
    assert said.due("a") == Due(again=True, unsaid=0), "a repeat however late, with nothing kept quiet"


def test_a_line_of_another_kind_is_said_at_once_and_counts_anew() -> None:
    now = [0.0]
    said = OncePer(60, clock=lambda: now[0])
    assert said.due(kind="refused") == Due(again=False, unsaid=0)
    now[0] = 10.0
    assert said.due(kind="refused") is None
    assert said.due(kind="unreachable") == Due(again=False, unsaid=0)
    assert said.due(kind="unreachable") is None
    assert said.due(kind="refused") == Due(again=False, unsaid=0), "back to the first kind: a beginning too"
    now[0] = 70.0
    assert said.due(kind="refused") == Due(again=True, unsaid=0)


def test_a_forgotten_key_is_said_at_once_as_new() -> None:
    now = [0.0]
    said = OncePer(60, clock=lambda: now[0])
    assert not said.forget("a")
    said.due("a")
    assert said.due("a") is None
    assert said.forget("a") and not said.forget("a")
    assert said.due("a") == Due(again=False, unsaid=0)


def test_the_keys_kept_are_bounded_by_forgetting_the_one_said_longest_ago() -> None:
    now = [0.0]
    said = OncePer(60, keys=3, clock=lambda: now[0])
    for key in ("a", "b", "c"):
        now[0] += 1
        said.due(key)
    now[0] += 1
    assert said.due("a") is None, "kept quiet in its place: still the one said longest ago"
    assert said.due("d") == Due(again=False, unsaid=0)
    assert said.due("a") == Due(again=False, unsaid=0), "forgotten for room: said again, never lost"
    assert said.due("c") is None and said.due("d") is None and said.due("a") is None


def test_lines_said_from_many_threads_are_each_counted_once() -> None:
    now = [0.0]
    said = OncePer(60, clock=lambda: now[0])
    answers: list[Due | None] = []
    lock = threading.Lock()

    def say() -> None:
        for _ in range(1000):
            answer = said.due("grant")
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=say) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a for a in answers if a is not None] == [Due(again=False, unsaid=0)]
    now[0] = 60.0
    assert said.due("grant") == Due(again=True, unsaid=7999)


POSTING_RETRY = (
    "Request attempt #1/9 failed; will retry: POST https://127.0.0.1:6443/api/v1/namespaces/default/events"
    " -> APIForbiddenError('events \"jitaccess-x\" is forbidden: exceeded quota: events, requested: count/events=1')"
)
POSTING_LAST = POSTING_RETRY.replace("#1/9", "#9/9").replace("will retry", "escalating")
REFUSED_EVENT = (
    "Failed to post an event. Ignoring and continuing. Code: 422. Message: ValidatingAdmissionPolicy 'quiet' denied"
    " request: no Events here. Details: None Event: type='Normal', reason='Granted', message='...'."
)


def test_event_posts_refused_are_said_once_a_minute_and_their_retries_are_no_errors() -> None:
    """A policy or quota on Events: kopf's ERROR line for each retry of each post becomes DEBUG, and its
    WARNING for each lost Event is said once a minute with how many more, not once per decision."""
    now = [100.0]
    events = EventsAreAuxiliary(clock=lambda: now[0])

    def line(message: str, level: int) -> logging.LogRecord:
        return logging.LogRecord(EVENT_POSTING, level, __file__, 1, message, None, None)

    for message in (POSTING_RETRY, POSTING_LAST):
        retry = line(message, logging.ERROR)
        events.filter(retry)
        assert retry.levelno == logging.DEBUG, message

    said = []
    for second in range(0, 130, 2):  # an Event refused every 2 s for a bit over two minutes
        now[0] = 100.0 + second
        lost = line(REFUSED_EVENT, logging.WARNING)
        if events.filter(lost):
            said.append(lost)
    assert [r.levelno for r in said] == [logging.WARNING] * 3
    messages = [r.getMessage() for r in said]
    assert all(REFUSED_EVENT in m and "audit log (jitaccess.audit)" in m for m in messages), messages
    assert "more not posted" not in messages[0]
    assert "(29 more not posted since the last such line)" in messages[1], messages[1]

    # Anything else kopf's posting says passes unchanged: a broken connection's last try stays an ERROR.
    other = line("Request attempt #9/9 failed; escalating: POST .../events -> TimeoutError()", logging.ERROR)
    assert events.filter(other) and other.levelno == logging.ERROR


def test_the_operators_logging_filters_kopfs_event_posting() -> None:
    """Wired where the operator sets its logging up, on the logger kopf posts Events with (a child
    process: the set-up replaces the root logger's handlers)."""
    script = (
        "import logging; from jitaccess.logs import configure_logging; configure_logging('text');"
        "from kopf._core.engines import posting;"
        f"posting.logger.error({POSTING_RETRY!r}); posting.logger.warning({REFUSED_EVENT!r});"
        f"posting.logger.warning({REFUSED_EVENT!r})"
    )
    source = str(Path(__file__).resolve().parents[2] / "operator")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and f" WARNING {EVENT_POSTING}: an Event was not posted; " in lines[0], lines

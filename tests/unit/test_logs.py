"""What the operator's log says at ERROR: only what someone should look at."""

from __future__ import annotations

import logging

from jitaccess.logs import ProbeRetriesAreNotErrors


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

"""Logging set-up: human-readable text, or one JSON object per line for log pipelines; and
`OncePer`, how a line said again and again (a retry every second through an outage) is said once
a minute with how many were not.

`OncePer` is our own: the standard library's logging has no rate limit, and a `logging.Filter`
sees a finished record, not what the line is about (a grant, the kind of a failure) unless it
parses the message; rate-limiting libraries (none is in our dependencies) pace calls, and count
neither per key nor what they refused, which the "(N more since)" needs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jitaccess.domain.releases import WAITING

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Every record as one JSON line; the `extra` fields of audit records become keys.

    `time` is RFC 3339 in UTC with milliseconds (2026-12-02T02:40:13.123Z): log stores parse it
    without knowing the node's zone, and lines of two replicas within a second keep their order.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def rfc3339(created: float) -> str:
    """A record's time (seconds since the epoch) as RFC 3339 UTC, milliseconds truncated, with `Z`."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Due:
    """A line `OncePer.due` lets be said now."""

    #: Said before about the same key and of the same kind: a repeat, not a beginning.
    again: bool
    #: The lines about it that were kept quiet since it was last said (0 unless `again`).
    unsaid: int


class OncePer:
    """A line about a key said at most once every `seconds`, with the count of those kept quiet.

    A key's line is due at once the first time, and again once `seconds` have passed since it was
    last said; one of another `kind` than the last (a failure of another sort) is due at once, and
    starts the count again. Thread-safe (removals are said from worker threads). At most `keys`
    keys are kept: one more forgets the key said longest ago, which is then due at once, as new:
    louder, never quieter.
    """

    def __init__(self, seconds: float, *, keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._keys = keys
        self._clock = clock
        self._lock = threading.Lock()
        #: key -> (kind, when last said, how many kept quiet since), the one said longest ago first.
        self._said: dict[Hashable, tuple[Hashable, float, int]] = {}

    def due(self, key: Hashable = None, kind: Hashable = None) -> Due | None:
        """Whether the line about `key` (of `kind`) is to be said now; None when it is to stay
        quiet (it is counted)."""
        now = self._clock()
        with self._lock:
            last = self._said.get(key)
            if last is not None and last[0] == kind:
                if now - last[1] < self._seconds:
                    self._said[key] = (kind, last[1], last[2] + 1)  # in its place: said as long ago
                    return None
                said = Due(again=True, unsaid=last[2])
            else:
                said = Due(again=False, unsaid=0)
            self._said.pop(key, None)
            while len(self._said) >= self._keys:
                del self._said[next(iter(self._said))]
            self._said[key] = (kind, now, 0)
            return said

    def forget(self, key: Hashable = None) -> bool:
        """Forget `key` (what it was about has ended): its next line is due at once, as new.
        Whether it was remembered."""
        with self._lock:
            return self._said.pop(key, None) is not None


class RefusalsAreNotErrors(logging.Filter):
    """Demote kopf's line for each refused admission from ERROR to DEBUG.

    A webhook refuses by raising `kopf.AdmissionError`, which kopf logs as "Webhook '...' failed
    permanently: <why>" at ERROR, as it would a crash. A refusal is the webhook doing its job, and
    the audit line `AdmissionRefused` (INFO, see `handlers.admission`) says who was refused what and
    why; an ERROR line must mean something an operator should look at. Webhook handlers raise no
    other permanent error (anything else they raise kopf logs as "failed with an exception").
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno == logging.ERROR and message.startswith("Webhook ") and " failed permanently: " in message:
            record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


class ProbeRetriesAreNotErrors(logging.Filter):
    """Demote kopf's line for a liveness probe that will be tried again from ERROR to INFO.

    The `webhooks` probe answers "not yet" (a `kopf.TemporaryError`) until the webhook
    configurations reach the new server, a fraction of a second after every start; kopf logs each
    such answer as "Activity '...' failed temporarily" at ERROR, where it would also count in
    `jitaccess_errors_total`. A probe that keeps failing still ends in kopf's own ERROR line, and
    the liveness check fails.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno == logging.ERROR and message.startswith("Activity ") and " failed temporarily: " in message:
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


class WaitsAreNotErrors(logging.Filter):
    """Demote kopf's line for a handler that waits on purpose from ERROR to INFO.

    A handler that must wait (a deleted Entitlement whose grants are still active,
    `handlers.catalog.release_entitlement`; a grant's end after a hand-over, until the old
    leader's add has settled, `handlers.grants._once_settled`) raises `kopf.TemporaryError` with a
    message that begins `waiting:` (`domain.releases.WAITING`), and kopf logs each retry as
    "Handler '...' failed temporarily" at ERROR, which would count in `jitaccess_errors_total` (and
    page, `JitaccessHandlerErrors`) at every retry. The object's condition, or the handler's own
    INFO line, says what it waits for, once.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno == logging.ERROR and f" failed temporarily: {WAITING}" in message:
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


#: kopf's logger for posting Events (`kopf._core.engines.posting`), its retries included.
EVENT_POSTING = "kopf._core.engines.posting"
#: An Event the API server would not take is said at most this often (seconds).
EVENT_FAILURES_EVERY_SECONDS = 60.0


class EventsAreAuxiliary(logging.Filter):
    """Say Events that could not be posted once a minute, not once per Event and retry.

    kopf posts each Event (`kopf.event`, from `handlers.recording`) in the background: a post the
    API server refuses (a ValidatingAdmissionPolicy or quota on Events: 422, 403) fails no handler,
    but kopf logs each failed try at ERROR ("Request attempt #1/9 failed; will retry: POST
    .../events -> APIForbiddenError", eight retries for a 403 or 5xx, counted in
    `jitaccess_errors_total`), then "Failed to post an event" at WARNING, for every Event. Under a
    policy on Events that is a line per decision and ten per refused 403. The tries are DEBUG here
    (their outcome is the WARNING); the WARNING is said at once, then at most once a minute with
    how many more were lost, and names where the decisions still are: the audit log line is
    written whether or not its Event is posted.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._said = OncePer(EVENT_FAILURES_EVERY_SECONDS, clock=clock)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Request attempt ") and (
            " will retry: " in message or (" escalating: " in message and " -> API" in message)
        ):
            # A retry, or the last try of an API error, which "Failed to post an event" follows.
            record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        if not message.startswith("Failed to post an event."):
            return True
        said = self._said.due()
        if said is None:
            return False
        more = f" ({said.unsaid} more not posted since the last such line)" if said.unsaid else ""
        record.msg = (
            f"an Event was not posted{more}; the decisions are in the audit log (jitaccess.audit) all the same;"
            f" said at most once a minute: {message}"
        )
        record.args = ()
        return True


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "urllib3", "kubernetes", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    kopf_objects = logging.getLogger("kopf.objects")
    if not any(isinstance(f, RefusalsAreNotErrors) for f in kopf_objects.filters):
        kopf_objects.addFilter(RefusalsAreNotErrors())
    if not any(isinstance(f, WaitsAreNotErrors) for f in kopf_objects.filters):
        kopf_objects.addFilter(WaitsAreNotErrors())
    posting = logging.getLogger(EVENT_POSTING)
    if not any(isinstance(f, EventsAreAuxiliary) for f in posting.filters):
        posting.addFilter(EventsAreAuxiliary())
    probes = logging.getLogger("kopf.activities.probe")
    if not any(isinstance(f, ProbeRetriesAreNotErrors) for f in probes.filters):
        probes.addFilter(ProbeRetriesAreNotErrors())
    if level > logging.DEBUG:
        # kopf says "Handler ... succeeded" for every handler and every admission call (each
        # status write included); the decisions themselves are in the jitaccess.audit lines.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)

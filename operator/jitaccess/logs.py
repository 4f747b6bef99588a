"""Logging set-up: human-readable text, or one JSON object per line for log pipelines."""

from __future__ import annotations

import json
import logging
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
    `handlers.catalog.release_entitlement`) raises `kopf.TemporaryError` with a message that
    begins `waiting:` (`domain.releases.WAITING`), and kopf logs each retry as "Handler '...'
    failed temporarily" at ERROR, which would also post a Warning Event every few seconds and
    count in `jitaccess_errors_total`. The object's condition says what it waits for, once.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno == logging.ERROR and f" failed temporarily: {WAITING}" in message:
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
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
    probes = logging.getLogger("kopf.activities.probe")
    if not any(isinstance(f, ProbeRetriesAreNotErrors) for f in probes.filters):
        probes.addFilter(ProbeRetriesAreNotErrors())
    if level > logging.DEBUG:
        # kopf says "Handler ... succeeded" for every handler and every admission call (each
        # status write included); the decisions themselves are in the jitaccess.audit lines.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)

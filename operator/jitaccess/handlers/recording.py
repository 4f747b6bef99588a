"""Every decision is an Event on the object and a structured log line with who and why.

kopf posts Events from a queue it keeps in the context its watches set up. The expiry scheduler
acts before the first watch event after a start (overdue grants must not wait for kopf to adopt
every object): what it records meanwhile is kept in its `Deferred` and posted once the watch has
begun. The audit line is written at once either way.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Mapping
from typing import Any

import kopf

from jitaccess.api import names

audit = logging.getLogger("jitaccess.audit")


class Deferred:
    """Events recorded before kopf's watch has begun, posted from its context once it has (`open`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[Any, str, str, str]] = []
        self._context: contextvars.Context | None = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    @property
    def context(self) -> contextvars.Context | None:
        """The watch's context once it has begun (`open`), else None."""
        return self._context

    def add(self, body: Any, type: str, reason: str, message: str) -> None:
        with self._lock:
            if self._context is None:
                # Only what the Event refers to is kept, not the whole object.
                meta = body.get("metadata", {})
                self._pending.append(
                    (ref(body.get("kind", ""), meta.get("name", ""), meta.get("uid", "")), type, reason, message)
                )
                return
            context = self._context
        _post(context, (body, type, reason, message))

    def open(self, context: contextvars.Context) -> None:
        """The watch has begun in `context`: post what waited (in order), and what comes later at once."""
        with self._lock:
            self._context = context
            pending, self._pending = self._pending, []
            for event in pending:
                _post(context, event)


def _post(context: contextvars.Context, event: tuple[Any, str, str, str]) -> None:
    body, type, reason, message = event
    # A copy: the watch's own context may be entered in another thread at this moment.
    context.copy().run(kopf.event, body, type=type, reason=reason, message=message)


#: Where `record` keeps Events it cannot post yet; None: nowhere (an Event must then be postable).
DEFERRED: contextvars.ContextVar[Deferred | None] = contextvars.ContextVar("jitaccess_deferred", default=None)


def ref(kind: str, name: str, uid: str = "") -> dict[str, Any]:
    """The minimal object reference kopf needs to post an Event."""
    return {"apiVersion": names.API_VERSION, "kind": kind, "metadata": {"name": name, "uid": uid}}


def record(
    obj: Mapping[str, Any],
    reason: str,
    message: str,
    *,
    warning: bool = False,
    who: str = "",
    event: bool = True,
    **fields: Any,
) -> None:
    """Post an Event on `obj` and write the matching audit log line; with `event` False, the line
    alone (a change that another object's Event reports already)."""
    body: Any = dict(obj)
    kind, text = "Warning" if warning else "Normal", message[:1000]
    try:
        if event:
            kopf.event(body, type=kind, reason=reason, message=text)
    except LookupError:  # kopf's Event queue is not in this context: no watch has begun yet
        deferred = DEFERRED.get()
        if deferred is None:
            raise
        deferred.add(body, kind, reason, text)
    meta = obj.get("metadata", {})
    audit.log(
        logging.WARNING if warning else logging.INFO,
        "%s %s/%s: %s",
        reason,
        obj.get("kind", ""),
        meta.get("name", ""),
        message,
        extra={
            "event": reason,
            "object_kind": obj.get("kind", ""),
            "object_name": meta.get("name", ""),
            "who": who,
            **fields,
        },
    )

"""Metrics wiring: `/metrics` served from start-up to clean-up, and the indexes its gauges read.

Two indexes, kept current by event handlers on the same watches the handlers use, hold what the
state gauges show: the Active grants (an index of this module) and the requests awaiting a
decision (the Runtime's `pending`, see `indexes`), by entitlement. kopf's listing
re-fills them whenever it (re)starts watching, so the gauges are right after a restart without any
bookkeeping in the handlers. They are `ObjectIndex`es rather than `@kopf.index`es: kopf's own
indexes make start-up quadratic in the number of grants and requests (see `ObjectIndex`).

The HTTP server answers scrapes in its own thread; the indexes are thread-safe, so a scrape reads
them there, and is answered even while the event loop is busy (a start-up with thousands of grants).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from jitaccess.domain import conditions as cond
from jitaccess.handlers.common import GROUP, VERSION
from jitaccess.handlers.runtime import ObjectIndex, Runtime, runtime_of
from jitaccess.observability import MetricsServer, State
from jitaccess.settings import Settings

Index = Mapping[Any, Iterable[Any]]
ACTIVE = "active_grants_by_entitlement"


def _ready(status: kopf.Status) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c.get("type") == cond.READY), {})


def _active(status: kopf.Status, **_: Any) -> bool:
    return _ready(status).get("reason") == "Active"


def _index(memo: kopf.Memo, key: str) -> ObjectIndex:
    index = memo.get(key)
    if not isinstance(index, ObjectIndex):
        index = memo[key] = ObjectIndex()
    return index


@kopf.on.event(GROUP, VERSION, "accessgrants")
async def active_grants_by_entitlement(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    active = type != "DELETED" and _active(body.status)
    entry = (str(body.spec.get("entitlement", "")), body.metadata.name) if active else None
    _index(memo, ACTIVE).observe(body.metadata.name, entry)


def take_snapshot(active: Index, pending: Index) -> State:
    """The gauges' state from the two indexes."""
    return State(
        active_grants={entitlement: len(list(names)) for entitlement, names in active.items()},
        pending_since={
            entitlement: [entry.created for entry in entries if entry.created is not None]
            for entitlement, entries in pending.items()
        },
    )


@kopf.on.startup()
async def serve_metrics(memo: kopf.Memo, **_: Any) -> None:
    active, runtime = _index(memo, ACTIVE), memo.get("runtime")
    config: Settings = runtime.settings if isinstance(runtime, Runtime) else memo.get("settings") or Settings()
    if not config.metrics_port or memo.get("metrics_server") is not None:
        return

    def snapshot() -> State:
        return take_snapshot(active, runtime_of(memo).pending)

    memo["metrics_server"] = MetricsServer(config.metrics_port, snapshot, lambda: datetime.now(UTC))


@kopf.on.cleanup()
def stop_metrics(memo: kopf.Memo, **_: Any) -> None:
    server = memo.get("metrics_server")
    if isinstance(server, MetricsServer):
        server.stop()
        memo["metrics_server"] = None

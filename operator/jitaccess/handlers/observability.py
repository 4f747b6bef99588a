"""Metrics wiring: `/metrics` served from start-up to clean-up, and the indexes its gauges read.

Two kopf indexes, kept current by the same watches the handlers use, hold what the state gauges
show: the Active grants and the pending requests, by entitlement. They are re-filled from a full
listing whenever kopf (re)starts watching, so the gauges are right after a restart without any
bookkeeping in the handlers.

The HTTP server answers scrapes in its own thread, while kopf changes the indexes on the event
loop: a scrape therefore asks the loop for a snapshot (`run_coroutine_threadsafe`) instead of
iterating the indexes from the server's thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from jitaccess.domain import conditions as cond
from jitaccess.handlers.common import GROUP, VERSION
from jitaccess.handlers.runtime import Runtime
from jitaccess.observability import MetricsServer, State
from jitaccess.settings import Settings

Index = Mapping[Any, Iterable[Any]]
SNAPSHOT_TIMEOUT = 5.0


def _ready(status: kopf.Status) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c.get("type") == cond.READY), {})


def _active(status: kopf.Status, **_: Any) -> bool:
    return _ready(status).get("reason") == "Active"


def _awaiting_decision(status: kopf.Status, **_: Any) -> bool:
    conditions = {c.get("type"): c for c in status.get("conditions", [])}
    decided = any(conditions.get(t, {}).get("status") == "True" for t in (cond.APPROVED, cond.DENIED))
    return _ready(status).get("reason") == "Pending" and not decided


@kopf.index(GROUP, VERSION, "accessgrants", when=_active)
def active_grants_by_entitlement(name: str, spec: kopf.Spec, **_: Any) -> dict[str, str]:
    return {str(spec.get("entitlement", "")): name}


@kopf.index(GROUP, VERSION, "accessrequests", when=_awaiting_decision)
def pending_requests_by_entitlement(spec: kopf.Spec, meta: kopf.Meta, **_: Any) -> dict[str, str]:
    return {str(spec.get("entitlement", "")): str(meta.get("creationTimestamp", ""))}


def take_snapshot(active: Index, pending: Index) -> State:
    """The gauges' state from the two indexes; call it on the event loop that owns them."""
    return State(
        active_grants={entitlement: len(list(names)) for entitlement, names in active.items()},
        pending_since={
            entitlement: [datetime.fromisoformat(stamp) for stamp in stamps if stamp]
            for entitlement, stamps in pending.items()
        },
    )


@kopf.on.startup()
async def serve_metrics(memo: kopf.Memo, **kwargs: Any) -> None:
    # The indexes come as keyword arguments named after the index functions (empty until kopf lists).
    active: Index = kwargs["active_grants_by_entitlement"]
    pending: Index = kwargs["pending_requests_by_entitlement"]
    runtime = memo.get("runtime")
    config: Settings = runtime.settings if isinstance(runtime, Runtime) else memo.get("settings") or Settings()
    if not config.metrics_port or memo.get("metrics_server") is not None:
        return
    loop = asyncio.get_running_loop()

    async def read() -> State:
        return take_snapshot(active, pending)

    def snapshot() -> State:
        return asyncio.run_coroutine_threadsafe(read(), loop).result(timeout=SNAPSHOT_TIMEOUT)

    memo["metrics_server"] = MetricsServer(config.metrics_port, snapshot, lambda: datetime.now(UTC))


@kopf.on.cleanup()
def stop_metrics(memo: kopf.Memo, **_: Any) -> None:
    server = memo.get("metrics_server")
    if isinstance(server, MetricsServer):
        server.stop()
        memo["metrics_server"] = None

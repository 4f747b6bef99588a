"""Metrics wiring: `/metrics` served from start-up to clean-up, its gauges read from the Runtime's indexes.

The Runtime's indexes (see `indexes`), kept current from the same watches the handlers use,
hold what the state gauges show: the Active grants with their expiration times, the requests
awaiting a decision, and the break-glass requests awaiting review, by entitlement; the
Entitlements and PermissionCatalogs by readiness, and the Entitlements that overlap another. kopf's
listing re-fills them whenever it (re)starts watching, so the gauges are right after a restart
without any bookkeeping in the handlers; a grant or request deleted while a watch was cut counts
until the periodic listing drops it (`indexes.reconcile`). Whether this replica leads is asked of its `Leadership` at each scrape, so a lost Lease
shows at once; the audit archive's queue, of the leader's trail (`archive`), likewise.

The HTTP server answers scrapes in its own thread; the indexes are thread-safe, so a scrape reads
them there, and is answered even while the event loop is busy (a start-up with thousands of grants).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from jitaccess.api import names
from jitaccess.handlers.common import Index
from jitaccess.handlers.leadership import Leadership
from jitaccess.handlers.runtime import ObjectIndex, Runtime, runtime_of
from jitaccess.handlers.startup import LEADERSHIP
from jitaccess.observability import MetricsServer, State
from jitaccess.settings import Settings, load

#: The keys of the readiness index (`indexes.observe_entitlement`): (plural, Ready status, reason).
Readiness = tuple[str, str, str]


def take_snapshot(
    active: Index,
    pending: Index,
    expirations: Index | None = None,
    readiness: ObjectIndex | None = None,
    break_glass: Index | None = None,
    overlapping: ObjectIndex | None = None,
) -> State:
    """The gauges' state from the indexes. Break-glass reviews count for the Entitlements that
    exist (`readiness` has them): a deleted one's requests have no timer and no reviewer left."""

    def exists(entitlement: str) -> bool:
        return readiness is None or readiness.key_of(f"{names.ENTITLEMENTS}/{entitlement}") is not None

    return State(
        active_grants={entitlement: len(list(grants)) for entitlement, grants in active.items()},
        pending_since={
            entitlement: [entry.created for entry in entries if entry.created is not None]
            for entitlement, entries in pending.items()
        },
        expirations=None if expirations is None else [when for key in expirations for when in expirations.get(key, ())],
        readiness={}
        if readiness is None
        else {cast(Readiness, key): len(list(readiness.get(key, ()))) for key in readiness},
        review_deadlines={
            entitlement: [entry.deadline for entry in entries]
            for entitlement, entries in (break_glass or {}).items()
            if exists(entitlement)
        },
        overlapping={}
        if overlapping is None
        else {str(key): len(list(overlapping.get(key, ()))) for key in overlapping},
    )


@kopf.on.startup()
async def serve_metrics(memo: kopf.Memo, **_: Any) -> None:
    runtime = memo.get("runtime")
    config: Settings = runtime.settings if isinstance(runtime, Runtime) else memo.get("settings") or load()
    if not config.metrics_port or memo.get("metrics_server") is not None:
        return

    # `jitaccess.main` puts it there: `Always` with leader election off (the one replica leads).
    leadership = memo.get(LEADERSHIP)

    def snapshot() -> State:
        rt = runtime_of(memo)
        state = take_snapshot(rt.active, rt.pending, rt.expirations, rt.readiness, rt.break_glass, rt.overlapping)
        leading = leadership.leading() if isinstance(leadership, Leadership) else None
        # The archive's queue is the leader's; one left behind by a controller that stopped
        # without its clean-up is no longer worked on by anyone here.
        backlog = rt.audit_backlog
        archive = backlog() if backlog is not None and leading is not False else None
        return dataclasses.replace(state, leader=leading, archive_backlog=archive)

    memo["metrics_server"] = MetricsServer(config.metrics_port, snapshot, lambda: datetime.now(UTC))


@kopf.on.cleanup()
def stop_metrics(memo: kopf.Memo, **_: Any) -> None:
    server = memo.get("metrics_server")
    if isinstance(server, MetricsServer):
        server.stop()
        memo["metrics_server"] = None

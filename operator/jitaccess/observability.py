"""Serving the metrics: the `/metrics` HTTP server, gauges computed at scrape time, counts from logs.

State gauges are computed when Prometheus scrapes, from a `State` snapshot the operator takes of its
kopf indexes (see `jitaccess.handlers.observability`), rather than kept by inc()/dec() in handlers:
a gauge moved by events drifts for good after a restart (it starts at zero, then decrements grants
it never counted), while a snapshot of the indexes is right by construction after every re-list.

Two logging handlers count what the code only logs: kopf's handler failures (its ERROR records)
and the audit records, one per decision or finding, by event (Granted, Expired, DriftFound, ...).

This module knows nothing of kopf: the snapshot is a callable, so tests give it a plain function.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jitaccess import metrics
from jitaccess.api import names
from jitaccess.domain.expiry import overdue
from jitaccess.listening import EVERYWHERE, WSGIServer, described

log = logging.getLogger(__name__)
#: The logger every decision is written to (`jitaccess.handlers.recording`).
AUDIT_LOGGER = "jitaccess.audit"


@dataclass(frozen=True)
class State:
    """What the gauges show: live grants by entitlement, and the creation times of pending requests;
    the persisted expiration times of the Active grants (None: not known, the gauges left out)."""

    active_grants: Mapping[str, int] = field(default_factory=dict)
    pending_since: Mapping[str, Iterable[datetime]] = field(default_factory=dict)
    expirations: Iterable[datetime] | None = None
    #: Whether this replica leads (may act) now; None: not known (no leadership in this process).
    leader: bool | None = None
    #: The audit archive's records waiting, and when the oldest was queued; None: no archive here.
    archive_backlog: tuple[int, datetime | None] | None = None
    #: How many Entitlements (`entitlements`) and PermissionCatalogs (`permissioncatalogs`) there
    #: are by (plural, Ready status, reason).
    readiness: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    #: The review deadlines of the break-glass requests awaiting review, by entitlement.
    review_deadlines: Mapping[str, Iterable[datetime]] = field(default_factory=dict)
    #: How many Entitlements grant the same access as another, by their `Overlapping` reason.
    overlapping: Mapping[str, int] = field(default_factory=dict)


def state_metrics(state: State, now: datetime) -> list[Metric]:
    """The state gauges for one scrape."""
    return [
        *_by_entitlement(state, now),
        *_overdue(state, now),
        _leader(state),
        *_archive(state, now),
        *_readiness(state),
        _overlapping(state),
        _unreviewed(state, now),
    ]


def _by_entitlement(state: State, now: datetime) -> list[Metric]:
    """Every entitlement seen in either map gets the three gauges."""
    active = GaugeMetricFamily(metrics.ACTIVE_GRANTS, "Active grants by entitlement", labels=["entitlement"])
    pending = GaugeMetricFamily(
        metrics.PENDING_REQUESTS, "Requests waiting for a human decision, by entitlement", labels=["entitlement"]
    )
    oldest = GaugeMetricFamily(
        metrics.OLDEST_PENDING,
        "Age of the oldest request waiting for a human decision (0 when none is)",
        labels=["entitlement"],
    )
    for entitlement in sorted(set(state.active_grants) | set(state.pending_since)):
        created = list(state.pending_since.get(entitlement, ()))
        active.add_metric([entitlement], state.active_grants.get(entitlement, 0))
        pending.add_metric([entitlement], len(created))
        oldest.add_metric([entitlement], max(0.0, (now - min(created)).total_seconds()) if created else 0.0)
    return [active, pending, oldest]


def _overdue(state: State, now: datetime) -> list[Metric]:
    """Active grants past their expiration time by more than the grace (`domain.expiry.overdue`)."""
    count = GaugeMetricFamily(
        metrics.GRANTS_OVERDUE, "Active grants more than 30 s past their status.expirationTime (not removed yet)"
    )
    oldest = GaugeMetricFamily(
        metrics.GRANT_OVERDUE_SECONDS, "How far past its expiration time the oldest overdue grant is (0 when none is)"
    )
    if state.expirations is not None:
        found, late = overdue(state.expirations, now)
        count.add_metric([], found)
        oldest.add_metric([], late)
    return [count, oldest]


def _leader(state: State) -> Metric:
    leader = GaugeMetricFamily(metrics.LEADER, "1 on the replica that holds the leader Lease and acts, else 0")
    if state.leader is not None:
        leader.add_metric([], 1 if state.leader else 0)
    return leader


def _archive(state: State, now: datetime) -> list[Metric]:
    pending = GaugeMetricFamily(metrics.ARCHIVE_PENDING, "Audit records waiting to be written to the S3 archive")
    oldest = GaugeMetricFamily(
        metrics.ARCHIVE_OLDEST_PENDING,
        "How long the oldest audit record waiting for the S3 archive has waited (0 when none does)",
    )
    if state.archive_backlog is not None:
        count, since = state.archive_backlog
        pending.add_metric([], count)
        oldest.add_metric([], max(0.0, (now - since).total_seconds()) if since is not None else 0.0)
    return [pending, oldest]


#: The plurals of the kinds whose readiness is counted, and their gauges.
READINESS_GAUGES = {
    names.ENTITLEMENTS: (metrics.ENTITLEMENTS, "Entitlements by their Ready condition's status and reason"),
    names.CATALOGS: (metrics.PERMISSION_CATALOGS, "PermissionCatalogs by their Ready condition's status and reason"),
}


def _readiness(state: State) -> list[Metric]:
    families = {
        plural: GaugeMetricFamily(name, text, labels=["ready", "reason"])
        for plural, (name, text) in READINESS_GAUGES.items()
    }
    for (plural, ready, reason), count in sorted(state.readiness.items()):
        if plural in families and count:
            families[plural].add_metric([ready, reason], count)
    return list(families.values())


def _overlapping(state: State) -> Metric:
    overlapping = GaugeMetricFamily(
        metrics.ENTITLEMENTS_OVERLAPPING,
        "Entitlements that grant the same access as another, by their Overlapping condition's reason "
        "(SameAccess: under other rules; Duplicate: under the same)",
        labels=["reason"],
    )
    for reason, count in sorted(state.overlapping.items()):
        if count:
            overlapping.add_metric([reason], count)
    return overlapping


def _unreviewed(state: State, now: datetime) -> Metric:
    unreviewed = GaugeMetricFamily(
        metrics.BREAK_GLASS_UNREVIEWED,
        "Break-glass requests whose review by the owner team is overdue (spec.breakGlass.reviewWithin)",
        labels=["entitlement"],
    )
    for entitlement, deadlines in sorted(state.review_deadlines.items()):
        unreviewed.add_metric([entitlement], sum(1 for deadline in deadlines if deadline <= now))
    return unreviewed


class StateCollector(Collector):
    """A Prometheus collector calling `snapshot` at every scrape (from the HTTP server's thread).

    A snapshot that fails or times out leaves the state gauges out of that scrape, so Prometheus
    shows a gap instead of a wrong number; the failure is counted in `jitaccess_errors_total`.
    """

    def __init__(self, snapshot: Callable[[], State], clock: Callable[[], datetime]) -> None:
        self._snapshot = snapshot
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        try:
            state = self._snapshot()
        except Exception as exc:  # a scrape must never fail because the operator is busy or stopping
            metrics.ERRORS.labels("metrics_snapshot").inc()
            log.warning("metrics: no snapshot of the operator's state (%s: %s)", type(exc).__name__, exc)
            return
        yield from state_metrics(state, self._clock())

    def describe(self) -> Iterator[Metric]:
        # Declaring the names lets the registry refuse a second collector of the same gauges.
        yield from state_metrics(State(), self._clock())


class ErrorCounter(logging.Handler):
    """Counts ERROR log records into `jitaccess_errors_total`: kopf reports failed handlers this way."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        metrics.ERRORS.labels("handler" if record.name == "kopf.objects" else "operator").inc()


class AuditCounter(logging.Handler):
    """Counts the audit log's records (`jitaccess.audit`, one per decision) by their `event` field."""

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        if isinstance(event, str) and event:
            metrics.AUDIT_EVENTS.labels(event).inc()


class MetricsServer:
    """`/metrics` on `port`, with the state collector and the log counters; `stop` undoes it all."""

    def __init__(
        self,
        port: int,
        snapshot: Callable[[], State],
        clock: Callable[[], datetime],
        *,
        addr: str = EVERYWHERE,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._registry = registry
        self._collector = StateCollector(snapshot, clock)
        self._errors = ErrorCounter()
        self._audit = AuditCounter()
        registry.register(self._collector)
        try:
            self._server = WSGIServer(addr, port, make_wsgi_app(registry))
        except BaseException:
            registry.unregister(self._collector)
            raise
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()
        logging.getLogger().addHandler(self._errors)
        logging.getLogger(AUDIT_LOGGER).addHandler(self._audit)
        log.info("metrics served on %s, path /metrics", described(addr, self.port))

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def stop(self) -> None:
        logging.getLogger().removeHandler(self._errors)
        logging.getLogger(AUDIT_LOGGER).removeHandler(self._audit)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._registry.unregister(self._collector)

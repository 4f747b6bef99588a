"""Metrics computed at scrape time, the /metrics server, error counting, and JSON logs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import kopf
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from jitaccess import metrics
from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.domain.expiry import overdue
from jitaccess.handlers import indexes
from jitaccess.handlers.indexes import Pending
from jitaccess.handlers.observability import take_snapshot
from jitaccess.handlers.runtime import ObjectIndex, Runtime
from jitaccess.observability import AuditCounter, ErrorCounter, MetricsServer, State, StateCollector, state_metrics
from jitaccess.settings import Settings

NOW = datetime(2025, 11, 23, 12, 0, tzinfo=UTC)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def gauges(state: State) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(StateCollector(lambda: state, lambda: NOW))
    return samples(generate_latest(registry).decode())


def test_state_gauges_by_entitlement() -> None:
    state = State(
        active_grants={"prod-payments": 2},
        pending_since={"prod-ledger": [NOW - timedelta(minutes=5), NOW - timedelta(seconds=30)]},
    )
    assert gauges(state) == {
        ("jitaccess_active_grants", (("entitlement", "prod-ledger"),)): 0,
        ("jitaccess_active_grants", (("entitlement", "prod-payments"),)): 2,
        ("jitaccess_pending_requests", (("entitlement", "prod-ledger"),)): 2,
        ("jitaccess_pending_requests", (("entitlement", "prod-payments"),)): 0,
        ("jitaccess_oldest_pending_request_age_seconds", (("entitlement", "prod-ledger"),)): 300,
        ("jitaccess_oldest_pending_request_age_seconds", (("entitlement", "prod-payments"),)): 0,
    }


def test_nothing_known_nothing_shown() -> None:
    assert gauges(State()) == {}
    assert [family.name for family in state_metrics(State(), NOW)] == [
        metrics.ACTIVE_GRANTS,
        metrics.PENDING_REQUESTS,
        metrics.OLDEST_PENDING,
        metrics.GRANTS_OVERDUE,
        metrics.GRANT_OVERDUE_SECONDS,
        metrics.LEADER,
        metrics.ARCHIVE_PENDING,
        metrics.ARCHIVE_OLDEST_PENDING,
        metrics.ENTITLEMENTS,
        metrics.PERMISSION_CATALOGS,
        metrics.ENTITLEMENTS_OVERLAPPING,
        metrics.BREAK_GLASS_UNREVIEWED,
    ]


def test_overdue_grants_from_their_expiration_times() -> None:
    """Counted from the persisted expiration times, whether or not a removal was tried: past the
    30 s grace only; 0 (not absent) when none is, so that the alert resolves at once."""
    state = State(expirations=[NOW - timedelta(minutes=5), NOW - timedelta(seconds=45), NOW - timedelta(seconds=10)])
    assert gauges(state) == {("jitaccess_grants_overdue", ()): 2, ("jitaccess_grant_overdue_seconds", ()): 300}
    assert gauges(State(expirations=[NOW + timedelta(hours=1)])) == {
        ("jitaccess_grants_overdue", ()): 0,
        ("jitaccess_grant_overdue_seconds", ()): 0,
    }


def test_the_audit_archives_queue() -> None:
    """Only with an archive (the leader's): its size and the age of the oldest record in it."""
    state = State(archive_backlog=(3, NOW - timedelta(minutes=20)))
    assert gauges(state) == {
        ("jitaccess_audit_archive_pending_records", ()): 3,
        ("jitaccess_audit_archive_oldest_pending_seconds", ()): 1200,
    }
    assert gauges(State(archive_backlog=(0, None))) == {
        ("jitaccess_audit_archive_pending_records", ()): 0,
        ("jitaccess_audit_archive_oldest_pending_seconds", ()): 0,
    }


def test_clock_skew_never_gives_a_negative_age() -> None:
    state = State(pending_since={"e": [NOW + timedelta(seconds=3)]})
    assert gauges(state)[("jitaccess_oldest_pending_request_age_seconds", (("entitlement", "e"),))] == 0


def test_failed_snapshot_leaves_the_gauges_out_and_is_counted() -> None:
    def broken() -> State:
        raise TimeoutError("the event loop did not answer")

    before = metrics.ERRORS.labels("metrics_snapshot")._value.get()
    assert gauges_of(broken) == {}
    assert metrics.ERRORS.labels("metrics_snapshot")._value.get() == before + 1


def gauges_of(snapshot: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(StateCollector(snapshot, lambda: NOW))  # type: ignore[arg-type]
    return samples(generate_latest(registry).decode())


def test_snapshot_of_the_indexes() -> None:
    """The gauges read the object indexes: Active grants by name, pending requests with their creation time."""
    active, pending = ObjectIndex(), ObjectIndex()
    active.observe("alice-1", ("prod-payments", "alice-1"))
    active.observe("bob-2", ("prod-payments", "bob-2"))
    active.observe("carol-3", ("prod-ledger", "carol-3"))
    active.observe("carol-3", None)  # expired: no longer counted, and no empty entitlement left
    pending.observe("lena-1", ("prod-ledger", Pending("lena-1", datetime(2025, 11, 23, 11, 55, tzinfo=UTC), False)))
    state = take_snapshot(active, pending)
    assert state.active_grants == {"prod-payments": 2}
    assert list(state.pending_since["prod-ledger"]) == [datetime(2025, 11, 23, 11, 55, tzinfo=UTC)]
    assert state.expirations is None


def test_snapshot_of_the_expiration_times() -> None:
    expirations = ObjectIndex()
    expirations.observe("alice-1", ("prod-payments", NOW - timedelta(minutes=2)))
    expirations.observe("bob-2", ("prod-ledger", NOW + timedelta(minutes=2)))
    expirations.observe("carol-3", ("prod-ledger", NOW - timedelta(hours=2)))
    expirations.observe("carol-3", None)  # ended
    state = take_snapshot(ObjectIndex(), ObjectIndex(), expirations)
    assert sorted(state.expirations or []) == [NOW - timedelta(minutes=2), NOW + timedelta(minutes=2)]


def test_a_grant_asked_to_end_counts_as_overdue_from_the_ask_not_its_expiration() -> None:
    """A revocation or deletion Identity Center keeps refusing (an IAM policy edited) leaves the
    grant Active: it pages as a late expiry does, from when it was asked to end, not hours later."""
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    memo = kopf.Memo(runtime=rt)
    now = datetime.now(UTC)
    grant = {
        "metadata": {"name": "alice-1", "annotations": {}},
        "spec": {"entitlement": "prod-payments", "user": "alice@example.com", "groupName": "prod-payments"},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "Active"}],
            "expirationTime": (now + timedelta(hours=8)).isoformat(),
        },
    }

    def seen(body: dict[str, object]) -> list[datetime]:
        asyncio.run(indexes.observe_grant(type="MODIFIED", body=kopf.Body(body), memo=memo))
        return sorted(take_snapshot(ObjectIndex(), ObjectIndex(), rt.expirations).expirations or [])

    assert seen(grant) == [now + timedelta(hours=8)]
    revoked = {**grant, "metadata": {"name": "alice-1", "annotations": {"jitaccess.dev/revoked": "true"}}}
    first = seen(revoked)[0]
    assert now <= first <= datetime.now(UTC), "from when this replica first saw the revocation"
    assert seen(revoked) == [first], "and not from each later event"
    rt.revocations_seen["alice-1"] = now - timedelta(minutes=5)  # as if seen five minutes ago
    assert overdue(seen(revoked), now) == (1, 300.0)
    deleted_at = (now - timedelta(minutes=3)).replace(microsecond=0)
    deleting = {**grant, "metadata": {"name": "alice-1", "deletionTimestamp": deleted_at.isoformat()}}
    assert seen(deleting) == [deleted_at]
    ended = {**grant, "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Revoked"}]}}
    assert seen(ended) == [] and "alice-1" not in rt.revocations_seen


def test_errors_counted_from_logs() -> None:
    counter = ErrorCounter()
    logger = logging.getLogger("kopf.objects")
    logger.addHandler(counter)
    try:
        before = metrics.ERRORS.labels("handler")._value.get()
        logger.warning("a warning is no error")
        logger.error("Handler 'provision_grant' failed temporarily: Identity Center is not answering")
        assert metrics.ERRORS.labels("handler")._value.get() == before + 1
    finally:
        logger.removeHandler(counter)


def test_audit_records_counted_by_event() -> None:
    counter = AuditCounter()
    audit = logging.getLogger("jitaccess.audit")
    audit.addHandler(counter)
    try:
        before = metrics.AUDIT_EVENTS.labels("DriftFound")._value.get()
        audit.warning("DriftFound Entitlement/prod: bob was in the group with no grant", extra={"event": "DriftFound"})
        audit.info("a line without an event field is not counted")
        assert metrics.AUDIT_EVENTS.labels("DriftFound")._value.get() == before + 1
    finally:
        audit.removeHandler(counter)


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    registry = CollectorRegistry()
    state = State(active_grants={"prod-payments": 1})
    served = MetricsServer(0, lambda: state, lambda: NOW, addr="127.0.0.1", registry=registry)
    try:
        yield served
    finally:
        served.stop()


def test_metrics_server(server: MetricsServer) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert samples(text)[("jitaccess_active_grants", (("entitlement", "prod-payments"),))] == 1


def test_metrics_server_stops_cleanly() -> None:
    registry = CollectorRegistry()
    root_handlers = list(logging.getLogger().handlers)
    audit_handlers = list(logging.getLogger("jitaccess.audit").handlers)
    served = MetricsServer(0, State, lambda: NOW, addr="127.0.0.1", registry=registry)
    served.stop()
    assert logging.getLogger().handlers == root_handlers
    assert logging.getLogger("jitaccess.audit").handlers == audit_handlers
    # The collector is gone from the registry: a new server can register the same gauges again.
    MetricsServer(0, State, lambda: NOW, addr="127.0.0.1", registry=registry).stop()


def python_env() -> dict[str, str]:
    """The environment for a child Python that imports jitaccess from this checkout."""
    source = str(Path(__file__).resolve().parents[2] / "operator")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}


def test_json_logs() -> None:
    """JITACCESS_LOG_FORMAT=json: one JSON object per line, audit fields as keys, tracebacks kept."""
    script = textwrap.dedent(
        """
        import logging
        from jitaccess.logs import configure_logging
        from jitaccess.settings import Settings

        configure_logging(Settings().log_format)
        logging.getLogger("jitaccess.audit").info(
            "Granted AccessGrant/alice-1: alice@example.com added to prod-eng-payments",
            extra={"event": "Granted", "who": "alice@example.com", "entitlement": "prod-eng-payments"},
        )
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("kopf.objects").exception("Handler 'provision_grant' failed")
        logging.getLogger("botocore").info("too noisy to keep")
        """
    )
    env = {**python_env(), "JITACCESS_LOG_FORMAT": "json"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True, timeout=60
    )
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert len(lines) == 2, result.stderr
    granted, failed = lines
    assert granted["level"] == "INFO"
    assert granted["logger"] == "jitaccess.audit"
    assert granted["event"] == "Granted"
    assert granted["who"] == "alice@example.com"
    assert granted["entitlement"] == "prod-eng-payments"
    assert granted["message"].startswith("Granted AccessGrant/alice-1")
    datetime.strptime(granted["time"], "%Y-%m-%dT%H:%M:%S.%f%z")  # RFC 3339 UTC, milliseconds (test_logs.py)
    assert failed["level"] == "ERROR"
    assert "RuntimeError: boom" in failed["exception"]


def test_text_logs_by_default() -> None:
    script = "import logging; from jitaccess.logs import configure_logging; from jitaccess.settings import Settings; "
    script += "configure_logging(Settings().log_format); logging.getLogger('jitaccess').info('hello')"
    env = {k: v for k, v in python_env().items() if k != "JITACCESS_LOG_FORMAT"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True, timeout=60
    )
    assert result.stderr.rstrip().endswith("INFO jitaccess: hello")
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stderr)


def _grant(reason: str, expiration: str = "2025-11-23T11:58:00Z") -> kopf.Body:
    return kopf.Body(
        {
            "metadata": {"name": "alice-1"},
            "spec": {"user": "alice", "entitlement": "prod-payments", "groupName": "prod-payments"},
            "status": {
                "expirationTime": expiration,
                "conditions": [{"type": "Ready", "status": str(reason == "Active"), "reason": reason}],
            },
        }
    )


def test_the_grant_watch_keeps_each_active_grants_expiration_time() -> None:
    """On every replica (the indexes are the admission part's): until the grant ends or is deleted."""
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    memo = kopf.Memo(runtime=rt)

    def seen(kind: str | None, body: kopf.Body) -> list[datetime]:
        asyncio.run(indexes.observe_grant(type=kind, body=body, memo=memo))
        return [when for key in rt.expirations for when in rt.expirations.get(key, ())]

    assert seen(None, _grant("Provisioning")) == []
    assert seen(None, _grant("Active")) == [datetime(2025, 11, 23, 11, 58, tzinfo=UTC)]
    assert seen("MODIFIED", _grant("Active", "2025-11-23T12:30:00Z")) == [datetime(2025, 11, 23, 12, 30, tzinfo=UTC)]
    assert seen("MODIFIED", _grant("Expired")) == []
    assert seen(None, _grant("Active")) and seen("DELETED", _grant("Active")) == []


def test_entitlements_and_catalogs_by_readiness() -> None:
    state = State(
        readiness={
            ("entitlements", "true", "Resolved"): 3,
            ("entitlements", "false", "GroupNotFound"): 1,
            ("entitlements", "false", "OwnerNotFound"): 0,  # none left: no series
            ("permissioncatalogs", "false", "ProvisioningFailed"): 2,
        }
    )
    assert gauges(state) == {
        ("jitaccess_entitlements", (("ready", "false"), ("reason", "GroupNotFound"))): 1,
        ("jitaccess_entitlements", (("ready", "true"), ("reason", "Resolved"))): 3,
        ("jitaccess_permission_catalogs", (("ready", "false"), ("reason", "ProvisioningFailed"))): 2,
    }


def _entitlement(ready: str | None, reason: str = "", name: str = "prod-payments") -> kopf.Body:
    conditions = [] if ready is None else [{"type": "Ready", "status": ready, "reason": reason}]
    return kopf.Body({"metadata": {"name": name}, "spec": {}, "status": {"conditions": conditions}})


def test_the_watch_keeps_each_entitlements_and_catalogs_readiness() -> None:
    """Every replica's (the admission part's watch): a group deleted in AWS shows at once, and a
    deleted Entitlement leaves no series behind."""
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    memo = kopf.Memo(runtime=rt)

    def counted() -> dict[tuple[str, str, str], int]:
        return dict(take_snapshot(ObjectIndex(), ObjectIndex(), readiness=rt.readiness).readiness)

    asyncio.run(indexes.observe_entitlement(type=None, body=_entitlement(None), memo=memo))
    asyncio.run(indexes.observe_catalog(type=None, body=_entitlement("True", "Provisioned", "payments"), memo=memo))
    assert counted() == {("entitlements", "unknown", ""): 1, ("permissioncatalogs", "true", "Provisioned"): 1}
    asyncio.run(indexes.observe_entitlement(type="MODIFIED", body=_entitlement("True", "Resolved"), memo=memo))
    asyncio.run(
        indexes.observe_entitlement(type=None, body=_entitlement("False", "GroupNotFound", "ledger"), memo=memo)
    )
    assert counted() == {
        ("entitlements", "true", "Resolved"): 1,
        ("entitlements", "false", "GroupNotFound"): 1,
        ("permissioncatalogs", "true", "Provisioned"): 1,
    }
    asyncio.run(
        indexes.observe_entitlement(type="DELETED", body=_entitlement("False", "GroupNotFound", "ledger"), memo=memo)
    )
    assert counted() == {("entitlements", "true", "Resolved"): 1, ("permissioncatalogs", "true", "Provisioned"): 1}


def test_break_glass_reviews_overdue_by_entitlement() -> None:
    """Every replica's, at each scrape, from the review deadlines: one reviewed or deleted is no
    longer counted, on the replica that was the leader too."""
    state = State(review_deadlines={"prod-payments": [NOW - timedelta(minutes=1), NOW, NOW + timedelta(hours=1)]})
    assert gauges(state) == {("jitaccess_break_glass_unreviewed", (("entitlement", "prod-payments"),)): 2}


def _break_glass(name: str, entitlement: str, reviewed: bool = False) -> kopf.Body:
    conditions = [{"type": "Reviewed", "status": str(reviewed), "reason": "Reviewed" if reviewed else "AwaitingReview"}]
    return kopf.Body(
        {
            "metadata": {"name": name},
            "spec": {"entitlement": entitlement, "requester": "bob", "breakGlass": True},
            "status": {"reviewDeadline": "2025-11-23T11:00:00Z", "conditions": conditions},
        }
    )


def test_the_request_watch_keeps_the_break_glass_reviews_on_every_replica() -> None:
    """The admission part's watch (every replica, leader or not) keeps the break-glass requests
    awaiting review; the gauge counts them for the Entitlements that exist."""
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    memo = kopf.Memo(runtime=rt)

    def unreviewed() -> dict[str, list[datetime]]:
        state = take_snapshot(ObjectIndex(), ObjectIndex(), readiness=rt.readiness, break_glass=rt.break_glass)
        return {entitlement: list(deadlines) for entitlement, deadlines in state.review_deadlines.items()}

    for entitlement in ("prod-payments", "prod-ledger"):
        asyncio.run(
            indexes.observe_entitlement(type=None, body=_entitlement("True", "Resolved", entitlement), memo=memo)
        )
    asyncio.run(indexes.observe_request(type=None, body=_break_glass("bob-1", "prod-payments"), memo=memo))
    asyncio.run(indexes.observe_request(type=None, body=_break_glass("bob-2", "prod-ledger"), memo=memo))
    due = datetime(2025, 11, 23, 11, 0, tzinfo=UTC)
    assert unreviewed() == {"prod-payments": [due], "prod-ledger": [due]}
    assert (
        gauges(take_snapshot(ObjectIndex(), ObjectIndex(), readiness=rt.readiness, break_glass=rt.break_glass))[
            ("jitaccess_break_glass_unreviewed", (("entitlement", "prod-ledger"),))
        ]
        == 1
    )
    # Reviewed: no longer waiting. Its Entitlement deleted: no timer, no reviewer, no series.
    asyncio.run(indexes.observe_request(type="MODIFIED", body=_break_glass("bob-1", "prod-payments", True), memo=memo))
    asyncio.run(
        indexes.observe_entitlement(type="DELETED", body=_entitlement("True", "Resolved", "prod-ledger"), memo=memo)
    )
    assert unreviewed() == {}


def _overlapping(name: str, status: str | None, reason: str = "") -> kopf.Body:
    conditions = [] if status is None else [{"type": "Overlapping", "status": status, "reason": reason}]
    return kopf.Body({"metadata": {"name": name}, "spec": {}, "status": {"conditions": conditions}})


def test_the_watch_counts_the_entitlements_that_overlap_by_reason() -> None:
    """Every replica's: those whose `Overlapping` is True, by reason; cleared or deleted ones are not counted."""
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    memo = kopf.Memo(runtime=rt)

    def seen(kind: str | None, body: kopf.Body) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        asyncio.run(indexes.observe_entitlement(type=kind, body=body, memo=memo))
        state = take_snapshot(ObjectIndex(), ObjectIndex(), overlapping=rt.overlapping)
        return {k: v for k, v in gauges(state).items() if k[0] == "jitaccess_entitlements_overlapping"}

    assert seen(None, _overlapping("a", None)) == {}
    assert seen(None, _overlapping("a", "True", "SameAccess")) == {
        ("jitaccess_entitlements_overlapping", (("reason", "SameAccess"),)): 1
    }
    seen(None, _overlapping("b", "True", "SameAccess"))
    assert seen(None, _overlapping("c", "True", "Duplicate")) == {
        ("jitaccess_entitlements_overlapping", (("reason", "Duplicate"),)): 1,
        ("jitaccess_entitlements_overlapping", (("reason", "SameAccess"),)): 2,
    }
    seen("MODIFIED", _overlapping("a", "False", "NoOverlap"))
    assert seen("DELETED", _overlapping("c", "True", "Duplicate")) == {
        ("jitaccess_entitlements_overlapping", (("reason", "SameAccess"),)): 1
    }


def test_a_grant_created_again_under_an_ended_ones_name_holds_its_membership() -> None:
    """A request withdrawn, deleted and created again by name makes a grant of the same name within
    minutes: the name no longer stands for the ended grant, or the drift scan and other grants' ends
    would take its member for one nobody backs."""
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    memo = kopf.Memo(runtime=rt)

    def grant(uid: str, reason: str) -> kopf.Body:
        return kopf.Body(
            {
                "metadata": {"name": "alice-1", "uid": uid},
                "spec": {"entitlement": "prod", "user": "alice@example.com", "userId": "u-a", "groupName": "g"},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": reason}]},
            }
        )

    rt.mark_ended("alice-1", ("u-a", "g"), uid="uid-old")
    asyncio.run(indexes.observe_grant(type="MODIFIED", body=grant("uid-old", "Active"), memo=memo))
    assert "alice-1" in rt.recently_ended(), "the index has not caught up with the end yet"
    asyncio.run(indexes.observe_grant(type="ADDED", body=grant("uid-new", "Provisioning"), memo=memo))
    assert "alice-1" not in rt.recently_ended()

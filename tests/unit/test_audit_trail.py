"""The audit trail (handlers/archive.py) against an in-memory bucket and cluster: batches written
once by record id through S3 failures, a crash between a write and its marks, and stale events."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import kopf
import pytest

from jitaccess import metrics
from jitaccess.adapters.archive import Archive, ArchiveUnavailable
from jitaccess.adapters.kube import Kube
from jitaccess.api import audit, limits, names, wire
from jitaccess.domain import chain
from jitaccess.domain import notifications as notify
from jitaccess.handlers import archive as trail_module
from jitaccess.handlers.archive import AuditTrail
from jitaccess.handlers.notifications import config_of
from jitaccess.settings import load as load_settings
from tests.unit.factories import lands, selected

PREFIX = "audit"


class Bucket:
    """What the trail needs of `Archive`: conditional PUTs, listing by write time, reads."""

    prefix = PREFIX
    bucket = "test-bucket"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.fail_next: list[str] = []  # "before" (nothing written) or "after" (written, then an error)
        self.reads: list[str] = []  # the keys read back (`get`), in order

    def put_new(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> bool:
        failure = self.fail_next.pop(0) if self.fail_next else ""
        if failure == "before":
            raise ArchiveUnavailable("InternalError (500)")
        if key in self.objects:
            return False
        self.objects[key] = data
        self.metadata[key] = dict(metadata or {})
        if failure == "after":
            raise ArchiveUnavailable("InternalError (500) after writing")
        return True

    def keys_written(self, since: datetime, until: datetime) -> list[str]:
        return sorted(k for k in self.objects if since <= (audit.written_at(k) or since) <= until)

    def get(self, key: str) -> bytes:
        self.reads.append(key)
        return self.objects[key]

    def read(self, key: str) -> tuple[bytes, dict[str, str]]:
        return self.objects[key], self.metadata.get(key, {})

    def latest_key(self) -> str | None:
        return max(self.objects, default=None)

    def stored(self) -> list[chain.Stored]:
        return [chain.Stored(key, data, self.metadata.get(key, {})) for key, data in sorted(self.objects.items())]

    def ids(self) -> list[str]:
        return [rid for data in self.objects.values() for rid in audit.ids_in(data)[0]]


class Cluster:
    """What the trail needs of `Kube`: status writes (read-modify-write) on stored objects."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.down = False
        self.writes = 0  # status writes asked for (those with nothing to change included)

    def add(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[(plural, obj["metadata"]["name"])] = obj
        return copy.deepcopy(obj)

    def update_status(
        self, plural: str, name: str, change: Any, current: Any = None, *, uid: Any = None
    ) -> dict[str, Any] | None:
        if self.down:
            raise RuntimeError("the API server is not answering")
        obj = self.objects.get((plural, name))
        if obj is None or not lands(obj, uid, current):
            return None
        self.writes += 1
        fields = change(copy.deepcopy(obj))
        if fields is None:
            return None
        obj.setdefault("status", {}).update(fields)
        return copy.deepcopy(obj)

    def list(self, plural: str, label_selector: str = "", *, fields: Any = None, **_: Any) -> list[dict[str, Any]]:
        return selected(self.objects, plural, fields)

    def remove_finalizer(self, plural: str, name: str, uid: str, finalizer: str) -> bool:
        if self.down:
            raise RuntimeError("the API server is not answering")
        obj = self.objects.get((plural, name))
        finalizers = (obj or {}).get("metadata", {}).get("finalizers") or []
        if obj is None or obj["metadata"]["uid"] != uid or finalizer not in finalizers:
            return False
        obj["metadata"]["finalizers"] = [f for f in finalizers if f != finalizer]
        if not obj["metadata"]["finalizers"] and obj["metadata"].get("deletionTimestamp"):
            del self.objects[(plural, name)]  # the API server lets it go
        return True


def request(name: str, uid: str, **status: Any) -> dict[str, Any]:
    return {
        "kind": names.ACCESS_REQUEST,
        "metadata": {"name": name, "uid": uid, "creationTimestamp": "2026-11-23T12:00:00Z"},
        "spec": {"entitlement": "prod-payments", "reason": "INC-1", "requester": "bob"},
        "status": status,
    }


APPROVED = {
    "conditions": [
        {"type": "Approved", "status": "True", "reason": "AutoApproved", "lastTransitionTime": "2026-11-23T12:00:01Z"}
    ]
}


@pytest.fixture
def bucket() -> Bucket:
    return Bucket()


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


def trail_over(bucket: Bucket | None, cluster: Cluster, batch_records: int = 500) -> AuditTrail:
    return AuditTrail(cast(Kube, cluster), cast(Archive, bucket), batch_records=batch_records)


@pytest.fixture
def trail(bucket: Bucket, cluster: Cluster) -> Iterator[AuditTrail]:
    made = trail_over(bucket, cluster)
    yield made
    made.close()


def test_records_go_out_once_and_are_marked_in_status(trail: AuditTrail, bucket: Bucket, cluster: Cluster) -> None:
    stale = cluster.add(names.REQUESTS, request("r1", "u1", **APPROVED))
    assert [r["id"] for r in trail.offer(names.REQUESTS, stale)] == ["u1/requested", "u1/approved"]
    assert trail.flush() == 2
    assert bucket.ids() == ["u1/requested", "u1/approved"]
    stored = cluster.objects[(names.REQUESTS, "r1")]
    assert stored["status"]["archivedRecords"] == ["approved", "requested"]
    # The event of the mark, and a stale one from before it: nothing new to write.
    assert trail.offer(names.REQUESTS, stored) == [] and trail.offer(names.REQUESTS, stale) == []
    assert trail.flush() == 0 and len(bucket.objects) == 1
    assert audit.unarchived(stored) == []


def test_an_extensions_records_are_archived_and_marked_on_the_extension(
    trail: AuditTrail, bucket: Bucket, cluster: Cluster
) -> None:
    denied = {
        "kind": names.ACCESS_EXTENSION,
        "metadata": {"name": "r1-ext-1", "uid": "x1", "creationTimestamp": "2026-11-23T12:00:00Z"},
        "spec": {"grant": "r1", "duration": "30m", "reason": "INC-1 more", "requester": "bob"},
        "status": {
            "deniedBy": "paula",
            "conditions": [
                {"type": "Denied", "status": "True", "reason": "Denied", "lastTransitionTime": "2026-11-23T12:01:00Z"},
                {"type": "Ready", "status": "False", "reason": "Denied", "lastTransitionTime": "2026-11-23T12:01:00Z"},
            ],
        },
    }
    offered = trail.offer(names.EXTENSIONS, cluster.add(names.EXTENSIONS, denied))
    assert [r["id"] for r in offered] == ["x1/extension-requested", "x1/extension-denied"]
    assert trail.flush() == 2 and bucket.ids() == ["x1/extension-requested", "x1/extension-denied"]
    stored = cluster.objects[(names.EXTENSIONS, "r1-ext-1")]
    assert stored["status"]["archivedRecords"] == ["extension-denied", "extension-requested"]
    assert audit.unarchived(stored) == []


def test_batches_hold_at_most_batch_records(bucket: Bucket, cluster: Cluster) -> None:
    trail = trail_over(bucket, cluster, batch_records=3)
    for n in range(4):
        trail.offer(names.REQUESTS, cluster.add(names.REQUESTS, request(f"r{n}", f"u{n}", **APPROVED)))
    while trail.flush():
        pass
    trail.close()
    assert sorted(len(audit.ids_in(data)[0]) for data in bucket.objects.values()) == [2, 3, 3]
    assert sorted(bucket.ids()) == sorted(f"u{n}/{a}" for n in range(4) for a in ("requested", "approved"))


def test_a_failed_write_is_retried_as_it_was_and_a_landed_one_is_not_written_twice(
    trail: AuditTrail, bucket: Bucket, cluster: Cluster
) -> None:
    trail.offer(names.REQUESTS, cluster.add(names.REQUESTS, request("r1", "u1")))
    bucket.fail_next = ["before", "after"]
    with pytest.raises(ArchiveUnavailable):
        trail.flush()
    # Meanwhile more records come; the failed batch is retried first, unchanged.
    trail.offer(names.REQUESTS, cluster.add(names.REQUESTS, request("r2", "u2")))
    with pytest.raises(ArchiveUnavailable):
        trail.flush()  # written, but answered with an error
    assert trail.flush() == 1  # 412: it is there
    assert trail.flush() == 1
    assert sorted(bucket.ids()) == ["u1/requested", "u2/requested"]
    assert len(bucket.objects) == 2


def test_a_crash_between_the_write_and_the_marks_sends_nothing_twice(bucket: Bucket, cluster: Cluster) -> None:
    first = trail_over(bucket, cluster)
    first.offer(names.REQUESTS, cluster.add(names.REQUESTS, request("r1", "u1", **APPROVED)))
    cluster.down = True
    first.flush()  # written; the marks fail, and then the operator dies
    first.close()
    assert "archivedRecords" not in cluster.objects[(names.REQUESTS, "r1")]["status"]
    cluster.down = False
    # The next life derives the same records again from the cluster, plus a new one.
    second = trail_over(bucket, cluster)
    second.offer(names.REQUESTS, copy.deepcopy(cluster.objects[(names.REQUESTS, "r1")]))
    second.offer(names.REQUESTS, cluster.add(names.REQUESTS, request("r2", "u2")))
    while second.flush():
        pass
    second.close()
    assert sorted(bucket.ids()) == ["u1/approved", "u1/requested", "u2/requested"]
    assert cluster.objects[(names.REQUESTS, "r1")]["status"]["archivedRecords"] == ["approved", "requested"]


def test_marks_that_failed_are_written_with_a_later_batch(trail: AuditTrail, cluster: Cluster) -> None:
    trail.offer(names.REQUESTS, cluster.add(names.REQUESTS, request("r1", "u1")))
    cluster.down = True
    trail.flush()
    cluster.down = False
    trail.flush()
    assert cluster.objects[(names.REQUESTS, "r1")]["status"]["archivedRecords"] == ["requested"]


def test_without_a_bucket_records_are_printed_once_per_process_and_not_marked(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    def printed() -> list[str]:
        return [r.__dict__["audit"]["id"] for r in caplog.records if r.name == "jitaccess.audit"]

    trail = trail_over(None, cluster)
    stored = cluster.add(names.REQUESTS, request("r1", "u1", **APPROVED))
    cluster.down = True  # no status write is made: any would fail the flush
    with caplog.at_level(logging.INFO, logger="jitaccess.audit"):
        trail.offer(names.REQUESTS, stored)
        assert trail.flush() == 0 and trail.pending() == 0
        # Every later event of the object (it is never marked) finds its records printed.
        assert trail.offer(names.REQUESTS, copy.deepcopy(stored)) == []
        assert printed() == ["u1/requested", "u1/approved"]
        assert caplog.records[1].getMessage() == "audit approved AccessRequest/r1 by system:jitaccess"
        assert "archivedRecords" not in cluster.objects[(names.REQUESTS, "r1")]["status"]
        # A restarted operator prints them again (docs/audit.md: consumers de-duplicate by id).
        again = trail_over(None, cluster)
        assert [r["id"] for r in again.offer(names.REQUESTS, copy.deepcopy(stored))] == ["u1/requested", "u1/approved"]
        again.close()
        # Deleted: its ids are let go (no event of it comes again), as an offer shows.
        trail.forget(names.REQUESTS, stored)
        assert len(trail.offer(names.REQUESTS, stored)) == 2
        trail.close()
    assert printed() == ["u1/requested", "u1/approved"] * 3


def test_with_a_bucket_a_deleted_objects_ids_are_kept_for_the_crash_checks(trail: AuditTrail, cluster: Cluster) -> None:
    stored = cluster.add(names.REQUESTS, request("r1", "u1"))
    trail.offer(names.REQUESTS, stored)
    trail.flush()
    trail.forget(names.REQUESTS, stored)
    assert trail.offer(names.REQUESTS, stored) == []


def _entitlement_with(*removals: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": names.ENTITLEMENT,
        "metadata": {"name": "prod-payments", "uid": "e1"},
        "spec": {"owner": "payments", "identityCenter": {"groupName": "g"}},
        "status": {"driftRemovals": list(removals)},
    }


def test_without_a_bucket_drift_removals_still_leave_the_entitlements_status(cluster: Cluster) -> None:
    trail = trail_over(None, cluster)
    removal = {"membershipId": "m1", "userId": "uid-eve", "user": "eve", "time": "2026-11-23T12:00:00Z"}
    entitlement = _entitlement_with(removal)
    trail.offer(names.ENTITLEMENTS, cluster.add(names.ENTITLEMENTS, entitlement))
    assert trail.flush() == 1
    trail.close()
    assert cluster.objects[(names.ENTITLEMENTS, "prod-payments")]["status"]["driftRemovals"] == []


def test_archived_drift_removals_leave_the_entitlements_status(trail: AuditTrail, cluster: Cluster) -> None:
    removal = {"membershipId": "m1", "userId": "uid-eve", "user": "eve", "time": "2026-11-23T12:00:00Z"}
    entitlement = _entitlement_with(removal, {**removal, "membershipId": "m2"})
    trail.offer(names.ENTITLEMENTS, cluster.add(names.ENTITLEMENTS, entitlement))
    assert trail.flush() == 2
    assert cluster.objects[(names.ENTITLEMENTS, "prod-payments")]["status"]["driftRemovals"] == []


def _catalog_with(*removals: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": names.PERMISSION_CATALOG,
        "metadata": {"name": "payments", "uid": "c1"},
        "spec": {"region": "eu-west-1", "baseline": {"groupName": "eng-payments", "accounts": ["111122223333"]}},
        "status": {"driftRemovals": list(removals)},
    }


ASSIGNMENT_REMOVAL = {
    "permissionSetArn": "arn:aws:sso:::permissionSet/ssoins-1/ps-1",
    "account": "111122223333",
    "principalType": "USER",
    "principalId": "uid-eve",
    "firstSeen": "2026-11-23T12:00:00Z",
    "time": "2026-11-23T12:00:01Z",
}


def test_archived_assignment_drift_removals_leave_the_catalogs_status_and_one_under_way_stays(
    trail: AuditTrail, bucket: Bucket, cluster: Cluster
) -> None:
    under_way = {**ASSIGNMENT_REMOVAL, "principalId": "uid-bob", "time": None}
    other = {**ASSIGNMENT_REMOVAL, "account": "444455556666"}
    catalog = _catalog_with(ASSIGNMENT_REMOVAL, other, {k: v for k, v in under_way.items() if v})
    trail.offer(names.CATALOGS, cluster.add(names.CATALOGS, catalog))
    assert trail.flush() == 2
    key = audit.assignment_removal_key(ASSIGNMENT_REMOVAL)
    assert f"c1/{audit.ASSIGNMENT_DRIFT_REMOVED}/{key}" in bucket.ids()
    assert [r["principalId"] for r in cluster.objects[(names.CATALOGS, "payments")]["status"]["driftRemovals"]] == [
        "uid-bob"
    ], "the removal under way has no record yet, and stays"


def test_without_a_bucket_assignment_drift_removals_still_leave_the_catalogs_status(cluster: Cluster) -> None:
    trail = trail_over(None, cluster)
    trail.offer(names.CATALOGS, cluster.add(names.CATALOGS, _catalog_with(ASSIGNMENT_REMOVAL)))
    assert trail.flush() == 1
    trail.close()
    assert cluster.objects[(names.CATALOGS, "payments")]["status"]["driftRemovals"] == []


SLACK_AND_SINK = notify.Config(slack=True, webhook=True, security_channel="C0SECURITY")


def _told(plural: str, name: str, cluster: Cluster, *keys: str) -> dict[str, Any]:
    """What the notifier does once it delivered: list `keys` as sent (a status write, then its watch event)."""
    obj = cluster.objects[(plural, name)]
    sent = obj["status"].setdefault("notifications", {}).setdefault("sent", [])
    sent.extend(keys)
    return copy.deepcopy(obj)


@pytest.mark.parametrize("archived", [True, False], ids=["archive", "no archive"])
def test_an_archived_drift_removal_stays_until_told_to_every_target_then_leaves_with_its_keys(
    bucket: Bucket, cluster: Cluster, archived: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Its notices are derived from the entry: had it left with its record archived (or, without an
    archive, printed: at once), a notice still waiting then would be told by no restarted operator
    and no new leader. It stays, its record listed as archived (not written or printed again after
    a restart), until the notices of every configured target are delivered."""
    store = bucket if archived else None
    trail = AuditTrail(cast(Kube, cluster), cast(Archive, store), notices=SLACK_AND_SINK)
    key = f"{audit.ASSIGNMENT_DRIFT_REMOVED}/{audit.assignment_removal_key(ASSIGNMENT_REMOVAL)}"
    trail.offer(names.CATALOGS, cluster.add(names.CATALOGS, _catalog_with(ASSIGNMENT_REMOVAL)))
    assert trail.flush() == 1
    stored = cluster.objects[(names.CATALOGS, "payments")]
    assert stored["status"]["driftRemovals"] == [ASSIGNMENT_REMOVAL] and stored["status"]["archivedRecords"] == [key]
    # A restarted operator (or a new leader) neither archives nor prints it again: the status says it is.
    with caplog.at_level(logging.INFO, logger="jitaccess.audit"):
        # Only what the restarted one prints: the first printed it (captured too when an earlier test
        # of the session left the audit logger at INFO).
        caplog.clear()
        later = AuditTrail(cast(Kube, cluster), cast(Archive, store), notices=SLACK_AND_SINK)
        assert later.offer(names.CATALOGS, copy.deepcopy(stored)) == []
    assert not [r for r in caplog.records if r.name == "jitaccess.audit"]
    # Told to the security channel only: the sink's notice still waits, and so does the entry.
    later.settle(names.CATALOGS, _told(names.CATALOGS, "payments", cluster, f"slack:security:{key}"))
    later.flush()
    assert cluster.objects[(names.CATALOGS, "payments")]["status"]["driftRemovals"] == [ASSIGNMENT_REMOVAL]
    later.settle(names.CATALOGS, _told(names.CATALOGS, "payments", cluster, f"webhook:{key}", "webhook:other"))
    later.flush()
    status = cluster.objects[(names.CATALOGS, "payments")]["status"]
    assert (status["driftRemovals"], status["archivedRecords"]) == ([], [])
    assert status["notifications"]["sent"] == ["webhook:other"], "the keys of the removal leave with it"
    # Settled: the watch event of that write asks for nothing more.
    later.settle(names.CATALOGS, copy.deepcopy(cluster.objects[(names.CATALOGS, "payments")]))
    assert later._unmarked == {}
    later.close()
    trail.close()
    if archived:
        assert bucket.ids() == [f"c1/{key}"], "archived once"


def test_an_entitlements_drift_removal_waits_for_the_targets_configured_now(bucket: Bucket, cluster: Cluster) -> None:
    """Only the targets configured count: with the sink alone, the sink's notice; an operator
    started with notifications turned off since lets a removal that waited for them go at once."""
    removal = {"membershipId": "m1", "userId": "uid-eve", "user": "eve", "time": "2026-11-23T12:00:00Z"}
    entitlement = _entitlement_with(removal)
    sink_only = AuditTrail(cast(Kube, cluster), cast(Archive, bucket), notices=notify.Config(webhook=True))
    sink_only.offer(names.ENTITLEMENTS, cluster.add(names.ENTITLEMENTS, entitlement))
    sink_only.flush()
    sink_only.close()
    stored = cluster.objects[(names.ENTITLEMENTS, "prod-payments")]
    assert stored["status"]["driftRemovals"] == [removal]
    assert stored["status"]["archivedRecords"] == ["drift-removed/m1"]
    # Restarted with no notification target at all: the listing's watch event lets it go.
    quiet = trail_over(bucket, cluster)
    assert quiet.offer(names.ENTITLEMENTS, copy.deepcopy(stored)) == []
    quiet.settle(names.ENTITLEMENTS, copy.deepcopy(stored))
    quiet.flush()
    quiet.close()
    assert stored["status"]["driftRemovals"] == [] and stored["status"]["archivedRecords"] == []
    assert bucket.ids() == ["e1/drift-removed/m1"]


def test_drift_removals_waiting_for_a_target_that_stays_down_are_bounded(
    trail: AuditTrail, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """At most `limits.DRIFT_REMOVALS_HELD_FOR_NOTICES` archived entries wait for their notices: the
    oldest beyond it leave untold (their audit records are complete), with a warning that says so.
    Removals under way and those not archived yet are not counted, and never held back."""
    trail.notices = SLACK_AND_SINK
    held = limits.DRIFT_REMOVALS_HELD_FOR_NOTICES
    start = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def removal(n: int) -> dict[str, Any]:
        at = (start + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {**ASSIGNMENT_REMOVAL, "principalId": f"uid-{n:03}", "firstSeen": at, "time": at}

    under_way = {k: v for k, v in removal(999).items() if k != "time"}
    removals = [removal(n) for n in range(held + 3)]
    trail.offer(names.CATALOGS, cluster.add(names.CATALOGS, _catalog_with(*reversed(removals), under_way)))
    with caplog.at_level(logging.WARNING):
        assert trail.flush() == held + 3
    status = cluster.objects[(names.CATALOGS, "payments")]["status"]
    left = sorted(r["principalId"] for r in status["driftRemovals"])
    assert left == [f"uid-{n:03}" for n in range(3, held + 3)] + ["uid-999"], "the three oldest left"
    assert len(status["archivedRecords"]) == held
    (warning,) = [r.getMessage() for r in caplog.records if "before their notices were delivered" in r.getMessage()]
    assert "permissioncatalogs/payments: 3 drift removal(s)" in warning and "uid-000" in warning


def test_the_queue_and_its_oldest_record_for_the_gauges_and_each_put_counted(
    trail: AuditTrail, bucket: Bucket, cluster: Cluster
) -> None:
    """`backlog` is what waits (pending or in a batch S3 refused) and since when the oldest has
    been queued; written, it leaves. Each PUT written counts `ok` (failures: `run`, below)."""
    assert trail.backlog() == (0, None)
    before = trail_module._now()
    trail.offer(names.REQUESTS, cluster.add(names.REQUESTS, request("r1", "u1", **APPROVED)))
    count, since = trail.backlog()
    assert count == 2 and since is not None and before <= since <= trail_module._now()
    ok, failed = (metrics.AUDIT_ARCHIVE_WRITES.labels(o)._value.get() for o in ("ok", "failed"))
    bucket.fail_next = ["before"]
    with pytest.raises(ArchiveUnavailable):
        trail.flush()
    trail.offer(names.REQUESTS, cluster.add(names.REQUESTS, request("r2", "u2")))
    assert trail.backlog() == (3, since)  # the failed batch still waits, and the oldest with it
    assert trail.flush() == 2 and trail.backlog()[0] == 1
    assert trail.flush() == 1 and trail.backlog() == (0, None)
    assert metrics.AUDIT_ARCHIVE_WRITES.labels("failed")._value.get() == failed  # counted by `run` alone
    assert metrics.AUDIT_ARCHIVE_WRITES.labels("ok")._value.get() == ok + 2


async def test_every_failed_try_counts_whichever_s3_call_failed(
    bucket: Bucket, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`failed` counts each try of a batch that S3 refused, in the PUT or in the listing and reads
    before it (ListObjectsV2, GetObject): JitaccessAuditArchiveStuck's text points at it."""
    monkeypatch.setattr(trail_module, "MAX_BACKOFF_SECONDS", 0.01)
    listings = ["ListObjectsV2 audit/: AccessDenied (403)", "GetObject audit/x: InternalError (500)"]
    listed = bucket.keys_written

    def keys_written(since: datetime, until: datetime) -> list[str]:
        if listings:
            raise ArchiveUnavailable(listings.pop(0))
        return listed(since, until)

    monkeypatch.setattr(bucket, "keys_written", keys_written)
    bucket.fail_next = ["before"]  # and then the PUT
    trail = trail_over(bucket, cluster)
    trail.batch_seconds = 0.01
    ok, failed = (metrics.AUDIT_ARCHIVE_WRITES.labels(o)._value.get() for o in ("ok", "failed"))
    trail.offer(names.REQUESTS, cluster.add(names.REQUESTS, request("r1", "u1")))
    with ThreadPoolExecutor(1) as writer:
        task = asyncio.create_task(trail.run(writer))
        try:
            for _ in range(500):
                if not trail.pending():
                    break
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            trail.close()
    assert bucket.ids() == ["u1/requested"]
    assert metrics.AUDIT_ARCHIVE_WRITES.labels("failed")._value.get() == failed + 3
    assert metrics.AUDIT_ARCHIVE_WRITES.labels("ok")._value.get() == ok + 1


def test_an_object_that_is_no_batch_of_ours_does_not_stop_the_archiving(
    bucket: Bucket, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    # Someone else's object in the folder the trail reads back (the key of a batch, the body not),
    # and a record of ours holding a raw line separator, which a split on lines would cut in two.
    first = trail_over(bucket, cluster)
    first.offer(names.REQUESTS, cluster.add(names.REQUESTS, request("r1", "u1")))
    assert first.flush() == 1
    first.close()
    [ours] = bucket.objects
    bucket.objects[ours] = bucket.objects[ours].replace(b'"INC-1"', '"INC-1\u2028x"'.encode())
    foreign = ours.replace(".jsonl", "0.jsonl")
    bucket.objects[foreign] = b'this is not json\n{"no": "id"}\n'
    second = trail_over(bucket, cluster)
    second.offer(names.REQUESTS, copy.deepcopy(cluster.objects[(names.REQUESTS, "r1")]))
    second.offer(names.REQUESTS, cluster.add(names.REQUESTS, request("r2", "u2")))
    with caplog.at_level(logging.WARNING, logger=trail_module.__name__):
        while second.flush():
            pass
    second.close()
    # r1's record was read back (not written again), r2's written, and the foreign object named.
    assert sorted(
        r for d in (bucket.objects[k] for k in bucket.objects if k != foreign) for r in audit.ids_in(d)[0]
    ) == [
        "u1/requested",
        "u2/requested",
    ]
    assert any(foreign in m and "2 line(s)" in m for m in caplog.messages), caplog.messages


def test_each_batch_names_the_one_before_it_and_a_restarted_trail_continues_the_chain(
    bucket: Bucket, cluster: Cluster
) -> None:
    first = trail_over(bucket, cluster, batch_records=2)
    for n in range(3):
        first.offer(names.REQUESTS, cluster.add(names.REQUESTS, request(f"r{n}", f"u{n}", **APPROVED)))
    # A PUT that lands but is answered with an error: retried as named (412), and the next batch
    # follows it; the head moves only once the batch is in.
    bucket.fail_next = ["after"]
    with pytest.raises(ArchiveUnavailable):
        first.flush()
    assert first.flush() == 2
    while first.flush():
        pass
    first.close()
    second = trail_over(bucket, cluster)  # a restart, or a new leader
    second.offer(names.REQUESTS, cluster.add(names.REQUESTS, request("r9", "u9")))
    assert second.flush() == 1
    second.close()
    keys = sorted(bucket.objects)
    assert len(keys) == 4
    links = [bucket.metadata[key][chain.PREVIOUS] for key in keys]
    assert links[0] == ""
    for before, link in zip(keys[:-1], links[1:], strict=True):
        assert link == chain.link_to(before, bucket.objects[before], bucket.metadata[before]).text()
    for key in keys:
        assert bucket.metadata[key][chain.DIGEST] == chain.digest(bucket.objects[key])
    assert [f for f in chain.verify(bucket.stored(), lambda _: None) if f.problem] == []


def test_a_chain_that_continues_from_an_object_not_written_as_a_batch_says_so(
    bucket: Bucket, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    bucket.objects["audit/v1/2026/12/02/20261202T000001.000000Z-made-up.jsonl"] = b'{"id": "made-up"}\n'
    trail = trail_over(bucket, cluster)
    trail.offer(names.REQUESTS, cluster.add(names.REQUESTS, request("r1", "u1")))
    with caplog.at_level(logging.INFO, logger=trail_module.log.name):
        assert trail.flush() == 1
    trail.close()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        "audit archive: the chain continues from s3://test-bucket/audit/v1/2026/12/02/20261202T000001.000000Z-made-up"
        ".jsonl, the newest object there, which has no jitaccess digest: check the archive with kubectl jit audit "
        "--verify"
    ]


def test_a_batch_is_dated_after_the_one_it_follows_when_another_replicas_clock_is_ahead() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    ahead = chain.Link(audit.archive_key(PREFIX, now + timedelta(seconds=3), "x"), "0" * 64)
    assert trail_module._after(ahead, now) == now + timedelta(seconds=3, microseconds=1)
    behind = chain.Link(audit.archive_key(PREFIX, now - timedelta(seconds=3), "x"), "0" * 64)
    assert trail_module._after(behind, now) == now
    # Further ahead than clocks differ: not followed (a key dated in the future is put there by hand).
    far = chain.Link(audit.archive_key(PREFIX, now + timedelta(hours=1), "x"), "0" * 64)
    assert trail_module._after(far, now) == now
    assert trail_module._after(None, now) == now


class Retained:
    """What retention reads of the cluster: objects by kind and name, extensions selected by grant
    (`Kube.list` gives only those selected, from a server that can select by the field or not)."""

    def __init__(self, *objects: tuple[str, dict[str, Any]]) -> None:
        self.objects = {(plural, obj["metadata"]["name"]): obj for plural, obj in objects}

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((plural, name))

    def list(self, plural: str, label_selector: str = "", *, fields: Any = None) -> list[dict[str, Any]]:
        return [
            obj for (kind, _), obj in self.objects.items() if kind == plural and wire.selected_by(obj, fields or {})
        ]


def test_retention_waits_for_the_records_of_a_grants_extensions(cluster: Cluster) -> None:
    from types import SimpleNamespace

    from jitaccess.handlers import schedules
    from jitaccess.handlers.indexes import Ended

    def of(kind: str, name: str, uid: str, spec: dict[str, Any], **status: Any) -> dict[str, Any]:
        return {"kind": kind, "metadata": {"name": name, "uid": uid, "creationTimestamp": "2026-11-23T12:00:00Z"},
                "spec": spec, "status": status}  # fmt: skip

    asked = {"grant": "g1", "duration": "10m", "reason": "INC-1", "requester": "bob"}
    mine = of(names.ACCESS_EXTENSION, "g1-ext-1", "x1", asked, archivedRecords=["extension-requested"])
    # Another grant's extension, not archived: it holds nothing of g1's back.
    others = of(names.ACCESS_EXTENSION, "g2-ext-1", "x2", {**asked, "grant": "g2"})
    requested = of(names.ACCESS_REQUEST, "g1", "r1", {"entitlement": "e", "reason": "INC-1", "requester": "bob"})
    requested["status"]["archivedRecords"] = [audit.action_key(r["id"]) for r in audit.records_of(requested)]
    grant = of(names.ACCESS_GRANT, "g1", "g1", {"request": "g1"})
    kube = Retained((names.GRANTS, grant), (names.REQUESTS, requested), (names.EXTENSIONS, mine),
                    (names.EXTENSIONS, others))  # fmt: skip
    rt = cast(Any, SimpleNamespace(kube=kube))
    entry = Ended(names.GRANTS, "g1", "g1", datetime(2026, 11, 23, tzinfo=UTC))
    assert audit.unarchived(others) and not audit.unarchived(grant)
    assert schedules._archived(rt, entry)
    mine["status"]["archivedRecords"] = []
    assert not schedules._archived(rt, entry), "its extension's record is not archived yet"


def test_records_from_months_ago_read_the_archive_back_once_not_once_per_batch(
    bucket: Bucket, cluster: Cluster
) -> None:
    """An upgrade that archives a kind for the first time (AccessExtensions) offers records as old as
    the retention: the batches written since the oldest are read back once, for all of them."""
    now = datetime.now(UTC)
    for days in (40, 30, 20, 10):
        key = audit.archive_key(PREFIX, now - timedelta(days=days), f"d{days}")
        bucket.objects[key] = audit.encode_lines([{"schema": audit.SCHEMA, "id": f"old{days}/requested"}])
    trail = trail_over(bucket, cluster, batch_records=1)
    try:
        for n, days in enumerate((35, 25, 15)):
            old = request(f"r{n}", f"u{n}")
            old["metadata"]["creationTimestamp"] = (now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
            trail.offer(names.REQUESTS, cluster.add(names.REQUESTS, old))
        assert trail.flush() == 1 and trail.flush() == 1 and trail.flush() == 1
        assert sorted(bucket.reads) == sorted(set(bucket.reads)), "no batch read back twice"
        assert len(bucket.reads) == 3, "those written since the oldest record (less the clock margin)"
        # Once nothing old waits, the ids of long ago are forgotten again.
        trail.offer(names.REQUESTS, cluster.add(names.REQUESTS, request("r9", "u9")))
        trail.flush()
        assert all(when >= now - timedelta(minutes=11) for when in trail._known.values())
    finally:
        trail.close()


# --- 134. retention deletes only the objects that ended, never another that took a name since


class Retiring(Retained):
    """`Retained`, and the deletions asked for: (plural, name, uid precondition)."""

    def __init__(self, *objects: tuple[str, dict[str, Any]]) -> None:
        super().__init__(*objects)
        self.deleted: list[tuple[str, str, str | None]] = []

    def delete(self, plural: str, name: str, *, uid: Any) -> bool:
        self.deleted.append((plural, name, uid))
        found = self.objects.get((plural, name))
        if not lands(found, uid):
            return False
        del self.objects[(plural, name)]
        return True


def test_retention_deletes_a_grant_and_its_own_request_by_uid_not_another_of_the_name() -> None:
    from types import SimpleNamespace

    from jitaccess.handlers import schedules
    from jitaccess.handlers.indexes import Ended

    grant = {"kind": names.ACCESS_GRANT, "metadata": {"name": "g1", "uid": "g-uid"}, "spec": {"request": "g1"}}
    # A request created under the name since the grant's own went: alice's window, not yet archived.
    window = request("g1", "new-uid")
    kube = Retiring((names.GRANTS, grant), (names.REQUESTS, window))
    rt = cast(Any, SimpleNamespace(kube=kube, settings=SimpleNamespace(audit_bucket="")))
    entry = Ended(names.GRANTS, "g1", "g1", datetime(2026, 11, 23, tzinfo=UTC), "g-uid", "old-uid")
    assert schedules._archived(rt, entry), "another request's records do not hold the grant back"
    schedules._retire(rt, [entry])
    assert kube.deleted == [(names.GRANTS, "g1", "g-uid"), (names.REQUESTS, "g1", "old-uid")]
    assert kube.get(names.GRANTS, "g1") is None
    assert kube.get(names.REQUESTS, "g1") is window, "the window stays"


# --- a deleted request or extension, held by the records finalizer until its records are archived


def withdrawn(name: str, uid: str, **status: Any) -> dict[str, Any]:
    """A request being deleted while it waited, held by the finalizer the webhook gave it."""
    obj = request(name, uid, **status)
    obj["metadata"] |= {"deletionTimestamp": "2026-11-23T12:03:00Z", "finalizers": [names.RECORDS_FINALIZER]}
    return obj


def deleted(trail: AuditTrail, cluster: Cluster, obj: dict[str, Any]) -> dict[str, Any]:
    """The watch event of `obj` being deleted, as `handlers.archive` hands it to the trail."""
    body = cluster.add(names.REQUESTS, obj)
    trail.offer(names.REQUESTS, body)
    trail.release_when_archived(names.REQUESTS, body)
    return body


def test_a_withdrawn_request_goes_only_once_its_withdrawal_is_archived(
    trail: AuditTrail, bucket: Bucket, cluster: Cluster
) -> None:
    body = deleted(trail, cluster, withdrawn("r1", "u1"))
    assert (names.REQUESTS, "r1") in cluster.objects  # nothing written yet: it stays
    bucket.fail_next = ["before"]
    with pytest.raises(ArchiveUnavailable):
        trail.flush()
    assert (names.REQUESTS, "r1") in cluster.objects  # S3 failed: still held
    assert trail.flush() == 2
    assert bucket.ids() == ["u1/requested", "u1/withdrawn"]
    withdrawal = [r for r in audit.records_of(body) if r["action"] == "withdrawn"]
    assert withdrawal[0]["time"] == "2026-11-23T12:03:00Z"  # the API server's moment of the deletion
    assert (names.REQUESTS, "r1") not in cluster.objects  # let go, not marked


def test_one_whose_records_are_archived_already_goes_at_the_next_flush_with_no_write(
    trail: AuditTrail, bucket: Bucket, cluster: Cluster
) -> None:
    deleted(trail, cluster, withdrawn("r1", "u1", archivedRecords=["requested", "withdrawn"]))
    assert trail.flush() == 0
    assert bucket.objects == {} and (names.REQUESTS, "r1") not in cluster.objects


def test_one_whose_records_an_earlier_life_archived_is_let_go_without_sending_them_again(
    bucket: Bucket, cluster: Cluster
) -> None:
    first = trail_over(bucket, cluster)
    deleted(first, cluster, withdrawn("r1", "u1"))
    cluster.down = True
    first.flush()  # written; the finalizer's removal fails, and then the operator dies
    first.close()
    cluster.down = False
    assert (names.REQUESTS, "r1") in cluster.objects
    second = trail_over(bucket, cluster)
    deleted(second, cluster, cluster.objects[(names.REQUESTS, "r1")])
    second.flush()
    second.close()
    assert sorted(bucket.ids()) == ["u1/requested", "u1/withdrawn"] and len(bucket.objects) == 1
    assert (names.REQUESTS, "r1") not in cluster.objects


def test_a_failed_release_is_tried_again_with_the_next_flush(
    trail: AuditTrail, bucket: Bucket, cluster: Cluster
) -> None:
    deleted(trail, cluster, withdrawn("r1", "u1"))
    cluster.down = True
    trail.flush()
    assert len(bucket.objects) == 1 and (names.REQUESTS, "r1") in cluster.objects
    cluster.down = False
    assert trail.flush() == 0
    assert (names.REQUESTS, "r1") not in cluster.objects and len(bucket.objects) == 1


def test_without_an_archive_a_held_request_goes_at_once(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    trail = AuditTrail(cast(Kube, cluster), None)
    with caplog.at_level(logging.INFO, logger="jitaccess.audit"):
        deleted(trail, cluster, withdrawn("r1", "u1"))
        trail.flush()
    trail.close()
    assert (names.REQUESTS, "r1") not in cluster.objects
    assert any(r.getMessage().startswith("audit withdrawn AccessRequest/r1") for r in caplog.records)


def test_another_object_under_the_same_name_is_not_let_go(trail: AuditTrail, bucket: Bucket, cluster: Cluster) -> None:
    deleted(trail, cluster, withdrawn("r1", "u1"))
    cluster.objects[(names.REQUESTS, "r1")] = withdrawn("r1", "u2")  # deleted by hand, created again, deleted
    trail.flush()
    assert cluster.objects[(names.REQUESTS, "r1")]["metadata"]["finalizers"] == [names.RECORDS_FINALIZER]


def test_a_deleted_grant_is_archived_only_once_its_records_are_written(
    trail: AuditTrail, bucket: Bucket, cluster: Cluster
) -> None:
    # What the grant's deletion handler asks before kopf lets the grant go (`grants.revoke_on_delete`).
    body = cluster.add(names.REQUESTS, request("r1", "u1", **APPROVED))
    assert not trail.archived(names.REQUESTS, body)
    bucket.fail_next = ["before"]
    with pytest.raises(ArchiveUnavailable):
        trail.flush()
    assert not trail.archived(names.REQUESTS, body)
    trail.flush()
    assert trail.archived(names.REQUESTS, body)
    assert trail.archived(names.REQUESTS, cluster.objects[(names.REQUESTS, "r1")])  # marked: nothing left


def test_an_entitlements_released_record_is_listed_as_archived_and_so_known_after_a_restart(
    bucket: Bucket, cluster: Cluster
) -> None:
    released = {
        "kind": names.ENTITLEMENT,
        "metadata": {"name": "e1", "uid": "u-e1", "deletionTimestamp": "2026-11-23T12:00:00Z"},
        "spec": {"owner": "payments", "identityCenter": {"groupName": "g"}},
        "status": {
            "releasedAt": "2026-11-23T13:00:00Z",
            "driftRemovals": [{"membershipId": "m-1", "userId": "uid-eve", "time": "2026-11-23T12:30:00Z"}],
            "conditions": [{"type": "Ready", "status": "False", "reason": "Released"}],
        },
    }
    first = trail_over(bucket, cluster)
    body = cluster.add(names.ENTITLEMENTS, released)
    assert not first.archived(names.ENTITLEMENTS, body)
    first.flush()
    first.close()
    stored = cluster.objects[(names.ENTITLEMENTS, "e1")]
    assert stored["status"]["archivedRecords"] == ["released"] and stored["status"]["driftRemovals"] == []
    # A process that starts long after (nothing remembered): the stored object says it is archived.
    later = trail_over(bucket, cluster)
    assert later.archived(names.ENTITLEMENTS, stored)
    later.close()
    assert sorted(bucket.ids()) == ["u-e1/drift-removed/m-1", "u-e1/released"]


def _deleted_catalog(cluster: Cluster, ago: timedelta) -> dict[str, Any]:
    catalog = _catalog_with(ASSIGNMENT_REMOVAL)
    catalog["metadata"]["deletionTimestamp"] = (datetime.now(UTC) - ago).strftime("%Y-%m-%dT%H:%M:%SZ")
    return cluster.add(names.CATALOGS, catalog)


def _hold_of(trail: AuditTrail, cluster: Cluster) -> Callable[[], None]:
    """The deletion handler's wait (`hold_until_archived`) for the catalog payments, as stored at each call."""
    memo = {trail_module.MEMO_KEY: trail_module.TrailSlot(trail=trail)}

    def hold() -> None:
        stored = copy.deepcopy(cluster.objects[(names.CATALOGS, "payments")])
        trail_module.hold_until_archived(memo, names.CATALOGS, stored, retry=0, longest=5.0, what="its record is")

    return hold


def test_a_deleted_catalog_waits_for_its_drift_removals_notices_not_only_their_records(
    bucket: Bucket, cluster: Cluster
) -> None:
    """Its notices are derived from the entry: a catalog gone once its records were archived took an
    untold removal with it, told only by the process that still remembered it (lost at a restart)."""
    trail = AuditTrail(cast(Kube, cluster), cast(Archive, bucket), notices=SLACK_AND_SINK)
    key = f"{audit.ASSIGNMENT_DRIFT_REMOVED}/{audit.assignment_removal_key(ASSIGNMENT_REMOVAL)}"
    hold = _hold_of(trail, cluster)

    _deleted_catalog(cluster, timedelta(minutes=1))
    with pytest.raises(kopf.TemporaryError, match="not in the archive yet"):
        hold()
    trail.flush()
    with pytest.raises(kopf.TemporaryError, match="notices of its drift removals are not delivered yet"):
        hold()
    _told(names.CATALOGS, "payments", cluster, f"slack:security:{key}")
    with pytest.raises(kopf.TemporaryError, match="notices"):
        hold()  # the sink's notice still waits
    _told(names.CATALOGS, "payments", cluster, f"webhook:{key}")
    hold()
    trail.close()


def test_a_deleted_catalog_goes_untold_after_an_hour_with_a_warning_naming_each_removal(
    bucket: Bucket, cluster: Cluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A Slack outage must not hold a GitOps deletion for days: past `notify.DRIFT_NOTICES_HOLD_DELETION`
    it goes, with a Warning Event and an audit log line naming the removals; their records are archived."""
    events: list[dict[str, Any]] = []
    monkeypatch.setattr(kopf, "event", lambda body, **fields: events.append(fields))
    trail = AuditTrail(cast(Kube, cluster), cast(Archive, bucket), notices=SLACK_AND_SINK)
    memo = {trail_module.MEMO_KEY: trail_module.TrailSlot(trail=trail)}
    key = f"{audit.ASSIGNMENT_DRIFT_REMOVED}/{audit.assignment_removal_key(ASSIGNMENT_REMOVAL)}"
    body = _deleted_catalog(cluster, notify.DRIFT_NOTICES_HOLD_DELETION + timedelta(minutes=1))
    trail.offer(names.CATALOGS, body)
    trail.flush()
    assert f"c1/{key}" in bucket.ids(), "the complete account is in the archive"
    with caplog.at_level(logging.WARNING, logger="jitaccess.audit"):
        stored = copy.deepcopy(cluster.objects[(names.CATALOGS, "payments")])
        trail_module.hold_until_archived(memo, names.CATALOGS, stored, retry=0, longest=5.0, what="its record is")
    (event,) = events
    assert (event["type"], event["reason"]) == ("Warning", names.DRIFT_UNTOLD)
    assert key in event["message"] and "within 1h of the deletion" in event["message"]
    assert any(key in r.getMessage() for r in caplog.records if r.name == "jitaccess.audit")
    trail.close()


def test_the_wait_for_drift_notices_is_as_long_as_the_setting_says(
    bucket: Bucket, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`JITACCESS_DRIFT_NOTICES_HOLD_DELETION_SECONDS` (here 90 s), not the hour of the default: a
    deletion a minute old waits, saying until when; one two minutes old goes, its Event saying how long
    it waited."""
    events: list[dict[str, Any]] = []
    monkeypatch.setattr(kopf, "event", lambda body, **fields: events.append(fields))
    monkeypatch.setenv("JITACCESS_DRIFT_NOTICES_HOLD_DELETION_SECONDS", "90")
    monkeypatch.setenv("JITACCESS_SLACK_TOKEN", "xoxb-test")
    monkeypatch.setenv("JITACCESS_SLACK_SECURITY_CHANNEL", "C0SECURITY")
    notices = config_of(load_settings())
    assert notices.drift_hold_deletion == timedelta(seconds=90)
    trail = AuditTrail(cast(Kube, cluster), cast(Archive, bucket), notices=notices)
    key = f"{audit.ASSIGNMENT_DRIFT_REMOVED}/{audit.assignment_removal_key(ASSIGNMENT_REMOVAL)}"
    hold = _hold_of(trail, cluster)

    body = _deleted_catalog(cluster, timedelta(minutes=1))
    trail.offer(names.CATALOGS, body)
    trail.flush()
    with pytest.raises(kopf.TemporaryError, match="it goes once they are, or 1m30s after its deletion"):
        hold()
    pending = wire.condition(cluster.objects[(names.CATALOGS, "payments")], names.DRIFT_NOTICES_PENDING)
    until = trail_module._parse(body["metadata"]["deletionTimestamp"]) + timedelta(seconds=90)
    assert pending is not None and f"waiting until {until.strftime('%Y-%m-%dT%H:%M:%SZ')} for" in pending["message"]
    assert events == []
    cluster.objects[(names.CATALOGS, "payments")]["metadata"]["deletionTimestamp"] = (
        datetime.now(UTC) - timedelta(minutes=2)
    ).strftime("%Y-%m-%dT%H:%M:%SZ")
    hold()
    (event,) = events
    assert (event["type"], event["reason"]) == ("Warning", names.DRIFT_UNTOLD)
    assert "not delivered within 1m30s of the deletion" in event["message"] and key in event["message"]
    trail.close()


def test_a_deleted_catalog_says_once_why_it_waits_for_drift_notices_and_until_when(
    bucket: Bucket, cluster: Cluster
) -> None:
    """`kubectl describe` tells why it has not gone, and until when: its `DriftNoticesPending`
    condition, written when the wait begins and when the removals it waits for change, not at each retry."""
    trail = AuditTrail(cast(Kube, cluster), cast(Archive, bucket), notices=SLACK_AND_SINK)
    memo = {trail_module.MEMO_KEY: trail_module.TrailSlot(trail=trail)}
    key = f"{audit.ASSIGNMENT_DRIFT_REMOVED}/{audit.assignment_removal_key(ASSIGNMENT_REMOVAL)}"
    body = _deleted_catalog(cluster, timedelta(minutes=1))
    trail.offer(names.CATALOGS, body)
    trail.flush()

    def hold() -> float | None:
        stored = copy.deepcopy(cluster.objects[(names.CATALOGS, "payments")])
        with pytest.raises(kopf.TemporaryError, match="notices") as waiting:
            trail_module.hold_until_archived(memo, names.CATALOGS, stored, retry=30, longest=5.0, what="its record is")
        return waiting.value.delay

    assert hold() == trail_module.DRIFT_WAIT_FIRST_SECONDS, "prompt when the wait begins, whatever kopf's retry"
    stored = cluster.objects[(names.CATALOGS, "payments")]
    pending = wire.condition(stored, names.DRIFT_NOTICES_PENDING)
    assert pending is not None and (pending["status"], pending["reason"]) == ("True", names.DRIFT_UNTOLD)
    until = trail_module._parse(body["metadata"]["deletionTimestamp"]) + notify.DRIFT_NOTICES_HOLD_DELETION
    assert pending["message"].startswith(
        f"deleted; waiting until {until.strftime('%Y-%m-%dT%H:%M:%SZ')} for the security channel and the event "
        f"sink to be told of 1 drift removal(s) ({key})"
    )
    writes = cluster.writes
    hold()
    hold()
    assert cluster.writes == writes, "a retry writes nothing when nothing changed"
    second = {**ASSIGNMENT_REMOVAL, "principalId": "u-other", "time": "2026-11-23T12:10:00Z"}
    stored["status"]["driftRemovals"].append(second)
    trail.offer(names.CATALOGS, copy.deepcopy(stored))
    trail.flush()
    hold()
    pending = wire.condition(cluster.objects[(names.CATALOGS, "payments")], names.DRIFT_NOTICES_PENDING)
    assert pending is not None and "told of 2 drift removal(s)" in pending["message"]
    other = f"{audit.ASSIGNMENT_DRIFT_REMOVED}/{audit.assignment_removal_key(second)}"
    _told(names.CATALOGS, "payments", cluster, f"webhook:{key}", f"webhook:{other}")
    hold()
    pending = wire.condition(cluster.objects[(names.CATALOGS, "payments")], names.DRIFT_NOTICES_PENDING)
    assert pending is not None and "for the security channel to be told of 2" in pending["message"], "whom it waits for"
    cast(dict[str, Any], pending)["lastTransitionTime"] = (datetime.now(UTC) - timedelta(minutes=2)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert hold() == trail_module.DRIFT_WAIT_LONGEST_SECONDS, "backed off through an outage"
    trail.close()


def test_the_wait_for_drift_notices_asks_again_promptly_then_backs_off_to_a_minute(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An hour-long outage costs a retry a minute, not one every 5 s (each is a patch of kopf's state);
    a notice that goes at the notifier's next try is seen within seconds. Timed from the condition:
    kopf's `retry` counts the handler's earlier waits (an Entitlement's grants, the archive) too."""
    began = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    obj = {
        "status": {"conditions": [{"type": names.DRIFT_NOTICES_PENDING, "lastTransitionTime": "2026-12-01T12:00:00Z"}]}
    }
    delays = []
    for waited in (0, 5, 10, 20, 40, 80, 3000):
        monkeypatch.setattr(trail_module, "_now", lambda waited=waited: began + timedelta(seconds=waited))
        delays.append(trail_module._drift_wait_delay(obj))
    assert delays == [5.0, 5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    assert trail_module._drift_wait_delay({}) == trail_module.DRIFT_WAIT_FIRST_SECONDS  # the wait begins


def _removals(count: int) -> list[dict[str, Any]]:
    """`count` assignment drift removals, oldest first."""
    return [
        {**ASSIGNMENT_REMOVAL, "principalId": f"uid-{n}", "time": f"2026-11-23T12:00:{n:02d}Z"} for n in range(count)
    ]


def _key(removal: dict[str, Any]) -> str:
    return f"{audit.ASSIGNMENT_DRIFT_REMOVED}/{audit.assignment_removal_key(removal)}"


def _deleted_catalog_of(cluster: Cluster, removals: list[dict[str, Any]], ago: timedelta) -> dict[str, Any]:
    catalog = _catalog_with(*removals)
    catalog["metadata"]["deletionTimestamp"] = (datetime.now(UTC) - ago).strftime("%Y-%m-%dT%H:%M:%SZ")
    return cluster.add(names.CATALOGS, catalog)


def test_the_drift_wait_names_three_removals_and_counts_the_rest(bucket: Bucket, cluster: Cluster) -> None:
    """The condition stays a line however many removals wait (`domain.text.listed`)."""
    trail = AuditTrail(cast(Kube, cluster), cast(Archive, bucket), notices=SLACK_AND_SINK)
    memo = {trail_module.MEMO_KEY: trail_module.TrailSlot(trail=trail)}
    removals = _removals(5)
    trail.offer(names.CATALOGS, _deleted_catalog_of(cluster, removals, timedelta(minutes=1)))
    trail.flush()
    stored = copy.deepcopy(cluster.objects[(names.CATALOGS, "payments")])
    with pytest.raises(kopf.TemporaryError, match="notices"):
        trail_module.hold_until_archived(memo, names.CATALOGS, stored, retry=0, longest=5.0, what="its record is")
    pending = wire.condition(cluster.objects[(names.CATALOGS, "payments")], names.DRIFT_NOTICES_PENDING)
    first = ", ".join(_key(r) for r in removals[:3])
    assert pending is not None and f"told of 5 drift removal(s) ({first} and 2 more): it goes" in pending["message"]
    assert _key(removals[3]) not in pending["message"]
    trail.close()


def test_a_catalog_gone_untold_names_a_bounded_number_of_removals_in_its_warning(
    bucket: Bucket, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Warning Event names as many removals as a status holds for their notices, and counts any
    beyond: its message (and its audit log line) is bounded however many were left untold."""
    events: list[dict[str, Any]] = []
    monkeypatch.setattr(kopf, "event", lambda body, **fields: events.append(fields))
    monkeypatch.setattr(trail_module, "DRIFT_UNTOLD_NAMED", 2)
    trail = AuditTrail(cast(Kube, cluster), cast(Archive, bucket), notices=SLACK_AND_SINK)
    memo = {trail_module.MEMO_KEY: trail_module.TrailSlot(trail=trail)}
    removals = _removals(4)
    ago = SLACK_AND_SINK.drift_hold_deletion + timedelta(minutes=1)
    trail.offer(names.CATALOGS, _deleted_catalog_of(cluster, removals, ago))
    trail.flush()
    stored = copy.deepcopy(cluster.objects[(names.CATALOGS, "payments")])
    trail_module.hold_until_archived(memo, names.CATALOGS, stored, retry=0, longest=5.0, what="its record is")
    (event,) = events
    assert event["reason"] == names.DRIFT_UNTOLD and "deleted with 4 drift removal(s)" in event["message"]
    assert event["message"].endswith(f"(kubectl jit audit): {_key(removals[0])}, {_key(removals[1])} and 2 more")
    trail.close()


def test_a_retry_of_the_drift_wait_derives_the_removals_notices_once(
    bucket: Bucket, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether it may go, what its condition says and whom it waits for come from one derivation of
    the removals' notices: a waiting deletion retries for up to an hour."""
    trail = AuditTrail(cast(Kube, cluster), cast(Archive, bucket), notices=SLACK_AND_SINK)
    memo = {trail_module.MEMO_KEY: trail_module.TrailSlot(trail=trail)}
    trail.offer(names.CATALOGS, _deleted_catalog_of(cluster, _removals(2), timedelta(minutes=1)))
    trail.flush()
    derivations = 0
    derive = notify._of_drift

    def counted(*args: Any, **kwargs: Any) -> list[notify.Notice]:
        nonlocal derivations
        derivations += 1
        return derive(*args, **kwargs)

    monkeypatch.setattr(notify, "_of_drift", counted)
    for _ in range(2):  # the retry that writes the condition, and one that finds it written
        before = derivations
        stored = copy.deepcopy(cluster.objects[(names.CATALOGS, "payments")])
        with pytest.raises(kopf.TemporaryError, match="notices"):
            trail_module.hold_until_archived(memo, names.CATALOGS, stored, retry=0, longest=5.0, what="its record is")
        assert derivations - before == 1
    trail.close()


def test_a_released_entitlement_says_why_it_waits_for_drift_notices_and_keeps_its_ready(
    bucket: Bucket, cluster: Cluster
) -> None:
    """An Entitlement's `DriftNoticesPending` is written beside its `Ready`, which keeps the words of
    its `released` record; a retry that changes nothing writes nothing."""
    trail = AuditTrail(cast(Kube, cluster), cast(Archive, bucket), notices=SLACK_AND_SINK)
    memo = {trail_module.MEMO_KEY: trail_module.TrailSlot(trail=trail)}
    removal = {"membershipId": "m-1", "userId": "uid-eve", "user": "eve", "time": "2026-11-23T12:30:00Z"}
    entitlement = _entitlement_with(removal)
    ready = {
        "type": "Ready",
        "status": "False",
        "reason": "Released",
        "message": "released: group g unwatched",
        "lastTransitionTime": "2026-11-23T13:00:00Z",
    }
    entitlement["metadata"]["deletionTimestamp"] = (datetime.now(UTC) - timedelta(minutes=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    entitlement["status"].update(releasedAt="2026-11-23T13:00:00Z", conditions=[ready])
    trail.offer(names.ENTITLEMENTS, cluster.add(names.ENTITLEMENTS, entitlement))
    trail.flush()

    def hold() -> None:
        stored = copy.deepcopy(cluster.objects[(names.ENTITLEMENTS, "prod-payments")])
        with pytest.raises(kopf.TemporaryError, match="notices"):
            trail_module.hold_until_archived(memo, names.ENTITLEMENTS, stored, retry=0, longest=5.0, what="released")

    hold()
    stored = cluster.objects[(names.ENTITLEMENTS, "prod-payments")]
    pending = wire.condition(stored, names.DRIFT_NOTICES_PENDING)
    assert pending is not None and (pending["status"], pending["reason"]) == ("True", names.DRIFT_UNTOLD)
    assert "told of 1 drift removal(s) (drift-removed/m-1)" in pending["message"]
    assert wire.condition(stored, names.READY) == ready
    writes = cluster.writes
    hold()
    assert cluster.writes == writes, "a retry writes nothing when nothing changed"
    trail.close()

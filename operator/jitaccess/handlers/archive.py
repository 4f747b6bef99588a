"""The audit trail: every decision's record to stdout at once, and to the S3 archive in batches.

Records are derived from the objects as stored (`jitaccess.api.audit`), on every watch event of
AccessRequests, AccessGrants, AccessExtensions, Entitlements and PermissionCatalogs, the listing at
start-up included. What an object's
`status.archivedRecords` does not list yet is pending: written at once as one JSON log line to the
`jitaccess.audit` logger (stdout, for log shippers; at least once: again after a restart, until
archived), and queued for the archive. Nothing is kept on disk: the cluster holds the state the
records come from, so a restarted operator derives again whatever it had not archived.

A task of its own (never in the way of grants and expiry) writes the queue in batches, up to
`audit_batch_records` records or every `audit_batch_seconds`, one S3 object each, with a
conditional PUT (no key is ever overwritten), then lists the archived records in each object's
status.

Without a bucket there is no archive to keep in step with: records go to stdout only, each printed
once per process (their ids remembered while their object exists), and requests and grants are
not marked (a mark would be a status write per object, on the path of every grant, for nothing
durable). A restarted operator (or a new leader) prints again the records of the objects still in
the cluster; their ids are deterministic, so a log consumer de-duplicates them. The records of
Entitlements and PermissionCatalogs are marked all the same, printed standing for archived: their
drift removals must leave their status (so that the list does not grow).

A drift removal's entry leaves `status.driftRemovals` once its record is archived (printed) and
its notices are delivered to every target configured (`domain.notifications.settle_drift`): they
are derived from the entry, so an entry that left with a notice still waiting would be told by
nobody after a restart or a change of leader. While it waits its key is listed in
`archivedRecords`; the notifier's marks come back as watch events, which settle it (`settle`).

Exactly once by record id, across failures and crashes:
- a failed PUT is retried with the same key and the same bytes, however long S3 fails; a retry of
  a PUT that did land is refused (412) and counts as done: S3 failing after writing costs nothing;
- a crash between a PUT and the status marks leaves records the archive holds that no status
  lists. Before writing records whose time is T, the archiver knows every id in the batches written
  since T (minus clock skew): its own, remembered for a while, and, for older records (a restart
  derives them again), those it reads back from the archive, listed by the write time that begins
  each key (a batch is written at or after each of its records' times). Records found there are
  only marked, never sent again;
- a stale watch event (showing an object as it was before its mark) finds its records remembered.

Retention (`schedules`) deletes a finished object only once its status lists all its records.

Each batch names the one written before it, in its S3 metadata (`jitaccess.domain.chain`: what
`kubectl jit audit --verify` checks). The one writer writes one batch at a time; a process that has
written none yet (a restart, a new leader) continues from the newest batch in the bucket, and a
stopped one begins no batch, so that two leaders in turn make one line.

Metrics: each PUT's outcome counts in `jitaccess_audit_archive_writes_total`; the queue's size and
the age of its oldest record (since it was queued) are read at scrape time (`backlog`, which the
trail lends the Runtime while it runs with a bucket: `Runtime.audit_backlog`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from jitaccess import metrics
from jitaccess.adapters.archive import Archive, ArchiveUnavailable
from jitaccess.adapters.kube import Kube
from jitaccess.adapters.signing import BatchSigner
from jitaccess.api import audit, limits, names, wire
from jitaccess.api.models import Entitlement, PermissionCatalog
from jitaccess.domain import chain, notifications, releases
from jitaccess.domain import conditions as cond
from jitaccess.domain.durations import format_duration
from jitaccess.domain.text import listed
from jitaccess.handlers import recording
from jitaccess.handlers.common import conditions_after, doubled, status_change
from jitaccess.handlers.notifications import config_of
from jitaccess.handlers.runtime import runtime_of
from jitaccess.settings import Settings

log = logging.getLogger(__name__)
audit_log = logging.getLogger("jitaccess.audit")

MEMO_KEY = "audit_trail"
# How long the ids of written batches are remembered: longer than any stale watch event lags.
REMEMBER = timedelta(minutes=10)
MAX_BACKOFF_SECONDS = 30.0
MARK_THREADS = 4
STOP_FLUSH_SECONDS = 10.0
#: How often the wait of a deleted Entitlement or PermissionCatalog for the notices of its drift
#: removals (`hold_until_archived`) asks again: as long as it has waited (since its `DriftNoticesPending`
#: condition was written), between these two: prompt for a notice that goes on the next try of the
#: notifier, a patch a minute at most through an outage (kopf writes its retry state each time).
DRIFT_WAIT_FIRST_SECONDS = 5.0
DRIFT_WAIT_LONGEST_SECONDS = 60.0
# How many untold removals the condition names (the rest are counted).
DRIFT_WAIT_NAMED = 3
# How many the Warning Event of a deletion that goes with some untold names: every one the status
# holds for its notices (someone tells the security team of them by hand); any beyond are counted.
DRIFT_UNTOLD_NAMED = limits.DRIFT_REMOVALS_HELD_FOR_NOTICES


@dataclass(frozen=True)
class Ref:
    """The object a record belongs to: where its mark goes."""

    plural: str
    name: str
    uid: str


@dataclass
class Batch:
    """Records on their way to the archive; once named, a batch is retried as it is."""

    records: list[audit.Record]
    refs: dict[str, Ref]
    key: str = ""
    data: bytes = b""
    written: datetime | None = None
    # Its S3 metadata: its digest and the batch before it (`domain.chain`).
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class AuditTrail:
    kube: Kube
    archive: Archive | None
    batch_records: int = 500
    batch_seconds: float = 5.0
    # Signs each batch (`adapters.signing`); None: batches carry the chain's digests only.
    signer: BatchSigner | None = None
    # The notices a drift removal is owed before its entry leaves its object's status (the
    # notifier's targets as configured: `notifications.settle_drift`).
    notices: notifications.Config = field(default_factory=notifications.Config)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: dict[str, tuple[audit.Record, Ref]] = field(default_factory=dict)
    _inflight: set[str] = field(default_factory=set)
    # When each record pending or in flight was queued (the age of the oldest, a gauge).
    _queued: dict[str, datetime] = field(default_factory=dict)
    _batch: Batch | None = None
    # Ids in batches written (with the batch's write time), and since when that is all of them;
    # without an archive, the ids printed (of the objects still there).
    _known: dict[str, datetime] = field(default_factory=dict)
    _read: set[str] = field(default_factory=set)
    _covered_since: datetime | None = None
    # The newest batch of the archive, which the next one names (`domain.chain`); found in the
    # bucket before this process's first batch, then the last one it wrote.
    _head: chain.Link | None = None
    _head_found: bool = False
    _closed: bool = False
    _unmarked: dict[Ref, set[str]] = field(default_factory=dict)
    # Deleted objects held by `names.RECORDS_FINALIZER`, and the ids that must be written first.
    _releasing: dict[Ref, set[str]] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _marker: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(MARK_THREADS, thread_name_prefix="jitaccess-audit-mark")
    )

    # --- the watch side (event loop) ----------------------------------------------------------

    def offer(self, plural: str, obj: Mapping[str, Any]) -> list[audit.Record]:
        """Take the records of `obj` its status does not list as archived; print the new ones."""
        records = audit.unarchived(obj)
        if not records:
            return []
        meta = wire.metadata(obj)
        ref = Ref(plural, str(meta.get("name") or ""), str(meta.get("uid") or ""))
        marked = self.marks(plural)
        fresh = []
        queued = _now()
        with self._lock:
            for record in records:
                rid = record["id"]
                if rid in self._pending or rid in self._inflight or rid in self._known:
                    continue
                if marked:
                    self._pending[rid] = (record, ref)
                    self._queued[rid] = queued
                else:
                    self._known[rid] = _now()
                fresh.append(record)
            full = len(self._pending) >= self.batch_records
        for record in fresh:
            _print(record)
        if full:
            self._wake.set()
        return fresh

    def release_when_archived(self, plural: str, obj: Mapping[str, Any]) -> None:
        """`obj` is being deleted and `names.RECORDS_FINALIZER` holds it: remove the finalizer once
        every record it has (those `offer` took) is in the archive; at once without an archive (its
        records went to the log when offered). Its records are written without delay: someone may
        be waiting for the deletion (`kubectl delete` does)."""
        meta = wire.metadata(obj)
        ref = Ref(plural, str(meta.get("name") or ""), str(meta.get("uid") or ""))
        ids = {record["id"] for record in audit.unarchived(obj)} if self.archive is not None else set()
        with self._lock:
            self._releasing[ref] = (self._releasing.get(ref, set()) | ids) - self._known.keys()
        self._wake.set()

    def archived(self, plural: str, obj: Mapping[str, Any]) -> bool:
        """Whether every record of `obj` is written (in the archive; without one, printed). Those
        not yet are offered, and written without waiting for the batch's time. Event loop only."""
        self.offer(plural, obj)
        ids = {record["id"] for record in audit.unarchived(obj)}
        with self._lock:
            done = ids <= self._known.keys()
        if not done:
            self._wake.set()
        return done

    def marks(self, plural: str) -> bool:
        """Whether the records of this kind are marked in their object's status once written: with
        an archive, always; without one, only an Entitlement's and a PermissionCatalog's (their
        drift removals leave their status)."""
        return self.archive is not None or plural in _DRIFT_LISTS

    def forget(self, plural: str, obj: Mapping[str, Any]) -> None:
        """The object is deleted: without marks, its ids need not be remembered any longer (no
        event of it comes again). With an archive, `_known` is kept for the crash checks, and
        bounded by time."""
        if self.marks(plural):
            return
        with self._lock:
            for record in audit.records_of(obj):
                self._known.pop(record["id"], None)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._inflight)

    def backlog(self) -> tuple[int, datetime | None]:
        """The records waiting to be written, and when the oldest of them was queued (None: none is)."""
        with self._lock:
            return len(self._queued), min(self._queued.values(), default=None)

    # --- the writing side (its own thread) ----------------------------------------------------

    def flush(self) -> int:
        """Write one batch (the one a failure left, else the next); mark what was written.
        Returns how many records it took care of; raises `ArchiveUnavailable` when S3 fails (retry later)."""
        if self._closed:
            return 0
        self._retry_marks()
        self._release(self._releasable())
        batch = self._batch or self._take()
        if batch is None:
            return 0
        self._batch = batch
        if self.archive is not None:
            self._write(batch, self.archive)
        written = batch.written or _now()
        with self._lock:
            for record in batch.records:
                self._known[record["id"]] = written
            self._inflight.difference_update(batch.refs)
            for rid in batch.refs:
                self._queued.pop(rid, None)
            self._batch = None
        released = self._releasable()
        # An object on its way out is not marked (its status goes with it): its finalizer goes.
        self._mark({rid: ref for rid, ref in batch.refs.items() if ref not in released})
        self._release(released)
        self._forget_before(self._horizon())
        return len(batch.refs)

    def _horizon(self) -> datetime:
        """Before when written ids may be forgotten: REMEMBER ago, or earlier while records older
        than that wait. What was read back for them is kept, not read again for each batch (records
        of months ago, such as those of kinds an upgrade archives for the first time, would
        otherwise read the archive since then once per batch)."""
        with self._lock:
            oldest = min((_parse(record.get("time")) for record, _ in self._pending.values()), default=None)
        horizon = _now() - REMEMBER
        return min(horizon, oldest - audit.SKEW) if oldest is not None else horizon

    def _take(self) -> Batch | None:
        with self._lock:
            if not self._pending:
                return None
            chosen = sorted(self._pending.values(), key=lambda item: (item[0].get("time", ""), item[0]["id"]))
            chosen = chosen[: self.batch_records]
            for record, _ in chosen:
                del self._pending[record["id"]]
                self._inflight.add(record["id"])
        return Batch([record for record, _ in chosen], {record["id"]: ref for record, ref in chosen})

    def _write(self, batch: Batch, archive: Archive) -> None:
        if not batch.key:
            # Found before the batch is named: once named, a batch is retried exactly as it is.
            previous = self._chain_head(archive)
            earliest = min((_parse(r.get("time")) for r in batch.records), default=_now())
            self._cover(archive, earliest - audit.SKEW)
            with self._lock:
                # Archived by an earlier life of the operator that died before marking them: mark only.
                fresh = [r for r in batch.records if r["id"] not in self._known]
            if len(fresh) < len(batch.records):
                log.info(
                    "%d record(s) were archived before the last restart: marked, not sent again",
                    len(batch.records) - len(fresh),
                )
            batch.records = fresh
            if not batch.records:
                return
            batch.written = _after(previous, _now())
            batch.data = audit.encode_lines(batch.records)
            digest = hashlib.sha256("\n".join(r["id"] for r in batch.records).encode()).hexdigest()[:16]
            metadata = chain.metadata(batch.data, previous)
            key = audit.archive_key(archive.prefix, batch.written, digest)
            if self.signer is not None:
                # Once per batch: a retry sends the same bytes, the same signature.
                metadata |= self.signer.sign(chain.signed_message(key, batch.data, metadata))
            batch.metadata, batch.key = metadata, key
        landed = archive.put_new(batch.key, batch.data, batch.metadata)  # a failure is counted by `run`
        metrics.AUDIT_ARCHIVE_WRITES.labels("ok").inc()
        if landed:
            log.debug("archived %d record(s) in s3://%s/%s", len(batch.records), archive.bucket, batch.key)
        else:
            log.info("s3://%s/%s was written by an earlier try: not written again", archive.bucket, batch.key)
        self._head = chain.link_to(batch.key, batch.data, batch.metadata)

    def _chain_head(self, archive: Archive) -> chain.Link | None:
        """The batch the next one follows: the newest in the bucket when this process has written
        none yet (a restart, a new leader), else the last one it wrote."""
        if not self._head_found:
            key = archive.latest_key()
            if key is None:
                self._head = None
                log.info(
                    "audit archive s3://%s/%s is empty: its chain starts with the next batch",
                    archive.bucket,
                    archive.prefix,
                )
            else:
                data, metadata = archive.read(key)
                self._head = chain.link_to(key, data, metadata)
                _say_head(archive, key, data, metadata)
                if self.signer is not None and not self.signer.signed(key, data, metadata):
                    log.warning(
                        "audit archive: the newest object, s3://%s/%s, is not signed with the archive's signing "
                        "key (written before signing began, or not by jitaccess): check the archive with "
                        "kubectl jit audit --verify --public-key",
                        archive.bucket,
                        key,
                    )
            self._head_found = True
        return self._head

    def _cover(self, archive: Archive, since: datetime) -> None:
        """Know every id in the batches written since `since` (reading those not known yet)."""
        if self._covered_since is not None and self._covered_since <= since:
            return
        until = self._covered_since or _now() + audit.SKEW
        keys = [k for k in archive.keys_written(since, until) if k not in self._read]
        for key in keys:
            written = audit.written_at(key) or _now()
            data, metadata = archive.read(key) if self.signer is not None else (archive.get(key), {})
            if self.signer is not None and not self.signer.signed(key, data, metadata):
                # Its ids are not taken as archived: the records they name are written (again).
                log.warning(
                    "s3://%s/%s is not signed with the archive's signing key: not counted as written by "
                    "jitaccess (its records are archived anew); check the archive with kubectl jit audit "
                    "--verify --public-key",
                    archive.bucket,
                    key,
                )
                self._read.add(key)
                continue
            ids, unreadable = audit.ids_in(data)
            if unreadable:
                log.warning(
                    "s3://%s/%s holds %d line(s) that are no audit record (damaged, or put there by another "
                    "writer than jitaccess): skipped; find out who writes to the archive (kubectl jit audit "
                    "--archive names them too)",
                    archive.bucket,
                    key,
                    unreadable,
                )
            with self._lock:
                for rid in ids:
                    self._known[rid] = written
            self._read.add(key)
        if keys:
            log.info("read %d batch(es) back from the archive, written since %s", len(keys), since.isoformat())
        self._covered_since = since

    def _forget_before(self, horizon: datetime) -> None:
        if self._covered_since is None or self._covered_since >= horizon:
            return
        with self._lock:
            self._known = {rid: when for rid, when in self._known.items() if when >= horizon}
            self._read = {k for k in self._read if (audit.written_at(k) or horizon) >= horizon}
            self._covered_since = horizon

    def _mark(self, refs: Mapping[str, Ref]) -> None:
        by_object: dict[Ref, set[str]] = {}
        for rid, ref in refs.items():
            by_object.setdefault(ref, set()).add(audit.action_key(rid))
        self._mark_objects(by_object)

    def _mark_objects(self, by_object: Mapping[Ref, set[str]]) -> None:
        for ref, done in zip(by_object, self._marker.map(self._mark_one, by_object.items()), strict=True):
            if not done:
                with self._lock:
                    self._unmarked.setdefault(ref, set()).update(by_object[ref])

    def _releasable(self) -> set[Ref]:
        """The deleted objects whose records are all written now (taken off the waiting list). What
        each still waits for shrinks as its records are written, so that written ids the trail
        forgets later (`_forget_before`) cannot hold it."""
        with self._lock:
            for ids in self._releasing.values():
                ids.difference_update(self._known.keys())
            ready = {ref for ref, ids in self._releasing.items() if not ids}
            for ref in ready:
                del self._releasing[ref]
        return ready

    def _release(self, refs: set[Ref]) -> None:
        for ref, done in zip(refs, self._marker.map(self._release_one, refs), strict=True):
            if not done:
                with self._lock:
                    self._releasing.setdefault(ref, set())  # written: only the removal is retried

    def _release_one(self, ref: Ref) -> bool:
        """Let the deleted object go. False when the write failed (it is retried with the next batch)."""
        try:
            self.kube.remove_finalizer(ref.plural, ref.name, ref.uid, names.RECORDS_FINALIZER)
        except Exception as exc:  # any failure: the records are archived, only the deletion waits
            log.warning(
                "%s/%s: cannot let it go after archiving its records yet (%s); will retry", ref.plural, ref.name, exc
            )
            return False
        return True

    def _retry_marks(self) -> None:
        with self._lock:
            retry, self._unmarked = self._unmarked, {}
        if retry:
            self._mark_objects(retry)

    def _mark_one(self, item: tuple[Ref, set[str]]) -> bool:
        """List `keys` as archived in the object's status; for an Entitlement or a PermissionCatalog,
        settle its drift removals (`notifications.settle_drift`: those archived and told to every
        target leave). False when the write failed (it is retried with the next batch)."""
        ref, keys = item
        untold: list[str] = []

        def change(obj: dict[str, Any]) -> dict[str, Any] | None:
            if ref.plural in _DRIFT_LISTS:
                settled = notifications.settle_drift(obj, self.notices, keys)
                untold[:] = settled.untold if settled is not None else ()
                return settled.fields if settled is not None else None
            have = audit.archived_keys(obj)
            return None if keys <= have else {"archivedRecords": sorted(have | keys)}

        try:
            # Not another object created again under the name since: its records are not these.
            self.kube.update_status(ref.plural, ref.name, change, uid=ref.uid)
        except Exception as exc:  # any failure: the record is archived, only its mark waits
            log.warning("%s/%s: cannot list its archived audit records yet (%s); will retry", ref.plural, ref.name, exc)
            return False
        if untold:
            log.warning(
                "%s/%s: %d drift removal(s) leave status.driftRemovals before their notices were delivered, "
                "more than %d waiting (is Slack or the event sink down?); the audit records are complete: %s",
                ref.plural,
                ref.name,
                len(untold),
                limits.DRIFT_REMOVALS_HELD_FOR_NOTICES,
                ", ".join(untold),
            )
        return True

    def settle(self, plural: str, obj: Mapping[str, Any]) -> None:
        """An Entitlement or a PermissionCatalog as a watch event shows it: when some of its drift
        removals may leave its status now (their notices delivered since they were archived, or owed
        to a target no longer configured), the writer settles them as stored with its next round.
        Event loop only: on every event of these kinds, so an object with no drift removal in its
        status (most) is passed over before its notices are derived."""
        if (
            plural not in _DRIFT_LISTS
            or not notifications.holds_drift(obj)
            or notifications.settle_drift(obj, self.notices) is None
        ):
            return
        meta = wire.metadata(obj)
        ref = Ref(plural, str(meta.get("name") or ""), str(meta.get("uid") or ""))
        with self._lock:
            self._unmarked.setdefault(ref, set())
        self._wake.set()

    # --- the loop --------------------------------------------------------------------------------

    async def run(self, writer: ThreadPoolExecutor) -> None:
        """Write batches until cancelled: every `batch_seconds`, or as soon as a batch is full;
        back off (doubling, up to 30 s) while S3 fails."""
        loop = asyncio.get_running_loop()
        backoff = 0.0
        while True:
            if backoff:
                await asyncio.sleep(backoff)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.batch_seconds)
            self._wake.clear()
            try:
                # Everything waiting goes now, a batch at a time (marks left to retry go first).
                while await loop.run_in_executor(writer, self.flush) and self.pending():
                    pass
                backoff = 0.0
            except ArchiveUnavailable as exc:
                # Counted here, whichever S3 (or KMS) call of the batch failed: the PUT, or the
                # listing and reads before it (the chain's head, what is archived already), the
                # signature. Each is a batch not written, which the alert's text counts on.
                metrics.AUDIT_ARCHIVE_WRITES.labels("failed").inc()
                backoff = doubled(backoff, 0.5, MAX_BACKOFF_SECONDS)
                log.warning("audit archive: %s; %d record(s) wait, next try in %.1fs", exc, self.pending(), backoff)
            except Exception:
                backoff = doubled(backoff, 0.5, MAX_BACKOFF_SECONDS)
                log.exception("audit archive: batch failed; %d record(s) wait", self.pending())

    def close(self) -> None:
        """No batch is begun after this (one being written is finished): a replica that stopped
        leading must not write beside the next leader, which continues the chain."""
        self._closed = True
        self._marker.shutdown(wait=False, cancel_futures=True)


# The kinds whose `status.driftRemovals` entries leave once their records are written (and their
# notices delivered), by plural.
_DRIFT_LISTS: dict[str, tuple[str, Callable[[Mapping[str, Any]], str]]] = {
    plural: audit.DRIFT_REMOVALS[kind] for plural, kind in names.KINDS.items() if kind in audit.DRIFT_REMOVALS
}


def _say_head(archive: Archive, key: str, data: bytes, metadata: Mapping[str, str]) -> None:
    """Which batch a starting writer continues the chain from; a WARNING when it is dated later
    than clocks allow, or is not a batch as the operator writes them (an older jitaccess's, with
    no digest, or someone else's): the chain goes on from it all the same, there being nothing
    better to name."""
    ahead = audit.written_at(key)
    if ahead is not None and ahead > _now() + audit.SKEW:
        log.warning(
            "audit archive: the newest object, s3://%s/%s, is dated %s, later than this replica's "
            "clock allows: check the clocks, and the archive with kubectl jit audit --verify",
            archive.bucket,
            key,
            ahead.isoformat(),
        )
    if metadata.get(chain.DIGEST) == chain.digest(data):
        log.info("audit archive: the chain continues from s3://%s/%s", archive.bucket, key)
        return
    log.warning(
        "audit archive: the chain continues from s3://%s/%s, the newest object there, which %s: "
        "check the archive with kubectl jit audit --verify",
        archive.bucket,
        key,
        "has no jitaccess digest" if chain.DIGEST not in metadata else "does not have the digest it carries",
    )


def _after(previous: chain.Link | None, now: datetime) -> datetime:
    """When a batch is written, for its key: now, unless the batch it follows has a later time in its
    key (another replica's clock ahead of this one's, within audit.SKEW): then a microsecond after it, so
    that the keys keep the chain's order. A head further ahead than audit.SKEW is not followed in time
    (`_chain_head` warns of it), and `kubectl jit audit --verify` shows the order broken."""
    before = audit.written_at(previous.key) if previous is not None else None
    if before is not None and now <= before <= now + audit.SKEW:
        return before + timedelta(microseconds=1)
    return now


def _print(record: audit.Record) -> None:
    actor = (record.get("actor") or {}).get("username", "?")
    audit_log.info(
        "audit %s %s/%s by %s",
        record.get("action"),
        record.get("kind"),
        record.get("name"),
        actor,
        extra={"audit": record},
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _parse(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return _now()


def connect(settings: Settings, kube: Kube) -> AuditTrail:
    archive, signer = None, None
    if settings.audit_bucket:
        archive = Archive.connect(
            settings.audit_bucket,
            settings.audit_prefix,
            region=settings.audit_region or settings.region,
            endpoint_url=settings.audit_endpoint_url,
        )
        _say_protection(archive)
        if settings.audit_signing_key:
            signer = BatchSigner.connect(
                settings.audit_signing_key,
                region=settings.audit_region or settings.region,
                endpoint_url=settings.audit_kms_endpoint_url,
            )
            log.info("audit archive: each batch is signed with KMS key %s", settings.audit_signing_key)
    else:
        log.warning(
            "no audit archive (audit.s3.bucket, JITACCESS_AUDIT_BUCKET): the records are kept only in the "
            "cluster's objects, which approvers may delete and retention deletes after %s days, and printed "
            "to the log: configure an S3 bucket with Object Lock for an audit trail that outlives them",
            round(settings.retention_seconds / 86400),
        )
    return AuditTrail(
        kube,
        archive,
        batch_records=settings.audit_batch_records,
        batch_seconds=settings.audit_batch_seconds,
        signer=signer,
        notices=config_of(settings),
    )


def _say_protection(archive: Archive) -> None:
    """Once at start: whether the bucket keeps what is written in it, as an auditor will ask."""
    where = f"s3://{archive.bucket}/{archive.prefix}"
    try:
        problem = archive.unprotected()
    except ArchiveUnavailable as exc:  # the role may not read the setting: say so, and go on archiving
        log.warning("audit archive %s: cannot read its Object Lock configuration (%s)", where, exc)
        return
    if problem is None:
        log.info("audit archive %s: every record is locked in COMPLIANCE mode once written", where)
    else:
        log.warning("audit archive %s is not write-once: %s (docs/audit.md, the bucket)", where, problem)


# --- kopf ------------------------------------------------------------------------------------


@dataclass
class TrailSlot:
    """Where the operator's one audit trail lives. kopf hands each object's handlers a copy of the
    operator's memo: the slot, put there at start-up, is shared by all the copies."""

    trail: AuditTrail | None = None
    task: asyncio.Task[None] | None = None
    writer: ThreadPoolExecutor | None = None


@kopf.on.startup()
def make_room_for_the_audit_trail(memo: kopf.Memo, **_: Any) -> None:
    memo[MEMO_KEY] = TrailSlot()


def trail_of(memo: Any) -> AuditTrail | None:
    """The operator's audit trail, started with the first watch event (the Runtime exists by then,
    whatever the order of the start-up handlers); None without a slot or a Runtime (handler tests)."""
    slot = memo.get(MEMO_KEY)
    if not isinstance(slot, TrailSlot):
        return None
    if slot.trail is not None:
        return slot.trail
    try:
        rt = runtime_of(memo)
    except RuntimeError:
        return None
    trail = slot.trail = connect(rt.settings, rt.kube)
    if trail.archive is not None:
        rt.audit_backlog = trail.backlog
    slot.writer = ThreadPoolExecutor(1, thread_name_prefix="jitaccess-audit")
    slot.task = asyncio.get_running_loop().create_task(trail.run(slot.writer), name="jitaccess audit archive")
    where = f"s3://{trail.archive.bucket}/{trail.archive.prefix}" if trail.archive else "stdout only (no bucket)"
    log.info("audit records: %s, batches of up to %d every %ss", where, trail.batch_records, trail.batch_seconds)
    return trail


@kopf.on.cleanup()
async def stop_audit_trail(memo: kopf.Memo, **_: Any) -> None:
    """Stop the archiver and write what waits, for a few seconds at most (anything left is derived
    again at the next start)."""
    slot = memo.get(MEMO_KEY)
    if not isinstance(slot, TrailSlot) or slot.trail is None or slot.task is None or slot.writer is None:
        return
    trail, task, writer = slot.trail, slot.task, slot.writer
    with contextlib.suppress(RuntimeError):  # no Runtime: nothing was lent to it
        rt = runtime_of(memo)
        if rt.audit_backlog == trail.backlog:
            rt.audit_backlog = None  # the next leader's trail takes over the records still waiting
    task.cancel()
    loop = asyncio.get_running_loop()

    def drain() -> None:
        began = time.monotonic()
        while trail.pending() and time.monotonic() - began < STOP_FLUSH_SECONDS and trail.flush():
            pass

    try:
        await asyncio.wait_for(loop.run_in_executor(writer, drain), STOP_FLUSH_SECONDS)
    except (TimeoutError, ArchiveUnavailable) as exc:
        log.warning("audit archive: stopping with %d record(s) not archived (%s)", trail.pending(), exc)
    trail.close()
    writer.shutdown(wait=False)


def archiving(memo: Any) -> bool:
    """Whether this operator's audit trail writes to an archive (else records go to stdout only)."""
    trail = trail_of(memo)
    return trail is not None and trail.archive is not None


def hold_until_archived(
    memo: Any, plural: str, obj: Mapping[str, Any] | None, *, retry: int, longest: float, what: str
) -> None:
    """For a deletion handler whose object kopf's finalizer keeps until its audit records are
    written (a deleted grant, a released Entitlement): returns once they are (or without an archive,
    or once the object is gone); else a `waiting:` retry (`logs.WaitsAreNotErrors`: a wait, not a
    failure), asked again after 0.5 s, doubling up to `longest` while S3 stays away.

    An Entitlement or a PermissionCatalog also waits for the notices of its drift removals (the
    security channel, the event sink): they are derived from its `status.driftRemovals`, so an
    object gone with one untold is told by nobody once the process that remembers it restarts. At
    most `notifications.Config.drift_hold_deletion` from the deletion (`_told_or_overdue`)."""
    trail = trail_of(memo)
    if obj is None or trail is None:
        return
    delay = min(longest, 0.5 * 2 ** min(retry, 6))  # capped: kopf's retry counts every earlier wait
    if trail.archive is not None and not trail.archived(plural, obj):
        raise kopf.TemporaryError(f"{releases.WAITING} {what} not in the archive yet: it goes once it is", delay=delay)
    untold = notifications.untold_drift(obj, trail.notices) if plural in _DRIFT_LISTS else None
    if untold is not None and not _told_or_overdue(trail.notices, untold, obj):
        _say_drift_wait(trail, plural, obj, untold)
        raise kopf.TemporaryError(
            f"{releases.WAITING} the notices of its drift removals are not delivered yet (is Slack or the event "
            f"sink down?): it goes once they are, or {format_duration(trail.notices.drift_hold_deletion)} after "
            "its deletion",
            delay=_drift_wait_delay(obj),
        )


# The model of each kind whose deletion waits for drift notices, to read its status by (`status_change`).
_DRIFT_MODELS: dict[str, type[Entitlement] | type[PermissionCatalog]] = {
    names.ENTITLEMENTS: Entitlement,
    names.CATALOGS: PermissionCatalog,
}
_TARGETS = {notifications.SLACK: "the security channel", notifications.WEBHOOK: "the event sink"}


def _drift_wait_delay(obj: Mapping[str, Any]) -> float:
    """When the wait for drift notices asks again: after as long as it has waited so far (doubling),
    from `DRIFT_WAIT_FIRST_SECONDS` up to `DRIFT_WAIT_LONGEST_SECONDS`. Timed from its condition, not
    by kopf's `retry`, which counts every earlier wait of the handler (an Entitlement's grants, the
    archive): a wait that begins after an hour of those would ask once a minute from the start."""
    pending = wire.condition(obj, names.DRIFT_NOTICES_PENDING)
    began = pending.get("lastTransitionTime") if pending is not None else None
    waited = (_now() - _parse(began)).total_seconds() if began else 0.0
    return min(DRIFT_WAIT_LONGEST_SECONDS, max(DRIFT_WAIT_FIRST_SECONDS, waited))


def _say_drift_wait(trail: AuditTrail, plural: str, obj: Mapping[str, Any], untold: notifications.UntoldDrift) -> None:
    """Say on the object why it has not gone yet, and until when it waits: its `DriftNoticesPending`
    condition, written when the wait begins and when the removals it waits for change (not at each
    retry: its message keeps no time that moves)."""
    deleted = wire.metadata(obj).get("deletionTimestamp")
    until = (_parse(deleted) if deleted else _now()) + trail.notices.drift_hold_deletion
    targets = " and ".join(_TARGETS[sink] for sink in untold.sinks)
    named = listed(untold.keys, most=DRIFT_WAIT_NAMED)
    message = (
        f"deleted; waiting until {wire.rfc3339(until)} for {targets or 'the notifier'} to be told "
        f"of {len(untold.keys)} drift removal(s) ({named}): it goes once they are (is Slack or the event sink down?), "
        f"or then with a {names.DRIFT_UNTOLD} Warning Event naming those left untold"
    )
    pending = wire.condition(obj, names.DRIFT_NOTICES_PENDING)
    if pending is not None and pending.get("message") == message:
        return

    def build(current: Entitlement | PermissionCatalog) -> dict[str, Any] | None:
        conditions = current.status.conditions
        found = cond.find(conditions, names.DRIFT_NOTICES_PENDING)
        if found is not None and found.message == message:
            return None
        return {
            "conditions": conditions_after(
                conditions, [(names.DRIFT_NOTICES_PENDING, True, names.DRIFT_UNTOLD, message)]
            )
        }

    change = status_change(_DRIFT_MODELS[plural], build)
    trail.kube.update_status(plural, wire.name_of(obj), change, uid=wire.uid_of(obj))


def _told_or_overdue(config: notifications.Config, untold: notifications.UntoldDrift, obj: Mapping[str, Any]) -> bool:
    """Whether a deleted Entitlement or PermissionCatalog may go as far as its drift removals' notices
    go: each delivered, or `config.drift_hold_deletion` passed since its deletion. Then a Warning
    Event (and its audit log line) names each removal left untold; its audit record is archived, the
    complete account of it. The Event names as many as the object's status holds for their notices
    (`DRIFT_UNTOLD_NAMED`), and counts any beyond."""
    if not untold.keys:
        return True
    deleted = wire.metadata(obj).get("deletionTimestamp")
    if deleted is None or _now() - _parse(deleted) < config.drift_hold_deletion:
        return False
    recording.record(
        obj,
        names.DRIFT_UNTOLD,
        f"deleted with {len(untold.keys)} drift removal(s) whose notices were not delivered within "
        f"{format_duration(config.drift_hold_deletion)} of the deletion (is Slack or the event sink down?); "
        f"their audit records are archived (kubectl jit audit): {listed(untold.keys, most=DRIFT_UNTOLD_NAMED)}",
        warning=True,
    )
    return True


async def audit_request(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _offer_withdrawable(memo, names.REQUESTS, type, body)


async def audit_extension(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _offer_withdrawable(memo, names.EXTENSIONS, type, body)


def _offer_withdrawable(memo: kopf.Memo, plural: str, type: str | None, body: kopf.Body) -> None:
    """Requests and extensions carry `names.RECORDS_FINALIZER` when an archive is configured (the
    admission webhook adds it): a deleted one stays until its records are archived, with the API
    server's `deletionTimestamp` dating the deletion (`withdrawn`, `extension-withdrawn`, when it
    still waited). One without it (made before the finalizer, or without an archive) goes at once,
    and its last state does not say when: the moment the watch saw it go dates the deletion."""
    trail = trail_of(memo)
    if trail is None:
        return
    obj = dict(body)
    if type == "DELETED" and not wire.metadata(obj).get("deletionTimestamp"):
        obj["metadata"] = {**wire.metadata(obj), "deletionTimestamp": wire.rfc3339(_now())}
    trail.offer(plural, obj)
    if type == "DELETED":
        trail.forget(plural, obj)
    elif wire.deleting(obj) and names.RECORDS_FINALIZER in (wire.metadata(obj).get("finalizers") or []):
        trail.release_when_archived(plural, obj)


async def audit_grant(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    trail = trail_of(memo)
    if trail is not None:
        trail.offer(names.GRANTS, dict(body))
        if type == "DELETED":
            trail.forget(names.GRANTS, dict(body))


@kopf.on.event(names.GROUP, names.VERSION, names.ENTITLEMENTS)
async def audit_entitlement(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _offer_drift(memo, names.ENTITLEMENTS, body)


@kopf.on.event(names.GROUP, names.VERSION, names.CATALOGS)
async def audit_catalog(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _offer_drift(memo, names.CATALOGS, body)


def _offer_drift(memo: kopf.Memo, plural: str, body: kopf.Body) -> None:
    """An Entitlement's or a PermissionCatalog's records, and its drift removals settled once told
    (the notifier's marks come back as watch events; so does the listing at start-up, for a
    notice target no longer configured)."""
    trail = trail_of(memo)
    if trail is not None:
        obj = dict(body)
        trail.offer(plural, obj)
        trail.settle(plural, obj)

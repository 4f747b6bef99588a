"""What the handlers share for the life of the operator: settings, adapters, locks, caches.

One `Runtime` lives in kopf's operator memo (`memo.runtime`), so tests can run the handlers
with `kopf.testing.KopfRunner` and their own Runtime (an emulated Identity Center, say).

The blocking work of the request and grant handlers runs in the Runtime's own threads
(`run_blocking`), not in kopf's executor: their writes to the API server wait for the admission
webhooks, which kopf serves from its executor. In one shared pool, a burst of handlers takes every
thread and then waits for webhook calls that have no thread left to run in (each failing after
the webhooks' 15 s timeout). Work on grants has threads apart from the requests'
decisions (`run_granting`), so that a grant never waits behind a burst of new requests. An
auto-approved grant is provisioned within its request's decision (`grants.provision_at_once`), in
the request's thread, while the Identity Center quota has room for its membership at once; under
a burst held to the quota its grant's own handler does it, so that the request threads, which
also end the grants of deleted requests and of lapsed eligibility, never wait out the quota.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Container, Hashable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from jitaccess.adapters.identitycenter import LONGEST_CALL_SECONDS, IdentityCenter, RateLimiter
from jitaccess.adapters.kube import Kube
from jitaccess.adapters.ssoadmin import SsoAdmin
from jitaccess.domain.admission import Admit, Verdict
from jitaccess.domain.extensions import Waiting as ExtensionWaiting
from jitaccess.domain.following import Laggards
from jitaccess.domain.requests import Waiting
from jitaccess.domain.schedule import CLOCK_SKEW
from jitaccess.errors import NotFound, PermanentFailure
from jitaccess.handlers import filings
from jitaccess.handlers.grant_names import GrantNames
from jitaccess.handlers.known_requests import KnownRequests
from jitaccess.handlers.scheduler import ExpiryScheduler
from jitaccess.settings import Settings

_ENDED_MEMORY_SECONDS = 600.0
_CACHE_SECONDS = 60.0
# The webhook checks a new request's eligibility, and the handler checks it again a moment later:
# a "yes" this fresh is taken as the answer, sparing Identity Center a second identical call. A "no"
# about the account (disabled, or gone) is kept as long: the webhooks, the operator's count and the
# activation of one approval by a leaver ask once (`Runtime.recently_refused`).
ELIGIBLE_SECONDS = 5.0
# A group name that is no group (`NotFound`), to the callers that ask for it to be remembered
# (`Runtime.cached`): every Entitlement's check resolves the names of the groups people hold standing
# that all of them name (`handlers.catalog`), and one that names no group would otherwise cost a
# `GetGroupId` per check. A group created under that name is seen by them within this long.
_NO_GROUP_SECONDS = 30.0
# A request handed to its grant's handler stands for a read of it only while that is as fresh as a
# read: the moment between creating the grant and its handler running, unless a burst queues it.
_HANDOFF_SECONDS = 5.0
# A grant its request's handler provisions itself is forgotten if kopf never runs the grant's own
# handler for it (kopf can see the grant first once it is `Active`, with nothing left to do).
_PROVISION_MEMORY_SECONDS = 60.0
# A request admitted here counts as waiting until the watch shows it (normally milliseconds), or
# this long if it never does (refused after this webhook, by a policy or another webhook).
_ADMITTED_SECONDS = 15.0
# How many users' creation buckets a replica keeps before it drops those unused for a minute.
_PER_USER_PRUNE_AT = 1000
T = TypeVar("T")
V = TypeVar("V")
# What Identity Center said of an account when it said no: disabled, or no longer there.
AccountNo = Literal["disabled", "gone"]


def _drop_stale(
    items: dict[Any, V], now: float, seconds: float, stamp: Callable[[V], float], *, at_limit: bool = False
) -> None:
    """Drop from `items`, in place, the entries whose `stamp` is more than `seconds` before `now`
    (`at_limit`: `seconds` or more, where the reader takes only what is younger than `seconds`), so
    that a time-stamped cache stays bounded by what is still fresh."""

    def aged(value: V) -> bool:
        age = now - stamp(value)
        return age >= seconds if at_limit else age > seconds

    for key in [k for k, v in items.items() if aged(v)]:
        del items[key]


class ObjectIndex(Mapping[Hashable, tuple[Any, ...]]):
    """A thread-safe index of watched objects: key -> the values of the objects filed under it.

    Each object (by name) is filed under one key (`observe`), or several (`file`). What kopf's `@kopf.index` gives, kept
    instead by `@kopf.on.event` handlers (`observe`) for the kinds that grow with use (grants,
    requests): at start-up kopf holds every handler back until each object of an indexed kind is
    indexed, and wakes every waiting worker each time one is, which is quadratic in the number of
    objects (seconds for hundreds of grants, over ten minutes for 5,000, during which no overdue
    grant is revoked and no webhook is answered in time).

    An object deleted while its watch was cut stays filed (kopf lists again and shows no deletion)
    until a listing of its kind drops it (`drop_unlisted`, `indexes.reconcile`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[Hashable, dict[str, Any]] = {}
        self._keys_of: dict[str, tuple[Hashable, ...]] = {}
        # When each object filed was filed last: what `drop_unlisted` may drop.
        self._filed = filings.Filed()

    def observe(self, name: str, entry: tuple[Hashable, Any] | None) -> None:
        """File object `name` under `entry` = (key, value), or nowhere (None: filtered out, or gone)."""
        self.file(name, () if entry is None else (entry[0],), None if entry is None else entry[1])

    def file(self, name: str, keys: tuple[Hashable, ...], value: Any) -> None:
        """File object `name` under each of `keys` with `value`, and under nothing else (no keys: nowhere)."""
        with self._lock:
            self._file(name, keys, value)

    def _file(self, name: str, keys: tuple[Hashable, ...], value: Any) -> None:
        for old in self._keys_of.pop(name, ()):
            rest = self._values.get(old, {})
            rest.pop(name, None)
            if not rest:
                self._values.pop(old, None)
        self._filed.pop(name, None)
        if keys:
            self._keys_of[name] = keys
            self._filed.file(name)
            for key in keys:
                self._values.setdefault(key, {})[name] = value

    def drop_unlisted(self, listed: Container[str], since: int, prefix: str = "") -> list[str]:
        """Unfile every object filed before `since` (a `filings.stamp` taken before a listing began)
        that `listed` (the names the listing holds) lacks: deleted while no watch showed it. With
        `prefix`, only the objects named `prefix` + a listed kind's name, looked up without it. The
        names dropped, without the prefix."""
        with self._lock:
            gone = self._filed.drop_unlisted(listed, since, prefix)
            for name in gone:
                self._file(name, (), None)
        return [name[len(prefix) :] for name in gone]

    def file_unless_filed(self, name: str, keys: tuple[Hashable, ...], value: Any) -> bool:
        """`file`, unless object `name` is filed already (the watch, which knows it better, was
        first): whether this filed it."""
        with self._lock:
            if name in self._keys_of:
                return False
            self._file(name, keys, value)
            return True

    def __getitem__(self, key: Hashable) -> tuple[Any, ...]:
        with self._lock:
            return tuple(self._values[key].values())

    def __iter__(self) -> Iterator[Hashable]:
        with self._lock:
            return iter(list(self._values))

    def __len__(self) -> int:
        return len(self._values)

    def key_of(self, name: str) -> Hashable | None:
        """The (first) key object `name` is filed under, or None (filtered out, or gone)."""
        with self._lock:
            keys = self._keys_of.get(name, ())
            return keys[0] if keys else None


class Handoffs:
    """What one handler gives the next, by key, taken once and only while fresh: a request's name
    -> the request as the request handler's write left it, for its new grant (`handlers.backing`)."""

    def __init__(self, seconds: float = _HANDOFF_SECONDS) -> None:
        self._seconds = seconds
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, dict[str, Any]]] = {}

    def put(self, key: str, value: dict[str, Any]) -> None:
        now = time.monotonic()
        with self._lock:
            _drop_stale(self._items, now, self._seconds, lambda item: item[0])
            self._items[key] = (now, value)

    def take(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            item = self._items.pop(key, None)
        return item[1] if item is not None and time.monotonic() - item[0] <= self._seconds else None


class PerUser:
    """A token bucket per user (`RateLimiter`, `count` per `period` seconds, as many at once): how
    often each may do something on this replica (create AccessRequests and AccessExtensions; ask approvers). A bucket
    unused for a period is full again and is dropped, so memory follows the users active lately."""

    def __init__(self, count: int, period: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.count, self.period = count, period
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[RateLimiter, float]] = {}

    def take(self, user: str, *, peek: bool = False) -> float:
        """0.0 if `user` may now (and it counts, unless `peek`), else the seconds until they may."""
        if self.count <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            if len(self._buckets) >= _PER_USER_PRUNE_AT:
                self._buckets = {u: b for u, b in self._buckets.items() if now - b[1] < self.period}
            bucket = self._buckets.get(user, (None, now))[0] or RateLimiter(
                self.count / self.period, burst=self.count, clock=self._clock
            )
            self._buckets[user] = (bucket, now)
        return bucket.take(peek=peek)


class WaitingRequests:
    """Requests that wait for a decision, by requester (`requests.waiting_problem` asks of them).

    Kept from the watch (`observe`: stored requests neither decided nor finished), and with the
    requests this replica has just admitted and the watch does not show yet (`admit`): requests
    created at the same moment are each checked before any of them is stored, and without these
    every one of them would find nothing waiting. A replica knows only its own admissions, so with
    N replicas at most N such requests can pass at the same moment.
    """

    def __init__(self, seconds: float = _ADMITTED_SECONDS) -> None:
        self._seconds = seconds
        self._lock = threading.Lock()
        self._stored = ObjectIndex()
        # name -> (requester, what waits, when admitted)
        self._admitted: dict[str, tuple[str, Waiting, float]] = {}

    def observe(self, name: str, entry: tuple[str, Waiting] | None) -> None:
        """The watch's view of request `name`: (requester, what waits), or None (decided, finished, gone)."""
        with self._lock:
            self._stored.observe(name, entry)
            self._admitted.pop(name, None)  # from now on the watch knows it

    def drop_unlisted(self, listed: Container[str], since: int) -> list[str]:
        """`ObjectIndex.drop_unlisted` of the stored requests (those just admitted go by themselves)."""
        with self._lock:
            return self._stored.drop_unlisted(listed, since)

    def of(self, user: str) -> list[Waiting]:
        with self._lock:
            return self._of(user)

    def admit(self, user: str, waiting: Waiting, check: Callable[[list[Waiting]], str | None]) -> str | None:
        """`check` the user's waiting requests; when it finds no problem, count `waiting` among them
        until the watch shows it. Both under one lock, so that concurrent admissions see each other."""
        with self._lock:
            problem = check(self._of(user))
            if problem is None:
                self._admitted[waiting.name] = (user, waiting, time.monotonic())
            return problem

    def _of(self, user: str) -> list[Waiting]:
        now = time.monotonic()
        _drop_stale(self._admitted, now, self._seconds, lambda admitted: admitted[2])
        stored = {w.name: w for w in self._stored.get(user, ())}
        admitted = {w.name: w for who, w, _ in self._admitted.values() if who == user and w.name not in stored}
        return [*stored.values(), *admitted.values()]


class ExtensionAdmissions:
    """Extensions this replica has just admitted, by grant, counted where a listing does not show them.

    A new extension is checked against its grant's other unfinished extensions as listed from the
    API server; extensions created at the same moment are each checked before any of them is
    stored, so without these every one of them would find the caps' room free (four waiting where
    `maxExtensions` allows two). As with `WaitingRequests`, a replica knows only its own admissions.
    """

    def __init__(self, seconds: float = _ADMITTED_SECONDS) -> None:
        self._seconds = seconds
        self._lock = threading.Lock()
        # name -> (grant, what it adds, when admitted)
        self._admitted: dict[str, tuple[str, ExtensionWaiting, float]] = {}

    def admit(
        self,
        grant: str,
        mine: ExtensionWaiting,
        listed: Mapping[str, ExtensionWaiting | None],
        check: Callable[[list[ExtensionWaiting]], Verdict],
        *,
        reserve: bool = True,
    ) -> Verdict:
        """`check` the grant's unfinished extensions: those `listed` (name -> what it adds, None
        when finished) and those admitted here that the listing does not show yet; when `check`
        admits (and `reserve`: not a dry run), count `mine` among them. Under one lock, so that
        concurrent admissions see each other."""
        now = time.monotonic()
        with self._lock:
            _drop_stale(self._admitted, now, self._seconds, lambda admitted: admitted[2])
            # What a listing shows counts as it shows it. An admission is not forgotten when one listing
            # shows it: another, concurrent, may have listed before it was stored and still needs it.
            recent = [
                w for g, w, _ in self._admitted.values() if g == grant and w.name != mine.name and w.name not in listed
            ]
            verdict = check([*(w for w in listed.values() if w is not None and w.name != mine.name), *recent])
            if isinstance(verdict, Admit) and reserve:
                self._admitted[mine.name] = (grant, mine, now)
            return verdict

    def forget(self, name: str) -> None:
        """Extension `name` is deleted (withdrawn) before any listing showed it."""
        with self._lock:
            self._admitted.pop(name, None)


class Provisions:
    """Grants their request's handler provisions itself (`grants.provision_at_once`), by name:
    kopf runs the grant's own handler for the same grant a moment later, which waits for that
    work (`handled`) instead of doing it again; whatever ends the grant meanwhile waits for it
    too (`wait_finished`), as kopf makes one object's handlers wait for each other."""

    def __init__(self, seconds: float = _PROVISION_MEMORY_SECONDS) -> None:
        self._seconds = seconds
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, Future[str]]] = {}
        self._running: dict[str, Future[str]] = {}

    def start(self, name: str) -> Future[str]:
        """Before the grant `name` is created: its result is the uid of the grant it provisioned
        (or failed, for good), or "" when the grant's handler must do it."""
        future: Future[str] = Future()
        future.set_running_or_notify_cancel()  # a waiter that gives up cannot cancel it
        now = time.monotonic()
        with self._lock:
            # Only finished work is forgotten: a grant's handler that came late to work still
            # running (a burst queued for the quota) must still wait for it.
            stale = [k for k, (stamp, f) in self._items.items() if f.done() and now - stamp > self._seconds]
            for key in stale:
                del self._items[key]
            self._items[name] = (now, future)
            self._running[name] = future
        future.add_done_callback(functools.partial(self._finished, name))
        return future

    def _finished(self, name: str, future: Future[str]) -> None:
        with self._lock:
            if self._running.get(name) is future:
                del self._running[name]

    def wait_finished(self, name: str, timeout: float) -> bool:
        """Block until the provisioning of grant `name` under way in this process, if any, is
        over (at most `timeout`); True if there was one. Before a grant is ended: kopf can hand
        over the grant's deletion or revocation while its request's handler still provisions it
        (its first event of the grant already a deletion, say), and a membership added after the
        end removed nothing would be access with no grant."""
        with self._lock:
            future = self._running.get(name)
        if future is None:
            return False
        with contextlib.suppress(TimeoutError):
            future.result(timeout)
        return True

    async def handled(self, name: str, uid: str, timeout: float) -> bool:
        """Whether the request's handler provisioned the grant `name` (this very `uid`) itself,
        once that work is over; False when it did not, failed, or takes longer than `timeout`."""
        with self._lock:
            item = self._items.pop(name, None)
        if item is None:
            return False
        try:
            return await asyncio.wait_for(asyncio.wrap_future(item[1]), timeout) == uid
        except TimeoutError:
            # Provisioning twice is safe (one membership lock, optimistic writes), only wasteful.
            return False


class Attempts:
    """Which grants this controller has tried to provision since it began acting, and when that
    was: whether anything could have given a grant's access before the attempt now under way.
    Identity Center says whether a membership was there already; an account assignment made
    again looks like a new one, so in account-assignment mode a grant created before this
    controller began (a previous leader or process may have assigned it, then died) or tried
    before in it (the first attempt assigned, then its `Active` write failed) counts its time
    from its creation (`grants.activation_start`).

    When each was first tried here is kept too, in memory only (no write on the way to Identity
    Center): failing a grant says from when its user may have held what an attempt's lost answer
    added (`grants.fail`, `status.takeBack.since`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.since = datetime.now(UTC)
        self._tried: dict[str, datetime] = {}
        self._ran_out: set[str] = set()

    def begin(self) -> None:
        """The controller starts acting (a fresh kopf operator, on each acquisition of the Lease)."""
        with self._lock:
            self.since = datetime.now(UTC)
            self._tried.clear()
            self._ran_out.clear()

    def ran_out(self, uid: str) -> None:
        """The grant `uid`'s time is over while its `Active` write failed, and what it held was
        taken out (`grants._record_active`): no later attempt adds it again."""
        with self._lock:
            self._ran_out.add(uid)

    def has_run_out(self, uid: str) -> bool:
        with self._lock:
            return uid in self._ran_out

    def first(self, uid: str, created: datetime | None, at: datetime | None = None) -> bool:
        """Whether this is the first attempt at the grant `uid` anywhere; records it as tried (`at`,
        by default now), unless it was before."""
        with self._lock:
            tried = uid in self._tried
            self._tried.setdefault(uid, at or datetime.now(UTC))
            return not tried and not self.before(created)

    def before(self, created: datetime | None) -> bool:
        """Whether a controller before this one may have tried a grant created at `created`. The
        creation time is the API server's clock and `since` this process's: a grant the controller
        before created just before it stopped may carry a time after `since` when the API server's
        clock runs ahead, so a grant created within `CLOCK_SKEW` after it counts as maybe tried."""
        return created is None or created < self.since + CLOCK_SKEW

    def earlier_adds_settled(self, created: datetime | None, at: datetime) -> float:
        """Seconds from `at` until whatever a controller before this one may have sent to give the
        grant created at `created` access has landed or can no longer land; 0 when nothing can
        still be on its way. That controller's last write went out before it stopped acting, hence
        before this one began (`begin`: a standby takes the Lease only after the old leader's
        renew deadline; a restarted process after the old one's death), and one attempt of a call
        is answered or given up within `LONGEST_CALL_SECONDS`; retries of a write go out only
        while leading (`identitycenter.pace_retries`)."""
        if created is None or not self.before(created):
            return 0.0  # None: not a stored grant (the API server stamps every creation)
        return max(0.0, (self.since - at).total_seconds() + LONGEST_CALL_SECONDS)

    def tried_at(self, uid: str) -> datetime | None:
        """When this controller first tried to add the grant `uid`'s access; None if it has not."""
        with self._lock:
            return self._tried.get(uid)

    def over(self, uid: str) -> None:
        """The grant is Active or finished: nothing more to remember of it."""
        with self._lock:
            self._tried.pop(uid, None)
            self._ran_out.discard(uid)


class Passes:
    """A pass over many objects that each of their watch events asks for: at most one runs at a
    time, and any number of requests during it make exactly one more (`handlers.overlaps`). Only
    ever touched from the controller's event loop, between two awaits: no lock is needed."""

    def __init__(self) -> None:
        self.running = False
        self.again = False


class ScannedGroups:
    """The groups each Entitlement's last drift scan covered (by Entitlement uid: id -> name), to
    tell when one stops being scanned (`handlers.catalog`, the `ScanStopped` Event). In memory: a
    process that starts anew says nothing of a group given up before."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[str, dict[str, str]] = {}

    def replace(self, key: str, groups: Mapping[str, str]) -> dict[str, str]:
        """Record `groups` as what Entitlement `key`'s pass scanned; what its previous pass did."""
        with self._lock:
            before = self._groups.get(key, {})
            self._groups[key] = dict(groups)
        return before

    def forget(self, key: str) -> None:
        """The Entitlement is released: no pass of it is to come."""
        with self._lock:
            self._groups.pop(key, None)


@dataclass
class Runtime:
    settings: Settings
    identity_center: IdentityCenter
    kube: Kube
    # The admission webhooks' way to Identity Center: the same quota through a client that gives up
    # within the API server's webhook timeout (`IdentityCenter.quick`); the handlers' by default.
    admission_identity_center: IdentityCenter | None = None
    # sso-admin, for PermissionCatalogs: connected on first use (`handlers.permissionsets.sso_of`).
    sso_admin: SsoAdmin | None = None
    # PermissionCatalog names by the Identity Center group of a tier (`permissionsets.observe`):
    # where a revoked grant's sessions are denied (`sessions`).
    catalog_groups: ObjectIndex = field(default_factory=ObjectIndex)
    # The revocations each catalog's last pass took up, by catalog uid (`permissionsets.unprovisioned`):
    # a pass that failed to provision them is not started again by its own status write.
    denials_tried: dict[str, frozenset[tuple[str, str, str]]] = field(default_factory=dict)
    # One lock per (UserId, group) membership: adding and removing it, and deciding whether any
    # other grant still holds it, must not interleave.
    _locks: defaultdict[tuple[str, str], threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))
    _locks_guard: threading.Lock = field(default_factory=threading.Lock)
    _ended: dict[str, float] = field(default_factory=dict)
    _ended_keys: dict[tuple[str, str], float] = field(default_factory=dict)
    _ended_uids: dict[str, float] = field(default_factory=dict)
    _cache: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)
    # Group id -> the names resolved to it (`group_names`), kept beside the cache: asked at every
    # grant's end, where going through the cache's users would cost a pass over thousands.
    _group_names: dict[str, set[str]] = field(default_factory=dict)
    _eligible: dict[tuple[str, tuple[str, ...]], float] = field(default_factory=dict)
    _refused: dict[str, tuple[float, AccountNo]] = field(default_factory=dict)
    # User names `GetUserId` answered NotFound for, when, and its answer (`cached`): a "no" as well.
    _no_user: dict[str, tuple[float, NotFound]] = field(default_factory=dict)
    # Group names `GetGroupId` answered NotFound for, when, and its answer (`cached`, `no_group`).
    _no_group: dict[str, tuple[float, NotFound]] = field(default_factory=dict)
    # Kept by `indexes` from the watches. Which live grants hold each (UserId, group) membership
    # (rule 1's reference count); Active grants (the gauges), requests awaiting a decision and
    # finished objects, by entitlement (what `schedules` acts on at their deadlines).
    holders: ObjectIndex = field(default_factory=ObjectIndex)
    active: ObjectIndex = field(default_factory=ObjectIndex)
    pending: ObjectIndex = field(default_factory=ObjectIndex)
    # The persisted expiration time of each Active grant, by entitlement: the overdue gauges. Not
    # `expiries`, which on the leader holds a retry's time instead, and not a grant being ended.
    expirations: ObjectIndex = field(default_factory=ObjectIndex)
    # When this replica first saw each still-Active grant marked revoked (the annotation carries no
    # time): such a grant counts as overdue from then, not from its expiration time (`indexes`).
    revocations_seen: dict[str, datetime] = field(default_factory=dict)
    # Requests that wait for a decision, by requester (the approval-fatigue limits at admission).
    waiting: WaitingRequests = field(default_factory=WaitingRequests)
    # Extensions just admitted here, by grant (the caps at admission: `extension_admission`).
    extension_admissions: ExtensionAdmissions = field(default_factory=ExtensionAdmissions)
    # Approved requests waiting for their spec.startTime, by entitlement: see `handlers.starts`.
    starts: ObjectIndex = field(default_factory=ObjectIndex)
    finished: ObjectIndex = field(default_factory=ObjectIndex)
    # Break-glass requests awaiting their review, by entitlement, on every replica (`handlers.breakglass`).
    break_glass: ObjectIndex = field(default_factory=ObjectIndex)
    # Requests that lag behind their grants (a crash between the two writes): see `handlers.following`.
    laggards: Laggards = field(default_factory=Laggards)
    # Stored requests by name and uid: whether an active grant's request is still there (`deleted_requests`).
    requests: KnownRequests = field(default_factory=KnownRequests)
    # Every stored grant's name (a new request may not take one: `grant_names`).
    grant_names: GrantNames = field(default_factory=GrantNames)
    # Active grants by expiration time: see `handlers.expiry`.
    expiries: ExpiryScheduler = field(default_factory=ExpiryScheduler)
    # Entitlements and PermissionCatalogs by (plural, Ready status, reason), from every replica's
    # watch (`indexes.observe_readiness`): the readiness gauges.
    readiness: ObjectIndex = field(default_factory=ObjectIndex)
    # Entitlements whose `Overlapping` condition is True, by its reason, likewise: the gauge.
    overlapping: ObjectIndex = field(default_factory=ObjectIndex)
    # The audit archive's queue, while this replica's trail runs with a bucket (`handlers.archive`):
    # how many records wait and since when the oldest has, for the gauges.
    audit_backlog: Callable[[], tuple[int, datetime | None]] | None = None
    # The passes over Entitlements that keep their `Overlapping` condition current (`handlers.overlaps`).
    overlap_passes: Passes = field(default_factory=Passes)
    # The groups each Entitlement's drift scan covered last (`handlers.catalog`).
    scanned: ScannedGroups = field(default_factory=ScannedGroups)
    # Requests the request handler hands to their new grants' handler (`handlers.backing`).
    handoffs: Handoffs = field(default_factory=Handoffs)
    # Grants their request's handler provisions itself (`grants.provision_at_once`).
    provisions: Provisions = field(default_factory=Provisions)
    # Grants tried since this controller began (`grants.activation_start`).
    attempts: Attempts = field(default_factory=Attempts)
    _pool: ThreadPoolExecutor | None = None
    _granting_pool: ThreadPoolExecutor | None = None
    # How fast each user creates AccessRequests, and how often they ask approvers (the limits at
    # admission; docs/security.md, approval fatigue and floods).
    creations: PerUser = field(init=False)
    asks: PerUser = field(init=False)

    def __post_init__(self) -> None:
        self.creations = PerUser(self.settings.requests_per_user_per_minute)
        self.asks = PerUser(self.settings.approval_requests_per_user_per_hour, period=3600.0)

    @property
    def asking(self) -> IdentityCenter:
        """Identity Center as the admission webhooks ask it (`admission_identity_center`)."""
        return self.admission_identity_center or self.identity_center

    async def run_blocking(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking handler body in the handlers' own threads (see the module doc)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.settings.max_workers, thread_name_prefix="jitaccess-handler")
        return await _run_in(self._pool, fn, *args, **kwargs)

    async def run_granting(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run the blocking work on a grant (provisioning, ending it) in threads of its own.

        A burst of new requests queues their decisions for `run_blocking`'s threads; the grants
        those decisions create must not wait behind the rest of the burst: a grant provisioned
        seconds after its request's approval outlives what the approval handed it (a read of the
        request, kopf's diff-base: `handoffs`, `diffbase`), and each then costs more API calls,
        which slows the burst further. In threads of their own, grants go at once, and so do
        revocations.
        """
        if self._granting_pool is None:
            workers = max(4, self.settings.max_workers // 2)
            self._granting_pool = ThreadPoolExecutor(workers, thread_name_prefix="jitaccess-grant")
        return await _run_in(self._granting_pool, fn, *args, **kwargs)

    def membership_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._locks_guard:
            return self._locks[key]

    def mark_ended(self, grant: str, key: tuple[str, str] | None = None, uid: str = "") -> None:
        """Remember a grant this process ended (and the membership `key` it held, and its `uid`),
        until the grant index has caught up with it."""
        now = time.monotonic()
        with self._locks_guard:
            self._ended[grant] = now
            if key is not None:
                self._ended_keys[key] = now
            if uid:
                self._ended_uids[uid] = now
            for ended in (self._ended, self._ended_keys, self._ended_uids):
                _drop_stale(ended, now, _ENDED_MEMORY_SECONDS, lambda stamp: stamp)

    def unmark_ended(self, grant: str) -> None:
        """`grant` did not end after all (an expiry found it extended meanwhile, `grants.end_grant`):
        it holds its membership again."""
        with self._locks_guard:
            self._ended.pop(grant, None)

    def ended_grant(self, uid: str) -> bool:
        """Whether this process has ended the grant with this uid (a grant's name can come back
        with a new object; its uid cannot)."""
        with self._locks_guard:
            return bool(uid) and uid in self._ended_uids

    def ended_here(self, key: tuple[str, str]) -> bool:
        """Whether this process ended a grant of membership `key` lately (its end took the member out)."""
        with self._locks_guard:
            return key in self._ended_keys

    def recently_ended(self) -> set[str]:
        with self._locks_guard:
            return set(self._ended)

    def seen_live(self, grant: str, uid: str) -> None:
        """The watch shows a live grant `grant` with `uid`: if that is a new object under the name of
        one this process ended lately (a request withdrawn, deleted and created again by name), the
        name stands for it now, and no longer for the ended one: it holds its membership."""
        with self._locks_guard:
            if grant in self._ended and uid and uid not in self._ended_uids:
                del self._ended[grant]

    def cached(self, kind: str, key: str, resolve: Callable[[str], str], *, no_group: bool = False) -> str:
        """Names-to-ids lookups are stable: cache them briefly to spare the AWS quota.

        A user name that resolves to nobody (`NotFound`) is remembered as long as a "no" about an
        account (`ELIGIBLE_SECONDS`, and as bounded), and raises `NotFound` again meanwhile: a deleted
        approver's approval is checked four or five times within seconds (`handlers.eligibility`),
        and each asked `GetUserId` again. A group name that is no group is remembered as long as
        `_NO_GROUP_SECONDS` for the callers that say so (`no_group`: a "no" that is only a missed
        match, never one that would fail a grant). `forget` forgets it too; a "did not answer" is
        never kept."""
        now = time.monotonic()
        hit = self._cache.get((kind, key))
        if hit is not None and now - hit[0] < _CACHE_SECONDS:
            return hit[1]
        noes, keep = (self._no_user, ELIGIBLE_SECONDS) if kind == "user" else (self._no_group, _NO_GROUP_SECONDS)
        said = noes.get(key) if kind == "user" or (kind == "group" and no_group) else None
        if said is not None and now - said[0] < keep:
            raise NotFound(str(said[1]), operation=said[1].operation, code=said[1].code)
        try:
            value = resolve(key)
        except NotFound as exc:
            if kind in ("user", "group"):
                with self._locks_guard:
                    _drop_stale(noes, now, keep, lambda said: said[0], at_limit=True)
                    noes[key] = (now, NotFound(str(exc), operation=exc.operation, code=exc.code))
            raise
        self._cache[(kind, key)] = (now, value)
        if kind == "group":
            with self._locks_guard:
                self._group_names.setdefault(value, set()).add(key)
        return value

    def group_names(self, group_id: str) -> set[str]:
        """The names this process has resolved to the group `group_id` (`cached`, entries kept past
        their freshness): the spellings grants of that group may be filed under besides its id."""
        with self._locks_guard:
            return {
                name
                for name in self._group_names.get(group_id, ())
                if self._cache.get(("group", name), ("", ""))[1] == group_id
            }

    def forget(self, kind: str, key: str) -> None:
        self._cache.pop((kind, key), None)
        if kind in ("user", "group"):
            with self._locks_guard:
                (self._no_user if kind == "user" else self._no_group).pop(key, None)

    def resolved_again(self, kind: str, key: str, stale: str, resolve: Callable[[str], str]) -> str | None:
        """After Identity Center answered that nothing has the id `stale` it gave for `key` (`cached`):
        `key` resolved afresh, and the id it names now when that is another one (a group deleted and
        created again under its name within the cache's lifetime); None when it names none now, or
        the same one (what was not found was something else: the user), or Identity Center refuses
        to say. `RetryLater` when it does not answer: the cache holds nothing stale then."""
        self.forget(kind, key)
        try:
            fresh = self.cached(kind, key, resolve)
        except (NotFound, PermanentFailure):
            return None
        return fresh if fresh != stale else None

    def in_current_groups(
        self, ic: IdentityCenter, call: Callable[[dict[str, str]], T], ids: Mapping[str, str]
    ) -> tuple[dict[str, str], T]:
        """`call(ids)` (GroupId -> its name, the ids from `cached`), and the ids its answer is about.
        When Identity Center answers that something does not exist, each name is resolved afresh
        once (`resolved_again`) and, when one names another group now (deleted and created again
        under its name within the cache's lifetime), `call` is made once more with the new ids: a
        stale id must not read as the user's absence, nor fail an add. Raises `NotFound` when no id
        has changed (what was not found is something else: the user) or the second call finds
        nothing either."""
        try:
            return dict(ids), call(dict(ids))
        except NotFound:
            renewed = {
                self.resolved_again("group", name, gid, ic.resolve_group) or gid: name for gid, name in ids.items()
            }
            if renewed.keys() == ids.keys():
                raise
        return renewed, call(renewed)

    def missing_groups(
        self, ic: IdentityCenter, user_id: str, ids: Mapping[str, str]
    ) -> tuple[dict[str, str], list[str]]:
        """Which of `ids` (GroupId -> its name, the ids from `cached`) `user_id` is not in, and the ids
        that answer is about: a group replaced under its name is asked about by its new id
        (`in_current_groups`). Raises `NotFound` otherwise (the user is gone)."""
        return self.in_current_groups(ic, lambda current: ic.missing_groups(user_id, list(current)), ids)

    def recently_eligible(self, user_id: str, groups: tuple[str, ...]) -> bool:
        """Whether Identity Center said, a few seconds ago, that the user `user_id` is in all of `groups`.

        Keyed by UserId, never by user name: names that differ only in case may be two people.
        """
        stamp = self._eligible.get((user_id, groups))
        fresh = stamp is not None and time.monotonic() - stamp < ELIGIBLE_SECONDS
        return fresh and self.recently_refused(user_id) is None

    def mark_eligible(self, user_id: str, groups: tuple[str, ...]) -> None:
        now = time.monotonic()
        with self._locks_guard:
            _drop_stale(self._eligible, now, ELIGIBLE_SECONDS, lambda stamp: stamp, at_limit=True)
            self._eligible[(user_id, groups)] = now

    def recently_refused(self, user_id: str) -> AccountNo | None:
        """What Identity Center said of the account `user_id` a few seconds ago (`ELIGIBLE_SECONDS`)
        when it said no (`mark_refused`); None when it did not say no that recently. Taken as the
        answer even where a "yes" would be asked again: a "no" grants nothing."""
        hit = self._refused.get(user_id)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < ELIGIBLE_SECONDS else None

    def mark_refused(self, user_id: str, said: AccountNo, user: str = "") -> None:
        """Identity Center has just said the account `user_id` is disabled or gone: remembered as
        long as a "yes" (and as bounded: the stale are dropped at each mark), and no "yes"
        remembered of it from before stands. Never a "did not answer": that is asked again.

        Gone, the user name `user` it was resolved from (`cached`) is resolved afresh once this "no"
        has aged (the name may pass to a new account), not before: meanwhile it still names the
        account gone, so each check within the few seconds answers from memory, as the first did,
        rather than ask `GetUserId` (and say "is not a user" instead)."""
        now = time.monotonic()
        with self._locks_guard:
            _drop_stale(self._refused, now, ELIGIBLE_SECONDS, lambda said: said[0], at_limit=True)
            self._refused[user_id] = (now, said)
            for yes in [yes for yes in self._eligible if yes[0] == user_id]:
                del self._eligible[yes]
            hit = self._cache.get(("user", user)) if said == "gone" and user else None
            if hit is not None and hit[1] == user_id:
                self._cache[("user", user)] = (min(hit[0], now - _CACHE_SECONDS + ELIGIBLE_SECONDS), user_id)
            elif hit is not None:
                self._cache.pop(("user", user), None)


def runtime_of(memo: Any) -> Runtime:
    runtime = memo.get("runtime") if hasattr(memo, "get") else getattr(memo, "runtime", None)
    if not isinstance(runtime, Runtime):
        raise RuntimeError("the operator memo has no Runtime: was the startup handler skipped?")
    return runtime


async def _run_in(pool: ThreadPoolExecutor, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    # kopf.event() finds its queue through context variables: carry them into the thread.
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool, call)

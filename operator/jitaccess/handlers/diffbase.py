"""kopf's diff-base, carried by a handler's own status write instead of a PATCH of kopf's.

kopf keeps in `status.kopf.diffbase` the object as its handlers last handled it (its essence: spec,
labels, annotations), to tell a change worth an `on.update` handler from a status write. After the
create handlers of an object succeed, it writes that essence with a status PATCH of its own. A
handler whose last act is a status write of the object may carry the essence in that write
(`fields`) and, once that write is made, say so (`carried`): kopf's storage (`CarriedDiffBase`,
set in `startup.kopf_settings`) then leaves it out of kopf's patch, one API request fewer.

Only a handler's last write may carry it, and only when kopf would store it (`to_carry`): once it
is stored, the object looks handled to kopf, which would not retry a handler that failed after
that write. kopf calls `store` only once every handler of the cause has succeeded, so what a
failed handler carried is never taken as stored by kopf; the essence in status is the one kopf
would have stored (that of the body the handler got), so kopf's change detection is unchanged.

A handler whose last act makes *another* handler write the object soon (the request handler
creates the grant, whose handler then writes the request's `Granted`) defers kopf's write
instead (`defer`): kopf's storage then holds the essence in memory and answers kopf's reads with
it, and that other write carries it (`held_fields`); once a watch event shows it stored, memory
lets it go. Nothing is lost if the process dies first: kopf then finds no diff-base (or the one
before) and runs the object's handlers again, which is safe only for handlers that act on the
object as it stands (the request handler is one `reconcile` for every cause). `defer` comes after
the handler's last step that can fail, so a handler kopf must retry never looks handled.

The request handler that provisions its new grant itself (`grants.provision_at_once`) makes
both objects' last writes before kopf stores either: the grant's `Active` carries the grant's
essence as kopf's create handler of it will get it (`essence`, from the grant as created), and
the request's `Granted` carries the request's (`carriable`: the essence of the create cause whose
handler is running), each then `carried`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, cast

import kopf

from jitaccess.api import wire

#: Where kopf keeps it (`fields` and `_stored` spell it out), and its handlers' progress.
FIELD = "status.kopf.diffbase"
PROGRESS_FIELD = "status.kopf.progress"


class _Carried:
    """Object uid -> the essence its handler's write carried, until kopf's storage takes it.

    kopf takes none from a handler that failed after its write: such an entry is let go after
    `_Held.HOLD_SECONDS`, as nothing would ever take it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_uid: dict[str, tuple[str, float]] = {}

    def put(self, uid: str, encoded: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in [k for k, (_, at) in self._by_uid.items() if now - at > _Held.HOLD_SECONDS]:
                del self._by_uid[key]
            self._by_uid[uid] = (encoded, now)

    def take(self, uid: str, encoded: str) -> bool:
        with self._lock:
            entry = self._by_uid.pop(uid, None)
        return entry is not None and entry[0] == encoded


class _Held:
    """Object uid -> the essence kopf stored in memory only (`defer`), until the object shows it.

    An essence no write ever carries (its object deleted first, say) is let go after
    `HOLD_SECONDS`: kopf then runs the object's handlers once more, which find nothing to do.
    """

    HOLD_SECONDS = 600.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deferred: dict[str, float] = {}
        self._held: dict[str, tuple[str, float]] = {}

    def defer(self, uid: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._deferred = {k: at for k, at in self._deferred.items() if now - at <= self.HOLD_SECONDS}
            self._let_go_of_old(now)
            self._deferred[uid] = now

    def _let_go_of_old(self, now: float) -> None:
        """Under the lock: forget what was held longer than `HOLD_SECONDS`."""
        self._held = {k: entry for k, entry in self._held.items() if now - entry[1] <= self.HOLD_SECONDS}

    def keep(self, uid: str, encoded: str) -> None:
        """Answer kopf's reads with `encoded`, which a handler's write stored, until the object shows it."""
        now = time.monotonic()
        with self._lock:
            self._let_go_of_old(now)
            self._held[uid] = (encoded, now)

    def hold(self, uid: str, encoded: str) -> bool:
        """Hold `encoded` if the object's handler deferred it; else let go of what was held."""
        with self._lock:
            if self._deferred.pop(uid, None) is None:
                self._held.pop(uid, None)
                return False
            self._held[uid] = (encoded, time.monotonic())
            return True

    def held(self, uid: str, stored: str | None) -> str | None:
        """What is held for the object whose body stores `stored`; let go once that is it."""
        with self._lock:
            entry = self._held.get(uid)
            if entry is not None and entry[0] == stored:
                del self._held[uid]
            return None if entry is None else entry[0]


# One per process: the handlers and the kopf operators that run them (`handlers.parts`) share them.
_CARRIED = _Carried()
_HELD = _Held()
# The object whose kopf handler is running (`handling`), and the essence its last write may carry:
# only its own handler defers or carries its diff-base, never a timer that reaches the same code
# (kopf would store nothing after it).
_HANDLING: ContextVar[tuple[str, str | None]] = ContextVar("jitaccess_diffbase_handling", default=("", None))


class StatusDiffBase(kopf.StatusDiffBaseStorage):
    """kopf's status diff-base storage, building the essence from only the parts of the object it
    keeps (the admission part's, which reads diff-bases and stores none; and the base of
    `CarriedDiffBase`).

    kopf's own `build` deep-copies the whole object, `managedFields` and status included, and then
    drops all but spec, labels, annotations and the fields its handlers name (`extra_fields`). It
    does so for every watch event of every object that has a change handler: 3 % of the
    operator's CPU in a burst of grants (py-spy). The essence is the same (tests/unit/test_diffbase.py
    compares the two); only the copy is smaller.
    """

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        fields = list(extra_fields or ())
        return super().build(body=cast(kopf.Body, essential(body, fields)), extra_fields=fields)


def essential(body: Mapping[str, Any], extra_fields: Iterable[Any] = ()) -> dict[str, Any]:
    """`body` without what kopf's essence leaves out: metadata other than labels and annotations,
    and status, except where `extra_fields` (dotted strings or tuples, as kopf takes them) name it.
    Values are shared with `body`, not copied: kopf's `build` copies what it keeps."""
    kept = {key: value for key, value in body.items() if key not in ("metadata", "status")}
    metadata = body.get("metadata")
    wanted = {"labels", "annotations"}
    with_status = False
    for field in extra_fields:
        path = field.split(".") if isinstance(field, str) else list(field)
        if path and path[0] == "status":
            with_status = True
        elif path and path[0] == "metadata":
            if len(path) == 1:
                wanted.update(metadata or {})
            else:
                wanted.add(path[1])
    if isinstance(metadata, Mapping):
        kept["metadata"] = {key: value for key, value in metadata.items() if key in wanted}
    elif "metadata" in body:
        kept["metadata"] = metadata
    if with_status and "status" in body:
        kept["status"] = body["status"]
    return kept


class CarriedDiffBase(StatusDiffBase):
    """kopf's status diff-base storage, which does not write again what a handler's write carried."""

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        uid, encoded = str(body.metadata.uid or ""), encode(essence)
        if _CARRIED.take(uid, encoded):
            # Events of the object from before that write, which kopf may handle next, do not
            # show it stored: kopf would take them for a new object and run its handlers again.
            _HELD.keep(uid, encoded)
            return
        if _HELD.hold(uid, encoded):
            return
        super().store(body=body, patch=patch, essence=essence)

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        held = _HELD.held(str(body.metadata.uid or ""), _stored(body))
        if held is not None:
            essence: kopf.BodyEssence = json.loads(held)
            return essence
        return super().fetch(body=body)


def encode(essence: Any) -> str:
    """The essence as kopf's `StatusDiffBaseStorage` stores it: compact JSON, in one string."""
    return json.dumps(essence, separators=(",", ":"))


def to_carry(reason: Any, old: Any, new: Any) -> str | None:
    """The encoded essence the last write of a create handler should carry (kopf's `reason`, `old`
    and `new`); None for any other cause (an update's or a resume's may run other handlers after
    this one, which kopf would then not retry), or when kopf would not store one."""
    if reason != kopf.Reason.CREATE or new is None or old == new:
        return None
    return encode(new)


def fields(encoded: str) -> dict[str, Any]:
    """The status fields that hold `encoded` as kopf's diff-base (`FIELD`, merged into a status write)."""
    return {"kopf": {"diffbase": encoded}}


def carried(uid: str, encoded: str) -> None:
    """The handler's write stored `encoded` as the object's diff-base: kopf need not (call it once
    the write is made, before the handler returns)."""
    if uid:
        _CARRIED.put(uid, encoded)


def essence(body: Mapping[str, Any], watched: Iterable[str] = ()) -> str:
    """The encoded essence kopf's create handlers of `body` get as `new` (`to_carry`), `watched`
    being the fields kopf's handlers of its kind name (`field=`), which kopf adds to it."""
    built = CarriedDiffBase(field=FIELD).build(
        body=kopf.Body(cast(kopf.RawBody, dict(body))), extra_fields=list(watched)
    )
    return encode(kopf.StatusProgressStorage(field=PROGRESS_FIELD).clear(essence=built))


def carriable(uid: str) -> str | None:
    """The essence the running create handler of the object `uid` may carry in its last write
    (`to_carry`, given to `handling`); None anywhere else."""
    handled, encoded = _HANDLING.get()
    return encoded if uid and handled == uid else None


@contextlib.contextmanager
def handling(uid: str, encoded: str | None = None) -> Iterator[None]:
    """Around a kopf handler of the object `uid`, whose last write may carry `encoded` (`to_carry`):
    threads started with the context see it."""
    token = _HANDLING.set((uid, encoded))
    try:
        yield
    finally:
        _HANDLING.reset(token)


def defer(uid: str) -> None:
    """kopf's next diff-base of the object is to be held in memory and carried by a later write
    of another handler (`held_fields`): call it after the handler's last step that can fail.
    Outside that object's own kopf handler (`handling`), nothing."""
    if uid and _HANDLING.get()[0] == uid:
        _HELD.defer(uid)


def held_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The status fields that store the diff-base held for `obj` (as read), for a write of it to
    carry; none when nothing is held or `obj` stores it already."""
    stored = _stored(obj)
    held = _HELD.held(str(wire.metadata(obj).get("uid") or ""), stored)
    return fields(held) if held is not None and held != stored else {}


def _stored(obj: Mapping[str, Any]) -> str | None:
    value = (wire.status(obj).get("kopf") or {}).get("diffbase")
    return value if isinstance(value, str) else None

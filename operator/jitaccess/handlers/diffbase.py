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
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import kopf

from jitaccess.api import wire

#: Where kopf keeps it (`fields` and `stored` spell it out).
FIELD = "status.kopf.diffbase"


class _Carried:
    """Object uid -> the essence its handler's write carried, until kopf's storage takes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_uid: dict[str, str] = {}

    def put(self, uid: str, encoded: str) -> None:
        with self._lock:
            self._by_uid[uid] = encoded

    def take(self, uid: str, encoded: str) -> bool:
        with self._lock:
            return self._by_uid.pop(uid, None) == encoded


# One per process: the handlers and the kopf operators that run them (`handlers.parts`) share it.
_CARRIED = _Carried()


class CarriedDiffBase(kopf.StatusDiffBaseStorage):
    """kopf's status diff-base storage, which does not write again what a handler's write carried."""

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        if _CARRIED.take(str(body.metadata.uid or ""), encode(essence)):
            return
        super().store(body=body, patch=patch, essence=essence)


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


def stored(obj: Mapping[str, Any]) -> bool:
    """Whether kopf's diff-base is in the object as read (its create handlers are done with it)."""
    return (wire.status(obj).get("kopf") or {}).get("diffbase") is not None

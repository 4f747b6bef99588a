"""Which AccessRequests are stored, by name and uid: is the request of an active grant still there?

Kept from the requests' watch events, and completed by one listing the first time a name is
missing (so a restarted operator asks once for all its grants, not once per grant, whichever watch
delivers first). A uid seen is taken as the answer; a name it does not know, or knows with another
uid, is confirmed with the API server before anyone acts on it (`stored_uid`). A request being
deleted counts as gone. One deleted while the watch was cut (it lists again, and shows no deletion)
is known until the next periodic listing (`indexes.reconcile`) forgets it.
"""

from __future__ import annotations

import threading
from collections.abc import Container

from jitaccess.adapters.kube import Kube
from jitaccess.api import names, wire
from jitaccess.handlers import filings


class KnownRequests:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Held by the one thread that lists; the event loop only ever takes `_lock`, briefly.
        self._listing = threading.Lock()
        # name -> uid, and when each was seen stored last
        self._uids: dict[str, str] = {}
        self._seen = filings.Filed()
        self._listed = False

    def observe(self, name: str, uid: str | None) -> None:
        """A watch event: request `name` is stored with `uid`, or is gone (None)."""
        with self._lock:
            if uid is None:
                self._uids.pop(name, None)
                self._seen.pop(name, None)
            else:
                self._uids[name] = uid
                self._seen.file(name)

    def drop_unlisted(self, listed: Container[str], since: int) -> list[str]:
        """Forget every request seen before `since` (`filings.stamp`, taken before a listing of every
        request began) that the listing (`listed`) lacks: deleted while no watch showed it."""
        with self._lock:
            gone = self._seen.drop_unlisted(listed, since)
            for name in gone:
                del self._uids[name]
        return gone

    def known(self, name: str) -> str | None:
        """The uid last seen for `name`, without I/O; None when not seen (yet)."""
        with self._lock:
            return self._uids.get(name)

    def list_once(self, kube: Kube) -> None:
        """List every request, the first time only (blocking). What the watch has already shown
        is newer than the listing and is kept."""
        with self._listing:
            if self._listed:
                return
            items = kube.list(names.REQUESTS, missing_ok=True)
            with self._lock:
                for obj in items:
                    name = wire.name_of(obj)
                    if not wire.deleting(obj) and self._seen.file_unless_filed(name):
                        self._uids[name] = str(wire.metadata(obj).get("uid") or "")
                self._listed = True

    @staticmethod
    def stored_uid(name: str, kube: Kube) -> str | None:
        """The uid of the request stored under `name`, asked of the API server now; None when there is
        none, or it is being deleted (kept only until its audit records are archived)."""
        stored = kube.get(names.REQUESTS, name)
        return None if stored is None or wire.deleting(stored) else str(wire.metadata(stored).get("uid") or "")

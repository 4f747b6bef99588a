"""Which AccessGrant names are stored, on every replica: may a new request take a name?

A request's grant takes the request's name, and a grant outlives its request as a record, so a
request created under a stored grant's name is refused (`domain.admission.name_held_by_grant`).
Reading the grant at each creation would be one more API request per grant on the hot path
(bench/README.md counts them), so the webhook asks this set first: filled by the listing every
replica makes at start-up, then kept by the grants' watch. A name it holds is confirmed with the
API server before a request is refused (a grant deleted between the listing and the watch stays
here until then: a read, never a wrong refusal); a name it does not hold is taken as free once the
listing is done. The one name it can miss is a grant created a moment ago, whose own request still
holds the name, so no new request can take it. A grant deleted while the watch was cut (it lists
again, and shows no deletion) stays until the next periodic listing (`indexes.reconcile`).
"""

from __future__ import annotations

import threading
from collections.abc import Container, Iterable

from jitaccess.handlers import filings


class GrantNames:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Each name, and when it was seen stored last.
        self._names = filings.Filed()
        self._listed = False

    def observe(self, name: str, stored: bool) -> None:
        """A watch event: grant `name` is stored, or gone."""
        with self._lock:
            if stored:
                self._names.file(name)
            else:
                self._names.pop(name, None)

    def listed(self, names: Iterable[str]) -> None:
        """The start-up listing: every grant stored then (the watch may have shown some already)."""
        with self._lock:
            for name in names:
                self._names.file_unless_filed(name)
            self._listed = True

    def drop_unlisted(self, listed: Container[str], since: int) -> list[str]:
        """Forget every name seen before `since` (`filings.stamp`, taken before a listing of every grant
        began) that the listing (`listed`) lacks: the grant was deleted while no watch showed it."""
        with self._lock:
            return self._names.drop_unlisted(listed, since)

    def may_hold(self, name: str) -> bool:
        """Whether a grant may be stored under `name` (to be asked of the API server): True until the
        start-up listing is done, then only for names seen stored."""
        with self._lock:
            return not self._listed or name in self._names

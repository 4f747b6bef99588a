"""Which AccessGrant names are stored, on every replica: may a new request take a name?

A request's grant takes the request's name, and a grant outlives its request as a record, so a
request created under a stored grant's name is refused (`domain.admission.name_held_by_grant`).
Reading the grant at each creation would be one more API request per grant on the hot path
(bench/README.md counts them), so the webhook asks this set first: filled by the listing every
replica makes at start-up, then kept by the grants' watch. A name it holds is confirmed with the
API server before a request is refused (a grant deleted between the listing and the watch stays
here until then: a read, never a wrong refusal); a name it does not hold is taken as free once the
listing is done. The one name it can miss is a grant created a moment ago, whose own request still
holds the name, so no new request can take it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable


class GrantNames:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: set[str] = set()
        self._listed = False

    def observe(self, name: str, stored: bool) -> None:
        """A watch event: grant `name` is stored, or gone."""
        with self._lock:
            if stored:
                self._names.add(name)
            else:
                self._names.discard(name)

    def listed(self, names: Iterable[str]) -> None:
        """The start-up listing: every grant stored then (the watch may have shown some already)."""
        with self._lock:
            self._names.update(names)
            self._listed = True

    def may_hold(self, name: str) -> bool:
        """Whether a grant may be stored under `name` (to be asked of the API server): True until the
        start-up listing is done, then only for names seen stored."""
        with self._lock:
            return not self._listed or name in self._names

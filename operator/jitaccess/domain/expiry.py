"""When each Active grant is due to expire, earliest first: the expiry scheduler's queue.

One heap of (time, grant name) for every Active grant, instead of a sleeping task per grant: a
grant costs a heap entry and a dictionary entry, nothing else. The time is the grant's persisted
`status.expirationTime` (or, after a failed attempt, when to try again). Changing or withdrawing a
grant's time leaves its old heap entry behind, stale: an entry counts only while it matches the
grant's latest time, so stale ones are skipped as they surface, and the heap is rebuilt when they
outnumber the live ones.

And when an Active grant counts as overdue (`overdue`): the gauges and the alert on expiries that
do not happen, which the expiry lag histogram cannot show (it gets a sample only once a removal
succeeds).

Pure: no clock, no I/O, no locking (the scheduler that owns it serializes access).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import datetime, timedelta

# Rebuild once stale entries are this many times the live ones (and a few, for tiny queues).
_STALE_FACTOR = 2
_STALE_SLACK = 64
#: An Active grant this long past its expiration time is overdue. Expiries normally take well under
#: a second; the grace covers a burst paced by the Identity Center quota and a hand-over between
#: replicas, so that only a removal that is not happening counts.
OVERDUE_GRACE = timedelta(seconds=30)


class ExpiryQueue:
    """Grant names by the time they are due, each grant at most once (its latest time)."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str]] = []
        self._when: dict[str, datetime] = {}

    def __len__(self) -> int:
        return len(self._when)

    def __contains__(self, name: object) -> bool:
        return name in self._when

    def when(self, name: str) -> datetime | None:
        return self._when.get(name)

    def schedule(self, name: str, when: datetime) -> bool:
        """Make `when` the time grant `name` is due (replacing any earlier or later one).

        True when this is now the earliest time in the queue: whoever sleeps until the earliest
        time must wake up and sleep less.
        """
        if self._when.get(name) == when:
            return False
        self._when[name] = when
        heapq.heappush(self._heap, (when, name))
        self._compact()
        earliest = self.next_time()
        return earliest == when

    def unschedule(self, name: str) -> None:
        """Forget grant `name` (it ended, or is no longer Active); its heap entry goes stale."""
        if self._when.pop(name, None) is not None:
            self._compact()

    def next_time(self) -> datetime | None:
        """The earliest time any grant is due, or None when the queue is empty."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def due(self, now: datetime) -> list[tuple[str, datetime]]:
        """Take out every grant due at or before `now`, earliest first (ties by name), with its time."""
        taken: list[tuple[str, datetime]] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return taken
            when, name = heapq.heappop(self._heap)
            del self._when[name]
            taken.append((name, when))

    def _live(self, entry: tuple[datetime, str]) -> bool:
        return self._when.get(entry[1]) == entry[0]

    def _drop_stale(self) -> None:
        while self._heap and not self._live(self._heap[0]):
            heapq.heappop(self._heap)

    def _compact(self) -> None:
        if len(self._heap) > _STALE_FACTOR * len(self._when) + _STALE_SLACK:
            self._heap = [(when, name) for name, when in self._when.items()]
            heapq.heapify(self._heap)


def overdue(expirations: Iterable[datetime], now: datetime, grace: timedelta = OVERDUE_GRACE) -> tuple[int, float]:
    """How many of the Active grants' `expirations` are more than `grace` in the past, and how many
    seconds past its expiration the oldest of those is (0.0 when none is)."""
    late = [now - when for when in expirations if now - when > grace]
    return len(late), max(late).total_seconds() if late else 0.0

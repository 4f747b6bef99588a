"""Leader election on a Lease, decided purely: whether this replica may take or keep the Lease,
and what it writes to do so. `handlers.leadership` runs the loop around it.

The record is a `coordination.k8s.io/v1` Lease's spec. A replica holds the Lease while it renews
it every `retry_period`; it may act only until `renew_deadline` after the start of its last
successful renewal (measured on its own monotonic clock, from *before* the request left), and
others may take the Lease once `lease_duration` has passed without a renewal. With
`renew_deadline < lease_duration`, a leader cut off from the API server stops acting before
anyone else can start.

Another holder's Lease is free to take when it is released (no holder), when the record has not
changed for `lease_duration` on the candidate's own clock (client-go's rule, which no clock skew
can fool), or when its `renewTime + leaseDurationSeconds` has passed on the candidate's wall
clock. The last rule lets a replica that starts after a crash take over at once instead of
watching a dead Lease for a full `lease_duration`; it assumes the nodes' clocks agree to within
`lease_duration - renew_deadline` (4 s by default), as NTP keeps them: a leader cut off from the
API server acts until `renew_deadline` after its last renewal, and a candidate whose clock runs
ahead by more than that margin would take the Lease before then. (A leader that can still reach
the API server loses at its next renewal, within `retry_period`, whatever the clocks say.)
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Timing:
    """A 12 s Lease, renewed every 2 s, given up after 8 s: controller-runtime's 15 s and 10 s,
    shortened so that a dead leader's work resumes within 15 s (its standby keeps the expiry
    schedule warm, `handlers.parts.WARM`), with the same 4 s between a cut-off leader's stop and
    anyone else's start."""

    lease_duration: float = 12.0
    renew_deadline: float = 8.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_period}, {self.renew_deadline}, {self.lease_duration}"
            )

    @property
    def lease_seconds(self) -> int:
        """`leaseDurationSeconds` is a whole number: rounded up, so nobody takes over early."""
        return math.ceil(self.lease_duration)


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease's spec says: who holds it, for how long after each renewal, since when."""

    holder: str | None
    duration_seconds: int
    acquire_time: dt.datetime | None
    renew_time: dt.datetime | None
    transitions: int = 0

    def expired(self, now: dt.datetime) -> bool:
        """Whether the holder's term has run out by the wall clock `now`."""
        if self.renew_time is None:
            return True
        return self.renew_time + dt.timedelta(seconds=self.duration_seconds) < now


def claim(
    current: LeaseRecord | None, me: str, now: dt.datetime, *, unchanged_for: float, timing: Timing
) -> LeaseRecord | None:
    """The record that makes (or keeps) `me` the holder, or None while someone else holds the Lease.

    `unchanged_for` is how long (seconds, on this replica's clock) `current` has been seen
    unchanged: a holder that has not renewed for `lease_duration` is gone, whatever the clocks say.
    """
    if current is None:
        return LeaseRecord(me, timing.lease_seconds, now, now, 0)
    if current.holder == me:
        return replace(current, duration_seconds=timing.lease_seconds, renew_time=now)
    if current.holder and not current.expired(now) and unchanged_for < timing.lease_duration:
        return None
    return LeaseRecord(me, timing.lease_seconds, now, now, current.transitions + 1)


def released(current: LeaseRecord, now: dt.datetime) -> LeaseRecord:
    """What a leader that stops writes: no holder, so a standby takes the Lease at its next try."""
    return LeaseRecord(None, 1, current.acquire_time, now, current.transitions)

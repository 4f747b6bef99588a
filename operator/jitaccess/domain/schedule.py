"""Scheduled start: an AccessRequest's `spec.startTime`, and whether its access may begin yet.

A change window starts tomorrow at 06:00: the engineer asks today, an approver approves today, and
the membership is added at 06:00, not before. The rules:

- `startTime` is a fact of the request (its spec is immutable), checked against the request's own
  creation time, so the check gives the same answer at admission and at every later reconcile: not
  before it (less a little clock skew between the client and the API server), and not more than
  the operator's horizon after it (`JITACCESS_MAX_START_AHEAD_SECONDS`, default 7 days). The horizon
  is the operator's, not the Entitlement's: it bounds how long an approval may lie dormant before
  it turns into access, a risk of the whole installation that an entitlement's owners should not
  be able to stretch.
- An approved request whose start is still to come waits, `Ready=False` with reason `Scheduled`,
  with no grant and no membership. At the start the operator creates the grant through the one
  path every grant takes (`handlers.requests`): the approval is re-derived from what admission
  stamped against the live TeamOwnership, and eligibility is asked afresh from Identity Center, so
  a lapse in between means no grant. The duration counts from the activation.
- A request approved after its start time begins at once; so does one whose start passed while the
  operator was down (the start-up listing finds it).

Pure: the caller passes the clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from jitaccess.api import wire
from jitaccess.domain.durations import format_duration
from jitaccess.errors import InvalidInput

#: How far before its creation a start may lie: the client's clock and the API server's may differ.
CLOCK_SKEW = timedelta(seconds=60)
#: The default horizon (`Limits.max_start_ahead`).
DEFAULT_HORIZON = timedelta(days=7)


#: A time as the API writes it; a user's start with no UTC form is named as written.
stamp = wire.rfc3339


def check_start(start: datetime | None, created: datetime | None, horizon: timedelta) -> None:
    """Raise `InvalidInput` (field `spec.startTime`) when a request created at `created` may not start
    at `start`. Nothing to check without a start; nor without a creation time, which only a request
    not stored yet lacks (the validating webhook sees the time the API server gives it)."""
    if start is None or created is None:
        return
    if start.tzinfo is None:
        raise InvalidInput("spec.startTime", f"{start.isoformat()} has no time zone: write it as 2026-12-01T06:00:00Z")
    if start < created - CLOCK_SKEW:
        raise InvalidInput(
            "spec.startTime",
            f"{stamp(start)} is in the past (the request was created at {stamp(created)}): give a time to come, "
            "or leave spec.startTime out to begin as soon as the request is approved",
        )
    if start > created + horizon:
        raise InvalidInput(
            "spec.startTime",
            f"{stamp(start)} is more than {format_duration(horizon)} ahead (the request was created at "
            f"{stamp(created)}; the operator's JITACCESS_MAX_START_AHEAD_SECONDS): ask for a start before "
            f"{stamp(created + horizon)}, or request again closer to the time",
        )


def waits(start: datetime | None, now: datetime) -> bool:
    """Whether access with this start may not begin yet."""
    return start is not None and now < start


def scheduled_message(approval: str, start: datetime) -> str:
    """The `Scheduled` condition's message: who approved, and when access begins."""
    return f"{approval}; access begins at {stamp(start)} (spec.startTime), once eligibility is confirmed again"

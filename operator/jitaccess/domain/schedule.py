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
  a lapse in between means no grant.
- The approval is for a window: from the start (or from the approval, when that came after the
  start: such a request begins at once) for the request's duration (`approved_window`). A grant
  that begins late (the operator was down at the start) ends at the window's end all the same,
  never later; one whose window has wholly passed is never created, and the request fails
  (`window_passed`). Nothing else bounds how late a start is taken: without this, a cluster
  restored from a backup taken while the request waited would grant it again, for its full
  duration, however long ago its window was (and after a revocation since).

Pure: the caller passes the clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

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


def scheduled_message(approval: str, window: Window) -> str:
    """The `Scheduled` condition's message: who approved, when access begins, and the latest it ends."""
    return (
        f"{approval}; access begins at {stamp(window.begins)} (spec.startTime), once eligibility is confirmed "
        f"again, and ends by {stamp(window.ends)} however late it begins"
    )


class Window(NamedTuple):
    """The time an approval with a start was for: access begins no earlier than `begins`, and
    whenever it begins, it ends by `ends`."""

    begins: datetime
    ends: datetime


def approved_window(start: datetime | None, approved: datetime | None, duration: timedelta) -> Window | None:
    """The window a request with a `start` was approved for: from the start, or from its approval
    (`approved`: when the operator recorded it) when that came later, for `duration`. None without a
    start: such a request begins as soon as it is approved, and its duration counts from then."""
    if start is None:
        return None
    begins = max(start, approved) if approved is not None else start
    return Window(begins, begins + duration)


def window_passed_message(window: Window) -> str:
    """Why a request whose window has passed before its access began is not granted, and what to do."""
    return (
        f"not granted: its window {stamp(window.begins)}..{stamp(window.ends)} passed before the operator could "
        "begin it (the operator was down, or the cluster was restored from a backup); request access again"
    )

"""Condition bookkeeping following the Kubernetes API conventions.

`lastTransitionTime` moves only when `status` flips; reason and message may change in place. One
exception, told by the reason itself (`ENDINGS`): an object's end (`Ready` taking a reason after
which it never changes: Denied, Failed, NotEligible, Expired...) takes the time it is written even
when `Ready` stays False (Pending to Denied, Scheduled to Failed). The audit records and the
messages of an end are dated by it; the time it would otherwise keep is when the object began
waiting. No writer has to remember to ask for it.
Decision conditions (`Approved`, `Denied`) are True-only and, once True, never change: that is
enforced by the callers never writing them twice (see `requests.decide`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from jitaccess.api import names
from jitaccess.api.models import Condition

#: `Ready` reasons that end a request, a grant or an extension (`names`' finished sets). `Invalid`
#: is left out: a TeamOwnership's and an Entitlement's `Ready` take it too, and they do not end (a
#: fixed spec makes them Valid again), so theirs keeps the convention; a request's `Invalid` is
#: written by `handlers.requests._finish`, which dates it itself.
ENDINGS = (names.REQUEST_FINISHED | names.EXTENSION_FINISHED) - {names.INVALID}


def ends(type_: str, reason: str) -> bool:
    """Whether writing `reason` into the condition `type_` ends the object."""
    return type_ == names.READY and reason in ENDINGS


def find(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Sequence[Condition], type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.status == "True"


def ready_reason(conditions: Sequence[Condition]) -> str | None:
    found = find(conditions, names.READY)
    return found.reason if found is not None else None


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None = None,
) -> list[Condition]:
    """Return `conditions` with `type_` set; other conditions are kept as they are. A reason that
    ends the object (`ends`) is dated `now` unless the condition already had it (a retry)."""
    wanted = "True" if status else "False"
    previous = find(conditions, type_)
    moved = previous is None or previous.status != wanted or (ends(type_, reason) and previous.reason != reason)
    updated = Condition(
        type=type_,
        status=wanted,
        reason=reason,
        message=message,
        last_transition_time=now if moved or previous is None else previous.last_transition_time,
        observed_generation=generation,
    )
    return [c for c in conditions if c.type != type_] + [updated]

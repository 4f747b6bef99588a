"""Condition bookkeeping following the Kubernetes API conventions.

`lastTransitionTime` moves only when `status` flips; reason and message may change in place.
Decision conditions (`Approved`, `Denied`) are True-only and, once True, never change: that is
enforced by the callers never writing them twice (see `requests.decide`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from jitaccess.api import names
from jitaccess.api.models import Condition


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
    """Return `conditions` with `type_` set; other conditions are kept as they are."""
    wanted = "True" if status else "False"
    previous = find(conditions, type_)
    moved = previous is None or previous.status != wanted
    updated = Condition(
        type=type_,
        status=wanted,
        reason=reason,
        message=message,
        last_transition_time=now if moved or previous is None else previous.last_transition_time,
        observed_generation=generation,
    )
    return [c for c in conditions if c.type != type_] + [updated]

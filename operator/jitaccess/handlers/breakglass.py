"""Break-glass requests in the operator: the rate limit before the approval, what the approval
records (a review due by `status.reviewDeadline`), the review when it is stamped, and the reviews
that are overdue (`jitaccess_break_glass_unreviewed`, a `ReviewOverdue` Warning Event, once).

The rules are `domain.breakglass`'s. Requests awaiting review are kept in the Runtime's
`break_glass` index (by entitlement) from the watch; one timer per Entitlement looks at its own,
as `schedules` does for pending requests, so only the Lease holder acts.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

import kopf

from jitaccess import metrics
from jitaccess.api import names, wire
from jitaccess.api.models import AccessRequest, TeamOwnershipSpec
from jitaccess.domain import breakglass as rules
from jitaccess.domain import conditions as cond
from jitaccess.domain import requests as request_rules
from jitaccess.handlers.common import NO_INDEX, Index, conditions_after, now, status_change, ts
from jitaccess.handlers.recording import record
from jitaccess.handlers.runtime import Runtime, runtime_of

log = logging.getLogger(__name__)
#: How often each Entitlement's break-glass requests are looked at for an overdue review.
REVIEW_CHECK_SECONDS = 5.0


class Awaiting(NamedTuple):
    """A break-glass request not reviewed yet: when its review is due, and whether it was warned of."""

    name: str
    deadline: dt.datetime
    overdue: bool


def awaiting_review(obj: Mapping[str, Any]) -> tuple[str, Awaiting] | None:
    """(entitlement, entry) of an approved break-glass request that awaits its review; else None."""
    if not rules.is_break_glass(obj) or wire.is_true(obj, names.REVIEWED):
        return None
    stamp = wire.status(obj).get("reviewDeadline")
    if not isinstance(stamp, str) or not stamp:
        return None
    found = wire.condition(obj, names.REVIEWED)
    overdue = found is not None and found.get("reason") == names.REVIEW_OVERDUE
    deadline = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return str(wire.spec(obj).get("entitlement", "")), Awaiting(wire.name_of(obj), deadline, overdue)


async def observe_break_glass(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    rt = runtime_of(memo)
    rt.break_glass.observe(body.metadata.name, None if type == "DELETED" else awaiting_review(body))


def rate_refusal(rt: Runtime, request: AccessRequest, valid: request_rules.ValidRequest) -> str | None:
    """Why this break-glass request is beyond the user's `perUserPerDay`, counting only the ones made
    before it (admission counted too, but two made at once would both have passed there)."""
    policy = rules.policy(valid.entitlement)
    others = rules.earlier(rt.kube.list(names.REQUESTS), valid.requester)
    at = request.metadata.creation_timestamp or now()
    return rules.rate_problem(policy, valid.requester, others, at=at, name=request.metadata.name)


def approval_fields(valid: request_rules.ValidRequest, name: str) -> tuple[dict[str, Any], tuple[str, bool, str, str]]:
    """What a break-glass approval adds to status: the review deadline, and `Reviewed` False until then."""
    deadline = now() + rules.review_within(valid.entitlement)
    who = request_rules.approvers_text(valid.team, escalated=False)
    message = (
        f"to be reviewed by an approver of team {valid.entitlement.spec.owner} ({who}) by {ts(deadline)}: "
        f"`kubectl jit review {name}`"
    )
    return {"reviewDeadline": ts(deadline)}, (names.REVIEWED, False, names.AWAITING_REVIEW, message)


def record_review(rt: Runtime, request: AccessRequest, team: TeamOwnershipSpec | None) -> None:
    """The review the webhook stamped, into status (`reviewedBy`, `Reviewed` True) with an Event."""
    body = request.wire()
    reviewer = rules.stamped_reviewer(body, team)
    if reviewer is None:
        who = request.metadata.annotations.get(rules.REVIEWED_BY, "")
        why = f"the review stamped for {who} does not count: not an approver of the owner team, or the requester"
        record(body, names.DECISION_IGNORED, why, warning=True, who=who)
        return
    message = f"break-glass reviewed by {reviewer}"

    def build(current: AccessRequest) -> dict[str, Any] | None:
        if cond.is_true(current.status.conditions, names.REVIEWED):
            return None
        return {
            "reviewedBy": reviewer,
            "conditions": conditions_after(
                current.status.conditions,
                [(names.REVIEWED, True, names.REVIEWED, message)],
                current.metadata.generation,
            ),
        }

    updated = rt.kube.update_status(names.REQUESTS, request.metadata.name, status_change(AccessRequest, build))
    if updated is not None:
        record(updated, names.REVIEWED, message, who=reviewer)


@kopf.timer(names.GROUP, names.VERSION, names.ENTITLEMENTS, interval=REVIEW_CHECK_SECONDS)
async def overdue_reviews(*, name: str, memo: kopf.Memo, entitlements: Index = NO_INDEX, **_: Any) -> None:
    """Count this entitlement's break-glass requests whose review is overdue, and warn of each once."""
    rt = runtime_of(memo)
    at = now()
    overdue = [e for e in rt.break_glass.get(name, ()) if e.deadline <= at]
    metrics.BREAK_GLASS_UNREVIEWED.labels(name).set(len(overdue))
    due = [e for e in overdue if not e.overdue]
    if due:
        await rt.run_blocking(_warn, rt, due)


def _warn(rt: Runtime, due: list[Awaiting]) -> None:
    for entry in due:
        message = (
            f"break-glass not reviewed by {ts(entry.deadline)}: an approver of the owner team reviews it with "
            f"`kubectl jit review {entry.name}`"
        )

        def build(current: AccessRequest, message: str = message) -> dict[str, Any] | None:
            found = cond.find(current.status.conditions, names.REVIEWED)
            if found is None or found.status == "True" or found.reason == names.REVIEW_OVERDUE:
                return None
            return {
                "conditions": conditions_after(
                    current.status.conditions,
                    [(names.REVIEWED, False, names.REVIEW_OVERDUE, message)],
                    current.metadata.generation,
                )
            }

        updated = rt.kube.update_status(names.REQUESTS, entry.name, status_change(AccessRequest, build))
        if updated is not None:
            record(updated, names.REVIEW_OVERDUE, message, warning=True)

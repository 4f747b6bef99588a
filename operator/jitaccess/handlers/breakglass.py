"""Break-glass requests in the operator: the rate limit before the approval, what the approval
records (a review due by `status.reviewDeadline`), the review when it is stamped, and the reviews
that are overdue (a `ReviewOverdue` Warning Event, once).

The rules are `domain.breakglass`'s. Requests awaiting review are kept in the Runtime's
`break_glass` index (by entitlement) from every replica's watch (`indexes.awaiting_review`); one
timer per Entitlement looks at its own, as `schedules` does for pending requests, so only the
Lease holder acts. The gauge `jitaccess_break_glass_unreviewed` is computed from the index at
scrape time, on every replica (`handlers.observability`), not set by the timer: a former leader
or a deleted Entitlement would leave a value set by a timer behind.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import kopf
from pydantic import ValidationError

from jitaccess.api import names
from jitaccess.api.models import AccessRequest, Entitlement, TeamOwnershipSpec
from jitaccess.domain import breakglass as rules
from jitaccess.domain import conditions as cond
from jitaccess.domain import requests as request_rules
from jitaccess.handlers.common import NO_INDEX, Index, conditions_after, first, now, status_change, ts
from jitaccess.handlers.indexes import Awaiting
from jitaccess.handlers.recording import record
from jitaccess.handlers.runtime import Runtime, runtime_of

log = logging.getLogger(__name__)
#: How often each Entitlement's break-glass requests are looked at for an overdue review.
REVIEW_CHECK_SECONDS = 5.0


def rate_refusal(rt: Runtime, request: AccessRequest, valid: request_rules.ValidRequest) -> str | None:
    """Why this break-glass request is beyond the user's `perUserPerDay`, counting only the ones made
    before it (admission counted too, but two made at once would both have passed there)."""
    policy = rules.policy(valid.entitlement)
    others = rules.earlier(rt.kube.list(names.REQUESTS, fields=rules.selecting(valid.requester)), valid.requester)
    at = request.metadata.creation_timestamp or now()
    return rules.rate_problem(policy, valid.requester, others, at=at, name=request.metadata.name)


def approval_fields(
    valid: request_rules.ValidRequest, name: str, uid: str | None
) -> tuple[dict[str, Any], tuple[str, bool, str, str]]:
    """What a break-glass approval adds to status: the review deadline, and `Reviewed` False until then."""
    deadline = now() + rules.review_within(valid.entitlement)
    who = request_rules.approvers_text(valid.team, escalated=False)
    message = (
        f"to be reviewed by an approver of team {valid.entitlement.spec.owner} ({who}) by {ts(deadline)}: "
        f"`{rules.review_command(name, uid)}`"
    )
    return {"reviewDeadline": ts(deadline)}, (names.REVIEWED, False, names.AWAITING_REVIEW, message)


def reviewers(
    request: AccessRequest, teams: Index, entitlement: Entitlement | None, live: TeamOwnershipSpec | None
) -> TeamOwnershipSpec | None:
    """The team whose approvers review the request, as the admission webhook has it: the one
    recorded when the operator took it up (`domain.breakglass.recorded_reviewers`); `live` (the
    owner team of `entitlement` now) when that is the one, or the recorded team is gone."""
    recorded = rules.recorded_reviewers(request.wire(), entitlement.spec.owner if entitlement is not None else None)
    found = first(teams, recorded) if recorded is not None else None
    try:
        return TeamOwnershipSpec.model_validate(found) if found is not None else live
    except ValidationError:
        return live


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

    updated = rt.kube.update_status(
        names.REQUESTS, request.metadata.name, status_change(AccessRequest, build), uid=request.metadata.uid
    )
    if updated is not None:
        record(updated, names.REVIEWED, message, who=reviewer)


@kopf.timer(names.GROUP, names.VERSION, names.ENTITLEMENTS, interval=REVIEW_CHECK_SECONDS)
async def overdue_reviews(*, name: str, memo: kopf.Memo, entitlements: Index = NO_INDEX, **_: Any) -> None:
    """Warn once of each of this entitlement's break-glass requests whose review is overdue."""
    rt = runtime_of(memo)
    at = now()
    due = [e for e in rt.break_glass.get(name, ()) if e.deadline <= at and not e.overdue]
    if due:
        await rt.run_blocking(_warn, rt, due)


def _warn(rt: Runtime, due: list[Awaiting]) -> None:
    for entry in due:
        message = (
            f"break-glass not reviewed by {ts(entry.deadline)}: an approver of the owner team reviews it with "
            f"`{rules.review_command(entry.name, entry.uid)}`"
        )

        def build(
            current: AccessRequest, message: str = message, due: dt.datetime = entry.deadline
        ) -> dict[str, Any] | None:
            # The deadline that passed is still the request's (the uid keeps out one created since
            # under its name, whose review has its own deadline).
            if current.status.review_deadline != due:
                return None
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

        updated = rt.kube.update_status(names.REQUESTS, entry.name, status_change(AccessRequest, build), uid=entry.uid)
        if updated is not None:
            record(updated, names.REVIEW_OVERDUE, message, warning=True)

"""Multi-party approval in status: each approval counted as it comes (`status.approvals`, the
`1/2` of `kubectl get areq`, an `ApprovalCounted` Event), until the last one approves the request.

What counts is decided from the stamped annotation (`domain.approvals`, `requests.approvals_counted`);
status only records when the operator counted each approval, which is when a backup approver's
approval is judged against the escalation and every approval against the deadline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from jitaccess.api import names, wire
from jitaccess.api.models import AccessRequest
from jitaccess.domain import approvals
from jitaccess.domain import requests as request_rules
from jitaccess.handlers.common import conditions_after, now, status_change, ts
from jitaccess.handlers.recording import record
from jitaccess.handlers.runtime import Runtime


def listed(current: AccessRequest, counted: Sequence[str], stamp: datetime) -> list[dict[str, Any]]:
    """`status.approvals` as what counts now: the counted approvers it lists keep their time, those it
    does not list yet are added, timed `stamp`, and those that no longer count (their approver left
    the team) are left out, so that the count and "waiting for N more" are never made of them."""
    recorded = [a for a in current.status.approvals or [] if a.by in counted]
    known = {a.by for a in recorded}
    return [a.wire() for a in recorded] + [{"by": by, "time": ts(stamp)} for by in counted if by not in known]


def waiting_message(
    valid: request_rules.ValidRequest,
    counted: Sequence[str],
    escalated: bool,
    gone: Mapping[str, str] = approvals.NOBODY_GONE,
    completed: tuple[str, str] = ("", ""),
) -> str:
    """`gone`: approvers whose approval no longer counts for their Identity Center account, named
    with why (they are still listed in the annotation, and may be counted on otherwise).
    `completed`: the request's name and the approver stamped (`approved-by`) as completing the
    count, when one is: a decision taken, which no further approval can follow (the admission
    webhook refuses it, and the stamp never changes), so the message says what to do instead, as an
    extension's does (`domain.extensions`). The webhook stamps a completion only on a count it
    verified (`handlers.admission.unverified`); an approver disabled between its check and the
    operator's count leaves one short."""
    needed = valid.entitlement.spec.approval.approvals_required
    who = request_rules.approvers_text(valid.team, escalated, excluding={valid.requester, *counted, *gone})
    void = "".join(f"; {request_rules.approval_void(by, why)}" for by, why in gone.items() if by not in counted)
    so_far = f"{len(counted)} of {needed} approvals ({approvals.in_words(counted) or 'none yet'})"
    if completed[1]:
        return f"{so_far}: {_what_is_left(valid, completed)}{void}"
    owner = valid.entitlement.spec.owner
    return f"{so_far}: waiting for {needed - len(counted)} more, by another approver of team {owner} ({who}){void}"


def _what_is_left(valid: request_rules.ValidRequest, completed: tuple[str, str]) -> str:
    """What may still be done about a request an approval no longer counts for: another approval,
    unless `completed` names an approver stamped as completing the count (see `waiting_message`),
    after whom none can follow. The `Ready` message and the `DecisionIgnored` Event say the same."""
    name, by = completed
    if not by:
        return "another approver of the team may approve, or deny"
    return approvals.completion_taken(
        by,
        f"kubectl jit withdraw {name}",
        f"request access again (kubectl jit request {valid.entitlement.metadata.name}), or an approver may deny it",
    )


def _completion_stamped(request: AccessRequest) -> tuple[str, str]:
    """The request's name and the approver stamped (`approved-by`) as completing the count, if one is."""
    stamps = request.metadata.annotations
    by = stamps.get(names.ANNOTATION_APPROVED_BY, "") if wire.truthy(stamps.get(names.ANNOTATION_APPROVED)) else ""
    return request.metadata.name or "", by


def count(
    rt: Runtime,
    request: AccessRequest,
    valid: request_rules.ValidRequest,
    gone: Mapping[str, str] = approvals.NOBODY_GONE,
) -> None:
    """Record the approvals of several that status does not list yet, and drop those it lists that
    no longer count, each said in a `DecisionIgnored` Warning with who and why. `gone`: approvers
    whose Identity Center account is disabled or deleted (`handlers.eligibility.approvers_gone`)."""
    found = request_rules.approvals_counted(request, valid, now(), gone)
    counted = found.counted
    needed = valid.entitlement.spec.approval.approvals_required

    def build(current: AccessRequest) -> dict[str, Any] | None:
        if not request_rules.is_pending(current):
            return None
        approvals_now = listed(current, counted, now())
        if [a["by"] for a in approvals_now] == [a.by for a in current.status.approvals or []]:
            return None
        escalated = request_rules.escalation_of(current, valid).recorded is not None
        message = waiting_message(
            valid, [a["by"] for a in approvals_now], escalated, gone, _completion_stamped(current)
        )
        return {
            "approvals": approvals_now,
            "approvalSummary": approvals.progress(len(approvals_now), needed),
            "conditions": conditions_after(
                current.status.conditions, [(names.READY, False, names.PENDING, message)], current.metadata.generation
            ),
        }

    before = {a.by for a in request.status.approvals or []}
    updated = rt.kube.update_status(
        names.REQUESTS, request.metadata.name, status_change(AccessRequest, build), uid=request.metadata.uid
    )
    if updated is None:
        return
    after = AccessRequest.model_validate(updated)
    now_listed = {a.by for a in after.status.approvals or []}
    left = _what_is_left(valid, _completion_stamped(after))
    for by, why in found.why_not:
        if by in before and by not in now_listed:
            record(
                updated,
                names.DECISION_IGNORED,
                f"the approval by {by} no longer counts ({why}): {after.status.approval_summary} now; {left}",
                warning=True,
                who=by,
            )
    for given in after.status.approvals or []:
        if given.by not in before:
            summary = after.status.approval_summary or ""
            record(updated, names.APPROVAL_COUNTED, f"approval {summary} by {given.by}", who=given.by)

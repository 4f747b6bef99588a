"""Whether an AccessGrant rests on its AccessRequest: checked before any membership is added.

Only the operator's identity may create AccessGrants, but whoever can act as it (or a cluster
administrator by mistake) could create one by hand. The grant handler does not take a grant at its
word: before it puts anyone into a group, the grant must be the one its request, as stored now,
leads to:

- the request (`spec.request`) exists, and is the very one the grant was made for (the uid in the
  grant's `jitaccess.dev/request` label), not another created since under the same name;
- the request waits for this grant: approved, its access not ended, and `status.grant` naming this
  grant (or not set yet, for a grant named after the request, which is how the operator names them);
- the approval stands (`requests.grant_basis`: stamped by the admission webhook, or the
  auto-approval of an owner-team member), against the live Entitlement and TeamOwnership;
- grantee, UserId, entitlement, group and duration are what that request and its Entitlement yield;
- its access may begin as the request's would (`handlers.activation`): not before `spec.startTime`
  (a request approved for a later start waits `Scheduled`, the grant's name its own: a grant made by
  hand for it would otherwise begin the access days early), not once the window it was approved
  for has passed (`requests.window_passed`: a grant created just before the window's end whose
  handler runs after it adds nothing), not for an Entitlement that gives
  other than what was approved (`status.approvedFor`), and, for a request with a `spec.startTime`,
  only with what the start asks of it too (`begins`: eligibility asked afresh, the approver still
  in Identity Center, no cancel meanwhile).

Once a grant is active, `orphaned` says whether its request has gone since (deleted, or deleted
and re-created under the same name): access never outlives its basis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from jitaccess.api import names
from jitaccess.api.models import AccessGrant, AccessRequest, Entitlement, TeamOwnershipSpec
from jitaccess.domain import approvals as approval_rules
from jitaccess.domain import assignments as assignment_rules
from jitaccess.domain import conditions as cond
from jitaccess.domain import requests as request_rules
from jitaccess.domain import schedule
from jitaccess.domain.durations import parse_duration
from jitaccess.errors import InvalidInput

#: Whether the requester of a valid request is in one of its Entitlement's on-call groups now.
OnCall = Callable[[request_rules.ValidRequest], bool]
#: Why the access of a request with a `spec.startTime`, its approval re-derived, may not begin now
#: (`handlers.activation.refusal_given`); None when it may.
Begins = Callable[[AccessRequest, request_rules.ValidRequest, request_rules.Basis], request_rules.NoGrant | None]


def unbacked(
    grant: AccessGrant,
    request: AccessRequest | None,
    entitlement: Entitlement | None,
    team: TeamOwnershipSpec | None,
    limits: request_rules.Limits,
    now: datetime,
    on_call: OnCall | None = None,
    gone: Mapping[str, str] = approval_rules.NOBODY_GONE,
    begins: Begins | None = None,
) -> str | None:
    """Why `grant` must not be provisioned, as the message its `Failed` condition carries (failing
    it adds what the user may have held: `grants.failure_message`); None when its request backs it. `request`, `entitlement` and `team` are as stored now; `on_call`
    asks whether the requester is in an on-call group now, `gone` which approvers listed are gone
    from Identity Center (`requests.grant_basis`), `begins` what the start asks of a request with a
    `spec.startTime` (module doc). `now` is the exact time: a start may fall within a second, and
    the grant the start has just created must not be refused in that second (the approval's times,
    the API's, are whole seconds, and compared as such)."""
    problem = _why_not(grant, request, entitlement, team, limits, now, on_call, gone, begins)
    if problem is None:
        return None
    return (
        f"not provisioned: AccessGrant {grant.metadata.name} is not backed by an approved AccessRequest "
        f"({problem}). Grants are created by the operator from approved requests only"
    )


def _why_not(
    grant: AccessGrant,
    request: AccessRequest | None,
    entitlement: Entitlement | None,
    team: TeamOwnershipSpec | None,
    limits: request_rules.Limits,
    now: datetime,
    on_call: OnCall | None,
    gone: Mapping[str, str],
    begins: Begins | None,
) -> str | None:
    name, spec = grant.metadata.name, grant.spec
    if request is None:
        return f"AccessRequest {spec.request} does not exist"
    if request.metadata.deletion_timestamp is not None:
        return f"AccessRequest {spec.request} is being deleted"
    made_for = grant.metadata.labels.get(names.LABEL_REQUEST)
    if made_for != request.metadata.uid:
        return (
            f"its label {names.LABEL_REQUEST} is {made_for or 'missing'}, but AccessRequest {spec.request} has uid "
            f"{request.metadata.uid}: the grant was not made for that request"
        )
    waits_for = request_rules.access_not_ended(request.wire())
    if waits_for is None:
        state = cond.ready_reason(request.status.conditions)
        return f"AccessRequest {spec.request} is not approved, or its access has ended (it is {state or 'new'})"
    if waits_for != name:
        return f"AccessRequest {spec.request} leads to AccessGrant {waits_for}, not to this one"
    try:
        valid = request_rules.validate(request, entitlement, team, limits)
    except InvalidInput as exc:
        return f"AccessRequest {spec.request} does not hold against its Entitlement: {exc}"
    basis = request_rules.grant_basis(
        request,
        valid,
        limits,
        now.replace(microsecond=0),
        on_call=(lambda: on_call(valid)) if on_call is not None else None,
        gone=gone,
    )
    if isinstance(basis, request_rules.NoGrant):
        return f"AccessRequest {spec.request}: {basis.message}"
    return _mismatch(grant, request, valid) or _not_begun(request, valid, basis, now, begins)


def _not_begun(
    request: AccessRequest,
    valid: request_rules.ValidRequest,
    basis: request_rules.Basis,
    now: datetime,
    begins: Begins | None,
) -> str | None:
    """Why the request's access may not begin now, as the request handler would find before it
    creates the grant (`handlers.requests._create_grant`): its start is still to come, or the window
    it was approved for has passed, or its Entitlement changed since the approval; for a request with
    a start, `begins`'s answer."""
    name, start = request.metadata.name, request.spec.start_time
    if start is not None and schedule.waits(start, now):
        return (
            f"AccessRequest {name} is approved for a later start: its access begins at {schedule.stamp(start)} "
            "(spec.startTime), when the operator creates its grant, not before"
        )
    refusal = request_rules.window_passed(request, valid.duration, now) or request_rules.changed_since_approval(
        request, valid.entitlement
    )
    if refusal is None and start is not None and begins is not None:
        refusal = begins(request, valid, basis)
    return None if refusal is None else f"AccessRequest {name}: {refusal.message}"


def _mismatch(grant: AccessGrant, request: AccessRequest, valid: request_rules.ValidRequest) -> str | None:
    spec = grant.spec
    target = valid.entitlement.spec.identity_center
    expected = (
        ("spec.user", spec.user, valid.requester),
        ("spec.userId", spec.user_id, valid.user_id),
        ("spec.entitlement", spec.entitlement, request.spec.entitlement),
        ("spec.groupName", spec.group_name, assignment_rules.target_name(target)),
        ("spec.accountAssignment", spec.account_assignment, target.account_assignment),
    )
    for field, actual, wanted in expected:
        if actual != wanted:
            return f"{field} is {actual!r}, but AccessRequest {spec.request} and its Entitlement yield {wanted!r}"
    try:
        duration = parse_duration(spec.duration, "spec.duration")
    except InvalidInput as exc:
        return str(exc)
    if duration != valid.duration:
        return f"spec.duration is {spec.duration!r}, but AccessRequest {spec.request} asks for {valid.duration_text!r}"
    return None


def orphaned(made_for: str, request_uid: str | None) -> bool:
    """Whether a grant's request is gone: `request_uid` is the uid of the request stored under its
    name now (None: there is none), `made_for` the one the grant was made for (its label). A grant
    without the label (made before grants carried it) is orphaned only when no request has the name."""
    if request_uid is None:
        return True
    return bool(made_for) and made_for != request_uid

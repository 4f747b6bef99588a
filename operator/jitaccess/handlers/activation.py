"""The last word before an approved request's access begins: why not, or nothing.

Asked twice on the way from an approval to a membership:

- by the request handler right before it creates the grant (`requests`), the moment an approval
  is taken or, for a request with a `spec.startTime`, at the start;
- by the grant handler before it adds anything for a grant whose request has a `spec.startTime`
  (`backing`, after `domain.backing` has found the grant to be the one its request leads to, and
  the start come). Such an approval may have waited up to days, and a grant made by hand (whoever
  can act as the operator's identity: attack 33's setting) skips the request handler's check: it
  must not begin a window's access on an eligibility, an approver or an Entitlement that the start
  would have refused. For the operator's own grant this asks Identity Center a second time, a
  moment after the first (scheduled starts are few).
"""

from __future__ import annotations

from jitaccess.api import names, wire
from jitaccess.api.models import AccessRequest
from jitaccess.domain import requests as request_rules
from jitaccess.handlers import oncall
from jitaccess.handlers.common import now
from jitaccess.handlers.eligibility import approvers_gone, approvers_problem, eligibility_problem
from jitaccess.handlers.runtime import Runtime


def activation_refusal(
    rt: Runtime, request: AccessRequest, valid: request_rules.ValidRequest
) -> request_rules.NoGrant | None:
    """The last word before access is granted: why not, or None.

    The approval is re-derived from what admission stamped (`request_rules.grant_basis`), never taken
    from `status`, and the requester's eligibility is asked again: a human approval comes minutes or
    hours after the check at creation, so Identity Center is asked afresh (no cached "yes"); an
    auto-approval is taken in the moment of that check, whose answer is seconds old at most, unless
    the request waited for its `spec.startTime`. Of several approvals, those whose approver's Identity
    Center account is disabled or gone since do not count (`approvers_gone`), as while the request
    was pending: the others must still make approvalsRequired.
    """
    needed = valid.entitlement.spec.approval.approvals_required
    basis = request_rules.grant_basis(
        request,
        valid,
        rt.settings.limits,
        now(),
        on_call=lambda: oncall.on_call_group(rt, valid) is not None,
        gone=approvers_gone(rt, request.metadata.annotations, needed),
    )
    if isinstance(basis, request_rules.NoGrant):
        return basis
    return refusal_given(rt, request, valid, basis)


def refusal_given(
    rt: Runtime, request: AccessRequest, valid: request_rules.ValidRequest, basis: request_rules.Basis
) -> request_rules.NoGrant | None:
    """`activation_refusal` once the approval is re-derived (`basis`): the Entitlement still gives
    what was approved, the requester is eligible (asked afresh after a human approval or a wait for
    the start), the approver is still in Identity Center, and nobody cancelled the request meanwhile."""
    changed = request_rules.changed_since_approval(request, valid.entitlement)
    if changed is not None:
        return changed
    problem = eligibility_problem(rt, valid, fresh=not basis.auto or request.spec.start_time is not None)
    if problem is not None:
        return request_rules.NoGrant(names.NOT_ELIGIBLE, f"not granted: when access was to begin, {problem}")
    return _approver_left(rt, valid, basis) or _cancelled_meanwhile(rt, request)


def _approver_left(
    rt: Runtime, valid: request_rules.ValidRequest, basis: request_rules.Basis
) -> request_rules.NoGrant | None:
    """A human approval whose approver's Identity Center account is disabled or gone when access is to
    begin (a leader who has left, whose approval may have waited days for `spec.startTime`): it stops
    counting, as one whose approver left the team does (`grant_basis`), and the request fails; its
    "yes" of admission a few seconds ago stands (`approver_problem`). Approvals of several are counted
    without those gone by `grant_basis` (`approvers_gone`)."""
    if basis.auto or valid.entitlement.spec.approval.approvals_required > 1:
        return None
    left = approvers_problem(rt, (basis.who,))
    if left is None:
        return None
    owner = valid.entitlement.spec.owner
    return request_rules.NoGrant(
        names.FAILED,
        f"not granted: {request_rules.approval_void(*left)}; nothing was granted: request access again "
        f"(`kubectl jit request {valid.entitlement.metadata.name}`) for another approver of team {owner} to approve",
    )


def _cancelled_meanwhile(rt: Runtime, request: AccessRequest) -> request_rules.NoGrant | None:
    """A request that waited for its start, read again right before its grant is created: a cancel
    (`revoked`) may have come while it was checked (Identity Center was just asked), up to the
    last moment. (Gone or being deleted meanwhile, its grant's own check fails the grant, as ever.)"""
    if request.spec.start_time is None:
        return None  # approved this moment by this very handler: nothing waited to be cancelled
    fresh = rt.kube.get(names.REQUESTS, request.metadata.name)
    if fresh is None or wire.metadata(fresh).get("uid") != request.metadata.uid:
        return None
    return request_rules.cancelled(AccessRequest.model_validate(fresh))

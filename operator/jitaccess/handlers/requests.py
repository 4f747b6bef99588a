"""AccessRequest handlers: validate, check eligibility, route, decide, and create the grant.

Every entry point (create, resume, an annotation change, the deadline timer in `schedules`) runs the same
level-triggered `reconcile`, so a restarted operator simply picks up where the object stands.
Status is written with optimistic locking *before* the grant is created, so the grant's own
handler (which writes the request's `Ready` as the grant progresses) never races with it. A
request approved by its own create handler (an auto-approval) has its new grant provisioned by
that same handler (`grants.provision_at_once`), sparing the grant's watch event and handler.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from jitaccess import metrics
from jitaccess.adapters.kube import Refused
from jitaccess.api import audit, names, wire
from jitaccess.api.models import AccessRequest, Condition
from jitaccess.domain import approvals as approval_rules
from jitaccess.domain import assignments as assignment_rules
from jitaccess.domain import breakglass as break_glass_rules
from jitaccess.domain import conditions as cond
from jitaccess.domain import requests as request_rules
from jitaccess.domain import schedule
from jitaccess.errors import InvalidInput, RetryLater
from jitaccess.handlers import approvals as approval_counts
from jitaccess.handlers import breakglass, diffbase, oncall
from jitaccess.handlers.activation import activation_refusal
from jitaccess.handlers.common import NO_INDEX, Index, conditions_after, now, parse, status_change, ts
from jitaccess.handlers.deleted_requests import mark_revoked
from jitaccess.handlers.eligibility import approvers_gone, eligibility_problem
from jitaccess.handlers.grants import provision_at_once
from jitaccess.handlers.indexes import holdings
from jitaccess.handlers.owners import lookup
from jitaccess.handlers.recording import record
from jitaccess.handlers.runtime import Runtime, runtime_of
from jitaccess.handlers.scheduler import utcnow

log = logging.getLogger(__name__)
REQ = (names.GROUP, names.VERSION, names.REQUESTS)
#: How many escalations in a row one look at a request records before it waits and looks again. Each
#: is for another owner team (`_escalate` records one team's once): the Entitlement handed over
#: between two looks, which Git does not do this often but for a fault or someone's doing.
ESCALATIONS_IN_A_ROW = 5


@kopf.on.resume(*REQ)
@kopf.on.create(*REQ)
@kopf.on.update(*REQ, field="metadata.annotations")
async def reconcile_request(
    *,
    body: kopf.Body,
    memo: kopf.Memo,
    reason: Any = None,
    old: Any = None,
    new: Any = None,
    teams: Index = NO_INDEX,
    entitlements: Index = NO_INDEX,
    **_: Any,
) -> None:
    rt = runtime_of(memo)
    # A grant created here carries kopf's diff-base of the request in the request's `Granted`, made
    # here (`grants.provision_at_once`) or deferred to the grant's handler (`diffbase`).
    with diffbase.handling(str(body.metadata.uid or ""), diffbase.to_carry(reason, old, new)):
        await rt.run_blocking(reconcile, rt, body, teams, entitlements, announce_ignored=True)


def reconcile(
    rt: Runtime, body: Mapping[str, Any], teams: Index, entitlements: Index, *, announce_ignored: bool
) -> None:
    if wire.deleting(body):
        return  # withdrawn: kept only until its audit records are archived, it leads to nothing
    try:
        request = parse(AccessRequest, body)
    except InvalidInput as exc:
        _finish(rt, dict(body), names.INVALID, str(exc), entitlement=str(body.get("spec", {}).get("entitlement", "")))
        return
    if request.spec.break_glass and _review_to_record(request):
        entitlement, live = lookup(rt, request, teams, entitlements)
        team = breakglass.reviewers(request, teams, entitlement, live)
        breakglass.record_review(rt, request, team)
        return
    if request_rules.is_finished(request):
        return
    if cond.is_true(request.status.conditions, names.DENIED):
        return
    try:
        if cond.is_true(request.status.conditions, names.APPROVED):
            ensure_grant(rt, request, teams, entitlements)
        else:
            again = _decide(rt, request, body, teams, entitlements, announce_ignored)
            # After an escalation is recorded, a backup approver's decision stamped once it was
            # due, before it was recorded (`decide_pending` records it first), is taken now: no
            # later annotation change may come to wake this handler. The next pass escalates again
            # only for another owner team (the Entitlement handed over between two looks), so the
            # passes have no bound of their own but the owner changes: a loop, not a call within a
            # call, and a few at most before kopf retries (nothing is lost: each team's is recorded).
            passes = 1
            while again is not None:
                if passes == ESCALATIONS_IN_A_ROW:
                    raise kopf.TemporaryError(
                        f"{request.metadata.name}: escalated {passes} times in a row, each for another owner "
                        f"team: Entitlement {request.spec.entitlement}'s owner team keeps changing; will look again",
                        delay=30,
                    )
                again = _decide(rt, again, again.wire(), teams, entitlements, announce_ignored)
                passes += 1
    except InvalidInput as exc:
        _finish(rt, dict(body), names.INVALID, str(exc), entitlement=request.spec.entitlement)
    except RetryLater as exc:
        metrics.ERRORS.labels("identitycenter_retry").inc()
        raise kopf.TemporaryError(f"Identity Center is not answering ({exc}); will retry", delay=5) from exc


def _decide(
    rt: Runtime,
    request: AccessRequest,
    body: Mapping[str, Any],
    teams: Index,
    entitlements: Index,
    announce_ignored: bool,
) -> AccessRequest | None:
    """Take the request up and act on what it comes to; the request as written when that was to
    record its escalation, to be taken up again at once (`reconcile`), else None."""
    entitlement, team = lookup(rt, request, teams, entitlements)
    valid = request_rules.validate(request, entitlement, team, rt.settings.limits)
    if cond.ready_reason(request.status.conditions) is None:
        owner = valid.entitlement.spec.owner
        problem = eligibility_problem(rt, valid)
        if problem is not None:
            _finish(rt, dict(body), names.NOT_ELIGIBLE, problem, entitlement=request.spec.entitlement, owner_team=owner)
            return None
        if valid.break_glass:
            problem = breakglass.rate_refusal(rt, request, valid)
            if problem is not None:
                _finish(rt, dict(body), names.INVALID, problem, entitlement=request.spec.entitlement, owner_team=owner)
                return None
            approve(rt, request, valid, who="", why="", auto=True, kind=break_glass_rules.SUMMARY, current=dict(body))
            return None
        if request_rules.route(valid) is request_rules.Route.AUTO_APPROVE:
            # The body kopf just delivered is current (nothing else writes a new request): no re-read.
            approve(rt, request, valid, who="", why="member of the owner team", auto=True, current=dict(body))
            return None
        group = oncall.on_call_group(rt, valid)
        if group is not None:
            approve(rt, request, valid, who="", why=group, auto=True, kind=oncall.SUMMARY, current=dict(body))
            return None
        updated = _mark_pending(rt, request, valid)
        if updated is None:
            return None
        request = updated
    unanswered: RetryLater | None = None
    try:
        gone = approvers_gone(rt, request.metadata.annotations, valid.entitlement.spec.approval.approvals_required)
    except RetryLater as exc:
        gone, unanswered = approval_rules.NOBODY_GONE, exc
    decision = request_rules.decide_pending(
        request,
        valid,
        rt.settings.limits,
        now(),
        responder_groups=frozenset(rt.settings.responder_groups),
        gone=gone,
    )
    if unanswered is not None and (decision is None or decision.outcome not in _WITHOUT_COUNT):
        # A time-out or a denial is taken without Identity Center; a count waits for its answer (fail
        # closed: the operator retries, as for every other question it cannot get answered).
        raise unanswered
    if decision is None:
        return None
    if decision.outcome is request_rules.Outcome.APPROVE:
        approve(rt, request, valid, who=decision.who, why=decision.why, auto=False, gone=gone)
    elif decision.outcome is request_rules.Outcome.DENY:
        _deny(rt, request, valid, decision.who, decision.why)
    elif decision.outcome is request_rules.Outcome.ESCALATE:
        return _escalate(rt, request, valid, decision.why)  # taken up again by `reconcile`
    elif decision.outcome is request_rules.Outcome.TIME_OUT:
        _finish(
            rt,
            request.wire(),
            names.TIMED_OUT,
            f"timed out: {decision.why}",
            entitlement=request.spec.entitlement,
            owner_team=valid.entitlement.spec.owner,
        )
    elif decision.outcome is request_rules.Outcome.COUNT:
        approval_counts.count(rt, request, valid, gone)
        if decision.ignored is not None and announce_ignored:
            record(request.wire(), names.DECISION_IGNORED, decision.ignored.why, warning=True, who=decision.ignored.who)
    elif decision.outcome is request_rules.Outcome.IGNORE and announce_ignored:
        record(request.wire(), names.DECISION_IGNORED, decision.why, warning=True, who=decision.who)
    return None


#: What `decide_pending` may answer without knowing which approvers are gone from Identity Center.
_WITHOUT_COUNT = frozenset({request_rules.Outcome.TIME_OUT, request_rules.Outcome.DENY})


def _review_to_record(request: AccessRequest) -> bool:
    """A review of a break-glass request stamped by the webhook that status does not have yet."""
    stamped = break_glass_rules.REVIEWED_BY in request.metadata.annotations
    return stamped and not cond.is_true(request.status.conditions, names.REVIEWED)


def _mark_pending(rt: Runtime, request: AccessRequest, valid: request_rules.ValidRequest) -> AccessRequest | None:
    who = request_rules.approvers_text(valid.team, escalated=False, excluding={valid.requester})
    message = f"waiting for approval by an approver of team {valid.entitlement.spec.owner} ({who})"

    def build(current: AccessRequest) -> dict[str, Any] | None:
        if cond.ready_reason(current.status.conditions) is not None:
            return None
        return {
            "requester": valid.requester,
            "duration": valid.duration_text,
            "ownerTeam": _owner_team(current, valid),
            "approvalSummary": approval_rules.progress(0, valid.entitlement.spec.approval.approvals_required),
            "conditions": conditions_after(
                current.status.conditions, [(names.READY, False, names.PENDING, message)], current.metadata.generation
            ),
        }

    updated = rt.kube.update_status(
        names.REQUESTS, request.metadata.name, status_change(AccessRequest, build), uid=request.metadata.uid
    )
    if updated is None:
        return None
    metrics.REQUESTS.labels(request.spec.entitlement, "pending").inc()
    record(updated, names.PENDING, message, who=valid.requester, request_reason=request.spec.reason)
    return AccessRequest.model_validate(updated)


def _owner_team(current: AccessRequest, valid: request_rules.ValidRequest) -> str:
    """The owner team the request was first taken up under: the Entitlement's owner when the operator
    first took the request up, kept from then on (who was asked first; a break-glass request's
    reviewers, `breakglass.recorded_reviewers`). Each later step records the team it was taken
    against beside it (`escalationTeam`, `decisionTeam`): the Entitlement may have been handed to
    another team meanwhile, whose approver then decides."""
    return current.status.owner_team or valid.entitlement.spec.owner


def approve(
    rt: Runtime,
    request: AccessRequest,
    valid: request_rules.ValidRequest,
    *,
    who: str,
    why: str,
    auto: bool,
    current: dict[str, Any] | None = None,
    kind: str = "",
    gone: Mapping[str, str] = approval_rules.NOBODY_GONE,
) -> None:
    """`kind` names an approval other than the owner team's or an approver's: break-glass, on call.
    `gone`: approvers whose approval no longer counts for their Identity Center account."""
    reason = names.AUTO_APPROVED if auto else names.APPROVED
    message = (
        f"auto-approved: {valid.requester} is a member of team {valid.entitlement.spec.owner}"
        if auto
        else (f"approved by {who}" + (f": {why}" if why else ""))
    )
    needed = valid.entitlement.spec.approval.approvals_required
    counted = () if auto or needed <= 1 else request_rules.approvals_counted(request, valid, now(), gone).counted
    if counted:
        message = f"approved by {approval_rules.in_words(counted)} ({len(counted)} of {needed})" + (
            f": {why}" if why else ""
        )
    if kind == break_glass_rules.SUMMARY:
        reason, message = names.BREAK_GLASS, f"break-glass: {valid.requester} approved their own request"
    elif kind == oncall.SUMMARY:
        message = f"{oncall.SUMMARY}: {valid.requester} is in the on-call group {why}"
    at = now()
    window = schedule.approved_window(request.spec.start_time, at, valid.duration)
    ready = (
        (names.READY, False, names.SCHEDULED, schedule.scheduled_message(message, window))
        if window is not None and schedule.waits(window.begins, at)
        else (names.READY, False, names.PENDING, f"{message}; provisioning access")
    )

    def build(current: AccessRequest) -> dict[str, Any] | None:
        if request_rules.is_decided(current) or request_rules.is_finished(current):
            return None
        if current.metadata.deletion_timestamp is not None:
            return None  # withdrawn since kopf's view of it: no approval on it any more
        fields: dict[str, Any] = {
            "requester": valid.requester,
            "duration": valid.duration_text,
            "ownerTeam": _owner_team(current, valid),
            # The team this approval was judged against (admission and `decide_pending` take the
            # live owner), which its records name: an approver of the team that owns it now.
            "decisionTeam": valid.entitlement.spec.owner,
            "approvedFor": request_rules.gives(valid.entitlement),
            "conditions": conditions_after(
                current.status.conditions,
                [(names.APPROVED, True, reason, message), ready],
                current.metadata.generation,
            ),
        }
        fields["approvalSummary"] = kind or ("auto" if auto else approval_rules.progress(max(len(counted), 1), needed))
        if kind == break_glass_rules.SUMMARY:
            review_due, reviewed = breakglass.approval_fields(valid, request.metadata.name, request.metadata.uid)
            fields |= review_due
            fields["conditions"] = conditions_after(
                [Condition.model_validate(c) for c in fields["conditions"]], [reviewed], current.metadata.generation
            )
        if counted:
            fields["approvals"] = approval_counts.listed(current, counted, now())
        if not auto:
            fields["approvedBy"] = who
            if why:
                fields["decisionReason"] = why
        return fields

    updated = rt.kube.update_status(
        names.REQUESTS,
        request.metadata.name,
        status_change(AccessRequest, build),
        current=current,
        uid=request.metadata.uid,
    )
    if updated is None:
        return
    approved = AccessRequest.model_validate(updated)
    if not cond.is_true(approved.status.conditions, names.APPROVED):
        return
    metrics.REQUESTS.labels(request.spec.entitlement, reason.lower()).inc()
    if kind == break_glass_rules.SUMMARY:
        metrics.BREAK_GLASS.labels(request.spec.entitlement).inc()
    warn = reason == names.BREAK_GLASS
    # The line's `who` is who decided, as the `approved` record's actor says: an approver; for an
    # auto-approval (owner team, on call) the operator, by the rule its message names; for break-glass
    # the requester, who approved their own request.
    decider = who or (valid.requester if kind == break_glass_rules.SUMMARY else audit.OPERATOR)
    record(updated, reason, message, warning=warn, who=decider, request_reason=request.spec.reason)
    _create_grant(rt, approved, valid, written=updated)


def ensure_grant(rt: Runtime, request: AccessRequest, teams: Index, entitlements: Index) -> None:
    """An approved request whose grant is missing (a crash in between) gets it now, if the approval
    still stands (see `_create_grant`)."""
    if request.status.grant or _own_grant(rt, request) is not None:
        _end_grant_cancelled_late(rt, request)
        return
    revoked = request_rules.cancelled(request)
    entitlement, team = lookup(rt, request, teams, entitlements)
    if revoked is not None:
        # Cancelled while it waited for its start: it ends now, not at spec.startTime.
        _not_granted(rt, request, revoked, entitlement.spec.owner if entitlement is not None else "")
        return
    if entitlement is None:
        _finish(
            rt,
            request.wire(),
            names.FAILED,
            f"approved, but Entitlement {request.spec.entitlement!r} was deleted before access was granted",
            entitlement=request.spec.entitlement,
        )
        return
    _create_grant(rt, request, request_rules.validate(request, entitlement, team, rt.settings.limits))


def _end_grant_cancelled_late(rt: Runtime, request: AccessRequest) -> None:
    """A cancel admitted in the moment between a scheduled start's creating the grant and the request
    leaving `Scheduled` (admission takes a cancel on a `Scheduled` request): the grant may have
    begun before its handler could see it. Its access does not run on: the grant is revoked, by the
    operator (a grant's `revoked-by` is only ever its writer's own), naming the canceller and their
    reason; the grant's handler records the revocation as the canceller's (`grants._revoker`), and
    the request follows it, `Revoked`."""
    why = request_rules.cancelled_late_reason(request)
    if not why or not request.spec.start_time:
        return
    grant = rt.kube.get(names.GRANTS, request.metadata.name)
    made_for = ((grant or {}).get("metadata", {}).get("labels") or {}).get(names.LABEL_REQUEST)
    if grant is None or (made_for and made_for != request.metadata.uid):
        return  # no grant of this request's: another request's under the name is not this one to end
    mark_revoked(rt, request.metadata.name, why, wire.uid_of(grant))


def _own_grant(rt: Runtime, request: AccessRequest) -> dict[str, Any] | None:
    """The grant this request led to, if it exists already (created before a crash, say)."""
    grant = rt.kube.get(names.GRANTS, request.metadata.name)
    made_for = ((grant or {}).get("metadata", {}).get("labels") or {}).get(names.LABEL_REQUEST)
    return grant if made_for == request.metadata.uid else None


def _create_grant(
    rt: Runtime, request: AccessRequest, valid: request_rules.ValidRequest, written: dict[str, Any] | None = None
) -> None:
    """Create the grant of an approved request; `written`: the request as this handler's own write
    (the approval) left it, handed to the grant's handler in place of a read (`handlers.backing`)."""
    at = utcnow()
    if schedule.waits(request.spec.start_time, at):
        return  # `Scheduled`: `handlers.starts` comes back at spec.startTime
    # A start taken after the window it was approved for (the operator down across it, a cluster
    # restored from a backup): nothing is granted, and Identity Center is not asked.
    refusal = request_rules.window_passed(request, valid.duration, at) or activation_refusal(rt, request, valid)
    if refusal is not None:
        _not_granted(rt, request, refusal, valid.entitlement.spec.owner)
        return
    name = request.metadata.name
    target = valid.entitlement.spec.identity_center
    manifest = {
        "apiVersion": names.API_VERSION,
        "kind": names.ACCESS_GRANT,
        "metadata": {
            "name": name,
            "labels": {names.LABEL_ENTITLEMENT: request.spec.entitlement, names.LABEL_REQUEST: request.metadata.uid},
            # kopf's own finalizer, set at once: kopf would otherwise add it with a patch of its own
            # (two more webhook calls) before the grant's first handler runs.
            "finalizers": [names.FINALIZER],
        },
        "spec": {
            "user": valid.requester,
            "entitlement": request.spec.entitlement,
            "groupName": assignment_rules.target_name(target),
            **({"accountAssignment": target.account_assignment.wire()} if target.account_assignment else {}),
            "request": name,
            "duration": valid.duration_text,
            # Recorded for good: the person who asked (the UserId admission stamped), the team whose
            # approvers may end the grant whatever becomes of the Entitlement, and why it was asked for.
            **({"userId": valid.user_id} if valid.user_id else {}),
            "ownerTeam": valid.entitlement.spec.owner,
            "reason": request.spec.reason,
        },
    }
    # The request's create handler, its approval just written, provisions a group membership
    # itself (`grants.provision_at_once`); the grant's own handler waits for that rather than doing
    # it. Account assignments take sso-admin seconds to minutes: they are left to the grant's handler,
    # as is every grant while the membership quota is spent (a burst): the request threads, which
    # also end the grants of deleted requests and of lapsed eligibility, must not wait out the quota.
    membership = written is not None and target.account_assignment is None and rt.identity_center.can_add_member_now()
    essence = diffbase.carriable(request.metadata.uid) if membership else None
    done = rt.provisions.start(name) if essence is not None else None
    try:
        if written is not None:
            # Handed over before the grant exists: its handler may start before `create` returns here.
            rt.handoffs.put(name, written)
        try:
            grant, created = rt.kube.create(names.GRANTS, manifest)
        except Refused as exc:
            # Refused as invalid (a label, a schema bound, a rule, an admission policy): kopf would
            # retry the same write without end, the request Pending ("provisioning access") for good.
            rt.handoffs.take(name)
            message = grant_refused(name, exc.message)
            _finish(rt, request.wire(), names.FAILED, message, entitlement=request.spec.entitlement)
            return
        if not created:
            rt.handoffs.take(name)
        if grant.get("metadata", {}).get("labels", {}).get(names.LABEL_REQUEST) != request.metadata.uid:
            _finish(
                rt,
                request.wire(),
                names.FAILED,
                f"an AccessGrant named {name} already exists from an earlier request: "
                "create the request again under a new name (metadata.generateName)",
                entitlement=request.spec.entitlement,
            )
            return
        if created and done is not None and written is not None and essence is not None:
            # Filed as a holder before the membership is added, as the watch files it a moment later
            # (`indexes.observe_grant`): a drift scan listing the group in between would otherwise
            # see a member no grant backs, and remove the access just granted.
            rt.holders.file_unless_filed(name, holdings(grant), name)
            provisioning, done = done, None
            # `request` is `written` parsed (`approve`): the approval as the API server stored it.
            if provision_at_once(rt, grant, written, request, valid, essence, provisioning):
                return  # the request's `Granted`, its last write, carried its diff-base
    finally:
        if done is not None:
            done.set_result("")  # not provisioned here: the grant's handler does it
    # No status write of its own: the grant's handler writes `status.grant` with the request's next
    # `Ready`, and until then the grant is found by name (it has the request's), so an approved
    # request whose grant exists is never granted twice (`kube.create` returns the existing one).
    # A new grant's handler writes the request next: that write carries kopf's diff-base of the
    # request too (nothing here can fail any more).
    if created:
        diffbase.defer(request.metadata.uid)


def _not_granted(rt: Runtime, request: AccessRequest, why: request_rules.NoGrant, owner: str) -> None:
    """End an approved request without its grant, for `why`; `owner`: the Entitlement's owner now,
    the team a cancel (`Revoked`) was judged against ("" once the Entitlement is gone)."""
    entitlement = request.spec.entitlement
    _finish(rt, request.wire(), why.reason, why.message, entitlement=entitlement, who=why.who, revocation_team=owner)


def grant_refused(name: str, said: str) -> str:
    """The `Failed` message of a request whose grant the API server refused as invalid: its words,
    and what to do (nothing was granted, and trying the same write again cannot change the answer)."""
    return (
        f"approved, but the API server refused to create AccessGrant {name} as invalid, so nothing was "
        f"granted: {said.rstrip('.')}. Trying again cannot change that: whoever runs the cluster (the "
        "admission policy or rule named) or the Entitlement's owners must fix what it names; then create "
        "the request again under a new name"
    )


def _deny(rt: Runtime, request: AccessRequest, valid: request_rules.ValidRequest, who: str, why: str) -> None:
    message = f"denied by {who}" + (f": {why}" if why else "")

    def build(current: AccessRequest) -> dict[str, Any] | None:
        if request_rules.is_decided(current) or request_rules.is_finished(current):
            return None
        fields: dict[str, Any] = {
            "deniedBy": who,
            "decisionTeam": valid.entitlement.spec.owner,
            "conditions": conditions_after(
                current.status.conditions,
                [(names.DENIED, True, names.DENIED, message), (names.READY, False, names.DENIED, message)],
                current.metadata.generation,
            ),
        }
        if why:
            fields["decisionReason"] = why
        return fields

    updated = rt.kube.update_status(
        names.REQUESTS, request.metadata.name, status_change(AccessRequest, build), uid=request.metadata.uid
    )
    if updated is not None and cond.is_true(AccessRequest.model_validate(updated).status.conditions, names.DENIED):
        metrics.REQUESTS.labels(request.spec.entitlement, "denied").inc()
        record(updated, names.DENIED, message, who=who)


def _escalate(rt: Runtime, request: AccessRequest, valid: request_rules.ValidRequest, why: str) -> AccessRequest | None:
    """Record the escalation; the request as written, None when nothing was (recorded already, or
    decided meanwhile)."""
    backups = request_rules.approvers_text(
        valid.team.model_copy(update={"approvers": [], "approver_groups": []}), escalated=True
    )
    message = f"escalated to the backup approvers of team {valid.entitlement.spec.owner} ({backups}): {why}"
    pending = f"waiting for approval by {request_rules.approvers_text(valid.team, True, excluding={valid.requester})}"

    def build(current: AccessRequest) -> dict[str, Any] | None:
        if request_rules.escalation_of(current, valid).recorded is not None or not request_rules.is_pending(current):
            return None
        # Escalated under another team (the Entitlement changed owner since): this team's escalation
        # is recorded afresh, from now, its backup approvers told (`request_rules.escalated_for`).
        earlier = [c for c in current.status.conditions if c.type != names.ESCALATED]
        return {
            "escalationTime": ts(now()),
            "escalationTeam": valid.entitlement.spec.owner,
            "conditions": conditions_after(
                earlier,
                [
                    (names.ESCALATED, True, names.PENDING_TOO_LONG, message),
                    (names.READY, False, names.PENDING, pending),
                ],
                current.metadata.generation,
            ),
        }

    updated = rt.kube.update_status(
        names.REQUESTS, request.metadata.name, status_change(AccessRequest, build), uid=request.metadata.uid
    )
    if updated is None:
        return None
    record(updated, names.ESCALATED, message)
    return AccessRequest.model_validate(updated)


def _finish(
    rt: Runtime,
    body: dict[str, Any],
    reason: str,
    message: str,
    *,
    entitlement: str,
    owner_team: str = "",
    who: str = "",
    revocation_team: str = "",
) -> None:
    """End a request that will never be granted, with the message that says what to fix. `owner_team`:
    the Entitlement's owner, when the request got as far as being checked against it (the team its
    end was taken against, unless a decision recorded its own before); `who`: whoever ended it (a
    cancel's stamped revoker), else its requester is the line's; `revocation_team`: for one ending
    `Revoked`, the Entitlement's owner now, whose approver admission let cancel it (an Entitlement
    handed to another team since the approval: its `revoked` record names that team, beside the
    revoker, not the team that approved)."""
    name = wire.name_of(body)
    requester = body.get("spec", {}).get("requester")

    def build(current: dict[str, Any]) -> dict[str, Any] | None:
        status = current.get("status") or {}
        if wire.ready_reason(current) in names.REQUEST_FINISHED:
            return None
        others = [c for c in status.get("conditions", []) if c.get("type") != names.READY]
        fields: dict[str, Any] = {
            "conditions": [
                *others,
                {
                    "type": names.READY,
                    "status": "False",
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": ts(now()),
                    "observedGeneration": current.get("metadata", {}).get("generation"),
                },
            ]
        }
        if requester:
            fields["requester"] = requester
        if owner_team and not status.get("ownerTeam"):
            fields["ownerTeam"] = owner_team
        if owner_team and not status.get("decisionTeam"):
            fields["decisionTeam"] = owner_team
        if revocation_team and reason == names.REVOKED:
            fields["revocationTeam"] = revocation_team
        return fields

    updated = rt.kube.update_status(names.REQUESTS, name, build, uid=wire.uid_of(body))
    if updated is not None:
        metrics.REQUESTS.labels(entitlement, reason.lower()).inc()
        record(updated, reason, message, warning=reason != names.TIMED_OUT, who=who or requester or "")

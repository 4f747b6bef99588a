"""The life of an AccessRequest: validation, routing, and decisions on pending requests.

The handler asks three questions, in this order, each a pure function here:

1. `validate`: is the request well-formed against its Entitlement and owner team?
2. `route`: for a valid, eligible request, is it approved at once or does it wait for a human?
3. `decide_pending`: for a pending request, has it timed out, has someone approved or denied it,
   has it escalated?
4. `grant_basis`: before anything is granted, what does the grant rest on? Re-derived from what
   admission stamped and the live TeamOwnership, never from `status`.

Eligibility (membership in Identity Center groups) needs I/O and is asked by the handler between
1 and 2; `eligibility_message` words the answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from jitaccess.api import names, wire
from jitaccess.api.limits import LABEL_VALUE_MAX_LENGTH
from jitaccess.api.models import AccessRequest, AccessRequestStatus, Entitlement, TeamOwnershipSpec
from jitaccess.domain import approvals as approval_rules
from jitaccess.domain import assignments as assignment_rules
from jitaccess.domain import breakglass as break_glass_rules
from jitaccess.domain import conditions as cond
from jitaccess.domain import reasons, schedule, standing
from jitaccess.domain.durations import format_duration, parse_duration
from jitaccess.domain.identities import confers_nothing
from jitaccess.domain.teams import Caller, approves_nothing_note, conferring, has_approvers, is_member, may_approve
from jitaccess.domain.text import listed
from jitaccess.errors import InvalidInput


@dataclass(frozen=True)
class Limits:
    """Operator-wide bounds (settings), so tests and benchmarks may use seconds-long grants."""

    min_duration: timedelta
    pending_timeout: timedelta
    #: How far after its creation a request's `spec.startTime` may lie (`domain.schedule`).
    max_start_ahead: timedelta = schedule.DEFAULT_HORIZON
    #: How many requests waiting for an approver one user may have at once (`waiting_problem`); 0: any
    #: number, and several for the same access too.
    max_pending_per_user: int = 5


@dataclass(frozen=True)
class ValidRequest:
    requester: str
    requester_groups: frozenset[str]
    duration: timedelta
    entitlement: Entitlement
    team: TeamOwnershipSpec
    #: The requester's Identity Center UserId as admission stamped it; None on a request admitted
    #: without it (before jitaccess stamped it), whose user is then resolved by name.
    user_id: str | None = None
    #: `spec.breakGlass`, its rules checked (`breakglass.checked_duration`): the requester approves it.
    break_glass: bool = False

    @property
    def duration_text(self) -> str:
        return format_duration(self.duration)


def is_finished(request: AccessRequest) -> bool:
    return cond.ready_reason(request.status.conditions) in names.REQUEST_FINISHED


def ended_at(status: AccessRequestStatus) -> datetime | None:
    """When a request that ended without a grant (denied, invalid, timed out, not eligible) ended;
    None for any other request (one that led to a grant goes with its grant)."""
    ready = cond.find(status.conditions, names.READY)
    if ready is None or ready.reason not in names.REQUEST_FINISHED or status.grant:
        return None
    return ready.last_transition_time


def is_decided(request: AccessRequest) -> bool:
    return cond.is_true(request.status.conditions, names.APPROVED) or cond.is_true(
        request.status.conditions, names.DENIED
    )


def is_pending(request: AccessRequest) -> bool:
    return cond.ready_reason(request.status.conditions) == names.PENDING and not is_decided(request)


def access_not_ended(request: Mapping[str, Any]) -> str | None:
    """The grant of an approved request whose access has not ended yet, by name; None for a request
    that is pending (nothing granted) or finished (denied, ..., or its grant expired or revoked).

    Works on the wire form: admission reviews and watch events see requests as dicts. A request's
    `Ready` follows its grant, and the grant has the request's name until `status.grant` says so.
    """
    if not wire.is_true(request, names.APPROVED) or wire.ready_reason(request) in names.REQUEST_FINISHED:
        return None
    return str(wire.status(request).get("grant") or wire.name_of(request))


def entitlement_name_problem(name: str) -> str | None:
    """Why an Entitlement cannot be named `name`, in words after "whose" (`name is 64 characters
    long: ...`); None when it can. Each of its grants carries the name as the value of the label
    `jitaccess.dev/entitlement` (for `kubectl jit who-has`), which the API server refuses beyond 63
    characters: every grant of it would be refused, and its approved requests never granted."""
    if len(name) <= LABEL_VALUE_MAX_LENGTH:
        return None
    return (
        f"name is {len(name)} characters long, above the limit of {LABEL_VALUE_MAX_LENGTH}: each of its "
        f"AccessGrants carries the name as the value of the label {names.LABEL_ENTITLEMENT}, which Kubernetes "
        f"bounds to {LABEL_VALUE_MAX_LENGTH} characters, so no grant of it could be created"
    )


def validate(
    request: AccessRequest,
    entitlement: Entitlement | None,
    team: TeamOwnershipSpec | None,
    limits: Limits,
) -> ValidRequest:
    """Check a request against its entitlement; raise `InvalidInput` naming the field and the fix."""
    spec = request.spec
    if not spec.requester:
        raise InvalidInput(
            "spec.requester",
            "is empty: it is stamped by the jitaccess admission webhook from the authenticated caller; "
            "check that the webhook is installed",
        )
    if entitlement is None:
        raise InvalidInput(
            "spec.entitlement",
            f"names {spec.entitlement!r}, which does not exist (or is being deleted): `kubectl get entitlements` lists them",
        )
    too_long = entitlement_name_problem(spec.entitlement)
    if too_long is not None:
        # Stored before admission refused such a name (an upgrade, or the webhooks were down): no
        # grant of it could be created, and the request would be approved into a retry without end.
        raise InvalidInput(
            "spec.entitlement",
            f"names an Entitlement whose {too_long}; ask its owners to create it again under a shorter name",
        )
    given_away = standing.refused_grants(entitlement)
    if given_away is not None:
        # Stored before admission refused it (an upgrade, or the webhooks were down): its grant would
        # hand out another team's access, or a group people hold standing (attacks 140, 141).
        raise InvalidInput(
            "spec.entitlement",
            f"names {spec.entitlement!r}, whose Ready is {names.POLICY_REFUSED}: {given_away}. Nothing was "
            f"granted: ask its owners (team {entitlement.spec.owner}) to fix it as said, then request again",
        )
    if team is None:
        raise InvalidInput(
            "spec.entitlement",
            f"names {spec.entitlement!r}, whose owner team {entitlement.spec.owner!r} does not exist: "
            "ask the platform team to add its TeamOwnership",
        )
    duration = parse_duration(
        spec.duration or entitlement.spec.default_duration,
        "spec.duration" if spec.duration else f"Entitlement {spec.entitlement!r} spec.defaultDuration",
    )
    if not spec.duration:
        duration = min(duration, _default_as_recorded(request) or duration)
    maximum = parse_duration(entitlement.spec.max_duration, f"Entitlement {spec.entitlement!r} spec.maxDuration")
    if duration > maximum:
        raise InvalidInput(
            "spec.duration",
            f"{format_duration(duration)} is above the entitlement's maxDuration "
            f"{format_duration(maximum)}: ask for {format_duration(maximum)} or less",
        )
    if duration < limits.min_duration:
        raise InvalidInput(
            "spec.duration",
            f"{format_duration(duration)} is below the operator's minimum {format_duration(limits.min_duration)}",
        )
    if spec.break_glass and spec.start_time is not None:
        # Break-glass is for an emergency now; an approval held for later is what approvers are for.
        raise InvalidInput(
            "spec.startTime",
            "cannot go with spec.breakGlass: break-glass access begins at once; for later access, "
            "request it normally with --start, for an approver to decide",
        )
    if spec.break_glass:
        explicit = spec.duration is not None
        duration = break_glass_rules.checked_duration(
            entitlement, spec.requester_groups, spec.reason, duration, explicit
        )
    _check_reason(spec.reason, entitlement)
    schedule.check_start(spec.start_time, request.metadata.creation_timestamp, limits.max_start_ahead)
    return ValidRequest(
        requester=spec.requester,
        requester_groups=frozenset(spec.requester_groups),
        duration=duration,
        entitlement=entitlement,
        team=team,
        user_id=spec.requester_user_id,
        break_glass=bool(spec.break_glass),
    )


def _default_as_recorded(request: AccessRequest) -> timedelta | None:
    """The duration a request that names none was recorded for when the operator first took it up
    (`status.duration`, the Entitlement's `defaultDuration` of that moment): what its approvers were
    shown ("asks for ... for 1h") and approved. A `defaultDuration` raised afterwards (in the GitOps
    repository, while the request waits for its approver or for its `spec.startTime`) must not
    lengthen access nobody approved for longer; a lowered one shortens it. Only ever taken as an
    upper bound: status is the operator's record, and a value written there gives no more time.
    None when nothing readable is recorded yet."""
    recorded = request.status.duration
    if not recorded:
        return None
    try:
        return parse_duration(recorded, "status.duration")
    except InvalidInput:
        return None


def _check_reason(reason: str, entitlement: Entitlement) -> None:
    if not reason or not reason.strip():
        raise InvalidInput("spec.reason", "is empty: say why you need access, for example a ticket id")
    try:
        problem = reasons.mismatch(reason, entitlement.spec.reason_pattern, entitlement.spec.reason_example)
    except reasons.PatternError as exc:
        raise InvalidInput(
            f"Entitlement {entitlement.metadata.name!r} spec.reasonPattern",
            f"{reasons.pattern_problem(entitlement.spec.reason_pattern or '')}: the entitlement's owners must fix it",
        ) from exc
    if problem is not None:
        raise InvalidInput("spec.reason", problem)


def eligibility_message(requester: str, missing_groups: Sequence[str]) -> str:
    return (
        f"{requester} is not in the Identity Center group(s) {', '.join(missing_groups)} that this entitlement requires"
    )


#: How `disabled_message` ends: admission says what to do about it, which differs from a missing group's fix.
DISABLED = "is disabled"


def disabled_message(requester: str, user_id: str) -> str:
    """Why a disabled Identity Center account is not eligible, whatever its groups: a leaver is
    disabled there (the console, SCIM) while their Kubernetes credentials may still work."""
    return f"{requester}'s Identity Center account (UserId {user_id}) {DISABLED}"


def approver_refusal(approver: str, problem: str, owner: str) -> str:
    """Admission's refusal of an approval whose approver has no enabled Identity Center account
    (`problem`, from `handlers.eligibility.approver_problem`): a leader who has left is disabled
    there, while their Kubernetes credentials and the TeamOwnership naming them may outlive it."""
    fix = (
        "ask your identity team to enable your account"
        if problem.endswith(DISABLED)
        else "ask your identity team to provision your Identity Center user under this user name"
    )
    return (
        f"{problem}, so {approver} may not approve: an approver's Identity Center account is checked as a "
        f"requester's is (someone who has left is disabled there); {fix}, or ask another approver of team "
        f"{owner or '(unknown)'} to decide"
    )


def approval_void(approver: str, problem: str) -> str:
    """Why an approval stopped counting when it was to be acted upon (a grant's creation, a scheduled
    start, an extension applied): its approver's Identity Center account is disabled or gone."""
    return (
        f"the approval by {approver} no longer counts: {problem} (an approver who has left approves nothing, "
        "an approval given before they left included)"
    )


class Route(Enum):
    AUTO_APPROVE = "AutoApprove"
    NEEDS_APPROVAL = "NeedsApproval"


def route(valid: ValidRequest) -> Route:
    """Members of the owner team get it at once when the entitlement says so; others wait."""
    if _auto_approved(valid):
        return Route.AUTO_APPROVE
    if not has_approvers(valid.team):
        # Refused at admission (which asks this of every new request), not left to time out.
        team = valid.team
        raise InvalidInput(
            f"TeamOwnership {valid.entitlement.spec.owner!r} spec.approvers",
            f"{'names nobody who may approve' if team.approvers or team.approver_groups else 'is empty'}, so nobody "
            "can approve this request: the team must name approvers" + approves_nothing_note(team),
        )
    short = _approvers_short(valid)
    if short is not None:
        raise InvalidInput(f"TeamOwnership {valid.entitlement.spec.owner!r} spec.approvers", short)
    return Route.NEEDS_APPROVAL


def _who_may_approve(team: TeamOwnershipSpec, excluding: Collection[str] = ()) -> list[str] | None:
    """The people who may approve (approvers and backups, less `excluding`); None when a group
    approves (its members are not known here). Names of Kubernetes' own, and names that read as
    someone else's, count for nobody (`teams.conferring`)."""
    if conferring(team.approver_groups, group=True) or conferring(team.backup_approver_groups, group=True):
        return None
    return sorted(
        (conferring(team.approvers, group=False) | conferring(team.backup_approvers, group=False)) - set(excluding)
    )


def _approvers_short(valid: ValidRequest) -> str | None:
    """Why a request can never get the approvals its Entitlement needs: fewer people may approve it
    (approvers and backups, never its requester) than `approvalsRequired`. Else it would wait until
    it times out. None when it can, and when a group approves; break-glass is approved by its
    requester and only reviewed."""
    needed = valid.entitlement.spec.approval.approvals_required
    people = None if valid.break_glass else _who_may_approve(valid.team, {valid.requester})
    if people is None or len(people) >= needed:
        return None
    return (
        f"names {len(people)} who may approve a request of {valid.requester} ({listed(people)}, backup "
        f"approvers included), and Entitlement {valid.entitlement.metadata.name} needs {needed} approvals "
        "(spec.approval.approvalsRequired): it could never be approved; the team must name more approvers, or the "
        "Entitlement need fewer" + approves_nothing_note(valid.team, backups=True)
    )


def approvals_unreachable(entitlement: Entitlement, team: TeamOwnershipSpec) -> str | None:
    """Why no request needing an approver can ever be approved: the owner team names fewer people
    who may approve than the Entitlement's `approvalsRequired` (its status says so, before anyone
    asks). None when it can, and when a group approves."""
    needed = entitlement.spec.approval.approvals_required
    people = _who_may_approve(team)
    if people is None or len(people) >= needed:
        return None
    return (
        f"spec.approval.approvalsRequired is {needed}, but team {entitlement.spec.owner} names {len(people)} who "
        f"may approve ({listed(people)}, backup approvers included): no request that needs an "
        "approver can be granted (only auto-approvals and break-glass); name more approvers in the team, or "
        "lower approvalsRequired" + approves_nothing_note(team, backups=True)
    )


@dataclass(frozen=True)
class Waiting:
    """A request of the same user that waits for a decision (`waiting_problem`)."""

    name: str
    entitlement: str
    #: It has a `spec.startTime`: access for a window of its own, not for now.
    scheduled: bool = False
    #: Its `creationTimestamp`; None while it is not stored yet.
    created: datetime | None = None


def waiting_problem(
    name: str, valid: ValidRequest, scheduled: bool, waiting: Sequence[Waiting], limits: Limits, now: datetime
) -> str | None:
    """Why a request that waits for an approver must not be added to what its requester already has
    waiting; None when it may.

    Approvers are asked once per need: a second request for the same access now only asks them
    again, and a user must not be able to bury them in requests until one is approved by mistake
    (approval fatigue, as a flood of MFA prompts gets one accepted). So there is at most one such
    request per entitlement for now (requests for windows of their own, `spec.startTime`, may be
    several), and at most `limits.max_pending_per_user` in all (0 turns both off). Auto-approved and break-glass
    requests wait for nobody, and the caller does not ask this of them. A request past its decision
    deadline waits no more (no decision can reach it), even before the operator's timer marks it.
    """
    most = limits.max_pending_per_user
    if not most:
        return None
    others = [w for w in waiting if w.name != name and not _past(decision_deadline(w.created, limits), now)]
    entitlement = valid.entitlement.metadata.name
    same = sorted(w.name for w in others if w.entitlement == entitlement and not w.scheduled)
    if same and not scheduled:
        return (
            f"spec.entitlement: your AccessRequest {same[0]} for {entitlement} already waits for a decision by "
            f"{approvers_text(valid.team, False)}, and a second request would only ask them again: wait for that "
            f"decision, or withdraw it (`kubectl jit withdraw {same[0]}`) and then ask again"
        )
    if len(others) >= most:
        return (
            f"you already have {len(others)} requests waiting for a decision ({', '.join(sorted(w.name for w in others))}), "
            f"the most one user may have waiting at once ({most}): wait for their decisions, or withdraw one you no "
            "longer need (`kubectl jit withdraw NAME`), then ask again"
        )
    return None


def creation_rate_problem(per_minute: int, wait: float, kind: str = "AccessRequest") -> str:
    """A user creating requests (or extensions: the same count) faster than the operator's limit:
    each new request asks Identity Center at admission, whose quota (per API, for the whole
    company) a script in a loop would otherwise take from everyone else's requests, and each new
    extension reads its grant and every extension from the API server."""
    return (
        f"you are creating {kind}s faster than the {per_minute} a minute one user may (AccessRequests and "
        "AccessExtensions together; each one is checked at admission with Identity Center or the API server, "
        f"which everyone's requests share): try again in {math.ceil(wait)} s"
    )


def asks_problem(per_hour: int, wait: float) -> str:
    """A user asking approvers more often than the operator's limit, withdrawn requests included:
    withdrawing each request and asking again would otherwise keep approvers' prompts coming."""
    return (
        f"you have asked approvers for access {per_hour} times within the last hour, the most one user may "
        "(withdrawn requests count too, so that approvers are not worn down into approving by mistake): ask "
        f"again in {format_duration(timedelta(seconds=math.ceil(wait)))}, or talk to an approver"
    )


def _past(deadline: datetime | None, now: datetime) -> bool:
    return deadline is not None and deadline <= now


def on_call_kubernetes_groups(valid: ValidRequest) -> list[str]:
    """The Entitlement's on-call Kubernetes groups (`approval.autoApproveGroups`) the requester was
    stamped with, sorted: each auto-approves them. Never a group of Kubernetes' own nor one that reads
    as another's (`teams.conferring`): `system:authenticated` stored before admission refused it would
    put every user on call."""
    return sorted(valid.requester_groups & conferring(valid.entitlement.spec.approval.auto_approve_groups, group=True))


def _auto_approved(valid: ValidRequest) -> bool:
    caller = Caller(valid.requester, valid.requester_groups)
    return valid.entitlement.spec.approval.auto_approve_owner_team and is_member(valid.team, caller)


class Outcome(Enum):
    APPROVE = "Approve"
    DENY = "Deny"
    ESCALATE = "Escalate"
    TIME_OUT = "TimeOut"
    IGNORE = "Ignore"  # an annotation that does not count, said in a Warning event
    COUNT = "Count"  # one approval of several (approvalsRequired) to record in status


@dataclass(frozen=True)
class PendingDecision:
    outcome: Outcome
    who: str = ""
    why: str = ""
    #: With COUNT: a stamped decision that does not count, to say in a Warning event as IGNORE does.
    ignored: PendingDecision | None = None


def decide_pending(
    request: AccessRequest,
    valid: ValidRequest,
    limits: Limits,
    now: datetime,
    *,
    responder_groups: frozenset[str] = frozenset(),
    gone: Mapping[str, str] = approval_rules.NOBODY_GONE,
) -> PendingDecision | None:
    """What happens to a pending request now; None when it keeps waiting.

    The time-out is looked at first: no approval found at or after `decision_deadline` counts, however
    late the deadline timer runs (admission refuses decisions from then too; `_at_deadline` says
    what a stamped one that reaches the operator late comes to). Then denial: when both
    annotations are somehow present, the safe outcome wins. A denial stamped with one of the
    `responder_groups` (incident responders, `JITACCESS_RESPONDER_GROUPS`) counts on any team's
    request; an approval needs an approver of the team, whoever stamped it. `gone`: approvers whose
    approval no longer counts for their Identity Center account (`approval_rules.count`).
    """
    deadline = decision_deadline(request.metadata.creation_timestamp, limits)
    if deadline is not None and now >= deadline:
        return _at_deadline(request, valid, limits, now, deadline, responder_groups)
    annotations: Mapping[str, str] = request.metadata.annotations
    escalation = escalation_of(request, valid)
    escalated = escalation.by(now)
    # An escalation recorded for another team (the Entitlement changed owner since) is not this
    # team's: its backup approvers are told when the request escalates under its own escalateAfter.
    recorded = escalation.recorded is not None
    reason = annotations.get(names.ANNOTATION_DECISION_REASON, "")
    ignored: PendingDecision | None = None
    for flag, by_key, groups_key, outcome in (
        (names.ANNOTATION_DENIED, names.ANNOTATION_DENIED_BY, names.ANNOTATION_DENIED_BY_GROUPS, Outcome.DENY),
        (names.ANNOTATION_APPROVED, names.ANNOTATION_APPROVED_BY, names.ANNOTATION_APPROVED_BY_GROUPS, Outcome.APPROVE),
    ):
        if not wire.truthy(annotations.get(flag)):
            continue
        who = annotations.get(by_key, "")
        if not who:
            ignored = ignored or PendingDecision(
                Outcome.IGNORE,
                why=f"{flag}=true carries no {by_key}: decisions are only taken when the admission "
                "webhook has recorded who made them",
            )
            continue
        groups = frozenset(g for g in annotations.get(groups_key, "").split(",") if g)
        caller = Caller(who, groups)
        refusal = may_approve(valid.team, caller, requester=valid.requester, escalated=escalated)
        if (
            refusal is None
            and not recorded
            and may_approve(valid.team, caller, requester=valid.requester, escalated=False) is not None
        ):
            # A backup approver's decision, which only the escalation lets count: the escalation is
            # recorded first (the backup approvers told, `Escalated` and its record written), and
            # the decision taken at the next look, so the trail says why a backup approver decided.
            due = _escalation_due(request, valid, now, recorded)
            if due is not None:
                return due
        if refusal is not None and outcome is Outcome.DENY and who != valid.requester and groups & responder_groups:
            refusal = None
        if refusal is None and outcome is Outcome.APPROVE:
            refusal = _approvals_short(request, valid, now, gone) or _completion_unstamped(request, valid, who)
        if refusal is not None:
            ignored = ignored or PendingDecision(Outcome.IGNORE, who=who, why=refusal)
            continue
        return PendingDecision(outcome, who=who, why=reason)
    counted = _newly_counted(request, valid, now, gone)
    if counted is not None:
        # Recorded first (status shows what counts now), the ignored decision said with it: an
        # ignored approval left out, another's count would carry the stale one's place.
        return PendingDecision(counted.outcome, who=counted.who, why=counted.why, ignored=ignored)
    return _escalation_due(request, valid, now, recorded) or ignored


def _at_deadline(
    request: AccessRequest,
    valid: ValidRequest,
    limits: Limits,
    now: datetime,
    deadline: datetime,
    responder_groups: frozenset[str],
) -> PendingDecision:
    """What a request still pending at its deadline comes to. Admission takes a decision up to the
    deadline by its own clock, and the operator may handle it a moment after (a hand-over between
    replicas, a slow handler): a denial stamped by someone who may deny it is honoured, with its
    reason (it grants nothing); an approval stamped so still times the request out, nothing
    granted, and the message says whose approval it was, when it reached the operator and what the
    deadline was, where "nobody decided" would belie the stamp beside it."""
    annotations: Mapping[str, str] = request.metadata.annotations
    denier = annotations.get(names.ANNOTATION_DENIED_BY, "")
    if wire.truthy(annotations.get(names.ANNOTATION_DENIED)) and denier:
        groups = frozenset(g for g in annotations.get(names.ANNOTATION_DENIED_BY_GROUPS, "").split(",") if g)
        escalated = cond.is_true(request.status.conditions, names.ESCALATED)
        refusal = may_approve(valid.team, Caller(denier, groups), requester=valid.requester, escalated=escalated)
        if refusal is None or (denier != valid.requester and groups & responder_groups):
            return PendingDecision(Outcome.DENY, who=denier, why=annotations.get(names.ANNOTATION_DECISION_REASON, ""))
    timeout = format_duration(limits.pending_timeout)
    approver = annotations.get(names.ANNOTATION_APPROVED_BY, "")
    if not wire.truthy(annotations.get(names.ANNOTATION_APPROVED)) or not approver:
        return PendingDecision(Outcome.TIME_OUT, why=f"nobody decided within {timeout}")
    return PendingDecision(
        Outcome.TIME_OUT,
        who=approver,
        why=f"the approval by {approver} reached the operator at {schedule.stamp(now)}, not before the request's "
        f"deadline {schedule.stamp(deadline)} ({timeout} after it was created): an approval counts only before it, "
        "so nothing was granted; ask the requester to create a new request",
    )


def approvals_counted(
    request: AccessRequest, valid: ValidRequest, now: datetime, gone: Mapping[str, str] = approval_rules.NOBODY_GONE
) -> approval_rules.Count:
    """The stamped approvals that count (`approval_rules.count`): a backup approver's only if the request
    had escalated (`Escalation`) when the operator counted it (`status.approvals`; not yet counted:
    now); none of the approvers `gone` from Identity Center."""
    return stamped_approvals_counted(
        approval_rules.given(request.metadata.annotations),
        valid.team,
        valid.requester,
        escalation=escalation_of(request, valid),
        times={a.by: a.time for a in request.status.approvals or []},
        now=now,
        gone=gone,
    )


def stamped_approvals_counted(
    given: Sequence[approval_rules.Given],
    team: TeamOwnershipSpec,
    requester: str,
    *,
    escalation: Escalation,
    times: Mapping[str, datetime],
    now: datetime,
    gone: Mapping[str, str] = approval_rules.NOBODY_GONE,
) -> approval_rules.Count:
    """`approvals_counted` from its parts: what the admission webhook counts too, against the same
    live team and the same `escalation`, before it stamps the approval that completes the count."""

    def escalated_at(by: str) -> bool:
        return escalation.by(approval_rules.approved_at(times, by, now))

    return approval_rules.count(given, team, requester, escalated_at, gone)


def _approvals_short(
    request: AccessRequest, valid: ValidRequest, now: datetime, gone: Mapping[str, str] = approval_rules.NOBODY_GONE
) -> str | None:
    """Why an approval does not complete the entitlement's approvalsRequired yet; None when it does."""
    needed = valid.entitlement.spec.approval.approvals_required
    if needed <= 1:
        return None
    counted = approvals_counted(request, valid, now, gone)
    if len(counted.counted) >= needed:
        return None
    return (
        f"approvalsRequired is {needed}, and only {len(counted.counted)} approval(s) stamped by the admission "
        f"webhook count ({', '.join(counted.counted) or 'none'}"
        + (f"; not counted: {'; '.join(counted.rejected)}" if counted.rejected else "")
        + ")"
    )


def _completion_unstamped(request: AccessRequest, valid: ValidRequest, who: str) -> str | None:
    """With approvalsRequired N > 1: why `who`'s stamped `approved-by` is not the approval that
    completed the list (`approval_rules.completed_by`); None when it is."""
    if valid.entitlement.spec.approval.approvals_required <= 1:
        return None
    return approval_rules.completed_by(approval_rules.given(request.metadata.annotations), who)


def _newly_counted(
    request: AccessRequest, valid: ValidRequest, now: datetime, gone: Mapping[str, str]
) -> PendingDecision | None:
    """An approval of several that status does not list yet, or one it lists that no longer counts
    (its approver left the team, or is `gone` from Identity Center): status is rewritten to what
    counts now."""
    if valid.entitlement.spec.approval.approvals_required <= 1:
        return None
    recorded = {a.by for a in request.status.approvals or []}
    counted = approvals_counted(request, valid, now, gone).counted
    new = [by for by in counted if by not in recorded]
    return PendingDecision(Outcome.COUNT, who=", ".join(new)) if new or recorded - set(counted) else None


def _escalation_due(
    request: AccessRequest, valid: ValidRequest, now: datetime, recorded: bool
) -> PendingDecision | None:
    """The escalation to record (its `Escalated` condition and `escalationTeam`, the backup
    approvers told), once the request has been pending for the team's `escalateAfter`; None once
    `recorded` for the live owner team (`escalated_for`)."""
    created = request.metadata.creation_timestamp or now
    if not recorded and valid.team.escalate_after:
        after = parse_duration(
            valid.team.escalate_after, f"TeamOwnership {valid.entitlement.spec.owner!r} spec.escalateAfter"
        )
        if now - created >= after:
            return PendingDecision(Outcome.ESCALATE, why=f"pending for more than {format_duration(after)}")
    return None


def decision_deadline(created: datetime | None, limits: Limits) -> datetime | None:
    """When a request created at `created` times out if nobody decides: creation plus the pending
    timeout, whether or not it escalates. A fact of the request, not of the timer that notices it:
    no decision at or after it counts. None for a request not stored yet (no creationTimestamp)."""
    return None if created is None else created + limits.pending_timeout


def pending_deadline(created: datetime, escalated: bool, escalate_after: str | None, limits: Limits) -> datetime:
    """The next escalation or time-out of a request pending since `created`."""
    deadlines = [created + limits.pending_timeout]
    if escalate_after and not escalated:
        deadlines.append(created + parse_duration(escalate_after, "spec.escalateAfter"))
    return min(deadlines)


@dataclass(frozen=True)
class Escalation:
    """When a pending request counts as escalated, so that its backup approvers may decide: from
    when the operator recorded its escalation (`recorded`: `Escalated` True, its lastTransitionTime),
    or from when it had been pending for the owner team's `escalateAfter` as it is now (`due`),
    whichever comes first.

    One rule for every side: admission, as a decision is written; the operator, deciding on a
    pending request and counting several approvals; and `grant_basis`, before access begins. A
    recorded escalation stands: the backup approvers were told to act (the request's `Ready` names
    them, Slack messages each), so a later change of `escalateAfter`, lengthened or removed, applies
    to the requests that have not escalated yet and takes no escalation back. A shortened one counts
    at once, on every side, before the operator's timer records it.

    `Escalated` is status, which only the operator's identity writes (users are refused: attack 7);
    written by hand there, it lets the backup approvers the live team names decide early, each as
    themselves, and grants nothing without one of them (docs/security.md, the operator's identity)."""

    recorded: datetime | None = None
    due: datetime | None = None

    def by(self, at: datetime) -> bool:
        """Whether the request had escalated at `at`."""
        return (self.recorded is not None and self.recorded <= at) or (self.due is not None and at >= self.due)


#: The escalation of what never escalates (an AccessExtension: backup approvers do not decide on it).
NEVER_ESCALATES = Escalation()


def escalation(
    created: datetime | None, escalate_after: str | None, owner: str, recorded: datetime | None
) -> Escalation:
    """The `Escalation` of a request created at `created`, under team `owner`'s live `escalateAfter`,
    whose escalation the operator recorded at `recorded` (None: not recorded)."""
    after = parse_duration(escalate_after, f"TeamOwnership {owner!r} spec.escalateAfter") if escalate_after else None
    due = created + after if created is not None and after is not None else None
    return Escalation(recorded=recorded, due=due)


def escalated_for(escalation_team: str | None, owner_team: str | None, owner: str) -> bool:
    """Whether a recorded escalation (`Escalated` True) was recorded for team `owner`, the
    Entitlement's owner now: `status.escalationTeam`, else (a request escalated by a version before
    the field) `status.ownerTeam`, else (older still) taken as the live owner's. An Entitlement
    handed to another team after its request escalated (a pull request changing its `owner`) leaves
    the old team's escalation behind: the new team's backup approvers were never told, and may
    decide only once the request escalates under the new team's own `escalateAfter`."""
    team = escalation_team or owner_team
    return not team or team == owner


def escalation_of(request: AccessRequest, valid: ValidRequest) -> Escalation:
    """The `Escalation` of a parsed request, against its live owner team (`escalated_for`)."""
    found = cond.find(request.status.conditions, names.ESCALATED)
    owner = valid.entitlement.spec.owner
    status = request.status
    recorded = (
        found.last_transition_time
        if found is not None
        and found.status == "True"
        and escalated_for(status.escalation_team, status.owner_team, owner)
        else None
    )
    created = request.metadata.creation_timestamp
    return escalation(created, valid.team.escalate_after, owner, recorded)


def escalation_of_stored(request: Mapping[str, Any], escalate_after: str | None, owner: str) -> Escalation:
    """The `Escalation` of a request as admission sees it (the stored object), against the live
    owner team `owner` and its `escalate_after` (`escalated_for`). An `Escalated` condition without
    a readable time counts from always: the operator wrote it, and its time only orders it before
    the approvals it counts."""
    found = wire.condition(request, names.ESCALATED)
    status = wire.status(request)
    recorded: datetime | None = None
    team, first = status.get("escalationTeam"), status.get("ownerTeam")
    if found is not None and found.get("status") == "True" and escalated_for(team, first, owner):
        recorded = _stored_time(found.get("lastTransitionTime")) or datetime.min.replace(tzinfo=UTC)
    return escalation(wire.created_at(request), escalate_after, owner, recorded)


def _stored_time(stamp: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp) if isinstance(stamp, str) and stamp else None
    except ValueError:
        return None


def approvers_text(team: TeamOwnershipSpec, escalated: bool, excluding: Collection[str] = ()) -> str:
    """Who can act on a pending request, for messages and the CLI; `excluding` are people who cannot
    (its requester, who already approved): a message naming them sends the requester to the wrong
    person, and so would a name of Kubernetes' own or one that reads as someone else's, which
    approves nothing (`teams.conferring`). Groups are named whole (whoever of them may). Ten
    names at most, the rest counted (`text.listed`): the message goes into the request's status."""

    def people(field: list[str]) -> list[str]:
        return [a for a in field if a not in excluding and not confers_nothing(a, group=False)]

    def groups(field: list[str]) -> list[str]:
        return [f"group:{g}" for g in field if not confers_nothing(g, group=True)]

    names = people(team.approvers) + groups(team.approver_groups)
    backups = people(team.backup_approvers) + groups(team.backup_approver_groups)
    if escalated:
        names += backups
    elif not names and backups:
        return f"nobody before the escalation, then {listed(backups)}"
    return listed(names)


# --- what a grant rests on ----------------------------------------------------------------------


@dataclass(frozen=True)
class Basis:
    """The approval a grant rests on: an owner-team member's auto-approval, or `who`'s stamped one."""

    auto: bool
    who: str


@dataclass(frozen=True)
class NoGrant:
    """Why a request that looks approved must not be granted: its `Ready` reason and message, and
    who ended it when someone did (a cancel's `revoked-by`; else the operator's own finding)."""

    reason: str
    message: str
    who: str = ""


def cancelled(request: AccessRequest) -> NoGrant | None:
    """An approved request cancelled before its access began (`jitaccess.dev/revoked=true`, which
    the admission webhook takes on a `Scheduled` request only and stamps `revoked-by`): it ends
    `Revoked`, never granted, its records naming who and why. None when nobody cancelled it (an
    unstamped flag, which admission never lets through, cancels nothing)."""
    annotations: Mapping[str, str] = request.metadata.annotations
    who = annotations.get(names.ANNOTATION_REVOKED_BY, "")
    if not wire.truthy(annotations.get(names.ANNOTATION_REVOKED)) or not who:
        return None
    why = annotations.get(names.ANNOTATION_REVOKE_REASON, "")
    return NoGrant(
        names.REVOKED, f"revoked by {who} before its start" + (f": {why}" if why else "") + "; nothing was granted", who
    )


def cancelled_late_reason(request: AccessRequest) -> str:
    """The `revoke-reason` the operator writes on the grant of a request cancelled as its start
    made that grant (`handlers.requests._end_grant_cancelled_late`): it names the canceller and
    their reason. The grant's handler takes the canceller for the revoker only when the grant says
    exactly this (`handlers.grants._canceller`), never for the operator's other revocations (its
    request deleted), which carry the same `revoked-by`. "" when nobody cancelled the request."""
    cancel = cancelled(request)
    if cancel is None:
        return ""
    why = request.metadata.annotations.get(names.ANNOTATION_REVOKE_REASON, "")
    return f"its AccessRequest was revoked by {cancel.who} before its start" + (f": {why}" if why else "")


def grant_basis(
    request: AccessRequest,
    valid: ValidRequest,
    limits: Limits,
    now: datetime,
    on_call: Callable[[], bool] | None = None,
    gone: Mapping[str, str] = approval_rules.NOBODY_GONE,
) -> Basis | NoGrant:
    """Re-derive, right before a grant is created, that the request may be granted at all.

    From what admission stamped (`approved-by` and `approved-by-groups`, which nobody can write by
    hand, the operator included), the live TeamOwnership and the request's own deadlines; or from
    the auto-approval of an owner-team member (`spec.requester`/`requesterGroups`, also stamped).
    `status` (Approved=True, approvedBy) is the operator's record and decides nothing here, so an
    identity that can write status cannot grant with it.

    The approval counts as taken when the operator recorded it (`Approved`'s lastTransitionTime),
    never later than `now`: before the request's time-out, and by a backup approver only once the
    request had escalated (`Escalation`: as admission and `decide_pending` judge it, the escalation
    the operator recorded included, so that what admission let a backup approver decide is granted).

    A break-glass request rests on its own rules (`ValidRequest.break_glass`: checked again by
    `validate`; the rate limit when it was approved), and an on-call requester's on `on_call`,
    asked live (the requester still in an on-call group). Of several approvals, none by an approver
    `gone` from Identity Center counts (`approval_rules.count`).
    """
    annotations: Mapping[str, str] = request.metadata.annotations
    denier = annotations.get(names.ANNOTATION_DENIED_BY, "")
    if wire.truthy(annotations.get(names.ANNOTATION_DENIED)) and denier:
        return NoGrant(names.DENIED, f"denied by {denier} ({names.ANNOTATION_DENIED_BY}): nothing is granted")
    revoked = cancelled(request)
    if revoked is not None:
        return revoked
    stamped = _stamped_approval(request, valid, limits, min(_approved_at(request) or now, now))
    if isinstance(stamped, Basis):
        return _all_approvals(request, valid, limits, now, gone) or stamped
    if valid.break_glass or _auto_approved(valid) or (on_call is not None and on_call()):
        return Basis(auto=True, who=valid.requester)
    return stamped


def gives(entitlement: Entitlement) -> str:
    """What an Entitlement gives, in words: its group (id before name), or its permission set and
    accounts. Recorded with an approval (`status.approvedFor`) and compared before access begins."""
    target = entitlement.spec.identity_center
    accounts = target.account_assignment.accounts if target.account_assignment is not None else None
    return assignment_rules.target_name(target) + (f" in accounts {', '.join(accounts)}" if accounts else "")


def changed_since_approval(request: AccessRequest, entitlement: Entitlement) -> NoGrant | None:
    """Why an approved request must not be granted because its Entitlement no longer gives what the
    approval was for (`status.approvedFor`): a `spec.startTime` lets an approval wait up to days,
    and meanwhile the Entitlement may be changed (or deleted and created again under its name) to
    give another group or permission set, which nobody approved for this request. None when it still
    gives the same, or when nothing was recorded (an approval from before the record)."""
    was = request.status.approved_for
    now_gives = gives(entitlement)
    if not was or was == now_gives:
        return None
    return NoGrant(
        names.FAILED,
        f"not granted: Entitlement {entitlement.metadata.name} changed since the request was approved: it was "
        f"approved for {was}, and the Entitlement now gives {now_gives}, which nobody approved for it; "
        f"request access again (kubectl jit request {entitlement.metadata.name})",
    )


def approved_window(request: AccessRequest, duration: timedelta, now: datetime) -> schedule.Window | None:
    """The window a request with a `spec.startTime` was approved for (`schedule.approved_window`):
    from its start, or from its approval when that came later (`Approved`'s lastTransitionTime,
    never later than `now`: a date to come cannot push the window on), for `duration`. None for a
    request without a start."""
    approved = _approved_at(request)
    return schedule.approved_window(request.spec.start_time, min(approved, now) if approved else None, duration)


def window_passed(request: AccessRequest, duration: timedelta, now: datetime) -> NoGrant | None:
    """Why a request with a start is not granted at `now`: the window it was approved for has wholly
    passed (the operator was down across it, or the cluster was restored from a backup taken while
    the request waited); None while some of it is left, and for a request without a start."""
    window = approved_window(request, duration, now)
    if window is None or now < window.ends:
        return None
    return NoGrant(names.FAILED, schedule.window_passed_message(window))


def _all_approvals(
    request: AccessRequest, valid: ValidRequest, limits: Limits, now: datetime, gone: Mapping[str, str]
) -> NoGrant | None:
    """With approvalsRequired N > 1: N distinct approvers, each allowed to approve when counted and
    counted before the request's deadline, the stamped `approved-by` among them."""
    needed = valid.entitlement.spec.approval.approvals_required
    if needed <= 1:
        return None
    short = _approvals_short(request, valid, now, gone) or _completion_unstamped(
        request, valid, request.metadata.annotations.get(names.ANNOTATION_APPROVED_BY, "")
    )
    if short is not None:
        return NoGrant(names.FAILED, f"not granted: {short}")
    deadline = decision_deadline(request.metadata.creation_timestamp, limits)
    times = {a.by: a.time for a in request.status.approvals or []}
    late = [
        by
        for by in approvals_counted(request, valid, now, gone).counted
        if deadline and approval_rules.approved_at(times, by, now) >= deadline
    ]
    if late:
        return NoGrant(
            names.TIMED_OUT, f"timed out: the approval(s) of {', '.join(late)} came at or after the deadline"
        )
    return None


def _approved_at(request: AccessRequest) -> datetime | None:
    found = cond.find(request.status.conditions, names.APPROVED)
    return found.last_transition_time if found is not None and found.status == "True" else None


def _stamped_approval(request: AccessRequest, valid: ValidRequest, limits: Limits, at: datetime) -> Basis | NoGrant:
    annotations: Mapping[str, str] = request.metadata.annotations
    who = annotations.get(names.ANNOTATION_APPROVED_BY, "")
    owner = valid.entitlement.spec.owner
    if not wire.truthy(annotations.get(names.ANNOTATION_APPROVED)) or not who:
        return NoGrant(
            names.FAILED,
            f"status says Approved, but no approval stamped by the admission webhook backs it "
            f"({names.ANNOTATION_APPROVED}=true with {names.ANNOTATION_APPROVED_BY}), and {valid.requester} is not "
            f"auto-approved as a member of team {owner}: nothing is granted. Status is the operator's record, "
            "not an approval; an approver of the team must approve a new request",
        )
    deadline = decision_deadline(request.metadata.creation_timestamp, limits)
    if deadline is not None and at >= deadline:
        return NoGrant(
            names.TIMED_OUT,
            f"timed out: the approval by {who} was taken at {at.isoformat()}, not before the request's deadline "
            f"{deadline.isoformat()} ({format_duration(limits.pending_timeout)} after it was created); "
            "ask the requester to create a new request",
        )
    escalated = escalation_of(request, valid).by(at)
    groups = frozenset(g for g in annotations.get(names.ANNOTATION_APPROVED_BY_GROUPS, "").split(",") if g)
    refusal = may_approve(valid.team, Caller(who, groups), requester=valid.requester, escalated=escalated)
    if refusal is not None:
        return NoGrant(names.FAILED, f"the approval stamped for {who} does not count ({refusal}): nothing is granted")
    recorded = request.status.approved_by
    if recorded and recorded != who:
        return NoGrant(
            names.FAILED,
            f"status.approvedBy says {recorded}, but the admission webhook stamped {who} "
            f"({names.ANNOTATION_APPROVED_BY}): status was written by someone else; nothing is granted",
        )
    return Basis(auto=False, who=who)

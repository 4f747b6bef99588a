"""The rules of an AccessExtension: more time for one Active grant, asked by its grantee.

An extension is an object of its own (the request stays as it was asked, and each extension is
its own record): `spec.grant`, `spec.duration` (the time added) and `spec.reason`, the requester
stamped at admission. It follows the grant's Entitlement as a request does, decided by the team
that owned the Entitlement when the grant was made (the grant's `spec.ownerTeam`, whose approvers
may also revoke it): a member of that team gets it at once when the Entitlement auto-approves the
team, anyone else waits for the Entitlement's `approvalsRequired` approvers of that team
(`jitaccess.dev/approved=true` or `denied=true`, stamped and listed as on a request; never the
requester), counted again by the operator against the live TeamOwnership before it applies.
A grant whose group (or permission set) is no longer the Entitlement's is not extended: the
Entitlement changed since it was granted. An incident responder (`JITACCESS_RESPONDER_GROUPS`) may deny one of any team, with a
reason, as they may a request, and never approve it. Two caps hold, at admission and again when the operator applies it:

- the whole grant, activation to its new end, stays within the Entitlement's `maxDuration`;
- a grant is extended at most `maxExtensions` times (0: never).

At admission the extensions still waiting for the same grant count against both caps, as if
applied; the operator, which applies them one at a time, counts what the grant records. The grant's
`status.expirationTime` only ever moves forward, and an extension still waiting when its grant
ends fails: the grant ended as usual.

Pure functions of the objects as stored; `handlers.extensions` and `handlers.extension_admission`
do the reading and writing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from jitaccess.api import names, wire
from jitaccess.api.models import (
    AccessExtension,
    AccessGrant,
    AccountAssignmentTarget,
    Entitlement,
    GrantExtension,
    TeamOwnershipSpec,
)
from jitaccess.domain import admission, reasons, standing
from jitaccess.domain import approvals as approval_rules
from jitaccess.domain import assignments as assignment_rules
from jitaccess.domain import conditions as cond
from jitaccess.domain import requests as request_rules
from jitaccess.domain.admission import ALLOW, INVALID, Admit, OperatorIdentity, Phase, Refusal, Verdict
from jitaccess.domain.durations import format_duration, parse_duration
from jitaccess.domain.teams import Caller, approves_nothing_note, has_approvers, is_approver, is_member, may_approve
from jitaccess.errors import InvalidInput

Obj = Mapping[str, Any]
#: An extension is applied only while this much of the grant is left: closer to its end, the
#: expiry (which removes the membership first) might already be under way.
MARGIN = timedelta(seconds=2)
#: Who approved an owner-team member's own extension, in `status.extensions[].approvedBy`.
AUTO = "auto"


@dataclass(frozen=True)
class Waiting:
    """Another extension of the same grant that has not finished: it counts against the caps."""

    name: str
    duration: timedelta


def grant_end(grant: AccessGrant) -> tuple[datetime, datetime] | None:
    """An Active grant's activation and expiration times; None for any other grant."""
    status = grant.status
    if cond.ready_reason(status.conditions) != names.ACTIVE:
        return None
    if status.activation_time is None or status.expiration_time is None:
        return None
    return status.activation_time, status.expiration_time


def applied(grant: AccessGrant) -> int:
    return len(grant.status.extensions or [])


def cap_problem(
    grant: AccessGrant,
    entitlement: Entitlement,
    by: timedelta,
    waiting: Sequence[Waiting] = (),
) -> str | None:
    """Why adding `by` (after the `waiting` ones) would break a cap, naming the numbers and the fix;
    None when it fits. The grant must be Active (`grant_end`)."""
    ent = entitlement.metadata.name
    window = grant_end(grant)
    if window is None:
        return f"AccessGrant {grant.metadata.name} is not Active"
    activated, expires = window
    most = entitlement.spec.max_extensions
    done = applied(grant)
    if most == 0:
        return (
            f"spec.grant: Entitlement {ent} allows no extensions (maxExtensions 0): "
            f"request access again when this grant ends (kubectl jit request {ent})"
        )
    if done + len(waiting) + 1 > most:
        queued = f" and {len(waiting)} more wait{'s' if len(waiting) == 1 else ''}" if waiting else ""
        return (
            f"spec.grant: AccessGrant {grant.metadata.name} has been extended {done} time(s){queued}, and "
            f"Entitlement {ent} allows maxExtensions {most}: request access again when it ends "
            f"(kubectl jit request {ent})"
        )
    maximum = parse_duration(entitlement.spec.max_duration, f"Entitlement {ent!r} spec.maxDuration")
    reserved = sum((w.duration for w in waiting), timedelta())
    total = expires + reserved + by - activated
    if total > maximum:
        room = maximum - (expires + reserved - activated)
        fix = (
            f"extend by at most {format_duration(room)}"
            if room.total_seconds() >= 1
            else "it cannot be extended any more; request access again when it ends"
        )
        queued = f" (and {format_duration(reserved)} already asked for)" if waiting else ""
        return (
            f"spec.duration: {format_duration(by)} more{queued} would make AccessGrant {grant.metadata.name} last "
            f"{format_duration(total)} from its activation at {_stamp(activated)}, above Entitlement {ent}'s "
            f"maxDuration {format_duration(maximum)}: {fix}"
        )
    return None


def owner_of(grant: AccessGrant, entitlement: Entitlement | None) -> str:
    """The team that decides the grant's extensions: the one it recorded when it was made
    (`spec.ownerTeam`, as for its revocation), or, for a grant from before grants recorded it, the
    Entitlement's owner."""
    return grant.spec.owner_team or (entitlement.spec.owner if entitlement is not None else "")


def as_decided(entitlement: Entitlement, owner: str) -> Entitlement:
    """The Entitlement as the request's decision rules read it for an extension: owned by `owner`,
    the grant's team (the rules name the team from `spec.owner`)."""
    if entitlement.spec.owner == owner:
        return entitlement
    return entitlement.model_copy(update={"spec": entitlement.spec.model_copy(update={"owner": owner})})


def target_problem(grant: AccessGrant, entitlement: Entitlement) -> str | None:
    """Why a grant cannot be extended because the Entitlement no longer gives what the grant holds
    (another group, permission set or accounts since the grant was made); None when it still does.
    More time is new access to what the Entitlement gives now, which only a new request decides."""
    target = entitlement.spec.identity_center
    now_gives = assignment_rules.target_name(target)
    if grant.spec.group_name == now_gives and grant.spec.account_assignment == target.account_assignment:
        return None
    if target.account_assignment is None and grant.spec.account_assignment is None:
        # The same group, spelled otherwise now (its id given beside the name it had): still what it
        # gives. Only the spellings of the group it gives count: with a `groupId`, that id alone (it
        # takes precedence, so a `groupName` beside it may name another group, the one the grants
        # made before hold); else the name and the id it resolved to, which counts only as resolved
        # for this spec: a group that does not resolve (a typo) leaves the previous group's id in status.
        resolved = cond.find(entitlement.status.conditions, names.READY)
        current = (
            resolved is not None
            and resolved.reason != names.GROUP_NOT_FOUND
            and resolved.observed_generation == entitlement.metadata.generation
        )
        spellings = (
            {target.group_id}
            if target.group_id
            else {target.group_name, entitlement.status.group_id if current else None} - {None, ""}
        )
        if grant.spec.group_name in spellings or (grant.status.group_id or None) in spellings:
            return None
    what = "permission set" if target.account_assignment is not None or grant.spec.account_assignment else "group"
    held = grant.spec.group_name + _accounts(grant.spec.account_assignment)
    return (
        f"spec.grant: Entitlement {entitlement.metadata.name} changed since AccessGrant {grant.metadata.name} was "
        f"granted: it now gives {what} {now_gives + _accounts(target.account_assignment)}, and the grant holds "
        f"{held}, so it cannot be extended; request access again (kubectl jit request {entitlement.metadata.name})"
    )


def unextended(grant: AccessGrant, entitlement: Entitlement) -> str | None:
    """Why a grant cannot be extended for what its Entitlement is now: it gives another group or
    permission set (`target_problem`), or it was stored giving access its owner team does not own
    and is granted to nobody (`standing.refused_grants`: its grants already running run out, and
    more time is more of that access). None when neither."""
    changed = target_problem(grant, entitlement)
    if changed is not None:
        return changed
    given_away = standing.refused_grants(entitlement)
    if given_away is None:
        return None
    return (
        f"spec.grant: Entitlement {entitlement.metadata.name} of AccessGrant {grant.metadata.name} is "
        f"{names.POLICY_REFUSED}: {given_away}, so the grant cannot be extended; ask its owners (team "
        f"{entitlement.spec.owner}) to fix it, then request access again"
    )


def _accounts(target: AccountAssignmentTarget | None) -> str:
    return f" in accounts {', '.join(target.accounts)}" if target is not None else ""


def duration_of(extension: AccessExtension, limits: request_rules.Limits) -> timedelta:
    """The time an extension adds; `InvalidInput` below the operator's minimum duration."""
    by = parse_duration(extension.spec.duration, "spec.duration")
    if by < limits.min_duration:
        raise InvalidInput(
            "spec.duration",
            f"{format_duration(by)} is below the operator's minimum {format_duration(limits.min_duration)}",
        )
    return by


def reason_problem(reason: str, entitlement: Entitlement) -> str | None:
    """An extension's reason matches the Entitlement's `reasonPattern`, as a request's must."""
    pattern = entitlement.spec.reason_pattern
    if not pattern:
        return None
    try:
        if reasons.search(pattern, reason):
            return None
    except reasons.PatternError:
        # Refused, as a request would be: no extension rests on a reason nobody could check.
        return (
            f"Entitlement {entitlement.metadata.name}'s spec.reasonPattern {pattern!r} "
            f"{reasons.pattern_problem(pattern)}: the entitlement's owners must fix it"
        )
    return f"spec.reason: {reason!r} does not match Entitlement {entitlement.metadata.name}'s reasonPattern {pattern!r}: cite a ticket"


# --- the operator's decision ------------------------------------------------------------------


class Step(Enum):
    WAIT = "Wait"  # for approvers (Pending, with the approvals counted so far)
    APPLY = "Apply"
    DENY = "Deny"
    FAIL = "Fail"
    IGNORE = "Ignore"  # a decision that does not count, said in a Warning Event (and still Pending)


@dataclass(frozen=True)
class Next:
    step: Step
    message: str = ""
    who: str = ""
    auto: bool = False
    why: str = ""
    #: While it waits (WAIT, IGNORE): the Pending message, and the approvals that count so far of
    #: the `needed` (the Entitlement's approvalsRequired), as `status.approvals` records them.
    waiting: str = ""
    counted: tuple[str, ...] = ()
    needed: int = 1


def approvals_counted(
    extension: AccessExtension, team: TeamOwnershipSpec, gone: Mapping[str, str] = approval_rules.NOBODY_GONE
) -> approval_rules.Count:
    """The stamped approvals (`jitaccess.dev/approvals`) that count against the live team: distinct
    approvers of it, never the requester, none by an approver `gone` from Identity Center (disabled
    or deleted since, with why: `handlers.eligibility.approvers_gone`), as for a request. An
    extension never escalates: backup approvers do not count."""
    return approval_rules.count(
        approval_rules.given(extension.metadata.annotations),
        team,
        extension.spec.requester or "",
        lambda _by: False,
        gone,
    )


def next_step(
    extension: AccessExtension,
    grant: AccessGrant | None,
    entitlement: Entitlement | None,
    team: TeamOwnershipSpec | None,
    limits: request_rules.Limits,
    *,
    responder_groups: frozenset[str] = frozenset(),
    gone: Mapping[str, str] = approval_rules.NOBODY_GONE,
) -> Next:
    """What the operator does with an unfinished extension, from the objects as stored. `team` is the
    grant's recorded owner team (`owner_of`), None when it no longer exists. `gone`: the approvers
    listed whose Identity Center account is disabled or deleted, with why (asked by the handler):
    their approvals no longer count, and the extension waits for another approver.

    The approval is re-derived every time from what admission stamped and the live TeamOwnership
    (as a grant's basis is: `requests.grant_basis`), never from `status`: with approvalsRequired N,
    N distinct approvers of the team who count now (`approvals_counted`), not the list's length. A
    denial stamped with one of the `responder_groups` (incident responders) counts on any team's
    extension, as on a request (`requests.decide_pending`); an approval needs an approver of the
    team, whoever stamped it.
    """
    spec = extension.spec
    requester = spec.requester or ""
    if grant is None:
        return Next(Step.FAIL, f"AccessGrant {spec.grant} does not exist (any more): nothing was extended")
    other = replaced(extension, grant)
    if other is not None:
        return Next(Step.FAIL, f"{other}; nothing was extended")
    reason = cond.ready_reason(grant.status.conditions)
    if reason != names.ACTIVE:
        state = reason or names.PROVISIONING
        return Next(
            Step.FAIL,
            f"AccessGrant {spec.grant} is {state}, not Active: nothing was extended"
            + (" (it ended as usual while the extension waited)" if reason in names.GRANT_FINISHED else ""),
        )
    if not requester or requester != grant.spec.user:
        return Next(
            Step.FAIL,
            f"spec.requester {requester or '(not stamped)'} is not the grantee {grant.spec.user} of AccessGrant "
            f"{spec.grant}: only the grantee extends a grant; nothing was extended",
        )
    if entitlement is None:
        return Next(
            Step.FAIL,
            f"Entitlement {grant.spec.entitlement!r} no longer exists: there is nothing to check the extension "
            "against; nothing was extended",
        )
    owner = owner_of(grant, entitlement)
    if team is None:
        return Next(Step.FAIL, f"{team_gone(grant, owner)}; nothing was extended")
    changed = unextended(grant, entitlement)
    if changed is not None:
        return Next(Step.FAIL, f"{changed}; nothing was extended")
    try:
        duration_of(extension, limits)
    except InvalidInput as exc:
        return Next(Step.FAIL, f"{exc}; nothing was extended")
    annotations = extension.metadata.annotations
    why = annotations.get(names.ANNOTATION_DECISION_REASON, "")
    ignored: Next | None = None
    if wire.truthy(annotations.get(names.ANNOTATION_DENIED)):
        denier = _stamped(
            team,
            annotations,
            names.ANNOTATION_DENIED_BY,
            names.ANNOTATION_DENIED_BY_GROUPS,
            requester,
            responder_groups=responder_groups,
        )
        if isinstance(denier, str):
            return Next(Step.DENY, who=denier, why=why)
        ignored = denier
    if entitlement.spec.approval.auto_approve_owner_team and is_member(
        team, Caller(requester, frozenset(spec.requester_groups))
    ):
        return Next(Step.APPLY, who=requester, auto=True)
    needed = entitlement.spec.approval.approvals_required
    count = approvals_counted(extension, team, gone) if needed > 1 else approval_rules.Count((), ())
    if wire.truthy(annotations.get(names.ANNOTATION_APPROVED)):
        approver = _stamped(
            team, annotations, names.ANNOTATION_APPROVED_BY, names.ANNOTATION_APPROVED_BY_GROUPS, requester
        )
        short = _short(count, needed) if isinstance(approver, str) else None
        if isinstance(approver, str) and short is None:
            return Next(Step.APPLY, who=approver, why=why, counted=count.counted, needed=needed)
        if isinstance(approver, str):
            approver = Next(
                Step.IGNORE,
                f"the approval stamped for {approver} does not complete the extension ({short}): nothing is "
                "extended on it",
                who=approver,
            )
        ignored = ignored or approver
    if not has_approvers(team):
        return Next(
            Step.FAIL,
            f"TeamOwnership {owner} names no approvers, so nobody can approve this extension; nothing was extended"
            + approves_nothing_note(team),
        )
    waiting = _waiting(extension, owner, team, count, needed, gone)
    if ignored is not None:
        return replace(ignored, waiting=waiting, counted=count.counted, needed=needed)
    return Next(Step.WAIT, waiting, waiting=waiting, counted=count.counted, needed=needed)


def replaced(extension: AccessExtension, grant: AccessGrant) -> str | None:
    """Why `grant`, found under the extension's `spec.grant`, is not the grant it was asked for; None
    when it is. A grant's name is its request's, which may be used again once that request and its
    grant are deleted: a new request of the same name, granted while the extension waited (a
    missed watch event, an approval days later), must be neither judged nor extended in its place.
    The grant is the one whose uid the operator recorded when it first took the extension up
    (`status.grantUid`); before that, one created after the extension cannot be it, as admission
    admits an extension only for a grant that exists (`creationTimestamp`, whole seconds)."""
    recorded, uid, name = extension.status.grant_uid, grant.metadata.uid, grant.metadata.name
    created, asked = grant.metadata.creation_timestamp, extension.metadata.creation_timestamp
    if recorded and uid and recorded != uid:
        why = f"it was asked for the AccessGrant of uid {recorded}, and the one of that name now is uid {uid}"
    elif not recorded and created is not None and asked is not None and created > asked:
        why = f"it was asked at {_stamp(asked)}, and the one of that name now was created later, at {_stamp(created)}"
    else:
        return None
    return (
        f"spec.grant: AccessGrant {name} was deleted and another was created under its name since this extension "
        f"was asked ({why}), so it is not the grant this extension is for; extend the grant of that name with an "
        f"extension of its own if it is yours (kubectl jit extend {name} --by {extension.spec.duration} --reason '...')"
    )


def team_gone(grant: AccessGrant, owner: str) -> str:
    """Why a grant whose recorded owner team is gone is not extended, with the way out."""
    ent = grant.spec.entitlement
    return (
        f"spec.grant: TeamOwnership {owner or '(none)'}, which owned Entitlement {ent} when AccessGrant "
        f"{grant.metadata.name} was granted (its spec.ownerTeam) and decides its extensions, no longer exists: "
        f"nobody may approve an extension of it; request access again (kubectl jit request {ent})"
    )


def _short(count: approval_rules.Count, needed: int) -> str | None:
    """Why the approvals that count do not reach approvalsRequired; None when they do."""
    if needed <= 1 or len(count.counted) >= needed:
        return None
    return (
        f"approvalsRequired is {needed}, and only {len(count.counted)} approval(s) stamped by the admission webhook "
        f"count now ({', '.join(count.counted) or 'none'}"
        + (f"; not counted: {'; '.join(count.rejected)}" if count.rejected else "")
        + ")"
    )


def _waiting(
    extension: AccessExtension,
    owner: str,
    team: TeamOwnershipSpec,
    count: approval_rules.Count,
    needed: int,
    gone: Mapping[str, str] = approval_rules.NOBODY_GONE,
) -> str:
    """The Pending message: who may approve, and with approvalsRequired N how many count so far. An
    approval already stamped as final that no longer completes the count is a decision taken: the
    extension cannot complete any more, and the message says what to do instead. An approval whose
    approver is `gone` from Identity Center is said last, as a waiting request says it
    (`handlers.approvals.waiting_message`), and its approver is not suggested as another."""
    requester = extension.spec.requester or ""
    who = request_rules.approvers_text(team, escalated=False, excluding={requester, *count.counted, *gone})
    if needed <= 1:
        return f"waiting for approval by an approver of team {owner} ({who})"
    void = [(by, why) for by, why in count.why_not if gone.get(by) == why]
    rejected = [r for r in count.rejected if r not in {why for _, why in void}]
    message = f"{len(count.counted)} of {needed} approvals ({approval_rules.in_words(count.counted) or 'none yet'})" + (
        f"; not counted: {'; '.join(rejected)}" if rejected else ""
    )
    left = "".join(f"; {request_rules.approval_void(by, why)}" for by, why in void)
    if wire.truthy(extension.metadata.annotations.get(names.ANNOTATION_APPROVED)):
        withdraw = f"kubectl delete accessextension {extension.metadata.name}"
        return f"{message}: {approval_rules.completion_taken('', withdraw, 'ask again')}{left}"
    return (
        f"{message}: waiting for {needed - len(count.counted)} more, by another approver of team {owner} ({who}){left}"
    )


def _stamped(
    team: TeamOwnershipSpec,
    annotations: Mapping[str, str],
    by_key: str,
    groups_key: str,
    requester: str,
    *,
    responder_groups: frozenset[str] = frozenset(),
) -> str | Next:
    """Who took a decision, as admission stamped them, when they still may; else why it does not count.
    `responder_groups` are given for a denial only: an incident responder's counts, not being the requester."""
    who = annotations.get(by_key, "")
    if not who:
        return Next(
            Step.IGNORE,
            f"the decision carries no {by_key}: decisions are only taken when the admission webhook has recorded "
            "who made them",
        )
    groups = frozenset(g for g in annotations.get(groups_key, "").split(",") if g)
    refusal = may_approve(team, Caller(who, groups), requester=requester, escalated=False)
    if refusal is not None and who != requester and groups & responder_groups:
        refusal = None
    if refusal is not None:
        return Next(Step.IGNORE, f"the decision stamped for {who} does not count ({refusal})", who=who)
    return who


@dataclass(frozen=True)
class Extended:
    """The grant's new end, once an extension is applied."""

    previous: datetime
    expiration: datetime
    by: timedelta


def apply(
    extension: AccessExtension,
    grant: AccessGrant,
    entitlement: Entitlement,
    limits: request_rules.Limits,
    now: datetime,
) -> Extended | str:
    """The grant as it is stored now, extended: its new end, or why not (the caps, counted on
    what the grant records; a grant that ends within `MARGIN`)."""
    by = duration_of(extension, limits)
    other = replaced(extension, grant)
    if other is not None:
        return f"{other}; nothing was extended"
    window = grant_end(grant)
    if window is None:
        return f"AccessGrant {grant.metadata.name} is no longer Active: nothing was extended"
    expires = window[1]
    if expires - now < MARGIN:
        return (
            f"AccessGrant {grant.metadata.name} was ending ({_stamp(expires)}) when the extension was to be applied: "
            "nothing was extended; request access again"
        )
    problem = unextended(grant, entitlement) or cap_problem(grant, entitlement, by)
    if problem is not None:
        return f"{problem}; nothing was extended"
    return Extended(expires, expires + by, by)


def applied_entry(grant: AccessGrant, extension: AccessExtension) -> GrantExtension | None:
    """The grant's `status.extensions` entry of this very extension, if the grant lists it: by uid.
    A finished extension may be deleted while its grant runs (`_deleted`) and another created under
    its name: matched by name, that one was taken as applied, approved by the approver of the first,
    with nobody having decided on it. An entry from before entries recorded the uid is matched by
    name, and only by an extension created no later than it was applied (a creation time is whole
    seconds, and so is the entry's)."""
    uid, created = extension.metadata.uid, extension.metadata.creation_timestamp
    for entry in grant.status.extensions or []:
        if entry.uid:
            if uid and entry.uid == uid:
                return entry
        elif entry.name == extension.metadata.name and (created is None or created <= entry.time):
            return entry
    return None


# --- admission -------------------------------------------------------------------------------


def review_extension(
    operation: str,
    old: Obj | None,
    new: Obj | None,
    caller: Caller,
    *,
    operator: OperatorIdentity,
    grant: AccessGrant | None,
    entitlement: Entitlement | None,
    team: TeamOwnershipSpec | None,
    waiting: Sequence[Waiting],
    limits: request_rules.Limits,
    phase: Phase,
    responders: admission.Responders = admission.NO_RESPONDERS,
    owner: str = "",
    gone: Mapping[str, str] = approval_rules.NOBODY_GONE,
) -> Verdict:
    """CREATE stamps the requester and checks the extension against its grant and caps; UPDATE
    takes a decision from an approver of the owner team, or a denial with a reason from one of the
    `responders` (the request's rules: `admission`); DELETE is allowed to the requester while it
    waits, and to the owner team's approvers once it has ended (`_deleted`). `team` is the grant's recorded owner team, `owner`
    its name (`owner_of`). `gone`: the approvers listed whose Identity Center account is disabled or
    deleted, with why: their approvals no longer count towards the one that completes the count, as
    the operator counts them (`next_step`; the request's `admission.review_request`)."""
    if operator.includes(caller):
        return ALLOW
    refusal = (
        admission.review_bookkeeping(operation, old, new, caller, operator, held=True)
        or admission.review_record(operation, old, new, caller, operator, held=True)
        or admission.review_text(old, new)
        or admission.review_annotation_keys(names.ACCESS_EXTENSION, operation, old, new, caller, operator)
    )
    if refusal is not None:
        return refusal
    if operation == "CREATE" and new is not None:
        return _created(new, caller, grant, entitlement, team, waiting, limits, phase)
    if operation == "DELETE" and old is not None:
        return _deleted(old, caller, team)
    if operation == "UPDATE" and old is not None and new is not None:
        # Decided by the grant's team (`team`), which the request's rules name from the Entitlement.
        decided = as_decided(entitlement, owner) if entitlement is not None and owner else entitlement
        verdict = admission.review_withdrawn(old, new, caller, operator) or admission.decision_update(
            old, new, caller, decided, team, phase, responders=responders, gone=gone
        )
        if isinstance(verdict, Refusal):
            return Refusal(_as_extension(verdict.message), verdict.code)
        return verdict
    return ALLOW


def _as_extension(message: str) -> str:
    """A refusal of the request's decision rules, naming the extension's kind and fix; what an
    incident responder may do (`admission.RESPONDER_MAY`, both kinds) is left as it is."""
    kept = admission.RESPONDER_MAY
    return kept.join(
        part.replace(names.ACCESS_REQUEST, names.ACCESS_EXTENSION)
        .replace("accessrequest", "accessextension")
        .replace("jit deny request/", "jit deny extension/")
        for part in message.split(kept)
    )


def _created(
    new: Obj,
    caller: Caller,
    grant: AccessGrant | None,
    entitlement: Entitlement | None,
    team: TeamOwnershipSpec | None,
    waiting: Sequence[Waiting],
    limits: request_rules.Limits,
    phase: Phase,
) -> Verdict:
    present = [k for k in admission.DECISION_ANNOTATIONS if k in wire.annotations_of(new)]
    if present:
        return Refusal(
            f"metadata.annotations {', '.join(present)}: an extension cannot be created already decided; remove "
            "them. Once it exists, an approver of the owner team decides with "
            f"`kubectl jit approve extension/NAME` (or `kubectl annotate accessextension NAME {names.ANNOTATION_APPROVED}=true`)"
        )
    spec = wire.spec(new)
    requester, groups, wanted = spec.get("requester"), spec.get("requesterGroups"), sorted(caller.groups)
    if requester not in (None, "", caller.username):
        return Refusal(
            f"spec.requester is {requester!r}, but you are authenticated as {caller.username!r}: an extension is "
            "always asked by the grantee who creates it; remove spec.requester (jitaccess fills it in)"
        )
    if groups not in (None, []) and (not isinstance(groups, list) or sorted(set(map(str, groups))) != wanted):
        return Refusal(
            f"spec.requesterGroups is {groups!r}, but the API server authenticated you with the groups {wanted!r}: "
            "remove spec.requesterGroups (jitaccess fills it in from your authenticated identity)"
        )
    if phase is Phase.MUTATE:
        return Admit(spec={"requester": caller.username, "requesterGroups": wanted})
    if requester != caller.username or groups != wanted:
        return Refusal(
            "spec.requester and spec.requesterGroups must be exactly what the jitaccess mutating webhook stamped "
            "from the authenticated caller, and they are not: ask the cluster administrators",
            INVALID,
        )
    problem = _creation_problem(new, caller, grant, entitlement, team, waiting, limits)
    return Refusal(problem, INVALID) if problem is not None else ALLOW


def _creation_problem(
    new: Obj,
    caller: Caller,
    grant: AccessGrant | None,
    entitlement: Entitlement | None,
    team: TeamOwnershipSpec | None,
    waiting: Sequence[Waiting],
    limits: request_rules.Limits,
) -> str | None:
    name = str(wire.spec(new).get("grant") or "")
    if grant is None:
        return f"spec.grant names AccessGrant {name!r}, which does not exist: `kubectl get accessgrants` lists them"
    user, ent = grant.spec.user, grant.spec.entitlement
    if caller.username != user:
        return (
            f"spec.grant: AccessGrant {name} is {user}'s, and only its grantee may extend it; {caller.username} may "
            f"not. For access of your own, request it: kubectl jit request {ent}"
        )
    state = cond.ready_reason(grant.status.conditions)
    if state in names.GRANT_FINISHED:
        return (
            f"spec.grant: AccessGrant {name} has already ended ({state}): only an Active grant can be extended; "
            f"request access again: kubectl jit request {ent}"
        )
    if grant_end(grant) is None:
        return (
            f"spec.grant: AccessGrant {name} is not Active yet ({state or names.PROVISIONING}): try again in a moment"
        )
    listed = _listed_problem(wire.name_of(new), grant)
    if listed is not None:
        return listed
    if entitlement is None:
        return (
            f"spec.grant: the Entitlement {ent!r} of AccessGrant {name} no longer exists: there is nothing to check "
            "an extension against; request access again"
        )
    if team is None:
        return team_gone(grant, owner_of(grant, entitlement))
    changed = unextended(grant, entitlement)
    if changed is not None:
        return changed
    try:
        extension = AccessExtension.model_validate(dict(new))
        by = duration_of(extension, limits)
    except InvalidInput as exc:
        return str(exc)
    except ValueError as exc:  # pydantic's ValidationError: the schema's, normally refused before
        return f"the AccessExtension is invalid: {exc}"
    return cap_problem(grant, entitlement, by, waiting) or reason_problem(extension.spec.reason, entitlement)


def _listed_problem(name: str, grant: AccessGrant) -> str | None:
    """Why an extension cannot be created under `name`: the grant already lists an extension of that
    name as applied (`status.extensions`), which an approver may delete once it has finished while
    the grant runs. The records (the grant's `extended/<n>`, the extension's own, the Events) name an
    extension by its name: two of one name on one grant would read as one. Where this webhook did not
    run, the operator still tells them apart by uid (`applied_entry`). None when no entry has it."""
    entry = next((e for e in reversed(grant.status.extensions or []) if name and e.name == name), None)
    if entry is None:
        return None
    return (
        f"metadata.name: AccessGrant {grant.metadata.name} already lists an extension named {name} in its "
        f"status.extensions (+{entry.by}, applied at {_stamp(entry.time)}, approved by {entry.approved_by}): "
        "a name is used once per grant, so that its records tell its extensions apart. Name this one otherwise, "
        f"or let the API server choose (metadata.generateName, as `kubectl jit extend {grant.metadata.name} --by "
        "DURATION --reason '...'` does)"
    )


def _deleted(old: Obj, caller: Caller, team: TeamOwnershipSpec | None) -> Verdict:
    """Its requester withdraws it while it waits; an approver of the owner team deletes it once it
    has ended (`_unfinished_deleted`: someone else's that waits is denied, never deleted). Nobody
    else: it is a record of its grant, retired with it."""
    requester = str(wire.spec(old).get("requester") or "")
    state = wire.ready_reason(old)
    waits = state not in names.EXTENSION_FINISHED
    if waits and caller.username == requester:
        return ALLOW
    name = wire.name_of(old)
    if team is not None and is_approver(team, caller):
        return _unfinished_deleted(old, caller, requester) if waits else ALLOW
    if waits:
        return Refusal(
            f"AccessExtension {name} is {requester}'s: only {requester} may withdraw it while it waits, or an approver "
            f"of the owner team (or an incident responder) deny it (`kubectl jit deny extension/{name} --reason "
            f"'...'`); {caller.username} may not delete it"
        )
    return Refusal(
        f"AccessExtension {name} is finished ({state}): it is a record of its grant, retired with the grant; only an "
        f"approver of the owner team may delete it earlier, and {caller.username} may not"
    )


def _unfinished_deleted(old: Obj, caller: Caller, requester: str) -> Refusal:
    """Someone else's extension that has not ended is denied, never deleted, as a request is
    (`admission._undecided_deleted`): a deletion leaves no stamp (the object does not say who
    deleted it), so its `extension-withdrawn` record would name nobody and read as its requester's
    own withdrawal; a denial is stamped (`denied-by`) and carries the decider's reason into every
    record. One already decided (the operator ends it in seconds; one whose approval stopped
    counting, when its grant ends) is left to end as decided: it may be deleted once it has."""
    name, annotations = wire.name_of(old), wire.annotations_of(old)
    decided = ""
    for flag, by, verb in (
        (names.ANNOTATION_DENIED, names.ANNOTATION_DENIED_BY, "denied"),
        (names.ANNOTATION_APPROVED, names.ANNOTATION_APPROVED_BY, "approved"),
    ):
        if wire.truthy(annotations.get(flag)):
            decided = f"{verb} by {annotations.get(by) or '(not stamped)'}"
            break
    if decided:
        return Refusal(
            f"AccessExtension {name} is {requester}'s, {decided}, and the jitaccess operator has not ended it yet "
            f"(it is {wire.ready_reason(old) or names.PENDING}): delete it once it has ended (seconds; one whose "
            "approval no longer completes the count fails when its grant ends, or its requester withdraws it), so "
            "that its records say what became of it"
        )
    return Refusal(
        f"AccessExtension {name} is {requester}'s, still awaiting a decision: only {requester} withdraws it, and "
        f"{caller.username} may not delete it, as a deletion leaves no {names.ANNOTATION_DENIED_BY} stamp and no "
        f"reason (its extension-withdrawn record would read as {requester}'s own withdrawal). Deny it instead, which "
        f"names you and your reason in its records: `kubectl jit deny extension/{name} --reason '...'` (or "
        f"`kubectl annotate accessextension {name} {names.ANNOTATION_DENIED}=true "
        f"{names.ANNOTATION_DECISION_REASON}='...'`); once denied, an approver of its owner team may delete it"
    )


def extensions_of(extensions: Sequence[Obj], grant: str) -> dict[str, Waiting | None]:
    """The extensions of `grant` by name: what each adds while it has not finished, else None."""
    found: dict[str, Waiting | None] = {}
    for obj in extensions:
        spec, name = wire.spec(obj), wire.name_of(obj)
        if spec.get("grant") != grant:
            continue
        found[name] = None
        if wire.ready_reason(obj) in names.EXTENSION_FINISHED:
            continue
        try:
            found[name] = Waiting(name, parse_duration(str(spec.get("duration") or ""), "spec.duration"))
        except InvalidInput:
            continue
    return found


_stamp = wire.rfc3339

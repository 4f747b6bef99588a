"""Admission webhooks: the API server asks here before it stores any change to a jitaccess object.

Only an admission review says who is asking (`userinfo`, authenticated by the API server), so
this is where the requester and every approver, denier and revoker are stamped onto objects and
where everyone else is refused. The handlers look up what a decision needs (the owner team, from
kopf's indexes) and call `jitaccess.domain.admission`; a `Refusal` becomes `kopf.AdmissionError`.

| kind                    | mutating (stamps)  | validating (final object)                     |
|-------------------------|--------------------|-----------------------------------------------|
| AccessRequest           | CREATE (+ pace), UPDATE | CREATE (+ validity, eligibility, what waits), UPDATE, DELETE |
| AccessGrant             | CREATE, UPDATE     | CREATE, UPDATE, DELETE                        |
| TeamOwnership, Entitlement |                 | CREATE, UPDATE (bookkeeping, names, groups, whose permission set) |
| PermissionCatalog       |                    | CREATE, UPDATE (AWS's limits, standing groups, a tier grants hold), DELETE (grants hold it) |
| AccessExtension         | CREATE, UPDATE     | `extension_admission`                         |
| `status` of all six     |                    | UPDATE (the operator only)                    |

A new request also meets its user's limits (docs/security.md, approval fatigue and floods): at
MUTATE, how fast they create requests (`Runtime.creations`), before Identity Center is asked;
at VALIDATE, for one that goes to an approver, what they already have waiting
(`Runtime.waiting`) and how often they asked approvers this hour (`Runtime.asks`).

Every webhook is `persistent` (kopf leaves it configured when the operator stops) and fails
closed (`failurePolicy: Fail`): while the operator is down, the writes that need it are refused.

The handlers are coroutines, and the operator's own writes (every status update) are judged
without I/O: kopf's worker threads may all be busy in handlers that wait for exactly those writes,
so a webhook that needed one of them would deadlock. Lookups and Identity Center calls that other
callers need run in asyncio's own threads.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from jitaccess import metrics
from jitaccess.api import names, wire
from jitaccess.api.models import Entitlement, PermissionCatalog, TeamOwnershipSpec
from jitaccess.domain import admission, standing
from jitaccess.domain import approvals as approval_rules
from jitaccess.domain import assignments as assignment_rules
from jitaccess.domain import breakglass as break_glass_rules
from jitaccess.domain import permissions as permission_rules
from jitaccess.domain import requests as request_rules
from jitaccess.domain.admission import Admit, OperatorIdentity, Phase, Refusal, Verdict
from jitaccess.domain.teams import Caller, groups_text
from jitaccess.errors import IdentityCenterError, NotFound, RetryLater
from jitaccess.handlers.common import NO_INDEX, Index, first, live, now
from jitaccess.handlers.eligibility import approver_problem, approvers_gone, eligibility_problem
from jitaccess.handlers.runtime import Runtime, runtime_of

audit = logging.getLogger("jitaccess.audit")
#: Where the startup handler leaves the `OperatorIdentity` for these handlers.
OPERATOR_IDENTITY = "operator_identity"
WRITES: list[kopf.Operation] = ["CREATE", "UPDATE"]


def _context(memo: Any) -> tuple[Runtime, OperatorIdentity]:
    identity = memo.get(OPERATOR_IDENTITY) if hasattr(memo, "get") else None
    if not isinstance(identity, OperatorIdentity):
        raise kopf.AdmissionError("the jitaccess operator is still starting: try again in a moment", code=503)
    return runtime_of(memo), identity


async def _entitlement_and_team(
    rt: Runtime, name: str, teams: Index, entitlements: Index
) -> tuple[Entitlement | None, TeamOwnershipSpec | None]:
    """An Entitlement and its owner team; an index miss is confirmed with the API server
    (an object applied a moment ago may not have reached the index yet)."""
    if not name:
        return None, None
    raw = first(entitlements, name)
    if raw is None:
        raw = live(await asyncio.to_thread(rt.kube.get, names.ENTITLEMENTS, name))
    try:
        entitlement = Entitlement.model_validate(raw) if raw is not None else None
    except ValidationError:
        return None, None
    if entitlement is None:
        return None, None
    return entitlement, await _team(rt, entitlement.spec.owner, teams)


async def _reviewers(
    rt: Runtime, operation: str | None, old: kopf.Body | None, entitlement: Entitlement | None, teams: Index
) -> TeamOwnershipSpec | None:
    """The team that reviews a break-glass request being updated, when not its live owner team:
    the recorded one (`domain.breakglass.recorded_reviewers`). None: the live owner team (also
    when the recorded team no longer exists)."""
    if operation != "UPDATE" or old is None:
        return None
    recorded = break_glass_rules.recorded_reviewers(old, entitlement.spec.owner if entitlement is not None else None)
    return await _team(rt, recorded, teams) if recorded is not None else None


async def _team(rt: Runtime, name: str, teams: Index) -> TeamOwnershipSpec | None:
    """A TeamOwnership's spec by name; an index miss is confirmed with the API server."""
    team = first(teams, name)
    if team is None:
        team = ((await asyncio.to_thread(rt.kube.get, names.TEAMS, name)) or {}).get("spec")
    try:
        return TeamOwnershipSpec.model_validate(team) if team is not None else None
    except ValidationError:
        return None


def responders(rt: Runtime) -> admission.Responders:
    """The incident responders (`JITACCESS_RESPONDER_GROUPS`)."""
    return admission.Responders(frozenset(rt.settings.responder_groups))


def paced(rt: Runtime, caller: Caller, kind: str) -> Refusal | None:
    """A new request or extension of `caller`, counted against their creations a minute
    (`Runtime.creations`, one budget for both kinds); the refusal when they are past it."""
    wait = rt.creations.take(caller.username)
    if wait <= 0:
        return None
    metrics.REQUESTS_LIMITED.labels("pace").inc()
    return Refusal(request_rules.creation_rate_problem(rt.settings.requests_per_user_per_minute, wait, kind))


def _entitlement_name(obj: Mapping[str, Any] | None) -> str:
    spec = (obj or {}).get("spec") or {}
    return str(spec.get("entitlement") or "")


def _enforce(
    verdict: Verdict,
    *,
    kind: str,
    operation: str | None,
    body: Mapping[str, Any] | None,
    caller: Caller,
    dryrun: bool,
    patch: kopf.Patch | None = None,
) -> None:
    name = (body or {}).get("metadata", {}).get("name") or (body or {}).get("metadata", {}).get("generateName", "")
    fields = {"event": "AdmissionRefused", "object_kind": kind, "object_name": name, "who": caller.username}
    if isinstance(verdict, Refusal):
        # Refusing is the webhook doing its job, not a fault of the operator: an audit line, not a warning.
        audit.info(
            "refused %s %s/%s by %s%s: %s",
            operation,
            kind,
            name,
            caller.username,
            " (dry run)" if dryrun else "",
            verdict.message,
            extra=fields,
        )
        raise kopf.AdmissionError(verdict.message, code=verdict.code)
    if patch is None:
        return
    for key, value in verdict.spec.items():
        patch.spec[key] = value
    for key, value in verdict.annotations.items():
        patch.metadata.annotations[key] = value
    for key in verdict.removed:
        patch.metadata.annotations[key] = None
    if verdict.annotations:
        audit.info(
            "stamped %s on %s/%s%s",
            ", ".join(f"{k}={v}" for k, v in verdict.annotations.items()),
            kind,
            name,
            " (dry run)" if dryrun else "",
            extra={**fields, "event": "AdmissionStamped"},
        )


# --- AccessRequest --------------------------------------------------------------------------


async def _review_request(
    phase: Phase,
    operation: str | None,
    old: kopf.Body | None,
    new: kopf.Body | None,
    userinfo: Mapping[str, Any],
    memo: Any,
    teams: Index,
    entitlements: Index,
    warnings: list[str],
    dryrun: bool = False,
) -> tuple[Verdict, Caller]:
    rt, operator = _context(memo)
    caller = admission.caller_of(userinfo)
    if phase is Phase.MUTATE and operation == "CREATE" and not operator.includes(caller):
        # First, before Identity Center is asked anything: a dry run and a refused request count too.
        refusal = paced(rt, caller, names.ACCESS_REQUEST)
        if refusal is not None:
            return refusal, caller
    entitlement: Entitlement | None = None
    team: TeamOwnershipSpec | None = None
    # DELETE: who may withdraw a request depends on its owner team (the operator's own need no lookup).
    deletes = operation == "DELETE" and not operator.includes(caller)
    if operation == "UPDATE" or (phase is Phase.VALIDATE and operation == "CREATE") or deletes:
        name = _entitlement_name(new or old)
        entitlement, team = await _entitlement_and_team(rt, name, teams, entitlements)
    reviewers = await _reviewers(rt, operation, old, entitlement, teams)

    def eligibility(valid: request_rules.ValidRequest) -> str | None:
        try:
            return eligibility_problem(rt, valid, ic=rt.asking)
        except RetryLater as exc:
            # The operator checks again before it grants anything, so an outage of Identity Center
            # need not block every request: it is let through with a word of warning.
            warnings.append(f"Identity Center did not answer ({exc}); eligibility is checked again before granting")
            return None

    def user_id(user_name: str) -> str | Refusal:
        ic = rt.asking
        if phase is Phase.MUTATE:
            # The stamp is asked afresh: a user name may have passed to a new Identity Center user
            # since it was cached. VALIDATE, a moment later, compares with this very answer.
            rt.forget("user", user_name)
        try:
            return rt.cached("user", user_name, ic.resolve_user)
        except NotFound:
            return Refusal(
                f"{user_name} is not a user in Identity Center store {ic.identity_store_id}: ask the identity "
                "team to provision the user, then request again"
            )
        except IdentityCenterError as exc:
            # Fail closed: without the UserId nobody can tell later whom the request was for.
            return Refusal(
                f"Identity Center did not answer ({exc}), so jitaccess cannot look up which Identity Center user "
                "you are and cannot admit the request: try again in a minute",
                503,
            )

    def waiting(valid: request_rules.ValidRequest) -> str | None:
        # The name the API server gave it (a generated one too); a dry run counts as nothing.
        name = wire.name_of(new) or f"unnamed-{uuid.uuid4().hex[:8]}"
        mine = request_rules.Waiting(name, valid.entitlement.metadata.name, bool(wire.spec(new).get("startTime")))
        limit = "waiting"

        def check(others: list[request_rules.Waiting]) -> str | None:
            nonlocal limit
            problem = request_rules.waiting_problem(name, valid, mine.scheduled, others, rt.settings.limits, now())
            # Last: a request refused for anything else has asked nobody, and takes nothing.
            if problem is None and (wait := rt.asks.take(caller.username, peek=dryrun)) > 0:
                limit, problem = (
                    "asks",
                    request_rules.asks_problem(rt.settings.approval_requests_per_user_per_hour, wait),
                )
            return problem

        problem = check(rt.waiting.of(caller.username)) if dryrun else rt.waiting.admit(caller.username, mine, check)
        if problem is not None:
            metrics.REQUESTS_LIMITED.labels(limit).inc()
        return problem

    creates = operation == "CREATE"
    asks = creates and phase is Phase.VALIDATE
    if asks and wire.name_of(new) and rt.grant_names.may_hold(wire.name_of(new)):
        # The name the API server gave it (a generated one too), confirmed before Identity Center
        # is asked; a name no grant was seen under costs no read (`grant_names`).
        held = await asyncio.to_thread(rt.kube.get, names.GRANTS, wire.name_of(new))
        taken = admission.name_held_by_grant(wire.name_of(new), held)
        if taken is not None:
            return taken, caller
    gone, unanswered = await _approvers_gone(rt, phase, operation, old, new, entitlement)
    review = functools.partial(
        admission.review_request,
        operation or "",
        old,
        new,
        caller,
        operator=operator,
        entitlement=entitlement,
        team=team,
        limits=rt.settings.limits,
        now=now(),
        phase=phase,
        eligibility=eligibility if asks else None,
        user_id=user_id if creates else None,
        earlier_break_glass=functools.partial(_earlier_break_glass, rt) if asks else None,
        waiting=waiting if asks else None,
        responders=responders(rt),
        reviewers=reviewers,
        gone=gone,
    )
    # Only a new request and an approval ask Identity Center (blocking calls); every other review is pure.
    verdict = await asyncio.to_thread(review) if creates else review()
    verdict = unverified(verdict, unanswered, old, entitlement, warnings)
    owner = entitlement.spec.owner if entitlement is not None else ""
    return await approver_checked(rt, phase, verdict, caller, owner, warnings), caller


async def _approvers_gone(
    rt: Runtime,
    phase: Phase,
    operation: str | None,
    old: kopf.Body | None,
    new: kopf.Body | None,
    entitlement: Entitlement | None,
) -> tuple[Mapping[str, str], RetryLater | None]:
    """For a decision on a request or an extension that needs several approvals, the approvers it
    lists so far whose Identity Center account is disabled or gone (`approvers_gone`): their
    approvals no longer count towards the one that completes the count, as the operator counts them
    (`handlers.requests`, `handlers.extensions`). Asked afresh at MUTATE, where that approval is
    stamped for good (VALIDATE, a moment later, takes its "yes"). Identity Center not answering
    counts them, and says so (the `RetryLater`, with nobody gone): `unverified` refuses an approval
    that would complete the count on them, and lets one that completes nothing through with a
    warning; the operator asks again before it records the count or acts on it."""
    if operation != "UPDATE" or old is None or new is None:
        return approval_rules.NOBODY_GONE, None
    before, after = wire.annotations_of(old), wire.annotations_of(new)
    keys = (names.ANNOTATION_APPROVED, names.ANNOTATION_DENIED, approval_rules.APPROVALS)
    if approval_rules.APPROVALS not in before or all(before.get(k) == after.get(k) for k in keys):
        return approval_rules.NOBODY_GONE, None
    needed = approval_rules.required(entitlement)
    try:
        return await asyncio.to_thread(
            approvers_gone, rt, before, needed, fresh=phase is Phase.MUTATE, ic=rt.asking
        ), None
    except RetryLater as exc:
        return approval_rules.NOBODY_GONE, exc


def unverified(
    verdict: Verdict,
    unanswered: RetryLater | None,
    old: kopf.Body | None,
    entitlement: Entitlement | None,
    warnings: list[str],
) -> Verdict:
    """An approval of several admitted while Identity Center did not answer about the approvers
    listed before it (`_approvers_gone`'s `unanswered`). One that would complete the count (stamped
    `approved-by`) is refused, to be given again once Identity Center answers: the count it completes
    is unverified (an approver disabled or deleted since counts out, attack 133), and a completion
    stamped is never taken back (the admission policy keeps `approved-by`, and a decision is final),
    so had the operator found it short once Identity Center answered, no further approver could
    complete the request or extension, which waited until it timed out or was withdrawn. Stamped only
    on a verified count, a short one leaves the request waiting for another approver instead. It
    costs an outage nothing granted: the operator waits for Identity Center before it grants on a
    count anyway. An approval that completes nothing, whoever counts, is listed with a warning."""
    if unanswered is None:
        return verdict
    stamped = verdict.annotations if isinstance(verdict, Admit) else {}
    if names.ANNOTATION_APPROVED_BY in stamped and approval_rules.APPROVALS in stamped:
        listed = approval_rules.in_words([a.by for a in approval_rules.given(wire.annotations_of(old))])
        return Refusal(
            f"Identity Center did not answer ({unanswered}), so jitaccess cannot check that the approvals given "
            f"before yours ({listed}) still count (an approver disabled or deleted there since counts no more), and "
            f"yours would complete the {approval_rules.required(entitlement)} approvals required: it is not "
            "recorded, since a completed approval cannot be taken back. Approve again in a minute",
            503,
        )
    if isinstance(verdict, Admit):
        warnings.append(
            f"Identity Center did not answer ({unanswered}); the approvals given so far are counted, and checked "
            "again before access begins"
        )
    return verdict


def _approving(verdict: Verdict) -> bool:
    """Whether an admitted change stamps the caller's approval: the one that completes the count
    (`approved-by`), or one of several (`jitaccess.dev/approvals`)."""
    stamped = verdict.annotations if isinstance(verdict, Admit) else {}
    return names.ANNOTATION_APPROVED_BY in stamped or approval_rules.APPROVALS in stamped


async def approver_checked(
    rt: Runtime, phase: Phase, verdict: Verdict, caller: Caller, owner: str, warnings: list[str]
) -> Verdict:
    """An approval admitted in every other way (MUTATE, where it is stamped: kubectl, `kubectl jit
    approve`, a Slack click applied as its approver) is refused when its approver's Identity Center
    account is disabled or missing (`approver_problem`): one `DescribeUser` per approval. An Identity
    Center that does not answer lets it through with a warning, as a new request's eligibility: the
    operator asks again before the approval is acted upon."""
    if phase is not Phase.MUTATE or not _approving(verdict):
        return verdict
    try:
        problem = await asyncio.to_thread(approver_problem, rt, caller.username, fresh=True, ic=rt.asking)
    except RetryLater as exc:
        warnings.append(f"Identity Center did not answer ({exc}); the approver is checked again before access begins")
        return verdict
    return verdict if problem is None else Refusal(request_rules.approver_refusal(caller.username, problem, owner))


def _earlier_break_glass(rt: Runtime, user: str) -> list[break_glass_rules.Earlier]:
    """The user's stored break-glass requests, listed from the API server: asked only when a
    break-glass request is created (rare), and every replica answers webhooks, leader or not. The
    server selects them (by field), so the answer does not grow with the records kept."""
    return break_glass_rules.earlier(rt.kube.list(names.REQUESTS, fields=break_glass_rules.selecting(user)), user)


@kopf.on.mutate(
    names.GROUP, names.VERSION, names.REQUESTS, id="accessrequests-stamp", operations=WRITES, persistent=True
)
async def stamp_request(
    *,
    operation: str | None = None,
    old: kopf.Body | None = None,
    new: kopf.Body | None = None,
    userinfo: Mapping[str, Any],
    patch: kopf.Patch,
    dryrun: bool,
    memo: kopf.Memo,
    teams: Index = NO_INDEX,
    entitlements: Index = NO_INDEX,
    warnings: list[str],
    **_: Any,
) -> None:
    """Stamp the requester at CREATE, and the approver or denier of a decision at UPDATE."""
    verdict, caller = await _review_request(
        Phase.MUTATE, operation, old, new, userinfo, memo, teams, entitlements, warnings
    )
    _enforce(
        verdict, kind=names.ACCESS_REQUEST, operation=operation, body=new, caller=caller, dryrun=dryrun, patch=patch
    )
    hold_for_the_archive(memo, operation, new, patch)


def hold_for_the_archive(memo: Any, operation: str | None, new: Mapping[str, Any] | None, patch: kopf.Patch) -> None:
    """A new request or extension, when there is an archive, carries `names.RECORDS_FINALIZER`:
    deleted, it stays until its audit records are archived (`handlers.archive`), so that neither a
    crash nor a moment without a leader loses the record of a withdrawal. Added here, in the
    create itself, it costs no write of its own."""
    if operation != "CREATE" or not _context(memo)[0].settings.audit_bucket:
        return
    finalizers = list(wire.metadata(new).get("finalizers") or [])
    if names.RECORDS_FINALIZER not in finalizers:
        patch.metadata["finalizers"] = [*finalizers, names.RECORDS_FINALIZER]


@kopf.on.validate(
    names.GROUP,
    names.VERSION,
    names.REQUESTS,
    id="accessrequests-check",
    operations=[*WRITES, "DELETE"],
    persistent=True,
)
async def check_request(
    *,
    operation: str | None = None,
    old: kopf.Body | None = None,
    new: kopf.Body | None = None,
    userinfo: Mapping[str, Any],
    dryrun: bool,
    memo: kopf.Memo,
    teams: Index = NO_INDEX,
    entitlements: Index = NO_INDEX,
    warnings: list[str],
    **_: Any,
) -> None:
    """The final object: stamps intact, and a new request valid and its requester eligible; and no
    request deleted while the access it led to has not ended, nor by anyone but its requester (while
    pending) or an approver of its owner team."""
    verdict, caller = await _review_request(
        Phase.VALIDATE, operation, old, new, userinfo, memo, teams, entitlements, warnings, dryrun
    )
    _enforce(verdict, kind=names.ACCESS_REQUEST, operation=operation, body=new or old, caller=caller, dryrun=dryrun)
    if operation == "DELETE" and old is not None and not dryrun and not _context(memo)[1].includes(caller):
        _deleted(names.ACCESS_REQUEST, old, str(wire.spec(old).get("requester") or "?"), caller)


def _deleted(kind: str, old: Mapping[str, Any], whose: str, caller: Caller) -> None:
    """A deletion leaves no stamp behind (the object goes): this line is its record of who
    withdrew a request, or ended a grant by deleting it, and in what state it was."""
    name = wire.name_of(old)
    audit.info(
        "%s %s (%s, %s) deleted by %s (groups %s)",
        kind,
        name,
        whose,
        wire.ready_reason(old) or "new",
        caller.username,
        groups_text(caller) or "none",
        extra={"event": "AdmissionDeleted", "object_kind": kind, "object_name": name, "who": caller.username},
    )


# --- AccessGrant ----------------------------------------------------------------------------


async def _review_grant(
    phase: Phase,
    operation: str | None,
    old: kopf.Body | None,
    new: kopf.Body | None,
    userinfo: Mapping[str, Any],
    memo: Any,
    teams: Index,
    entitlements: Index,
) -> tuple[Verdict, Caller]:
    rt, operator = _context(memo)
    caller = admission.caller_of(userinfo)
    team: TeamOwnershipSpec | None = None
    owner = ""
    if not operator.includes(caller) and operation in ("UPDATE", "DELETE"):
        recorded = admission.recorded_owner(old or new or {})
        if recorded is not None:
            owner, team = recorded, await _team(rt, recorded, teams)
            if team is None:
                # The team that owned the grant is gone (renamed or deleted in Git): the approvers of
                # the Entitlement's owner now may end it early, or nobody but the grantee could.
                entitlement, current = await _entitlement_and_team(
                    rt, _entitlement_name(old or new), teams, entitlements
                )
                if entitlement is not None and current is not None:
                    owner, team = entitlement.spec.owner, current
        else:
            entitlement, team = await _entitlement_and_team(rt, _entitlement_name(old or new), teams, entitlements)
            owner = entitlement.spec.owner if entitlement is not None else ""
    verdict = admission.review_grant(
        operation or "",
        old,
        new,
        caller,
        operator=operator,
        team=team,
        owner=owner,
        phase=phase,
        responders=responders(rt),
    )
    return verdict, caller


@kopf.on.mutate(names.GROUP, names.VERSION, names.GRANTS, id="accessgrants-stamp", operations=WRITES, persistent=True)
async def stamp_grant(
    *,
    operation: str | None = None,
    old: kopf.Body | None = None,
    new: kopf.Body | None = None,
    userinfo: Mapping[str, Any],
    patch: kopf.Patch,
    dryrun: bool,
    memo: kopf.Memo,
    teams: Index = NO_INDEX,
    entitlements: Index = NO_INDEX,
    **_: Any,
) -> None:
    """Only the operator writes grants; a revocation by the grantee or an approver is stamped."""
    verdict, caller = await _review_grant(Phase.MUTATE, operation, old, new, userinfo, memo, teams, entitlements)
    _enforce(verdict, kind=names.ACCESS_GRANT, operation=operation, body=new, caller=caller, dryrun=dryrun, patch=patch)


@kopf.on.validate(
    names.GROUP, names.VERSION, names.GRANTS, id="accessgrants-check", operations=[*WRITES, "DELETE"], persistent=True
)
async def check_grant(
    *,
    operation: str | None = None,
    old: kopf.Body | None = None,
    new: kopf.Body | None = None,
    userinfo: Mapping[str, Any],
    dryrun: bool,
    memo: kopf.Memo,
    teams: Index = NO_INDEX,
    entitlements: Index = NO_INDEX,
    **_: Any,
) -> None:
    """The final object (revoked-by is the caller's), and who may delete a grant."""
    verdict, caller = await _review_grant(Phase.VALIDATE, operation, old, new, userinfo, memo, teams, entitlements)
    _enforce(verdict, kind=names.ACCESS_GRANT, operation=operation, body=new or old, caller=caller, dryrun=dryrun)
    if operation == "DELETE" and old is not None and not dryrun and not _context(memo)[1].includes(caller):
        _deleted(names.ACCESS_GRANT, old, str(wire.spec(old).get("user") or "?"), caller)


# --- TeamOwnership, Entitlement, and everyone's status ------------------------------------------


@kopf.on.validate(
    names.GROUP, names.VERSION, names.TEAMS, id="teamownerships-check", operations=WRITES, persistent=True
)
@kopf.on.validate(
    names.GROUP, names.VERSION, names.ENTITLEMENTS, id="entitlements-check", operations=WRITES, persistent=True
)
async def check_catalog(
    *,
    operation: str | None = None,
    old: kopf.Body | None = None,
    new: kopf.Body | None = None,
    userinfo: Mapping[str, Any],
    dryrun: bool,
    memo: kopf.Memo,
    body: kopf.Body,
    warnings: list[str],
    **_: Any,
) -> None:
    """GitOps owns these; only kopf's bookkeeping on them is the operator's."""
    rt, operator = _context(memo)
    caller = admission.caller_of(userinfo)
    # An Entitlement's groups are checked against the stored catalogs and Entitlements when they
    # change (never on the operator's own writes, which keep the spec).
    stored: dict[str, Any] = {}
    if admission.entitlement_groups_written(old, new):
        catalogs, entitlements = await _listed(rt, names.CATALOGS), await _listed(rt, names.ENTITLEMENTS)
        resolved = await _group_ids(rt, new or {}, catalogs, entitlements)
        stored = {"catalogs": catalogs, "entitlements": entitlements, "resolved": resolved}
    verdict = admission.review_catalog(
        operation or "", old, new, caller, operator=operator, limits=rt.settings.limits, **stored
    )
    _enforce(verdict, kind=str(body.get("kind", "")), operation=operation, body=body, caller=caller, dryrun=dryrun)
    _policy_changed(operation, old, new, body, caller, dryrun)


async def _group_ids(
    rt: Runtime,
    new: Mapping[str, Any],
    catalogs: list[dict[str, Any]],
    entitlements: list[dict[str, Any]],
) -> dict[str, str]:
    """The GroupIds Identity Center resolves the group names to that no stored object records an id
    for (`standing.unresolved`), asked only when the Entitlement written, or one stored, names its
    group by id alone (`standing.by_id_alone`): nothing else can match such a group with a name. An
    Identity Center that does not answer refuses the change (503, try again): compared by name only,
    a group named by id would pass as any standing group, and a `PolicyRefused` found later by the
    operator refuses its requests only from then on (`standing.refused_grants`)."""
    if not standing.by_id_alone(new, entitlements):
        return {}
    ic = rt.asking

    def resolve() -> dict[str, str]:
        found = {}
        for group in sorted(standing.unresolved(catalogs, [new, *entitlements])):
            try:
                found[group] = rt.cached("group", group, ic.resolve_group)
            except NotFound:
                continue  # no such group: its name matches no id
        return found

    try:
        return await asyncio.to_thread(resolve)
    except IdentityCenterError as exc:
        raise kopf.AdmissionError(
            f"Identity Center could not resolve group names ({exc}): an Entitlement's group named by "
            "spec.identityCenter.groupId "
            "is compared with the groups people hold standing (eligibility, on call) by Identity Center's ids, "
            "which it could not give: nothing was changed; try again in a moment",
            code=503,
        ) from exc


def _spec_written(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, kind: str) -> bool:
    """Whether this write creates an object of `kind` or changes its spec."""
    return new is not None and new.get("kind") == kind and (old is None or old.get("spec") != new.get("spec"))


async def _listed(rt: Runtime, plural: str) -> list[dict[str, Any]]:
    """Every stored object of a policy kind, from the API server (few, written by GitOps; an index
    could miss one applied a moment ago, in the same `kubectl apply`)."""
    return list(await asyncio.to_thread(rt.kube.list, plural))


def _policy_changed(
    operation: str | None,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    body: Mapping[str, Any],
    caller: Caller,
    dryrun: bool,
) -> None:
    """An admitted change of who may ask, who approves or what is granted is an audit line naming
    who made it and what changed: the operator sees only the result, and an edit of an
    Entitlement (another group, no eligibility) or a team (one more member) changes access."""
    changes = admission.policy_changes(old, new)
    if dryrun or not changes:
        return
    kind, name = str(body.get("kind", "")), str((body.get("metadata") or {}).get("name", ""))
    audit.info(
        "policy %s %s/%s by %s: %s",
        {"CREATE": "created", "DELETE": "deleted"}.get(operation or "", "changed"),
        kind,
        name,
        caller.username,
        "; ".join(changes),
        extra={
            "event": "PolicyChanged",
            "object_kind": kind,
            "object_name": name,
            "who": caller.username,
            "groups": sorted(caller.groups),
            "operation": operation,
            "changes": changes,
        },
    )


@kopf.on.validate(
    names.GROUP,
    names.VERSION,
    names.CATALOGS,
    id="permissioncatalogs-check",
    operations=[*WRITES, "DELETE"],
    persistent=True,
)
async def check_permission_catalog(
    *,
    operation: str | None = None,
    old: kopf.Body | None = None,
    new: kopf.Body | None = None,
    userinfo: Mapping[str, Any],
    dryrun: bool,
    warnings: list[str],
    memo: kopf.Memo,
    body: kopf.Body,
    teams: Index = NO_INDEX,
    **_: Any,
) -> None:
    """A catalog that renders within AWS's limits (`domain.permissions.review`); a warning when its
    team does not exist (yet: GitOps may apply the catalog first) or it nears an IAM role's quota."""
    rt, operator = _context(memo)
    caller = admission.caller_of(userinfo)
    written = _spec_written(old, new, names.PERMISSION_CATALOG)
    catalogs, entitlements = (
        (await _listed(rt, names.CATALOGS), await _listed(rt, names.ENTITLEMENTS)) if written else ([], [])
    )
    verdict = permission_rules.review(
        operation or "", old, new, caller, operator=operator, catalogs=catalogs, entitlements=entitlements
    )
    if old is not None and verdict == admission.ALLOW and not operator.includes(caller):
        verdict = await _catalog_removal(
            rt, old, None if operation == "DELETE" else new, entitlements if written else None
        )
    _enforce(verdict, kind=names.PERMISSION_CATALOG, operation=operation, body=body, caller=caller, dryrun=dryrun)
    _policy_changed(operation, old, new, body, caller, dryrun)
    if new is None or not written:
        return
    catalog = PermissionCatalog.model_validate(new)
    warnings.extend(permission_rules.warnings(catalog))
    if (ungranted := standing.ungranted_production(new, entitlements)) is not None:
        warnings.append(ungranted)
    team = catalog.metadata.name
    if await _team(rt, team, teams) is None:
        warnings.append(
            f"there is no TeamOwnership {team}: a PermissionCatalog is named after its team, and is provisioned "
            "once the TeamOwnership exists"
        )


async def _catalog_removal(
    rt: Runtime, old: Mapping[str, Any], new: Mapping[str, Any] | None, entitlements: list[dict[str, Any]] | None
) -> Verdict:
    """A catalog is deleted (`new` None), or loses a tier, only once no grant holds the permission
    sets that go with it (`domain.assignments.catalog_removal_refusal`); a tier's group changes only
    once no group-mode grant holds a membership of the old one (`catalog_regroup_refusal`), however
    its Entitlement spells the group (`tier_spellings`: the stored Entitlements, `entitlements` when
    already listed). Asked only when a permission set would go or move: that is rare, and any
    replica may answer."""
    tiers = None if new is None else assignment_rules.removed_tiers(old, new)
    regrouped = [] if new is None else assignment_rules.regrouped_tiers(old, new)
    if tiers == [] and not regrouped:
        return admission.ALLOW
    if entitlements is None:
        entitlements = await _listed(rt, names.ENTITLEMENTS)
    selections: set[tuple[str, str]] = set()
    if tiers != []:
        selections |= set(assignment_rules.dependent_selections(old, tiers, entitlements=entitlements))
    selections |= set(
        assignment_rules.dependent_selections(old, regrouped, by_group_only=True, entitlements=entitlements)
    )
    grants = await asyncio.to_thread(_grants_of, rt, sorted(selections))
    dependents = assignment_rules.catalog_dependents(old, grants, tiers, entitlements=entitlements)
    why = assignment_rules.catalog_removal_refusal(wire.name_of(old), dependents, tiers)
    if why is None and new is not None and regrouped:
        stranded = assignment_rules.catalog_dependents(
            old, grants, regrouped, by_group_only=True, entitlements=entitlements
        )
        why = assignment_rules.catalog_regroup_refusal(old, new, stranded, regrouped)
    return Refusal(why) if why is not None else admission.ALLOW


def _grants_of(rt: Runtime, selections: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The grants whose field (`spec.groupName` or `status.groupId`) has the value of one of
    `selections`.

    Read from the API server by field (both are selectable; `Kube.list_any`: one listing per pair,
    or one of every grant, filtered, from a server that cannot select by the field): a few grants
    each, where listing every grant read all those kept for `config.retentionSeconds`. Not from the
    Runtime's indexes: they follow a watch, and a grant created a moment ago, its membership about
    to be added, must block as well."""
    return rt.kube.list_any(names.GRANTS, [{path: value} for path, value in selections])


async def check_status(
    *,
    operation: str | None = None,
    userinfo: Mapping[str, Any],
    dryrun: bool,
    memo: kopf.Memo,
    body: kopf.Body,
    **_: Any,
) -> None:
    """Status is the operator's record of what happened (RBAC says so too; this holds if RBAC slips)."""
    operator = _context(memo)[1]
    caller = admission.caller_of(userinfo)
    kind = str(body.get("kind", ""))
    verdict = admission.review_status(kind, caller, operator=operator)
    _enforce(verdict, kind=f"{kind} status", operation=operation, body=body, caller=caller, dryrun=dryrun)


for _plural in (names.REQUESTS, names.GRANTS, names.TEAMS, names.ENTITLEMENTS, names.EXTENSIONS, names.CATALOGS):
    kopf.on.validate(
        names.GROUP,
        names.VERSION,
        _plural,
        id=f"{_plural}-status",
        subresource="status",
        operations=["UPDATE"],
        persistent=True,
    )(check_status)

"""Admission webhooks of AccessExtensions: the grantee's own, within the caps, decided as a request.

| kind             | mutating (stamps)  | validating (final object)                                  |
|------------------|--------------------|------------------------------------------------------------|
| AccessExtension  | CREATE, UPDATE     | CREATE (+ grant, caps), UPDATE (decisions), DELETE         |
| its `status`     |                    | UPDATE (the operator only: `admission.check_status`)       |

The rules are `jitaccess.domain.extensions.review_extension`; this module looks up what they need:
the grant (from the API server: grants are not kept whole in memory), its Entitlement and the
owner team the grant recorded (`spec.ownerTeam`; the same lookups as the request's webhooks), and,
when one is created, the other extensions of the grant still waiting (they count against the
caps). The operator's own writes never reach here (`matchConditions`), and would be admitted if
they did.

A new extension meets its user's limits as a new request does, in the same buckets: the pace of
creations (at MUTATE, before anything is read: each creation reads its grant and lists every
extension), and, for one that goes to an approver, the approvers' prompts an hour (last, when it
is admitted in every other way), since withdrawing a waiting extension and asking again would
otherwise prompt the approvers each time.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from jitaccess import metrics
from jitaccess.api import names, wire
from jitaccess.api.models import AccessGrant, Entitlement, TeamOwnershipSpec
from jitaccess.domain import admission
from jitaccess.domain import approvals as approval_rules
from jitaccess.domain import extensions as rules
from jitaccess.domain import requests as request_rules
from jitaccess.domain.admission import Admit, Phase, Refusal, Verdict
from jitaccess.domain.durations import parse_duration
from jitaccess.domain.teams import Caller, is_member
from jitaccess.errors import InvalidInput, RetryLater
from jitaccess.handlers.admission import (
    WRITES,
    _approvers_gone,
    _context,
    _deleted,
    _enforce,
    _entitlement_and_team,
    _team,
    approver_checked,
    hold_for_the_archive,
    paced,
    responders,
    unverified,
)
from jitaccess.handlers.common import NO_INDEX, Index


async def _review(
    phase: Phase,
    operation: str | None,
    old: kopf.Body | None,
    new: kopf.Body | None,
    userinfo: Mapping[str, Any],
    memo: Any,
    teams: Index,
    entitlements: Index,
    dryrun: bool,
    warnings: list[str] | None = None,
) -> tuple[Verdict, Caller]:
    rt, operator = _context(memo)
    caller = admission.caller_of(userinfo)
    if phase is Phase.MUTATE and operation == "CREATE" and not operator.includes(caller):
        # The requests' bucket: a creation of either kind, a dry run and a refused one count alike.
        refusal = paced(rt, caller, names.ACCESS_EXTENSION)
        if refusal is not None:
            return refusal, caller
    grant: AccessGrant | None = None
    entitlement: Entitlement | None = None
    team: TeamOwnershipSpec | None = None
    listed: dict[str, rules.Waiting | None] = {}
    gone: Mapping[str, str] = approval_rules.NOBODY_GONE
    unanswered: RetryLater | None = None
    owner = ""
    creating = operation == "CREATE" and phase is Phase.VALIDATE
    if not operator.includes(caller) and (creating or operation in ("UPDATE", "DELETE")):
        obj = new or old
        name = str(wire.spec(obj).get("grant") or "")
        raw = await asyncio.to_thread(rt.kube.get, names.GRANTS, name) if name else None
        try:
            grant = AccessGrant.model_validate(raw) if raw is not None else None
        except ValidationError:
            grant = None
        ent = grant.spec.entitlement if grant is not None else str(wire.status(obj).get("entitlement") or "")
        entitlement, team = await _entitlement_and_team(rt, ent, teams, entitlements)
        # Decided by the team the grant recorded (its revokers), not the Entitlement's owner now.
        owner = (
            rules.owner_of(grant, entitlement)
            if grant is not None
            else str(wire.status(obj).get("ownerTeam") or "") or (entitlement.spec.owner if entitlement else "")
        )
        if owner and owner != (entitlement.spec.owner if entitlement is not None else None):
            team = await _team(rt, owner, teams)
        if creating and grant is not None:
            # Selected by the server: the grant's own extensions, not 90 days of everyone's.
            found = await asyncio.to_thread(rt.kube.list, names.EXTENSIONS, fields={"spec.grant": name})
            listed = rules.extensions_of(found, name)
        # Of several approvals, those whose approver has left Identity Center since count out, as
        # for a request (attack 133): the next approval does not complete the count.
        gone, unanswered = await _approvers_gone(rt, phase, operation, old, new, entitlement)
    review = functools.partial(
        rules.review_extension,
        operation or "",
        old,
        new,
        caller,
        operator=operator,
        grant=grant,
        entitlement=entitlement,
        team=team,
        limits=rt.settings.limits,
        phase=phase,
        responders=responders(rt),
        owner=owner,
        gone=gone,
    )
    if not creating or grant is None or operator.includes(caller):
        verdict = review(waiting=[])
        if phase is Phase.VALIDATE and operation == "DELETE" and isinstance(verdict, Admit):
            rt.extension_admissions.forget(wire.name_of(old))
        # One that would complete the count while Identity Center does not answer about the approvers
        # listed is refused (`unverified`); one by someone whose account is disabled or missing too.
        said = [] if warnings is None else warnings
        verdict = unverified(verdict, unanswered, old, entitlement, said)
        return await approver_checked(rt, phase, verdict, caller, owner, said), caller

    def check(waiting: list[rules.Waiting]) -> Verdict:
        verdict = review(waiting=waiting)
        if isinstance(verdict, Admit) and entitlement and team:
            auto = entitlement.spec.approval.auto_approve_owner_team and is_member(team, caller)
            # Last: an extension refused for anything else prompts nobody, and takes nothing.
            if not auto and (wait := rt.asks.take(caller.username, peek=dryrun)) > 0:
                metrics.REQUESTS_LIMITED.labels("asks").inc()
                per_hour = rt.settings.approval_requests_per_user_per_hour
                return Refusal(request_rules.asks_problem(per_hour, wait))
        return verdict

    # The name the API server gave it (a generated one too); a dry run reserves nothing.
    mine = rules.Waiting(wire.name_of(new) or f"unnamed-{uuid.uuid4().hex[:8]}", _adds(new))
    verdict = rt.extension_admissions.admit(grant.metadata.name, mine, listed, check, reserve=not dryrun)
    return verdict, caller


def _adds(new: kopf.Body | None) -> timedelta:
    """What a new extension asks for, for the caps of the ones after it (zero when it cannot be
    read: it is then refused, and reserves nothing)."""
    try:
        return parse_duration(str(wire.spec(new).get("duration") or ""), "spec.duration")
    except InvalidInput:
        return timedelta()


@kopf.on.mutate(
    names.GROUP, names.VERSION, names.EXTENSIONS, id="accessextensions-stamp", operations=WRITES, persistent=True
)
async def stamp_extension(
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
    """Stamp the requester at CREATE, and the approver or denier (an incident responder too) of a
    decision at UPDATE."""
    verdict, caller = await _review(
        Phase.MUTATE, operation, old, new, userinfo, memo, teams, entitlements, dryrun, warnings
    )
    _enforce(
        verdict, kind=names.ACCESS_EXTENSION, operation=operation, body=new, caller=caller, dryrun=dryrun, patch=patch
    )
    hold_for_the_archive(memo, operation, new, patch)


@kopf.on.validate(
    names.GROUP,
    names.VERSION,
    names.EXTENSIONS,
    id="accessextensions-check",
    operations=[*WRITES, "DELETE"],
    persistent=True,
)
async def check_extension(
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
    """The final object: stamps intact; a new extension for the caller's own Active grant, within
    the caps; a decision by an approver of the owner team (a denial, with a reason, by an incident
    responder too); a deletion by its requester while it waits, or by an approver once it has ended."""
    verdict, caller = await _review(Phase.VALIDATE, operation, old, new, userinfo, memo, teams, entitlements, dryrun)
    _enforce(verdict, kind=names.ACCESS_EXTENSION, operation=operation, body=new or old, caller=caller, dryrun=dryrun)
    if operation == "DELETE" and old is not None and not dryrun and not _context(memo)[1].includes(caller):
        # Who withdrew it: the `extension-withdrawn` record cannot say (the object goes), this line does.
        _deleted(names.ACCESS_EXTENSION, old, str(wire.spec(old).get("requester") or "?"), caller)

"""`approve`, `deny`, `revoke`, `done` and `withdraw`: the API contract's annotations (and a
deletion), set with manners.

Each is what `kubectl annotate` would do (a JSON merge patch of `jitaccess.dev/*` annotations;
the admission webhook records who did it), preceded by the checks that let the plugin refuse
early and say why: a decision already taken is never overwritten, a requester never decides on
their own request, a backup approver waits for the escalation (the rule is the operator's own,
`jitaccess.domain.teams.may_approve`). The server has the last word: its refusal is printed as is.

Approvals and denials carry the uid and resourceVersion of the object they were checked against
(`objects.as_read`), so a decision taken by someone else in between makes the patch fail (409) and
the checks run again, on the same object only: one withdrawn and created again under its name
meanwhile is refused, never decided; so does a withdrawal, whose deletion is conditional on the
request checked (uid and resourceVersion). `revoke NAME --uid UID` (the "access is active" message
gives it) revokes that very grant, or Scheduled request, its patch carrying the uid: one ended and
deleted, and another granted under its name since, is named and left running.

A request approved a moment ago has no grant yet while the operator makes it (seconds; longer with
Identity Center slow, or the operator restarting), and its access begins once it is made: `revoke`
and `revoke --all` wait for that grant and revoke it, or say the access was not ended and how to
end it, never "nothing to revoke".
"""

from __future__ import annotations

import math
import shlex
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from jitaccess.api import names, wire
from jitaccess.cli import objects as o
from jitaccess.cli.errors import (
    OK,
    CliError,
    Disconnected,
    Interrupted,
    NotFound,
    Refused,
    StillPending,
    UsageError,
)
from jitaccess.cli.kube import ApiError
from jitaccess.cli.objects import Identity, Obj
from jitaccess.cli.session import Session
from jitaccess.cli.text import human_age

DEFAULT_REVOKE_WAIT = timedelta(seconds=30)
AWS_SESSIONS_NOTE = (
    "note: AWS sessions started before now stay valid until their session duration ends "
    "(Identity Center cannot cut them short)"
)
SESSIONS_REVOKED_NOTE = (
    "note: AWS sessions started before now are denied by the permission set until their session duration ends "
    "(session revocation)"
)


# --- approve / deny ----------------------------------------------------------------------------


#: How a decision names the kind of what it decides, as kubectl does (`request/NAME`, `extension/NAME`).
_KINDS = {
    "request": names.REQUESTS,
    "accessrequest": names.REQUESTS,
    names.REQUESTS: names.REQUESTS,
    "extension": names.EXTENSIONS,
    "accessextension": names.EXTENSIONS,
    names.EXTENSIONS: names.EXTENSIONS,
}


def decision_target(session: Session, given: str, uid: str | None = None) -> tuple[str, str, Obj | None]:
    """(plural, name, the object when already read) of what `given` names: `KIND/NAME`, or a bare
    NAME, which is an AccessRequest's (an AccessExtension's only with its `uid`).

    AccessRequests and AccessExtensions are different kinds, so one name can be both, and any
    requester can create either under a free name: a bare name that is both is refused, naming
    both, rather than deciding on the one looked up first. Otherwise someone who saw an extension
    waiting could create a request of its name, and its approver, running the command they were
    given, would approve that request instead. A bare name that is only an extension's is refused
    too, unless `uid` names that extension: an approver told `kubectl jit approve foo` of a request
    would otherwise, once its requester withdrew it and asked for an extension of their grant
    under its name, extend that grant. With `uid`, the name is that object's, whichever kind it is,
    or refused as gone: a name that is both is never answered with a prompt to say which kind
    without the uid (`request/NAME` would decide whatever request holds the name by then).
    """
    kind, _, name = given.rpartition("/")
    if kind:
        plural = _KINDS.get(kind.lower())
        if plural is None:
            raise Refused(f"{given}: the kind before / is request or extension (`request/NAME`, `extension/NAME`)")
        return plural, name, None
    found = {plural: o.get_optional(session.api, plural, name) for plural in (names.REQUESTS, names.EXTENSIONS)}
    request, extension = found[names.REQUESTS], found[names.EXTENSIONS]
    if uid and extension is not None:
        # `--uid` names one object: it is that one whichever kind it is, or neither. Never a prompt
        # to say which kind, which would drop the pin: `request/NAME` alone decides whatever
        # request holds the name by then.
        if wire.metadata(extension).get("uid") == uid:
            return names.EXTENSIONS, name, extension
        if request is None or wire.metadata(request).get("uid") != uid:
            raise Refused(
                f"{name} (uid {uid}) is gone: nothing was decided. The name is now "
                + " and ".join(_what_holds(plural, obj) for plural, obj in found.items() if obj is not None)
                + f"; look at it first (`kubectl jit status {name}`, `kubectl get accessextension {name} -o yaml`)"
            )
        return names.REQUESTS, name, request
    if request is not None and extension is not None:
        raise Refused(
            f"{name} is both {_what_holds(names.REQUESTS, request)} and {_what_holds(names.EXTENSIONS, extension)}: "
            "say which, "
            f"`kubectl jit approve request/{o.pinned(request)}` or `kubectl jit approve extension/{o.pinned(extension)}` "
            "(or deny). Nothing was decided"
        )
    if extension is not None:
        spec = wire.spec(extension)
        raise Refused(
            f"{name} is not an AccessRequest but an AccessExtension ({o.requester(extension) or 'no requester'}, "
            f"+{spec.get('duration')} on accessgrant {spec.get('grant')}): deciding on it moves that grant's end, "
            f"so say so: `kubectl jit approve extension/{o.pinned(extension)}` (or deny). Nothing was decided"
        )
    return names.REQUESTS, name, request


def _what_holds(plural: str, obj: Obj | None, *, state: bool = False) -> str:
    """Whose object it is, for a refusal that names what holds a name (`state`: and its Ready
    reason); empty for no object."""
    if obj is None:
        return ""
    now = f", {_state(obj)}" if state else ""
    if plural == names.GRANTS:
        spec = wire.spec(obj)
        return f"an AccessGrant ({spec.get('user') or 'no user'} in {o.holding(spec)}{now})"
    who = o.requester(obj) or "no requester"
    if plural == names.EXTENSIONS:
        return f"an AccessExtension ({who}, of accessgrant {wire.spec(obj).get('grant')}{now})"
    return f"an AccessRequest ({who}, {wire.spec(obj).get('entitlement')}{now})"


def decide(session: Session, given: str, *, approve: bool, reason: str | None, uid: str | None = None) -> int:
    api, me = session.api, session.me
    plural, name, read = decision_target(session, given, uid)
    if plural == names.EXTENSIONS:
        from jitaccess.cli import extend

        extension = read or o.get(api, names.EXTENSIONS, name)
        return extend.decide(session, extension, approve=approve, reason=reason, uid=uid)
    verb = "approve" if approve else "deny"
    meant = uid
    for _ in range(o.CONFLICT_RETRIES):
        # What the target's lookup read is as fresh as a read; after a conflict, read again: the
        # same request (the uid first read, or `uid`), changed meanwhile, is checked again.
        request, read = read or o.get(api, names.REQUESTS, name), None
        o.check_same(request, meant, "accessrequest", given=bool(uid))
        meant = meant or str(wire.metadata(request).get("uid") or "")
        check_undecided(request, denying=not approve)
        team = _owner_team(session, request)
        if approve:
            check_may_decide(request, team, me, verb)
        # A denial is the webhook's to judge: only it knows the incident responders (who may deny
        # any team's request), and its refusal is printed as it says it.
        flag = names.ANNOTATION_APPROVED if approve else names.ANNOTATION_DENIED
        patched: dict[str, Any] = {flag: "true"}
        if reason:
            patched[names.ANNOTATION_DECISION_REASON] = reason
        patch = {"metadata": {**o.as_read(request), "annotations": patched}}
        try:
            patched = api.merge_patch(o.path(names.REQUESTS, name), patch)
        except ApiError as exc:
            if o.not_as_read(exc):
                continue
            raise o.refusal(exc, f"{'approving' if approve else 'denying'} accessrequest {name}") from exc
        notes = wire.annotations_of(patched)
        if approve and names.ANNOTATION_APPROVALS in notes and names.ANNOTATION_APPROVED not in notes:
            # One approval of several (approvalsRequired): the webhook listed it and took the flag out.
            session.say(f"recorded your approval of accessrequest {name}: {_more_needed(patched, team)}")
            return OK
        spec = wire.spec(request)
        what = f"{o.requester(request) or 'the requester'}, {spec.get('entitlement')}"
        what += f" for {wire.status(request).get('duration') or spec.get('duration') or 'the default duration'}"
        because = f": {reason}" if reason else ""
        session.say(f"{'approved' if approve else 'denied'} accessrequest {name} ({what}){because}")
        return OK
    raise Refused(f"accessrequest {name} kept changing while you decided: run the command again")


def _approvers_now(request: Obj, team: Obj, excluding: set[str]) -> str:
    """Who may still decide `request`, in the operator's words (`requests.approvers_text`)."""
    # Imported here only, as in `check_may_decide`: pydantic is too slow for the request path.
    from jitaccess.api.models import TeamOwnershipSpec
    from jitaccess.domain.requests import approvers_text

    spec = TeamOwnershipSpec.model_validate(wire.spec(team))
    return approvers_text(spec, wire.is_true(request, names.ESCALATED), excluding={o.requester(request), *excluding})


def _more_needed(request: Obj, team: Obj) -> str:
    given = o.approvals_so_far(request)
    waiting = _approvers_now(request, team, set(given))
    return (
        f"approved so far by {', '.join(given)}; another approver of team {wire.name_of(team)} must approve ({waiting})"
    )


def check_undecided(request: Obj, *, denying: bool = False) -> None:
    """Refuse a second decision, and decisions on requests that have ended.

    An approval stamped that the operator has not taken (the `Approved` condition not True) may no
    longer count: its approver left the team, or, of several needed, one approval stopped counting.
    The webhook then admits a denial (`domain.admission`), which is what ends such a request before
    it times out; only it knows, so a denial is sent and the webhook judges."""
    name, notes = wire.name_of(request), wire.annotations_of(request)
    if wire.is_true(request, names.APPROVED):
        raise Refused(
            f"accessrequest {name} is already approved ({o.approved_by(request) or 'by an approver'}): "
            "a decision cannot be changed; revoke the grant instead"
        )
    if wire.is_true(request, names.DENIED):
        who = wire.status(request).get("deniedBy") or notes.get(names.ANNOTATION_DENIED_BY) or "an approver"
        raise Refused(f"accessrequest {name} is already denied by {who}: a decision cannot be changed")
    for flag, by, word in (
        (names.ANNOTATION_APPROVED, names.ANNOTATION_APPROVED_BY, "an approval"),
        (names.ANNOTATION_DENIED, names.ANNOTATION_DENIED_BY, "a denial"),
    ):
        if denying and flag == names.ANNOTATION_APPROVED:
            continue
        if wire.truthy(notes.get(flag)):
            who = f" by {notes[by]}" if notes.get(by) else ""
            raise Refused(
                f"accessrequest {name} already carries {word}{who} ({flag}=true): a decision cannot be changed"
            )
    reason = wire.ready_reason(request)
    if reason in names.REQUEST_FINISHED or reason == names.GRANTED:
        raise Refused(f"accessrequest {name} is {reason}: there is nothing left to decide ({o.ready_message(request)})")


def _owner_team(session: Session, request: Obj) -> Obj:
    entitlement_name = str(wire.spec(request).get("entitlement", ""))
    # No name is no object here (`object_path` refuses an empty one as the user's mistake).
    entitlement = o.get_optional(session.api, names.ENTITLEMENTS, entitlement_name) if entitlement_name else None
    if entitlement is None:
        raise NotFound(
            f"accessrequest {wire.name_of(request)} asks for entitlement {entitlement_name!r}, which does "
            "not exist: nobody can approve it"
        )
    owner = str(wire.spec(entitlement).get("owner", ""))
    team = o.get_optional(session.api, names.TEAMS, owner) if owner else None
    if team is None:
        raise NotFound(
            f"entitlement {entitlement_name} names owner team {owner!r}, which does not exist: nobody can approve it"
        )
    return team


def check_may_decide(request: Obj, team: Obj, me: Identity, verb: str) -> None:
    # The operator's own rule, imported here only: pydantic is too slow for the request path.
    from jitaccess.api.models import TeamOwnershipSpec
    from jitaccess.domain.teams import Caller, may_approve

    escalated = wire.is_true(request, names.ESCALATED)
    problem = may_approve(
        TeamOwnershipSpec.model_validate(wire.spec(team)),
        Caller(me.username, me.groups),
        requester=o.requester(request),
        escalated=escalated,
    )
    if problem is not None:
        approvers = _approvers_now(request, team, {me.username})
        raise Refused(
            f"you may not {verb} accessrequest {wire.name_of(request)}: {problem} "
            f"(team {wire.name_of(team)} approvers now: {approvers})"
        )


# --- withdraw ------------------------------------------------------------------------------------


def withdraw(session: Session, name: str) -> int:
    """Delete my own request while nobody has decided on it, or while it is approved for a later
    start (`Scheduled`) that has not come (the webhook allows nobody else: the owner team's
    approvers deny a pending one and revoke a Scheduled one, which names them in its records)."""
    api, me = session.api, session.me
    for _ in range(o.CONFLICT_RETRIES):
        request = o.get(api, names.REQUESTS, name)
        requester = o.requester(request)
        if requester != me.username:
            raise Refused(
                f"accessrequest {name} is {requester or 'someone else'}'s: only its requester withdraws a request "
                f"(an approver of the owner team denies a pending one, `kubectl jit deny {o.pinned(request)} --reason ...`)"
            )
        if wire.deleting(request):
            session.say(f"accessrequest {name} is withdrawn already: it goes once its audit record is archived")
            return OK
        state = wire.ready_reason(request)
        # Approved for a start still to come (`Scheduled`): no access yet, so it may be taken back.
        if state is not None and state != names.SCHEDULED and not o.awaiting_decision(request):
            word = "approved" if wire.is_true(request, names.APPROVED) else state
            raise Refused(
                f"accessrequest {name} is no longer pending ({word}: {o.ready_message(request)}): only a request "
                "nobody has decided on can be withdrawn (a decided one stays as the record; access it gave is "
                "ended with `kubectl jit done`)"
            )
        try:
            _delete_as_read(session, names.REQUESTS, request)
        except ApiError as exc:
            if exc.status == 409:
                continue
            raise o.refusal(exc, f"withdrawing accessrequest {name}") from exc
        session.say(
            f"withdrew accessrequest {name} ({wire.spec(request).get('entitlement')}): nothing is granted of it"
        )
        return OK
    raise Refused(f"accessrequest {name} kept changing while you withdrew it: run the command again")


# --- revoke / done -------------------------------------------------------------------------------


def revoke(
    session: Session, name: str, *, reason: str | None, wait: bool, timeout: timedelta | None, uid: str | None = None
) -> int:
    api = session.api
    grant = o.get_optional(api, names.GRANTS, name)
    if uid:
        return _revoke_meant(session, name, uid, grant, reason=reason, wait=wait, timeout=timeout)
    if grant is None or wire.ready_reason(grant) in names.GRANT_FINISHED:
        # No live grant: a request approved for a later start (`Scheduled`) is revoked before it
        # starts, also when an ended grant of an earlier request has its name; one approved a
        # moment ago has its grant waited for, and revoked.
        request = o.get_optional(api, names.REQUESTS, name)
        if request is not None and wire.ready_reason(request) == names.SCHEDULED:
            return _revoke_scheduled(session, request, reason)
        if request is not None and (grant is None or not o.made_for(grant, request)):
            if o.access_under_way(request):
                return _revoke_under_way(session, request, reason=reason, wait=wait, timeout=timeout)
            if grant is None:
                # Never "did you mean" another grant: the name is this request's, and the grant
                # offered would be someone else's access (or another of the user's).
                raise Refused(
                    f"accessrequest {name} is {_state(request)}: it has no grant, so there is no access to revoke"
                    f"{_instead(session, request, None)}. Nothing was revoked"
                )
        grant = grant or o.get(api, names.GRANTS, name)
    return _revoke_grant(session, grant, reason=reason, wait=wait, timeout=timeout)


def _revoke_meant(
    session: Session,
    name: str,
    uid: str,
    grant: Obj | None,
    *,
    reason: str | None,
    wait: bool,
    timeout: timedelta | None,
) -> int:
    """`revoke NAME --uid UID`: the AccessGrant of that uid, or the AccessRequest of that uid when
    it is approved for a later start (`Scheduled`), or when its access runs or is under way: then
    the grant the operator made for it (labelled with that uid) is revoked, or waited for. Whatever
    else holds the name now (the grant meant ended and was deleted, and another was granted under
    its name) is named, never revoked: the user sees what it is and the command that would revoke it."""
    if grant is not None and wire.metadata(grant).get("uid") == uid:
        return _revoke_grant(session, grant, reason=reason, wait=wait, timeout=timeout, pinned=True)
    request = o.get_optional(session.api, names.REQUESTS, name)
    if request is None or wire.metadata(request).get("uid") != uid:
        raise _gone(session, name, uid, grant, request)
    made = _made_for(session, request, grant)
    if made is not None:
        return _revoke_grant(session, made, reason=reason, wait=wait, timeout=timeout, pinned=True)
    if o.access_under_way(request) and (grant is None or not o.made_for(grant, request)):
        return _revoke_under_way(session, request, reason=reason, wait=wait, timeout=timeout)
    if wire.ready_reason(request) != names.SCHEDULED:
        raise Refused(
            f"accessrequest {name} (uid {uid}) is {_state(request)}: revoke ends an AccessGrant, or a request "
            f"approved for a later start (Scheduled) before it starts{_instead(session, request, grant)}. "
            "Nothing was revoked"
        )
    return _revoke_scheduled(session, request, reason)


def _made_for(session: Session, request: Obj, grant: Obj | None) -> Obj | None:
    """The live grant the operator made for `request` (its `status.grant`, else its name), only when
    labelled with the request's uid: a grant made by hand, without the label, is not taken for it on
    a guess (`_instead` names it)."""
    named = str(wire.status(request).get("grant") or wire.name_of(request))
    if grant is None or wire.name_of(grant) != named:
        grant = o.get_optional(session.api, names.GRANTS, named)
    if grant is None or wire.ready_reason(grant) in names.GRANT_FINISHED:
        return None
    labelled = (wire.metadata(grant).get("labels") or {}).get(names.LABEL_REQUEST)
    return grant if labelled and labelled == wire.uid_of(request) else None


def _state(obj: Obj) -> str:
    return wire.ready_reason(obj) or "New"


def _instead(session: Session, request: Obj, grant: Obj | None) -> str:
    """What acts on a request that `revoke --uid` named but does not end: its own live grant, or,
    while it waits, its withdrawal by its requester or a decision by anyone else (the webhook
    refuses a requester's decision on their own request)."""
    if grant is not None and wire.ready_reason(grant) not in names.GRANT_FINISHED and o.made_for(grant, request):
        return f"; its access is accessgrant {wire.name_of(grant)}, `kubectl jit revoke {o.pinned(grant)}`"
    if o.awaiting_decision(request):
        if o.requester(request) == session.me.username:
            return f"; your own request waiting for a decision is withdrawn, `kubectl jit withdraw {wire.name_of(request)}`"
        return f'; one waiting for a decision is denied, `kubectl jit deny {o.pinned(request)} --reason "..."`'
    return ""


def _gone(session: Session, name: str, uid: str, grant: Obj | None, request: Obj | None) -> CliError:
    """The refusal of `revoke NAME --uid UID` when neither object of the name has that uid: what
    holds the name now, and, only when it is the user's own, how to revoke it (pinned to it, in
    turn). Someone else's is named, never offered: the user meant another object, and an approver
    or incident responder pasting the offered line would end another person's access (as a
    decision's refusal, attack 138, offers only a look at what holds the name)."""
    held = [_what_holds(plural, obj, state=True) for plural, obj in ((names.GRANTS, grant), (names.REQUESTS, request))]
    there = [what for what in held if what]
    if not there:
        return NotFound(
            f"{name} (uid {uid}) is gone: nothing was revoked, and no AccessGrant or AccessRequest has its name now"
        )
    me = session.me.username
    if grant is not None and wire.ready_reason(grant) not in names.GRANT_FINISHED:
        mine = wire.spec(grant).get("user") == me
        then = f"; to revoke it, `kubectl jit revoke {o.pinned(grant)}`" if mine else ": it is not yours"
    elif request is not None and wire.ready_reason(request) == names.SCHEDULED:
        mine = o.requester(request) == me
        then = (
            f"; to revoke it before it starts, `kubectl jit revoke {o.pinned(request)}`"
            if mine
            else ": it is not yours"
        )
    else:
        then = ": nothing there is to revoke"
    return Refused(
        f"{name} (uid {uid}) is gone: nothing was revoked. The name is now {' and '.join(there)}; "
        f"look at it first (`kubectl jit status {name}`){then}"
    )


def _revoke_grant(
    session: Session,
    grant: Obj,
    *,
    reason: str | None,
    wait: bool,
    timeout: timedelta | None,
    pinned: bool = False,
) -> int:
    """Revoke `grant` (`pinned`: only while the name holds this very grant, its uid) and, with
    `wait`, watch until the operator has ended it."""
    name, state = wire.name_of(grant), wire.ready_reason(grant)
    if state in names.GRANT_FINISHED:
        raise Refused(f"accessgrant {name} has already ended ({state}: {o.ready_message(grant)})")
    spec = wire.spec(grant)
    # Someone else's: an approver of the owner team or an incident responder (whom only the webhook
    # knows, JITACCESS_RESPONDER_GROUPS) may end it; the webhook decides, and its refusal says why.
    patched = _mark_revoked(session, grant, reason, pinned=pinned)
    if not wait:
        session.say(f"revoking accessgrant {name} ({spec.get('user')} in {spec.get('groupName')})")
        return OK
    version = str(patched["metadata"].get("resourceVersion", ""))
    return _wait_ended(session, [patched], timeout or DEFAULT_REVOKE_WAIT, version)


def _revoke_under_way(
    session: Session, request: Obj, *, reason: str | None, wait: bool, timeout: timedelta | None
) -> int:
    """Revoke the access of a request approved a moment ago, whose grant the operator is making:
    with `wait`, the grant is waited for and revoked as soon as it is made (pinned: the one made for
    this request, its `jitaccess.dev/request` label, and by its own uid); without, the user is told
    to run the command again once it exists. Refusing at once would leave the access to begin
    seconds later, after a revocation the user believes done."""
    name = wire.name_of(request)
    # Pinned: once the grant exists, the command finds this request's (or names what holds the name
    # instead, this request withdrawn and another asked under its name meanwhile).
    again = f"`kubectl jit revoke {o.pinned(request)}`"
    if not wait:
        raise Refused(
            f"accessrequest {name} is approved and its grant is being made: there is no grant to revoke yet, and its "
            f"access begins once there is. Nothing was revoked: run {again} again once it exists (`kubectl jit status "
            f"{name}` shows it), or without --no-wait, which waits for the grant and revokes it"
        )
    limit = timeout or DEFAULT_REVOKE_WAIT
    session.say(f"accessrequest {name} is approved and its grant is being made: waiting for it, to revoke it")
    waiting = {_key(request): request}
    try:
        for _, made in _await_grants(session, waiting, time.monotonic() + limit.total_seconds()):
            if isinstance(made, str):
                session.say(f"accessrequest {name} {made} before its grant was made: there is no access to revoke")
                return OK
            return _revoke_grant(session, made, reason=reason, wait=True, timeout=limit, pinned=True)
    except KeyboardInterrupt:
        raise Interrupted(
            f"stopped waiting; accessrequest {name} is approved and its grant is being made: nothing was revoked, "
            f"and its access begins once the grant is made: run {again} again"
        ) from None
    raise Refused(
        f"accessrequest {name} is approved, but its grant was not made within {human_age(limit.total_seconds())}: "
        f"nothing was revoked, and its access begins once it is made. Run {again} again (`kubectl jit status "
        f"{name}` shows where it stands)"
    )


#: How often a wait for the grant of a request approved a moment ago reads again.
GRANT_POLL_SECONDS = 1.0


def _await_grants(session: Session, waiting: dict[str, Obj], deadline: float) -> Iterator[tuple[Obj, Obj | str]]:
    """Read the requests of `waiting` (uid -> request, each approved, its grant being made) and
    their grants again until each has its grant (`(request, grant)`: the grant made for it, by its
    `jitaccess.dev/request` label) or has ended without one (`(request, how, in words)`: failed,
    denied, deleted), or until `deadline` (monotonic): those left stay in `waiting`. A read the
    cluster does not answer (a dropped connection) is tried again in the next round."""
    while waiting:
        for key, request in list(waiting.items()):
            try:
                grant = _grant_made(session, request)
                now = None if grant is not None else o.get_optional(session.api, names.REQUESTS, wire.name_of(request))
            except Disconnected:
                continue
            if grant is not None:
                del waiting[key]
                yield request, grant
            elif now is None or _key(now) != key:
                del waiting[key]
                yield request, "was deleted"
            elif not o.access_under_way(now):
                del waiting[key]
                yield request, f"ended {_state(now)} ({o.ready_message(now) or 'no message'})"
        remaining = deadline - time.monotonic()
        if not waiting or remaining <= 0:
            return
        time.sleep(min(GRANT_POLL_SECONDS, remaining))


def _grant_made(session: Session, request: Obj) -> Obj | None:
    """The grant made for `request` (it has the request's name, and its uid as label), if made yet."""
    name = str(wire.status(request).get("grant") or wire.name_of(request))
    grant = o.get_optional(session.api, names.GRANTS, name)
    return grant if grant is not None and o.made_for(grant, request) else None


def _revoke_scheduled(session: Session, request: Obj, reason: str | None) -> int:
    """Revoke a request approved for a later start: the operator ends it `Revoked` at once, and it
    never starts (the webhook decides who may, as for a grant, and its refusal says why)."""
    name, spec = wire.name_of(request), wire.spec(request)
    try:
        _cancel_as_read(session, request, reason)
    except ApiError as exc:
        if o.not_as_read(exc):
            raise Refused(f"accessrequest {name} changed while you revoked it: run the command again") from exc
        raise o.refusal(exc, f"revoking accessrequest {name}") from exc
    session.say(
        f"revoked accessrequest {name} ({o.requester(request)}, {spec.get('entitlement')}, Scheduled for "
        f"{spec.get('startTime')}): it will not start"
    )
    return OK


def done(session: Session, *, wait: bool, timeout: timedelta | None) -> int:
    """End every grant of mine that is active or still being provisioned.

    A grant already revoked (by an approver, a responder, an earlier `done`) and not yet ended is
    not marked again (the webhook refuses a second revocation's reason) but waited for with the
    others. A refusal of one grant does not keep the others running: each is named, and the
    command fails once the rest are ended."""
    api, me = session.api, session.me
    grants, version = o.list_all(api, names.GRANTS)
    mine = [
        g
        for g in grants
        if wire.spec(g).get("user") == me.username and wire.ready_reason(g) not in names.GRANT_FINISHED
    ]
    if not mine:
        session.say(f"{me.username} holds no active grants: nothing to end")
        return OK
    ending, refused = [], []
    for grant in mine:
        name = wire.name_of(grant)
        if wire.truthy(wire.annotations_of(grant).get(names.ANNOTATION_REVOKED)):
            ending.append(grant)  # revoked already: the operator is ending it
            continue
        try:
            _mark_revoked(session, grant, "ended early by the grantee (kubectl jit done)")
        except NotFound:
            continue  # gone meanwhile: nothing left to end
        except Refused as exc:
            refused.append(name)
            session.note(f"refused: accessgrant {name} ({wire.spec(grant).get('groupName')}): {exc.message}")
            continue
        ending.append(grant)
    problem = (
        f"{len(refused)} of your grants could not be ended ({', '.join(refused)}): the reasons are above"
        if refused
        else ""
    )
    if not wait:
        for grant in ending:
            session.say(f"ending accessgrant {wire.name_of(grant)} ({wire.spec(grant).get('groupName')})")
        ending = []
    return _ended_then(session, ending, timeout or DEFAULT_REVOKE_WAIT, version, problem)


def _ended_then(
    session: Session, grants: list[Obj], timeout: timedelta, version: str, problem: str, *, each: bool = True
) -> int:
    """Wait for `grants` to end (`_wait_ended`; none, nothing to wait for), then fail with `problem`,
    what could not be ended, if any: access left running weighs more than a confirmation not seen in
    time, which is then only noted."""
    if grants:
        try:
            _wait_ended(session, grants, timeout, version, each=each)
        except StillPending as exc:
            if not problem:
                raise
            session.note(exc.message)
    if problem:
        raise Refused(problem)
    return OK


# --- revoke --all (an incident) ------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What `revoke --all` ends: every team's, or one entitlement's or one team's; requests and
    extensions too, or not."""

    entitlement: str | None = None
    team: str | None = None
    grants_only: bool = False

    def __post_init__(self) -> None:
        # The filters are tested by truthiness: an empty one would widen the scope to everyone's.
        for flag, value in (("--entitlement", self.entitlement), ("--team", self.team)):
            if value is not None and not value.strip():
                raise UsageError(f"{flag} is empty: name one, or leave {flag} out to end every team's")


@dataclass
class _Tally:
    revoked: list[Obj] = field(default_factory=list)
    denied: int = 0
    #: Requests approved for a later start (`Scheduled`), revoked before they start.
    cancelled: int = 0
    withdrawn: int = 0
    extensions_denied: int = 0
    extensions_withdrawn: int = 0
    refused: list[str] = field(default_factory=list)
    #: uid of every object acted on or refused: each is tried once.
    seen: set[str] = field(default_factory=set)
    #: uid -> (plural, name) of requests and extensions that changed as they were being ended: each
    #: is read and tried again in the next pass, and said to be left when the passes run out.
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: uid -> request approved, its grant not made yet (`objects.access_under_way`): its grant is
    #: waited for and revoked; those still without one at the end are `left`, not ended.
    under_way: dict[str, Obj] = field(default_factory=dict)
    seen_under_way: set[str] = field(default_factory=set)
    left: list[Obj] = field(default_factory=list)

    def summary(self) -> str:
        def count(n: int, what: str, done: str) -> str:
            return f"{n} {what}{'' if n == 1 else 's'} {done}"

        parts = [count(len(self.revoked), "grant", "revoked")]
        parts += [count(self.denied, "request", "denied"), count(self.withdrawn, "request", "withdrawn")]
        parts += [count(self.cancelled, "Scheduled request", "revoked")] * bool(self.cancelled)
        parts += [count(self.extensions_denied, "extension", "denied")]
        parts += [count(self.extensions_withdrawn, "extension", "withdrawn")] * bool(self.extensions_withdrawn)
        parts += [count(len(self.left), "approved request", "not ended (no grant yet)")] * bool(self.left)
        return ", ".join(parts) + (f", {len(self.refused)} refused" if self.refused else "")


#: Passes over the lists: a request approved while the first pass ran has a grant in the next.
_ALL_PASSES = 3


def revoke_all(session: Session, scope: Scope, *, reason: str, wait: bool, timeout: timedelta | None) -> int:
    """End everything in `scope` that gives or may soon give access: Active (and still provisioning)
    grants are revoked, pending requests denied (one's own withdrawn), Scheduled ones withdrawn,
    pending extensions denied (one's own withdrawn), so that a grant left running is not prolonged.

    The cluster decides what the caller may end (an incident responder: everyone's); each refusal is
    named on stderr and makes the exit code REFUSED. The lists are read again until a pass finds
    nothing new, so a request approved meanwhile has its grant revoked too. A request approved whose
    grant is not made yet (the operator making it; a denial refused as it was approved a moment
    before) is access under way: with `wait`, its grant is waited for (within `timeout`) and revoked
    as it appears; one still without a grant then (or without `wait`) is named as not ended, with
    the command that ends it, and makes the exit code REFUSED.
    """
    api = session.api
    tally = _Tally()
    owners: dict[str, str] = {}
    if scope.team or scope.entitlement:
        entitlements, _ = o.list_all(api, names.ENTITLEMENTS)
        owners = {wire.name_of(e): str(wire.spec(e).get("owner") or "") for e in entitlements}
        # A typo ends nothing, which looks like "nothing to revoke": say the name matches nothing now
        # (what it recorded is still ended: a deleted Entitlement's grants may still be running).
        if scope.team and scope.team not in owners.values():
            session.note(
                f"note: no Entitlement is owned by team {scope.team} now{_close(scope.team, owners.values())}; "
                "grants it recorded are still ended"
            )
        if scope.entitlement and scope.entitlement not in owners:
            session.note(
                f"note: no Entitlement {scope.entitlement} exists now{_close(scope.entitlement, owners)}; "
                "grants and requests that name it are still ended"
            )
    version = ""
    for _ in range(_ALL_PASSES):
        grants, listed = o.list_all(api, names.GRANTS)
        version = version or listed
        acted = 0
        if not scope.grants_only:
            # Before the grants: revoking a grant fails its waiting extensions, and denying one that the
            # operator failed meanwhile would be refused. Denied, each says why, as requests do.
            extensions, _ = o.list_all(api, names.EXTENSIONS)
            of = {wire.name_of(g): g for g in grants}
            acted += sum(
                _end_extension(session, x, reason, tally)
                for x in extensions
                if _in_scope(_extension_scope(x, of), scope, owners)
            )
        acted += sum(_revoke_one(session, g, reason, tally) for g in grants if _in_scope(g, scope, owners))
        # Requests too with --grants-only: one approved a moment ago is a grant about to be made.
        requests, _ = o.list_all(api, names.REQUESTS)
        made = {wire.name_of(g): g for g in grants}
        for request in (r for r in requests if _in_scope(r, scope, owners)):
            if not scope.grants_only:
                acted += _end_request(session, request, reason, tally)
            _track_under_way(session, request, tally, made, deciding=not scope.grants_only)
        if not acted:
            break
    _left_changing(session, tally)
    limit = timeout or DEFAULT_REVOKE_WAIT
    _end_under_way(session, tally, reason, limit if wait else timedelta(0))
    ended = tally.denied + tally.cancelled + tally.withdrawn + tally.extensions_denied + tally.extensions_withdrawn
    if not tally.revoked and not ended and not tally.refused and not tally.left:
        what = "grants" if scope.grants_only else "grants, requests or extensions"
        session.say(f"nothing to revoke: no active {what}{_scope_text(scope)}")
        return OK
    session.say(tally.summary() + _scope_text(scope))
    problems = _not_ended(tally, reason, limit if wait else None)
    return _ended_then(session, tally.revoked if wait else [], limit, version, problems, each=False)


def _not_ended(tally: _Tally, reason: str, waited: timedelta | None) -> str:
    """What `revoke --all` could not end, in words (empty: it ended everything it found)."""
    said = []
    if tally.refused:
        said.append(
            f"{len(tally.refused)} could not be ended ({', '.join(tally.refused)}): the reasons are above. Incident "
            "responders (the groups of JITACCESS_RESPONDER_GROUPS) may end everyone's; others their own grants and, "
            "as approvers, their teams'"
        )
    if tally.left:
        within = f"within {human_age(waited.total_seconds())}" if waited is not None else "yet (--no-wait)"
        commands = "; ".join(f"`kubectl jit revoke {o.pinned(r)} --reason {shlex.quote(reason)}`" for r in tally.left)
        said.append(
            f"{len(tally.left)} approved request{'' if len(tally.left) == 1 else 's'} had no grant {within}, and "
            f"{'its access begins' if len(tally.left) == 1 else 'their access begins'} once the operator makes it: "
            f"end {'it' if len(tally.left) == 1 else 'each'} with {commands} (it waits for the grant and revokes it)"
        )
    return ". ".join(said)


def _end_under_way(session: Session, tally: _Tally, reason: str, limit: timedelta) -> None:
    """Wait, within `limit`, for the grant of each request approved but not yet granted (listed in
    the passes), and revoke it as it appears; a request that ends without one is let go. Those
    still without a grant are `left`, each named on stderr."""
    waiting = dict(tally.under_way)
    try:
        for request, made in _await_grants(session, waiting, time.monotonic() + limit.total_seconds()):
            if isinstance(made, str):
                session.say(
                    f"AccessRequest {wire.name_of(request)} {made} before its grant was made: nothing to revoke"
                )
            else:
                _revoke_one(session, made, reason, tally)
    except KeyboardInterrupt:
        raise Interrupted(
            f"stopped waiting for the grants of approved requests ({', '.join(wire.name_of(r) for r in waiting.values())}): "
            "they were not revoked, and their access begins once the operator makes them; run the command again"
        ) from None
    for request in waiting.values():
        tally.left.append(request)
        session.note(
            f"not ended: AccessRequest {wire.name_of(request)} ({o.requester(request)}) is approved, and its grant "
            "is not made yet: its access begins once it is"
        )


def _close(name: str, known: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(set(known) - {""}), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _scope_text(scope: Scope) -> str:
    parts = [f"entitlement {scope.entitlement}"] * bool(scope.entitlement) + [f"team {scope.team}"] * bool(scope.team)
    return f" (in {' and '.join(parts)})" if parts else ""


def _in_scope(obj: Obj, scope: Scope, owners: dict[str, str]) -> bool:
    spec = wire.spec(obj)
    entitlement = str(spec.get("entitlement") or "")
    if scope.entitlement and entitlement != scope.entitlement:
        return False
    if scope.team:
        # A grant records its owner team (`spec.ownerTeam`); a request's is its Entitlement's now.
        owner = str(spec.get("ownerTeam") or owners.get(entitlement, ""))
        return owner == scope.team
    return True


def _extension_scope(extension: Obj, grants: dict[str, Obj]) -> Obj:
    """What scopes an extension: its grant (entitlement, recorded owner team), or, with the grant
    gone, the entitlement the operator recorded on it."""
    grant = grants.get(str(wire.spec(extension).get("grant") or ""))
    return grant or {"spec": {"entitlement": wire.status(extension).get("entitlement")}}


def _first_time(obj: Obj, tally: _Tally) -> bool:
    key = _key(obj)
    if key in tally.seen:
        return False
    tally.seen.add(key)
    tally.changed.pop(key, None)
    return True


def _key(obj: Obj) -> str:
    return str(wire.metadata(obj).get("uid") or wire.name_of(obj))


def _changed(obj: Obj, plural: str, tally: _Tally) -> None:
    """`obj` changed (or is another) since it was listed: the next pass reads it again."""
    tally.seen.discard(_key(obj))
    tally.changed[_key(obj)] = (plural, wire.name_of(obj))


def _left_changing(session: Session, tally: _Tally) -> None:
    """Those that changed as they were being ended and were not ended by the last pass: still to
    end as read now, each is said to be left, so that the command does not end as if all were."""
    for key, (plural, name) in tally.changed.items():
        try:
            now = o.get_optional(session.api, plural, name)
        except CliError:
            now = {}  # not known: said to be left
        if plural == names.REQUESTS and now and _key(now) == key and o.access_under_way(now):
            tally.under_way[key] = now  # approved meanwhile: its grant is waited for
            continue
        if now is None or (now and (_key(now) != key or not _to_end(plural, now))):
            continue  # gone, another object now, or ended (or decided) meanwhile
        kind = "accessrequest" if plural == names.REQUESTS else "accessextension"
        tally.refused.append(f"{kind} {name}")
        session.note(f"refused: {kind} {name} kept changing while it was being ended: run the command again")


def _to_end(plural: str, obj: Obj) -> bool:
    return _request_to_end(obj) if plural == names.REQUESTS else _extension_to_end(obj)


def _request_to_end(request: Obj) -> bool:
    """Pending, or approved for a later start (`Scheduled`): what an incident's revoke --all ends."""
    scheduled = wire.ready_reason(request) == names.SCHEDULED
    return (
        scheduled or o.awaiting_decision(request) or (wire.ready_reason(request) is None and not request.get("status"))
    )


def _extension_to_end(extension: Obj) -> bool:
    """Pending, and no decision on it yet."""
    state, notes = wire.ready_reason(extension), wire.annotations_of(extension)
    pending = state == names.PENDING or (state is None and not extension.get("status"))
    decided = any(wire.truthy(notes.get(f)) for f in (names.ANNOTATION_APPROVED, names.ANNOTATION_DENIED))
    return pending and not decided


def _revoke_one(session: Session, grant: Obj, reason: str, tally: _Tally) -> bool:
    if wire.ready_reason(grant) in names.GRANT_FINISHED or wire.truthy(
        wire.annotations_of(grant).get(names.ANNOTATION_REVOKED)
    ):
        return False
    if not _first_time(grant, tally):
        return False
    name, spec = wire.name_of(grant), wire.spec(grant)
    try:
        tally.revoked.append(_mark_revoked(session, grant, reason))
    except NotFound:
        return False  # gone meanwhile: nothing left to end
    except Refused as exc:
        tally.refused.append(f"accessgrant {name}")
        session.note(f"refused: AccessGrant {name} ({spec.get('user')}): {exc.message}")
        return True
    session.say(f"revoked AccessGrant {name} ({spec.get('user')} in {o.holding(spec)})")
    return True


def _track_under_way(session: Session, request: Obj, tally: _Tally, grants: dict[str, Obj], *, deciding: bool) -> None:
    """List `request` as access under way while it is approved and its grant is not in `grants`
    (by name) yet; `deciding`: one still to end (pending, Scheduled) is left to `_end_request`,
    which lists it too when its denial is refused as approved."""
    if deciding and _request_to_end(request):
        return
    made = grants.get(str(wire.status(request).get("grant") or wire.name_of(request)))
    if o.access_under_way(request) and (made is None or not o.made_for(made, request)):
        _under_way(session, request, tally)
    else:
        tally.under_way.pop(_key(request), None)  # granted (its grant is revoked with the grants), or ended


def _end_request(session: Session, request: Obj, reason: str, tally: _Tally) -> bool:
    """Deny a pending request, revoke a Scheduled one (withdraw either if one's own); nothing else."""
    scheduled = wire.ready_reason(request) == names.SCHEDULED
    if not _request_to_end(request) or not _first_time(request, tally):
        return False
    name, requester = wire.name_of(request), o.requester(request)
    what = f"{requester}, {wire.spec(request).get('entitlement')}"
    try:
        if requester == session.me.username:
            _delete_as_read(session, names.REQUESTS, request)
            tally.withdrawn += 1
            session.say(f"withdrew AccessRequest {name} ({what}{', Scheduled' if scheduled else ''})")
        elif scheduled:
            # Revoked, not deleted: the stamp names who ended it and why in its records (attack 124).
            _cancel_as_read(session, request, reason)
            tally.cancelled += 1
            session.say(f"revoked AccessRequest {name} ({what}, Scheduled)")
        else:
            _deny_as_read(session, names.REQUESTS, request, reason)
            tally.denied += 1
            session.say(f"denied AccessRequest {name} ({what})")
    except ApiError as exc:
        if exc.status == 404:
            return False  # gone meanwhile: nothing left to end
        if o.not_as_read(exc):
            _changed(request, names.REQUESTS, tally)
            return True
        try:
            now = o.get_optional(session.api, names.REQUESTS, name)
        except CliError:
            now = None
        if now is not None and _key(now) == _key(request) and o.access_under_way(now):
            # Refused as approved a moment before (the approval stamped, the operator not yet acted on
            # it): not a refusal of the caller's, but access under way, whose grant is waited for.
            _under_way(session, now, tally)
            return True
        tally.refused.append(f"accessrequest {name}")
        session.note(f"refused: AccessRequest {name} ({requester}): {o.refusal(exc, 'ending it').message}")
    return True


def _under_way(session: Session, request: Obj, tally: _Tally) -> None:
    """List `request` as access under way (said once): its grant is waited for and revoked."""
    key = _key(request)
    if key not in tally.under_way and key not in tally.seen_under_way:
        session.say(
            f"AccessRequest {wire.name_of(request)} ({o.requester(request)}, {wire.spec(request).get('entitlement')}) "
            "is approved, its grant not made yet"
        )
    tally.seen_under_way.add(key)
    tally.under_way[key] = request


def _delete_as_read(session: Session, plural: str, obj: Obj) -> None:
    """Delete `obj` only as it was read (uid and resourceVersion as preconditions): a request or
    extension decided, or created again under its name, meanwhile is not withdrawn (409)."""
    session.api.delete(o.path(plural, wire.name_of(obj)), o.as_read(obj))


def _deny_as_read(session: Session, plural: str, obj: Obj, reason: str) -> None:
    """Deny `obj` with `reason`, only as it was read (`objects.as_read`: refused when it changed,
    or is another created under its name since)."""
    annotations = {names.ANNOTATION_DENIED: "true", names.ANNOTATION_DECISION_REASON: reason}
    patch = {"metadata": {**o.as_read(obj), "annotations": annotations}}
    session.api.merge_patch(o.path(plural, wire.name_of(obj)), patch)


def _cancel_as_read(session: Session, request: Obj, reason: str | None) -> None:
    """Revoke a request approved for a later start (`jitaccess.dev/revoked=true`, with `reason`),
    only as it was read (`objects.as_read`: refused when it changed, its start begun meanwhile, say)."""
    annotations = {names.ANNOTATION_REVOKED: "true"}
    if reason:
        annotations[names.ANNOTATION_REVOKE_REASON] = reason
    patch = {"metadata": {**o.as_read(request), "annotations": annotations}}
    session.api.merge_patch(o.path(names.REQUESTS, wire.name_of(request)), patch)


def _end_extension(session: Session, extension: Obj, reason: str, tally: _Tally) -> bool:
    """Deny a pending extension (withdraw one's own); nothing else: one decided or finished is left."""
    if not _extension_to_end(extension) or not _first_time(extension, tally):
        return False
    name, spec, requester = wire.name_of(extension), wire.spec(extension), o.requester(extension)
    what = f"{requester}, +{spec.get('duration')} on AccessGrant {spec.get('grant')}"
    try:
        if requester == session.me.username:
            _delete_as_read(session, names.EXTENSIONS, extension)
            tally.extensions_withdrawn += 1
            session.say(f"withdrew AccessExtension {name} ({what})")
        else:
            _deny_as_read(session, names.EXTENSIONS, extension, reason)
            tally.extensions_denied += 1
            session.say(f"denied AccessExtension {name} ({what})")
    except ApiError as exc:
        if exc.status == 404:
            return False  # gone meanwhile: nothing left to end
        if o.not_as_read(exc):
            _changed(extension, names.EXTENSIONS, tally)
            return True
        try:
            now = o.get_optional(session.api, names.EXTENSIONS, name)
        except CliError:
            now = extension
        if now is None or wire.ready_reason(now) in names.EXTENSION_FINISHED:
            return False  # finished meanwhile (its grant ended, or an approver decided): nothing left to deny
        tally.refused.append(f"accessextension {name}")
        session.note(f"refused: AccessExtension {name} ({requester}): {o.refusal(exc, 'denying it').message}")
    return True


def _mark_revoked(session: Session, grant: Obj, reason: str | None, *, pinned: bool = False) -> Obj:
    """Annotate `grant` revoked; `pinned`: with its uid in the patch, so that another grant created
    under its name since the read is not revoked (the API server refuses the patch: 422 on
    metadata.uid), and the refusal says what holds the name now."""
    name = wire.name_of(grant)
    patched = {names.ANNOTATION_REVOKED: "true"}
    if reason:
        patched[names.ANNOTATION_REVOKE_REASON] = reason
    uid = str(wire.metadata(grant).get("uid") or "")
    metadata: dict[str, Any] = {"uid": uid} if pinned and uid else {}
    try:
        return session.api.merge_patch(o.path(names.GRANTS, name), {"metadata": {**metadata, "annotations": patched}})
    except ApiError as exc:
        if metadata and (o.not_as_read(exc) or exc.object_missing):
            now = o.get_optional(session.api, names.GRANTS, name)
            if now is None or wire.metadata(now).get("uid") != uid:
                raise _gone(session, name, uid, now, o.get_optional(session.api, names.REQUESTS, name)) from exc
        raise o.refusal(exc, f"revoking accessgrant {name}") from exc


def _wait_ended(session: Session, grants: list[Obj], timeout: timedelta, version: str, *, each: bool = True) -> int:
    """Watch the grants from `version` (taken before they were marked) until each one has ended;
    `each`: a line per grant ended, else one for all."""
    api = session.api
    waiting = {wire.name_of(g): g for g in grants}
    deadline = time.monotonic() + timeout.total_seconds()
    selector = {"fieldSelector": f"metadata.name={next(iter(waiting))}"} if len(waiting) == 1 else {}
    left = "the revocation is recorded and the operator carries it out: `kubectl jit status NAME` shows where it stands"
    rewatch = o.Rewatch(deadline, left, session.note)
    try:
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                ended = ", ".join(sorted(waiting))
                raise StillPending(
                    f"the revocation of {ended} is recorded, but the operator has not confirmed it within "
                    f"{human_age(timeout.total_seconds())}: `kubectl jit status NAME` shows where it stands"
                )
            try:
                for event in api.watch(
                    o.path(names.GRANTS), resource_version=version, timeout_seconds=math.ceil(remaining), **selector
                ):
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        raise ApiError(int(obj.get("code") or 500), str(obj.get("reason", "")), str(obj.get("message")))
                    version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                    name = wire.name_of(obj)
                    if event.get("type") == "BOOKMARK" or name not in waiting:
                        continue
                    if event.get("type") == "DELETED" or wire.ready_reason(obj) in names.GRANT_FINISHED:
                        if each:
                            _say_ended(session, obj)
                        del waiting[name]
                        if not waiting:
                            break
            except Disconnected as exc:
                rewatch.after(exc)
            except ApiError as exc:
                if o.passing(exc):
                    rewatch.after(exc)
                    continue
                if exc.status != 410:
                    raise o.refusal(exc, "watching the grants") from exc
                try:
                    items, version = o.list_all(api, names.GRANTS)
                except Disconnected as dropped:
                    rewatch.after(dropped)
                    continue
                for obj in items:
                    if wire.name_of(obj) in waiting and wire.ready_reason(obj) in names.GRANT_FINISHED:
                        if each:
                            _say_ended(session, obj)
                        del waiting[wire.name_of(obj)]
    except KeyboardInterrupt:
        raise Interrupted("stopped waiting; the revocation is recorded and the operator will carry it out") from None
    if not each:
        session.say(f"the operator has ended all {len(grants)} revoked grant{'' if len(grants) == 1 else 's'}")
    session.say(_sessions_note(session, grants))
    return OK


def _sessions_note(session: Session, grants: list[Obj]) -> str:
    """What ending `grants` did to AWS access, as the operator carries it out: nothing, where the
    user still holds the same access through another grant (the membership is kept, and no session
    is denied); else sessions denied when a PermissionCatalog tier covers each grant's access (its
    group, or in account-assignment mode the tier's permission set: session revocation), or left
    to run out."""
    try:
        catalogs, _ = o.list_all(session.api, names.CATALOGS)
        current, _ = o.list_all(session.api, names.GRANTS)
    except (ApiError, CliError):
        # `list_all` turns API errors into ours: one who may not read catalogs gets the general note.
        return AWS_SESSIONS_NOTE
    ended = {wire.name_of(g) for g in grants}
    lines, gone = [], []
    for grant in grants:
        spec = wire.spec(grant)
        same = [
            other
            for other in current
            if wire.name_of(other) not in ended
            and wire.ready_reason(other) == names.ACTIVE
            and (wire.spec(other).get("user"), wire.spec(other).get("groupName"))
            == (spec.get("user"), spec.get("groupName"))
        ]
        if not same:
            gone.append(grant)
            continue
        keeps = same[0]
        until_text = wire.status(keeps).get("expirationTime") or "its end"
        lines.append(
            f"note: {spec.get('user')} still holds {o.holding(spec)} through accessgrant {wire.name_of(keeps)} "
            f"(until {until_text}): ending {wire.name_of(grant)} removed none of that access"
        )
    if gone:
        covered = {
            str(tier.get("groupName"))
            for catalog in catalogs
            for tier in (wire.spec(catalog).get("baseline") or {}, wire.spec(catalog).get("production") or {})
        }
        tiers = {
            f"{names.CATALOG_REFERENCE_PREFIX}{wire.name_of(c)}/{tier}"
            for c in catalogs
            for tier in ("baseline", "production")
        }
        revoked = all(wire.spec(g).get("groupName") in covered | tiers for g in gone)
        lines.append(SESSIONS_REVOKED_NOTE if revoked else AWS_SESSIONS_NOTE)
    return "\n".join(lines)


def _say_ended(session: Session, grant: Obj) -> None:
    spec = wire.spec(grant)
    state = wire.ready_reason(grant) or names.REVOKED
    session.say(f"{state.lower()} accessgrant {wire.name_of(grant)} ({spec.get('user')} in {o.holding(spec)})")

"""`list`, `status` and `who-has`: what is asked, what is granted, and who holds access now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jitaccess.api import limits, names, wire
from jitaccess.cli import objects as o
from jitaccess.cli.errors import NotFound
from jitaccess.cli.objects import Obj
from jitaccess.cli.session import Session
from jitaccess.cli.text import age, as_list, dump, printable, shorten, table, until

REQUEST_COLUMNS = ("NAME", "REQUESTER", "ENTITLEMENT", "DURATION", "STATUS", "AGE", "REASON")
HOLDER_COLUMNS = ("USER", "UNTIL", "REASON", "APPROVED-BY", "GRANT")


def _sorted(items: list[Obj]) -> list[Obj]:
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(items, key=lambda obj: (o.created(obj) or epoch, wire.name_of(obj)))


def _state(request: Obj) -> str:
    return wire.ready_reason(request) or "New"


def list_requests(session: Session, *, pending: bool, mine: bool, team: str | None, output: str) -> int:
    api = session.api
    # Only the caller's own, selected by the server, when that is all that is shown.
    requests, _ = o.list_all(api, names.REQUESTS, fields={"spec.requester": session.me.username} if mine else None)
    if team:
        o.get(api, names.TEAMS, team, what="team")
        entitlements, _ = o.list_all(api, names.ENTITLEMENTS)
        owned = {wire.name_of(e) for e in entitlements if wire.spec(e).get("owner") == team}
        requests = [r for r in requests if wire.spec(r).get("entitlement") in owned]
    if pending:
        requests = [r for r in requests if o.awaiting_decision(r)]
    requests = _sorted(requests)
    if output != "table":
        dump(as_list(requests), output, session.out)
        return 0
    if not requests:
        session.note("No access requests found.")
        return 0
    now = datetime.now(UTC)
    rows = [
        (
            wire.name_of(r),
            o.requester(r) or "<unknown>",
            str(wire.spec(r).get("entitlement", "")),
            str(wire.status(r).get("duration") or wire.spec(r).get("duration") or "default"),
            _state(r),
            age(o.created(r), now),
            shorten(str(wire.spec(r).get("reason", "")), 40),
        )
        for r in requests
    ]
    table(rows, REQUEST_COLUMNS, session.out)
    return 0


def status(session: Session, name: str, *, output: str) -> int:
    """A request and its grant: where it stands, who decided, until when."""
    api = session.api
    request = o.get_optional(api, names.REQUESTS, name)
    grant_name = str(wire.status(request).get("grant") or name) if request else name
    grant = o.get_optional(api, names.GRANTS, grant_name)
    if request is not None and grant is not None and not o.made_for(grant, request):
        grant = None  # another request's grant under this name (stored before admission refused that)
    if request is None and grant is None:
        raise NotFound(f"no accessrequest or accessgrant named {name!r}: `kubectl jit list` shows the requests")
    if output != "table":
        dump({"request": request, "grant": grant}, output, session.out)
        return 0
    now = datetime.now(UTC)
    lines: list[tuple[str, str]] = []
    if request is not None:
        spec, state = wire.spec(request), wire.status(request)
        lines += [
            ("Request", f"{name} (created {age(o.created(request), now)} ago)"),
            ("Requester", o.requester(request) or "<not stamped>"),
            ("Entitlement", str(spec.get("entitlement", ""))),
            ("Duration", str(state.get("duration") or spec.get("duration") or "the entitlement's default")),
            ("Reason", str(spec.get("reason", ""))),
            *([("Starts", until(o.parse_time(spec.get("startTime")), now))] if spec.get("startTime") else []),
            (
                "Status",
                f"{_state(request)}: {o.ready_message(request)}"
                if wire.ready_reason(request)
                else "New: the operator has not looked at it yet",
            ),
        ]
        if wire.deleting(request):
            deleted = o.parse_time(wire.metadata(request).get("deletionTimestamp"))
            lines.append(("Deleted", f"{age(deleted, now)} ago: it goes once its audit records are archived"))
        decided = o.approved_by(request)
        if decided:
            lines.append(
                ("Approved by", decided + (f": {state['decisionReason']}" if state.get("decisionReason") else ""))
            )
        if state.get("deniedBy"):
            why = f": {state['decisionReason']}" if state.get("decisionReason") else ""
            lines.append(("Denied by", f"{state['deniedBy']}{why}"))
        if o.awaiting_decision(request):
            lines.append(("Waiting for", _waiting_for(session, request)))
            marked = _decision_marked(request)
            if marked:
                lines.append(("Decision", marked))
    if grant is not None:
        gspec, gstate = wire.spec(grant), wire.status(grant)
        lines += [
            ("Grant", f"{wire.name_of(grant)}: {wire.ready_reason(grant) or 'Provisioning'}"),
            ("User", f"{gspec.get('user')} in {o.holding(gspec)}"),
        ]
        if gstate.get("activationTime"):
            lines.append(("Active since", until(o.parse_time(gstate.get("activationTime")), now)))
        if gstate.get("expirationTime"):
            lines.append(("Expires", until(o.parse_time(gstate.get("expirationTime")), now)))
        if gstate.get("revocationTime"):
            who = f" by {gstate['revokedBy']}" if gstate.get("revokedBy") else ""
            # A lapse ends a grant early too, but nobody revoked it: the user is no longer eligible.
            label = "Lapsed" if wire.ready_reason(grant) == names.ELIGIBILITY_LAPSED else "Revoked"
            lines.append((label, until(o.parse_time(gstate.get("revocationTime")), now) + who))
    elif request is not None and wire.status(request).get("expirationTime"):
        lines.append(("Expires", until(o.parse_time(wire.status(request).get("expirationTime")), now)))
    width = max(len(label) for label, _ in lines) + 2
    for label, value in lines:
        session.out.write(f"{(label + ':').ljust(width)}{printable(value)}\n")
    conditions = _conditions(request) + _conditions(grant, prefix="grant/")
    if conditions:
        session.out.write("Conditions:\n")
        rows = [
            (
                c["type"],
                c.get("status", ""),
                c.get("reason", ""),
                age(o.parse_time(c.get("lastTransitionTime")), now),
                c.get("message", ""),
            )
            for c in conditions
        ]
        table(rows, ("TYPE", "STATUS", "REASON", "AGE", "MESSAGE"), session.out, indent="  ")
    return 0


def _conditions(obj: Obj | None, prefix: str = "") -> list[dict[str, Any]]:
    if obj is None:
        return []
    return [{**c, "type": prefix + str(c.get("type"))} for c in wire.status(obj).get("conditions") or []]


def _decision_marked(request: Obj) -> str:
    """An approval or denial annotation the operator has not acted on yet (it may never, if unsigned)."""
    notes = wire.annotations_of(request)
    for flag, by in (
        (names.ANNOTATION_DENIED, names.ANNOTATION_DENIED_BY),
        (names.ANNOTATION_APPROVED, names.ANNOTATION_APPROVED_BY),
    ):
        if wire.truthy(notes.get(flag)):
            who = notes.get(by)
            signed = f"by {who}" if who else "with no approved-by/denied-by stamp (is the admission webhook installed?)"
            return f"{flag}=true {signed}, not yet acted on by the operator"
    return ""


def _waiting_for(session: Session, request: Obj) -> str:
    """Who acts next on a request waiting for a decision: its approvers, or, once a decision is
    stamped, the operator (another approval would be refused: a decision stamped is final). An
    approval stamped that no longer counts (its approver left the team) is never acted on, and the
    webhook admits a denial over it: that is said, never `approve`."""
    notes = wire.annotations_of(request)
    if o.approval_stamped(request):
        return (
            f"the operator, to act on the approval by {notes[names.ANNOTATION_APPROVED_BY]}; should that approval no "
            f"longer count (its approver left the team), an approver may deny it (`kubectl jit deny {o.pinned(request)} "
            '--reason "..."`) or its requester withdraw it'
        )
    if wire.truthy(notes.get(names.ANNOTATION_DENIED)) and notes.get(names.ANNOTATION_DENIED_BY):
        return f"the operator, to act on the denial by {notes[names.ANNOTATION_DENIED_BY]}"
    return _deciders(session, request)


def _deciders(session: Session, request: Obj) -> str:
    named = str(wire.spec(request).get("entitlement") or "")
    entitlement = o.get_optional(session.api, names.ENTITLEMENTS, named) if named else None
    owner = str(wire.spec(entitlement).get("owner", "")) if entitlement else ""
    team = o.get_optional(session.api, names.TEAMS, owner) if owner else None
    if team is None:
        return o.ready_message(request)
    # Neither the requester (who may not decide on their own request) nor who has approved already
    # (each approval counts once, of approvalsRequired): naming them sends the reader to the wrong person.
    excluding = {o.requester(request), *o.approvals_so_far(request)}
    approvers = o.deciders_text(team, escalated=wire.is_true(request, names.ESCALATED), excluding=excluding)
    return f"an approver of team {owner}: {approvers} (`kubectl jit approve {o.pinned(request)}`)"


def holder_approval(request: Obj, now: datetime) -> str:
    """Who approved a holder's request, for `who-has`: the approver, `auto (owner team)`, or for a
    break-glass request (its requester approved it) `break-glass` and where its review stands, which
    is what makes it an approval after the fact: by whom, or when it is due."""
    approved = wire.condition(request, names.APPROVED)
    if approved is None or approved.get("status") != "True" or approved.get("reason") != names.BREAK_GLASS:
        return o.approved_by(request) or "-"
    status = wire.status(request)
    if status.get("reviewedBy"):
        return f"break-glass (reviewed by {status['reviewedBy']})"
    due = o.parse_time(status.get("reviewDeadline"))
    if due is None:
        return "break-glass (not reviewed yet)"
    stamp = wire.rfc3339(due)
    return (
        f"break-glass (not reviewed yet, due {stamp})" if now < due else f"break-glass (review overdue since {stamp})"
    )


def who_has(session: Session, entitlement: str | None, *, output: str) -> int:
    """Who holds an entitlement now (every entitlement, without one): active grants, until when,
    why, approved by whom."""
    api = session.api
    labels, by_field = "", None
    if entitlement is not None:
        o.get(api, names.ENTITLEMENTS, entitlement)
        if len(entitlement) <= limits.LABEL_VALUE_MAX_LENGTH:
            labels = f"{names.LABEL_ENTITLEMENT}={entitlement}"
        else:
            # A name no label value can hold (an Entitlement stored before the rule): the API server
            # refuses such a selector, so the grants are selected by their spec.entitlement.
            by_field = {"spec.entitlement": entitlement}
    grants, _ = o.list_all(api, names.GRANTS, labels=labels, fields=by_field)
    active = _sorted(
        [
            g
            for g in grants
            if wire.ready_reason(g) == names.ACTIVE and entitlement in (None, wire.spec(g).get("entitlement"))
        ]
    )
    # The grants' requests, for their reasons: of this entitlement only, when it is named.
    selected = {"spec.entitlement": entitlement} if entitlement is not None else None
    requests = {wire.name_of(r): r for r in o.list_all(api, names.REQUESTS, fields=selected)[0]} if active else {}
    holders = []
    for grant in active:
        request = requests.get(str(wire.spec(grant).get("request", "")), {})
        if request and not o.made_for(grant, request):
            # The grant's request is gone and a later one took its name (a requester chooses it):
            # that one's reason and approval are not what this access was given for.
            request = {}
        # The grant keeps its request's reason (written by the operator); the request's is read
        # only for a grant stored before grants kept it.
        reason = wire.spec(grant).get("reason") or (wire.spec(request).get("reason", "") if request else "")
        holders.append(
            {
                "user": wire.spec(grant).get("user"),
                "entitlement": wire.spec(grant).get("entitlement"),
                "until": wire.status(grant).get("expirationTime"),
                "reason": reason,
                "approvedBy": holder_approval(request, datetime.now(UTC)) if request else "-",
                "grant": wire.name_of(grant),
            }
        )
    if output != "table":
        dump(as_list(holders), output, session.out)
        return 0
    if not holders:
        session.note(f"Nobody holds {entitlement} now." if entitlement else "Nobody holds any entitlement now.")
        return 0
    now = datetime.now(UTC)
    rows = [
        (
            *(() if entitlement else (str(h["entitlement"]),)),
            str(h["user"]),
            until(o.parse_time(h["until"]), now),
            shorten(str(h["reason"]), 40),
            str(h["approvedBy"]),
            str(h["grant"]),
        )
        for h in sorted(holders, key=lambda h: (str(h["entitlement"]), str(h["user"])))
    ]
    table(rows, HOLDER_COLUMNS if entitlement else ("ENTITLEMENT", *HOLDER_COLUMNS), session.out)
    return 0

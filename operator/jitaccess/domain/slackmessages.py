"""The words of each Slack notice: plain text (the notification and the fallback) and Block Kit.

A message is rendered from the object as it is now, not as it was when the step happened: the
approvers' message of a request that was decided while Slack was down is posted already decided,
without buttons. Buttons appear only while the request waits for a decision, with the request's
name as their value (the interactivity endpoint's contract), next to the `kubectl jit` commands
that do the same.

People are mentioned by Slack id when the caller resolved one (`ids`: username -> Slack id) and
named in plain text otherwise. Everything that comes from users is escaped (`escape`), and shown
as written (attack 135): every mrkdwn text object is `verbatim`, and the plain text is escaped
whole (the Slack adapter posts it with `parse=none`). Otherwise Slack preprocesses what it is
given: a bare URL in a reason becomes a link, `@channel` / `@here` / `@everyone` a broadcast that
notifies the whole approvers' channel, `#general` a channel link, all carried by jitaccess's bot.
Under `verbatim` Slack still reads the manual strings jitaccess writes itself (`<@U...>` mentions
the approvers), and nothing else. The interactivity endpoint's deny modal and ephemeral replies
are built with the same `section` and `escape`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from jitaccess.api import audit, names, wire
from jitaccess.domain.notifications import (
    APPROVE_ACTION,
    DENY_ACTION,
    EXPIRING,
    EXTENSION_PENDING,
    SECURITY,
    TEAM_CHANNEL,
    TEAM_MESSAGE,
    Notice,
    Team,
    awaits_approvers,
    begins_later,
    told_of_request,
)

Block = dict[str, Any]
# Slack refuses a section text over 3000 characters, and a field of a section over 2000 (the
# message, with `invalid_blocks`); reasons are bounded well below, but a message must never fail
# for its length: a user name may be as long as a TeamOwnership's entries (1024 characters), and
# escaping makes each `&`, `<` and `>` several.
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000

_OUTCOME = {
    audit.APPROVED: ":white_check_mark: Approved",
    audit.DENIED: ":no_entry: Denied",
    audit.TIMED_OUT: ":hourglass: Timed out",
    audit.NOT_ELIGIBLE: ":no_entry_sign: Refused: not eligible",
    audit.INVALID: ":warning: Refused: invalid",
    audit.FAILED: ":x: Failed",
    # A request approved for a later start, cancelled before it (`revoked-by`): never granted.
    audit.REVOKED: ":lock: Revoked before its start",
}


def escape(text: Any) -> str:
    """`text` as Slack mrkdwn shows it literally: `&`, `<` and `>` are the only control characters
    (links, mentions, `<!channel>`)."""
    return str(text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _who(username: str, ids: Mapping[str, str]) -> str:
    slack_id = ids.get(username)
    return f"<@{slack_id}>" if slack_id else escape(username)


def _shortened(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, with an ellipsis when cut. The cut never ends inside an
    escape (`&amp;`) or a `<...>` token (a mention, a link): Slack would show the half of it
    literally (`&am…`), so the cut moves back to before it."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    ampersand, semicolon = cut.rfind("&"), cut.rfind(";")
    if ampersand > semicolon:
        cut = cut[:ampersand]
    opening, closing = cut.rfind("<"), cut.rfind(">")
    if opening > closing:
        cut = cut[:opening]
    return cut + "…"


def _mrkdwn(text: str, limit: int) -> Block:
    """A mrkdwn text object Slack shows as written: `verbatim`, it links no bare URL and parses no
    `@channel` or `#name`; escaped words from users then carry no mention and no link at all."""
    return {"type": "mrkdwn", "text": _shortened(text, limit), "verbatim": True}


def section(text: str) -> Block:
    """A section block of mrkdwn `text` (user words in it `escape`d), shown as written: every Block
    Kit section jitaccess sends Slack is one, a message's or a modal's (the interactivity endpoint's)."""
    return {"type": "section", "text": _mrkdwn(text, SECTION_LIMIT)}


def _field(title: str, value: Any) -> Block:
    return _mrkdwn(f"*{title}*\n{escape(value)}", FIELD_LIMIT)


def _context(text: str) -> Block:
    return {"type": "context", "elements": [_mrkdwn(text, SECTION_LIMIT)]}


def _user(record: Mapping[str, Any]) -> str:
    return str((record.get("user") or {}).get("username") or "")


def _actor(record: Mapping[str, Any]) -> str:
    return str((record.get("actor") or {}).get("username") or "")


def render(notice: Notice, obj: wire.Obj, team: Team | None, ids: Mapping[str, str]) -> tuple[str, list[Block]]:
    """(text, blocks) of a Slack notice about `obj` (as stored now)."""
    text, blocks = _render(notice, obj, team, ids)
    return escape(text), blocks


def _render(notice: Notice, obj: wire.Obj, team: Team | None, ids: Mapping[str, str]) -> tuple[str, list[Block]]:
    # The plain text is built unescaped and escaped whole by the caller: it holds no mention or link.
    if notice.recipient == TEAM_MESSAGE:
        return _approvers_message(obj, team, ids)
    if notice.recipient == SECURITY:
        if notice.step == audit.BREAK_GLASS:
            return _break_glass(notice.record, obj)
        if notice.step == audit.ASSIGNMENT_DRIFT_REMOVED:
            return _assignment_drift(notice.record)
        return _drift(notice.record)
    if notice.step == EXTENSION_PENDING:
        return _extension_pending(notice.record, obj, team, ids)
    if notice.recipient == TEAM_CHANNEL:
        return _ended_early(notice.record, ids, to_team=True)
    if obj.get("kind") == names.ACCESS_EXTENSION:
        return _extension_ended(notice.record, obj)
    if notice.step == audit.ESCALATED:
        return _escalated_to_backup(notice.record, obj, team)
    if notice.step in _OUTCOME and obj.get("kind") == names.ACCESS_REQUEST:
        return _decision_to_requester(notice.record, obj)
    if notice.step == audit.GRANTED:
        return _granted(notice.record)
    if notice.step == EXPIRING:
        return _expiring(notice.record)
    if notice.step == audit.EXTENDED:
        return _extended(notice.record)
    return _ended_early(notice.record, ids, to_team=False)


# --- the approvers' message --------------------------------------------------------------------


def approvers_message(
    request: wire.Obj, team: Team | None, ids: Mapping[str, str], *, withdrawn: bool = False
) -> tuple[str, list[Block]]:
    """The message in the owner team's channel: the request's facts, who may decide, and, while it
    waits, Approve / Deny buttons; once decided (or `withdrawn`: deleted while it waited), what
    became of it, without buttons."""
    text, blocks = _approvers_message(request, team, ids, withdrawn=withdrawn)
    return escape(text), blocks


def _approvers_message(
    request: wire.Obj, team: Team | None, ids: Mapping[str, str], *, withdrawn: bool = False
) -> tuple[str, list[Block]]:
    name = wire.name_of(request)
    spec, status = wire.spec(request), wire.status(request)
    requester = str(spec.get("requester") or status.get("requester") or "")
    entitlement = str(spec.get("entitlement") or "")
    duration = str(status.get("duration") or spec.get("duration") or "its default duration")
    # A request may be approved now for access that begins days later (`Scheduled` until then).
    start = start_of(request)
    later = f" from {start}" if spec.get("startTime") else ""
    headline = f"{escape(requester)} asks for *{escape(entitlement)}* for {escape(duration)}{escape(later)}"
    blocks: list[Block] = [
        section(f":key: *Access request* `{escape(name)}`: {headline}"),
        {
            "type": "section",
            "fields": [
                _field("Requester", requester),
                _field("Entitlement", entitlement),
                _field("Duration", duration),
                _field("Starts", start),
                _field("Team", team.name if team else "?"),
            ],
        },
        section(f"*Reason*\n{escape(spec.get('reason'))}"),
    ]
    outcome = _outcome_of(request)
    escalated = wire.is_true(request, names.ESCALATED)
    if outcome is None and withdrawn:
        blocks.append(section(":wastebasket: Withdrawn: the request was deleted before anyone decided it"))
        return f"Access request {name} ({requester}, {entitlement}): withdrawn", blocks
    if outcome is None:
        approvers = team.approvers if team else ()
        who = [_who(u, ids) for u in approvers] + [f"group {escape(g)}" for g in (team.approver_groups if team else ())]
        if escalated and team is not None:
            who += [_who(u, ids) for u in team.backup_approvers]
            who += [f"group {escape(g)}" for g in team.backup_approver_groups]
            blocks.append(
                _context(f":rotating_light: Escalated to the backup approvers: {_escalation_reason(request)}")
            )
        blocks.append(_context("Can decide: " + (", ".join(who) or "nobody")))
        blocks.append(
            {
                "type": "actions",
                "block_id": "decision",
                "elements": [
                    _button("Approve", APPROVE_ACTION, button_value(request), "primary"),
                    _button("Deny", DENY_ACTION, button_value(request), "danger"),
                ],
            }
        )
        pinned = _pinned(request)
        blocks.append(_context(f'Or: `kubectl jit approve {pinned}` · `kubectl jit deny {pinned} --reason "..."`'))
        state = "escalated, waiting for approval" if escalated else "waiting for approval"
        return f"Access request {name}: {requester} asks for {entitlement} for {duration}{later} ({state})", blocks
    label, by, why, when, approved = outcome
    line = f"{label}" + (f" by {_who(by, ids)}" if by else "") + (f" at {escape(when)}" if when else "")
    if why:
        line += f": {escape(why)}"
    plain_label = _plain(label) + (f" by {by}" if by else "")
    if approved is not None:
        # Approved, then ended without access: both, in the order they came.
        approver, at = approved
        first = _OUTCOME[audit.APPROVED] + (f" by {_who(approver, ids)}" if approver else "")
        line = first + (f" at {escape(at)}" if at else "") + ", then " + line
        plain_label = f"{_plain(_OUTCOME[audit.APPROVED])}" + (f" by {approver}" if approver else "")
        plain_label += f", then {_plain(label).lower()}" + (f" by {by}" if by else "")
    blocks.append(section(line))
    return f"Access request {name} ({requester}, {entitlement}): {plain_label}", blocks


def _plain(label: str) -> str:
    """A label without its emoji: `Approved`."""
    return label.split(" ", 1)[1] if " " in label else label


def start_of(request: wire.Obj) -> str:
    """When the access a request asks for begins, as messages say it: its `spec.startTime` (RFC
    3339, UTC), or "on approval" for a request without one."""
    given = wire.spec(request).get("startTime")
    if not given:
        return "on approval"
    return audit.rfc3339(given) or str(given)


def button_value(request: wire.Obj) -> str:
    """What a decision button carries: the request's name and uid (`NAME/UID`; a name has no `/`).
    The uid binds the click to this very object: a request withdrawn and created again under the
    same name (by someone else, or asking for more) is another object, which the click never decides."""
    uid = str(wire.metadata(request).get("uid") or "")
    return f"{wire.name_of(request)}/{uid}" if uid else wire.name_of(request)


def pinned(name: str, uid: str) -> str:
    """`NAME --uid UID` for a command line (`NAME` alone without a uid): the CLI then decides this
    very object, not another created under its name after this one was withdrawn (attack 137)."""
    return f"{name} --uid {uid}" if uid else name


def _pinned(obj: wire.Obj) -> str:
    """`pinned` of `obj`, escaped for a message."""
    return escape(pinned(wire.name_of(obj), str(wire.metadata(obj).get("uid") or "")))


def _button(text: str, action_id: str, value: str, style: str) -> Block:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
        "style": style,
    }


def _escalation_reason(request: wire.Obj) -> str:
    found = wire.condition(request, names.ESCALATED) or {}
    return escape(found.get("message") or "pending too long")


def waits_for_decision(request: wire.Obj) -> bool:
    """Whether the approvers' message of `request` still offers its buttons (nothing decided or ended it)."""
    return _outcome_of(request) is None


class _Outcome(NamedTuple):
    """What became of a request: its last word (label, by whom, why, when), and the approval that
    came before it when the request then ended without access (`approved`: (by whom, when))."""

    label: str
    by: str
    why: str
    when: str
    approved: tuple[str, str] | None = None


#: A request's ends, the first found told: those that gave no access come before the approval, which
#: they may follow (an approval for a later start, whose requester is no longer eligible at it; a
#: grant that failed): "Approved" alone would say that access followed.
_ENDS = (audit.DENIED, audit.REVOKED, audit.TIMED_OUT, audit.NOT_ELIGIBLE, audit.INVALID, audit.FAILED, audit.APPROVED)


def _outcome_of(request: wire.Obj) -> _Outcome | None:
    """What became of a decided or ended request; None while it waits."""
    records = told_of_request(request)
    for action in _ENDS:
        record = records.get(action)
        if record is None:
            continue
        by, why, when = _said(record)
        approval = records.get(audit.APPROVED) if action not in (audit.APPROVED, audit.REVOKED) else None
        approved = (_said(approval)[0], str(approval.get("time") or "")) if approval is not None else None
        return _Outcome(_OUTCOME[action], by, why, when, approved)
    return None


def _said(record: Mapping[str, Any]) -> tuple[str, str, str]:
    """(by whom, why, when) of a record: nobody for the operator's own, whose message says why."""
    by = _actor(record)
    by = "" if by == audit.OPERATOR else by
    why = str(record.get("decisionReason") or record.get("revokeReason") or ("" if by else record.get("message") or ""))
    return by, why, str(record.get("time") or "")


# --- to one person ---------------------------------------------------------------------------


#: A request's ends that no person decided, but something stopped (eligibility, validity, its
#: grant's failure): its requester is told what to do next.
_STOPPED = frozenset({audit.NOT_ELIGIBLE, audit.INVALID, audit.FAILED})


def _decision_to_requester(record: Mapping[str, Any], request: wire.Obj) -> tuple[str, list[Block]]:
    name = wire.name_of(request)
    action = str(record.get("action") or "")
    label = _OUTCOME.get(action, action)
    by = _actor(record)
    by_text = f" by {escape(by)}" if by and by != audit.OPERATOR else ""
    why = record.get("decisionReason") or record.get("revokeReason") or record.get("message")
    entitlement = str(record.get("entitlement") or "")
    line = f"{label}{by_text}: your request `{escape(name)}` for *{escape(entitlement)}*"
    at_once = _approved_unasked(request)
    if at_once and action != audit.APPROVED:
        # Its requester heard nothing of the approval: what they hear now must say there was one.
        line += f", approved at once ({escape(at_once)}), ended without access"
    if why:
        line += f"\n>{escape(why)}"
    if action in _STOPPED:
        owner = record.get("ownerTeam")
        owners = f"team {escape(owner)}" if owner else "the team that owns it"
        line += (
            f"\nNothing more comes of this request: once what stopped it is fixed (by you, or ask {owners}),"
            f" request access again with `kubectl jit request {escape(entitlement)}`."
            f" `kubectl jit status {escape(name)}` shows this one."
        )
    if action == audit.APPROVED and begins_later(request, record.get("time")):
        line += (
            f"\nAccess begins at {escape(start_of(request))} (your `spec.startTime`), not before:"
            " until then the request is `Scheduled`, and `kubectl jit list` shows it."
        )
    elif action == audit.APPROVED:
        line += "\nAccess follows in seconds: `kubectl jit list` shows it."
    text = f"Your request {name} for {record.get('entitlement')}: {label.split(' ', 1)[-1]}" + (
        f" by {by}" if by_text else ""
    )
    return text, [section(line)]


def _approved_unasked(request: wire.Obj) -> str:
    """How a request approved without asking anyone was approved (an owner-team member's, on call,
    break-glass), in the words of its `Approved` condition; "" for any other request."""
    if not wire.is_true(request, names.APPROVED) or awaits_approvers(request):
        return ""
    return str((wire.condition(request, names.APPROVED) or {}).get("message") or "auto-approved")


def _granted(record: Mapping[str, Any]) -> tuple[str, list[Block]]:
    grant, entitlement, end = record.get("grant"), record.get("entitlement"), record.get("endTime")
    # This grant only: `kubectl jit done` ends every grant its user holds, the others too.
    line = (
        f":unlock: Your access to *{escape(entitlement)}* is active until {escape(end)} (grant `{escape(grant)}`)."
        f"\nDone early? `kubectl jit revoke {escape(pinned(str(grant or ''), str(record.get('uid') or '')))}`:"
        " this access ends at once."
    )
    return f"Your access to {entitlement} is active until {end}", [section(line)]


def _expiring(record: Mapping[str, Any]) -> tuple[str, list[Block]]:
    entitlement, end = record.get("entitlement"), record.get("endTime")
    line = (
        f":hourglass_flowing_sand: Your access to *{escape(entitlement)}* ends at {escape(end)}"
        f" (grant `{escape(record.get('grant'))}`). More time: "
        f'`kubectl jit extend {escape(record.get("grant"))} --by 30m --reason "..."`.'
    )
    return f"Your access to {entitlement} ends at {end}", [section(line)]


def _extended(record: Mapping[str, Any]) -> tuple[str, list[Block]]:
    entitlement, end = record.get("entitlement"), record.get("endTime")
    by = _actor(record)
    who = f" (approved by {escape(by)})" if by and by != audit.OPERATOR else ""
    line = (
        f":hourglass_flowing_sand: Your access to *{escape(entitlement)}* was extended by"
        f" {escape(record.get('extendedBy'))}{who}: it now ends at {escape(end)} (grant `{escape(record.get('grant'))}`)."
    )
    return f"Your access to {entitlement} now ends at {end}", [section(line)]


def _extension_pending(
    record: Mapping[str, Any], extension: wire.Obj, team: Team | None, ids: Mapping[str, str]
) -> tuple[str, list[Block]]:
    name, user = wire.name_of(extension), _user(record)
    approvers = ", ".join(_who(u, ids) for u in (team.approvers if team else ())) or "an approver of the team"
    line = (
        f":hourglass_flowing_sand: {escape(user)} asks to extend grant `{escape(record.get('grant'))}`"
        f" (*{escape(record.get('entitlement'))}*) by {escape(record.get('extendedBy'))}:"
        f" {escape(record.get('reason'))}\nFor {approvers}: `kubectl jit approve extension/{_pinned(extension)}`"
        f' · `kubectl jit deny extension/{_pinned(extension)} --reason "..."`'
    )
    text = f"{user} asks to extend grant {record.get('grant')} by {record.get('extendedBy')} (extension {name})"
    return text, [section(line)]


def _extension_ended(record: Mapping[str, Any], extension: wire.Obj) -> tuple[str, list[Block]]:
    name = wire.name_of(extension)
    by = _actor(record)
    if record.get("action") == audit.DENIED:
        what = f":no_entry: Denied by {escape(by)}" if by and by != audit.OPERATOR else ":no_entry: Denied"
    else:
        what = ":x: Not applied"
    why = record.get("decisionReason") or record.get("message")
    line = (
        f"{what}: your extension `{escape(name)}` of grant `{escape(record.get('grant'))}`; your access ends as before."
    )
    if why:
        line += f"\n>{escape(why)}"
    return f"Your extension {name} of grant {record.get('grant')}: {what.split(' ', 1)[1]}", [section(line)]


def _escalated_to_backup(record: Mapping[str, Any], request: wire.Obj, team: Team | None) -> tuple[str, list[Block]]:
    name = wire.name_of(request)
    requester = _user(record)
    line = (
        f":rotating_light: Request `{escape(name)}` by {escape(requester)} for *{escape(record.get('entitlement'))}*"
        f" escalated to you as a backup approver of team {escape(team.name if team else '?')}:"
        f" {_escalation_reason(request)}.\nReason given: {escape(record.get('reason'))}"
        f"\nDuration: {escape(record.get('duration') or 'its default duration')} · starts: {escape(start_of(request))}"
        f"\nDecide with the buttons in the team's channel, or `kubectl jit approve {_pinned(request)}`"
        f' / `kubectl jit deny {_pinned(request)} --reason "..."`.'
    )
    return f"Request {name} escalated to you: {requester} asks for {record.get('entitlement')}", [section(line)]


def _ended_early(record: Mapping[str, Any], ids: Mapping[str, str], *, to_team: bool) -> tuple[str, list[Block]]:
    user, entitlement = _user(record), record.get("entitlement")
    if record.get("action") == audit.LAPSED:
        what = f"ended early: {escape(user)} is no longer eligible ({escape(record.get('message'))})"
    else:
        by = _actor(record)
        what = f"revoked early by {_who(by, ids) if by != audit.OPERATOR else 'the operator'}"
        if record.get("revokeReason"):
            what += f": {escape(record.get('revokeReason'))}"
    subject = f"{escape(user)}'s access" if to_team else "Your access"
    line = f":lock: {subject} to *{escape(entitlement)}* (grant `{escape(record.get('grant'))}`) {what}."
    plain = f"{user}'s access" if to_team else "Your access"
    return f"{plain} to {entitlement} ended early", [section(line)]


def _break_glass(record: Mapping[str, Any], request: wire.Obj) -> tuple[str, list[Block]]:
    user, entitlement = _user(record), record.get("entitlement")
    line = (
        f":rotating_light: Break-glass: {escape(user)} approved their own access to *{escape(entitlement)}*"
        f" for {escape(record.get('duration'))}"
        f" (request `{escape(record.get('request'))}`): {escape(record.get('reason'))}."
        f" An approver of the owner team must review it: `kubectl jit review {_pinned(request)}`."
    )
    return f"Break-glass: {user} on {entitlement}", [section(line)]


def _drift(record: Mapping[str, Any]) -> tuple[str, list[Block]]:
    user, group = _user(record) or "an unknown user", (record.get("group") or {}).get("name")
    line = (
        f":shield: Standing access removed: {escape(user)} was in Identity Center group *{escape(group)}*"
        f" (entitlement *{escape(record.get('entitlement'))}*, team {escape(record.get('ownerTeam'))})"
        f" without a grant, and was taken out. {escape(record.get('message'))}"
    )
    return f"Standing access removed: {user} from {group}", [section(line)]


def _assignment_drift(record: Mapping[str, Any]) -> tuple[str, list[Block]]:
    """An assignment of a catalog's permission set made outside jitaccess (the console, say), and
    removed: who was assigned what where, when jitaccess first saw it and when it went."""
    if record.get("principalType") == "GROUP":
        who = f"group {(record.get('group') or {}).get('id') or '?'}"
    else:
        user = record.get("user") or {}
        name, user_id = user.get("username"), user.get("identityStoreUserId")
        who = f"user {name} ({user_id})" if name and user_id else f"user {name or user_id or '?'}"
    named = record.get("permissionSet") or {}
    permission_set = named.get("name") or named.get("arn")
    account = record.get("account")
    line = (
        f":shield: Assignment removed: {escape(who)} was assigned permission set *{escape(permission_set)}*"
        f" in account {escape(account)} (team {escape(record.get('ownerTeam'))}'s catalog)"
        f" outside jitaccess, and the assignment was removed."
        f"\nFirst seen: {escape(record.get('startTime'))} · removed at: {escape(record.get('endTime'))}"
    )
    if record.get("message"):  # how the removal went (one begun and found gone says so)
        line += f"\n{escape(record.get('message'))}"
    return f"Assignment removed: {who} from {permission_set} in {account}", [section(line)]

"""`audit` and `review`: the decision records of a window, and an entitlement's review for its owners.

`audit` prints the records (docs/audit.md) as a table, as JSON (an object with the source and the
records, unchanged, and the archive's conflicts and skipped parts) or as CSV (a header row, one
fixed column per field). `review` reads the same records for one entitlement and answers the
questions of an access review: who used it and how often, who is eligible but never used it, which
grants cite no ticket, which break-glass grants nobody has reviewed. Both end, after the report,
with a warning per conflicting id and per unreadable part of the archive, and exit code DOUBTFUL
(`History.warn`).

Text from the records (reasons, names) goes to the terminal escaped: through `table` and `say`,
`printable` in CSV cells, and JSON's own escapes. CSV cells that a spreadsheet would run as a
formula (starting with =, +, -, @) get a leading apostrophe, the usual defence against CSV injection.

`audit --verify` checks the archive itself instead: whether each batch is as the operator wrote
it and follows the one before it (`jitaccess.domain.chain`), a row per finding.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from jitaccess.api import names, wire
from jitaccess.cli import objects as o
from jitaccess.cli import periods as access
from jitaccess.cli.errors import Doubtful, UsageError
from jitaccess.cli.history import History, Record, Who, follow, load, saw, select, time_of, user_id, username
from jitaccess.cli.parser import ARCHIVE_ENV, Moment
from jitaccess.cli.session import Session
from jitaccess.cli.text import printable, shorten, table
from jitaccess.domain import chain
from jitaccess.domain import reasons as reason_rules
from jitaccess.domain.durations import LONGEST

AUDIT_COLUMNS = ("TIME", "ACTION", "ENTITLEMENT", "USER", "BY", "REQUEST", "DETAIL")
CSV_COLUMNS = (
    "time", "action", "entitlement", "ownerTeam", "user", "identityStoreUserId", "actor", "via", "kind", "name",
    "request", "grant", "group", "reason", "decisionReason", "revokeReason", "duration", "startTime", "endTime",
    "message", "id",
    # Added within v1, after the first columns so that readers by position keep working.
    "extension", "extendedBy", "extensionReason", "previousEndTime", "approvals",
    "possibleStartTime", "possibleEndTime", "takenBack",
    "permissionSet", "account", "principalType",
)  # fmt: skip
# A ticket or incident id as most trackers write it: INFRA-2441, INC-17, SEC2-9.
TICKET = r"[A-Z][A-Z0-9]+-[0-9]+"
_FORMULA_START = ("=", "+", "-", "@")


ACCESS_COLUMNS = ("USER", "ENTITLEMENT", "GROUP", "START", "END", "ENDED", "EXTENDED", "APPROVED BY", "REASON")
ACCESS_CSV_COLUMNS = (
    "user", "identityStoreUserId", "entitlement", "ownerTeam", "group", "groupId", "start", "end", "ending",
    "endedBy", "endReason", "scheduledEnd", "extensions", "approval", "approvers", "reason", "kind", "grant",
    "request", "firstSeen", "possible", "takenBack", "permissionSet", "account",
)  # fmt: skip
LOOKBACK = timedelta(days=30)
# From the cluster every object is read anyway: a period is found however long ago it began.
_EVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class AuditOptions:
    since: Moment
    entitlement: str | None
    user: str | None
    archive: str
    output: str
    until: Moment | None = None
    access: bool = False
    lookback: timedelta | None = None  # --access only; None: LOOKBACK
    verify: bool = False
    public_keys: tuple[str, ...] | None = None  # --verify only: the files of the signing keys' public halves


def window(since: Moment, until: Moment | None, now: datetime) -> tuple[datetime, datetime]:
    """The window's start and end: a relative value is that long before `now` (`--until 7d`: 7 days
    ago), an absolute one is itself; no --until is now. An end before the start is a usage error,
    and so is a time more than ten years from now (the parser caps relative ones): year 1 or 9999
    would overflow once converted or widened by a day, and no record is that old."""

    def resolved(when: Moment, flag: str) -> datetime:
        if isinstance(when, timedelta):
            return now - when
        if abs(when - now) > LONGEST:
            raise UsageError(
                f"{flag} {when.isoformat()} is more than {LONGEST.days} days (ten years) from now, the furthest "
                "the audit reads: give a nearer time"
            )
        return when.astimezone(UTC)

    start, end = resolved(since, "--since"), resolved(until, "--until") if until is not None else now
    if end < start:
        raise UsageError(
            f"--until {_rfc3339(end)} is before --since {_rfc3339(start)}: give an --until at or after --since "
            "(e.g. --since 2026-11-01T00:00:00Z --until 2026-11-08T00:00:00Z)"
        )
    return start, end


def audit(session: Session, options: AuditOptions, now: datetime | None = None) -> int:
    current = now or datetime.now(UTC)
    start, end = window(options.since, options.until, current)
    if options.lookback is not None and not options.access:
        raise UsageError("--lookback goes only with --access (how far before the window to read for access periods)")
    if options.public_keys is not None and not options.verify:
        raise UsageError("--public-key goes only with --verify (the key the archive's batches must be signed with)")
    if options.verify:
        return _verify(session, options, start, end)
    if options.access:
        return _access(session, options, start, end, current)
    history = load(session, options.archive, start, current)
    # Without --until, nothing is left out for being late: the caller's clock may be behind the cluster's.
    who = _follow(session, history, options.user, end if options.until is not None else None)
    records = select(history.records, entitlement=options.entitlement, user=who)
    if options.until is not None:
        history, records = history.until(end, records)
    if not records and options.entitlement:
        _unknown_entitlement(session, options.entitlement, history.records)
    if options.output == "json":
        document = {
            "source": history.source,
            "since": _rfc3339(start),
            "until": _rfc3339(end),
            "records": records,
            **history.problems(),
        }
        session.out.write(json.dumps(document, indent=2) + "\n")
    elif options.output == "csv":
        write_csv(records, session.out)
    elif records:
        conflicting = history.conflicting
        table([_audit_row(r, str(r.get("id")) in conflicting) for r in records], AUDIT_COLUMNS, session.out)
    else:
        session.note("No records in this window.")
    history.warn(session)
    return 0


VERIFY_COLUMNS = ("BATCH", "FINDING", "DETAIL")


def _verify(session: Session, options: AuditOptions, start: datetime, end: datetime) -> int:
    """`--verify`: whether the archive's batches in the window's day folders are as the operator
    wrote them (`jitaccess.domain.chain`): a row per finding; exit DOUBTFUL when any is a problem."""
    if not options.archive:
        raise UsageError(
            f"--verify checks the audit archive: give --archive s3://BUCKET/PREFIX (or set ${ARCHIVE_ENV})"
        )
    if options.access or options.entitlement or options.user:
        raise UsageError("--verify checks every batch of the window: it goes without --access, --entitlement, --user")
    from jitaccess.cli import archive as s3
    from jitaccess.cli import signatures

    # The keys are read first: a wrong file is said before the archive is read.
    signature_valid: Callable[[bytes, str], bool] | None = None
    fingerprints: list[str] = []
    if options.public_keys is not None:
        signature_valid, fingerprints = signatures.check_of(options.public_keys)
    keys, earlier = s3.stored(options.archive, start, end)
    findings = chain.verify(keys, earlier, signature_valid)
    problems = [f for f in findings if f.problem]
    batches = sorted(k.key for k in keys if k.data is not None)
    if options.output == "json":
        document = {
            "source": options.archive,
            "since": _rfc3339(start),
            "until": _rfc3339(end),
            "batches": len(batches),
            "intact": not problems,
            # Whether signatures were checked, and with which keys (SHA-256 of each, DER).
            "signatures": {"checked": signature_valid is not None, "publicKeySha256": fingerprints},
            "findings": [{"key": f.key, "problem": f.problem, "detail": f.text} for f in findings],
        }
        session.out.write(json.dumps(document, indent=2) + "\n")
    elif findings:
        rows = [(f.key, "PROBLEM" if f.problem else "note", f.text) for f in findings]
        table(rows, VERIFY_COLUMNS, session.out)
    what = f"{len(batches)} batch(es) of {options.archive}" + (f", {batches[0]} to {batches[-1]}" if batches else "")
    if problems:
        raise Doubtful(
            f"{what}: {len(problems)} problem(s) above; the archive is not as jitaccess wrote it (docs/audit.md, "
            "Verifying the archive)"
        )
    signed = ", each signed with the key given" if signature_valid is not None else ""
    session.note(f"{what}: every batch is as written and each follows the one before it{signed}")
    return 0


def _access(session: Session, options: AuditOptions, start: datetime, end: datetime, now: datetime) -> int:
    """`--access`: the access periods overlapping [start, end]. Read up to now, for a period's end
    may come after the window; from the archive, from `lookback` before the window too, for its
    start may come before."""
    lookback = options.lookback if options.lookback is not None else LOOKBACK
    history = load(session, options.archive, start - lookback if options.archive else _EVER, now)
    who = _follow(session, history, options.user, end if options.until is not None else None)
    found = [
        p
        for p in access.build(history.records, history.conflicting)
        if p.overlaps(start, end)
        and (options.entitlement is None or p.entitlement == options.entitlement)
        and (who is None or who.about(p.user))
    ]
    if options.output == "json":
        document = {
            "source": history.source,
            "since": _rfc3339(start),
            "until": _rfc3339(end),
            "periods": [p.as_json() for p in found],
            **history.problems(),
        }
        session.out.write(json.dumps(document, indent=2) + "\n")
    elif options.output == "csv":
        write_access_csv(found, session.out)
    elif found:
        table([_access_row(p) for p in found], ACCESS_COLUMNS, session.out)
    else:
        session.note(f"Nobody held access between {_rfc3339(start)} and {_rfc3339(end)}.")
    history.warn(session)
    return 0


def _follow(session: Session, history: History, wanted: str | None, end: datetime | None) -> Who | None:
    """Says where the records come from, and who `--user` selects when that is more than one name
    (a renamed user: `history.follow`). A name is whoever held it up to `end`, the window's (--until;
    None: now): the records read after it (the archive is read up to now) do not count, so that
    someone given the name after the window is not taken for its holder in the window."""
    session.note(history.described)
    if wanted is None:
        return None
    known = history.records if end is None else [r for r in history.records if (time_of(r) or end) <= end]
    who = follow(known, wanted)
    if who.described:
        session.note(who.described)
    return who


def _extensions(period: access.Period) -> str:
    return "; ".join(
        f"{e.get('added') or '?'} added at {e.get('time') or '?'} by {e.get('approvedBy') or '?'}"
        + (f": {e['reason']}" if e.get("reason") else "")
        for e in period.extensions
    )


def _ended(period: access.Period) -> str:
    if period.possible:
        # Not confirmed: the upper bound of what a grant that never became Active may have held.
        return f"{period.ending} before Active: POSSIBLE access, not confirmed (an add's answer may have been lost)"
    if period.ending == "active":
        return f"- (due to end {period.scheduled_end or '?'})"
    if period.ending == "revoked" and period.ended_by:
        return f"revoked by {period.ended_by}"
    if period.ending == "drift-removed":
        return "drift-removed (outside jitaccess)"
    if period.ending == "assignment-drift-removed":
        return f"assignment drift-removed (outside jitaccess) in {period.account or '?'}"
    return period.ending


def _approvers(approvals: Sequence[Mapping[str, Any]]) -> str:
    """The table's approvers, each reason shortened as the table's REASON is."""
    return access.approvers_text(approvals, lambda reason: shorten(reason, 40))


def _extended(extension: Mapping[str, Any]) -> str:
    # The approvers of one approved by several, where any gave a reason: theirs is the "why" of it.
    approvals = extension.get("approvals") or []
    why = f" ({_approvers(approvals)})" if any(a.get("reason") for a in approvals) else ""
    return f"+{extension.get('added') or '?'}{why}"


def _access_row(period: access.Period) -> tuple[str, ...]:
    return (
        period.username,
        period.entitlement,
        # An assignment removed as drift: to a group (its id), or to the user; the permission set either way.
        str(period.group.get("name") or period.group.get("id") or "")
        + (f" (permission set {_permission_set(period.permission_set)})" if period.permission_set else ""),
        (f"{period.start} (possible)" if period.possible else period.start)
        or f"unknown (first seen {period.first_seen or period.end})",
        period.end or "still active",
        _ended(period),
        ", ".join(_extended(e) for e in period.extensions) or "-",
        _approvers(period.approvals) if period.approvals else period.approval,
        f"CONFLICT: {shorten(period.reason, 40)}" if period.conflict else shorten(period.reason, 40) or "-",
    )


def write_access_csv(periods: Sequence[access.Period], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ACCESS_CSV_COLUMNS)
    for period in periods:
        flat = {
            **period.as_json(),
            "user": period.username,
            "identityStoreUserId": period.user.get("identityStoreUserId"),
            "group": period.group.get("name"),
            "groupId": period.group.get("id"),
            "extensions": _extensions(period),
            "approvers": "; ".join(period.approvers),
            "possible": "true" if period.possible else "",
            "takenBack": "; ".join(period.taken_back),
            "permissionSet": _permission_set(period.permission_set),
        }
        writer.writerow([_csv_cell(flat.get(column)) for column in ACCESS_CSV_COLUMNS])


def _unknown_entitlement(session: Session, name: str, seen: Sequence[Record]) -> None:
    """No record names `name`: if no Entitlement of that name exists either, it may be a typo
    (a deleted Entitlement's records are still found, so only an empty answer is checked)."""
    if o.get_optional(session.api, names.ENTITLEMENTS, name) is not None:
        return
    import difflib

    known = {wire.name_of(e) for e in o.list_all(session.api, names.ENTITLEMENTS)[0]}
    known |= {str(r["entitlement"]) for r in seen if r.get("entitlement")}
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    hint = f": did you mean {' or '.join(close)}?" if close else ""
    session.note(f"No Entitlement {name!r} exists, and no record in this window names it{hint}")


_rfc3339 = wire.rfc3339


def _actor(record: Record) -> str:
    actor = record.get("actor")
    via = actor.get("via") if isinstance(actor, Mapping) else None
    return str(via) if via else username(actor)


def _detail(record: Record) -> str:
    # A request's record is about its reason, a grant's about how long; a decision's, about why.
    action = record.get("action")
    if action == "granted" and record.get("duration"):
        return f"{record['duration']}, until {record.get('endTime') or '?'}"
    if action == "extended":
        because = f": {record['extensionReason']}" if record.get("extensionReason") else ""
        return f"+{record.get('extendedBy') or '?'}, until {record.get('endTime') or '?'}{because}"
    if action == "extension-requested":
        because = f": {record['extensionReason']}" if record.get("extensionReason") else ""
        return f"+{record.get('extendedBy') or '?'} on {record.get('grant') or '?'}{because}"
    fields = ("reason", "message") if action == "requested" else _DECISION_FIELDS
    return next((str(record[f]) for f in fields if record.get(f)), "")


_DECISION_FIELDS = ("decisionReason", "revokeReason", "message", "reason")


def _audit_row(record: Record, conflict: bool = False) -> tuple[str, ...]:
    # A version of a conflicting id says so in its last column; the warning after the table names the id.
    detail = shorten(_detail(record), 50)
    return (
        str(record.get("time", "")),
        str(record.get("action", "")),
        str(record.get("entitlement", "")),
        username(record.get("user")),
        _actor(record),
        str(record.get("request") or "-"),
        f"CONFLICT: {detail}" if conflict else detail,
    )


def _permission_set(permission_set: Mapping[str, Any]) -> str:
    """A permission set of a record or period: its name, else its ARN."""
    return str(permission_set.get("name") or permission_set.get("arn") or "")


def _csv_cell(value: Any) -> str:
    text = printable(str(value)) if value is not None else ""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _part(record: Record, key: str) -> Mapping[str, Any]:
    value = record.get(key)
    return value if isinstance(value, Mapping) else {}


def _approval(approval: Mapping[str, Any]) -> str:
    reason = approval.get("reason")
    return f"{approval.get('by') or '?'} at {approval.get('time') or '?'}" + (f": {reason}" if reason else "")


def write_csv(records: Sequence[Record], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        user, actor, group = _part(record, "user"), _part(record, "actor"), _part(record, "group")
        flat = {
            **record,
            "user": user.get("username"),
            "identityStoreUserId": user.get("identityStoreUserId"),
            "actor": actor.get("username"),
            "via": actor.get("via"),
            "group": group.get("name") or group.get("id"),
            "approvals": "; ".join(_approval(a) for a in record.get("approvals") or [] if isinstance(a, Mapping)),
            "takenBack": "; ".join(str(t) for t in record.get("takenBack") or []),
            "permissionSet": _permission_set(_part(record, "permissionSet")),
        }
        writer.writerow([_csv_cell(flat.get(column)) for column in CSV_COLUMNS])


# --- review --------------------------------------------------------------------------------------


def review(
    session: Session, entitlement: str, *, days: int, archive: str, output: str, now: datetime | None = None
) -> int:
    end = now or datetime.now(UTC)
    start = end - timedelta(days=days)
    found = o.get(session.api, names.ENTITLEMENTS, entitlement)
    history = load(session, archive, start, end)
    session.note(history.described)
    report = _review(found, select(history.records, entitlement=entitlement), history, days, start)
    if output == "json":
        session.out.write(json.dumps(report, indent=2) + "\n")
    else:
        _print_review(report, session.out)
    history.warn(session)
    return 0


def eligible_users(entitlement: o.Obj) -> list[str] | None:
    """The eligible users the Entitlement's status publishes (usernames), or None when it does not."""
    listed = wire.status(entitlement).get("eligibleUsers")
    if not isinstance(listed, list):
        return None
    return sorted({str(u.get("username") if isinstance(u, Mapping) else u) for u in listed} - {"None", ""})


def _listed_eligible(entitlement: o.Obj) -> list[Mapping[str, Any]]:
    """The entries of the status's `eligibleUsers` that are objects (`username`, `userId`)."""
    listed = wire.status(entitlement).get("eligibleUsers")
    return [u for u in listed if isinstance(u, Mapping)] if isinstance(listed, list) else []


def _ticket_pattern(reason_pattern: str) -> tuple[str, Any]:
    """The owners' reasonPattern when they set one (and RE2 compiles it: `domain.reasons`), else the
    usual ticket id."""
    if reason_pattern:
        try:
            return reason_pattern, reason_rules.compiled(reason_pattern)
        except reason_rules.PatternError:
            pass
    return TICKET, reason_rules.compiled(TICKET)


def _review(entitlement: o.Obj, records: list[Record], history: History, days: int, start: datetime) -> dict[str, Any]:
    name = wire.name_of(entitlement)
    spec = wire.spec(entitlement)
    groups = list((spec.get("eligibility") or {}).get("identityCenterGroups") or [])
    usage: dict[tuple[str, str], dict[str, Any]] = {}
    # A grant's reason is in its own record; for one written before records kept it, its request's
    # `requested` record is read, by the request's uid where the records have it (names are taken
    # again: a later request's reason is not this grant's).
    reasons: dict[tuple[str, str], str] = {}
    for r in records:
        if r.get("action") == "requested":
            reasons[_request_key(r)] = str(r.get("reason", ""))
            reasons.setdefault(("name", str(r.get("request"))), str(r.get("reason", "")))
    unticketed = []
    pattern, ticket = _ticket_pattern(str(spec.get("reasonPattern") or ""))
    person, called = _people(records)
    for record in records:
        user = username(record.get("user"))
        if not user or record.get("action") not in ("requested", "granted"):
            continue
        key = person(record.get("user"))
        seen = usage.setdefault(
            key,
            {
                "user": called[key][-1],
                "identityStoreUserId": key[1] if key[0] == "id" else None,
                "names": called[key],
                "requests": 0,
                "grants": 0,
                "lastGranted": None,
            },
        )
        if record["action"] == "requested":
            seen["requests"] += 1
            continue
        seen["grants"] += 1
        seen["lastGranted"] = record.get("time") or seen["lastGranted"]
        of_request = str(record.get("requestUid") or "")
        key = ("uid", of_request) if of_request else ("name", str(record.get("request")))
        reason = str(record.get("reason") or reasons.get(key, ""))
        if not ticket.search(reason):
            unticketed.append(
                {
                    "grant": record.get("grant") or record.get("name"),
                    "user": user,
                    "time": record.get("time"),
                    "reason": reason,
                }
            )
    eligible = eligible_users(entitlement)
    used = [seen for seen in usage.values() if seen["grants"]]
    return {
        "entitlement": name,
        "ownerTeam": spec.get("owner"),
        "days": days,
        "since": _rfc3339(start),
        "source": history.source,
        "eligibilityGroups": groups,
        "eligibleUsers": eligible,
        "usage": sorted(usage.values(), key=lambda u: (-u["grants"], -u["requests"], u["user"])),
        "neverUsed": None if eligible is None else _never_used(entitlement, eligible, used),
        "reasonPattern": pattern,
        "grantsWithoutTicket": unticketed,
        "breakGlass": _break_glass(spec, records),
    }


def _people(records: list[Record]) -> tuple[Callable[[Any], tuple[str, str]], dict[tuple[str, str], list[str]]]:
    """Who a record's `user` is, as `review` counts use: its Identity Store UserId where the records
    carry it, so that a renamed user is one person under every name they had, and a name given
    to someone else later is another; else (records from before they carried it) its name, or the
    one UserId that name has elsewhere in `records`. And every name seen for each (`saw`)."""
    ids_of: dict[str, set[str]] = {}
    for record in records:
        if username(record.get("user")) and user_id(record.get("user")):
            ids_of.setdefault(username(record.get("user")), set()).add(user_id(record.get("user")))

    def person(user: Any) -> tuple[str, str]:
        name, uid = username(user), user_id(user)
        if not uid and len(ids_of.get(name, ())) == 1:
            [uid] = ids_of[name]
        return ("id", uid) if uid else ("name", name)

    names: dict[tuple[str, str], list[str]] = {}
    for record in records:
        if name := username(record.get("user")):
            saw(names.setdefault(person(record.get("user")), []), name)
    return person, names


def _never_used(entitlement: o.Obj, eligible: list[str], used: list[dict[str, Any]]) -> list[str]:
    """The eligible users who did not use the entitlement: by UserId when the status lists one (a
    renamed user used it under an earlier name; another who had the name before did not use it
    for this one), else by every name of those who did."""
    ids = {str(u.get("username")): str(u.get("userId") or "") for u in _listed_eligible(entitlement)}
    by_id = {seen["identityStoreUserId"] for seen in used if seen["identityStoreUserId"]}
    by_name = {name for seen in used for name in seen["names"]}
    unkeyed = {name for seen in used if not seen["identityStoreUserId"] for name in seen["names"]}

    def did(name: str) -> bool:
        uid = ids.get(name, "")
        return (uid in by_id or name in unkeyed) if uid else name in by_name

    return [name for name in eligible if not did(name)]


def _break_glass(spec: Mapping[str, Any], records: list[Record]) -> dict[str, Any]:
    """Whether the entitlement allows break-glass, and its break-glass approvals of the window that
    no `reviewed` record answers (docs/audit.md)."""
    # Joined by the request's uid: a request name may be used again, and the review of an earlier
    # request under the same name says nothing about the later one (attack 134).
    reviewed = {_request_key(r) for r in records if r.get("action") == "reviewed"}
    unreviewed = [
        {
            "request": r.get("request"),
            "uid": r.get("uid"),
            "user": username(r.get("user")),
            "time": r.get("time"),
            "reason": r.get("reason"),
        }
        for r in records
        if r.get("action") == "break-glass" and _request_key(r) not in reviewed
    ]
    return {"enabled": bool(spec.get("breakGlass")), "unreviewed": unreviewed}


def _request_key(record: Record) -> tuple[str, str]:
    """The request a record is of: its uid, else (a record written before records carried it) its name."""
    uid = str(record.get("uid") or "")
    return ("uid", uid) if uid else ("name", str(record.get("request")))


def _known_as(usage: Mapping[str, Any]) -> str:
    """A user of `review`'s usage: `alice.smith@example.com (known before as alice@example.com)`."""
    earlier = list(reversed(usage["names"][:-1]))
    return str(usage["user"]) + (f" (known before as {', '.join(earlier)})" if earlier else "")


def _print_review(report: dict[str, Any], out: TextIO) -> None:
    days = report["days"]

    def say(line: str) -> None:
        out.write(printable(line) + "\n")

    say(
        f"Entitlement {report['entitlement']} (owner team {report['ownerTeam']}), the last {days} days (since {report['since']})"
    )
    groups = ", ".join(report["eligibilityGroups"])
    if report["eligibleUsers"] is not None:
        say(f"Eligible: {', '.join(report['eligibleUsers']) or 'nobody'}")
    elif groups:
        say(
            f"Eligible: members of the Identity Center group(s) {groups}; eligibility is known to the operator only (requesters seen are below)"
        )
    else:
        say("Eligible: everyone in the identity store (the entitlement names no eligibility groups)")
    say("")
    say(f"Used in the last {days} days:" if report["usage"] else f"Used in the last {days} days: by nobody")
    if report["usage"]:
        rows = [(_known_as(u), str(u["requests"]), str(u["grants"]), u["lastGranted"] or "-") for u in report["usage"]]
        table(rows, ("USER", "REQUESTS", "GRANTS", "LAST GRANTED"), out, indent="  ")
    say("")
    if report["neverUsed"] is None and not groups:
        say("Never used (candidates for removal): not applicable, anyone may request it")
    elif report["neverUsed"] is None:
        say("Never used (candidates for removal): unknown, eligibility is known to the operator only")
    else:
        say(f"Never used (candidates for removal): {', '.join(report['neverUsed']) or 'none'}")
    unticketed = report["grantsWithoutTicket"]
    say(
        f"Grants without a ticket-like reason (pattern {report['reasonPattern']}): {'' if unticketed else 'none'}".rstrip()
    )
    if unticketed:
        rows = [(str(g["grant"]), g["user"], str(g["time"] or "-"), shorten(g["reason"], 50)) for g in unticketed]
        table(rows, ("GRANT", "USER", "GRANTED", "REASON"), out, indent="  ")
    glass = report["breakGlass"]
    if not glass["enabled"] and not glass["unreviewed"]:
        say("Break-glass grants not reviewed: none (break-glass is not enabled)")
        return
    say(f"Break-glass grants not reviewed: {'' if glass['unreviewed'] else 'none'}".rstrip())
    if glass["unreviewed"]:
        rows = [
            (str(g["request"]), g["user"], str(g["time"] or "-"), shorten(str(g["reason"] or ""), 50))
            for g in glass["unreviewed"]
        ]
        table(rows, ("REQUEST", "USER", "APPROVED", "REASON"), out, indent="  ")
        # Imported here only: the rules' module loads pydantic, too slow for the reports that need none.
        from jitaccess.domain import breakglass as break_glass_rules

        say("  review each (an approver of the owner team):")
        for g in glass["unreviewed"]:
            say(f"    {break_glass_rules.review_command(str(g['request']), g.get('uid'))}")

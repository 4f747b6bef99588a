"""Access periods for `kubectl jit audit --access`: who held which access, from when to when.

The records say what happened to each object; an auditor asks who had access between T1 and T2.
A period is built from the records of one grant (`granted`, each `extended`, and its ending:
`expired`, `revoked`, `lapsed` or `failed`) with its request's decision (`approved`, each
approval of a multi-party one with the reason its approver gave, or `break-glass` and its
`reviewed`). It overlaps a window when it began at or before the window's end and ended at or
after its start, or has not ended: so a grant made before the window and still running is listed,
which filtering records by time would miss.

A grant that ended without becoming Active held nothing for certain; when failing it took back
access an attempt had added (the answer may have been lost, the add made all the same), its ending
record bounds what it may have held (`possibleStartTime`, `possibleEndTime`): a period marked
`possible`, the upper bound of that access, never a confirmed one.

A member the drift scan removed (`drift-removed`: in the group with no grant behind it) is a period
too, outside jitaccess, ending at its removal; its start is what the record says of it, or unknown.
With an unknown start it is listed only when the removal itself falls in the window. So is an
account assignment of a jitaccess permission set that a PermissionCatalog's pass removed
(`assignment-drift-removed`: a user or group assigned it outside jitaccess), naming the permission
set and the account.

Pure functions on records (docs/audit.md's schema), whichever source they were read from.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jitaccess.cli import objects as o

Record = dict[str, Any]
_ENDINGS = ("expired", "revoked", "lapsed", "failed")
_DRIFT = ("drift-removed", "assignment-drift-removed")
_AUTO = {"auto-approved (owner team)": "auto (owner team)", "auto (on call)": "auto (on call)"}
GRANT, OUTSIDE = "grant", "outside-jitaccess"


@dataclass
class Period:
    """One grant's hold on its group (or one member found without a grant), as JSON output shows it.
    `end` is None while active; `start` is None when no record says when a drift-removed member began."""

    kind: str
    user: Mapping[str, Any]
    entitlement: str
    group: Mapping[str, Any]
    start: str | None
    end: str | None
    ending: str
    owner_team: str = ""
    grant: str = ""
    request: str = ""
    scheduled_end: str = ""
    ended_by: str = ""
    end_reason: str = ""
    extensions: list[dict[str, Any]] = field(default_factory=list)
    approval: str = ""
    approvers: list[str] = field(default_factory=list)
    #: The approvers' approvals as the `approved` record has them (by, time, groups, reason); a
    #: single approver's from its actor and `decisionReason`. Empty for auto-approval and break-glass.
    approvals: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    #: Built from a record whose id has conflicting versions in the archive (`history.Conflict`).
    conflict: bool = False
    #: A drift-removed member: when jitaccess first saw it in the group (it was there since, at
    #: least; when it came is unknown, so `start` stays None).
    first_seen: str = ""
    #: A grant that never became Active but may have held access all the same (an add asked for,
    #: its answer lost): `start` and `end` are the upper bound, from the first attempt to the
    #: take-back; `taken_back` is what the take-back removed.
    possible: bool = False
    taken_back: list[str] = field(default_factory=list)
    #: An assignment removed as drift: its permission set (`name`, `arn`) and account.
    permission_set: Mapping[str, Any] = field(default_factory=dict)
    account: str = ""

    @property
    def username(self) -> str:
        return str(self.user.get("username") or "")

    def overlaps(self, start: datetime, end: datetime) -> bool:
        began, ended = o.parse_time(self.start), o.parse_time(self.end)
        if began is None:
            # A member found without a grant: held for certain from when it was first seen (else
            # only at its removal) to its removal; listed when that much overlaps the window.
            seen = o.parse_time(self.first_seen) or ended
            return ended is not None and seen is not None and seen <= end and ended >= start
        return began <= end and (ended is None or ended >= start)

    def as_json(self) -> dict[str, Any]:
        shown = {
            "kind": self.kind,
            "user": dict(self.user),
            "entitlement": self.entitlement,
            "ownerTeam": self.owner_team,
            "group": dict(self.group),
            "grant": self.grant,
            "request": self.request,
            "start": self.start,
            "end": self.end,
            "active": self.end is None,
            "ending": self.ending,
            "scheduledEnd": self.scheduled_end,
            "endedBy": self.ended_by,
            "endReason": self.end_reason,
            "extensions": self.extensions,
            "approval": self.approval,
            "approvers": self.approvers,
            "approvals": self.approvals,
            "reason": self.reason,
            "conflict": self.conflict,
            "firstSeen": self.first_seen,
            "possible": self.possible,
            "takenBack": self.taken_back,
            "permissionSet": dict(self.permission_set),
            "account": self.account,
        }
        # As in the records: unknown is absent (`active` is always said; `conflict`, `possible` only when true).
        return {k: v for k, v in shown.items() if v not in (None, "", [], {}, False) or k == "active"}


def build(records: Iterable[Record], conflicting: Collection[str] = ()) -> list[Period]:
    """Every access period the records show, oldest start first (unknown starts by their end).
    A period built from a record of a `conflicting` id says so (`conflict`): which version it took
    is arbitrary, and the report warns of the conflict."""
    grants: dict[str, list[Record]] = {}
    decisions: dict[str, list[Record]] = {}
    drift: list[Record] = []
    for record in records:
        action, kind = record.get("action"), record.get("kind")
        if action in _DRIFT:
            drift.append(record)
        elif kind == "AccessGrant" and record.get("uid"):
            grants.setdefault(str(record["uid"]), []).append(record)
        elif kind == "AccessRequest" and action in ("approved", "break-glass", "reviewed"):
            decisions.setdefault(str(record.get("request") or record.get("name")), []).append(record)
    periods = [p for p in (_of_grant(rs, decisions, conflicting) for rs in grants.values()) if p is not None]
    periods += [_of_drift(r, str(r.get("id")) in conflicting) for r in drift]
    return sorted(periods, key=lambda p: (p.start or p.end or "", p.username, p.grant))


def _of_grant(
    records: list[Record], decisions: Mapping[str, list[Record]], conflicting: Collection[str]
) -> Period | None:
    by_action: dict[str, Record] = {}
    extended: list[Record] = []
    for record in records:
        if record.get("action") == "extended":
            extended.append(record)
        else:
            by_action[str(record.get("action"))] = record
    granted = by_action.get("granted")
    ending = next((by_action[a] for a in _ENDINGS if a in by_action), None)
    start = next((str(r["startTime"]) for r in [granted, ending, *extended] if r and r.get("startTime")), None)
    possible = start is None and ending is not None and bool(ending.get("possibleStartTime"))
    if possible and ending is not None:
        start = str(ending["possibleStartTime"])
    if start is None:
        return None  # ended before Active with no access found to take back: none to account for
    any_record = granted or ending or extended[0]
    extended.sort(key=lambda r: str(r.get("time") or ""))
    scheduled = str((extended[-1] if extended else granted or {}).get("endTime") or "")
    request = str(any_record.get("request") or "")
    request_uid = str(next((r["requestUid"] for r in records if r.get("requestUid")), ""))
    decided = _of_request(decisions.get(request, []), request_uid)
    exact = bool(request_uid) and any(r.get("uid") == request_uid for r in decided)
    approval, approvers, approvals = _approval(decided, start, exact=exact)
    conflict = any(str(r.get("id")) in conflicting for r in [*records, *decided])
    end = str(ending.get("endTime") or ending.get("time")) if ending else None
    if possible and ending is not None:
        end = str(ending.get("possibleEndTime") or ending.get("time"))
    ended_by = ""
    if ending is not None and ending.get("action") == "revoked":
        ended_by = str((ending.get("actor") or {}).get("username") or "")
    return Period(
        kind=GRANT,
        user=any_record.get("user") or {},
        entitlement=str(any_record.get("entitlement") or ""),
        group=any_record.get("group") or {},
        start=start,
        end=end,
        ending=str(ending["action"]) if ending else "active",
        owner_team=str(any_record.get("ownerTeam") or ""),
        grant=str(any_record.get("grant") or any_record.get("name") or ""),
        request=request,
        scheduled_end=scheduled,
        ended_by=ended_by,
        end_reason=str((ending or {}).get("revokeReason") or (ending or {}).get("message") or ""),
        extensions=[_extension(r) for r in extended],
        approval=approval,
        approvers=approvers,
        approvals=approvals,
        reason=str(any_record.get("reason") or ""),
        conflict=conflict,
        possible=possible,
        taken_back=[str(t) for t in (ending or {}).get("takenBack") or []] if possible else [],
    )


def _extension(record: Record) -> dict[str, Any]:
    actor = record.get("actor") or {}
    by = _AUTO.get(str(actor.get("via") or ""), "") or str(actor.get("username") or "")
    shown = {
        "time": record.get("time"),
        "added": record.get("extendedBy"),
        "approvedBy": by,
        "reason": record.get("extensionReason"),
        "previousEnd": record.get("previousEndTime"),
        "end": record.get("endTime"),
        "approvals": _listed(record),
    }
    return {k: v for k, v in shown.items() if v}


def _listed(record: Record) -> list[dict[str, Any]]:
    """A record's `approvals` (by, time, groups, reason), those naming no approver left out."""
    return [dict(a) for a in record.get("approvals") or [] if isinstance(a, Mapping) and a.get("by")]


def approvers_text(approvals: Iterable[Mapping[str, Any]], reason: Callable[[str], str] = str) -> str:
    """Who approved, each followed by `: reason` when they gave one, `; `-separated (a reason may
    hold a comma); only names, `, `-separated, when nobody gave a reason. `reason` shapes each."""
    listed = list(approvals)
    if not any(a.get("reason") for a in listed):
        return ", ".join(str(a.get("by")) for a in listed)
    return "; ".join(
        f"{a.get('by')}: {reason(str(a['reason']))}" if a.get("reason") else str(a.get("by")) for a in listed
    )


def _of_request(decided: list[Record], request_uid: str) -> list[Record]:
    """The decision records of the grant's request among those of its name. A request name may be
    used again after a withdrawal, so they are joined by the request's uid where the records say it:
    the grant's records name it (`requestUid`, its `jitaccess.dev/request` label) and each decision
    record is its request's (`uid`). Records of another uid are another request's and left out; when
    none carries the grant's, those that carry no uid (written before) are what is left to join by
    name and time (`_approval`), as are all of the name for a grant whose records name no uid."""
    if not request_uid:
        return decided
    exact = [r for r in decided if r.get("uid") == request_uid]
    return exact or [r for r in decided if not r.get("uid")]


def _approval(decided: list[Record], start: str, *, exact: bool) -> tuple[str, list[str], list[dict[str, Any]]]:
    """How the grant's request was approved, by whom, and their approvals: every approver of a
    multi-party one, each with the reason they gave. `exact`: `decided` are the request's own, joined
    by its uid (`_of_request`), whatever times they carry; else they are joined by the request's name
    and time: the decision taken last before the grant began (a request name may be used again after a
    withdrawal, and records of equal times cannot tell two requests apart)."""
    before = decided if exact else [r for r in decided if str(r.get("time") or "") <= start]
    approvals = [r for r in before if r.get("action") in ("approved", "break-glass")]
    if not approvals:
        return "unknown (no approval record read)", [], []
    decision = max(approvals, key=lambda r: str(r.get("time") or ""))
    actor = decision.get("actor") or {}
    if decision.get("action") == "break-glass":
        reviews = [r for r in decided if r.get("action") == "reviewed" and r.get("uid") == decision.get("uid")]
        reviewer = str((reviews[0].get("actor") or {}).get("username") or "") if reviews else ""
        requester = str(actor.get("username") or "")
        return (f"break-glass, reviewed by {reviewer}" if reviewer else "break-glass, not reviewed"), [requester], []
    via = str(actor.get("via") or "")
    if via:
        return _AUTO.get(via, via), [], []
    who, why = str(actor.get("username") or "?"), str(decision.get("decisionReason") or "")
    given = _listed(decision) or [{"by": who, "time": decision.get("time"), "groups": actor.get("groups")}]
    # `decisionReason` is the reason of the approval that completed it (the actor's): an approval
    # record written before the approvals carried reasons still has that one.
    given = [{**a, "reason": why} if a["by"] == who and why and not a.get("reason") else a for a in given]
    given = [{k: v for k, v in a.items() if v} for a in given]
    known = [a for a in given if a["by"] != "?"]  # an approver no record names is no approval to list
    return approvers_text(given), [str(a["by"]) for a in given], known


def _of_drift(record: Record, conflict: bool) -> Period:
    # A removal's `startTime` is when the drift scan first saw the member, not when it came (which
    # nothing tells): the period's start stays unknown.
    return Period(
        kind=OUTSIDE,
        user=record.get("user") or {},
        entitlement=str(record.get("entitlement") or ""),
        group=record.get("group") or {},
        start=None,
        first_seen=str(record.get("startTime") or ""),
        end=str(record.get("time") or "") or None,
        ending=str(record.get("action")),
        owner_team=str(record.get("ownerTeam") or ""),
        end_reason=str(record.get("message") or ""),
        approval="none: outside jitaccess",
        conflict=conflict,
        permission_set=record.get("permissionSet") or {},
        account=str(record.get("account") or ""),
    )

"""The audit record, schema v1: one JSON object per decision, derived from the objects as stored.

Records are derived, not remembered. Every decision jitaccess takes or carries out leaves its trace
in an object's stored state (conditions with their times, `approvedBy`, the `-by` annotations the
admission webhook stamps, `revokedBy`, activation and revocation times), so the records of an
object are a pure function of it: an operator that restarts derives again what it had not archived
yet, and loses nothing. Each record's `id` is `<object uid>/<action>`, the same for the same object
whatever its later state, which makes writing a record twice detectable and archiving idempotent.

Records are immutable once their decision is taken: later state changes add records, never alter
one (a grant's `granted` record keeps its scheduled end; its `expired` or `revoked` record says
when access actually ended).

Standard library only, on raw wire dicts: the operator and the `kubectl jit` plugin (which must not
import pydantic on its fast paths) both use it. docs/audit.md documents every field and action.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from jitaccess.api import names, wire

SCHEMA = "jitaccess.dev/audit/v1"
#: The archive's layout version: objects live under `<prefix>/v1/YYYY/MM/DD/`.
LAYOUT = "v1"
#: Who the operator's own decisions (time-outs, expiry, escalation, auto-approval) are attributed to.
OPERATOR = "system:jitaccess"
#: Clocks differ: a record's time is the API server's, the key of the batch holding it (and so its
#: day folder) the writing operator's, a reader's now its own. The margin allowed between them.
SKEW = timedelta(minutes=5)

# Actions, in the order an object's life produces them.
REQUESTED = "requested"
ESCALATED = "escalated"
APPROVED = "approved"
# A break-glass request approved by its own requester (in place of `approved`), and its review.
BREAK_GLASS = "break-glass"
REVIEWED = "reviewed"
DENIED = "denied"
TIMED_OUT = "timed-out"
NOT_ELIGIBLE = "not-eligible"
INVALID = "invalid"
FAILED = "failed"
GRANTED = "granted"
EXTENDED = "extended"
REVOKED = "revoked"
EXPIRED = "expired"
LAPSED = "lapsed"
DRIFT_REMOVED = "drift-removed"
# An account assignment of a jitaccess permission set made outside jitaccess, removed by its
# PermissionCatalog's pass (`status.driftRemovals` of the catalog).
ASSIGNMENT_DRIFT_REMOVED = "assignment-drift-removed"
# A request deleted while it waited for a decision or for its start: it ends without a grant.
WITHDRAWN = "withdrawn"
# An AccessExtension's own life (one applied is the grant's `extended` record): asked, and how it
# ended when it moved nothing.
EXTENSION_REQUESTED = "extension-requested"
EXTENSION_DENIED = "extension-denied"
EXTENSION_FAILED = "extension-failed"
EXTENSION_WITHDRAWN = "extension-withdrawn"
# A deleted Entitlement let go: from then on nothing watches its group (`domain.releases`).
RELEASED = "released"
ACTIONS = (
    REQUESTED,
    ESCALATED,
    APPROVED,
    BREAK_GLASS,
    DENIED,
    TIMED_OUT,
    NOT_ELIGIBLE,
    INVALID,
    FAILED,
    GRANTED,
    EXTENSION_REQUESTED,
    EXTENDED,
    REVOKED,
    EXPIRED,
    LAPSED,
    DRIFT_REMOVED,
    ASSIGNMENT_DRIFT_REMOVED,
    WITHDRAWN,
    EXTENSION_DENIED,
    EXTENSION_FAILED,
    EXTENSION_WITHDRAWN,
    RELEASED,
)

# A request that ended without a grant: its `Ready` reason -> the action.
_REQUEST_ENDINGS = {
    names.TIMED_OUT: TIMED_OUT,
    names.NOT_ELIGIBLE: NOT_ELIGIBLE,
    names.INVALID: INVALID,
    names.FAILED: FAILED,
}
_GRANT_ENDINGS = {
    names.EXPIRED: EXPIRED,
    names.REVOKED: REVOKED,
    names.FAILED: FAILED,
    names.ELIGIBILITY_LAPSED: LAPSED,
}

Record = dict[str, Any]


def rfc3339(value: Any) -> str | None:
    """A stored timestamp as RFC 3339 UTC with a `Z` (`2026-11-23T12:00:00Z`); None when absent
    or unreadable (the field is then left out)."""
    if not value:
        return None
    if isinstance(value, datetime):
        stamp = value
    else:
        try:
            stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    try:
        return stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")
    except OverflowError:  # a user's time with no UTC form (9999-12-31T23:59:59-01:00): unreadable
        return None


def _drop_empty(fields: Mapping[str, Any]) -> Record:
    """Fields that are unknown are absent, never null (nor empty)."""
    return {k: v for k, v in fields.items() if v not in (None, "", [], {})}


def _actor(username: str, groups: str | Iterable[str] = "", via: str = "") -> dict[str, Any]:
    listed = [g for g in groups.split(",")] if isinstance(groups, str) else list(groups)
    return _drop_empty({"username": username, "groups": sorted(g for g in listed if g), "via": via})


def _operator(via: str = "") -> dict[str, Any]:
    return _actor(OPERATOR, via=via)


def _base(obj: wire.Obj, action: str, time: str | None, actor: Mapping[str, Any], **fields: Any) -> Record:
    meta = wire.metadata(obj)
    record = {
        "schema": SCHEMA,
        "id": f"{meta.get('uid') or ''}/{action}",
        "time": time,
        "action": action,
        "actor": dict(actor),
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        **fields,
    }
    return _drop_empty(record)


def _when(obj: wire.Obj, type_: str) -> str | None:
    found = wire.condition(obj, type_)
    return rfc3339(found.get("lastTransitionTime")) if found is not None else None


def _message(obj: wire.Obj, type_: str) -> str | None:
    found = wire.condition(obj, type_)
    return str(found.get("message") or "") or None if found is not None else None


def records_of_request(request: wire.Obj) -> list[Record]:
    """The records of an AccessRequest as stored: requested, then escalated, approved or denied,
    and how it ended when it ended without a grant (its grant's records tell the rest): `revoked`
    for one cancelled before its start, by its stamped `revoked-by`."""
    spec, status = wire.spec(request), wire.status(request)
    annotations = wire.annotations_of(request)
    requester = str(spec.get("requester") or status.get("requester") or "")
    # Only what is known when each decision is taken: no grant name (the grant comes later; it has
    # the request's name, and its own records name both), the duration as asked in `requested`.
    asked = {
        "request": wire.name_of(request),
        "entitlement": spec.get("entitlement"),
        "user": _drop_empty({"username": requester, "identityStoreUserId": spec.get("requesterUserId")}),
        "reason": spec.get("reason"),
    }
    # The owner team is the operator's to look up, once it takes the request up (`status.ownerTeam`);
    # the `requested` record (the request as created) cannot name it. Each later record names the
    # team its step was taken against, which a change of the Entitlement's owner meanwhile makes
    # another: the escalation's (`escalationTeam`), the decision's and what follows it (`decision_team`).
    common = {
        **asked,
        "ownerTeam": status.get("ownerTeam"),
        "duration": status.get("duration") or spec.get("duration"),
    }
    decided = {**common, "ownerTeam": decision_team(request)}
    records = [
        _base(
            request,
            REQUESTED,
            rfc3339(wire.metadata(request).get("creationTimestamp")),
            _actor(requester, spec.get("requesterGroups") or []) if requester else {},
            **asked,
            duration=spec.get("duration"),
        )
    ]
    if wire.is_true(request, names.ESCALATED):
        records.append(
            _base(
                request,
                ESCALATED,
                rfc3339(status.get("escalationTime")) or _when(request, names.ESCALATED),
                _operator(),
                **{**common, "ownerTeam": status.get("escalationTeam") or status.get("ownerTeam")},
                message=_message(request, names.ESCALATED),
            )
        )
    approved = wire.condition(request, names.APPROVED)
    action = APPROVED
    if approved is not None and approved.get("status") == "True":
        if approved.get("reason") == names.BREAK_GLASS:
            action, actor = BREAK_GLASS, _actor(requester, spec.get("requesterGroups") or [], via="break-glass")
        elif approved.get("reason") == names.AUTO_APPROVED:
            on_call = status.get("approvalSummary") == "auto (on call)"
            actor = _operator(via="auto (on call)" if on_call else "auto-approved (owner team)")
        else:
            actor = _actor(
                str(status.get("approvedBy") or annotations.get(names.ANNOTATION_APPROVED_BY) or ""),
                annotations.get(names.ANNOTATION_APPROVED_BY_GROUPS, ""),
            )
        records.append(
            _base(
                request,
                action,
                _when(request, names.APPROVED),
                actor,
                **decided,
                decisionReason=status.get("decisionReason"),
                approvals=_approvals(with_stamped(status.get("approvals") or [], annotations)),
                message=_message(request, names.APPROVED),
            )
        )
    if wire.is_true(request, names.REVIEWED):
        records.append(
            _base(
                request,
                REVIEWED,
                _when(request, names.REVIEWED),
                _actor(str(status.get("reviewedBy") or ""), annotations.get(names.ANNOTATION_REVIEWED_BY_GROUPS, "")),
                **decided,
                message=_message(request, names.REVIEWED),
            )
        )
    if wire.is_true(request, names.DENIED):
        who = str(status.get("deniedBy") or annotations.get(names.ANNOTATION_DENIED_BY) or "")
        records.append(
            _base(
                request,
                DENIED,
                _when(request, names.DENIED),
                _actor(who, annotations.get(names.ANNOTATION_DENIED_BY_GROUPS, "")),
                **decided,
                decisionReason=status.get("decisionReason"),
                message=_message(request, names.DENIED),
            )
        )
    deleted = rfc3339(wire.metadata(request).get("deletionTimestamp"))
    if deleted and (wire.ready_reason(request) or names.PENDING) in (names.PENDING, names.SCHEDULED):
        # Who deleted it is not in the object: the webhook's audit line (AdmissionDeleted) names them.
        records.append(
            _base(
                request,
                WITHDRAWN,
                deleted,
                {},
                **decided,
                message="deleted before a decision, or before its start: nothing was granted",
            )
        )
    revoker = annotations.get(names.ANNOTATION_REVOKED_BY, "")
    if wire.ready_reason(request) == names.REVOKED and not status.get("grant"):
        # Cancelled while it waited for its start (never granted): by whom the webhook stamped.
        records.append(
            _base(
                request,
                REVOKED,
                _when(request, names.READY),
                _actor(revoker) if revoker else _operator(),
                # The team the cancel was judged against (its owner then); before the field, the decision's.
                **{**decided, "ownerTeam": status.get("revocationTeam") or decision_team(request)},
                revokeReason=annotations.get(names.ANNOTATION_REVOKE_REASON),
                message=_message(request, names.READY),
            )
        )
    ending = _REQUEST_ENDINGS.get(wire.ready_reason(request) or "")
    if ending is not None and not status.get("grant"):
        records.append(
            _base(
                request,
                ending,
                _when(request, names.READY),
                _operator(),
                **decided,
                message=_message(request, names.READY),
            )
        )
    return records


def decision_team(request: wire.Obj) -> str | None:
    """The owner team a request's decision was taken against (`status.decisionTeam`: the Entitlement's
    owner when it was approved, denied or ended), else the one it was taken up under
    (`status.ownerTeam`: not decided yet, or decided by a version before the field). What the records
    of its decision name, and whose approvers hear of it once its Entitlement is gone."""
    status = wire.status(request)
    return str(status.get("decisionTeam") or status.get("ownerTeam") or "") or None


def with_stamped(counted: Iterable[Any], annotations: Mapping[str, str]) -> list[dict[str, Any]]:
    """Each approval the operator counted (`{by, time}`: `status.approvals`), with the groups and
    reason its approver's entry in the `jitaccess.dev/approvals` annotation holds, joined by `by`:
    the webhook stamps them there, the count keeps only who and when. What is unreadable adds
    nothing (the approval keeps who and when), so a malformed annotation never stops a record."""
    stamped = _stamped(annotations)
    joined = []
    for given in counted:
        if not isinstance(given, Mapping):
            continue
        entry = stamped.get(str(given.get("by") or ""), {})
        joined.append(_drop_empty({"by": given.get("by"), "time": given.get("time"), **entry}))
    return joined


def _stamped(annotations: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """By approver, the groups and reason of their entry in `jitaccess.dev/approvals`; each entry
    read on its own, its first by a name kept (the webhook refuses a second approval by the same)."""
    try:
        listed = json.loads(annotations.get(names.ANNOTATION_APPROVALS) or "[]")
    except (TypeError, ValueError):
        return {}
    found: dict[str, dict[str, Any]] = {}
    for entry in listed if isinstance(listed, list) else []:
        by = entry.get("by") if isinstance(entry, dict) else None
        if not isinstance(by, str) or not by or by in found:
            continue
        groups, reason = entry.get("groups"), entry.get("reason")
        found[by] = {
            "groups": sorted(str(g) for g in groups if isinstance(g, str) and g) if isinstance(groups, list) else [],
            "reason": reason if isinstance(reason, str) else "",
        }
    return found


def _approvals(listed: Iterable[Any]) -> list[Record]:
    """The `approvals` of a record: by, time (RFC 3339), groups, reason; what is unknown is absent."""
    return [
        _drop_empty(
            {
                "by": a.get("by"),
                "time": rfc3339(a.get("time")),
                "groups": [str(g) for g in a.get("groups") or [] if g] if isinstance(a.get("groups"), list) else [],
                "reason": a.get("reason") if isinstance(a.get("reason"), str) else None,
            }
        )
        for a in listed
        if isinstance(a, Mapping)
    ]


def records_of_grant(grant: wire.Obj) -> list[Record]:
    """The records of an AccessGrant as stored: granted (once its membership was in place), extended
    (`extended/<n>`, each AccessExtension applied), then expired, revoked, lapsed (its user no longer
    eligible) or failed. `startTime`/`endTime` bound
    the time the user held the group: the scheduled end in `granted`, the actual end in `expired`,
    `revoked` and `lapsed`. `duration` is always `endTime - startTime` where a record has both: as
    granted (`spec.duration`) in `granted`, as extended in `extended`, as it applied in the endings
    (an extension, an early revocation or lapse included); the ending of a grant never activated
    keeps the duration as granted, and, when failing it took back access an attempt had added, says
    for how long it may have held it all the same (`possible_access`)."""
    spec, status = wire.spec(grant), wire.status(grant)
    annotations = wire.annotations_of(grant)
    start = rfc3339(status.get("activationTime"))
    common = {
        "request": spec.get("request"),
        # The uid of the request it was made for (its `jitaccess.dev/request` label): a request name
        # may be used again, and the request's records carry its uid (`uid`), so readers join by it.
        "requestUid": (wire.metadata(grant).get("labels") or {}).get(names.LABEL_REQUEST),
        "grant": wire.name_of(grant),
        "entitlement": spec.get("entitlement"),
        "ownerTeam": spec.get("ownerTeam"),
        "user": _drop_empty(
            {"username": spec.get("user"), "identityStoreUserId": spec.get("userId") or status.get("userId")}
        ),
        "group": _drop_empty({"name": spec.get("groupName"), "id": status.get("groupId")}),
        "reason": spec.get("reason"),
        "duration": spec.get("duration"),
    }
    records: list[Record] = []
    extensions = [e for e in status.get("extensions") or [] if isinstance(e, Mapping)]
    if start is not None:
        # The end as granted: an extension moves expirationTime, never the granted record.
        first_end = extensions[0].get("previousExpirationTime") if extensions else None
        records.append(
            _base(
                grant,
                GRANTED,
                start,
                _operator(),
                **common,
                startTime=start,
                endTime=rfc3339(first_end or status.get("expirationTime")),
            )
        )
    records.extend(_extended(grant, common, start, extensions))
    reason = wire.ready_reason(grant) or ""
    ending = _GRANT_ENDINGS.get(reason)
    if ending is None:
        return records
    ended = _when(grant, names.READY)
    actor: dict[str, Any] = _operator()
    extra: dict[str, Any] = {}
    if ending in (REVOKED, LAPSED):
        # A lapse ends a grant early, as a revocation does: `revocationTime` is when.
        ended = rfc3339(status.get("revocationTime")) or ended
    if ending == REVOKED:
        who = str(status.get("revokedBy") or "")
        actor = _actor(who) if who else _operator()
        extra["revokeReason"] = annotations.get(names.ANNOTATION_REVOKE_REASON)
    end = ended if start is not None else None
    records.append(
        _base(
            grant,
            ending,
            ended,
            actor,
            **{**common, "duration": _lasted(start, end) or common["duration"]},
            **extra,
            startTime=start,
            endTime=end,
            **(
                possible_access(status, rfc3339(wire.metadata(grant).get("creationTimestamp"))) if start is None else {}
            ),
            message=_message(grant, names.READY),
        )
    )
    return records


def possible_access(status: Mapping[str, Any], created: str | None) -> Record:
    """For a grant that ended without ever becoming Active: the upper bound of the access it may
    have given, `possibleStartTime` to `possibleEndTime`, and `takenBack` (what failing it removed).

    Failing such a grant first takes back what its attempts may have added, and records it with
    `Failed` (`status.takeBack`). When that removed something, an add had landed though the grant
    never became Active (its answer lost, say), and nothing else says so: the user may have held it
    from `takeBack.since` (the first attempt the operator knew of, else the grant's creation) until
    the take-back (from `created`, the grant's creation, when `since` is missing). Nothing when it
    removed nothing: no access was found to account for."""
    back = status.get("takeBack")
    if not isinstance(back, Mapping) or not back.get("removed"):
        return {}
    return {
        "possibleStartTime": rfc3339(back.get("since")) or created,
        "possibleEndTime": rfc3339(back.get("time")),
        "takenBack": [str(r) for r in back.get("removed") or []],
    }


def _lasted(start: str | None, end: str | None) -> str | None:
    """The duration from `start` to `end` (`1h30m`): what applied to a grant, extensions and an early
    end included, as its `startTime` and `endTime` say; None when either is unknown."""
    if start is None or end is None:
        return None
    began = datetime.fromisoformat(start.replace("Z", "+00:00"))
    ended = datetime.fromisoformat(end.replace("Z", "+00:00"))
    return wire.duration_text(ended - began) if ended >= began else None


def _extended(grant: wire.Obj, common: Mapping[str, Any], start: str | None, extensions: list[Any]) -> list[Record]:
    """`extended/<n>`, one per AccessExtension applied (`status.extensions`, in order): who approved
    it (the operator for an owner-team member's own), the time added, the end before and after, the
    duration that applies from then on (activation to the new end), and, with approvalsRequired
    above 1, every approval that made the count (`approvals`, as the extension's were stamped)."""
    records = []
    for number, extension in enumerate(extensions, start=1):
        who = str(extension.get("approvedBy") or "")
        end = rfc3339(extension.get("expirationTime"))
        records.append(
            _base(
                grant,
                f"{EXTENDED}/{number}",
                rfc3339(extension.get("time")),
                _operator(via="auto-approved (owner team)") if who in ("", "auto") else _actor(who),
                **{**common, "duration": _lasted(start, end) or common["duration"]},
                extension=extension.get("name"),
                extendedBy=extension.get("by"),
                extensionReason=extension.get("reason"),
                startTime=start,
                previousEndTime=rfc3339(extension.get("previousExpirationTime")),
                endTime=end,
                approvals=_approvals(extension.get("approvals") or []),
            )
            | {"action": EXTENDED}
        )
    return records


def records_of_entitlement(entitlement: wire.Obj) -> list[Record]:
    """The drift removals an Entitlement's status still lists (`status.driftRemovals`): members
    found in its Identity Center group with no grant behind them, and taken out. The operator drops
    an entry once its record is archived, so these are the ones not archived yet. The id names the
    membership, which Identity Center never gives twice. And, once a deleted Entitlement is let go
    (`Ready` reason `Released`, written once), `released`: its group is watched no more."""
    spec = wire.spec(entitlement)
    target = spec.get("identityCenter") or {}
    records = []
    for removal in wire.status(entitlement).get("driftRemovals") or []:
        if not removal.get("time"):
            continue  # under way: a record once the removal is confirmed
        records.append(
            _base(
                entitlement,
                f"{DRIFT_REMOVED}/{removal.get('membershipId')}",
                rfc3339(removal.get("time")),
                _operator(),
                entitlement=wire.name_of(entitlement),
                # Its owner at the removal; for an entry listed before the field, the owner now.
                ownerTeam=removal.get("ownerTeam") or spec.get("owner"),
                user=_drop_empty({"username": removal.get("user"), "identityStoreUserId": removal.get("userId")}),
                group=_drop_empty(
                    {
                        # As listed with the removal: the spec may name another group since.
                        "name": removal.get("groupName") or target.get("groupName") or target.get("groupId"),
                        "id": removal.get("groupId"),
                    }
                ),
                # First seen by the drift scan, not when the membership began (unknown: docs/audit.md).
                startTime=rfc3339(removal.get("firstSeen")),
                endTime=rfc3339(removal.get("time")),
                message=removal.get("message"),
            )
            | {"action": DRIFT_REMOVED}
        )
    if wire.deleting(entitlement) and wire.ready_reason(entitlement) == names.RELEASED:
        records.append(
            _base(
                entitlement,
                RELEASED,
                # Not `Ready`'s transition time: it stays that of `Deleting` (both False).
                rfc3339(wire.status(entitlement).get("releasedAt")) or _when(entitlement, names.READY),
                _operator(),
                entitlement=wire.name_of(entitlement),
                ownerTeam=wire.status(entitlement).get("releasedOwnerTeam") or spec.get("owner"),
                group=_drop_empty(
                    {
                        "name": target.get("groupName") or target.get("groupId"),
                        "id": wire.status(entitlement).get("groupId"),
                    }
                ),
                # When it was deleted; who did is in the API server's audit log only.
                startTime=rfc3339(wire.metadata(entitlement).get("deletionTimestamp")),
                message=_message(entitlement, names.READY),
            )
        )
    return records


def assignment_removal_key(removal: Mapping[str, Any]) -> str:
    """What follows the action in the id of a catalog's assignment drift removal: the permission
    set (the last part of its ARN), the account, the principal, and when the pass first saw the
    assignment (`20261123T120000Z`). An assignment has no id of its own, and the same one may be
    made by hand again after its removal: its first sighting tells the two removals apart."""
    permission_set = str(removal.get("permissionSetArn") or "").rpartition("/")[2]
    seen = (rfc3339(removal.get("firstSeen")) or "").replace("-", "").replace(":", "")
    return f"{permission_set}/{removal.get('account') or ''}/{removal.get('principalId') or ''}/{seen}"


#: The kinds whose `status.driftRemovals` entries leave their status once their records are written
#: (the archiver) and whose delivered notices go with them (`domain.notifications`): the action of
#: those records, and what follows it in a record's id, naming each entry.
DRIFT_REMOVALS: dict[str, tuple[str, Callable[[Mapping[str, Any]], str]]] = {
    names.ENTITLEMENT: (DRIFT_REMOVED, lambda removal: str(removal.get("membershipId"))),
    names.PERMISSION_CATALOG: (ASSIGNMENT_DRIFT_REMOVED, assignment_removal_key),
}


def records_of_catalog(catalog: wire.Obj) -> list[Record]:
    """The assignment drift removals a PermissionCatalog's status still lists (`status.driftRemovals`):
    a user or group assigned a jitaccess permission set in an account outside jitaccess (no grant and
    no tier of the catalog backs it), and the assignment removed. As an Entitlement's drift removals:
    the operator drops an entry once its record is archived; one under way (no `time`) has none yet."""
    records = []
    for removal in wire.status(catalog).get("driftRemovals") or []:
        if not removal.get("time"):
            continue  # under way: a record once the removal is confirmed
        user = group = None
        principal = removal.get("principalId")
        if removal.get("principalType") == "GROUP":
            group = {"id": principal}
        else:
            user = _drop_empty({"username": removal.get("user"), "identityStoreUserId": principal})
        records.append(
            _base(
                catalog,
                f"{ASSIGNMENT_DRIFT_REMOVED}/{assignment_removal_key(removal)}",
                rfc3339(removal.get("time")),
                _operator(),
                # A catalog is named after its team (admission refuses any other name).
                ownerTeam=wire.name_of(catalog),
                user=user,
                group=group,
                permissionSet=_drop_empty(
                    {"name": removal.get("permissionSetName"), "arn": removal.get("permissionSetArn")}
                ),
                account=removal.get("account"),
                principalType=removal.get("principalType"),
                # First seen by the pass, not when the assignment was made (unknown: docs/audit.md).
                startTime=rfc3339(removal.get("firstSeen")),
                endTime=rfc3339(removal.get("time")),
                message=removal.get("message"),
            )
            | {"action": ASSIGNMENT_DRIFT_REMOVED}
        )
    return records


def records_of_extension(extension: wire.Obj) -> list[Record]:
    """The records of an AccessExtension as stored: `extension-requested`, then, when it moved
    nothing, how it ended: `extension-denied` (who, and why), `extension-failed` (the operator's
    message says why), or `extension-withdrawn` (deleted while it waited). One that was applied has
    no ending of its own: its grant's `extended/<n>` record says who approved it and the new end."""
    spec, status = wire.spec(extension), wire.status(extension)
    annotations = wire.annotations_of(extension)
    requester = str(spec.get("requester") or "")
    asked = {
        "grant": spec.get("grant"),
        "user": _drop_empty({"username": requester}),
        "extension": wire.name_of(extension),
        "extendedBy": spec.get("duration"),
        "extensionReason": spec.get("reason"),
    }
    # The grant's Entitlement and owner team are the operator's to look up once it takes the
    # extension up: the records of its endings name them, `extension-requested` (the extension as
    # created) cannot (`kubectl jit audit --entitlement` finds it by its grant).
    common = {**asked, "entitlement": status.get("entitlement"), "ownerTeam": status.get("ownerTeam")}
    records = [
        _base(
            extension,
            EXTENSION_REQUESTED,
            rfc3339(wire.metadata(extension).get("creationTimestamp")),
            _actor(requester, spec.get("requesterGroups") or []) if requester else {},
            **asked,
        )
    ]
    reason = wire.ready_reason(extension) or names.PENDING
    if reason == names.DENIED or wire.is_true(extension, names.DENIED):
        who = str(status.get("deniedBy") or annotations.get(names.ANNOTATION_DENIED_BY) or "")
        records.append(
            _base(
                extension,
                EXTENSION_DENIED,
                _when(extension, names.DENIED) or _when(extension, names.READY),
                _actor(who, annotations.get(names.ANNOTATION_DENIED_BY_GROUPS, "")),
                **common,
                decisionReason=status.get("decisionReason"),
                message=_message(extension, names.READY),
            )
        )
    elif reason == names.FAILED:
        records.append(
            _base(
                extension,
                EXTENSION_FAILED,
                _when(extension, names.READY),
                _operator(),
                **common,
                message=_message(extension, names.READY),
            )
        )
    deleted = rfc3339(wire.metadata(extension).get("deletionTimestamp"))
    if deleted and reason not in names.EXTENSION_FINISHED:
        # Who deleted it is not in the object: the webhook's audit line (AdmissionDeleted) names them.
        records.append(
            _base(
                extension,
                EXTENSION_WITHDRAWN,
                deleted,
                {},
                **common,
                message="deleted while it waited for a decision: nothing was extended",
            )
        )
    return records


def records_of(obj: wire.Obj) -> list[Record]:
    """The records of an AccessRequest, an AccessGrant, an AccessExtension, an Entitlement or a
    PermissionCatalog; none of any other kind."""
    kind = obj.get("kind")
    if kind == names.ACCESS_REQUEST:
        return records_of_request(obj)
    if kind == names.ACCESS_GRANT:
        return records_of_grant(obj)
    if kind == names.ACCESS_EXTENSION:
        return records_of_extension(obj)
    if kind == names.ENTITLEMENT:
        return records_of_entitlement(obj)
    if kind == names.PERMISSION_CATALOG:
        return records_of_catalog(obj)
    return []


def action_key(record_id: str) -> str:
    """What follows the object's uid in a record id (`approved`, `extended/2`): what an object's
    `status.archivedRecords` lists once the record is in the archive."""
    return record_id.partition("/")[2]


def archived_keys(obj: wire.Obj) -> frozenset[str]:
    """The records of an object already in the archive, by `action_key` (`status.archivedRecords`)."""
    return frozenset(str(k) for k in wire.status(obj).get("archivedRecords") or [])


def unarchived(obj: wire.Obj) -> list[Record]:
    """The records of `obj` its status does not list as archived: while there are any, the object
    is evidence not yet in the archive, and retention leaves it alone."""
    done = archived_keys(obj)
    return [r for r in records_of(obj) if action_key(r["id"]) not in done]


def encode_lines(records: Iterable[Mapping[str, Any]]) -> bytes:
    """JSON lines, UTF-8, keys sorted (one record, one line; the same record, the same bytes)."""
    return b"".join(
        json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for r in records
    )


def ids_in(data: bytes) -> tuple[list[str], int]:
    """The record ids in JSON lines, and how many non-blank lines hold no record with an id.

    Lines are split on the newline byte alone: records hold U+2028 and the like raw (the encoder
    does not escape them), which `str.splitlines` would split on. What is not a record is counted,
    not raised: an object some other writer put in the archive must not stop the archiving."""
    ids, unreadable = [], 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:  # UnicodeDecodeError too
            unreadable += 1
            continue
        rid = value.get("id") if isinstance(value, dict) else None
        if isinstance(rid, str) and rid:
            ids.append(rid)
        else:
            unreadable += 1
    return ids, unreadable


def archive_key(prefix: str, written: datetime, digest: str) -> str:
    """The object key of a batch written at `written`: `<prefix>/v1/YYYY/MM/DD/<time>-<digest>.jsonl`.

    Dated by when it was written, which is at or after the time of each record it holds (mostly
    seconds after; longer when S3 was failing): a reader of day D's records reads day D's folder
    and the next ones.
    """
    stamp = written.astimezone(UTC)
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return f"{head}{LAYOUT}/{stamp:%Y/%m/%d}/{stamp:%Y%m%dT%H%M%S.%fZ}-{digest}.jsonl"


def written_at(key: str) -> datetime | None:
    """When the batch at `key` was written, from its name; None for a key not laid out by `archive_key`."""
    stamp = key.rpartition("/")[2].partition("-")[0]
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def layout_prefix(prefix: str) -> str:
    """The folder of every batch: `<prefix>/v1/`, holding the year, month and day folders."""
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return f"{head}{LAYOUT}/"


def day_prefix(prefix: str, day: datetime) -> str:
    """The folder of the batches written on `day` (UTC)."""
    return f"{layout_prefix(prefix)}{day.astimezone(UTC):%Y/%m/%d}/"


def month_prefix(prefix: str, day: datetime) -> str:
    """The folder of the batches written in the month of `day` (UTC): its day folders, all in one."""
    return f"{layout_prefix(prefix)}{day.astimezone(UTC):%Y/%m}/"

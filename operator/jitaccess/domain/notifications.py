"""Who is told what, and in which words: notices derived from the objects as stored.

Like the audit trail (`jitaccess.api.audit`), notices are a pure function of an object's stored
state, not events remembered by a process: an operator that restarts derives them again, and an
object's `status.notifications.sent` lists the ones already delivered, by key, so nothing is told
twice and nothing is lost. A notice's key is `<sink>:<recipient>:<step>` for Slack and
`webhook:<action>` for the CloudEvents sink, stable for the object's life.

Who hears of what (docs/notifications.md):
- the owner team's approvers: one message per request that needs them, posted to the team's
  channel when it starts waiting and updated in place at each later step (escalated, then
  approved, denied, timed out..., or approved and then ended without access, its grant's failure
  included: `told_of_request`), so that a stale Approve button never looks live whoever decided
  and however;
- the backup approvers: a direct message when a request escalates to them, saying why;
- the requester: a direct message when their request is decided or ends (an approval nobody was
  asked for, an owner-team member's, is left to the grant's message, which follows within seconds;
  such a request's end without access, its grant's failure included, is told all the same), when
  access is active, before it runs out, and when it is revoked early or lapses;
- the team's channel: a grant revoked early, or lapsed;
- the security channel: standing access the drift scan removed, every assignment of a catalog's
  permission set made outside jitaccess that its pass removed, and every break-glass approval;
- the CloudEvents sink: every step (every audit record, plus `pending` and `expiring`).

Slack's mrkdwn reads `<...>` as links and mentions (`<!channel>` pings everyone): every text that
comes from a user (reasons, names) is escaped before it goes into a message, and the message is
posted `verbatim` (domain/slackmessages.py), so that Slack links no bare URL and parses no
`@channel` in it either.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jitaccess.api import audit, limits, names, wire
from jitaccess.domain.identities import confers_nothing

SLACK = "slack"
WEBHOOK = "webhook"

# Steps that are not audit actions: a request waiting for approvers, a grant about to end.
PENDING = "pending"
EXPIRING = "expiring"

#: Recipients of Slack notices: the approvers' message of a request, the team's channel, the
#: security channel; a person is `@<username>`.
TEAM_MESSAGE = "team-message"
TEAM_CHANNEL = "team"
SECURITY = "security"

# Button contract with the interactivity endpoint (handlers/interactions.py): the value is the
# AccessRequest's name.
APPROVE_ACTION = "approve"
DENY_ACTION = "deny"

_KIND_OF = {
    names.ACCESS_REQUEST: "request",
    names.ACCESS_GRANT: "grant",
    names.ENTITLEMENT: "entitlement",
    names.ACCESS_EXTENSION: "extension",
    names.PERMISSION_CATALOG: "catalog",
}
_PLURAL_OF = {
    names.ACCESS_REQUEST: names.REQUESTS,
    names.ACCESS_GRANT: names.GRANTS,
    names.ENTITLEMENT: names.ENTITLEMENTS,
    names.ACCESS_EXTENSION: names.EXTENSIONS,
    names.PERMISSION_CATALOG: names.CATALOGS,
}
#: An extension's steps (its grant's audit records tell the extension itself, `extended/<n>`).
EXTENSION_PENDING = "extension-pending"
# How a request ended, as the approvers' message and the requester are told.
_DECISIONS = frozenset({audit.APPROVED, audit.DENIED, audit.TIMED_OUT, audit.NOT_ELIGIBLE, audit.INVALID, audit.FAILED})
#: A request's end that someone else may have taken for its requester: told to them unless it was theirs.
_REQUEST_ENDINGS = _DECISIONS | {audit.REVOKED}
_EARLY_ENDINGS = frozenset({audit.REVOKED, audit.LAPSED})
#: Access made outside jitaccess and removed (an Entitlement's member, a catalog's assignment): told
#: to the security channel.
_DRIFT = frozenset(action for action, _ in audit.DRIFT_REMOVALS.values())

#: How long a deleted Entitlement or PermissionCatalog waits, from its deletion, for the notices of its
#: drift removals before it goes without them (`handlers.archive.hold_until_archived`), unless the
#: setting `drift_notices_hold_deletion_seconds` says otherwise: an hour, as long as the notifier finds
#: a Slack notice of any other step worth telling (`handlers.notifications.STALE_SLACK`), long enough
#: for a Slack or sink incident of the usual length, short enough that a GitOps deletion is never held
#: for days by an outage.
DRIFT_NOTICES_HOLD_DELETION = timedelta(hours=1)


@dataclass(frozen=True)
class Config:
    """What the operator was configured to tell, and where (settings)."""

    slack: bool = False
    webhook: bool = False
    default_channel: str | None = None
    security_channel: str | None = None
    expiring_before: timedelta = timedelta(minutes=10)
    #: How long a deleted Entitlement or PermissionCatalog waits for its drift removals' notices.
    drift_hold_deletion: timedelta = DRIFT_NOTICES_HOLD_DELETION


@dataclass(frozen=True)
class Team:
    """What notices need of a TeamOwnership."""

    name: str
    channel: str | None = None
    slack_users: Mapping[str, str] = field(default_factory=dict)
    #: Its members by username (`spec.members`): whose Slack user its map may say (`slack_user_of`).
    members: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()
    backup_approvers: tuple[str, ...] = ()
    approver_groups: tuple[str, ...] = ()
    backup_approver_groups: tuple[str, ...] = ()

    @classmethod
    def of(cls, obj: wire.Obj) -> Team:
        """The team's approvers as notices name them: never a name of Kubernetes' own, nor one that
        reads as someone else's, which approves nothing (`teams.conferring`), stored before admission
        refused it."""
        spec = wire.spec(obj)
        notify = spec.get("notifications") or {}

        def deciding(field: str) -> tuple[str, ...]:
            return tuple(n for n in spec.get(field) or () if not confers_nothing(n, group=field.endswith("Groups")))

        return cls(
            name=wire.name_of(obj),
            channel=notify.get("slackChannel") or None,
            slack_users=dict(notify.get("slackUsers") or {}),
            members=tuple(str(n) for n in spec.get("members") or ()),
            approvers=deciding("approvers"),
            backup_approvers=deciding("backupApprovers"),
            approver_groups=deciding("approverGroups"),
            backup_approver_groups=deciding("backupApproverGroups"),
        )


@dataclass(frozen=True)
class Notice:
    """One thing to tell one recipient (or the sink) about one object."""

    key: str
    sink: str
    step: str
    record: Mapping[str, Any]
    #: Slack only: TEAM_MESSAGE, TEAM_CHANNEL, SECURITY or `@<username>` (a direct message).
    recipient: str = ""
    #: Usernames the Slack text mentions (resolved to Slack ids by the caller, when it can).
    mentions: tuple[str, ...] = ()

    @property
    def event_type(self) -> str:
        """The CloudEvents type: `dev.jitaccess.<kind>.<step>`."""
        kind = _KIND_OF.get(str(self.record.get("kind") or ""), "object")
        return f"dev.jitaccess.{kind}.{self.step}"

    @property
    def username(self) -> str:
        """The person a direct message goes to ("" for a channel)."""
        return self.recipient[1:] if self.recipient.startswith("@") else ""


def plural_of(obj: wire.Obj) -> str | None:
    """The plural of a kind notices are derived from; None for any other kind."""
    return _PLURAL_OF.get(str(obj.get("kind") or ""))


def source_of(obj: wire.Obj) -> str:
    """The CloudEvents source: the object's API path."""
    plural = _PLURAL_OF.get(str(obj.get("kind") or ""), "objects")
    return f"/apis/{names.API_VERSION}/{plural}/{wire.name_of(obj)}"


def sent_keys(obj: wire.Obj) -> frozenset[str]:
    """The notices already delivered for `obj`, by key."""
    notified = wire.status(obj).get("notifications") or {}
    return frozenset(str(k) for k in notified.get("sent") or ())


def still_meaningful(obj: wire.Obj, keys: set[str]) -> set[str]:
    """The delivered keys worth keeping in `obj`'s status: the drift removals of an Entitlement or
    a PermissionCatalog leave its status once archived (`handlers.archive`), and their keys with
    them, so that the list does not grow for ever; every other key stays for its object's life."""
    drift = audit.DRIFT_REMOVALS.get(str(obj.get("kind") or ""))
    if drift is None:
        return keys
    action, key_of = drift
    listed = {f"{action}/{key_of(r)}" for r in wire.status(obj).get("driftRemovals") or []}
    # A key ends with the record's action key: `...:drift-removed/<membershipId>` (no `:` in it).
    return {k for k in keys if not k.rpartition(":")[2].startswith(f"{action}/") or k.rpartition(":")[2] in listed}


def is_drift(notice: Notice) -> bool:
    """A drift removal's notice (an Entitlement's member, a catalog's assignment): its entry of
    `status.driftRemovals` waits for it (`settle_drift`), so it is never too late to tell."""
    return notice.step in _DRIFT


@dataclass(frozen=True)
class DriftSettled:
    """How an object's `status.driftRemovals` settles (`settle_drift`)."""

    #: The status fields to write: `driftRemovals`, `archivedRecords`, `notifications`, those that change.
    fields: dict[str, Any]
    #: The entries (by action key) that leave before every notice of theirs was delivered: more than
    #: `limits.DRIFT_REMOVALS_HELD_FOR_NOTICES` waited.
    untold: tuple[str, ...] = ()


def holds_drift(obj: wire.Obj) -> bool:
    """Whether the status of an Entitlement or a PermissionCatalog holds anything of a drift removal
    that `settle_drift` reads: an entry of `status.driftRemovals`, or the key of one (its entry gone)
    in `archivedRecords` or in `notifications.sent`. Without any, `settle_drift` given no keys just
    written changes nothing: a watch event need not derive the object's notices to learn that."""
    drift = audit.DRIFT_REMOVALS.get(str(obj.get("kind") or ""))
    if drift is None:
        return False
    action = f"{drift[0]}/"
    return (
        bool(wire.status(obj).get("driftRemovals"))
        or any(key.startswith(action) for key in audit.archived_keys(obj))
        # A sent key ends with the record's action key, as `still_meaningful` reads it.
        or any(key.rpartition(":")[2].startswith(action) for key in sent_keys(obj))
    )


def settle_drift(obj: wire.Obj, config: Config, written: Collection[str] = ()) -> DriftSettled | None:
    """What leaves the drift removals of an Entitlement or a PermissionCatalog as stored; None when
    nothing changes (or `obj` is of another kind).

    A confirmed entry (with its `time`) leaves once its audit record is written, listed in
    `archivedRecords` or in `written` (the action keys of records just archived, or printed without
    an archive), AND every notice `config` owes it is listed in `status.notifications.sent`
    (delivered, or given up for good: refused, skipped, stale). Until then its key is listed in
    `archivedRecords`, so that a restarted operator does not write its record again, and the
    notifier, which derives its notices from the entry, still finds it after a restart or a change
    of leader. What a target no longer configured was owed is owed no more. Bounded: at most
    `limits.DRIFT_REMOVALS_HELD_FOR_NOTICES` archived entries wait for notices; beyond, the oldest
    leave untold (`untold`; the audit record stays the complete account). Entries under way, and
    those whose record is not written yet, stay. The keys of entries gone leave `archivedRecords`
    and `notifications.sent` with them, so that neither list grows."""
    kind = str(obj.get("kind") or "")
    drift = audit.DRIFT_REMOVALS.get(kind)
    if drift is None:
        return None
    action, key_of = drift
    status = wire.status(obj)
    removals = list(status.get("driftRemovals") or [])
    listed = audit.archived_keys(obj)
    archived = listed | set(written)
    sent = sent_keys(obj)
    owed = _owed_drift(obj, action, config)
    leaving: set[str] = set()
    waiting: list[tuple[str, str]] = []
    for removal in removals:
        key = f"{action}/{key_of(removal)}"
        if not removal.get("time") or key not in archived:
            continue
        if owed.get(key, set()) <= sent:
            leaving.add(key)
        else:
            waiting.append((audit.rfc3339(removal.get("time")) or "", key))
    waiting.sort()
    untold = tuple(key for _, key in waiting[: max(0, len(waiting) - limits.DRIFT_REMOVALS_HELD_FOR_NOTICES)])
    leaving.update(untold)
    kept = [r for r in removals if not (r.get("time") and f"{action}/{key_of(r)}" in leaving)]
    held = {f"{action}/{key_of(r)}" for r in kept if r.get("time")}
    records = {k for k in archived if not k.startswith(f"{action}/") or k in held}
    fields: dict[str, Any] = {}
    if len(kept) != len(removals):
        fields["driftRemovals"] = kept
    if records != listed:
        fields["archivedRecords"] = sorted(records)
    meaningful = still_meaningful({"kind": kind, "status": {"driftRemovals": kept}}, set(sent))
    if meaningful != sent:
        fields["notifications"] = {**(status.get("notifications") or {}), "sent": sorted(meaningful)}
    return DriftSettled(fields, untold) if fields else None


@dataclass(frozen=True)
class UntoldDrift:
    """What a deletion of an Entitlement or a PermissionCatalog would leave untold now (`untold_drift`)."""

    #: Its drift removals (by action key, oldest first) with a notice owed and not yet delivered.
    keys: tuple[str, ...] = ()
    #: The sinks (`SLACK`, `WEBHOOK`) that still owe a notice of a drift removal: whom `keys` wait for.
    sinks: tuple[str, ...] = ()


def untold_drift(obj: wire.Obj, config: Config) -> UntoldDrift:
    """The drift removals of an Entitlement or a PermissionCatalog with a notice `config` owes them
    not yet listed in `status.notifications.sent`, and the sinks that owe them: what a deletion of
    the object would leave untold (`handlers.archive.hold_until_archived` waits for them). One
    derivation of its notices for both: the wait reads them at each retry."""
    drift = audit.DRIFT_REMOVALS.get(str(obj.get("kind") or ""))
    if drift is None:
        return UntoldDrift()
    action, key_of = drift
    sent = sent_keys(obj)
    owing = [n for n in _of_drift(audit.records_of(obj), config) if n.step == action and n.key not in sent]
    waiting = {audit.action_key(str(n.record.get("id") or "")) for n in owing}
    removals = sorted(
        (audit.rfc3339(r.get("time")) or "", f"{action}/{key_of(r)}")
        for r in wire.status(obj).get("driftRemovals") or []
        if r.get("time")
    )
    return UntoldDrift(
        tuple(key for _, key in removals if key in waiting),
        tuple(sink for sink in (SLACK, WEBHOOK) if any(n.sink == sink for n in owing)),
    )


def _owed_drift(obj: wire.Obj, action: str, config: Config) -> dict[str, set[str]]:
    """The keys of the notices `config` owes each drift removal of `obj`, by its action key."""
    owed: dict[str, set[str]] = {}
    for notice in _of_drift(audit.records_of(obj), config):
        if notice.step == action:
            owed.setdefault(audit.action_key(str(notice.record.get("id") or "")), set()).add(notice.key)
    return owed


def team_message_of(obj: wire.Obj) -> tuple[str, str] | None:
    """(channel, ts) of a request's approvers' message, once posted."""
    notified = wire.status(obj).get("notifications") or {}
    channel, ts = notified.get("slackChannel"), notified.get("slackTs")
    return (str(channel), str(ts)) if channel and ts else None


# --- which notices ---------------------------------------------------------------------------


def notices(obj: wire.Obj, team: Team | None, config: Config, now: datetime) -> list[Notice]:
    """Every notice `obj`'s stored state implies at `now`, delivered or not, in the order they
    arose (`sent_keys` says which were delivered)."""
    kind = obj.get("kind")
    if kind == names.ACCESS_REQUEST:
        return _of_request(obj, team, config)
    if kind == names.ACCESS_GRANT:
        return _of_grant(obj, team, config, now)
    if kind == names.ENTITLEMENT:
        return _of_drift(audit.records_of_entitlement(obj), config)
    if kind == names.PERMISSION_CATALOG:
        return _of_drift(audit.records_of_catalog(obj), config)
    if kind == names.ACCESS_EXTENSION:
        return _of_extension(obj, team, config)
    return []


def _webhook(record: Mapping[str, Any], step: str) -> Notice:
    return Notice(
        key=f"{WEBHOOK}:{audit.action_key(str(record.get('id') or ''))}", sink=WEBHOOK, step=step, record=record
    )


def _slack(
    record: Mapping[str, Any], step: str, recipient: str, mentions: Sequence[str] = (), *, key: str = ""
) -> Notice:
    """A Slack notice; `key` names the step in the key where one object has it more than once
    (`extended/2`)."""
    return Notice(
        key=f"{SLACK}:{recipient}:{key or step}",
        sink=SLACK,
        step=step,
        record=record,
        recipient=recipient,
        mentions=tuple(mentions),
    )


def _escalation_key(request: wire.Obj) -> str:
    """The step in the keys of a request's escalation notices: `escalated` for the team it was taken
    up under, `escalated/<team>` for an escalation recorded for another (`status.escalationTeam`:
    the Entitlement changed owner, and the request escalated again under the new team), so that the
    new team's backup approvers are told, once."""
    status = wire.status(request)
    team, first = status.get("escalationTeam"), status.get("ownerTeam")
    return f"{audit.ESCALATED}/{team}" if team and first and team != first else ""


def _derived(obj: wire.Obj, action: str, time: str | None, **fields: Any) -> dict[str, Any]:
    """A record-shaped fact for the steps the audit trail does not record (pending, expiring)."""
    meta = wire.metadata(obj)
    return {
        "id": f"{meta.get('uid') or ''}/{action}",
        "time": time,
        "action": action,
        "kind": obj.get("kind"),
        "name": wire.name_of(obj),
        "uid": meta.get("uid"),
        **{k: v for k, v in fields.items() if v not in (None, "")},
    }


def awaits_approvers(request: wire.Obj) -> bool:
    """The request waits, or waited, for a person's decision: it was found valid and pending
    (Ready=Pending) and not auto-approved. A request refused at its first look (not eligible,
    invalid) never reached the approvers."""
    approved = wire.condition(request, names.APPROVED)
    if approved is not None and approved.get("status") == "True":
        return approved.get("reason") not in (names.AUTO_APPROVED, names.BREAK_GLASS)
    reason = wire.ready_reason(request)
    return reason in (names.PENDING, names.DENIED, names.TIMED_OUT) or wire.is_true(request, names.DENIED)


def told_of_request(request: wire.Obj) -> dict[str, Mapping[str, Any]]:
    """A request's steps as Slack tells them, by action: its audit records, and the failure of its
    grant before access began as the request's own `failed`. The request's records leave its
    grant's steps to the grant's, and the grant tells Slack nothing of a failure: the approvers'
    message would still say "Approved" of access that never began, and the requester, told that
    access follows in seconds (or, auto-approved, told nothing), would never hear that it did not."""
    records: dict[str, Mapping[str, Any]] = {r["action"]: r for r in audit.records_of_request(request)}
    grant = wire.status(request).get("grant")
    if grant and wire.ready_reason(request) == names.FAILED and audit.FAILED not in records:
        ended = wire.condition(request, names.READY) or {}
        requested = records[audit.REQUESTED]
        records[audit.FAILED] = _derived(
            request,
            audit.FAILED,
            audit.rfc3339(ended.get("lastTransitionTime")),
            **{**_facts(requested), "ownerTeam": audit.decision_team(request), "grant": grant},
            actor={"username": audit.OPERATOR},
            message=ended.get("message"),
        )
    return records


def _of_request(request: wire.Obj, team: Team | None, config: Config) -> list[Notice]:
    records = {r["action"]: r for r in audit.records_of_request(request)}
    requested = records[audit.REQUESTED]
    requester = str((requested.get("user") or {}).get("username") or "")
    # Once the approvers' message is out, it follows the request to its end, whatever the end.
    waited = awaits_approvers(request) or team_message_of(request) is not None
    out: list[Notice] = []
    if config.webhook:
        if waited:
            # The owner team is looked up by the operator in the same write that made it pending.
            owner = {"ownerTeam": wire.status(request).get("ownerTeam")}
            out.append(
                _webhook(_derived(request, PENDING, requested.get("time"), **{**_facts(requested), **owner}), PENDING)
            )
        out.extend(_webhook(r, r["action"]) for r in records.values())
    glass = records.get(audit.BREAK_GLASS)
    if config.slack and glass is not None:  # break-glass is told to the security channel, loudly
        out.append(_slack(glass, audit.BREAK_GLASS, SECURITY))
    if not config.slack:
        return out
    if waited:
        approvers = team.approvers if team is not None else ()
        out.append(_slack(requested, PENDING, TEAM_MESSAGE, approvers))
        escalated = records.get(audit.ESCALATED)
        backups = team.backup_approvers if team is not None else ()
        if escalated is not None:
            key = _escalation_key(request)
            out.append(_slack(escalated, audit.ESCALATED, TEAM_MESSAGE, (*approvers, *backups), key=key))
            out.extend(_slack(escalated, audit.ESCALATED, f"@{user}", key=key) for user in backups)
    # The grant's failure is the grant's event for the sink; Slack tells it with the request's.
    for action, record in told_of_request(request).items():
        if action not in _REQUEST_ENDINGS:
            continue
        by = str((record.get("actor") or {}).get("username") or "")
        if waited:
            out.append(_slack(record, action, TEAM_MESSAGE, (by,) if by and by != audit.OPERATOR else ()))
        # A request no approver was asked about (auto-approved, on call, break-glass, or refused at
        # its first look) is no news to the approvers, and its approval none to its requester when
        # the grant's "access is active" follows within seconds (not for a start still to come: the
        # requester hears when it begins); its end without access is, or they would wait for access
        # that never comes. Cancelling one's own Scheduled request is no news to oneself, as ending
        # one's own grant.
        told = waited or action != audit.APPROVED or begins_later(request, record.get("time"))
        if requester and told and (action in _DECISIONS or by != requester):
            out.append(_slack(record, action, f"@{requester}"))
    return out


def begins_later(request: wire.Obj, approved_at: Any) -> bool:
    """Whether the access of `request`, approved at `approved_at`, begins at a start still to come then."""
    start, at = parse_time(wire.spec(request).get("startTime")), parse_time(approved_at)
    return start is not None and (at is None or start > at)


def _of_grant(grant: wire.Obj, team: Team | None, config: Config, now: datetime) -> list[Notice]:
    records = audit.records_of_grant(grant)
    out: list[Notice] = []
    user = str(wire.spec(grant).get("user") or "")
    due = expiring_due(grant, config)
    expiring = None
    status = wire.status(grant)
    # Each extension moves the end, and the warning with it: one warning per end (`expiring/2`).
    extended = len(status.get("extensions") or [])
    expiring_key = f"{EXPIRING}/{extended}" if extended else EXPIRING
    if due is not None and now >= due and wire.ready_reason(grant) == names.ACTIVE:
        expiring = _derived(
            grant,
            expiring_key,
            audit.rfc3339(due),
            **_facts(records[0] if records else {}),
            endTime=audit.rfc3339(status.get("expirationTime")),
        ) | {"action": EXPIRING}
    if config.webhook:
        out.extend(_webhook(r, r["action"]) for r in records)
        if expiring is not None:
            out.append(_webhook(expiring, EXPIRING))
    if not config.slack or not user:
        return out
    for record in records:
        action = record["action"]
        if action == audit.GRANTED:
            out.append(_slack(record, action, f"@{user}"))
        elif action == audit.EXTENDED:
            out.append(_slack(record, action, f"@{user}", key=audit.action_key(str(record.get("id") or ""))))
        elif action in _EARLY_ENDINGS:
            by = str((record.get("actor") or {}).get("username") or "")
            if by != user:  # ending one's own access early is no news to oneself
                out.append(_slack(record, action, f"@{user}"))
            out.append(_slack(record, action, TEAM_CHANNEL))
    if expiring is not None:
        out.append(_slack(expiring, EXPIRING, f"@{user}", key=expiring_key))
    return out


def _of_extension(extension: wire.Obj, team: Team | None, config: Config) -> list[Notice]:
    """An extension that waits for the owner team's approvers is told to the team's channel (with
    the commands that decide it); one denied or failed, to its requester. An applied one is its
    grant's `extended/<n>` record, told to the grantee with the new end."""
    if not config.slack:
        return []
    spec, status = wire.spec(extension), wire.status(extension)
    requester = str(spec.get("requester") or "")
    facts = {
        "grant": spec.get("grant"),
        "entitlement": status.get("entitlement"),
        "user": {"username": requester},
        "extendedBy": spec.get("duration"),
        "reason": spec.get("reason"),
    }
    approved = wire.condition(extension, names.APPROVED)
    auto = approved is not None and approved.get("reason") == names.AUTO_APPROVED
    reason = wire.ready_reason(extension)
    out: list[Notice] = []
    if not auto and (reason == names.PENDING or wire.is_true(extension, names.APPROVED) or reason == names.DENIED):
        created = audit.rfc3339(wire.metadata(extension).get("creationTimestamp"))
        pending = _derived(extension, EXTENSION_PENDING, created, **facts)
        out.append(_slack(pending, EXTENSION_PENDING, TEAM_CHANNEL, team.approvers if team is not None else ()))
    if reason in (names.DENIED, names.FAILED) and requester:
        ended = wire.condition(extension, names.READY) or {}
        step = audit.DENIED if reason == names.DENIED else audit.FAILED
        # A denial is dated by its decision, as its `extension-denied` record is: `Ready` of one
        # stored before its end took its own time still says when it began waiting.
        decided = wire.condition(extension, names.DENIED) if step == audit.DENIED else None
        record = _derived(
            extension,
            step,
            audit.rfc3339((decided or ended).get("lastTransitionTime")),
            **facts,
            actor={"username": str(status.get("deniedBy") or audit.OPERATOR)},
            decisionReason=status.get("decisionReason"),
            message=ended.get("message"),
        )
        out.append(_slack(record, step, f"@{requester}"))
    return out


def _of_drift(records: Sequence[Mapping[str, Any]], config: Config) -> list[Notice]:
    """The records of an Entitlement or a PermissionCatalog (confirmed drift removals only: one
    under way has no record yet): each to the sink, by its own action; the drift removals to the
    security channel too, one message each (a deleted Entitlement let go, `released`, is no access
    removed)."""
    out: list[Notice] = []
    for record in records:
        action = str(record["action"])
        if config.webhook:
            out.append(_webhook(record, action))
        if config.slack and action in _DRIFT:
            out.append(_slack(record, action, SECURITY, key=audit.action_key(str(record.get("id") or ""))))
    return out


def _facts(record: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("request", "grant", "entitlement", "ownerTeam", "user", "reason", "duration")
    return {k: record[k] for k in keep if k in record}


def expiring_due(grant: wire.Obj, config: Config) -> datetime | None:
    """When an Active grant's "access ends soon" notice is due: `expiring_before` before its end,
    and never before it began (a grant shorter than that lead time is told at activation)."""
    if not config.expiring_before or wire.ready_reason(grant) != names.ACTIVE:
        return None
    status = wire.status(grant)
    end, start = parse_time(status.get("expirationTime")), parse_time(status.get("activationTime"))
    if end is None or start is None:
        return None
    return max(start, end - config.expiring_before)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time of the API server's or of a record, as a datetime; None when there is none."""
    text = audit.rfc3339(value)
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def channel_of(notice: Notice, team: Team | None, config: Config) -> str | None:
    """The channel a channel notice goes to; None when none is configured (the notice is then
    dropped: there is nobody to tell)."""
    if notice.recipient == SECURITY:
        return config.security_channel or config.default_channel
    if notice.recipient in (TEAM_MESSAGE, TEAM_CHANNEL):
        return (team.channel if team is not None else None) or config.default_channel
    return None


def slack_user_of(username: str, teams: Sequence[Team], owner: Team | None = None) -> str | None:
    """A username's Slack id from the TeamOwnerships' explicit maps; None: the caller looks the
    username up by email. A team's map speaks only for the people that team names, so another
    team's TeamOwnership (which that team edits) must not route the message elsewhere: an entry
    `lena@example.com: U0PAULA` in payments' map would otherwise take the mentions and escalations
    meant for ledger's approver lena, whom ledger does not map (her Slack email is her username).

    - An approver or backup approver of the `owner` team (whose request, grant or extension the
      notice is about): that team's map only, as a click of theirs is read (`handlers.interactions`).
    - Anyone else (a requester, a grantee, whoever decided or revoked): the `owner` team's map if it
      lists them as a member; else the maps of the teams that name them (member, approver or
      backup approver), when those that map them agree on one Slack user, and none when they do not.
    """
    if owner is not None and (username in owner.approvers or username in owner.backup_approvers):
        return owner.slack_users.get(username) or None
    if owner is not None and username in owner.members and owner.slack_users.get(username):
        return owner.slack_users[username]
    named = (t for t in teams if username in (*t.members, *t.approvers, *t.backup_approvers))
    found = {t.slack_users[username] for t in named if t.slack_users.get(username)}
    return found.pop() if len(found) == 1 else None

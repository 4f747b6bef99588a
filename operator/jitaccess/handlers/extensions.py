"""AccessExtension handlers: approve or wait, then move the grant's end; and tidy up after grants.

- create / resume / an annotation change: `reconcile` asks `domain.extensions.next_step` and
  applies an approved extension: the grant's `status.expirationTime` moves forward and
  `status.extensions` records it (one optimistic-locked write, idempotent by the extension's uid:
  another created under the name of one deleted since is another extension, `rules.applied_entry`),
  then the extension and the grant's request say so. The expiry scheduler follows the grant's new
  time from the watch (`expiry.schedule_expiry`), and re-reads a grant before ending it, so a
  grant extended while its expiry was being taken up is not ended early.
- A grant that ends while extensions of it wait fails them ("it ended as usual"); a grant that is
  deleted (retention, or an approver) takes its extensions with it, with an audit archive once
  their own records are in it (an extension left behind goes on the event of its records' mark). Which extensions belong to
  which grant is kept in an index in the memo, fed by the watch of extensions.

A crash between the grant's write and the extension's leaves a grant that lists the extension:
the next look finds it there and only records it on the extension.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from jitaccess.api import audit, names, wire
from jitaccess.api.models import (
    AccessExtension,
    AccessExtensionStatus,
    AccessGrant,
    AccessRequest,
    Entitlement,
    TeamOwnershipSpec,
)
from jitaccess.domain import approvals as approval_rules
from jitaccess.domain import conditions as cond
from jitaccess.domain import extensions as rules
from jitaccess.domain import following
from jitaccess.domain import requests as request_rules
from jitaccess.errors import InvalidInput, RetryLater
from jitaccess.handlers.common import (
    NO_INDEX,
    Index,
    conditions_after,
    first,
    now,
    parse,
    request_uid,
    status_change,
    ts,
)
from jitaccess.handlers.eligibility import approvers_gone, approvers_problem
from jitaccess.handlers.owners import entitlement_and_team
from jitaccess.handlers.recording import record
from jitaccess.handlers.runtime import ObjectIndex, Runtime, runtime_of

log = logging.getLogger(__name__)
EXT = (names.GROUP, names.VERSION, names.EXTENSIONS)
#: The memo key of the index: by grant, its extensions as (name, whether it still waits).
_BY_GRANT = "extensions_by_grant"
#: The memo key of the extensions left behind by their grant until archived (`left_behind`).
_LEFT = "extensions_left_behind"


def _index(memo: Any) -> ObjectIndex:
    found = memo.get(_BY_GRANT) if hasattr(memo, "get") else None
    if not isinstance(found, ObjectIndex):
        raise kopf.TemporaryError("the extensions index is not set up yet", delay=0.1)
    return found


@kopf.on.startup()
async def extensions_index(memo: kopf.Memo, **_: Any) -> None:
    # Set on the operator's memo before any watch: every object's memo (a shallow copy) shares it.
    memo[_BY_GRANT] = ObjectIndex()
    memo[_LEFT] = {}


async def observe_extension(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    grant = str(body.spec.get("grant") or "")
    waits = wire.ready_reason(body) not in names.EXTENSION_FINISHED
    name = body.metadata.name
    gone = type == "DELETED" or wire.deleting(body)  # being deleted: it waits for nothing any more
    _index(memo).observe(name, None if gone or not grant else (grant, (name, waits)))
    left = left_behind(memo)
    if name not in left:
        return
    if type == "DELETED" or left[name] not in ("", str(body.metadata.uid or "")):
        # Gone; or another under its name, so the one left behind has gone (a watch that listed
        # again after a gap shows no DELETED): the new one is nothing of retention's.
        left.pop(name, None)
    elif not wire.deleting(body) and not audit.unarchived(body):
        # Its grant has gone; its own records are in the archive now (this is their mark's event).
        # It leaves the set on its DELETED event: a failed deletion is tried again (`sweep_left_behind`).
        rt = runtime_of(memo)
        await rt.run_blocking(rt.kube.delete, names.EXTENSIONS, name, uid=wire.uid_of(body))


async def follow_grant(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A grant gone takes its extensions along; a grant ended fails those still waiting."""
    name, index = body.metadata.name, _index(memo)
    if name not in index:
        return
    gone = type == "DELETED"
    if not gone and wire.ready_reason(body) not in names.GRANT_FINISHED:
        return
    mine = [str(ext) for ext, waits in index.get(name, ()) if gone or waits]
    if mine:
        rt = runtime_of(memo)
        await rt.run_blocking(_after_grant, rt, memo, name, mine, gone)


def left_behind(memo: Any) -> dict[str, str]:
    """Extensions whose grant has gone while their audit records were not archived yet, by name,
    with their uids: each goes once they are, on their mark's event (`observe_extension`), or at
    the next retention pass (`sweep_left_behind`); another created under the name since is not
    theirs to delete (attack 134). A new leader finds them again as it resumes every extension
    (`reconcile`)."""
    found = memo.get(_LEFT) if hasattr(memo, "get") else None
    return found if isinstance(found, dict) else {}


def sweep_left_behind(rt: Runtime, memo: Any) -> None:
    """Delete the extensions left behind whose records are archived by now (a deletion that failed,
    or a mark whose event came first); forget those already gone."""
    left = left_behind(memo)
    for name in list(left):
        _go_if_archived(rt, left, name)


def _go_if_archived(rt: Runtime, left: dict[str, str], name: str) -> bool:
    """Read the extension left behind afresh: delete it once it may go. Whether it has gone (also
    when another has taken its name)."""
    body = rt.kube.get(names.EXTENSIONS, name)
    if body is not None and left.get(name) and wire.uid_of(body) != left.get(name):
        body = None  # another, created under the name since: the one left behind has gone
    if body is not None and not _may_go(rt, body):
        return False
    if body is not None:
        rt.kube.delete(names.EXTENSIONS, name, uid=wire.uid_of(body))
    left.pop(name, None)
    return True


def _may_go(rt: Runtime, body: Mapping[str, Any]) -> bool:
    """Whether an extension whose grant has gone may go too: with an audit archive, only once its
    records are in it (evidence leaves the cluster only once archived, as a grant does)."""
    return not rt.settings.audit_bucket or not audit.unarchived(body)


def _follow_gone_grant(rt: Runtime, memo: Any, name: str, body: Mapping[str, Any] | None) -> None:
    """An extension whose grant has gone goes too. One still waiting first fails (nothing was
    extended, and its record says so: it was not withdrawn). With an archive, it stays until its
    records are in it."""
    if body is None:
        return
    if wire.ready_reason(body) not in names.EXTENSION_FINISHED:
        grant = str(wire.spec(body).get("grant") or "")
        _finish(rt, name, names.FAILED, f"AccessGrant {grant} is gone: nothing was extended", uid=wire.uid_of(body))
    left = left_behind(memo)
    # Listed before it is read again: the event of its records' mark may come at any moment.
    left[name] = wire.uid_of(body)
    if not _go_if_archived(rt, left, name):
        log.info("AccessExtension %s: its grant has gone; it stays until its audit records are archived", name)


def _after_grant(rt: Runtime, memo: Any, grant: str, extensions: list[str], gone: bool) -> None:
    for name in extensions:
        body = rt.kube.get(names.EXTENSIONS, name)
        if body is None or wire.spec(body).get("grant") != grant:
            continue  # gone, or another under its name since, asked for another grant
        if gone:
            _follow_gone_grant(rt, memo, name, body)
        else:
            reconcile(rt, body, NO_INDEX, NO_INDEX, memo)


@kopf.on.resume(*EXT)
@kopf.on.create(*EXT)
@kopf.on.update(*EXT, field="metadata.annotations")
async def reconcile_extension(
    *, body: kopf.Body, memo: kopf.Memo, teams: Index = NO_INDEX, entitlements: Index = NO_INDEX, **_: Any
) -> None:
    rt = runtime_of(memo)
    await rt.run_blocking(reconcile, rt, body, teams, entitlements, memo)


def reconcile(rt: Runtime, body: Mapping[str, Any], teams: Index, entitlements: Index, memo: Any) -> None:
    if wire.deleting(body):
        return  # withdrawn, or left behind by its grant: kept only until its audit records are archived
    try:
        extension = parse(AccessExtension, body)
    except InvalidInput as exc:
        _finish(rt, wire.name_of(body), names.FAILED, f"{exc}; nothing was extended", uid=wire.uid_of(body))
        return
    raw = rt.kube.get(names.GRANTS, extension.spec.grant)
    if raw is None:
        # Its grant went while the operator was not watching (or right after its admission).
        _follow_gone_grant(rt, memo, extension.metadata.name, body)
        return
    if cond.ready_reason(extension.status.conditions) in names.EXTENSION_FINISHED:
        return
    grant = AccessGrant.model_validate(raw) if raw is not None else None
    entitlement, team = _lookup(rt, grant, teams, entitlements)
    entry = rules.applied_entry(grant, extension) if grant is not None else None
    if grant is not None and entry is not None:
        # Applied before a crash: only the extension's own record is missing. The approvals that made
        # the count are the grant's entry's, not counted again (an approver may have left since).
        _record_applied(rt, extension, grant, [a.by for a in entry.approvals or []])
        return
    needed = entitlement.spec.approval.approvals_required if entitlement is not None else 1
    unanswered: RetryLater | None = None
    try:
        # Of several approvals, those whose approver has left Identity Center since count out (attack 133).
        gone = approvers_gone(rt, extension.metadata.annotations, needed)
    except RetryLater as exc:
        gone, unanswered = approval_rules.NOBODY_GONE, exc
    step = rules.next_step(
        extension,
        grant,
        entitlement,
        team,
        rt.settings.limits,
        responder_groups=frozenset(rt.settings.responder_groups),
        gone=gone,
    )
    if unanswered is not None and step.step not in _WITHOUT_COUNT and not step.auto:
        # As for a request (`handlers.requests`): a denial or a failure is taken without Identity
        # Center; a count waits for its answer (fail closed: the operator retries).
        raise unanswered
    # Another grant's, created under its name since, would name what the extension never was for.
    uid = extension.metadata.uid
    owners = _owners(grant) if grant is not None and rules.replaced(extension, grant) is None else {}
    if step.step is rules.Step.FAIL:
        _finish(rt, extension.metadata.name, names.FAILED, step.message, warning=True, owners=owners, uid=uid)
    elif step.step is rules.Step.DENY:
        message = f"denied by {step.who}" + (f": {step.why}" if step.why else "")
        _finish(
            rt,
            extension.metadata.name,
            names.DENIED,
            message,
            denied_by=step.who,
            why=step.why,
            owners=owners,
            uid=uid,
        )
    elif step.step in (rules.Step.WAIT, rules.Step.IGNORE):
        if step.step is rules.Step.IGNORE:
            record(extension.wire(), names.DECISION_IGNORED, step.message, warning=True, who=step.who)
        _mark_pending(rt, extension, step, grant)
    elif grant is not None and entitlement is not None and not _withdrawn_meanwhile(rt, extension):
        left = None if step.auto else approvers_problem(rt, step.counted or (step.who,))
        if left is not None:
            # As an approval whose approver left the team: it stops counting, and nothing is extended.
            message = f"{request_rules.approval_void(*left)}: nothing was extended; ask for the extension again"
            _finish(rt, extension.metadata.name, names.FAILED, message, warning=True, owners=owners, uid=uid)
            return
        _apply(rt, extension, grant, entitlement, step)


#: What `next_step` may answer without knowing which approvers are gone from Identity Center.
_WITHOUT_COUNT = frozenset({rules.Step.DENY, rules.Step.FAIL})


def _withdrawn_meanwhile(rt: Runtime, extension: AccessExtension) -> bool:
    """Whether the extension was deleted since kopf's view of it (its requester may withdraw it
    after an approval was admitted, before it is applied): read afresh, as the grant's write that
    follows carries no precondition on the extension. A deletion after this read, a moment before
    the grant's write, still extends the grant (docs/audit.md)."""
    stored = rt.kube.get(names.EXTENSIONS, extension.metadata.name)
    return stored is None or wire.deleting(stored) or wire.metadata(stored).get("uid") != extension.metadata.uid


def _lookup(
    rt: Runtime, grant: AccessGrant | None, teams: Index, entitlements: Index
) -> tuple[Entitlement | None, TeamOwnershipSpec | None]:
    """The grant's Entitlement as it is now, and the owner team the grant recorded (`rules.owner_of`:
    the team that approved it and may revoke it decides its extensions, not the Entitlement's owner
    of the moment), None when it is gone; an index miss is confirmed with the API server."""
    if grant is None:
        return None, None
    entitlement, team = entitlement_and_team(rt, grant.spec.entitlement, teams, entitlements)
    owner = rules.owner_of(grant, entitlement)
    if entitlement is not None and owner != entitlement.spec.owner:
        found = first(teams, owner) or (rt.kube.get(names.TEAMS, owner) or {}).get("spec")
        team = TeamOwnershipSpec.model_validate(found) if found is not None else None
    return entitlement, team


def _owners(grant: AccessGrant) -> dict[str, str]:
    """The grant's Entitlement and owner team, as an extension's status keeps them for its records,
    and its uid, which tells the grant from another created under its name later (`rules.replaced`)."""
    return {
        "entitlement": grant.spec.entitlement,
        **({"ownerTeam": grant.spec.owner_team} if grant.spec.owner_team else {}),
        **({"grantUid": grant.metadata.uid} if grant.metadata.uid else {}),
    }


def _mark_pending(rt: Runtime, extension: AccessExtension, step: rules.Next, grant: AccessGrant | None) -> None:
    """Pending, with the approvals that count so far (`status.approvals`, `approvalSummary` `1/2`, as a
    request shows them): written again as they change, an `ApprovalCounted` Event for each new one."""
    message = step.waiting or step.message

    def build(current: AccessExtension) -> dict[str, Any] | None:
        state = cond.ready_reason(current.status.conditions)
        if state not in (None, names.PENDING) or current.metadata.deletion_timestamp:
            return None
        approvals = _listed(current, step.counted)
        summary = approval_rules.progress(len(step.counted), step.needed)
        ready = cond.find(current.status.conditions, names.READY)
        unchanged = [a["by"] for a in approvals] == [a.by for a in current.status.approvals or []]
        if unchanged and ready is not None and (ready.message, current.status.approval_summary) == (message, summary):
            return None
        return {
            **(_owners(grant) if grant is not None else {}),
            "approvals": approvals or None,
            "approvalSummary": summary,
            "conditions": conditions_after(
                current.status.conditions, [(names.READY, False, names.PENDING, message)], current.metadata.generation
            ),
        }

    was = AccessExtension.model_validate(extension.wire())
    updated = rt.kube.update_status(
        names.EXTENSIONS,
        extension.metadata.name,
        status_change(AccessExtension, build),
        uid=extension.metadata.uid,
    )
    if updated is None:
        return
    if cond.ready_reason(was.status.conditions) is None:
        record(updated, names.PENDING, message, who=extension.spec.requester or "")
    before = {a.by for a in was.status.approvals or []}
    after = AccessExtension.model_validate(updated)
    for given in after.status.approvals or []:
        if given.by not in before:
            record(
                updated, names.APPROVAL_COUNTED, f"approval {after.status.approval_summary} by {given.by}", who=given.by
            )


def _listed(current: AccessExtension, counted: Sequence[str]) -> list[dict[str, Any]]:
    """The approvals that count now, each timed when the operator first counted it (`status.approvals`):
    one that stopped counting leaves the list."""
    times = {a.by: a.time for a in current.status.approvals or []}
    return [{"by": by, "time": ts(times.get(by) or now())} for by in counted]


def _apply(
    rt: Runtime, extension: AccessExtension, grant: AccessGrant, entitlement: Entitlement, step: rules.Next
) -> None:
    name = extension.metadata.name
    refused: list[str] = []
    # With approvalsRequired N > 1, the N that made the count, with the groups and reasons their
    # approvers gave: the grant's `extended` record, which says who approved, is read from this entry.
    counted = () if step.auto else step.counted
    approvals = audit.with_stamped(_listed(extension, counted), extension.metadata.annotations)

    def build(current: AccessGrant) -> dict[str, Any] | None:
        refused.clear()
        if rules.applied_entry(current, extension) is not None:
            return None
        # The grant as judged (`next_step`), not another created under its name since it was read.
        judged = extension.model_copy(
            update={"status": extension.status.model_copy(update={"grant_uid": grant.metadata.uid or None})}
        )
        outcome = rules.apply(judged, current, entitlement, rt.settings.limits, now())
        if isinstance(outcome, str):
            refused.append(outcome)
            return None
        listed = [e.wire() for e in current.status.extensions or []]
        listed.append(
            {
                "name": name,
                **({"uid": extension.metadata.uid} if extension.metadata.uid else {}),
                "by": extension.spec.duration,
                "approvedBy": rules.AUTO if step.auto else step.who,
                "time": ts(now()),
                "reason": extension.spec.reason,
                "previousExpirationTime": ts(outcome.previous),
                "expirationTime": ts(outcome.expiration),
                **({"approvals": approvals} if approvals else {}),
            }
        )
        spec = current.spec
        message = (
            f"{spec.user} is in Identity Center group {spec.group_name} until {ts(outcome.expiration)} "
            f"(extended {len(listed)} time(s), last by {extension.spec.duration}: {name})"
        )
        return {
            "expirationTime": ts(outcome.expiration),
            "extensions": listed,
            "extensionCount": len(listed),
            "conditions": conditions_after(current.status.conditions, [(names.READY, True, names.ACTIVE, message)]),
        }

    updated = rt.kube.update_status(
        names.GRANTS, grant.metadata.name, status_change(AccessGrant, build), uid=grant.metadata.uid
    )
    if refused:
        _finish(rt, name, names.FAILED, refused[0], warning=True, uid=extension.metadata.uid)
        return
    if updated is None:
        return  # gone, or applied by a concurrent call, which records it
    extended = AccessGrant.model_validate(updated)
    entry = extended.status.extensions[-1] if extended.status.extensions else None
    if entry is not None:
        who = "auto-approved (owner team)" if step.auto else f"approved by {step.who}"
        record(
            updated,
            names.EXTENDED,
            f"extended by {entry.by} to {ts(entry.expiration_time)} ({name}, {who})",
            who=extension.spec.requester or "",
            entitlement=extended.spec.entitlement,
            expires=ts(entry.expiration_time),
        )
    _record_applied(rt, extension, extended, step.counted)


def _record_applied(rt: Runtime, extension: AccessExtension, grant: AccessGrant, counted: Sequence[str] = ()) -> None:
    """The extension's own status (and the request's end) once the grant lists it; `counted`: the
    approvals that made the count, when it took several."""
    entry = rules.applied_entry(grant, extension)
    if entry is None:
        return
    auto = entry.approved_by == rules.AUTO
    reason = names.AUTO_APPROVED if auto else names.APPROVED
    # With approvalsRequired N, the N that counted: the stamped list may also hold approvals that
    # stopped counting (their approver left the team), which made nothing.
    several = [] if auto else list(counted) or [a.by for a in approval_rules.given(extension.metadata.annotations)]
    approval = (
        f"auto-approved: {extension.spec.requester} is a member of the owner team"
        if auto
        else f"approved by {approval_rules.in_words(several)} ({len(several)} of {len(several)})"
        if len(several) > 1
        else f"approved by {entry.approved_by}"
    )
    message = f"AccessGrant {grant.metadata.name} now ends at {ts(entry.expiration_time)}" + (
        f" (was {ts(entry.previous_expiration_time)})" if entry.previous_expiration_time else ""
    )

    def build(current: AccessExtension) -> dict[str, Any] | None:
        if cond.ready_reason(current.status.conditions) in names.EXTENSION_FINISHED:
            return None
        fields: dict[str, Any] = {
            **_owners(grant),
            "expirationTime": ts(entry.expiration_time),
            "conditions": conditions_after(
                current.status.conditions,
                [(names.APPROVED, True, reason, approval), (names.READY, True, names.EXTENDED, message)],
                current.metadata.generation,
            ),
        }
        if entry.previous_expiration_time is not None:
            fields["previousExpirationTime"] = ts(entry.previous_expiration_time)
        fields["approvalSummary"] = (
            "auto" if auto else approval_rules.progress(max(len(several), 1), max(len(several), 1))
        )
        if len(several) > 1:
            fields["approvals"] = _listed(current, several)
        if not auto:
            fields["approvedBy"] = entry.approved_by
        why = current.metadata.annotations.get(names.ANNOTATION_DECISION_REASON)
        if why and not auto:
            fields["decisionReason"] = why
        return fields

    updated = rt.kube.update_status(
        names.EXTENSIONS,
        extension.metadata.name,
        status_change(AccessExtension, build),
        uid=extension.metadata.uid,
    )
    if updated is not None:
        # `who`: the approver; for an auto-approval the operator, as the `extended` record's actor says.
        record(updated, names.EXTENDED, f"{approval}; {message}", who=audit.OPERATOR if auto else entry.approved_by)
    _follow_request(rt, grant)


def _follow_request(rt: Runtime, grant: AccessGrant) -> None:
    """The grant's request says until when access lasts (`status.expirationTime`, `Ready`'s message)."""
    wanted = following.request_ready(grant)
    if wanted is None or wanted.reason != names.GRANTED or wanted.expiration_time is None:
        return
    until = wanted.expiration_time

    def build(current: AccessRequest) -> dict[str, Any] | None:
        if not following.belongs_to(grant, current.metadata.uid):
            return None
        if cond.ready_reason(current.status.conditions) != names.GRANTED or current.status.expiration_time == until:
            return None
        return {
            "expirationTime": ts(until),
            "conditions": conditions_after(
                current.status.conditions, [(names.READY, True, names.GRANTED, wanted.message)]
            ),
        }

    rt.kube.update_status(
        names.REQUESTS, grant.spec.request, status_change(AccessRequest, build), uid=request_uid(grant)
    )


def _finish(
    rt: Runtime,
    name: str,
    reason: str,
    message: str,
    *,
    warning: bool = False,
    denied_by: str = "",
    why: str = "",
    owners: Mapping[str, str] | None = None,
    uid: str,
) -> None:
    """End an extension that moves nothing: Denied or Failed, with the message that says why (and
    the grant's Entitlement and owner team, for its audit record, when the extension has none yet).
    `uid`: the extension judged, never another created under its name since (alice withdraws hers
    and asks again while lena's denial of the first is being taken up): its status and records
    would show a decision nobody took on it."""

    def build(current: dict[str, Any]) -> dict[str, Any] | None:
        if wire.ready_reason(current) in names.EXTENSION_FINISHED or wire.deleting(current):
            return None  # ended, or withdrawn: its `extension-withdrawn` record says so
        # Only the status is read: an extension that cannot be parsed ends here too.
        status = AccessExtensionStatus.model_validate(current.get("status") or {})
        generation = wire.metadata(current).get("generation")
        changes = [(names.READY, False, reason, message)]
        # Set once: the records already derived from them must not change.
        known = {"entitlement": status.entitlement, "ownerTeam": status.owner_team, "grantUid": status.grant_uid}
        fields: dict[str, Any] = {k: v for k, v in (owners or {}).items() if v and not known.get(k)}
        if denied_by:
            changes.insert(0, (names.DENIED, True, names.DENIED, message))
            fields["deniedBy"] = denied_by
            if why:
                fields["decisionReason"] = why
        fields["conditions"] = conditions_after(status.conditions, changes, generation)
        return fields

    updated = rt.kube.update_status(names.EXTENSIONS, name, build, uid=uid)
    if updated is not None:
        record(updated, reason, message, warning=warning, who=denied_by)

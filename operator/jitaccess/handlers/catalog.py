"""TeamOwnership and Entitlement handlers: report whether each is usable, scan for drift, and
let a deleted Entitlement go once no access it gave remains.

These objects come from a GitOps repo; the operator only writes their status (and, on
Entitlements, kopf's finalizer). An Entitlement is `Ready` once its owner team exists and its
Identity Center group resolves. The periodic scan also finds group members that no live grant
backs (someone added them by hand in AWS) and removes them, since rule 1 of the API says a user
is in the group only while a grant says so. A deleted Entitlement is kept, and its group
scanned, until its last grant has ended (`domain.releases` says why).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from jitaccess.api import names, wire
from jitaccess.api.models import Entitlement, TeamOwnership, TeamOwnershipSpec
from jitaccess.domain import assignments as assignment_rules
from jitaccess.domain import conditions as cond
from jitaccess.domain import overlaps, releases
from jitaccess.domain import requests as request_rules
from jitaccess.domain.grants import membership_key
from jitaccess.domain.teams import team_problems
from jitaccess.errors import NotFound, PermanentFailure, RetryLater
from jitaccess.handlers import archive
from jitaccess.handlers.common import NO_INDEX, Index, conditions_after, first, now, status_change, ts
from jitaccess.handlers.indexes import expiring, holding
from jitaccess.handlers.recording import record
from jitaccess.handlers.runtime import Runtime, runtime_of
from jitaccess.settings import load

log = logging.getLogger(__name__)
TEAM = (names.GROUP, names.VERSION, names.TEAMS)
ENT = (names.GROUP, names.VERSION, names.ENTITLEMENTS)
# Timer intervals are fixed when the handlers are registered, so they are read once here.
RESYNC_SECONDS = load().resync_seconds
#: How often a deleted Entitlement that still has active grants is looked at again (and its group
#: scanned): it goes within this long of its last grant's end.
RELEASE_CHECK_SECONDS = 10


@kopf.on.resume(*TEAM)
@kopf.on.create(*TEAM)
@kopf.on.update(*TEAM, field="spec")
def check_team(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    rt = runtime_of(memo)
    team = TeamOwnership.model_validate(dict(body))
    problems = team_problems(team.spec)
    ready = not problems
    reason = names.VALID if ready else names.NO_APPROVERS
    message = "; ".join(problems) or (
        f"{len(team.spec.members)} member(s), {len(team.spec.approvers)} approver(s), "
        f"{len(team.spec.backup_approvers)} backup approver(s)"
    )
    _set_ready(rt, names.TEAMS, team, ready, reason, message)


@kopf.on.resume(*ENT)
@kopf.on.create(*ENT)
@kopf.on.update(*ENT, field="spec")
@kopf.timer(*ENT, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def check_entitlement(*, body: kopf.Body, memo: kopf.Memo, teams: Index = NO_INDEX, **_: Any) -> None:
    rt = runtime_of(memo)
    entitlement = Entitlement.model_validate(dict(body))
    target = _group_of(entitlement) or ""
    team = first(teams, entitlement.spec.owner)
    if team is None:
        _set_ready(
            rt,
            names.ENTITLEMENTS,
            entitlement,
            False,
            names.OWNER_NOT_FOUND,
            f"owner team {entitlement.spec.owner!r} does not exist: add its TeamOwnership",
        )
        return
    assignment = entitlement.spec.identity_center.account_assignment
    if assignment is not None:
        # No group to resolve, nor to scan for drift: a permission set assigned to a user by hand
        # is the PermissionCatalog pass's to report (`handlers.permissionsets`), for catalog tiers.
        reference = assignment_rules.reference(assignment.permission_set)
        resolved = f"account-assignment mode: permission set {reference} in {', '.join(assignment.accounts)}"
        _set_ready(rt, names.ENTITLEMENTS, entitlement, *_usable(entitlement, team, resolved))
        return
    try:
        rt.forget("group", target)
        group_id = rt.cached("group", target, rt.identity_center.resolve_group)
    except NotFound:
        _set_ready(
            rt,
            names.ENTITLEMENTS,
            entitlement,
            False,
            names.GROUP_NOT_FOUND,
            f"Identity Center group {target!r} does not exist in store "
            f"{rt.identity_center.identity_store_id}: create it or fix spec.identityCenter",
        )
        return
    except (RetryLater, PermanentFailure) as exc:
        raise kopf.TemporaryError(f"cannot reach Identity Center: {exc}", delay=10) from exc
    resolved = f"Identity Center group {target} resolved"
    _set_ready(rt, names.ENTITLEMENTS, entitlement, *_usable(entitlement, team, resolved), groupId=group_id)
    if rt.settings.remove_unbacked_members:
        try:
            _scan_drift(rt, entitlement, target, group_id, rt.holders)
        except RetryLater as exc:
            # Nothing is wrong with the operator: the next pass scans again.
            log.info(
                "drift scan of %s: Identity Center not answering (%s); next pass in %ss", target, exc, RESYNC_SECONDS
            )


@kopf.on.delete(*ENT)
async def release_entitlement(*, body: kopf.Body, memo: kopf.Memo, retry: int = 0, **_: Any) -> None:
    """Let a deleted Entitlement go once no grant of it is left and its drift records are kept;
    until then, keep its group clear of anyone no grant backs, and say what it waits for. Then
    `Released` (written once), and, with an archive, the wait for its `released` record to be in
    it: the record of when jitaccess stopped watching the group.

    Waiting is kopf's retry of this handler (a `TemporaryError`), which `logs.WaitsAreNotErrors`
    keeps out of the error log and the Events: the `Deleting` condition says it once."""
    rt = runtime_of(memo)
    released = await rt.run_blocking(_release, rt, dict(body))
    what = "released; its audit record is"
    archive.hold_until_archived(
        memo, names.ENTITLEMENTS, released, retry=retry, longest=RELEASE_CHECK_SECONDS, what=what
    )


def _release(rt: Runtime, raw: dict[str, Any]) -> dict[str, Any] | None:
    """The Entitlement as released (None: gone already), or `TemporaryError` while it must wait."""
    if wire.ready_reason(raw) == names.RELEASED:
        return rt.kube.get(names.ENTITLEMENTS, wire.name_of(raw))  # a retry that waits for the archive
    entitlement = Entitlement.model_validate(raw)
    name = entitlement.metadata.name
    target = _group_of(entitlement)
    # Grants name their Entitlement; the listing is by that field where the server can select it.
    grants = [
        (str(g["metadata"]["name"]), expiring(g))
        for g in rt.kube.list(names.GRANTS, fields={"spec.entitlement": name})
        if g.get("spec", {}).get("entitlement") == name and holding(g) is not None
    ]
    # A request approved a moment before the deletion may not have its grant yet: it is waited
    # for, and its grant is made or the request fails (the Entitlement reads as gone), in seconds.
    granted = {grant for grant, _ in grants}
    grants += [
        (str(r["metadata"]["name"]), None)
        for r in rt.kube.list(names.REQUESTS, fields={"spec.entitlement": name})
        if r.get("spec", {}).get("entitlement") == name
        and wire.ready_reason(r) == names.APPROVED
        and r["metadata"]["name"] not in granted
    ]
    if target is not None and rt.settings.remove_unbacked_members:
        group_id = entitlement.status.group_id
        try:
            group_id = group_id or rt.cached("group", target, rt.identity_center.resolve_group)
            _scan_drift(rt, entitlement, target, group_id, rt.holders)
        except NotFound:
            # The group is gone: nobody can be in it, and a removal begun before is done.
            unconfirmed = {r.membership_id: r.wire() for r in entitlement.status.drift_removals or [] if r.time is None}
            _settle_unconfirmed(rt, entitlement, target, unconfirmed, None, ts(now()))
        except (RetryLater, PermanentFailure) as exc:
            raise kopf.TemporaryError(
                f"{releases.WAITING} Identity Center not answering ({exc}): the group is scanned again first",
                delay=RELEASE_CHECK_SECONDS,
            ) from exc
    current = rt.kube.get(names.ENTITLEMENTS, name)
    if current is None:
        return None
    if wire.ready_reason(current) == names.RELEASED:
        return current  # said once: its `released` record must not change (a retry waits for the archive)
    now_stored = Entitlement.model_validate(current)
    remaining = releases.Remaining(grants=grants, unkept_records=len(now_stored.status.drift_removals or []))
    if not remaining.done:
        message = releases.waiting(name, remaining, now())
        _set_ready(rt, names.ENTITLEMENTS, now_stored, False, names.DELETING, message, warning=False)
        raise kopf.TemporaryError(f"{releases.WAITING} {message}", delay=RELEASE_CHECK_SECONDS)
    others = [] if target is None else _granting(rt, now_stored)
    message = releases.released(target, others)
    _set_ready(
        rt,
        names.ENTITLEMENTS,
        now_stored,
        False,
        names.RELEASED,
        message,
        warning=not others and target is not None,
        releasedAt=ts(now()),
    )
    log.info("Entitlement %s released: %s", name, message)
    return rt.kube.get(names.ENTITLEMENTS, name)


def _group_of(entitlement: Entitlement) -> str | None:
    """The group an Entitlement grants (its name or id as written), None in account-assignment mode."""
    ic = entitlement.spec.identity_center
    if ic.account_assignment is not None:
        return None
    return ic.group_id or ic.group_name or None


def _granting(rt: Runtime, entitlement: Entitlement) -> list[str]:
    """The other live Entitlements that grant its group (by name, by id, or by the id a name was
    resolved to: what `domain.overlaps` counts as the same group)."""
    mine = overlaps.keys(entitlement)
    found = []
    for raw in rt.kube.list(names.ENTITLEMENTS):
        if wire.deleting(raw) or wire.name_of(raw) == entitlement.metadata.name:
            continue
        try:
            other = Entitlement.model_validate(raw)
        except ValidationError:
            continue  # one the operator cannot read grants nothing it knows of
        if mine & overlaps.keys(other):
            found.append(other.metadata.name)
    return found


def _usable(entitlement: Entitlement, team: Any, resolved: str) -> tuple[bool, str, str]:
    """`Ready` of an Entitlement whose owner team exists and whose target resolved: False when its
    team can never give the approvals it needs (re-checked by the timer after a team changes)."""
    short = request_rules.approvals_unreachable(entitlement, TeamOwnershipSpec.model_validate(team))
    if short is not None:
        return False, names.TOO_FEW_APPROVERS, f"{resolved}, but {short}"
    return True, names.RESOLVED, resolved


def _set_ready(
    rt: Runtime,
    plural: str,
    obj: TeamOwnership | Entitlement,
    ready: bool,
    reason: str,
    message: str,
    warning: bool | None = None,
    **extra: Any,
) -> None:
    """Write `Ready` when it changed, with an Event when its reason did (a Warning when not ready,
    unless `warning` says otherwise)."""
    model = type(obj)

    def build(current: Any) -> dict[str, Any] | None:
        previous = cond.find(current.status.conditions, names.READY)
        if previous is not None and previous.reason == names.RELEASED:
            return None  # said once: its `released` record must not change
        if current.metadata.deletion_timestamp is not None and reason not in (names.DELETING, names.RELEASED):
            return None  # a check begun before the deletion, finishing after it: the deletion's word stands
        same = (
            previous is not None
            and previous.status == ("True" if ready else "False")
            and previous.reason == reason
            and previous.message == message
            and previous.observed_generation == current.metadata.generation
            and all(getattr(current.status, _snake(k), None) == v for k, v in extra.items())
        )
        if same:
            return None
        return {
            **extra,
            "conditions": conditions_after(
                current.status.conditions, [(names.READY, ready, reason, message)], current.metadata.generation
            ),
        }

    before = cond.find(obj.status.conditions, names.READY)
    updated = rt.kube.update_status(plural, obj.metadata.name, status_change(model, build))
    if updated is not None and (before is None or before.reason != reason):
        record(updated, reason, message, warning=not ready if warning is None else warning)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _scan_drift(rt: Runtime, entitlement: Entitlement, group_name: str, group_id: str, holders: Index) -> None:
    """Remove members of the group whom no live grant backs.

    A member is removed in the pass that first lists it, so the listing's time is when jitaccess
    first saw it (`firstSeen`, the record's `startTime`). When the membership itself began is not
    known: the scan reads only who is a member, and keeps no history between passes (docs/audit.md).

    Each removal is listed in the Entitlement's status before it is made (an entry with no `time`
    yet) and confirmed after: an operator killed in between leaves the entry, which the next pass
    settles (`_settle_unconfirmed`), so no removal goes unrecorded."""
    ic = rt.identity_center
    members = ic.group_members(group_id)
    # Taken after the listing answered: a member it holds was in the group by then at the latest.
    seen = ts(now())
    unconfirmed = {r.membership_id: r.wire() for r in entitlement.status.drift_removals or [] if r.time is None}
    _settle_unconfirmed(rt, entitlement, group_name, unconfirmed, set(members.values()), seen)
    for user_id, membership_id in members.items():
        # Grants hold memberships by UserId: no name needs to be known to tell whether one is backed.
        key = membership_key(user_id, group_name)
        if set(holders.get(key, [])) - rt.recently_ended():
            _drop_unconfirmed(rt, entitlement, unconfirmed, membership_id, "a grant backs it now")
            continue
        # For the record: the name as it is now (users can be renamed), not as it was once known.
        user = _name_of(rt, user_id)
        with rt.membership_lock(key):
            if set(holders.get(key, [])) - rt.recently_ended():
                _drop_unconfirmed(rt, entitlement, unconfirmed, membership_id, "a grant backs it now")
                continue
            intent = unconfirmed.get(membership_id) or {
                "membershipId": membership_id,
                "userId": user_id,
                "user": user,
                "groupId": group_id,
                "firstSeen": seen,
            }
            _keep_for_audit(rt, entitlement, intent)
            if not ic.remove_member(group_id, user_id, membership_id):
                # Gone already: a grant ended since the listing (its expiry took the member out).
                _drop_unconfirmed(rt, entitlement, {membership_id: intent}, membership_id, "gone already")
                continue
        who = intent.get("user") or user
        message = f"{who} was in Identity Center group {group_name} with no active grant: removed"
        _keep_for_audit(rt, entitlement, {**intent, "time": ts(now()), "message": message})
        record(entitlement.wire(), names.DRIFT_FOUND, message, warning=True, who=who)


def _name_of(rt: Runtime, user_id: str) -> str:
    """The user's name for a drift record; the id itself when Identity Center has no such user."""
    try:
        return rt.identity_center.user_name(user_id)
    except NotFound:
        return user_id


def _settle_unconfirmed(
    rt: Runtime,
    entitlement: Entitlement,
    group_name: str,
    unconfirmed: dict[str, dict[str, Any]],
    present: set[str] | None,
    seen: str,
) -> None:
    """Confirm the removals a killed operator began (listed, never confirmed) whose membership is
    no longer in the group (`present`: the membership ids listed now; None: the group is gone).
    Who took the member out last is not known (the removal under way, most likely); that the member
    was in the group with no grant behind it when the scan listed it is, and that is the record.
    Those still present are left to the pass, which removes them and confirms the same entry."""
    for membership_id, intent in list(unconfirmed.items()):
        if present is not None and membership_id in present:
            continue
        user = intent.get("user") or intent.get("userId")
        message = (
            f"{user} was in Identity Center group {group_name} with no active grant: a removal "
            "was begun and not confirmed (the operator stopped, or could not write its status), and the member "
            "was gone when the scan looked again"
        )
        _keep_for_audit(rt, entitlement, {**intent, "time": seen, "message": message})
        record(entitlement.wire(), names.DRIFT_FOUND, message, warning=True, who=user or "")
        del unconfirmed[membership_id]


def _drop_unconfirmed(
    rt: Runtime, entitlement: Entitlement, unconfirmed: dict[str, dict[str, Any]], membership_id: str, why: str
) -> None:
    """Take back a removal listed but not made: the member is backed now, or went otherwise."""
    if membership_id not in unconfirmed:
        return

    def build(current: Entitlement) -> dict[str, Any] | None:
        kept = [r.wire() for r in current.status.drift_removals or []]
        left = [r for r in kept if not (r["membershipId"] == membership_id and r.get("time") is None)]
        return None if len(left) == len(kept) else {"driftRemovals": left}

    rt.kube.update_status(names.ENTITLEMENTS, entitlement.metadata.name, status_change(Entitlement, build))
    log.info("drift removal of membership %s (%s) not made: %s", membership_id, entitlement.metadata.name, why)
    del unconfirmed[membership_id]


def _keep_for_audit(rt: Runtime, entitlement: Entitlement, removal: dict[str, Any]) -> None:
    """List the removal in the Entitlement's status until its audit record is archived (`archive`):
    before it is made (no `time`), then confirmed (with `time` and `message`), replacing that entry."""

    def build(current: Entitlement) -> dict[str, Any] | None:
        kept = [r.wire() for r in current.status.drift_removals or []]
        same = [r for r in kept if r["membershipId"] == removal["membershipId"]]
        if same and (same[0].get("time") is not None or removal.get("time") is None):
            return None  # listed already: confirmed (never changed again), or the same intent
        others = [r for r in kept if r["membershipId"] != removal["membershipId"]]
        return {"driftRemovals": [*others, removal]}

    rt.kube.update_status(names.ENTITLEMENTS, entitlement.metadata.name, status_change(Entitlement, build))

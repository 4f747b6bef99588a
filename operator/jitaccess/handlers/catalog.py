"""TeamOwnership and Entitlement handlers: report whether each is usable, and scan for drift.

These objects come from a GitOps repo; the operator only writes their status. An Entitlement is
`Ready` once its owner team exists and its Identity Center group resolves. The periodic scan also
finds group members that no live grant backs (someone added them by hand in AWS) and removes
them, since rule 1 of the API says a user is in the group only while a grant says so.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from jitaccess.api import names
from jitaccess.api.models import Entitlement, TeamOwnership, TeamOwnershipSpec
from jitaccess.domain import assignments as assignment_rules
from jitaccess.domain import conditions as cond
from jitaccess.domain import requests as request_rules
from jitaccess.domain.grants import membership_key
from jitaccess.domain.teams import team_problems
from jitaccess.errors import NotFound, PermanentFailure, RetryLater
from jitaccess.handlers.common import NO_INDEX, Index, conditions_after, first, now, status_change, ts
from jitaccess.handlers.recording import record
from jitaccess.handlers.runtime import Runtime, runtime_of
from jitaccess.settings import load

log = logging.getLogger(__name__)
TEAM = (names.GROUP, names.VERSION, names.TEAMS)
ENT = (names.GROUP, names.VERSION, names.ENTITLEMENTS)
# Timer intervals are fixed when the handlers are registered, so they are read once here.
RESYNC_SECONDS = load().resync_seconds


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
    target = entitlement.spec.identity_center.group_id or entitlement.spec.identity_center.group_name or ""
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
    **extra: Any,
) -> None:
    model = type(obj)

    def build(current: Any) -> dict[str, Any] | None:
        previous = cond.find(current.status.conditions, names.READY)
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
        record(updated, reason, message, warning=not ready)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _scan_drift(rt: Runtime, entitlement: Entitlement, group_name: str, group_id: str, holders: Index) -> None:
    """Remove members of the group whom no live grant backs.

    A member is removed in the pass that first lists it, so the listing's time is when jitaccess
    first saw it (`firstSeen`, the record's `startTime`). When the membership itself began is not
    known: the scan reads only who is a member, and keeps no history between passes (docs/audit.md)."""
    ic = rt.identity_center
    members = ic.group_members(group_id)
    # Taken after the listing answered: a member it holds was in the group by then at the latest.
    seen = ts(now())
    for user_id, membership_id in members.items():
        # Grants hold memberships by UserId: no name needs to be known to tell whether one is backed.
        key = membership_key(user_id, group_name)
        if set(holders.get(key, [])) - rt.recently_ended():
            continue
        with rt.membership_lock(key):
            if set(holders.get(key, [])) - rt.recently_ended():
                continue
            if not ic.remove_member(group_id, user_id, membership_id):
                # Gone already: a grant ended since the listing (its expiry took the member out).
                continue
        # For the event only: the name as it is now (users can be renamed), not as it was once known.
        user = ic.user_name(user_id)
        message = f"{user} was in Identity Center group {group_name} with no active grant: removed"
        removal = {"membershipId": membership_id, "userId": user_id, "user": user, "firstSeen": seen}
        _keep_for_audit(rt, entitlement, removal, group_id, message)
        record(entitlement.wire(), names.DRIFT_FOUND, message, warning=True, who=user)


def _keep_for_audit(
    rt: Runtime, entitlement: Entitlement, removal: dict[str, Any], group_id: str, message: str
) -> None:
    """List the removal in the Entitlement's status until its audit record is archived (`archive`)."""
    entry = {**removal, "groupId": group_id, "time": ts(now()), "message": message}

    def build(current: Entitlement) -> dict[str, Any] | None:
        kept = [r.wire() for r in current.status.drift_removals or []]
        if any(r["membershipId"] == removal["membershipId"] for r in kept):
            return None
        return {"driftRemovals": [*kept, entry]}

    rt.kube.update_status(names.ENTITLEMENTS, entitlement.metadata.name, status_change(Entitlement, build))

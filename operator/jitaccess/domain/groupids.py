"""The GroupIds jitaccess records for Identity Center groups named by their DisplayName, and
when such a recorded id can be trusted.

Objects name a group by its DisplayName (`groupName`) or by its GroupId (`groupId`); one named by
name is known by its id too once the operator has resolved it and recorded the id: an
Entitlement's `status.groupId`, a PermissionCatalog tier's `status.<tier>.groupId` (with the name
it was resolved from, `status.<tier>.groupName`). Comparing groups by id finds the same group
however it is named or spelled (the overlap check, the standing/granted group check, a tier's
grants, session revocation), without asking Identity Center.

A recorded id is the current spec's group only while it was resolved from the current name: a
tier's while `status.<tier>.groupName` is the spec's `groupName` (`tier_group_ids`); an
Entitlement's while `Ready` observed the current generation and says the group resolved
(`group_id`, `resolved_for_this_generation`). An id resolved for an older name or generation is of
another group, or of a group gone: it is not used.

A GroupId is never written where a DisplayName goes (`looks_like_group_id`): Identity Center would
take it for the group it is the id of (`resolve_group` falls back to the id when no group has that
name), while admission, comparing that field by name, would see another group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jitaccess.api import names, wire
from jitaccess.api.models import Entitlement
from jitaccess.domain import conditions as cond


def looks_like_group_id(value: str) -> bool:
    """Whether `value` has the form of an Identity Center GroupId (`wire.looks_like_identity_store_id`:
    that of every Identity Store id). Few names do."""
    return wire.looks_like_identity_store_id(value)


def tier_groups(catalog: Mapping[str, Any], tiers: Iterable[str] | None = None) -> dict[str, str]:
    """Each tier of `catalog` (of `tiers`; None: every tier) and its `groupName`."""
    wanted = None if tiers is None else set(tiers)
    return {
        tier: str(part["groupName"])
        for tier in names.TIERS
        if (wanted is None or tier in wanted)
        and isinstance(part := wire.spec(catalog).get(tier), Mapping)
        and part.get("groupName")
    }


def tier_group_ids(catalog: Mapping[str, Any], tiers: Iterable[str] | None = None) -> dict[str, str]:
    """Each tier of `catalog` (of `tiers`; None: every tier) whose group a provisioning pass
    resolved, and its GroupId (`status.<tier>.groupId`): only while the name it was resolved from
    (`status.<tier>.groupName`) is the one the spec names, as a pass that has not yet followed a new
    `groupName` reports the old group's id."""
    named = tier_groups(catalog, tiers)
    return {
        tier: str(state["groupId"])
        for tier, state in wire.status(catalog).items()
        if tier in named
        and isinstance(state, Mapping)
        and state.get("groupId")
        and state.get("groupName") == named[tier]
    }


#: `Ready` reasons written with the `status.groupId` the group resolved to. `PolicyRefused` is also
#: written when the group does not resolve, and then with no `status.groupId` (the operator clears it).
_RESOLVED = frozenset(
    {
        names.RESOLVED,
        names.TOO_FEW_APPROVERS,
        names.INVALID,
        names.ELIGIBILITY_GROUP_NOT_FOUND,
        names.ON_CALL_GROUP_NOT_FOUND,
        names.POLICY_REFUSED,
    }
)


def resolved_for_this_generation(entitlement: Entitlement) -> bool:
    """Whether an Entitlement's `status.groupId` is its current spec's group (`_resolved`)."""
    ready = cond.find(entitlement.status.conditions, names.READY)
    return ready is not None and _resolved(ready.reason, ready.observed_generation, entitlement.metadata.generation)


def _resolved(reason: object, observed: object, generation: object) -> bool:
    """`status.groupId` is written with `Ready`: it is the current spec's group only when `Ready`
    observed the current generation (a `groupName` just changed still has the old group's id) and
    says the group resolved (after `GroupNotFound` the id left in the status is of a group gone)."""
    return reason in _RESOLVED and (not generation or observed == generation)


def group_id(entitlement: Mapping[str, Any]) -> str | None:
    """The GroupId of the group an Entitlement (as stored) grants in group mode: its spec's
    `groupId`, else the `status.groupId` its `groupName` resolved to for the current generation
    (`_resolved`); None while neither is known, and in account-assignment mode."""
    target = wire.spec(entitlement).get("identityCenter")
    if not isinstance(target, Mapping) or target.get("accountAssignment") is not None:
        return None
    if target.get("groupId"):
        return str(target["groupId"])
    resolved, ready = wire.status(entitlement).get("groupId"), wire.condition(entitlement, names.READY)
    generation = wire.metadata(entitlement).get("generation")
    if not resolved or ready is None or not _resolved(ready.get("reason"), ready.get("observedGeneration"), generation):
        return None
    return str(resolved)


def as_resolved(entitlement: Mapping[str, Any], resolved: str | None) -> dict[str, Any]:
    """The Entitlement as a pass that has just resolved its group to `resolved` (None: to no group)
    will store it: its `status.groupId` that id, for its current generation. What that pass
    judges of its groups (`standing`) is judged of the group it resolved, not of what the last
    pass left, which a changed `groupName` or `Ready` makes untrusted (`group_id`)."""
    generation = wire.metadata(entitlement).get("generation")
    ready = {"type": names.READY, "reason": names.RESOLVED, "observedGeneration": generation}
    status = {**wire.status(entitlement), "groupId": resolved, "conditions": [ready]}
    return {**entitlement, "status": status}

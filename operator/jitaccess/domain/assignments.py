"""Account-assignment mode: an Entitlement whose grants assign a permission set to the user directly.

Instead of a group membership, a grant of such an Entitlement holds one account assignment
(user, permission set, account) in each account the Entitlement names. Several grants may hold the
same assignment (two grants of one user, or two Entitlements naming the same permission set and
account): as for memberships, an assignment goes only when no other live grant holds it.

A grant's `spec.groupName` carries the permission set reference (`reference`): the holders index,
its lock and the backing check key grants by (UserId, groupName), so grants of one user and one
permission set share one reference count and one lock, and `kept_accounts` says which of the
accounts the others still hold. A permission set named once by catalog tier and once by ARN is
two references: the Entitlements of one permission set should name it the same way.

A PermissionCatalog is not changed under the grants that assign its permission sets
(`catalog_removal_refusal`): deleting it, or removing a tier from it (`removed_tiers`: only
`spec.production` can go, baseline being required), deletes the tier's permission set and every
assignment of it, while the grants would still say Active; admission refuses either while a grant
that has not ended holds that tier, by reference or by the ARN the catalog reports. A group-mode
grant holds a membership of the tier's group, which gives the permission set: it counts as holding
the tier too (deleting the tier would leave its membership giving nothing while the grant said
Active). Such a grant is found by the group's identity, not its spelling (`tier_spellings`): an
Entitlement may name the group by `groupId`, or by its name spelled otherwise (in another case),
and its grants' `spec.groupName` says it that way. The provisioning pass records the GroupId it
resolved a tier's `groupName` to (`status.<tier>.groupId`, with the name resolved: `groupName`);
a grant matches when its `spec.groupName` is the tier's name or that id, or the spelling of an
Entitlement whose `status.groupId` is that id (a grant not yet Active), or when its own
`status.groupId` (written once Active) is that id. A tier whose group no pass has resolved yet is
matched by its name alone. For the same reason a tier's `groupName` does not change under the group-mode grants of
the old group (`regrouped_tiers`, `catalog_regroup_refusal`): the operator moves the permission
set to the new group, the memberships those grants hold would give nothing from then on while
they said Active, and their ends would take the users out of a group that no longer gave them
anything. Account-assignment grants are not held up by it: a new group moves the group's
assignments, not the users'. There is no other way for a tier to change mode under its grants: a
tier has both (its group, and the user assignments of grants that name it), and a grant keeps the
target it was created with (`spec.groupName`, `spec.accountAssignment`), so an Entitlement switched
between group and account-assignment mode leaves its running grants as they are.

Every other change of a catalog's spec is admitted under running grants, because none takes a
grant's access away. A tier's permission set is found by its tags and updated in place (its name,
`jit-<team>-<tier>`, never changes, and tiers are not renamed: there are two), so its ARN and its
assignments stay; a tier's `accounts` place only the tier's group, and a user's assignment of a
live grant is kept in any account, listed or not, until the grant ends (the Entitlement names the
grant's accounts, not the catalog). What such a change does change is what the permission set
allows: new permissions, a shorter session, or (for entries rendered in each of the tier's
accounts) nothing left to act on in an account the tier no longer lists. That applies to running
grants at the next provisioning, as it does to the tier's group: what a tier allows is the catalog
owners' to decide, and narrowing a role found too broad must not wait for every grant of it to end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jitaccess.api import names, wire
from jitaccess.api.models import AccountAssignmentTarget, IdentityCenterTarget, PermissionSetRef
from jitaccess.domain import groupids

CATALOG_PREFIX = names.CATALOG_REFERENCE_PREFIX
#: The selectable fields of AccessGrant that the catalog webhook selects a tier's grants by.
GRANT_GROUP_FIELD, GRANT_GROUP_ID_FIELD = "spec.groupName", "status.groupId"


def reference(ref: PermissionSetRef) -> str:
    """`catalog:<catalog>/<tier>` for a PermissionCatalog tier, else the ARN."""
    if ref.catalog and ref.tier:
        return f"{CATALOG_PREFIX}{ref.catalog}/{ref.tier}"
    return ref.arn or ""


def catalog_tier(reference_text: str) -> tuple[str, str] | None:
    """(catalog, tier) of a `catalog:` reference; None for an ARN."""
    if not reference_text.startswith(CATALOG_PREFIX):
        return None
    catalog, _, tier = reference_text.removeprefix(CATALOG_PREFIX).partition("/")
    return catalog, tier


def target_name(target: IdentityCenterTarget) -> str:
    """What a grant's `spec.groupName` carries: the group (id before name), or the permission set reference."""
    if target.account_assignment is not None:
        return reference(target.account_assignment.permission_set)
    return target.group_id or target.group_name or ""


def kept_accounts(others: Iterable[AccountAssignmentTarget | None]) -> set[str]:
    """The accounts other live grants of the same user and permission set still hold."""
    return {account for other in others if other is not None for account in other.accounts}


def to_remove(accounts: Iterable[str], others: Iterable[AccountAssignmentTarget | None]) -> list[str]:
    """The accounts whose assignment goes when a grant ends: its own, less those others hold."""
    kept = kept_accounts(others)
    return sorted(set(accounts) - kept)


def removed_tiers(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The tiers whose permission sets the operator deletes, with every assignment of them, when
    stored catalog `old` becomes `new`: each tier `old` has and `new` has not. Nothing else a spec
    change does deletes a permission set or a grant's assignment (module doc)."""
    return [tier for tier in names.TIERS if wire.spec(old).get(tier) and not wire.spec(new).get(tier)]


def regrouped_tiers(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The tiers both `old` and `new` have whose `groupName` differs: the operator moves the tier's
    permission set from the old group to the new one, and the memberships group-mode grants hold in
    the old group give nothing from then on. Any difference counts (case, spaces): whether two
    spellings are one group only Identity Center can say, and admission does not ask it."""
    before, after = groupids.tier_groups(old), groupids.tier_groups(new)
    return [tier for tier in names.TIERS if tier in before and tier in after and before[tier] != after[tier]]


def tier_spellings(
    catalog: Mapping[str, Any], tiers: Iterable[str] | None = None, entitlements: Iterable[Mapping[str, Any]] = ()
) -> set[str]:
    """Every `spec.groupName` a group-mode grant of the groups of `tiers` (None: every tier) may
    have: each tier's `groupName`, the GroupId it resolved to (`groupids.tier_group_ids`), and how
    each of `entitlements` (stored Entitlements) whose group resolved to that id (`status.groupId`)
    names it (a grant copies its Entitlement's `groupId`, else its `groupName`: `target_name`)."""
    wanted = None if tiers is None else list(tiers)
    ids = set(groupids.tier_group_ids(catalog, wanted).values())
    spellings = set(groupids.tier_groups(catalog, wanted).values()) | ids
    for entitlement in entitlements:
        target = wire.spec(entitlement).get("identityCenter")
        if isinstance(target, Mapping) and wire.status(entitlement).get("groupId") in ids:
            spellings.add(str(target.get("groupId") or target.get("groupName") or ""))
    return spellings - {""}


def catalog_dependents(
    catalog: Mapping[str, Any],
    grants: Iterable[Mapping[str, Any]],
    tiers: Iterable[str] | None = None,
    *,
    by_group_only: bool = False,
    entitlements: Iterable[Mapping[str, Any]] = (),
) -> list[str]:
    """The grants, not ended, that hold a permission set of `catalog` (a stored PermissionCatalog),
    of one of `tiers` (None: of any tier): named by its tier (`catalog:<catalog>/<tier>`) or by the
    ARN the catalog reports (in its spec: before its status says it, while it is Provisioning; or in
    its status), or, in group mode, a membership of the tier's group (the permission set is what
    that membership gives), however the grant spells the group (`tier_spellings`, with the stored
    `entitlements`) or by the GroupId it records. `by_group_only`: the group-mode ones alone, which a
    new `groupName` strands (account-assignment grants keep their assignments)."""
    name = wire.name_of(catalog)
    wanted = None if tiers is None else set(tiers)
    arns = set() if by_group_only else _tier_arns(catalog, wanted)
    groups = tier_spellings(catalog, wanted, entitlements)
    ids = set(groupids.tier_group_ids(catalog, wanted).values())
    held = []
    for grant in grants:
        if wire.ready_reason(grant) in names.GRANT_FINISHED:
            continue
        group, status = str(wire.spec(grant).get("groupName") or ""), wire.status(grant)
        pair = None if by_group_only else catalog_tier(group)
        by_tier = pair is not None and pair[0] == name and (wanted is None or pair[1] in wanted)
        by_group = group in groups or status.get("groupId") in ids
        if by_tier or by_group or group in arns or status.get("permissionSetArn") in arns:
            held.append(wire.name_of(grant))
    return sorted(held)


def dependent_selections(
    catalog: Mapping[str, Any],
    tiers: Iterable[str] | None = None,
    *,
    by_group_only: bool = False,
    entitlements: Iterable[Mapping[str, Any]] = (),
) -> list[tuple[str, str]]:
    """The (field, value) pairs of the grants `catalog_dependents` may find (the webhook selects
    grants by them, not reading every grant kept): by `spec.groupName`, the tiers' references, the
    ARNs the catalog reports and every spelling of the tiers' groups (`tier_spellings`); by
    `status.groupId`, the tiers' GroupIds (an Active grant whose spelling no Entitlement names any
    more). A grant it finds by the ARN in its status names its tier, or that ARN, in its spec."""
    wanted = None if tiers is None else set(tiers)
    targets = tier_spellings(catalog, wanted, entitlements)
    if not by_group_only:
        tiers_named = [tier for tier in names.TIERS if wanted is None or tier in wanted]
        targets |= {f"{CATALOG_PREFIX}{wire.name_of(catalog)}/{tier}" for tier in tiers_named}
        targets |= _tier_arns(catalog, wanted)
    ids = set(groupids.tier_group_ids(catalog, wanted).values())
    return sorted({(GRANT_GROUP_FIELD, target) for target in targets} | {(GRANT_GROUP_ID_FIELD, i) for i in ids})


def _tier_arns(catalog: Mapping[str, Any], wanted: set[str] | None) -> set[str]:
    return {
        str(state["permissionSetArn"])
        for tier, state in wire.status(catalog).items()
        if (wanted is None or tier in wanted) and isinstance(state, Mapping) and state.get("permissionSetArn")
    }


def _held(dependents: list[str]) -> str:
    shown = ", ".join(dependents[:5]) + (f" and {len(dependents) - 5} more" if len(dependents) > 5 else "")
    return f"{len(dependents)} AccessGrant(s) that have not ended ({shown})"


def _end_them_first(catalog: str, what: str, then: str) -> str:
    return (
        f"PermissionCatalog {catalog} {what}, while the grants still said Active. End them first (`kubectl jit "
        "revoke GRANT` for each, by its grantee or an approver of its owner team), or wait until they end; then "
        f"{then}"
    )


def catalog_removal_refusal(catalog: str, dependents: list[str], tiers: list[str] | None = None) -> str | None:
    """Why a catalog may not be deleted yet (`tiers` None), or may not lose `tiers` yet: either
    deletes permission sets, and with them every assignment of them, while the grants that gave
    those assignments would still say Active."""
    if not dependents:
        return None
    if tiers is None:
        what = f"gives the permission sets of {_held(dependents)}: deleting it would delete those permission sets"
        then = "delete the catalog"
    else:
        fields = " and ".join(f"spec.{tier}" for tier in tiers)
        what = f"gives the {' and '.join(tiers)} permission set(s) to {_held(dependents)}: removing {fields} would delete them"
        then = f"remove {fields}"
    return _end_them_first(catalog, f"{what}, and the users' access with them", then)


def catalog_regroup_refusal(
    old: Mapping[str, Any], new: Mapping[str, Any], dependents: list[str], tiers: list[str]
) -> str | None:
    """Why stored catalog `old` may not yet give `tiers` the groups `new` names (`regrouped_tiers`):
    the permission sets would leave the groups whose memberships `dependents` (group-mode grants,
    `catalog_dependents(..., by_group_only=True)`) hold, while the grants would still say Active,
    and their ends would take the users out of a group that no longer gives them anything."""
    if not dependents:
        return None
    before, after = groupids.tier_groups(old, tiers), groupids.tier_groups(new, tiers)
    fields = " and ".join(f"spec.{tier}.groupName" for tier in tiers)
    was, now = " and ".join(before[t] for t in tiers), " and ".join(after[t] for t in tiers)
    what = (
        f"gives the {' and '.join(tiers)} permission set(s) to {_held(dependents)} through their membership of "
        f"{was}: changing {fields} would move them to {now}, away from the members those grants put in {was}"
    )
    then = f"change {fields} (to stop new grants joining {was} meanwhile, point the team's Entitlement at {now} first)"
    return _end_them_first(wire.name_of(old), what, then)

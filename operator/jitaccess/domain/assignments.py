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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jitaccess.api import names, wire
from jitaccess.api.models import AccountAssignmentTarget, IdentityCenterTarget, PermissionSetRef

CATALOG_PREFIX = names.CATALOG_REFERENCE_PREFIX


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


def catalog_dependents(catalog: Mapping[str, Any], grants: Iterable[Mapping[str, Any]]) -> list[str]:
    """The grants, not ended, that hold a permission set of `catalog` (a stored PermissionCatalog):
    named by its tier (`catalog:<catalog>/<tier>`) or by the ARN its status reports."""
    name = wire.name_of(catalog)
    arns = {
        str(tier["permissionSetArn"])
        for tier in wire.status(catalog).values()
        if isinstance(tier, Mapping) and tier.get("permissionSetArn")
    }
    held = []
    for grant in grants:
        if wire.ready_reason(grant) in names.GRANT_FINISHED:
            continue
        pair = catalog_tier(str(wire.spec(grant).get("groupName") or ""))
        if (pair is not None and pair[0] == name) or wire.status(grant).get("permissionSetArn") in arns:
            held.append(wire.name_of(grant))
    return sorted(held)


def catalog_deletion_refusal(catalog: str, dependents: list[str]) -> str | None:
    """Why a catalog may not go yet: deleting it deletes its permission sets, and with them every
    assignment of them, while the grants that gave those assignments would still say Active."""
    if not dependents:
        return None
    shown = ", ".join(dependents[:5]) + (f" and {len(dependents) - 5} more" if len(dependents) > 5 else "")
    return (
        f"PermissionCatalog {catalog} gives the permission sets of {len(dependents)} AccessGrant(s) that have not "
        f"ended ({shown}): deleting it would delete those permission sets, and the users' access with them, while "
        "the grants still said Active. End them first (`kubectl jit revoke GRANT` for each, by its grantee or an "
        "approver of its owner team), or wait until they end; then delete the catalog"
    )

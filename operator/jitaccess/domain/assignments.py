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

from collections.abc import Iterable

from jitaccess.api import names
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

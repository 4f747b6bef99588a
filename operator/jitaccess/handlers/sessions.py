"""Session revocation: a grant that ends early denies the user's AWS sessions of its permission set.

Taking a user out of the group stops new sessions, not the ones Identity Center issued already.
When a grant that was Active ends as Revoked or EligibilityLapsed (a revoke by its holder or an
owner, a deletion, a lapse) and no other grant keeps the membership, `deny` records the user in
`status.<tier>.deniedUsers` of every PermissionCatalog tier whose group is the grant's group,
matched by name or by GroupId however the grant spells it (the permission set assigned to that
group is the one the user's sessions belong to), or, in account-assignment mode, of the catalog
tier the grant names: the UserId, the grant, when, and until when (the permission set's session
duration later). The record is written before the grant is marked ended, so a crash between the
two cannot lose it; the permission-set pass (`handlers.permissionsets`) provisions it and later
removes it.
"""

from __future__ import annotations

import logging
from typing import Any

from jitaccess.api import names
from jitaccess.api.models import AccessGrant, PermissionCatalog, TierStatus
from jitaccess.domain import assignments as assignment_rules
from jitaccess.domain import permissions as rules
from jitaccess.errors import InvalidInput
from jitaccess.handlers.common import now, status_change, ts
from jitaccess.handlers.permissionsets import hold
from jitaccess.handlers.runtime import Runtime

log = logging.getLogger(__name__)


def deny(rt: Runtime, grant: AccessGrant, user_id: str, group_id: str | None = None) -> int:
    """Record the grant's user as denied in each catalog tier of the grant's group; how many tiers.

    The grant's group is known by its `spec.groupName` (its Entitlement's `groupId` when that names
    the group by id), its `status.groupId`, and `group_id` (the id its membership is keyed by,
    `grants.membership_of`); a tier's group by its `groupName` and the GroupId the catalog's status
    records for that name (`assignments.tier_group_ids`), `Runtime.catalog_groups` filing the
    catalog under both. A grant naming the tier's group by id, or spelling it otherwise, is denied
    there too."""
    group = grant.spec.group_name
    # Account-assignment mode names its catalog tier itself (`domain.assignments`).
    named = assignment_rules.catalog_tier(group) if grant.spec.account_assignment is not None else None
    spellings = {group, grant.status.group_id, group_id} - {None, ""}
    since = now()
    found = 0
    filed = {name for spelled in spellings for name in rt.catalog_groups.get(spelled, ())}
    for name in [named[0]] if named else sorted(filed):
        obj = rt.kube.get(names.CATALOGS, name)
        if obj is None:
            continue
        catalog = PermissionCatalog.model_validate(obj)
        ids = assignment_rules.tier_group_ids(obj)
        for tier in rules.tiers(catalog):
            try:
                spec = rules.render(catalog, tier)
            except InvalidInput:
                continue  # admission refuses such a catalog: it has no permission set to deny in
            if (tier != named[1]) if named else not ({spec.group_name, ids.get(tier)} & spellings):
                continue
            found += 1
            entry = {
                "userId": user_id,
                "user": grant.spec.user,
                "grant": grant.metadata.name,
                "since": ts(since),
                "until": ts(since + hold(rt, spec.session_duration)),
            }

            def build(
                current: PermissionCatalog, tier: str = tier, entry: dict[str, Any] = entry
            ) -> dict[str, Any] | None:
                listed = (getattr(current.status, tier) or TierStatus()).denied_users or []
                if any(d.grant == entry["grant"] for d in listed):
                    return None
                return {tier: {"deniedUsers": [*(d.wire() for d in listed), entry]}}

            rt.kube.update_status(names.CATALOGS, catalog.metadata.name, status_change(PermissionCatalog, build))
            log.info(
                "sessions of %s in %s denied until %s (grant %s)",
                grant.spec.user,
                spec.name,
                entry["until"],
                grant.metadata.name,
            )
    return found

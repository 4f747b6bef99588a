"""Session revocation: a grant that ends early denies the user's AWS sessions of its permission set.

Taking a user out of the group stops new sessions, not the ones Identity Center issued already.
When a grant that was Active ends as Revoked or EligibilityLapsed (a revoke by its holder or an
owner, a deletion, a lapse) and no other grant keeps the membership, `deny` records the user in
`status.<tier>.deniedUsers` of every PermissionCatalog tier whose group is the grant's group,
matched by name or by GroupId however the grant spells it, Identity Center resolving the group of
a tier no pass has resolved yet (the permission set assigned to that group is the one the user's
sessions belong to), or, in account-assignment mode, of the catalog
tier the grant names: the UserId, the grant, when, and until when (the permission set's session
duration after the end of that second: a session issued within it lives that long from its issue).
The record is written before the membership is removed and the grant marked ended, so a crash in
between cannot lose it; the permission-set pass (`handlers.permissionsets`) provisions it and later
removes it.

Until the removal has succeeded the user still holds the group and may sign in again: a removal
Identity Center throttles or refuses is retried with the whole end, and each attempt moves the
grant's entry to its own time (`since` and `until` only ever move later), and once the removal is
done the grant's caller records it again if a second has passed since (`deny`'s `since`): no session
issued before the removal outlives the entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from jitaccess.adapters.kube import BY_NAME
from jitaccess.api import names
from jitaccess.api.models import AccessGrant, PermissionCatalog, TierStatus
from jitaccess.domain import assignments as assignment_rules
from jitaccess.domain import groupids
from jitaccess.domain import permissions as rules
from jitaccess.errors import InvalidInput
from jitaccess.handlers import permissionsets
from jitaccess.handlers.common import now, status_change, ts
from jitaccess.handlers.runtime import Runtime

log = logging.getLogger(__name__)
_SECOND = timedelta(seconds=1)


def deny(
    rt: Runtime, grant: AccessGrant, user_id: str, group_id: str | None = None, since: datetime | None = None
) -> int:
    """Record the grant's user as denied in each catalog tier of the grant's group; how many tiers.
    `since`: the moment recorded (`common.now()` unless given), the grant's entry moved to it when
    it has one already (the module doc).

    The grant's group is known by its `spec.groupName` (its Entitlement's `groupId` when that names
    the group by id), its `status.groupId`, and `group_id` (the id its membership is keyed by,
    `grants.membership_of`); a tier's group by its `groupName` and the GroupId the catalog's status
    records for that name (`groupids.tier_group_ids`), `Runtime.catalog_groups` filing the
    catalog under both. A grant naming the tier's group by id, or spelling it otherwise, is denied
    there too. When no tier matches so, the tiers no pass has resolved yet (no GroupId recorded for
    their `groupName`) and those whose `groupName` differs from the grant's spelling only in case
    have their group resolved through Identity Center (`permissionsets.group_of`) and compared by
    id (revocations are rare), so that a catalog just created or regrouped leaves no window in which
    the user's sessions outlive the revocation. Identity Center not answering, or refusing, raises
    (`RetryLater`, `PermanentFailure`) before anything is ended: the caller retries the end, and
    this denial with it."""
    group = grant.spec.group_name
    # Account-assignment mode names its catalog tier itself (`domain.assignments`).
    named = assignment_rules.catalog_tier(group) if grant.spec.account_assignment is not None else None
    if named:
        catalog, wanted = named
        return _deny_in(rt, grant, user_id, [catalog], lambda tier, _spec, _id: tier == wanted, since)
    spellings = {group, grant.status.group_id, group_id} - {None, ""}

    def known(_tier: str, spec: rules.PermissionSetSpec, recorded: str | None) -> bool:
        return bool({spec.group_name, recorded} & spellings)

    filed = {name for spelled in spellings for name in rt.catalog_groups.get(spelled, ())}
    found = _deny_in(rt, grant, user_id, sorted(filed), known, since)
    if found:
        return found
    folded = {str(spelled).casefold() for spelled in spellings}
    doubtful = {
        name
        for key in [permissionsets.UNRESOLVED, *((permissionsets.FOLDED, f) for f in folded)]
        for name in rt.catalog_groups.get(key, ())
    }

    def resolved(tier: str, spec: rules.PermissionSetSpec, recorded: str | None) -> bool:
        if known(tier, spec, recorded):
            return True  # resolved by a pass since the index was read
        if recorded and spec.group_name.casefold() not in folded:
            return False  # its recorded id is Identity Center's answer already, and not the grant's
        return permissionsets.group_of(rt, spec) in spellings

    return _deny_in(rt, grant, user_id, sorted(doubtful), resolved, since)


def _deny_in(
    rt: Runtime,
    grant: AccessGrant,
    user_id: str,
    catalogs: list[str],
    matches: Callable[[str, rules.PermissionSetSpec, str | None], bool],
    since: datetime | None = None,
) -> int:
    """`deny` in the tiers of `catalogs` that `matches` (the tier, its rendered spec, the GroupId
    its status records for its `groupName`); how many."""
    since = since or now()
    found = 0
    for name in catalogs:
        obj = rt.kube.get(names.CATALOGS, name)
        if obj is None:
            continue
        catalog = PermissionCatalog.model_validate(obj)
        ids = groupids.tier_group_ids(obj)
        for tier in rules.tiers(catalog):
            try:
                spec = rules.render(catalog, tier)
            except InvalidInput:
                continue  # admission refuses such a catalog: it has no permission set to deny in
            if not matches(tier, spec, ids.get(tier)):
                continue
            found += 1
            entry = {
                "userId": user_id,
                "user": grant.spec.user,
                "grant": grant.metadata.name,
                "since": ts(since),
                # From the end of `since`'s second: the statement denies the sessions issued within it
                # (`permissions.revoked_before`), which live the session duration from their issue.
                "until": ts(since.replace(microsecond=0) + _SECOND + permissionsets.hold(rt, spec.session_duration)),
            }

            def build(
                current: PermissionCatalog, tier: str = tier, entry: dict[str, Any] = entry
            ) -> dict[str, Any] | None:
                listed = (getattr(current.status, tier) or TierStatus()).denied_users or []
                # One entry per user, the latest, until the latest of theirs: the deny statement
                # names UserIds, so an earlier entry of the same user adds nothing but size, and a
                # user who ends grant after grant early would otherwise grow this status past what
                # the API server stores, whereupon every revocation of the tier's grants (this write
                # comes before the membership's removal) would fail and be retried without end.
                # Its times only move later: an end retried (the removal refused) or recorded again
                # once the removal is done moves it to then; an older one never shortens it.
                mine = [d for d in listed if d.user_id == entry["userId"]]
                latest = {
                    "since": max([entry["since"], *(ts(d.since) for d in mine)]),
                    "until": max([entry["until"], *(ts(d.until) for d in mine)]),
                }
                if [(d.grant, d.user, ts(d.since), ts(d.until)) for d in mine] == [
                    (entry["grant"], entry["user"], latest["since"], latest["until"])
                ]:
                    return None  # recorded so already (an end retried within the same second)
                others = [d.wire() for d in listed if d.user_id != entry["userId"]]
                return {tier: {"deniedUsers": [*others, {**entry, **latest}]}}

            # BY_NAME: a catalog applied again under the name may serve the same permission set,
            # whose sessions still run; the denial only reaches sessions issued before `since`.
            change = status_change(PermissionCatalog, build)
            rt.kube.update_status(names.CATALOGS, catalog.metadata.name, change, uid=BY_NAME)
            log.info(
                "sessions of %s in %s denied until %s (grant %s)",
                grant.spec.user,
                spec.name,
                entry["until"],
                grant.metadata.name,
            )
    return found

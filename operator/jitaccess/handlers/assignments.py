"""Account-assignment mode (`domain.assignments`): a grant's permission set assigned to the user in each account.

`assign` creates the user's assignment (PrincipalType USER) in every account of the grant and
follows each asynchronous request to its end; when any account fails, the assignments this grant
made are taken back (those no other live grant holds) and `PermanentFailure` names the accounts,
so the grant ends Failed with nobody left holding access. `take_back` removes what an earlier
attempt of a grant that fails later may have assigned (that attempt was cut short by a transient
error and retried), creations still in progress included. `unassign` removes the grant's
assignments when it ends, but not in the accounts another live grant of the same user and
permission set still holds. Both run under the grant's membership lock (see `handlers.grants`).
"""

from __future__ import annotations

import logging
from typing import Any

from jitaccess.adapters.ssoadmin import Request
from jitaccess.api import names, wire
from jitaccess.api.models import AccessGrant, AccountAssignmentTarget
from jitaccess.domain import assignments as rules
from jitaccess.domain import grants as grant_rules
from jitaccess.errors import NotFound, PermanentFailure, RetryLater
from jitaccess.handlers.common import Index, now, ts
from jitaccess.handlers.holders import stored_holders
from jitaccess.handlers.permissionsets import sso_of
from jitaccess.handlers.runtime import Runtime

log = logging.getLogger(__name__)


def permission_set_arn(rt: Runtime, grant: AccessGrant) -> str:
    """The ARN of the grant's permission set: recorded on it once active, else resolved. A catalog
    tier's is the one its PermissionCatalog reports (`NotFound`: no such catalog or tier;
    `RetryLater`: not provisioned yet)."""
    if grant.status.permission_set_arn:
        return grant.status.permission_set_arn
    reference = grant.spec.group_name
    named = catalog_tier(rt, reference)
    if named is None:
        return reference
    catalog, tier, obj = named
    arn = (wire.status(obj).get(tier) or {}).get("permissionSetArn")
    if not arn:
        raise RetryLater(f"PermissionCatalog {catalog} has not provisioned its {tier} permission set yet")
    return str(arn)


def catalog_tier(
    rt: Runtime, reference: str, *, deleting_is_gone: bool = False
) -> tuple[str, str, dict[str, Any]] | None:
    """What a `catalog:` reference names: (catalog, tier, the PermissionCatalog as stored now);
    None for an ARN. `NotFound`, naming what is missing, when there is no such catalog or it has
    no such tier; with `deleting_is_gone`, a catalog being deleted counts as none (its permission
    sets are on their way out)."""
    pair = rules.catalog_tier(reference)
    if pair is None:
        return None
    catalog, tier = pair
    # Read, not taken from `Runtime.catalog_groups`: that is kept by the controller's watch, so it
    # still lists a catalog deleted while another replica led; and no index of catalogs says which
    # one is being deleted.
    obj = rt.kube.get(names.CATALOGS, catalog)
    if obj is None or (deleting_is_gone and wire.deleting(obj)):
        raise NotFound(f"PermissionCatalog {catalog} does not exist", operation="resolve")
    if not wire.spec(obj).get(tier):
        raise NotFound(f"PermissionCatalog {catalog} has no {tier} tier", operation="resolve")
    return catalog, tier, obj


def others_holding(
    rt: Runtime, grant: AccessGrant, key: tuple[str, str], holders: Index, *, confirm: bool = False
) -> list[AccountAssignmentTarget]:
    """What the other live grants of the same user and permission set hold (read afresh). `confirm`
    (before a removal): when the watch-fed index names none, the API server is asked
    (`holders.stored_holders`)."""
    held = []
    listed = grant_rules.other_holders(holders.get(key, []), grant.metadata.name, rt.recently_ended())
    if confirm and not listed:
        listed = stored_holders(rt, grant.spec.user, [key], grant.metadata.name)
    for name in sorted(listed):
        obj = rt.kube.get(names.GRANTS, name)
        if obj is None:
            continue
        other = AccessGrant.model_validate(obj)
        if not grant_rules.is_finished(other) and other.spec.account_assignment is not None:
            held.append(other.spec.account_assignment)
    return held


def assign(
    rt: Runtime, grant: AccessGrant, user_id: str, arn: str, others: list[AccountAssignmentTarget]
) -> list[dict[str, Any]]:
    """Assign the permission set to the user in each account of the grant; the per-account states
    for `status.accountAssignments`. All or nothing: see the module doc."""
    target = grant.spec.account_assignment
    assert target is not None
    sso = sso_of(rt)
    started: dict[str, Request] = {}
    failed: dict[str, str] = {}
    for account in target.accounts:
        try:
            started[account] = sso.assign(arn, account, user_id, "USER")
        except (NotFound, PermanentFailure) as exc:
            failed[account] = str(exc)
            break
    done: dict[str, Request] = {}
    for account, request in started.items():
        try:
            done[account] = sso.wait([request])[0]
        except PermanentFailure as exc:
            failed[account] = str(exc)
    if failed:
        made = [account for account in done if account not in failed]
        _remove(rt, arn, user_id, rules.to_remove(made, others))
        reasons = "; ".join(f"{account}: {why}" for account, why in sorted(failed.items()))
        raise PermanentFailure(
            f"the assignment failed in {len(failed)} of {len(target.accounts)} account(s) ({reasons}); "
            f"the others were taken back",
            operation="CreateAccountAssignment",
        )
    stamp = ts(now())
    return [
        {"account": account, "state": "Provisioned", "requestId": done[account].request_id, "time": stamp}
        for account in target.accounts
    ]


def unassign(rt: Runtime, grant: AccessGrant, user_id: str, others: list[AccountAssignmentTarget]) -> list[str]:
    """Remove the grant's assignments that no other live grant holds; the accounts removed from."""
    target = grant.spec.account_assignment
    assert target is not None
    try:
        arn = permission_set_arn(rt, grant)
    except NotFound:
        # The catalog went, and its permission set with every assignment of it.
        return []
    accounts = rules.to_remove(target.accounts, others)
    _remove(rt, arn, user_id, accounts)
    return accounts


def take_back(rt: Runtime, grant: AccessGrant, user_id: str | None, others: list[AccountAssignmentTarget]) -> list[str]:
    """Remove what an attempt of a grant that never became Active may have assigned: the user's
    assignment in each account of the grant where it exists now and no other live grant holds it
    (asked per account first: an attempt may have got anywhere, or nowhere). The accounts removed from."""
    target = grant.spec.account_assignment
    assert target is not None
    if user_id is None:
        return []
    try:
        arn = permission_set_arn(rt, grant)
    except (NotFound, RetryLater):
        # No such catalog tier, or not provisioned yet: nothing can have been assigned from it.
        return []
    sso = sso_of(rt)
    accounts = rules.to_remove(target.accounts, others)
    try:
        # A creation an earlier attempt started (its answer lost) may still be in progress: not
        # listed yet, it would land after this, with no grant to end it. Waited for to its end
        # first (`RetryLater` past the wait: the grant is retried); one that failed assigned nothing.
        try:
            since = grant.metadata.creation_timestamp
            pending = sso.creations_in_progress(arn, accounts, user_id, "USER", since=since)
        except PermanentFailure as exc:
            # A policy written before this read was needed: what is listed is still taken back,
            # rather than nothing while the grant retries on a refusal that will not pass.
            log.warning(
                "cannot see the creations of %s in progress (%s): taking back what is assigned now; "
                "allow sso:ListAccountAssignmentCreationStatus and sso:DescribeAccountAssignmentCreationStatus",
                arn,
                exc,
            )
            pending = []
        try:
            sso.wait(pending)
        except PermanentFailure as exc:
            if exc.code != "FAILED":
                raise
        held = [a for a in accounts if ("USER", user_id) in sso.assignments(arn, a)]
    except NotFound:
        return []  # the permission set is gone, and its assignments with it
    _remove(rt, arn, user_id, held)
    return held


def _remove(rt: Runtime, arn: str, user_id: str, accounts: list[str]) -> None:
    sso = sso_of(rt)
    requests = []
    for account in accounts:
        try:
            requests.append(sso.unassign(arn, account, user_id, "USER"))
        except NotFound:
            continue  # the permission set is gone, and its assignments with it
    sso.wait(requests)
    if accounts:
        log.info("assignments of %s to %s removed in %s", arn, user_id, ", ".join(accounts))

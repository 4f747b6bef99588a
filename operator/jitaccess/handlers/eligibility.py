"""Whether a requester may ask for an entitlement at all: membership in Identity Center groups.

Asked by the admission webhook when a request is created (so `kubectl apply --dry-run=server`
tells an engineer in advance), by the request handler before anything is granted (the webhook
may have been off, or the memberships may have changed since), and afresh before any activation
(`eligibility_problem(..., fresh=True)`: a human approval's, and the scheduled start's and
extension's to come). Every check asks whether the account is disabled too: an auto-approval
(owner team, on call, break-glass) is granted on the answer of admission, and a leaver disabled in
Identity Center whose Kubernetes credentials still work was granted by it (docs/security.md, attack
128). While access runs, `handlers.lapses` re-checks every grant on a schedule.
"""

from __future__ import annotations

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.domain import requests as request_rules
from jitaccess.errors import InvalidInput, NotFound
from jitaccess.handlers.runtime import Runtime


def eligibility_problem(
    rt: Runtime, valid: request_rules.ValidRequest, *, fresh: bool = False, ic: IdentityCenter | None = None
) -> str | None:
    """Why the requester may not ask at all (Identity Center groups, or a disabled account: one more
    call, `DescribeUser`), or None. `fresh` asks Identity Center even when it said "yes" a few
    seconds ago (`Runtime.recently_eligible`): the check before an activation.

    Raises `InvalidInput` when the entitlement names a group that does not exist, and `RetryLater`
    when Identity Center does not answer. `ic`: the client to ask (the admission webhooks' gives up
    sooner, `Runtime.asking`); the handlers' by default.
    """
    ic = ic or rt.identity_center
    wanted = valid.entitlement.spec.eligibility.identity_center_groups
    try:
        # The UserId admission stamped: the person who asked, whoever holds the user name now.
        user_id = valid.user_id or rt.cached("user", valid.requester, ic.resolve_user)
    except NotFound:
        return (
            f"{valid.requester} is not a user in Identity Center store {ic.identity_store_id}: "
            "ask the identity team to provision the user"
        )
    if not fresh and rt.recently_eligible(user_id, tuple(wanted)):
        return None
    ids: dict[str, str] = {}
    for name in wanted:
        try:
            ids[rt.cached("group", name, ic.resolve_group)] = name
        except NotFound as exc:
            raise InvalidInput(
                f"Entitlement {valid.entitlement.metadata.name!r} spec.eligibility.identityCenterGroups",
                f"names {name!r}, which is not a group in Identity Center: the entitlement's owners must fix it",
            ) from exc
    try:
        ids, missing = rt.missing_groups(ic, user_id, ids)
        disabled = not missing and not ic.user_enabled(user_id)
    except NotFound:
        return (
            f"the Identity Center user {valid.requester} who asked (UserId {user_id}) no longer exists in store "
            f"{ic.identity_store_id}"
        )
    if missing:
        return request_rules.eligibility_message(valid.requester, [ids[g] for g in missing])
    if disabled:
        return request_rules.disabled_message(valid.requester, user_id)
    rt.mark_eligible(user_id, tuple(wanted))
    return None

"""Whether a requester may ask for an entitlement at all: membership in Identity Center groups.

Asked by the admission webhook when a request is created (so `kubectl apply --dry-run=server`
tells an engineer in advance), by the request handler before anything is granted (the webhook
may have been off, or the memberships may have changed since), and afresh before any activation
(`eligibility_problem(..., fresh=True)`: a human approval's, and the scheduled start's and
extension's to come). Every check asks whether the account is disabled too: an auto-approval
(owner team, on call, break-glass) is granted on the answer of admission, and a leaver disabled in
Identity Center whose Kubernetes credentials still work was granted by it (docs/security.md, attack
128). While access runs, `handlers.lapses` re-checks every grant on a schedule.

Approvers are people with an Identity Center account too (`approver_problem`): an approver who has
left (disabled there, or deleted) approves nothing, neither when the approval is admitted nor when
it is acted upon (a grant's creation, a scheduled start, an extension applied). And access an expiry
has just removed is given back to an extended grant only after its grantee's eligibility is asked
again (`holder_problem`).

What Identity Center answered is remembered `runtime.ELIGIBLE_SECONDS` (5 s), in the Runtime, by
UserId: a "yes" (in the groups asked about, and enabled; `Runtime.recently_eligible`), taken only
where `fresh` is not asked for, and a "no" about the account (disabled, or gone:
`Runtime.recently_refused`), taken everywhere, `fresh` included, since it grants nothing: the
webhooks, the operator's count, the activation and the backing check of one approval by a leaver
ask `DescribeUser` once, not once each (attack 94, the Identity Store quota). A "no" makes any "yes"
remembered of that account void; an account enabled again is asked about once its "no" is older than
the window (it waits up to 5 s). So for a deleted account: its user name keeps naming it as long as
its "gone" is remembered, and a user name that names nobody (`GetUserId`'s NotFound) is remembered as
long (`Runtime.cached`): one approval by a deleted approver asks once, and says the same at every
check. A "no" about the groups is not remembered, and an Identity Center that did not answer
(`RetryLater`) never is: the next check asks again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.api import names
from jitaccess.api.models import AccessGrant, Entitlement
from jitaccess.domain import approvals as approval_rules
from jitaccess.domain import requests as request_rules
from jitaccess.errors import InvalidInput, NotFound
from jitaccess.handlers.runtime import Runtime


def eligibility_problem(
    rt: Runtime, valid: request_rules.ValidRequest, *, fresh: bool = False, ic: IdentityCenter | None = None
) -> str | None:
    """Why the requester may not ask at all (Identity Center groups, or a disabled account: one more
    call, `DescribeUser`), or None. `fresh` asks Identity Center even when it said "yes" a few
    seconds ago (`Runtime.recently_eligible`): the check before an activation. A disabled or gone
    account of the last few seconds is refused without asking, `fresh` or not (the module doc).

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
    problem = _account_problem(rt, ic, valid.requester, user_id, ids, who="who asked ")
    if problem is None:
        rt.mark_eligible(user_id, tuple(wanted))
    return problem


def _account_problem(
    rt: Runtime, ic: IdentityCenter, user: str, user_id: str, ids: dict[str, str], *, who: str = ""
) -> str | None:
    """Why `user` (`user_id`) is not in every group of `ids` (GroupId -> name), or is disabled or
    gone in Identity Center; None when neither. No `ids` asks about the account alone (an
    approver's, `approver_problem`). `who` qualifies the user in the "no longer exists" message.
    A "disabled" or "gone" is remembered a few seconds and answered from memory meanwhile
    (`Runtime.recently_refused`); a "did not answer" (`RetryLater`) is not."""
    said = rt.recently_refused(user_id)
    if said is None:
        not_found = False
        try:
            ids, missing = rt.missing_groups(ic, user_id, ids) if ids else (ids, [])
            if missing:
                return request_rules.eligibility_message(user, [ids[g] for g in missing])
        except NotFound:
            # The user gone, or a group deleted since its id was resolved: only DescribeUser's
            # answer is about the account, and only that one is remembered against it.
            not_found = True
        try:
            said = None if ic.user_enabled(user_id) else "disabled"
        except NotFound:
            said = "gone"  # and `user` resolved afresh once that has aged (`Runtime.mark_refused`)
        if said is None and not not_found:
            return None
        if said is None:
            # The account is there and enabled: the NotFound was a group's.
            return (
                f"an eligibility group ({', '.join(sorted(ids.values()))}) is no longer in Identity Center store "
                f"{ic.identity_store_id} (deleted since jitaccess looked it up), so {user} cannot be found "
                "eligible: ask the Entitlement's owner team to name groups that exist"
            )
        rt.mark_refused(user_id, said, user)
    if said == "disabled":
        return request_rules.disabled_message(user, user_id)
    return f"the Identity Center user {user} {who}(UserId {user_id}) no longer exists in store {ic.identity_store_id}"


def approver_problem(
    rt: Runtime, approver: str, *, fresh: bool = False, ic: IdentityCenter | None = None
) -> str | None:
    """Why `approver` (a Kubernetes user name, which is their Identity Center UserName, as a
    requester's is) may not approve: no such Identity Center user, or a disabled account (a leaver
    whose Kubernetes credentials still work); None when enabled. One `DescribeUser` (the UserId is
    cached a minute, `GetUserId`; "no such user" a few seconds), its answer remembered a few seconds
    (`Runtime.recently_eligible`, `Runtime.recently_refused`), so the operator's own checks right after
    the webhook's cost nothing; `fresh` asks anyway after a "yes" (a "no" stands its few seconds: it
    grants nothing).

    Raises `RetryLater` when Identity Center does not answer. `ic`: as `eligibility_problem`'s."""
    ic = ic or rt.identity_center
    try:
        user_id = rt.cached("user", approver, ic.resolve_user)
    except NotFound:
        return f"{approver} is not a user in Identity Center store {ic.identity_store_id}"
    if not fresh and rt.recently_eligible(user_id, ()):
        return None
    problem = _account_problem(rt, ic, approver, user_id, {})  # no groups: the account alone
    if problem is None:
        rt.mark_eligible(user_id, ())
    return problem


def approvers_gone(
    rt: Runtime, annotations: Mapping[str, str], needed: int, *, fresh: bool = False, ic: IdentityCenter | None = None
) -> Mapping[str, str]:
    """Of the approvers a request's (or an extension's) stamped approvals list names (`annotations`;
    when `needed`, its approvalsRequired, is more than one), each whose Identity Center account is
    disabled or gone, with why (`approver_problem`): the counting functions leave their approvals out
    (`domain.approvals.count`'s `gone`), as an approval whose approver left the team, and the request
    waits for another approver. Asked wherever approvals of several are counted: the webhook, before
    it stamps the approval that would complete the count, and the operator, before it records the
    count, grants, provisions the grant, or applies the extension. One `DescribeUser` per distinct
    approver listed (each listed once by the webhook, an approver of the team when they approved), a
    "no" of the last few seconds costing none, and a "yes" none unless `fresh` (the webhook's MUTATE,
    where the approval that completes the count is stamped for good: its answers, remembered, are what
    VALIDATE and the operator count with).

    Raises `RetryLater` when Identity Center does not answer. `ic`: as `eligibility_problem`'s."""
    if needed <= 1:
        return approval_rules.NOBODY_GONE
    found: dict[str, str] = {}
    for approver in dict.fromkeys(a.by for a in approval_rules.given(annotations)):
        problem = approver_problem(rt, approver, fresh=fresh, ic=ic)
        if problem is not None:
            found[approver] = problem
    return found


def approvers_problem(rt: Runtime, approvers: Sequence[str]) -> tuple[str, str] | None:
    """The first of `approvers` (those an approval rests on) who may not approve, and why; None when
    all may. Asked when the approval is acted upon: a grant's creation, a scheduled start, an
    extension applied."""
    for approver in approvers:
        problem = approver_problem(rt, approver)
        if problem is not None:
            return approver, problem
    return None


def holder_problem(rt: Runtime, grant: AccessGrant) -> str | None:
    """Why the grantee of `grant` may not hold its access any more (as `eligibility_problem` asks:
    the Entitlement's eligibility groups, a disabled or deleted account), asked afresh (but for a
    disabled or deleted account of the last few seconds, which stands); None when they may. A group the Entitlement names that does not exist is the catalog's mistake, not the
    grantee's lapse (`handlers.lapses`), and is left out; an Entitlement gone gives nothing.

    Raises `RetryLater` when Identity Center does not answer."""
    ic = rt.identity_center
    spec = grant.spec
    raw = rt.kube.get(names.ENTITLEMENTS, spec.entitlement)
    if raw is None:
        return f"Entitlement {spec.entitlement!r} no longer exists"
    wanted = Entitlement.model_validate(raw).spec.eligibility.identity_center_groups
    try:
        user_id = grant.status.user_id or spec.user_id or rt.cached("user", spec.user, ic.resolve_user)
    except NotFound:
        return f"{spec.user} is not a user in Identity Center store {ic.identity_store_id} any more"
    ids: dict[str, str] = {}
    for name in wanted:
        try:
            ids[rt.cached("group", name, ic.resolve_group)] = name
        except NotFound:
            continue
    return _account_problem(rt, ic, spec.user, user_id, ids)

"""Eligibility that lapses: re-check, on a schedule, the users of every Active grant and pending request.

One timer per Entitlement, every `JITACCESS_ELIGIBILITY_RECHECK_SECONDS` (default 300). Each pass
lists Identity Center instead of asking about each user: every user of the store (`ListUsers`:
who exists, and whose account is disabled) and every member of each eligibility group
(`ListGroupMemberships`), 100 a page, the users beside the groups (each API has its own quota).
The listings are shared by the Entitlements whose timers fire in the same pass (`Listings`), so a
pass costs one listing of the store plus one of each distinct eligibility group, however many
grants there are (docs/operations.md: the arithmetic).

From the listings (`domain.eligibility` decides):
- an Active grant whose user has lapsed ends `EligibilityLapsed`, its membership removed (unless
  another grant holds it) through the one end-grant path, `grants.end_grant`;
- a request still waiting for a decision ends `NotEligible`;
- the Entitlement's status lists its eligible users (`status.eligibleUsers`, for `kubectl jit review`).

A group deleted and created again under its name (a Terraform replace) while its old id is
cached is listed, and each lapse confirmed, by its new id: its members do not lapse for it.

Grants of an Entitlement that no longer exists are looked after by the first Entitlement by name
(as `schedules` does): their users still lose them when deleted or disabled.
Identity Center not answering costs a pass, not an error: the next pass checks again. A refusal
(IAM) is logged as an error; each lapse is acted on in a try of its own, so one user's refused
removal, or the API server failing a call of one (a 429, a 5xx, a timeout), does not keep the others
of the pass from ending.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import kopf

from jitaccess import metrics
from jitaccess.adapters.kube import Refused
from jitaccess.api import limits, names
from jitaccess.api.models import AccessRequest, Entitlement
from jitaccess.domain import conditions as cond
from jitaccess.domain import eligibility as rules
from jitaccess.domain import requests as request_rules
from jitaccess.errors import NotFound, PermanentFailure, RetryLater
from jitaccess.handlers import removals
from jitaccess.handlers.common import NO_INDEX, Index, conditions_after, status_change
from jitaccess.handlers.grants import end_grant
from jitaccess.handlers.recording import record
from jitaccess.handlers.runtime import Runtime, runtime_of
from jitaccess.handlers.schedules import looked_after
from jitaccess.settings import load

log = logging.getLogger(__name__)
ENT = (names.GROUP, names.VERSION, names.ENTITLEMENTS)
# Timer intervals are fixed when the handlers are registered, so they are read once here.
RECHECK_SECONDS = load().eligibility_recheck_seconds
_MEMO_KEY = "eligibility_listings"


class Listings:
    """Identity Center listings shared by the Entitlements' re-checks of one pass.

    The timers of all Entitlements fire within moments of each other (they start together and run
    `sharp`), so a listing younger than a tenth of the interval is taken as this pass's: each group
    is listed once a pass, not once per Entitlement naming it. A lapse is thus seen at most an
    interval and a tenth after it happens.

    One listing at a time (`guard`, held by the timers on the event loop): the timers that wait
    for a listing in the making take it instead of listing again, and wait without holding one of
    the handlers' threads, which dozens of Entitlements would otherwise take for a whole listing.
    """

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self.guard = asyncio.Lock()
        self._users: tuple[float, dict[str, rules.User]] | None = None
        self._groups: dict[str, tuple[float, frozenset[str] | None]] = {}

    def directory(self, rt: Runtime, groups: Sequence[str]) -> rules.Directory:
        """The listings `groups` need, listed afresh where older than `max_age`; callers hold `guard`.

        The store's users are listed in a thread of their own while the groups' members are listed
        here: `ListUsers` and `ListGroupMemberships` each have a quota of their own, and one after
        the other a pass of a store of 10,000 users took 24 s, most of it waiting on each quota.
        """
        now = time.monotonic()
        with ThreadPoolExecutor(1, thread_name_prefix="jitaccess-users") as pool:
            users = None
            if self._users is None or now - self._users[0] > self.max_age:
                users = pool.submit(rt.identity_center.users)
            members: dict[str, frozenset[str] | None] = {}
            for group in groups:
                listed = self._groups.get(group)
                if listed is None or now - listed[0] > self.max_age:
                    listed = self._groups[group] = (time.monotonic(), _members(rt, group))
                members[group] = listed[1]
            if users is not None:
                self._users = (now, users.result())
        assert self._users is not None
        return rules.Directory(self._users[1], members)


def _members(rt: Runtime, group: str) -> frozenset[str] | None:
    """The UserIds in the group named `group`; None when no such group exists (nobody is in it).

    Listed by the id the cache holds (`Runtime.cached`); when Identity Center answers that no group
    has it (the group deleted and created again under its name since, a Terraform replace), the
    name is resolved afresh and the group it names now is listed (`Runtime.in_current_groups`)."""
    ic = rt.identity_center
    try:
        group_id = rt.cached("group", group, ic.resolve_group)
        _, members = rt.in_current_groups(ic, lambda ids: ic.group_members(next(iter(ids))), {group_id: group})
        return frozenset(members)
    except NotFound:
        rt.forget("group", group)
        return None


def _listings(memo: kopf.Memo) -> Listings:
    # Kept in the memo (kopf's per-operator state), read and set on the event loop: no race.
    found = memo.get(_MEMO_KEY)
    if not isinstance(found, Listings):
        found = memo[_MEMO_KEY] = Listings(RECHECK_SECONDS / 10)
    return found


@kopf.timer(*ENT, interval=RECHECK_SECONDS, sharp=True)
async def recheck_eligibility(
    *, name: str, body: kopf.Body, memo: kopf.Memo, entitlements: Index = NO_INDEX, **_: Any
) -> None:
    rt = runtime_of(memo)
    entitlement = Entitlement.model_validate(dict(body))
    grants: list[rules.Holder] = []
    orphans: list[rules.Holder] = []
    for key, grant in looked_after(name, rt.active, entitlements):
        (grants if key == name else orphans).append(grant)
    waiting = [rules.Holder(p.name, p.requester, p.user_id, uid=p.uid) for p in rt.pending.get(name, ())]
    listings = _listings(memo)
    groups = entitlement.spec.eligibility.identity_center_groups
    with _until_next_pass(name, "", "a listing", "no lapse is seen until someone fixes it", logging.INFO, "listing"):
        async with listings.guard:
            directory = await rt.run_blocking(listings.directory, rt, groups)
        await rt.run_blocking(recheck, rt, entitlement, directory, grants, orphans, waiting)


@contextmanager
def _until_next_pass(
    entitlement: str, subject: str, refused: str, meaning: str, silent_level: int, stage: str
) -> Iterator[None]:
    """Identity Center not answering or refusing (IAM) what is tried inside: logged, and left to the
    next pass, which tries it again. Nothing is wrong with the operator when it does not answer
    (logged at `silent_level`); a refusal is an error someone must fix (`meaning`: what it costs).
    Either is counted in `jitaccess_eligibility_recheck_failures_total` (by `stage`), which
    `JitaccessEligibilityRecheckFailing` watches: leavers keep their access while it lasts."""
    where = f"eligibility re-check of {entitlement}{subject}"
    try:
        yield
    except RetryLater as exc:
        metrics.ELIGIBILITY_RECHECK_FAILURES.labels(stage, "unanswered").inc()
        log.log(silent_level, "%s: Identity Center not answering (%s); next pass in %ss", where, exc, RECHECK_SECONDS)
    except PermanentFailure as exc:
        metrics.ELIGIBILITY_RECHECK_FAILURES.labels(stage, "refused").inc()
        metrics.ERRORS.labels("handler").inc()
        log.error(
            "%s: Identity Center refused %s: %s: %s; check the operator's IAM policy (docs/aws-iam.md); "
            "next pass in %ss",
            where,
            refused,
            exc,
            meaning,
            RECHECK_SECONDS,
        )


def recheck(
    rt: Runtime,
    entitlement: Entitlement,
    directory: rules.Directory,
    grants: Sequence[rules.Holder],
    orphans: Sequence[rules.Holder],
    waiting: Sequence[rules.Holder],
) -> None:
    """One pass for one Entitlement: end lapsed grants, refuse lapsed requests, publish who is eligible.

    `grants` and `waiting`: its Active grants and the requests waiting for a decision; `orphans`:
    Active grants of deleted Entitlements it looks after, whose users are checked for existence and
    disabled accounts only (the groups they were granted under are not known any more). Requests
    of deleted Entitlements are not looked at: `schedules` declares them Invalid.
    """
    name = entitlement.metadata.name
    groups = entitlement.spec.eligibility.identity_center_groups
    # A running grant is held to the groups that exist only: a name that resolves to no group is the
    # catalog's typo (`EligibilityGroupNotFound`), not its user's lapse. Requests are still refused.
    held_to = rules.known(groups, directory)
    for lapse in rules.lapses(grants, held_to, directory):
        _act(rt, name, lapse, held_to, _end, absent_lapses=False)
    for lapse in rules.lapses(orphans, (), directory):
        _act(rt, name, lapse, (), _end)
    for lapse in rules.lapses(waiting, groups, directory):
        _act(rt, name, lapse, groups, _refuse)
    if groups:
        _publish(rt, entitlement, rules.eligible(groups, directory))


def _act(
    rt: Runtime,
    entitlement: str,
    lapse: rules.Lapse,
    groups: Sequence[str],
    act: Callable[[Runtime, str, rules.Lapse], None],
    *,
    absent_lapses: bool = True,
) -> None:
    """`act` on one lapse once Identity Center confirms it (`_confirmed`), in a try of its own: one
    user's removal refused (an IAM policy that denies that group, say) or unanswered, or the API
    server failing a read or a write of it (a 429, a 5xx, a timeout), leaves the other lapses of the
    pass to be acted on, and is tried again on the next pass."""
    try:
        with _until_next_pass(
            entitlement, f": {lapse.name}", f"to end it ({lapse.message})", "it stays", logging.WARNING, "lapse"
        ):
            if _confirmed(rt, lapse, groups, absent_lapses=absent_lapses):
                act(rt, entitlement, lapse)
    except Exception as exc:  # the API server: this lapse waits for the next pass, not the others
        log.warning(
            "eligibility re-check of %s: %s: acting on the lapse (%s) failed (%s); next pass in %ss",
            entitlement,
            lapse.name,
            lapse.message,
            exc,
            RECHECK_SECONDS,
        )


def _confirmed(rt: Runtime, lapse: rules.Lapse, groups: Sequence[str], *, absent_lapses: bool = True) -> bool:
    """Ask Identity Center about this one user before acting on a listing: the listing may be a
    few seconds older than a grant made since (the user added to the group in between), and
    listings are eventually consistent. Lapses are rare, so this costs next to nothing.
    `absent_lapses`: whether a group that does not exist (any more) confirms it (a waiting request:
    it cannot be granted), or is left out (a running grant: the catalog's mistake, not the user's).

    The groups are asked about by the ids the cache holds, a group replaced under its name since by
    its new id (`Runtime.missing_groups`). A `NotFound` that is a group's (the user's account is
    there: `DescribeUser`) confirms nothing: nobody lapses over a group that does not exist, and the
    next pass's listing resolves its name afresh."""
    ic = rt.identity_center
    if lapse.user_id is None:
        return True  # not in the store's listing, and no UserId to ask about: gone
    resolved = [(group, _group_id(rt, group)) for group in groups]
    if absent_lapses and any(gid is None for _, gid in resolved):
        return True  # a request for a group that does not exist cannot be granted
    ids = {gid: group for group, gid in resolved if gid is not None}
    try:
        if ids and rt.missing_groups(ic, lapse.user_id, ids)[1]:
            return True
    except NotFound:
        pass  # the user gone, or a group deleted since: only DescribeUser's answer tells which
    try:
        return not ic.user_enabled(lapse.user_id)
    except NotFound:
        return True  # the user does not exist


def _group_id(rt: Runtime, group: str) -> str | None:
    try:
        return rt.cached("group", group, rt.identity_center.resolve_group)
    except NotFound:
        return None


def _end(rt: Runtime, entitlement: str, lapse: rules.Lapse) -> None:
    if lapse.name in rt.recently_ended():
        return  # ended by this process a moment ago; the index has not caught up yet
    try:
        end_grant(rt, lapse.name, names.ELIGIBILITY_LAPSED, rt.holders, why=lapse.message, uid=lapse.uid)
    except Refused as exc:
        # The membership is removed; only the grant's end is refused. Said here, so that the other
        # lapses of the pass are still acted on; the next pass tries the end again.
        obj = rt.kube.get(names.GRANTS, lapse.name)
        if obj is not None:
            removals.not_written(
                obj, exc, doing="ending", reported=removals.REFUSED_ENDS, tracked=rt.expirations.key_of
            )
        return
    metrics.ELIGIBILITY_LAPSES.labels(entitlement, "grant").inc()


def _refuse(rt: Runtime, entitlement: str, lapse: rules.Lapse) -> None:
    """End a request still waiting for a decision: its requester may not have it any more."""
    message = f"refused while waiting for a decision: eligibility lapsed: {lapse.message}"

    def build(current: AccessRequest) -> dict[str, Any] | None:
        # Only while nobody has decided: an approved request is checked again before its grant.
        if not request_rules.is_pending(current):
            return None
        # Only the user's request for this Entitlement (the lapse is neither another's nor another
        # Entitlement's); a request created since under the name is kept out by the uid already.
        spec = current.spec
        same_user = spec.requester == lapse.user and (
            None in (spec.requester_user_id, lapse.user_id) or spec.requester_user_id == lapse.user_id
        )
        if spec.entitlement != entitlement or not same_user:
            return None
        return {
            "conditions": conditions_after(
                current.status.conditions,
                [(names.READY, False, names.NOT_ELIGIBLE, message)],
                current.metadata.generation,
            )
        }

    updated = rt.kube.update_status(names.REQUESTS, lapse.name, status_change(AccessRequest, build), uid=lapse.uid)
    if (
        updated is None
        or cond.ready_reason(AccessRequest.model_validate(updated).status.conditions) != names.NOT_ELIGIBLE
    ):
        return
    metrics.REQUESTS.labels(entitlement, names.NOT_ELIGIBLE.lower()).inc()
    metrics.ELIGIBILITY_LAPSES.labels(entitlement, "request").inc()
    record(updated, names.NOT_ELIGIBLE, message, warning=True, who=lapse.user)


def _publish(rt: Runtime, entitlement: Entitlement, eligible: list[tuple[str, str]]) -> None:
    """`status.eligibleUsers` (bounded) and `status.eligibleUserCount`, written only when they change."""
    listed = [{"userId": uid, "username": user} for uid, user in eligible[: limits.ELIGIBLE_USERS_LISTED]]

    def build(current: Entitlement) -> dict[str, Any] | None:
        before = [u.wire() for u in current.status.eligible_users or []]
        if before == listed and current.status.eligible_user_count == len(eligible):
            return None
        return {"eligibleUsers": listed, "eligibleUserCount": len(eligible)}

    name, uid = entitlement.metadata.name, entitlement.metadata.uid
    rt.kube.update_status(names.ENTITLEMENTS, name, status_change(Entitlement, build), uid=uid)

"""AccessGrant handlers: put the user into the Identity Center group, and take them out again.

- create / resume: resolve ids, ensure the membership, become `Active` with an expiration time;
  a grant that an auto-approval creates is provisioned by its request's handler at once
  (`provision_at_once`), and its own handler then finds that done;
- the expiry scheduler (`expiry`) ends each Active grant at its persisted `status.expirationTime`
  through `end_grant`; after a restart the overdue ones end first;
- `jitaccess.dev/revoked=true` or deletion (finalizer) ends a grant early;
- every end is refused while the grant's access is in another identity store than the one the
  operator points at now (`status.identityStoreId`, `in_operators_store`): retried and reported,
  never written as ended;
- an end that must wait for an add a previous leader may have sent (attack 129) is kopf's retry
  of the handler at the moment the wait is over, said once at INFO, not as an error
  (`_once_settled`).

Ending a grant removes the membership only when no other live grant holds the same (user, group):
the decision and the removal happen under one lock per membership, against the Runtime's
`holders` (see `indexes`) corrected for the grants this process has just ended; a grant is filed
there by its own provisioning, under that lock, before anything is added for it, and when the
index names no other holder the API server is asked (`holders`) before the removal; the other
holders it names are read before one keeps the membership (the index may name a grant deleted while
its watch was cut).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import kopf

from jitaccess import metrics
from jitaccess.adapters.kube import Only, Refused, checked_uid
from jitaccess.adapters.webhooks import own_username
from jitaccess.api import audit, names, wire
from jitaccess.api.models import AccessGrant, AccessRequest
from jitaccess.domain import conditions as cond
from jitaccess.domain import following, releases
from jitaccess.domain import grants as grant_rules
from jitaccess.domain import requests as request_rules
from jitaccess.domain.durations import parse_duration
from jitaccess.errors import AddInFlight, IdentityCenterError, NotFound, OtherStore, PermanentFailure, RetryLater
from jitaccess.handlers import archive, assignments, diffbase, removals, sessions
from jitaccess.handlers.backing import stored_request, unbacked, unbacked_by
from jitaccess.handlers.common import NO_INDEX, Index, conditions_after, now, request_uid, status_change, ts
from jitaccess.handlers.eligibility import holder_problem
from jitaccess.handlers.holders import stored_among, stored_holders
from jitaccess.handlers.indexes import asked_to_end, expiring
from jitaccess.handlers.recording import record
from jitaccess.handlers.runtime import Runtime, runtime_of

log = logging.getLogger(__name__)
GRANT = (names.GROUP, names.VERSION, names.GRANTS)


#: The field `revoke_on_annotation` watches: kopf adds it to the essence it keeps (`diffbase.essence`).
WATCHED = "metadata.annotations"
# How long the grant's handler waits for its request's handler to provision it (`provision_at_once`):
# longer than a burst's queue for Identity Center's rate limit lasts, so the work is not done twice.
_AT_ONCE_WAIT_SECONDS = 600.0
# A deleted grant waits for its audit records (`revoke_on_delete`): asked again after 0.5 s,
# then doubling up to this while S3 stays unreachable.
HOLD_MAX_SECONDS = 30.0


def _revoked(annotations: kopf.Annotations, **_: Any) -> bool:
    return wire.truthy(annotations.get(names.ANNOTATION_REVOKED))


@kopf.on.startup()
async def begin_attempts(memo: kopf.Memo, **_: Any) -> None:
    """A fresh controller (this replica has just taken the Lease): grants created before now may
    have been tried by the previous one (`Runtime.attempts`)."""
    rt = memo.get("runtime")
    if not isinstance(rt, Runtime):
        raise kopf.TemporaryError("the Runtime is not set up yet (startup.configure)", delay=0.1)
    rt.attempts.begin()


@kopf.on.resume(*GRANT)
@kopf.on.create(*GRANT)
async def provision_grant(
    *,
    body: kopf.Body,
    memo: kopf.Memo,
    reason: Any = None,
    old: Any = None,
    new: Any = None,
    teams: Index = NO_INDEX,
    entitlements: Index = NO_INDEX,
    **_: Any,
) -> None:
    rt = runtime_of(memo)
    if await rt.provisions.handled(body.metadata.name, str(body.metadata.uid or ""), _AT_ONCE_WAIT_SECONDS):
        if _revoked(body.metadata.annotations):
            # kopf saw the grant first already revoked (after a re-list, say): it takes this state
            # as handled once this returns, so `revoke_on_annotation` would never run for it.
            await rt.run_granting(
                _end_or_retry, rt, body, names.REVOKED, rt.holders, by_annotation=True, why="revoked by annotation",
                fresh=True,
            )  # fmt: skip
        return
    # `Active` is this handler's last write: it carries kopf's diff-base (`diffbase`), which kopf
    # would write with a PATCH of its own once the handler returns. Nothing is left to retry after
    # it but following the request, which `following` repairs.
    essence = diffbase.to_carry(reason, old, new)
    await rt.run_granting(_provision, rt, body, rt.holders, teams, entitlements, essence)


def _provision(
    rt: Runtime, body: kopf.Body, grant_holders: Index, teams: Index, entitlements: Index, essence: str | None = None
) -> None:
    grant = AccessGrant.model_validate(dict(body))
    if grant_rules.is_finished(grant):
        return
    if _revoked(body.metadata.annotations):
        # Ended as a revocation by annotation is, its failures retried and reported alike (and read
        # afresh: nothing was provisioned, and `body` may predate an attempt that added something).
        _end_or_retry(
            rt, body, names.REVOKED, grant_holders, by_annotation=True, why="revoked before it began", fresh=True
        )
        return
    if grant_rules.is_active(grant):
        return
    # Whoever can act as the operator could create a grant by hand: it is provisioned only if its
    # request, as stored now, leads to exactly this grant.
    request = stored_request(rt, grant)
    try:
        # Identity Center is asked here too (on call, approvers gone, a scheduled start's eligibility).
        problem = unbacked(rt, grant, request, teams, entitlements)
        if problem is not None:
            fail(rt, grant, problem, before_add=True)
            return
        activate(rt, grant, current=dict(body), request=request, essence=essence, admitted=wire.created_at(request))
    except AddInFlight as exc:
        raise _once_settled(exc) from exc
    except RetryLater as exc:
        metrics.ERRORS.labels("identitycenter_retry").inc()
        raise kopf.TemporaryError(f"Identity Center is not answering ({exc}); will retry", delay=2) from exc
    except PermanentFailure as exc:
        # Identity Center refused (IAM) a lookup of the checks (nothing added yet), or the take-back
        # that failing the grant makes (the grant is not failed with access left): either way the
        # grant waits for the fix, and the message names the call refused.
        raise kopf.TemporaryError(
            f"{_refused(exc)}; check the operator's IAM policy (docs/aws-iam.md); will retry", delay=60
        ) from exc


#: The calls that take back what an earlier attempt of a grant may have added (`fail`): the
#: deletions, and `wait` for a deletion's request (the creations' are waited for by the assignment
#: itself, whose refusal fails the grant instead).
_TAKE_BACK_CALLS = frozenset(
    {"DeleteGroupMembership", "DeleteAccountAssignment", "DescribeAccountAssignmentDeletionStatus", "wait"}
)


def _refused(exc: PermanentFailure) -> str:
    """What `_provision` says Identity Center refused, by the call refused (`exc.operation`)."""
    if exc.operation in _TAKE_BACK_CALLS:
        return f"Identity Center refused to take back what an earlier attempt of this grant may have added ({exc})"
    return f"Identity Center refused {exc.operation or 'a call'} ({exc})"


def _once_settled(exc: AddInFlight) -> kopf.TemporaryError:
    """kopf's retry of a grant's end refused for now (`_after_earlier_adds`): once, when the wait
    is over, said here once at INFO (why, and until when).

    A wait, not a failure: it follows every hand-over for each grant ended within 15 s of it. kopf
    logs every `TemporaryError` as "Handler '...' failed temporarily: ..." at ERROR, which counts
    in `jitaccess_errors_total` (`JitaccessHandlerErrors`) and would be an Event on the grant
    wherever kopf posts its lines (`settings.posting.loggers`, off in kopf 1.45 by default). Its
    message begins `waiting:` (`releases.WAITING`), so that `logs.WaitsAreNotErrors` keeps kopf's
    line out of the error log, the Events and the error count, as it does for a deleted
    Entitlement's wait. kopf's retry is still the mechanism: the only one a
    handler has, its `delay` kept in the grant's status (kopf's progress), so a restart retries it
    at that time too; the operator's own scheduler would need a queue of its own, rebuilt after a
    restart, for what kopf keeps already. The retry comes once the wait is over, never before
    (`_after_earlier_adds` would refuse it again), rounded up so that it is refused only once."""
    log.info("%s; its handler is retried then", exc)
    return kopf.TemporaryError(f"{releases.WAITING} {exc}", delay=exc.delay)


def provision_at_once(
    rt: Runtime,
    created: dict[str, Any],
    request: dict[str, Any],
    approved: AccessRequest,
    valid: request_rules.ValidRequest,
    request_essence: str,
    done: Future[str],
) -> bool:
    """Provision the grant an auto-approval has just `created`, in the request's handler, without
    waiting for the grant's watch event and handler: the latency of every auto-approved grant.

    `request` is the API server's answer to the approval's write (`approved`, parsed), checked
    exactly as the grant's handler checks a read (`backing`); `valid` the Entitlement and owner team that handler has
    just looked up. The grant's `Active` carries its kopf diff-base, the request's `Granted` the
    request's (`request_essence`, `diffbase`). `done` tells the grant's own handler, which kopf
    starts meanwhile, whether it is left anything to do. True when the request's diff-base was
    carried; False leaves the rest, as for any grant, to the grant's handler, which a failure
    here (Identity Center not answering, say) also leaves it to.
    """
    handled = ""
    try:
        grant = AccessGrant.model_validate(created)
        rt.handoffs.take(grant.spec.request)  # used here: the grant's handler, if it must act, reads
        problem = unbacked_by(rt, grant, approved, valid.entitlement, valid.team)
        if problem is not None:
            fail(rt, grant, problem, before_add=True)
            handled = grant.metadata.uid
            return False
        essence = diffbase.essence(created, [WATCHED])
        followed = activate(
            rt, grant, current=created, request=request, essence=essence, admitted=wire.created_at(request),
            request_essence=request_essence,
        )  # fmt: skip
        handled = grant.metadata.uid
        return followed
    except AddInFlight:
        # Failing it waits for an earlier controller's add (attack 129): its own handler retries it
        # then, and says why once (`_once_settled`). Nothing to count as an error.
        return False
    except RetryLater as exc:
        # A handler's failure that is retried, as kopf's would be: by the grant's own handler.
        metrics.ERRORS.labels("identitycenter_retry").inc()
        metrics.ERRORS.labels("handler").inc()
        log.warning("AccessGrant %s is left to its own handler: Identity Center: %s", created["metadata"]["name"], exc)
        return False
    except Exception:  # whatever it is, the grant's own handler does the work again, and retries
        metrics.ERRORS.labels("handler").inc()
        log.warning("AccessGrant %s is left to its own handler", created["metadata"]["name"], exc_info=True)
        return False
    finally:
        done.set_result(handled)


def activate(
    rt: Runtime,
    grant: AccessGrant,
    current: dict[str, Any] | None = None,
    request: dict[str, Any] | None = None,
    essence: str | None = None,
    admitted: dt.datetime | None = None,
    request_essence: str | None = None,
) -> bool:
    """Ensure the membership, then mark the grant Active; `current` (the body kopf delivered)
    spares a re-read of the grant, and `request` (as the basis check read it) one of the request
    before `Granted`: a stale one only costs a conflict and a re-read. `essence`: kopf's diff-base
    for the `Active` write to carry (`diffbase`), `request_essence` the request's for `Granted`;
    `admitted`: when the request was created (`confirmed_grantee`). True when `Granted` carried
    `request_essence`."""
    ic = rt.identity_center
    spec = grant.spec
    user_id = confirmed_grantee(rt, grant, admitted)
    if user_id is None:
        return False
    if rt.attempts.has_run_out(grant.metadata.uid or ""):
        fail(rt, grant, RAN_OUT)  # takes out nothing more: `_record_active` did
        return False
    ends_by = window_end(grant, request)
    if spec.account_assignment is not None:
        return _activate_assignments(rt, grant, user_id, current, request, essence, request_essence, ends_by)
    try:
        group_id = rt.cached("group", spec.group_name, ic.resolve_group)
    except NotFound:
        fail(
            rt, grant, f"Identity Center group {spec.group_name!r} does not exist: fix the Entitlement", before_add=True
        )
        return False
    except PermanentFailure as exc:
        fail(rt, grant, f"Identity Center refused to resolve group {spec.group_name!r}: {exc}", before_add=True)
        return False

    def add(ids: dict[str, str]) -> tuple[dict[str, Any] | None, grant_rules.Window] | str | None:
        """Under the lock of the group id tried: the add, then the `Active` write (the grant as
        written, None when nothing was, and its window); why Identity Center refused the add; None
        when the grant ended meanwhile. `NotFound` from the add only."""
        (tried,) = ids
        key = grant_rules.membership_key(user_id, tried)
        with rt.membership_lock(key):
            if _ended_meanwhile(rt, grant):
                return None
            _file_as_holder(rt, grant, (grant_rules.membership_key(user_id, spec.group_name), key))
            # Remembered here, not written: failing the grant later says from when its user may have
            # held what this add did if its answer is lost (`fail`); whether it was there already,
            # Identity Center says.
            rt.attempts.first(grant.metadata.uid or "", grant.metadata.creation_timestamp, now())
            try:
                membership_id, added = ic.ensure_member(tried, user_id)
            except PermanentFailure as exc:
                # Access denied by IAM, a malformed id: another try will not help.
                return f"Identity Center refused to add {spec.user} to {spec.group_name}: {exc}"
            window = grant_rules.activation_window(grant, now() if added else activation_start(grant), ends_by)
            build = _becoming_active(
                window,
                f"{spec.user} is in Identity Center group {spec.group_name}",
                userId=user_id,
                groupId=tried,
                membershipId=membership_id,
                identityStoreId=ic.identity_store_id,
            )
            remove = functools.partial(ic.remove_member, tried, user_id, membership_id)
            ends = window.expiration_time
            return _record_active(rt, grant, build, essence, current, key, tried, remove, ends), window

    # The cached id may be a group deleted since and created again under its name (a Terraform
    # replace, within the cache's lifetime): the name is resolved afresh, and the add tried once
    # more, under the new id's lock, in the group it names now (`status.groupId` is that id).
    try:
        _, outcome = rt.in_current_groups(ic, add, {group_id: spec.group_name})
    except NotFound:
        rt.forget("group", spec.group_name)
        outcome = f"Identity Center group {spec.group_name!r} or user {spec.user} disappeared"
    if isinstance(outcome, str):
        # Outside the lock: failing takes back what an earlier attempt may have added, under it.
        fail(rt, grant, outcome)
        return False
    if outcome is None:
        return False
    updated, window = outcome
    if updated is None:
        return False
    active = AccessGrant.model_validate(updated)
    if not grant_rules.is_active(active):
        return False
    rt.attempts.over(grant.metadata.uid or "")
    if essence is not None:
        diffbase.carried(grant.metadata.uid, essence)
    expiration = ts(window.expiration_time)
    message = f"{spec.user} added to {spec.group_name} until {expiration}"
    record(updated, names.GRANTED, message, who=spec.user, entitlement=spec.entitlement, expires=expiration)
    followed = follow_request(rt, active, current=request, essence=request_essence)
    if followed is not None and followed.metadata.creation_timestamp is not None:
        metrics.GRANT_LATENCY.observe((window.activation_time - followed.metadata.creation_timestamp).total_seconds())
    return followed is not None and request_essence is not None


def _activate_assignments(
    rt: Runtime,
    grant: AccessGrant,
    user_id: str,
    current: dict[str, Any] | None,
    request: dict[str, Any] | None,
    essence: str | None,
    request_essence: str | None,
    ends_by: dt.datetime | None,
) -> bool:
    """Account-assignment mode: the permission set assigned to the user in each account, then Active."""
    spec = grant.spec
    try:
        arn = assignments.permission_set_arn(rt, grant)
    except NotFound as exc:
        fail(
            rt,
            grant,
            f"the permission set {spec.group_name} cannot be found ({exc}): fix the Entitlement",
            before_add=True,
        )
        return False
    key = grant_rules.membership_key(user_id, spec.group_name)
    refused = ""
    updated: dict[str, Any] | None = None
    with rt.membership_lock(key):
        if _ended_meanwhile(rt, grant):
            return False
        _file_as_holder(rt, grant, (key,))
        others = assignments.others_holding(rt, grant, key, rt.holders)
        first = rt.attempts.first(grant.metadata.uid or "", grant.metadata.creation_timestamp, now())
        try:
            states = assignments.assign(rt, grant, user_id, arn, others)
        except (NotFound, PermanentFailure) as exc:
            refused = f"Identity Center refused to assign {spec.group_name} to {spec.user}: {exc}"
        else:
            window = grant_rules.activation_window(grant, now() if first else activation_start(grant), ends_by)
            accounts = ", ".join(s["account"] for s in states)

            build = _becoming_active(
                window,
                f"{spec.user} holds permission set {spec.group_name} in {accounts}",
                userId=user_id,
                permissionSetArn=arn,
                accountAssignments=states,
                identityStoreId=rt.identity_center.identity_store_id,
            )
            updated = _record_active(
                rt,
                grant,
                build,
                essence,
                current,
                key,
                None,
                lambda: bool(assignments.take_back(rt, grant, user_id, others)),
                window.expiration_time,
            )
    if refused:
        # Outside the lock: failing takes back what an earlier attempt may have assigned, under it.
        fail(rt, grant, refused)
        return False
    if updated is None or not grant_rules.is_active(AccessGrant.model_validate(updated)):
        return False
    rt.attempts.over(grant.metadata.uid or "")
    if essence is not None:
        diffbase.carried(grant.metadata.uid, essence)
    expiration = ts(window.expiration_time)
    message = f"{spec.user} assigned {spec.group_name} in {accounts} until {expiration}"
    record(updated, names.GRANTED, message, who=spec.user, entitlement=spec.entitlement, expires=expiration)
    followed = follow_request(rt, AccessGrant.model_validate(updated), current=request, essence=request_essence)
    return followed is not None and request_essence is not None


def window_end(grant: AccessGrant, request: Mapping[str, Any] | None) -> dt.datetime | None:
    """When the window the grant's request was approved for ends (`requests.approved_window`), which
    the grant's expiration never passes: a start taken late (the operator down at it, a cluster
    restored from a backup) gives the rest of the window, not the full duration from now. None for
    a request without a `spec.startTime` (nearly every one, spared a parse here), whose duration
    counts from the activation. `request` is as the basis check read it: its duration is the grant's."""
    if request is None or not wire.spec(request).get("startTime"):
        return None
    parsed = AccessRequest.model_validate(request)
    duration = parse_duration(grant.spec.duration, "spec.duration")
    window = request_rules.approved_window(parsed, duration, now())
    return None if window is None else window.ends


def activation_start(grant: AccessGrant) -> dt.datetime:
    """When a grant's time starts if its access may have been given before the attempt now under
    way (the membership was there already; an assignment tried before, or by another process):
    its creation, the earliest any attempt of it could have added anything. Counting from now
    would run a grant whose `Active` write was lost (a crash, an API server error, then a retry
    hours later) for its full duration again, on top of the access already held. The user loses
    the time between the creation and now, which for a grant provisioned at once is a moment."""
    created = grant.metadata.creation_timestamp
    current = now()
    return current if created is None else min(created, current)


def _becoming_active(
    window: grant_rules.Window, held: str, **fields: Any
) -> Callable[[AccessGrant], dict[str, Any] | None]:
    """The status change that makes a Provisioning grant Active (`held`: what the user now holds),
    with `fields` (the ids of what was added); nothing for a grant in any other state."""

    def build(current: AccessGrant) -> dict[str, Any] | None:
        if grant_rules.state(current) != names.PROVISIONING:
            return None
        until = ts(window.expiration_time)
        return {
            **fields,
            "activationTime": ts(window.activation_time),
            "expirationTime": until,
            "conditions": conditions_after(
                current.status.conditions, [(names.READY, True, names.ACTIVE, f"{held} until {until}")]
            ),
        }

    return build


def _carrying(
    build: Callable[[AccessGrant], dict[str, Any] | None], essence: str | None
) -> Callable[[AccessGrant], dict[str, Any] | None]:
    """`build`, whose write (when it makes one) also stores kopf's diff-base `essence`."""
    if essence is None:
        return build

    def carrying(current: AccessGrant) -> dict[str, Any] | None:
        fields = build(current)
        return None if fields is None else {**fields, **diffbase.fields(essence)}

    return carrying


def _holding(
    build: Callable[[AccessRequest], dict[str, Any] | None], essence: str | None = None
) -> Callable[[dict[str, Any]], Any]:
    """`build` as a request's status change whose write (when it makes one) also stores the
    request's diff-base: `essence` (`provision_at_once`), or the one kopf holds for the request
    since its handler created this grant (`diffbase.defer`)."""
    change = status_change(AccessRequest, build)

    def holding(current: dict[str, Any]) -> dict[str, Any] | None:
        fields = change(current)
        if fields is None:
            return None
        return {**fields, **(diffbase.fields(essence) if essence is not None else diffbase.held_fields(current))}

    return holding


def confirmed_grantee(rt: Runtime, grant: AccessGrant, admitted: dt.datetime | None = None) -> str | None:
    """The UserId to add: the one admission stamped on the request (`spec.userId`), once Identity
    Center confirms that the user name still belongs to it. Else the grant fails closed (and its
    request with it) and this returns None: a user deleted and re-created under the same name since
    the request, or a renamed one, is not the person who asked.

    Asked afresh, never from the cache: the cache may hold the very answer admission stamped;
    except when the request was admitted (`admitted`, its creation) so recently that admission's
    own fresh answer is seconds old (`grants.stamp_is_fresh`): an auto-approved grant, which
    would otherwise ask Identity Center twice for the same answer and halve the grants the
    `GetUserId` quota allows. A grant from before grants recorded the UserId gets whoever has
    the name now.
    """
    ic, spec = rt.identity_center, grant.spec
    if spec.user_id is not None and grant_rules.stamp_is_fresh(admitted, dt.datetime.now(dt.UTC)):
        return spec.user_id
    try:
        current = ic.resolve_user(spec.user)
    except NotFound:
        fail(rt, grant, f"{spec.user} is not a user in Identity Center store {ic.identity_store_id}", before_add=True)
        return None
    if spec.user_id is not None and current != spec.user_id:
        fail(
            rt,
            grant,
            f"the Identity Center user {spec.user} is no longer the one who asked (user id changed from "
            f"{spec.user_id} to {current}). If {spec.user} needs access, they request it again",
            before_add=True,
        )
        return None
    return current


def fail(rt: Runtime, grant: AccessGrant, message: str, before_add: bool = False) -> None:
    """End a grant that never became Active as Failed, after taking back whatever an earlier
    attempt of it may have given: an attempt that added the membership (or assigned the permission
    set in some accounts) and then could not record it (Identity Center or the API server stopped
    answering) is retried, and the retry can find the grant no longer backed. Both happen under the
    membership's lock, the take-back first, so that a crash between them leaves a grant that is
    still retried, never a Failed one whose access stays. `RetryLater` (and any refusal to take
    back) leaves the grant to be retried; `AddInFlight` too, until a controller before this one
    can no longer add anything for it (`_after_earlier_adds`).

    `message` says why; this adds what the user may have held, and `status.takeBack` records it in
    the same write (no other write on the way: an auto-approved grant's requests are counted,
    bench/README.md): when the take-back ran, what it removed, and `since`, the earliest the user
    may have held it: this controller's first attempt (`Runtime.attempts`, in memory), else the
    grant's creation (after a restart, or for a grant an earlier controller may have tried).
    `before_add`: the caller failed it before asking Identity Center to add anything; only then,
    with no attempt known or possible and nothing removed, does the message say nobody was given
    access (`grant_rules.failure_message`, `audit.possible_access`)."""
    name = grant.metadata.name
    uid = grant.metadata.uid or ""
    taken: list[str] = []
    back: grant_rules.TakeBack | None = None

    def build(current: AccessGrant) -> dict[str, Any] | None:
        if grant_rules.is_finished(current) or grant_rules.is_active(current):
            return None  # finished meanwhile, or made Active by an attempt that got further
        said = grant_rules.failure_message(message, grant.spec.user, back)
        fields: dict[str, Any] = {
            "conditions": conditions_after(current.status.conditions, [(names.READY, False, names.FAILED, said)])
        }
        return fields if back is None else {**fields, **_take_back_fields(back)}

    key, group_id = membership_of(rt, grant)
    _after_earlier_adds(rt, grant)
    with rt.membership_lock(key):
        latest = rt.kube.get(names.GRANTS, name)
        current = AccessGrant.model_validate(latest) if latest is not None else None
        # Another grant stored under the name since (its request's name taken again) is not this
        # one to take back for: its own handlers decide about its membership.
        ours = current is not None and current.metadata.uid == grant.metadata.uid
        if ours and current is not None and not grant_rules.is_finished(current) and not grant_rules.is_active(current):
            taken = _take_back(rt, current, key, group_id)
            back = _taken_back(rt, grant, taken, now(), before_add)
        updated = rt.kube.update_status(
            names.GRANTS, name, status_change(AccessGrant, build), current=latest, uid=grant.metadata.uid
        )
        if updated is not None:
            # Ended here: no attempt still under way adds anything for it (`_ended_meanwhile`).
            rt.mark_ended(name, key, uid)
            rt.attempts.over(uid)
        elif current is None or grant_rules.is_finished(current):
            rt.holders.file(name, (), name)  # ended elsewhere: it holds nothing (`_file_as_holder`)
    if taken:
        log.warning(
            "AccessGrant %s: what an earlier attempt gave %s was taken back (%s): the grant did not become Active",
            name,
            grant.spec.user,
            ", ".join(taken),
        )
    if updated is None:
        # Gone, or finished by a concurrent call: that call follows the request.
        return
    record(updated, names.FAILED, message, warning=True, who=grant.spec.user)
    _follow_ended(rt, updated)


def _taken_back(
    rt: Runtime, grant: AccessGrant, removed: list[str], at: dt.datetime, before_add: bool = False
) -> grant_rules.TakeBack:
    """What ending `grant` before it became Active removed at `at`, and what is known of its
    attempts: from when its user may have held that (`since`: this controller's first attempt, in
    memory, when no earlier controller can have tried it; else the grant's creation, before which
    nothing is added for it), and whether any attempt may have asked for it (`before_add`: the
    caller ends it before asking Identity Center to add anything)."""
    uid, created = grant.metadata.uid or "", grant.metadata.creation_timestamp
    attempted = rt.attempts.tried_at(uid)
    earlier = rt.attempts.before(created)
    return grant_rules.TakeBack(
        time=at,
        removed=removed,
        since=created if attempted is None or earlier else attempted,
        attempted=attempted,
        maybe_attempted=attempted is not None or earlier or not before_add,
    )


def _take_back_fields(back: grant_rules.TakeBack) -> dict[str, Any]:
    """`status.takeBack`, written with the grant's end: no write of its own."""
    since = {"since": ts(back.since)} if back.since is not None else {}
    return {"takeBack": {"time": ts(back.time), "removed": back.removed, **since}}


def membership_of(rt: Runtime, grant: AccessGrant) -> tuple[tuple[str, str], str | None]:
    """The key of a grant's membership, for its lock and its reference count, and its group's id.

    In group mode the group is keyed by its id (`status.groupId`, else resolved, cached), so that
    grants whose Entitlements spell one group differently (its name here, its id there) take one
    lock and count each other; by the spelling when Identity Center knows no such group (nobody
    can be in it). In account-assignment mode, the permission set's reference."""
    spec, status = grant.spec, grant.status
    user = grant_rules.grantee_id(spec.user_id, status.user_id, spec.user)
    if spec.account_assignment is not None:
        return grant_rules.membership_key(user, spec.group_name), None
    group_id = status.group_id
    if not group_id:
        try:
            group_id = rt.cached("group", spec.group_name, rt.identity_center.resolve_group)
        except NotFound:
            group_id = None
    return grant_rules.membership_key(user, group_id or spec.group_name), group_id


def holders_of(rt: Runtime, holders: Index, grant: AccessGrant, key: tuple[str, str], group_id: str | None) -> set[str]:
    """The live grants holding the membership `key` (`membership_of`): in group mode those filed
    under the group's id or any spelling of it, this grant's and the names this process resolved
    to it (`Runtime.group_names`): an Active grant is filed under the id too (`indexes.holdings`),
    a Provisioning one only under its own spelling."""
    if group_id is None:
        return set(holders.get(key, []))
    spellings = {grant.spec.group_name, group_id} | rt.group_names(group_id)
    return {g for spelled in spellings for g in holders.get(grant_rules.membership_key(key[0], spelled), [])}


def _record_active(
    rt: Runtime,
    grant: AccessGrant,
    build: Callable[[AccessGrant], dict[str, Any] | None],
    essence: str | None,
    current: dict[str, Any] | None,
    key: tuple[str, str],
    group_id: str | None,
    remove: Callable[[], bool],
    ends: dt.datetime,
) -> dict[str, Any] | None:
    """Under the membership lock: write the grant Active (`build`, carrying kopf's diff-base
    `essence`) until `ends`; the grant as written, None when nothing was. When the write finds the
    grant ended (or deleted) by another writer while this attempt added access, nothing else would
    take that access out: `remove` it again (`_give_back`).

    When the write fails (refused by a policy, RBAC changed, the API server erring), the access is
    in place with no end written anywhere: the expiry scheduler knows only Active grants and the
    drift scan counts a Provisioning grant as a holder. Each retry finds the membership there and
    counts the grant's time from its creation (`activation_start`), so once that time is over, a
    failing write takes the access out before the error goes on to the retry, and no later attempt
    of this controller adds it again (`Attempts.ran_out`: the next one fails the grant, `RAN_OUT`):
    access is never held past the grant's duration for want of a status write. (A process that
    starts anew does not know: it may add the access once more, for the grant's duration at most.)"""
    seen: list[str] = []

    def seeing(latest: AccessGrant) -> dict[str, Any] | None:
        seen.append(grant_rules.state(latest))
        return build(latest)

    try:
        updated = rt.kube.update_status(
            names.GRANTS,
            grant.metadata.name,
            status_change(AccessGrant, _carrying(seeing, essence)),
            current=current,
            uid=grant.metadata.uid,
        )
    except Exception as exc:
        if ends <= now():
            # Said at ERROR: the write's failure needs fixing.
            why = f"ran out of time while its Active write still fails ({exc}); its next attempt fails it"
            _give_back(rt, grant, key, group_id, remove, why, logging.ERROR)
            rt.attempts.ran_out(grant.metadata.uid or "")
        raise
    if updated is None and (not seen or seen[-1] in names.GRANT_FINISHED):
        # Finished or gone: it holds nothing, whatever the watch (or `_file_as_holder`) filed last.
        rt.holders.file(grant.metadata.name, (), grant.metadata.name)
        _give_back(rt, grant, key, group_id, remove)
    return updated


#: Why a grant fails whose time ran out while its `Active` write kept failing (`_record_active`).
RAN_OUT = (
    "its time ran out while its Active status could not be written (the operator's log says why): "
    "what it held was taken out, and it is not given again"
)


def _file_as_holder(rt: Runtime, grant: AccessGrant, keys: tuple[tuple[str, str], ...]) -> None:
    """Under the membership lock, before anything is added for `grant`: file it in `Runtime.holders`
    under `keys` (its membership as spelled and by the group's id), unless the watch has filed it
    (it knows better) or has seen it finished. That index is kept by the admission part's watch, in
    another event loop: until it shows the grant, a drift scan would find the member it is about to
    add unbacked, and the end of another grant of the same user and group would find nobody else
    holding it, and either would take out the access this adds (a scheduled start, a resumed or
    retried grant, an account assignment: every grant not provisioned at once by its request).
    Whatever ends the grant files it nowhere again (the watch, `_record_active`, `fail`)."""
    name = grant.metadata.name
    if rt.finished.key_of(f"{names.GRANTS}/{name}") is None:
        rt.holders.file_unless_filed(name, tuple(dict.fromkeys(keys)), name)


def _give_back(
    rt: Runtime,
    grant: AccessGrant,
    key: tuple[str, str],
    group_id: str | None,
    remove: Callable[[], bool],
    why: str = "ended while it was being provisioned",
    level: int = logging.WARNING,
) -> None:
    """Under the membership lock: `remove` what this attempt has just added for a grant that
    another writer ended meanwhile (or, `why`, whose time ran out while its `Active` write failed),
    unless another live grant holds it."""
    if _others_holding(rt, rt.holders, grant, key, group_id):
        return
    removed = remove()
    log.log(
        level,
        "AccessGrant %s %s; what was just added for %s was %s",
        grant.metadata.name,
        why,
        grant.spec.user,
        "taken back" if removed else "gone already",
    )


def _after_earlier_adds(rt: Runtime, grant: AccessGrant) -> None:
    """Before ending a grant that has not become Active: refuse to end it yet (`AddInFlight`, with
    the seconds left) while an add that a controller before this one may have sent for it (a leader
    killed or cut off from the API server while its CreateGroupMembership was on its way) can still
    land (`Attempts.earlier_adds_settled`, at most `LONGEST_CALL_SECONDS` after this controller
    began). Taking back at once found nothing, the end was written, and the add that landed a moment
    later gave access that no grant showed and nothing took out until the drift scan (attack 129).
    An Active grant's add has landed: its `Active` write followed the answer. Before the membership
    lock and before anything is written: the caller tries the end again once the wait is over
    (kopf's retry, `_once_settled`; the expiry scheduler's next time), and no thread of theirs
    waits meanwhile, when a hand-over may leave many grants to end at once. After a restart the
    grant, still not Active and created before the new controller began, waits again."""
    if grant_rules.is_active(grant):
        return
    wait = rt.attempts.earlier_adds_settled(grant.metadata.creation_timestamp, now())
    if wait <= 0:
        return
    # Up to whole seconds, as `now()` counts: a retry after a fraction less would find a fraction
    # left, and be refused (and logged) a second time.
    delay = math.ceil(wait)
    raise AddInFlight(
        f"AccessGrant {grant.metadata.name} is ended at {ts(now() + dt.timedelta(seconds=delay))} (in {delay}s), "
        "once an add the previous leader may have sent for it has landed or can no longer land",
        delay=delay,
    )


def _ended_meanwhile(rt: Runtime, grant: AccessGrant) -> bool:
    """Whether this process ended the grant (revoked, its request withdrawn) while an attempt to
    provision it looked things up; asked under the membership lock, which the end took too, so an
    addition after it would give access that no grant shows and nothing would take out."""
    if not rt.ended_grant(grant.metadata.uid or ""):
        return False
    log.info("AccessGrant %s ended while it was being provisioned: nothing added", grant.metadata.name)
    return True


def _take_back(rt: Runtime, grant: AccessGrant, key: tuple[str, str], group_id: str | None) -> list[str]:
    """Under the membership lock: remove what a grant that is not Active may hold (see `fail`),
    unless another live grant holds it too; a membership lookup (or an assignment listing per
    account) when it holds nothing. What was taken back. Refused (`OtherStore`) for a grant whose
    access is in another identity store than the operator's (`in_operators_store`)."""
    in_operators_store(rt, grant)
    spec = grant.spec
    if spec.account_assignment is not None:
        held = assignments.others_holding(rt, grant, key, rt.holders, confirm=True)
        return assignments.take_back(rt, grant, _user_id_of(rt, grant), held)
    others = _others_holding(rt, rt.holders, grant, key, group_id)
    return [spec.group_name] if not others and _remove_membership(rt, grant) else []


def _others_holding(
    rt: Runtime, holders: Index, grant: AccessGrant, key: tuple[str, str], group_id: str | None
) -> set[str]:
    """Under the membership lock: the other live grants holding the membership `key` once `grant`
    ends. The watch-fed index first, each grant it names read by name: only one stored, live and
    holding the membership still keeps it (the index may name a grant deleted while its watch was
    cut, `holders.stored_among`). When it names nobody that is, the API server is asked (one listing
    of the user's grants, `holders.stored_holders`): the index alone is never the evidence a removal
    rests on, nor the evidence that keeps a membership."""
    name = grant.metadata.name
    spellings = {key[1]} if group_id is None else {grant.spec.group_name, group_id} | rt.group_names(group_id)
    keys = {grant_rules.membership_key(key[0], s) for s in spellings}
    others = grant_rules.other_holders(holders_of(rt, holders, grant, key, group_id), name, rt.recently_ended())
    if others:
        held = stored_among(rt, others, keys)
        if held:
            return held
        log.info(
            "AccessGrant %s: the index names %s as holding its membership too, but none is stored and holds it: "
            "asking the API server for the user's grants",
            name,
            ", ".join(sorted(others)),
        )
    return stored_holders(rt, grant.spec.user, keys, name)


def in_operators_store(rt: Runtime, grant: AccessGrant) -> None:
    """Refuse (`OtherStore`) to end a grant whose access was given in another identity store
    (`status.identityStoreId`) than the one the operator points at now (attack 150): asked there,
    Identity Center finds no such membership (nor assignment), the end would be written as done
    ("no longer holds") and the member would stay in the other store for good, where no drift scan
    looks. A refusal is retried and reported as one Identity Center gives is (`removals`): the grant
    stays Active, and ends once the operator points at that store again. A grant that records no
    store is taken as in the operator's (`grant_rules.other_store`)."""
    configured = rt.identity_center.identity_store_id
    recorded = grant_rules.other_store(grant, configured)
    if recorded is None:
        return
    operation = "DeleteAccountAssignment" if grant.spec.account_assignment is not None else "DeleteGroupMembership"
    problem = grant_rules.other_store_problem(grant, recorded, configured)
    raise OtherStore(f"AccessGrant {grant.metadata.name}: {problem}", operation=operation, code="OtherStore")


def _user_id_of(rt: Runtime, grant: AccessGrant) -> str | None:
    """The UserId a grant's access was (or would be) given to; None when Identity Center knows no
    such user (so nobody holds anything by it)."""
    spec, status = grant.spec, grant.status
    try:
        return spec.user_id or status.user_id or rt.cached("user", spec.user, rt.identity_center.resolve_user)
    except NotFound:
        return None


@kopf.on.update(*GRANT, field=WATCHED, when=_revoked)
async def revoke_on_annotation(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    rt = runtime_of(memo)
    await rt.run_granting(
        _end_or_retry, rt, body, names.REVOKED, rt.holders, by_annotation=True, why="revoked by annotation"
    )


@kopf.on.delete(*GRANT)
async def revoke_on_delete(body: kopf.Body, memo: kopf.Memo, retry: int = 0, **_: Any) -> None:
    rt = runtime_of(memo)
    await rt.run_granting(
        _end_or_retry,
        rt,
        body,
        names.REVOKED,
        rt.holders,
        who="",
        why="the AccessGrant was deleted (the jitaccess.audit line AdmissionDeleted names who deleted it)",
    )
    # The access has ended; the grant itself (kopf's finalizer) goes only once its records, the
    # `revoked` one among them, are in the archive: a crash or a leader's change meanwhile would
    # otherwise lose them with it. kopf calls this handler again until they are.
    if archive.archiving(memo):
        current = await rt.run_blocking(rt.kube.get, names.GRANTS, body.metadata.name)
        what = "ended; its audit records are"
        archive.hold_until_archived(memo, names.GRANTS, current, retry=retry, longest=HOLD_MAX_SECONDS, what=what)


def _end_or_retry(
    rt: Runtime,
    body: kopf.Body,
    reason: str,
    holders: Index,
    *,
    who: str = "",
    by_annotation: bool = False,
    why: str,
    fresh: bool = False,
) -> None:
    """`fresh`: read the grant rather than trust kopf's `body`, which may be older than its
    provisioning; `by_annotation`: revoked by `jitaccess.dev/revoked`, by whom `_revoker` says."""
    try:
        end_grant(
            rt,
            body.metadata.name,
            reason,
            holders,
            who=_revoker(rt, body) if by_annotation else who,
            why=why,
            current=None if fresh else dict(body),
            uid=str(body.metadata.uid or ""),
        )
    except Refused as exc:
        # The membership is removed; only the end's write is refused: kopf retries it once a minute.
        removals.not_written(
            dict(body), exc, doing="revoking", reported=removals.REFUSED_ENDS, tracked=rt.expirations.key_of
        )
        raise
    except AddInFlight as exc:
        raise _once_settled(exc) from exc
    except (RetryLater, PermanentFailure) as exc:
        # A refusal too (AccessDenied: the IAM policy) is retried until it succeeds, as an expiry
        # is: it ends once the policy is fixed, and nothing else would end the access. Once
        # overdue, one ExpiryOverdue Event says why (`removals`); kopf says each retry in one line.
        obj = dict(body)
        expires, asked = expiring(obj), asked_to_end(obj, rt.revocations_seen)
        due = min((when for when in (expires, asked) if when is not None), default=None)
        if due is not None:
            removals.not_removed(
                obj,
                due,
                exc,
                now(),
                doing="revoking",
                reported=removals.REVOCATIONS,
                active=lambda n: rt.expirations.key_of(n) is not None,
            )
        raise kopf.TemporaryError(
            f"{removals.why(exc)}; will retry",
            delay=removals.retry_seconds(exc) if isinstance(exc, PermanentFailure) else 2,
        ) from exc
    removals.REVOCATIONS.forget(body.metadata.name)
    removals.REFUSED_ENDS.forget(body.metadata.name)


def _revoker(rt: Runtime, body: Mapping[str, Any]) -> str:
    """Who revoked a grant by annotation, as its `status.revokedBy` and its `revoked` record name
    them: its `revoked-by` stamp, unless that is the operator's own username (the admission policy
    lets it stamp itself only: `deleted_requests.mark_revoked`). A grant the operator revoked is the
    revocation of whoever cancelled its request, when a cancel admitted as the start created the
    grant ended it (`requests._end_grant_cancelled_late`, whose `revoke-reason` says so); else
    nobody's, which its record gives as the operator's one name (`audit.OPERATOR`: its request was
    deleted, even if someone cancelled it as well), never the ServiceAccount."""
    stamped = wire.annotations_of(body).get(names.ANNOTATION_REVOKED_BY, "")
    if not stamped:
        return ""
    try:
        own = operator_username(rt)
    except Exception as exc:  # the API server: the end is not held back for the name of its actor
        log.warning(
            "AccessGrant %s: who the operator is cannot be read (%s); revoked as stamped", wire.name_of(body), exc
        )
        return stamped
    return _canceller(rt, body) if stamped == own else stamped


def operator_username(rt: Runtime) -> str:
    """The API server's name for the operator (a SelfSubjectReview), the `revoked-by` it stamps when it
    revokes a grant itself. Cached like a name's id: a retried mark, or a burst of deleted requests,
    asks the API server once."""
    return rt.cached("operator", "username", lambda _: own_username())


def _canceller(rt: Runtime, grant: Mapping[str, Any]) -> str:
    """Who cancelled the request `grant` was made for before its start (the webhook's stamp on it),
    when the operator revoked the grant for that cancel: the grant's `revoke-reason` is the one
    `_end_grant_cancelled_late` wrote for it. "" when that request is gone (or another stands under
    its name), was not cancelled, or the operator revoked the grant for something else (its request
    deleted: a cancel admitted after that is not what ended the grant)."""
    name = str(wire.spec(grant).get("request") or "")
    made_for = (wire.metadata(grant).get("labels") or {}).get(names.LABEL_REQUEST)
    try:
        stored = rt.kube.get(names.REQUESTS, name) if name else None
        request = AccessRequest.model_validate(stored) if stored is not None else None
    except Exception as exc:  # the API server, or a request that cannot be parsed: the operator's, then
        log.warning("AccessGrant %s: its AccessRequest %s cannot be read (%s)", wire.name_of(grant), name, exc)
        return ""
    if request is None or (made_for and request.metadata.uid != made_for):
        return ""
    cancel = request_rules.cancelled(request)
    if cancel is None:
        return ""
    why = wire.annotations_of(grant).get(names.ANNOTATION_REVOKE_REASON, "")
    return cancel.who if why == request_rules.cancelled_late_reason(request) else ""


def end_grant(
    rt: Runtime,
    name: str,
    reason: str,
    holders: Index,
    *,
    who: str = "",
    why: str = "",
    current: dict[str, Any] | None = None,
    due: dt.datetime | None = None,
    uid: Only,
) -> dt.datetime | None:
    """End a grant as Expired, Revoked or EligibilityLapsed (`why` says what lapsed); remove the
    membership unless another grant holds it. `uid` (required, as of every write: `Kube`): only
    that grant, the one the caller's decision was taken on, also when it is read here again by name
    (`current` dropped after a provision finished): another stored under the name since (its
    request's name taken again) is left to its own handlers; `BY_NAME` for whatever is stored.

    `due`, for an expiry: the expiration time the scheduler acted on. An extension applied while
    the membership is being removed (its write lands between the scheduler's read and the end's
    write) moves the grant's end past it: the grant is not ended then, the access is given back
    under the same lock, and its new expiration time is returned (the scheduler's next time).
    Should giving it back fail, the grant ends Expired at the moment its access did end, never at
    the extension's time. None otherwise.

    A grant whose access is in another identity store than the operator's is not ended at all
    (`OtherStore`, `in_operators_store`): nothing is removed, nothing written."""
    if rt.provisions.wait_finished(name, _AT_ONCE_WAIT_SECONDS):
        current = None  # provisioned meanwhile: `current` may not show the membership it added
    obj = current or rt.kube.get(names.GRANTS, name)
    only = checked_uid(uid, f"the end of {names.GRANTS}/{name}")
    if obj is None or (only is not None and wire.uid_of(obj) != only):
        return None
    grant = AccessGrant.model_validate(obj)
    if grant_rules.is_finished(grant):
        return None
    in_operators_store(rt, grant)
    spec, status = grant.spec, grant.status
    key, group_id = membership_of(rt, grant)
    cut_short = ""
    _after_earlier_adds(rt, grant)
    with rt.membership_lock(key):
        others = _others_holding(rt, holders, grant, key, group_id)
        removed = False
        denied = None
        if not others and reason != names.EXPIRED and grant_rules.is_active(grant):
            # Early: the sessions already issued are cut too (`sessions`), recorded before the end is.
            denied = now()
            sessions.deny(rt, grant, key[0], group_id, since=denied)
        taken: list[str] = []
        if spec.account_assignment is not None:
            held = assignments.others_holding(rt, grant, key, holders, confirm=True)
            if grant_rules.is_active(grant):
                taken = assignments.unassign(rt, grant, key[0], held)
            else:
                # Not Active yet: an attempt cut short may have left a creation in progress, which a
                # removal now would not stop (it would land after, with no grant to end it), and
                # what it reached is unknown: taken back as `fail` does (those creations waited
                # for, then only the assignments that exist, which `status.takeBack` then lists).
                taken = assignments.take_back(rt, grant, _user_id_of(rt, grant), held)
            removed = bool(taken)
        elif not others:
            removed = _remove_membership(rt, grant)
            taken = [spec.group_name] if removed else []
        if denied is not None and now() > denied:
            # The removal took into another second (Identity Center slow, or throttling it): the
            # user could sign in until it was done, and those sessions are cut as long (`sessions`).
            sessions.deny(rt, grant, key[0], group_id)
        rt.mark_ended(name, key)
        stamp = now()
        # Ended before it became Active, yet something was removed: an attempt's add landed, its
        # answer lost. Recorded with the end, as failing such a grant does (`fail`).
        back = _taken_back(rt, grant, taken, stamp) if taken and not grant_rules.is_active(grant) else None
        moved: list[AccessGrant] = []

        def build(latest: AccessGrant) -> dict[str, Any] | None:
            moved.clear()
            if grant_rules.is_finished(latest):
                return None
            if _extended_past(latest, reason, due):
                moved.append(latest)
                return None
            if reason == names.EXPIRED:
                message = f"expired at {ts(latest.status.expiration_time or stamp)}"
            elif reason == names.ELIGIBILITY_LAPSED:
                message = f"ended early, eligibility lapsed: {why}"
            else:
                message = "revoked" + (f" by {who}" if who else "") + (f": {why}" if why else "")
            fields: dict[str, Any] = {
                "conditions": conditions_after(latest.status.conditions, [(names.READY, False, reason, message)])
            }
            if reason in (names.REVOKED, names.ELIGIBILITY_LAPSED):
                fields["revocationTime"] = ts(stamp)
                if who:
                    fields["revokedBy"] = who
            if back is not None and not grant_rules.is_active(latest):
                fields.update(_take_back_fields(back))
            return fields

        updated = rt.kube.update_status(names.GRANTS, name, status_change(AccessGrant, build), current=obj)
        if updated is None and moved:
            extended = moved[-1]
            problem = _give_access_back(rt, extended, key, group_id) if taken else None
            if problem is None:
                rt.unmark_ended(name)
                if taken:
                    log.warning(
                        "AccessGrant %s was extended to %s while its expiry (%s) removed %s from %s: given back",
                        name,
                        ts(extended.status.expiration_time or stamp),
                        ts(due or stamp),
                        spec.user,
                        ", ".join(taken),
                    )
                return extended.status.expiration_time
            cut_short = (
                f"extended to {ts(extended.status.expiration_time or stamp)} while its expiry removed the access, "
                f"which {problem}: request access again"
            )
            log.warning("AccessGrant %s ends Expired: %s", name, cut_short)
            updated = rt.kube.update_status(
                names.GRANTS, name, status_change(AccessGrant, _expired_at(stamp, cut_short)), uid=grant.metadata.uid
            )
        if updated is not None:
            # Once the end is written (a failed write is retried, and the grant may still become
            # Active meanwhile): no attempt still under way adds anything for it (`_ended_meanwhile`).
            rt.mark_ended(name, key, grant.metadata.uid or "")
            rt.attempts.over(grant.metadata.uid or "")
    if updated is None:
        # Gone, or ended by a concurrent call (expiry racing a revoke): that call reports it.
        return None
    if status.expiration_time is not None and reason == names.EXPIRED:
        metrics.EXPIRY_LAG.observe((stamp - status.expiration_time).total_seconds())
    kept = f"; membership kept for {', '.join(sorted(others))}" if others else ""
    gone = (
        f"{spec.user} removed from {spec.group_name}" if removed else f"{spec.user} no longer holds {spec.group_name}"
    )
    message = (
        f"{gone}{kept}"
        + (f" (revoked by {who})" if who else "")
        + (f": {why or cut_short}" if why or cut_short else "")
    )
    # The line's `who`, as on the grant's other lines: the grantee for an expiry or a lapse, whose
    # own access ran out; for a revocation, who revoked it, and for one nobody stamped (a deletion,
    # its request deleted or no longer backing it) the operator, which carried it out, as the
    # `revoked` record says: never the grantee in someone else's place.
    ender = who or (audit.OPERATOR if reason == names.REVOKED else spec.user)
    record(updated, reason, message, who=ender, entitlement=spec.entitlement)
    _follow_ended(rt, updated)
    return None


def _follow_ended(rt: Runtime, ended: dict[str, Any]) -> None:
    """Bring the request of a grant whose end is written into line with it. The grant's end and its
    access's removal are done: a failure here is the request's alone, and is not raised to the
    grant's caller, which would report it as the grant's own end refused (a `WriteRefused` Event
    saying the grant shows Active) and end it again. The request's `Ready` is brought in line
    later by the laggards' repair (`handlers.following`), which re-reads the grant."""
    grant = AccessGrant.model_validate(ended)
    try:
        follow_request(rt, grant)
    except Exception as exc:
        log.warning(
            "AccessGrant %s is %s, but its AccessRequest %s could not be brought in line yet (%s); tried again "
            "within seconds",
            grant.metadata.name,
            grant_rules.state(grant),
            grant.spec.request,
            exc,
        )


def _extended_past(latest: AccessGrant, reason: str, due: dt.datetime | None) -> bool:
    """Whether an expiry that acted on the expiration time `due` finds the grant Active until later
    (an extension's write landed meanwhile): it is not to be written Expired, which would say
    access ran until the new time."""
    expires = latest.status.expiration_time
    return (
        reason == names.EXPIRED
        and due is not None
        and expires is not None
        and grant_rules.is_active(latest)
        and expires > due
    )


def _expired_at(stamp: dt.datetime, why: str) -> Callable[[AccessGrant], dict[str, Any] | None]:
    """An Active grant's end as Expired at `stamp`, when its access was removed, with its
    expiration time brought back to it: `grant_rules.ended_at` (the audit) reads that time."""

    def build(latest: AccessGrant) -> dict[str, Any] | None:
        if grant_rules.is_finished(latest):
            return None
        message = f"expired at {ts(stamp)}: {why}"
        return {
            "expirationTime": ts(stamp),
            "conditions": conditions_after(latest.status.conditions, [(names.READY, False, names.EXPIRED, message)]),
        }

    return build


def _give_access_back(rt: Runtime, grant: AccessGrant, key: tuple[str, str], group_id: str | None) -> str | None:
    """Under the membership lock: add again what an expiry has just removed for `grant`, which an
    extension keeps Active; None when done, else why not. Its grantee's eligibility is asked first,
    afresh, as before any activation (`holder_problem`): the add is access begun anew, and a grantee
    disabled in Identity Center (or out of an eligibility group) since is not given it back for the
    minutes until the eligibility re-check would take it again; the grant then ends Expired, as it
    would have without the extension."""
    spec, status = grant.spec, grant.status
    user_id = status.user_id or spec.user_id or key[0]
    try:
        problem = holder_problem(rt, grant)
    except IdentityCenterError as exc:
        return f"could not be given back (Identity Center did not say whether {spec.user} may hold it: {exc})"
    if problem is not None:
        return f"was not given back: {problem}"
    try:
        if spec.account_assignment is not None:
            arn = assignments.permission_set_arn(rt, grant)
            assignments.assign(rt, grant, user_id, arn, assignments.others_holding(rt, grant, key, rt.holders))
        else:
            group = group_id or rt.cached("group", spec.group_name, rt.identity_center.resolve_group)
            rt.identity_center.ensure_member(group, user_id)
    except IdentityCenterError as exc:
        return f"could not be given back ({exc})"
    return None


def _remove_membership(rt: Runtime, grant: AccessGrant) -> bool:
    ic = rt.identity_center
    spec, status = grant.spec, grant.status
    try:
        user_id = status.user_id or spec.user_id or rt.cached("user", spec.user, ic.resolve_user)
        group_id = status.group_id or rt.cached("group", spec.group_name, ic.resolve_group)
    except NotFound:
        # The user or group is gone from Identity Center: so is any membership between them.
        return False
    try:
        return ic.remove_member(group_id, user_id, status.membership_id)
    except NotFound:
        return False


def follow_request(
    rt: Runtime, grant: AccessGrant, current: dict[str, Any] | None = None, essence: str | None = None
) -> AccessRequest | None:
    """Bring the request's `Ready` into line with `grant` as it now stands (see `domain.following`):
    Granted, then Expired or Revoked (or Failed). Idempotent: None when nothing was written.
    `current` (the request as read a moment ago) spares the first read of the write; `essence`:
    the request's diff-base for the write to carry (`provision_at_once`)."""
    wanted = following.request_ready(grant)
    if wanted is None:
        return None

    def build(current: AccessRequest) -> dict[str, Any] | None:
        if not following.belongs_to(grant, current.metadata.uid):
            return None
        if (current.status.grant or current.metadata.name) != grant.metadata.name:
            return None  # another grant names this request (one made by hand, say): not the request's own
        if cond.ready_reason(current.status.conditions) == wanted.reason:
            return None
        fields: dict[str, Any] = {
            "grant": grant.metadata.name,
            "conditions": conditions_after(
                current.status.conditions,
                [(names.READY, wanted.ready, wanted.reason, wanted.message)],
            ),
        }
        if wanted.expiration_time is not None:
            fields["expirationTime"] = ts(wanted.expiration_time)
        return fields

    updated = rt.kube.update_status(
        names.REQUESTS, grant.spec.request, _holding(build, essence), current=current, uid=request_uid(grant)
    )
    if updated is None:
        return None
    if essence is not None:
        diffbase.carried(str(wire.metadata(updated).get("uid") or ""), essence)
    # The audit line only: the grant, which has the request's name, posts the Event of the same
    # change (docs/api.md, Events). A third Event per grant cost an eighth of its CPU in a burst.
    record(
        updated,
        wanted.reason,
        wanted.message,
        warning=wanted.reason == names.FAILED,
        who=grant.spec.user,
        event=False,
        grant=grant.metadata.name,
    )
    return AccessRequest.model_validate(updated)

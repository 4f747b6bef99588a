"""Grants end when their time comes: the expiry scheduler (`scheduler`) wired into the operator.

- The start-up listing (`startup.configure`) schedules every Active grant at its persisted
  `status.expirationTime`, before kopf's watches adopt anything; the watch keeps the schedule
  current (`schedule_expiry`): a grant that ends, or is no longer Active, is unscheduled, and a new
  expiration time replaces the old. Only the name and the time are kept per grant. A standby runs
  `schedule_expiry` too (`parts.WARM`), so its schedule is current the moment it takes over.
- The scheduler starts with the operator and stops with it, and acts at once: after a crash the
  overdue memberships go while kopf is still adopting objects and the webhook server is starting.
  Every write an expiry makes is the operator's own status write, which the webhook configurations
  skip (`adapters.webhooks`, matchConditions); one refused by a stale configuration is tried again
  after the membership is already gone. The reference counts come from the start-up listing
  (`indexes.holders`), not from the watch. Only Events wait for the watch, where kopf keeps their
  queue: until its first event they are kept (`recording.Deferred`) and posted then. With leader
  election, the leader starts and stops it. Overdue grants are the first due, oldest first; the
  Identity Center rate limiter paces them.
- Each due grant is re-read: the persisted expiration time is the deadline, so a grant is never
  ended early, and one whose time has moved is rescheduled. An extension whose write lands after
  that read, while the membership is being removed, is found by the end's own write (its
  optimistic lock): the grant is not ended, its access is given back and it is rescheduled
  (`grants.end_grant`, `due`). It ends through `grants.end_grant`,
  the path every revocation takes (reference counting, status, Event, audit line, request).
- Identity Center not answering, the grant is tried again every second; refusing (AccessDenied:
  the operator's IAM policy), every 5 s, for as long as it lasts. Either is logged once a minute
  per grant, and once overdue one `ExpiryOverdue` Warning Event on the grant says so and why
  (`removals`). The gauge `jitaccess_grant_overdue_seconds` shows it too.
- The API server refusing the grant's end as invalid (an admission policy, a schema bound), once its
  membership is removed: tried again every minute, logged once a minute, and one `WriteRefused`
  Warning Event on the grant (`removals.not_written`), not a traceback every 5 s for good.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import kopf

from jitaccess.adapters.kube import INVALID_RETRY_SECONDS, Refused
from jitaccess.api import names, wire
from jitaccess.api.models import AccessGrant
from jitaccess.domain import grants as grant_rules
from jitaccess.errors import AddInFlight, NotLeading, PermanentFailure, RetryLater
from jitaccess.handlers import removals
from jitaccess.handlers.grants import end_grant
from jitaccess.handlers.indexes import expiring
from jitaccess.handlers.recording import DEFERRED, Deferred
from jitaccess.handlers.removals import RETRY_SECONDS, Overdue
from jitaccess.handlers.runtime import Runtime, runtime_of
from jitaccess.handlers.scheduler import utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")
_WIRING = "expiry"


@dataclass
class _Wiring:
    """What the scheduler's callbacks share; kept in the memo, whose copies (one per watched
    object) all hold this same instance."""

    pool: ThreadPoolExecutor
    # Opened with the context kopf's watch runs handlers in (`kopf.event()` finds its queue there);
    # until then, it keeps the Events of the grants ended.
    events: Deferred = field(default_factory=Deferred)
    overdue: Overdue = field(default_factory=Overdue)
    refused: Overdue = field(default_factory=Overdue)


@kopf.on.event(names.GROUP, names.VERSION, names.GRANTS)
async def schedule_expiry(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    rt, name, wiring = runtime_of(memo), body.metadata.name, memo.get(_WIRING)
    if isinstance(wiring, _Wiring) and wiring.events.context is None:
        wiring.events.open(contextvars.copy_context())
    when = None if type == "DELETED" else expiring(body)
    if when is None:
        rt.expiries.unschedule(name)
    else:
        rt.expiries.schedule(name, when)


@kopf.on.startup()
async def start_expiry(memo: kopf.Memo, **_: Any) -> None:
    rt = memo.get("runtime")
    if not isinstance(rt, Runtime):
        raise kopf.TemporaryError("the Runtime is not set up yet (startup.configure)", delay=0.1)
    wiring = _Wiring(ThreadPoolExecutor(rt.expiries.concurrency, thread_name_prefix="jitaccess-expiry"))
    memo[_WIRING] = wiring
    rt.expiries.start(functools.partial(expire, rt, wiring))
    log.info("expiry scheduler started with %d Active grant(s) scheduled", len(rt.expiries))


@kopf.on.cleanup()
async def stop_expiry(memo: kopf.Memo, **_: Any) -> None:
    """Let the grants being ended finish (their requests follow) before the operator exits."""
    rt = memo.get("runtime")
    if isinstance(rt, Runtime):
        await rt.expiries.stop()
    wiring = memo.get(_WIRING)
    if isinstance(wiring, _Wiring):
        wiring.pool.shutdown(wait=False)
        if unposted := len(wiring.events):
            log.warning(
                "%d Event(s) of grants ended before the watch began were not posted (the audit log has them)", unposted
            )


async def expire(rt: Runtime, wiring: _Wiring, name: str) -> dt.datetime | None:
    """End grant `name` if its time has come; else, or when Identity Center does not answer or
    refuses, when to try again."""
    try:
        return await _in_thread(wiring, expire_now, rt, name, wiring.overdue, wiring.refused)
    except Refused:  # logged by `removals.not_written`; only somebody's fix ends it
        return utcnow() + dt.timedelta(seconds=INVALID_RETRY_SECONDS)
    except NotLeading as exc:  # the controller is stopping: the next leader ends it
        log.warning("expiring %s: %s; retrying", name, exc)
    except AddInFlight as exc:  # not ended yet (attack 129): due again once the wait is over
        log.info("expiring %s: %s", name, exc)
        return utcnow() + dt.timedelta(seconds=exc.delay)
    except (RetryLater, PermanentFailure) as exc:  # logged by `removals.not_removed`
        return utcnow() + dt.timedelta(seconds=removals.retry_seconds(exc))
    return utcnow() + dt.timedelta(seconds=RETRY_SECONDS)


def expire_now(
    rt: Runtime, name: str, reported: Overdue | None = None, refused: Overdue | None = None
) -> dt.datetime | None:
    """Re-read the grant; end it as Expired once its persisted expiration time has passed.

    Returns the grant's expiration time when that is still to come (never early; also when an
    extension moved it while this ended the grant), else None (ended now, or gone, or no longer Active). Raises `RetryLater` when Identity Center does not
    answer, `PermanentFailure` when it refuses, once it has logged it (and, overdue, reported it in
    `reported`'s Event); `Refused` when the API server refuses to store the end, the membership
    removed, once it has logged it (and reported it in `refused`'s Event); `AddInFlight`, unlogged,
    when the grant may not be ended yet (`grants.end_grant`: never for a grant that is Active).
    """
    obj = rt.kube.get(names.GRANTS, name)
    if obj is None:
        return None
    grant = AccessGrant.model_validate(obj)
    if not grant_rules.is_active(grant) or grant.status.expiration_time is None:
        return None
    # The exact time, not `now()` (whole seconds): truncation would make expiry up to a second late.
    if grant_rules.seconds_left(grant, utcnow()) > 0:
        return grant.status.expiration_time
    try:
        extended = end_grant(
            rt, name, names.EXPIRED, rt.holders, current=obj, due=grant.status.expiration_time, uid=wire.uid_of(obj)
        )
    except (NotLeading, AddInFlight):
        raise
    except Refused as exc:
        removals.not_written(obj, exc, doing="expiring", reported=refused or Overdue(), tracked=rt.expirations.key_of)
        raise
    except (RetryLater, PermanentFailure) as exc:
        removals.not_removed(
            obj,
            grant.status.expiration_time,
            exc,
            utcnow(),
            doing="expiring",
            reported=reported,
            active=lambda n: rt.expirations.key_of(n) is not None,
        )
        raise
    if reported is not None:
        reported.forget(name)
    if refused is not None:
        refused.forget(name)
    # An extension applied while it was being ended: it keeps its access until its new time.
    return extended


async def _in_thread(wiring: _Wiring, fn: Callable[..., T], /, *args: Any) -> T:
    """Run in the scheduler's own threads (handlers queued in the Runtime's pool do not hold
    expiries back), in a copy of the watch's context, or before it has begun, with Events deferred
    (see `_Wiring`)."""
    watch = wiring.events.context
    context = watch.copy() if watch is not None else contextvars.copy_context()
    context.run(DEFERRED.set, wiring.events)
    call = functools.partial(context.run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(wiring.pool, call)

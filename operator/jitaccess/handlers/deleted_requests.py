"""An AccessRequest gone while the access it led to runs: the grant ends with it.

Admission refuses to delete such a request (it is the audit record of that access), so this
happens only when the webhook was bypassed, by a cluster administrator say. Access with no request
to account for it is not left behind until it expires: its grant is revoked, and says why. If
Identity Center refuses the removal, or does not answer it within a few tries (7 s:
`REVOKE_BACKOFF`), or the API server fails a call of it (a 429, a 5xx, a timeout, a write refused),
the grant is annotated revoked by the operator, as a person would revoke it: the grant's own handler
then retries until the member is out, and the overdue gauges count the grant from that moment. An
annotation the API server fails too, and a check of an Active grant's request it does not answer,
are tried again in the background (`later`, with a bounded backoff): an observer's failure is only
logged (`observers`), and a wait here would hold the grant's other events back. A replica whose
lead ran out (`NotLeading`) writes the grant down as revoked at once: it may be leading again a
moment later with the same controller, which lists nothing again.

Requests carry no finalizer (one would cost every request two more writes), so a deletion is
seen in two ways:

- the request's DELETED watch event, while the operator runs;
- every event of an Active grant, the listing at each start of the controller included (a fresh
  kopf operator each time this replica takes the Lease: `parts`): its request must still be
  stored, with the uid the grant was made for (not deleted and re-created under the same name).
  This catches a request deleted while the operator was down, or while this replica did not
  lead. `Runtime.requests` (kept by `indexes` on every replica) answers without I/O in the common
  case; the API server confirms before anything is revoked. (A grant not yet active is checked
  against its request before provisioning: `handlers.backing`.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from jitaccess.adapters.kube import BY_NAME, Only
from jitaccess.api import names, wire
from jitaccess.domain import backing
from jitaccess.domain import requests as request_rules
from jitaccess.errors import AddInFlight, NotLeading, PermanentFailure, RetryLater
from jitaccess.handlers.grants import end_grant, operator_username
from jitaccess.handlers.runtime import Runtime, runtime_of

log = logging.getLogger(__name__)
WHY = "its AccessRequest was deleted"


async def end_grant_of_deleted_request(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if type != "DELETED" and not wire.deleting(body):
        return
    rt, grant = runtime_of(memo), request_rules.access_not_ended(body)
    if grant is None:
        return
    if wire.ready_reason(body) == names.SCHEDULED:
        # Withdrawn before its start, as users may: routine, and its grant is normally not made yet.
        log.info(
            "AccessRequest %s was withdrawn before its start: ending AccessGrant %s if made", body.metadata.name, grant
        )
    else:
        log.warning(
            "AccessRequest %s was deleted while its access runs: revoking AccessGrant %s", body.metadata.name, grant
        )
    # The grant made for this request, whatever its uid (the request's is what it was made for);
    # another request's grant cannot hold the name while this request's does (attack 130).
    await _revoke(rt, grant, BY_NAME, made_for=wire.uid_of(body))


def _active_grant(type: str | None, body: kopf.Body) -> bool:
    return type != "DELETED" and wire.ready_reason(body) == names.ACTIVE


async def end_orphaned_grant(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if not _active_grant(type, body) or wire.truthy(wire.annotations_of(body).get(names.ANNOTATION_REVOKED)):
        # A revoked grant's own handler ends it, and retries a refusal: another removal from here
        # at each of its retries' status writes would double the refused calls and the errors.
        return
    rt, request = runtime_of(memo), str(wire.spec(body).get("request") or "")
    made_for = str((wire.metadata(body).get("labels") or {}).get(names.LABEL_REQUEST) or "")
    known = rt.requests.known(request)
    if known is not None and not backing.orphaned(made_for, known):
        return
    await _end_if_orphaned(rt, wire.name_of(body), wire.uid_of(body), request, made_for)


async def _end_if_orphaned(
    rt: Runtime, grant: str, uid: str, request: str, made_for: str, *, again: bool = False
) -> None:
    """Revoke grant `grant` (the object `uid`) if its request is gone. The API server not answering
    says nothing of the request: the check is tried again in the background, never taken for its
    deletion (that would revoke access that is backed). `again`: a background try, which raises
    instead, for `later` to try once more."""
    try:
        orphaned = await rt.run_blocking(_orphaned, rt, request, made_for)
    except Exception as exc:  # the API server: a 429, a 5xx, a timeout
        if again:
            raise
        log.warning(
            "AccessGrant %s: whether its AccessRequest %s is still stored cannot be read (%s); asking again",
            grant,
            request,
            exc,
        )
        later(
            (grant, "looking up its AccessRequest"),
            lambda: _end_if_orphaned(rt, grant, uid, request, made_for, again=True),
        )
        return
    if orphaned:
        log.warning(
            "AccessRequest %s of active AccessGrant %s is gone (deleted, or re-created): revoking the grant",
            request,
            grant,
        )
        await _revoke(rt, grant, uid)


def _orphaned(rt: Runtime, request: str, made_for: str) -> bool:
    rt.requests.list_once(rt.kube)
    known = rt.requests.known(request)
    if known is not None and not backing.orphaned(made_for, known):
        return False
    return backing.orphaned(made_for, rt.requests.stored_uid(request, rt.kube))


#: Seconds before each try, in the background, at what the API server failed on an event (a grant
#: written down as revoked, a request looked up): about 25 minutes in all. Past them, the grant's
#: next event tries again, and its expiry ends it whatever happens here.
BACKOFF: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0, 300.0)
#: The background tries under way, by the grant's name and what they are for: an event of a grant
#: already being tried for starts no second one. Read and changed on the event loop only.
_tries: dict[tuple[str, str], asyncio.Task[None]] = {}


def later(key: tuple[str, str], attempt: Callable[[], Awaitable[None]]) -> None:
    """Run `attempt` in the background after each delay of `BACKOFF` in turn, until it raises no
    more; `key`: the grant's name and what is tried (one at a time for each)."""
    running = _tries.get(key)
    if running is not None and not running.done():
        log.info("AccessGrant %s: %s, tried again in the background already", *key)
        return
    task = asyncio.get_running_loop().create_task(_keep_trying(key, attempt), name=f"jitaccess {key[1]}: {key[0]}")
    _tries[key] = task
    task.add_done_callback(lambda done: _tries.pop(key, None) if _tries.get(key) is done else None)


async def _keep_trying(key: tuple[str, str], attempt: Callable[[], Awaitable[None]]) -> None:
    for number, delay in enumerate(BACKOFF, 1):
        await asyncio.sleep(delay)
        try:
            await attempt()
        except Exception as exc:  # the API server still failing: the next delay, if any
            log.warning("AccessGrant %s: %s, try %d of %d, failed (%s)", *key, number, len(BACKOFF), exc)
        else:
            log.info("AccessGrant %s: %s, done at try %d", *key, number)
            return
    log.error(
        "AccessGrant %s: %s, given up after %d tries; the grant's next event tries again, its expiry ends it",
        *key,
        len(BACKOFF),
    )


async def _revoke(rt: Runtime, grant: str, uid: Only, *, made_for: str = "") -> None:
    """End grant `grant` (the object `uid`) Revoked, or write it down as revoked for its own handler
    to end. `made_for`, with `BY_NAME`: the uid of the request it was made for, which a grant
    written down in the background must still carry (its label), as the one stored now does."""
    if not await _end(rt, grant, uid):
        return
    try:
        await rt.run_blocking(mark_revoked, rt, grant, WHY, uid)
    except Exception as exc:  # the API server, or who the operator is: it may pass
        log.warning("marking AccessGrant %s revoked failed (%s); trying again in the background", grant, exc)
        later((grant, "marking it revoked"), lambda: rt.run_blocking(_mark_revoked_later, rt, grant, uid, made_for))


#: Seconds before each new try of a removal Identity Center did not answer (throttled, a 5xx, a
#: timeout): four tries in 7 s, then the grant is written down as revoked, for its own handler,
#: which kopf retries. Nothing retries the event that asked for the end (`observers`), and an
#: observer held longer would hold the object's next events back.
REVOKE_BACKOFF: tuple[float, ...] = (1.0, 2.0, 4.0)


async def _end(rt: Runtime, grant: str, uid: Only) -> bool:
    """End grant `grant` (the object `uid`) Revoked now. True when it is to be written down as
    revoked instead, for its own handler to end; False when ended, or not this replica's to end."""
    tries = len(REVOKE_BACKOFF) + 1
    for number in range(1, tries + 1):
        try:
            await rt.run_granting(end_grant, rt, grant, names.REVOKED, rt.holders, why=WHY, uid=uid)
            return False
        except NotLeading as exc:
            # This replica's Lease ran out: it may not touch Identity Center. That may last a moment
            # only (a renewal that succeeds just after the deadline keeps this very controller, and
            # no new one lists the grants again), and this event is not delivered again: written
            # down as revoked (a write to the cluster, which is not the leader's alone, and true:
            # the request is gone), the grant is ended by its own handler on whichever controller
            # leads next, this one included.
            log.warning("revoking AccessGrant %s: %s; marked revoked, ended by the leader's handler", grant, exc)
            return True
        except AddInFlight as exc:
            # Not before an earlier leader's add has landed (attack 129): the grant's own handler
            # tries again once that wait is over, and no try here, seconds apart, would be let through.
            log.info("revoking AccessGrant %s: %s; marked revoked, ended by its handler", grant, exc)
            return True
        except RetryLater as exc:
            if number == tries:
                log.warning(
                    "revoking AccessGrant %s: Identity Center not answering after %d tries (%s); "
                    "marked revoked, retried by its handler",
                    grant,
                    tries,
                    exc,
                )
                return True
            delay = REVOKE_BACKOFF[number - 1]
            log.warning(
                "revoking AccessGrant %s: Identity Center not answering (%s); try %d of %d, next in %gs",
                grant,
                exc,
                number,
                tries,
                delay,
            )
            await asyncio.sleep(delay)
        except PermanentFailure as exc:
            # Refused (IAM, say): no loop here can say how long that lasts, and an event handler
            # that gave up would leave the access with nothing to end it. The grant is revoked by
            # annotation instead, as a person would: its own handler retries until Identity Center
            # takes the member out, and the overdue gauge counts it from now (`indexes.asked_to_end`).
            log.error(
                "revoking AccessGrant %s: Identity Center refused (%s); marked revoked, retried by its handler",
                grant,
                exc,
            )
            return True
        except Exception as exc:  # the API server (a read, the end's write), or Identity Center's NotFound
            # Nothing retries an observer (`observers`): left to escape, the access would run until
            # it expires. Written down as revoked instead, for the grant's handler, which kopf retries.
            log.warning("revoking AccessGrant %s failed (%s); marked revoked, retried by its handler", grant, exc)
            return True
    return True


def _mark_revoked_later(rt: Runtime, grant: str, uid: Only, made_for: str) -> None:
    """`mark_revoked`, minutes after the decision: a grant stored under the name by then is another
    request's, unless it still carries the label of the request it was decided for."""
    if uid is BY_NAME and made_for:
        current = rt.kube.get(names.GRANTS, grant)
        if current is None:
            return
        label = str((wire.metadata(current).get("labels") or {}).get(names.LABEL_REQUEST) or "")
        if label and label != made_for:
            return  # made for another request since: not the grant decided on
        uid = wire.uid_of(current) or BY_NAME
    mark_revoked(rt, grant, WHY, uid)


def _settled(obj: dict[str, Any]) -> bool:
    """Revoked already (its own handler owns the removal and its retries), or finished."""
    notes = wire.annotations_of(obj)
    return wire.truthy(notes.get(names.ANNOTATION_REVOKED)) or wire.ready_reason(obj) in names.GRANT_FINISHED


def mark_revoked(rt: Runtime, grant: str, why: str, uid: Only) -> None:
    """Annotate live grant `grant` (the object `uid`; `BY_NAME`: whatever is stored under the name)
    revoked by the operator, for `why`, unless it is revoked already or finished. Raises when that
    cannot be done yet (the caller tries again)."""
    current = rt.kube.get(names.GRANTS, grant)
    if current is None or _settled(current):
        return
    if uid is not BY_NAME and wire.uid_of(current) != uid:
        return  # another grant stored under the name since: not the one decided on
    # `revoked-by` may only ever be the caller's own, and a revocation without it would be recorded
    # as the grantee's own.
    who = operator_username(rt)

    def change(obj: dict[str, Any]) -> dict[str, str] | None:
        if _settled(obj):
            return None
        return {names.ANNOTATION_REVOKED: "true", names.ANNOTATION_REVOKE_REASON: why, names.ANNOTATION_REVOKED_BY: who}

    rt.kube.annotate(names.GRANTS, grant, str(current["metadata"].get("uid") or ""), change)

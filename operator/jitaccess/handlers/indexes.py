"""In-memory indexes of the cluster's jitaccess objects, kept current by kopf's watches.

TeamOwnerships and Entitlements (few, written by GitOps) are kopf indexes: kopf fills them from
the initial listing before any handler runs. Grants and requests grow with use, so what the
handlers need of them is kept in the Runtime's `ObjectIndex`es by `@kopf.on.event` handlers
instead (see `ObjectIndex` for why), and only the few fields each use needs, never whole bodies:

- `holders`: which live grants hold each (user, group) membership, filled from a listing at
  start-up as well, so a restarted operator knows every live grant before it expires any, and by
  the controller before it adds anything for a grant (`grants._file_as_holder`): this watch runs
  in the admission part's event loop and may show a grant only after its member was added;
- `active`: Active grants and whose they are (the gauges, the eligibility re-check);
- `expirations`: Active grants' persisted expiration times, or the moment a revocation or deletion
  asked them to end if earlier (the overdue gauges, on every replica);
- `pending`: requests awaiting a decision, with what their deadlines depend on and whose they are;
- `waiting`: the same by requester, from their creation on (the approval-fatigue limits at admission);
  both filled from a listing at start-up as well (`startup.know_what_is_stored`): the webhooks
  answer before the requests' watch has listed them;
- `finished`: finished grants, and requests that ended without a grant, with when they ended.
- `requests`: every stored request's uid (is an active grant's request still there?).
- `grant_names`: every stored grant's name (may a new request take it?).
- `break_glass`: break-glass requests awaiting their review, with its deadline (the leader's
  review timers, `breakglass`, and the gauge of overdue reviews on every replica).
- `readiness`: Entitlements and PermissionCatalogs by their `Ready` status and reason (the gauges
  of what is not Ready, on every replica: a group deleted in AWS, a permission set refused).
- `overlapping`: Entitlements that grant the same access as another, by their `Overlapping`
  reason (the gauge, on every replica; `handlers.overlaps` writes the condition).

A watch event is the only word of a deletion these indexes get, and a watch that lists again after
a long cut gives none for what was deleted in the gap: the names stay filed until a periodic listing
of each kind, on every replica, drops them (`reconcile`, every `RECONCILE_SECONDS`). So an index may
name a grant that is gone: the decisions that keep a membership read the grants it names first
(`holders`), as those that remove one ask the API server when it names none.

The handlers are `async` (they do no I/O): kopf runs them inline on every watch event, where a
plain function would cost a trip through the thread pool each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Container, Mapping
from typing import Any, NamedTuple

import kopf
from pydantic import ValidationError

from jitaccess.api import names, wire
from jitaccess.api.models import AccessGrantStatus, AccessRequestStatus
from jitaccess.domain import breakglass as break_glass_rules
from jitaccess.domain import grants as grant_rules
from jitaccess.domain import requests as request_rules
from jitaccess.domain import text
from jitaccess.domain.eligibility import Holder
from jitaccess.domain.grants import membership_key
from jitaccess.handlers import filings
from jitaccess.handlers.runtime import Runtime, runtime_of

log = logging.getLogger(__name__)


class Pending(NamedTuple):
    """A request awaiting a decision: enough to tell when it escalates or times out."""

    name: str
    created: dt.datetime | None
    escalated: bool
    # Whose request it is (user name and the UserId admission stamped): the eligibility re-check's.
    requester: str = ""
    user_id: str | None = None
    uid: str = ""  # the request's: a write on its account lands on it alone
    #: The team its escalation was recorded for (`status.escalationTeam`, else `ownerTeam`); "" for none
    #: named: an Entitlement handed to another team since escalates again (`request_rules.escalated_for`).
    escalation_team: str = ""


class Ended(NamedTuple):
    """A finished object (`plural`/`name`; a grant's `request` goes with it) and when it ended.

    Names are used again (a request withdrawn and asked again, a grant's name free once it is
    deleted): the uids say which objects retention may delete, the grant's and the request it was
    made for (its `jitaccess.dev/request` label; empty for a grant made before the label)."""

    plural: str
    name: str
    request: str
    ended: dt.datetime
    uid: str = ""
    request_uid: str = ""


class Awaiting(NamedTuple):
    """A break-glass request not reviewed yet: when its review is due, and whether it was warned of."""

    name: str
    deadline: dt.datetime
    overdue: bool
    uid: str = ""  # the request's: its warning lands on it alone


@kopf.index(names.GROUP, names.VERSION, names.TEAMS)
async def teams(name: str, spec: kopf.Spec, **_: Any) -> dict[str, dict[str, Any]]:
    return {name: dict(spec)}


#: What of an Entitlement's status the index keeps. Not its lists (eligible users: up to 1,000;
#: drift removals; notices delivered): every request is checked against its Entitlement as parsed
#: from this index, four times on its way to a grant, and parsing those lists took a fifth of the
#: operator's CPU per grant (py-spy, 10,100 eligible users); nothing on that way reads them.
_ENTITLEMENT_STATUS_KEPT = ("groupId", "conditions")


@kopf.index(names.GROUP, names.VERSION, names.ENTITLEMENTS)
async def entitlements(name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
    if wire.deleting(body):
        # Deleted, and kept only until its grants end (`domain.releases`): nothing new is asked of
        # it, decided on it or granted by it, as if it were gone.
        return {}
    status = dict(body.status)
    return {
        name: {
            # The generation: whether `status.groupId` is the current spec's (`domain.overlaps`).
            # The uid: a write on what the index shows lands on that Entitlement alone (`overlaps.write`).
            "metadata": {"name": name, "generation": body.metadata.get("generation", 0), "uid": body.metadata.uid},
            "spec": dict(body.spec),
            "status": {k: status[k] for k in _ENTITLEMENT_STATUS_KEPT if k in status},
        }
    }


def holding(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """The membership a grant holds (or is about to hold), or None once it is finished."""
    keys = holdings(obj)
    return keys[0] if keys else None


def holdings(obj: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Every key a live grant is filed under in `Runtime.holders`: its membership as its spec names
    the group (`groupName`, which is the Entitlement's groupId or groupName) until it is Active, and
    once Active in group mode as the group it was added to, by id (`status.groupId`) only. One group
    has two spellings: an Entitlement given a groupId where it had the name (a GitOps edit), or two
    Entitlements that spell it differently; a lookup by the id finds the Active grants of every
    spelling. One name may also stand for two groups, one after the other: a group deleted and
    created again under its name (a Terraform replace) is another group, which a grant Active in the
    old one holds nothing in, so it is not filed under the name any more, where it would count as
    holding the new group's membership of another grant of its user and keep it past that grant's
    end (and the drift scan would find it backed). Empty once finished."""
    if wire.ready_reason(obj) in names.GRANT_FINISHED:
        return ()
    spec, status = wire.spec(obj), wire.status(obj)
    user = grant_rules.grantee_id(spec.get("userId"), status.get("userId"), str(spec.get("user", "")))
    spelled = membership_key(user, str(spec.get("groupName", "")))
    group_id = status.get("groupId")
    if spec.get("accountAssignment") is None and isinstance(group_id, str) and group_id:
        return (membership_key(user, group_id),)
    return (spelled,)


def expiring(obj: Mapping[str, Any]) -> dt.datetime | None:
    """When an Active grant expires (its persisted `status.expirationTime`); None for any other grant."""
    if wire.ready_reason(obj) != names.ACTIVE:
        return None
    stamp = wire.status(obj).get("expirationTime")
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return dt.datetime.fromisoformat(stamp)
    except ValueError:
        log.warning("AccessGrant %s has an unreadable status.expirationTime %r", wire.name_of(obj), stamp)
        return None


def asked_to_end(obj: Mapping[str, Any], seen: dict[str, dt.datetime]) -> dt.datetime | None:
    """When an Active grant was asked to end before its time, or None: its deletion (the API
    server's stamp), or its revocation (the annotation has no time: when `seen`, this replica's
    memory, first met it). From then it counts toward the overdue gauges as an expired one does:
    a revocation Identity Center keeps refusing (an IAM policy edited) pages like a late expiry,
    not hours later at the grant's own end."""
    name = wire.name_of(obj)
    stamp = (obj.get("metadata") or {}).get("deletionTimestamp")
    if isinstance(stamp, str) and stamp:
        with contextlib.suppress(ValueError):
            return dt.datetime.fromisoformat(stamp)
    if wire.truthy(wire.annotations_of(obj).get(names.ANNOTATION_REVOKED)):
        return seen.setdefault(name, dt.datetime.now(dt.UTC))
    seen.pop(name, None)
    return None


def pending(obj: Mapping[str, Any]) -> Pending | None:
    """A request awaiting a decision (Pending, and neither Approved nor Denied yet), or None."""
    decided = wire.is_true(obj, names.APPROVED) or wire.is_true(obj, names.DENIED)
    if wire.ready_reason(obj) != names.PENDING or decided:
        return None
    escalated = wire.is_true(obj, names.ESCALATED)
    spec = wire.spec(obj)
    requester, user_id = str(spec.get("requester") or ""), spec.get("requesterUserId")
    user = str(user_id) if user_id else None
    status = wire.status(obj)
    team = str(status.get("escalationTeam") or status.get("ownerTeam") or "") if escalated else ""
    return Pending(wire.name_of(obj), wire.created_at(obj), escalated, requester, user, wire.uid_of(obj), team)


def waiting(obj: Mapping[str, Any]) -> tuple[str, request_rules.Waiting] | None:
    """A stored request that waits for a decision, under its requester: neither decided nor finished
    (the operator may not have seen it yet); None for any other, for break-glass (it waits for
    nobody), and for one withdrawn (being deleted: it prompts nobody any more, whatever keeps it)."""
    decided = wire.is_true(obj, names.APPROVED) or wire.is_true(obj, names.DENIED)
    if decided or wire.ready_reason(obj) not in (None, names.PENDING):
        return None
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return None
    spec = wire.spec(obj)
    requester = str(spec.get("requester") or "")
    if not requester or spec.get("breakGlass"):
        return None
    entitlement, scheduled = str(spec.get("entitlement") or ""), bool(spec.get("startTime"))
    return requester, request_rules.Waiting(wire.name_of(obj), entitlement, scheduled, wire.created_at(obj))


def awaiting_review(obj: Mapping[str, Any]) -> tuple[str, Awaiting] | None:
    """(entitlement, entry) of an approved break-glass request that awaits its review; else None."""
    if not break_glass_rules.is_break_glass(obj) or wire.is_true(obj, names.REVIEWED):
        return None
    stamp = wire.status(obj).get("reviewDeadline")
    if not isinstance(stamp, str) or not stamp:
        return None
    found = wire.condition(obj, names.REVIEWED)
    overdue = found is not None and found.get("reason") == names.REVIEW_OVERDUE
    deadline = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return str(wire.spec(obj).get("entitlement", "")), Awaiting(wire.name_of(obj), deadline, overdue, wire.uid_of(obj))


def ended(plural: str, obj: Mapping[str, Any]) -> Ended | None:
    """A finished grant, or a request that ended without a grant, and when it ended; else None."""
    if wire.ready_reason(obj) not in names.REQUEST_FINISHED:
        return None  # the common case, decided without parsing anything
    name, meta = wire.name_of(obj), wire.metadata(obj)
    request_uid = ""
    try:
        if plural == names.GRANTS:
            when = grant_rules.ended_at(AccessGrantStatus.model_validate(obj.get("status") or {}))
            request = str((obj.get("spec") or {}).get("request", ""))
            request_uid = str((meta.get("labels") or {}).get(names.LABEL_REQUEST) or "")
        else:
            when = request_rules.ended_at(AccessRequestStatus.model_validate(obj.get("status") or {}))
            request = ""
    except ValidationError:
        log.warning("%s %s has a status that cannot be read; it is left for a person to remove", plural, name)
        return None
    if when is None:
        return None
    return Ended(plural, name, request, when, str(meta.get("uid") or ""), request_uid)


def _entitlement(obj: Mapping[str, Any]) -> str:
    return str(wire.spec(obj).get("entitlement", ""))


def grantee(obj: Mapping[str, Any]) -> Holder:
    """An Active grant and whose it is (the UserId it holds the membership for)."""
    spec, status = wire.spec(obj), wire.status(obj)
    user_id = spec.get("userId") or status.get("userId")
    group_id = status.get("groupId") if spec.get("accountAssignment") is None else None
    return Holder(
        wire.name_of(obj),
        str(spec.get("user", "")),
        str(user_id) if user_id else None,
        str(group_id) if isinstance(group_id, str) and group_id else None,
        str(spec.get("groupName") or ""),
        uid=wire.uid_of(obj),
    )


@kopf.on.event(names.GROUP, names.VERSION, names.GRANTS)
async def observe_grant(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    rt, name = runtime_of(memo), body.metadata.name
    gone = type == "DELETED"
    rt.grant_names.observe(name, not gone)
    held = () if gone else holdings(body)
    if held:
        rt.seen_live(name, str(body.metadata.uid or ""))
    rt.holders.file(name, held, name)
    active = not gone and wire.ready_reason(body) == names.ACTIVE
    rt.active.observe(name, (_entitlement(body), grantee(body)) if active else None)
    expires = None if gone else expiring(body)
    if expires is not None:
        asked = asked_to_end(body, rt.revocations_seen)
        expires = expires if asked is None else min(expires, asked)
    else:
        rt.revocations_seen.pop(name, None)
    rt.expirations.observe(name, None if expires is None else (_entitlement(body), expires))
    done = None if gone else ended(names.GRANTS, body)
    rt.finished.observe(f"{names.GRANTS}/{name}", None if done is None else (_entitlement(body), done))


@kopf.on.event(names.GROUP, names.VERSION, names.REQUESTS)
async def observe_request(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    rt, name = runtime_of(memo), body.metadata.name
    # Being deleted (held until its audit records are archived) is gone already: it waits for no
    # decision, retention has nothing to do with it, and no grant rests on it (`deleted_requests`).
    gone = type == "DELETED" or wire.deleting(body)
    file_undecided(rt, name, None if gone else body)
    done = None if gone else ended(names.REQUESTS, body)
    rt.finished.observe(f"{names.REQUESTS}/{name}", None if done is None else (_entitlement(body), done))
    rt.requests.observe(name, None if gone else str(body.metadata.uid or ""))
    rt.break_glass.observe(name, None if gone else awaiting_review(body))


def file_undecided(rt: Runtime, name: str, obj: Mapping[str, Any] | None) -> None:
    """File request `name` in `pending` and `waiting` as `obj` shows it (None: gone, or being
    deleted): from its watch events, and from the listing at start-up (`startup.configure`)."""
    if obj is None:
        rt.pending.observe(name, None)
        rt.waiting.observe(name, None)
        return
    undecided = pending(obj)
    rt.pending.observe(name, None if undecided is None else (_entitlement(obj), undecided))
    rt.waiting.observe(name, waiting(obj))


# --- what a watch that listed again did not say ----------------------------------------------------
# kopf's watch lists again when it cannot go on from where it was (410 Gone, after a cut longer than
# the API server's watch history), and shows only the objects that exist then: one deleted in the gap
# gets no DELETED event and stays filed here. A ghost grant kept a membership it no longer backs (the
# end of another grant of its user found it holding the same; the drift scan found the member
# backed), and ghost requests waited for ever (the oldest-pending gauge, "already waits" at admission).
# The decisions that keep access ask the API server first (`holders`); the indexes themselves are set
# right by a listing of each kind every `RECONCILE_SECONDS`, on every replica (each keeps its own).

#: How often each replica lists every grant and every request to drop what its watches missed: one
#: paged listing of each kind per period, however many events, of the objects' metadata alone
#: (`Kube.each_metadata`), and only the names are kept.
RECONCILE_SECONDS = 300.0
#: The first pass comes sooner: a request withdrawn (or a grant deleted) between start-up's own
#: listing (`startup.know_what_is_stored`) and the watch's first one is filed by the one, and never
#: shown deleted by the other; it would be refused as "already waits" until the first pass.
FIRST_RECONCILE_SECONDS = 60.0
_RECONCILING = "index_reconciling"


def drop_gone_grants(rt: Runtime, listed: Container[str], since: int) -> list[str]:
    """Unfile from every index the grants filed before `since` (`filings.stamp`, taken before the
    listing began) that the listing (`listed`: every grant's name) lacks; the names dropped."""
    gone: set[str] = set()
    for index in (rt.holders, rt.active, rt.expirations):
        gone.update(index.drop_unlisted(listed, since))
    gone.update(rt.finished.drop_unlisted(listed, since, prefix=f"{names.GRANTS}/"))
    gone.update(rt.grant_names.drop_unlisted(listed, since))
    # `revocations_seen` is kept for Active grants only (`asked_to_end`), and the watch handlers
    # change it from the controller's thread meanwhile: only the ghosts' entries are taken out, one
    # by one, never by walking the dict another thread may be changing.
    for name in gone:
        rt.revocations_seen.pop(name, None)
    return sorted(gone)


def drop_gone_requests(rt: Runtime, listed: Container[str], since: int) -> list[str]:
    """`drop_gone_grants` for requests."""
    gone: set[str] = set()
    for index in (rt.pending, rt.break_glass):
        gone.update(index.drop_unlisted(listed, since))
    gone.update(rt.finished.drop_unlisted(listed, since, prefix=f"{names.REQUESTS}/"))
    gone.update(rt.waiting.drop_unlisted(listed, since))
    gone.update(rt.requests.drop_unlisted(listed, since))
    return sorted(gone)


async def reconcile(rt: Runtime) -> None:
    """List every grant, then every request (a thread each, paged), and drop from the indexes what
    the listing shows was deleted unseen. In the admission part's loop, between its watch events."""
    for plural, drop in ((names.GRANTS, drop_gone_grants), (names.REQUESTS, drop_gone_requests)):
        since = filings.stamp()
        listed = await asyncio.to_thread(_stored_names, rt, plural)
        gone = drop(rt, listed, since)
        if gone:
            log.info(
                "%s deleted while this replica's watch was cut (it listed again, and said nothing of them): "
                "dropped from its indexes: %s",
                plural,
                text.listed(gone),
            )


def _stored_names(rt: Runtime, plural: str) -> set[str]:
    # Names alone: the listing asks for the objects' metadata, not their spec and status.
    return {wire.name_of(obj) for obj in rt.kube.each_metadata(plural)}


async def _keep_reconciling(memo: kopf.Memo) -> None:
    pause = FIRST_RECONCILE_SECONDS
    while True:
        await asyncio.sleep(pause)
        pause = RECONCILE_SECONDS
        try:
            await reconcile(runtime_of(memo))
        except Exception as exc:  # the API server not answering: the next pass tries again
            log.warning(
                "cannot list grants and requests to check this replica's indexes (%s): tried again in %ds",
                exc,
                RECONCILE_SECONDS,
            )


@kopf.on.startup()
async def reconcile_indexes(memo: kopf.Memo, **_: Any) -> None:
    """Set the indexes right every `RECONCILE_SECONDS`, for as long as the process runs."""
    if memo.get(_RECONCILING) is None:
        memo[_RECONCILING] = asyncio.get_running_loop().create_task(_keep_reconciling(memo), name="index reconcile")


@kopf.on.cleanup()
async def stop_reconciling_indexes(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get(_RECONCILING)
    if isinstance(task, asyncio.Task):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def readiness(obj: Mapping[str, Any]) -> tuple[str, str]:
    """`Ready`'s status, as a label value (`true`, `false`, `unknown`: also before the operator has
    written one), and its reason ("" when none)."""
    found = wire.condition(obj, names.READY)
    if found is None:
        return "unknown", ""
    status = str(found.get("status") or "").lower()
    return status if status in ("true", "false") else "unknown", str(found.get("reason") or "")


@kopf.on.event(names.GROUP, names.VERSION, names.ENTITLEMENTS)
async def observe_entitlement(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _observe_readiness(names.ENTITLEMENTS, type, body, memo)
    found = None if type == "DELETED" else wire.condition(body, names.OVERLAPPING)
    name = body.metadata.name
    key = str(found.get("reason") or "") if found is not None and found.get("status") == "True" else None
    runtime_of(memo).overlapping.observe(name, None if key is None else (key, name))


@kopf.on.event(names.GROUP, names.VERSION, names.CATALOGS)
async def observe_catalog(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _observe_readiness(names.CATALOGS, type, body, memo)


def _observe_readiness(plural: str, type: str | None, body: kopf.Body, memo: kopf.Memo) -> None:
    name = body.metadata.name
    key = None if type == "DELETED" else (plural, *readiness(body))
    runtime_of(memo).readiness.observe(f"{plural}/{name}", None if key is None else (key, name))

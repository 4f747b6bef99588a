"""Deadlines that arrive with nobody touching an object: a pending request's escalation and
time-out, and the end of a finished grant's or request's retention period.

One timer per Entitlement (there are dozens) acts on the requests and grants of that entitlement,
found in the Runtime's `pending` and `finished` indexes (see `indexes`), instead of a kopf timer
per request and per finished grant: kopf keeps the whole body of every object of a kind that has
any timer or daemon in memory for as long as the object exists, and finished objects live for the
90-day retention period. Being kopf timers, they run only on the replica that holds the leader
Lease (`leadership`), with every other handler.

Objects naming an Entitlement that does not exist (any more) are looked after by the first
Entitlement by name: a request left pending when its Entitlement is deleted is declared Invalid
within a second, and requests refused for naming an unknown entitlement are retired in time.
With no Entitlement at all there is nothing to look after them; they wait for the first one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import kopf

from jitaccess.adapters.kube import BY_NAME
from jitaccess.api import audit, names
from jitaccess.api.models import TeamOwnershipSpec
from jitaccess.domain import requests as request_rules
from jitaccess.errors import InvalidInput
from jitaccess.handlers import extensions
from jitaccess.handlers.common import NO_INDEX, Index, first, now
from jitaccess.handlers.indexes import Ended, Pending
from jitaccess.handlers.requests import reconcile
from jitaccess.handlers.runtime import ObjectIndex, Runtime, runtime_of

log = logging.getLogger(__name__)
ENT = (names.GROUP, names.VERSION, names.ENTITLEMENTS)
# Escalation and time-out are promised to the second; retention (days) is checked from memory,
# which costs next to nothing, so often enough that a short retention (tests) is honoured too.
DEADLINE_SECONDS = 1.0
RETENTION_CHECK_SECONDS = 5.0


def looked_after(name: str, index: ObjectIndex, entitlements: Index) -> Iterator[tuple[str, Any]]:
    """(entitlement, entry) of the objects the timer of Entitlement `name` looks after."""
    orphans = bool(entitlements) and name == min(entitlements)
    for key in list(index):
        # The pending and finished indexes are keyed by entitlement name.
        if isinstance(key, str) and (key == name or (orphans and key not in entitlements)):
            for entry in index.get(key, ()):
                yield key, entry


@kopf.timer(*ENT, interval=DEADLINE_SECONDS)
async def pending_deadlines(
    *, name: str, memo: kopf.Memo, teams: Index = NO_INDEX, entitlements: Index = NO_INDEX, **_: Any
) -> None:
    """Escalate or time out this entitlement's pending requests whose deadline has come."""
    rt = runtime_of(memo)
    due = [e for key, e in looked_after(name, rt.pending, entitlements) if _due(rt, key, e, teams, entitlements)]
    for entry in due:
        await rt.run_blocking(_reconcile_one, rt, entry.name, teams, entitlements)


def _due(rt: Runtime, entitlement: str, entry: Pending, teams: Index, entitlements: Index) -> bool:
    raw = first(entitlements, entitlement)
    owner = (raw or {}).get("spec", {}).get("owner")
    team = first(teams, owner) if owner else None
    if raw is None or team is None or entry.created is None:
        return True  # reconcile says what is missing (and declares the request Invalid)
    try:
        escalate_after = TeamOwnershipSpec.model_validate(team).escalate_after
        escalated = entry.escalated and request_rules.escalated_for(entry.escalation_team, None, owner)
        deadline = request_rules.pending_deadline(entry.created, escalated, escalate_after, rt.settings.limits)
    except (InvalidInput, ValueError):
        return True
    return now() >= deadline


def _reconcile_one(rt: Runtime, name: str, teams: Index, entitlements: Index) -> None:
    body = rt.kube.get(names.REQUESTS, name)
    if body is None:
        return
    try:
        reconcile(rt, body, teams, entitlements, announce_ignored=False)
    except kopf.TemporaryError as exc:
        # The next tick tries again; one request's trouble must not hold up the others'.
        log.warning("request %s: %s", name, exc)


@kopf.timer(*ENT, interval=RETENTION_CHECK_SECONDS, initial_delay=RETENTION_CHECK_SECONDS)
async def retire_finished(*, name: str, memo: kopf.Memo, entitlements: Index = NO_INDEX, **_: Any) -> None:
    """Delete this entitlement's finished grants (with their requests) and requests that ended
    without a grant, once the retention period has passed since they ended (and, with an audit
    archive, once their audit records are in it)."""
    rt = runtime_of(memo)
    cutoff = now() - rt.settings.retention
    due = [entry for _, entry in looked_after(name, rt.finished, entitlements) if entry.ended <= cutoff]
    if due:
        await rt.run_blocking(_retire, rt, due)
    if extensions.left_behind(memo):
        await rt.run_blocking(extensions.sweep_left_behind, rt, memo)


def _retire(rt: Runtime, due: list[Ended]) -> None:
    began = time.monotonic()
    retired = 0
    for entry in due:
        if rt.settings.audit_bucket and not _archived(rt, entry):
            continue
        # Only the objects that ended (uid preconditions), never another that took a name since:
        # a grant's name is free once it is deleted, a request's once it is withdrawn, and a request
        # under the grant's name may be another than the one it was made for.
        rt.kube.delete(entry.plural, entry.name, uid=entry.uid)
        if entry.plural == names.GRANTS and entry.request:
            # BY_NAME for a grant without the request label only (one made by hand names its
            # request by name alone, `following.belongs_to`).
            rt.kube.delete(names.REQUESTS, entry.request, uid=entry.request_uid or BY_NAME)
        retired += 1
    log.info(
        "retired %d finished object(s) after the retention period (%.1fs)%s",
        retired,
        time.monotonic() - began,
        f"; {len(due) - retired} wait for their audit records to be archived" if retired < len(due) else "",
    )


def _archived(rt: Runtime, entry: Ended) -> bool:
    """Whether every audit record of the object (and of a grant's request and extensions) is in
    the archive, as their status lists them (`handlers.archive`): evidence leaves the cluster only
    once archived."""
    objects = [_same(rt.kube.get(entry.plural, entry.name), entry.uid)]
    if entry.plural == names.GRANTS and entry.request:
        objects.append(_same(rt.kube.get(names.REQUESTS, entry.request), entry.request_uid))
    if any(audit.unarchived(obj) for obj in objects if obj is not None):
        return False
    if entry.plural == names.GRANTS:
        # Listed only for a grant about to go, which it then takes along.
        listed = rt.kube.list(names.EXTENSIONS, fields={"spec.grant": entry.name})
        return not any(audit.unarchived(e) for e in listed)
    return True


def _same(obj: dict[str, Any] | None, uid: str) -> dict[str, Any] | None:
    """`obj` if it is the object with `uid` (any, when not known); None for another that took its
    name since: retention neither waits for its records nor deletes it."""
    if obj is None or not uid or str((obj.get("metadata") or {}).get("uid") or "") == uid:
        return obj
    return None

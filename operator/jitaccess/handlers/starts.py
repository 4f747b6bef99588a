"""Scheduled starts: at an approved request's `spec.startTime`, its grant is created (`domain.schedule`).

An approved request whose start is still to come is `Scheduled` and has no grant. Every watch
event of a request (the listing at start-up and at each new leadership included) files the
Scheduled ones in the Runtime's `starts` index, by entitlement, with their start time: the state
is the persisted request itself, so a restart loses nothing, and a start that passed while the
operator was down is due at once (kopf's resume of the request gets there first, through the same
path): for what is left of the window it was approved for, nothing once that has passed
(`domain.schedule`), so neither a long outage nor a cluster restored from a backup taken while the
request waited begins a window's full duration late.

A timer per Entitlement, as for escalations and time-outs (`schedules`, which says why not one
kopf timer per object), hands each due request to `requests.reconcile`: the one path from an
approved request to a grant, which re-derives the approval from what admission stamped, asks
Identity Center afresh whether the requester is still eligible, and only then creates the grant
(`activation.activation_refusal`). Starts are promised within a second, never early: the grant
path itself checks the start against the clock again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

import kopf

from jitaccess.api import names, wire
from jitaccess.handlers.common import NO_INDEX, Index
from jitaccess.handlers.requests import reconcile
from jitaccess.handlers.runtime import Runtime, runtime_of
from jitaccess.handlers.scheduler import utcnow
from jitaccess.handlers.schedules import looked_after

log = logging.getLogger(__name__)
ENT = (names.GROUP, names.VERSION, names.ENTITLEMENTS)
START_CHECK_SECONDS = 1.0


class Start(NamedTuple):
    """An approved request waiting for its start."""

    name: str
    start: dt.datetime


def scheduled(obj: Mapping[str, Any]) -> Start | None:
    """The request's start when it is approved and `Scheduled`; None for any other request."""
    if wire.ready_reason(obj) != names.SCHEDULED or not wire.is_true(obj, names.APPROVED) or wire.deleting(obj):
        return None
    text = wire.spec(obj).get("startTime")
    try:
        start = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        start = None
    if start is None or start.tzinfo is None:
        log.warning("AccessRequest %s is Scheduled with an unreadable spec.startTime %r", wire.name_of(obj), text)
        return None
    return Start(wire.name_of(obj), start)


async def observe_start(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    waiting = None if type == "DELETED" else scheduled(body)
    entitlement = str(wire.spec(body).get("entitlement") or "")
    runtime_of(memo).starts.observe(body.metadata.name, None if waiting is None else (entitlement, waiting))


@kopf.timer(*ENT, interval=START_CHECK_SECONDS)
async def scheduled_starts(
    *, name: str, memo: kopf.Memo, teams: Index = NO_INDEX, entitlements: Index = NO_INDEX, **_: Any
) -> None:
    """Begin the access of this entitlement's Scheduled requests whose start has come (orphans: see `schedules`)."""
    rt, now = runtime_of(memo), utcnow()
    due = [entry for _, entry in looked_after(name, rt.starts, entitlements) if entry.start <= now]
    for entry in due:
        await rt.run_blocking(_start, rt, entry.name, teams, entitlements)


def _start(rt: Runtime, name: str, teams: Index, entitlements: Index) -> None:
    body = rt.kube.get(names.REQUESTS, name)
    if body is None or scheduled(body) is None:
        rt.starts.observe(name, None)  # gone or moved on while this process did not watch (no leadership)
    if body is None:
        return
    try:
        reconcile(rt, body, teams, entitlements, announce_ignored=False)
    except kopf.TemporaryError as exc:
        # The next tick tries again; one request's trouble must not hold up the others'.
        log.warning("starting request %s: %s", name, exc)

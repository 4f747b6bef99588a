"""Requests brought back into line with their grants, after a crash between the two writes.

A grant's handler writes the grant and then its request (`grants.follow_request`). When the
operator dies in between, nothing else would write that request again (see `domain.following`).
So every watch event of either kind, the listings at start-up included, goes into the Runtime's
`laggards`, and a timer per Entitlement (like those of `schedules`) re-reads the grant of each
request that has lagged behind it for longer than a handler takes to follow, and follows it. The
repair is the handler's own idempotent read-modify-write: a request already in line is left alone.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf

from jitaccess.api import names, wire
from jitaccess.api.models import AccessGrant
from jitaccess.handlers.common import NO_INDEX, Index
from jitaccess.handlers.grants import follow_request
from jitaccess.handlers.runtime import Runtime, runtime_of

log = logging.getLogger(__name__)
ENT = (names.GROUP, names.VERSION, names.ENTITLEMENTS)
# A grant handler writes the request a moment after the grant; under a burst, a few seconds after.
GRACE_SECONDS = 5.0
CHECK_SECONDS = 2.0


async def watch_grant(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    laggards, spec = runtime_of(memo).laggards, wire.spec(body)
    request = str(spec.get("request") or "")
    if type == "DELETED":
        laggards.forget_grant(request, time.monotonic())
        return
    made_for = str((wire.metadata(body).get("labels") or {}).get(names.LABEL_REQUEST) or "")
    laggards.see_grant(
        wire.name_of(body),
        request,
        made_for,
        wire.ready_reason(body),
        str(spec.get("entitlement") or ""),
        time.monotonic(),
    )


async def watch_request(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    laggards, name = runtime_of(memo).laggards, wire.name_of(body)
    if type == "DELETED" or wire.deleting(body):
        laggards.forget_request(name, time.monotonic())
        return
    uid = str(wire.metadata(body).get("uid") or "")
    approved = wire.is_true(body, names.APPROVED)
    laggards.see_request(name, uid, wire.ready_reason(body), approved, time.monotonic())


@kopf.timer(*ENT, interval=CHECK_SECONDS)
async def repair_laggards(*, name: str, memo: kopf.Memo, entitlements: Index = NO_INDEX, **_: Any) -> None:
    """Follow the grants of this Entitlement's requests that lag behind them (orphans: see `schedules`)."""
    rt = runtime_of(memo)
    orphans = bool(entitlements) and name == min(entitlements)
    due = rt.laggards.due(
        lambda entitlement: entitlement == name or (orphans and entitlement not in entitlements),
        time.monotonic(),
        GRACE_SECONDS,
    )
    failed = 0
    for request, grant in due:
        try:
            await rt.run_granting(_repair, rt, request, grant)
        except Exception:  # one that cannot be repaired must not keep the others behind it waiting
            failed += 1
            log.exception("request %s is behind its grant %s and could not be brought into line", request, grant)
    if failed:
        raise kopf.TemporaryError(f"{failed} request(s) behind their grants could not be brought into line", delay=5)


def _repair(rt: Runtime, request: str, grant: str) -> None:
    body = rt.kube.get(names.GRANTS, grant)
    if body is None:
        return
    if follow_request(rt, AccessGrant.model_validate(body)) is not None:
        log.info("request %s was behind its grant %s (%s): brought into line", request, grant, wire.ready_reason(body))

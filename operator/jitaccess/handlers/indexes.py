"""In-memory indexes of the cluster's jitaccess objects, kept current by kopf's watches.

kopf fills every index from the initial listing before any handler runs. Which grants hold
which membership is kept in the Runtime instead (an `ObjectIndex`, see why there), filled from a
listing at start-up, so a restarted operator still knows every live grant before it starts
expiring any of them.

The index functions are `async` (they do no I/O): kopf runs them inline on every watch event,
where a plain function would cost a trip through the thread pool each time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from jitaccess.domain.grants import FINISHED, membership_key
from jitaccess.handlers.common import GROUP, VERSION
from jitaccess.handlers.runtime import runtime_of


@kopf.index(GROUP, VERSION, "teamownerships")
async def teams(name: str, spec: kopf.Spec, **_: Any) -> dict[str, Any]:
    return {name: dict(spec)}


@kopf.index(GROUP, VERSION, "entitlements")
async def entitlements(name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
    return {
        name: {
            "metadata": {"name": name, "uid": body.metadata.uid, "generation": body.metadata.get("generation", 0)},
            "spec": dict(body.spec),
            "status": dict(body.status),
        }
    }


def holding(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """The membership a grant holds (or is about to hold), or None once it is finished."""
    status = obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is not None and ready.get("reason") in FINISHED:
        return None
    spec = obj.get("spec") or {}
    return membership_key(spec.get("user", ""), spec.get("groupName", ""))


@kopf.on.event(GROUP, VERSION, "accessgrants")
async def grant_holders(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Keep the Runtime's `holders` current: every change to a grant, as it is seen."""
    key = None if type == "DELETED" else holding(body)
    runtime_of(memo).holders.observe(body.metadata.name, None if key is None else (key, body.metadata.name))

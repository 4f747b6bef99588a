"""In-memory indexes of the cluster's jitaccess objects, kept current by kopf's watches.

kopf fills every index from the initial listing before any handler runs, so a restarted
operator knows every live grant before it starts expiring any of them.

The index functions are `async` (they do no I/O): kopf runs them inline on every watch event,
where a plain function would cost a trip through the thread pool each time.
"""

from __future__ import annotations

from typing import Any

import kopf

from jitaccess.domain.grants import FINISHED, membership_key
from jitaccess.handlers.common import GROUP, VERSION


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


def _holds_membership(status: kopf.Status, **_: Any) -> bool:
    ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), None)
    return ready is None or ready.get("reason") not in FINISHED


@kopf.index(GROUP, VERSION, "accessgrants", when=_holds_membership)
async def grant_holders(name: str, spec: kopf.Spec, **_: Any) -> dict[tuple[str, str], str]:
    """Grants that hold (or are about to hold) a membership, by (user, group)."""
    return {membership_key(spec.get("user", ""), spec.get("groupName", "")): name}

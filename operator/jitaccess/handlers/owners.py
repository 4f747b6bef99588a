"""The Entitlement an AccessRequest names and that Entitlement's owner team, from kopf's indexes.

Asked by the request handler before it decides, and by the grant handler's basis check
(`backing`). An object applied a moment before the request may not have reached its index yet
(each kind has its own watch), so a miss is confirmed with the API server before it counts.
"""

from __future__ import annotations

from jitaccess.api import names
from jitaccess.api.models import AccessRequest, Entitlement, TeamOwnershipSpec
from jitaccess.handlers.common import Index, first, live
from jitaccess.handlers.runtime import Runtime


def lookup(
    rt: Runtime, request: AccessRequest, teams: Index, entitlements: Index
) -> tuple[Entitlement | None, TeamOwnershipSpec | None]:
    """The request's Entitlement and owner team, from the indexes.

    An object applied a moment before the request may not have reached the index yet (each kind
    has its own watch), so a miss is confirmed with the API server before it counts.
    """
    return entitlement_and_team(rt, request.spec.entitlement, teams, entitlements)


def entitlement_and_team(
    rt: Runtime, name: str, teams: Index, entitlements: Index
) -> tuple[Entitlement | None, TeamOwnershipSpec | None]:
    """An Entitlement by name, as it is now, and its owner team; an index miss is confirmed with
    the API server (a deleted Entitlement still waiting for its grants reads as missing)."""
    raw = first(entitlements, name) or live(rt.kube.get(names.ENTITLEMENTS, name))
    if raw is None:
        return None, None
    entitlement = Entitlement.model_validate(raw)
    team = first(teams, entitlement.spec.owner)
    if team is None:
        team = (rt.kube.get(names.TEAMS, entitlement.spec.owner) or {}).get("spec")
    return entitlement, (TeamOwnershipSpec.model_validate(team) if team is not None else None)

"""The grant handler's check that a grant rests on its request, with what it needs looked up.

The rules are `jitaccess.domain.backing`'s; here the request is read afresh from the API server
(its status was written a moment before the grant was created, and an index may lag behind: a
request seen as it was before its approval, or before its deletion, would say the wrong thing, so
no index stands in for this read), and its Entitlement and owner team come from kopf's indexes as
for the request handler.
"""

from __future__ import annotations

from typing import Any

from jitaccess.api import names
from jitaccess.api.models import AccessGrant, AccessRequest
from jitaccess.domain import backing
from jitaccess.handlers import oncall
from jitaccess.handlers.common import Index, now
from jitaccess.handlers.requests import lookup
from jitaccess.handlers.runtime import Runtime


def stored_request(rt: Runtime, grant: AccessGrant) -> dict[str, Any] | None:
    """The grant's request as stored now (None when there is none)."""
    return rt.kube.get(names.REQUESTS, grant.spec.request)


def unbacked(
    rt: Runtime, grant: AccessGrant, raw: dict[str, Any] | None, teams: Index, entitlements: Index
) -> str | None:
    """Why `grant` must not be provisioned (its `Failed` message); None when its request backs it.
    `raw` is the request as `stored_request` read it, just before."""
    request = AccessRequest.model_validate(raw) if raw is not None else None
    entitlement, team = lookup(rt, request, teams, entitlements) if request is not None else (None, None)
    return backing.unbacked(
        grant,
        request,
        entitlement,
        team,
        rt.settings.limits,
        now(),
        on_call=lambda valid: oncall.on_call_group(rt, valid) is not None,
    )

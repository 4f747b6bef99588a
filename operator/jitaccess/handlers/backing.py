"""The grant handler's check that a grant rests on its request, with what it needs looked up.

The rules are `jitaccess.domain.backing`'s; here the request is read afresh from the API server
(its status was written a moment before the grant was created, and an index may lag behind: a
request seen as it was before its approval, or before its deletion, would say the wrong thing, so
no index stands in for this read), and its Entitlement and owner team come from kopf's indexes as
for the request handler.

One thing stands in for the read: the request as the approval's own write left it, which the
request handler hands over (`Runtime.handoffs`, by request name, as it creates the grant), taken
once and only for a few seconds. It is the API server's answer to that write, as current as a
read a moment later would be: the operator alone writes a request's status, and its next write is
the one this grant's handler makes. It is the request's content, not a permission: the grant is
checked against it exactly as against a read (a grant made by hand under the same name included),
and a deletion in between is what it was with a read (it can also come just after one): an Active
grant whose request is gone is revoked (`deleted_requests`).
"""

from __future__ import annotations

from typing import Any

from jitaccess.api import names
from jitaccess.api.models import AccessGrant, AccessRequest, Entitlement, TeamOwnershipSpec
from jitaccess.domain import approvals as approval_rules
from jitaccess.domain import backing
from jitaccess.domain import requests as request_rules
from jitaccess.errors import InvalidInput
from jitaccess.handlers import oncall
from jitaccess.handlers.activation import refusal_given
from jitaccess.handlers.common import Index
from jitaccess.handlers.eligibility import approvers_gone
from jitaccess.handlers.owners import lookup
from jitaccess.handlers.runtime import Runtime
from jitaccess.handlers.scheduler import utcnow


def stored_request(rt: Runtime, grant: AccessGrant) -> dict[str, Any] | None:
    """The grant's request as stored now (None when there is none): handed over, or read."""
    handed = rt.handoffs.take(grant.spec.request)
    return handed if handed is not None else rt.kube.get(names.REQUESTS, grant.spec.request)


def unbacked(
    rt: Runtime, grant: AccessGrant, raw: dict[str, Any] | None, teams: Index, entitlements: Index
) -> str | None:
    """Why `grant` must not be provisioned (its `Failed` message); None when its request backs it.
    `raw` is the request as `stored_request` read it, just before."""
    request = AccessRequest.model_validate(raw) if raw is not None else None
    entitlement, team = lookup(rt, request, teams, entitlements) if request is not None else (None, None)
    return unbacked_by(rt, grant, request, entitlement, team)


def unbacked_by(
    rt: Runtime,
    grant: AccessGrant,
    request: AccessRequest | None,
    entitlement: Entitlement | None,
    team: TeamOwnershipSpec | None,
) -> str | None:
    """`unbacked`, with the request parsed and its Entitlement and owner team as its handler has
    just looked them up (`grants.provision_at_once`). Of several approvals, those whose approver is
    gone from Identity Center are asked about (`approvers_gone`, a "yes" of the request handler's
    check a moment ago standing) and counted out, as the request handler counted them. A request
    with a `spec.startTime` is asked what its start asks (`activation.refusal_given`), against the
    exact clock, as the request handler checks the start (`requests._create_grant`).

    Raises `RetryLater` when Identity Center does not answer."""
    needed = approval_rules.required(entitlement)
    return backing.unbacked(
        grant,
        request,
        entitlement,
        team,
        rt.settings.limits,
        utcnow(),
        on_call=lambda valid: oncall.on_call_group(rt, valid) is not None,
        gone=approvers_gone(rt, request.metadata.annotations, needed)
        if request is not None
        else approval_rules.NOBODY_GONE,
        begins=lambda request, valid, basis: _begins(rt, request, valid, basis),
    )


def _begins(
    rt: Runtime, request: AccessRequest, valid: request_rules.ValidRequest, basis: request_rules.Basis
) -> request_rules.NoGrant | None:
    """`activation.refusal_given`, an Entitlement naming an eligibility group that does not exist
    included (the request handler ends its request `Invalid` for it before any grant is created)."""
    try:
        return refusal_given(rt, request, valid, basis)
    except InvalidInput as exc:
        return request_rules.NoGrant(names.INVALID, str(exc))

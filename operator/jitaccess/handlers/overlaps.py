"""Entitlements that grant the same access: keep each one's `Overlapping` condition current.

Any watch event of any Entitlement (created, its spec or status changed, deleted) may start or end
an overlap of others, and so may one of a PermissionCatalog (a tier's group, accounts or ARN), so
every event asks for a pass over all of them (`domain.overlaps.changes`, from the Entitlement index
and this module's index of catalog tiers, both updated by kopf before the handler runs), and the
pass writes only the conditions that are not right. A pass reads every Entitlement: events that
arrive while one runs (kopf lists every Entitlement at a start, each an event) are folded into a
single next pass rather than one pass each. The writes are the controller's, the leader's alone;
what they change comes back as events, whose pass finds nothing left to do. A pass that fails
(the API server not answering) is tried again for as long as it fails, after a pause that doubles
with each failure in a row (`RETRY_SECONDS` up to `MAX_RETRY_SECONDS`): each failure one WARNING
with its cause, counted in `jitaccess_errors_total{kind="handler"}`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from jitaccess import metrics
from jitaccess.adapters.kube import api_words
from jitaccess.api import names
from jitaccess.api.models import Entitlement
from jitaccess.domain import conditions as cond
from jitaccess.domain import groupids
from jitaccess.domain import overlaps as overlap_rules
from jitaccess.domain import permissions as permission_rules
from jitaccess.domain.overlaps import Tier, Verdict
from jitaccess.handlers.common import NO_INDEX, Index, conditions_after, doubled, first, status_change
from jitaccess.handlers.recording import record
from jitaccess.handlers.runtime import Runtime, runtime_of

log = logging.getLogger(__name__)
ENT = (names.GROUP, names.VERSION, names.ENTITLEMENTS)
CATALOG = (names.GROUP, names.VERSION, names.CATALOGS)
#: After a pass failed (the API server not answering), the next one waits this long, twice as long
#: after each failure in a row, up to `MAX_RETRY_SECONDS`; it is tried again for as long as it fails.
RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 120.0


@kopf.index(*CATALOG)
async def catalog_tiers(name: str, body: kopf.Body, **_: Any) -> dict[str, list[Tier]]:
    """A catalog's tiers: the permission set each assigns to its group, where, its ARN once
    provisioned, and the group's GroupId once a pass recorded it for the tier's `groupName`."""
    spec, status = dict(body.spec), dict(body.status)
    group_ids = groupids.tier_group_ids({"spec": spec, "status": status})
    tiers = []
    for tier in permission_rules.TIERS:
        declared = spec.get(tier) or {}
        group, accounts = declared.get("groupName"), declared.get("accounts") or []
        if not group:
            continue
        arn = (status.get(tier) or {}).get("permissionSetArn")
        reference = f"{names.CATALOG_REFERENCE_PREFIX}{name}/{tier}"
        held = frozenset(map(str, accounts))
        tiers.append(Tier(reference, str(group), held, str(arn) if arn else None, group_ids.get(tier)))
    return {name: tiers}


@kopf.on.event(*ENT)
@kopf.on.event(*CATALOG)
async def watch_overlaps(
    *, memo: kopf.Memo, entitlements: Index = NO_INDEX, catalog_tiers: Index = NO_INDEX, **_: Any
) -> None:
    rt = runtime_of(memo)
    passes = rt.overlap_passes  # the Runtime's, not the memo's: kopf gives each object a copy of that
    if passes.running:
        passes.again = True
        return
    passes.running = True
    backoff = 0.0
    try:
        while True:
            passes.again = False
            try:
                # The index is the event loop's: a snapshot here, parsed and compared in a thread.
                listed = [body for name in list(entitlements) if (body := first(entitlements, name)) is not None]
                tiers = [tier for name in list(catalog_tiers) for tier in first(catalog_tiers, name) or ()]
                await rt.run_blocking(reconcile, rt, listed, tiers)
                backoff = 0.0
            except Exception as exc:  # the next pass (after a pause) tries again; an event must not be lost
                backoff = doubled(backoff, RETRY_SECONDS, MAX_RETRY_SECONDS)
                metrics.ERRORS.labels("handler").inc()
                log.warning(
                    "the Overlapping conditions of Entitlements could not be brought up to date (%s): "
                    "tried again in %.0fs",
                    _cause(exc),
                    backoff,
                )
                passes.again = True
                await asyncio.sleep(backoff)
            if not passes.again:
                return
    finally:
        passes.running = False


def reconcile(rt: Runtime, listed: list[dict[str, Any]], tiers: list[Tier] | None = None) -> None:
    """Write every `Overlapping` condition that is not what the Entitlements' overlaps say."""
    parsed = []
    for body in listed:
        try:
            parsed.append(Entitlement.model_validate(body))
        except ValidationError as exc:  # the CRD's schema should have refused it: compared with nothing
            log.warning("Entitlement %s cannot be read (%s); left out of the overlap check", _name(body), exc)
    for entitlement, wanted in overlap_rules.changes(parsed, tiers or ()):
        write(rt, entitlement.metadata.name, entitlement.metadata.uid, entitlement.metadata.generation, wanted)


def write(rt: Runtime, name: str, uid: str, generation: int, wanted: Verdict) -> None:
    """Set `Overlapping` as `wanted` on the Entitlement of `uid` (never another applied under its
    name since), unless it changed since (its next event's pass decides) or the stored condition
    says so already (the index had not caught up with an earlier write); an Event with each change,
    by the write that made it."""

    def build(current: Entitlement) -> dict[str, Any] | None:
        if generation and current.metadata.generation != generation:
            return None
        previous = cond.find(current.status.conditions, names.OVERLAPPING)
        if previous is not None and (previous.status, previous.reason, previous.message) == (
            "True" if wanted.status else "False",
            wanted.reason,
            wanted.message,
        ):
            return None
        changes = [(names.OVERLAPPING, wanted.status, wanted.reason, wanted.message)]
        return {"conditions": conditions_after(current.status.conditions, changes, current.metadata.generation)}

    updated = rt.kube.update_status(names.ENTITLEMENTS, name, status_change(Entitlement, build), uid=uid)
    if updated is not None:
        record(updated, wanted.reason, wanted.message, warning=wanted.warning)


def _cause(exc: Exception) -> str:
    """Why a pass failed, on one line: the API server's own words for what it answered."""
    if isinstance(exc, ApiException):
        return f"the API server answered {exc.status}: {api_words(exc)}"
    return str(exc) or type(exc).__name__


def _name(body: dict[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("name", ""))

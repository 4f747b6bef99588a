"""Small builders of valid API objects for the pure tests (fields overridable per test)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from jitaccess.adapters.kube import checked_uid
from jitaccess.api import wire
from jitaccess.api.models import AccessGrant, AccessRequest, Entitlement, TeamOwnershipSpec

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def team(**overrides: Any) -> TeamOwnershipSpec:
    base: dict[str, Any] = {
        "members": ["alice@example.com"],
        "approvers": ["paula@example.com"],
        "backupApprovers": ["carol@example.com"],
        "escalateAfter": "15m",
    }
    return TeamOwnershipSpec.model_validate({**base, **overrides})


def entitlement(**spec: Any) -> Entitlement:
    base: dict[str, Any] = {
        "owner": "payments",
        "identityCenter": {"groupName": "prod-eng-payments"},
        "defaultDuration": "1h",
        "maxDuration": "4h",
        "reasonPattern": "^[A-Z]+-[0-9]+",
    }
    meta = {"name": "prod-eng-payments", "uid": "uid-prod-eng-payments"}
    return Entitlement.model_validate({"metadata": meta, "spec": {**base, **spec}})


def request(
    *,
    annotations: dict[str, str] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    created: datetime = T0,
    **spec: Any,
) -> AccessRequest:
    base: dict[str, Any] = {
        "entitlement": "prod-eng-payments",
        "reason": "INFRA-2441 fix stuck batch",
        "requester": "bob@example.com",
    }
    return AccessRequest.model_validate(
        {
            "metadata": {
                "name": "r1",
                "uid": "uid-r1",
                "annotations": annotations or {},
                "creationTimestamp": created.isoformat(),
            },
            "spec": {**base, **spec},
            "status": {"conditions": conditions or []},
        }
    )


def condition(type_: str, status: str, reason: str, at: datetime = T0) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": "", "lastTransitionTime": at.isoformat()}


def grant(*, conditions: list[dict[str, Any]] | None = None, **status: Any) -> AccessGrant:
    return AccessGrant.model_validate(
        {
            "metadata": {"name": "g1", "uid": "uid-g1"},
            "spec": {
                "user": "alice@example.com",
                "entitlement": "prod-eng-payments",
                "groupName": "prod-eng-payments",
                "request": "g1",
                "duration": "1h",
            },
            "status": {"conditions": conditions or [], **status},
        }
    )


def selected(
    objects: dict[tuple[str, str], dict[str, Any]], plural: str, fields: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """`Kube.list` on a dict of objects by (plural, name): those of `plural` whose `fields`
    (selectable paths such as `spec.user`) have these values."""

    def value(obj: dict[str, Any], path: str) -> Any:
        for part in path.split("."):
            obj = obj.get(part) or {} if isinstance(obj, dict) else {}
        return obj

    return [
        copy.deepcopy(obj)
        for (kind, _), obj in objects.items()
        if kind == plural and all(value(obj, path) == wanted for path, wanted in (fields or {}).items())
    ]


def lands(obj: dict[str, Any] | None, uid: Any, current: dict[str, Any] | None = None) -> bool:
    """Whether a fake's status write (or deletion) with this `uid` lands on the stored `obj`, as
    `Kube.update_status` decides: `uid` is required unless `current` is given (then it is current's),
    an empty one is refused (`checked_uid`: a caller that lost it), `BY_NAME` lands on whatever is
    stored, any other only on the object with that uid."""
    if uid is None:
        if current is None:
            raise TypeError("a status write needs uid= (or BY_NAME) or current=")
        uid = wire.uid_of(current)
    checked = checked_uid(uid, "a fake's status write (or deletion)")
    return obj is not None and (checked is None or wire.uid_of(obj) == checked)

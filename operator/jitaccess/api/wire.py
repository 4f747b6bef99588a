"""Reading objects in their wire form (plain dicts, as the API server sends them), without parsing.

Admission reviews, watch events and the `kubectl jit` plugin see objects as dicts, and most of
what they look at (a name, an annotation, the `Ready` condition) is not worth a pydantic parse:
the plugin must not even import pydantic. Standard library only, for the same reason. Missing or
null fields read as empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from jitaccess.api.names import READY

Obj = Mapping[str, Any]

#: An Identity Store id, a UserId or a GroupId, as AWS documents its form: a UUID in hex, optionally
#: after 10 hex digits and a dash. Hex only, and in its 8-4-4-4-12 layout: a DisplayName such as
#: `jitaccess-production-admins-eu-west1` (36 characters, four dashes) is none, nor is any username.
_IDENTITY_STORE_ID = re.compile(
    r"(?:[0-9a-f]{10}-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE
)


def looks_like_identity_store_id(value: str) -> bool:
    """Whether `value` has the form of an Identity Store UserId or GroupId (`_IDENTITY_STORE_ID`)."""
    return _IDENTITY_STORE_ID.fullmatch(value) is not None


def rfc3339(value: datetime) -> str:
    """A time as the API writes it: RFC 3339 in UTC, whole seconds (`2026-12-01T06:00:00Z`). A time
    with no UTC form (a user's `9999-12-31T23:59:59-01:00` lies past the last datetime in UTC) is
    given as written, so that a refusal or a record naming it never fails on it."""
    try:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OverflowError:
        return value.isoformat()


def duration_text(value: timedelta) -> str:
    """A duration in the form the API's duration fields take: the shortest `XhYmZs` (`1h30m`), whole
    seconds (`domain.durations` parses it back; the audit records write the durations that applied)."""
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return "".join(parts) or "0s"


def metadata(obj: Obj | None) -> Mapping[str, Any]:
    value: Mapping[str, Any] = (obj or {}).get("metadata") or {}
    return value


def name_of(obj: Obj | None) -> str:
    return str(metadata(obj).get("name") or "")


def uid_of(obj: Obj | None) -> str:
    """`metadata.uid` ("" for an object not read from the API server)."""
    return str(metadata(obj).get("uid") or "")


def created_at(obj: Obj | None) -> datetime | None:
    """`metadata.creationTimestamp`, or None when absent or not a timestamp."""
    stamp = metadata(obj).get("creationTimestamp")
    try:
        return datetime.fromisoformat(stamp) if isinstance(stamp, str) and stamp else None
    except ValueError:
        return None


def annotations_of(obj: Obj | None) -> Mapping[str, str]:
    value: Mapping[str, str] = metadata(obj).get("annotations") or {}
    return value


def spec(obj: Obj | None) -> Mapping[str, Any]:
    value: Mapping[str, Any] = (obj or {}).get("spec") or {}
    return value


def status(obj: Obj | None) -> Mapping[str, Any]:
    value: Mapping[str, Any] = (obj or {}).get("status") or {}
    return value


def condition(obj: Obj | None, type_: str) -> Mapping[str, Any] | None:
    return next((c for c in status(obj).get("conditions") or [] if c.get("type") == type_), None)


def is_true(obj: Obj | None, type_: str) -> bool:
    found = condition(obj, type_)
    return found is not None and found.get("status") == "True"


def deleting(obj: Obj | None) -> bool:
    """Whether the object is being deleted (a `deletionTimestamp`; finalizers keep it until then)."""
    return bool(metadata(obj).get("deletionTimestamp"))


def ready_reason(obj: Obj | None) -> str | None:
    """The reason of the `Ready` condition; None while there is none."""
    found = condition(obj, READY)
    return None if found is None else str(found.get("reason"))


def truthy(value: str | None) -> bool:
    """Whether a decision annotation (`approved`, `denied`, `revoked`, any later one) is set: exactly
    `true`. Not `TRUE`, not `"true "`: one spelling, so the webhook that admits a decision and the
    operator that acts on it never disagree on whether one was taken (the webhook refuses the rest)."""
    return value == "true"


def field_selector(fields: Mapping[str, str]) -> str:
    """A `fieldSelector` matching every `fields` path to its value exactly (`spec.requester=a@b,...`),
    with the separators a value may hold escaped as the API server reads them (`\\`, `,`, `=`).

    The paths are the CRDs' `selectableFields` (`crdgen`); a server that has none (Kubernetes before
    1.31, or the feature gate off) refuses the selector, so callers must be able to list without it
    and filter what they read themselves (`selected_by`)."""
    return ",".join(f"{path}={_escape(value)}" for path, value in fields.items())


def selected_by(obj: Mapping[str, Any], fields: Mapping[str, str]) -> bool:
    """Whether `obj` has every `fields` path at its value, as `field_selector` selects it on a server
    that can: what a listing from one that cannot is filtered by. The API server compares the
    field's text: a boolean is `true` or `false`; an object without the field has no value."""
    for path, wanted in fields.items():
        value: Any = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, bool):
            value = "true" if value else "false"
        if value is None or isinstance(value, Mapping | list) or str(value) != wanted:
            return False
    return True


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")

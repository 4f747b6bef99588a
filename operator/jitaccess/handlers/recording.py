"""Every decision is an Event on the object and a structured log line with who and why."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from jitaccess.api import names

audit = logging.getLogger("jitaccess.audit")


def ref(kind: str, name: str, uid: str = "") -> dict[str, Any]:
    """The minimal object reference kopf needs to post an Event."""
    return {"apiVersion": names.API_VERSION, "kind": kind, "metadata": {"name": name, "uid": uid}}


def record(
    obj: Mapping[str, Any],
    reason: str,
    message: str,
    *,
    warning: bool = False,
    who: str = "",
    **fields: Any,
) -> None:
    """Post an Event on `obj` and write the matching audit log line."""
    body: Any = dict(obj)
    kopf.event(body, type="Warning" if warning else "Normal", reason=reason, message=message[:1000])
    meta = obj.get("metadata", {})
    audit.log(
        logging.WARNING if warning else logging.INFO,
        "%s %s/%s: %s",
        reason,
        obj.get("kind", ""),
        meta.get("name", ""),
        message,
        extra={
            "event": reason,
            "object_kind": obj.get("kind", ""),
            "object_name": meta.get("name", ""),
            "who": who,
            **fields,
        },
    )

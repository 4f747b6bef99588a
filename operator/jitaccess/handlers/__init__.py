"""kopf handlers: parse -> decide (domain) -> act (adapters) -> record status and events.

Importing this package registers every handler with kopf's default registry.
"""

from jitaccess.handlers import (
    admission,
    archive,
    breakglass,
    catalog,
    deleted_requests,
    expiry,
    extension_admission,
    extensions,
    following,
    grants,
    indexes,
    interactions,
    lapses,
    notifications,
    observability,
    observers,
    permissionsets,
    requests,
    schedules,
    slack_rbac,
    starts,
    startup,
)

__all__ = [
    "admission",
    "archive",
    "breakglass",
    "catalog",
    "deleted_requests",
    "expiry",
    "extension_admission",
    "extensions",
    "following",
    "grants",
    "indexes",
    "interactions",
    "lapses",
    "notifications",
    "observability",
    "observers",
    "permissionsets",
    "requests",
    "schedules",
    "slack_rbac",
    "starts",
    "startup",
]

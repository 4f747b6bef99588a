"""kopf handlers: parse -> decide (domain) -> act (adapters) -> record status and events.

Importing this package registers every handler with kopf's default registry.
"""

from jitaccess.handlers import (
    admission,
    archive,
    catalog,
    deleted_requests,
    expiry,
    following,
    grants,
    indexes,
    lapses,
    observability,
    requests,
    schedules,
    startup,
)

__all__ = [
    "admission",
    "archive",
    "catalog",
    "deleted_requests",
    "expiry",
    "following",
    "grants",
    "indexes",
    "lapses",
    "observability",
    "requests",
    "schedules",
    "startup",
]

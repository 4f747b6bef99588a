"""kopf handlers: parse -> decide (domain) -> act (adapters) -> record status and events.

Importing this package registers every handler with kopf's default registry.
"""

from jitaccess.handlers import admission, catalog, grants, indexes, observability, requests, schedules, startup

__all__ = ["admission", "catalog", "grants", "indexes", "observability", "requests", "schedules", "startup"]

"""kopf handlers: parse -> decide (domain) -> act (adapters) -> record status and events.

Importing this package registers every handler with kopf's default registry.
"""

from jitaccess.handlers import catalog, grants, indexes, requests, startup

__all__ = ["catalog", "grants", "indexes", "requests", "startup"]

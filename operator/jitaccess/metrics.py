"""Prometheus metrics of the operator, served on `/metrics` when a metrics port is set."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("jitaccess_requests_total", "AccessRequests by outcome", ["entitlement", "outcome"])
GRANT_LATENCY = Histogram(
    "jitaccess_request_to_grant_seconds",
    "Time from AccessRequest creation to an Active grant",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600),
)
ACTIVE_GRANTS = Gauge("jitaccess_active_grants", "Active grants by entitlement", ["entitlement"])
PENDING_REQUESTS = Gauge("jitaccess_pending_requests", "Requests waiting for a human decision")
OLDEST_PENDING = Gauge("jitaccess_oldest_pending_request_age_seconds", "Age of the oldest pending request")
EXPIRY_LAG = Histogram(
    "jitaccess_expiry_lag_seconds",
    "Membership removed minus status.expirationTime",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
IDENTITY_CENTER_CALLS = Counter(
    "jitaccess_identitycenter_calls_total",
    "Identity Center calls by operation and outcome",
    ["operation", "outcome"],
)
ERRORS = Counter("jitaccess_errors_total", "Handler errors by kind", ["kind"])

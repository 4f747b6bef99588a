"""Prometheus metrics of the operator, served on `/metrics` when a metrics port is set.

Counters and histograms are moved by the code where things happen. Gauges of state (active grants,
pending requests) are not: they are computed at scrape time from kopf's indexes, see
`jitaccess.observability`, so that a restart, a missed event or a standby replica can never leave
them counting wrong. docs/metrics.md lists every metric with its labels.
"""

from __future__ import annotations

import contextlib

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.registry import Collector

REQUESTS = Counter("jitaccess_requests_total", "AccessRequests by outcome", ["entitlement", "outcome"])
# Whole seconds (both ends are Kubernetes timestamps), and it includes the wait for a human
# approver: buckets from "automatic" to "next day".
GRANT_LATENCY = Histogram(
    "jitaccess_request_to_grant_seconds",
    "Time from AccessRequest creation to an Active grant",
    buckets=(1, 2, 5, 10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600),
)
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
#: Callers waiting for a free slot (`IdentityCenter.queue`): a burst shows here, not as AWS throttling.
IDENTITY_CENTER_QUEUED = Gauge(
    "jitaccess_identitycenter_queued", "Identity Center calls waiting for one of the slots of calls in flight"
)
#: Whether the webhook configurations in the cluster call this replica's server and trust its
#: certificate, as the operator defines them, and the admission policy (`JITACCESS_ADMISSION_POLICY`)
#: is in place (`handlers.startup`): checked every 30 s, and at once whenever the certificate changes.
#: Every replica's; absent with the webhooks off (registered by the first check, `export`): at 0
#: from import, it would fire the alert in a process that serves no webhooks.
WEBHOOK_CONFIGURED = Gauge(
    "jitaccess_webhook_configured",
    "1 while the webhook configurations call this replica's webhook server and trust its certificate, as the "
    "operator defines them, and the admission policy is in place, else 0",
    registry=None,
)


def export(metric: Collector) -> None:
    """Serve `metric` from now on (once: registering it again is a no-op)."""
    with contextlib.suppress(ValueError):  # registered already
        REGISTRY.register(metric)


ERRORS = Counter("jitaccess_errors_total", "Handler errors by kind", ["kind"])
ELIGIBILITY_LAPSES = Counter(
    "jitaccess_eligibility_lapses_total",
    "Active grants ended and pending requests refused because their user was no longer eligible",
    ["entitlement", "kind"],
)
#: Eligibility re-checks that Identity Center stopped (`handlers.lapses`): while it lasts, leavers keep
#: their grants. `stage`: `listing` (an Entitlement's pass: no lapse seen at all), `lapse` (acting on
#: one user's lapse); `outcome`: `refused` (IAM: somebody must fix it), `unanswered` (retried next pass).
ELIGIBILITY_RECHECK_FAILURES = Counter(
    "jitaccess_eligibility_recheck_failures",
    "Eligibility re-checks Identity Center refused or did not answer, by stage (listing: an Entitlement's "
    "whole pass; lapse: acting on one user's lapse) and outcome (refused, unanswered)",
    ["stage", "outcome"],
)
AUDIT_EVENTS = Counter(
    "jitaccess_audit_events_total",
    "Decisions and findings recorded as Events and audit log lines (Granted, Expired, DriftFound, ...)",
    ["event"],
)
REQUESTS_LIMITED = Counter(
    "jitaccess_requests_limited_total",
    "AccessRequests refused at creation by a per-user limit (approval fatigue, domain.requests): "
    "waiting (one per access, JITACCESS_MAX_PENDING_PER_USER in all), asks (JITACCESS_APPROVAL_REQUESTS_PER_USER_PER_HOUR), "
    "pace (JITACCESS_REQUESTS_PER_USER_PER_MINUTE)",
    ["limit"],
)
BREAK_GLASS = Counter(
    "jitaccess_break_glass_total",
    "Break-glass requests approved by their requester (domain.breakglass)",
    ["entitlement"],
)
AUDIT_ARCHIVE_WRITES = Counter(
    "jitaccess_audit_archive_writes",
    "Tries to write a batch of audit records to the S3 archive (handlers.archive), by outcome: ok, failed "
    "(S3 refused the PUT or a listing or read before it; retried)",
    ["outcome"],
)
LEADER_TRANSITIONS = Counter(
    "jitaccess_leader_transitions_total",
    "This replica's changes of leadership (handlers.leadership): acquired, lost (not renewed in time, "
    "or taken by another replica), released (on a clean stop)",
    ["change"],
)
SLACK_INTERACTIONS = Counter(
    "jitaccess_slack_interactions_total",
    "Slack button clicks and deny-modal submissions by action and result (jitaccess.handlers.interactions)",
    ["action", "result"],
)

#: Names of the gauges computed at scrape time (`jitaccess.observability.StateCollector`).
ACTIVE_GRANTS = "jitaccess_active_grants"
PENDING_REQUESTS = "jitaccess_pending_requests"
OLDEST_PENDING = "jitaccess_oldest_pending_request_age_seconds"
# Every replica's, from the grants' persisted expiration times: unlike `EXPIRY_LAG`, which gets a
# sample only once a removal succeeds, they show an expiry that is not happening while it lasts.
GRANTS_OVERDUE = "jitaccess_grants_overdue"
GRANT_OVERDUE_SECONDS = "jitaccess_grant_overdue_seconds"
# Whether this replica may act now (`Leadership.leading`, read at scrape time): 0 the moment its
# renew deadline passes, before it has even stopped its controller.
LEADER = "jitaccess_leader"
# Entitlements and PermissionCatalogs by Ready status and reason (every replica's watch of them).
ENTITLEMENTS = "jitaccess_entitlements"
PERMISSION_CATALOGS = "jitaccess_permission_catalogs"
# Entitlements that grant the same access as another, by their `Overlapping` reason (every replica's).
ENTITLEMENTS_OVERLAPPING = "jitaccess_entitlements_overlapping"
# Break-glass requests whose review is overdue, by entitlement: every replica's, from the requests'
# review deadlines (`handlers.breakglass`), for the Entitlements that exist.
BREAK_GLASS_UNREVIEWED = "jitaccess_break_glass_unreviewed"
# The audit archive's queue (`handlers.archive`): the leader's, and only with a bucket configured.
ARCHIVE_PENDING = "jitaccess_audit_archive_pending_records"
ARCHIVE_OLDEST_PENDING = "jitaccess_audit_archive_oldest_pending_seconds"
NOTIFICATIONS = Counter(
    "jitaccess_notifications_total",
    "Notices by sink (slack, webhook), event (pending, approved, granted, expiring, ...) and result "
    "(sent, retry, refused, skipped, stale)",
    ["sink", "event", "result"],
)
NOTIFICATION_DELAY = Histogram(
    "jitaccess_notification_delay_seconds",
    "From the step (its stored time) to the notice's delivery",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
)

# A labelled series exists only from its first increment, and Prometheus sees no increase in a
# series whose first sample is already 1: the single event an alert of
# charts/jitaccess/files/alerts.yaml waits for (one drift removal, one forged click) would never
# fire it, after every restart or change of leader too. So the series the alerts select are made
# here, at 0; tests/unit/test_alerts.py checks the file against a registry fresh from import.
AUDIT_EVENTS.labels("DriftFound")
AUDIT_EVENTS.labels("DriftNotRemoved")
REQUESTS_LIMITED.labels("asks")
ERRORS.labels("handler")
for _stage in ("listing", "lapse"):
    for _outcome in ("refused", "unanswered"):
        ELIGIBILITY_RECHECK_FAILURES.labels(_stage, _outcome)
for _refused in ("forged", "replayed", "unsigned"):
    # Refused before the body is read, so with no action yet (handlers.interactions).
    SLACK_INTERACTIONS.labels("unknown", _refused)

"""Prometheus metrics of the running operator: a grant, an expiry, a pending request and a throttle
each move what docs/metrics.md says they move, scraped over HTTP before and after.

The operator is the session's subprocess (`system` fixture); its counters only ever grow, so each
test compares a scrape taken after with one taken before, while gauges are read as they are.
"""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
PAYMENTS = "prod-eng-payments"


def scrape(system: Jit) -> Samples:
    url = f"http://127.0.0.1:{system.operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def grown(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def gauge_becomes(system: Jit, name: str, expected: float, timeout: float = 20, **labels: str) -> Samples:
    """Gauges follow the watch stream: poll until the scrape shows `expected`."""
    return eventually(
        lambda: samples if value(samples := scrape(system), name, **labels) == expected else None,
        timeout=timeout,
        what=f"{name}{labels} == {expected}",
    )


def test_metrics_endpoint_serves_every_family(system: Jit) -> None:
    names = {name for name, _ in scrape(system)}
    for family in (
        "jitaccess_request_to_grant_seconds_count",
        "jitaccess_expiry_lag_seconds_count",
        "python_info",
        "process_resident_memory_bytes",
    ):
        assert family in names


def test_a_granted_request_moves_the_counters(system: Jit) -> None:
    before = scrape(system)
    system.request("metrics-grant", PAYMENTS, duration="1h")  # alice, owner team: auto-approved
    system.wait_reason("accessrequest", "metrics-grant", "Granted")
    after = gauge_becomes(system, "jitaccess_active_grants", 1, entitlement=PAYMENTS)

    assert grown(before, after, "jitaccess_requests_total", entitlement=PAYMENTS, outcome="autoapproved") == 1
    assert grown(before, after, "jitaccess_request_to_grant_seconds_count") == 1
    # Whole seconds: both ends are Kubernetes timestamps.
    assert 0 <= grown(before, after, "jitaccess_request_to_grant_seconds_sum") < 30
    assert (
        grown(before, after, "jitaccess_identitycenter_calls_total", operation="CreateGroupMembership", outcome="ok")
        == 1
    )
    # Eligibility is asked once per request at most: the handler reuses the webhook's fresh "yes"
    # (and a "yes" from the previous few seconds, so it may be zero right after another test).
    assert grown(before, after, "jitaccess_identitycenter_calls_total", operation="IsMemberInGroups", outcome="ok") <= 1
    assert grown(before, after, "jitaccess_audit_events_total", event="Granted") == 2  # the grant and the request

    system.kubectl("annotate", "accessgrant", "metrics-grant", "jitaccess.dev/revoked=true", user="alice@example.com")
    system.wait_reason("accessgrant", "metrics-grant", "Revoked")
    ended = gauge_becomes(system, "jitaccess_active_grants", 0, entitlement=PAYMENTS)
    assert (
        grown(after, ended, "jitaccess_identitycenter_calls_total", operation="DeleteGroupMembership", outcome="ok")
        == 1
    )


def test_an_expiry_is_measured(system: Jit) -> None:
    before = scrape(system)
    system.request("metrics-expiry", PAYMENTS, duration="2s")
    system.wait_reason("accessgrant", "metrics-expiry", "Expired", timeout=30)
    after = gauge_becomes(system, "jitaccess_active_grants", 0, entitlement=PAYMENTS)
    assert grown(before, after, "jitaccess_expiry_lag_seconds_count") == 1
    # Expired on time: the daemon sleeps until the persisted expirationTime, then removes the member.
    assert grown(before, after, "jitaccess_expiry_lag_seconds_sum") < 5
    assert system.members(PAYMENTS) == set()


def test_pending_requests_and_their_age(system: Jit) -> None:
    before = scrape(system)
    # bob is eligible but not in the payments team: his request waits for a payments approver.
    system.request("metrics-pending", PAYMENTS, user="bob@example.com")
    system.wait_reason("accessrequest", "metrics-pending", "Pending")
    waiting = gauge_becomes(system, "jitaccess_pending_requests", 1, entitlement=PAYMENTS)
    assert grown(before, waiting, "jitaccess_requests_total", entitlement=PAYMENTS, outcome="pending") == 1
    eventually(
        lambda: value(scrape(system), "jitaccess_oldest_pending_request_age_seconds", entitlement=PAYMENTS) >= 1,
        what="the oldest pending request ages",
    )

    system.kubectl(
        "annotate", "accessrequest", "metrics-pending", "jitaccess.dev/denied=true", user="paula@example.com"
    )
    system.wait_reason("accessrequest", "metrics-pending", "Denied")
    decided = gauge_becomes(system, "jitaccess_pending_requests", 0, entitlement=PAYMENTS)
    assert value(decided, "jitaccess_oldest_pending_request_age_seconds", entitlement=PAYMENTS) == 0
    assert grown(before, decided, "jitaccess_requests_total", entitlement=PAYMENTS, outcome="denied") == 1


def test_throttling_is_counted(system: Jit) -> None:
    # Three throttles use up the SDK's own attempts; the operator's retry (kopf, 2 s later) succeeds.
    system.ic.faults.fail("CreateGroupMembership", times=3, error="ThrottlingException")
    before = scrape(system)
    system.request("metrics-throttled", PAYMENTS, duration="1h")
    system.wait_reason("accessrequest", "metrics-throttled", "Granted", timeout=40)
    after = scrape(system)
    calls = "jitaccess_identitycenter_calls_total"
    assert grown(before, after, calls, operation="CreateGroupMembership", outcome="throttled") == 1
    assert grown(before, after, calls, operation="CreateGroupMembership", outcome="ok") == 1
    assert grown(before, after, "jitaccess_errors_total", kind="identitycenter_retry") == 1
    assert grown(before, after, "jitaccess_errors_total", kind="handler") >= 1


def test_drift_is_counted(system: Jit) -> None:
    """Someone adds a member in AWS by hand: the drift scan removes it, and says so."""
    before = scrape(system)
    system.ic.add_member(PAYMENTS, "bob@example.com")
    eventually(lambda: system.members(PAYMENTS) == set() or None, timeout=30, what="the drift scan removes bob")
    after = eventually(
        lambda: s if grown(before, s := scrape(system), "jitaccess_audit_events_total", event="DriftFound") else None,
        what="DriftFound counted",
    )
    assert grown(before, after, "jitaccess_audit_events_total", event="DriftFound") == 1
    assert (
        grown(before, after, "jitaccess_identitycenter_calls_total", operation="DeleteGroupMembership", outcome="ok")
        == 1
    )


def test_a_revocation_identity_center_refuses_is_overdue_from_the_revocation(system: Jit) -> None:
    """The operator's IAM policy lost identitystore:DeleteGroupMembership: the revoked grant stays
    Active with its membership. It counts as overdue from the revocation, so the critical
    JitaccessExpiryLate pages within minutes, not at the grant's own end an hour later."""
    alice = "alice@example.com"
    system.request("refused-revoke", PAYMENTS, duration="1h", user=alice)
    system.wait_reason("accessgrant", "refused-revoke", "Active")
    system.ic.faults.fail("DeleteGroupMembership", times=100_000, error="AccessDeniedException")
    try:
        system.kubectl("annotate", "accessgrant", "refused-revoke", "jitaccess.dev/revoked=true", user=alice)
        after = gauge_becomes(system, "jitaccess_grants_overdue", 1, timeout=60)  # past the 30 s grace
        assert value(after, "jitaccess_grant_overdue_seconds") > 0
        assert alice in system.members(PAYMENTS), "still refused: the access is there, and shown"
    finally:
        system.ic.faults.clear()
    system.wait_reason("accessgrant", "refused-revoke", "Revoked", timeout=60)
    assert alice not in system.members(PAYMENTS)
    gauge_becomes(system, "jitaccess_grants_overdue", 0)

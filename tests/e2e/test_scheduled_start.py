"""Scheduled start (issue 13, capability 4) end to end, as the real users of examples/: approved
before its `spec.startTime`, the request waits `Scheduled` with no grant and no membership; at the
start the membership is added, and the duration counts from then; an operator that is down at the
start begins the access when it returns; `kubectl jit request --start` and `kubectl jit status`.

The attacks (a start in the past, beyond the horizon, changed after approval, eligibility removed
before the start) are in test_attacks_schedule.py.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.cli_run import Cli
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e

ALICE, LENA = "alice@example.com", "lena@example.com"
PAYMENTS, LEDGER = "prod-eng-payments", "prod-eng-ledger"
APPROVED = "jitaccess.dev/approved"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rfc3339(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def scheduled_and_approved(system: Jit, name: str, ahead: float, duration: str) -> dt.datetime:
    """alice asks for ledger's entitlement (lena approves) to start `ahead` seconds from now; the
    start, once lena's approval has turned the request `Scheduled`."""
    start = (utcnow() + dt.timedelta(seconds=ahead)).replace(microsecond=0)
    system.request(name, LEDGER, duration=duration, user=ALICE, startTime=rfc3339(start))
    system.wait_reason("accessrequest", name, "Pending")
    system.kubectl("annotate", "accessrequest", name, f"{APPROVED}=true", user=LENA)
    system.wait_reason("accessrequest", name, "Scheduled")
    assert utcnow() < start, "the test machine was too slow to approve before the start; nothing to see"
    return start


def test_approved_before_the_start_the_membership_is_added_at_the_start_and_not_before(system: Jit) -> None:
    start = scheduled_and_approved(system, "alice-window", ahead=10, duration="4s")
    request = system.get("accessrequest", "alice-window")
    assert request is not None
    message = ready(request)["message"]
    assert f"approved by {LENA}; access begins at {rfc3339(start)}" in message, message
    table = system.kubectl("get", "accessrequest", "alice-window", user=ALICE).stdout.splitlines()
    header, row = table[0].split(), table[1].split()
    assert header[:6] == ["NAME", "REQUESTER", "ENTITLEMENT", "DURATION", "START", "STATUS"], header
    assert row[4:6] == [rfc3339(start), "Scheduled"], row

    # Until the start: no grant, nobody in the group (looked at until a moment before it).
    while utcnow() < start - dt.timedelta(milliseconds=300):
        assert system.get("accessgrant", "alice-window") is None
        assert system.members(LEDGER) == set()
        time.sleep(0.2)

    eventually(lambda: system.members(LEDGER) == {ALICE} or None, timeout=10, what="alice in the group at the start")
    added = utcnow()
    assert added - start < dt.timedelta(seconds=5), f"added {added - start} after the start"
    grant = system.wait_reason("accessgrant", "alice-window", "Active")
    activated, expires = parse(grant["status"]["activationTime"]), parse(grant["status"]["expirationTime"])
    assert activated >= start, "never before the start"
    assert expires - activated == dt.timedelta(seconds=4), "the duration counts from the activation"
    granted = system.wait_reason("accessrequest", "alice-window", "Granted")
    assert granted["status"]["approvedBy"] == LENA
    agrants = system.kubectl("get", "accessgrant", "alice-window", user=ALICE).stdout.splitlines()
    assert "STARTED" in agrants[0].split() and grant["status"]["activationTime"] in agrants[1]

    system.wait_reason("accessgrant", "alice-window", "Expired", timeout=15)
    assert system.members(LEDGER) == set()


@pytest.fixture
def restarted(system: Jit) -> Iterator[Jit]:
    """The shared system, its operator started again however the test leaves it."""
    try:
        yield system
    finally:
        if not system.operator.running:
            system.operator.start()


def test_a_start_that_passes_while_the_operator_is_down_begins_when_it_returns(restarted: Jit) -> None:
    """The schedule is the persisted request: the operator stops after the approval, the start passes,
    and the operator that starts again finds the request in its start-up listing and begins the access
    for what is left of the window approved: it ends at the start plus the duration, not a full
    duration after the moment it began (attack 149)."""
    system = restarted
    start = scheduled_and_approved(system, "alice-missed", ahead=15, duration="1m")
    system.operator.stop()
    assert utcnow() < start, "the operator took too long to stop; nothing to see"
    while utcnow() < start + dt.timedelta(seconds=1):
        time.sleep(0.2)
    assert system.members(LEDGER) == set()
    system.operator.start()

    grant = system.wait_reason("accessgrant", "alice-missed", "Active", timeout=30)
    assert system.members(LEDGER) == {ALICE}
    activated, expires = parse(grant["status"]["activationTime"]), parse(grant["status"]["expirationTime"])
    assert activated > start
    assert expires == start + dt.timedelta(minutes=1), (start, activated, expires)
    system.wait_reason("accessrequest", "alice-missed", "Granted")


def test_kubectl_jit_request_with_start_then_status(system: Jit) -> None:
    """alice asks for her own team's role from in a few seconds: auto-approved, the plugin says when
    access begins and returns (no waiting for days); `status` shows the start; then it begins."""
    cli = Cli(system)
    try:
        result = cli.run(
            "request", PAYMENTS, "--for", "2s", "--start", "+6s", "--reason", "INC-77 change window", user=ALICE
        )
        assert result.code == 0, result
        name = next(line for line in result.out.splitlines() if line.startswith("requested ")).rsplit(" ", 1)[1]
        assert f"access to {PAYMENTS} begins at " in result.out, result
        assert "eligibility is checked again then" in result.out
        request = system.get("accessrequest", name)
        assert request is not None and ready(request)["reason"] == "Scheduled"
        assert system.members(PAYMENTS) == set()

        status = cli.run("status", name, user=ALICE)
        assert status.code == 0, status
        assert "Starts:" in status.out and "(in " in status.out, status
        assert "Scheduled: auto-approved" in status.out, status

        system.wait_reason("accessgrant", name, "Active", timeout=20)
        assert system.members(PAYMENTS) == {ALICE}
        system.wait_reason("accessgrant", name, "Expired", timeout=15)
    finally:
        cli.stop_all()


def test_a_scheduled_request_withdrawn_before_its_start_grants_nothing_and_is_routine(system: Jit) -> None:
    scheduled_and_approved(system, "alice-never", ahead=60, duration="1h")
    system.kubectl("delete", "accessrequest", "alice-never", user=ALICE)
    line = eventually(
        lambda: next((x for x in system.operator.tail(200).splitlines() if "alice-never was withdrawn" in x), None),
        timeout=10,
        what="the operator's word on the withdrawal",
    )
    # Withdrawing before the start is what users may do: told, not warned about.
    assert "INFO" in line and "WARNING" not in line, line
    assert system.get("accessgrant", "alice-never") is None
    assert system.members(LEDGER) == set()

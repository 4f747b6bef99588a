"""Time attacks: access for longer than the duration approved, or at another time than approved.

The same style as `test_attacks.py` (real identities, plain kubectl, the real API server, the
operator's webhooks, RBAC and the admission policy). The probes before the numbered section hold,
and stay as regression tests: durations spelled at and around the Entitlement's bound (ISO 8601,
fractions, signs, leading zeros, minutes past 59), and start times in other offsets, with fractional
seconds or a leap second. Attack 125 is the duration of a request that names none (the
Entitlement's default) raised between what its approver was shown and the grant.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_attacks_schedule import refused, utcnow
from tests.support.harness import Jit

pytestmark = pytest.mark.e2e

ALICE, LENA = "alice@example.com", "lena@example.com"
LEDGER = "prod-eng-ledger"  # team ledger's; maxDuration 4h; alice (payments) waits for lena
APPROVED = "jitaccess.dev/approved"


def _dry_run(system: Jit, name: str, **spec: Any) -> subprocess.CompletedProcess[str]:
    """alice's request for LEDGER, sent as a server-side dry run: every webhook and rule judges it."""
    body = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name},
        "spec": {"entitlement": LEDGER, "reason": "INC-1 e2e", **spec},
    }
    result: subprocess.CompletedProcess[str] = system.kubectl(
        "create", "--dry-run=server", "-f", "-", input=json.dumps(body), user=ALICE, check=False
    )
    return result


# --- durations at the bound, in other spellings (hold) ----------------------------------------------


@pytest.mark.parametrize(
    "spelled", ["P1DT", "PT0.5S", "PT4H", "-1h", "1.5h", "+1h", "1h ", "1H", "1d", "\uff14h", "0h0m0s"]
)
def test_a_duration_in_another_spelling_is_refused_naming_the_field(system: Jit, spelled: str) -> None:
    refused(_dry_run(system, "odd-duration", duration=spelled), "spec.duration")
    assert system.get("accessrequest", "odd-duration") is None


@pytest.mark.parametrize("spelled", ["4h1s", "3h60m1s", "00004h1s", "14401s", "240m1s", "1h1h1h1h1s"])
def test_a_duration_just_above_the_maximum_is_refused_however_it_is_spelled(system: Jit, spelled: str) -> None:
    refused(
        _dry_run(system, "long-duration", duration=spelled), "spec.duration", "above the entitlement's maxDuration 4h"
    )


@pytest.mark.parametrize("spelled", ["3h60m", "0004h", "14400s", "240m", "1h1h1h1h"])
def test_a_duration_at_the_maximum_is_taken_as_exactly_the_maximum(system: Jit, spelled: str) -> None:
    """Each spelling is 4h: granted for exactly 4h from the activation, not a second more."""
    system.request("at-max", LEDGER, user=ALICE, duration=spelled)
    system.wait_reason("accessrequest", "at-max", "Pending")
    system.kubectl("annotate", "accessrequest", "at-max", f"{APPROVED}=true", user=LENA)
    grant = system.wait_reason("accessgrant", "at-max", "Active")
    began = dt.datetime.fromisoformat(grant["status"]["activationTime"])
    ends = dt.datetime.fromisoformat(grant["status"]["expirationTime"])
    assert ends - began == dt.timedelta(hours=4), grant["status"]


# --- start times in other offsets and spellings (hold) ----------------------------------------------


def test_a_past_start_written_in_a_far_offset_is_refused(system: Jit) -> None:
    """Two minutes ago, written in +14:00 (where it reads as tomorrow's date) or -12:00."""
    past = utcnow() - dt.timedelta(minutes=2)
    for offset in (14, -12):
        zone = dt.timezone(dt.timedelta(hours=offset))
        text = past.astimezone(zone).isoformat(timespec="seconds")
        refused(_dry_run(system, "far-offset", startTime=text), "spec.startTime", "is in the past")


def test_a_start_a_fraction_of_a_second_beyond_the_horizon_is_refused(system: Jit) -> None:
    beyond = (utcnow() + dt.timedelta(days=7, minutes=5)).replace(microsecond=500000)
    refused(_dry_run(system, "beyond", startTime=beyond.strftime("%Y-%m-%dT%H:%M:%S.%fZ")), "is more than 168h ahead")


@pytest.mark.parametrize("clock", ["23:59:60Z", "24:00:00Z", "06:00:00+99:00", "06:00:00", "06:00Z"])
def test_a_start_that_is_no_time_is_refused(system: Jit, clock: str) -> None:
    """A leap second, hour 24, an offset of 99 hours, no zone, no seconds."""
    day = (utcnow() + dt.timedelta(days=1)).strftime("%Y-%m-%d")
    refused(_dry_run(system, "no-time", startTime=f"{day}T{clock}"), "startTime")


def test_a_start_written_in_lower_case_is_refused_naming_the_fix(system: Jit) -> None:
    """`2026-12-05t06:00:00z` passes the API server's format check and Python's parser, but not the
    CRD's rules (CEL), which failed on every later write: no approval, no status, no finalizer
    removed. Refused at creation instead, saying how to write it."""
    day = (utcnow() + dt.timedelta(days=1)).strftime("%Y-%m-%d")
    for text in (f"{day}t06:00:00z", f"{day}T06:00:00z", f"{day}t06:00:00+01:00"):
        refused(_dry_run(system, "lower-case", startTime=text), "spec.startTime", "upper-case T and Z")


# --- 125. a defaultDuration raised between what the approver saw and the grant ------------------


RAISED, RAISED_GROUP = "e2e-time-default", "e2e-time-default-group"


@pytest.fixture
def defaulted(system: Jit) -> Iterator[str]:
    """An Entitlement of team ledger (lena approves alice's requests) onto a group nothing else
    grants: defaultDuration 1h, maxDuration 8h."""
    with system.own_entitlement(
        RAISED,
        RAISED_GROUP,
        owner="ledger",
        defaultDuration="1h",
        maxDuration="8h",
        eligibility={"identityCenterGroups": ["prod-eligible"]},
        approval={"autoApproveOwnerTeam": True},
    ) as name:
        yield name


def _raise_default(system: Jit) -> None:
    """The change in the GitOps repository: requests naming no duration now get 8h."""
    system.kubectl("patch", "entitlement", RAISED, "--type", "merge", "-p", '{"spec":{"defaultDuration":"8h"}}')


def _lasts(grant: dict[str, Any]) -> dt.timedelta:
    status = grant["status"]
    return dt.datetime.fromisoformat(status["expirationTime"]) - dt.datetime.fromisoformat(status["activationTime"])


def test_125_a_default_raised_after_the_approval_does_not_lengthen_a_scheduled_window(
    system: Jit, defaulted: str
) -> None:
    """alice asks for a window naming no duration; she and lena are told 1h (the default), and lena
    approves that. Before the start, the Entitlement's defaultDuration is raised to 8h: at the start
    the grant took the default of that moment, 8h of access that nobody approved."""
    start = (utcnow() + dt.timedelta(seconds=8)).replace(microsecond=0)
    system.request("default-window", defaulted, user=ALICE, startTime=start.strftime("%Y-%m-%dT%H:%M:%SZ"))
    pending = system.wait_reason("accessrequest", "default-window", "Pending")
    assert pending["status"]["duration"] == "1h", pending["status"]
    system.kubectl("annotate", "accessrequest", "default-window", f"{APPROVED}=true", user=LENA)
    approved = system.wait_reason("accessrequest", "default-window", "Scheduled")
    assert approved["status"]["duration"] == "1h", approved["status"]
    _raise_default(system)
    grant = system.wait_reason("accessgrant", "default-window", "Active", timeout=30)
    assert grant["spec"]["duration"] == "1h", grant["spec"]
    assert _lasts(grant) == dt.timedelta(hours=1), grant["status"]
    assert ALICE in system.members(RAISED_GROUP)


def test_125_a_default_raised_while_the_request_waits_does_not_lengthen_what_the_approver_approves(
    system: Jit, defaulted: str
) -> None:
    """The approvers' message (Slack, `kubectl jit status`) says 1h, read from `status.duration`; the
    default is raised to 8h before lena approves: she approves the 1h she was shown."""
    system.request("default-pending", defaulted, user=ALICE)
    pending = system.wait_reason("accessrequest", "default-pending", "Pending")
    assert pending["status"]["duration"] == "1h", pending["status"]
    _raise_default(system)
    time.sleep(1)  # the operator's index has the new default: without the fix, the approval takes it
    system.kubectl("annotate", "accessrequest", "default-pending", f"{APPROVED}=true", user=LENA)
    grant = system.wait_reason("accessgrant", "default-pending", "Active", timeout=30)
    assert grant["spec"]["duration"] == "1h", grant["spec"]
    assert _lasts(grant) == dt.timedelta(hours=1), grant["status"]
    granted = system.wait_reason("accessrequest", "default-pending", "Granted")
    assert granted["status"]["duration"] == "1h", granted["status"]

    # A request created after the change is for the new default, as the Entitlement now says.
    system.request("default-after", defaulted, user=ALICE)
    after = system.wait_reason("accessrequest", "default-after", "Pending")
    assert after["status"]["duration"] == "8h", after["status"]

"""Leader election's rules (`domain.election`): who may take or keep the Lease, and what is written."""

from __future__ import annotations

import datetime as dt

import pytest

from jitaccess.domain.election import LeaseRecord, Timing, claim, released

T0 = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
TIMING = Timing(lease_duration=15, renew_deadline=10, retry_period=2)


def held_by(holder: str, renewed: dt.datetime, transitions: int = 3) -> LeaseRecord:
    return LeaseRecord(holder, 15, T0, renewed, transitions)


def test_no_lease_yet_is_taken_at_once() -> None:
    assert claim(None, "me", T0, unchanged_for=0, timing=TIMING) == LeaseRecord("me", 15, T0, T0, 0)


def test_the_holder_renews_keeping_its_acquire_time() -> None:
    later = T0 + dt.timedelta(seconds=2)
    assert claim(held_by("me", T0), "me", later, unchanged_for=0, timing=TIMING) == LeaseRecord("me", 15, T0, later, 3)


def test_a_live_holder_keeps_it() -> None:
    now = T0 + dt.timedelta(seconds=14)
    assert claim(held_by("other", T0), "me", now, unchanged_for=14, timing=TIMING) is None


@pytest.mark.parametrize(
    ("seconds", "unchanged_for"),
    [(16, 0), (5, 15.5)],  # expired by the wall clock; unchanged for a lease duration on our clock
)
def test_an_expired_lease_is_taken_with_a_transition(seconds: float, unchanged_for: float) -> None:
    now = T0 + dt.timedelta(seconds=seconds)
    assert claim(held_by("other", T0), "me", now, unchanged_for=unchanged_for, timing=TIMING) == LeaseRecord(
        "me", 15, now, now, 4
    )


def test_a_released_lease_is_free_at_once() -> None:
    now = T0 + dt.timedelta(seconds=1)
    free = released(held_by("other", T0), now)
    assert free.holder is None and free.duration_seconds == 1
    assert claim(free, "me", now, unchanged_for=0, timing=TIMING) == LeaseRecord("me", 15, now, now, 4)


def test_timing_must_let_the_leader_stop_before_anyone_takes_over() -> None:
    with pytest.raises(ValueError, match="renew deadline"):
        Timing(lease_duration=10, renew_deadline=10, retry_period=2)
    with pytest.raises(ValueError):
        Timing(lease_duration=15, renew_deadline=10, retry_period=10)
    assert Timing(lease_duration=14.5).lease_seconds == 15

"""A bad setting stops the operator at once with what to fix, never with a traceback (settings.load)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from annotated_types import Le

from jitaccess.settings import TEN_YEARS, Settings, SettingsError, load


def _start(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JITACCESS_")}
    return subprocess.run(
        [sys.executable, "-m", "jitaccess"], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_the_operator_names_each_bad_variable_and_stops() -> None:
    result = _start(JITACCESS_MAX_PENDING_PER_USER="-1", JITACCESS_RATE_LIMIT="fast")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("jitaccess cannot start: fix these settings")
    assert any(
        line.startswith("- JITACCESS_MAX_PENDING_PER_USER='-1': Input should be greater than or equal to 0")
        and "one per entitlement" in line
        for line in lines
    ), lines
    assert any(line.startswith("- JITACCESS_RATE_LIMIT='fast': Input should be a valid number") for line in lines)


def test_leader_election_timing_that_could_split_the_brain_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITACCESS_LEADER_ELECTION", "true")
    monkeypatch.setenv("JITACCESS_RENEW_DEADLINE_SECONDS", "20")
    with pytest.raises(SettingsError) as caught:
        load()
    assert caught.value.code == (
        "jitaccess cannot start: fix these settings (environment variables; the chart's config values):\n"
        "- leader election needs JITACCESS_RETRY_PERIOD_SECONDS < JITACCESS_RENEW_DEADLINE_SECONDS < "
        "JITACCESS_LEASE_DURATION_SECONDS, and they are 2, 20 and 12: a leader must stop acting before anyone "
        "else may take its Lease"
    )
    monkeypatch.setenv("JITACCESS_LEADER_ELECTION", "false")  # one replica: no Lease to take
    assert load().renew_deadline_seconds == 20


SECONDS = sorted(name for name in Settings.model_fields if name.endswith("_seconds"))


def test_every_time_in_seconds_is_at_most_ten_years() -> None:
    assert len(SECONDS) >= 10, SECONDS
    for name in SECONDS:
        assert [m.le for m in Settings.model_fields[name].metadata if isinstance(m, Le)] == [TEN_YEARS], name


@pytest.mark.parametrize("name", SECONDS)
def test_a_time_beyond_ten_years_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Dates computed from it would overflow later, where they are computed: refused at start."""
    for key in [k for k in os.environ if k.startswith("JITACCESS_")]:
        monkeypatch.delenv(key)
    variable = f"JITACCESS_{name.upper()}"
    monkeypatch.setenv(variable, str(TEN_YEARS))
    assert getattr(load(), name) == TEN_YEARS
    for too_long in (str(TEN_YEARS + 1), "1e12", "inf"):
        monkeypatch.setenv(variable, too_long)
        with pytest.raises(SettingsError) as caught:
            load()
        assert f"- {variable}={too_long!r}: Input should be at most ten years, 315360000 seconds" in str(
            caught.value.code
        )

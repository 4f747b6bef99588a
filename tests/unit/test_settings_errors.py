"""A bad setting stops the operator at once with what to fix, never with a traceback (settings.load)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jitaccess.settings import SettingsError, load


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

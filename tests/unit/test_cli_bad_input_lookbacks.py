"""Look-backs and times beyond ten years are refused naming the flag, as durations are
(`parse_duration`): unchecked, they ended in an OverflowError once taken from (or added to) now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitaccess.cli import main, parser, reports, start
from jitaccess.cli.errors import USAGE, UsageError

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["audit", "--since", "800000d"], "argument --since: '800000d' is longer than 3650d (ten years)"),
        (["audit", "--since", "99999999999d"], "argument --since: '99999999999d' is longer than 3650d (ten years)"),
        (["audit", "--until", "5256001m"], "argument --until: '5256001m' is longer than 3650d (ten years)"),
        (
            ["audit", "--access", "--lookback", "9999999d"],
            "argument --lookback: '9999999d' is longer than 3650d (ten years)",
        ),
        (["review", "e", "--days", "1000000"], "argument --days: '1000000' is more than 3650 days (ten years)"),
    ],
)
def test_a_look_back_beyond_ten_years_is_a_usage_error(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main.main(argv)
    assert exited.value.code == USAGE
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_ten_years_is_taken() -> None:
    assert parser.since("3650d") == parser.since("87600h") == timedelta(days=3650)
    built = parser.build_parser()
    assert built.parse_args(["review", "e", "--days", "3650"]).days == 3650
    start_, _ = reports.window(timedelta(days=3650), None, NOW)
    assert start_ == NOW - timedelta(days=3650)


@pytest.mark.parametrize(
    ("since", "until", "flag"),
    [
        ("0001-01-01T00:00:00+01:00", None, "--since"),
        ("2016-11-01T00:00:00Z", None, "--since"),
        ("2026-11-01T00:00:00Z", "9999-12-31T23:00:00-01:00", "--until"),
    ],
)
def test_a_time_beyond_ten_years_is_a_usage_error(since: str, until: str | None, flag: str) -> None:
    with pytest.raises(UsageError, match=rf"^{flag} .* is more than 3650 days \(ten years\) from now"):
        reports.window(parser.moment(since), None if until is None else parser.moment(until), NOW)


def test_a_start_beyond_ten_years_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"^--start '9999-12-31T23:00:00-01:00' is more than 87600h \(ten years\)"):
        start.start_time("9999-12-31T23:00:00-01:00", NOW)
    assert start.start_time("2036-11-30T12:00:00Z", NOW) == datetime(2036, 11, 30, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("argv", "flag", "value"),
    [
        (["request", "prod-eng-payments", "--for", "-5m", "--reason", "INC-1 x"], "--for", "-5m"),
        (["request", "prod-eng-payments", "--reason", "INC-1 x", "--for", "-1h"], "--for", "-1h"),
        (["extend", "g1", "--by", "-30m", "--reason", "INC-1 x"], "--by", "-30m"),
        (["break-glass", "prod-eng-payments", "--reason", "INC-1 x", "--for", "-5"], "--for", "-5"),
        (["request", "prod-eng-payments", "--timeout", "-5m"], "--timeout", "-5m"),
        (["request", "prod-eng-payments", "--for=-5m"], "--for", "-5m"),
    ],
)
def test_a_negative_duration_says_durations_are_positive(
    argv: list[str], flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse alone reads `-5m` as an option and says "expected one argument"."""
    with pytest.raises(SystemExit) as exited:
        main.main(argv)
    assert exited.value.code == USAGE
    err = capsys.readouterr().err
    assert (
        f"argument {flag}: the duration {value!r} is negative: durations are positive, such as 30m, 1h or 1h30m" in err
    ), err


def test_a_duration_flag_before_another_option_is_left_to_argparse() -> None:
    assert parser.attach_negative_durations(["request", "e", "--for", "--reason", "x", "--by", "-2h"]) == [
        "request",
        "e",
        "--for",
        "--reason",
        "x",
        "--by=-2h",
    ]
    built = parser.build_parser()
    assert built.parse_args(["request", "e", "--for", "1h30m"]).duration == "1h30m"

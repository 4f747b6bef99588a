"""Durations as users type them: what parses, and the messages for what does not."""

from datetime import timedelta

import pytest

from jitaccess.domain.durations import format_duration, parse_duration
from jitaccess.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("30m", 1800), ("45s", 45), ("1h30m", 5400), ("2h0m5s", 7205), (" 15m ", 900), ("90m", 5400)],
)
def test_valid_durations_parse(text: str, seconds: int) -> None:
    assert parse_duration(text, "spec.duration") == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["banana", "-1h", "1", "1.5h", "1d", "h", "1h-5m", "1 h"])
def test_garbage_names_the_field_and_the_form(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_duration(text, "spec.duration")
    assert caught.value.field == "spec.duration"
    assert "30m, 1h, 1h30m" in str(caught.value)


@pytest.mark.parametrize("text", ["0s", "0h0m", "0m"])
def test_zero_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="zero: a duration must be positive"):
        parse_duration(text, "spec.duration")


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_is_refused(text: str | None) -> None:
    with pytest.raises(InvalidInput, match="is empty"):
        parse_duration(text, "spec.duration")


@pytest.mark.parametrize("text", ["1h", "30m", "1h30m", "2h5s", "59s", "4h"])
def test_format_is_the_inverse(text: str) -> None:
    assert format_duration(parse_duration(text, "x")) == text


@pytest.mark.parametrize("text", ["87601h", "5256001m", "9999999999999999999999999999999h", "99999999999999999999s"])
def test_beyond_ten_years_is_refused_naming_the_field_not_an_overflow(text: str) -> None:
    # 31 digits fit the CRDs' pattern and length; unchecked, timedelta raised OverflowError.
    with pytest.raises(InvalidInput, match=r"^spec.duration .* is longer than 87600h \(ten years\)"):
        parse_duration(text, "spec.duration")
    assert parse_duration("87600h", "spec.duration") == timedelta(days=3650)

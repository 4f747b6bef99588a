"""Parsing and formatting of the durations users type (`30m`, `1h`, `1h30m`)."""

from __future__ import annotations

import re
from datetime import timedelta

from jitaccess.api import wire
from jitaccess.errors import InvalidInput

_PART = re.compile(r"([0-9]+)(h|m|s)")
_WHOLE = re.compile(r"^([0-9]+(h|m|s))+$")
_UNITS = {"h": 3600, "m": 60, "s": 1}


#: The longest duration any field takes: far above any Entitlement's, and far below an overflow.
LONGEST = timedelta(days=3650)


def parse_duration(text: str | None, field: str) -> timedelta:
    """Parse a duration such as `1h30m`; `field` names where it came from, for the error."""
    if text is None or not text.strip():
        raise InvalidInput(field, "is empty: give a duration such as 30m, 1h or 1h30m")
    cleaned = text.strip()
    if not _WHOLE.match(cleaned):
        raise InvalidInput(
            field, f"{cleaned!r} is not a duration: use whole numbers with units h, m, s (30m, 1h, 1h30m)"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(cleaned))
    if seconds <= 0:
        raise InvalidInput(field, f"{cleaned!r} is zero: a duration must be positive")
    if seconds > LONGEST.total_seconds():
        # Far past anything granted, and past what a date can hold once added to now (an
        # OverflowError): refused here, naming the field, rather than wherever it is added.
        raise InvalidInput(
            field,
            f"{cleaned!r} is longer than {format_duration(LONGEST)} (ten years), the longest duration jitaccess takes",
        )
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest `XhYmZs` form of a positive duration (the inverse of `parse_duration`)."""
    return wire.duration_text(value)

"""`kubectl jit request --start`: when access is to begin, as the engineer types it.

An RFC 3339 time (`2026-12-01T06:00:00Z`, or with an offset: `2026-12-01T07:00:00+01:00`), or a
time from now (`+30m`, `+1h30m`, the units of every duration). Sent as `spec.startTime` in UTC;
whether it is too far ahead is the operator's to say (its horizon is a setting of the operator),
and the server-side dry run says it before anything is created.
"""

from __future__ import annotations

from datetime import datetime

from jitaccess.api import wire
from jitaccess.cli.errors import UsageError
from jitaccess.domain.durations import LONGEST, format_duration, parse_duration
from jitaccess.errors import InvalidInput


def start_time(text: str, now: datetime) -> datetime:
    """The start that `text` means at `now`; `UsageError` naming --start and the forms it takes."""
    cleaned = text.strip()
    if cleaned.startswith("+"):
        try:
            return (now + parse_duration(cleaned[1:], "--start")).replace(microsecond=0)
        except InvalidInput as exc:
            raise UsageError(f"{exc} (a time from now is written +30m, +1h30m)") from exc
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise UsageError(
            f"--start {cleaned!r} is not a time: give one in RFC 3339 (2026-12-01T06:00:00Z) or from now (+30m)"
        ) from exc
    if parsed.tzinfo is None:
        raise UsageError(
            f"--start {cleaned!r} has no time zone: add Z for UTC (2026-12-01T06:00:00Z) or an offset (+01:00)"
        )
    if parsed < now:
        raise UsageError(f"--start {cleaned!r} is in the past: give a time to come, or leave --start out")
    if parsed - now > LONGEST:  # as +DURATION is capped; year 9999 overflows once put in UTC
        raise UsageError(
            f"--start {cleaned!r} is more than {format_duration(LONGEST)} (ten years) ahead, the furthest "
            "jitaccess takes: give a nearer time"
        )
    return parsed


def wire_text(start: datetime) -> str:
    """`spec.startTime` as sent: RFC 3339 in UTC, whole seconds."""
    return wire.rfc3339(start)

"""How the plugin writes things down: ages, expiry times, tables, JSON and YAML, all of it printable.

Whatever came from the API server (a reason, a message, a name) reaches a terminal only through
`printable`: a character the terminal would act on (an escape sequence, BEL, a bidirectional
override) is shown as an escape (`\\x1b`, `\\u202e`) instead. The webhook already refuses such
characters in reasons; this holds for every other field, and for objects stored before that rule.
JSON and YAML output escape them by themselves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO


def printable(text: str, *, lines: bool = False) -> str:
    """`text` with every non-printable character escaped; with `lines`, newlines are kept."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or (lines and c == "\n") else ascii(c)[1:-1] for c in text)


def human_age(seconds: float) -> str:
    """kubectl's short age: 45s, 3m20s, 42m, 2h5m, 30h, 3d4h, 9d."""
    s = max(0, int(seconds))
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def age(then: datetime | None, now: datetime | None = None) -> str:
    if then is None:
        return "<unknown>"
    return human_age(((now or datetime.now(UTC)) - then).total_seconds())


def until(when: datetime | None, now: datetime | None = None) -> str:
    """An expiry for people: local time, and how far away (`14:32:05 UTC (in 59m)`)."""
    if when is None:
        return "-"
    now = now or datetime.now(UTC)
    local = when.astimezone()
    today = now.astimezone().date()
    clock = f"{local:%H:%M:%S %Z}" if local.date() == today else f"{local:%Y-%m-%d %H:%M:%S %Z}"
    left = round((when - now).total_seconds())
    return f"{clock} (in {human_age(left)})" if left > 0 else f"{clock} ({human_age(-left)} ago)"


def columns(text: str) -> int:
    """How many terminal columns printable `text` takes: a CJK character or an emoji two, a
    combining accent or a joiner none. ASCII, nearly every cell, is counted without wcwidth (its
    import costs the plugin's start ~50 ms)."""
    if text.isascii():
        return len(text)
    import wcwidth

    counted = wcwidth.wcswidth(text)
    return counted if counted >= 0 else len(text)


def table(rows: Sequence[Sequence[str]], headers: Sequence[str], out: TextIO, *, indent: str = "") -> None:
    """kubectl-style columns: upper-case headers, three spaces between columns, aligned by the
    columns each cell takes on the terminal (a reason in Japanese or with an emoji included)."""
    cells = [list(headers), *[[printable(cell) for cell in r] for r in rows]]
    widths = [max(columns(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        line = "   ".join(cell + " " * (width - columns(cell)) for cell, width in zip(row, widths, strict=True))
        out.write(indent + line.rstrip() + "\n")


def shorten(text: str, width: int) -> str:
    """`text` on one line in at most `width` terminal columns, cut with an ellipsis."""
    flat = " ".join(text.split())
    if columns(flat) <= width:
        return flat
    kept, used = "", 0
    for char in flat:
        used += columns(char)
        if used > width - 1:
            break
        kept += char
    return kept + "…"


def dump(data: Any, output: str, out: TextIO) -> None:
    if output == "json":
        out.write(json.dumps(data, indent=2) + "\n")
    else:
        import yaml

        out.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def as_list(items: Sequence[Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": list(items)}

"""Free text that people write (reasons): how long it may be and which characters it may not hold.

A reason is read by someone else, often in a terminal: an approver runs `kubectl jit status`,
`kubectl jit list --pending` or `kubectl get accessrequests -o wide`. A character the terminal
acts on instead of showing (an escape sequence, BEL, a bidirectional override that reorders the
rest of the line) would let a requester rewrite what the approver reads. So a reason is one line
of printable text: no C0 or C1 control character (tab and newline included), no DEL, no U+FFFD
(what a broken encoding leaves behind), no bidirectional control, no line or paragraph separator
(a second line in Slack and some viewers), and nothing invisible (zero-width characters, tag
characters, the soft hyphen), which would hide text from the approver that tools still read
(`api.limits.FORBIDDEN_RANGES`).
The length limit keeps a reason a sentence and a ticket id, and bounds what CEL rules may cost.
Names that people write (a team's approvers) are listed in the operator's messages within bounds
too (`listed`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from jitaccess.api.limits import FORBIDDEN_RANGES, NAME_SHOWN_MAX_LENGTH, NAMES_LISTED, REASON_MAX_LENGTH

# Control characters have no Unicode name, only these abbreviations (and DEL's).
_C0_NAMES = [
    "NUL",
    "SOH",
    "STX",
    "ETX",
    "EOT",
    "ENQ",
    "ACK",
    "BEL",
    "BS",
    "TAB",
    "LF",
    "VT",
    "FF",
    "CR",
    "SO",
    "SI",
    "DLE",
    "DC1",
    "DC2",
    "DC3",
    "DC4",
    "NAK",
    "SYN",
    "ETB",
    "CAN",
    "EM",
    "SUB",
    "ESC",
    "FS",
    "GS",
    "RS",
    "US",
]


def is_forbidden(char: str) -> bool:
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in FORBIDDEN_RANGES)


def first_forbidden(text: str) -> int | None:
    """The index of the first character a reason may not hold, or None."""
    return next((i for i, char in enumerate(text) if is_forbidden(char)), None)


def describe(char: str) -> str:
    """`U+001B (ESC)`, `U+202E (RIGHT-TO-LEFT OVERRIDE)`: what a message calls a character."""
    code = ord(char)
    if code < 0x20:
        name = _C0_NAMES[code]
    elif code == 0x7F:
        name = "DEL"
    elif code <= 0x9F:
        name = "a C1 control character"
    else:
        name = unicodedata.name(char, "unnamed")
    return f"U+{code:04X} ({name})"


def problem(where: str, text: str, max_length: int = REASON_MAX_LENGTH) -> str | None:
    """Why `text`, found at `where` (e.g. `spec.reason`), cannot be stored; None when it can."""
    if len(text) > max_length:
        return (
            f"{where} is {len(text)} characters long, above the limit of {max_length}: "
            "shorten it (a ticket id and a sentence are enough)"
        )
    index = first_forbidden(text)
    if index is None:
        return None
    return (
        f"{where} holds {describe(text[index])} at character {index + 1}: control characters (tab and "
        "newline included), DEL, U+FFFD, bidirectional-text controls, line separators and invisible "
        "characters are not allowed, because whoever reads it would get what they do, or nothing, not "
        "what they are; write it as one line of plain text"
    )


def listed(names: Sequence[str], *, nobody: str = "nobody", most: int = NAMES_LISTED) -> str:
    """`a, b, c and 95 more`: the first `most` of `names` (`NAMES_LISTED` unless a message names
    fewer), each cut with an ellipsis past `NAME_SHOWN_MAX_LENGTH` characters, for a message the
    operator writes in a status or an Event: however many names, and however long, a team holds,
    the message stays a few kilobytes (`api.limits.NAMES_LISTED`). `nobody` when there are none."""
    shown = [n if len(n) <= NAME_SHOWN_MAX_LENGTH else n[: NAME_SHOWN_MAX_LENGTH - 1] + "…" for n in names[:most]]
    rest = len(names) - len(shown)
    return ", ".join(shown) + (f" and {rest} more" if rest > 0 else "") if shown else nobody

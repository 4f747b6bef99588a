"""An Entitlement's reason policy: what the `spec.reason` of its requests must look like.

Auditors want every reason to carry a ticket. The Entitlement (GitOps-owned) says how:

- `reasonPattern`: a regular expression the reason must contain a match of (a search: anchor it
  with `^` to say "starts with"), in RE2's syntax;
- `reasonExample`: a reason that passes, such as "INC-1234 roll back the deploy". A refusal shows
  the pattern and this example, and `kubectl jit request` prompts with both, so whoever is refused
  reads what would pass. Admission refuses an Entitlement whose pattern does not compile or whose
  example fails its own pattern: an example that would be refused teaches the wrong thing.

The request is checked at admission (`kubectl create --dry-run=server` tells in advance) and again
by the operator before anything is granted, with the same words. A CEL expression over the request
(the issue's alternative to a pattern) is not offered: see docs/api.md, "Reason policy".

Patterns are matched by RE2 (`google-re2`), not Python's `re`: RE2 matches in time linear in the
reason's length, whatever the pattern. `re` backtracks, and a pattern such as `^([a-z]+ ?)+$` takes
seconds to minutes on a sixty-character reason that fails it, holding the interpreter's lock all
the while: every webhook of the replica would time out and expiries would wait, for any requester
who typed such a reason. RE2 refuses what it cannot match in linear time (backreferences,
lookaround), which admission then reports as the pattern's fault. It loads in a few milliseconds,
so the `kubectl jit` plugin checks a typed reason with these same rules before it sends anything.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import re2  # type: ignore[import-untyped]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # noqa: V101 - the refusal says what is wrong; RE2's own log line would go to stderr


#: The largest compiled pattern accepted, in RE2 instructions. Linear time is still time: a legal
#: 512-character pattern of fifty `a.{950,999}c` alternatives compiles to ~390,000 instructions and
#: takes half a second on a long reason, on the operator's event loop. Real ticket patterns are tens
#: of instructions; `^.{10,1000}$` (any character, as UTF-8) is about 9,000.
MAX_PROGRAM_SIZE = 20_000


class PatternError(ValueError):
    """A reasonPattern RE2 cannot compile; the message says why."""


@functools.lru_cache(maxsize=256)
def compiled(pattern: str) -> Any:
    """The compiled pattern (kept: every request of an Entitlement is checked against the same one);
    `PatternError` when RE2 refuses it."""
    try:
        regexp = re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternError(detail) from None
    if regexp.programsize > MAX_PROGRAM_SIZE:
        raise PatternError(
            f"too large to check quickly: {regexp.programsize} instructions, at most {MAX_PROGRAM_SIZE}; "
            "use smaller repetition counts"
        )
    return regexp


def search(pattern: str, text: str) -> bool:
    """Whether `text` contains a match of `pattern`; `PatternError` for a pattern RE2 refuses."""
    return compiled(pattern).search(text) is not None


#: The reason fields of an EntitlementSpec, as the wire spells them.
PATTERN, EXAMPLE = "reasonPattern", "reasonExample"


def _quoted(text: str) -> str:
    return repr(text)


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is not a usable regular expression, or None."""
    try:
        compiled(pattern)
    except PatternError as exc:
        return (
            f"is not a valid regular expression ({exc}; patterns use RE2's syntax, without backreferences "
            "or lookaround, so that every reason is checked in linear time)"
        )
    return None


def fix_text(example: str | None) -> str:
    """What to do about a reason the pattern refused: cite a ticket, as the example does."""
    if example:
        return f"cite a ticket, for example {_quoted(example)}"
    return "cite a ticket (the entitlement gives no reasonExample)"


def mismatch(reason: str, pattern: str | None, example: str | None, entitlement: str = "the entitlement") -> str | None:
    """Why `reason` fails the pattern, in words that follow "spec.reason"; None when it passes (or
    there is no pattern). Raises `PatternError` for a pattern that does not compile: that is the
    Entitlement's fault, which the caller words."""
    if not pattern or search(pattern, reason):
        return None
    owner = "the entitlement's" if entitlement == "the entitlement" else f"{entitlement}'s"
    return f"{_quoted(reason)} does not match {owner} reasonPattern {_quoted(pattern)}: {fix_text(example)}"


def prompt_hint(pattern: str | None, example: str | None) -> str:
    """The words after "Why do you need it?": the pattern and an example, when the entitlement has them."""
    parts = ([f"must match {pattern}"] if pattern else []) + ([f"e.g. {example}"] if example else [])
    return f" ({'; '.join(parts)})" if parts else ""


def entitlement_problem(spec: Mapping[str, Any]) -> str | None:
    """Why an EntitlementSpec's reason policy cannot stand (the pattern does not compile, the example
    fails it), naming the field and the fix; None when it holds."""
    pattern, example = spec.get(PATTERN), spec.get(EXAMPLE)
    if isinstance(pattern, str) and pattern:
        problem = pattern_problem(pattern)
        if problem is not None:
            return f"spec.{PATTERN} {_quoted(pattern)} {problem}: fix the expression"
        if isinstance(example, str) and not search(pattern, example):
            return (
                f"spec.{EXAMPLE} {_quoted(example)} does not match spec.{PATTERN} {_quoted(pattern)}: requesters "
                "are shown the example as a reason that passes, so give one that matches the pattern "
                "(e.g. 'INC-1234 roll back the deploy' for '^[A-Z]+-[0-9]+')"
            )
    return None

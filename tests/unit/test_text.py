"""The rule for free text people write (`jitaccess.domain.text`), and the CRD schema that mirrors it."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pytest

from jitaccess.api import crdgen, limits, wire
from jitaccess.domain import text

# One of each kind of character a terminal acts on instead of showing.
FORBIDDEN = {
    "\x00": "U+0000 (NUL)",
    "\x07": "U+0007 (BEL)",
    "\t": "U+0009 (TAB)",
    "\n": "U+000A (LF)",
    "\r": "U+000D (CR)",
    "\x1b": "U+001B (ESC)",
    "\x7f": "U+007F (DEL)",
    "\x85": "U+0085 (a C1 control character)",
    "\x9b": "U+009B (a C1 control character)",
    "\u061c": "U+061C (ARABIC LETTER MARK)",
    "\u200e": "U+200E (LEFT-TO-RIGHT MARK)",
    "\u200f": "U+200F (RIGHT-TO-LEFT MARK)",
    "\u202a": "U+202A (LEFT-TO-RIGHT EMBEDDING)",
    "\u202e": "U+202E (RIGHT-TO-LEFT OVERRIDE)",
    "\u2066": "U+2066 (LEFT-TO-RIGHT ISOLATE)",
    "\u2069": "U+2069 (POP DIRECTIONAL ISOLATE)",
    "\ufffd": "U+FFFD (REPLACEMENT CHARACTER)",
    "\u034f": "U+034F (COMBINING GRAPHEME JOINER)",
    "\u3164": "U+3164 (HANGUL FILLER)",
    "\u2800": "U+2800 (BRAILLE PATTERN BLANK)",
    "\ufe00": "U+FE00 (VARIATION SELECTOR-1)",
    "\U000e01ef": "U+E01EF (VARIATION SELECTOR-256)",
}


def _spec_schema(kind: str) -> dict[str, Any]:
    crd = next(crdgen.crd(k) for k in crdgen.KINDS if k.kind == kind)
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


ALLOWED = [
    "INFRA-2441 fix stuck batch",
    "Störung im Zahlungslauf",
    "支払いバッチの修正",
    "🔥 SEV-1",
    "\u26a0\ufe0f SEV-1",  # an emoji's presentation selector (VS16) stays allowed
    "\u2764\ufe0e",
    "a\u00a0b",
    "x" * 1024,
]


@pytest.mark.parametrize("char", FORBIDDEN, ids=lambda c: f"U+{ord(c):04X}")
def test_a_forbidden_character_is_named_with_its_position(char: str) -> None:
    problem = text.problem("spec.reason", f"INFRA-1 {char}x")
    assert problem is not None
    assert problem.startswith(f"spec.reason holds {FORBIDDEN[char]} at character 9: ")
    assert "one line of plain text" in problem


@pytest.mark.parametrize("value", ALLOWED, ids=lambda v: v[:12])
def test_plain_text_in_any_script_is_allowed(value: str) -> None:
    assert text.problem("spec.reason", value) is None


def test_the_first_forbidden_character_is_the_one_reported() -> None:
    assert text.first_forbidden("ok\u202eok\x1b") == 2
    assert text.first_forbidden("fine") is None


def test_length_is_bounded_in_characters_not_bytes() -> None:
    assert text.problem("spec.reason", "é" * limits.REASON_MAX_LENGTH) is None
    problem = text.problem("metadata.annotations[jitaccess.dev/decision-reason]", "x" * 10_000)
    assert problem == (
        "metadata.annotations[jitaccess.dev/decision-reason] is 10000 characters long, above the limit of 1024: "
        "shorten it (a ticket id and a sentence are enough)"
    )


def test_every_c0_c1_and_bidi_control_separator_and_invisible_character_is_forbidden_and_nothing_else() -> None:
    invisible = "\u00ad\u034f\u115f\u1160\u180e\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\u2800\u3164"
    invisible += "\ufeff\uffa0\ufff9\ufffa\ufffb" + "".join(map(chr, range(0xFE00, 0xFE0E)))
    invisible += "".join(map(chr, range(0xE0100, 0xE01F0)))
    for code in [*range(0x2100), 0x2800, 0x3164, *range(0xFE00, 0x10000), *range(0xE0000, 0xE0200)]:
        char = chr(code)
        control = unicodedata.category(char) in ("Cc", "Zl", "Zp") or unicodedata.bidirectional(char) in (
            "LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI",
        )  # fmt: skip
        marks = char in "\u061c\u200e\u200f\ufffd" + invisible
        tags = 0xE0000 <= code <= 0xE007F
        assert text.is_forbidden(char) == (control or marks or tags), f"U+{code:04X}"
    assert text.problem("spec.reason", "INC-14 fix\u2028(pre-approved by paula)") is not None


def test_the_crd_refuses_the_same_characters_with_cel() -> None:
    """The CEL rule on spec.reason is built from the same ranges; RE2's `\\x{...}` read as Python's."""
    reason = _spec_schema("AccessRequest")["properties"]["reason"]
    assert reason["maxLength"] == limits.REASON_MAX_LENGTH
    rule = next(r["rule"] for r in reason["x-kubernetes-validations"] if r["rule"].startswith("!"))
    cel_literal = re.fullmatch(r"!self\.matches\('(.*)'\)", rule)
    assert cel_literal is not None
    as_re2 = cel_literal.group(1).replace("\\\\", "\\")
    as_python = re.compile(re.sub(r"\\x\{([0-9a-f]+)\}", lambda m: f"\\U{int(m.group(1), 16):08x}", as_re2))
    for code in [*range(0x10000), *range(0xE0000, 0xE0100)]:
        assert bool(as_python.search(chr(code))) == text.is_forbidden(chr(code)), f"U+{code:04X}"


@pytest.mark.parametrize(
    ("kind", "path", "bound"),
    [
        ("AccessRequest", ("entitlement",), limits.NAME_MAX_LENGTH),
        ("AccessRequest", ("duration",), limits.DURATION_MAX_LENGTH),
        ("Entitlement", ("reasonPattern",), limits.PATTERN_MAX_LENGTH),
        ("Entitlement", ("maxDuration",), limits.DURATION_MAX_LENGTH),
        ("TeamOwnership", ("escalateAfter",), limits.DURATION_MAX_LENGTH),
    ],
)
def test_strings_people_write_are_bounded_in_the_schema(kind: str, path: tuple[str, ...], bound: int) -> None:
    node = _spec_schema(kind)
    for key in path:
        node = node["properties"][key]
    assert node["maxLength"] == bound


@pytest.mark.parametrize(
    ("value", "is_set"),
    [("true", True), ("TRUE", False), ("True", False), ("true ", False), (" true", False), ("yes", False),
     ("1", False), ("", False), (None, False)],
)  # fmt: skip
def test_a_decision_annotation_is_set_only_by_exactly_true(value: str | None, is_set: bool) -> None:
    assert wire.truthy(value) is is_set


def test_a_list_of_names_is_bounded_in_count_and_length_and_a_message_may_name_fewer() -> None:
    many = [f"user-{n}" for n in range(limits.NAMES_LISTED + 5)]
    assert text.listed(many) == ", ".join(many[: limits.NAMES_LISTED]) + " and 5 more"
    assert text.listed(many, most=3) == "user-0, user-1, user-2 and 12 more"
    assert text.listed(many[:3], most=3) == "user-0, user-1, user-2"
    long = "x" * (limits.NAME_SHOWN_MAX_LENGTH + 1)
    assert text.listed([long], most=3) == "x" * (limits.NAME_SHOWN_MAX_LENGTH - 1) + "…"
    assert text.listed([], most=3) == "nobody"

"""`kubectl jit` never lets text from the API server act on the terminal: it prints escapes instead.

The objects here are crafted (admission refuses such reasons today), standing for ones stored
before that rule, fields it does not cover, or a hostile API server.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from jitaccess.api import names
from jitaccess.cli import main, text, views
from jitaccess.cli import objects as o
from jitaccess.cli.errors import Refused
from jitaccess.cli.kube import ApiError
from jitaccess.cli.objects import Identity
from jitaccess.cli.prompts import Prompter
from jitaccess.cli.session import ClusterFlags, Session
from jitaccess.cli.text import printable

# Clears the screen and writes "approved", rings the bell, reverses the rest of the line.
HOSTILE = "INC-1 \x1b[2J\x1b[1;1Happroved\x07 \u202etxt.exe\x00\x9b31m"
ESCAPED = "INC-1 \\x1b[2J\\x1b[1;1Happroved\\x07 \\u202etxt.exe\\x00\\x9b31m"
REQUEST = {
    "metadata": {
        "name": "bob-prod-eng-payments-abcde",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "annotations": {names.ANNOTATION_APPROVED: "true", names.ANNOTATION_APPROVED_BY: "paula\x1b[8m"},
    },
    "spec": {"entitlement": "prod-eng-payments", "requester": "bob@example.com", "reason": HOSTILE},
    "status": {
        "requester": "bob@example.com",
        "decisionReason": "ok\x1b]0;title\x07",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Pending", "message": "waiting\x1b[A", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ],
    },
}  # fmt: skip


class FakeApi:
    def __init__(self, *objects: tuple[str, dict[str, Any]]) -> None:
        self.objects = {o.path(plural, obj["metadata"]["name"]): obj for plural, obj in objects}

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        if path in self.objects:
            return self.objects[path]
        if path.count("/") == 4:
            return {"items": [v for k, v in self.objects.items() if k.startswith(path + "/")], "metadata": {}}
        raise ApiError(404, "NotFound", f"{path} not found", {"name": path.rsplit("/", 1)[1]})

    def close(self) -> None:
        pass


def session(*objects: tuple[str, dict[str, Any]]) -> Session:
    made = Session(ClusterFlags(), io.StringIO(), io.StringIO(), io.StringIO())
    made.__dict__["api"] = FakeApi(*objects)
    made.__dict__["me"] = Identity("paula@example.com", frozenset())
    return made


def written(s: Session) -> str:
    return s.out.getvalue() + s.err.getvalue()  # type: ignore[attr-defined, no-any-return]


def assert_inert(text: str) -> None:
    """Nothing a terminal acts on: only printable characters and line ends."""
    assert all(c.isprintable() or c == "\n" for c in text), repr(text)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (HOSTILE, ESCAPED),
        ("tab\there, newline\nthere", "tab\\there, newline\\nthere"),
        ("\u200e\u2066\u2028\U000e0041", "\\u200e\\u2066\\u2028\\U000e0041"),
        ("Störung 支払い 🔥 plain", "Störung 支払い 🔥 plain"),
    ],
)
def test_printable_escapes_what_a_terminal_would_act_on(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable("two\nlines\x1b", lines=True) == "two\nlines\\x1b"


def test_status_escapes_the_reason_the_decision_and_the_messages() -> None:
    s = session((names.REQUESTS, REQUEST))
    assert views.status(s, "bob-prod-eng-payments-abcde", output="table") == 0
    shown = written(s)
    assert_inert(shown)
    assert re.search(rf"^Reason: +{re.escape(ESCAPED)}$", shown, re.MULTILINE), shown
    assert "paula\\x1b[8m" in shown
    assert "waiting\\x1b[A" in shown


def test_list_pending_escapes_the_reason_column() -> None:
    s = session((names.REQUESTS, REQUEST))
    assert views.list_requests(s, pending=True, mine=False, team=None, output="table") == 0
    shown = written(s)
    assert_inert(shown)
    assert "INC-1 \\x1b[2J\\x1b[1;1Happroved\\x07 \\u202etxt.e" in shown


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_json_and_yaml_output_escape_by_themselves(output: str) -> None:
    s = session((names.REQUESTS, REQUEST))
    views.list_requests(s, pending=False, mine=False, team=None, output=output)
    assert_inert(written(s))


def test_a_refusal_quoting_the_server_is_escaped() -> None:
    stderr = io.StringIO()
    main.report(Refused(f"the API server said: {HOSTILE}\nsecond line"), stderr)
    assert stderr.getvalue() == f"error: the API server said: {ESCAPED}\nsecond line\n"


def test_say_note_and_pick_lists_are_escaped() -> None:
    s = session()
    s.say(f"approved: {HOSTILE}")
    s.note("hint\x1b[31m")
    assert written(s) == f"approved: {ESCAPED}\nhint\\x1b[31m\n"
    err = io.StringIO()
    prompter = Prompter(io.StringIO("1\n"), err)
    assert prompter.choose("Which entitlement?", [("prod\x1b[8m", "group \u202eevil")]) == 0
    assert_inert(err.getvalue())
    assert "prod\\x1b[8m   group \\u202eevil" in err.getvalue()


def test_tables_align_by_terminal_columns() -> None:
    """A reason in Japanese or with an emoji takes two columns a character: the columns after it
    still line up, and shortening counts columns, not characters."""
    rows = [("INC-1 決済バッチが停止", "paula"), ("INC-2 🔥 rollback", "lena"), ("INC-3 café", "carol")]
    out = io.StringIO()
    text.table(rows, ("REASON", "APPROVED BY"), out)
    lines = out.getvalue().splitlines()
    starts = {
        text.columns(line[: line.index(who)])
        for line, who in zip(lines, ("APPROVED", "paula", "lena", "carol"), strict=True)
    }
    assert starts == {22 + 3}, lines
    assert text.columns("INC-1 決済バッチが停止") == 6 + 2 * 8
    assert text.columns("cafe\u0301") == 4 and text.columns("plain") == 5
    cut = text.shorten("INC-1 決済バッチが停止しました", 12)
    assert cut == "INC-1 決済…" and text.columns(cut) == 11
    assert text.shorten("INC-1 short", 40) == "INC-1 short" and text.shorten("x" * 50, 10) == "x" * 9 + "…"

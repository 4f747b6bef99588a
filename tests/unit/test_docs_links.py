"""The documentation stays whole: every relative link resolves inside the repository (and every
`#anchor` to a heading of its file), nothing points outside it, and the numbered attacks of
docs/security.md are the numbered sections of tests/e2e/test_attacks.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted(
    [
        REPO / "README.md",
        REPO / "bench" / "README.md",
        REPO / "charts" / "jitaccess" / "README.md",
        *(REPO / "docs").glob("*.md"),
    ]
)
# test_attacks.py, and the files that carry on its numbering (test_attacks_<topic>.py).
ATTACK_TESTS = sorted((REPO / "tests" / "e2e").glob("test_attacks*.py"))

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
# [text](target) and ![alt](target), the target up to an optional "title"; [label]: target.
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.M)
_EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where brackets are not links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def links(text: str) -> list[str]:
    prose = _prose(text)
    return [m.group(1) for m in _INLINE.finditer(prose)] + [m.group(1) for m in _REFERENCE.finditer(prose)]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: links reduced to their text, lower case, punctuation
    dropped (hyphens and underscores kept), spaces made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor of a markdown document; repeated headings get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for match in _HEADING.finditer(_FENCE.sub("", text)):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(document: Path, root: Path = REPO) -> list[str]:
    """What is wrong with the relative links of `document`, one sentence each."""
    problems = []
    root = root.resolve()
    for link in links(document.read_text()):
        if _EXTERNAL.match(link):
            continue
        path_part, _, anchor = link.partition("#")
        target = (document.parent / path_part).resolve() if path_part else document.resolve()
        if not target.is_relative_to(root):
            problems.append(f"{link}: leaves the repository ({target})")
        elif not target.exists():
            problems.append(f"{link}: {target.relative_to(root)} does not exist")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target.read_text()):
            problems.append(f"{link}: no heading #{anchor} in {target.relative_to(root)}")
    return problems


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_inside_the_repository(document: Path) -> None:
    assert broken_links(document) == []


def test_broken_links_are_found(tmp_path: Path) -> None:
    """The check itself: each kind of broken link is reported, and the sound ones are not."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "api.md").write_text("# The API\n\n## Annotations\n\n## Annotations\n")
    (root / "docs" / "guide.md").write_text(
        "See [the API](api.md), [annotations](api.md#annotations), [again](api.md#annotations-1),\n"
        "[here](#usage) and [the root](../docs/api.md).\n\n## Usage\n\n"
        "Broken: [gone](missing.md), [no heading](api.md#conditions), [outside](../../shared/design/API.md),\n"
        "[self](#nowhere).\n\n[ref]: ../README.md\n\n"
        "```sh\necho [not a link](nowhere.md)\n```\n`[nor this](nowhere.md)`, [web](https://example.com/x.md)\n"
    )
    assert broken_links(root / "docs" / "guide.md", root) == [
        "missing.md: docs/missing.md does not exist",
        "api.md#conditions: no heading #conditions in docs/api.md",
        f"../../shared/design/API.md: leaves the repository ({tmp_path / 'shared' / 'design' / 'API.md'})",
        "#nowhere: no heading #nowhere in docs/guide.md",
        "../README.md: README.md does not exist",
    ]


def test_the_documents_are_found() -> None:
    names = {str(p.relative_to(REPO)) for p in DOCUMENTS}
    assert {"README.md", "docs/api.md", "docs/security.md", "bench/README.md"} <= names
    assert links((REPO / "README.md").read_text()), "README.md links its documentation"


def test_slugs_follow_github() -> None:
    assert slug("Usernames must match Identity Center") == "usernames-must-match-identity-center"
    assert slug("What is refused: the attacks") == "what-is-refused-the-attacks"
    assert slug("`kubectl jit` and [RBAC](rbac.md)") == "kubectl-jit-and-rbac"


def test_nothing_refers_outside_the_repository() -> None:
    """Design notes outside the repository are not the documentation: docs/ is. They are found by
    path, or by their upper-case names (the repository's documents are lower-case, but README.md)."""
    outside = re.compile(r"\.\./shared/|/work/shared|\b(API|AWS|NODE|SECURITY|STYLE|TESTENV)\.md\b")
    offenders = []
    for directory in ("operator", "tests", "docs", "bench", "charts", "examples", "devenv"):
        for path in (REPO / directory).rglob("*"):
            if path.suffix in {".py", ".md", ".yaml", ".yml", ".tpl", ".txt", ".sh", ".go"} and path != Path(__file__):
                offenders += [
                    f"{path.relative_to(REPO)}:{n}" for n, line in enumerate(path.open(), 1) if outside.search(line)
                ]
    readme = (REPO / "README.md").read_text()
    assert offenders == [] and not outside.search(readme)


def _security_attacks() -> list[int]:
    text = (REPO / "docs" / "security.md").read_text()
    return [int(n) for n in re.findall(r"^\| (\d+) \|", text, re.M)]


def _attack_sections() -> dict[int, list[str]]:
    """Attack number -> the tests under its `# --- N. ...` section header."""
    sections: dict[int, list[str]] = {}
    for path in ATTACK_TESTS:
        current: int | None = None  # a section ends with its file
        for line in path.read_text().splitlines():
            header = re.match(r"# --- (\d+)\. ", line)
            if header:
                current = int(header.group(1))
                sections.setdefault(current, [])
            elif line.startswith("# --- "):
                current = None
            test = re.match(r"(?:async )?def (test_\w+)", line)
            if test and current is not None:
                sections[current].append(test.group(1))
    return sections


def test_attacks_in_security_md_are_the_numbered_sections_of_the_attack_tests() -> None:
    attacks, sections = _security_attacks(), _attack_sections()
    assert attacks and attacks == sorted(set(attacks)), "docs/security.md: each attack has its own number, in order"
    untested = sorted(set(attacks) - set(sections))
    undocumented = sorted(set(sections) - set(attacks))
    assert (untested, undocumented) == ([], []), (
        "attacks of docs/security.md without a `# --- N.` section in tests/e2e/test_attacks*.py, "
        "and sections without a row in docs/security.md"
    )
    assert {n: tests for n, tests in sections.items() if not tests} == {}, "an attack section without a test"
    for number, tests in sections.items():
        numbered = [t for t in tests if re.match(r"test_\d+_", t)]
        assert all(t.startswith(f"test_{number:02d}_") for t in numbered), (number, numbered)

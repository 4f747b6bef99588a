"""The audit archive's chain (domain/chain.py): what `verify` finds when a batch is changed,
replaced, deleted or slipped in, and that an intact chain finds nothing wrong."""

from __future__ import annotations

from collections.abc import Callable

from jitaccess.domain import chain


def line(count: int, start: str = "2026-12-02") -> list[chain.Stored]:
    """`count` batches as the operator writes them, each naming the one before."""
    made: list[chain.Stored] = []
    previous: chain.Link | None = None
    for n in range(count):
        key = f"audit/v1/{start.replace('-', '/')}/{start.replace('-', '')}T10{n:02d}00.000000Z-{n:016x}.jsonl"
        data = f'{{"id": "u{n}/requested"}}\n'.encode()
        made.append(chain.Stored(key, data, chain.metadata(data, previous)))
        previous = chain.Link(key, chain.digest(data))
    return made


def problems(stored: list[chain.Stored], earlier: Callable[[str], str | None] = lambda _: None) -> list[str]:
    return [f"{f.key.removesuffix('.jsonl')[-1]}: {f.text}" for f in chain.verify(stored, earlier) if f.problem]


def test_an_intact_chain_has_no_problem_and_says_where_it_starts() -> None:
    findings = chain.verify(line(4), lambda _: None)
    assert [f.problem for f in findings] == [False]
    assert "a chain starts here" in findings[0].text


def test_a_batch_changed_in_place_shows_twice() -> None:
    stored = line(3)
    stored[1] = chain.Stored(stored[1].key, b'{"id": "forged"}\n', stored[1].metadata)
    assert problems(stored) == [
        "1: changed after it was written: its bytes no longer have its digest",
        f"1: changed or replaced since {stored[2].key} was written after it: its digest differs",
    ]


def test_a_batch_replaced_with_a_digest_to_match_is_caught_by_its_successor_and_its_versions() -> None:
    stored = line(3)
    forged = b'{"id": "forged"}\n'
    meta = {**stored[1].metadata, chain.DIGEST: chain.digest(forged)}
    stored[1] = chain.Stored(stored[1].key, forged, meta, versions=2)
    assert problems(stored) == [
        f"1: changed or replaced since {stored[2].key} was written after it: its digest differs",
        "1: the bucket holds 2 versions of it: jitaccess writes a key once",
    ]


def test_a_deleted_batch_shows_as_missing_and_as_a_gap() -> None:
    stored = line(3)
    gone = stored.pop(1)
    assert problems(stored) == [
        "0: no later batch follows it: the one after it is missing, or it was slipped in",
        f"2: follows {gone.key}, which is missing: deleted?",
    ]
    marked = line(3)
    marked[1] = chain.Stored(marked[1].key, None, {}, versions=2)
    assert problems(marked) == [
        "0: no later batch follows it: the one after it is missing, or it was slipped in",
        "1: deleted (its current version is a delete marker)",
        "1: the bucket holds 2 versions of it: jitaccess writes a key once",
        f"2: follows {marked[1].key}, which is missing: deleted?",
    ]


def test_a_batch_slipped_in_forks_the_chain() -> None:
    stored = line(3)
    data = b'{"id": "made-up"}\n'
    inserted = chain.Stored(
        stored[1].key.replace("-0000000000000001", "-00000000000000ff"),
        data,
        chain.metadata(data, chain.Link(stored[0].key, chain.digest(stored[0].data or b""))),
    )
    found = problems([*stored, inserted])
    assert (
        f"0: 2 batches follow it ({stored[1].key}, {inserted.key}): one was slipped in, or two operators wrote at once"
        in found
    )
    assert any("no later batch follows it" in f for f in found)


def test_an_object_without_a_digest_is_foreign_once_the_chain_has_begun() -> None:
    stored = line(2)
    before = chain.Stored(stored[0].key.replace("T1000", "T0900"), b"{}\n", {})
    after = chain.Stored(stored[1].key.replace("T1001", "T1002"), b"{}\n", {})
    findings = chain.verify([before, *stored, after], lambda _: None)
    assert [(f.key, f.problem) for f in findings if "no jitaccess digest" in f.text] == [
        (before.key, False),
        (after.key, True),
    ]


def test_the_batch_before_the_window_is_asked_for() -> None:
    stored = line(3)
    window = stored[1:]
    first = stored[0]
    assert problems(window, lambda key: chain.digest(first.data or b"") if key == first.key else None) == []
    assert problems(window, lambda _: None) == [f"1: follows {first.key}, which is missing: deleted?"]
    assert problems(window, lambda _: "0" * 64) == [
        f"0: changed or replaced since {window[0].key} was written after it: its digest differs"
    ]


def test_links_are_read_back_as_written() -> None:
    link = chain.Link("audit/v1/2026/12/02/x.jsonl", "a" * 64)
    assert chain.Link.parse(link.text()) == link
    assert chain.Link.parse("no digest") is None

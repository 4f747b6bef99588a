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
        meta = chain.metadata(data, previous)
        made.append(chain.Stored(key, data, meta))
        previous = chain.link_to(key, data, meta)
    return made


def link(batch: chain.Stored) -> chain.Link:
    return chain.link_to(batch.key, batch.data or b"", batch.metadata)


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
        chain.metadata(data, link(stored[0])),
    )
    found = problems([*stored, inserted])
    assert (
        f"0: 2 batches follow it ({stored[1].key}, {inserted.key}): one was slipped in, or two operators wrote at once"
        in found
    )
    assert "f: no later batch follows it: the one after it is missing, or it was slipped in" in found


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
    assert problems(window, lambda key: link(first).sha256 if key == first.key else None) == []
    assert problems(window, lambda _: None) == [f"1: follows {first.key}, which is missing: deleted?"]
    assert problems(window, lambda _: "0" * 64) == [
        f"0: changed or replaced since {window[0].key} was written after it: its digest differs"
    ]


def test_links_are_read_back_as_written() -> None:
    link = chain.Link("audit/v1/2026/12/02/x.jsonl", "a" * 64)
    assert chain.Link.parse(link.text()) == link
    assert chain.Link.parse("no digest") is None


def test_a_batch_re_linked_round_a_deleted_one_breaks_the_next_link() -> None:
    """No versions to give it away (a bucket without versioning): K1 deleted, and K2's own link
    rewritten to name K0, its bytes kept. K2's link digest changes with it, so K3's no longer matches."""
    stored = line(4)
    stored.pop(1)
    k2 = stored[1]
    stored[1] = chain.Stored(k2.key, k2.data, chain.metadata(k2.data or b"", link(stored[0])))
    assert problems(stored) == [
        f"2: changed or replaced since {stored[2].key} was written after it: its digest differs",
    ]


def test_a_batch_slipped_in_by_re_linking_the_next_one_breaks_the_link_after() -> None:
    stored = line(3)
    data = b'{"id": "made-up/granted"}\n'
    slipped = chain.Stored(stored[0].key.replace("000000Z-", "500000Z-"), data, chain.metadata(data, link(stored[0])))
    k1 = stored[1]
    stored[1] = chain.Stored(k1.key, k1.data, chain.metadata(k1.data or b"", link(slipped)))
    assert problems([*stored, slipped]) == [
        f"1: changed or replaced since {stored[2].key} was written after it: its digest differs",
    ]


def test_metadata_stripped_at_the_window_start_breaks_the_link_of_the_next_batch() -> None:
    window = line(6)[2:]
    stripped = [chain.Stored(b.key, b"forged\n" if n < 2 else b.data, {}) for n, b in enumerate(window[:3])]
    stored = [*stripped, window[3]]
    assert problems(stored, lambda _: "0" * 64) == [
        f"4: changed or replaced since {window[3].key} was written after it: its digest differs",
    ]


def test_a_second_chain_start_is_a_problem_and_a_digest_without_a_link_is_not_foreign() -> None:
    stored = line(4)
    stored[2] = chain.Stored(stored[2].key, stored[2].data, chain.metadata(stored[2].data or b"", None))
    found = problems(stored)
    assert f"2: starts a chain of its own after {stored[0].key}: it should follow one" in found
    lone = chain.Stored(stored[0].key, b"x\n", {chain.DIGEST: chain.digest(b"x\n")})
    assert [f.text for f in chain.verify([lone], lambda _: None)] == [
        "a chain starts here (the first batch of its writer's archive)"
    ]


def test_a_window_that_begins_with_a_delete_marker_and_a_key_out_of_order() -> None:
    stored = line(3)
    stored[0] = chain.Stored(stored[0].key, None, {}, versions=2)
    found = problems(stored)
    assert "0: deleted (its current version is a delete marker)" in found
    assert f"1: follows {stored[0].key}, which is missing: deleted?" in found
    late = line(2)
    data = late[0].data or b""
    late[0] = chain.Stored(late[0].key, data, chain.metadata(data, link(late[1])))
    assert f"0: names {late[1].key} as its previous batch, which is not older" in problems(late)

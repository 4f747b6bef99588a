"""The Runtime's thread-safe object index (what the membership ref-count and the gauges read)."""

from __future__ import annotations

import threading

from jitaccess.handlers.indexes import holding
from jitaccess.handlers.runtime import ObjectIndex


def grant(user: str, group: str, reason: str | None = None) -> dict[str, object]:
    status = {"conditions": [{"type": "Ready", "status": "True", "reason": reason}]} if reason else {}
    return {"metadata": {"name": "g"}, "spec": {"user": user, "groupName": group}, "status": status}


def test_an_object_moves_between_keys_and_leaves_no_empty_key() -> None:
    index = ObjectIndex()
    index.observe("g1", ("a", "v1"))
    index.observe("g2", ("a", "v2"))
    assert dict(index) == {"a": ("v1", "v2")}
    index.observe("g1", ("b", "v1"))
    assert dict(index) == {"a": ("v2",), "b": ("v1",)}
    index.observe("g2", None)
    assert dict(index) == {"b": ("v1",)}
    assert "a" not in index and len(index) == 1
    index.observe("g1", None)
    index.observe("never-seen", None)
    assert dict(index) == {}


def test_observing_again_replaces_the_value_not_adds_one() -> None:
    index = ObjectIndex()
    index.observe("g1", ("a", 1))
    index.observe("g1", ("a", 2))
    assert index["a"] == (2,)


def test_concurrent_writers_and_readers_agree() -> None:
    index = ObjectIndex()
    errors: list[BaseException] = []

    def write(offset: int) -> None:
        for i in range(2000):
            index.observe(f"o{offset}-{i % 50}", (i % 7, i) if i % 3 else None)

    def read() -> None:
        try:
            for _ in range(2000):
                for key in index:
                    index.get(key)
        except BaseException as exc:  # a "dict changed size during iteration" would land here
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(3)] + [threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    names = sum(len(values) for values in index.values())
    assert names == sum(1 for n in range(3) for i in range(1950, 2000) if i % 3)


def test_a_grant_holds_its_membership_until_it_is_finished() -> None:
    assert holding(grant("alice", "prod-payments")) == holding(grant("alice", "prod-payments", "Active"))
    assert holding(grant("alice", "prod-payments", "Active")) is not None
    assert holding(grant("alice", "prod-payments", "Pending")) is not None
    for finished in ("Expired", "Revoked", "Failed"):
        assert holding(grant("alice", "prod-payments", finished)) is None, finished
    assert holding(grant("alice", "prod-payments")) != holding(grant("bob", "prod-payments"))

"""`wire.created_at`: a creation time read from an object as the API server sends it."""

from __future__ import annotations

from datetime import UTC, datetime

from jitaccess.api import wire


def test_the_creation_timestamp_is_read_with_its_zone() -> None:
    obj = {"metadata": {"creationTimestamp": "2026-11-30T12:00:05Z"}}
    assert wire.created_at(obj) == datetime(2026, 11, 30, 12, 0, 5, tzinfo=UTC)


def test_a_missing_or_unreadable_timestamp_is_none_so_the_caller_asks_afresh() -> None:
    assert wire.created_at(None) is None
    assert wire.created_at({"metadata": {}}) is None
    assert wire.created_at({"metadata": {"creationTimestamp": ""}}) is None
    assert wire.created_at({"metadata": {"creationTimestamp": "yesterday"}}) is None
    assert wire.created_at({"metadata": {"creationTimestamp": 1700000000}}) is None

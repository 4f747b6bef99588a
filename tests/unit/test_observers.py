"""The controller's one watch handler per kind (handlers/observers.py): every observer gets every
event, one failing does not keep it from the others, and kopf runs no observer a second time."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
import pytest

import jitaccess.handlers  # noqa: F401  (registers the handlers with kopf's default registry)
from jitaccess.api import names
from jitaccess.handlers import deleted_requests, observers, parts


def _watching(registry: kopf.OperatorRegistry, plural: str) -> list[str]:
    return [
        f"{handler.fn.__module__}.{handler.fn.__name__}"
        for handler in registry._watching.get_all_handlers()
        if handler.selector is not None and handler.selector.any_name == plural
    ]


@pytest.mark.parametrize(
    ("plural", "dispatcher", "observed"),
    [
        (names.REQUESTS, "on_request_event", observers.REQUEST_OBSERVERS),
        (names.GRANTS, "on_grant_event", observers.GRANT_OBSERVERS),
    ],
)
def test_kopf_runs_one_handler_per_kind_and_no_observer_itself(plural: str, dispatcher: str, observed: Any) -> None:
    split = parts.split(kopf.get_default_registry())
    controller = _watching(split.controller, plural)
    assert f"jitaccess.handlers.observers.{dispatcher}" in controller
    # An observer that were also a kopf handler would see each event twice.
    assert not {f"{fn.__module__}.{fn.__name__}" for fn in observed} & set(controller)
    # What a standby runs is unchanged: the indexes, and the warm expiry schedule for grants.
    assert not any(name.startswith("jitaccess.handlers.observers.") for name in _watching(split.admission, plural))


def test_each_observer_gets_the_event_and_a_failure_keeps_it_from_none(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, Any]] = []

    async def first(type: str | None, body: Any, **_: Any) -> None:
        seen.append(("first", type))

    async def broken(**_: Any) -> None:
        raise RuntimeError("boom")

    async def last(*, body: Any, memo: Any, logger: Any, **_: Any) -> None:
        seen.append(("last", body["metadata"]["name"]))

    logger = logging.getLogger("test.observers")
    body = {"metadata": {"name": "r1"}}
    with caplog.at_level(logging.ERROR, logger="test.observers"):
        asyncio.run(observers.hand_to((first, broken, last), logger, type="MODIFIED", body=body, memo={}))
    assert seen == [("first", "MODIFIED"), ("last", "r1")]
    assert "broken failed on this event" in caplog.text and "boom" in caplog.text


def test_a_cancelled_event_is_not_taken_for_an_observers_failure() -> None:
    async def cancelled(**_: Any) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(observers.hand_to((cancelled,), logging.getLogger("test.observers")))


def _granted_request() -> kopf.Body:
    ready = {"type": "Ready", "status": "True", "reason": "Granted"}
    approved = {"type": "Approved", "status": "True", "reason": "AutoApproved"}
    raw: Any = {"metadata": {"name": "r1", "uid": "u1"}, "status": {"conditions": [approved, ready]}}
    return kopf.Body(raw)


def _active_grant() -> kopf.Body:
    raw: Any = {
        "metadata": {"name": "r1", "labels": {names.LABEL_REQUEST: "u1"}},
        "spec": {"request": "r1"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Active"}]},
    }
    return kopf.Body(raw)


@pytest.mark.parametrize("type", [None, "ADDED", "MODIFIED"])
def test_a_request_with_access_that_is_not_deleted_is_left_alone(type: str | None) -> None:
    # What kopf's `when=` filter did: only a DELETED request ends its grant. An empty memo has no
    # Runtime, so any step further would raise.
    asyncio.run(deleted_requests.end_grant_of_deleted_request(type=type, body=_granted_request(), memo={}))


def test_only_an_active_grant_is_checked_for_its_request() -> None:
    ended = _active_grant()
    ended["status"]["conditions"][0]["reason"] = "Expired"
    asyncio.run(deleted_requests.end_orphaned_grant(type="MODIFIED", body=ended, memo={}))
    asyncio.run(deleted_requests.end_orphaned_grant(type="DELETED", body=_active_grant(), memo={}))
    with pytest.raises(RuntimeError, match="no Runtime"):  # an Active one is: it goes further
        asyncio.run(deleted_requests.end_orphaned_grant(type="MODIFIED", body=_active_grant(), memo={}))
    with pytest.raises(RuntimeError, match="no Runtime"):
        asyncio.run(deleted_requests.end_grant_of_deleted_request(type="DELETED", body=_granted_request(), memo={}))


def test_a_revoked_grant_is_left_to_its_own_handler() -> None:
    # Its revocation handler ends it and retries a refusal, writing its status at each retry: a
    # removal from here at each of those events would double the refused calls and the errors.
    raw: Any = dict(_active_grant())
    raw["metadata"] = {**raw["metadata"], "annotations": {names.ANNOTATION_REVOKED: "true"}}
    # An empty memo has no Runtime: any step further would raise.
    asyncio.run(deleted_requests.end_orphaned_grant(type="MODIFIED", body=kopf.Body(raw), memo={}))

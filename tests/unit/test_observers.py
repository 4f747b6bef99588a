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
from jitaccess.handlers import observers, parts


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

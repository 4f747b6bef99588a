"""A deleted request's grant is revoked whatever the API server answers (handlers/deleted_requests.py,
attack 34): an end it fails is written down as revoked for the grant's own handler, which kopf
retries; a mark it fails too, and a look-up of an Active grant's request it does not answer, are
tried again in the background, never on the event, which nothing retries (handlers/observers.py).
Identity Center not answering holds the event a few seconds at most, and a replica that has lost
the lead lets it go at once, for the next leader."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

import kopf
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import BY_NAME, Kube, Only, Refused
from jitaccess.api import names
from jitaccess.errors import AddInFlight, NotFound, NotLeading, RetryLater
from jitaccess.handlers import deleted_requests
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings

LOGGER = "jitaccess.handlers.deleted_requests"


class Inline(Runtime):
    """The handlers' threads, on the event loop: what each step did is seen at once."""

    async def run_blocking(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    async def run_granting(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)


class Requests:
    """The API server's requests: `failures` answers of `error` first, then what is stored."""

    def __init__(self, stored: dict[str, str], failures: int = 0) -> None:
        self.stored = stored  # name: uid
        self.failures = failures
        self.calls = 0

    def _answer(self) -> None:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise ApiException(status=429, reason="Too Many Requests")

    def list(self, plural: str, **_: Any) -> list[dict[str, Any]]:
        self._answer()
        return [{"metadata": {"name": n, "uid": u}} for n, u in self.stored.items()]

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        self._answer()
        uid = self.stored.get(name)
        return None if uid is None else {"metadata": {"name": name, "uid": uid}}


def _runtime(kube: Any = None) -> Runtime:
    return Inline(Settings(), cast(IdentityCenter, None), cast(Kube, kube))


@pytest.fixture
def ended(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The ends asked of `grants.end_grant`: (grant, uid); none fails unless a test says so."""
    calls: list[tuple[str, Any]] = []

    def end(rt: Runtime, grant: str, reason: str, holders: Any, *, why: str, uid: Only) -> None:
        assert reason == names.REVOKED and why == deleted_requests.WHY
        calls.append((grant, uid))

    monkeypatch.setattr(deleted_requests, "end_grant", end)
    return calls


@pytest.fixture
def marked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The grants written down as revoked (`mark_revoked`): (grant, uid)."""
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(deleted_requests, "mark_revoked", lambda rt, grant, why, uid: calls.append((grant, uid)))
    return calls


#: The operator's own pauses between the tries of a removal, before `at_once` takes them away.
REVOKE_BACKOFF = deleted_requests.REVOKE_BACKOFF


@pytest.fixture(autouse=True)
def at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tries, on the event and in the background, without their delays (as many as the operator's)."""
    monkeypatch.setattr(deleted_requests, "BACKOFF", (0.0,) * len(deleted_requests.BACKOFF))
    monkeypatch.setattr(deleted_requests, "REVOKE_BACKOFF", (0.0,) * len(REVOKE_BACKOFF))


async def _background() -> None:
    """Until every background try has finished."""
    while deleted_requests._tries:
        await asyncio.gather(*deleted_requests._tries.values(), return_exceptions=True)


def _failing(exc: BaseException) -> Callable[..., None]:
    def fail(*_: Any, **__: Any) -> None:
        raise exc

    return fail


@pytest.mark.parametrize(
    "failure",
    [
        ApiException(status=429, reason="Too Many Requests"),
        ApiException(status=503, reason="Service Unavailable"),
        urllib3.exceptions.ReadTimeoutError(cast(Any, None), "/apis", "Read timed out."),
        Refused(422, "status.conditions: Invalid value", "the status of accessgrants/g1"),
        NotFound("GROUP not found.", operation="GetGroupId"),
    ],
    ids=["429", "503", "timeout", "refused", "not-found"],
)
async def test_an_end_the_api_server_fails_is_written_down_for_the_grants_handler(
    monkeypatch: pytest.MonkeyPatch,
    marked: list[tuple[str, Any]],
    caplog: pytest.LogCaptureFixture,
    failure: BaseException,
) -> None:
    """Let out of the observer, the failure was logged and nothing tried again: the access ran on
    until it expired. Written down as revoked, the grant's own handler ends it (kopf retries it)."""
    monkeypatch.setattr(deleted_requests, "end_grant", _failing(failure))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await deleted_requests._revoke(_runtime(), "g1", "uid-g1")
    assert marked == [("g1", "uid-g1")]
    assert "revoking AccessGrant g1 failed" in caplog.text and "marked revoked" in caplog.text


async def test_a_mark_the_api_server_fails_too_is_tried_again_in_the_background(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(deleted_requests, "end_grant", _failing(ApiException(status=503, reason="Unavailable")))
    tries: list[tuple[str, Any]] = []

    def mark(rt: Runtime, grant: str, why: str, uid: Only) -> None:
        tries.append((grant, uid))
        if len(tries) < 3:
            raise ApiException(status=429, reason="Too Many Requests")

    monkeypatch.setattr(deleted_requests, "mark_revoked", mark)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await deleted_requests._revoke(_runtime(), "g1", "uid-g1")
        # The event is let go after one try: the grant's next events are not held behind the others.
        assert tries == [("g1", "uid-g1")]
        await _background()
    assert tries == [("g1", "uid-g1")] * 3
    assert "AccessGrant g1: marking it revoked, done at try 2" in caplog.text


async def test_the_background_tries_are_bounded_and_say_they_gave_up(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(deleted_requests, "end_grant", _failing(ApiException(status=503, reason="Unavailable")))
    tries: list[str] = []

    def mark(rt: Runtime, grant: str, why: str, uid: Only) -> None:
        tries.append(grant)
        raise ApiException(status=503, reason="Unavailable")

    monkeypatch.setattr(deleted_requests, "mark_revoked", mark)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await deleted_requests._revoke(_runtime(), "g1", "uid-g1")
        await _background()
    assert len(tries) == 1 + len(deleted_requests.BACKOFF)
    gave_up = [r for r in caplog.records if "given up" in r.getMessage()]
    assert [r.levelname for r in gave_up] == ["ERROR"]


async def test_events_of_a_grant_being_tried_start_no_second_try(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deleted_requests, "end_grant", _failing(ApiException(status=503, reason="Unavailable")))
    monkeypatch.setattr(deleted_requests, "mark_revoked", _failing(ApiException(status=503, reason="Unavailable")))
    rt = _runtime()
    await deleted_requests._revoke(rt, "g1", "uid-g1")
    await deleted_requests._revoke(rt, "g1", "uid-g1")
    await deleted_requests._revoke(rt, "g2", "uid-g2")
    assert sorted(deleted_requests._tries) == [("g1", "marking it revoked"), ("g2", "marking it revoked")]
    for task in deleted_requests._tries.values():
        task.cancel()
    await _background()


def _ending(*answers: BaseException | None) -> tuple[list[str], Callable[..., None]]:
    """An `end_grant` that answers each of `answers` in turn (None: ended), the last one for ever
    after; and the grants it was asked to end, one entry a try."""
    tries: list[str] = []

    def end(rt: Runtime, grant: str, reason: str, holders: Any, *, why: str, uid: Only) -> None:
        tries.append(grant)
        answer = answers[min(len(tries), len(answers)) - 1]
        if answer is not None:
            raise answer

    return tries, end


async def _revoking(grant: str = "g1", uid: Only = "uid-g1", rt: Runtime | None = None) -> None:
    """`_revoke`, which must let the event go within seconds (else the test fails, not hangs)."""
    async with asyncio.timeout(5):
        await deleted_requests._revoke(rt or _runtime(), grant, uid)


NOT_ANSWERING = RetryLater("Rate exceeded", operation="DeleteGroupMembership", code="ThrottlingException")


async def test_a_removal_identity_center_does_not_answer_is_tried_a_few_times_then_written_down(
    monkeypatch: pytest.MonkeyPatch, marked: list[tuple[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """It was tried every second, for as long as Identity Center did not answer, inside the event
    of the deleted request: an observer held for ever. Now a few tries, then the grant's own handler,
    which kopf retries, owns the removal."""
    tries, end = _ending(NOT_ANSWERING)
    monkeypatch.setattr(deleted_requests, "end_grant", end)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await _revoking()
    assert len(tries) == len(REVOKE_BACKOFF) + 1
    assert marked == [("g1", "uid-g1")]
    assert f"Identity Center not answering after {len(tries)} tries" in caplog.text


async def test_a_removal_identity_center_answers_on_a_later_try_ends_the_grant(
    monkeypatch: pytest.MonkeyPatch, marked: list[tuple[str, Any]]
) -> None:
    tries, end = _ending(NOT_ANSWERING, NOT_ANSWERING, None)
    monkeypatch.setattr(deleted_requests, "end_grant", end)
    await _revoking()
    assert tries == ["g1"] * 3 and marked == []


def test_the_tries_of_a_removal_back_off_and_last_a_few_seconds() -> None:
    assert list(REVOKE_BACKOFF) == sorted(REVOKE_BACKOFF) and REVOKE_BACKOFF[0] < REVOKE_BACKOFF[-1]
    assert sum(REVOKE_BACKOFF) <= 10.0


async def test_a_replica_whose_lead_ran_out_writes_the_grant_down_as_revoked(
    monkeypatch: pytest.MonkeyPatch, marked: list[tuple[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """`NotLeading` is a `RetryLater`: the replica kept trying, every second, a removal it may not
    make while its lead has run out. Nor may it just stop: a renewal just after the deadline keeps
    the same controller, which lists nothing again, and the deleted request's event comes once. The
    grant is written down as revoked at once, for its own handler on whoever leads."""
    tries, end = _ending(NotLeading("DeleteGroupMembership refused: this replica is not the leader"))
    monkeypatch.setattr(deleted_requests, "end_grant", end)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await _revoking("r1", BY_NAME)
    assert tries == ["r1"] and marked == [("r1", BY_NAME)]
    assert "revoking AccessGrant r1: DeleteGroupMembership refused" in caplog.text and "marked revoked" in caplog.text


async def test_a_removal_refused_until_an_earlier_add_has_landed_is_written_down_at_once(
    monkeypatch: pytest.MonkeyPatch, marked: list[tuple[str, Any]]
) -> None:
    """Tries seconds apart cannot outlast that wait (attack 129): the grant's own handler tries
    again once it is over."""
    tries, end = _ending(AddInFlight("an earlier leader's add may still land", delay=12))
    monkeypatch.setattr(deleted_requests, "end_grant", end)
    await _revoking()
    assert tries == ["g1"] and marked == [("g1", "uid-g1")]


class Grants:
    """One grant stored under the name, made for the request `made_for` (its label)."""

    def __init__(self, uid: str, made_for: str) -> None:
        self.grant = {"metadata": {"name": "r1", "uid": uid, "labels": {names.LABEL_REQUEST: made_for}}}

    def get(self, plural: str, name: str) -> dict[str, Any]:
        return self.grant


@pytest.mark.parametrize(("stored_for", "marked_as"), [("uid-r1", [("r1", "uid-g1")]), ("uid-r1-again", [])])
async def test_a_deleted_requests_grant_is_marked_later_only_while_it_is_that_requests(
    monkeypatch: pytest.MonkeyPatch, marked: list[tuple[str, Any]], stored_for: str, marked_as: list[Any]
) -> None:
    """Its end goes by name (the grant of the request deleted: `BY_NAME`); minutes later, a grant
    stored under that name may be another request's, made for one created again under the name."""
    monkeypatch.setattr(deleted_requests, "end_grant", _failing(ApiException(status=503, reason="Unavailable")))
    inline: list[Any] = []

    def first_fails(rt: Runtime, grant: str, why: str, uid: Only) -> None:
        inline.append(uid)
        raise ApiException(status=503, reason="Unavailable")

    rt = _runtime(Grants("uid-g1", stored_for))
    with monkeypatch.context() as patched:
        patched.setattr(deleted_requests, "mark_revoked", first_fails)
        await deleted_requests._revoke(rt, "r1", BY_NAME, made_for="uid-r1")
    assert inline == [BY_NAME]
    await _background()
    assert marked == marked_as


def _active_grant(made_for: str = "uid-r1") -> kopf.Body:
    raw: Any = {
        "metadata": {"name": "r1", "uid": "uid-g1", "labels": {names.LABEL_REQUEST: made_for}},
        "spec": {"request": "r1"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Active"}]},
    }
    return kopf.Body(raw)


async def test_an_active_grants_request_the_api_server_cannot_show_is_looked_up_again(
    ended: list[tuple[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """Deleted while the operator was down; at start-up the API server answers 429 twice: the grant
    is still revoked, once the request is seen gone."""
    requests = Requests({}, failures=2)
    rt = _runtime(requests)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await deleted_requests.end_orphaned_grant(type=None, body=_active_grant(), memo=kopf.Memo(runtime=rt))
        assert ended == []  # not answered: nothing says the request is gone
        await _background()
    assert ended == [("r1", "uid-g1")]
    assert "whether its AccessRequest r1 is still stored cannot be read" in caplog.text


async def test_a_request_not_shown_is_never_taken_for_deleted(ended: list[tuple[str, Any]]) -> None:
    requests = Requests({"r1": "uid-r1"}, failures=1)
    rt = _runtime(requests)
    await deleted_requests.end_orphaned_grant(type=None, body=_active_grant(), memo=kopf.Memo(runtime=rt))
    await _background()
    assert ended == [] and requests.calls >= 2  # asked again, and found stored: the grant is backed

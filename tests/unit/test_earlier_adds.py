"""Attack 129 without a waiting thread: a grant that had not become Active when this controller
began acting (the previous leader may have sent its add, then died) is ended only once that add
has landed or can no longer land. Until then its end is refused (`AddInFlight`) and its caller
retries it at that moment: kopf's handlers with a `TemporaryError` delayed to it, the expiry
scheduler at that time. Nothing sleeps in a worker thread, which a hand-over would otherwise fill
with such grants, and the retry ends the grant, taking back the add that landed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import kopf
import pytest
from kopf._cogs.structs import references
from kopf._core.actions import execution, loggers, progression
from kopf._core.engines import posting
from kopf._core.intents import causes
from kopf._core.intents.registries import get_default_registry

from jitaccess import metrics
from jitaccess.adapters.identitycenter import LONGEST_CALL_SECONDS
from jitaccess.api import names
from jitaccess.errors import AddInFlight, PermanentFailure, RetryLater
from jitaccess.handlers import diffbase, expiry, grants, removals
from jitaccess.handlers.runtime import Runtime
from jitaccess.handlers.scheduler import utcnow
from jitaccess.handlers.startup import kopf_settings
from jitaccess.logs import configure_logging
from jitaccess.observability import ErrorCounter
from jitaccess.settings import Settings
from tests.unit.conftest import T0
from tests.unit.test_activation_time import _grant, _Known
from tests.unit.test_grant_ended_while_provisioning import GROUP, STAMP, _Kube

#: The grant was created a minute before this controller took the Lease, at T0.
CREATED = T0 - dt.timedelta(minutes=1)
MEMBERSHIP = ("gid-" + GROUP, "id-bob")


def _handed_over(began: dt.datetime = T0, **annotations: str) -> tuple[Runtime, _Kube, _Known]:
    """A controller that began at `began`, the grant not Active yet, and the old leader's add landed."""
    kube, ic = _Kube(), _Known()
    rt = Runtime(Settings(), ic, kube)  # type: ignore[arg-type]
    rt.attempts.since = began
    kube.put(names.GRANTS, {**_grant(CREATED), "metadata": {**_grant(CREATED)["metadata"], "annotations": annotations}})
    ic.members[MEMBERSHIP] = "m-1"
    return rt, kube, ic


def _body(kube: _Kube) -> kopf.Body:
    return kopf.Body(kube.get(names.GRANTS, "r1") or {})


def _reason(kube: _Kube) -> str | None:
    conditions = (kube.get(names.GRANTS, "r1") or {}).get("status", {}).get("conditions", [])
    return next((c["reason"] for c in conditions if c["type"] == names.READY), None)


def _active(grant: dict[str, Any], **status: str) -> None:
    at = utcnow().strftime(STAMP)
    ready = {"type": "Ready", "status": "True", "reason": names.ACTIVE, "message": "", "lastTransitionTime": at}
    grant["status"] = {"conditions": [ready], "expirationTime": at, **status}


def _refused_at_once(call: Callable[[], object]) -> kopf.TemporaryError:
    """`call` is refused with kopf's retry at once: it does not wait for the add itself."""
    began = time.monotonic()
    with pytest.raises(kopf.TemporaryError) as refused:
        call()
    assert time.monotonic() - began < 1, "no worker thread waits for the earlier add"
    assert "the previous leader may have sent" in str(refused.value), "kopf's line says why it waits"
    return refused.value


def _retried(refused: kopf.TemporaryError, at: dt.datetime) -> dt.datetime:
    """When kopf's retry of a call refused at `at` runs, as the handlers' `now()` reads it."""
    assert refused.delay is not None
    return (at + dt.timedelta(seconds=refused.delay)).replace(microsecond=0)


def test_a_grant_revoked_before_it_began_is_ended_by_kopfs_retry_once_the_old_leaders_add_has_settled(
    clock: list[dt.datetime],
) -> None:
    rt, kube, ic = _handed_over(**{names.ANNOTATION_REVOKED: "true"})
    clock[0] = T0 + dt.timedelta(seconds=3)
    refused = _refused_at_once(lambda: grants._provision(rt, _body(kube), rt.holders, {}, {}))
    assert refused.delay == LONGEST_CALL_SECONDS - 3
    assert _reason(kube) is None and ic.members, "nothing is ended or taken back before the wait is over"

    clock[0] = _retried(refused, clock[0])
    grants._provision(rt, _body(kube), rt.holders, {}, {})
    assert _reason(kube) == names.REVOKED
    assert ic.members == {}, "the end, after the add, took it back"


def test_a_revocation_by_annotation_or_deletion_is_retried_by_kopf_at_the_whole_second_the_wait_ends(
    clock: list[dt.datetime],
) -> None:
    """The controller began half-way through a second: the retry comes at the next whole second, so
    that the handlers' `now()` (whole seconds) finds the wait over, and is refused only once."""
    rt, kube, ic = _handed_over(began=T0 + dt.timedelta(milliseconds=500), **{names.ANNOTATION_REVOKED: "true"})
    clock[0] = T0 + dt.timedelta(seconds=3)

    def revoke() -> None:
        grants._end_or_retry(rt, _body(kube), names.REVOKED, rt.holders, who="bob@example.com", why="", fresh=True)

    refused = _refused_at_once(revoke)
    assert refused.delay == LONGEST_CALL_SECONDS - 2  # 12.5 s, up to whole seconds
    assert _reason(kube) is None and ic.members

    clock[0] = _retried(refused, clock[0])
    revoke()
    assert _reason(kube) == names.REVOKED and ic.members == {}


def test_a_grant_failed_after_a_hand_over_waits_by_kopfs_retry_again_after_a_restart(
    clock: list[dt.datetime],
) -> None:
    """Its request gone (unbacked), the grant fails, once the add has settled; a restart in between
    counts the wait from the new process's start: the grant's stored state brings it back."""
    rt, kube, ic = _handed_over()
    clock[0] = T0 + dt.timedelta(seconds=1)
    refused = _refused_at_once(lambda: grants._provision(rt, _body(kube), rt.holders, {}, {}))
    assert refused.delay == LONGEST_CALL_SECONDS - 1
    assert _reason(kube) is None and ic.members

    restarted = Runtime(Settings(), ic, kube)  # type: ignore[arg-type]
    restarted.attempts.since = clock[0] = T0 + dt.timedelta(seconds=5)
    refused = _refused_at_once(lambda: grants._provision(restarted, _body(kube), restarted.holders, {}, {}))
    assert refused.delay == LONGEST_CALL_SECONDS

    clock[0] = _retried(refused, clock[0])
    grants._provision(restarted, _body(kube), restarted.holders, {}, {})
    assert _reason(kube) == names.FAILED
    stored = kube.get(names.GRANTS, "r1") or {}
    assert stored["status"]["takeBack"]["removed"] == [GROUP] and ic.members == {}


def test_an_active_grant_created_before_the_hand_over_expires_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its add was answered before its `Active` write: no add of it can still be on its way."""
    monkeypatch.setattr(grants, "record", lambda *a, **k: None)
    rt, kube, ic = _handed_over(began=utcnow())
    grant = kube.get(names.GRANTS, "r1") or {}
    grant["metadata"]["creationTimestamp"] = (utcnow() - dt.timedelta(minutes=2)).strftime(STAMP)
    _active(grant, groupId=MEMBERSHIP[0])
    kube.put(names.GRANTS, grant)
    began = time.monotonic()
    assert expiry.expire_now(rt, "r1") is None
    assert time.monotonic() - began < 1
    assert _reason(kube) == names.EXPIRED and ic.members == {}


def test_an_expiry_refused_for_now_is_due_again_when_the_wait_is_over(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The scheduler's side of a refusal: the grant goes back into its queue at the moment the wait
    is over, said once at INFO, with no overdue report (nothing is failing)."""
    rt, kube, _ = _handed_over()
    grant = kube.get(names.GRANTS, "r1") or {}
    _active(grant)
    kube.put(names.GRANTS, grant)

    def end(*_: Any, **__: Any) -> None:
        raise AddInFlight("AccessGrant r1 is ended in 7s, once an add the previous leader may have sent ...", delay=7)

    monkeypatch.setattr(expiry, "end_grant", end)

    async def scenario() -> dt.datetime | None:
        wiring = expiry._Wiring(ThreadPoolExecutor(1))
        try:
            return await expiry.expire(rt, wiring, "r1")
        finally:
            wiring.pool.shutdown()

    with caplog.at_level("INFO"):
        again = asyncio.run(scenario())
    assert again is not None and 6 <= (again - utcnow()).total_seconds() <= 7
    said = [(r.levelname, r.name) for r in caplog.records if "r1" in r.getMessage()]
    assert said == [("INFO", expiry.log.name)]


@contextlib.contextmanager
def _operators_logging(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The operator's logging (`logs.configure_logging`, INFO) and its error count
    (`observability.ErrorCounter`), `caplog` hearing all of it; undone afterwards."""
    root, objects = logging.getLogger(), logging.getLogger("kopf.objects")
    saved = (root.handlers[:], root.level, objects.level, objects.filters[:])
    counter = ErrorCounter()
    configure_logging("text")
    root.addHandler(caplog.handler)
    root.addHandler(counter)
    try:
        yield
    finally:
        root.handlers[:], objects.filters[:] = saved[0], saved[3]
        root.setLevel(saved[1])
        objects.setLevel(saved[2])


async def _run_by_kopf(
    rt: Runtime, kube: _Kube, handler: execution.Handler, state: progression.State
) -> tuple[progression.State, list[Any]]:
    """One run of the grant's `handler` by kopf's own execution, as its reactor runs it, with the
    operator's kopf settings (`startup.kopf_settings`). The state after it, and the Events it posted.

    kopf 1.45 posts its log lines as Events only with `posting.loggers`, which the operator leaves
    off (so no line of kopf's is an Event today); on here, from WARNING up as the operator sets
    `posting.level`, so that a wait is shown to post none even where kopf's lines are posted."""
    settings = kopf.OperatorSettings()
    kopf_settings(settings, Settings())
    settings.posting.loggers = True
    body = _body(kube)
    events: asyncio.Queue[Any] = asyncio.Queue()
    posting.event_queue_var.set(events)
    posting.event_queue_loop_var.set(asyncio.get_running_loop())
    cause = causes.ChangingCause(
        logger=loggers.ObjectLogger(body=body, settings=settings),
        indices=cast(Any, {}),
        memo=kopf.Memo(runtime=rt),
        resource=references.Resource(*grants.GRANT),
        patch=kopf.Patch(),
        body=body,
        initial=True,
        reason=kopf.Reason.RESUME,
    )
    state = state.with_handlers([handler])
    outcome = await execution.execute_handler_once(
        settings=settings, handler=handler, cause=cause, state=state[handler.id]
    )
    await asyncio.sleep(0.1)  # Events are queued from the thread that logs them
    return state.with_outcomes({handler.id: outcome}), [events.get_nowait() for _ in range(events.qsize())]


def _provision_handler() -> execution.Handler:
    found = get_default_registry()._changing.get_all_handlers()
    return next(h for h in found if getattr(h, "fn", None) is grants.provision_grant)


async def test_a_hand_overs_wait_is_said_once_at_info_with_no_event_and_no_error_and_kopf_retries_it_then(
    clock: list[dt.datetime], caplog: pytest.LogCaptureFixture
) -> None:
    """The wait follows every hand-over for each grant ended within 15 s of it: not a failure.
    kopf's retry still brings the end (the only retry a handler has), but its line "failed
    temporarily" is kept out of the error log, the Events and `jitaccess_errors_total`:
    one INFO line of ours says why and until when. kopf keeps the retry's time in the grant's
    status, so a restart retries it then too; the retry ends the grant."""
    rt, kube, ic = _handed_over(**{names.ANNOTATION_REVOKED: "true"})
    clock[0] = T0 + dt.timedelta(seconds=3)
    handler = _provision_handler()
    errors = metrics.ERRORS.labels("handler")._value.get()
    with _operators_logging(caplog):
        state, events = await _run_by_kopf(rt, kube, handler, progression.State.from_scratch())
    assert events == [], "no Event on the grant"
    assert metrics.ERRORS.labels("handler")._value.get() == errors, "not counted as an error"
    said = [(r.levelname, r.name, r.getMessage()) for r in caplog.records if "r1 is ended" in r.getMessage()]
    assert said == [
        (
            "INFO",
            grants.log.name,
            "AccessGrant r1 is ended at 2026-12-01T06:00:15Z (in 12s), once an add the previous leader may have sent "
            "for it has landed or can no longer land; its handler is retried then",
        )
    ], said
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "nothing else said above INFO"
    assert 11.5 < (state.delay or 0) <= 12, "kopf retries it when the wait is over"
    assert _reason(kube) is None and ic.members

    # The retry's time is kept with the grant (kopf's progress in its status): a restart waits for it.
    patch = kopf.Patch()
    storage = kopf.StatusProgressStorage(field=diffbase.PROGRESS_FIELD)
    state.store(body=_body(kube), patch=patch, storage=storage)
    stored = kube.get(names.GRANTS, "r1") or {}
    stored["status"] = {**stored.get("status", {}), **patch["status"]}
    kube.put(names.GRANTS, stored)
    restarted = progression.State.from_storage(body=_body(kube), storage=storage, handlers=[handler])
    assert not restarted[handler.id].awakened and 11 < (restarted.with_handlers([handler]).delay or 0) <= 12

    clock[0] = T0 + dt.timedelta(seconds=LONGEST_CALL_SECONDS)
    await _run_by_kopf(rt, kube, handler, progression.State.from_scratch())
    assert _reason(kube) == names.REVOKED and ic.members == {}, "the retry ends it, taking the add back"


async def test_a_handlers_failure_through_the_same_logging_is_still_an_error_event_and_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the wait is kept out of: any other retry of a grant's handler stays an ERROR line, an
    Event (where kopf posts its lines) and a handler error (so the test above can tell them apart)."""
    rt, kube, _ = _handed_over()

    async def not_answering(**_: Any) -> None:
        raise kopf.TemporaryError("Identity Center is not answering (timeout); will retry", delay=2)

    handler = dataclasses.replace(_provision_handler(), fn=not_answering)
    errors = metrics.ERRORS.labels("handler")._value.get()
    with _operators_logging(caplog):
        _, events = await _run_by_kopf(rt, kube, handler, progression.State.from_scratch())
    assert [e.type for e in events] == ["Error"]
    assert metrics.ERRORS.labels("handler")._value.get() == errors + 1
    assert [r.levelname for r in caplog.records if "not answering" in r.getMessage()] == ["ERROR"]


@pytest.mark.parametrize(
    ("failure", "delay"),
    [
        (RetryLater("timed out", operation="DeleteGroupMembership"), 2),
        (PermanentFailure("AccessDenied", operation="DeleteGroupMembership"), None),
    ],
)
def test_a_grant_revoked_before_it_began_whose_take_back_fails_is_retried_as_any_revocation(
    clock: list[dt.datetime], monkeypatch: pytest.MonkeyPatch, failure: Exception, delay: int | None
) -> None:
    """Its end's failure reaches kopf as a revocation by annotation's does (`_end_or_retry`): a
    retry saying why, not an exception kopf would log with a traceback and retry by its own back-off."""
    rt, kube, ic = _handed_over(**{names.ANNOTATION_REVOKED: "true"})
    clock[0] = T0 + dt.timedelta(seconds=LONGEST_CALL_SECONDS)  # the old leader's add has settled

    def refused(*_: Any, **__: Any) -> bool:
        raise failure

    monkeypatch.setattr(ic, "remove_member", refused)
    with pytest.raises(kopf.TemporaryError) as retried:
        grants._provision(rt, _body(kube), rt.holders, {}, {})
    assert type(retried.value) is kopf.TemporaryError and "will retry" in str(retried.value)
    assert retried.value.delay == (delay if delay is not None else removals.retry_seconds(failure))
    assert _reason(kube) is None and ic.members, "not ended while its access may stay"

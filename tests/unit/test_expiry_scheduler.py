"""The expiry scheduler: its queue (ordering, rescheduling, stale entries), its task (waking,
retrying, stopping), with a fake `expire` and real asyncio time in small steps, and when the
operator lets it act."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import re
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import kopf
import pytest
from kopf._core.engines import posting

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube, Refused
from jitaccess.adapters.webhooks import HOOKS
from jitaccess.api import names
from jitaccess.domain.expiry import ExpiryQueue, overdue
from jitaccess.errors import PermanentFailure, RetryLater
from jitaccess.handlers import expiry, grants, removals
from jitaccess.handlers.recording import record, ref
from jitaccess.handlers.runtime import Runtime
from jitaccess.handlers.scheduler import ExpiryScheduler, utcnow
from jitaccess.logs import OncePer
from jitaccess.settings import Settings

T0 = dt.datetime(2030, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


# --- the queue ----------------------------------------------------------------------------------


def test_due_in_order_of_time_and_only_once_due() -> None:
    q = ExpiryQueue()
    q.schedule("c", at(30))
    q.schedule("a", at(10))
    q.schedule("b", at(20))
    assert q.next_time() == at(10)
    assert q.due(at(9.999)) == []
    assert q.due(at(20)) == [("a", at(10)), ("b", at(20))]
    assert len(q) == 1 and "c" in q and "a" not in q
    assert q.due(at(100)) == [("c", at(30))]
    assert q.next_time() is None


def test_grants_of_the_same_time_all_come_due_together_by_name() -> None:
    q = ExpiryQueue()
    names = [f"g-{i:04d}" for i in range(1000)]
    for name in reversed(names):
        q.schedule(name, at(5))
    assert [name for name, _ in q.due(at(5))] == names
    assert len(q) == 0


def test_a_later_expiration_replaces_the_earlier_one() -> None:
    q = ExpiryQueue()
    q.schedule("a", at(10))
    q.schedule("b", at(15))
    q.schedule("a", at(60))  # extended
    assert q.when("a") == at(60)
    assert q.due(at(20)) == [("b", at(15))]
    assert q.next_time() == at(60)
    assert q.due(at(60)) == [("a", at(60))]


def test_an_earlier_expiration_replaces_a_later_one() -> None:
    q = ExpiryQueue()
    q.schedule("a", at(60))
    q.schedule("a", at(10))
    assert q.due(at(10)) == [("a", at(10))]
    assert q.due(at(100)) == []


def test_unscheduled_grants_never_come_due() -> None:
    q = ExpiryQueue()
    q.schedule("revoked", at(10))
    q.schedule("kept", at(20))
    q.unschedule("revoked")
    q.unschedule("never-scheduled")
    assert q.next_time() == at(20)
    assert q.due(at(100)) == [("kept", at(20))]


def test_stale_entries_are_skipped_even_when_a_time_comes_back() -> None:
    q = ExpiryQueue()
    q.schedule("a", at(10))
    q.schedule("a", at(20))
    q.schedule("a", at(10))  # back to the first time: two heap entries match it, one counts
    assert q.due(at(100)) == [("a", at(10))]
    assert q.due(at(100)) == []


def test_the_same_time_again_is_no_change() -> None:
    q = ExpiryQueue()
    assert q.schedule("a", at(10)) is True
    assert q.schedule("a", at(10)) is False


def test_schedule_says_when_the_earliest_time_moved_forward() -> None:
    q = ExpiryQueue()
    assert q.schedule("late", at(60)) is True
    assert q.schedule("later", at(90)) is False
    assert q.schedule("soon", at(5)) is True


def test_heap_stays_bounded_under_constant_rescheduling() -> None:
    q = ExpiryQueue()
    for step in range(10_000):
        q.schedule("a", at(step))
        q.schedule("b", at(step + 0.5))
    assert len(q._heap) <= 2 * len(q) + 64 + 1
    assert q.due(at(1e9)) == [("a", at(9999)), ("b", at(9999.5))]


# --- the task -----------------------------------------------------------------------------------


class Recorder:
    """A fake `expire`: records calls; the grant's time comes from `times` (re-read), like the real one."""

    def __init__(self) -> None:
        self.ended: list[str] = []
        self.times: dict[str, dt.datetime] = {}
        self.fail: dict[str, int] = {}
        self.ended_event = asyncio.Event()

    async def __call__(self, name: str) -> dt.datetime | None:
        if self.fail.get(name, 0) > 0:
            self.fail[name] -= 1
            return utcnow() + dt.timedelta(seconds=0.05)
        when = self.times.get(name)
        if when is not None and when > utcnow():
            return when
        self.ended.append(name)
        self.ended_event.set()
        return None


def soon(seconds: float) -> dt.datetime:
    return utcnow() + dt.timedelta(seconds=seconds)


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_overdue_grants_end_first_oldest_first() -> None:
    async def scenario() -> None:
        s, rec = ExpiryScheduler(concurrency=1), Recorder()
        s.schedule("later", soon(0.2))
        s.schedule("overdue-new", soon(-10))
        s.schedule("overdue-old", soon(-3600))
        s.start(rec)
        await until(lambda: len(rec.ended) == 3)
        await s.stop()
        assert rec.ended == ["overdue-old", "overdue-new", "later"]

    run(scenario())


def test_never_early_and_wakes_for_an_earlier_deadline() -> None:
    async def scenario() -> None:
        s, rec = ExpiryScheduler(), Recorder()
        s.schedule("an-hour", soon(3600))
        s.start(rec)
        await asyncio.sleep(0.05)  # asleep for an hour now
        deadline = soon(0.2)
        rec.times["quick"] = deadline
        s.schedule("quick", deadline)
        await until(lambda: rec.ended == ["quick"])
        assert utcnow() >= deadline
        assert utcnow() - deadline < dt.timedelta(seconds=0.5)
        await s.stop()
        assert s.when("an-hour") is not None

    run(scenario())


def test_extension_reschedules_and_revocation_unschedules() -> None:
    async def scenario() -> None:
        s, rec = ExpiryScheduler(), Recorder()
        s.schedule("extended", soon(0.1))
        s.schedule("revoked", soon(0.1))
        s.schedule("plain", soon(0.1))
        s.start(rec)
        later = soon(0.4)
        rec.times["extended"] = later
        s.schedule("extended", later)
        s.unschedule("revoked")
        await until(lambda: "plain" in rec.ended)
        assert "extended" not in rec.ended
        await until(lambda: "extended" in rec.ended)
        assert utcnow() >= later
        await asyncio.sleep(0.1)
        await s.stop()
        assert "revoked" not in rec.ended
        assert sorted(rec.ended) == ["extended", "plain"]

    run(scenario())


def test_a_grant_found_extended_when_due_is_rescheduled_at_its_persisted_time() -> None:
    async def scenario() -> None:
        s, rec = ExpiryScheduler(), Recorder()
        persisted = soon(0.3)
        rec.times["g"] = persisted  # the watch has not told the scheduler yet; the re-read does
        s.schedule("g", soon(0.05))
        s.start(rec)
        await until(lambda: s.when("g") == persisted)
        assert rec.ended == []
        await until(lambda: rec.ended == ["g"])
        assert utcnow() >= persisted
        await s.stop()

    run(scenario())


def test_failures_are_retried_and_errors_do_not_stop_the_scheduler() -> None:
    async def scenario() -> None:
        s, rec = ExpiryScheduler(), Recorder()
        rec.fail["flaky"] = 3
        calls: list[str] = []

        async def expire(name: str) -> dt.datetime | None:
            calls.append(name)
            if name == "broken" and calls.count("broken") == 1:
                raise RuntimeError("boom")
            return await rec(name)

        s.schedule("flaky", soon(0))
        s.schedule("broken", soon(0))
        s.start(expire)
        await until(lambda: sorted(rec.ended) == ["flaky"])
        assert calls.count("flaky") == 4
        await s.stop()
        assert s.when("broken") is not None  # retried after RETRY_AFTER_ERROR, kept across stop

    run(scenario())


def test_a_step_of_the_wall_clock_forward_wakes_the_scheduler() -> None:
    """Deadlines are wall-clock times and asyncio sleeps on the monotonic clock: after an NTP step
    or a VM resume that makes a grant overdue, it is ended within a second, not when the sleep
    computed before the step runs out (an hour here)."""
    t0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
    wall = [t0]
    ended: list[str] = []

    async def expire(name: str) -> dt.datetime | None:
        ended.append(name)
        return None

    async def main() -> None:
        s = ExpiryScheduler(concurrency=1, clock=lambda: wall[0])
        s.schedule("g1", t0 + dt.timedelta(hours=1))
        stop = asyncio.Event()
        task = asyncio.create_task(s.run(expire, stop))
        await asyncio.sleep(0.2)
        assert ended == []
        wall[0] = t0 + dt.timedelta(hours=2)
        for _ in range(40):
            if ended:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await task

    asyncio.run(main())
    assert ended == ["g1"]


def test_bounded_concurrency_and_stop_hands_back_what_was_not_ended() -> None:
    async def scenario() -> None:
        s = ExpiryScheduler(concurrency=3)
        running, peak, release = 0, 0, asyncio.Event()
        ended: list[str] = []

        async def slow(name: str) -> dt.datetime | None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await release.wait()
            running -= 1
            ended.append(name)
            return None

        for i in range(10):
            s.schedule(f"g{i}", soon(-1))
        s.start(slow)
        await until(lambda: running == 3)
        stopping = asyncio.create_task(s.stop())
        await asyncio.sleep(0.05)
        release.set()
        await stopping
        assert peak == 3
        assert sorted(ended) == ["g0", "g1", "g2"]  # the ones being ended finish
        assert len(s) == 7  # the rest wait for the next start

        s.start(slow)
        await until(lambda: len(ended) == 10)
        await s.stop()

    run(scenario())


def test_schedule_from_another_thread_wakes_the_scheduler() -> None:
    async def scenario() -> None:
        s, rec = ExpiryScheduler(), Recorder()
        s.start(rec)
        await asyncio.sleep(0.05)
        await asyncio.to_thread(s.schedule, "from-thread", soon(0.05))
        await until(lambda: rec.ended == ["from-thread"])
        await s.stop()

    run(scenario())


def _watch_context(queue: asyncio.Queue[Any]) -> contextvars.Context:
    """A context like the one kopf's watch runs handlers in: its Event queue is there."""
    context = contextvars.copy_context()
    context.run(posting.event_queue_var.set, queue)
    context.run(posting.event_queue_loop_var.set, asyncio.get_running_loop())
    context.run(posting.settings_var.set, kopf.OperatorSettings())
    return context


def _reasons(queue: asyncio.Queue[Any]) -> list[tuple[str, str]]:
    posted = []
    while not queue.empty():
        event = queue.get_nowait()
        posted.append((event.ref["name"], event.reason))
    return posted


def test_the_operator_expires_before_its_watch_has_begun_and_posts_the_events_once_it_has() -> None:
    """After a restart overdue grants end before kopf has adopted anything: the expiry's audit
    lines are written at once, its Events wait for the watch's context and are all posted then, in
    order; later ones go at once. Nothing is dropped, and nothing else is deferred unnoticed."""

    def ended(name: str) -> None:
        record(ref(names.ACCESS_GRANT, name), names.EXPIRED, f"{name} expired")

    async def scenario() -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        wiring = expiry._Wiring(ThreadPoolExecutor(2))
        try:
            await expiry._in_thread(wiring, ended, "first")
            await expiry._in_thread(wiring, ended, "second")
            assert len(wiring.events) == 2 and queue.empty()
            wiring.events.open(_watch_context(queue))
            assert _reasons(queue) == [("first", "Expired"), ("second", "Expired")]
            await expiry._in_thread(wiring, ended, "third")  # in the watch's context now
            # A worker that found no watch context before `open`, adding after it, from its thread.
            late = ref(names.ACCESS_GRANT, "late")
            await asyncio.to_thread(wiring.events.add, late, "Normal", "Expired", "late")
            assert _reasons(queue) == [("third", "Expired"), ("late", "Expired")]
            assert len(wiring.events) == 0
        finally:
            wiring.pool.shutdown()
        # Anywhere else an Event that cannot be posted is an error, not a silent loss.
        with pytest.raises(LookupError):
            ended("elsewhere")

    run(scenario())


def test_expiry_writes_skip_the_webhooks() -> None:
    """Every write an expiry makes is the operator's own status write, which the webhook
    configurations skip: after a restart, overdue grants end while the webhook server starts."""
    # Every hook on a status subresource and on grants skips the operator's writes.
    for hook in (h for hooks in HOOKS.values() for h in hooks):
        if hook.subresource == "status" or hook.plural == names.GRANTS:
            assert hook.skips_operator, hook.id


# --- overdue grants -------------------------------------------------------------------------------


def test_overdue_counts_the_grants_past_the_grace_and_the_oldest() -> None:
    now = at(0)
    assert overdue([], now) == (0, 0.0)
    # Due now, and within the 30 s grace: an expiry under way, not overdue.
    assert overdue([at(0), at(-30), at(60)], now) == (0, 0.0)
    assert overdue([at(-31), at(-300), at(-5), at(60)], now) == (2, 300.0)


class _Grants:
    """A `Kube` that holds Active grants and reads them back."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}

    def expired(self, name: str, seconds_ago: float) -> dict[str, Any]:
        when = utcnow() - dt.timedelta(seconds=seconds_ago)
        self.objects[name] = {
            "apiVersion": names.API_VERSION,
            "kind": names.ACCESS_GRANT,
            "metadata": {"name": name, "uid": f"uid-{name}"},
            "spec": {"user": "alice", "entitlement": "prod", "groupName": "prod", "request": name, "duration": "1h"},
            "status": {
                "expirationTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "Active",
                        "message": "",
                        "lastTransitionTime": "2030-01-01T00:00:00Z",
                    }
                ],
            },
        }
        return self.objects[name]

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(name)


def test_an_expiry_identity_center_does_not_answer_is_an_error_once_overdue_and_one_event(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Identity Center down at expiry: a WARNING within the grace; past it an ERROR (the membership
    outlives the grant), said again once a minute, not at each retry; and one ExpiryOverdue Warning
    Event per grant, not one per retry."""
    monkeypatch.setattr(removals, "LOGGED", OncePer(60))
    kube = _Grants()
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, kube))
    outage = True

    def end(rt: Runtime, name: str, *_: Any, **__: Any) -> None:
        if outage:
            raise RetryLater("CreateGroupMembership: 503", operation="DeleteGroupMembership")

    monkeypatch.setattr(expiry, "end_grant", end)

    async def scenario() -> None:
        nonlocal outage
        queue: asyncio.Queue[Any] = asyncio.Queue()
        wiring = expiry._Wiring(ThreadPoolExecutor(2))
        wiring.events.open(_watch_context(queue))
        try:
            kube.expired("fresh", seconds_ago=5)
            assert await expiry.expire(rt, wiring, "fresh") is not None
            assert [r.levelname for r in caplog.records if "fresh" in r.getMessage()] == ["WARNING"]
            assert _reasons(queue) == []

            body = kube.expired("late", seconds_ago=300)
            rt.expirations.observe("late", ("prod", utcnow() - dt.timedelta(seconds=300)))
            for _ in range(3):
                assert await expiry.expire(rt, wiring, "late") is not None
            errors = [r for r in caplog.records if r.levelname == "ERROR" and "late" in r.getMessage()]
            assert len(errors) == 1 and re.search("outlives the grant by 30[01]s", errors[0].getMessage())
            assert _reasons(queue) == [("late", names.EXPIRY_OVERDUE)]

            # Ended at last: forgotten, so that a grant overdue again later is reported again.
            outage = False
            assert await expiry.expire(rt, wiring, "late") is None
            outage = True
            kube.objects["late"] = body
            assert await expiry.expire(rt, wiring, "late") is not None
            assert _reasons(queue) == [("late", names.EXPIRY_OVERDUE)]
        finally:
            wiring.pool.shutdown()

    with caplog.at_level(logging.WARNING, logger=removals.log.name):
        run(scenario())


def _expired_three_times(rt: Runtime, kube: _Grants, name: str, seconds_ago: float, retry: float) -> list[Any]:
    """Grant `name`, due `seconds_ago`, expired three times, each failing and put back `retry` s
    later: the Events posted."""

    async def scenario() -> list[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        wiring = expiry._Wiring(ThreadPoolExecutor(2))
        wiring.events.open(_watch_context(queue))
        try:
            kube.expired(name, seconds_ago=seconds_ago)
            rt.expirations.observe(name, ("prod", utcnow() - dt.timedelta(seconds=seconds_ago)))
            for _ in range(3):
                again = await expiry.expire(rt, wiring, name)
                assert again is not None
                assert retry - 1 <= (again - utcnow()).total_seconds() <= retry
            posted = []
            while not queue.empty():
                posted.append(queue.get_nowait())
            return posted
        finally:
            wiring.pool.shutdown()

    return asyncio.run(scenario())


def test_an_expiry_identity_center_refuses_is_retried_and_reported_like_one_it_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """AccessDenied on the removal (the IAM policy edited): the grant is tried again every 5 s, not
    given up, with no traceback; an ERROR once a minute, and one ExpiryOverdue Warning Event naming
    the AWS error and the IAM action to check."""
    monkeypatch.setattr(removals, "LOGGED", OncePer(60))
    kube = _Grants()
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, kube))
    refused = PermanentFailure(
        "DeleteGroupMembership: AccessDeniedException: not authorized",
        operation="DeleteGroupMembership",
        code="AccessDeniedException",
    )

    def end(rt: Runtime, name: str, *_: Any, **__: Any) -> None:
        raise refused

    monkeypatch.setattr(expiry, "end_grant", end)
    with caplog.at_level(logging.WARNING):
        posted = _expired_three_times(rt, kube, "denied", 300, 5)
    assert [(e.ref["name"], e.reason, e.type) for e in posted] == [("denied", names.EXPIRY_OVERDUE, "Warning")]
    assert "AccessDeniedException" in posted[0].message
    assert "identitystore:DeleteGroupMembership" in posted[0].message
    said = [r for r in caplog.records if "denied" in r.getMessage() and r.name == removals.log.name]
    assert [r.levelname for r in said] == ["ERROR"]
    assert not any(r.exc_info for r in caplog.records)
    assert "identitystore:DeleteGroupMembership" in said[0].getMessage()


def test_an_expiry_whose_end_the_api_server_refuses_is_retried_each_minute_and_reported_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The membership removed, the grant's `Expired` refused as invalid (an admission policy): tried
    again in a minute, not every 5 s with a traceback; one ERROR a minute naming the grant and the
    API server's words, and one WriteRefused Warning Event."""
    monkeypatch.setattr(removals, "LOGGED", OncePer(60))
    kube = _Grants()
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, kube))
    said = 'AccessGrant.jitaccess.dev "held" is invalid: status: the policy refuses it'

    def end(rt: Runtime, name: str, *_: Any, **__: Any) -> None:
        raise Refused(422, said, f"the status of accessgrants/{name}")

    monkeypatch.setattr(expiry, "end_grant", end)
    with caplog.at_level(logging.WARNING):
        posted = _expired_three_times(rt, kube, "held", 5, 60)
    assert [(e.ref["name"], e.reason, e.type) for e in posted] == [("held", names.WRITE_REFUSED, "Warning")]
    assert "its membership is removed" in posted[0].message and said in posted[0].message
    said_here = [r for r in caplog.records if "held" in r.getMessage() and r.name == removals.log.name]
    assert [r.levelname for r in said_here] == ["ERROR"] and said in said_here[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


def test_a_revocation_identity_center_refuses_is_retried_by_kopf_and_reported_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The revocation path: a refusal is a TemporaryError for kopf (retried in 5 s, no traceback),
    and, once overdue from the deletion, one ExpiryOverdue Warning Event naming the IAM action."""
    monkeypatch.setattr(removals, "LOGGED", OncePer(60))
    monkeypatch.setattr(removals, "REVOCATIONS", removals.Overdue())
    kube = _Grants()
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, kube))

    def end(*_: Any, **__: Any) -> None:
        raise PermanentFailure(
            "DeleteGroupMembership: AccessDeniedException: no", operation="DeleteGroupMembership", code="x"
        )

    monkeypatch.setattr(grants, "end_grant", end)
    body = kube.expired("deleted", seconds_ago=-3600)  # an hour left: deleted early
    gone = utcnow() - dt.timedelta(seconds=120)
    body["metadata"]["deletionTimestamp"] = gone.strftime("%Y-%m-%dT%H:%M:%SZ")
    rt.expirations.observe("deleted", ("prod", gone))

    async def scenario() -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        context = _watch_context(queue)
        for _ in range(3):
            with pytest.raises(kopf.TemporaryError) as refused:
                context.run(grants._end_or_retry, rt, kopf.Body(body), names.REVOKED, rt.holders, who="", why="")
            assert refused.value.delay == 5
            assert "identitystore:DeleteGroupMembership" in str(refused.value)
        await asyncio.sleep(0)
        posted = _reasons(queue)
        assert posted == [("deleted", names.EXPIRY_OVERDUE)]

    run(scenario())


def test_the_iam_action_of_a_refused_call() -> None:
    assert removals.iam_action("DeleteGroupMembership") == "identitystore:DeleteGroupMembership"
    assert removals.iam_action("DeleteAccountAssignment") == "sso:DeleteAccountAssignment"
    assert removals.iam_action("wait") is None  # the request status of an assignment: no action of its own


def test_the_grants_reported_overdue_are_kept_to_active_grants() -> None:
    reported = removals.Overdue()
    active = {"a", "b"}
    assert reported.first("a", active.__contains__) and not reported.first("a", active.__contains__)
    active.discard("a")  # ended some other way (revoked, deleted): dropped at the next report
    assert reported.first("b", active.__contains__)
    assert reported._names == {"b"}

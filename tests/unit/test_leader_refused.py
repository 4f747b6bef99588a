"""A Lease the API server refuses (a ValidatingAdmissionPolicy, a quota, RBAC): no replica acts
without a Lease it wrote, the tries keep their retry period (a held Lease whose term has run out is
not tried every 50 ms), the refusal is an ERROR in the API server's words once a minute, not at
every try, and `/healthz` says why this replica does not lead (`handlers.leadership`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from jitaccess.adapters.lease import LeaseConflict, LeaseRefused, LeaseStore
from jitaccess.domain.election import LeaseRecord, Timing
from jitaccess.handlers import startup
from jitaccess.handlers.leadership import Elector, Leadership

TIMING = Timing(lease_duration=1.2, renew_deadline=0.8, retry_period=0.2)
POLICY = "ValidatingAdmissionPolicy 'hold' denied request: leases are frozen here"


def api_error(status: int, message: str = "") -> ApiException:
    exc = ApiException(status=status, reason="Refused")
    exc.body = json.dumps({"kind": "Status", "message": message}) if message else ""
    return exc


class Raising:
    """The Lease API of the kubernetes client, answering every call with `exc`."""

    def __init__(self, exc: ApiException) -> None:
        self.exc = exc

    def __getattr__(self, _: str) -> Any:
        def call(*_: Any, **__: Any) -> Any:
            raise self.exc

        return call


def store_answering(exc: ApiException) -> LeaseStore:
    store = LeaseStore("jitaccess", "jitaccess", timeout=1)
    store._api = Raising(exc)  # type: ignore[assignment]
    return store


RECORD = LeaseRecord("me", 12, None, None)


@pytest.mark.parametrize("status", [400, 403, 422])
def test_a_refused_lease_write_is_a_refusal_in_the_api_servers_words(status: int) -> None:
    store = store_answering(api_error(status, POLICY))
    with pytest.raises(LeaseRefused) as refused:
        store.replace(RECORD, "7")
    assert (refused.value.status, refused.value.words) == (status, POLICY)
    with pytest.raises(LeaseRefused):
        store.create(RECORD)
    with pytest.raises(LeaseRefused):
        store.read()


def test_other_answers_keep_their_meaning() -> None:
    with pytest.raises(LeaseConflict):
        store_answering(api_error(409)).replace(RECORD, "7")
    with pytest.raises(ApiException) as failed:
        store_answering(api_error(500)).replace(RECORD, "7")
    assert not isinstance(failed.value, LeaseRefused)
    assert store_answering(api_error(404)).read() is None
    assert LeaseRefused(422, "no").words == "no"


class Store:
    """A Lease in memory that refuses every write while `refusing`; counts the writes tried."""

    namespace, name = "jitaccess", "jitaccess"

    def __init__(self, record: LeaseRecord | None = None) -> None:
        self.record, self.version = record, 1
        self.refusing = False
        self.writes: list[float] = []

    def read(self) -> tuple[LeaseRecord, str] | None:
        return None if self.record is None else (self.record, str(self.version))

    def create(self, record: LeaseRecord) -> str:
        return self.replace(record, str(self.version))

    def replace(self, record: LeaseRecord, version: str) -> str:
        self.writes.append(time.monotonic())
        if self.refusing:
            raise LeaseRefused(422, POLICY)
        if version != str(self.version):
            raise LeaseConflict("changed")
        self.record, self.version = record, self.version + 1
        return str(self.version)

    def tries_within(self, seconds: float) -> int:
        return len([t for t in self.writes if t > time.monotonic() - seconds])


def healthz(leadership: Leadership) -> str:
    return startup.leadership_state(memo=kopf.Memo(**{startup.LEADERSHIP: leadership}))


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "jitaccess.handlers.leadership" and r.levelno >= logging.WARNING and "refuses" in r.getMessage()
    ]


def test_a_refused_lease_is_never_led_nor_hammered_and_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    """Held by a replica that died long ago: the take-over is refused. Before, the standby found the
    holder's term over at every try and tried again 50 ms later, a WARNING each time."""
    caplog.set_level(logging.INFO)
    dead = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    store, leadership = Store(LeaseRecord("dead-pod", 1, dead, dead, 2)), Leadership()
    store.refusing = True
    elector = Elector(store, "me", TIMING, leadership)  # type: ignore[arg-type]
    acted: list[str] = []

    async def lead() -> None:
        acted.append("lead")

    async def follow() -> None:
        acted.append("follow")

    async def scenario() -> None:
        task = asyncio.create_task(elector.run(lead, follow))
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert not leadership.leading(), "led without a Lease it wrote"
            await asyncio.sleep(0.01)
        assert store.tries_within(1.0) <= 6, f"{store.tries_within(1.0)} tries in a second (retry period 0.2 s)"
        assert "NOT ABLE TO LEAD" in healthz(leadership) and POLICY in healthz(leadership)
        store.refusing = False
        while not leadership.leading():
            await asyncio.sleep(0.01)
        assert healthz(leadership) == "leading" and leadership.problem is None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    said = refusals(caplog)
    assert len(said) == 1, said
    assert "Lease jitaccess/jitaccess" in said[0] and POLICY in said[0] and "(422)" in said[0], said
    assert [r.levelname for r in caplog.records if r.getMessage() in said] == ["ERROR"]
    assert any("can be read and written again" in r.getMessage() for r in caplog.records)
    assert acted[0] == "lead"


def test_a_leader_whose_renewals_are_refused_stops_at_its_deadline_and_stays_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    store, leadership = Store(), Leadership()
    elector = Elector(store, "me", TIMING, leadership)  # type: ignore[arg-type]

    async def nothing() -> None:
        return None

    async def scenario() -> None:
        task = asyncio.create_task(elector.run(nothing, nothing))
        while not leadership.leading():
            await asyncio.sleep(0.01)
        store.refusing = True
        refused = time.monotonic()
        while leadership.leading():
            await asyncio.sleep(0.01)
        assert time.monotonic() - refused <= TIMING.renew_deadline + 0.1
        # Past its own Lease's term: still not leading, still at the retry period's pace.
        deadline = time.monotonic() + TIMING.lease_duration + 1.0
        while time.monotonic() < deadline:
            assert not leadership.leading()
            await asyncio.sleep(0.01)
        assert store.tries_within(1.0) <= 6, f"{store.tries_within(1.0)} tries in a second (retry period 0.2 s)"
        assert "NOT ABLE TO LEAD" in healthz(leadership)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert len(refusals(caplog)) == 1, refusals(caplog)

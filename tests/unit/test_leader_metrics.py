"""Leadership in the metrics: `jitaccess_leader` read from `Leadership` at scrape time (0 the moment
the renew deadline passes), each change counted in `jitaccess_leader_transitions_total`, and the
leader-only gauges (the audit archive's queue) shown by the leader only."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from datetime import UTC, datetime
from typing import cast

import kopf
from prometheus_client.parser import text_string_to_metric_families

from jitaccess import metrics
from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.adapters.lease import LeaseConflict
from jitaccess.domain.election import LeaseRecord, Timing
from jitaccess.handlers import observability, startup
from jitaccess.handlers.leadership import Always, Elector, Leadership
from jitaccess.handlers.runtime import Runtime
from jitaccess.observability import State, state_metrics
from jitaccess.settings import Settings

NOW = datetime(2025, 11, 23, 12, 0, tzinfo=UTC)


def leader_gauge(state: State) -> list[float]:
    [family] = [f for f in state_metrics(state, NOW) if f.name == metrics.LEADER]
    return [sample.value for sample in family.samples]


def test_the_leader_gauge_is_what_leadership_says_at_the_scrape() -> None:
    leadership = Leadership()
    assert leader_gauge(State(leader=leadership.leading())) == [0]
    leadership.hold_until(time.monotonic() + 60)
    assert leader_gauge(State(leader=leadership.leading())) == [1]
    leadership.hold_until(time.monotonic() - 0.001)  # the renew deadline has passed: 0 at once
    assert leader_gauge(State(leader=leadership.leading())) == [0]
    assert leader_gauge(State(leader=Always().leading())) == [1]  # leader election off
    assert leader_gauge(State()) == []  # no leadership known: left out, not a false 0 or 1


class Store:
    """A Lease in memory; `down` makes every call fail as an unreachable API server would."""

    namespace, name = "jitaccess", "jitaccess"

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.down = False

    def read(self) -> tuple[LeaseRecord, str] | None:
        if self.down:
            raise ConnectionError("API server unreachable")
        return None if self.record is None else (self.record, str(self.version))

    def create(self, record: LeaseRecord) -> str:
        return self.replace(record, "0")

    def replace(self, record: LeaseRecord, version: str) -> str:
        if self.down:
            raise ConnectionError("API server unreachable")
        if version != str(self.version):
            raise LeaseConflict("changed")
        self.record, self.version = record, self.version + 1
        return str(self.version)


def count(change: str) -> float:
    value: float = metrics.LEADER_TRANSITIONS.labels(change)._value.get()
    return value


def test_transitions_are_counted_and_a_lost_lease_shows_at_once() -> None:
    store, leadership = Store(), Leadership()
    elector = Elector(store, "me", Timing(0.6, 0.4, 0.05), leadership)  # type: ignore[arg-type]
    before = {change: count(change) for change in ("acquired", "lost", "released")}
    seen: list[str] = []

    async def lead() -> None:
        seen.append("lead")

    async def follow() -> None:
        seen.append(f"follow, leading={leadership.leading()}")

    async def scenario() -> None:
        task = asyncio.create_task(elector.run(lead, follow))
        while not leadership.leading():
            await asyncio.sleep(0.01)
        assert count("acquired") == before["acquired"] + 1
        store.down = True  # no renewal: not leading once the renew deadline has passed
        while leadership.leading():
            await asyncio.sleep(0.01)
        while len(seen) < 2:
            await asyncio.sleep(0.01)
        assert count("lost") == before["lost"] + 1
        store.down = False
        while len(seen) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert seen == ["lead", "follow, leading=False", "lead", "follow, leading=False"]
    assert count("acquired") == before["acquired"] + 2
    assert count("lost") == before["lost"] + 1
    assert count("released") == before["released"] + 1


def test_the_operators_metrics_ask_its_leadership_at_each_scrape() -> None:
    """The wiring (`handlers.observability`): the leader gauge, and the archive's queue gauges only
    on the leader."""
    leadership = Leadership()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rt = Runtime(Settings(metrics_port=port), cast(IdentityCenter, None), cast(Kube, None))
    memo = kopf.Memo(runtime=rt, **{startup.LEADERSHIP: leadership})
    asyncio.run(observability.serve_metrics(memo=memo))

    def scraped(name: str) -> list[float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            families = text_string_to_metric_families(response.read().decode())
            return [s.value for f in families if f.name == name for s in f.samples]

    # The audit archive's queue, lent by the leader's trail: shown only while this replica leads.
    rt.audit_backlog = lambda: (4, datetime.now(UTC))
    try:
        assert scraped(metrics.LEADER) == [0] and scraped(metrics.ARCHIVE_PENDING) == []
        leadership.hold_until(time.monotonic() + 60)
        assert scraped(metrics.LEADER) == [1] and scraped(metrics.ARCHIVE_PENDING) == [4]
        leadership.drop()
        assert scraped(metrics.LEADER) == [0] and scraped(metrics.ARCHIVE_PENDING) == []
    finally:
        observability.stop_metrics(memo=memo)


def test_a_lease_deleted_by_hand_is_not_taken_while_its_holder_may_still_act() -> None:
    """`kubectl delete lease` while A leads: B took the missing Lease at once, and both acted until
    A's next try found B holding it. A missing Lease last seen held by another counts as held,
    unchanged since: A re-creates it at its next try, and B stays a standby."""
    timing = Timing(lease_duration=1.2, renew_deadline=0.8, retry_period=0.2)
    store = Store()
    la, lb = Leadership(), Leadership()
    a = Elector(store, "pod-a", timing, la)  # type: ignore[arg-type]
    b = Elector(store, "pod-b", timing, lb)  # type: ignore[arg-type]
    both: list[float] = []

    async def nothing() -> None:
        return None

    async def scenario() -> None:
        ta = asyncio.create_task(a.run(nothing, nothing))
        while not la.leading():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # B's tries fall between A's
        tb = asyncio.create_task(b.run(nothing, nothing))
        await asyncio.sleep(0.5)
        assert la.leading() and not lb.leading()
        store.record, store.version = None, 0  # deleted by hand: the next create succeeds
        start = time.monotonic()
        while time.monotonic() - start < 1.5:
            if la.leading() and lb.leading():
                both.append(time.monotonic() - start)
            await asyncio.sleep(0.01)
        assert store.record is not None and store.record.holder == "pod-a", "its holder took it back"
        for task in (ta, tb):
            task.cancel()
        await asyncio.gather(ta, tb, return_exceptions=True)

    asyncio.run(scenario())
    assert not both, f"two replicas acted at once for {len(both) * 0.01:.2f} s"

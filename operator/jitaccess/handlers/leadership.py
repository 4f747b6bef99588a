"""Leader election: which replica acts. Every replica serves the admission webhooks; only the one
holding the `coordination.k8s.io` Lease runs the handlers, timers and the expiry scheduler.

Our own small loop rather than the `kubernetes` client's `leaderelection` package: that one is
blocking (it sleeps in the calling thread), returns for good once leadership is lost, takes no
request timeout (a leader cut off from the API server would hang in a call past its deadline),
never releases the Lease on a clean stop, and compares naive local times. The rules are in
`domain.election`; this module runs them every `retry_period`:

- a standby reads the Lease and takes it when it is free, released or expired (at once, so a
  single replica leads within a moment of its start, and a new leader within `lease_duration` of
  the old one's last renewal); it polls more often as the holder's term runs out;
- the leader renews it, and may act only until `renew_deadline` after the start of its last
  successful renewal (`Leadership.leading`, which the Identity Center adapter checks before each
  membership change): cut off from the API server, it stops acting before anyone else can start,
  and its controller is stopped at that moment too, even while a renewal is still hanging;
- a leader that stops cleanly stops its work first, then releases the Lease, so a standby takes
  over at its next try (within `retry_period`);
- a Lease the API server refuses to this replica (a ValidatingAdmissionPolicy, a quota, RBAC:
  `LeaseRefused`) or that it cannot reach is neither taken nor kept: only a write the API server
  accepted makes a replica act. It is tried again every `retry_period` (never sooner, even when the
  holder's term has run out), said at once and then at most once a minute (ERROR for a refusal, in
  the API server's words; WARNING for an unreachable API server), and kept in
  `Leadership.problem`, which `/healthz` shows (`handlers.startup.leadership`).

Each change is counted in `jitaccess_leader_transitions_total`; `jitaccess_leader` is read from
`Leadership.leading` at scrape time (`handlers.observability`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from jitaccess import metrics
from jitaccess.adapters.lease import LeaseConflict, LeaseRefused, LeaseStore
from jitaccess.domain import election
from jitaccess.domain.election import LeaseRecord, Timing
from jitaccess.logs import OncePer

log = logging.getLogger(__name__)

#: A Lease that keeps failing is said at most this often (seconds), not at every try.
SAY_EVERY_SECONDS = 60.0


class Leadership:
    """Whether this replica may act now: it holds the Lease and renewed it recently enough."""

    def __init__(self) -> None:
        self._until = 0.0
        #: Why this replica can neither take nor keep the Lease now (its last try failed), else None.
        self.problem: str | None = None

    def leading(self) -> bool:
        return time.monotonic() < self._until

    @property
    def until(self) -> float:
        """Until when (monotonic seconds) this replica may act; 0 when it may not."""
        return self._until

    def hold_until(self, deadline: float) -> None:
        """Act until `deadline` (monotonic seconds): the start of a renewal plus the renew deadline."""
        self._until = deadline

    def drop(self) -> None:
        self._until = 0.0


class Always(Leadership):
    """Leader election is off: this process is the only replica and always acts."""

    def leading(self) -> bool:
        return True


class _Failures:
    """The tries that failed in a row, said when they begin or change kind, then once a minute."""

    def __init__(self) -> None:
        self._said = OncePer(SAY_EVERY_SECONDS)

    def failed(self, kind: tuple[str, int], level: int, text: str) -> None:
        said = self._said.due(kind=kind)
        if said is None:
            return
        since = f" ({said.unsaid} more failed tries since the last such line)" if said.again else ""
        log.log(level, "%s; tried again every retry period%s", text, since)

    def ended(self, where: str) -> None:
        if self._said.forget():
            log.info("%s can be read and written again", where)


@dataclass
class _Observed:
    """The Lease as last read, and when (monotonic) its record last changed."""

    record: LeaseRecord | None = None
    version: str = ""
    changed_at: float = 0.0


class Elector:
    def __init__(self, store: LeaseStore, identity: str, timing: Timing, leadership: Leadership) -> None:
        self.store, self.identity, self.timing, self.leadership = store, identity, timing, leadership
        self._seen = _Observed()
        self._led = False
        self._failures = _Failures()

    @property
    def where(self) -> str:
        return f"Lease {self.store.namespace}/{self.store.name}"

    async def run(self, lead: Callable[[], Awaitable[None]], follow: Callable[[], Awaitable[None]]) -> None:
        """Until cancelled: `lead()` on becoming the leader, `follow()` on ceasing to be (at once,
        when the renew deadline passes). On cancellation `follow()` runs, then the Lease is released."""
        try:
            while True:
                started = time.monotonic()
                held = await self._attempt(timeout=max(0.1, self.leadership.until - started) if self._led else None)
                if held:
                    self.leadership.hold_until(started + self.timing.renew_deadline)
                    if not self._led:
                        self._led = True
                        metrics.LEADER_TRANSITIONS.labels("acquired").inc()
                        record = self._seen.record
                        log.info(
                            "leading: %s holds %s (transition %d); starting the controller",
                            self.identity,
                            self.where,
                            record.transitions if record else 0,
                        )
                        await lead()
                elif self._led and (not self.leadership.leading() or self._taken()):
                    await self._step_down(follow)
                await self._pause(started)
        finally:
            if self._led:
                await self._step_down(follow, releasing=True)

    async def _attempt(self, timeout: float | None) -> bool:
        """Take or renew the Lease once; True when this replica holds it now. While leading, a call
        that outlasts the renew deadline counts as failed (the thread finishes on its own)."""
        call = asyncio.to_thread(self._try_once)
        try:
            held = await (asyncio.wait_for(call, timeout) if timeout is not None else call)
        except (TimeoutError, LeaseConflict):
            return False
        except LeaseRefused as exc:  # an admission policy, a quota, RBAC: until somebody changes it
            said = f"the API server refuses {self.where} to {self.identity} ({exc.status}): {exc.words}"
            self._failed(("refused", exc.status), logging.ERROR, f"{said}; no leadership without it")
            return False
        except Exception as exc:  # the API server unreachable: try again next period
            said = f"{self.identity}: cannot read or write {self.where}: {exc}"
            self._failed((type(exc).__name__, 0), logging.WARNING, said)
            return False
        self.leadership.problem = None
        self._failures.ended(self.where)
        return held

    def _failed(self, kind: tuple[str, int], level: int, said: str) -> None:
        self.leadership.problem = said
        self._failures.failed(kind, level, said)

    def _try_once(self) -> bool:
        now, mono = dt.datetime.now(dt.UTC), time.monotonic()
        current = self.store.read()
        record, version = current if current is not None else (None, "")
        previous = self._seen.record
        if record is None and previous is not None and previous.holder not in (None, self.identity):
            # Gone while another held it (deleted by hand): that holder acts until its own next
            # try, so it counts as there still, unchanged since last seen; it re-creates the Lease
            # at that try, or, dead, is waited out as a silent holder is. Taking it at once let two
            # replicas act together for up to a retry period.
            record = previous
        elif record != previous or version != self._seen.version:
            self._seen = _Observed(record, version, mono)
        wanted = election.claim(
            record, self.identity, now, unchanged_for=mono - self._seen.changed_at, timing=self.timing
        )
        if wanted is None:
            return False
        written = self.store.create(wanted) if current is None else self.store.replace(wanted, version)
        self._seen = _Observed(wanted, written, time.monotonic())
        return True

    def _taken(self) -> bool:
        record = self._seen.record
        return record is not None and record.holder not in (None, self.identity)

    async def _step_down(self, follow: Callable[[], Awaitable[None]], *, releasing: bool = False) -> None:
        self.leadership.drop()
        self._led = False
        metrics.LEADER_TRANSITIONS.labels("released" if releasing else "lost").inc()
        holder = self._seen.record.holder if self._seen.record else None
        if releasing:
            log.info("stopping: the controller stops, then %s is released", self.where)
        elif holder not in (None, self.identity):
            log.warning("lost %s to %s; the controller stops", self.where, holder)
        else:
            log.warning(
                "lost %s: not renewed within %gs (API server unreachable?); the controller stops",
                self.where,
                self.timing.renew_deadline,
            )
        await follow()
        if releasing:
            await asyncio.to_thread(self._release)

    def _release(self) -> None:
        record, version = self._seen.record, self._seen.version
        if record is None or record.holder != self.identity:
            return
        try:
            self.store.replace(election.released(record, dt.datetime.now(dt.UTC)), version)
        except Exception as exc:  # the others take over when the Lease expires instead
            log.warning("could not release %s: %s", self.where, exc)
            return
        log.info("released %s", self.where)

    async def _pause(self, started: float) -> None:
        """Sleep until the next try: a retry period, or less when the holder's term is about to end
        (or, while leading, when the renew deadline comes: the controller stops then)."""
        wait = self.timing.retry_period
        record = self._seen.record
        if self._led:
            wait = min(wait, self.leadership.until - time.monotonic())
        elif record is not None and record.holder and record.renew_time is not None:
            ends = record.renew_time + dt.timedelta(seconds=record.duration_seconds)
            left = (ends - dt.datetime.now(dt.UTC)).total_seconds()
            if left > 0:
                # Not once it has run out: this try found it so and could not take it (refused,
                # unreachable, raced), and trying every 50 ms would only hammer the API server.
                wait = min(wait, left + 0.05)
        await asyncio.sleep(max(0.05, wait - (time.monotonic() - started)))

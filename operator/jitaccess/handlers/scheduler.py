"""The expiry scheduler: one asyncio task that ends each Active grant when its time comes.

It sleeps until the earliest time in its `ExpiryQueue` (see `domain.expiry`), or until a change
brings an earlier one (the grant index calls `schedule` and `unschedule` from the watch, and the
start-up listing fills it before anything else runs). Due grants are handed, earliest first, to a
few workers that call `expire(name)`: that re-reads the grant and ends it, or says when to try
again (a grant extended meanwhile, Identity Center not answering). Overdue grants at start-up are
simply the first ones due, oldest first.

Self-contained: `start(expire)` and `stop()` (or `run(expire, stop)`), so whatever decides that
this process acts (start-up, leadership) can start it and stop it; grants taken out of the queue
but not yet ended when it stops go back in, so a later start picks them up. Nothing here knows
kopf or the API server. `schedule` and `unschedule` may be called from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Awaitable, Callable

from jitaccess.domain.expiry import ExpiryQueue

log = logging.getLogger(__name__)

#: `expire(name)` ends the grant, or returns when to try again (None: nothing more to do for it).
Expire = Callable[[str], Awaitable[dt.datetime | None]]
RETRY_AFTER_ERROR = dt.timedelta(seconds=5)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


#: The longest the scheduler sleeps before comparing the earliest deadline with the wall clock again.
RECHECK_SECONDS = 1.0


class ExpiryScheduler:
    # A worker holds its grant through the rate limiter's wait and the grant's API writes; at
    # start-up, with kopf adopting every object on the same cores, those took ~0.4 s a grant and 8
    # workers ended only 18 grants a second, under the 20/s quota that should be the only limit.
    def __init__(self, concurrency: int = 16, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.concurrency = concurrency
        self._clock = clock
        self._queue = ExpiryQueue()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        # Grants handed to a worker and not yet done: not handed out twice at once.
        self._busy: set[str] = set()

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)

    def when(self, name: str) -> dt.datetime | None:
        with self._lock:
            return self._queue.when(name)

    def schedule(self, name: str, when: dt.datetime) -> None:
        """Grant `name` is due at `when` (its persisted expiration time); any earlier time is replaced."""
        with self._lock:
            earliest = self._queue.schedule(name, when)
        if earliest:
            self._poke()

    def unschedule(self, name: str) -> None:
        with self._lock:
            self._queue.unschedule(name)

    def start(self, expire: Expire) -> None:
        """Run in the background of the current event loop until `stop()`."""
        if self._task is not None and not self._task.done():
            return
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.run(expire, self._stop), name="expiry scheduler")

    async def stop(self) -> None:
        """Stop taking grants; wait for the ones being ended to finish (their request follows)."""
        if self._task is None or self._stop is None:
            return
        self._stop.set()
        await self._task
        self._task = None

    async def run(self, expire: Expire, stop: asyncio.Event) -> None:
        """Until `stop` is set: end each grant when its time comes, at most `concurrency` at once."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        ready: asyncio.Queue[tuple[str, dt.datetime] | None] = asyncio.Queue()
        workers = [asyncio.create_task(self._work(ready, expire)) for _ in range(self.concurrency)]
        try:
            while not stop.is_set():
                self._wake.clear()
                now = self._clock()
                with self._lock:
                    due = self._queue.due(now)
                    earliest = self._queue.next_time()
                for name, when in due:
                    if name not in self._busy:
                        self._busy.add(name)
                        ready.put_nowait((name, when))
                delay = None if earliest is None else max(0.0, (earliest - self._clock()).total_seconds())
                if delay is not None:
                    # The deadlines are wall-clock times and asyncio sleeps on the monotonic clock:
                    # after a step of the wall clock forward (an NTP step, a VM paused or resumed),
                    # one long sleep would keep overdue grants' access until it ran out. A look
                    # at the queue's head each second costs nothing.
                    delay = min(delay, RECHECK_SECONDS)
                await _first_of(self._wake, stop, delay)
        finally:
            # Grants not yet handed to `expire` go back into the queue, for the next start.
            while not ready.empty():
                left = ready.get_nowait()
                if left is not None:
                    self._busy.discard(left[0])
                    self._put_back(*left)
            for _ in workers:
                ready.put_nowait(None)
            await asyncio.gather(*workers, return_exceptions=True)
            self._wake = None

    async def _work(self, ready: asyncio.Queue[tuple[str, dt.datetime] | None], expire: Expire) -> None:
        while True:
            item = await ready.get()
            if item is None:
                return
            name, when = item
            try:
                again = await expire(name)
            except asyncio.CancelledError:
                self._busy.discard(name)
                self._put_back(name, when)
                raise
            except Exception:
                log.exception("expiring AccessGrant %s failed; trying again in %s", name, RETRY_AFTER_ERROR)
                again = self._clock() + RETRY_AFTER_ERROR
            self._busy.discard(name)
            if again is not None:
                self._put_back(name, again)

    def _put_back(self, name: str, when: dt.datetime) -> None:
        """Schedule again, unless the watch has meanwhile given the grant a time of its own."""
        with self._lock:
            if name not in self._queue:
                self._queue.schedule(name, when)
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to wake
            loop.call_soon_threadsafe(wake.set)


async def _first_of(wake: asyncio.Event, stop: asyncio.Event, timeout: float | None) -> None:
    """Return when either event is set or `timeout` seconds have passed (None: no time limit)."""
    waits = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()

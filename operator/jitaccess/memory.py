"""Hands freed memory back to the system once a busy spell is over (glibc's `malloc_trim`).

Adopting thousands of objects at start-up (after a restart, or as a new leader) or a burst of
grants allocates far more than the operator keeps: glibc holds the freed memory for the process,
so its RSS stays near the peak (290 MB while adopting 10,000 grants against 250 MB held after),
which is what a memory limit and an alert see. A thread samples the process's CPU time each
second; when a second of work (at least `BUSY` of a core) is followed by a quiet one (under
`QUIET`), it trims once. Trimming walks the heap under glibc's lock for a few milliseconds, so it
is done only then, never on a timer while the operator works.

No library does this; glibc has no automatic trim of the main heap's free middle. A libc without
`malloc_trim` (musl) is left as is.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Shares of one core over one second: work worth trimming after, and quiet enough to trim in.
BUSY, QUIET = 0.25, 0.05


class Trimmer:
    """Decides when to trim: once per busy spell, in the first quiet second after it."""

    def __init__(self, trim: Callable[[], object], clock: Callable[[], float] = time.process_time) -> None:
        self._trim, self._clock = trim, clock
        self._last = clock()
        self._busy = False

    def tick(self, seconds: float) -> bool:
        """One sample, `seconds` after the last: True when it trimmed."""
        now = self._clock()
        used, self._last = (now - self._last) / seconds, now
        if used >= BUSY:
            self._busy = True
            return False
        if self._busy and used < QUIET:
            self._busy = False
            self._trim()
            return True
        return False


def start() -> Trimmer | None:
    """Start trimming in a daemon thread; None where the libc cannot trim."""
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "malloc_trim"):
        return None
    trimmer = Trimmer(lambda: libc.malloc_trim(0))

    def run() -> None:
        while True:
            time.sleep(1.0)
            try:
                trimmer.tick(1.0)
            except Exception:  # never let the sampling take anything down with it
                log.exception("memory trim failed")

    threading.Thread(target=run, name="jitaccess-trim", daemon=True).start()
    return trimmer

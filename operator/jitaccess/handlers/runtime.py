"""What the handlers share for the life of the operator: settings, adapters, locks, caches.

One `Runtime` lives in kopf's operator memo (`memo.runtime`), so tests can run the handlers
with `kopf.testing.KopfRunner` and their own Runtime (a moto-backed Identity Center, say).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.settings import Settings

_ENDED_MEMORY_SECONDS = 600.0
_CACHE_SECONDS = 60.0


@dataclass
class Runtime:
    settings: Settings
    identity_center: IdentityCenter
    kube: Kube
    # One lock per (user, group) membership: adding and removing it, and deciding whether any
    # other grant still holds it, must not interleave.
    _locks: defaultdict[tuple[str, str], threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))
    _locks_guard: threading.Lock = field(default_factory=threading.Lock)
    _ended: dict[str, float] = field(default_factory=dict)
    _cache: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)

    def membership_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._locks_guard:
            return self._locks[key]

    def mark_ended(self, grant: str) -> None:
        """Remember a grant this process ended, until the grant index has caught up with it."""
        now = time.monotonic()
        with self._locks_guard:
            self._ended[grant] = now
            for name, stamp in list(self._ended.items()):
                if now - stamp > _ENDED_MEMORY_SECONDS:
                    del self._ended[name]

    def recently_ended(self) -> set[str]:
        with self._locks_guard:
            return set(self._ended)

    def cached(self, kind: str, key: str, resolve: Callable[[str], str]) -> str:
        """Names-to-ids lookups are stable: cache them briefly to spare the AWS quota."""
        now = time.monotonic()
        hit = self._cache.get((kind, key))
        if hit is not None and now - hit[0] < _CACHE_SECONDS:
            return hit[1]
        value = resolve(key)
        self._cache[(kind, key)] = (now, value)
        return value

    def forget(self, kind: str, key: str) -> None:
        self._cache.pop((kind, key), None)


def runtime_of(memo: Any) -> Runtime:
    runtime = memo.get("runtime") if hasattr(memo, "get") else getattr(memo, "runtime", None)
    if not isinstance(runtime, Runtime):
        raise RuntimeError("the operator memo has no Runtime: was the startup handler skipped?")
    return runtime

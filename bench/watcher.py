"""A watch on every AccessGrant: when each one was first seen with each `Ready` reason.

The times are taken as the watch event arrives in this process, so they include the API server's
watch delivery (milliseconds): what a user running `kubectl get -w` would see, a little late.
"""

from __future__ import annotations

import calendar
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)
GROUP, VERSION = "jitaccess.dev", "v1alpha1"


def parse_time(text: str) -> float:
    """A Kubernetes timestamp (`2026-01-01T10:00:00Z`) as seconds since the epoch."""
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


@dataclass
class Seen:
    """One grant as the watch saw it."""

    user: str = ""
    reasons: dict[str, float] = field(default_factory=dict)  # Ready reason -> first seen
    expiration: float | None = None  # status.expirationTime


class GrantWatcher:
    """Watches `accessgrants` in a thread; `wait` blocks until grants reach a `Ready` reason."""

    def __init__(self, api: kubernetes.client.ApiClient, plural: str = "accessgrants") -> None:
        self._custom = kubernetes.client.CustomObjectsApi(api)
        self._plural = plural
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.grants: dict[str, Seen] = {}
        self._thread = threading.Thread(target=self._run, name=f"watch-{plural}", daemon=True)

    def start(self) -> GrantWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def forget(self) -> None:
        with self._cond:
            self.grants.clear()

    def _see(self, obj: dict[str, Any], stamp: float, deleted: bool = False) -> None:
        name = obj.get("metadata", {}).get("name", "")
        status = obj.get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        with self._cond:
            seen = self.grants.setdefault(name, Seen(user=(obj.get("spec") or {}).get("user", "")))
            if ready is not None:
                seen.reasons.setdefault(str(ready.get("reason")), stamp)
            if deleted:
                seen.reasons.setdefault("Deleted", stamp)
            if status.get("expirationTime"):
                seen.expiration = parse_time(status["expirationTime"])
            self._cond.notify_all()

    def _run(self) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    listing: Any = self._custom.list_cluster_custom_object(GROUP, VERSION, self._plural)
                    stamp = time.time()
                    for item in listing.get("items", []):
                        self._see(item, stamp)
                    version = listing["metadata"]["resourceVersion"]
                stream = kubernetes.watch.Watch().stream(
                    self._custom.list_cluster_custom_object,
                    GROUP,
                    VERSION,
                    self._plural,
                    resource_version=version,
                    timeout_seconds=60,
                    allow_watch_bookmarks=True,
                )
                for event in stream:
                    stamp = time.time()
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        version = None
                        break
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if event["type"] != "BOOKMARK":
                        self._see(obj, stamp, deleted=event["type"] == "DELETED")
                    if self._stop.is_set():
                        return
            except ApiException as exc:
                if exc.status == 410:
                    version = None
                else:
                    log.warning("grant watch failed (%s); watching again", exc)
                    time.sleep(0.5)
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning("grant watch failed (%s); watching again", exc)
                time.sleep(0.5)

    def wait(self, names: list[str] | set[str], reasons: set[str], timeout: float) -> dict[str, float]:
        """Until every grant in `names` has reached one of `reasons`: name -> first time seen.

        The times are the watch's own, so how often this looks does not change them: a large set
        is looked at every 50 ms rather than on every event. Raises TimeoutError.
        """
        missing = set(names)
        done: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                for name in list(missing):
                    seen = self.grants.get(name)
                    hits = [t for r, t in seen.reasons.items() if r in reasons] if seen else []
                    if hits:
                        done[name] = min(hits)
                        missing.discard(name)
                if not missing:
                    return done
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(missing)} of {len(done) + len(missing)} grants did not reach {reasons}")
                if len(missing) <= 20:
                    self._cond.wait(min(left, 1.0))
                    continue
            time.sleep(min(left, 0.05))

    def count(self, names: set[str], reasons: set[str]) -> int:
        with self._cond:
            return sum(1 for n in names if (s := self.grants.get(n)) and reasons & s.reasons.keys())

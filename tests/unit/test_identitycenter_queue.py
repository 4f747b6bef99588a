"""The bound on Identity Center calls in flight: callers beyond it wait, and how many wait is a metric."""

from __future__ import annotations

import threading
import time

from prometheus_client import REGISTRY

from jitaccess.adapters.identitycenter import CallQueue, IdentityCenter


class _SlowClient:
    """Counts how many calls run at once; each holds its slot until released."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.release = threading.Event()
        self._lock = threading.Lock()

    def get_user_id(self, **_: object) -> dict[str, str]:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.release.wait(5)
        with self._lock:
            self.running -= 1
        return {"UserId": "u-1"}


def _gauge() -> float | None:
    return REGISTRY.get_sample_value("jitaccess_identitycenter_queued")


def test_calls_beyond_the_bound_wait_and_are_counted_as_queued() -> None:
    client = _SlowClient()
    ic = IdentityCenter(client, "d-1", rate_limit=0, max_in_flight=3)
    threads = [threading.Thread(target=ic.resolve_user, args=(f"user{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while (ic.queue.queued < 5 or client.running < 3) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.running == 3 and ic.queue.queued == 5
    assert _gauge() == 5
    client.release.set()
    for thread in threads:
        thread.join(5)
    assert client.most == 3
    assert ic.queue.queued == 0 and _gauge() == 0


def test_a_free_slot_is_taken_without_waiting() -> None:
    queue = CallQueue(1)
    with queue:
        assert queue.queued == 0
    with queue:
        pass
    assert queue.queued == 0

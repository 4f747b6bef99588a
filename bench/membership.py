"""When each Identity Center membership appeared and went, to the microsecond, with no polling.

The emulator serves moto in a thread of the benchmark's own process and tells a listener of every
membership change the moment it takes effect (`IdentityCenterEmulator.watch_memberships`): the
times are those at which the operator's `CreateGroupMembership` / `DeleteGroupMembership` did.
"""

from __future__ import annotations

import threading
import time
from typing import Any

Key = tuple[str, str]  # (group id, user id)


class MembershipLog:
    """A membership listener: the last time each (group, user) membership was added and removed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.added: dict[Key, float] = {}
        self.removed: dict[Key, float] = {}

    def __call__(self, added: bool, membership: dict[str, Any]) -> None:
        stamp = time.time()
        key = membership["GroupId"], membership.get("MemberId", {}).get("UserId", "")
        with self._cond:
            (self.added if added else self.removed)[key] = stamp
            self._cond.notify_all()

    def forget(self) -> None:
        with self._cond:
            self.added.clear()
            self.removed.clear()

    def wait(self, which: dict[Key, float], keys: set[Key], timeout: float) -> bool:
        """Until every key is in `which` (`added` or `removed`); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not keys <= which.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 1.0))
        return True

"""When each Identity Center membership appeared and went, to the microsecond, with no polling.

The emulator serves moto in a thread of the benchmark's own process, so the store's membership
table can be replaced by a dict that stamps every insertion and removal as it happens: the times
are those at which the operator's `CreateGroupMembership` / `DeleteGroupMembership` took effect.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

Key = tuple[str, str]  # (group id, user id)


class MembershipLog(dict[str, Any]):
    """The store's `group_memberships` table (membership id -> membership), with a log of changes."""

    def __init__(self, initial: dict[str, Any]) -> None:
        super().__init__(initial)
        self._cond = threading.Condition()
        self.added: dict[Key, float] = {}
        self.removed: dict[Key, float] = {}
        self.writes: Counter[str] = Counter()

    @staticmethod
    def _key(membership: dict[str, Any]) -> Key:
        return membership["GroupId"], membership.get("MemberId", {}).get("UserId", "")

    def __setitem__(self, membership_id: str, membership: Any) -> None:
        stamp = time.time()
        super().__setitem__(membership_id, membership)
        with self._cond:
            self.added[self._key(membership)] = stamp
            self.writes["add"] += 1
            self._cond.notify_all()

    def _removed(self, membership: dict[str, Any]) -> None:
        stamp = time.time()
        with self._cond:
            self.removed[self._key(membership)] = stamp
            self.writes["remove"] += 1
            self._cond.notify_all()

    def pop(self, membership_id: str, *default: Any) -> Any:
        value = super().pop(membership_id, *default)
        if isinstance(value, dict) and "GroupId" in value:
            self._removed(value)
        return value

    def __delitem__(self, membership_id: str) -> None:
        value = self[membership_id]
        super().__delitem__(membership_id)
        self._removed(value)

    def values(self) -> list[Any]:  # type: ignore[override]
        # The emulator scans the table in the server's threads while others write to it: hand out
        # a snapshot (copied atomically) so that a scan never sees the dict change under it.
        return list(super().values())

    def members(self, group_id: str) -> set[str]:
        return {m["MemberId"].get("UserId", "") for m in self.values() if m["GroupId"] == group_id}

    def wipe(self, group_ids: set[str]) -> None:
        """Drop every membership of these groups without logging it, and forget the log."""
        for membership_id in [k for k, m in list(self.items()) if m["GroupId"] in group_ids]:
            super().pop(membership_id, None)
        with self._cond:
            self.added.clear()
            self.removed.clear()
            self.writes.clear()

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

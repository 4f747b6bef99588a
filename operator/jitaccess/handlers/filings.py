"""When each object was filed in the in-memory indexes, as a count every index shares: what a listing
may drop from them, and what it must keep.

kopf's watch lists again after a long cut (410 Gone: the API server's history no longer reaches back)
and shows only the objects that still exist: one deleted meanwhile gets no DELETED event, and stays
filed in every replica's indexes (`indexes`). A periodic listing of the kind finds such names
(`indexes.reconcile`), but an object filed while the listing was under way (created after it was
served) is missing from it too, and is not to be dropped: each filing is stamped (`stamp`), the
listing takes a stamp of its own before it begins, and drops only what was filed before that.
"""

from __future__ import annotations

import itertools
from collections.abc import Container

# A count, not a clock: no two stamps are the same, and one taken later is always above. One next()
# is a single step in CPython, so threads may share it (the admission part's loop files in the same
# indexes as the controller's threads).
_COUNT = itertools.count(1)


def stamp() -> int:
    """A stamp for a filing made now, or for the start of a listing."""
    return next(_COUNT)


class Filed(dict[str, int]):
    """The names an index has filed, each with its stamp: what a listing of their kind may drop
    (`drop_unlisted`), written once for every index (`runtime.ObjectIndex`, `grant_names`,
    `known_requests`). No lock of its own: its owner's lock guards it with what else it files."""

    def file(self, name: str) -> None:
        """`name` is filed now (again: its stamp is renewed)."""
        self[name] = stamp()

    def file_unless_filed(self, name: str) -> bool:
        """`file`, unless `name` is filed already (the watch, which knows it better, was first):
        whether this filed it."""
        if name in self:
            return False
        self.file(name)
        return True

    def drop_unlisted(self, listed: Container[str], since: int, prefix: str = "") -> list[str]:
        """Forget every name filed before `since` (a `stamp` taken before a listing began) that
        `listed` (the names the listing holds) lacks: deleted while no watch showed it. With
        `prefix`, only the names `prefix` + a listed name, looked up without it. The names
        forgotten, as filed (with the prefix)."""
        start = len(prefix)
        gone = [
            name
            for name, filed in self.items()
            if filed < since and name.startswith(prefix) and name[start:] not in listed
        ]
        for name in gone:
            del self[name]
        return gone

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

# A count, not a clock: no two stamps are the same, and one taken later is always above. One next()
# is a single step in CPython, so threads may share it (the admission part's loop files in the same
# indexes as the controller's threads).
_COUNT = itertools.count(1)


def stamp() -> int:
    """A stamp for a filing made now, or for the start of a listing."""
    return next(_COUNT)

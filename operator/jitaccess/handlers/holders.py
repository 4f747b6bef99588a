"""Who holds a membership as the API server stores the grants now: the word a removal, or the
decision to keep a membership, rests on.

`Runtime.holders` (`indexes`) is kept by the admission part's watch, in another event loop than the
controller's handlers that add and remove members, so it can lag behind a grant that has just
become a holder. The controller files a grant itself before it adds anything for it
(`grants.activate`), but a removal is still not decided on that index alone: when it names no
other holder, the grants of the user are listed (one request: `spec.user` is a selectable field
of AccessGrant) and any live one holding the same membership keeps it (`grants.end_grant`,
`catalog`'s drift scan).

Nor is a membership kept on the index's word alone: it can also lag behind a deletion, and name a
grant that is gone (a watch cut longer than the API server's watch history lists again, and shows
no deletion: `indexes.reconcile` drops such names within minutes). The grants it names are read by
name before one of them keeps a membership at another's end (`stored_among`). The drift scan takes
the index's word for who backs a member (a listing of the group's grants at every pass would grow
with the records kept), so such a ghost may spare an unbacked member until the next listing.
"""

from __future__ import annotations

from collections.abc import Iterable

from jitaccess.api import names, wire
from jitaccess.handlers.indexes import holdings
from jitaccess.handlers.runtime import Runtime


def stored_holders(rt: Runtime, user: str, keys: Iterable[tuple[str, str]], excluding: str = "") -> set[str]:
    """The live grants of user `user` (their `spec.user`), as stored now, filed under any of the
    membership `keys` (`indexes.holdings`), but `excluding` and those this process has just ended.

    By name: a grant made under a name the user had before a rename is not listed (the index,
    which is by UserId, still is the first word on it)."""
    wanted = set(keys)
    found = {
        wire.name_of(obj)
        for obj in rt.kube.list(names.GRANTS, fields={"spec.user": user})
        if wire.name_of(obj) != excluding and wanted.intersection(holdings(obj))
    }
    return found - rt.recently_ended()


def stored_among(rt: Runtime, grants: Iterable[str], keys: Iterable[tuple[str, str]]) -> set[str]:
    """Of `grants` (those the index names as holders), the ones stored now, live, and holding any of
    the membership `keys`: each read by name (whatever its user is called now)."""
    wanted = set(keys)
    found = set()
    for name in sorted(grants):
        obj = rt.kube.get(names.GRANTS, name)
        if obj is not None and wanted.intersection(holdings(obj)):
            found.add(name)
    return found

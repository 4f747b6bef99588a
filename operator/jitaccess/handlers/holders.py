"""Who holds a membership as the API server stores the grants now: the second word a removal asks for.

`Runtime.holders` (`indexes`) is kept by the admission part's watch, in another event loop than the
controller's handlers that add and remove members, so it can lag behind a grant that has just
become a holder. The controller files a grant itself before it adds anything for it
(`grants.activate`), but a removal is still not decided on that index alone: when it names no
other holder, the grants of the user are listed (one request: `spec.user` is a selectable field
of AccessGrant) and any live one holding the same membership keeps it (`grants.end_grant`,
`catalog`'s drift scan).
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

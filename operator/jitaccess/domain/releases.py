"""When a deleted Entitlement may go, and what it says meanwhile and when it goes.

Deleting an Entitlement ends jitaccess's watch over what it grants. While a grant of it is still
active, its Identity Center group still holds access that jitaccess gave, and the drift scan is
what keeps everyone else out of that group; were the Entitlement gone at once, the group would
keep its permission sets with nobody watching who is added to it. So a deleted Entitlement stays
(`Terminating`, `Ready=False` reason `Deleting`) and its group is scanned until its last grant
has ended and the records of the members the scan removed are kept (archived, or printed when
there is no archive; `unkept_drift`), the way Kubernetes keeps a PersistentVolumeClaim that a pod still uses.
Its grants are not revoked by the deletion: ending access is a decision someone takes, one
`kubectl jit revoke` away, and the message says so.

When it goes (`Released`), the group is left as jitaccess leaves a group after every grant: with
nobody in it that no grant backs. It keeps the permission sets assigned to it in AWS, which
jitaccess did not assign and does not remove: the Event and the audit line say so, and name any
other Entitlement that still grants the group (then it is still watched).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from jitaccess.api import audit, names, wire

#: How a wait's retry begins (kopf says "failed temporarily: <this> ..."): `logs` keeps such
#: lines out of the error log and the Events, where they would repeat every few seconds.
WAITING = "waiting:"

#: At most this many grants are named in a message (the rest are counted).
LISTED = 5


@dataclass(frozen=True)
class Remaining:
    """What still keeps a deleted Entitlement: its unfinished grants (name, end if known) and the
    drift removals its status still lists (records not yet archived)."""

    grants: Sequence[tuple[str, dt.datetime | None]]
    unkept_records: int = 0

    @property
    def done(self) -> bool:
        return not self.grants and not self.unkept_records


def unkept_drift(entitlement: wire.Obj) -> int:
    """The drift removals an Entitlement's status lists whose record is not kept yet (not listed in
    `status.archivedRecords`; one under way has none yet). One archived and waiting for its notices
    does not hold the release: the deletion waits for those after it, for a bounded time
    (`handlers.archive.hold_until_archived`), so that a Slack outage cannot hold it for days."""
    action, key_of = audit.DRIFT_REMOVALS[names.ENTITLEMENT]
    kept = audit.archived_keys(entitlement)
    return sum(
        1
        for removal in wire.status(entitlement).get("driftRemovals") or []
        if not removal.get("time") or f"{action}/{key_of(removal)}" not in kept
    )


def waiting(entitlement: str, remaining: Remaining, at: dt.datetime, *, scanned: bool = True) -> str:
    """The `Deleting` message: what the deletion waits for, and how to end it sooner. `scanned`:
    whether a group is kept clear meanwhile (none in account-assignment mode, unless grants of group
    mode made before a switch to it still run; none when removal of unbacked members is off)."""
    parts = []
    if remaining.grants:
        named = sorted(remaining.grants, key=lambda g: (g[1] is None, g[1] or at, g[0]))
        listed = ", ".join(name for name, _ in named[:LISTED])
        more = f" and {len(named) - LISTED} more" if len(named) > LISTED else ""
        ends = [end for _, end in named if end is not None]
        # A time, not a countdown: the message (and so the status) changes only when the grants do.
        last = f", the last ending at {wire.rfc3339(max(ends))}" if ends and len(ends) == len(named) else ""
        kept_clear = ", and its group is kept clear of anyone else until then" if scanned else ""
        parts.append(
            f"deleted, but {len(named)} grant(s) of it are still active ({listed}{more}){last}: it goes when "
            f"they end{kept_clear}; to end them now: "
            f"kubectl jit revoke --all --grants-only --entitlement {entitlement} --reason TEXT"
        )
    if remaining.unkept_records:
        parts.append(
            f"{remaining.unkept_records} drift removal record(s) not archived yet: it goes once they are "
            "(the operator's log says why the archive is not taking them)"
        )
    return "; ".join(parts)


def released(target: str | None, others: Sequence[str]) -> str:
    """The `Released` message: what jitaccess no longer does, and what it leaves in AWS.

    `target` is the group (None in account-assignment mode); `others` the live Entitlements that
    grant the same group."""
    if target is None:
        return "deleted, and no access it gave remains: every account assignment of its grants is gone"
    if others:
        return (
            f"deleted, and no access it gave remains: Identity Center group {target} is still granted, and "
            f"watched, through Entitlement(s) {', '.join(sorted(others))}"
        )
    return (
        f"deleted, and no access it gave remains: jitaccess no longer watches Identity Center group {target}. "
        "The group keeps the permission sets assigned to it in AWS, and whoever is added to it gets them: "
        "remove those assignments or the group, or give it an Entitlement again"
    )

"""Where `audit` and `review` get their records: the S3 archive when one is configured, else the cluster.

From the cluster, the records are derived from the AccessRequests and AccessGrants it still holds
(and the drift removals Entitlements list until they are archived),
by the same pure functions the operator archives with (`jitaccess.api.audit`), so both sources
give the same records for the same objects. The cluster forgets: the operator retires finished
requests after a while, so only the archive has the whole history. Either way the caller is told
which source it read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jitaccess.api import names
from jitaccess.api.audit import ACTIONS, records_of_entitlement, records_of_grant, records_of_request
from jitaccess.cli import objects as o
from jitaccess.cli.parser import ARCHIVE_ENV
from jitaccess.cli.session import Session

Record = dict[str, Any]
CLUSTER = "cluster"
_LAST = datetime.max.replace(tzinfo=UTC)
# Times have whole seconds: a request, its auto-approval and its grant often share one. Within a
# second, records go in the order an object's life produces them.
_STEP = {action: step for step, action in enumerate(ACTIONS)}


@dataclass(frozen=True)
class History:
    """The records of a window, oldest first, and where they came from (`cluster` or an s3:// location)."""

    source: str
    records: list[Record]

    @property
    def described(self) -> str:
        if self.source == CLUSTER:
            return (
                "records from the cluster: only the objects it still holds (finished requests are retired); "
                f"the audit archive has them all (--archive or ${ARCHIVE_ENV})"
            )
        return f"records from the audit archive {self.source}"


def archive_location(flag: str | None, environ: Mapping[str, str]) -> str:
    """The archive to read: the flag when given (`''` means the cluster), else the environment's."""
    return flag if flag is not None else environ.get(ARCHIVE_ENV, "")


def time_of(record: Record) -> datetime | None:
    return o.parse_time(record.get("time"))


def load(session: Session, archive: str, start: datetime, end: datetime) -> History:
    """The records since `start` (and any without a time), each id once, oldest first. None is left
    out for being after `end`, the caller's now: the caller's clock may be behind the cluster's."""
    if archive:
        from jitaccess.cli import archive as s3

        source, found = archive, s3.read(archive, start, end)
    else:
        api = session.api
        found = [r for q in o.list_all(api, names.REQUESTS)[0] for r in records_of_request(q)]
        found += [r for g in o.list_all(api, names.GRANTS)[0] for r in records_of_grant(g)]
        found += [r for e in o.list_all(api, names.ENTITLEMENTS)[0] for r in records_of_entitlement(e)]
        source = CLUSTER
    unique: dict[str, Record] = {}
    for record in found:
        when = time_of(record)
        if when is None or when >= start:
            unique.setdefault(str(record.get("id") or json.dumps(record, sort_keys=True)), record)
    ordered = sorted(unique.values(), key=_order)
    return History(source, ordered)


def _order(record: Record) -> tuple[datetime, int, str]:
    return (time_of(record) or _LAST, _STEP.get(str(record.get("action")), len(_STEP)), str(record.get("id")))


def username(part: Any) -> str:
    """The username of a record's `user` or `actor` ({"username": ...}), or empty."""
    return str(part.get("username") or "") if isinstance(part, Mapping) else ""


def is_user(name: str, wanted: str) -> bool:
    """`wanted` is the whole username or its part before `@` (alice for alice@example.com)."""
    return bool(name) and (name == wanted or name.split("@", 1)[0] == wanted)


def select(records: Iterable[Record], *, entitlement: str | None = None, user: str | None = None) -> list[Record]:
    """The records of one entitlement, and about or by one user, when those are given."""
    return [
        r
        for r in records
        if (entitlement is None or r.get("entitlement") == entitlement)
        and (user is None or is_user(username(r.get("user")), user) or is_user(username(r.get("actor")), user))
    ]

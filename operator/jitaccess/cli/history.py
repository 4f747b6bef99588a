"""Where `audit` and `review` get their records: the S3 archive when one is configured, else the cluster.

From the cluster, the records are derived from the AccessRequests and AccessGrants it still holds
(and the drift removals Entitlements and PermissionCatalogs list until they are archived),
by the same pure functions the operator archives with (`jitaccess.api.audit`), so both sources
give the same records for the same objects. The cluster forgets: the operator retires finished
requests after a while, so only the archive has the whole history. Either way the caller is told
which source it read.

Each record is kept once by id. The same id with the same contents is one record delivered more
than once (the archiver is at-least-once under failures): kept once, silently. The same id with
different contents is a **conflict**: one of them is not what the operator wrote (a forged or
changed object, docs/audit.md). The reader cannot tell which is genuine, so it keeps every version
and names the objects holding each; the reports mark them and end with exit code DOUBTFUL.

`follow` and `select` pick the records of one user (`--user`): by name, and by the Identity Store
UserId the records of that name carry, so that a user renamed in Identity Center is found under
every name they had, and a name taken later by someone else is told apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jitaccess.api import names, wire
from jitaccess.api.audit import (
    ACTIONS,
    records_of_catalog,
    records_of_entitlement,
    records_of_extension,
    records_of_grant,
    records_of_request,
)
from jitaccess.cli import objects as o
from jitaccess.cli.errors import Doubtful
from jitaccess.cli.parser import ARCHIVE_ENV
from jitaccess.cli.session import Session

if TYPE_CHECKING:
    from jitaccess.cli.archive import Skipped

Record = dict[str, Any]
CLUSTER = "cluster"
_LAST = datetime.max.replace(tzinfo=UTC)
# Times have whole seconds: a request, its auto-approval and its grant often share one. Within a
# second, records go in the order an object's life produces them.
_STEP = {action: step for step, action in enumerate(ACTIONS)}


@dataclass(frozen=True)
class Conflict:
    """Records sharing an id whose contents differ: each version with the keys of the objects holding it
    (in the order read, S3's key order), the version read first first."""

    id: str
    versions: list[tuple[list[str], Record]]

    @property
    def described(self) -> str:
        where = "; ".join(f"version {n} in {', '.join(keys)}" for n, (keys, _) in enumerate(self.versions, start=1))
        return (
            f"the audit archive holds {len(self.versions)} different records with the id {self.id}: {where}; "
            "all are in the report, marked CONFLICT, and at most one is what the operator wrote"
        )


@dataclass(frozen=True)
class History:
    """The records of a window, oldest first, and where they came from (`cluster` or an s3:// location);
    the ids with conflicting versions, and the objects or lines of the archive that could not be read."""

    source: str
    records: list[Record]
    conflicts: list[Conflict] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def conflicting(self) -> set[str]:
        return {c.id for c in self.conflicts}

    def until(self, end: datetime, records: Iterable[Record]) -> tuple[History, list[Record]]:
        """This history and `records` (some of its own) cut at `end`, the window's: the archive is
        read up to now, for batches are filed when written. As at the start (`load`), a conflict
        counts when any of its versions is in the window, and then all its versions are kept."""
        conflicts = [c for c in self.conflicts if any((time_of(r) or end) <= end for _, r in c.versions)]
        shown = {c.id for c in conflicts}
        kept = [r for r in records if (time_of(r) or end) <= end or str(r.get("id")) in shown]
        return replace(self, conflicts=conflicts), kept

    def problems(self) -> dict[str, Any]:
        """The conflicts and skipped parts as JSON output holds them."""
        return {
            "conflicts": [
                {"id": c.id, "versions": [{"keys": keys, "record": r} for keys, r in c.versions]}
                for c in self.conflicts
            ],
            "skipped": [{"key": s.key, "line": s.line, "reason": s.why} for s in self.skipped],
        }

    def warn(self, session: Session) -> None:
        """After the report: a warning per conflict and per skipped part on stderr, and `Doubtful`
        (exit code DOUBTFUL) when there was any, for the report is then not the archive's whole truth."""
        session.out.flush()  # the report first, then what puts it in doubt
        for conflict in self.conflicts:
            session.note(f"warning: {conflict.described}")
        for skipped in self.skipped:
            session.note(f"warning: {skipped.described}")
        doubts = []
        if self.conflicts:
            doubts.append(
                f"{len(self.conflicts)} id(s) with conflicting records, so an object was forged or changed "
                "(find who put the objects named in S3 server access logs or CloudTrail data events)"
            )
        if self.skipped:
            doubts.append(f"{len(self.skipped)} unreadable object(s) or line(s), whose records are missing")
        if doubts:
            raise Doubtful(f"the report above is in doubt: the audit archive {self.source} has {'; and '.join(doubts)}")

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


def load(session: Session, archive: str, start: datetime, now: datetime) -> History:
    """The records since `start` (and any without a time), each id once (every version of a
    conflicting id), oldest first. None is left out for being late: the caller's clock may be
    behind the cluster's. From the archive, every batch written from `start`'s day up to `now`
    (the caller's) is read, however long after its records it was written; a caller with a
    window's end cuts by time (`History.until`)."""
    skipped: list[Skipped] = []
    if archive:
        from jitaccess.cli import archive as s3

        read = s3.read(archive, start, now)
        source, found, skipped = archive, read.records, read.skipped
    else:
        api = session.api
        derived = [r for q in o.list_all(api, names.REQUESTS)[0] for r in records_of_request(q)]
        derived += [r for g in o.list_all(api, names.GRANTS)[0] for r in records_of_grant(g)]
        derived += [r for x in o.list_all(api, names.EXTENSIONS)[0] for r in records_of_extension(x)]
        derived += [r for e in o.list_all(api, names.ENTITLEMENTS)[0] for r in records_of_entitlement(e)]
        derived += [r for c in o.list_all(api, names.CATALOGS)[0] for r in records_of_catalog(c)]
        source, found = CLUSTER, [(CLUSTER, r) for r in derived]
    records, conflicts = unique(found)

    def in_window(record: Record) -> bool:
        when = time_of(record)
        return when is None or when >= start

    # A conflict counts when any of its versions is in the window (a forged copy may carry another
    # time), and then all its versions are shown.
    conflicts = [c for c in conflicts if any(in_window(r) for _, r in c.versions)]
    shown = {c.id for c in conflicts}
    kept = [r for r in records if in_window(r) or str(r.get("id")) in shown]
    return History(source, sorted(kept, key=_order), conflicts, skipped)


def unique(found: Iterable[tuple[str, Record]]) -> tuple[list[Record], list[Conflict]]:
    """Each record once by id, each with the key of the object it was read from. The same id with
    the same contents: one record (kept silently). The same id with different contents: every
    version is kept, and the id is a `Conflict` naming the keys of each version."""
    versions: dict[str, list[tuple[list[str], Record]]] = {}
    for key, record in found:
        rid = str(record.get("id") or json.dumps(record, sort_keys=True))
        seen = versions.setdefault(rid, [])
        same = next((keys for keys, kept in seen if kept == record), None)
        if same is None:
            seen.append(([key], record))
        elif key not in same:
            same.append(key)
    records = [record for kept in versions.values() for _, record in kept]
    conflicts = [Conflict(rid, kept) for rid, kept in versions.items() if len(kept) > 1]
    return records, conflicts


def _order(record: Record) -> tuple[datetime, int, str]:
    # Python's sort is stable: the versions of a conflicting id stay in the order read.
    return (time_of(record) or _LAST, _STEP.get(str(record.get("action")), len(_STEP)), str(record.get("id")))


def username(part: Any) -> str:
    """The username of a record's `user` or `actor` ({"username": ...}), or empty."""
    return str(part.get("username") or "") if isinstance(part, Mapping) else ""


def user_id(part: Any) -> str:
    """The Identity Store UserId of a record's `user` ({"identityStoreUserId": ...}), or empty."""
    return str(part.get("identityStoreUserId") or "") if isinstance(part, Mapping) else ""


def is_user(name: str, wanted: str) -> bool:
    """`wanted` is the whole username or its part before `@` (alice for alice@example.com)."""
    return bool(name) and (name == wanted or name.split("@", 1)[0] == wanted)


@dataclass(frozen=True)
class Who:
    """The user `--user` names, followed through renames (`follow`): the name given (or its part
    before @), and the Identity Store UserIds that records of that name carry (or the UserId given).
    Identity Center lets a user's UserName change while their UserId stays; a name may also be
    given to someone else later, with another UserId.

    `names` is every username seen with those ids or matching the name, by UserId ("" for those
    seen without one), each list in the order last seen (`saw`), the current name last: what the
    caller tells when more than one matched."""

    wanted: str
    ids: frozenset[str] = frozenset()
    names: Mapping[str, list[str]] = field(default_factory=dict)

    def about(self, user: Any) -> bool:
        """Whether a record's or period's `user` is this one: by name, or by UserId."""
        return is_user(username(user), self.wanted) or user_id(user) in self.ids

    def by(self, actor: Any) -> bool:
        """Whether a record's `actor` is this one: by name alone, for an actor carries no UserId."""
        return is_user(username(actor), self.wanted)

    @property
    def described(self) -> str:
        """`alice.smith@example.com, known before as alice@example.com`: the current name of each
        UserId first, then its earlier ones, latest first; each UserId named when there are several.
        Empty when only one name matched."""
        if sum(len(known) for known in self.names.values()) < 2:
            return ""
        several = len(self.names) > 1
        parts = []
        for uid, known in self.names.items():
            text = known[-1] + (f", known before as {', '.join(reversed(known[:-1]))}" if len(known) > 1 else "")
            if several:
                text += f" (identity store user {uid})" if uid else " (no identity store user recorded)"
            parts.append(text)
        return f"--user {self.wanted}: the records of {'; '.join(parts)}"


def follow(records: Iterable[Record], wanted: str) -> Who:
    """Who `wanted` (a username, its part before @, or an Identity Store UserId) is among `records`
    (oldest first): the UserIds of the records about a user of that name, and every name seen with
    them, so that the records of a renamed user are found under every name they had."""
    records = list(records)
    ids = {wanted} if wire.looks_like_identity_store_id(wanted) else set()
    ids |= {user_id(r.get("user")) for r in records if is_user(username(r.get("user")), wanted)} - {""}
    names: dict[str, list[str]] = {}
    for record in records:
        name, uid = username(record.get("user")), user_id(record.get("user"))
        if name and uid in ids:
            saw(names.setdefault(uid, []), name)
    # Names matched with no UserId beside them (an actor's; a record from before records carried it).
    with_id = {name for known in names.values() for name in known}
    for record in records:
        for name in (username(record.get("user")), username(record.get("actor"))):
            if is_user(name, wanted) and name not in with_id:
                saw(names.setdefault("", []), name)
    return Who(wanted, frozenset(ids), names)


def saw(names: list[str], name: str) -> None:
    """`name` seen (again) in a record, the newest so far: `names` stays in the order each was last
    seen, the current name last (one renamed back to an earlier name has that one last again)."""
    if name in names:
        names.remove(name)
    names.append(name)


def select(records: Iterable[Record], *, entitlement: str | None = None, user: Who | None = None) -> list[Record]:
    """The records of one entitlement, and about or by one user, when those are given.

    `extension-requested` names no entitlement (the extension as created names only its grant):
    its grant's records among `records` say which it is."""
    records = list(records)
    of_grant = {str(r["grant"]): r.get("entitlement") for r in records if r.get("grant") and r.get("entitlement")}
    return [
        r
        for r in records
        if (entitlement is None or (r.get("entitlement") or of_grant.get(str(r.get("grant") or ""))) == entitlement)
        and (user is None or user.about(r.get("user")) or user.by(r.get("actor")))
    ]

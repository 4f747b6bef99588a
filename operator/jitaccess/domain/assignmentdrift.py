"""Assignment drift of a PermissionCatalog: the removals its pass makes, as its status lists them.

A tier's permission set is jitaccess's: in each account it is assigned to the tier's group, and to
users only while a grant (account-assignment mode) gives it to them. Anyone else assigned it was
assigned outside jitaccess (by hand, in the console), and the pass removes them. Such access needs
a record that outlives the Event: each removal is an entry of `status.driftRemovals`, written
*before* the removal is asked for (no `time`: under way), confirmed with its `time` and message
once Identity Center has carried it out, and dropped once its audit record
(`api.audit.records_of_catalog`) is archived. An entry left unconfirmed (the operator stopped in
between) is settled by a later pass: removed and confirmed, confirmed as gone, or taken back.

Pure functions on the entries as stored (wire dicts): the handler (`handlers.permissionsets`)
reads and writes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Entry = dict[str, Any]
#: One assignment: (permission set ARN, account, principal type, principal id).
Key = tuple[str, str, str, str]


def key_of(entry: Mapping[str, Any]) -> Key:
    return (
        str(entry.get("permissionSetArn") or ""),
        str(entry.get("account") or ""),
        str(entry.get("principalType") or ""),
        str(entry.get("principalId") or ""),
    )


def intent(key: Key, permission_set_name: str, user: str | None, seen: str) -> Entry:
    """The entry of a removal about to be asked for: no `time` yet. `user`: the user's name, when
    the principal is a user whose name is known (else absent: the id is the principal)."""
    arn, account, principal_type, principal_id = key
    entry: Entry = {
        "permissionSetArn": arn,
        "permissionSetName": permission_set_name,
        "account": account,
        "principalType": principal_type,
        "principalId": principal_id,
        "firstSeen": seen,
    }
    if user:
        entry["user"] = user
    return entry


def unconfirmed(entries: Iterable[Mapping[str, Any]]) -> dict[Key, Entry]:
    """The removals listed and not confirmed, by assignment."""
    return {key_of(e): dict(e) for e in entries if not e.get("time")}


def listed(entries: list[Entry], entry: Entry) -> list[Entry] | None:
    """The entries with `entry` added; None when a removal of the same assignment is under way
    already (listed by an earlier pass: its `firstSeen` is kept)."""
    if key_of(entry) in unconfirmed(entries):
        return None
    return [*entries, entry]


def confirmed(
    entries: list[Entry], confirmations: Mapping[Key, tuple[Entry, str, str]], *, made: Iterable[Key] = ()
) -> tuple[list[Entry], list[Key]] | None:
    """The entries with each removal of `confirmations` (assignment -> (entry, time, message))
    confirmed, and which were. Only an unconfirmed entry is (a confirmed one never changes); an
    entry missing is added confirmed only for the removals this pass `made`. None: nothing changes."""
    made = set(made)
    pending = unconfirmed(entries)
    done: list[Key] = []
    result = []
    for entry in entries:
        key = key_of(entry)
        if not entry.get("time") and key in confirmations:
            _, when, message = confirmations[key]
            result.append({**entry, "time": when, "message": message})
            done.append(key)
        else:
            result.append(entry)
    for key, (entry, when, message) in confirmations.items():
        if key in made and key not in pending:
            result.append({**entry, "time": when, "message": message})
            done.append(key)
    return (result, done) if done else None


def taken_back(entries: list[Entry], keys: Iterable[Key]) -> list[Entry] | None:
    """The entries without the unconfirmed removals of `keys` (removals not to be made after all:
    a grant backs the assignment now); None when none is listed."""
    dropped = set(keys)
    left = [e for e in entries if e.get("time") or key_of(e) not in dropped]
    return None if len(left) == len(entries) else left


def principal(entry: Mapping[str, Any]) -> str:
    """Who was assigned, in words: `user alice@example.com` (its id when its name is not known),
    `group <GroupId>`."""
    kind = str(entry.get("principalType") or "").lower() or "principal"
    return f"{kind} {entry.get('user') or entry.get('principalId')}"


def removed_message(entry: Mapping[str, Any], wanted: bool) -> str:
    """The message of a removal this pass made; `wanted`: the catalog still lists the account."""
    where = str(entry.get("account") or "")
    if not wanted:
        where += ", which the catalog no longer lists,"
    return (
        f"{entry.get('permissionSetName') or entry.get('permissionSetArn')}: {principal(entry)} was assigned in "
        f"{where} outside jitaccess: removed"
    )


def gone_message(entry: Mapping[str, Any], why: str = "") -> str:
    """The message of a removal begun and never confirmed whose assignment is gone now."""
    return (
        f"{entry.get('permissionSetName') or entry.get('permissionSetArn')}: {principal(entry)} was assigned in "
        f"{entry.get('account')} outside jitaccess: a removal was begun and not confirmed (the operator stopped, "
        f"or Identity Center failed it), and the assignment was gone when it was looked at again{why}"
    )

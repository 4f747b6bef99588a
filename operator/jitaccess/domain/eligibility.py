"""Eligibility that lapses: who of an Entitlement's grantees and requesters is no longer eligible.

Eligibility is checked when a request is made and again when access is about to begin, but it
must also hold while access runs: a user taken out of an eligibility group, or deleted or disabled
in Identity Center, loses every grant and every request still waiting. The operator re-checks on
a schedule from listings (every user of the store, every member of each eligibility group), one
pass shared by all Entitlements: the cost depends on the size of the groups, not on the number of
grants (docs/operations.md gives the arithmetic). This module decides, from such a listing, who
has lapsed and why; the handler (`handlers.lapses`) lists and acts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from jitaccess.domain.requests import disabled_message, eligibility_message


@dataclass(frozen=True)
class User:
    """A user of the identity store as listed: their name, and whether their account is enabled."""

    name: str
    enabled: bool = True


@dataclass(frozen=True)
class Directory:
    """What one pass learned from Identity Center.

    `users`: every user of the store by UserId; `members`: the UserIds in each eligibility group,
    by the group's name as the Entitlement gives it; None for a group that does not exist (nobody
    is in it).
    """

    users: Mapping[str, User]
    members: Mapping[str, frozenset[str] | None]

    def user_id(self, name: str) -> str | None:
        """The UserId of a user name, for objects that predate stamped UserIds."""
        return next((uid for uid, user in self.users.items() if user.name == name), None)


@dataclass(frozen=True)
class Holder:
    """An Active grant or a pending request of an Entitlement: the object's name and whose it is."""

    name: str
    user: str
    user_id: str | None
    #: The group an Active grant of group mode is in (`status.groupId`; the drift scan of groups an
    #: Entitlement no longer names reads it here rather than GET each grant at every pass).
    group_id: str | None = None
    #: The name the grant gives that group (`spec.groupName`).
    group_name: str = ""
    #: The object's uid: what is done about its lapse is done to it, never to another under its name.
    uid: str = ""


@dataclass(frozen=True)
class Lapse:
    """An object whose user is no longer eligible (UserId None: unknown to the store), and why."""

    name: str
    user: str
    user_id: str | None
    message: str
    uid: str = ""  # the holder's


def lapse_reason(user: str, user_id: str | None, groups: Sequence[str], directory: Directory) -> str | None:
    """Why `user` (UserId `user_id`) is no longer eligible for an Entitlement that asks for
    membership in every one of `groups`, or None while they are.

    A user unknown to the store (deleted), or disabled, is never eligible, whatever the groups.
    """
    uid = user_id or directory.user_id(user)
    found = directory.users.get(uid) if uid is not None else None
    if uid is None or found is None:
        return f"{user} (UserId {uid or 'unknown'}) no longer exists in Identity Center"
    if not found.enabled:
        return disabled_message(user, uid)
    absent = [g for g in groups if directory.members.get(g) is None]
    missing = [g for g in groups if g not in absent and uid not in (directory.members.get(g) or frozenset())]
    if missing:
        return eligibility_message(user, missing)
    if absent:
        # The catalog's mistake, not the user's: said as such (a grant never lapses over it, `known`).
        return (
            f"the Entitlement's spec.eligibility.identityCenterGroups names {', '.join(absent)}, which "
            "does not exist in Identity Center: its owners must fix the name or create the group"
        )
    return None


def known(groups: Sequence[str], directory: Directory) -> list[str]:
    """The groups that exist, of `groups`: those a running grant is held to. A group that does not
    exist is a typo in the catalog (the Entitlement says so, `EligibilityGroupNotFound`), never a
    sign that its user left it: read as "nobody is a member", it would end every grant at once."""
    return [g for g in groups if directory.members.get(g) is not None]


def lapses(holders: Iterable[Holder], groups: Sequence[str], directory: Directory) -> list[Lapse]:
    """The holders (Active grants, or pending requests) of one Entitlement whose users have lapsed."""
    found = []
    for holder in holders:
        why = lapse_reason(holder.user, holder.user_id, groups, directory)
        if why is not None:
            user_id = holder.user_id or directory.user_id(holder.user)
            found.append(Lapse(holder.name, holder.user, user_id, why, holder.uid))
    return found


def eligible(groups: Sequence[str], directory: Directory) -> list[tuple[str, str]]:
    """(UserId, user name) of the enabled users in every one of `groups`, by name; none when the
    Entitlement names no group (everyone in the store is eligible then, which is not listed)."""
    if not groups:
        return []
    ids = set.intersection(*(set(directory.members.get(g) or ()) for g in groups))
    users = ((uid, directory.users.get(uid)) for uid in ids)
    return sorted(((uid, u.name) for uid, u in users if u is not None and u.enabled), key=lambda p: (p[1], p[0]))

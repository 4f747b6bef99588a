"""moto's identitystore corrected where it would hide bugs (docs/development.md), and stores pinned per emulator.

`make_moto_strict` patches moto process-wide, for the emulator and for in-process ``mock_aws`` tests:

* a duplicate ``CreateGroupMembership`` answers ``ConflictException``, as AWS does;
* ``DeleteGroupMembership`` of an unknown id answers ``ResourceNotFoundException``;
* ``ListGroupMemberships`` of an unknown group answers ``ResourceNotFoundException`` (``GROUP``),
  where moto lists nobody. AWS's model lists that error for the call; its documentation does not
  say whether an unknown group gets it or an empty page. The error is the stricter answer: a
  caller that lists a group by an id it cached (one replaced under its name since) must tell
  "no such group" from "nobody in it" (`handlers.lapses`), and an empty page would hide that;
* deleting a user or group deletes its memberships, as AWS does;
* ``GetGroupMembershipId``, ``IsMemberInGroups`` and ``DescribeGroupMembership``, which moto 5.2
  lacks, are served (an unknown user or group: ``ResourceNotFoundException``);
* ``UpdateUser``, which moto 5.2 lacks too, is served as AWS does (`devenv.update_user`);
* users carry ``UserStatus`` in ``DescribeUser`` and ``ListUsers``: ``ENABLED``, or ``DISABLED``
  once `set_user_status` says so (AWS has no API call for it: the console and SCIM disable users);
* stores of running emulators are *pinned* (`pin_store`): they live outside moto's backends, so the
  backend reset that every ``mock_aws`` start and stop performs cannot wipe the store an operator
  under test is using, and each emulator has a store of its own.

A pinned store's tables hand out snapshots when scanned, so that moto's server threads can scan
them while others write, and its membership table tells listeners of every change as it happens.
A pinned store also answers in time independent of its size, as AWS does, where moto scans: its
membership table is indexed by (group, user) and by group, and ``ListUsers`` and
``ListGroupMemberships`` render and skip only the page asked for (moto renders every user and
looks for the token's place from the start on every page). Without this, a benchmark's store of
10,000 users spent more CPU in the emulator than the operator spent on the grants it measured.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from moto.identitystore.exceptions import ConflictException, ResourceNotFoundException, ValidationException
from moto.identitystore.models import IdentityStoreBackend, IdentityStoreData
from moto.identitystore.responses import IdentityStoreResponse

from devenv.update_user import update_user as apply_user_update

__all__ = ["MembershipListener", "make_moto_strict", "pin_store", "set_user_status", "unpin_store"]

log = logging.getLogger(__name__)

#: Called with (added, membership) after a membership was created (True) or deleted (False).
MembershipListener = Callable[[bool, dict[str, Any]], None]


class _SnapshotTable(dict[str, Any]):
    """A moto table that server threads may scan while another thread writes: scans see a copy."""

    def values(self) -> list[Any]:  # type: ignore[override]
        return list(super().values())

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return list(super().items())


class _MembershipTable(_SnapshotTable):
    """A pinned store's memberships (membership id -> membership), indexed by (group, user) and by
    group, telling listeners of each change."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners: list[MembershipListener] = []
        self._guard = threading.Lock()
        self._by_pair: dict[tuple[str, str], str] = {}
        # Insertion order, as moto lists a group's memberships.
        self._by_group: dict[str, dict[str, dict[str, Any]]] = {}

    def _tell(self, added: bool, membership: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(added, membership)

    def __setitem__(self, membership_id: str, membership: dict[str, Any]) -> None:
        with self._guard:
            self._unindex(membership_id)
            super().__setitem__(membership_id, membership)
            group, user = _pair(membership)
            self._by_pair[group, user] = membership_id
            self._by_group.setdefault(group, {})[membership_id] = membership
        self._tell(True, membership)

    def __delitem__(self, membership_id: str) -> None:
        with self._guard:
            self._unindex(membership_id)
            membership = super().pop(membership_id)
        self._tell(False, membership)

    def pop(self, membership_id: str, *default: Any) -> Any:
        with self._guard:
            if membership_id not in self:
                return super().pop(membership_id, *default)
            self._unindex(membership_id)
            membership = super().pop(membership_id)
        self._tell(False, membership)
        return membership

    def _unindex(self, membership_id: str) -> None:
        old = self.get(membership_id)
        if old is None:
            return
        group, user = _pair(old)
        if self._by_pair.get((group, user)) == membership_id:
            del self._by_pair[group, user]
        in_group = self._by_group.get(group, {})
        in_group.pop(membership_id, None)
        if not in_group:
            self._by_group.pop(group, None)

    def of(self, group_id: str, user_id: str) -> dict[str, Any] | None:
        with self._guard:
            membership_id = self._by_pair.get((group_id, user_id))
            return None if membership_id is None else dict(self[membership_id])

    def in_group(self, group_id: str) -> list[dict[str, Any]]:
        with self._guard:
            return list(self._by_group.get(group_id, {}).values())


def _pair(membership: dict[str, Any]) -> tuple[str, str]:
    return str(membership["GroupId"]), str(membership["MemberId"].get("UserId", ""))


T = TypeVar("T")


def _page(
    rows: Sequence[T], key: Callable[[T], str], max_results: int | None, token: str | None, asked: dict[str, Any]
) -> tuple[Sequence[T], str | None]:
    """One page of `rows` and the token of the next, as moto's paginator gives them (up to 100
    by default; a token names the next row, and is refused for other parameters or once that row
    is gone), found in time independent of where the page starts: the token also says where. As
    AWS does, MaxResults over 100 and a bad token answer ValidationException."""
    if max_results is not None and not 1 <= int(max_results) <= 100:
        raise ValidationException(message=f"MaxResults {max_results} is not between 1 and 100.")
    checksum = hashlib.sha256(json.dumps(asked, sort_keys=True, default=str).encode()).hexdigest()[:16]
    start = 0
    if token:
        try:
            told = json.loads(base64.b64decode(token, validate=True))
            wanted, at, sum_ = str(told["next"]), int(told["at"]), str(told["sum"])
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise ValidationException(message="NextToken is not valid.") from exc
        if sum_ != checksum:
            raise ValidationException(message="NextToken was given for other parameters.")
        if 0 <= at < len(rows) and key(rows[at]) == wanted:
            start = at
        else:  # rows came or went before it: look for it, as moto does
            start = next((i for i, row in enumerate(rows) if key(row) == wanted), -1)
            if start < 0:
                raise ValidationException(message="NextToken names a resource that is gone.")
    end = start + int(max_results or 100)
    if end >= len(rows):
        return rows[start:], None
    told = {"next": key(rows[end]), "at": end, "sum": checksum}
    return rows[start:end], base64.b64encode(json.dumps(told).encode()).decode()


_STRICT_LOCK = threading.Lock()
_strict = False
# Stores of running emulators, by id; see the module doc ("pinned").
_PINNED: dict[str, IdentityStoreData] = {}
_GET_STORE: Final = "_IdentityStoreBackend__get_identity_store"
# (identity store id, user id) of the users disabled by `set_user_status`.
_DISABLED: set[tuple[str, str]] = set()


def make_moto_strict() -> None:
    """Make moto's identitystore answer as AWS does (module doc); idempotent, process-wide."""
    global _strict
    with _STRICT_LOCK:
        if _strict:
            return
        original_get_store: Callable[[IdentityStoreBackend, str], IdentityStoreData] | None = getattr(
            IdentityStoreBackend, _GET_STORE, None
        )
        if original_get_store is None:
            raise RuntimeError("moto's IdentityStoreBackend changed shape; update make_moto_strict()")
        original_create = IdentityStoreBackend.create_group_membership
        original_delete_user = IdentityStoreBackend.delete_user
        original_delete_group = IdentityStoreBackend.delete_group
        original_describe_user = IdentityStoreResponse.describe_user
        original_list_users = IdentityStoreResponse.list_users
        original_backend_list_users = IdentityStoreBackend.list_users
        original_list_memberships = IdentityStoreBackend.list_group_memberships

        def get_store(self: IdentityStoreBackend, store_id: str) -> IdentityStoreData:
            pinned = _PINNED.get(store_id)
            return pinned if pinned is not None else original_get_store(self, store_id)

        def create_group_membership(
            self: IdentityStoreBackend, identity_store_id: str, group_id: str, member_id: dict[str, str]
        ) -> tuple[str, str]:
            store = get_store(self, identity_store_id)
            if _membership_of(store, group_id, member_id.get("UserId", "")) is not None:
                raise ConflictException(
                    message="Member and Group relationship already exists.",
                    reason="UNIQUENESS_CONSTRAINT_VIOLATION",
                )
            return original_create(self, identity_store_id, group_id, member_id)

        def delete_group_membership(self: IdentityStoreBackend, identity_store_id: str, membership_id: str) -> None:
            store = get_store(self, identity_store_id)
            if store.group_memberships.pop(membership_id, None) is None:
                raise ResourceNotFoundException(message="GROUP_MEMBERSHIP not found.", resource_type="GROUP_MEMBERSHIP")

        def backend_list_users(
            self: IdentityStoreBackend,
            identity_store_id: str,
            filters: list[dict[str, str]] | None = None,
            max_results: int | None = None,
            next_token: str | None = None,
        ) -> tuple[list[dict[str, Any]], str | None]:
            store = _PINNED.get(identity_store_id)
            if store is None:
                return original_backend_list_users(
                    self, identity_store_id=identity_store_id, filters=filters, max_results=max_results,
                    next_token=next_token,
                )  # fmt: skip
            users: list[Any] = list(store.users.values())
            if filters and filters[0].get("AttributePath") == "UserName":
                users = [u for u in users if u.UserName == filters[0].get("AttributeValue")]
            asked = {"identity_store_id": identity_store_id, "filters": filters}
            page, token = _page(users, lambda u: str(u.UserId), max_results, next_token, asked)
            return [_user_dict(u) for u in page], token

        def list_group_memberships(
            self: IdentityStoreBackend,
            identity_store_id: str,
            group_id: str,
            max_results: int | None = None,
            next_token: str | None = None,
        ) -> tuple[list[dict[str, Any]], str | None]:
            store = get_store(self, identity_store_id)
            _existing_group(store, group_id)
            if identity_store_id not in _PINNED or not isinstance(store.group_memberships, _MembershipTable):
                return original_list_memberships(
                    self, identity_store_id=identity_store_id, group_id=group_id, max_results=max_results,
                    next_token=next_token,
                )  # fmt: skip
            rows = store.group_memberships.in_group(group_id)
            asked = {"identity_store_id": identity_store_id, "group_id": group_id}
            page, token = _page(rows, lambda m: str(m["MembershipId"]), max_results, next_token, asked)
            return list(page), token

        def delete_user(self: IdentityStoreBackend, identity_store_id: str, user_id: str) -> None:
            original_delete_user(self, identity_store_id, user_id)
            _drop_memberships(get_store(self, identity_store_id), lambda m: m["MemberId"]["UserId"] == user_id)

        def delete_group(self: IdentityStoreBackend, identity_store_id: str, group_id: str) -> None:
            original_delete_group(self, identity_store_id, group_id)
            _drop_memberships(get_store(self, identity_store_id), lambda m: m["GroupId"] == group_id)

        def get_group_membership_id(self: IdentityStoreResponse) -> str:
            store_id = self._get_param("IdentityStoreId")
            store = get_store(self.identitystore_backend, store_id)
            user_id = _existing_user(store, self._get_param("MemberId"))
            group_id = _existing_group(store, self._get_param("GroupId"))
            membership = _membership_of(store, group_id, user_id)
            if membership is None:
                raise ResourceNotFoundException(message="GROUP_MEMBERSHIP not found.", resource_type="GROUP_MEMBERSHIP")
            return json.dumps({"MembershipId": membership["MembershipId"], "IdentityStoreId": store_id})

        def is_member_in_groups(self: IdentityStoreResponse) -> str:
            store = get_store(self.identitystore_backend, self._get_param("IdentityStoreId"))
            user_id = _existing_user(store, self._get_param("MemberId"))
            results = [
                {
                    "GroupId": group_id,
                    "MemberId": {"UserId": user_id},
                    "MembershipExists": _membership_of(store, group_id, user_id) is not None,
                }
                for group_id in (_existing_group(store, g) for g in self._get_param("GroupIds") or [])
            ]
            return json.dumps({"Results": results})

        def describe_group_membership(self: IdentityStoreResponse) -> str:
            store = get_store(self.identitystore_backend, self._get_param("IdentityStoreId"))
            membership = store.group_memberships.get(self._get_param("MembershipId"))
            if membership is None:
                raise ResourceNotFoundException(message="GROUP_MEMBERSHIP not found.", resource_type="GROUP_MEMBERSHIP")
            return json.dumps(membership)

        def describe_user(self: IdentityStoreResponse) -> str:
            body = json.loads(original_describe_user(self))
            return json.dumps({**body, "UserStatus": _status(self._get_param("IdentityStoreId"), body["UserId"])})

        def list_users(self: IdentityStoreResponse) -> str:
            body = json.loads(original_list_users(self))
            store_id = self._get_param("IdentityStoreId")
            body["Users"] = [{**user, "UserStatus": _status(store_id, user["UserId"])} for user in body["Users"]]
            return json.dumps(body)

        def update_user(self: IdentityStoreResponse) -> str:
            store = get_store(self.identitystore_backend, self._get_param("IdentityStoreId"))
            apply_user_update(store, self._get_param("UserId"), self._get_param("Operations") or [])
            return "{}"

        patches: dict[type, dict[str, Callable[..., Any]]] = {
            IdentityStoreBackend: {
                _GET_STORE: get_store,
                "create_group_membership": create_group_membership,
                "delete_group_membership": delete_group_membership,
                "delete_user": delete_user,
                "delete_group": delete_group,
                "list_users": backend_list_users,
                "list_group_memberships": list_group_memberships,
            },
            # moto dispatches an action to the response method of the same (snake_case) name.
            IdentityStoreResponse: {
                "get_group_membership_id": get_group_membership_id,
                "is_member_in_groups": is_member_in_groups,
                "describe_group_membership": describe_group_membership,
                "describe_user": describe_user,
                "list_users": list_users,
                "update_user": update_user,
            },
        }
        for cls, methods in patches.items():
            for name, method in methods.items():
                setattr(cls, name, method)
        _strict = True
        log.debug("moto identitystore made strict")


def set_user_status(store_id: str, user_id: str, *, enabled: bool) -> None:
    """Enable or disable a user of the store, as the Identity Center console or SCIM (`active`) does."""
    with _STRICT_LOCK:
        (_DISABLED.discard if enabled else _DISABLED.add)((store_id, user_id))


def _status(store_id: str, user_id: str) -> str:
    with _STRICT_LOCK:
        return "DISABLED" if (store_id, user_id) in _DISABLED else "ENABLED"


def _user_dict(user: Any) -> dict[str, Any]:
    """A moto user as `ListUsers` renders it."""
    rendered: dict[str, Any] = user._asdict()
    if rendered.get("Name"):
        rendered["Name"] = user.Name._asdict()
    return rendered


def _membership_of(store: IdentityStoreData, group_id: str, user_id: str) -> dict[str, Any] | None:
    memberships = store.group_memberships
    if isinstance(memberships, _MembershipTable):
        return memberships.of(group_id, user_id)
    for membership in store.group_memberships.values():
        if membership["GroupId"] == group_id and membership["MemberId"].get("UserId") == user_id:
            return dict(membership)
    return None


def _drop_memberships(store: IdentityStoreData, doomed: Callable[[dict[str, Any]], bool]) -> None:
    for membership_id in [k for k, m in store.group_memberships.items() if doomed(m)]:
        del store.group_memberships[membership_id]


def _existing_user(store: IdentityStoreData, member_id: dict[str, str] | None) -> str:
    user_id = (member_id or {}).get("UserId", "")
    if user_id not in store.users:
        raise ResourceNotFoundException(message="USER not found.", resource_type="USER")
    return user_id


def _existing_group(store: IdentityStoreData, group_id: str) -> str:
    if group_id not in store.groups:
        raise ResourceNotFoundException(message="GROUP not found.", resource_type="GROUP")
    return group_id


def pin_store(store_id: str) -> tuple[IdentityStoreData, list[MembershipListener]]:
    """A new store with this id, pinned until `unpin_store`; its membership listeners (a list to append to)."""
    make_moto_strict()
    store = IdentityStoreData()
    store.users = _SnapshotTable()
    store.groups = _SnapshotTable()
    memberships = _MembershipTable()
    store.group_memberships = memberships
    with _STRICT_LOCK:
        if store_id in _PINNED:
            raise RuntimeError(f"identity store {store_id} is pinned already")
        _PINNED[store_id] = store
    return store, memberships.listeners


def unpin_store(store_id: str) -> None:
    with _STRICT_LOCK:
        _PINNED.pop(store_id, None)

"""moto's identitystore corrected where it would hide bugs (docs/development.md), and stores pinned per emulator.

`make_moto_strict` patches moto process-wide, for the emulator and for in-process ``mock_aws`` tests:

* a duplicate ``CreateGroupMembership`` answers ``ConflictException``, as AWS does;
* ``DeleteGroupMembership`` of an unknown id answers ``ResourceNotFoundException``;
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
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any, Final

from moto.identitystore.exceptions import ConflictException, ResourceNotFoundException
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
    """A pinned store's memberships (membership id -> membership), telling listeners of each change."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners: list[MembershipListener] = []

    def _tell(self, added: bool, membership: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(added, membership)

    def __setitem__(self, membership_id: str, membership: dict[str, Any]) -> None:
        super().__setitem__(membership_id, membership)
        self._tell(True, membership)

    def __delitem__(self, membership_id: str) -> None:
        membership = super().pop(membership_id)
        self._tell(False, membership)

    def pop(self, membership_id: str, *default: Any) -> Any:
        if membership_id not in self:
            return super().pop(membership_id, *default)
        membership = super().pop(membership_id)
        self._tell(False, membership)
        return membership


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


def _membership_of(store: IdentityStoreData, group_id: str, user_id: str) -> dict[str, Any] | None:
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

"""``UpdateUser`` of the identitystore API, which moto 5.2 lacks (it answers HTTP 500), served as AWS does.

A request carries 1 to 100 operations, each an ``AttributePath`` (case-insensitive, as in SCIM)
and an ``AttributeValue``; a missing or null value removes the attribute. The operations apply
together or not at all:

* an unknown user: ``ResourceNotFoundException``;
* an unknown path, a value of the wrong type, or removing a required attribute (``userName``,
  ``displayName``, ``name.givenName``, ``name.familyName``, as moto's ``CreateUser`` requires):
  ``ValidationException``;
* a ``userName`` another user has: ``ConflictException``.

`devenv.strict_moto` serves it; `apply_operations` is the rule, on moto's own ``User`` tuple.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from moto.identitystore.exceptions import ConflictException, ResourceNotFoundException, ValidationException
from moto.identitystore.models import IdentityStoreData, Name, User

__all__ = ["apply_operations", "update_user"]

_MAX_OPERATIONS: Final = 100

#: Lower-cased path -> the User field it sets; a string attribute each.
_STRINGS: Final = {
    "username": "UserName",
    "displayname": "DisplayName",
    "nickname": "NickName",
    "profileurl": "ProfileUrl",
    "usertype": "UserType",
    "title": "Title",
    "preferredlanguage": "PreferredLanguage",
    "locale": "Locale",
    "timezone": "Timezone",
}
#: Lower-cased path -> the User field it sets; a list of objects each.
_LISTS: Final = {"emails": "Emails", "addresses": "Addresses", "phonenumbers": "PhoneNumbers"}
#: Lower-cased sub-path of ``name`` -> the Name field it sets.
_NAME_PARTS: Final = {
    "formatted": "Formatted",
    "familyname": "FamilyName",
    "givenname": "GivenName",
    "middlename": "MiddleName",
    "honorificprefix": "HonorificPrefix",
    "honorificsuffix": "HonorificSuffix",
}
_REQUIRED: Final = {"username": "userName", "displayname": "displayName"}
_REQUIRED_NAME: Final = {"givenname": "givenName", "familyname": "familyName"}
_EMPTY_NAME: Final = Name(None, None, None, None, None, None)


def _invalid(message: str) -> ValidationException:
    return ValidationException(message=message)


def _string(path: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{path}: The attribute {path} must be a string")
    return value


def _name_parts(path: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _invalid(f"{path}: The attribute {path} must be an object")
    parts: dict[str, str] = {}
    for key, part in value.items():
        field = _NAME_PARTS.get(str(key).lower())
        if field is None:
            raise _invalid(f"{path}.{key}: Invalid attribute path")
        if part is not None:
            parts[field] = _string(f"{path}.{key}", part)
    return parts


def _objects(path: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise _invalid(f"{path}: The attribute {path} must be a list of objects")
    return [dict(item) for item in value]


def apply_operations(user: User, operations: Sequence[Mapping[str, Any]]) -> User:
    """``user`` with the operations applied, or `ValidationException`; the store is not touched."""
    if not 1 <= len(operations) <= _MAX_OPERATIONS:
        raise _invalid(f"operations: between 1 and {_MAX_OPERATIONS} operations are required")
    fields: dict[str, Any] = user._asdict()
    name: dict[str, str | None] = (user.Name or _EMPTY_NAME)._asdict()
    for operation in operations:
        path = operation.get("AttributePath")
        if not isinstance(path, str) or not path:
            raise _invalid("AttributePath is required")
        value = operation.get("AttributeValue")
        key = path.lower()
        if key in _REQUIRED and value in (None, ""):
            raise _invalid(f"{_REQUIRED[key]}: The attribute {_REQUIRED[key]} is required")
        if key in _STRINGS:
            fields[_STRINGS[key]] = "" if value is None else _string(path, value)
        elif key in _LISTS:
            fields[_LISTS[key]] = [] if value is None else _objects(path, value)
        elif key == "name":
            name = dict.fromkeys(_NAME_PARTS.values()) | ({} if value is None else _name_parts(path, value))
        elif key.startswith("name.") and key[5:] in _NAME_PARTS:
            name[_NAME_PARTS[key[5:]]] = None if value is None else _string(path, value)
        else:
            raise _invalid(f"{path}: Invalid attribute path")
    for part, label in _REQUIRED_NAME.items():
        if not name.get(_NAME_PARTS[part]):
            raise _invalid(f"name.{label}: The attribute name.{label} is required")
    fields["Name"] = Name(**name)
    return User(**fields)


def update_user(store: IdentityStoreData, user_id: str, operations: Sequence[Mapping[str, Any]]) -> None:
    """Apply the operations to the user in ``store``, all or nothing; the exceptions of the module doc."""
    user = store.users.get(user_id)
    if user is None:
        raise ResourceNotFoundException(message="USER not found.", resource_type="USER")
    updated = apply_operations(user, operations)
    if updated.UserName != user.UserName and any(
        other.UserName == updated.UserName for other_id, other in store.users.items() if other_id != user_id
    ):
        raise ConflictException(message="Duplicate UserName", reason="UNIQUENESS_CONSTRAINT_VIOLATION")
    store.users[user_id] = updated

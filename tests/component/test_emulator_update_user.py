"""The emulator's UpdateUser (moto answers it with HTTP 500): AWS's semantics, all or nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from devenv.emulator import IdentityCenterEmulator


def update(emulator: IdentityCenterEmulator, client: Any, user_id: str, *operations: dict[str, Any]) -> Any:
    return client.update_user(IdentityStoreId=emulator.identity_store_id, UserId=user_id, Operations=list(operations))


def describe(emulator: IdentityCenterEmulator, client: Any, user_id: str) -> dict[str, Any]:
    user: dict[str, Any] = client.describe_user(IdentityStoreId=emulator.identity_store_id, UserId=user_id)
    user.pop("ResponseMetadata")
    return user


def refused(emulator: IdentityCenterEmulator, client: Any, user_id: str, *operations: dict[str, Any]) -> str:
    with pytest.raises(ClientError) as exc:
        update(emulator, client, user_id, *operations)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(exc.value.response["Error"]["Code"])


def test_update_user_sets_and_removes_attributes(emulator: IdentityCenterEmulator, client: Any) -> None:
    alice = emulator.user_id("alice@example.com")
    response = update(
        emulator,
        client,
        alice,
        {"AttributePath": "displayName", "AttributeValue": "Alice Zed"},
        {"AttributePath": "name.familyName", "AttributeValue": "Zed"},
        {"AttributePath": "title", "AttributeValue": "Staff Engineer"},
        {"AttributePath": "emails", "AttributeValue": [{"Value": "az@example.com", "Type": "work", "Primary": True}]},
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    user = describe(emulator, client, alice)
    assert user["DisplayName"] == "Alice Zed"
    assert user["Name"]["FamilyName"] == "Zed"
    assert user["Name"]["GivenName"] == "Alice"
    assert user["Title"] == "Staff Engineer"
    assert [e["Value"] for e in user["Emails"]] == ["az@example.com"]
    update(emulator, client, alice, {"AttributePath": "Title"})  # no value: removed; paths ignore case
    assert not describe(emulator, client, alice).get("Title")


def test_renaming_a_user_moves_the_unique_user_name(emulator: IdentityCenterEmulator, client: Any) -> None:
    eve = emulator.user_id("eve@example.com")
    update(emulator, client, eve, {"AttributePath": "userName", "AttributeValue": "eve.evans@example.com"})
    assert emulator.user_id("eve.evans@example.com") == eve
    with pytest.raises(ClientError) as exc:
        emulator.user_id("eve@example.com")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    operation = {"AttributePath": "userName", "AttributeValue": "alice@example.com"}
    assert refused(emulator, client, eve, operation) == "ConflictException"


def test_an_unknown_user_is_not_found(emulator: IdentityCenterEmulator, client: Any) -> None:
    operation = {"AttributePath": "displayName", "AttributeValue": "Nobody"}
    assert refused(emulator, client, str(uuid.uuid4()), operation) == "ResourceNotFoundException"


@pytest.mark.parametrize(
    "operation",
    [
        {"AttributePath": "favouriteColour", "AttributeValue": "blue"},
        {"AttributePath": "name.nickname", "AttributeValue": "Al"},
        {"AttributePath": "displayName", "AttributeValue": 42},
        {"AttributePath": "emails", "AttributeValue": "alice@example.com"},
        {"AttributePath": "userName"},
        {"AttributePath": "name.givenName"},
        {"AttributePath": "name", "AttributeValue": {"Formatted": "Alice"}},
    ],
    ids=["unknown", "unknown-name-part", "not-a-string", "not-a-list", "no-user-name", "no-given-name", "no-name"],
)
def test_invalid_operations_change_nothing(
    emulator: IdentityCenterEmulator, client: Any, operation: dict[str, Any]
) -> None:
    alice = emulator.user_id("alice@example.com")
    before = describe(emulator, client, alice)
    # A valid operation first: the request is refused as a whole.
    rename = {"AttributePath": "displayName", "AttributeValue": "Renamed"}
    assert refused(emulator, client, alice, rename, operation) == "ValidationException"
    assert describe(emulator, client, alice) == before

"""The Identity Center emulator: AWS-strict answers, fault injection, seeding, isolation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from devenv.emulator import IdentityCenterEmulator
from devenv.paths import SEED_FILE
from devenv.strict_moto import make_moto_strict

EVERYONE_ELIGIBLE = {
    "alice@example.com",
    "paula@example.com",
    "bob@example.com",
    "lena@example.com",
    "carol@example.com",
}


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_seed_creates_users_groups_and_memberships(emulator: IdentityCenterEmulator) -> None:
    assert emulator.members_of("prod-eligible") == EVERYONE_ELIGIBLE | {"mallory@example.com"}
    assert emulator.members_of("pci-secure-code-trained") == EVERYONE_ELIGIBLE
    assert emulator.members_of("prod-eng-payments") == set()
    assert emulator.members_of("prod-eng-ledger") == set()
    emulator.user_id("eve@example.com")  # exists, in no group


def test_seeding_again_changes_nothing(emulator: IdentityCenterEmulator) -> None:
    emulator.seed(SEED_FILE)
    assert emulator.members_of("prod-eligible") == EVERYONE_ELIGIBLE | {"mallory@example.com"}


def test_duplicate_membership_is_a_conflict(emulator: IdentityCenterEmulator, client: Any) -> None:
    group, user = emulator.group_id("prod-eng-payments"), emulator.user_id("alice@example.com")
    store = emulator.identity_store_id
    client.create_group_membership(IdentityStoreId=store, GroupId=group, MemberId={"UserId": user})
    with pytest.raises(ClientError) as exc:
        client.create_group_membership(IdentityStoreId=store, GroupId=group, MemberId={"UserId": user})
    assert error_code(exc) == "ConflictException"
    assert emulator.members_of("prod-eng-payments") == {"alice@example.com"}


def test_deleting_an_unknown_membership_is_not_found(emulator: IdentityCenterEmulator, client: Any) -> None:
    membership = emulator.add_member("prod-eng-ledger", "bob@example.com")
    store = emulator.identity_store_id
    client.delete_group_membership(IdentityStoreId=store, MembershipId=membership)
    with pytest.raises(ClientError) as exc:
        client.delete_group_membership(IdentityStoreId=store, MembershipId=membership)
    assert error_code(exc) == "ResourceNotFoundException"


def test_membership_lookups_moto_lacks(emulator: IdentityCenterEmulator, client: Any) -> None:
    store = emulator.identity_store_id
    alice = {"UserId": emulator.user_id("alice@example.com")}
    payments, eligible = emulator.group_id("prod-eng-payments"), emulator.group_id("prod-eligible")
    with pytest.raises(ClientError) as exc:
        client.get_group_membership_id(IdentityStoreId=store, GroupId=payments, MemberId=alice)
    assert error_code(exc) == "ResourceNotFoundException"

    membership = emulator.add_member("prod-eng-payments", "alice@example.com")
    found = client.get_group_membership_id(IdentityStoreId=store, GroupId=payments, MemberId=alice)
    assert found["MembershipId"] == membership
    described = client.describe_group_membership(IdentityStoreId=store, MembershipId=membership)
    assert (described["GroupId"], described["MemberId"]) == (payments, alice)

    eve = {"UserId": emulator.user_id("eve@example.com")}
    results = client.is_member_in_groups(IdentityStoreId=store, MemberId=eve, GroupIds=[eligible])["Results"]
    assert [(r["GroupId"], r["MembershipExists"]) for r in results] == [(eligible, False)]
    results = client.is_member_in_groups(IdentityStoreId=store, MemberId=alice, GroupIds=[eligible, payments])
    assert all(r["MembershipExists"] for r in results["Results"])


def test_bulk_seeding_is_what_the_api_serves(emulator: IdentityCenterEmulator, client: Any) -> None:
    store = emulator.identity_store_id
    ids = emulator.seed_users(["bulk-1@example.com", "bulk-2@example.com", "alice@example.com"])
    assert ids["alice@example.com"] == emulator.user_id("alice@example.com"), "an existing user is kept"
    assert emulator.user_id("bulk-1@example.com") == ids["bulk-1@example.com"]
    user = client.describe_user(IdentityStoreId=store, UserId=ids["bulk-2@example.com"])
    assert (user["UserName"], user["Emails"][0]["Value"]) == ("bulk-2@example.com", "bulk-2@example.com")

    memberships = emulator.add_members("prod-eng-ledger", ["bulk-1@example.com", "bulk-2@example.com"])
    assert emulator.add_members("prod-eng-ledger", ["bulk-1@example.com"]) == {
        "bulk-1@example.com": memberships["bulk-1@example.com"]
    }, "an existing membership is kept"
    assert emulator.members_of("prod-eng-ledger") == {"bulk-1@example.com", "bulk-2@example.com"}
    ledger = emulator.group_id("prod-eng-ledger")
    with pytest.raises(ClientError) as exc:
        client.create_group_membership(
            IdentityStoreId=store, GroupId=ledger, MemberId={"UserId": ids["bulk-1@example.com"]}
        )
    assert error_code(exc) == "ConflictException"

    assert emulator.empty_group("prod-eng-ledger") == 2
    assert emulator.members_of("prod-eng-ledger") == set()
    assert emulator.members_of("prod-eligible") == EVERYONE_ELIGIBLE | {"mallory@example.com"}, "other groups kept"


def test_membership_changes_are_told_as_they_happen(emulator: IdentityCenterEmulator, client: Any) -> None:
    seen: list[tuple[bool, str, str]] = []
    emulator.watch_memberships(lambda added, m: seen.append((added, m["GroupId"], m["MemberId"]["UserId"])))
    store, payments = emulator.identity_store_id, emulator.group_id("prod-eng-payments")
    alice, bob = emulator.user_id("alice@example.com"), emulator.user_id("bob@example.com")

    created = client.create_group_membership(IdentityStoreId=store, GroupId=payments, MemberId={"UserId": alice})
    assert seen == [(True, payments, alice)], "told before the API answers"
    emulator.add_members("prod-eng-payments", ["bob@example.com"])
    client.delete_group_membership(IdentityStoreId=store, MembershipId=created["MembershipId"])
    emulator.empty_group("prod-eng-payments")
    assert seen == [(True, payments, alice), (True, payments, bob), (False, payments, alice), (False, payments, bob)]


def test_a_user_name_that_is_no_email_address_gets_no_email(emulator: IdentityCenterEmulator, client: Any) -> None:
    user_id = emulator.create_user("svc-deploy")
    user = client.describe_user(IdentityStoreId=emulator.identity_store_id, UserId=user_id)
    assert user["UserName"] == "svc-deploy"
    assert not user.get("Emails")
    assert emulator.create_user("svc-deploy") == user_id  # and again: found, not created twice


def test_deleting_a_user_deletes_its_memberships(emulator: IdentityCenterEmulator, client: Any) -> None:
    client.delete_user(IdentityStoreId=emulator.identity_store_id, UserId=emulator.user_id("carol@example.com"))
    assert "carol@example.com" not in emulator.members_of("prod-eligible")


def test_throttling_is_injected_then_spent(emulator: IdentityCenterEmulator, client: Any) -> None:
    store = emulator.identity_store_id
    group, user = emulator.group_id("prod-eng-payments"), emulator.user_id("alice@example.com")
    emulator.faults.fail("CreateGroupMembership", times=2)
    for _ in range(2):
        with pytest.raises(ClientError) as exc:
            client.create_group_membership(IdentityStoreId=store, GroupId=group, MemberId={"UserId": user})
        assert error_code(exc) == "ThrottlingException"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    client.create_group_membership(IdentityStoreId=store, GroupId=group, MemberId={"UserId": user})
    assert emulator.faults.injected["CreateGroupMembership"] == 2
    assert emulator.faults.pending("CreateGroupMembership") == 0
    assert emulator.members_of("prod-eng-payments") == {"alice@example.com"}


def test_sdk_retries_absorb_injected_throttling(emulator: IdentityCenterEmulator) -> None:
    retrying = emulator.client(config=Config(retries={"mode": "standard", "total_max_attempts": 3}))
    emulator.faults.clear()
    emulator.faults.fail("GetGroupId")
    response = retrying.get_group_id(
        IdentityStoreId=emulator.identity_store_id,
        AlternateIdentifier={"UniqueAttribute": {"AttributePath": "displayName", "AttributeValue": "prod-eligible"}},
    )
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert emulator.faults.calls["GetGroupId"] == 2


def test_server_errors_and_writes_applied_before_failing(emulator: IdentityCenterEmulator, client: Any) -> None:
    store = emulator.identity_store_id
    group, user = emulator.group_id("prod-eng-ledger"), emulator.user_id("lena@example.com")
    emulator.faults.fail("CreateGroupMembership", error="InternalServerException")
    with pytest.raises(ClientError) as exc:
        client.create_group_membership(IdentityStoreId=store, GroupId=group, MemberId={"UserId": user})
    assert error_code(exc) == "InternalServerException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert emulator.members_of("prod-eng-ledger") == set()

    # The answer is lost but the write happened: the retry meets a conflict.
    emulator.faults.fail("CreateGroupMembership", error="InternalServerException", after_apply=True)
    with pytest.raises(ClientError) as exc:
        client.create_group_membership(IdentityStoreId=store, GroupId=group, MemberId={"UserId": user})
    assert error_code(exc) == "InternalServerException"
    assert emulator.members_of("prod-eng-ledger") == {"lena@example.com"}
    with pytest.raises(ClientError) as exc:
        client.create_group_membership(IdentityStoreId=store, GroupId=group, MemberId={"UserId": user})
    assert error_code(exc) == "ConflictException"


def test_delay_holds_a_call(emulator: IdentityCenterEmulator) -> None:
    emulator.faults.delay("ListGroupMemberships", seconds=0.3)
    began = time.monotonic()
    assert emulator.members_of("prod-eng-payments") == set()
    assert time.monotonic() - began >= 0.3


def test_emulators_are_isolated_and_survive_mock_aws(emulator: IdentityCenterEmulator) -> None:
    with IdentityCenterEmulator() as other:
        assert other.identity_store_id != emulator.identity_store_id
        other.create_group("prod-eligible")
        assert other.members_of("prod-eligible") == set()
    # Every mock_aws start and stop resets moto's backends; the running emulator keeps its store.
    with mock_aws():
        pass
    assert emulator.members_of("prod-eligible") == EVERYONE_ELIGIBLE | {"mallory@example.com"}


def test_env_points_another_process_at_the_emulator(emulator: IdentityCenterEmulator) -> None:
    script = (
        "import json, os, boto3\n"
        "c = boto3.client('identitystore')\n"
        "groups = c.list_groups(IdentityStoreId=os.environ['JITACCESS_IDENTITY_STORE_ID'])['Groups']\n"
        "print(json.dumps(sorted(g['DisplayName'] for g in groups)))\n"
    )
    env = {**os.environ, **emulator.env()}
    env.pop("AWS_PROFILE", None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(result.stdout) == [
        "eng-ledger",
        "eng-payments",
        "payments-oncall",
        "pci-secure-code-trained",
        "prod-eligible",
        "prod-eng-ledger",
        "prod-eng-payments",
        "prod-eng-payments-pci",
    ]


def test_listing_a_group_that_does_not_exist_is_not_found(emulator: IdentityCenterEmulator, client: Any) -> None:
    """Not an empty page: a group deleted (and maybe created again under its name, with a new id)
    is told from a group with nobody in it (`strict_moto`'s doc: why this answer)."""
    store = emulator.identity_store_id
    nobody = client.list_group_memberships(IdentityStoreId=store, GroupId=emulator.group_id("prod-eng-ledger"))
    assert nobody["GroupMemberships"] == []
    doomed = emulator.group_id("prod-eligible")
    client.delete_group(IdentityStoreId=store, GroupId=doomed)
    with pytest.raises(ClientError) as exc:
        client.list_group_memberships(IdentityStoreId=store, GroupId=doomed)
    assert error_code(exc) == "ResourceNotFoundException" and exc.value.response["ResourceType"] == "GROUP"


def test_strict_moto_in_process() -> None:
    make_moto_strict()
    with mock_aws():
        client = boto3.client("identitystore", region_name="us-east-1")
        store = "d-0123456789"
        user = client.create_user(
            IdentityStoreId=store,
            UserName="alice@example.com",
            DisplayName="Alice",
            Name={"GivenName": "Alice", "FamilyName": "Adams"},
        )["UserId"]
        group = client.create_group(IdentityStoreId=store, DisplayName="prod-eng-payments")["GroupId"]
        membership = client.create_group_membership(IdentityStoreId=store, GroupId=group, MemberId={"UserId": user})
        with pytest.raises(ClientError) as exc:
            client.create_group_membership(IdentityStoreId=store, GroupId=group, MemberId={"UserId": user})
        assert error_code(exc) == "ConflictException"
        client.delete_group_membership(IdentityStoreId=store, MembershipId=membership["MembershipId"])
        with pytest.raises(ClientError) as exc:
            client.delete_group_membership(IdentityStoreId=store, MembershipId=membership["MembershipId"])
        assert error_code(exc) == "ResourceNotFoundException"
        with pytest.raises(ClientError) as exc:
            client.list_group_memberships(IdentityStoreId=store, GroupId="no-such-group")
        assert error_code(exc) == "ResourceNotFoundException"


def test_listings_page_every_row_once_while_rows_come_and_go(emulator: IdentityCenterEmulator, client: Any) -> None:
    store = emulator.identity_store_id
    emulator.seed_users([f"page-{i:03d}@example.com" for i in range(250)])

    def page(token: str | None = None, **kwargs: Any) -> tuple[list[str], str | None]:
        answer = client.list_users(
            IdentityStoreId=store, MaxResults=100, **({"NextToken": token} if token else {}), **kwargs
        )
        return [u["UserName"] for u in answer["Users"]], answer.get("NextToken")

    first, token = page()
    assert len(first) == 100 and token
    # Between pages: a user listed already goes, one not listed yet goes, and a new one comes.
    client.delete_user(IdentityStoreId=store, UserId=emulator.user_id(first[0]))
    client.delete_user(IdentityStoreId=store, UserId=emulator.user_id("page-200@example.com"))
    emulator.seed_users(["page-late@example.com"])
    names, pages = list(first), 1
    while token:
        more, token = page(token)
        names += more
        pages += 1
    everyone = {
        u["UserName"]
        for u in client.get_paginator("list_users").paginate(IdentityStoreId=store).build_full_result()["Users"]
    }
    assert len(names) == len(set(names)), "no user twice"
    assert set(names) == everyone | {first[0]}, "every user still there, the one gone after its page included"
    assert "page-late@example.com" in names and "page-200@example.com" not in names
    assert pages == 3

    _, token = page()
    for bad in (
        lambda: page(token, Filters=[{"AttributePath": "UserName", "AttributeValue": "page-late@example.com"}]),
        lambda: page("not-a-token"),
        lambda: client.list_users(IdentityStoreId=store, MaxResults=101),
    ):
        with pytest.raises(ClientError) as exc:
            bad()
        assert error_code(exc) == "ValidationException"
    late = [{"AttributePath": "UserName", "AttributeValue": "page-late@example.com"}]
    assert page(Filters=late)[0] == ["page-late@example.com"]


def test_group_listings_and_lookups_follow_every_change(emulator: IdentityCenterEmulator, client: Any) -> None:
    store, ledger = emulator.identity_store_id, emulator.group_id("prod-eng-ledger")
    users = [f"member-{i:03d}@example.com" for i in range(150)]
    emulator.seed_users(users)
    emulator.add_members("prod-eng-ledger", users)
    listed = client.get_paginator("list_group_memberships").paginate(IdentityStoreId=store, GroupId=ledger)
    pages = [p["GroupMemberships"] for p in listed]
    assert [len(p) for p in pages] == [100, 50]
    assert {m["GroupId"] for p in pages for m in p} == {ledger}, "only the group's memberships"

    carol = emulator.user_id(users[7])
    found = client.get_group_membership_id(IdentityStoreId=store, GroupId=ledger, MemberId={"UserId": carol})
    client.delete_group_membership(IdentityStoreId=store, MembershipId=found["MembershipId"])
    with pytest.raises(ClientError) as exc:
        client.get_group_membership_id(IdentityStoreId=store, GroupId=ledger, MemberId={"UserId": carol})
    assert error_code(exc) == "ResourceNotFoundException"
    again = client.create_group_membership(IdentityStoreId=store, GroupId=ledger, MemberId={"UserId": carol})
    answer = client.is_member_in_groups(IdentityStoreId=store, MemberId={"UserId": carol}, GroupIds=[ledger])
    assert answer["Results"][0]["MembershipExists"] is True
    assert (
        client.get_group_membership_id(IdentityStoreId=store, GroupId=ledger, MemberId={"UserId": carol})[
            "MembershipId"
        ]
        == again["MembershipId"]
    )
    assert emulator.empty_group("prod-eng-ledger") == 150
    assert client.list_group_memberships(IdentityStoreId=store, GroupId=ledger)["GroupMemberships"] == []

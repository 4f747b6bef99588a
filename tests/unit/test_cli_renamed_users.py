"""`kubectl jit audit --user`, `audit --access --user` and `review` follow a renamed user.

Identity Center lets a user's UserName change while their UserId stays, and gives a name up for
someone else to take later, with another UserId. The records carry both (`user.username`,
`user.identityStoreUserId`): alice@example.com, renamed alice.smith@example.com, is one person
under both names, and the new alice@example.com (another UserId) someone else (docs/audit.md,
"Renamed users").
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest

from jitaccess.api import audit as records_api
from jitaccess.api import names
from jitaccess.api.wire import looks_like_identity_store_id
from jitaccess.cli import history, reports
from jitaccess.cli import objects as o
from tests.unit import test_cli_reports as seeded
from tests.unit.test_cli_access import grant, request
from tests.unit.test_cli_reports import s3  # noqa: F401 (a fixture: the archive's bucket in moto)

ALICE = "94482488-3041-7026-18f3-be45dc8e2cb6"  # alice@example.com, renamed alice.smith@example.com
NEW_ALICE = "9067d6c8a1-1f2e3d4c-5b6a-7980-8a9b-0c1d2e3f4a5b"  # alice@example.com since
BOB = "c0ffee00-0000-4000-8000-000000000b0b"


def of(name: str, username: str, user_id: str, days_ago: float, *, granted: bool = True) -> list[dict[str, Any]]:
    """The records of a request `name` by `username` (`user_id`) `days_ago`, auto-approved, and of
    its grant, expired an hour later, unless not `granted`."""
    at = seeded.NOW - timedelta(days=days_ago)
    asked = request(name, at=at)
    asked["spec"] = {**asked["spec"], "requester": username, "requesterUserId": user_id}
    found = records_api.records_of(asked)
    if granted:
        made = grant(name, at, timedelta(hours=1), ended=names.EXPIRED)
        made["spec"] = {**made["spec"], "user": username, "userId": user_id}
        found += records_api.records_of(made)
    return found


def archived() -> None:
    """alice as alice@example.com 20 days ago, as alice.smith@example.com 5 days ago; the new
    alice@example.com asked 2 days ago (no grant); bob 1 day ago."""
    found = of("a-1", "alice@example.com", ALICE, 20) + of("a-2", "alice.smith@example.com", ALICE, 5)
    found += of("n-1", "alice@example.com", NEW_ALICE, 2, granted=False) + of("b-1", "bob@example.com", BOB, 1)
    seeded.put_batch(boto3.client("s3"), seeded.NOW - timedelta(minutes=1), sorted(found, key=lambda r: r["time"]))


def test_a_user_id_has_the_form_aws_documents() -> None:
    assert looks_like_identity_store_id(ALICE) and looks_like_identity_store_id(NEW_ALICE)
    assert not looks_like_identity_store_id("alice@example.com")
    assert not looks_like_identity_store_id("jitaccess-production-admins-eu-west1")


def audited(**changes: Any) -> tuple[dict[str, Any], str]:
    """The JSON document of `audit` over the archive (alice's, bob's), and what it said on stderr."""
    s = seeded.session()
    assert reports.audit(s, seeded.options(archive=seeded.LOCATION, **changes), now=seeded.NOW) == 0
    return json.loads(seeded.out(s)), seeded.err(s)


def requests_of(document: dict[str, Any]) -> set[str]:
    return {r["request"] for r in document["records"]}


@pytest.mark.usefixtures("s3")
def test_user_selects_the_records_of_every_name_the_user_had_and_says_so() -> None:
    archived()
    document, said = audited(user="alice.smith@example.com")
    assert requests_of(document) == {"a-1", "a-2"}, "alice's records under her old name, not the new alice's"
    told = "--user alice.smith@example.com: the records of alice.smith@example.com, known before as alice@example.com"
    assert told + "\n" in said


@pytest.mark.usefixtures("s3")
def test_user_may_be_a_user_id() -> None:
    archived()
    document, said = audited(user=ALICE)
    assert requests_of(document) == {"a-1", "a-2"}
    assert f"--user {ALICE}: the records of alice.smith@example.com, known before as alice@example.com\n" in said


@pytest.mark.usefixtures("s3")
def test_a_name_given_to_someone_else_later_says_both_users_apart() -> None:
    archived()
    document, said = audited(user="alice@example.com")
    assert requests_of(document) == {"a-1", "a-2", "n-1"}
    assert (
        "--user alice@example.com: the records of alice.smith@example.com, known before as alice@example.com "
        f"(identity store user {ALICE}); alice@example.com (identity store user {NEW_ALICE})\n"
    ) in said


@pytest.mark.usefixtures("s3")
def test_one_name_only_says_nothing_more() -> None:
    archived()
    assert audited(user="bob")[1] == f"records from the audit archive {seeded.LOCATION}\n"


@pytest.mark.usefixtures("s3")
def test_access_user_lists_the_periods_held_under_an_earlier_name() -> None:
    archived()
    document, said = audited(since=timedelta(days=30), access=True, user="alice.smith@example.com")
    assert [(p["grant"], p["user"]["username"]) for p in document["periods"]] == [
        ("a-1", "alice@example.com"),
        ("a-2", "alice.smith@example.com"),
    ]
    assert "known before as alice@example.com" in said


def name_taken_after_the_window() -> None:
    """alice@example.com (ALICE) 20 days ago; bob (BOB) 10 days ago; alice renamed
    alice.smith@example.com 5 days ago, and bob renamed alice@example.com 2 days ago."""
    found = of("a-1", "alice@example.com", ALICE, 20) + of("b-1", "bob@example.com", BOB, 10)
    found += of("a-2", "alice.smith@example.com", ALICE, 5) + of("b-2", "alice@example.com", BOB, 2)
    seeded.put_batch(boto3.client("s3"), seeded.NOW - timedelta(minutes=1), sorted(found, key=lambda r: r["time"]))


@pytest.mark.usefixtures("s3")
def test_a_name_is_whoever_held_it_up_to_the_windows_end() -> None:
    """`--user alice@example.com --until 7d` is the alice of then: bob, who took the name after the
    window, is not followed back to his records as bob@example.com within it."""
    name_taken_after_the_window()
    document, said = audited(user="alice@example.com", until=timedelta(days=7))
    assert requests_of(document) == {"a-1"}
    assert "bob" not in said
    document, said = audited(user="alice@example.com", until=timedelta(days=7), access=True)
    assert [p["grant"] for p in document["periods"]] == ["a-1"]
    assert "bob" not in said
    # Up to now, the name is both people's, each under every name they had.
    assert requests_of(audited(user="alice@example.com")[0]) == {"a-1", "a-2", "b-1", "b-2"}


def reviewed(output: str) -> str:
    """`review prod-eng-payments` over the archive, its status listing alice, the new alice and bob."""
    s = seeded.session()
    payments = s.api.get(o.path(names.ENTITLEMENTS, "prod-eng-payments"))
    payments["status"] = {
        **payments["status"],
        "eligibleUsers": [
            {"userId": ALICE, "username": "alice.smith@example.com"},
            {"userId": NEW_ALICE, "username": "alice@example.com"},
            {"userId": BOB, "username": "bob@example.com"},
        ],
    }
    now = seeded.NOW
    assert reports.review(s, "prod-eng-payments", days=30, archive=seeded.LOCATION, output=output, now=now) == 0
    return seeded.out(s)


@pytest.mark.usefixtures("s3")
def test_review_counts_a_renamed_user_once_and_a_new_holder_of_the_name_apart() -> None:
    archived()
    report = json.loads(reviewed("json"))
    assert [(u["user"], u["identityStoreUserId"], u["names"], u["requests"], u["grants"]) for u in report["usage"]] == [
        ("alice.smith@example.com", ALICE, ["alice@example.com", "alice.smith@example.com"], 2, 2),
        ("bob@example.com", BOB, ["bob@example.com"], 1, 1),
        ("alice@example.com", NEW_ALICE, ["alice@example.com"], 1, 0),
    ]
    assert report["neverUsed"] == ["alice@example.com"], "the new alice never used it; the old one did"
    table = reviewed("table")
    assert "  alice.smith@example.com (known before as alice@example.com)   2          2   " in table
    assert "Never used (candidates for removal): alice@example.com\n" in table


def test_a_record_without_a_user_id_is_counted_with_the_one_user_id_its_name_has() -> None:
    with_id = {"action": "granted", "user": {"username": "carol@example.com", "identityStoreUserId": BOB}}
    without = {"action": "requested", "user": {"username": "carol@example.com"}}
    other = {"action": "requested", "user": {"username": "dave@example.com"}}
    person, seen = reports._people([without, with_id, other])
    assert person(without["user"]) == person(with_id["user"]) == ("id", BOB)
    assert person(other["user"]) == ("name", "dave@example.com")
    assert seen == {("id", BOB): ["carol@example.com"], ("name", "dave@example.com"): ["dave@example.com"]}


def test_the_current_name_is_the_one_seen_last() -> None:
    renamed_back = [
        {"user": {"username": name, "identityStoreUserId": ALICE}}
        for name in ("alice@x.com", "a.smith@x.com", "alice@x.com")
    ]
    who = history.follow(renamed_back, ALICE)
    assert who.names == {ALICE: ["a.smith@x.com", "alice@x.com"]}
    assert who.described == f"--user {ALICE}: the records of alice@x.com, known before as a.smith@x.com"

"""A PermissionCatalog's assignment drift removals: the entries of `status.driftRemovals` as the pass
lists, confirms and takes them back (`domain.assignmentdrift`), and the `assignment-drift-removed`
records they become (`api.audit.records_of_catalog`)."""

from __future__ import annotations

from typing import Any

from jitaccess.api import audit, names
from jitaccess.domain import assignmentdrift as drift

ARN = "arn:aws:sso:::permissionSet/ssoins-1/ps-0a1b2c"
KEY: drift.Key = (ARN, "444455556666", "USER", "uid-mallory")
GROUP_KEY: drift.Key = (ARN, "444455556666", "GROUP", "gid-hand-made")
SEEN = "2026-11-23T12:00:00Z"


def catalog(*removals: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": names.PERMISSION_CATALOG,
        "metadata": {"name": "payments", "uid": "c-payments"},
        "status": {"driftRemovals": list(removals)},
    }


def test_a_removal_is_listed_before_it_is_made_and_once_while_under_way() -> None:
    entry = drift.intent(KEY, "jit-payments-prod", "mallory@example.com", SEEN)
    assert entry == {
        "permissionSetArn": ARN,
        "permissionSetName": "jit-payments-prod",
        "account": "444455556666",
        "principalType": "USER",
        "principalId": "uid-mallory",
        "user": "mallory@example.com",
        "firstSeen": SEEN,
    }
    assert "time" not in entry, "under way: no record yet"
    entries = drift.listed([], entry)
    assert entries == [entry]
    # A later pass (or a restarted operator) finds it under way: its firstSeen is kept.
    assert drift.listed(entries, {**entry, "firstSeen": "2026-11-23T12:05:00Z"}) is None
    # Once confirmed, the same assignment made again by hand is a removal of its own.
    done = [{**entry, "time": "2026-11-23T12:00:01Z"}]
    again = {**entry, "firstSeen": "2026-11-24T09:00:00Z"}
    assert drift.listed(done, again) == [*done, again]


def test_a_group_or_a_user_not_found_is_listed_by_its_id() -> None:
    entry = drift.intent(GROUP_KEY, "jit-payments-prod", None, SEEN)
    assert "user" not in entry
    assert drift.principal(entry) == "group gid-hand-made"
    assert drift.removed_message(entry, wanted=False) == (
        "jit-payments-prod: group gid-hand-made was assigned in 444455556666, which the catalog no longer lists, "
        "outside jitaccess: removed"
    )


def test_only_an_entry_under_way_is_confirmed_and_a_missing_one_only_when_this_pass_made_it() -> None:
    entry = drift.intent(KEY, "jit-payments-prod", "mallory@example.com", SEEN)
    other = drift.intent(GROUP_KEY, "jit-payments-prod", None, SEEN)
    confirmations = {KEY: (entry, "2026-11-23T12:00:02Z", "removed"), GROUP_KEY: (other, "2026-11-23T12:00:02Z", "x")}
    result = drift.confirmed([entry], confirmations)
    assert result is not None
    entries, done = result
    assert done == [KEY], "the group's entry is missing and this pass did not make it: nothing to confirm"
    assert entries == [{**entry, "time": "2026-11-23T12:00:02Z", "message": "removed"}]
    assert drift.confirmed(entries, confirmations) is None, "a confirmed entry never changes"
    appended = drift.confirmed([], {GROUP_KEY: confirmations[GROUP_KEY]}, made=[GROUP_KEY])
    assert appended == ([{**other, "time": "2026-11-23T12:00:02Z", "message": "x"}], [GROUP_KEY])


def test_taking_back_drops_only_the_entry_under_way() -> None:
    entry = drift.intent(KEY, "jit-payments-prod", "mallory@example.com", SEEN)
    done = {**entry, "firstSeen": "2026-11-22T08:00:00Z", "time": "2026-11-22T08:00:01Z", "message": "removed"}
    assert drift.taken_back([done, entry], [KEY]) == [done]
    assert drift.taken_back([done], [KEY]) is None


def test_a_confirmed_removal_is_an_assignment_drift_removed_record_and_one_under_way_none() -> None:
    entry = drift.intent(KEY, "jit-payments-prod", "mallory@example.com", SEEN)
    made = {**entry, "time": "2026-11-23T12:00:01Z", "message": "removed"}
    group = {**drift.intent(GROUP_KEY, "jit-payments-prod", None, SEEN), "time": "2026-11-23T12:00:01Z"}
    records = audit.records_of(catalog(made, group, {**entry, "principalId": "uid-bob"}))
    assert [r["action"] for r in records] == [audit.ASSIGNMENT_DRIFT_REMOVED] * 2
    user_record, group_record = records
    assert user_record == {
        "schema": audit.SCHEMA,
        "id": f"c-payments/{audit.ASSIGNMENT_DRIFT_REMOVED}/ps-0a1b2c/444455556666/uid-mallory/20261123T120000Z",
        "time": "2026-11-23T12:00:01Z",
        "action": audit.ASSIGNMENT_DRIFT_REMOVED,
        "actor": {"username": audit.OPERATOR},
        "kind": names.PERMISSION_CATALOG,
        "name": "payments",
        "uid": "c-payments",
        "ownerTeam": "payments",
        "user": {"username": "mallory@example.com", "identityStoreUserId": "uid-mallory"},
        "permissionSet": {"name": "jit-payments-prod", "arn": ARN},
        "account": "444455556666",
        "principalType": "USER",
        "startTime": SEEN,
        "endTime": "2026-11-23T12:00:01Z",
        "message": "removed",
    }
    assert group_record["group"] == {"id": "gid-hand-made"} and "user" not in group_record
    # The archiver lists the record's key as the entry's: the id after the action.
    assert (
        audit.action_key(user_record["id"]) == f"{audit.ASSIGNMENT_DRIFT_REMOVED}/{audit.assignment_removal_key(made)}"
    )
    assert audit.ASSIGNMENT_DRIFT_REMOVED in audit.ACTIONS

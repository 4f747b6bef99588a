"""Audit records derived from stored objects (api/audit.py): every action, who, when, stable ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from jitaccess.api import audit, names

T0 = "2026-11-23T12:00:00Z"


def cond(type_: str, status: str, reason: str, at: str = T0, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": at}


def request(*, annotations: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.ACCESS_REQUEST,
        "metadata": {"name": "r1", "uid": "u-r1", "creationTimestamp": T0, "annotations": annotations or {}},
        "spec": {
            "entitlement": "prod-payments",
            "reason": "INC-1 fix",
            "requester": "bob",
            "requesterGroups": ["eng", "oncall"],
            "requesterUserId": "uid-bob",
        },
        "status": status,
    }


def grant(*, annotations: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.ACCESS_GRANT,
        "metadata": {"name": "r1", "uid": "u-g1", "annotations": annotations or {}},
        "spec": {
            "user": "bob",
            "userId": "uid-bob",
            "entitlement": "prod-payments",
            "groupName": "prod-payments-admins",
            "request": "r1",
            "duration": "1h",
            "ownerTeam": "payments",
            "reason": "INC-1 fix",
        },
        "status": status,
    }


def by_action(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["action"]: r for r in records}


def test_a_new_request_is_one_requested_record_by_the_requester() -> None:
    (record,) = audit.records_of_request(request())
    assert record == {
        "schema": audit.SCHEMA,
        "id": "u-r1/requested",
        "time": T0,
        "action": "requested",
        "actor": {"username": "bob", "groups": ["eng", "oncall"]},
        "kind": "AccessRequest",
        "name": "r1",
        "uid": "u-r1",
        "request": "r1",
        "entitlement": "prod-payments",
        "user": {"username": "bob", "identityStoreUserId": "uid-bob"},
        "reason": "INC-1 fix",
    }


def test_a_human_approval_names_the_approver_their_groups_and_reason() -> None:
    stored = request(
        annotations={names.ANNOTATION_APPROVED_BY: "paula", names.ANNOTATION_APPROVED_BY_GROUPS: "leads,eng"},
        approvedBy="paula",
        decisionReason="ok for INC-1",
        duration="1h",
        grant="r1",
        conditions=[
            cond(names.READY, "True", names.GRANTED),
            cond(names.APPROVED, "True", names.APPROVED, "2026-11-23T12:05:00Z", "approved by paula"),
        ],
    )
    records = by_action(audit.records_of_request(stored))
    assert set(records) == {"requested", "approved"}
    approved = records["approved"]
    assert approved["actor"] == {"username": "paula", "groups": ["eng", "leads"]}
    assert approved["time"] == "2026-11-23T12:05:00Z"
    assert approved["decisionReason"] == "ok for INC-1"
    assert approved["duration"] == "1h" and "grant" not in approved
    assert approved["id"] == "u-r1/approved"


def test_auto_approval_is_the_operators_via_the_owner_team() -> None:
    stored = request(conditions=[cond(names.APPROVED, "True", names.AUTO_APPROVED)])
    approved = by_action(audit.records_of_request(stored))["approved"]
    assert approved["actor"] == {"username": audit.OPERATOR, "via": "auto-approved (owner team)"}


def test_escalation_then_denial() -> None:
    stored = request(
        annotations={names.ANNOTATION_DENIED_BY: "carol", names.ANNOTATION_DENIED_BY_GROUPS: "sre"},
        deniedBy="carol",
        escalationTime="2026-11-23T12:15:00Z",
        conditions=[
            cond(names.ESCALATED, "True", names.PENDING_TOO_LONG, "2026-11-23T12:15:00Z", "escalated"),
            cond(names.DENIED, "True", names.DENIED, "2026-11-23T12:20:00Z", "denied by carol"),
            cond(names.READY, "False", names.DENIED, "2026-11-23T12:20:00Z", "denied by carol"),
        ],
    )
    records = audit.records_of_request(stored)
    assert [r["action"] for r in records] == ["requested", "escalated", "denied"]
    escalated, denied = records[1], records[2]
    assert escalated["actor"] == {"username": audit.OPERATOR} and escalated["time"] == "2026-11-23T12:15:00Z"
    assert denied["actor"] == {"username": "carol", "groups": ["sre"]}
    assert denied["message"] == "denied by carol"


def test_requests_ending_without_a_grant_say_how() -> None:
    for reason, action in (
        (names.TIMED_OUT, "timed-out"),
        (names.NOT_ELIGIBLE, "not-eligible"),
        (names.INVALID, "invalid"),
        (names.FAILED, "failed"),
    ):
        stored = request(conditions=[cond(names.READY, "False", reason, "2026-11-23T13:00:00Z", "why")])
        ending = audit.records_of_request(stored)[-1]
        assert (ending["action"], ending["time"], ending["message"]) == (action, "2026-11-23T13:00:00Z", "why")
        assert ending["actor"] == {"username": audit.OPERATOR}


def test_a_request_following_its_grant_leaves_the_ending_to_the_grant() -> None:
    stored = request(grant="r1", conditions=[cond(names.READY, "False", names.FAILED)])
    assert [r["action"] for r in audit.records_of_request(stored)] == ["requested"]


def test_an_expired_grant_has_its_window_and_ids_for_cloudtrail() -> None:
    stored = grant(
        userId="uid-bob",
        groupId="gid-1",
        activationTime="2026-11-23T12:06:00Z",
        expirationTime="2026-11-23T13:06:00Z",
        conditions=[cond(names.READY, "False", names.EXPIRED, "2026-11-23T13:06:01Z", "expired")],
    )
    granted, expired = audit.records_of_grant(stored)
    assert granted["action"] == "granted" and expired["action"] == "expired"
    for record in (granted, expired):
        assert record["user"] == {"username": "bob", "identityStoreUserId": "uid-bob"}
        assert record["group"] == {"name": "prod-payments-admins", "id": "gid-1"}
        assert record["ownerTeam"] == "payments" and record["request"] == "r1" and record["grant"] == "r1"
        assert record["startTime"] == "2026-11-23T12:06:00Z"
    assert granted["endTime"] == "2026-11-23T13:06:00Z"
    assert expired["endTime"] == expired["time"] == "2026-11-23T13:06:01Z"
    # As granted in `granted`; from the start to the actual end (1 s after the scheduled one) in `expired`.
    assert (granted["duration"], expired["duration"]) == ("1h", "1h1s")


def test_a_revocation_names_who_and_why() -> None:
    stored = grant(
        annotations={names.ANNOTATION_REVOKE_REASON: "done early"},
        activationTime="2026-11-23T12:06:00Z",
        expirationTime="2026-11-23T13:06:00Z",
        revocationTime="2026-11-23T12:30:00Z",
        revokedBy="paula",
        conditions=[cond(names.READY, "False", names.REVOKED, "2026-11-23T12:30:02Z")],
    )
    revoked = by_action(audit.records_of_grant(stored))["revoked"]
    assert revoked["actor"] == {"username": "paula"}
    assert revoked["revokeReason"] == "done early"
    assert revoked["time"] == revoked["endTime"] == "2026-11-23T12:30:00Z"


def test_a_grant_that_failed_before_activation_has_no_window() -> None:
    stored = grant(conditions=[cond(names.READY, "False", names.FAILED, message="group gone")])
    (failed,) = audit.records_of_grant(stored)
    assert failed["action"] == "failed" and "startTime" not in failed and "endTime" not in failed
    assert failed["message"] == "group gone"


def test_a_provisioning_grant_has_no_record_yet() -> None:
    assert audit.records_of_grant(grant(conditions=[cond(names.READY, "False", names.PROVISIONING)])) == []


def test_drift_removals_are_records_of_the_entitlement() -> None:
    entitlement = {
        "kind": names.ENTITLEMENT,
        "metadata": {"name": "prod-payments", "uid": "u-e1"},
        "spec": {"owner": "payments", "identityCenter": {"groupName": "prod-payments-admins"}},
        "status": {
            "driftRemovals": [
                {"membershipId": "m-1", "userId": "uid-eve", "user": "eve", "groupId": "gid-1", "time": T0}
            ]
        },
    }
    (record,) = audit.records_of(entitlement)
    assert record["id"] == "u-e1/drift-removed/m-1" and record["action"] == "drift-removed"
    assert record["user"] == {"username": "eve", "identityStoreUserId": "uid-eve"}
    assert audit.action_key(record["id"]) == "drift-removed/m-1"
    # Listed before the scan kept when it first saw the member: no start, never a made-up one.
    assert "startTime" not in record and record["endTime"] == record["time"] == T0


def test_a_drift_removal_starts_when_the_scan_first_saw_the_member() -> None:
    removal = {"membershipId": "m-1", "userId": "uid-eve", "time": "2026-11-23T12:00:02Z"}
    entitlement = {
        "kind": names.ENTITLEMENT,
        "metadata": {"name": "prod-payments", "uid": "u-e1"},
        "spec": {"owner": "payments", "identityCenter": {"groupName": "prod-payments-admins"}},
        "status": {"driftRemovals": [{**removal, "firstSeen": "2026-11-23T12:00:01Z"}]},
    }
    (record,) = audit.records_of(entitlement)
    assert (record["startTime"], record["endTime"]) == ("2026-11-23T12:00:01Z", "2026-11-23T12:00:02Z")
    assert record["time"] == record["endTime"] and record["ownerTeam"] == "payments"


def test_a_drift_removal_under_way_is_no_record_until_confirmed() -> None:
    """Listed before the removal is made (no `time`): a record only once confirmed, never one that
    says a member was removed when the removal may not have happened."""
    intent = {"membershipId": "m-1", "userId": "uid-eve", "user": "eve", "firstSeen": "2026-11-23T12:00:01Z"}
    entitlement = {
        "kind": names.ENTITLEMENT,
        "metadata": {"name": "prod-payments", "uid": "u-e1"},
        "spec": {"owner": "payments", "identityCenter": {"groupName": "prod-payments-admins"}},
        "status": {"driftRemovals": [intent, {**intent, "membershipId": "m-2", "time": "2026-11-23T12:00:02Z"}]},
    }
    assert [r["id"] for r in audit.records_of(entitlement)] == ["u-e1/drift-removed/m-2"]


def test_a_released_entitlement_has_a_record_of_when_its_group_was_let_go() -> None:
    released = cond(names.READY, "False", names.RELEASED, "2026-11-23T13:00:00Z",
                    "jitaccess no longer watches Identity Center group prod-payments-admins")  # fmt: skip
    entitlement = {
        "kind": names.ENTITLEMENT,
        "metadata": {"name": "prod-payments", "uid": "u-e1", "deletionTimestamp": "2026-11-23T12:00:00Z"},
        "spec": {"owner": "payments", "identityCenter": {"groupName": "prod-payments-admins"}},
        "status": {"groupId": "gid-1", "conditions": [released], "releasedAt": "2026-11-23T13:00:05Z"},
    }
    (record,) = audit.records_of(entitlement)
    # Its own moment, not Ready's transition time (that of Deleting: both are False).
    assert record["id"] == "u-e1/released" and record["action"] == "released"
    assert record["time"] == "2026-11-23T13:00:05Z"
    assert record["group"] == {"name": "prod-payments-admins", "id": "gid-1"} and record["ownerTeam"] == "payments"
    assert record["startTime"] == "2026-11-23T12:00:00Z" and record["actor"] == {"username": audit.OPERATOR}
    assert "no longer watches" in record["message"]
    # Only once it is let go: while it waits (Deleting), and never on a live Entitlement.
    waiting = cond(names.READY, "False", names.DELETING, "2026-11-23T12:00:01Z")
    assert audit.records_of({**entitlement, "status": {"conditions": [waiting]}}) == []
    live = {**entitlement, "metadata": {"name": "prod-payments", "uid": "u-e1"}}
    assert audit.records_of(live) == []


def test_records_never_hold_nulls_or_empties_and_ids_are_stable() -> None:
    stored = grant(
        activationTime="2026-11-23T12:06:00+00:00",
        conditions=[cond(names.READY, "False", names.REVOKED, "2026-11-23T12:30:02Z")],
    )
    first, again = audit.records_of(stored), audit.records_of(grant(**stored["status"]))
    assert first == again
    for record in first:
        assert all(value not in (None, "", [], {}) for value in record.values())
        assert record["id"] == f"u-g1/{record['action']}"
        assert record["time"].endswith("Z")
    # A later state adds records and changes none of the earlier ones.
    assert audit.records_of_grant(grant(activationTime="2026-11-23T12:06:00Z"))[0] == first[0]


def test_json_lines_round_trip_byte_for_byte() -> None:
    records = audit.records_of(request())
    data = audit.encode_lines(records)
    decoded = [json.loads(line) for line in data.split(b"\n") if line]
    assert data.count(b"\n") == len(records) and decoded == records
    assert audit.encode_lines(decoded) == data
    assert audit.ids_in(data) == ([r["id"] for r in records], 0)


def test_archive_keys_are_dated_by_when_they_were_written() -> None:
    when = datetime(2026, 11, 23, 23, 59, 59, 123456, tzinfo=UTC)
    assert audit.archive_key("/audit/", when, "abc") == "audit/v1/2026/11/23/20261123T235959.123456Z-abc.jsonl"
    assert audit.archive_key("", when, "abc").startswith("v1/2026/11/23/")
    assert audit.day_prefix("audit", when) == "audit/v1/2026/11/23/"


def test_a_request_deleted_while_it_waited_ends_withdrawn_and_a_finished_one_does_not() -> None:
    waiting = request()
    waiting["metadata"]["deletionTimestamp"] = "2026-11-23T12:09:00Z"
    [*_, last] = audit.records_of(waiting)
    assert last["action"] == "withdrawn" and last["time"] == "2026-11-23T12:09:00Z" and "actor" not in last
    assert last["id"].endswith("/withdrawn") and last["request"] == waiting["metadata"]["name"]
    # A denied request deleted (by an approver, or by retention) keeps its last word: denied.
    denied = request(conditions=[{"type": "Denied", "status": "True", "lastTransitionTime": "2026-11-23T12:01:00Z"},
                                 {"type": "Ready", "status": "False", "reason": "Denied"}])  # fmt: skip
    denied["metadata"]["deletionTimestamp"] = "2026-11-23T12:09:00Z"
    assert "withdrawn" not in {r["action"] for r in audit.records_of(denied)}


def extension_entry(**fields: Any) -> dict[str, Any]:
    """A grant's status.extensions entry: r1-ext-a, 30m approved by paula, its end 13:06 -> 13:36."""
    return {
        "name": "r1-ext-a",
        "by": "30m",
        "approvedBy": "paula",
        "time": "2026-11-23T12:50:00Z",
        "previousExpirationTime": "2026-11-23T13:06:00Z",
        "expirationTime": "2026-11-23T13:36:00Z",
        **fields,
    }


def test_an_extended_grant_ends_with_the_duration_that_applied() -> None:
    # Granted for 1h, extended by 30m, expired at the new end: 1h30m applied, not the 1h granted.
    ended = cond(names.READY, "False", names.EXPIRED, "2026-11-23T13:36:00Z", "expired")
    stored = grant(
        activationTime="2026-11-23T12:06:00Z",
        expirationTime="2026-11-23T13:36:00Z",
        extensions=[extension_entry()],
        conditions=[ended],
    )
    granted, extended, expired = audit.records_of_grant(stored)
    assert (granted["duration"], granted["endTime"]) == ("1h", "2026-11-23T13:06:00Z")
    assert (extended["duration"], extended["endTime"]) == ("1h30m", "2026-11-23T13:36:00Z")
    assert (expired["duration"], expired["endTime"]) == ("1h30m", "2026-11-23T13:36:00Z")


def test_an_early_end_carries_how_long_access_lasted() -> None:
    for reason, action in ((names.REVOKED, "revoked"), (names.ELIGIBILITY_LAPSED, "lapsed")):
        stored = grant(
            activationTime="2026-11-23T12:06:00Z",
            expirationTime="2026-11-23T13:06:00Z",
            revocationTime="2026-11-23T12:30:15Z",
            conditions=[cond(names.READY, "False", reason, "2026-11-23T12:30:16Z")],
        )
        ending = by_action(audit.records_of_grant(stored))[action]
        assert (ending["startTime"], ending["endTime"]) == ("2026-11-23T12:06:00Z", "2026-11-23T12:30:15Z")
        assert ending["duration"] == "24m15s", action


def test_a_grant_never_activated_keeps_the_duration_as_granted() -> None:
    (failed,) = audit.records_of_grant(grant(conditions=[cond(names.READY, "False", names.FAILED)]))
    assert failed["duration"] == "1h"


def test_decisions_on_a_request_name_the_owner_team_the_operator_looked_up() -> None:
    stored = request(
        annotations={names.ANNOTATION_DENIED_BY: "carol"},
        ownerTeam="payments",
        deniedBy="carol",
        escalationTime="2026-11-23T12:15:00Z",
        conditions=[
            cond(names.ESCALATED, "True", names.PENDING_TOO_LONG, "2026-11-23T12:15:00Z"),
            cond(names.DENIED, "True", names.DENIED, "2026-11-23T12:20:00Z"),
        ],
    )
    requested, escalated, denied = audit.records_of_request(stored)
    # The request as created has none: the operator looks the owner up when it takes the request up.
    assert "ownerTeam" not in requested
    assert escalated["ownerTeam"] == denied["ownerTeam"] == "payments"
    for reason in (names.APPROVED, names.AUTO_APPROVED, names.BREAK_GLASS):
        approved = request(ownerTeam="payments", conditions=[cond(names.APPROVED, "True", reason)])
        assert audit.records_of_request(approved)[-1]["ownerTeam"] == "payments", reason
    # A request stored before the operator wrote ownerTeam: absent, never null.
    (_, older) = audit.records_of_request(request(conditions=[cond(names.APPROVED, "True", names.APPROVED)]))
    assert "ownerTeam" not in older


def extension(*, annotations: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.ACCESS_EXTENSION,
        "metadata": {"name": "r1-ext-1", "uid": "u-x1", "creationTimestamp": T0, "annotations": annotations or {}},
        "spec": {
            "grant": "r1",
            "duration": "30m",
            "reason": "INC-1 the apply runs on",
            "requester": "bob",
            "requesterGroups": ["eng"],
        },
        "status": status,
    }


def test_an_extension_asked_is_a_record_of_its_requester_with_what_was_asked() -> None:
    [asked] = audit.records_of(extension())
    assert asked == {
        "schema": audit.SCHEMA,
        "id": "u-x1/extension-requested",
        "time": T0,
        "action": "extension-requested",
        "actor": {"username": "bob", "groups": ["eng"]},
        "kind": "AccessExtension",
        "name": "r1-ext-1",
        "uid": "u-x1",
        "grant": "r1",
        "user": {"username": "bob"},
        "extension": "r1-ext-1",
        "extendedBy": "30m",
        "extensionReason": "INC-1 the apply runs on",
    }
    # As created: the Entitlement the operator looks up later is not in it, so a record derived
    # again after that is the same record.
    taken_up = extension(
        entitlement="prod-payments", ownerTeam="payments", conditions=[cond("Ready", "False", "Pending")]
    )
    assert audit.records_of(taken_up) == [asked]


def test_a_denied_extension_names_the_denier_their_groups_and_why() -> None:
    denied = extension(
        annotations={names.ANNOTATION_DENIED_BY_GROUPS: "leads,payments"},
        entitlement="prod-payments",
        ownerTeam="payments",
        deniedBy="paula",
        decisionReason="not during the freeze",
        conditions=[
            cond("Denied", "True", "Denied", "2026-11-23T12:03:00Z", "denied by paula"),
            cond("Ready", "False", "Denied", "2026-11-23T12:03:00Z", "denied by paula"),
        ],
    )
    found = by_action(audit.records_of(denied))
    assert set(found) == {"extension-requested", "extension-denied"}
    record = found["extension-denied"]
    assert record["id"] == "u-x1/extension-denied" and record["time"] == "2026-11-23T12:03:00Z"
    assert record["actor"] == {"username": "paula", "groups": ["leads", "payments"]}
    assert record["decisionReason"] == "not during the freeze" and record["entitlement"] == "prod-payments"
    assert record["ownerTeam"] == "payments"
    assert record["grant"] == "r1" and record["extendedBy"] == "30m" and record["user"] == {"username": "bob"}


def test_an_extension_that_moved_nothing_says_why_and_one_applied_is_the_grants_record() -> None:
    failed = extension(conditions=[cond("Ready", "False", "Failed", "2026-11-23T12:30:00Z",
                                        "AccessGrant r1 is Expired, not Active: nothing was extended")])  # fmt: skip
    record = by_action(audit.records_of(failed))["extension-failed"]
    assert record["actor"] == {"username": audit.OPERATOR} and record["time"] == "2026-11-23T12:30:00Z"
    assert "nothing was extended" in record["message"]
    applied = extension(conditions=[cond("Approved", "True", "AutoApproved"), cond("Ready", "True", "Extended")])
    assert [r["action"] for r in audit.records_of(applied)] == ["extension-requested"]


def test_an_extension_deleted_while_it_waited_ends_withdrawn_and_a_finished_one_does_not() -> None:
    waiting = extension(conditions=[cond("Ready", "False", "Pending")])
    waiting["metadata"]["deletionTimestamp"] = "2026-11-23T12:09:00Z"
    [_, last] = audit.records_of(waiting)
    assert last["action"] == "extension-withdrawn" and last["time"] == "2026-11-23T12:09:00Z" and "actor" not in last
    assert last["id"] == "u-x1/extension-withdrawn"
    denied = extension(conditions=[cond("Denied", "True", "Denied"), cond("Ready", "False", "Denied")])
    denied["metadata"]["deletionTimestamp"] = "2026-11-23T12:09:00Z"
    assert [r["action"] for r in audit.records_of(denied)] == ["extension-requested", "extension-denied"]


def stamped_approvals(*entries: dict[str, Any]) -> dict[str, str]:
    """The `jitaccess.dev/approvals` annotation as the webhook writes it."""
    return {names.ANNOTATION_APPROVALS: json.dumps(list(entries), separators=(",", ":"), sort_keys=True)}


COUNTED = [{"by": "carol", "time": "2026-11-23T12:01:00Z"}, {"by": "paula", "time": "2026-11-23T12:05:00Z"}]


def test_each_approval_of_several_names_its_approvers_groups_and_reason() -> None:
    stored = request(
        annotations={
            names.ANNOTATION_APPROVED_BY: "paula",
            names.ANNOTATION_APPROVED_BY_GROUPS: "leads",
            **stamped_approvals(
                {"by": "carol", "groups": ["sre", "leads"], "reason": "INC-1 seen on the bridge"},
                {"by": "paula", "groups": ["leads"], "reason": "ok for INC-1"},
            ),
        },
        approvedBy="paula",
        decisionReason="ok for INC-1",
        approvals=COUNTED,
        conditions=[
            cond(names.APPROVED, "True", names.APPROVED, "2026-11-23T12:05:00Z", "approved by carol and paula")
        ],
    )
    approved = by_action(audit.records_of_request(stored))["approved"]
    assert approved["approvals"] == [
        {
            "by": "carol",
            "time": "2026-11-23T12:01:00Z",
            "groups": ["leads", "sre"],
            "reason": "INC-1 seen on the bridge",
        },
        {"by": "paula", "time": "2026-11-23T12:05:00Z", "groups": ["leads"], "reason": "ok for INC-1"},
    ]


def test_a_malformed_approvals_annotation_leaves_who_and_when_and_never_breaks_the_record() -> None:
    for text in (
        "not json",
        '{"by": "carol"}',
        "[1, null, []]",
        '[{"by": 7, "groups": "leads"}]',
        '[{"by": "carol", "groups": "leads", "reason": 3}, {"by": "paula", "groups": [1, "leads"]}]',
    ):
        stored = request(
            annotations={names.ANNOTATION_APPROVALS: text},
            approvedBy="paula",
            approvals=COUNTED,
            conditions=[cond(names.APPROVED, "True", names.APPROVED)],
        )
        approved = by_action(audit.records_of_request(stored))["approved"]
        assert [(a["by"], a["time"]) for a in approved["approvals"]] == [(a["by"], a["time"]) for a in COUNTED], text
        assert "reason" not in approved["approvals"][0], text
    # Each entry on its own: carol's unreadable groups and reason take nothing from paula's.
    assert approved["approvals"][1] == {"by": "paula", "time": "2026-11-23T12:05:00Z", "groups": ["leads"]}
    # An approval counted that the list does not hold (nor anything the list holds that was not counted).
    partial = request(
        annotations=stamped_approvals({"by": "paula", "groups": ["leads"]}, {"by": "mallory", "reason": "me too"}),
        approvals=COUNTED,
        conditions=[cond(names.APPROVED, "True", names.APPROVED)],
    )
    assert by_action(audit.records_of_request(partial))["approved"]["approvals"] == [
        {"by": "carol", "time": "2026-11-23T12:01:00Z"},
        {"by": "paula", "time": "2026-11-23T12:05:00Z", "groups": ["leads"]},
    ]


def test_an_extension_of_several_approvals_is_extended_with_each_approver_and_why() -> None:
    entry = extension_entry(
        approvals=[
            {"by": "carol", "time": "2026-11-23T12:40:00+00:00", "groups": ["leads"], "reason": "the close runs long"},
            {"by": "paula", "time": "2026-11-23T12:50:00Z", "groups": ["leads", "sre"]},
        ]
    )
    single = {**entry, "name": "r1-ext-b", "approvals": None}
    stored = grant(
        activationTime="2026-11-23T12:06:00Z", expirationTime="2026-11-23T13:36:00Z", extensions=[entry, single]
    )
    first, second = (r for r in audit.records_of_grant(stored) if r["action"] == "extended")
    assert first["actor"] == {"username": "paula"}
    assert first["approvals"] == [
        {"by": "carol", "time": "2026-11-23T12:40:00Z", "groups": ["leads"], "reason": "the close runs long"},
        {"by": "paula", "time": "2026-11-23T12:50:00Z", "groups": ["leads", "sre"]},
    ]
    assert "approvals" not in second
    # What is not a list of approvals is left out, not raised.
    odd = grant(activationTime="2026-11-23T12:06:00Z", extensions=[{**entry, "approvals": "carol"}])
    (extended,) = (r for r in audit.records_of_grant(odd) if r["action"] == "extended")
    assert "approvals" not in extended

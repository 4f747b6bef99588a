"""The Runtime's thread-safe object indexes: what the membership ref-count, the deadlines, retention
and the gauges read."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import kopf

from jitaccess.api.names import GRANTS, REQUESTS
from jitaccess.handlers.indexes import Ended, Pending, ended, entitlements, holding, pending
from jitaccess.handlers.runtime import ObjectIndex
from jitaccess.handlers.schedules import looked_after


def grant(user: str, group: str, reason: str | None = None) -> dict[str, object]:
    status = {"conditions": [{"type": "Ready", "status": "True", "reason": reason}]} if reason else {}
    return {"metadata": {"name": "g"}, "spec": {"user": user, "groupName": group}, "status": status}


def test_an_object_moves_between_keys_and_leaves_no_empty_key() -> None:
    index = ObjectIndex()
    index.observe("g1", ("a", "v1"))
    index.observe("g2", ("a", "v2"))
    assert dict(index) == {"a": ("v1", "v2")}
    index.observe("g1", ("b", "v1"))
    assert dict(index) == {"a": ("v2",), "b": ("v1",)}
    index.observe("g2", None)
    assert dict(index) == {"b": ("v1",)}
    assert "a" not in index and len(index) == 1
    index.observe("g1", None)
    index.observe("never-seen", None)
    assert dict(index) == {}


def test_observing_again_replaces_the_value_not_adds_one() -> None:
    index = ObjectIndex()
    index.observe("g1", ("a", 1))
    index.observe("g1", ("a", 2))
    assert index["a"] == (2,)


def test_concurrent_writers_and_readers_agree() -> None:
    index = ObjectIndex()
    errors: list[BaseException] = []

    def write(offset: int) -> None:
        for i in range(2000):
            index.observe(f"o{offset}-{i % 50}", (i % 7, i) if i % 3 else None)

    def read() -> None:
        try:
            for _ in range(2000):
                for key in index:
                    index.get(key)
        except BaseException as exc:  # a "dict changed size during iteration" would land here
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(3)] + [threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    names = sum(len(values) for values in index.values())
    assert names == sum(1 for n in range(3) for i in range(1950, 2000) if i % 3)


def test_a_grant_holds_its_membership_until_it_is_finished() -> None:
    assert holding(grant("alice", "prod-payments")) == holding(grant("alice", "prod-payments", "Active"))
    assert holding(grant("alice", "prod-payments", "Active")) is not None
    assert holding(grant("alice", "prod-payments", "Pending")) is not None
    for finished in ("Expired", "Revoked", "Failed"):
        assert holding(grant("alice", "prod-payments", finished)) is None, finished
    assert holding(grant("alice", "prod-payments")) != holding(grant("bob", "prod-payments"))


def request_body(reason: str, *, grant: str | None = None, **conditions: str) -> dict[str, object]:
    status: dict[str, object] = {
        "conditions": [
            {"type": "Ready", "status": "False", "reason": reason, "lastTransitionTime": "2025-11-23T12:00:00Z"},
            *({"type": t, "status": s, "reason": t} for t, s in conditions.items()),
        ]
    }
    if grant:
        status["grant"] = grant
    return {"metadata": {"name": "r1", "creationTimestamp": "2025-11-23T11:00:00Z"}, "spec": {}, "status": status}


def test_pending_entries_carry_what_the_deadlines_need() -> None:
    entry = pending(request_body("Pending"))
    assert entry == Pending("r1", datetime(2025, 11, 23, 11, 0, tzinfo=UTC), False)
    assert pending(request_body("Pending", Escalated="True")).escalated  # type: ignore[union-attr]
    assert pending(request_body("Pending", Approved="True")) is None, "decided: no longer waiting"
    assert pending(request_body("Pending", Denied="True")) is None
    assert pending(request_body("Granted")) is None


def test_ended_objects_and_when() -> None:
    noon = datetime(2025, 11, 23, 12, 0, tzinfo=UTC)
    assert ended(REQUESTS, request_body("Denied")) == Ended(REQUESTS, "r1", "", noon)
    assert ended(REQUESTS, request_body("Expired", grant="g1")) is None, "goes with its grant"
    assert ended(REQUESTS, request_body("Pending")) is None
    expired = {**grant("alice", "prod-payments", "Expired"), "metadata": {"name": "g1"}}
    expired["spec"]["request"] = "r1"  # type: ignore[index]
    expired["status"]["expirationTime"] = "2025-11-23T13:00:00Z"  # type: ignore[index]
    expired["status"]["conditions"][0]["lastTransitionTime"] = "2025-11-23T13:00:01Z"  # type: ignore[index]
    assert ended(GRANTS, expired) == Ended(GRANTS, "g1", "r1", datetime(2025, 11, 23, 13, 0, tzinfo=UTC))
    assert ended(GRANTS, grant("alice", "prod-payments", "Active")) is None


def test_ended_objects_carry_their_uids_and_the_request_a_grant_was_made_for() -> None:
    """Retention deletes by uid: names are used again (attack 134)."""
    expired = {**grant("alice", "prod-payments", "Expired")}
    expired["metadata"] = {"name": "g1", "uid": "g-uid", "labels": {"jitaccess.dev/request": "r-uid"}}
    expired["spec"]["request"] = "g1"  # type: ignore[index]
    expired["status"]["expirationTime"] = "2025-11-23T13:00:00Z"  # type: ignore[index]
    expired["status"]["conditions"][0]["lastTransitionTime"] = "2025-11-23T13:00:01Z"  # type: ignore[index]
    found = ended(GRANTS, expired)
    assert found is not None and (found.uid, found.request_uid) == ("g-uid", "r-uid")
    denied = request_body("Denied")
    denied["metadata"]["uid"] = "r-uid"  # type: ignore[index]
    assert ended(REQUESTS, denied) == Ended(REQUESTS, "r1", "", datetime(2025, 11, 23, 12, 0, tzinfo=UTC), "r-uid")


def test_each_entitlement_timer_looks_after_its_own_and_the_first_after_orphans() -> None:
    index = ObjectIndex()
    index.observe("a", ("ent-a", "A"))
    index.observe("b", ("ent-b", "B"))
    index.observe("x", ("gone", "X"))
    entitlements = {"ent-a": [{}], "ent-b": [{}]}
    assert sorted(looked_after("ent-a", index, entitlements)) == [("ent-a", "A"), ("gone", "X")]
    assert sorted(looked_after("ent-b", index, entitlements)) == [("ent-b", "B")]
    assert list(looked_after("ent-a", index, {})) == [("ent-a", "A")], "no orphans while the index is empty"


async def test_the_entitlement_index_keeps_spec_and_resolution_not_the_status_lists() -> None:
    listed = [{"user": f"u{i}@example.com", "groups": ["prod-eligible"]} for i in range(1000)]
    status = {
        "groupId": "g-1",
        "conditions": [{"type": "Ready", "status": "True", "reason": "Resolved"}],
        "eligibleUsers": listed,
        "eligibleUserCount": 1000,
        "driftRemovals": [{"membershipId": "m-1"}],
        "kopf": {"progress": {}},
    }
    body = kopf.Body(
        {"metadata": {"name": "e", "generation": 3, "uid": "u-e"}, "spec": {"owner": "payments"}, "status": status}
    )
    indexed = (await entitlements(name="e", body=body))["e"]
    assert indexed == {
        "metadata": {"name": "e", "generation": 3, "uid": "u-e"},
        "spec": {"owner": "payments"},
        "status": {"groupId": "g-1", "conditions": status["conditions"]},
    }


def test_an_active_grant_is_filed_under_its_groups_id_only() -> None:
    """One group, two spellings (an Entitlement given the id where it had the name): an Active grant
    is filed by the group's id, which a lookup by any spelling includes, so it sees every grant of the
    group. Not by the name: a group deleted and created again under it is another group, in which a
    grant Active in the old one holds nothing (tests/e2e/test_attacks_recreated_groups.py)."""
    from jitaccess.handlers.indexes import holdings

    spec = {"user": "alice@example.com", "userId": "u-1", "groupName": "prod-eng-payments"}
    provisioning = {"metadata": {"name": "g"}, "spec": spec, "status": {}}
    assert holdings(provisioning) == (("u-1", "prod-eng-payments"),)
    active = {
        "metadata": {"name": "g"},
        "spec": spec,
        "status": {"groupId": "g-123", "conditions": [{"type": "Ready", "status": "True", "reason": "Active"}]},
    }
    assert holdings(active) == (("u-1", "g-123"),)
    assert holding(active) == ("u-1", "g-123")
    index = ObjectIndex()
    index.file("g", holdings(provisioning), "g")
    index.file("g", holdings(active), "g")  # filed anew: the name, which may stand for another group, is dropped
    assert index[("u-1", "g-123")] == ("g",) and ("u-1", "prod-eng-payments") not in index
    assert index.key_of("g") == ("u-1", "g-123")
    index.file("g", holdings(provisioning), "g")
    assert ("u-1", "g-123") not in index
    index.file("g", (), "g")
    assert len(index) == 0 and index.key_of("g") is None

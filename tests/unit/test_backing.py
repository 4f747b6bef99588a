"""A grant is provisioned only when its request, as stored now, leads to exactly that grant; an
active grant whose request is gone is orphaned (domain/backing.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jitaccess.api.models import AccessGrant, AccessRequest
from jitaccess.domain import backing
from jitaccess.domain.requests import Limits
from jitaccess.handlers.known_requests import KnownRequests
from tests.unit.factories import T0, condition, entitlement, request, team

LIMITS = Limits(min_duration=timedelta(minutes=1), pending_timeout=timedelta(hours=24))
NOW = T0 + timedelta(minutes=2)
UID = "uid-r1"
BY_PAULA = {"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": "paula@example.com"}
APPROVED = [
    condition("Approved", "True", "Approved", T0 + timedelta(minutes=1)),
    condition("Ready", "False", "Pending"),
]


def approved(**changes: Any) -> AccessRequest:
    """bob's request r1, approved by paula (stamped), waiting for its grant."""
    req = request(annotations=BY_PAULA, conditions=APPROVED, requesterUserId="id-bob", duration="2h")
    req.metadata.uid = UID
    for key, value in changes.items():
        setattr(req.status, key, value)
    return req


def grant(name: str = "r1", label: str | None = UID, **spec: Any) -> AccessGrant:
    base = {
        "user": "bob@example.com",
        "userId": "id-bob",
        "entitlement": "prod-eng-payments",
        "groupName": "prod-eng-payments",
        "request": "r1",
        "duration": "2h",
        "ownerTeam": "payments",
    }
    labels = {"jitaccess.dev/request": label} if label else {}
    return AccessGrant.model_validate({"metadata": {"name": name, "labels": labels}, "spec": {**base, **spec}})


def why(g: AccessGrant, req: AccessRequest | None) -> str | None:
    return backing.unbacked(g, req, entitlement(), team(), LIMITS, NOW)


def test_the_grant_the_operator_makes_of_an_approved_request_is_backed() -> None:
    assert why(grant(), approved()) is None
    assert why(grant(duration="120m"), approved()) is None, "the same duration, spelled otherwise"
    assert why(grant(), approved(grant="r1")) is None, "the request already names it"


def test_an_auto_approved_request_of_a_team_member_backs_its_grant() -> None:
    req = request(
        conditions=[condition("Approved", "True", "AutoApproved"), condition("Ready", "False", "Pending")],
        requester="alice@example.com",
        requesterUserId="id-alice",
    )
    req.metadata.uid = UID
    g = grant(user="alice@example.com", userId="id-alice", duration="1h")
    assert why(g, req) is None


def test_a_grant_with_no_request_is_not_backed() -> None:
    message = why(grant(), None)
    assert message is not None and "AccessRequest r1 does not exist" in message
    assert message.startswith("not provisioned: AccessGrant r1 is not backed by an approved AccessRequest")
    # Whether anybody was given access is for failing the grant to say: an earlier attempt may
    # have added it (`grants.failure_message`).
    assert "nobody was given access" not in message


@pytest.mark.parametrize("label", [None, "uid-of-an-earlier-r1"])
def test_a_grant_not_made_for_the_stored_request_is_not_backed(label: str | None) -> None:
    message = why(grant(label=label), approved())
    assert message is not None and "the grant was not made for that request" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user", "mallory@example.com"),
        ("userId", "id-mallory"),
        ("userId", None),
        ("groupName", "prod-admins"),
        ("entitlement", "prod-eng-ledger"),
    ],
)
def test_a_grant_for_other_than_what_the_request_yields_is_not_backed(field: str, value: Any) -> None:
    message = why(grant(**{field: value}), approved())
    assert message is not None and f"spec.{field} is {value!r}" in message


def test_a_longer_duration_is_not_backed() -> None:
    message = why(grant(duration="4h"), approved())
    assert message is not None and "spec.duration is '4h', but AccessRequest r1 asks for '2h'" in message


def test_a_second_grant_for_one_request_is_not_backed() -> None:
    message = why(grant(name="r1-again"), approved())
    assert message is not None and "leads to AccessGrant r1, not to this one" in message
    message = why(grant(), approved(grant="r1-other"))
    assert message is not None and "leads to AccessGrant r1-other, not to this one" in message


@pytest.mark.parametrize(
    "conditions",
    [
        [condition("Ready", "False", "Pending")],
        [condition("Denied", "True", "Denied"), condition("Ready", "False", "Denied")],
        [condition("Approved", "True", "Approved"), condition("Ready", "False", "Revoked")],
    ],
)
def test_a_request_not_approved_or_whose_access_ended_backs_nothing(conditions: list[dict[str, Any]]) -> None:
    req = approved()
    req.status.conditions = AccessRequest.model_validate(
        {"spec": req.spec.wire(), "status": {"conditions": conditions}}
    ).status.conditions
    message = why(grant(), req)
    assert message is not None and "is not approved, or its access has ended" in message


def test_status_approved_without_the_webhooks_stamp_backs_nothing() -> None:
    req = approved()
    req.metadata.annotations = {}
    message = why(grant(), req)
    assert message is not None and "no approval stamped by the admission webhook backs it" in message


def test_an_approver_who_is_no_longer_one_backs_nothing() -> None:
    message = backing.unbacked(grant(), approved(), entitlement(), team(approvers=["lena@example.com"]), LIMITS, NOW)
    assert message is not None and "is not an approver of the owner team" in message


def test_a_request_whose_entitlement_is_gone_backs_nothing() -> None:
    message = backing.unbacked(grant(), approved(), None, None, LIMITS, NOW)
    assert message is not None and "does not hold against its Entitlement" in message


def test_an_active_grant_is_orphaned_once_its_request_is_gone_or_re_created() -> None:
    assert backing.orphaned(UID, None)
    assert backing.orphaned(UID, "uid-of-a-new-r1")
    assert not backing.orphaned(UID, UID)
    assert not backing.orphaned("", "any"), "a grant from before the label: only a missing request counts"
    assert backing.orphaned("", None)


class FakeKube:
    def __init__(self, stored: dict[str, str]) -> None:
        self.stored = stored
        self.calls: list[str] = []

    def list(self, plural: str, label_selector: str = "", *, missing_ok: bool = False) -> list[dict[str, Any]]:
        self.calls.append(f"list {plural}")
        return [{"metadata": {"name": n, "uid": u}} for n, u in self.stored.items()]

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        self.calls.append(f"get {name}")
        uid = self.stored.get(name)
        return None if uid is None else {"metadata": {"name": name, "uid": uid}}


def test_known_requests_list_once_keep_what_the_watch_showed_and_confirm_with_a_get() -> None:
    kube = FakeKube({"r1": "uid-1", "r2": "uid-2", "gone": "uid-old"})
    known = KnownRequests()
    known.observe("r1", "uid-1")
    known.observe("gone", None)  # the watch saw it go after the listing was taken
    assert known.known("r1") == "uid-1" and known.known("r2") is None
    known.list_once(kube)  # type: ignore[arg-type]
    known.list_once(kube)  # type: ignore[arg-type]
    assert kube.calls == ["list accessrequests"]
    assert known.known("r2") == "uid-2"
    assert known.known("gone") == "uid-old", "a listing older than the watch is only a hint"
    del kube.stored["gone"]
    assert known.stored_uid("gone", kube) is None  # type: ignore[arg-type]
    assert known.stored_uid("r2", kube) == "uid-2"  # type: ignore[arg-type]
    known.observe("r2", None)
    assert known.known("r2") is None


def test_a_request_being_deleted_backs_no_grant_and_counts_as_gone() -> None:
    # Held by the records finalizer until its audit records are archived: stored, but withdrawn.
    req = approved()
    req.metadata.deletion_timestamp = NOW
    message = why(grant(), req)
    assert message is not None and "AccessRequest r1 is being deleted" in message

    class Deleting(FakeKube):
        def list(self, plural: str, **_: Any) -> list[dict[str, Any]]:
            return [
                {**o, "metadata": {**o["metadata"], "deletionTimestamp": "2026-11-23T12:00:00Z"}}
                for o in super().list(plural)
            ]

        def get(self, plural: str, name: str) -> dict[str, Any] | None:
            found = super().get(plural, name)
            return (
                None
                if found is None
                else {"metadata": {**found["metadata"], "deletionTimestamp": "2026-11-23T12:00:00Z"}}
            )

    kube = Deleting({"r1": "uid-1"})
    known = KnownRequests()
    known.list_once(kube)  # type: ignore[arg-type]
    assert known.known("r1") is None
    assert known.stored_uid("r1", kube) is None  # type: ignore[arg-type]

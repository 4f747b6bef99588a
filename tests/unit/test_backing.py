"""A grant is provisioned only when its request, as stored now, leads to exactly that grant; an
active grant whose request is gone is orphaned (domain/backing.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jitaccess.api.models import AccessGrant, AccessRequest
from jitaccess.domain import backing
from jitaccess.domain.requests import Basis, Limits, NoGrant
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


# --- a request approved for a later start (attack 144) ----------------------------------------------

START = T0 + timedelta(hours=20, milliseconds=500)
SCHEDULED = [
    condition("Approved", "True", "Approved", T0 + timedelta(minutes=1)),
    condition("Ready", "False", "Scheduled"),
]


def scheduled(**changes: Any) -> AccessRequest:
    """bob's request r1 for a window from START (half a second past a whole one), approved by paula
    and waiting `Scheduled`: the grant the operator creates at the start has its name."""
    req = request(
        annotations=BY_PAULA, conditions=SCHEDULED, requesterUserId="id-bob", duration="2h", startTime=START.isoformat()
    )
    req.metadata.uid = UID
    for key, value in changes.items():
        setattr(req.status, key, value)
    return req


class Begins:
    """What the start asks of the request (`handlers.activation.refusal_given`), and whom it asked."""

    def __init__(self, refusal: NoGrant | None = None) -> None:
        self.refusal = refusal
        self.asked: list[Basis] = []

    def __call__(self, req: AccessRequest, valid: Any, basis: Basis) -> NoGrant | None:
        self.asked.append(basis)
        return self.refusal


def test_a_grant_of_a_scheduled_request_is_not_backed_before_its_start() -> None:
    """A grant named after the request, labelled with its uid and as the request yields: made by
    hand days before the start, it must not begin the access then."""
    for now in (NOW, START - timedelta(milliseconds=100)):
        begins = Begins()
        message = backing.unbacked(grant(), scheduled(), entitlement(), team(), LIMITS, now, begins=begins)
        assert message is not None, now
        assert (
            "(AccessRequest r1 is approved for a later start: its access begins at 2026-11-24T08:00:00Z "
            "(spec.startTime), when the operator creates its grant, not before)"
        ) in message
        assert begins.asked == [], "nothing more is asked before the start"


def test_the_grant_the_start_creates_is_backed_within_the_starts_own_second() -> None:
    """The start has come by the exact clock, which the request handler's check uses too: a clock
    cut to whole seconds would still say 08:00:00 and refuse the grant the start has just created."""
    for now in (START, START + timedelta(milliseconds=100), START + timedelta(hours=1)):
        begins = Begins()
        assert backing.unbacked(grant(), scheduled(), entitlement(), team(), LIMITS, now, begins=begins) is None
        assert begins.asked == [Basis(auto=False, who="paula@example.com")]


def test_what_the_start_refuses_refuses_the_grant() -> None:
    """After the start, the grant is asked what the start asks (eligibility afresh, the approver
    still there, no cancel): a grant made by hand cannot skip it."""
    lapsed = NoGrant("NotEligible", "not granted: when access was to begin, bob@example.com is not in ...")
    message = backing.unbacked(grant(), scheduled(), entitlement(), team(), LIMITS, START, begins=Begins(lapsed))
    assert message is not None and f"(AccessRequest r1: {lapsed.message})" in message
    # A request without a start was checked so the moment it was approved: nothing more is asked.
    begins = Begins(lapsed)
    assert backing.unbacked(grant(), approved(), entitlement(), team(), LIMITS, NOW, begins=begins) is None
    assert begins.asked == []


@pytest.mark.parametrize("req", [approved, scheduled])
def test_a_grant_of_a_request_whose_entitlement_changed_since_the_approval_is_not_backed(req: Any) -> None:
    was = req(approved_for="prod-eng-payments-readonly")
    message = backing.unbacked(grant(), was, entitlement(), team(), LIMITS, START)
    assert message is not None
    assert "Entitlement prod-eng-payments changed since the request was approved: it was approved for " in message
    assert (
        backing.unbacked(grant(), req(approved_for="prod-eng-payments"), entitlement(), team(), LIMITS, START) is None
    )

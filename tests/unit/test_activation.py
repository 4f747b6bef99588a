"""What a grant may rest on, checked at the moment access would begin (issue 18, items 5, 7, 8).

- the deadline is a fact of the request (creation + pending timeout): no decision at or after it
  counts, however late the deadline timer runs;
- the approval is re-derived from what admission stamped and the live TeamOwnership, never taken
  from `status` (which the operator's identity can write); a backup approver's counts once the
  request has escalated, by the rule admission applies (`requests.Escalation`);
- eligibility is asked again, afresh, when a human approval is to be turned into access.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

import kopf
import pytest

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.api.models import AccessGrant, AccessRequest
from jitaccess.domain import requests as rules
from jitaccess.domain.requests import Basis, Limits, NoGrant, Outcome
from jitaccess.errors import NotFound, PermanentFailure, RetryLater
from jitaccess.handlers import backing as backing_handlers
from jitaccess.handlers import grants
from jitaccess.handlers.activation import activation_refusal
from jitaccess.handlers.eligibility import eligibility_problem
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.factories import T0, condition, entitlement, request, team

LIMITS = Limits(min_duration=timedelta(minutes=1), pending_timeout=timedelta(hours=24))
DEADLINE = T0 + LIMITS.pending_timeout
PENDING = [condition("Ready", "False", "Pending")]
BY_PAULA = {"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": "paula@example.com"}


def approved_at(at: Any, reason: str = "Approved") -> list[dict[str, Any]]:
    return [condition("Approved", "True", reason, at), condition("Ready", "False", "Pending", at)]


def basis(req: AccessRequest, now: Any = None, **team_spec: Any) -> Basis | NoGrant:
    checked = rules.validate(req, entitlement(), team(**team_spec), LIMITS)
    return rules.grant_basis(req, checked, LIMITS, now or T0 + timedelta(minutes=1))


# --- 5. the deadline -----------------------------------------------------------------------------


def test_the_deadline_is_creation_plus_the_timeout_and_escalation_does_not_move_it() -> None:
    assert rules.decision_deadline(T0, LIMITS) == DEADLINE
    assert rules.decision_deadline(None, LIMITS) is None


@pytest.mark.parametrize("late", [timedelta(0), timedelta(milliseconds=300), timedelta(minutes=5)])
def test_an_approval_found_at_or_after_the_deadline_times_the_request_out(late: timedelta) -> None:
    """The timer may not have noticed the deadline yet: the approval must still not count."""
    for conditions in (PENDING, [*PENDING, condition("Escalated", "True", "PendingTooLong")]):
        req = request(annotations=BY_PAULA, conditions=conditions)
        checked = rules.validate(req, entitlement(), team(), LIMITS)
        decision = rules.decide_pending(req, checked, LIMITS, DEADLINE + late)
        assert decision is not None and decision.outcome is Outcome.TIME_OUT


def test_an_approval_a_second_before_the_deadline_counts() -> None:
    req = request(annotations=BY_PAULA, conditions=PENDING)
    checked = rules.validate(req, entitlement(), team(), LIMITS)
    decision = rules.decide_pending(req, checked, LIMITS, DEADLINE - timedelta(seconds=1))
    assert decision is not None and decision.outcome is Outcome.APPROVE


DENIED_BY_PAULA = {
    "jitaccess.dev/denied": "true",
    "jitaccess.dev/denied-by": "paula@example.com",
    "jitaccess.dev/decision-reason": "INC-9 not during the freeze",
}


@pytest.mark.parametrize("late", [timedelta(0), timedelta(milliseconds=300), timedelta(minutes=5)])
def test_a_denial_admitted_before_the_deadline_and_handled_after_it_is_honoured(late: timedelta) -> None:
    """Admission took paula's denial a second before the deadline; the operator handled it at or
    after it (a hand-over, a slow handler): the request is Denied by paula, with her reason, not
    TimedOut "nobody decided" beside her stamp. A denial grants nothing: nothing to refuse."""
    for stamps in (DENIED_BY_PAULA, {**BY_PAULA, **DENIED_BY_PAULA}):
        req = request(annotations=stamps, conditions=PENDING)
        checked = rules.validate(req, entitlement(), team(), LIMITS)
        decision = rules.decide_pending(req, checked, LIMITS, DEADLINE + late)
        assert decision == rules.PendingDecision(
            Outcome.DENY, who="paula@example.com", why="INC-9 not during the freeze"
        )


def test_a_late_denial_counts_only_from_someone_who_may_deny() -> None:
    """As before the deadline: an approver of the team, or an incident responder."""
    stamps = {**DENIED_BY_PAULA, "jitaccess.dev/denied-by": "ivan@example.com"}
    req = request(annotations=stamps, conditions=PENDING)
    checked = rules.validate(req, entitlement(), team(), LIMITS)
    decision = rules.decide_pending(req, checked, LIMITS, DEADLINE)
    assert decision == rules.PendingDecision(Outcome.TIME_OUT, why="nobody decided within 24h")
    responder = request(annotations={**stamps, "jitaccess.dev/denied-by-groups": "sre-oncall"}, conditions=PENDING)
    decision = rules.decide_pending(responder, checked, LIMITS, DEADLINE, responder_groups=frozenset({"sre-oncall"}))
    assert decision is not None and (decision.outcome, decision.who) == (Outcome.DENY, "ivan@example.com")


def test_an_approval_handled_after_the_deadline_times_out_saying_whose_and_when() -> None:
    """Admission took paula's approval a second before the deadline; the operator handled it five
    minutes after: still not granted (fail closed), and the message says so, not "nobody decided"."""
    req = request(annotations=BY_PAULA, conditions=PENDING)
    checked = rules.validate(req, entitlement(), team(), LIMITS)
    decision = rules.decide_pending(req, checked, LIMITS, DEADLINE + timedelta(minutes=5))
    assert decision == rules.PendingDecision(
        Outcome.TIME_OUT,
        who="paula@example.com",
        why="the approval by paula@example.com reached the operator at 2026-11-24T12:05:00Z, not before the "
        "request's deadline 2026-11-24T12:00:00Z (24h after it was created): an approval counts only before it, "
        "so nothing was granted; ask the requester to create a new request",
    )


def test_an_approval_recorded_after_the_deadline_is_not_granted() -> None:
    late = request(annotations=BY_PAULA, conditions=approved_at(DEADLINE))
    outcome = basis(late, now=DEADLINE + timedelta(seconds=1))
    assert isinstance(outcome, NoGrant) and outcome.reason == "TimedOut"
    assert "not before the request's deadline 2026-11-24T12:00:00+00:00" in outcome.message


def test_an_approval_recorded_in_time_is_granted_after_a_crash_past_the_deadline() -> None:
    """The operator recorded the approval in time, then was down past the deadline: the grant comes."""
    in_time = request(annotations=BY_PAULA, conditions=approved_at(DEADLINE - timedelta(seconds=1)))
    assert basis(in_time, now=DEADLINE + timedelta(hours=1)) == Basis(auto=False, who="paula@example.com")


# --- 8. the approval is re-derived, never read from status ----------------------------------------


def test_status_approved_without_a_stamp_grants_nothing() -> None:
    outcome = basis(request(conditions=approved_at(T0)))
    assert isinstance(outcome, NoGrant) and outcome.reason == "Failed"
    assert "status says Approved, but no approval stamped by the admission webhook backs it" in outcome.message


def test_a_flag_without_the_stamp_grants_nothing() -> None:
    outcome = basis(request(annotations={"jitaccess.dev/approved": "true"}, conditions=approved_at(T0)))
    assert isinstance(outcome, NoGrant) and outcome.reason == "Failed"


def test_a_stamped_approval_by_an_approver_is_the_basis() -> None:
    assert basis(request(annotations=BY_PAULA, conditions=approved_at(T0))) == Basis(
        auto=False, who="paula@example.com"
    )


def test_an_approver_by_group_is_read_from_the_stamped_groups() -> None:
    stamps = {
        "jitaccess.dev/approved": "true",
        "jitaccess.dev/approved-by": "tl@example.com",
        "jitaccess.dev/approved-by-groups": "system:authenticated,payments-leads",
    }
    req = request(annotations=stamps, conditions=approved_at(T0))
    assert basis(req, approverGroups=["payments-leads"]) == Basis(auto=False, who="tl@example.com")
    assert isinstance(basis(req), NoGrant)  # the live team no longer names that group


@pytest.mark.parametrize(
    ("who", "text"),
    [
        ("bob@example.com", "requested this access and cannot decide on it"),
        ("mallory@example.com", "is not an approver of the owner team"),
    ],
)
def test_a_stamp_of_someone_who_may_not_approve_grants_nothing(who: str, text: str) -> None:
    stamps = {"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": who}
    outcome = basis(request(annotations=stamps, conditions=approved_at(T0)))
    assert isinstance(outcome, NoGrant) and outcome.reason == "Failed" and text in outcome.message


BY_CAROL = {"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": "carol@example.com"}


def test_a_backup_approver_counts_only_once_the_request_has_escalated() -> None:
    """Taken before the escalation was recorded and before escalateAfter had passed, a backup
    approver's approval does not count; taken at the escalation, it does."""
    escalated = [condition("Escalated", "True", "PendingTooLong", T0 + timedelta(minutes=15))]
    early = request(annotations=BY_CAROL, conditions=[*escalated, *approved_at(T0 + timedelta(minutes=14))])
    outcome = basis(early, now=T0 + timedelta(minutes=16))
    assert isinstance(outcome, NoGrant) and "only after the request has escalated" in outcome.message
    later = request(annotations=BY_CAROL, conditions=[*escalated, *approved_at(T0 + timedelta(minutes=15))])
    assert basis(later, now=T0 + timedelta(minutes=16)) == Basis(auto=False, who="carol@example.com")
    # Unrecorded (the operator's timer a moment behind), the team's escalateAfter has passed all the same.
    unrecorded = request(annotations=BY_CAROL, conditions=approved_at(T0 + timedelta(minutes=15)))
    assert basis(unrecorded, now=T0 + timedelta(minutes=16)) == Basis(auto=False, who="carol@example.com")
    assert isinstance(basis(unrecorded, now=T0 + timedelta(minutes=16), escalateAfter="1h"), NoGrant)


@pytest.mark.parametrize("escalate_after", ["2h", None])
def test_an_escalation_recorded_stands_when_the_team_lengthens_or_drops_escalate_after(
    escalate_after: str | None,
) -> None:
    """The request escalated at 15m and its backup approvers were told; then a pull request sets the
    team's escalateAfter to 2h (or removes it). Carol's approval at 20m, which admission lets
    through, is granted: it used to fail the request, "carol is a backup approver: they may decide
    only after the request has escalated", its status saying Escalated."""
    escalated = [condition("Escalated", "True", "PendingTooLong", T0 + timedelta(minutes=15))]
    approved = request(annotations=BY_CAROL, conditions=[*escalated, *approved_at(T0 + timedelta(minutes=20))])
    outcome = basis(approved, now=T0 + timedelta(minutes=20), escalateAfter=escalate_after)
    assert outcome == Basis(auto=False, who="carol@example.com")


def test_status_naming_another_approver_than_the_stamp_grants_nothing() -> None:
    req = request(annotations=BY_PAULA, conditions=approved_at(T0))
    forged = req.model_copy(update={"status": req.status.model_copy(update={"approved_by": "mallory@example.com"})})
    outcome = basis(forged)
    assert isinstance(outcome, NoGrant) and "status.approvedBy says mallory@example.com" in outcome.message


def test_a_denial_stamp_wins() -> None:
    stamps = {**BY_PAULA, "jitaccess.dev/denied": "true", "jitaccess.dev/denied-by": "paula@example.com"}
    outcome = basis(request(annotations=stamps, conditions=approved_at(T0)))
    assert isinstance(outcome, NoGrant) and outcome.reason == "Denied"


def test_an_owner_team_member_is_auto_approved_from_the_stamped_requester() -> None:
    member = request(requester="alice@example.com", conditions=approved_at(T0, "AutoApproved"))
    assert basis(member) == Basis(auto=True, who="alice@example.com")
    by_group = request(requester="zed@example.com", requesterGroups=["team-payments"], conditions=approved_at(T0))
    assert basis(by_group, memberGroups=["team-payments"]) == Basis(auto=True, who="zed@example.com")
    outsider = request(requester="bob@example.com", conditions=approved_at(T0, "AutoApproved"))
    assert isinstance(basis(outsider), NoGrant)


def test_auto_approval_switched_off_is_no_basis() -> None:
    member = request(requester="alice@example.com", conditions=approved_at(T0, "AutoApproved"))
    checked = rules.validate(member, entitlement(approval={"autoApproveOwnerTeam": False}), team(), LIMITS)
    assert isinstance(rules.grant_basis(member, checked, LIMITS, T0), NoGrant)


# --- 7. eligibility, asked again when access is to begin -------------------------------------------


class FakeIdentityCenter:
    """Identity Center as far as eligibility asks it: who is in which group, and how often it was asked."""

    identity_store_id = "d-0000000000"

    def __init__(self, members: dict[str, set[str]]) -> None:
        self.members = members
        self.asked = 0
        self.disabled: set[str] = set()

    def resolve_user(self, name: str) -> str:
        return f"u-{name}"

    def resolve_group(self, name: str) -> str:
        return f"g-{name}"

    def missing_groups(self, user_id: str, group_ids: Sequence[str]) -> list[str]:
        self.asked += 1
        return [g for g in group_ids if user_id.removeprefix("u-") not in self.members[g.removeprefix("g-")]]

    def user_enabled(self, user_id: str) -> bool:
        return user_id.removeprefix("u-") not in self.disabled


@pytest.fixture
def ic() -> FakeIdentityCenter:
    return FakeIdentityCenter({"prod-eligible": {"bob@example.com", "alice@example.com"}})


@pytest.fixture
def rt(ic: FakeIdentityCenter) -> Runtime:
    return Runtime(Settings(pending_timeout_seconds=24 * 3600), cast(IdentityCenter, ic), cast(Kube, None))


ELIGIBLE = entitlement(eligibility={"identityCenterGroups": ["prod-eligible"]})


def test_a_human_approval_asks_identity_center_afresh(rt: Runtime, ic: FakeIdentityCenter) -> None:
    req = request(annotations=BY_PAULA, conditions=approved_at(T0))
    checked = rules.validate(req, ELIGIBLE, team(), LIMITS)
    assert eligibility_problem(rt, checked) is None  # at creation: eligible, and remembered for 5 s
    ic.members["prod-eligible"].discard("bob@example.com")
    assert eligibility_problem(rt, checked) is None  # the creation-time cache alone would still say yes
    refusal = activation_refusal(rt, req, checked)
    assert refusal is not None and refusal.reason == "NotEligible"
    assert "bob@example.com is not in the Identity Center group(s) prod-eligible" in refusal.message
    assert ic.asked == 2


def test_an_auto_approval_takes_the_answer_of_its_own_creation(rt: Runtime, ic: FakeIdentityCenter) -> None:
    req = request(requester="alice@example.com", conditions=approved_at(T0, "AutoApproved"))
    checked = rules.validate(req, ELIGIBLE, team(), LIMITS)
    assert eligibility_problem(rt, checked) is None
    assert activation_refusal(rt, req, checked) is None
    assert ic.asked == 1


def test_an_auto_approval_of_a_disabled_account_is_refused(rt: Runtime, ic: FakeIdentityCenter) -> None:
    """Attack 128: the answer an auto-approval takes (admission's, or the handler's own when the
    webhooks were gone) says whether the account is disabled, not only whether it is in the groups."""
    ic.disabled.add("alice@example.com")
    req = request(requester="alice@example.com", conditions=approved_at(T0, "AutoApproved"))
    checked = rules.validate(req, ELIGIBLE, team(), LIMITS)
    assert (
        eligibility_problem(rt, checked)
        == "alice@example.com's Identity Center account (UserId u-alice@example.com) is disabled"
    )
    refusal = activation_refusal(rt, req, checked)
    assert refusal is not None and refusal.reason == "NotEligible" and "is disabled" in refusal.message


def test_a_forged_status_is_refused_before_identity_center_is_asked(rt: Runtime, ic: FakeIdentityCenter) -> None:
    req = request(conditions=approved_at(T0))
    refusal = activation_refusal(rt, req, rules.validate(req, ELIGIBLE, team(), LIMITS))
    assert refusal is not None and refusal.reason == "Failed" and ic.asked == 0


# --- a request approved for a later start, revoked before it (attack 124) ----------------------------

CANCEL = {"jitaccess.dev/revoked": "true", "jitaccess.dev/revoke-reason": "INC-124 freeze"}


def test_a_cancel_stamp_grants_nothing_and_names_its_revoker() -> None:
    stamped = {**BY_PAULA, **CANCEL, "jitaccess.dev/revoked-by": "lena@example.com"}
    outcome = basis(request(annotations=stamped, conditions=approved_at(T0)))
    assert outcome == NoGrant(
        "Revoked",
        "revoked by lena@example.com before its start: INC-124 freeze; nothing was granted",
        "lena@example.com",
    )
    # The flag without the webhook's stamp cancels nothing (admission never lets one through).
    assert basis(request(annotations={**BY_PAULA, **CANCEL}, conditions=approved_at(T0))) == Basis(
        auto=False, who="paula@example.com"
    )


class ReadAgain:
    """The API server as the last read before a grant is created sees it: the request, as stored now."""

    def __init__(self, stored: AccessRequest) -> None:
        self.stored = stored

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        return self.stored.wire() if name == self.stored.metadata.name else None


def test_a_cancel_that_comes_while_the_start_is_checked_is_honoured(ic: FakeIdentityCenter) -> None:
    """The start read the request, found it approved and asked Identity Center; meanwhile lena revoked
    it: read again right before the grant, it is not granted, and the end names her."""
    start = {"startTime": (T0 + timedelta(hours=1)).isoformat()}
    read = request(annotations=BY_PAULA, conditions=approved_at(T0), **start)
    read.metadata.uid = "u-1"
    now = read.model_copy(deep=True)
    now.metadata.annotations.update({**CANCEL, "jitaccess.dev/revoked-by": "lena@example.com"})
    rt = Runtime(Settings(pending_timeout_seconds=24 * 3600), cast(IdentityCenter, ic), cast(Kube, ReadAgain(now)))
    refusal = activation_refusal(rt, read, rules.validate(read, ELIGIBLE, team(), LIMITS))
    assert refusal is not None and refusal.reason == "Revoked" and refusal.who == "lena@example.com"
    assert ic.asked == 1, "asked first: the cancel came meanwhile"
    # Not cancelled, or another request since under its name: granted as read.
    for stored in (read, request(annotations={**CANCEL, "jitaccess.dev/revoked-by": "x@example.com"}, **start)):
        rt = Runtime(
            Settings(pending_timeout_seconds=24 * 3600), cast(IdentityCenter, ic), cast(Kube, ReadAgain(stored))
        )
        assert activation_refusal(rt, read, rules.validate(read, ELIGIBLE, team(), LIMITS)) is None


class GrantStore:
    """The API server as the request handler meets a grant made a moment before a cancel: the grant,
    and the annotations the operator writes on it."""

    def __init__(self, grant: dict[str, Any]) -> None:
        self.grant = grant
        self.written: list[dict[str, str]] = []

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        return self.grant if plural == "accessgrants" and name == self.grant["metadata"]["name"] else None

    def annotate(self, plural: str, name: str, uid: str, change: Any) -> dict[str, Any] | None:
        assert uid == self.grant["metadata"]["uid"]
        notes = change(self.grant)
        if notes is not None:
            self.written.append(notes)
            self.grant["metadata"].setdefault("annotations", {}).update(notes)
        return self.grant


def test_a_cancel_admitted_as_the_start_made_its_grant_revokes_that_grant() -> None:
    """Admission takes a cancel while the request reads `Scheduled`: one that lands after the start
    created the grant, which its handler then provisioned, must not leave that access running. The
    request's handler revokes the grant in the canceller's name, once; a finished grant is left."""
    from jitaccess.handlers.requests import ensure_grant

    stamped = {**BY_PAULA, **CANCEL, "jitaccess.dev/revoked-by": "lena@example.com"}
    req = request(annotations=stamped, conditions=approved_at(T0), startTime=(T0 + timedelta(hours=1)).isoformat())
    req.metadata.uid = "u-1"
    req.status.grant = "r1"
    active = [condition("Ready", "True", "Active")]
    made = {
        "metadata": {"name": "r1", "uid": "g-1", "labels": {"jitaccess.dev/request": "u-1"}},
        "status": {"conditions": active},
    }
    kube = GrantStore(made)
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, kube))
    rt.cached("operator", "username", lambda _: "system:serviceaccount:jitaccess:jitaccess")
    ensure_grant(rt, req, {}, {})
    assert kube.written == [
        {
            "jitaccess.dev/revoked": "true",
            "jitaccess.dev/revoke-reason": "its AccessRequest was revoked by lena@example.com before its start: "
            "INC-124 freeze",
            "jitaccess.dev/revoked-by": "system:serviceaccount:jitaccess:jitaccess",
        }
    ]
    ensure_grant(rt, req, {}, {})
    assert len(kube.written) == 1, "revoked already: once"
    # Not cancelled: the grant runs on.
    kube = GrantStore({**made, "metadata": {**made["metadata"], "annotations": {}}})
    plain = req.model_copy(deep=True)
    plain.metadata.annotations = dict(BY_PAULA)
    ensure_grant(Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, kube)), plain, {}, {})
    assert kube.written == []


# --- a grant made by hand for a request approved for a later start (attack 144) ----------------------


def test_a_grant_of_a_scheduled_request_is_held_to_what_its_start_asks(
    ic: FakeIdentityCenter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grant handler's check (`handlers.backing`) of a grant named after bob's `Scheduled`
    request, labelled with its uid, for what it yields: not before the start (Identity Center not
    even asked), and after it only as the start would grant it: eligibility asked afresh."""
    start = T0 + timedelta(hours=20, milliseconds=500)
    req = request(
        annotations=BY_PAULA,
        conditions=[condition("Approved", "True", "Approved", T0), condition("Ready", "False", "Scheduled", T0)],
        startTime=start.isoformat(),
    )
    spec = {"user": "bob@example.com", "entitlement": "prod-eng-payments", "groupName": "prod-eng-payments"}
    made = AccessGrant.model_validate(
        {
            "metadata": {"name": "r1", "labels": {"jitaccess.dev/request": "uid-r1"}},
            "spec": {**spec, "request": "r1", "duration": "1h"},
        }
    )
    rt = Runtime(Settings(pending_timeout_seconds=24 * 3600), cast(IdentityCenter, ic), cast(Kube, ReadAgain(req)))

    def at(now: Any) -> str | None:
        monkeypatch.setattr(backing_handlers, "utcnow", lambda: now)
        return backing_handlers.unbacked_by(rt, made, req, ELIGIBLE, team())

    early = at(T0 + timedelta(hours=1))
    assert early is not None and "is approved for a later start: its access begins at 2026-11-24T08:00:00Z" in early
    assert at(start - timedelta(milliseconds=1)) is not None
    assert ic.asked == 0
    assert at(start) is None, "the start has come, within its second"
    assert ic.asked == 1, "asked afresh"
    ic.members["prod-eligible"].discard("bob@example.com")
    lapsed = at(start + timedelta(seconds=2))
    assert lapsed is not None and "not granted: when access was to begin, bob@example.com is not in" in lapsed
    assert lapsed.startswith("not provisioned: AccessGrant r1 is not backed by an approved AccessRequest")


def test_an_eligibility_group_that_does_not_exist_fails_the_grant_of_a_scheduled_request(
    ic: FakeIdentityCenter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ends the request `Invalid` at its start (the Entitlement names a group Identity Center
    does not have) fails a grant made by hand after the start, rather than its handler's every retry."""
    start = T0 + timedelta(hours=20)
    req = request(annotations=BY_PAULA, conditions=approved_at(T0), startTime=start.isoformat())
    made = AccessGrant.model_validate(
        {
            "metadata": {"name": "r1", "labels": {"jitaccess.dev/request": "uid-r1"}},
            "spec": {"user": "bob@example.com", "entitlement": "prod-eng-payments", "groupName": "prod-eng-payments",
                     "request": "r1", "duration": "1h"},
        }
    )  # fmt: skip

    def resolve_group(name: str) -> str:
        raise NotFound(f"no group {name}", operation="GetGroupId")

    monkeypatch.setattr(ic, "resolve_group", resolve_group)
    monkeypatch.setattr(backing_handlers, "utcnow", lambda: start)
    rt = Runtime(Settings(pending_timeout_seconds=24 * 3600), cast(IdentityCenter, ic), cast(Kube, ReadAgain(req)))
    gone = entitlement(eligibility={"identityCenterGroups": ["prod-gone"]})
    message = backing_handlers.unbacked_by(rt, made, req, gone, team())
    assert message is not None and "names 'prod-gone', which is not a group in Identity Center" in message


def test_identity_center_not_answering_the_grant_handlers_check_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check asks Identity Center (on call, approvers gone, a start's eligibility): silent, the
    grant's handler retries as for its add, with kopf's delay and its words."""

    def silent(*_: Any) -> str | None:
        raise RetryLater("ThrottlingException: Rate exceeded")

    monkeypatch.setattr(grants, "stored_request", lambda *_: None)
    monkeypatch.setattr(grants, "unbacked", silent)
    body = {"metadata": {"name": "r1", "uid": "g-1"}, "spec": {"user": "bob@example.com", "entitlement": "e",
            "groupName": "prod-eng-payments", "request": "r1", "duration": "1h"}}  # fmt: skip
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    with pytest.raises(kopf.TemporaryError, match="Identity Center is not answering"):
        grants._provision(rt, kopf.Body(body), {}, {}, {})


@pytest.mark.parametrize(
    ("operation", "said"),
    [
        ("IsMemberInGroups", "Identity Center refused IsMemberInGroups (IsMemberInGroups: AccessDeniedException"),
        ("GetUserId", "Identity Center refused GetUserId (GetUserId: AccessDeniedException"),
        ("DeleteGroupMembership", "Identity Center refused to take back what an earlier attempt of this grant may"),
        ("DeleteAccountAssignment", "Identity Center refused to take back what an earlier attempt of this grant may"),
    ],
)
def test_a_refusal_the_grant_handler_waits_out_is_named_by_the_call_refused(
    monkeypatch: pytest.MonkeyPatch, operation: str, said: str
) -> None:
    """A lookup of the checks refused (IAM) added nothing: it is not said to be a take-back."""

    def refused(*_: Any) -> str | None:
        raise PermanentFailure(f"{operation}: AccessDeniedException: denied", operation=operation, code="AccessDenied")

    monkeypatch.setattr(grants, "stored_request", lambda *_: None)
    monkeypatch.setattr(grants, "unbacked", refused)
    body = {"metadata": {"name": "r1", "uid": "g-1"}, "spec": {"user": "bob@example.com", "entitlement": "e",
            "groupName": "prod-eng-payments", "request": "r1", "duration": "1h"}}  # fmt: skip
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    with pytest.raises(kopf.TemporaryError) as exc:
        grants._provision(rt, kopf.Body(body), {}, {}, {})
    assert str(exc.value).startswith(said), str(exc.value)
    assert "check the operator's IAM policy (docs/aws-iam.md); will retry" in str(exc.value)
    assert exc.value.delay == 60

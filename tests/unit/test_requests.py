"""The request rules: validation, routing, pending decisions, escalation and time-out."""

import re
from datetime import timedelta

import pytest

from jitaccess.api.models import Entitlement
from jitaccess.domain import requests as request_rules
from jitaccess.domain.requests import Limits, Outcome, Route
from jitaccess.errors import InvalidInput
from tests.unit.factories import T0, condition, entitlement, request, team

LIMITS = Limits(min_duration=timedelta(minutes=1), pending_timeout=timedelta(hours=24))


def valid(**spec: object) -> request_rules.ValidRequest:
    return request_rules.validate(request(**spec), entitlement(), team(), LIMITS)


def test_default_duration_comes_from_the_entitlement() -> None:
    assert valid().duration == timedelta(hours=1)
    assert valid(duration="30m").duration_text == "30m"


def _recorded(recorded_for: str, **spec: object) -> request_rules.ValidRequest:
    """A request recorded (`status.duration`) for `recorded_for`, checked against an Entitlement whose
    defaultDuration is now 3h."""
    recorded = request(**spec).model_copy(deep=True)
    recorded.status.duration = recorded_for
    return request_rules.validate(recorded, entitlement(defaultDuration="3h"), team(), LIMITS)


def test_a_default_raised_since_the_request_was_recorded_does_not_lengthen_it() -> None:
    # Recorded (and shown to its approvers) for the 1h default of then: 1h, not the 3h of now (attack 125).
    assert _recorded("1h").duration == timedelta(hours=1)
    # Never lengthened by what status says; a lowered default shortens it.
    assert _recorded("4h").duration == timedelta(hours=3)
    # Unreadable: the default of now, as before anything was recorded.
    assert _recorded("banana").duration == timedelta(hours=3)
    # A duration the request names is its own.
    assert _recorded("1h", duration="2h").duration == timedelta(hours=2)


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        ({"duration": "999h"}, "spec.duration", "above the entitlement's maxDuration 4h: ask for 4h or less"),
        ({"duration": "30s"}, "spec.duration", "below the operator's minimum 1m"),
        ({"duration": "banana"}, "spec.duration", "is not a duration"),
        ({"duration": "0s"}, "spec.duration", "zero"),
        ({"reason": ""}, "spec.reason", "is empty: say why"),
        ({"reason": "   "}, "spec.reason", "is empty"),
        ({"reason": "fixing things"}, "spec.reason", "does not match the entitlement's reasonPattern"),
        ({"requester": None}, "spec.requester", "admission webhook"),
    ],
)
def test_bad_input_names_field_and_fix(spec: dict[str, object], field: str, text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        request_rules.validate(request(**spec), entitlement(), team(), LIMITS)
    assert caught.value.field == field
    assert text in str(caught.value)


def test_unknown_entitlement_and_missing_owner_team() -> None:
    with pytest.raises(
        InvalidInput, match=re.escape("which does not exist (or is being deleted): `kubectl get entitlements`")
    ):
        request_rules.validate(request(entitlement="nope"), None, None, LIMITS)
    with pytest.raises(InvalidInput, match="owner team 'payments' does not exist"):
        request_rules.validate(request(), entitlement(), None, LIMITS)


def test_an_entitlement_named_longer_than_a_label_value_refuses_its_requests() -> None:
    """One stored before admission refused such a name: no grant of it could be created (the API
    server refuses its label), so its requests are refused, not approved into a retry without end."""
    long = "p" * 64
    stored = Entitlement.model_validate({**entitlement().wire(), "metadata": {"name": long}})
    with pytest.raises(InvalidInput) as caught:
        request_rules.validate(request(entitlement=long), stored, team(), LIMITS)
    assert caught.value.field == "spec.entitlement"
    assert "names an Entitlement whose name is 64 characters long, above the limit of 63" in str(caught.value)
    assert "create it again under a shorter name" in str(caught.value)
    fits = Entitlement.model_validate({**entitlement().wire(), "metadata": {"name": "p" * 63}})
    assert request_rules.validate(request(entitlement="p" * 63), fits, team(), LIMITS).entitlement is fits


def test_broken_reason_pattern_blames_the_entitlement() -> None:
    with pytest.raises(InvalidInput, match="not a valid regular expression"):
        request_rules.validate(request(), entitlement(reasonPattern="(["), team(), LIMITS)


def test_owner_team_member_is_auto_approved() -> None:
    assert request_rules.route(valid(requester="alice@example.com")) is Route.AUTO_APPROVE


def test_member_by_group_is_auto_approved() -> None:
    checked = request_rules.validate(
        request(requester="zed@example.com", requesterGroups=["team-payments"]),
        entitlement(),
        team(memberGroups=["team-payments"]),
        LIMITS,
    )
    assert request_rules.route(checked) is Route.AUTO_APPROVE


def test_outsider_waits_for_approval() -> None:
    assert request_rules.route(valid()) is Route.NEEDS_APPROVAL


def test_auto_approval_can_be_switched_off() -> None:
    checked = request_rules.validate(
        request(requester="alice@example.com"), entitlement(approval={"autoApproveOwnerTeam": False}), team(), LIMITS
    )
    assert request_rules.route(checked) is Route.NEEDS_APPROVAL


def test_team_without_approvers_cannot_take_outside_requests() -> None:
    checked = request_rules.validate(request(), entitlement(), team(approvers=[]), LIMITS)
    with pytest.raises(InvalidInput, match="nobody can approve this request"):
        request_rules.route(checked)


PENDING = [condition("Ready", "False", "Pending")]


def decide(
    annotations: dict[str, str],
    conditions: list[dict[str, str]] | None = None,
    at: timedelta = timedelta(0),
    team_spec: dict[str, object] | None = None,
) -> request_rules.PendingDecision | None:
    req = request(annotations=annotations, conditions=conditions or PENDING)
    checked = request_rules.validate(req, entitlement(), team(**(team_spec or {})), LIMITS)
    return request_rules.decide_pending(req, checked, LIMITS, T0 + at)


def test_approval_by_an_approver() -> None:
    decision = decide(
        {
            "jitaccess.dev/approved": "true",
            "jitaccess.dev/approved-by": "paula@example.com",
            "jitaccess.dev/decision-reason": "ok",
        }
    )
    assert decision is not None
    assert (decision.outcome, decision.who, decision.why) == (Outcome.APPROVE, "paula@example.com", "ok")


def test_approval_by_group_membership() -> None:
    decision = decide(
        {
            "jitaccess.dev/approved": "true",
            "jitaccess.dev/approved-by": "tl@example.com",
            "jitaccess.dev/approved-by-groups": "system:authenticated,payments-leads",
        },
        team_spec={"approverGroups": ["payments-leads"]},
    )
    assert decision is not None and decision.outcome is Outcome.APPROVE


def test_approval_without_recorded_approver_is_ignored() -> None:
    decision = decide({"jitaccess.dev/approved": "true"})
    assert decision is not None and decision.outcome is Outcome.IGNORE
    assert "admission webhook" in decision.why


@pytest.mark.parametrize(
    ("who", "text"),
    [
        ("bob@example.com", "requested this access and cannot decide on it"),
        ("mallory@example.com", "is not an approver of the owner team"),
        ("carol@example.com", "only after the request has escalated"),
    ],
)
def test_approvals_that_do_not_count(who: str, text: str) -> None:
    decision = decide({"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": who})
    assert decision is not None and decision.outcome is Outcome.IGNORE
    assert text in decision.why


def test_requester_who_is_an_approver_still_cannot_self_approve() -> None:
    req = request(
        requester="paula@example.com",
        conditions=PENDING,
        annotations={"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": "paula@example.com"},
    )
    checked = request_rules.validate(req, entitlement(), team(), LIMITS)
    decision = request_rules.decide_pending(req, checked, LIMITS, T0)
    assert decision is not None and decision.outcome is Outcome.IGNORE


def test_backup_approver_counts_after_escalation() -> None:
    decision = decide(
        {"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": "carol@example.com"},
        conditions=[*PENDING, condition("Escalated", "True", "PendingTooLong")],
    )
    assert decision is not None and decision.outcome is Outcome.APPROVE


def test_denial_wins_over_approval() -> None:
    decision = decide(
        {
            "jitaccess.dev/approved": "true",
            "jitaccess.dev/approved-by": "paula@example.com",
            "jitaccess.dev/denied": "true",
            "jitaccess.dev/denied-by": "paula@example.com",
        }
    )
    assert decision is not None and decision.outcome is Outcome.DENY


def test_nothing_happens_before_escalation() -> None:
    assert decide({}, at=timedelta(minutes=14, seconds=59)) is None


def test_escalation_after_escalate_after() -> None:
    decision = decide({}, at=timedelta(minutes=15))
    assert decision is not None and decision.outcome is Outcome.ESCALATE


def test_no_second_escalation() -> None:
    escalated = [*PENDING, condition("Escalated", "True", "PendingTooLong")]
    assert decide({}, conditions=escalated, at=timedelta(minutes=20)) is None


def test_no_escalation_when_the_team_sets_none() -> None:
    assert decide({}, at=timedelta(hours=2), team_spec={"escalateAfter": None}) is None


def test_time_out_beats_escalation() -> None:
    decision = decide({}, at=timedelta(hours=24))
    assert decision is not None and decision.outcome is Outcome.TIME_OUT


def test_ignored_annotation_does_not_hide_a_deadline() -> None:
    decision = decide(
        {"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": "mallory@example.com"}, at=timedelta(minutes=16)
    )
    assert decision is not None and decision.outcome is Outcome.ESCALATE


def test_the_pending_deadline_is_the_escalation_first() -> None:
    escalate_after = team().escalate_after
    assert request_rules.pending_deadline(T0, False, escalate_after, LIMITS) == T0 + timedelta(minutes=15)
    assert request_rules.pending_deadline(T0, True, escalate_after, LIMITS) == T0 + LIMITS.pending_timeout


def test_lifecycle_predicates() -> None:
    assert request_rules.is_pending(request(conditions=PENDING))
    assert not request_rules.is_pending(request(conditions=[*PENDING, condition("Approved", "True", "Approved")]))
    assert request_rules.is_finished(request(conditions=[condition("Ready", "False", "Denied")]))
    assert not request_rules.is_finished(request(conditions=[condition("Ready", "True", "Granted")]))


def test_eligibility_message_names_the_groups() -> None:
    text = request_rules.eligibility_message("eve@example.com", ["prod-eligible", "pci-secure-code-trained"])
    assert "eve@example.com" in text and "prod-eligible, pci-secure-code-trained" in text


def test_requests_that_ended_without_a_grant_have_an_end() -> None:
    """Retention counts from here (the finished index files requests by it)."""
    for reason in ("Denied", "NotEligible", "Invalid", "TimedOut"):
        ended = request(conditions=[condition("Ready", "False", reason)])
        assert request_rules.ended_at(ended.status) == T0, reason
    for reason in ("Pending", "Granted", "Approved"):
        live = request(conditions=[condition("Ready", "False", reason)])
        assert request_rules.ended_at(live.status) is None, reason
    assert request_rules.ended_at(request().status) is None


def test_a_request_with_a_grant_goes_with_its_grant_not_on_its_own() -> None:
    expired = request(conditions=[condition("Ready", "False", "Expired")])
    expired.status.grant = "r1"
    assert request_rules.ended_at(expired.status) is None


@pytest.mark.parametrize("value", ["TRUE", "True", "true ", " true", "yes", "1"])
@pytest.mark.parametrize("flag", ["approved", "denied"])
def test_a_variant_of_true_is_no_decision(flag: str, value: str) -> None:
    """The webhook refuses these; should one reach the operator anyway, it decides nothing."""
    assert decide({f"jitaccess.dev/{flag}": value, f"jitaccess.dev/{flag}-by": "paula@example.com"}) is None


def test_a_request_that_could_never_get_enough_approvals_is_refused() -> None:
    # Two approvals needed; the team's only other approver and no backup: it would wait until it timed out.
    two = entitlement(approval={"approvalsRequired": 2})
    alone = team(approvers=["paula@example.com"], backupApprovers=[])
    short = request_rules.validate(request(), two, alone, LIMITS)
    with pytest.raises(InvalidInput, match=r"names 1 who may approve a request of .*needs 2 approvals"):
        request_rules.route(short)
    # The requester never counts; a backup does; a group may hold anyone, so it is not counted against.
    enough = team(approvers=["paula@example.com"], backupApprovers=["carol@example.com"])
    assert request_rules.route(request_rules.validate(request(), two, enough, LIMITS)) is Route.NEEDS_APPROVAL
    grouped = team(approvers=["paula@example.com"], backupApprovers=[], approverGroups=["leads"])
    assert request_rules.route(request_rules.validate(request(), two, grouped, LIMITS)) is Route.NEEDS_APPROVAL

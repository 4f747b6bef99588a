"""Multi-party approval (`jitaccess.domain.approvals`): what the webhook stamps for each approver,
what it refuses, and what the operator counts before it grants.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from jitaccess.api import models, names
from jitaccess.domain import approvals
from jitaccess.domain import requests as rules
from jitaccess.domain.admission import Admit, Phase, Refusal
from jitaccess.domain.requests import Basis, NoGrant, Outcome
from jitaccess.handlers import approvals as approval_counts
from tests.unit import factories
from tests.unit.test_admission import (
    CAROL,
    ENTITLEMENT,
    LEAD,
    PAULA,
    PENDING,
    TEAM,
    request,
    review_request,
    with_annotations,
)

TWO = factories.entitlement(approval={"approvalsRequired": 2, "autoApproveOwnerTeam": False})
APPROVALS = names.ANNOTATION_APPROVALS
LIMITS = rules.Limits(min_duration=timedelta(minutes=1), pending_timeout=timedelta(hours=24))


def stored(*given: tuple[str, list[str]], **kwargs: Any) -> dict[str, Any]:
    """Bob's pending request with these approvals already stamped."""
    annotations = {APPROVALS: approvals.encode([approvals.Given(by, frozenset(g)) for by, g in given])} if given else {}
    return request(annotations=annotations, conditions=kwargs.pop("conditions", PENDING), **kwargs)


def approve(old: dict[str, Any], caller: Any, phase: Phase = Phase.MUTATE, **extra: str) -> Any:
    new = with_annotations(old, jitaccess_dev__approved="true", **extra)
    return review_request("UPDATE", old, new, caller, entitlement=TWO, phase=phase)


def test_the_first_approval_of_two_is_listed_and_the_flag_taken_out_again() -> None:
    verdict = approve(stored(), PAULA, jitaccess_dev__decision_reason="fine by me")
    assert isinstance(verdict, Admit)
    assert verdict.removed == (names.ANNOTATION_APPROVED, names.ANNOTATION_DECISION_REASON)
    assert names.ANNOTATION_APPROVED_BY not in verdict.annotations
    listed = json.loads(verdict.annotations[APPROVALS])
    assert listed == [{"by": PAULA.username, "groups": sorted(PAULA.groups), "reason": "fine by me"}]


def test_the_approval_that_completes_the_count_is_stamped_as_usual() -> None:
    verdict = approve(stored((PAULA.username, sorted(PAULA.groups))), LEAD)
    assert isinstance(verdict, Admit) and verdict.removed == ()
    assert verdict.annotations[names.ANNOTATION_APPROVED_BY] == LEAD.username
    assert [e["by"] for e in json.loads(verdict.annotations[APPROVALS])] == [PAULA.username, LEAD.username]


def test_one_approver_twice_is_refused() -> None:
    verdict = approve(stored((PAULA.username, sorted(PAULA.groups))), PAULA)
    assert isinstance(verdict, Refusal)
    assert "has already approved this request (1/2)" in verdict.message and "counts once" in verdict.message


def test_the_requester_is_never_one_of_the_approvers() -> None:
    verdict = approve(stored(requester=PAULA.username), PAULA)
    assert isinstance(verdict, Refusal) and "cannot decide on it" in verdict.message


def test_a_backup_approver_adds_to_the_approvals_only_once_escalated() -> None:
    first = (PAULA.username, sorted(PAULA.groups))
    assert isinstance(approve(stored(first), CAROL), Refusal)
    escalated = [*PENDING, {"type": "Escalated", "status": "True", "reason": "PendingTooLong", "message": ""}]
    verdict = approve(stored(first, conditions=escalated), CAROL)
    assert isinstance(verdict, Admit) and verdict.annotations[names.ANNOTATION_APPROVED_BY] == CAROL.username


def test_a_client_written_approvals_list_is_refused() -> None:
    old = stored()
    forged = approvals.encode([approvals.Given("paula@example.com", frozenset()), approvals.Given("x", frozenset())])
    new = with_annotations(old, jitaccess_dev__approvals=forged)
    verdict = review_request("UPDATE", old, new, PAULA, entitlement=TWO)
    assert isinstance(verdict, Refusal) and "written only by the jitaccess admission webhook" in verdict.message


def test_validate_accepts_exactly_the_callers_entry_added() -> None:
    old = stored()
    mine = approvals.encode([approvals.Given(PAULA.username, PAULA.groups)])
    new = with_annotations(old, jitaccess_dev__approvals=mine)
    verdict = review_request("UPDATE", old, new, PAULA, entitlement=TWO, phase=Phase.VALIDATE)
    assert verdict == Admit(annotations={APPROVALS: mine})
    someone_else = approvals.encode([approvals.Given(LEAD.username, LEAD.groups)])
    wrong = with_annotations(old, jitaccess_dev__approvals=someone_else)
    refused = review_request("UPDATE", old, wrong, PAULA, entitlement=TWO, phase=Phase.VALIDATE)
    assert isinstance(refused, Refusal) and "caller's" in refused.message


def test_a_denial_after_one_approval_ends_the_request() -> None:
    old = stored((PAULA.username, sorted(PAULA.groups)))
    new = with_annotations(old, jitaccess_dev__denied="true")
    verdict = review_request("UPDATE", old, new, LEAD, entitlement=TWO)
    assert isinstance(verdict, Admit) and verdict.annotations[names.ANNOTATION_DENIED_BY] == LEAD.username


def test_an_entitlement_of_one_approval_is_stamped_as_before() -> None:
    verdict = review_request("UPDATE", stored(), with_annotations(stored(), jitaccess_dev__approved="true"), PAULA)
    assert isinstance(verdict, Admit) and APPROVALS not in verdict.annotations and verdict.removed == ()


# --- what the operator counts ------------------------------------------------------------------


def valid_for(entitlement: Any = TWO) -> rules.ValidRequest:
    return rules.ValidRequest("bob@example.com", frozenset({"team-ledger"}), timedelta(hours=1), entitlement, TEAM)


def operator_view(*given: tuple[str, frozenset[str]], approved_by: str = "", escalated: bool = False) -> Any:
    annotations = {APPROVALS: approvals.encode([approvals.Given(by, g) for by, g in given])}
    if approved_by:
        groups = ",".join(sorted(next(g for by, g in given if by == approved_by)))
        annotations |= {
            names.ANNOTATION_APPROVED: "true",
            names.ANNOTATION_APPROVED_BY: approved_by,
            names.ANNOTATION_APPROVED_BY_GROUPS: groups,
        }
    conditions = [factories.condition("Ready", "False", "Pending")]
    if escalated:
        conditions.append(factories.condition("Escalated", "True", "PendingTooLong"))
    return factories.request(annotations=annotations, conditions=conditions)


def test_one_of_two_approvals_is_counted_not_approved() -> None:
    request = operator_view((PAULA.username, PAULA.groups))
    decision = rules.decide_pending(request, valid_for(), LIMITS, factories.T0 + timedelta(minutes=1))
    assert decision is not None and decision.outcome is Outcome.COUNT and decision.who == PAULA.username


def test_an_approved_flag_without_enough_approvals_is_ignored_and_grants_nothing() -> None:
    # approved=true with approved-by, as if the webhook had admitted it alone: the list has one entry.
    request = operator_view((PAULA.username, PAULA.groups), approved_by=PAULA.username)
    now = factories.T0 + timedelta(minutes=1)
    decision = rules.decide_pending(request, valid_for(), LIMITS, now)
    assert decision is not None and decision.outcome is Outcome.COUNT, "counted, not approved"
    basis = rules.grant_basis(request, valid_for(), LIMITS, now)
    assert isinstance(basis, NoGrant) and basis.reason == names.FAILED
    assert "approvalsRequired is 2, and only 1 approval(s)" in basis.message


def test_the_same_approver_twice_counts_once() -> None:
    request = operator_view((PAULA.username, PAULA.groups), (PAULA.username, PAULA.groups), approved_by=PAULA.username)
    basis = rules.grant_basis(request, valid_for(), LIMITS, factories.T0 + timedelta(minutes=1))
    assert isinstance(basis, NoGrant) and "approved twice and counts once" in basis.message


def test_the_requester_in_the_list_does_not_count() -> None:
    request = operator_view(
        ("bob@example.com", frozenset()), (PAULA.username, PAULA.groups), approved_by=PAULA.username
    )
    basis = rules.grant_basis(request, valid_for(), LIMITS, factories.T0 + timedelta(minutes=1))
    assert isinstance(basis, NoGrant) and "requested this access" in basis.message


def test_two_distinct_approvers_approve() -> None:
    request = operator_view((PAULA.username, PAULA.groups), (LEAD.username, LEAD.groups), approved_by=LEAD.username)
    now = factories.T0 + timedelta(minutes=1)
    decision = rules.decide_pending(request, valid_for(), LIMITS, now)
    assert decision is not None and decision.outcome is Outcome.APPROVE and decision.who == LEAD.username
    assert rules.grant_basis(request, valid_for(), LIMITS, now) == Basis(auto=False, who=LEAD.username)


def test_escalation_counts_the_approvals_already_given() -> None:
    # Paula approved before the escalation, Carol (backup) after it: together they are two.
    request = operator_view((PAULA.username, PAULA.groups), (CAROL.username, CAROL.groups), approved_by=CAROL.username)
    later = factories.T0 + timedelta(minutes=20)
    assert rules.grant_basis(request, valid_for(), LIMITS, later) == Basis(auto=False, who=CAROL.username)
    # Counted before the escalation was due, the backup approver's approval does not count.
    early = factories.T0 + timedelta(minutes=5)
    assert isinstance(rules.grant_basis(request, valid_for(), LIMITS, early), NoGrant)


def test_malformed_approvals_count_as_none() -> None:
    assert approvals.given({APPROVALS: "not json"}) == []
    assert approvals.given({APPROVALS: '[{"by": ""}]'}) == []
    assert approvals.given({APPROVALS: '{"by": "x"}'}) == []


def test_an_entitlement_whose_team_cannot_give_its_approvals_says_who_there_is() -> None:
    three = factories.entitlement(approval={"approvalsRequired": 3})
    short = rules.approvals_unreachable(three, factories.team())
    assert short is not None
    assert "approvalsRequired is 3, but team payments names 2 who may approve" in short
    assert "(carol@example.com, paula@example.com, backup approvers included)" in short
    assert "name more approvers in the team, or lower approvalsRequired" in short
    assert rules.approvals_unreachable(TWO, factories.team()) is None
    # A group approves: its members are not known, so nothing is claimed.
    assert rules.approvals_unreachable(three, factories.team(approverGroups=["payments-leads"])) is None


# --- approvals that no longer count ---------------------------------------------------------------

FORMER = ("former@example.com", ["team-payments"])  # listed, then left the team's approvers


def test_an_approval_that_no_longer_counts_does_not_complete_the_count() -> None:
    # The webhook counts as the operator does: former's entry and lead's make one approval, not two.
    old = stored(FORMER)
    verdict = approve(old, LEAD)
    assert isinstance(verdict, Admit) and names.ANNOTATION_APPROVED_BY not in verdict.annotations
    assert verdict.removed == (names.ANNOTATION_APPROVED,)
    assert [e["by"] for e in json.loads(verdict.annotations[APPROVALS])] == [FORMER[0], LEAD.username]
    validated = review_request(
        "UPDATE", old, with_annotations(old, jitaccess_dev__approvals=verdict.annotations[APPROVALS]), LEAD,
        entitlement=TWO, phase=Phase.VALIDATE,
    )  # fmt: skip
    assert validated == Admit(annotations={APPROVALS: verdict.annotations[APPROVALS]})
    # Then paula's is the second that counts, and completes it.
    then = stored(FORMER, (LEAD.username, sorted(LEAD.groups)))
    done = approve(then, PAULA)
    assert isinstance(done, Admit) and done.annotations[names.ANNOTATION_APPROVED_BY] == PAULA.username


def test_a_stamped_approval_that_stopped_counting_blocks_no_denial() -> None:
    # former completed the count (approved-by stamped), then left the team before the operator took it.
    old = stored((LEAD.username, sorted(LEAD.groups)), FORMER)
    old["metadata"]["annotations"] |= {
        names.ANNOTATION_APPROVED: "true",
        names.ANNOTATION_APPROVED_BY: FORMER[0],
        names.ANNOTATION_APPROVED_BY_GROUPS: ",".join(FORMER[1]),
    }
    denied = review_request("UPDATE", old, with_annotations(old, jitaccess_dev__denied="true"), PAULA, entitlement=TWO)
    assert isinstance(denied, Admit) and denied.annotations[names.ANNOTATION_DENIED_BY] == PAULA.username
    # An approval that still counts stays final.
    counted = stored((PAULA.username, sorted(PAULA.groups)))
    counted["metadata"]["annotations"] |= {
        names.ANNOTATION_APPROVED: "true",
        names.ANNOTATION_APPROVED_BY: LEAD.username,
        names.ANNOTATION_APPROVED_BY_GROUPS: ",".join(sorted(LEAD.groups)),
        APPROVALS: approvals.encode(
            [approvals.Given(PAULA.username, PAULA.groups), approvals.Given(LEAD.username, LEAD.groups)]
        ),
    }
    final = review_request(
        "UPDATE", counted, with_annotations(counted, jitaccess_dev__denied="true"), PAULA, entitlement=TWO
    )
    assert isinstance(final, Refusal) and "a decision is final" in final.message


def test_one_approval_stamped_by_someone_who_left_the_team_blocks_no_denial() -> None:
    old = request(
        annotations={names.ANNOTATION_APPROVED: "true", names.ANNOTATION_APPROVED_BY: FORMER[0]}, conditions=PENDING
    )
    denied = review_request("UPDATE", old, with_annotations(old, jitaccess_dev__denied="true"), PAULA)
    assert isinstance(denied, Admit) and denied.annotations[names.ANNOTATION_DENIED_BY] == PAULA.username


@pytest.mark.parametrize("needed", [1, 2])
def test_a_denial_over_an_approval_that_stopped_counting_writes_its_own_reason(needed: int) -> None:
    """former approved, with a reason, completing the count, then left the team: paula's denial that
    left former's reason in place was recorded with it as paula's (`decisionReason`, attack 124)."""
    given = [approvals.Given(LEAD.username, LEAD.groups)] * (needed > 1) + [
        approvals.Given(FORMER[0], frozenset(FORMER[1]), "LGTM, go")
    ]
    old = request(annotations={APPROVALS: approvals.encode(given)} if needed > 1 else {}, conditions=PENDING)
    old["metadata"]["annotations"] |= {
        names.ANNOTATION_APPROVED: "true",
        names.ANNOTATION_APPROVED_BY: FORMER[0],
        names.ANNOTATION_DECISION_REASON: "LGTM, go",
    }
    entitlement = TWO if needed > 1 else ENTITLEMENT
    for phase in Phase:
        stale = review_request(
            "UPDATE", old, with_annotations(old, jitaccess_dev__denied="true"), PAULA, entitlement=entitlement,
            phase=phase,
        )  # fmt: skip
        assert isinstance(stale, Refusal), stale
        assert f"{names.ANNOTATION_DECISION_REASON}] is {FORMER[0]}'s" in stale.message
        assert "recorded with their reason as yours" in stale.message
    # Their own, in the same change (or none, written empty): admitted, stamped as theirs.
    for reason in ("INC-9 not during the freeze", ""):
        mine = with_annotations(old, jitaccess_dev__denied="true", jitaccess_dev__decision_reason=reason)
        denied = review_request("UPDATE", old, mine, PAULA, entitlement=entitlement)
        assert isinstance(denied, Admit) and denied.annotations[names.ANNOTATION_DENIED_BY] == PAULA.username


def test_approved_by_must_be_the_last_approval_listed() -> None:
    request_ = operator_view((LEAD.username, LEAD.groups), (PAULA.username, PAULA.groups), approved_by=LEAD.username)
    now = factories.T0 + timedelta(minutes=1)
    decision = rules.decide_pending(request_, valid_for(), LIMITS, now)
    assert decision is not None and decision.outcome is not Outcome.APPROVE
    basis = rules.grant_basis(request_, valid_for(), LIMITS, now)
    assert isinstance(basis, NoGrant) and "the last approval in jitaccess.dev/approvals is paula" in basis.message


def test_a_listed_approval_that_no_longer_counts_is_recounted_and_its_ignored_stamp_said() -> None:
    former = ("former@example.com", frozenset({"team-payments"}))
    request_ = operator_view(former, (LEAD.username, LEAD.groups), approved_by=LEAD.username)
    request_.status.approvals = [
        models.GivenApproval(by=former[0], time=factories.T0),  # counted while former still approved
        models.GivenApproval(by=LEAD.username, time=factories.T0),
    ]
    decision = rules.decide_pending(request_, valid_for(), LIMITS, factories.T0 + timedelta(minutes=1))
    assert decision is not None and decision.outcome is Outcome.COUNT
    assert decision.ignored is not None and decision.ignored.who == LEAD.username
    assert "only 1 approval(s)" in decision.ignored.why and "former@example.com is not" in decision.ignored.why
    listed = approval_counts.listed(request_, ("lead@example.com",), factories.T0)
    assert [a["by"] for a in listed] == [LEAD.username]


def test_an_approval_is_appended_to_the_stored_list_as_it_is_written() -> None:
    """The admission policy lets the list only grow: the new text must start with the stored one.
    A list a previous release wrote escapes non-ASCII (a decision reason with an em dash): re-encoded,
    it would not, and every later approval of that request would be refused."""
    from jitaccess.domain.teams import Caller

    stored = json.dumps([{"by": "paula@example.com", "groups": [], "reason": "INC-1 \u2014 ok"}], separators=(",", ":"))
    assert "\\u2014" in stored
    made = approvals.stamp(
        {approvals.APPROVALS: stored}, Caller("lena@example.com", frozenset({"leads"})), 3, "", {}, 1
    )
    assert isinstance(made, approvals.Stamp)
    text = made.annotations[approvals.APPROVALS]
    assert text.startswith(stored[:-1] + ",")
    assert [a.by for a in approvals.given({approvals.APPROVALS: text})] == ["paula@example.com", "lena@example.com"]
    first = approvals.stamp({}, Caller("lena@example.com"), 2, "", {}, 0)
    assert isinstance(first, approvals.Stamp)
    assert first.annotations[approvals.APPROVALS] == '[{"by":"lena@example.com","groups":[]}]'


def test_an_approval_records_only_the_groups_the_admission_policy_can_read() -> None:
    """One unrelated group with a backslash (`CORP\\dba`) in the approvals list made the policy refuse
    every approval of its member: such groups are left out of the entry, and never count for it."""
    from jitaccess.domain.teams import Caller

    lena = Caller("lena@example.com", frozenset({"team-ledger", "CORP\\dba", 'q"x', "r]", "cn=a,dc=b"}))
    made = approvals.stamp({}, lena, 2, "", {}, 0)
    assert isinstance(made, approvals.Stamp)
    assert json.loads(made.annotations[approvals.APPROVALS]) == [{"by": "lena@example.com", "groups": ["team-ledger"]}]
    assert approvals.validated({}, made.annotations, lena, 2, 0) is None

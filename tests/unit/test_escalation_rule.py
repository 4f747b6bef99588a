"""One rule for when a request has escalated (`requests.Escalation`), on every side: admission as a
backup approver's decision is written, the operator deciding on the pending request and counting
several approvals, and the re-derivation before access begins (`grant_basis`).

It used to be two: admission and `decide_pending` read the `Escalated` condition, while `grant_basis`
and the operator's count computed it from `creationTimestamp` and the team's `escalateAfter` as it is
now. A team that lengthened or removed `escalateAfter` after a request escalated had its backup
approver's approval admitted, recorded `Approved` and told, and then the request `Failed`: "carol is
a backup approver: they may decide only after the request has escalated", its status saying
Escalated. Now a recorded escalation stands, and a shortened `escalateAfter` counts at once, on
every side alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from jitaccess.api import names
from jitaccess.api.models import AccessRequest, Condition, Entitlement
from jitaccess.domain import approvals
from jitaccess.domain import requests as rules
from jitaccess.domain.admission import Admit, Phase, Refusal, Verdict
from jitaccess.domain.requests import Basis, NoGrant, Outcome
from tests.unit import factories
from tests.unit.test_admission import CAROL, PAULA, review_request, with_annotations

T0 = factories.T0
LIMITS = rules.Limits(min_duration=timedelta(minutes=1), pending_timeout=timedelta(hours=24))
ONE = factories.entitlement()
TWO = factories.entitlement(approval={"approvalsRequired": 2, "autoApproveOwnerTeam": False})
AT = T0 + timedelta(minutes=20)


def stored(
    *,
    escalated_at: datetime | None,
    given: tuple[approvals.Given, ...] = (),
    counted: dict[str, datetime] | None = None,
) -> dict[str, Any]:
    """Bob's request of payments' entitlement, created at T0 and pending, as the API server stores it;
    escalated by the operator at `escalated_at` (None: not recorded); with these approvals listed,
    counted by the operator at `counted`."""
    conditions = [factories.condition("Ready", "False", "Pending")]
    if escalated_at is not None:
        conditions.append(factories.condition("Escalated", "True", "PendingTooLong", escalated_at))
    listed = {names.ANNOTATION_APPROVALS: approvals.encode(list(given))} if given else {}
    groups = ["system:authenticated", "team-ledger"]
    body = factories.request(annotations=listed, conditions=conditions, requesterGroups=groups).wire()
    if counted:
        body["status"]["approvals"] = [{"by": by, "time": when.isoformat()} for by, when in counted.items()]
    return body


def carol_approves(old: dict[str, Any], entitlement: Entitlement, escalate_after: str | None) -> Verdict:
    new = with_annotations(old, jitaccess_dev__approved="true")
    team = factories.team(escalateAfter=escalate_after)
    return review_request("UPDATE", old, new, CAROL, entitlement=entitlement, team=team, phase=Phase.MUTATE, now=AT)


def as_written(old: dict[str, Any], verdict: Verdict) -> AccessRequest:
    """The request once the webhook's stamps are written (and the operator has taken the flag up)."""
    assert isinstance(verdict, Admit), verdict
    annotations = {**old["metadata"]["annotations"], names.ANNOTATION_APPROVED: "true", **verdict.annotations}
    return AccessRequest.model_validate({**old, "metadata": {**old["metadata"], "annotations": annotations}})


def operator_says(request: AccessRequest, entitlement: Entitlement, escalate_after: str | None) -> tuple[Any, Any]:
    """What the operator makes of it at AT: its pending decision, and the basis of the grant once it
    has recorded that decision (`Approved` at AT)."""
    valid = rules.validate(request, entitlement, factories.team(escalateAfter=escalate_after), LIMITS)
    decision = rules.decide_pending(request, valid, LIMITS, AT)
    approved = request.model_copy(deep=True)
    approved.status.conditions.append(Condition.model_validate(factories.condition("Approved", "True", "Approved", AT)))
    return decision, rules.grant_basis(approved, valid, LIMITS, AT)


@pytest.mark.parametrize("escalate_after", ["2h", None], ids=["lengthened", "removed"])
def test_an_escalation_recorded_stands_when_escalate_after_is_lengthened_or_removed(escalate_after: str | None) -> None:
    """alice's request escalated at 15m, carol (backup) was told; a pull request then sets the team's
    escalateAfter to 2h (or removes it), and carol approves at 20m: admitted, approved and granted."""
    old = stored(escalated_at=T0 + timedelta(minutes=15))
    request = as_written(old, carol_approves(old, ONE, escalate_after))
    decision, basis = operator_says(request, ONE, escalate_after)
    assert decision is not None and decision.outcome is Outcome.APPROVE and decision.who == CAROL.username
    assert basis == Basis(auto=False, who=CAROL.username)


def test_a_shortened_escalate_after_counts_at_once_on_every_side() -> None:
    """escalateAfter was 2h; the team sets 15m, and carol approves at 20m, before the operator's timer
    has recorded the escalation: admission used to refuse her, the operator's count would have taken it.
    The operator records the escalation first (the backup approvers told, the trail saying why a
    backup approver may decide), then takes her approval at its next look."""
    old = stored(escalated_at=None)
    verdict = carol_approves(old, ONE, "15m")
    decision, _ = operator_says(as_written(old, verdict), ONE, "15m")
    assert decision is not None and decision.outcome is Outcome.ESCALATE
    request = as_written(stored(escalated_at=AT), verdict)
    decision, basis = operator_says(request, ONE, "15m")
    assert decision is not None and decision.outcome is Outcome.APPROVE
    assert basis == Basis(auto=False, who=CAROL.username)


def test_before_any_escalation_every_side_refuses_a_backup_approver() -> None:
    old = stored(escalated_at=None)
    verdict = carol_approves(old, ONE, "2h")
    assert isinstance(verdict, Refusal) and "only after the request has escalated" in verdict.message
    # Stamped all the same (the webhook down, say): the operator takes it neither now nor at the grant.
    forced = as_written(old, Admit(annotations={names.ANNOTATION_APPROVED_BY: CAROL.username}))
    decision, basis = operator_says(forced, ONE, "2h")
    assert decision is not None and decision.outcome is Outcome.IGNORE
    assert isinstance(basis, NoGrant) and "only after the request has escalated" in basis.message


def test_a_backup_approval_completing_two_counts_as_admission_counted_it() -> None:
    """Two approvals needed: paula's counted at 5m, the escalation recorded at 15m, escalateAfter then
    lengthened to 2h; carol's approval at 20m completes the count at admission, and the operator
    counts it too (it used to leave it out: "approvalsRequired is 2, and only 1 approval(s) ... count")."""
    paula = approvals.Given(PAULA.username, PAULA.groups)
    old = stored(escalated_at=T0 + timedelta(minutes=15), given=(paula,), counted={PAULA.username: T0})
    verdict = carol_approves(old, TWO, "2h")
    assert isinstance(verdict, Admit) and verdict.annotations[names.ANNOTATION_APPROVED_BY] == CAROL.username
    request = as_written(old, verdict)
    decision, basis = operator_says(request, TWO, "2h")
    assert decision is not None and decision.outcome is Outcome.APPROVE and decision.who == CAROL.username
    assert basis == Basis(auto=False, who=CAROL.username)


def test_the_rule_itself() -> None:
    escalation = rules.escalation(T0, "15m", "payments", recorded=None)
    assert not escalation.by(T0 + timedelta(minutes=14)) and escalation.by(T0 + timedelta(minutes=15))
    recorded = rules.escalation(T0, "2h", "payments", recorded=T0 + timedelta(minutes=15))
    assert not recorded.by(T0 + timedelta(minutes=14)) and recorded.by(T0 + timedelta(minutes=15))
    assert not rules.escalation(T0, None, "payments", recorded=None).by(T0 + timedelta(days=1))
    assert not rules.NEVER_ESCALATES.by(T0 + timedelta(days=1))


@pytest.mark.parametrize("escalate_after", ["4h", None], ids=["later", "never"])
def test_an_escalation_recorded_for_the_old_owner_team_lets_no_backup_of_the_new_one_decide(
    escalate_after: str | None,
) -> None:
    """alice's request escalated at 15m under payments (`status.escalationTeam`); a pull request then
    hands the Entitlement to ledger (escalateAfter 4h, or none), and carol, a ledger backup approver,
    approves at 20m. The escalation was payments': ledger's backups were never told, and the request
    has not been pending for ledger's escalateAfter. Admitted, approved and granted before."""
    ledgers = factories.entitlement(owner="ledger")
    old = stored(escalated_at=T0 + timedelta(minutes=15))
    old["status"] |= {"ownerTeam": "payments", "escalationTeam": "payments"}
    verdict = carol_approves(old, ledgers, escalate_after)
    assert isinstance(verdict, Refusal) and "only after the request has escalated" in verdict.message
    forced = as_written(old, Admit(annotations={names.ANNOTATION_APPROVED_BY: CAROL.username}))
    decision, basis = operator_says(forced, ledgers, escalate_after)
    assert decision is not None and decision.outcome is Outcome.IGNORE
    assert isinstance(basis, NoGrant) and "only after the request has escalated" in basis.message
    # An object escalated before `escalationTeam` was written: its `ownerTeam` says whose it was.
    del old["status"]["escalationTeam"]
    assert isinstance(carol_approves(old, ledgers, escalate_after), Refusal)
    # The escalation recorded for ledger itself stands, as it does for any team.
    old["status"]["escalationTeam"] = "ledger"
    assert isinstance(carol_approves(old, ledgers, escalate_after), Admit)


def test_the_new_owner_teams_own_escalate_after_still_counts() -> None:
    """Escalated under payments, handed to ledger whose escalateAfter is 15m: at 20m carol may decide."""
    ledgers = factories.entitlement(owner="ledger")
    old = stored(escalated_at=T0 + timedelta(minutes=15))
    old["status"] |= {"ownerTeam": "payments", "escalationTeam": "payments"}
    verdict = carol_approves(old, ledgers, "15m")
    decision, _ = operator_says(as_written(old, verdict), ledgers, "15m")
    assert decision is not None and decision.outcome is Outcome.ESCALATE  # recorded for ledger first
    old["status"]["escalationTeam"] = "ledger"
    decision, basis = operator_says(as_written(old, verdict), ledgers, "15m")
    assert decision is not None and decision.outcome is Outcome.APPROVE
    assert basis == Basis(auto=False, who=CAROL.username)

"""Who may delete an AccessRequest (issue 18): its requester withdraws it while it is pending, an
approver of the owner team may delete it unless its access runs or it still awaits a decision
(denied instead, which names who and why: attack 124), the operator retires any; nobody else,
although RBAC lets every requester delete requests (so that they can withdraw their own)."""

from __future__ import annotations

from typing import Any

import pytest

from jitaccess.domain import admission as adm
from jitaccess.domain.teams import Caller
from tests.unit.test_admission import (
    ALICE,
    BOB,
    CAROL,
    LEAD,
    MALLORY,
    PAULA,
    SYSTEM,
    cond,
    delete,
    refused,
    request,
)

PENDING = request(conditions=[cond("Ready", "False", "Pending")])
NEW = request()  # not seen by the operator yet
ESCALATED = request(conditions=[cond("Escalated", "True", "PendingTooLong"), cond("Ready", "False", "Pending")])
DENIED = request(conditions=[cond("Denied", "True", "Denied"), cond("Ready", "False", "Denied")])
EXPIRED = request(conditions=[cond("Approved", "True", "Approved"), cond("Ready", "False", "Expired")])
TIMED_OUT = request(conditions=[cond("Ready", "False", "TimedOut")])
# Denied by an approver, the operator not having taken it yet: decided, its stamp names who.
DENIED_UNSEEN = request(
    conditions=[cond("Ready", "False", "Pending")],
    annotations={"jitaccess.dev/denied": "true", "jitaccess.dev/denied-by": "paula@example.com"},
)
GRANTED = request(conditions=[cond("Approved", "True", "Approved"), cond("Ready", "True", "Granted")])


@pytest.mark.parametrize("old", [PENDING, NEW, ESCALATED])
def test_the_requester_withdraws_a_pending_request(old: dict[str, Any]) -> None:
    assert delete(old, BOB) == adm.ALLOW
    assert delete(old, BOB, team=None) == adm.ALLOW, "even once the Entitlement or its team is gone"


@pytest.mark.parametrize("approver", [PAULA, LEAD])
@pytest.mark.parametrize("old", [DENIED, EXPIRED, TIMED_OUT, DENIED_UNSEEN])
def test_an_approver_of_the_owner_team_may_delete_a_request_whose_access_does_not_run(
    approver: Caller, old: dict[str, Any]
) -> None:
    assert delete(old, approver) == adm.ALLOW


@pytest.mark.parametrize("approver", [PAULA, LEAD])
@pytest.mark.parametrize("old", [PENDING, NEW, ESCALATED])
def test_an_approver_denies_a_request_awaiting_a_decision_rather_than_delete_it(
    approver: Caller, old: dict[str, Any]
) -> None:
    """A deletion leaves no stamp: the `withdrawn` record would name nobody and read as bob's own
    withdrawal; a denial names who and why (attack 124)."""
    refused(
        delete(old, approver),
        "AccessRequest r1 is bob@example.com's request, still awaiting a decision: only bob@example.com withdraws it",
        f"{approver.username} may not delete it, as a deletion leaves no jitaccess.dev/denied-by stamp",
        "kubectl jit deny r1 --reason",
        "once denied, an approver of its owner team may delete it",
    )
    # Their own request is theirs to withdraw, approver or not.
    mine = {**old, "spec": {**old["spec"], "requester": approver.username}}
    assert delete(mine, approver) == adm.ALLOW


@pytest.mark.parametrize("caller", [MALLORY, ALICE, CAROL])
def test_nobody_else_deletes_a_pending_request(caller: Caller) -> None:
    refused(
        delete(PENDING, caller),
        "AccessRequest r1 is bob@example.com's pending request: only bob@example.com may withdraw it",
        "kubectl jit withdraw r1",
        "or an approver of its owner team (paula@example.com, group:payments-leads) deny it",
        f"{caller.username} may not",
    )
    refused(delete(PENDING, caller, team=None), "only bob@example.com may withdraw it")


@pytest.mark.parametrize("old", [DENIED, EXPIRED, TIMED_OUT])
@pytest.mark.parametrize("caller", [BOB, MALLORY])
def test_a_finished_request_is_the_audit_record_even_for_its_requester(old: dict[str, Any], caller: Caller) -> None:
    refused(
        delete(old, caller),
        "is finished (",
        "it is the audit record of that outcome, kept until the operator retires it after the retention period",
        f"{caller.username} may not",
    )


def test_while_access_runs_not_even_an_approver_deletes_the_request() -> None:
    refused(delete(GRANTED, PAULA), "kubectl jit revoke r1")


@pytest.mark.parametrize("old", [PENDING, DENIED, EXPIRED, GRANTED])
def test_the_operator_deletes_any(old: dict[str, Any]) -> None:
    assert delete(old, SYSTEM, team=None) == adm.ALLOW

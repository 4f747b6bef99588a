"""`handlers.requests.reconcile` takes a request up again after each escalation `_decide` records (a backup
approver's decision stamped before the escalation was recorded is taken then). A pass escalates
again only for another owner team, the Entitlement handed over between two looks, so the passes
have no bound of their own but the owner changes: they run in a loop, never one call inside another,
a few at most before kopf retries (`ESCALATIONS_IN_A_ROW`)."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any, cast

import kopf
import pytest

from jitaccess.api.models import AccessRequest
from jitaccess.domain import approvals as approval_rules
from jitaccess.domain import requests as request_rules
from jitaccess.handlers import requests
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.test_eligibility_lapse import pending_request


def looked_at(monkeypatch: pytest.MonkeyPatch, escalations: int) -> list[str]:
    """A request looked at once (`reconcile`) whose passes escalate `escalations` times in a row (the
    owner team handed over before each look), then decide nothing more: the escalations recorded."""
    request = AccessRequest.model_validate(pending_request("bob-r", "bob@example.com", "u-bob"))
    valid = SimpleNamespace(
        entitlement=SimpleNamespace(spec=SimpleNamespace(approval=SimpleNamespace(approvals_required=1)))
    )
    recorded: list[str] = []

    def decide(*_: Any, **__: Any) -> request_rules.PendingDecision | None:
        if len(recorded) < escalations:
            return request_rules.PendingDecision(request_rules.Outcome.ESCALATE, why=f"team {len(recorded)}")
        return None

    def escalate(_rt: Any, current: AccessRequest, _valid: Any, why: str) -> AccessRequest:
        recorded.append(why)
        return current

    monkeypatch.setattr(requests, "lookup", lambda *_: (None, None))
    monkeypatch.setattr(request_rules, "validate", lambda *_: valid)
    monkeypatch.setattr(requests, "approvers_gone", lambda *_: approval_rules.NOBODY_GONE)
    monkeypatch.setattr(request_rules, "decide_pending", decide)
    monkeypatch.setattr(requests, "_escalate", escalate)
    rt = cast(Runtime, SimpleNamespace(settings=Settings()))
    requests.reconcile(rt, request.wire(), {}, {}, announce_ignored=True)
    return recorded


def test_a_few_escalations_in_a_row_are_each_recorded_and_taken_up(monkeypatch: pytest.MonkeyPatch) -> None:
    escalations = requests.ESCALATIONS_IN_A_ROW - 1
    assert len(looked_at(monkeypatch, escalations)) == escalations


def test_an_owner_team_that_keeps_changing_stops_the_look_not_the_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """More escalations in a row than Python's recursion limit, in the extreme: a look records a few,
    then kopf looks again later, saying why (the thread is not held by someone flipping `owner`)."""
    with pytest.raises(kopf.TemporaryError, match="bob-r: escalated 5 times in a row, each for another owner team"):
        looked_at(monkeypatch, sys.getrecursionlimit() + 50)

"""`kubectl jit status`'s "Waiting for" names who may decide the request now, as the operator does
(`requests.approvers_text`): never its requester, who may not decide on their own request, nor an
approver whose approval is counted already (approvalsRequired 2); a team with only backup approvers
before the escalation waits for "nobody before the escalation, then ..."."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jitaccess.api import names
from jitaccess.cli import objects as o
from jitaccess.cli import views
from tests.unit.test_cli_commands import TEAM, FakeApi, cond, out, req, session

PATH = o.path(names.REQUESTS, "r")


def pending(*conditions: dict[str, str], approvals: tuple[str, ...] = ()) -> dict[str, Any]:
    made = req(cond("Ready", "False", "Pending", "waiting for approval"), *conditions)
    notes = {names.ANNOTATION_APPROVALS: json.dumps([{"by": a, "groups": []} for a in approvals])} if approvals else {}
    made["metadata"].update(name="r", uid="u-1", annotations=notes)
    return made


def waiting_for(team_spec: dict[str, Any], request: dict[str, Any]) -> str:
    api = FakeApi()
    api.objects[o.path(names.TEAMS, "payments")] = {**TEAM, "spec": team_spec}
    api.objects[PATH] = request
    s = session(api)
    assert views.status(s, "r", output="table") == 0
    [line] = [line for line in out(s).splitlines() if line.startswith("Waiting for:")]
    return line


@pytest.mark.parametrize(
    ("team_spec", "obj", "shown"),
    [
        # The requester is an approver of the team: the others are named, not them.
        (
            {"approvers": ["alice@example.com", "paula@example.com"]},
            pending(),
            "an approver of team payments: paula@example.com (",
        ),
        # Two approvals needed, paula's counted: another approver must give the second.
        (
            {"approvers": ["paula@example.com", "quinn@example.com"]},
            pending(approvals=("paula@example.com",)),
            "an approver of team payments: quinn@example.com (",
        ),
        # Only backup approvers, not escalated yet: nobody now, and who once it escalates.
        (
            {"backupApprovers": ["carol@example.com", "alice@example.com"]},
            pending(),
            "an approver of team payments: nobody before the escalation, then carol@example.com (",
        ),
        # Escalated: the backup approvers decide now (the requester still not).
        (
            {"approvers": ["alice@example.com"], "backupApprovers": ["carol@example.com"]},
            pending(cond("Escalated", "True", "Escalated")),
            "an approver of team payments: carol@example.com (",
        ),
        # Nobody at all but the requester.
        ({"approvers": ["alice@example.com"]}, pending(), "an approver of team payments: nobody ("),
    ],
)
def test_waiting_for_names_only_who_may_decide_now(team_spec: dict[str, Any], obj: dict[str, Any], shown: str) -> None:
    assert shown in waiting_for(team_spec, obj)


def test_an_unreadable_approvals_list_counts_as_nobody() -> None:
    request = pending()
    request["metadata"]["annotations"] = {names.ANNOTATION_APPROVALS: "not json"}
    assert o.approvals_so_far(request) == []
    assert "paula@example.com" in waiting_for({"approvers": ["paula@example.com"]}, request)

"""The plugin's reading of objects agrees with the domain rules it cannot import on its fast path."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jitaccess.api.models import TeamOwnershipSpec
from jitaccess.cli import objects as o
from jitaccess.cli import text, views
from jitaccess.cli.objects import Identity
from jitaccess.domain import requests as request_rules
from jitaccess.domain.teams import Caller, is_member

TEAM = {
    "spec": {
        "members": ["alice"],
        "memberGroups": ["team-payments"],
        "approvers": ["paula"],
        "approverGroups": ["leads"],
        "backupApprovers": ["carol"],
    }
}


@pytest.mark.parametrize(
    ("user", "groups"),
    [("alice", set()), ("eve", {"team-payments"}), ("bob", {"team-ledger"}), ("paula", set()), ("x", set())],
)
def test_membership_is_the_domains(user: str, groups: set[str]) -> None:
    spec = TeamOwnershipSpec.model_validate(TEAM["spec"])
    assert o.is_member(TEAM, Identity(user, frozenset(groups))) == is_member(spec, Caller(user, frozenset(groups)))


@pytest.mark.parametrize("user", ["m\u0430llory", "system:serviceaccount:payments:deployer", "alice"])
def test_a_member_name_that_confers_nothing_is_no_member_in_the_plugin_either(user: str) -> None:
    stored = {"spec": {"members": ["m\u0430llory", "system:serviceaccount:payments:deployer", "alice"]}}
    spec = TeamOwnershipSpec.model_validate(stored["spec"])
    assert o.is_member(stored, Identity(user, frozenset())) == is_member(spec, Caller(user)) == (user == "alice")


def test_approvers_are_the_domains() -> None:
    spec = TeamOwnershipSpec.model_validate(TEAM["spec"])
    for escalated in (False, True):
        assert ", ".join(o.approvers_of(TEAM, escalated=escalated)) == request_rules.approvers_text(spec, escalated)


@pytest.mark.parametrize(
    ("fields", "outsider", "member"),
    [
        (
            {
                "memberGroups": ["system:authenticated", "team-payments"],
                "approvers": ["paula", "system:admin"],
                "approverGroups": ["system:masters"],
                "backupApproverGroups": ["system:serviceaccounts"],
            },
            {"system:authenticated"},
            {"system:authenticated", "team-payments"},
        ),
        (
            {
                "memberGroups": ["te\u0430m-payments", "Domain Admins"],
                "approvers": ["paula", "p\u0430ula", "lena smith"],
                "approverGroups": [" leads"],
                "backupApprovers": ["carol", "carol\u200b"],
            },
            {"te\u0430m-payments"},
            {"Domain Admins"},
        ),
    ],
    ids=["kubernetes-own", "reads-as-another"],
)
def test_a_name_that_confers_nothing_makes_nobody_a_member_or_approver_in_the_plugin_either(
    fields: dict[str, list[str]], outsider: set[str], member: set[str]
) -> None:
    """A TeamOwnership stored before admission refused `system:` names, or names that read as
    someone else's (a Cyrillic a, a padded or an invisible character's name; a user name with a
    space, which a group's may hold): the plugin must not tell mallory (in no team, but in
    `system:authenticated` as every user is, or in the look-alike group) that she is of the team and
    gets access at once, nor send a requester to `system:masters` or `p\u0430ula` for an approval."""
    stored = {"spec": {**TEAM["spec"], **fields}}
    spec = TeamOwnershipSpec.model_validate(stored["spec"])
    for user, groups in [("mallory", outsider), ("eve", member)]:
        caller = Identity(user, frozenset(groups))
        assert o.is_member(stored, caller) == is_member(spec, Caller(user, frozenset(groups))) == (user == "eve")
    assert o.approvers_of(stored, escalated=False) == ["paula"]
    assert o.approvers_of(stored, escalated=True) == ["paula", "carol"]
    assert o.backup_approvers_of(stored) == ["carol"]
    for escalated in (False, True):
        assert ", ".join(o.approvers_of(stored, escalated=escalated)) == request_rules.approvers_text(spec, escalated)


def condition(type_: str, status: str, reason: str) -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason}


def test_who_approved_and_what_waits() -> None:
    auto = {
        "status": {"conditions": [condition("Approved", "True", "AutoApproved"), condition("Ready", "True", "Granted")]}
    }
    person = {"status": {"approvedBy": "lena", "conditions": [condition("Approved", "True", "Approved")]}}
    pending = {"status": {"conditions": [condition("Ready", "False", "Pending")]}}
    provisioning = {
        "status": {
            "conditions": [condition("Approved", "True", "AutoApproved"), condition("Ready", "False", "Pending")]
        }
    }
    assert o.approved_by(auto) == "auto (owner team)"
    assert o.approved_by(person) == "lena"
    assert o.approved_by(pending) == ""
    assert o.awaiting_decision(pending) and not o.awaiting_decision(provisioning)
    assert o.requester({"spec": {"requester": "a"}, "status": {"requester": "b"}}) == "b"


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_ages_and_expiry_times(utc: None) -> None:
    assert [text.human_age(s) for s in (5, 119, 200, 600, 7200, 4 * 3600 + 60, 30 * 3600, 3 * 86400, 9 * 86400)] == [
        "5s",
        "119s",
        "3m20s",
        "10m",
        "120m",
        "4h1m",
        "30h",
        "3d",
        "9d",
    ]
    now = datetime(2030, 1, 2, 10, 0, 0, tzinfo=UTC)
    assert text.until(now + timedelta(minutes=59, seconds=59.6), now) == "10:59:59 UTC (in 60m)"
    assert text.until(now + timedelta(days=1), now) == "2030-01-03 10:00:00 UTC (in 24h)"
    assert text.until(now - timedelta(seconds=30), now) == "09:59:30 UTC (30s ago)"
    assert text.until(None, now) == "-"


def test_who_has_shows_a_break_glass_approval_with_its_review() -> None:
    now = datetime(2026, 12, 2, 6, 30, tzinfo=UTC)
    approved = {"type": "Approved", "status": "True", "reason": "BreakGlass", "message": "break-glass"}

    def request(**status: Any) -> dict[str, Any]:
        return {"metadata": {"name": "carol-x", "annotations": {}}, "status": {**status, "conditions": [approved]}}

    due = "2026-12-03T06:06:31Z"
    assert views.holder_approval(request(reviewDeadline=due), now) == f"break-glass (not reviewed yet, due {due})"
    overdue = views.holder_approval(request(reviewDeadline=due), now + timedelta(days=2))
    assert overdue == f"break-glass (review overdue since {due})"
    reviewed = request(reviewDeadline=due, reviewedBy="paula")
    assert views.holder_approval(reviewed, now + timedelta(days=2)) == "break-glass (reviewed by paula)"
    # Other approvals read as before.
    human = {"metadata": {"annotations": {}}, "status": {"approvedBy": "lena", "conditions": []}}
    assert views.holder_approval(human, now) == "lena"
    auto = {"status": {"conditions": [{**approved, "reason": "AutoApproved"}]}}
    assert views.holder_approval(auto, now) == "auto (owner team)"
    assert views.holder_approval({}, now) == "-"

"""Whom the Slack impersonator may act as (`handlers.slack_rbac`): every approver, and nobody else.
An approver it may not act as is warned of on their team; someone it may act as who is no approver
of any team now (taken out of a team in Git, the ClusterRole and `slack.approvers` not rendered
again) is warned of too, on the team whose change made it so."""

from __future__ import annotations

import logging
from typing import Any

import kopf
import kubernetes
import pytest

from jitaccess.adapters.impersonation import DecisionError, Impersonator
from jitaccess.domain import impersonation
from jitaccess.handlers import slack_rbac

LENA, PAULA, CAROL, BOB = (f"{n}@example.com" for n in ("lena", "paula", "carol", "bob"))
#: What every authenticated identity may do (system:basic-user), as a SelfSubjectRulesReview lists it.
BASIC = [
    {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews"]},
    {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectrulesreviews"]},
]


def _impersonate(*users: str, **rule: Any) -> dict[str, Any]:
    return {"verbs": ["impersonate"], "apiGroups": [""], "resources": ["users"], "resourceNames": list(users)} | rule


def test_whom_the_rules_let_it_impersonate() -> None:
    assert impersonation.impersonable([*BASIC, _impersonate(LENA, PAULA), _impersonate(CAROL)]) == [CAROL, LENA, PAULA]
    assert impersonation.impersonable(BASIC) == []
    # Wildcards count; another resource, verb or group does not.
    assert impersonation.impersonable([_impersonate(BOB, verbs=["*"], apiGroups=["*"], resources=["*"])]) == [BOB]
    assert impersonation.impersonable([_impersonate(BOB, resources=["groups"])]) == []
    assert impersonation.impersonable([_impersonate(BOB, verbs=["get"])]) == []
    assert impersonation.impersonable([_impersonate(BOB, apiGroups=["authentication.k8s.io"])]) == []
    # No resourceNames: any user at all.
    assert impersonation.impersonable([*BASIC, _impersonate(LENA), _impersonate()]) is None


def test_not_approvers_are_those_no_team_names() -> None:
    teams = [{"spec": {"approvers": [LENA]}}, {"spec": {"approvers": [PAULA], "backupApprovers": [CAROL]}}]
    assert impersonation.not_approvers([CAROL, LENA, PAULA], teams) == []
    assert impersonation.not_approvers([BOB, CAROL, LENA, "system:admin"], teams[1:]) == [BOB, LENA, "system:admin"]


def test_the_impersonator_asks_rbac_for_its_own_rules() -> None:
    """A SelfSubjectRulesReview: any authenticated identity may ask it; its cluster-wide rules are
    those of every namespace, asked in kube-system."""
    asked: list[Any] = []

    class Authz:
        def create_self_subject_rules_review(self, review: Any, **_: Any) -> Any:
            asked.append(review)
            rules = [kubernetes.client.V1ResourceRule(verbs=["create"], api_groups=["authentication.k8s.io"])]
            rules.append(
                kubernetes.client.V1ResourceRule(
                    verbs=["impersonate"], api_groups=[""], resources=["users"], resource_names=[PAULA, LENA]
                )
            )
            status = kubernetes.client.V1SubjectRulesReviewStatus(
                resource_rules=rules, non_resource_rules=[], incomplete=False
            )
            return kubernetes.client.V1SelfSubjectRulesReview(spec=review.spec, status=status)

    checker = Impersonator(kubernetes.client.ApiClient())
    checker._authz = Authz()
    try:
        assert checker.impersonable() == [LENA, PAULA]
    finally:
        checker.close()
    assert [review.spec.namespace for review in asked] == ["kube-system"]


class FakeImpersonator(Impersonator):
    """RBAC as the test sets it: whom it may impersonate (`users`; None: anyone)."""

    def __init__(self, users: list[str] | None) -> None:
        self.users = users
        self.failing = False

    def impersonable(self) -> list[str] | None:
        if self.failing:
            raise DecisionError(0, "the API server did not answer")
        return self.users

    def may_impersonate(self, username: str) -> bool:
        return self.users is None or username in self.users


@pytest.fixture
def warned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """The Warning Events posted: (object, reason, message)."""
    posted: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        kopf, "warn", lambda body, *, reason, message: posted.append((body["metadata"]["name"], reason, message))
    )
    return posted


def _team(name: str, approvers: list[str], generation: int = 1, **spec: Any) -> kopf.Body:
    raw = {"metadata": {"name": name, "generation": generation}, "spec": {"approvers": approvers, **spec}}
    return kopf.Body(raw)


async def _event(memo: kopf.Memo, type: str | None, team: kopf.Body, teams: dict[str, list[dict[str, Any]]]) -> None:
    await slack_rbac.check_impersonation(type=type, body=team, memo=memo, teams=teams)


def _memo(checker: Impersonator) -> kopf.Memo:
    memo = kopf.Memo()
    memo[slack_rbac._CHECKER], memo[slack_rbac._CHECKED] = checker, {}
    return memo


async def test_an_approver_taken_out_of_every_team_is_reported_on_the_team_that_changed(
    warned: list[tuple[str, str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    memo = _memo(FakeImpersonator([LENA, PAULA]))
    ledger, payments = _team("ledger", [LENA]), _team("payments", [PAULA])
    teams = {"ledger": [dict(ledger["spec"])], "payments": [dict(payments["spec"])]}
    with caplog.at_level(logging.INFO, logger=slack_rbac.log.name):
        for team in (ledger, payments):  # listed at start: nothing to say
            await _event(memo, None, team, teams)
        assert warned == [] and not caplog.records

        # lena is no longer ledger's tech lead (a pull request): the ClusterRole still lists her.
        ledger = _team("ledger", [BOB], generation=2)
        teams["ledger"] = [dict(ledger["spec"])]
        await _event(memo, "MODIFIED", ledger, teams)
        ((where, reason, message),) = [w for w in warned if w[1] == slack_rbac.EXTRA_REASON]
        assert (where, reason) == ("ledger", "SlackNonApproverImpersonable")
        assert message.startswith(f"the Slack interactivity endpoint may still act as {LENA}, who is no approver")
        assert "slack.approvers" in message and "kubectl jit rbac slack" in message
        # bob, the new lead, is missing from it: said as before.
        assert [w[1] for w in warned] == [slack_rbac.EXTRA_REASON, slack_rbac.REASON]
        logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any(line.startswith(f"TeamOwnership ledger modified: {message}") for line in logged), logged

        # Said once: another team's change does not repeat it.
        payments = _team("payments", [PAULA], generation=2, slackChannel="C0PAY")
        teams["payments"] = [dict(payments["spec"])]
        await _event(memo, "MODIFIED", payments, teams)
        assert len([w for w in warned if w[1] == slack_rbac.EXTRA_REASON]) == 1

        # The role rendered again: said in the log.
        memo[slack_rbac._CHECKER].users = [BOB, PAULA]
        ledger = _team("ledger", [BOB], generation=3, slackChannel="C0LED")
        teams["ledger"] = [dict(ledger["spec"])]
        await _event(memo, "MODIFIED", ledger, teams)
    assert any("may act as approvers only again" in r.getMessage() and LENA in r.getMessage() for r in caplog.records)


async def test_a_deleted_team_leaves_its_approvers_reported_in_the_log(
    warned: list[tuple[str, str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    memo = _memo(FakeImpersonator([LENA, PAULA]))
    ledger = _team("ledger", [LENA])
    teams = {"payments": [{"approvers": [PAULA]}]}  # the index has let ledger go
    with caplog.at_level(logging.WARNING, logger=slack_rbac.log.name):
        await _event(memo, "DELETED", ledger, teams)
    assert warned == []  # nobody reads an Event of a deleted object
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"TeamOwnership ledger deleted: the Slack interactivity endpoint may still act as {LENA}")


async def test_an_impersonator_that_may_act_as_anyone_is_reported(warned: list[tuple[str, str, str]]) -> None:
    memo = _memo(FakeImpersonator(None))
    ledger = _team("ledger", [LENA])
    await _event(memo, "ADDED", ledger, {"ledger": [dict(ledger["spec"])]})
    ((_, reason, message),) = warned
    assert reason == slack_rbac.EXTRA_REASON and "may still act as any user" in message


async def test_rbac_not_answering_reports_nothing_and_asks_again(
    warned: list[tuple[str, str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    checker = FakeImpersonator([LENA])
    checker.failing = True
    memo = _memo(checker)
    with caplog.at_level(logging.WARNING, logger=slack_rbac.log.name):
        await _event(memo, "ADDED", _team("payments", [PAULA]), {"payments": [{"approvers": [PAULA]}]})
    assert [w for w in warned if w[1] == slack_rbac.EXTRA_REASON] == []
    assert any("cannot tell whom the Slack impersonator may act as" in r.getMessage() for r in caplog.records)

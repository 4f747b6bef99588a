"""Approval fatigue: what a user may have waiting for an approver (`requests.waiting_problem`),
where admission asks it (`admission._request_valid`), and how a replica knows what waits
(`runtime.WaitingRequests`, fed by `indexes.waiting`)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any, cast

import pytest

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.domain import admission as adm
from jitaccess.domain import requests as request_rules
from jitaccess.domain.admission import Admit, OperatorIdentity, Phase, Refusal
from jitaccess.domain.requests import Limits, ValidRequest, Waiting
from jitaccess.domain.teams import Caller
from jitaccess.handlers import indexes, startup
from jitaccess.handlers.runtime import PerUser, Runtime, WaitingRequests
from jitaccess.settings import Settings
from tests.unit.factories import T0, entitlement, request, team

LIMITS = Limits(min_duration=timedelta(minutes=1), pending_timeout=timedelta(hours=24), max_pending_per_user=3)
BOB = Caller("bob@example.com", frozenset({"team-ledger", "system:authenticated"}))
ALICE = Caller("alice@example.com", frozenset({"team-payments", "system:authenticated"}))


def valid(name: str = "prod-eng-payments") -> ValidRequest:
    return request_rules.validate(request(), entitlement().model_copy(update={"metadata": _meta(name)}), team(), LIMITS)


def _meta(name: str) -> Any:
    return entitlement().metadata.model_copy(update={"name": name})


# --- the rule ---------------------------------------------------------------------------------------


def test_nothing_waiting_lets_it_wait() -> None:
    assert request_rules.waiting_problem("r2", valid(), False, [], LIMITS, T0) is None


def test_a_second_request_for_the_same_access_now_is_refused_naming_the_first() -> None:
    problem = request_rules.waiting_problem("r2", valid(), False, [Waiting("r1", "prod-eng-payments")], LIMITS, T0)
    assert problem is not None
    assert problem.startswith("spec.entitlement: your AccessRequest r1 for prod-eng-payments already waits")
    assert "paula@example.com" in problem and "kubectl jit withdraw r1" in problem


def test_the_request_itself_is_not_its_own_duplicate() -> None:
    # VALIDATE may be asked again of the same object (its reservation is already there).
    assert request_rules.waiting_problem("r1", valid(), False, [Waiting("r1", "prod-eng-payments")], LIMITS, T0) is None


@pytest.mark.parametrize(("mine", "theirs"), [(True, False), (False, True), (True, True)])
def test_windows_of_their_own_are_not_duplicates(mine: bool, theirs: bool) -> None:
    others = [Waiting("r1", "prod-eng-payments", scheduled=theirs)]
    assert request_rules.waiting_problem("r2", valid(), mine, others, LIMITS, T0) is None


def test_other_access_waiting_is_not_a_duplicate() -> None:
    assert request_rules.waiting_problem("r2", valid(), False, [Waiting("r1", "prod-eng-ledger")], LIMITS, T0) is None


def test_the_limit_counts_every_waiting_request_and_names_them() -> None:
    others = [Waiting(f"r{i}", f"ent-{i}") for i in (3, 1, 2)]
    problem = request_rules.waiting_problem("r9", valid(), False, others, LIMITS, T0)
    assert problem is not None
    assert "you already have 3 requests waiting for a decision (r1, r2, r3)" in problem
    assert "(3)" in problem and "kubectl jit withdraw NAME" in problem
    assert request_rules.waiting_problem("r9", valid(), False, others[:2], LIMITS, T0) is None


def test_a_limit_of_zero_turns_both_rules_off() -> None:
    unlimited = Limits(LIMITS.min_duration, LIMITS.pending_timeout, max_pending_per_user=0)
    many = [Waiting(f"r{i}", f"ent-{i}") for i in range(50)]
    assert request_rules.waiting_problem("new", valid(), False, many, unlimited, T0) is None
    same = [*many, Waiting("old", "prod-eng-payments")]
    assert request_rules.waiting_problem("new", valid(), False, same, unlimited, T0) is None
    assert request_rules.waiting_problem("new", valid(), False, same[-1:], LIMITS, T0) is not None


def test_a_request_past_its_decision_deadline_waits_no_more() -> None:
    # LIMITS times requests out a day after their creation; the operator's timer may not have noticed.
    day = timedelta(hours=24)
    timed_out = Waiting("old", "prod-eng-payments", created=T0 - day)
    assert request_rules.waiting_problem("new", valid(), False, [timed_out], LIMITS, T0) is None
    still = Waiting("old", "prod-eng-payments", created=T0 - day + timedelta(seconds=1))
    assert request_rules.waiting_problem("new", valid(), False, [still], LIMITS, T0) is not None


# --- where admission asks it --------------------------------------------------------------------------


def _stamped(caller: Caller, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "new", "creationTimestamp": T0.isoformat(), "annotations": {}},
        "spec": {
            "entitlement": "prod-eng-payments",
            "reason": "INFRA-2441 fix stuck batch",
            "requester": caller.username,
            "requesterGroups": sorted(caller.groups),
            **spec,
        },
    }


def _validate(caller: Caller, new: dict[str, Any], asked: list[str], *, eligible: bool = True, **rules: Any) -> Any:
    def waiting(v: ValidRequest) -> str | None:
        asked.append(v.requester)
        return "crowded"

    return adm.review_request(
        "CREATE",
        None,
        new,
        caller,
        operator=OperatorIdentity(frozenset({"system:jitaccess"})),
        entitlement=entitlement(**rules),
        team=team(),
        limits=LIMITS,
        phase=Phase.VALIDATE,
        now=T0,
        eligibility=lambda v: None if eligible else "not in prod-eligible",
        waiting=waiting,
    )


def test_a_request_that_waits_for_an_approver_is_refused_by_the_check() -> None:
    asked: list[str] = []
    verdict = _validate(BOB, _stamped(BOB), asked)
    assert verdict == Refusal("crowded")
    assert asked == ["bob@example.com"]


def test_an_auto_approved_request_is_never_asked_about() -> None:
    asked: list[str] = []
    verdict = _validate(ALICE, _stamped(ALICE), asked, approval={"autoApproveOwnerTeam": True})
    assert isinstance(verdict, Admit) and asked == []


def test_break_glass_is_never_asked_about() -> None:
    asked: list[str] = []
    rules = {"breakGlass": {"groups": ["team-ledger"], "minReasonLength": 10, "maxDuration": "1h"}}
    new = _stamped(BOB, breakGlass=True, reason="INC-7 the ledger is down and paging everyone")
    verdict = _validate(BOB, new, asked, **rules)
    assert isinstance(verdict, Admit), verdict
    assert asked == []


def test_an_ineligible_request_is_refused_for_that_and_counts_as_nothing() -> None:
    asked: list[str] = []
    verdict = _validate(BOB, _stamped(BOB), asked, eligible=False)
    assert isinstance(verdict, Refusal) and "not in prod-eligible" in verdict.message
    assert asked == []  # a "yes" would have counted it as waiting


# --- what a replica knows waits -------------------------------------------------------------------------


def _stored(name: str, *, reason: str | None = None, decided: str | None = None, **spec: Any) -> Any:
    """A stored request of bob's, created at T0."""
    conditions = [{"type": "Ready", "status": "False", "reason": reason}] if reason else []
    if decided:  # the operator's record of a decision (an approver's annotation it has not seen yet is not)
        conditions.append({"type": decided, "status": "True", "reason": "ByApprover"})
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-11-23T12:00:00Z"},
        "spec": {"entitlement": "prod-eng-ledger", "requester": "bob@example.com", **spec},
        "status": {"conditions": conditions},
    }


def test_the_watch_counts_requests_from_their_creation_until_their_decision() -> None:
    assert indexes.waiting(_stored("a")) == ("bob@example.com", Waiting("a", "prod-eng-ledger", False, T0))
    assert indexes.waiting(_stored("a", reason="Pending", startTime="2026-11-24T09:00:00Z")) == (
        "bob@example.com",
        Waiting("a", "prod-eng-ledger", True, T0),
    )
    assert indexes.waiting(_stored("a", reason="Pending", decided="Approved")) is None
    assert indexes.waiting(_stored("a", reason="Pending", decided="Denied")) is None
    for reason in ("Scheduled", "Granted", "Denied", "TimedOut", "Invalid", "NotEligible"):
        assert indexes.waiting(_stored("a", reason=reason)) is None, reason
    assert indexes.waiting(_stored("a", breakGlass=True)) is None
    assert indexes.waiting(_stored("a", requester="")) is None
    # Withdrawn, whatever keeps it from going (a finalizer): it waits for nobody any more.
    deleting = _stored("a", reason="Pending")
    deleting["metadata"]["deletionTimestamp"] = "2026-11-23T12:05:00Z"
    assert indexes.waiting(deleting) is None


def _admit(known: WaitingRequests, name: str, entitlement: str = "prod-eng-ledger") -> str | None:
    mine = Waiting(name, entitlement)
    return known.admit(
        "bob@example.com", mine, lambda others: "dup" if any(o.entitlement == entitlement for o in others) else None
    )


def test_an_admitted_request_counts_until_the_watch_takes_over() -> None:
    known = WaitingRequests()
    assert _admit(known, "a") is None
    assert known.of("bob@example.com") == [Waiting("a", "prod-eng-ledger")]
    assert _admit(known, "b") == "dup"  # refused: not counted
    assert known.of("bob@example.com") == [Waiting("a", "prod-eng-ledger")]
    known.observe("a", ("bob@example.com", Waiting("a", "prod-eng-ledger")))
    assert known.of("bob@example.com") == [Waiting("a", "prod-eng-ledger")]  # once, not twice
    known.observe("a", None)  # decided: the watch's word is final, the admission forgotten
    assert known.of("bob@example.com") == []
    assert known.of("alice@example.com") == []


def test_an_admission_the_watch_never_shows_is_forgotten() -> None:
    known = WaitingRequests(seconds=0.05)
    assert _admit(known, "a") is None
    time.sleep(0.1)
    assert known.of("bob@example.com") == []
    assert _admit(known, "b") is None


def test_concurrent_admissions_see_each_other() -> None:
    known, start = WaitingRequests(), threading.Barrier(16)
    answers: list[str | None] = []

    def one(i: int) -> None:
        start.wait()
        answers.append(_admit(known, f"r{i}"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count(None) == 1 and answers.count("dup") == 15


class _Listing:
    """The API server at start-up, as `Runtime.kube`: every stored object of a kind, paged."""

    def __init__(self, **stored: list[dict[str, Any]]) -> None:
        self.stored = stored

    def each(self, plural: str) -> list[dict[str, Any]]:
        return self.stored.get(plural, [])


def test_a_replica_knows_what_waits_before_its_webhooks_answer() -> None:
    """kopf starts the webhook server beside the watches: a replica new in a rollout answers before
    its requests' watch has listed what waits. The start-up listing fills it first."""
    withdrawn = _stored("c", reason="Pending")
    withdrawn["metadata"]["deletionTimestamp"] = "2026-11-23T12:05:00Z"
    listing = _Listing(accessrequests=[_stored("a", reason="Pending"), _stored("b", reason="Granted"), withdrawn])
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, listing))
    startup.know_what_is_stored(rt)
    assert rt.waiting.of("bob@example.com") == [Waiting("a", "prod-eng-ledger", False, T0)]
    assert [p.name for p in rt.pending.get("prod-eng-ledger", ())] == ["a"]
    # A second request for the same access is refused naming the first, as once the watch has listed.
    ledger = valid("prod-eng-ledger")
    problem = rt.waiting.admit(
        "bob@example.com",
        Waiting("d", "prod-eng-ledger"),
        lambda others: request_rules.waiting_problem("d", ledger, False, others, LIMITS, T0),
    )
    assert problem is not None and "your AccessRequest a for prod-eng-ledger already waits" in problem


# --- how fast one user may create requests ---------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_user_may_create_per_minute_at_once_then_at_that_pace() -> None:
    clock = Clock()
    creations = PerUser(6, clock=clock)
    assert [creations.take("bob") for _ in range(6)] == [0.0] * 6
    assert creations.take("bob") == pytest.approx(10.0)  # one every 10 s
    assert creations.take("alice") == 0.0  # each user has their own
    clock.now += 5
    assert creations.take("bob") == pytest.approx(5.0)  # a refusal takes nothing
    clock.now += 5
    assert creations.take("bob") == 0.0
    assert creations.take("bob") == pytest.approx(10.0)
    clock.now += 600
    assert [creations.take("bob") for _ in range(7)][-2:] == [0.0, pytest.approx(10.0)]  # full again, no more


def test_zero_per_minute_is_no_limit() -> None:
    creations = PerUser(0)
    assert {creations.take("bob") for _ in range(1000)} == {0.0}


def test_users_idle_for_a_minute_are_forgotten_once_there_are_many() -> None:
    clock = Clock()
    creations = PerUser(2, clock=clock)
    for n in range(1000):
        creations.take(f"user-{n}")
    creations.take("bob")
    creations.take("bob")
    clock.now += 61
    assert creations.take("carol") == 0.0  # the pruning pass: only carol is left
    assert len(creations._buckets) == 1
    assert creations.take("bob") == 0.0  # bob's bucket had filled up again anyway


def test_the_refusal_says_the_limit_and_when_to_try_again() -> None:
    message = request_rules.creation_rate_problem(30, 1.2)
    assert message.startswith("you are creating AccessRequests faster than the 30 a minute one user may")
    assert message.endswith("try again in 2 s")
    # Extensions take from the same budget, and the message says so.
    message = request_rules.creation_rate_problem(30, 0.1, "AccessExtension")
    assert message.startswith("you are creating AccessExtensions faster than the 30 a minute")
    assert "AccessRequests and AccessExtensions together" in message and message.endswith("try again in 1 s")


def test_a_peek_answers_the_same_and_takes_nothing() -> None:
    clock = Clock()
    asks = PerUser(2, period=3600.0, clock=clock)
    assert asks.take("bob", peek=True) == 0.0
    assert [asks.take("bob"), asks.take("bob")] == [0.0, 0.0]
    assert asks.take("bob", peek=True) == pytest.approx(1800.0)  # 2 an hour: one every 30 minutes
    assert asks.take("bob") == pytest.approx(1800.0)
    clock.now += 1800
    assert asks.take("bob", peek=True) == 0.0
    assert asks.take("bob") == 0.0


def test_asking_too_often_says_when_to_ask_again() -> None:
    message = request_rules.asks_problem(12, 289.2)
    assert message.startswith("you have asked approvers for access 12 times within the last hour")
    assert "withdrawn requests count too" in message and "ask again in 4m50s, or talk to an approver" in message

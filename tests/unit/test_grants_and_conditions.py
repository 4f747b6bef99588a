"""Grant timing, reference counting, retention, and condition bookkeeping."""

from datetime import timedelta

from jitaccess.domain import conditions as cond
from jitaccess.domain import grants as grant_rules
from jitaccess.domain.teams import Caller, is_member, may_approve, team_problems
from tests.unit.factories import T0, condition, grant, team


def test_activation_window_runs_from_now_for_the_duration() -> None:
    window = grant_rules.activation_window(grant(), T0)
    assert window.activation_time == T0
    assert window.expiration_time == T0 + timedelta(hours=1)


def test_seconds_left_comes_from_persisted_status() -> None:
    active = grant(expirationTime=(T0 + timedelta(seconds=30)).isoformat())
    assert grant_rules.seconds_left(active, T0) == 30
    assert grant_rules.seconds_left(active, T0 + timedelta(minutes=5)) < 0
    assert grant_rules.seconds_left(grant(), T0) == 0


def test_states() -> None:
    assert grant_rules.state(grant()) == "Provisioning"
    assert grant_rules.is_active(grant(conditions=[condition("Ready", "True", "Active")]))
    for word in ("Expired", "Revoked", "Failed"):
        assert grant_rules.is_finished(grant(conditions=[condition("Ready", "False", word)]))


def test_membership_kept_while_another_grant_holds_it() -> None:
    assert grant_rules.other_holders(["g1", "g2"], "g1", []) == {"g2"}


def test_membership_goes_with_the_last_holder() -> None:
    assert grant_rules.other_holders(["g1"], "g1", []) == set()


def test_grants_just_ended_here_do_not_count_even_if_the_index_lags() -> None:
    assert grant_rules.other_holders(["g1", "g2"], "g1", ["g2"]) == set()


def test_membership_key_is_the_user_id_not_a_case_folded_name() -> None:
    # Two Identity Store users whose names differ only in case are two people (two UserIds).
    assert grant_rules.membership_key("id-alice", "g") != grant_rules.membership_key("id-Alice", "g")


def test_a_grant_ended_when_it_expired_and_an_active_one_has_not() -> None:
    """Retention counts from here (the finished index files grants by it)."""
    ended = grant(conditions=[condition("Ready", "False", "Expired")], expirationTime=T0.isoformat())
    assert grant_rules.ended_at(ended.status) == T0
    active = grant(conditions=[condition("Ready", "True", "Active")], expirationTime=T0.isoformat())
    assert grant_rules.ended_at(active.status) is None


def test_condition_transition_time_moves_only_on_status_flip() -> None:
    first = cond.set_condition([], "Ready", False, "Pending", "waiting", T0)
    later = cond.set_condition(first, "Ready", False, "Pending", "still waiting", T0 + timedelta(minutes=1))
    assert later[0].last_transition_time == T0 and later[0].message == "still waiting"
    flipped = cond.set_condition(later, "Ready", True, "Granted", "ok", T0 + timedelta(minutes=2))
    assert flipped[0].last_transition_time == T0 + timedelta(minutes=2)
    assert cond.ready_reason(flipped) == "Granted" and cond.is_true(flipped, "Ready")


def test_conditions_of_other_types_are_kept() -> None:
    both = cond.set_condition(
        cond.set_condition([], "Approved", True, "AutoApproved", "", T0), "Ready", True, "G", "", T0
    )
    assert {c.type for c in both} == {"Approved", "Ready"}


def test_team_membership_and_approval_rules() -> None:
    spec = team(memberGroups=["team-payments"], approverGroups=["leads"])
    assert is_member(spec, Caller("alice@example.com"))
    assert is_member(spec, Caller("x@example.com", frozenset({"team-payments"})))
    assert not is_member(spec, Caller("mallory@example.com"))
    assert may_approve(spec, Caller("y@example.com", frozenset({"leads"})), requester="bob", escalated=False) is None
    assert may_approve(spec, Caller("carol@example.com"), requester="bob", escalated=True) is None


def test_team_without_approvers_is_reported() -> None:
    assert team_problems(team(approvers=[])) and not team_problems(team())


def test_a_stamped_user_id_stands_for_a_fresh_answer_for_a_few_seconds_only() -> None:
    admitted = T0
    assert grant_rules.stamp_is_fresh(admitted, admitted + timedelta(seconds=0.3))
    assert grant_rules.stamp_is_fresh(admitted, admitted + grant_rules.STAMP_STANDS_FOR)
    assert not grant_rules.stamp_is_fresh(admitted, admitted + grant_rules.STAMP_STANDS_FOR + timedelta(seconds=0.1))
    # An approval that took a person, a scheduled start: asked again.
    assert not grant_rules.stamp_is_fresh(admitted, admitted + timedelta(minutes=10))
    # No creation time known, or one in the future (clocks apart): asked again.
    assert not grant_rules.stamp_is_fresh(None, admitted)
    assert not grant_rules.stamp_is_fresh(admitted, admitted - timedelta(seconds=1))

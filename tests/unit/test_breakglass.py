"""Break-glass (`jitaccess.domain.breakglass`) and on-call approval rules: who may, with what reason,
for how long, how often; the review; what a grant rests on."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.api import audit, names
from jitaccess.api.models import AccessRequest
from jitaccess.domain import admission as adm
from jitaccess.domain import breakglass
from jitaccess.domain import requests as rules
from jitaccess.domain.admission import Admit, Phase, Refusal
from jitaccess.errors import InvalidInput
from jitaccess.handlers import breakglass as break_glass_handlers
from jitaccess.handlers.indexes import Awaiting
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit import factories
from tests.unit.test_admission import (
    ALICE,
    CAROL,
    LIMITS,
    NOW,
    OPERATOR,
    PAULA,
    SYSTEM,
    TEAM,
    obj,
    review_request,
    with_annotations,
)
from tests.unit.test_eligibility_lapse import StoredKube

REASON = "INC-7 payments API down since 03:00, rolling back release 2026.11.3"
GLASS = {"groups": ["sre"], "minReasonLength": 40, "maxDuration": "1h", "reviewWithin": "24h", "perUserPerDay": 2}
ENTITLEMENT = factories.entitlement(breakGlass=GLASS)


def carol_request(**spec: Any) -> Any:
    base = {"reason": REASON, "requester": CAROL.username, "requesterGroups": sorted(CAROL.groups), "breakGlass": True}
    return factories.request(**{**base, **spec})


def validate(request: Any, entitlement: Any = ENTITLEMENT) -> rules.ValidRequest:
    return rules.validate(request, entitlement, TEAM, LIMITS)


def test_a_member_of_the_groups_gets_it_capped_to_the_break_glass_duration() -> None:
    valid = validate(carol_request())
    assert valid.break_glass and valid.duration == timedelta(hours=1)
    assert validate(carol_request(duration="30m")).duration == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"requesterGroups": ["team-payments"]}, "spec.breakGlass", "only to members of the group(s) sre"),
        ({"reason": "INC-7 down"}, "spec.reason", "needs at least 40"),
        ({"duration": "2h"}, "spec.duration", "ask for 1h or less"),
        ({"startTime": "2030-01-01T06:00:00Z"}, "spec.startTime", "begins at once"),
    ],
)
def test_refused_outside_the_groups_with_a_short_reason_or_too_long(
    spec: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate(carol_request(**spec))
    assert caught.value.field == field and words in str(caught.value)


def test_an_entitlement_without_break_glass_refuses_it() -> None:
    with pytest.raises(InvalidInput, match="does not allow break-glass"):
        validate(carol_request(), factories.entitlement())


def test_the_rate_limit_counts_earlier_requests_of_the_last_day_only() -> None:
    policy = breakglass.policy(ENTITLEMENT)
    t0 = factories.T0
    two = [breakglass.Earlier("a", t0 - timedelta(hours=2)), breakglass.Earlier("b", t0 - timedelta(hours=1))]
    problem = breakglass.rate_problem(policy, CAROL.username, two, at=t0)
    assert problem is not None and "perUserPerDay is 2" in problem and "a, b" in problem
    old = [breakglass.Earlier("a", t0 - timedelta(hours=25)), two[1]]
    assert breakglass.rate_problem(policy, CAROL.username, old, at=t0) is None
    # Stored, a request counts only those before it: of three in one second, the third is refused.
    same = [breakglass.Earlier(n, t0) for n in ("x1", "x2", "x3")]
    assert breakglass.rate_problem(policy, CAROL.username, same, at=t0, name="x2") is None
    assert breakglass.rate_problem(policy, CAROL.username, same, at=t0, name="x3") is not None


def test_earlier_skips_other_users_and_refused_requests() -> None:
    def stored(name: str, requester: str, reason: str | None = None, glass: bool = True) -> dict[str, Any]:
        conditions = [{"type": "Ready", "status": "False", "reason": reason}] if reason else []
        return {
            "metadata": {"name": name, "creationTimestamp": "2026-11-23T11:00:00Z"},
            "spec": {"requester": requester, "breakGlass": glass},
            "status": {"conditions": conditions},
        }

    listed = [
        stored("mine", CAROL.username),
        stored("refused", CAROL.username, names.INVALID),
        stored("normal", CAROL.username, glass=False),
        stored("theirs", ALICE.username),
    ]
    assert [e.name for e in breakglass.earlier(listed, CAROL.username)] == ["mine"]


def test_admission_refuses_beyond_the_rate_limit() -> None:
    new = obj(entitlement="prod-eng-payments", reason=REASON, breakGlass=True, requester=CAROL.username,
              requesterGroups=sorted(CAROL.groups))  # fmt: skip
    earlier = [breakglass.Earlier("a", factories.T0), breakglass.Earlier("b", factories.T0)]
    verdict = review_request("CREATE", None, new, CAROL, phase=Phase.MUTATE, entitlement=ENTITLEMENT)
    assert isinstance(verdict, Admit)
    refused = adm.review_request(
        "CREATE", None, new, CAROL, operator=OPERATOR, entitlement=ENTITLEMENT, team=TEAM, limits=LIMITS,
        phase=Phase.VALIDATE, now=NOW, earlier_break_glass=lambda user: earlier,
    )  # fmt: skip
    assert isinstance(refused, Refusal) and "perUserPerDay is 2" in refused.message


def approved_glass(**annotations: str) -> dict[str, Any]:
    request = obj(
        annotations=annotations,
        conditions=[{"type": "Approved", "status": "True", "reason": "BreakGlass", "message": ""}],
        entitlement="prod-eng-payments",
        reason=REASON,
        requester=CAROL.username,
        breakGlass=True,
    )
    request["metadata"]["name"] = "carol-glass"
    return request


def test_the_team_recorded_when_taken_up_reviews_unless_it_is_the_live_owner() -> None:
    recorded = approved_glass()
    recorded["status"]["ownerTeam"] = "payments-old"
    # The Entitlement passed to another team since, or is gone (renamed in Git): the recorded team reviews.
    assert breakglass.recorded_reviewers(recorded, "payments") == "payments-old"
    assert breakglass.recorded_reviewers(recorded, None) == "payments-old"
    # The live owner team reviews: the record names it, there is none, or the request is no break-glass.
    assert breakglass.recorded_reviewers(recorded, "payments-old") is None
    assert breakglass.recorded_reviewers(approved_glass(), "payments") is None
    normal = copy.deepcopy(recorded)
    del normal["spec"]["breakGlass"]
    assert breakglass.recorded_reviewers(normal, "payments") is None


def test_the_operator_records_a_review_against_the_recorded_team_while_it_exists() -> None:
    old_team, live = factories.team(approvers=["olga@example.com"]), factories.team()
    request = AccessRequest.model_validate({**approved_glass(), "status": {"ownerTeam": "payments-old"}})
    teams = {"payments-old": [old_team.model_dump(by_alias=True, exclude_none=True)]}
    assert break_glass_handlers.reviewers(request, teams, ENTITLEMENT, live) == old_team
    assert break_glass_handlers.reviewers(request, teams, None, live) == old_team  # the Entitlement is gone
    # The recorded team was deleted since: its live owner team's approvers review, as at admission.
    assert break_glass_handlers.reviewers(request, {}, ENTITLEMENT, live) == live
    # The record names the live owner: no other team is looked up.
    owned = AccessRequest.model_validate({**approved_glass(), "status": {"ownerTeam": "payments"}})
    assert break_glass_handlers.reviewers(owned, teams, ENTITLEMENT, live) == live


def test_an_approver_of_the_owner_team_reviews_and_is_stamped() -> None:
    old = approved_glass()
    new = with_annotations(old, jitaccess_dev__reviewed="true")
    verdict = review_request("UPDATE", old, new, PAULA, entitlement=ENTITLEMENT)
    assert isinstance(verdict, Admit) and verdict.annotations[names.ANNOTATION_REVIEWED_BY] == PAULA.username
    stamped = with_annotations(new, **{"jitaccess_dev__reviewed_by": PAULA.username,
                                       "jitaccess_dev__reviewed_by_groups": ",".join(sorted(PAULA.groups))})  # fmt: skip
    assert isinstance(
        review_request("UPDATE", old, stamped, PAULA, entitlement=ENTITLEMENT, phase=Phase.VALIDATE), Admit
    )
    assert breakglass.stamped_reviewer(stamped, TEAM) == PAULA.username


@pytest.mark.parametrize(
    ("caller", "words"),
    [(CAROL, "made this break-glass request"), (ALICE, "not an approver of the owner team")],
)
def test_the_requester_and_non_approvers_cannot_review(caller: Any, words: str) -> None:
    old = approved_glass()
    verdict = review_request("UPDATE", old, with_annotations(old, jitaccess_dev__reviewed="true"), caller)
    assert isinstance(verdict, Refusal) and words in verdict.message


def test_a_review_is_stamped_only_by_the_webhook_and_is_final() -> None:
    old = approved_glass()
    forged = with_annotations(old, jitaccess_dev__reviewed="true", jitaccess_dev__reviewed_by=PAULA.username)
    verdict = review_request("UPDATE", old, forged, PAULA)
    assert isinstance(verdict, Refusal) and "written only by the jitaccess admission webhook" in verdict.message
    done = approved_glass(**{names.ANNOTATION_REVIEWED: "true", names.ANNOTATION_REVIEWED_BY: PAULA.username})
    again = with_annotations(done, jitaccess_dev__reviewed_by=None, jitaccess_dev__reviewed=None)
    refused = review_request("UPDATE", done, again, PAULA)
    assert isinstance(refused, Refusal) and "already reviewed" in refused.message


def test_only_break_glass_requests_are_reviewed() -> None:
    old = approved_glass()
    old["spec"].pop("breakGlass")
    verdict = review_request("UPDATE", old, with_annotations(old, jitaccess_dev__reviewed="true"), PAULA)
    assert isinstance(verdict, Refusal) and "not a break-glass request" in verdict.message


def test_a_break_glass_request_is_granted_on_its_own_rules() -> None:
    request = carol_request(annotations={})
    assert rules.grant_basis(request, validate(request), LIMITS, factories.T0) == rules.Basis(
        auto=True, who=CAROL.username
    )


def test_on_call_is_a_basis_only_while_the_check_says_so() -> None:
    request = factories.request(requester="bob@example.com")
    valid = rules.ValidRequest("bob@example.com", frozenset(), timedelta(hours=1), ENTITLEMENT, TEAM)
    assert isinstance(rules.grant_basis(request, valid, LIMITS, factories.T0, on_call=lambda: False), rules.NoGrant)
    basis = rules.grant_basis(request, valid, LIMITS, factories.T0, on_call=lambda: True)
    assert basis == rules.Basis(auto=True, who="bob@example.com")


def test_audit_records_break_glass_and_its_review() -> None:
    request = approved_glass()
    request["metadata"]["uid"] = "u1"
    request["status"].update({"reviewedBy": PAULA.username})
    request["status"]["conditions"].append({"type": "Reviewed", "status": "True", "reason": "Reviewed", "message": ""})
    records = {r["action"]: r for r in audit.records_of_request(request)}
    assert records["break-glass"]["actor"]["via"] == "break-glass" and "approved" not in records
    assert records["reviewed"]["actor"]["username"] == PAULA.username


def test_a_break_glass_request_is_kept_for_its_review_and_the_daily_limit() -> None:
    ended = approved_glass()
    ended["status"]["conditions"].append({"type": "Ready", "status": "False", "reason": "Expired", "message": ""})
    # Its requester never deletes it: not even one who approves for the owner team (the daily limit
    # counts the stored ones, and the review reads it).
    approver_too = TEAM.model_copy(update={"approvers": [*TEAM.approvers, CAROL.username]})
    verdict = review_request("DELETE", ended, None, CAROL, entitlement=ENTITLEMENT, team=approver_too)
    assert isinstance(verdict, Refusal) and "is your break-glass request" in verdict.message
    # Nobody deletes it before its review.
    verdict = review_request("DELETE", ended, None, PAULA, entitlement=ENTITLEMENT)
    assert isinstance(verdict, Refusal) and "not reviewed yet: review it first" in verdict.message
    reviewed = approved_glass()
    reviewed["status"]["conditions"] += [
        {"type": "Ready", "status": "False", "reason": "Expired", "message": ""},
        {"type": "Reviewed", "status": "True", "reason": "Reviewed", "message": ""},
    ]
    assert isinstance(review_request("DELETE", reviewed, None, PAULA, entitlement=ENTITLEMENT), Admit)
    assert isinstance(review_request("DELETE", ended, None, SYSTEM, entitlement=ENTITLEMENT), Admit)


# --- the overdue warning goes to the request whose review is overdue --------------------------------


def _awaiting_review(name: str, deadline: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.ACCESS_REQUEST,
        "metadata": {"name": name, "uid": uid, "generation": 1},
        "spec": {"entitlement": "prod-eng-payments", "reason": "INC-9 x", "requester": "sam@example.com"},
        "status": {
            "reviewDeadline": deadline,
            "conditions": [
                {
                    "type": names.REVIEWED,
                    "status": "False",
                    "reason": names.AWAITING_REVIEW,
                    "lastTransitionTime": deadline,
                }
            ],
        },
    }


@pytest.mark.parametrize(
    ("stored_deadline", "stored_uid", "warned"),
    [("2026-11-23T12:00:00Z", "uid-then", True), ("2026-11-24T09:00:00Z", "uid-now", False)],
)
def test_an_overdue_review_is_warned_on_its_own_request_not_one_created_since_under_its_name(
    monkeypatch: pytest.MonkeyPatch, stored_deadline: str, stored_uid: str, warned: bool
) -> None:
    """The review of break-glass `sam-bg` was due at noon; the request stored under that name now is
    either that one, or one created since (withdrawn and asked again: its own review is due later),
    which must not be marked overdue: the warning carries the uid of the request it is for."""
    monkeypatch.setattr("kopf.event", lambda *_, **__: None)  # no operator to post Events through
    kube = StoredKube(_awaiting_review("sam-bg", stored_deadline, stored_uid))
    rt = Runtime(Settings(), cast(IdentityCenter, object()), cast(Kube, kube))
    noon = datetime(2026, 11, 23, 12, tzinfo=UTC)
    break_glass_handlers._warn(rt, [Awaiting("sam-bg", noon, overdue=False, uid="uid-then")])
    reviewed = next(c for c in kube.status(names.REQUESTS, "sam-bg")["conditions"] if c["type"] == names.REVIEWED)
    assert (reviewed["reason"] == names.REVIEW_OVERDUE) is warned, reviewed


def test_every_message_that_asks_for_a_review_names_the_stored_request_by_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    """The overdue warning (its Event and `Reviewed` message), the approval's `Reviewed` message and
    the admission refusals that say to review print `kubectl jit review NAME --uid UID`: the reviewer
    acting on them reviews that request, never another created since under its name (attack 134)."""
    events: list[str] = []
    monkeypatch.setattr("kopf.event", lambda *_, message, **__: events.append(message))
    kube = StoredKube(_awaiting_review("sam-bg", "2026-11-23T12:00:00Z", "uid-then"))
    rt = Runtime(Settings(), cast(IdentityCenter, object()), cast(Kube, kube))
    noon = datetime(2026, 11, 23, 12, tzinfo=UTC)
    break_glass_handlers._warn(rt, [Awaiting("sam-bg", noon, overdue=False, uid="uid-then")])
    reviewed = next(c for c in kube.status(names.REQUESTS, "sam-bg")["conditions"] if c["type"] == names.REVIEWED)
    assert events == [reviewed["message"]] and reviewed["message"].endswith(
        "reviews it with `kubectl jit review sam-bg --uid uid-then`"
    ), (events, reviewed)
    _, (_, _, _, due) = break_glass_handlers.approval_fields(validate(carol_request()), "carol-glass", "uid-glass")
    assert due.endswith("`kubectl jit review carol-glass --uid uid-glass`"), due
    old = approved_glass()
    old["metadata"]["uid"] = "uid-glass"
    not_theirs = review_request("UPDATE", old, with_annotations(old, jitaccess_dev__reviewed="true"), ALICE)
    assert isinstance(not_theirs, Refusal)
    assert "(`kubectl jit review carol-glass --uid uid-glass`)" in not_theirs.message, not_theirs
    old["status"]["conditions"].append({"type": "Ready", "status": "False", "reason": "Expired", "message": ""})
    kept = review_request("DELETE", old, None, PAULA, entitlement=ENTITLEMENT)
    assert isinstance(kept, Refusal) and "(`kubectl jit review carol-glass --uid uid-glass`," in kept.message, kept

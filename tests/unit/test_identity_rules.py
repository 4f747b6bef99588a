"""People by Identity Center UserId, revocation rights from the grant's record, and which requests may go.

Issue 18 items 3, 4 and 6, as pure rules: the requester's UserId is stamped at admission and every
cache and reference count is keyed by it (never by a case-folded name); a grant's recorded owner
team, not its live Entitlement, says who may end it; a request is not deleted while its access runs.
"""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

import pytest

from jitaccess.api.models import AccessRequest
from jitaccess.domain import admission as adm
from jitaccess.domain import grants as grant_rules
from jitaccess.domain import requests as request_rules
from jitaccess.domain.admission import Admit, Phase, Refusal, Verdict
from jitaccess.domain.teams import Caller
from jitaccess.handlers import runtime
from jitaccess.handlers.indexes import holding
from jitaccess.handlers.runtime import Runtime
from tests.unit.test_admission import (
    BOB,
    ENTITLEMENT,
    LIMITS,
    OPERATOR,
    PAULA,
    SYSTEM,
    TEAM,
    cond,
    delete,
    request,
    review_request,
)

BOB_ID = "906723e1e5-1111-2222-3333-444455556666"


def _lookup(ids: dict[str, str]) -> adm.UserIdLookup:
    def user_id(name: str) -> str | Refusal:
        return ids.get(name) or Refusal(f"{name} is not a user in Identity Center")

    return user_id


def _create(new: dict[str, Any], phase: Phase, ids: dict[str, str], caller: Caller = BOB) -> Verdict:
    return review_request("CREATE", None, new, caller, phase=phase, user_id=_lookup(ids))


# --- item 6: the requester's UserId ---------------------------------------------------------------


def test_admission_stamps_the_requesters_user_id() -> None:
    verdict = _create(request(requester=None, requesterGroups=None), Phase.MUTATE, {BOB.username: BOB_ID})
    assert isinstance(verdict, Admit)
    assert verdict.spec["requesterUserId"] == BOB_ID


def test_a_client_supplied_user_id_is_refused() -> None:
    verdict = _create(request(requesterUserId="someone-elses-id"), Phase.MUTATE, {BOB.username: BOB_ID})
    assert isinstance(verdict, Refusal) and "spec.requesterUserId" in verdict.message


def test_a_user_unknown_to_identity_center_is_refused_at_once() -> None:
    verdict = _create(request(), Phase.MUTATE, {})
    assert isinstance(verdict, Refusal) and "is not a user in Identity Center" in verdict.message


def test_the_final_object_must_carry_exactly_the_stamped_user_id() -> None:
    stamped = request(requesterUserId=BOB_ID, reason="INFRA-1 x")
    assert not isinstance(_create(stamped, Phase.VALIDATE, {BOB.username: BOB_ID}), Refusal)
    for changed in (request(reason="INFRA-1 x"), request(requesterUserId="another-id", reason="INFRA-1 x")):
        verdict = _create(changed, Phase.VALIDATE, {BOB.username: BOB_ID})
        assert isinstance(verdict, Refusal) and "spec.requesterUserId" in verdict.message


def test_the_validated_request_carries_the_user_id() -> None:
    parsed = AccessRequest.model_validate(request(requesterUserId=BOB_ID, reason="INFRA-1 x"))
    assert request_rules.validate(parsed, ENTITLEMENT, TEAM, LIMITS).user_id == BOB_ID


def test_grants_of_case_variant_names_hold_two_memberships() -> None:
    def grant(user: str, user_id: str) -> dict[str, Any]:
        return {"spec": {"user": user, "userId": user_id, "groupName": "g"}, "status": {}}

    alice, other = holding(grant("alice@example.com", "id-1")), holding(grant("Alice@example.com", "id-2"))
    assert alice is not None and other is not None and alice != other
    # One person under two spellings is one membership: the UserId decides, not the name.
    assert holding(grant("alice@example.com", "id-1")) == holding(grant("ALICE@example.com", "id-1"))


def test_grantee_id_prefers_the_recorded_user_id() -> None:
    assert grant_rules.grantee_id("spec-id", "status-id", "alice") == "spec-id"
    assert grant_rules.grantee_id(None, "status-id", "alice") == "status-id"
    # A legacy grant not active yet: by name, under a key that no UserId can take.
    assert grant_rules.grantee_id(None, None, "alice") == "name:alice"


def test_the_eligibility_cache_is_per_user_id() -> None:
    rt = Runtime(settings=MagicMock(), identity_center=MagicMock(), kube=MagicMock())
    rt.mark_eligible("id-1", ("prod-eligible",))
    assert rt.recently_eligible("id-1", ("prod-eligible",))
    assert not rt.recently_eligible("id-2", ("prod-eligible",))


def test_an_account_answer_exactly_eligible_seconds_old_is_no_longer_taken_and_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt, clock, groups = Runtime(settings=MagicMock(), identity_center=MagicMock(), kube=MagicMock()), [100.0], ("g",)
    monkeypatch.setattr(runtime.time, "monotonic", lambda: clock[0])
    rt.mark_eligible("id-1", groups)
    rt.mark_refused("id-2", "disabled")
    clock[0] += runtime.ELIGIBLE_SECONDS
    assert not rt.recently_eligible("id-1", groups) and rt.recently_refused("id-2") is None
    rt.mark_eligible("id-3", groups)  # each mark drops the answers no longer taken
    rt.mark_refused("id-4", "gone")
    assert rt._eligible.keys() == {("id-3", groups)} and rt._refused.keys() == {"id-4"}


# --- item 3: revocation rights from the grant's record -------------------------------------------


def test_the_owner_team_comes_from_the_grant() -> None:
    assert adm.recorded_owner({"spec": {"ownerTeam": "payments", "entitlement": "gone"}}) == "payments"
    assert adm.recorded_owner({"spec": {"entitlement": "old-grant"}}) is None


def test_an_approver_of_the_recorded_team_may_revoke() -> None:
    old: dict[str, Any] = {
        "metadata": {"name": "g1", "annotations": {}},
        "spec": {"user": "alice@example.com", "ownerTeam": "payments", "entitlement": "deleted-one"},
        "status": {"conditions": [cond("Ready", "True", "Active")]},
    }
    new = {**old, "metadata": {"name": "g1", "annotations": {adm.REVOKED: "true"}}}
    verdict = adm.review_grant(
        "UPDATE", old, new, PAULA, operator=OPERATOR, team=TEAM, owner="payments", phase=Phase.MUTATE
    )
    assert verdict == Admit(annotations={adm.REVOKED_BY: PAULA.username})


# --- item 4: a request goes only once its access has ended ---------------------------------------


def _approved(ready: str) -> dict[str, Any]:
    return request(conditions=[cond("Approved", "True", "Approved"), cond("Ready", "True", ready)])


def test_access_not_ended() -> None:
    assert request_rules.access_not_ended(request(conditions=[cond("Ready", "False", "Pending")])) is None
    assert request_rules.access_not_ended(_approved("Granted")) == "r1"
    assert request_rules.access_not_ended(_approved("Pending")) == "r1"
    for finished in ("Expired", "Revoked", "Failed"):
        assert request_rules.access_not_ended(_approved(finished)) is None
    assert request_rules.access_not_ended(request(conditions=[cond("Ready", "False", "Denied")])) is None


def test_deleting_a_request_whose_access_runs_is_refused_with_the_way_out() -> None:
    verdict = delete(_approved("Granted"), BOB, team=None)
    assert isinstance(verdict, Refusal)
    assert "kubectl jit revoke r1" in verdict.message
    assert "kubectl annotate accessgrant r1 jitaccess.dev/revoked=true" in verdict.message


def test_a_pending_request_may_be_withdrawn_and_the_operator_retires_any() -> None:
    """Who else may delete which request: tests/unit/test_withdraw.py."""
    assert delete(request(conditions=[cond("Ready", "False", "Pending")]), BOB, team=None) == adm.ALLOW
    assert isinstance(delete(_approved("Expired"), BOB, team=None), Refusal), "a finished request is the audit record"
    assert delete(_approved("Expired"), SYSTEM, team=None) == adm.ALLOW
    assert delete(_approved("Granted"), SYSTEM, team=None) == adm.ALLOW

"""An Entitlement stored (before admission refused it, or while the webhooks were down) so that its
grants would hand out access its owner team does not own is granted to nobody: ledger-x granting
payments-oncall (attack 140: its grantee on call for payments' production), or payments' permission
set (attack 141). Its `PolicyRefused` says so first (`standing.GIVES_AWAY`); its requests are refused,
at admission and when the operator decides; a grant of it not yet Active is not provisioned; one
running is not extended. Any other `PolicyRefused` refuses nothing (`standing.refused_grants`)."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.api import names
from jitaccess.api.models import Entitlement
from jitaccess.domain import backing, standing
from jitaccess.domain import extensions as extension_rules
from jitaccess.domain import requests as request_rules
from jitaccess.domain.admission import Refusal
from jitaccess.errors import InvalidInput
from jitaccess.handlers import requests
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.factories import T0, condition, entitlement, request, team
from tests.unit.test_backing import NOW, approved, grant
from tests.unit.test_extensions import ALICE, active, extension, review
from tests.unit.test_grant_refused import _IdentityCenter
from tests.unit.test_owner_change import Cluster, events
from tests.unit.test_requests import LIMITS
from tests.unit.test_standing import EXAMPLES, assigned, checked, ledger_x, payments_on_call, ready, stored

__all__ = ["events"]  # the Events kept, with no kopf watch to post them from (an autouse fixture)

BOB = "bob@example.com"
LEDGER = team(members=[BOB], approvers=["lena@example.com"])


def as_checked(obj: dict[str, Any]) -> Entitlement:
    """`obj` as stored once the operator checked it (`catalog.check_entitlement`), its `Ready` written."""
    cluster, _ = checked(obj)
    return Entitlement.model_validate(cluster.obj)


def refused(ent: Entitlement) -> Entitlement:
    """`ent` with a `PolicyRefused` `Ready` for access its team does not own, as the operator writes it."""
    said = f"{standing.GIVES_AWAY}: admission refuses this spec now (...)"
    ready = {**condition(names.READY, "False", names.POLICY_REFUSED), "message": said}
    return Entitlement.model_validate({**ent.wire(), "status": {"conditions": [ready]}})


# --- which refusals give access away ----------------------------------------------------------------


def given(obj: dict[str, Any]) -> list[str]:
    """What of `obj`, among the example catalogs and Entitlements, gives access away."""
    return standing.problems(obj, EXAMPLES, payments_on_call(), {}).given_away


def test_granting_a_group_people_hold_standing_or_another_teams_permission_set_gives_access_away() -> None:
    on_call = given(ledger_x(groupName="payments-oncall"))
    assert any("on call for Entitlement prod-eng-payments" in p for p in on_call), on_call
    baseline = given(ledger_x(groupName="eng-payments"))
    assert any("PermissionCatalog payments's baseline group" in p for p in baseline), baseline
    production = given(ledger_x(groupName="prod-eng-payments"))
    assert any("production permissions of team payments" in p for p in production), production
    direct = given(assigned({"catalog": "payments", "tier": "production"}))
    assert any("production permissions of team payments" in p for p in direct), direct
    assert given(ledger_x(groupName="ledger-x")) == []


def test_naming_a_granted_group_as_one_people_are_in_gives_nothing_away() -> None:
    """Who payments lets in is its own to say: a problem of admission's, not access of another team's."""
    payments = stored("prod-eng-payments")
    payments["spec"]["eligibility"]["identityCenterGroups"].append("prod-eng-ledger")
    assert standing.problems(payments, EXAMPLES, payments_on_call(), {}).found
    assert given(payments) == []


def test_only_a_policy_refused_for_access_given_away_refuses_grants() -> None:
    given = as_checked(ledger_x(groupName="payments-oncall"))
    said = standing.refused_grants(given)
    assert said is not None and said.startswith(standing.GIVES_AWAY)
    assert "on call for Entitlement prod-eng-payments" in said
    # A `system:` group on call is ignored at decision time already: its requests go on.
    harmless = stored("prod-eng-payments")
    harmless["spec"]["approval"]["autoApproveGroups"] = ["system:authenticated"]
    checked_harmless = as_checked(harmless)
    assert checked_harmless.status.conditions[0].reason == names.POLICY_REFUSED
    assert standing.refused_grants(checked_harmless) is None
    assert standing.refused_grants(as_checked(ledger_x(groupName="ledger-x"))) is None


def test_access_given_away_is_said_before_a_refusal_that_refuses_nothing() -> None:
    """Both at once: `Ready` begins with what refuses the requests, and says the other after it."""
    both = ledger_x(groupName="payments-oncall")
    both["spec"]["approval"]["autoApproveGroups"] = ["system:authenticated"]
    cluster, _ = checked(both)
    status, reason, message = ready(cluster)
    assert (status, reason) == ("False", names.POLICY_REFUSED)
    assert message.startswith(standing.GIVES_AWAY), message
    assert "Besides, admission refuses this spec now" in message and "system:authenticated" in message


# --- nobody is granted it ---------------------------------------------------------------------------


def test_a_request_for_it_is_refused_naming_it_why_and_the_fix() -> None:
    given = as_checked(ledger_x(groupName="payments-oncall"))
    with pytest.raises(InvalidInput) as caught:
        request_rules.validate(request(entitlement="ledger-x", requester=BOB), given, LEDGER, LIMITS)
    said = str(caught.value)
    assert said.startswith("spec.entitlement names 'ledger-x', whose Ready is PolicyRefused: it would grant access")
    assert "on call for Entitlement prod-eng-payments" in said
    assert said.endswith("Nothing was granted: ask its owners (team ledger) to fix it as said, then request again")
    harmless = entitlement(approval={"autoApproveGroups": ["system:authenticated"]})
    policy = {**condition(names.READY, "False", names.POLICY_REFUSED), "message": "admission refuses this spec now"}
    harmless = Entitlement.model_validate({**harmless.wire(), "status": {"conditions": [policy]}})
    assert request_rules.validate(request(), harmless, team(), LIMITS).requester == BOB


def _reconciled(stored_request: dict[str, Any]) -> Cluster:
    """The operator's look at `stored_request` for ledger-x, stored granting payments-oncall."""
    cluster = Cluster(stored_request)
    rt = Runtime(Settings(), cast(IdentityCenter, _IdentityCenter()), cast(Kube, cluster))
    given = as_checked(ledger_x(groupName="payments-oncall")).model_dump(by_alias=True, exclude_none=True, mode="json")
    teams = {"ledger": [LEDGER.model_dump(by_alias=True, exclude_none=True)]}
    requests.reconcile(rt, copy.deepcopy(cluster.stored), teams, {"ledger-x": [given]}, announce_ignored=True)
    return cluster


def test_the_operator_does_not_approve_a_request_admitted_before_it_was_refused() -> None:
    """bob, of ledger, would be auto-approved (an owner-team member): the request is Invalid, saying why,
    and no grant is created."""
    cluster = _reconciled(request(entitlement="ledger-x", requester=BOB).wire())
    (state,) = [c for c in cluster.stored["status"]["conditions"] if c["type"] == names.READY]
    assert (state["status"], state["reason"]) == ("False", names.INVALID)
    assert "names 'ledger-x', whose Ready is PolicyRefused: it would grant access" in state["message"]
    assert "Approved" not in {c["type"] for c in cluster.stored["status"]["conditions"]}
    assert cluster.grants == []


def test_an_approved_request_still_waiting_for_its_grant_gets_none() -> None:
    """Approved (a start still to come, or a crash before its grant was made): no grant is created."""
    approved_before = request(
        entitlement="ledger-x",
        requester=BOB,
        conditions=[condition("Approved", "True", "AutoApproved"), condition(names.READY, "False", "Pending")],
    ).wire()
    cluster = _reconciled(approved_before)
    (state,) = [c for c in cluster.stored["status"]["conditions"] if c["type"] == names.READY]
    assert state["reason"] == names.INVALID and "whose Ready is PolicyRefused" in state["message"]
    assert cluster.grants == []


def test_a_grant_of_it_not_yet_active_is_not_provisioned() -> None:
    ent = entitlement()
    assert backing.unbacked(grant(), approved(), ent, team(), LIMITS, NOW) is None
    why = backing.unbacked(grant(), approved(), refused(ent), team(), LIMITS, NOW)
    assert why is not None and why.startswith("not provisioned: AccessGrant r1 is not backed")
    assert "whose Ready is PolicyRefused: it would grant access its owner team does not own" in why


def test_a_running_grant_of_it_runs_out_and_is_not_extended() -> None:
    ent = refused(entitlement())
    step = extension_rules.next_step(extension(), active(), ent, team(), LIMITS)
    assert step.step is extension_rules.Step.FAIL
    assert step.message.startswith("spec.grant: Entitlement prod-eng-payments of AccessGrant g1 is PolicyRefused")
    assert "ask its owners (team payments) to fix it" in step.message and "nothing was extended" in step.message
    assert isinstance(extension_rules.apply(extension(), active(), ent, LIMITS, T0), str)
    assert not isinstance(extension_rules.apply(extension(), active(), entitlement(), LIMITS, T0), str)
    verdict = review(ALICE, extension().wire(), the_entitlement=ent)
    assert isinstance(verdict, Refusal) and "so the grant cannot be extended" in verdict.message

"""Incident responders (`JITACCESS_RESPONDER_GROUPS`): on any team's objects they revoke grants and
deny pending requests and extensions, each with a reason, and withdraw requests that have no access
yet; they never approve (a request or an extension), review break-glass, or delete grants or
finished requests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jitaccess.api.models import AccessExtension
from jitaccess.domain import admission as adm
from jitaccess.domain import extensions as extension_rules
from jitaccess.domain import requests as request_rules
from jitaccess.domain.admission import ALLOW, Phase, Verdict
from jitaccess.domain.requests import Outcome
from jitaccess.domain.teams import Caller
from jitaccess.settings import Settings
from tests.unit import factories
from tests.unit.test_admission import (
    AUTH,
    BOB,
    ENTITLEMENT,
    LIMITS,
    NOW,
    OPERATOR,
    PAULA,
    TEAM,
    admitted,
    cond,
    grant,
    refused,
    request,
    with_annotations,
)

#: Not in any team of payments': a responder by group only.
SRE = Caller("sre@example.com", frozenset({"sre-oncall", AUTH}))
#: Claims the group by name only: not a member of it.
IMPOSTOR = Caller("sre-oncall", frozenset({"sre", AUTH}))
RESPONDERS = adm.Responders(frozenset({"sre-oncall"}))
PENDING = [cond("Ready", "False", "Pending")]
SCHEDULED = [cond("Approved", "True", "Approved"), cond("Ready", "False", "Scheduled")]
GRANTED = [cond("Approved", "True", "Approved"), cond("Ready", "True", "Granted")]
DENIED = [cond("Denied", "True", "Denied"), cond("Ready", "False", "Denied")]
EXPIRED = [cond("Approved", "True", "Approved"), cond("Ready", "False", "Expired")]


def on_request(operation: str, old: dict[str, Any], new: dict[str, Any] | None, caller: Caller, **kw: Any) -> Verdict:
    return adm.review_request(
        operation,
        old,
        new,
        caller,
        operator=OPERATOR,
        entitlement=ENTITLEMENT,
        team=kw.pop("team", TEAM),
        limits=LIMITS,
        phase=kw.pop("phase", Phase.MUTATE if new is not None else Phase.VALIDATE),
        now=NOW,
        responders=kw.pop("responders", RESPONDERS),
    )


def on_grant(operation: str, old: dict[str, Any], new: dict[str, Any] | None, caller: Caller, **kw: Any) -> Verdict:
    return adm.review_grant(
        operation,
        old,
        new,
        caller,
        operator=OPERATOR,
        team=TEAM,
        owner="payments",
        phase=kw.pop("phase", Phase.MUTATE if new is not None else Phase.VALIDATE),
        responders=kw.pop("responders", RESPONDERS),
    )


def test_the_setting_is_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITACCESS_RESPONDER_GROUPS", " sre-oncall, security-ir ,,")
    assert Settings().responder_groups == ["sre-oncall", "security-ir"]
    monkeypatch.delenv("JITACCESS_RESPONDER_GROUPS")
    assert Settings().responder_groups == []


def test_membership_is_by_authenticated_group_only() -> None:
    assert RESPONDERS.includes(SRE)
    assert not RESPONDERS.includes(IMPOSTOR), "a username equal to the group's name is not a member"
    assert not adm.NO_RESPONDERS.includes(SRE)


# --- grants -------------------------------------------------------------------------------------


def test_a_responder_revokes_any_grant_with_a_reason_and_is_stamped() -> None:
    old = grant()
    new = with_annotations(old, jitaccess_dev__revoked="true", jitaccess_dev__revoke_reason="INC-7 key leak")
    assert admitted(on_grant("UPDATE", old, new, SRE)).annotations == {"jitaccess.dev/revoked-by": SRE.username}
    stamped = with_annotations(new, jitaccess_dev__revoked_by=SRE.username)
    assert admitted(on_grant("UPDATE", old, stamped, SRE, phase=Phase.VALIDATE))


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_a_responder_revokes_only_with_a_reason(reason: str | None) -> None:
    old = grant()
    new = with_annotations(old, jitaccess_dev__revoked="true", jitaccess_dev__revoke_reason=reason)
    verdict = refused(on_grant("UPDATE", old, new, SRE), "jitaccess.dev/revoke-reason] is required", "incident")
    assert verdict.code == 422


def test_the_grantee_and_approvers_need_no_reason_even_when_responders() -> None:
    old = grant()
    new = with_annotations(old, jitaccess_dev__revoked="true")
    for who in (BOB, PAULA, Caller(PAULA.username, PAULA.groups | {"sre-oncall"})):
        assert admitted(on_grant("UPDATE", old, new, who)).annotations == {"jitaccess.dev/revoked-by": who.username}


def test_without_the_group_nobody_revokes_anothers_grant() -> None:
    old = grant()
    new = with_annotations(old, jitaccess_dev__revoked="true", jitaccess_dev__revoke_reason="INC-7")
    refused(on_grant("UPDATE", old, new, IMPOSTOR), "sre-oncall may not revoke this grant")
    refused(on_grant("UPDATE", old, new, SRE, responders=adm.NO_RESPONDERS), "sre@example.com may not revoke")


def test_a_responder_never_deletes_a_grant() -> None:
    refused(
        on_grant("DELETE", grant(), None, SRE),
        "removes the record of that access",
        "incident responder",
        "kubectl jit revoke r1",
        "never approve",
    )


def test_a_responder_changes_nothing_else_of_a_grant() -> None:
    old = grant()
    refused(on_grant("UPDATE", old, with_annotations(old, example_com__note="x"), SRE), "users may set only")
    revoked = grant(annotations={"jitaccess.dev/revoked": "true", "jitaccess.dev/revoked-by": "bob@example.com"})
    again = with_annotations(revoked, jitaccess_dev__revoke_reason="INC-7")
    refused(on_grant("UPDATE", revoked, again, SRE), "already revoked by bob")


# --- requests -----------------------------------------------------------------------------------


def test_a_responder_denies_any_pending_request_with_a_reason_and_is_stamped() -> None:
    old = request(conditions=PENDING)
    new = with_annotations(old, jitaccess_dev__denied="true", jitaccess_dev__decision_reason="INC-7 freeze")
    assert admitted(on_request("UPDATE", old, new, SRE)).annotations == {
        "jitaccess.dev/denied-by": SRE.username,
        "jitaccess.dev/denied-by-groups": f"sre-oncall,{AUTH}",
    }
    bare = with_annotations(old, jitaccess_dev__denied="true")
    assert refused(on_request("UPDATE", old, bare, SRE), "decision-reason] is required").code == 422


def test_a_responder_never_approves() -> None:
    old = request(conditions=PENDING)
    new = with_annotations(old, jitaccess_dev__approved="true", jitaccess_dev__decision_reason="INC-7")
    refused(
        on_request("UPDATE", old, new, SRE),
        "not an approver of the owner team",
        "as an incident responder may not set jitaccess.dev/approved=true",
        "deny any pending AccessRequest",
    )


def test_a_responder_denies_nothing_already_decided() -> None:
    old = request(conditions=SCHEDULED, annotations={"jitaccess.dev/approved-by": PAULA.username})
    new = with_annotations(old, jitaccess_dev__denied="true", jitaccess_dev__decision_reason="INC-7")
    refused(on_request("UPDATE", old, new, SRE), "already approved by paula")


def test_a_responder_never_reviews_break_glass() -> None:
    old = request(conditions=[cond("Approved", "True", "BreakGlass")], breakGlass=True)
    new = with_annotations(old, jitaccess_dev__reviewed="true")
    refused(on_request("UPDATE", old, new, SRE), "not an approver of the owner team", "incident responder")


@pytest.mark.parametrize("conditions", [PENDING, [], SCHEDULED], ids=["pending", "new", "scheduled"])
def test_a_responder_ends_a_request_with_no_access_yet_by_name(conditions: list[dict[str, str]]) -> None:
    """One still awaiting a decision is denied with a reason, one approved and Scheduled (which can no
    longer be denied) revoked with one: either names the responder in its records, as a deletion would
    not (attack 124). Without its owner team nobody can deny a pending one, which they may then withdraw;
    a Scheduled one they still revoke (no team needed)."""
    if conditions is SCHEDULED:
        for team in ({}, {"team": None}):
            refused(
                on_request("DELETE", request(conditions=conditions), None, SRE, **team),
                "approved and Scheduled for a later start",
                "sre@example.com may not delete it",
                "kubectl jit revoke r1 --reason",
            )
        old = request(conditions=conditions)
        cancel = with_annotations(old, jitaccess_dev__revoked="true", jitaccess_dev__revoke_reason="INC-7 leak")
        for team in (TEAM, None):
            verdict = on_request("UPDATE", old, cancel, SRE, team=team)
            assert isinstance(verdict, adm.Admit) and verdict.annotations == {adm.REVOKED_BY: SRE.username}
    else:
        refused(
            on_request("DELETE", request(conditions=conditions), None, SRE),
            "still awaiting a decision",
            "sre@example.com may not delete it",
            "kubectl jit deny r1 --reason",
        )
        assert on_request("DELETE", request(conditions=conditions), None, SRE, team=None) == ALLOW
    refused(on_request("DELETE", request(conditions=conditions), None, IMPOSTOR), "may not")


def test_a_responder_revokes_someone_elses_scheduled_request_only_with_a_reason() -> None:
    old = request(conditions=SCHEDULED)
    bare = with_annotations(old, jitaccess_dev__revoked="true")
    refusal = refused(
        on_request("UPDATE", old, bare, SRE),
        "metadata.annotations[jitaccess.dev/revoke-reason] is required when an incident responder revokes "
        "someone else's request",
        "kubectl jit revoke r1",
    )
    assert refusal.code == adm.INVALID
    refused(
        on_request("UPDATE", old, bare, IMPOSTOR), "may not revoke this request", "only the requester bob@example.com"
    )


def test_a_responder_never_deletes_a_finished_request_or_one_whose_access_runs() -> None:
    for conditions in (DENIED, EXPIRED):
        refused(
            on_request("DELETE", request(conditions=conditions), None, SRE),
            "is finished",
            "audit record",
            "incident responder",
        )
    refused(
        on_request("DELETE", request(conditions=GRANTED), None, SRE),
        "access that has not ended",
        "kubectl jit revoke r1 --reason",
    )


def test_an_unreviewed_break_glass_request_stays() -> None:
    old = request(conditions=[cond("Approved", "True", "BreakGlass"), cond("Ready", "False", "Scheduled")])
    old["spec"]["breakGlass"] = True
    refused(on_request("DELETE", old, None, SRE), "not reviewed yet")


# --- the operator counts a responder's denial --------------------------------------------------


def decide(annotations: dict[str, str], responders: frozenset[str]) -> request_rules.PendingDecision | None:
    req = factories.request(annotations=annotations, conditions=[factories.condition("Ready", "False", "Pending")])
    checked = request_rules.validate(req, factories.entitlement(), factories.team(), LIMITS)
    return request_rules.decide_pending(req, checked, LIMITS, factories.T0, responder_groups=responders)


def test_the_operator_counts_a_denial_stamped_with_a_responder_group() -> None:
    denial = {
        "jitaccess.dev/denied": "true",
        "jitaccess.dev/denied-by": SRE.username,
        "jitaccess.dev/denied-by-groups": "sre-oncall",
        "jitaccess.dev/decision-reason": "INC-7",
    }
    decision = decide(denial, frozenset({"sre-oncall"}))
    assert decision is not None and decision.outcome is Outcome.DENY and decision.who == SRE.username
    ignored = decide(denial, frozenset())
    assert ignored is not None and ignored.outcome is Outcome.IGNORE
    approval = {**denial, "jitaccess.dev/denied": "", "jitaccess.dev/approved": "true"}
    approval["jitaccess.dev/approved-by"] = approval.pop("jitaccess.dev/denied-by")
    approval["jitaccess.dev/approved-by-groups"] = approval.pop("jitaccess.dev/denied-by-groups")
    decided = decide(approval, frozenset({"sre-oncall"}))
    assert decided is not None and decided.outcome is Outcome.IGNORE, "a responder's approval never counts"


# --- extensions ---------------------------------------------------------------------------------


def pending_extension(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """Alice's extension of her Active grant of payments', waiting for an approver."""
    return {
        "metadata": {"name": "g1-ext-1", "annotations": annotations or {}},
        "spec": {
            "grant": "g1",
            "duration": "30m",
            "reason": "INC-1 more",
            "requester": "alice@example.com",
            "requesterGroups": [],
        },
        "status": {"entitlement": "prod-eng-payments", "conditions": PENDING},
    }


def on_extension(old: dict[str, Any], new: dict[str, Any], caller: Caller, **kw: Any) -> Verdict:
    return extension_rules.review_extension(
        "UPDATE",
        old,
        new,
        caller,
        operator=OPERATOR,
        grant=None,
        entitlement=factories.entitlement(approval={"autoApproveOwnerTeam": False}),
        team=factories.team(),
        waiting=[],
        limits=LIMITS,
        phase=kw.pop("phase", Phase.MUTATE),
        responders=kw.pop("responders", RESPONDERS),
    )


def test_a_responder_denies_any_pending_extension_with_a_reason_and_is_stamped() -> None:
    old = pending_extension()
    new = with_annotations(old, jitaccess_dev__denied="true", jitaccess_dev__decision_reason="INC-7 freeze")
    stamps = {"jitaccess.dev/denied-by": SRE.username, "jitaccess.dev/denied-by-groups": f"sre-oncall,{AUTH}"}
    assert admitted(on_extension(old, new, SRE)).annotations == stamps
    stamped = with_annotations(
        new, jitaccess_dev__denied_by=SRE.username, jitaccess_dev__denied_by_groups=f"sre-oncall,{AUTH}"
    )
    assert admitted(on_extension(old, stamped, SRE, phase=Phase.VALIDATE))
    bare = with_annotations(old, jitaccess_dev__denied="true")
    verdict = refused(
        on_extension(old, bare, SRE),
        "decision-reason] is required when an incident responder denies another team's AccessExtension",
        "kubectl annotate accessextension NAME",
        "kubectl jit deny extension/NAME",
    )
    assert verdict.code == 422
    refused(on_extension(old, new, IMPOSTOR), "may be set only by an approver")
    refused(on_extension(old, new, SRE, responders=adm.NO_RESPONDERS), "may be set only by an approver")


def test_a_responder_never_approves_an_extension() -> None:
    old = pending_extension()
    new = with_annotations(old, jitaccess_dev__approved="true", jitaccess_dev__decision_reason="INC-7")
    verdict = refused(
        on_extension(old, new, SRE),
        "not an approver of the owner team",
        "as an incident responder may not set jitaccess.dev/approved=true",
        # What a responder may do names both kinds, untouched by the extension's wording.
        "deny any pending AccessRequest or AccessExtension",
    )
    assert verdict.code == 403


def test_a_responder_denies_no_extension_already_decided_or_finished() -> None:
    approved = pending_extension({"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": PAULA.username})
    new = with_annotations(approved, jitaccess_dev__denied="true", jitaccess_dev__decision_reason="INC-7")
    refused(on_extension(approved, new, SRE), "already approved by paula")
    failed = pending_extension()
    failed["status"]["conditions"] = [cond("Ready", "False", "Failed")]
    new = with_annotations(failed, jitaccess_dev__denied="true", jitaccess_dev__decision_reason="INC-7")
    refused(on_extension(failed, new, SRE), "already finished (Failed)")


def next_step(annotations: dict[str, str], responders: frozenset[str]) -> extension_rules.Next:
    extension = AccessExtension.model_validate({**pending_extension(annotations), "status": {}})
    active = factories.grant(
        conditions=[factories.condition("Ready", "True", "Active")],
        activationTime=factories.T0.isoformat(),
        expirationTime=(factories.T0 + timedelta(hours=1)).isoformat(),
    )
    return extension_rules.next_step(
        extension,
        active,
        factories.entitlement(approval={"autoApproveOwnerTeam": False}),
        factories.team(),
        LIMITS,
        responder_groups=responders,
    )


def test_the_operator_counts_a_responders_denial_of_an_extension_never_an_approval() -> None:
    denial = {
        "jitaccess.dev/denied": "true",
        "jitaccess.dev/denied-by": SRE.username,
        "jitaccess.dev/denied-by-groups": "sre-oncall",
        "jitaccess.dev/decision-reason": "INC-7",
    }
    step = next_step(denial, frozenset({"sre-oncall"}))
    assert (step.step, step.who, step.why) == (extension_rules.Step.DENY, SRE.username, "INC-7")
    assert next_step(denial, frozenset()).step is extension_rules.Step.IGNORE
    approval = {
        "jitaccess.dev/approved": "true",
        "jitaccess.dev/approved-by": SRE.username,
        "jitaccess.dev/approved-by-groups": "sre-oncall",
    }
    ignored = next_step(approval, frozenset({"sre-oncall"}))
    assert ignored.step is extension_rules.Step.IGNORE, "a responder's approval never counts"
    # The requester's own denial does not count even from a responder group (they withdraw instead).
    own = {**denial, "jitaccess.dev/denied-by": "alice@example.com"}
    assert next_step(own, frozenset({"sre-oncall"})).step is extension_rules.Step.IGNORE

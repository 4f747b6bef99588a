"""The admission decisions (`jitaccess.domain.admission`): who may create, decide, revoke, touch.

Objects are plain dicts, as the API server sends them in an AdmissionReview.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jitaccess.api import names
from jitaccess.api.models import Entitlement, TeamOwnershipSpec
from jitaccess.domain import admission as adm
from jitaccess.domain import requests as request_rules
from jitaccess.domain.admission import ALLOW, Admit, OperatorIdentity, Phase, Refusal, Verdict
from jitaccess.domain.requests import Limits, ValidRequest
from jitaccess.domain.teams import Caller
from jitaccess.errors import InvalidInput
from tests.unit import factories

OPERATOR_NAME = "system:serviceaccount:jitaccess:jitaccess"
OPERATOR = OperatorIdentity(frozenset({OPERATOR_NAME}))
AUTH = "system:authenticated"
ALICE = Caller("alice@example.com", frozenset({"team-payments", AUTH}))
BOB = Caller("bob@example.com", frozenset({"team-ledger", AUTH}))
PAULA = Caller("paula@example.com", frozenset({"team-payments", AUTH}))
CAROL = Caller("carol@example.com", frozenset({"sre", AUTH}))
MALLORY = Caller("mallory@example.com", frozenset({AUTH}))
LEAD = Caller("lead@example.com", frozenset({"payments-leads", AUTH}))
SYSTEM = Caller(OPERATOR_NAME, frozenset({"system:serviceaccounts", AUTH}))
LIMITS = Limits(min_duration=timedelta(minutes=1), pending_timeout=timedelta(hours=24))
#: When the helpers' reviews happen; requests created at CREATED time out a day later.
NOW = datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC)
CREATED = "2026-11-23T12:00:00Z"

TEAM = TeamOwnershipSpec.model_validate(
    {
        "members": ["alice@example.com", "paula@example.com"],
        "approvers": ["paula@example.com"],
        "approverGroups": ["payments-leads"],
        "backupApprovers": ["carol@example.com"],
        "escalateAfter": "15m",
    }
)
ENTITLEMENT = factories.entitlement()


def obj(
    *,
    annotations: dict[str, str] | None = None,
    finalizers: list[str] | None = None,
    conditions: list[dict[str, str]] | None = None,
    labels: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "r1"}
    if annotations is not None:
        metadata["annotations"] = annotations
    if finalizers is not None:
        metadata["finalizers"] = finalizers
    if labels is not None:
        metadata["labels"] = labels
    return {"metadata": metadata, "spec": spec, "status": {**(status or {}), "conditions": conditions or []}}


def request(**kwargs: Any) -> dict[str, Any]:
    """A stored request of bob's (not a member of payments), for payments' entitlement."""
    spec = {
        "entitlement": "prod-eng-payments",
        "reason": "INFRA-2441 fix stuck batch",
        "requester": "bob@example.com",
        "requesterGroups": sorted(BOB.groups),
    }
    spec.update({k: v for k, v in kwargs.items() if k not in ("annotations", "finalizers", "conditions", "labels")})
    extra = {k: v for k, v in kwargs.items() if k in ("annotations", "finalizers", "conditions", "labels")}
    return obj(**extra, **spec)


def cond(type_: str, status: str, reason: str) -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": ""}


PENDING = [cond("Ready", "False", "Pending")]


def with_annotations(base: dict[str, Any], **changes: str | None) -> dict[str, Any]:
    """A copy of `base` with annotations set (None removes): `jitaccess_dev__approved_by` stands for
    `jitaccess.dev/approved-by` (before `__`, `_` is a dot; after it, a dash)."""
    new = {**base, "metadata": {**base["metadata"]}}
    annotations = dict(base["metadata"].get("annotations") or {})
    for key, value in changes.items():
        prefix, slash, name = key.replace("__", "/").rpartition("/")
        real = f"{prefix.replace('_', '.')}{slash}{name.replace('_', '-')}"
        if value is None:
            annotations.pop(real, None)
        else:
            annotations[real] = value
    new["metadata"]["annotations"] = annotations
    return new


def review_request(
    operation: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    caller: Caller,
    *,
    phase: Phase = Phase.MUTATE,
    entitlement: Entitlement | None = ENTITLEMENT,
    team: TeamOwnershipSpec | None = TEAM,
    now: datetime = NOW,
    eligibility: adm.EligibilityCheck | None = None,
    user_id: adm.UserIdLookup | None = None,
) -> Verdict:
    """`adm.review_request` by this module's operator, limits and clock, for payments' entitlement."""
    return adm.review_request(
        operation,
        old,
        new,
        caller,
        operator=OPERATOR,
        entitlement=entitlement,
        team=team,
        limits=LIMITS,
        phase=phase,
        now=now,
        eligibility=eligibility,
        user_id=user_id,
    )


def create(
    new: dict[str, Any],
    caller: Caller = BOB,
    *,
    phase: Phase = Phase.MUTATE,
    eligibility: adm.EligibilityCheck | None = None,
    entitlement: Entitlement | None = ENTITLEMENT,
    team: TeamOwnershipSpec | None = TEAM,
) -> Verdict:
    return review_request(
        "CREATE", None, new, caller, phase=phase, eligibility=eligibility, entitlement=entitlement, team=team
    )


def update(
    old: dict[str, Any],
    new: dict[str, Any],
    caller: Caller,
    *,
    phase: Phase = Phase.MUTATE,
    team: TeamOwnershipSpec | None = TEAM,
    entitlement: Entitlement | None = ENTITLEMENT,
    now: datetime = NOW,
) -> Verdict:
    return review_request("UPDATE", old, new, caller, phase=phase, team=team, entitlement=entitlement, now=now)


def delete(old: dict[str, Any], caller: Caller, team: TeamOwnershipSpec | None = TEAM) -> Verdict:
    """A request deleted (validated only; the Entitlement need not exist any more)."""
    return review_request("DELETE", old, None, caller, phase=Phase.VALIDATE, entitlement=None, team=team)


def refused(verdict: Verdict, *fragments: str) -> Refusal:
    assert isinstance(verdict, Refusal), f"expected a refusal, got {verdict}"
    for fragment in fragments:
        assert fragment in verdict.message, f"{fragment!r} not in {verdict.message!r}"
    return verdict


def admitted(verdict: Verdict) -> Admit:
    assert isinstance(verdict, Admit), f"expected admission, got {verdict}"
    return verdict


def new_request(**spec: Any) -> dict[str, Any]:
    """A request as a client submits it: no requester."""
    return obj(**{"entitlement": "prod-eng-payments", "reason": "INFRA-2441 fix stuck batch", **spec})


def stamped(new: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """`new` as the mutating webhook leaves it."""
    return {
        **new,
        "spec": {**new["spec"], "requester": caller.username, "requesterGroups": sorted(caller.groups)},
    }


def never(valid: ValidRequest) -> str | None:
    raise AssertionError("eligibility must not be asked")


# --- identity -------------------------------------------------------------------------------


def test_caller_comes_from_userinfo() -> None:
    caller = adm.caller_of({"username": "alice@example.com", "groups": ["team-payments", AUTH], "uid": "1"})
    assert caller == ALICE
    assert adm.caller_of({}) == Caller("", frozenset())


def test_operator_identity_is_by_username_only() -> None:
    assert OPERATOR.includes(SYSTEM)
    assert not OPERATOR.includes(Caller("admin", frozenset({"system:masters", OPERATOR_NAME})))


# --- AccessRequest CREATE -------------------------------------------------------------------


def test_create_stamps_requester_and_groups_from_the_caller() -> None:
    verdict = admitted(create(new_request(), BOB))
    assert verdict.spec == {"requester": "bob@example.com", "requesterGroups": [AUTH, "team-ledger"]}
    assert verdict.annotations == {}


def test_create_accepts_the_callers_own_name_and_groups_in_any_order() -> None:
    new = new_request(requester="bob@example.com", requesterGroups=["team-ledger", AUTH])
    assert admitted(create(new, BOB)).spec["requester"] == "bob@example.com"


def test_create_refuses_someone_elses_requester() -> None:
    verdict = refused(
        create(new_request(requester="alice@example.com"), MALLORY),
        "spec.requester is 'alice@example.com'",
        "authenticated as 'mallory@example.com'",
        "remove spec.requester",
    )
    assert verdict.code == 403


@pytest.mark.parametrize("groups", [["team-payments", AUTH], ["system:masters"], "team-ledger", [AUTH]])
def test_create_refuses_requester_groups_that_are_not_the_callers(groups: Any) -> None:
    refused(create(new_request(requesterGroups=groups), BOB), "spec.requesterGroups", "remove spec.requesterGroups")


@pytest.mark.parametrize("key", adm.DECISION_ANNOTATIONS)
def test_create_refuses_any_decision_annotation(key: str) -> None:
    new = new_request()
    new["metadata"]["annotations"] = {key: "paula@example.com" if key.endswith("-by") else "true"}
    refused(create(new, BOB), key, "cannot be created already decided", "kubectl annotate accessrequest")


def test_create_refuses_forged_kopf_bookkeeping_and_operator_finalizers() -> None:
    new = new_request()
    new["metadata"]["annotations"] = {"kopf.zalando.org/reconcile_request": '{"success": true}'}
    refused(create(new, BOB), "kopf.zalando.org/reconcile_request", "only the operator may write them")
    new = new_request()
    new["metadata"]["finalizers"] = ["jitaccess.dev/finalizer"]
    refused(create(new, BOB), "metadata.finalizers", "jitaccess.dev/finalizer")


def test_create_allows_annotations_but_no_finalizer_or_jitaccess_label() -> None:
    new = new_request()
    new["metadata"]["annotations"] = {"note": "for the audit"}
    new["metadata"]["labels"] = {"example.com/ticket": "INC-1"}
    admitted(create(new, BOB))
    # A finalizer of anyone's would keep the request from ever going once withdrawn.
    new["metadata"]["finalizers"] = ["example.com/keep"]
    refused(create(new, BOB), "metadata.finalizers example.com/keep", "only the jitaccess operator sets finalizers")
    new = new_request()
    new["metadata"]["labels"] = {"jitaccess.dev/entitlement": "prod-eng-ledger"}
    refused(create(new, BOB), "metadata.labels jitaccess.dev/entitlement", "written only by the jitaccess operator")


def test_the_records_finalizer_the_stamp_adds_is_admitted_on_a_create_only() -> None:
    # The mutating webhook gives a new request `jitaccess.dev/records` (with an archive): the
    # validating one sees it in the final object, as it would one the requester wrote.
    new = new_request()
    new["metadata"]["finalizers"] = [names.RECORDS_FINALIZER]
    admitted(create(new, BOB))
    new["metadata"]["finalizers"] = [names.RECORDS_FINALIZER, names.FINALIZER]
    refused(create(new, BOB), "metadata.finalizers", names.FINALIZER)
    # Once created it is the operator's: neither dropped (the withdrawal would go unarchived) nor added.
    held = request(conditions=PENDING, finalizers=[names.RECORDS_FINALIZER])
    bare = request(conditions=PENDING)
    for who in (BOB, PAULA):
        refused(update(held, bare, who), "metadata.finalizers", names.RECORDS_FINALIZER)
        refused(update(bare, held, who), "metadata.finalizers", names.RECORDS_FINALIZER)
    assert update(held, bare, SYSTEM) == ALLOW
    # Not on the GitOps kinds: nothing would ever remove it there.
    team = {"metadata": {"name": "payments", "finalizers": [names.RECORDS_FINALIZER]}, "spec": {}}
    refused(adm.review_catalog("CREATE", None, team, BOB, operator=OPERATOR), "metadata.finalizers", "records")


def test_a_request_being_deleted_takes_no_decision() -> None:
    old = request(conditions=PENDING, finalizers=[names.RECORDS_FINALIZER])
    old["metadata"]["deletionTimestamp"] = "2026-11-23T12:00:20Z"
    approval = with_annotations(old, jitaccess_dev__approved="true")
    refused(update(old, approval, PAULA), "was deleted at 2026-11-23T12:00:20Z", "create a new")
    live = request(conditions=PENDING)
    assert isinstance(update(live, with_annotations(live, jitaccess_dev__approved="true"), PAULA), Admit)


def test_nobody_but_the_requester_and_owner_approvers_changes_a_request() -> None:
    old = request(conditions=PENDING)
    labelled = {**old, "metadata": {**old["metadata"], "labels": {"x": "1"}}}
    pinned = {**old, "metadata": {**old["metadata"], "finalizers": ["lena.example/pin"]}}
    noted = with_annotations(old, note="mine")
    # carol approves for no team here; this one is payments', whose approver is paula.
    for new, what in ((labelled, "label x"), (noted, "annotation note")):
        refused(update(old, new, CAROL), f"may change it ({what}); carol@example.com may not")
        assert update(old, new, BOB) == ALLOW, "the requester's own request"
        assert update(old, new, PAULA) == ALLOW, "an approver of the owner team"
    for who in (CAROL, BOB, PAULA):  # a finalizer: nobody's but the operator's
        refused(update(old, pinned, who), "metadata.finalizers lena.example/pin")
    assert update(old, pinned, SYSTEM) == ALLOW


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("jitaccess.dev/approve", "jitaccess.dev/approved"),
        ("jitaccess.dev/deny", "jitaccess.dev/denied"),
        ("jitaccess.dev/reason", "jitaccess.dev/revoke-reason"),  # decision-reason is listed beside it
        ("jitaccess.dev/review", "jitaccess.dev/reviewed"),
    ],
)
def test_a_misspelt_decision_is_refused_with_the_key_it_is_closest_to(key: str, meant: str) -> None:
    """Stored, it would be read by nobody: the request would stay Pending, its approver thinking it decided."""
    old = request(conditions=PENDING)
    for who in (PAULA, BOB):  # an approver, the requester
        refusal = refused(
            update(old, {**old, "metadata": {**old["metadata"], "annotations": {key: "true"}}}, who),
            f"metadata.annotations[{key}]: AccessRequests have no such annotation, and jitaccess would ignore it",
            f"did you mean {meant}?",
            "People set only jitaccess.dev/approved, jitaccess.dev/denied, jitaccess.dev/decision-reason, "
            "jitaccess.dev/reviewed, jitaccess.dev/revoked, jitaccess.dev/revoke-reason under jitaccess.dev/",
        )
        assert refusal.code == adm.INVALID
    new = new_request()
    new["metadata"]["annotations"] = {key: "true"}
    refused(create(new, BOB), f"metadata.annotations[{key}]: AccessRequests have no such annotation")


def test_every_documented_annotation_and_those_of_other_prefixes_pass_the_key_check() -> None:
    old = request(conditions=PENDING)
    assert set(adm.DECISION_ANNOTATIONS) <= adm.annotationkeys.KNOWN[names.ACCESS_REQUEST]
    for key in adm.DECISION_ANNOTATIONS:
        written = {**old, "metadata": {**old["metadata"], "annotations": {key: "x"}}}
        assert adm.review_annotation_keys(names.ACCESS_REQUEST, "UPDATE", old, written, PAULA, OPERATOR) is None
    mine = with_annotations(old, note="mine")
    mine["metadata"]["annotations"]["example.com/ticket"] = "INC-1"
    assert update(old, mine, BOB) == ALLOW
    # The operator writes what it likes; one already there is left alone, and may be removed.
    odd = {**old, "metadata": {**old["metadata"], "annotations": {"jitaccess.dev/approve": "true"}}}
    assert update(old, odd, SYSTEM) == ALLOW
    assert update(odd, with_annotations(odd, note="mine"), BOB) == ALLOW
    assert update(odd, old, BOB) == ALLOW


def test_mutate_phase_does_not_ask_eligibility() -> None:
    admitted(create(new_request(), BOB, eligibility=never))


def test_validate_phase_requires_the_stamps() -> None:
    refused(create(new_request(), BOB, phase=Phase.VALIDATE), "spec.requester", "mutating webhook")
    half = new_request(requester="bob@example.com")
    refused(create(half, BOB, phase=Phase.VALIDATE), "mutating webhook")


def test_validate_phase_admits_a_valid_eligible_request() -> None:
    asked: list[str] = []

    def eligible(valid: ValidRequest) -> str | None:
        asked.append(valid.requester)
        return None

    verdict = create(stamped(new_request(duration="2h"), BOB), BOB, phase=Phase.VALIDATE, eligibility=eligible)
    assert verdict == ALLOW
    assert asked == ["bob@example.com"]


def test_validate_phase_refuses_an_unknown_entitlement() -> None:
    verdict = refused(
        create(stamped(new_request(entitlement="prod-nope"), BOB), BOB, phase=Phase.VALIDATE, entitlement=None),
        "spec.entitlement",
        "'prod-nope'",
        "kubectl get entitlements",
    )
    assert verdict.code == 422


def test_validate_phase_refuses_an_entitlement_whose_team_is_gone() -> None:
    refused(
        create(stamped(new_request(), BOB), BOB, phase=Phase.VALIDATE, team=None),
        "spec.entitlement",
        "owner team 'payments' does not exist",
    )


@pytest.mark.parametrize(
    ("duration", "fragments"),
    [
        ("5h", ("spec.duration", "above the entitlement's maxDuration 4h", "ask for 4h or less")),
        ("30s", ("spec.duration", "below the operator's minimum 1m")),
        ("0s", ("spec.duration", "zero")),
        ("1d", ("spec.duration", "not a duration")),
    ],
)
def test_validate_phase_refuses_durations_out_of_bounds(duration: str, fragments: tuple[str, ...]) -> None:
    verdict = create(stamped(new_request(duration=duration), BOB), BOB, phase=Phase.VALIDATE, eligibility=never)
    assert refused(verdict, *fragments).code == 422


def test_validate_phase_refuses_a_reason_that_cites_no_ticket() -> None:
    refused(
        create(stamped(new_request(reason="because"), BOB), BOB, phase=Phase.VALIDATE, eligibility=never),
        "spec.reason",
        "reasonPattern",
        "cite a ticket",
    )


def test_validate_phase_refuses_an_ineligible_requester_naming_the_groups() -> None:
    def missing(valid: ValidRequest) -> str | None:
        return f"{valid.requester} is not in the Identity Center group(s) pci-secure-code-trained that this needs"

    verdict = refused(
        create(stamped(new_request(), BOB), BOB, phase=Phase.VALIDATE, eligibility=missing),
        "pci-secure-code-trained",
        "ask your identity team",
    )
    assert verdict.code == 403


def test_validate_phase_refuses_a_disabled_account_saying_to_enable_it() -> None:
    def disabled(valid: ValidRequest) -> str | None:
        return request_rules.disabled_message(valid.requester, "u-bob")

    verdict = refused(
        create(stamped(new_request(), BOB), BOB, phase=Phase.VALIDATE, eligibility=disabled),
        "bob@example.com's Identity Center account (UserId u-bob) is disabled: ask your identity team to enable your account",
    )
    assert verdict.code == 403


def test_validate_phase_refuses_when_the_entitlement_names_an_unknown_eligibility_group() -> None:
    def broken(valid: ValidRequest) -> str | None:
        raise InvalidInput("Entitlement 'prod-eng-payments' spec.eligibility.identityCenterGroups", "names 'x'")

    verdict = create(stamped(new_request(), BOB), BOB, phase=Phase.VALIDATE, eligibility=broken)
    assert refused(verdict, "spec.eligibility.identityCenterGroups").code == 422


def test_validate_phase_refuses_a_request_nobody_could_approve() -> None:
    lonely = TEAM.model_copy(update={"approvers": [], "approver_groups": []})
    refused(
        create(stamped(new_request(), BOB), BOB, phase=Phase.VALIDATE, team=lonely, eligibility=never),
        "nobody can approve",
    )


def test_validate_phase_reports_malformed_fields() -> None:
    bad = stamped(new_request(), BOB)
    del bad["spec"]["reason"]
    refused(create(bad, BOB, phase=Phase.VALIDATE, eligibility=never), "reason", "invalid")


# --- AccessRequest UPDATE: spec, stamps ------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [{"duration": "4h"}, {"entitlement": "prod-eng-ledger"}, {"requester": "alice@example.com"}, {"reason": "X-1"}],
)
def test_spec_is_immutable(change: dict[str, str]) -> None:
    old = request(conditions=PENDING)
    new = {**old, "spec": {**old["spec"], **change}}
    verdict = refused(update(old, new, PAULA), "spec is immutable", f"spec.{next(iter(change))}", "create a new")
    assert verdict.code == 422


def test_approval_by_an_approver_is_stamped_with_name_and_groups() -> None:
    old = request(conditions=PENDING)
    verdict = admitted(update(old, with_annotations(old, jitaccess_dev__approved="true"), PAULA))
    assert verdict.annotations == {
        "jitaccess.dev/approved-by": "paula@example.com",
        "jitaccess.dev/approved-by-groups": f"{AUTH},team-payments",
    }


def test_denial_with_a_reason_is_stamped() -> None:
    old = request(conditions=PENDING)
    new = with_annotations(old, jitaccess_dev__denied="true", jitaccess_dev__decision_reason="change freeze")
    assert admitted(update(old, new, PAULA)).annotations["jitaccess.dev/denied-by"] == "paula@example.com"


def test_approval_through_an_approver_group() -> None:
    old = request(conditions=PENDING)
    verdict = admitted(update(old, with_annotations(old, jitaccess_dev__approved="true"), LEAD))
    assert verdict.annotations["jitaccess.dev/approved-by"] == "lead@example.com"


def test_the_requester_may_not_approve_even_when_an_approver() -> None:
    old = request(conditions=PENDING, requester="paula@example.com", requesterGroups=sorted(PAULA.groups))
    refused(
        update(old, with_annotations(old, jitaccess_dev__approved="true"), PAULA),
        "requested this access and cannot decide on it",
        # Not named among who may: she is the one person who may not.
        "may be set only by an approver of team payments (group:payments-leads)",
    )


@pytest.mark.parametrize("flag", ["approved", "denied"])
def test_an_outsider_may_not_decide(flag: str) -> None:
    old = request(conditions=PENDING)
    new = with_annotations(old, **{f"jitaccess_dev__{flag}": "true"})
    verdict = refused(
        update(old, new, MALLORY),
        "mallory@example.com is not an approver",
        f"jitaccess.dev/{flag}=true on requests for prod-eng-payments may be set only by an approver of team payments",
        "paula@example.com",
    )
    assert verdict.code == 403


def test_a_backup_approver_waits_for_escalation() -> None:
    old = request(conditions=PENDING)
    refused(
        update(old, with_annotations(old, jitaccess_dev__approved="true"), CAROL),
        "backup approver",
        "after the request has escalated",
    )
    escalated = request(conditions=[*PENDING, cond("Escalated", "True", "PendingTooLong")])
    verdict = update(escalated, with_annotations(escalated, jitaccess_dev__approved="true"), CAROL)
    assert admitted(verdict).annotations["jitaccess.dev/approved-by"] == "carol@example.com"


def created_at(stored: dict[str, Any], stamp: str = CREATED) -> dict[str, Any]:
    return {**stored, "metadata": {**stored["metadata"], "creationTimestamp": stamp}}


@pytest.mark.parametrize("flag", ["approved", "denied"])
@pytest.mark.parametrize(
    ("late", "admits"),
    [(timedelta(seconds=-1), True), (timedelta(0), False), (timedelta(milliseconds=50), False)],
    ids=["a second before", "at the deadline", "just after"],
)
def test_a_decision_at_or_after_the_deadline_is_refused(flag: str, late: timedelta, admits: bool) -> None:
    """The deadline is creation + the pending timeout, whatever the operator's timer has done: the
    request is still Pending here, as it is in the second before the timer notices."""
    old = created_at(request(conditions=PENDING))
    deadline = datetime(2026, 11, 23, 12, 0, tzinfo=UTC) + LIMITS.pending_timeout
    mutated = update(old, with_annotations(old, **{f"jitaccess_dev__{flag}": "true"}), PAULA, now=deadline + late)
    if admits:
        stamps = admitted(mutated).annotations
        final = with_annotations(old, **{f"jitaccess_dev__{flag}": "true"})
        final["metadata"]["annotations"].update(stamps)
        admitted(update(old, final, PAULA, phase=Phase.VALIDATE, now=deadline + late))
        return
    refused(mutated, "this request timed out at 2026-11-24T12:00:00+00:00", "ask the requester to create a new one")
    stamped_too_late = with_annotations(
        old, **{f"jitaccess_dev__{flag}": "true", f"jitaccess_dev__{flag}_by": "paula@example.com"}
    )
    stamped_too_late["metadata"]["annotations"][f"jitaccess.dev/{flag}-by-groups"] = f"{AUTH},team-payments"
    refused(update(old, stamped_too_late, PAULA, phase=Phase.VALIDATE, now=deadline + late), "timed out")


def test_the_deadline_does_not_move_with_escalation() -> None:
    escalated = created_at(request(conditions=[*PENDING, cond("Escalated", "True", "PendingTooLong")]))
    deadline = datetime(2026, 11, 23, 12, 0, tzinfo=UTC) + LIMITS.pending_timeout
    refused(
        update(escalated, with_annotations(escalated, jitaccess_dev__approved="true"), CAROL, now=deadline), "timed out"
    )


@pytest.mark.parametrize("key", ["approved-by", "approved-by-groups", "denied-by", "denied-by-groups"], ids=lambda k: k)
def test_nobody_writes_a_stamp_themselves_even_their_own_name(key: str) -> None:
    old = request(conditions=PENDING)
    value = "paula@example.com" if key.endswith("-by") else "team-payments"
    new = with_annotations(old, jitaccess_dev__approved="true", **{f"jitaccess_dev__{key.replace('-', '_')}": value})
    refused(update(old, new, PAULA), f"metadata.annotations[jitaccess.dev/{key}]", "written only by the jitaccess")


def test_a_recorded_stamp_can_be_neither_changed_nor_removed() -> None:
    old = request(
        conditions=PENDING,
        annotations={"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": "paula@example.com"},
    )
    for phase in Phase:
        changed = with_annotations(old, jitaccess_dev__approved_by="mallory@example.com")
        refused(update(old, changed, MALLORY, phase=phase), "jitaccess.dev/approved-by")
        removed = with_annotations(old, jitaccess_dev__approved_by=None)
        refused(update(old, removed, PAULA, phase=phase), "jitaccess.dev/approved-by")


# --- AccessRequest UPDATE: decisions are final ------------------------------------------------


DECIDED = {"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": "paula@example.com"}


@pytest.mark.parametrize(
    "changes",
    [
        {"jitaccess_dev__denied": "true"},
        {"jitaccess_dev__approved": None},
        {"jitaccess_dev__approved": "false"},
        {"jitaccess_dev__decision_reason": "rewritten history"},
    ],
    ids=["approved-then-denied", "approval-removed", "approval-flipped", "reason-rewritten"],
)
def test_a_decision_is_final(changes: dict[str, str | None]) -> None:
    old = request(conditions=PENDING, annotations=dict(DECIDED))
    refused(update(old, with_annotations(old, **changes), PAULA), "already approved by paula@example.com", "final")


@pytest.mark.parametrize(
    ("conditions", "state"),
    [
        ([cond("Approved", "True", "AutoApproved"), cond("Ready", "True", "Granted")], "approved (AutoApproved)"),
        ([cond("Denied", "True", "Denied"), cond("Ready", "False", "Denied")], "denied (Denied)"),
        ([cond("Ready", "False", "TimedOut")], "finished (TimedOut)"),
        ([cond("Ready", "False", "Expired")], "finished (Expired)"),
    ],
)
def test_nothing_is_left_to_decide_on_a_finished_request(conditions: list[dict[str, str]], state: str) -> None:
    old = request(conditions=conditions)
    refused(update(old, with_annotations(old, jitaccess_dev__approved="true"), PAULA), f"already {state}")


@pytest.mark.parametrize("value", ["false", "yes", "", "1", "TRUE", "True", "true ", " true"])
def test_a_decision_flag_is_only_ever_true(value: str) -> None:
    old = request(conditions=PENDING)
    verdict = refused(update(old, with_annotations(old, jitaccess_dev__approved=value), PAULA), 'only value is "true"')
    assert verdict.code == 422


def test_approval_and_denial_at_once_is_refused() -> None:
    old = request(conditions=PENDING)
    new = with_annotations(old, jitaccess_dev__approved="true", jitaccess_dev__denied="true")
    refused(update(old, new, PAULA), "either approved or denied")


def test_a_decision_reason_comes_with_a_decision() -> None:
    old = request(conditions=PENDING)
    refused(
        update(old, with_annotations(old, jitaccess_dev__decision_reason="hm"), PAULA),
        "jitaccess.dev/decision-reason",
        "same change",
    )


def test_unrelated_changes_are_allowed_and_stamp_nothing() -> None:
    old = request(conditions=PENDING)
    new = with_annotations(old, note="looked at it")
    new["metadata"]["labels"] = {"team": "ledger"}
    assert update(old, new, BOB) == ALLOW


def test_a_decision_without_an_owner_team_is_refused() -> None:
    old = request(conditions=PENDING)
    refused(
        update(old, with_annotations(old, jitaccess_dev__approved="true"), PAULA, team=None),
        "no longer exists",
    )


def test_validate_phase_accepts_exactly_the_callers_stamps() -> None:
    old = request(conditions=PENDING)
    final = with_annotations(
        old,
        jitaccess_dev__approved="true",
        jitaccess_dev__approved_by="paula@example.com",
        jitaccess_dev__approved_by_groups=f"{AUTH},team-payments",
    )
    assert admitted(update(old, final, PAULA, phase=Phase.VALIDATE)).annotations == {
        "jitaccess.dev/approved-by": "paula@example.com",
        "jitaccess.dev/approved-by-groups": f"{AUTH},team-payments",
    }
    refused(update(old, final, LEAD, phase=Phase.VALIDATE), "mutating webhook")


def test_validate_phase_refuses_a_decision_that_was_not_stamped() -> None:
    old = request(conditions=PENDING)
    refused(update(old, with_annotations(old, jitaccess_dev__approved="true"), PAULA, phase=Phase.VALIDATE), "stamped")


def test_validate_phase_refuses_a_stamp_without_a_decision() -> None:
    old = request(conditions=PENDING)
    final = with_annotations(old, jitaccess_dev__approved_by="paula@example.com")
    refused(update(old, final, PAULA, phase=Phase.VALIDATE), "jitaccess.dev/approved-by", "stamped")


# --- kopf's bookkeeping, on every kind ----------------------------------------------------------


def test_users_may_not_touch_kopf_annotations() -> None:
    old = request(conditions=PENDING, annotations={"kopf.zalando.org/last-handled-configuration": "{}"})
    for changes in ({"kopf_zalando_org__last_handled_configuration": None}, {"kopf_zalando_org__x": "1"}):
        new = with_annotations(
            old, **{k.replace("kopf_zalando_org", "kopf.zalando.org"): v for k, v in changes.items()}
        )
        refused(update(old, new, PAULA), "kopf.zalando.org/", "only the operator")
    assert update(old, with_annotations(old, **{"kopf.zalando.org/x": "1"}), SYSTEM) == ALLOW


def test_users_may_not_remove_the_operators_finalizers_but_may_others() -> None:
    old = request(conditions=PENDING, finalizers=["jitaccess.dev/finalizer", "foregroundDeletion"])
    without = {**old, "metadata": {**old["metadata"], "finalizers": ["foregroundDeletion"]}}
    refused(update(old, without, PAULA), "metadata.finalizers", "jitaccess.dev/finalizer")
    gc_done = {**old, "metadata": {**old["metadata"], "finalizers": ["jitaccess.dev/finalizer"]}}
    assert update(old, gc_done, MALLORY) == ALLOW
    assert adm.review_bookkeeping("UPDATE", old, without, SYSTEM, OPERATOR) is None


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_catalog_objects_are_for_gitops_except_kopfs_bookkeeping(operation: str) -> None:
    team = {"metadata": {"name": "payments"}, "spec": {"members": []}}
    old = team if operation == "UPDATE" else None
    assert adm.review_catalog(operation, old, team, MALLORY, operator=OPERATOR) == ALLOW
    forged = {"metadata": {"name": "payments", "annotations": {"kopf.zalando.org/check_team": "done"}}}
    refused(adm.review_catalog(operation, old, forged, MALLORY, operator=OPERATOR), "kopf.zalando.org/check_team")
    assert adm.review_catalog("DELETE", team, None, MALLORY, operator=OPERATOR) == ALLOW


def test_status_is_the_operators_alone() -> None:
    assert adm.review_status("AccessGrant", SYSTEM, operator=OPERATOR) == ALLOW
    refused(
        adm.review_status("AccessGrant", PAULA, operator=OPERATOR), "AccessGrant.status is written only", "operator"
    )


# --- AccessGrant --------------------------------------------------------------------------------


def grant(**kwargs: Any) -> dict[str, Any]:
    spec = {
        "user": "bob@example.com",
        "entitlement": "prod-eng-payments",
        "groupName": "prod-eng-payments",
        "request": "r1",
        "duration": "1h",
    }
    body = obj(
        annotations=kwargs.pop("annotations", None),
        finalizers=kwargs.pop("finalizers", ["jitaccess.dev/finalizer"]),
        conditions=kwargs.pop("conditions", [cond("Ready", "True", "Active")]),
        labels=kwargs.pop("labels", {"jitaccess.dev/entitlement": "prod-eng-payments"}),
        **spec,
    )
    return body


def review_grant(
    operation: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    caller: Caller,
    *,
    phase: Phase = Phase.MUTATE,
    team: TeamOwnershipSpec | None = TEAM,
) -> Verdict:
    return adm.review_grant(
        operation, old, new, caller, operator=OPERATOR, team=team, owner="payments" if team else "", phase=phase
    )


def test_only_the_operator_creates_and_changes_grants() -> None:
    assert review_grant("CREATE", None, grant(), SYSTEM) == ALLOW
    refused(review_grant("CREATE", None, grant(), PAULA), "created only by the jitaccess operator", "AccessRequest")
    old = grant()
    longer = {**old, "spec": {**old["spec"], "duration": "4h"}}
    assert review_grant("UPDATE", old, longer, SYSTEM) == ALLOW


@pytest.mark.parametrize("who", [BOB, PAULA, LEAD], ids=lambda c: c.username)
def test_the_grantee_or_an_owner_approver_revokes_and_is_stamped(who: Caller) -> None:
    old = grant()
    new = with_annotations(old, jitaccess_dev__revoked="true", jitaccess_dev__revoke_reason="done early")
    assert admitted(review_grant("UPDATE", old, new, who)).annotations == {"jitaccess.dev/revoked-by": who.username}


@pytest.mark.parametrize("who", [MALLORY, CAROL, ALICE], ids=lambda c: c.username)
def test_anyone_else_may_not_revoke(who: Caller) -> None:
    old = grant()
    refused(
        review_grant("UPDATE", old, with_annotations(old, jitaccess_dev__revoked="true"), who),
        f"{who.username} may not revoke",
        "only the grantee bob@example.com or an approver of team payments (paula@example.com, group:payments-leads)",
    )


@pytest.mark.parametrize(
    ("approvers", "groups", "named"),
    [
        (
            ["paula@example.com", "system:admin"],
            ["payments-leads", "system:masters"],
            "paula@example.com, group:payments-leads",
        ),
        (["system:admin", "system:serviceaccount:kube-system:default"], ["system:masters"], "nobody"),
    ],
)
def test_a_refused_revocation_names_no_approver_of_kubernetes_own(
    approvers: list[str], groups: list[str], named: str
) -> None:
    """Stored before admission refused them, system: approvers approve nothing, so are not named:
    a team with only such approvers has nobody who may."""
    team = TEAM.model_copy(update={"approvers": approvers, "approver_groups": groups})
    said = refused(
        review_grant("UPDATE", grant(), with_annotations(grant(), jitaccess_dev__revoked="true"), MALLORY, team=team),
        f"an approver of team payments ({named}) may set",
    )
    assert "system:" not in said.message
    refused(review_grant("DELETE", grant(), None, MALLORY, team=team), f"approvers of team payments ({named}) may do")


def test_revocation_rules() -> None:
    old = grant()
    refused(
        review_grant("UPDATE", old, with_annotations(old, jitaccess_dev__revoked="no"), BOB), 'only value is "true"'
    )
    refused(
        review_grant("UPDATE", old, with_annotations(old, jitaccess_dev__revoke_reason="x"), BOB),
        "jitaccess.dev/revoke-reason",
        "same change",
    )
    ended = grant(conditions=[cond("Ready", "False", "Expired")])
    refused(review_grant("UPDATE", ended, with_annotations(ended, jitaccess_dev__revoked="true"), BOB), "already ended")
    revoked = grant(annotations={"jitaccess.dev/revoked": "true", "jitaccess.dev/revoked-by": "bob@example.com"})
    for changes in ({"jitaccess_dev__revoked": None}, {"jitaccess_dev__revoke_reason": "later"}):
        refused(review_grant("UPDATE", revoked, with_annotations(revoked, **changes), PAULA), "already revoked by bob")


def test_revoked_by_is_never_written_by_hand() -> None:
    old = grant()
    new = with_annotations(old, jitaccess_dev__revoked="true", jitaccess_dev__revoked_by="bob@example.com")
    refused(review_grant("UPDATE", old, new, BOB), "jitaccess.dev/revoked-by", "written only by")
    assert admitted(review_grant("UPDATE", old, new, BOB, phase=Phase.VALIDATE)).annotations == {
        "jitaccess.dev/revoked-by": "bob@example.com"
    }
    refused(review_grant("UPDATE", old, new, PAULA, phase=Phase.VALIDATE), "stamped")


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda g: g["spec"].update(duration="4h"), "spec of an AccessGrant"),
        (lambda g: g["spec"].update(user="mallory@example.com"), "spec of an AccessGrant"),
        (lambda g: g["metadata"].update(labels={}), "metadata.labels"),
        (lambda g: g["metadata"].update(ownerReferences=[{"name": "x"}]), "metadata.ownerReferences"),
        (lambda g: g["metadata"].update(finalizers=[]), "metadata.finalizers"),
        (lambda g: g["metadata"].update(annotations={"jitaccess.dev/approved-by": "x"}), "users may set only"),
        (lambda g: g["metadata"].update(annotations={"kopf.zalando.org/x": "y"}), "kopf.zalando.org/x"),
    ],
    ids=["duration", "user", "labels", "owners", "finalizer", "annotation", "kopf"],
)
def test_a_grant_is_the_operators_record(change: Any, where: str) -> None:
    old = grant()
    new = {"metadata": {**old["metadata"]}, "spec": dict(old["spec"]), "status": old["status"]}
    change(new)
    refused(review_grant("UPDATE", old, new, PAULA), where)


def test_kubectl_apply_bookkeeping_on_a_grant_is_harmless() -> None:
    old = grant()
    new = with_annotations(old, jitaccess_dev__revoked="true")
    new["metadata"]["annotations"][adm.LAST_APPLIED] = "{}"
    assert admitted(review_grant("UPDATE", old, new, BOB)).annotations
    # Without a revocation, kubectl apply's record is someone writing into the grant: nobody may.
    no_op = with_annotations(old)
    no_op["metadata"]["annotations"][adm.LAST_APPLIED] = "x" * 2_000
    for who in (BOB, PAULA, MALLORY):
        refused(review_grant("UPDATE", old, no_op, who), adm.LAST_APPLIED, "only with a revocation")
    # And however it comes, nobody leaves 200 KB in a record: the operator keeps a copy for 90 days.
    new["metadata"]["annotations"][adm.LAST_APPLIED] = "x" * 200_000
    refused(review_grant("UPDATE", old, new, BOB), "metadata: labels and annotations of 200,0", "at most 16,384")


def test_nobody_but_the_operator_puts_a_finalizer_on_a_grant() -> None:
    old = grant()
    pinned = {**old, "metadata": {**old["metadata"], "finalizers": [*old["metadata"]["finalizers"], "m.example/pin"]}}
    for who in (BOB, PAULA, MALLORY):
        refused(review_grant("UPDATE", old, pinned, who), "metadata.finalizers m.example/pin")
    assert review_grant("UPDATE", old, pinned, SYSTEM) == ALLOW
    # The garbage collector's own, added by the API server on a foreground DELETE, it removes itself.
    held = {
        **old,
        "metadata": {**old["metadata"], "finalizers": [*old["metadata"]["finalizers"], "foregroundDeletion"]},
    }
    assert review_grant("UPDATE", held, old, MALLORY) == ALLOW


def test_deleting_a_grant_is_for_owner_approvers_and_the_operator() -> None:
    old = grant(conditions=[cond("Ready", "False", "Expired")])
    assert review_grant("DELETE", old, None, PAULA, phase=Phase.VALIDATE) == ALLOW
    assert review_grant("DELETE", grant(), None, SYSTEM, phase=Phase.VALIDATE) == ALLOW
    refused(
        review_grant("DELETE", old, None, BOB, phase=Phase.VALIDATE),
        "only approvers of team payments",
        "kubectl annotate accessgrant r1 jitaccess.dev/revoked=true",
    )
    refused(review_grant("DELETE", old, None, CAROL, phase=Phase.VALIDATE), "only approvers")
    refused(review_grant("DELETE", old, None, PAULA, phase=Phase.VALIDATE, team=None), "no longer exists")


@pytest.mark.parametrize("reason", ["Active", "Pending", None])
def test_a_grant_whose_access_has_not_ended_is_revoked_not_deleted(reason: str | None) -> None:
    """A deletion leaves no stamp: its end would be recorded as the operator's, with no reason (attack 124)."""
    live = grant(conditions=[cond("Ready", "True" if reason == "Active" else "False", reason)] if reason else [])
    refused(
        review_grant("DELETE", live, None, PAULA, phase=Phase.VALIDATE),
        f"AccessGrant r1 is {reason or 'being provisioned'}: deleting it would end bob@example.com's access",
        "jitaccess.dev/revoked-by stamp",
        "kubectl jit revoke r1 --reason",
    )
    # Revoked by name (the webhook's stamp), its end names the revoker whenever it lands: it may go.
    stamped = with_annotations(live, jitaccess_dev__revoked="true", jitaccess_dev__revoked_by=PAULA)
    assert review_grant("DELETE", stamped, None, PAULA, phase=Phase.VALIDATE) == ALLOW
    for ended in ("Expired", "Revoked", "Failed", "EligibilityLapsed"):
        assert review_grant("DELETE", grant(conditions=[cond("Ready", "False", ended)]), None, PAULA) == ALLOW


# --- reasons people write: bounded, one line of plain text ---------------------------------------


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize(
    ("reason", "named"),
    [
        ("INFRA-1 \x1b[2J\x1b[1;1Happroved", "U+001B (ESC) at character 9"),
        ("INFRA-1 ding\x07", "U+0007 (BEL) at character 13"),
        ("INFRA-1\x00", "U+0000 (NUL) at character 8"),
        ("INFRA-1 \u202efdp.exe", "U+202E (RIGHT-TO-LEFT OVERRIDE) at character 9"),
        ("INFRA-1\nsecond line", "U+000A (LF) at character 8"),
        ("INFRA-1 " + "x" * 10_000, "10008 characters long, above the limit of 1024"),
    ],
)
def test_create_refuses_a_reason_a_terminal_would_act_on(phase: Phase, reason: str, named: str) -> None:
    new = new_request(reason=reason)
    new = stamped(new, BOB) if phase is Phase.VALIDATE else new
    verdict = refused(
        create(new, phase=phase, eligibility=never), f"spec.reason {'is' if 'long' in named else 'holds'}"
    )
    assert named in verdict.message
    assert verdict.code == 422


@pytest.mark.parametrize(
    ("value", "named"),
    [("ok \x1b]0;pwned\x07", "U+001B (ESC) at character 4"), ("x" * 1025, "1025 characters long")],
)
def test_a_decision_reason_is_checked_like_a_request_reason(value: str, named: str) -> None:
    old = request(conditions=PENDING)
    new = with_annotations(old, jitaccess_dev__denied="true", jitaccess_dev__decision_reason=value)
    refused(update(old, new, PAULA), "metadata.annotations[jitaccess.dev/decision-reason]", named)
    fine = with_annotations(old, jitaccess_dev__denied="true", jitaccess_dev__decision_reason="x" * 1024)
    assert admitted(update(old, fine, PAULA)).annotations["jitaccess.dev/denied-by"] == PAULA.username


def test_a_revoke_reason_is_checked_like_a_request_reason() -> None:
    old = grant()
    new = with_annotations(old, jitaccess_dev__revoked="true", jitaccess_dev__revoke_reason="done\u2066 early")
    refused(
        review_grant("UPDATE", old, new, BOB),
        "metadata.annotations[jitaccess.dev/revoke-reason] holds U+2066 (LEFT-TO-RIGHT ISOLATE) at character 5",
    )


def test_a_reason_stored_before_the_rule_does_not_block_later_changes() -> None:
    """Only what a change writes is checked: the operator can still finish an old grant."""
    old = grant(annotations={"jitaccess.dev/revoke-reason": "old\x1b[0m", "jitaccess.dev/revoked": "true"})
    new = with_annotations(old, note="the operator's own change")
    assert adm.review_text(old, new) is None
    assert update(request(reason="old\ttab"), with_annotations(request(reason="old\ttab"), note="x"), BOB) == ALLOW


@pytest.mark.parametrize("flag", ["approved", "denied"])
@pytest.mark.parametrize("value", ["TRUE", "true ", "yes", "1"])
def test_a_variant_of_true_neither_approves_nor_denies(flag: str, value: str) -> None:
    old = request(conditions=PENDING)
    verdict = refused(
        update(old, with_annotations(old, **{f"jitaccess_dev__{flag}": value}), PAULA),
        f'metadata.annotations[jitaccess.dev/{flag}] is {value!r}: its only value is "true"',
    )
    assert verdict.code == 422


@pytest.mark.parametrize("value", ["TRUE", "true ", "yes", "1"])
def test_a_variant_of_true_does_not_revoke(value: str) -> None:
    old = grant()
    refused(
        review_grant("UPDATE", old, with_annotations(old, jitaccess_dev__revoked=value), BOB),
        f'metadata.annotations[jitaccess.dev/revoked] is {value!r}: its only value is "true"',
    )


def test_an_approval_applied_by_a_non_approver_is_refused_as_a_decision() -> None:
    # kubectl apply writes its record with the decision: the decision's rules answer, naming why.
    old = request(conditions=PENDING)
    applied = with_annotations(old, jitaccess_dev__approved="true")
    applied["metadata"]["annotations"][adm.LAST_APPLIED] = "{}"
    refused(update(old, applied, MALLORY), "is not an approver of the owner team")
    # Alone, the record is someone writing into another's request.
    alone = with_annotations(old)
    alone["metadata"]["annotations"][adm.LAST_APPLIED] = "x" * 1000
    refused(update(old, alone, MALLORY), f"annotation {adm.LAST_APPLIED}); mallory@example.com may not")


def test_who_may_decide_leaves_out_the_requester_and_who_already_approved() -> None:
    team = TEAM.model_copy(update={"approvers": ["paula@example.com", "lena@example.com"], "approver_groups": []})
    assert request_rules.approvers_text(team, False, excluding={"paula@example.com"}) == "lena@example.com"
    # paula asked, lena approved one of two: nobody is left until the backups may decide.
    nobody = request_rules.approvers_text(team, False, excluding={"paula@example.com", "lena@example.com"})
    assert nobody == "nobody before the escalation, then carol@example.com"
    assert (
        request_rules.approvers_text(team, True, excluding={"paula@example.com", "lena@example.com"})
        == "carol@example.com"
    )


def test_who_may_decide_is_a_bounded_list_however_large_the_team() -> None:
    # A pending request's status says who may approve it, twice once it escalates (Escalated and
    # Ready): a team naming thousands of long names must not make that status a write the API
    # server refuses (etcd: about 1.5 MB), which would leave the request unescalated and its Ready
    # untrue. Ten names at most, each cut to 256 characters, the rest counted.
    approvers = [f"{i:04d}" + "a" * 996 + "@example.com" for i in range(800)]
    groups = [f"g{i:05d}" for i in range(90_000)]
    team = TEAM.model_copy(
        update={"approvers": approvers, "approver_groups": [], "backup_approvers": [], "backup_approver_groups": groups}
    )
    pending = request_rules.approvers_text(team, False, excluding={"paula@example.com"})
    assert pending.startswith("0000" + "a" * 251 + "…, 0001")
    assert pending.endswith(" and 790 more")
    assert len(pending) < 3_000
    escalated = request_rules.approvers_text(team, True)
    assert escalated.endswith(", 0009" + "a" * 251 + "… and 90790 more")
    only_backups = team.model_copy(update={"approvers": []})
    assert request_rules.approvers_text(only_backups, False) == (
        "nobody before the escalation, then " + ", ".join(f"group:g{i:05d}" for i in range(10)) + " and 89990 more"
    )


def test_an_entitlement_named_longer_than_a_label_value_is_refused_at_creation() -> None:
    """Its grants carry its name as a label value (at most 63 characters): none could be created."""
    entitlement = {"kind": "Entitlement", "metadata": {"name": "e" * 64}, "spec": {"owner": "ledger"}}
    refused(
        adm.review_catalog("CREATE", None, entitlement, MALLORY, operator=OPERATOR),
        "metadata.name is 64 characters long, above the limit of 63",
        "label jitaccess.dev/entitlement",
        "name it in 63 characters or fewer",
    )
    fits = {**entitlement, "metadata": {"name": "e" * 63}}
    assert adm.review_catalog("CREATE", None, fits, MALLORY, operator=OPERATOR) == ALLOW
    # One stored before the rule stays writable (its requests are refused, saying why).
    relabelled = {**entitlement, "metadata": {"name": "e" * 64, "labels": {"x": "1"}}}
    assert adm.review_catalog("UPDATE", entitlement, relabelled, MALLORY, operator=OPERATOR) == ALLOW


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"defaultDuration": "8h", "maxDuration": "1h"}, "spec.defaultDuration 8h is above spec.maxDuration 1h"),
        ({"defaultDuration": "5h"}, "spec.defaultDuration 5h is above spec.maxDuration 4h"),  # the default max
        ({"maxDuration": "30m"}, "spec.defaultDuration 1h is above spec.maxDuration 30m"),  # the default default
        ({"maxDuration": "0s"}, "spec.maxDuration '0s' is zero"),
    ],
)
def test_an_entitlement_whose_default_is_above_its_maximum_is_refused(spec: dict[str, str], words: str) -> None:
    entitlement = {"kind": "Entitlement", "metadata": {"name": "e"}, "spec": {"owner": "ledger", **spec}}
    refused(adm.review_catalog("CREATE", None, entitlement, MALLORY, operator=OPERATOR), words)
    fine = {**entitlement, "spec": {"owner": "ledger", "defaultDuration": "1h", "maxDuration": "1h"}}
    assert adm.review_catalog("CREATE", None, fine, MALLORY, operator=OPERATOR) == ALLOW
    # A stored one, changed elsewhere, is not held up by it (GitOps fixes it when it can).
    relabelled = {**entitlement, "metadata": {"name": "e", "labels": {"x": "1"}}}
    assert adm.review_catalog("UPDATE", entitlement, relabelled, MALLORY, operator=OPERATOR) == ALLOW


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (
            {"defaultDuration": "30s", "maxDuration": "30s"},
            "spec.maxDuration 30s is below the operator's minimum 1m (JITACCESS_MIN_DURATION_SECONDS): no request "
            "could ever be granted; make it at least 1m",
        ),
        ({"defaultDuration": "30s"}, "spec.defaultDuration 30s is below the operator's minimum 1m"),
        (
            {"breakGlass": {"groups": ["sre"], "maxDuration": "45s"}},
            "spec.breakGlass.maxDuration 45s is below the operator's minimum 1m (JITACCESS_MIN_DURATION_SECONDS): no "
            "break-glass request could ever be granted",
        ),
    ],
)
def test_an_entitlement_below_the_operators_minimum_duration_is_refused(spec: dict[str, Any], words: str) -> None:
    """Admitted and Ready, such an Entitlement refused every request (each below the minimum), and
    said so only to the requester."""
    minimum = LIMITS  # a minimum of 1m
    entitlement = {"kind": "Entitlement", "metadata": {"name": "e"}, "spec": {"owner": "ledger", **spec}}
    verdict = refused(
        adm.review_catalog("CREATE", None, entitlement, MALLORY, operator=OPERATOR, limits=minimum), words
    )
    assert verdict.code == adm.INVALID
    fine = {**entitlement, "spec": {"owner": "ledger", "defaultDuration": "1m", "maxDuration": "1m"}}
    assert adm.review_catalog("CREATE", None, fine, MALLORY, operator=OPERATOR, limits=minimum) == ALLOW
    relabelled = {**entitlement, "metadata": {"name": "e", "labels": {"x": "1"}}}
    assert adm.review_catalog("UPDATE", entitlement, relabelled, MALLORY, operator=OPERATOR, limits=minimum) == ALLOW


def test_a_spec_change_is_refused_as_such_whoever_makes_it() -> None:
    # Naming another entitlement makes the webhook look up another owner team, of which lena is
    # no approver: the answer is still that the spec is immutable.
    old = request(conditions=PENDING)
    moved = {**old, "spec": {**old["spec"], "entitlement": "prod-eng-ledger"}}
    moved["metadata"] = {**old["metadata"], "annotations": {adm.LAST_APPLIED: "{}"}}
    refused(update(old, moved, MALLORY), "spec is immutable", "spec.entitlement")


# --- owner references and the size of what users leave in records (attacks 48, 49) ------------------------


def test_owner_references_are_the_operators_but_may_be_taken_away() -> None:
    ref = {"apiVersion": "jitaccess.dev/v1alpha1", "kind": "Entitlement", "name": "e", "uid": "u-1"}
    old = request(conditions=PENDING)
    owned = {**old, "metadata": {**old["metadata"], "ownerReferences": [ref]}}
    for who in (BOB, PAULA):
        refused(review_request("UPDATE", old, owned, who), "metadata.ownerReferences", "only the jitaccess operator")
    assert not isinstance(review_request("UPDATE", old, owned, SYSTEM), Refusal)
    # Taking one away (the garbage collector orphaning it, say) makes nothing worse.
    assert not isinstance(review_request("UPDATE", owned, old, PAULA), Refusal)


def test_a_write_may_not_leave_more_than_16k_in_labels_and_annotations() -> None:
    old = request(conditions=PENDING)
    bulky = {**old, "metadata": {**old["metadata"], "labels": {f"k{i}": "v" * 63 for i in range(300)}}}
    refused(review_request("UPDATE", old, bulky, PAULA), "labels and annotations of", "at most 16,384")
    # A record stored that large before the bound may still be decided: jitaccess's own
    # annotations do not count, and the write makes nothing larger.
    decided = with_annotations(bulky, jitaccess_dev__approved="true")
    assert not isinstance(review_request("UPDATE", bulky, decided, PAULA), Refusal)


@pytest.mark.parametrize("gc", ["foregroundDeletion", "orphan"])
def test_the_garbage_collector_still_removes_its_finalizer_from_a_request_being_deleted(gc: str) -> None:
    # `kubectl delete --cascade=foreground` adds the collector's finalizer: were its removal refused,
    # the request would stay once the operator has removed its own.
    collector = Caller("system:serviceaccount:kube-system:generic-garbage-collector", frozenset({AUTH}))
    old = request(conditions=PENDING, finalizers=[names.RECORDS_FINALIZER, gc])
    old["metadata"]["deletionTimestamp"] = "2026-11-23T12:00:20Z"
    new = {**old, "metadata": {**old["metadata"], "finalizers": [names.RECORDS_FINALIZER]}}
    assert update(old, new, collector) == ALLOW
    # Nor does it pass anything else along with it.
    noted = with_annotations(new, jitaccess_dev__approved="true")
    refused(update(old, noted, collector), "was deleted at")


def test_a_request_under_the_name_of_a_stored_grant_is_refused_naming_it() -> None:
    """Attack 130: a request's grant takes its name, so a name a grant holds is no request's."""
    assert adm.name_held_by_grant("a130", None) is None
    grant = {
        "metadata": {"name": "a130"},
        "spec": {"user": "alice@example.com", "entitlement": "prod-eng-payments"},
        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Revoked"}]},
    }
    refusal = adm.name_held_by_grant("a130", grant)
    assert isinstance(refusal, Refusal)
    assert refusal.message.startswith(
        "metadata.name: a130 is the name of AccessGrant a130 of an earlier request "
        "(alice@example.com, prod-eng-payments, Revoked)"
    )
    assert "metadata.generateName" in refusal.message
    del grant["status"]
    still = adm.name_held_by_grant("a130", grant)
    assert still is not None and "being provisioned" in still.message

"""Issue 13, capabilities 4 and 5: the rules of a scheduled start (`domain.schedule`, the request
rules and admission around it, `kubectl jit request --start`) and of an Entitlement's reason
policy (`domain.reasons`: the pattern and its example, at request and at Entitlement admission)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jitaccess.api import names
from jitaccess.api.models import AccessRequest
from jitaccess.cli import decisions
from jitaccess.cli.errors import Refused, UsageError
from jitaccess.cli.start import start_time, wire_text
from jitaccess.domain import admission as adm
from jitaccess.domain import reasons, schedule
from jitaccess.domain import requests as request_rules
from jitaccess.domain.requests import Limits
from jitaccess.errors import InvalidInput
from jitaccess.handlers.starts import Start, scheduled
from jitaccess.settings import Settings
from tests.unit import factories
from tests.unit.test_admission import BOB, MALLORY, OPERATOR, PAULA, SYSTEM, cond, delete, refused, request
from tests.unit.test_cli_commands import cond as cli_cond
from tests.unit.test_cli_commands import session
from tests.unit.test_cli_withdraw import PATH, DeletingApi, stored

T0 = factories.T0
HORIZON = timedelta(days=7)
LIMITS = Limits(min_duration=timedelta(minutes=1), pending_timeout=timedelta(hours=24), max_start_ahead=HORIZON)
EXAMPLE = "INC-1234 roll back the deploy"


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def validate(start: datetime | None, created: datetime = T0, **entitlement: Any) -> request_rules.ValidRequest:
    extra: dict[str, Any] = {"startTime": start.isoformat()} if start is not None else {}
    return request_rules.validate(
        factories.request(created=created, **extra), factories.entitlement(**entitlement), factories.team(), LIMITS
    )


# --- the start time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start",
    [
        T0 + timedelta(hours=18),  # tomorrow's change window
        T0 + HORIZON,  # exactly the horizon
        T0 - timedelta(seconds=30),  # the client's clock a little behind the API server's
    ],
)
def test_a_start_within_the_horizon_is_valid(start: datetime) -> None:
    assert validate(start).requester == "bob@example.com"


def test_a_start_in_the_past_names_the_field_and_the_fix() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate(T0 - timedelta(minutes=5))
    assert caught.value.field == "spec.startTime"
    assert "2026-11-23T11:55:00Z is in the past (the request was created at 2026-11-23T12:00:00Z)" in str(caught.value)
    assert "leave spec.startTime out to begin as soon as the request is approved" in str(caught.value)


@pytest.mark.parametrize("start", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_start_with_no_utc_form_is_refused_naming_the_field(start: str) -> None:
    """The API server and pydantic take these, but in UTC they lie past the last datetime (or before
    the first): the refusal's own wording of the time raised OverflowError, which the webhook
    answered with a 500 naming nothing, and the operator retried for ever."""
    with pytest.raises(InvalidInput) as caught:
        validate(datetime.fromisoformat(start))
    assert caught.value.field == "spec.startTime"
    assert f"{start} is " in str(caught.value) and "(the request was created at 2026-11-23T12:00:00Z" in str(
        caught.value
    )


@pytest.mark.parametrize("start", ["2026-12-04T06:00:00+25:00", "tomorrow at six", "2026-13-01T06:00:00Z"])
def test_a_start_that_is_no_time_says_how_to_write_one(start: str) -> None:
    """Pydantic's "Input should be a valid datetime" names what is wrong, not the form wanted."""
    from tests.unit.test_admission import create, new_request, stamped

    verdict = create(stamped(new_request(duration="2h", startTime=start), BOB), BOB, phase=adm.Phase.VALIDATE)
    refusal = refused(verdict, "spec.startTime is invalid: Input should be a valid datetime")
    assert refusal.message.endswith("; write an RFC 3339 time with a zone, such as 2026-12-01T06:00:00Z"), refusal
    # The operator's own parse of a stored one (handlers.common.parse) says the same.
    from jitaccess.handlers.common import parse

    with pytest.raises(InvalidInput) as caught:
        parse(AccessRequest, stamped(new_request(duration="2h", startTime=start), BOB))
    assert caught.value.field == "spec.startTime"
    assert "write an RFC 3339 time with a zone, such as 2026-12-01T06:00:00Z" in str(caught.value)


@pytest.mark.parametrize("start", ["2026-12-04t06:00:00z", "2026-12-04T06:00:00z", "2026-12-04t06:00:00+01:00"])
def test_a_start_in_lower_case_is_refused_as_the_crd_rules_cannot_read_it(start: str) -> None:
    """Python and the API server's format check take it; the CRD's CEL rules do not, and failed every
    later write of the request (a record stuck for good)."""
    from tests.unit.test_admission import create, new_request, stamped

    verdict = create(stamped(new_request(duration="2h", startTime=start), BOB), BOB, phase=adm.Phase.VALIDATE)
    refused(verdict, "spec.startTime is invalid", "write it with an upper-case T and Z, such as 2026-12-01T06:00:00Z")
    upper = start.replace("t", "T").replace("z", "Z")
    assert create(stamped(new_request(duration="2h", startTime=upper), BOB), BOB, phase=adm.Phase.VALIDATE) == adm.ALLOW


def test_a_start_beyond_the_horizon_names_the_setting_and_the_latest_start() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate(T0 + HORIZON + timedelta(seconds=1))
    assert caught.value.field == "spec.startTime"
    assert "is more than 168h ahead" in str(caught.value)
    assert "JITACCESS_MAX_START_AHEAD_SECONDS" in str(caught.value)
    assert "ask for a start before 2026-11-30T12:00:00Z" in str(caught.value)


def test_the_start_is_judged_from_the_requests_creation_not_from_now() -> None:
    """Reconciled a week later (after a restart, say), the request is as valid as it was: the rule
    reads the creation time, so the start is not 'in the past' once it has come."""
    start = T0 + timedelta(hours=1)
    assert validate(start, created=T0).requester
    with pytest.raises(InvalidInput, match="in the past"):
        validate(start, created=T0 + timedelta(hours=2))


def test_the_horizon_is_the_operators_setting() -> None:
    assert Settings().limits.max_start_ahead == timedelta(days=7)
    assert Settings(max_start_ahead_seconds=3600).limits.max_start_ahead == timedelta(hours=1)


def test_a_start_waits_until_it_has_come_never_earlier() -> None:
    start = T0 + timedelta(hours=1)
    assert schedule.waits(start, start - timedelta(microseconds=1))
    assert not schedule.waits(start, start)
    assert not schedule.waits(None, T0)
    window = schedule.approved_window(start, T0, timedelta(hours=4))
    assert window is not None
    said = schedule.scheduled_message("approved", window)
    assert "access begins at 2026-11-23T13:00:00Z (spec.startTime)" in said
    assert "and ends by 2026-11-23T17:00:00Z however late it begins" in said


# --- the window an approval with a start is for (attack 149) ------------------------------------------


def _waiting(start: datetime, approved: datetime) -> AccessRequest:
    """alice's request for 4 h from `start`, approved at `approved`, `Scheduled`."""
    conditions = [cond("Approved", "True", "Approved"), cond("Ready", "False", "Scheduled")]
    for c in conditions:
        c["lastTransitionTime"] = _stamp(approved)
    return AccessRequest.model_validate(request(conditions=conditions, startTime=_stamp(start)))


FOUR_HOURS = timedelta(hours=4)


def test_the_window_runs_from_the_start_or_from_an_approval_after_it_for_the_duration() -> None:
    start = T0 + timedelta(hours=18)
    before = request_rules.approved_window(_waiting(start, T0), FOUR_HOURS, start + timedelta(hours=2))
    assert before == schedule.Window(start, start + FOUR_HOURS)
    # Approved an hour after its start: it begins at once, and its window from the approval.
    late = start + timedelta(hours=1)
    assert request_rules.approved_window(_waiting(start, late), FOUR_HOURS, late) == schedule.Window(
        late, late + FOUR_HOURS
    )
    # An approval dated after now (only a hand-written status can be) does not push the window on.
    assert request_rules.approved_window(_waiting(start, start + timedelta(days=3)), FOUR_HOURS, late) == (
        schedule.Window(late, late + FOUR_HOURS)
    )
    # No start: nothing bounds it here, its duration counts from the activation.
    assert request_rules.approved_window(AccessRequest.model_validate(request()), FOUR_HOURS, start) is None


def test_a_start_taken_after_its_window_grants_nothing_and_says_why_and_what_to_do() -> None:
    """The etcd restore: lena approved alice's request for Tue 06:00, 4 h; the cluster, restored at
    10:00 from a backup taken while it waited, brings it back `Scheduled`."""
    start = T0 + timedelta(hours=18)
    waiting = _waiting(start, T0)
    assert request_rules.window_passed(waiting, FOUR_HOURS, start + timedelta(hours=2)) is None, "half is left"
    assert request_rules.window_passed(waiting, FOUR_HOURS, start + FOUR_HOURS - timedelta(seconds=1)) is None
    passed = request_rules.window_passed(waiting, FOUR_HOURS, start + FOUR_HOURS)
    assert passed == request_rules.NoGrant(
        "Failed",
        "not granted: its window 2026-11-24T06:00:00Z..2026-11-24T10:00:00Z passed before the operator could begin "
        "it (the operator was down, or the cluster was restored from a backup); request access again",
    )
    assert request_rules.window_passed(AccessRequest.model_validate(request()), FOUR_HOURS, start) is None


def _approved(reason: str, start: datetime | None = T0 + timedelta(hours=1)) -> dict[str, Any]:
    spec = {"startTime": _stamp(start)} if start is not None else {}
    return request(conditions=[cond("Approved", "True", "Approved"), cond("Ready", "False", reason)], **spec)


def test_the_start_index_holds_approved_scheduled_requests_only() -> None:
    assert scheduled(_approved(names.SCHEDULED)) == Start("r1", T0 + timedelta(hours=1))
    assert scheduled(_approved(names.PENDING)) is None, "approved, being provisioned"
    assert scheduled(_approved(names.GRANTED)) is None
    assert scheduled(_approved(names.SCHEDULED, start=None)) is None, "no start: nothing to wait for"
    pending = request(conditions=[cond("Ready", "False", "Scheduled")], startTime=_stamp(T0))
    assert scheduled(pending) is None, "Scheduled without Approved=True is nobody's approval"


def test_a_scheduled_request_may_be_withdrawn_as_a_pending_one() -> None:
    """Approved for a start to come, it has no access yet: its requester may take it back; an approver
    revokes it first (which names them in its records, attack 124), then may delete it; nobody else may."""
    waiting = _approved(names.SCHEDULED)
    assert delete(waiting, BOB) == adm.ALLOW
    refused(delete(waiting, PAULA), "paula@example.com may not delete it", "kubectl jit revoke r1 --reason")
    assert delete(waiting, SYSTEM) == adm.ALLOW
    refused(delete(waiting, MALLORY), "only bob@example.com may withdraw it", "kubectl jit revoke r1 --reason")
    refused(delete(_approved(names.GRANTED), BOB), "the record of access that has not ended yet")


def test_the_start_cannot_change_once_the_request_exists() -> None:
    """The request spec is immutable (the webhook as well as the CRD's CEL rule): moving a start after
    the approval would turn an approval for one window into access in another."""
    old = _approved(names.SCHEDULED)
    new = {**old, "spec": {**old["spec"], "startTime": _stamp(T0 + timedelta(hours=5))}}
    verdict = adm.review_request(
        "UPDATE",
        old,
        new,
        BOB,
        operator=OPERATOR,
        entitlement=factories.entitlement(),
        team=factories.team(),
        limits=LIMITS,
        phase=adm.Phase.VALIDATE,
        now=T0,
    )
    refused(verdict, "spec is immutable once a request is created (spec.startTime would change)")


# --- kubectl jit request --start -----------------------------------------------------------------

NOW = datetime(2026, 11, 30, 17, 0, 12, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("2026-12-01T06:00:00Z", "2026-12-01T06:00:00Z"),
        ("2026-12-01T07:00:00+01:00", "2026-12-01T06:00:00Z"),
        ("+30m", "2026-11-30T17:30:12Z"),
        ("+1h30m", "2026-11-30T18:30:12Z"),
    ],
)
def test_start_flag_takes_rfc3339_or_a_time_from_now(text: str, wanted: str) -> None:
    assert wire_text(start_time(text, NOW)) == wanted


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("tomorrow", "is not a time: give one in RFC 3339 (2026-12-01T06:00:00Z) or from now (+30m)"),
        ("2026-12-01T06:00:00", "has no time zone: add Z"),
        ("2026-11-01T06:00:00Z", "is in the past"),
        ("+1d", "is not a duration"),
    ],
)
def test_start_flag_refuses_what_it_cannot_mean(text: str, words: str) -> None:
    with pytest.raises(UsageError) as caught:
        start_time(text, NOW)
    assert words in str(caught.value)


# --- the reason policy ---------------------------------------------------------------------------


def test_a_refused_reason_shows_the_pattern_and_the_example() -> None:
    with pytest.raises(InvalidInput) as caught:
        request_rules.validate(
            factories.request(reason="rolling back"),
            factories.entitlement(reasonExample=EXAMPLE),
            factories.team(),
            LIMITS,
        )
    assert caught.value.field == "spec.reason"
    assert str(caught.value) == (
        "spec.reason 'rolling back' does not match the entitlement's reasonPattern '^[A-Z]+-[0-9]+': "
        "cite a ticket, for example 'INC-1234 roll back the deploy'"
    )


def test_without_an_example_the_refusal_says_none_is_given() -> None:
    assert reasons.mismatch("because", "^[A-Z]+-[0-9]+", None) == (
        "'because' does not match the entitlement's reasonPattern '^[A-Z]+-[0-9]+': "
        "cite a ticket (the entitlement gives no reasonExample)"
    )
    assert reasons.mismatch("INC-1 x", "^[A-Z]+-[0-9]+", None) is None
    assert reasons.mismatch("anything", None, EXAMPLE) is None, "an example alone asks nothing of the reason"


def test_the_prompt_shows_the_pattern_and_the_example() -> None:
    assert reasons.prompt_hint("^[A-Z]+-[0-9]+", EXAMPLE) == f" (must match ^[A-Z]+-[0-9]+; e.g. {EXAMPLE})"
    assert reasons.prompt_hint(None, None) == ""


def _entitlement(**spec: Any) -> dict[str, Any]:
    return {"kind": names.ENTITLEMENT, "metadata": {"name": "prod"}, "spec": {"owner": "payments", **spec}}


def test_an_entitlement_whose_example_fails_its_own_pattern_is_refused() -> None:
    bad = _entitlement(reasonPattern="^[A-Z]+-[0-9]+", reasonExample="roll back the deploy")
    verdict = refused(
        adm.review_catalog("CREATE", None, bad, MALLORY, operator=OPERATOR),
        "spec.reasonExample 'roll back the deploy' does not match spec.reasonPattern '^[A-Z]+-[0-9]+'",
        "give one that matches the pattern",
    )
    assert verdict.code == adm.INVALID


def test_an_entitlement_whose_pattern_does_not_compile_is_refused() -> None:
    refused(
        adm.review_catalog("CREATE", None, _entitlement(reasonPattern="(["), MALLORY, operator=OPERATOR),
        "spec.reasonPattern '([' is not a valid regular expression",
    )


@pytest.mark.parametrize("pattern", [r"^(INC)-[0-9]+ \1", r"^(?=INC)[A-Z]+-[0-9]+", r"^(?<=x)INC"])
def test_a_pattern_that_cannot_be_matched_in_linear_time_is_refused(pattern: str) -> None:
    """Backreferences and lookaround need a backtracking matcher, whose time can explode on a
    reason that fails the pattern; RE2 refuses them, and admission says so with the fix."""
    review = adm.review_catalog("CREATE", None, _entitlement(reasonPattern=pattern), MALLORY, operator=OPERATOR)
    refused(review, f"spec.reasonPattern {pattern!r} is not a valid regular expression")
    refused(review, "patterns use RE2's syntax, without backreferences or lookaround")


def test_a_pattern_too_large_to_check_quickly_is_refused() -> None:
    pattern = "|".join(f"{c}.{{950,999}}c" for c in "abc")
    review = adm.review_catalog("CREATE", None, _entitlement(reasonPattern=pattern), MALLORY, operator=OPERATOR)
    refused(review, "too large to check quickly", "use smaller repetition counts")
    assert reasons.pattern_problem("^.{10,1000}$") is None  # a length rule, UTF-8 and all, is fine


def test_a_pattern_that_backtracks_in_python_is_checked_in_linear_time() -> None:
    """`^(\\w+ ?)+$` against a long reason that fails it: Python's `re` tries every way to split the
    words (2**n of them; seconds at 25 characters, hours at 60), holding the interpreter's lock, so
    one requester would stop every webhook and expiry of the replica. RE2 answers at once, with the
    same verdicts as `re` where `re` finishes."""
    pattern = r"^(\w+ ?)+$"
    assert reasons.mismatch("INC-1234 restart the stuck payment batch job at once, please.", pattern, None)
    assert reasons.mismatch("INC1234 restart the job", pattern, None) is None
    assert reasons.mismatch("INC-1 x", "^[A-Z]+-[0-9]+", None) is None


def test_a_sound_policy_and_changes_elsewhere_are_admitted() -> None:
    good = _entitlement(reasonPattern="^[A-Z]+-[0-9]+", reasonExample=EXAMPLE)
    assert adm.review_catalog("CREATE", None, good, MALLORY, operator=OPERATOR) == adm.ALLOW
    # An Entitlement stored before the rule (a broken example) is not held up by writes elsewhere.
    stored = _entitlement(reasonPattern="^[A-Z]+-", reasonExample="nope")
    relabelled = {**stored, "metadata": {"name": "prod", "labels": {"team": "payments"}}}
    assert adm.review_catalog("UPDATE", stored, relabelled, MALLORY, operator=OPERATOR) == adm.ALLOW
    refused(
        adm.review_catalog(
            "UPDATE", stored, {**stored, "spec": {**stored["spec"], "reasonExample": "no"}}, MALLORY, operator=OPERATOR
        ),
        "spec.reasonExample 'no'",
    )
    team = {"kind": names.TEAM_OWNERSHIP, "metadata": {"name": "t"}, "spec": {"reasonPattern": "(["}}
    assert adm.review_catalog("CREATE", None, team, MALLORY, operator=OPERATOR) == adm.ALLOW


def test_the_request_model_reads_a_start_time() -> None:
    parsed = AccessRequest.model_validate(
        {"spec": {"entitlement": "e", "reason": "INC-1 x", "startTime": "2026-12-01T06:00:00Z"}}
    )
    assert parsed.spec.start_time == datetime(2026, 12, 1, 6, tzinfo=UTC)


def test_kubectl_jit_withdraw_takes_back_a_scheduled_request() -> None:
    api = DeletingApi()
    api.objects[PATH] = stored(cli_cond("Approved", "True", "Approved"), cli_cond("Ready", "False", "Scheduled"))
    assert decisions.withdraw(session(api), "r") == 0
    assert PATH not in api.objects
    api.objects[PATH] = stored(cli_cond("Approved", "True", "Approved"), cli_cond("Ready", "True", "Granted"))
    with pytest.raises(Refused, match="no longer pending"):
        decisions.withdraw(session(api), "r")


def _team(**spec: Any) -> dict[str, Any]:
    return {
        "kind": names.TEAM_OWNERSHIP,
        "metadata": {"name": "payments"},
        "spec": {"approvers": ["paula@example.com"], **spec},
    }


@pytest.mark.parametrize(
    ("obj", "said"),
    [
        (_team(escalateAfter="0s"), "spec.escalateAfter '0s' is zero"),
        (_team(escalateAfter="90000h"), "spec.escalateAfter '90000h'"),
        (
            _entitlement(breakGlass={"groups": ["sre"], "reviewWithin": "0s"}),
            "spec.breakGlass.reviewWithin '0s' is zero",
        ),
        (_entitlement(breakGlass={"groups": ["sre"], "maxDuration": "0m"}), "spec.breakGlass.maxDuration '0m' is zero"),
    ],
)
def test_a_duration_the_operator_cannot_use_is_refused_when_written(obj: dict[str, Any], said: str) -> None:
    """Admitted, these made every request that needs an approver (or every break-glass request, in
    an incident) end Invalid after it had been admitted."""
    verdict = refused(adm.review_catalog("CREATE", None, obj, MALLORY, operator=OPERATOR), said)
    assert verdict.code == adm.INVALID
    fixed = {**obj, "spec": {**obj["spec"], "escalateAfter": "15m"}} if obj["kind"] == names.TEAM_OWNERSHIP else None
    if fixed is not None:
        assert adm.review_catalog("UPDATE", obj, fixed, MALLORY, operator=OPERATOR) == adm.ALLOW
    # Stored before the rule: writes elsewhere are not held up by it.
    relabelled = {**obj, "metadata": {**obj["metadata"], "labels": {"team": "payments"}}}
    assert adm.review_catalog("UPDATE", obj, relabelled, MALLORY, operator=OPERATOR) == adm.ALLOW


def test_a_team_stored_with_a_zero_escalation_says_so_in_its_status() -> None:
    from jitaccess.api.models import TeamOwnershipSpec
    from jitaccess.domain.teams import team_problems

    (problem,) = team_problems(
        TeamOwnershipSpec.model_validate({"approvers": ["paula@example.com"], "escalateAfter": "0s"})
    )
    assert problem.startswith("spec.escalateAfter '0s' is zero") and "cannot be decided" in problem
    assert (
        team_problems(TeamOwnershipSpec.model_validate({"approvers": ["paula@example.com"], "escalateAfter": "15m"}))
        == []
    )


def test_an_entitlement_stored_with_a_pattern_re2_refuses_is_not_ready() -> None:
    """Stored before admission refused such (an upgrade from a release that matched with Python's
    `re`): its status says so with the fix, where `kubectl get entitlements` shows it."""
    from jitaccess.api.models import Entitlement
    from jitaccess.handlers.catalog import _usable

    def usable(pattern: str) -> tuple[bool, str, str]:
        stored = {"metadata": {"name": "prod"}, "spec": {"owner": "payments", "identityCenter": {"groupName": "g"},
                                                         "reasonPattern": pattern}}  # fmt: skip
        return _usable(Entitlement.model_validate(stored), {"approvers": ["paula@example.com"]}, "group g resolved")

    ready, reason, message = usable(r"^INC-\d+\Z")
    assert (ready, reason) == (False, names.INVALID)
    assert message.startswith(
        "group g resolved, but spec.reasonPattern '^INC-\\\\d+\\\\Z' is not a valid regular expression"
    )
    assert usable(r"^INC-\d+\z") == (True, names.RESOLVED, "group g resolved")


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ({"approvers": ["system:serviceaccount:kube-system:replicaset-controller"]}, "spec.approvers names system:"),
        ({"backupApprovers": ["system:admin"]}, "spec.backupApprovers names system:admin"),
        (
            {"memberGroups": ["system:authenticated"]},
            "spec.memberGroups names system:authenticated, which stands for every user",
        ),
        ({"approverGroups": ["system:serviceaccounts"]}, "spec.approverGroups names system:serviceaccounts"),
        (
            {"approverGroups": ["cn=payments-leads,ou=groups"]},
            "spec.approverGroups names 'cn=payments-leads,ou=groups': a group whose name holds a comma",
        ),
    ],
)
def test_a_team_naming_a_system_user_as_approver_or_everyone_as_a_group_is_refused(
    spec: dict[str, Any], said: str
) -> None:
    """Approvers become the users the Slack endpoint's identity may impersonate: a ServiceAccount
    there would give that identity its rights; a group of everyone makes everyone a member (an
    auto-approval for all) or an approver."""
    team = _team(**spec)
    verdict = refused(adm.review_catalog("CREATE", None, team, MALLORY, operator=OPERATOR), said)
    assert verdict.code == adm.INVALID
    relabelled = {**team, "metadata": {**team["metadata"], "labels": {"x": "y"}}}
    assert adm.review_catalog("UPDATE", team, relabelled, MALLORY, operator=OPERATOR) == adm.ALLOW  # stored before
    assert adm.review_catalog("CREATE", None, _team(approverGroups=["payments-leads"]), MALLORY, operator=OPERATOR) == (
        adm.ALLOW
    )


@pytest.mark.parametrize(
    ("where", "group", "said"),
    [
        (
            {"approval": {"autoApproveGroups": ["sre-oncall", "system:authenticated"]}},
            "system:authenticated",
            "spec.approval.autoApproveGroups names system:authenticated, which stands for every user "
            "(ServiceAccounts included): name the on-call group",
        ),
        ({"approval": {"autoApproveGroups": ["system:unauthenticated"]}}, "", "every anonymous caller"),
        (
            {"breakGlass": {"groups": ["system:serviceaccounts"]}},
            "",
            "spec.breakGlass.groups names system:serviceaccounts, which stands for every ServiceAccount of the "
            "cluster: name the group of the people who may break glass",
        ),
        (
            {"breakGlass": {"groups": ["system:serviceaccounts:ci"]}},
            "",
            "which stands for every ServiceAccount of namespace ci",
        ),
        ({"approval": {"autoApproveGroups": ["system:masters"]}}, "", "a group of Kubernetes' own (system:)"),
        ({"breakGlass": {"groups": ["system:nodes"]}}, "", "spec.breakGlass.groups names system:nodes"),
    ],
)
def test_an_entitlement_giving_power_to_a_group_of_everyone_is_refused(
    where: dict[str, Any], group: str, said: str
) -> None:
    """autoApproveGroups and breakGlass.groups confer approval on their members as a team's groups
    do: system:authenticated there auto-approved (or let self-approve) every logged-in user, in no
    team at all. Every system: group is refused: none of them is a team."""
    bad = _entitlement(identityCenter={"groupName": "prod"}, **where)
    verdict = refused(adm.review_catalog("CREATE", None, bad, MALLORY, operator=OPERATOR), said)
    assert verdict.code == adm.INVALID
    relabelled = {**bad, "metadata": {**bad["metadata"], "labels": {"x": "y"}}}
    assert adm.review_catalog("UPDATE", bad, relabelled, MALLORY, operator=OPERATOR) == adm.ALLOW  # stored before
    fine = _entitlement(approval={"autoApproveGroups": ["sre-oncall"]}, breakGlass={"groups": ["sre"]})
    assert adm.review_catalog("CREATE", None, fine, MALLORY, operator=OPERATOR) == adm.ALLOW
    refused(adm.review_catalog("UPDATE", fine, bad, MALLORY, operator=OPERATOR), said)


@pytest.mark.parametrize("field", ["memberGroups", "approverGroups", "backupApproverGroups"])
@pytest.mark.parametrize("group", ["system:masters", "system:nodes", "system:serviceaccounts:kube-system"])
def test_a_team_naming_any_system_group_is_refused(field: str, group: str) -> None:
    """Not only the groups of everyone: system:masters, system:nodes, a namespace's ServiceAccounts
    are Kubernetes' own populations, and never a team's members or approvers."""
    refused(
        adm.review_catalog("CREATE", None, _team(**{field: [group]}), MALLORY, operator=OPERATOR),
        f"spec.{field} names {group}, which stands for",
    )


def test_a_group_whose_name_holds_a_comma_is_left_out_of_a_decisions_stamp() -> None:
    """Stamps list groups separated by commas and are read back split: a group named
    `x,payments-leads` would have read as `payments-leads`, an approver group the caller is not in."""
    from jitaccess.domain.teams import GROUPS_SEPARATOR, Caller, groups_text

    caller = Caller("mallory@example.com", frozenset({"x,payments-leads", "sre", "cn=a,dc=corp"}))
    stamped = groups_text(caller)
    assert stamped == "sre"
    assert "payments-leads" not in stamped.split(GROUPS_SEPARATOR)
    assert groups_text(Caller("m", frozenset({"a,b"}))) == ""


def test_a_member_group_with_a_comma_is_kept_as_no_stamp_reads_it() -> None:
    """Member groups are matched as a list, never read back from a stamp: an LDAP-style name stays."""
    team = _team(memberGroups=["cn=payments,ou=groups,dc=example,dc=com"])
    assert adm.review_catalog("CREATE", None, team, MALLORY, operator=OPERATOR) == adm.ALLOW


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ({"approvers": ["paula@example.com", ""]}, "spec.approvers[1] is empty: remove it"),
        ({"members": [" alice@example.com"]}, "spec.members[0] ' alice@example.com' has spaces at its ends"),
        ({"backupApprovers": ["carol@example.com\t"]}, "spec.backupApprovers[0] 'carol@example.com\\t' has spaces"),
        (
            {"approvers": ["p\u0430ula@example.com"]},
            "spec.approvers[0] 'p\u0430ula@example.com' mixes the scripts Cyrillic and Latin",
        ),
        ({"members": ["alice\uff20example.com"]}, "holds U+FF20 (FULLWIDTH COMMERCIAL AT)"),
        ({"approvers": ["paula\u200b@example.com"]}, "holds U+200B (ZERO WIDTH SPACE)"),
        ({"approvers": ["\u202epaula@example.com"]}, "holds U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ({"members": ["alice smith"]}, "spec.members[0] 'alice smith' holds a space: a user name here is"),
        (
            {"approvers": ["paula@example.com"], "backupApprovers": ["Paula@Example.com"]},
            "spec.backupApprovers[0] 'Paula@Example.com' differs only in case from spec.approvers[0] "
            "'paula@example.com': Kubernetes user names are case-sensitive",
        ),
        ({"memberGroups": ["team-payments", " team-ledger"]}, "spec.memberGroups[1] ' team-ledger' has spaces"),
        ({"approverGroups": ["p\u0430yments-leads"]}, "spec.approverGroups[0] 'p\u0430yments-leads' mixes the scripts"),
        ({"memberGroups": ["Team-Payments", "team-payments"]}, "spec.memberGroups[1] 'team-payments' differs only"),
    ],
)
def test_a_team_name_that_reads_as_another_is_refused(spec: dict[str, Any], said: str) -> None:
    """Members and approvers are matched exactly as the authenticator reports them, but reviewed by
    people: an empty, padded, look-alike or case-variant name reads as someone it is not."""
    verdict = refused(adm.review_catalog("CREATE", None, _team(**spec), MALLORY, operator=OPERATOR), said)
    assert verdict.code == adm.INVALID
    relabelled = {**_team(**spec), "metadata": {"name": "payments", "labels": {"x": "y"}}}
    assert adm.review_catalog("UPDATE", _team(**spec), relabelled, MALLORY, operator=OPERATOR) == adm.ALLOW


@pytest.mark.parametrize(
    "spec",
    [
        {"members": ["paula@example.com"], "approvers": ["paula@example.com"]},  # the same name twice: fine
        {"members": ["josé@example.com", "山田@example.jp", "https://issuer.example#1234", "oidc:alice"]},
        {"memberGroups": ["Domain Admins", "cn=payments,ou=groups,dc=example,dc=com", "やまだ-チーム"]},
    ],
)
def test_names_of_one_script_and_ascii_punctuation_are_admitted(spec: dict[str, Any]) -> None:
    assert adm.review_catalog("CREATE", None, _team(**spec), MALLORY, operator=OPERATOR) == adm.ALLOW


def test_an_entitlements_group_that_reads_as_another_is_refused() -> None:
    bad = _entitlement(approval={"autoApproveGroups": ["sre-oncall "]})
    refused(adm.review_catalog("CREATE", None, bad, MALLORY, operator=OPERATOR), "spec.approval.autoApproveGroups[0]")
    bad = _entitlement(breakGlass={"groups": ["\u0455re"]})  # a Cyrillic dze
    refused(adm.review_catalog("CREATE", None, bad, MALLORY, operator=OPERATOR), "spec.breakGlass.groups[0]")


def test_a_stored_time_with_no_utc_form_reads_as_unreadable_in_records_and_messages() -> None:
    """`audit.rfc3339` words a request's `spec.startTime` for records and Slack (`start_of`): a time
    past the last datetime in UTC is left out, as any unreadable one, not an OverflowError."""
    from jitaccess.api import audit

    assert audit.rfc3339("9999-12-31T23:59:59-01:00") is None
    assert audit.rfc3339("2026-12-01T07:00:00+01:00") == "2026-12-01T06:00:00Z"

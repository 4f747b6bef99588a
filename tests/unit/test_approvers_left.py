"""An approver who has left: disabled (or deleted) in Identity Center while their Kubernetes
credentials still work and the TeamOwnership still names them (docs/security.md, the leaver's
approval). Their approval is refused at admission, and one given before they left stops counting
when it is acted upon (a grant's creation, a scheduled start, an extension applied). Also: the
`AutoApproved` audit line names the operator, which decided, not the requester.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import pytest

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.api import audit, names
from jitaccess.api.models import GivenApproval
from jitaccess.domain import extensions as extension_rules
from jitaccess.domain import requests as rules
from jitaccess.domain.admission import Admit, OperatorIdentity, Phase, Refusal, review_request
from jitaccess.domain.approvals import Given, count, encode, given
from jitaccess.domain.teams import Caller
from jitaccess.errors import NotFound, RetryLater
from jitaccess.handlers import requests as request_handlers
from jitaccess.handlers import runtime
from jitaccess.handlers.activation import activation_refusal
from jitaccess.handlers.admission import _approvers_gone as approvers_gone_at_admission
from jitaccess.handlers.admission import approver_checked
from jitaccess.handlers.approvals import waiting_message
from jitaccess.handlers.eligibility import approver_problem, approvers_gone, approvers_problem
from jitaccess.handlers.runtime import ELIGIBLE_SECONDS, Runtime
from jitaccess.settings import Settings
from tests.unit import test_extensions as extensions
from tests.unit.factories import T0, condition, entitlement, lands, request, team

LIMITS = rules.Limits(min_duration=timedelta(minutes=1), pending_timeout=timedelta(hours=24))
BY_PAULA = {"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": "paula@example.com"}
APPROVED = [condition("Approved", "True", "Approved", T0), condition("Ready", "False", "Pending", T0)]
PAULA = Caller("paula@example.com", frozenset())


class Directory:
    """Identity Center as the checks ask it: who exists, who is disabled, and how often GetUserId
    (`resolved`) and DescribeUser (`described`) were asked."""

    identity_store_id = "d-0000000000"

    def __init__(self) -> None:
        self.disabled: set[str] = set()
        self.deleted: set[str] = set()
        self.unknown: set[str] = set()
        self.resolved: list[str] = []
        self.described: list[str] = []
        self.down = False

    def resolve_user(self, name: str) -> str:
        self.resolved.append(name)
        if name in self.unknown | self.deleted:
            raise NotFound(f"no user {name}")
        return f"u-{name}"

    def resolve_group(self, name: str) -> str:
        return f"g-{name}"

    def missing_groups(self, user_id: str, group_ids: list[str]) -> list[str]:
        return []

    def user_enabled(self, user_id: str) -> bool:
        name = user_id.removeprefix("u-")
        self.described.append(name)
        if self.down:
            raise RetryLater("DescribeUser timed out")
        if name in self.deleted:
            raise NotFound(f"no user {user_id}")
        return name not in self.disabled


@pytest.fixture
def ic() -> Directory:
    return Directory()


@pytest.fixture
def rt(ic: Directory) -> Runtime:
    return Runtime(Settings(pending_timeout_seconds=24 * 3600), cast(IdentityCenter, ic), cast(Kube, None))


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Moves the Runtime's clock on by so many seconds (what it remembers of Identity Center ages)."""
    real, ahead = time.monotonic, [0.0]
    monkeypatch.setattr(runtime.time, "monotonic", lambda: real() + ahead[0])

    def move(seconds: float) -> None:
        ahead[0] += seconds

    return move


# --- at admission -------------------------------------------------------------------------------


def _admit(rt: Runtime, verdict: Any, phase: Phase = Phase.MUTATE, warnings: list[str] | None = None) -> Any:
    return asyncio.run(approver_checked(rt, phase, verdict, PAULA, "payments", [] if warnings is None else warnings))


@pytest.mark.parametrize(
    "stamped",
    [
        {"jitaccess.dev/approved-by": "paula@example.com"},  # the approval, or the one completing the count
        {names.ANNOTATION_APPROVALS: '[{"by":"paula@example.com","groups":[]}]'},  # one of several
    ],
)
def test_an_approval_by_a_disabled_approver_is_refused_naming_the_fix(
    rt: Runtime, ic: Directory, stamped: dict[str, str]
) -> None:
    ic.disabled.add("paula@example.com")
    verdict = _admit(rt, Admit(annotations=stamped))
    assert isinstance(verdict, Refusal)
    assert verdict.message == (
        "paula@example.com's Identity Center account (UserId u-paula@example.com) is disabled, so paula@example.com "
        "may not approve: an approver's Identity Center account is checked as a requester's is (someone who has "
        "left is disabled there); ask your identity team to enable your account, or ask another approver of team "
        "payments to decide"
    )


def test_an_approval_by_someone_with_no_identity_center_user_is_refused(rt: Runtime, ic: Directory) -> None:
    ic.unknown.add("paula@example.com")
    verdict = _admit(rt, Admit(annotations={"jitaccess.dev/approved-by": "paula@example.com"}))
    assert isinstance(verdict, Refusal)
    assert verdict.message.startswith("paula@example.com is not a user in Identity Center store d-0000000000, so")
    assert "provision your Identity Center user under this user name" in verdict.message


def test_only_an_approval_at_mutate_asks_identity_center(rt: Runtime, ic: Directory) -> None:
    ic.disabled.add("paula@example.com")
    denial = Admit(annotations={"jitaccess.dev/denied-by": "paula@example.com"})
    assert _admit(rt, denial) is denial, "a denial gives nothing: a leaver may still deny"
    approval = Admit(annotations={"jitaccess.dev/approved-by": "paula@example.com"})
    assert _admit(rt, approval, Phase.VALIDATE) is approval, "checked once, where it is stamped"
    assert ic.described == []


def test_an_enabled_approver_is_admitted_and_identity_center_down_lets_it_through_with_a_warning(
    rt: Runtime, ic: Directory
) -> None:
    approval = Admit(annotations={"jitaccess.dev/approved-by": "paula@example.com"})
    assert _admit(rt, approval) is approval
    ic.down = True
    warnings: list[str] = []
    assert _admit(rt, approval, warnings=warnings) is approval
    assert warnings == [
        "Identity Center did not answer (DescribeUser timed out); the approver is checked again before access begins"
    ]


# --- when the approval is acted upon ---------------------------------------------------------------


def test_an_approval_whose_approver_was_disabled_since_grants_nothing(rt: Runtime, ic: Directory) -> None:
    """paula approved bob's window; by its start she has left and is disabled in Identity Center."""
    req = request(annotations=BY_PAULA, conditions=APPROVED)
    checked = rules.validate(req, entitlement(), team(), LIMITS)
    assert activation_refusal(rt, req, checked) is None
    ic.disabled.add("paula@example.com")
    # Admission's "no" (another approval of hers, refused) undoes the "yes" remembered a moment ago.
    assert approver_problem(rt, "paula@example.com", fresh=True) is not None
    refusal = activation_refusal(rt, req, checked)
    assert refusal is not None and refusal.reason == "Failed"
    assert refusal.message == (
        "not granted: the approval by paula@example.com no longer counts: paula@example.com's Identity Center "
        "account (UserId u-paula@example.com) is disabled (an approver who has left approves nothing, an approval "
        "given before they left included); nothing was granted: request access again (`kubectl jit request "
        "prod-eng-payments`) for another approver of team payments to approve"
    )


def test_an_approvers_yes_of_a_moment_ago_is_taken_and_an_older_one_asked_again(
    rt: Runtime, ic: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One DescribeUser at admission, none for the grant created a moment later: "yes" is remembered
    5 s (as eligibility's is); a scheduled start, later, asks again."""
    req = request(annotations=BY_PAULA, conditions=APPROVED)
    checked = rules.validate(req, entitlement(), team(), LIMITS)
    assert approver_problem(rt, "paula@example.com", fresh=True) is None
    assert activation_refusal(rt, req, checked) is None
    assert ic.described.count("paula@example.com") == 1
    monkeypatch.setattr(rt, "recently_eligible", lambda user_id, groups: False)  # 5 s later
    ic.deleted.add("paula@example.com")
    refusal = activation_refusal(rt, req, checked)
    assert refusal is not None and "paula@example.com (UserId u-paula@example.com) no longer exists" in refusal.message


def test_each_approval_of_several_is_asked_about(rt: Runtime, ic: Directory) -> None:
    two = entitlement(approval={"approvalsRequired": 2, "autoApproveOwnerTeam": False})
    stamps = {
        "jitaccess.dev/approved": "true",
        "jitaccess.dev/approved-by": "lena@example.com",
        names.ANNOTATION_APPROVALS: '[{"by":"paula@example.com","groups":[]},{"by":"lena@example.com","groups":[]}]',
    }
    req = request(annotations=stamps, conditions=APPROVED)
    req.status.approvals = [GivenApproval(by=by, time=T0) for by in ("paula@example.com", "lena@example.com")]
    checked = rules.validate(req, two, team(approvers=["paula@example.com", "lena@example.com"]), LIMITS)
    assert activation_refusal(rt, req, checked) is None
    assert {"paula@example.com", "lena@example.com"} <= set(ic.described)
    ic.disabled.add("paula@example.com")
    assert approver_problem(rt, "paula@example.com", fresh=True) is not None
    refusal = activation_refusal(rt, req, checked)
    assert refusal is not None and refusal.reason == "Failed"
    assert (
        "only 1 approval(s) stamped by the admission webhook count (lena@example.com; not counted: paula@example.com's "
        "Identity Center account (UserId u-paula@example.com) is disabled)"
    ) in refusal.message


def test_an_auto_approval_asks_about_no_approver(rt: Runtime, ic: Directory) -> None:
    req = request(requester="alice@example.com", conditions=[condition("Approved", "True", "AutoApproved", T0)])
    assert activation_refusal(rt, req, rules.validate(req, entitlement(), team(), LIMITS)) is None
    assert ic.described == ["alice@example.com"], "the requester's own account only"


# --- one approval by a leaver, one question to Identity Center --------------------------------------

LISTED_PAULA = {names.ANNOTATION_APPROVALS: '[{"by":"paula@example.com","groups":[]}]'}


def _every_check(rt: Runtime) -> list[str | None]:
    """What one approval event asks about its approver: the webhook where it is stamped (afresh), the
    count of several (the webhook's, afresh, and the operator's), the activation's."""
    return [
        approver_problem(rt, "paula@example.com", fresh=True),
        approvers_gone(rt, LISTED_PAULA, 2, fresh=True).get("paula@example.com"),
        approvers_gone(rt, LISTED_PAULA, 2).get("paula@example.com"),
        (approvers_problem(rt, ["paula@example.com"]) or ("", None))[1],
        approver_problem(rt, "paula@example.com"),
    ]


def test_a_leavers_approval_asks_identity_center_once_for_every_check_within_seconds(
    rt: Runtime, ic: Directory, later: Callable[[float], None]
) -> None:
    """Attack 94: a "no" was not remembered, and each check of one approval asked DescribeUser again."""
    ic.disabled.add("paula@example.com")
    problems = _every_check(rt)
    assert all(problem is not None and "is disabled" in problem for problem in problems), problems
    assert ic.described == ["paula@example.com"]
    later(ELIGIBLE_SECONDS)
    assert all(problem is not None and "is disabled" in problem for problem in _every_check(rt))
    assert ic.described == ["paula@example.com"] * 2, "asked again once the few seconds have passed"


def test_no_answer_from_identity_center_is_not_remembered(rt: Runtime, ic: Directory) -> None:
    ic.disabled.add("paula@example.com")
    ic.down = True
    for _ in range(2):
        with pytest.raises(RetryLater):
            approver_problem(rt, "paula@example.com")
    ic.down = False
    assert approver_problem(rt, "paula@example.com") is not None
    assert ic.described == ["paula@example.com"] * 3


def test_an_account_enabled_again_is_asked_about_once_the_no_has_aged(
    rt: Runtime, ic: Directory, later: Callable[[float], None]
) -> None:
    """A "no" remembered grants nothing: a "yes" asked afresh does not outweigh it (an account enabled
    again waits out the few seconds), and a "yes" remembered from before it no longer stands."""
    assert approver_problem(rt, "paula@example.com") is None
    ic.disabled.add("paula@example.com")
    assert approver_problem(rt, "paula@example.com", fresh=True) is not None
    ic.disabled.clear()
    assert approver_problem(rt, "paula@example.com") is not None, "the yes of before does not stand"
    assert approver_problem(rt, "paula@example.com", fresh=True) is not None
    assert ic.described == ["paula@example.com"] * 2
    later(ELIGIBLE_SECONDS)
    assert approver_problem(rt, "paula@example.com") is None
    assert approver_problem(rt, "paula@example.com") is None, "and that yes is remembered"
    assert ic.described == ["paula@example.com"] * 3


def test_the_remembered_nos_are_bounded_as_the_yeses_are(rt: Runtime, later: Callable[[float], None]) -> None:
    for n in range(1000):
        rt.mark_refused(f"u-{n}", "disabled")
    later(ELIGIBLE_SECONDS)
    rt.mark_refused("u-paula@example.com", "gone")
    assert list(rt._refused) == ["u-paula@example.com"], "those older than the few seconds are dropped"
    assert rt.recently_refused("u-paula@example.com") == "gone" and rt.recently_refused("u-1") is None


PAULA_DELETED = (
    "the Identity Center user paula@example.com (UserId u-paula@example.com) no longer exists in store d-0000000000"
)
NO_PAULA = "paula@example.com is not a user in Identity Center store d-0000000000"


def test_a_deleted_approvers_approval_asks_identity_center_once_and_says_the_same_at_every_check(
    rt: Runtime, ic: Directory, later: Callable[[float], None]
) -> None:
    """Her user name was forgotten at the first "no longer exists", and every later check asked
    `GetUserId` again (four more per approval event), which said NotFound: "is not a user" instead."""
    assert approver_problem(rt, "paula@example.com") is None  # her UserId cached, at an earlier approval
    ic.deleted.add("paula@example.com")
    ic.resolved.clear()
    assert _every_check(rt) == [PAULA_DELETED] * 5
    assert (ic.resolved, ic.described) == ([], ["paula@example.com"] * 2), "one DescribeUser for the event"
    # Once that "no" has aged her name is resolved afresh: it names nobody, remembered as long.
    later(ELIGIBLE_SECONDS)
    assert _every_check(rt) == [NO_PAULA] * 5
    assert (ic.resolved, ic.described) == (["paula@example.com"], ["paula@example.com"] * 2)
    later(ELIGIBLE_SECONDS)
    assert _every_check(rt) == [NO_PAULA] * 5
    assert ic.resolved == ["paula@example.com"] * 2, "asked again once the few seconds have passed"


def test_an_approver_deleted_before_any_check_costs_one_get_user_id(rt: Runtime, ic: Directory) -> None:
    ic.deleted.add("paula@example.com")
    assert _every_check(rt) == [NO_PAULA] * 5
    assert (ic.resolved, ic.described) == (["paula@example.com"], [])


def test_a_user_name_naming_nobody_is_remembered_bounded_and_a_silence_never(
    rt: Runtime, later: Callable[[float], None]
) -> None:
    answers: list[str | Exception] = [RetryLater("GetUserId timed out"), NotFound("USER not found"), "u-paula"]

    def resolve(name: str) -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with pytest.raises(RetryLater):
        rt.cached("user", "paula@example.com", resolve)
    for _ in range(2):  # asked once: the second answers from memory
        with pytest.raises(NotFound, match="USER not found"):
            rt.cached("user", "paula@example.com", resolve)
    assert answers == ["u-paula"]
    rt.forget("user", "paula@example.com")  # admission's stamp asks afresh, a "no" of a moment ago or not
    assert rt.cached("user", "paula@example.com", resolve) == "u-paula"
    for n in range(1000):
        with pytest.raises(NotFound):
            rt.cached("user", f"user-{n}", _nobody)
    later(ELIGIBLE_SECONDS)
    with pytest.raises(NotFound):
        rt.cached("user", "lena@example.com", _nobody)
    assert list(rt._no_user) == ["lena@example.com"], "those older than the few seconds are dropped"


def _nobody(name: str) -> str:
    raise NotFound(f"no user {name}")


# --- the auto-approval's audit line ---------------------------------------------------------------


class StatusStore:
    """The API server as an approval's status write meets it."""

    def update_status(self, plural: str, name: str, change: Any, current: Any = None, *, uid: Any = None) -> Any:
        assert lands(current, uid, current), "the write names the object it was given"
        fields = change(current)
        return None if fields is None else {**current, "status": {**current.get("status", {}), **fields}}


@pytest.mark.parametrize(
    ("kind", "who"),
    [("", audit.OPERATOR), ("auto (on call)", audit.OPERATOR), ("break-glass", "alice@example.com")],
)
def test_the_auto_approved_line_names_the_operator_not_the_requester(
    monkeypatch: pytest.MonkeyPatch, kind: str, who: str
) -> None:
    """Its `approved` record's actor is the operator (`via` the rule); the line said the requester
    approved. Break-glass is the requester's own approval of their request, and says so."""
    lines: list[tuple[str, str]] = []
    monkeypatch.setattr(request_handlers, "record", lambda obj, event, message, **f: lines.append((event, f["who"])))
    monkeypatch.setattr(request_handlers, "_create_grant", lambda *args, **kwargs: None)
    monkeypatch.setattr(request_handlers.breakglass, "approval_fields", lambda *a: ({}, ("Reviewed", False, "x", "")))
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, StatusStore()))
    req = request(requester="alice@example.com")
    checked = rules.validate(req, entitlement(), team(), LIMITS)
    request_handlers.approve(rt, req, checked, who="", why="payments-oncall", auto=True, kind=kind, current=req.wire())
    assert [line[1] for line in lines] == [who]


# --- one approval of several, its approver gone since ----------------------------------------------

#: The approvers of team payments in these tests, and their Identity Center answers.
LENA, CAROL = "lena@example.com", "carol@example.com"
TWO = entitlement(approval={"approvalsRequired": 2, "autoApproveOwnerTeam": False})
THREE_APPROVERS = team(approvers=["paula@example.com", LENA, CAROL])
PAULA_GONE = {
    "paula@example.com": "paula@example.com's Identity Center account (UserId u-paula@example.com) is disabled"
}
PENDING = [condition("Ready", "False", "Pending", T0)]
_APPROVE = {"jitaccess.dev/approved": "true"}


def _listed(*approvers: str, approved_by: str = "") -> dict[str, str]:
    """The annotations of a request the webhook stamped `approvers`' approvals on, in order."""
    annotations = {names.ANNOTATION_APPROVALS: encode([Given(by, frozenset()) for by in approvers])}
    if approved_by:
        annotations |= {"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": approved_by}
    return annotations


def _pending(*approvers: str, approved_by: str = "", recorded: tuple[str, ...] = ()) -> Any:
    req = request(annotations=_listed(*approvers, approved_by=approved_by), conditions=PENDING)
    req.status.approvals = [GivenApproval(by=by, time=T0) for by in recorded]
    return req


def test_an_approval_whose_approver_is_gone_from_identity_center_does_not_count() -> None:
    listed = [Given("paula@example.com", frozenset()), Given(LENA, frozenset())]
    found = count(listed, THREE_APPROVERS, "bob@example.com", lambda by: False, PAULA_GONE)
    assert found.counted == (LENA,)
    assert found.why_not == (("paula@example.com", PAULA_GONE["paula@example.com"]),)
    assert count(listed, THREE_APPROVERS, "bob@example.com", lambda by: False).counted == ("paula@example.com", LENA)


def test_the_operator_counts_a_gone_approvers_approval_out_and_waits_for_another() -> None:
    valid = rules.validate(_pending(), TWO, THREE_APPROVERS, LIMITS)
    later = T0 + timedelta(minutes=1)
    # paula's approval was counted (1/2), then she was disabled; lena's is listed after it.
    waiting = _pending("paula@example.com", LENA, recorded=("paula@example.com",))
    decision = rules.decide_pending(waiting, valid, LIMITS, later, gone=PAULA_GONE)
    assert decision is not None and decision.outcome is rules.Outcome.COUNT, decision
    assert rules.approvals_counted(waiting, valid, later, PAULA_GONE).counted == (LENA,)
    # An approved-by stamped on the two (Identity Center silent at the webhook) approves nothing.
    short = _pending("paula@example.com", LENA, approved_by=LENA, recorded=("paula@example.com",))
    ignored = rules.decide_pending(short, valid, LIMITS, later, gone=PAULA_GONE)
    assert ignored is not None and ignored.outcome is rules.Outcome.COUNT and ignored.ignored is not None
    assert "only 1 approval(s)" in ignored.ignored.why and PAULA_GONE["paula@example.com"] in ignored.ignored.why
    # A third approver makes up for her.
    done = _pending("paula@example.com", LENA, CAROL, approved_by=CAROL, recorded=(LENA,))
    approved = rules.decide_pending(done, valid, LIMITS, later, gone=PAULA_GONE)
    assert approved is not None and approved.outcome is rules.Outcome.APPROVE and approved.who == CAROL


def test_the_waiting_message_says_whose_approval_no_longer_counts_and_why() -> None:
    valid = rules.validate(_pending(), TWO, THREE_APPROVERS, LIMITS)
    message = waiting_message(valid, [LENA], False, PAULA_GONE)
    assert message == (
        f"1 of 2 approvals ({LENA}): waiting for 1 more, by another approver of team payments ({CAROL}); the "
        "approval by paula@example.com no longer counts: paula@example.com's Identity Center account (UserId "
        "u-paula@example.com) is disabled (an approver who has left approves nothing, an approval given before "
        "they left included)"
    )


def _second_approval(old: dict[str, Any], caller: str, phase: Phase, gone: Any) -> Any:
    after = {**old, "metadata": {**old["metadata"], "annotations": {**old["metadata"]["annotations"], **_APPROVE}}}
    return review_request(
        "UPDATE", old, after, Caller(caller, frozenset()), operator=OperatorIdentity(frozenset({"system:operator"})),
        entitlement=TWO, team=THREE_APPROVERS, limits=LIMITS, phase=phase, now=T0 + timedelta(minutes=1), gone=gone,
    )  # fmt: skip


def test_the_webhook_counts_a_gone_approvers_approval_out_and_stamps_no_completion() -> None:
    old = _pending("paula@example.com").wire()
    assert "jitaccess.dev/approved-by" in _second_approval(old, LENA, Phase.MUTATE, {}).annotations, "as before"
    verdict = _second_approval(old, LENA, Phase.MUTATE, PAULA_GONE)
    assert isinstance(verdict, Admit) and "jitaccess.dev/approved-by" not in verdict.annotations
    assert verdict.removed == ("jitaccess.dev/approved",)
    listed = verdict.annotations[names.ANNOTATION_APPROVALS]
    assert [a.by for a in given({names.ANNOTATION_APPROVALS: listed})] == ["paula@example.com", LENA]
    # VALIDATE, counting the same way, takes the list with lena's entry added and no approval flag.
    stored = {**old, "metadata": {**old["metadata"], "annotations": {names.ANNOTATION_APPROVALS: listed}}}
    checked = review_request(
        "UPDATE", old, stored, Caller(LENA, frozenset()), operator=OperatorIdentity(frozenset({"system:operator"})),
        entitlement=TWO, team=THREE_APPROVERS, limits=LIMITS, phase=Phase.VALIDATE, now=T0 + timedelta(minutes=1),
        gone=PAULA_GONE,
    )  # fmt: skip
    assert checked == Admit(annotations={names.ANNOTATION_APPROVALS: listed})
    # carol's, the second that counts, completes it.
    then = _pending("paula@example.com", LENA).wire()
    done = _second_approval(then, CAROL, Phase.MUTATE, PAULA_GONE)
    assert isinstance(done, Admit) and done.annotations["jitaccess.dev/approved-by"] == CAROL


def test_the_webhook_asks_about_the_approvers_listed_afresh_and_says_when_identity_center_is_silent(
    rt: Runtime, ic: Directory, later: Callable[[float], None]
) -> None:
    old = _pending("paula@example.com").wire()
    new = {**old, "metadata": {**old["metadata"], "annotations": {**_listed("paula@example.com"), **_APPROVE}}}

    def gone_at_mutate(after: dict[str, Any], needed: Any = TWO) -> tuple[Any, RetryLater | None]:
        return asyncio.run(approvers_gone_at_admission(rt, Phase.MUTATE, "UPDATE", old, after, needed))

    ic.disabled.add("paula@example.com")
    gone, unanswered = gone_at_mutate(new)
    assert set(gone) == {"paula@example.com"} and "is disabled" in gone["paula@example.com"] and unanswered is None
    # A "yes" remembered a moment ago is not taken where the completing approval is stamped.
    ic.disabled.clear()
    later(ELIGIBLE_SECONDS)  # the "no" is remembered as long
    assert approver_problem(rt, "paula@example.com") is None
    ic.disabled.add("paula@example.com")
    assert gone_at_mutate(new)[0]
    # Of one approval, or for a change that decides nothing, nobody is asked.
    ic.described.clear()
    assert gone_at_mutate(new, entitlement()) == ({}, None)
    assert gone_at_mutate(old) == ({}, None)
    assert ic.described == []
    later(ELIGIBLE_SECONDS)  # the "no" aged: Identity Center is asked again
    ic.down = True
    gone, unanswered = gone_at_mutate(new)
    assert not gone and str(unanswered) == "DescribeUser timed out", "counted, and said to `unverified`"


def test_a_third_approval_making_up_for_a_gone_approver_is_granted(rt: Runtime, ic: Directory) -> None:
    done = request(annotations=_listed("paula@example.com", LENA, CAROL, approved_by=CAROL), conditions=APPROVED)
    done.status.approvals = [GivenApproval(by=by, time=T0) for by in (LENA, CAROL)]
    ic.disabled.add("paula@example.com")
    assert activation_refusal(rt, done, rules.validate(done, TWO, THREE_APPROVERS, LIMITS)) is None
    # Without the third, the one left short fails, naming whose approval no longer counts.
    short = request(annotations=_listed("paula@example.com", LENA, approved_by=LENA), conditions=APPROVED)
    refusal = activation_refusal(rt, short, rules.validate(short, TWO, THREE_APPROVERS, LIMITS))
    assert refusal is not None and refusal.reason == "Failed"
    assert f"not counted: {PAULA_GONE['paula@example.com']}" in refusal.message


# --- an extension's approval of several, its approver gone since --------------------------------------


def _extension_of_two(*approvers: str, approved_by: str = "", recorded: tuple[str, ...] = ()) -> Any:
    """alice's extension of her Active grant, with `approvers`' approvals stamped (the webhook's list),
    `recorded` those the operator counted so far (`status.approvals`)."""
    ext = extensions.extension(annotations=_listed(*approvers, approved_by=approved_by))
    return ext.model_copy(
        update={
            "status": ext.status.model_copy(update={"approvals": [GivenApproval(by=by, time=T0) for by in recorded]})
        }
    )


def test_an_extensions_approval_whose_approver_is_gone_stops_counting_and_it_waits_for_another() -> None:
    # paula's approval was counted (1/2), then she was disabled; lena's, listed after it, is the first that counts.
    waiting = _extension_of_two("paula@example.com", LENA, recorded=("paula@example.com",))
    step = extension_rules.next_step(waiting, extensions.active(), TWO, THREE_APPROVERS, LIMITS, gone=PAULA_GONE)
    assert (step.step, step.counted, step.needed) == (extension_rules.Step.WAIT, (LENA,), 2), step
    assert step.message == (
        f"1 of 2 approvals ({LENA}): waiting for 1 more, by another approver of team payments ({CAROL}); the "
        "approval by paula@example.com no longer counts: paula@example.com's Identity Center account (UserId "
        "u-paula@example.com) is disabled (an approver who has left approves nothing, an approval given before "
        "they left included)"
    )
    assert extension_rules.approvals_counted(waiting, THREE_APPROVERS, PAULA_GONE).counted == (LENA,)
    # Had the webhook stamped lena's as completing it (Identity Center silent there), nothing is extended on it.
    short = _extension_of_two("paula@example.com", LENA, approved_by=LENA)
    ignored = extension_rules.next_step(short, extensions.active(), TWO, THREE_APPROVERS, LIMITS, gone=PAULA_GONE)
    assert ignored.step is extension_rules.Step.IGNORE and ignored.counted == (LENA,), ignored
    assert f"not counted: {PAULA_GONE['paula@example.com']}" in ignored.message
    # A third approver makes up for her.
    done = _extension_of_two("paula@example.com", LENA, CAROL, approved_by=CAROL, recorded=(LENA,))
    applied = extension_rules.next_step(done, extensions.active(), TWO, THREE_APPROVERS, LIMITS, gone=PAULA_GONE)
    assert (applied.step, applied.who, applied.counted) == (extension_rules.Step.APPLY, CAROL, (LENA, CAROL))


def _extension_approved(old: dict[str, Any], caller: str, gone: Any, phase: Phase = Phase.MUTATE) -> Any:
    after = {**old, "metadata": {**old["metadata"], "annotations": {**old["metadata"]["annotations"], **_APPROVE}}}
    return extension_rules.review_extension(
        "UPDATE", old, after, Caller(caller, frozenset()), operator=OperatorIdentity(frozenset({"system:operator"})),
        grant=extensions.active(), entitlement=TWO, team=THREE_APPROVERS, waiting=[], limits=LIMITS, phase=phase,
        owner="payments", gone=gone,
    )  # fmt: skip


def test_the_webhook_counts_a_gone_approvers_approval_of_an_extension_out_and_stamps_no_completion() -> None:
    old = _extension_of_two("paula@example.com").wire()
    assert "jitaccess.dev/approved-by" in _extension_approved(old, LENA, {}).annotations, "as before"
    verdict = _extension_approved(old, LENA, PAULA_GONE)
    assert isinstance(verdict, Admit) and "jitaccess.dev/approved-by" not in verdict.annotations, verdict
    assert verdict.removed == ("jitaccess.dev/approved",)
    listed = verdict.annotations[names.ANNOTATION_APPROVALS]
    assert [a.by for a in given({names.ANNOTATION_APPROVALS: listed})] == ["paula@example.com", LENA]
    # carol's, the second that counts, completes it.
    done = _extension_approved(_extension_of_two("paula@example.com", LENA).wire(), CAROL, PAULA_GONE)
    assert isinstance(done, Admit) and done.annotations["jitaccess.dev/approved-by"] == CAROL


def _cluster_of_two(needed: Any = TWO) -> Any:
    """The API server as the handlers read it: `needed` (the Entitlement), team payments and alice's
    Active grant g1, each object read as a copy."""
    from tests.unit.test_audit_trail import Cluster

    class Stored(Cluster):
        def get(self, plural: str, name: str) -> dict[str, Any] | None:
            found = self.objects.get((plural, name))
            return copy.deepcopy(found) if found is not None else None

    cluster = Stored()
    cluster.add(names.ENTITLEMENTS, needed.wire())
    cluster.add(names.TEAMS, {"metadata": {"name": "payments"}, "spec": THREE_APPROVERS.wire()})
    cluster.add(names.GRANTS, extensions.active().wire())
    return cluster


def test_the_operator_asks_about_an_extensions_approvers_and_waits_on_an_outage(
    rt: Runtime, ic: Directory, monkeypatch: pytest.MonkeyPatch, later: Callable[[float], None]
) -> None:
    from jitaccess.handlers import extensions as extension_handlers
    from jitaccess.handlers.common import NO_INDEX
    from jitaccess.handlers.recording import DEFERRED, Deferred

    cluster = _cluster_of_two()
    waiting = _extension_of_two("paula@example.com", LENA, recorded=("paula@example.com",))
    cluster.add(names.EXTENSIONS, {**waiting.wire(), "kind": names.ACCESS_EXTENSION})
    rt.kube = cast(Kube, cluster)
    monkeypatch.setattr(extension_handlers, "now", lambda: T0 + timedelta(minutes=1))

    def reconcile() -> dict[str, Any]:
        token = DEFERRED.set(Deferred())  # no kopf watch to post Events from
        try:
            stored = copy.deepcopy(cluster.objects[(names.EXTENSIONS, "g1-ext-1")])
            extension_handlers.reconcile(rt, stored, NO_INDEX, NO_INDEX, {})
        finally:
            DEFERRED.reset(token)
        return cluster.objects[(names.EXTENSIONS, "g1-ext-1")]

    ic.disabled.add("paula@example.com")
    pending = reconcile()["status"]
    assert [a["by"] for a in pending["approvals"]] == [LENA] and pending["approvalSummary"] == "1/2", pending
    ready = next(c for c in pending["conditions"] if c["type"] == names.READY)
    assert ready["reason"] == names.PENDING, ready
    assert f"the approval by paula@example.com no longer counts: {PAULA_GONE['paula@example.com']}" in ready["message"]
    assert not cluster.objects[(names.GRANTS, "g1")]["status"].get("extensions"), "nothing extended"
    # Identity Center not answering (once its "no" about paula is no longer remembered): a count
    # waits for it (the operator retries), a denial does not.
    later(ELIGIBLE_SECONDS)
    ic.down = True
    with pytest.raises(RetryLater):
        reconcile()
    annotations = cluster.objects[(names.EXTENSIONS, "g1-ext-1")]["metadata"]["annotations"]
    annotations |= {"jitaccess.dev/denied": "true", "jitaccess.dev/denied-by": LENA}
    denied = reconcile()["status"]
    assert next(c for c in denied["conditions"] if c["type"] == names.READY)["reason"] == names.DENIED, denied


# --- Identity Center not answering where the approval that completes the count would be stamped ------


def _approves(
    rt: Runtime, old: dict[str, Any], caller: str, warnings: list[str], *, extension: bool, needed: Any = TWO
) -> Any:
    """`caller` sets approved=true on `old` (a request, or an extension of alice's Active grant g1),
    as the mutating webhook admits it over a cluster holding `needed` (the Entitlement) and team payments."""
    from jitaccess.handlers import admission as request_admission
    from jitaccess.handlers.common import NO_INDEX
    from jitaccess.handlers.extension_admission import _review

    rt.kube = cast(Kube, _cluster_of_two(needed))
    memo = {request_admission.OPERATOR_IDENTITY: OperatorIdentity(frozenset({"system:operator"})), "runtime": rt}
    new = {**old, "metadata": {**old["metadata"], "annotations": {**old["metadata"]["annotations"], **_APPROVE}}}
    who = {"username": caller, "groups": []}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(request_admission, "now", lambda: T0 + timedelta(minutes=1))
        if extension:
            review = _review(Phase.MUTATE, "UPDATE", old, new, who, memo, NO_INDEX, NO_INDEX, False, warnings)
        else:
            review = request_admission._review_request(
                Phase.MUTATE, "UPDATE", old, new, who, memo, NO_INDEX, NO_INDEX, warnings
            )
        return asyncio.run(review)[0]


@pytest.mark.parametrize("extension", [False, True], ids=["request", "extension"])
def test_an_approval_completing_the_count_is_not_stamped_while_identity_center_does_not_answer(
    rt: Runtime, ic: Directory, extension: bool
) -> None:
    """paula approved, then was disabled; Identity Center does not answer at lena's approval. Stamped
    as completing the count (fail open), lena's `approved-by` could never be taken back (the admission
    policy keeps it), the operator found 1 of 2 once Identity Center answered, and carol's approval
    was refused as "already approved": the request (or extension) was stranded."""
    listed = _extension_of_two if extension else _pending
    ic.disabled.add("paula@example.com")
    ic.down = True
    warnings: list[str] = []
    verdict = _approves(rt, listed("paula@example.com").wire(), LENA, warnings, extension=extension)
    assert isinstance(verdict, Refusal), verdict
    assert verdict.message == (
        "Identity Center did not answer (DescribeUser timed out), so jitaccess cannot check that the approvals "
        "given before yours (paula@example.com) still count (an approver disabled or deleted there since counts "
        "no more), and yours would complete the 2 approvals required: it is not recorded, since a completed "
        "approval cannot be taken back. Approve again in a minute"
    )
    assert verdict.code == 503 and warnings == []
    # Identity Center answers: paula's counts no more, lena's is one of two, and carol's completes it.
    ic.down = False
    verdict = _approves(rt, listed("paula@example.com").wire(), LENA, warnings, extension=extension)
    assert isinstance(verdict, Admit) and "jitaccess.dev/approved-by" not in verdict.annotations, verdict
    assert [a.by for a in given(verdict.annotations)] == ["paula@example.com", LENA]
    done = _approves(rt, listed("paula@example.com", LENA).wire(), CAROL, warnings, extension=extension)
    assert isinstance(done, Admit) and done.annotations["jitaccess.dev/approved-by"] == CAROL, done
    assert warnings == []


@pytest.mark.parametrize("extension", [False, True], ids=["request", "extension"])
def test_an_approval_that_completes_nothing_is_admitted_while_identity_center_does_not_answer(
    rt: Runtime, ic: Directory, extension: bool
) -> None:
    """Of three required, lena's second completes nothing whoever counts: it is listed, with a warning,
    and the operator (which waits for Identity Center) counts the approvals listed."""
    three = entitlement(approval={"approvalsRequired": 3, "autoApproveOwnerTeam": False})
    listed = _extension_of_two if extension else _pending
    ic.down = True
    warnings: list[str] = []
    verdict = _approves(rt, listed("paula@example.com").wire(), LENA, warnings, extension=extension, needed=three)
    assert isinstance(verdict, Admit) and "jitaccess.dev/approved-by" not in verdict.annotations, verdict
    assert [a.by for a in given(verdict.annotations)] == ["paula@example.com", LENA]
    assert warnings[0] == (
        "Identity Center did not answer (DescribeUser timed out); the approvals given so far are counted, and "
        "checked again before access begins"
    )


def test_a_request_whose_stamped_completion_no_longer_counts_says_it_cannot_be_approved_any_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """lena's approval was stamped as completing the count on paula's, verified then; paula was disabled
    before the operator counted. No approval can follow a completion stamped (carol's is refused as
    "already approved"): the request said "waiting for 1 more, by ... carol", as if she could."""
    from jitaccess.handlers import approvals as approval_counts
    from jitaccess.handlers.recording import DEFERRED, Deferred
    from tests.unit.test_audit_trail import Cluster

    cluster = Cluster()
    short = _pending("paula@example.com", LENA, approved_by=LENA, recorded=("paula@example.com",))
    short.metadata.name, short.metadata.uid = "r1", "uid-r1"
    cluster.add(names.REQUESTS, short.wire())
    monkeypatch.setattr(approval_counts, "now", lambda: T0 + timedelta(minutes=1))
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, cluster))
    token = DEFERRED.set(deferred := Deferred())  # no kopf watch to post Events from
    try:
        approval_counts.count(rt, short, rules.validate(short, TWO, THREE_APPROVERS, LIMITS), PAULA_GONE)
    finally:
        DEFERRED.reset(token)
    status = cluster.objects[(names.REQUESTS, "r1")]["status"]
    assert [a["by"] for a in status["approvals"]] == [LENA] and status["approvalSummary"] == "1/2", status
    ready = next(c for c in status["conditions"] if c["type"] == names.READY)
    assert ready["message"] == (
        f"1 of 2 approvals ({LENA}): the approval by {LENA} that was to complete the count was taken, and the others "
        "no longer all count, so it cannot be approved any more; withdraw it (kubectl jit withdraw r1) and request "
        "access again (kubectl jit request prod-eng-payments), or an approver may deny it; the approval by "
        f"paula@example.com no longer counts: {PAULA_GONE['paula@example.com']} (an approver who has left approves "
        "nothing, an approval given before they left included)"
    )
    # The Warning on paula's approval says the same, not "another approver of the team may approve".
    ignored = [m for _, kind, reason, m in deferred._pending if (kind, reason) == ("Warning", names.DECISION_IGNORED)]
    assert ignored == [
        f"the approval by paula@example.com no longer counts ({PAULA_GONE['paula@example.com']}): 1/2 now; the "
        f"approval by {LENA} that was to complete the count was taken, and the others no longer all count, so it "
        "cannot be approved any more; withdraw it (kubectl jit withdraw r1) and request access again (kubectl jit "
        "request prod-eng-payments), or an approver may deny it"
    ], deferred._pending
    # As the message says: carol's approved=true is there already, and the webhook stamps nothing of hers.
    assert _second_approval(short.wire(), CAROL, Phase.MUTATE, PAULA_GONE) == Admit()


def test_a_group_gone_is_not_remembered_as_the_users_account_gone(rt: Runtime, ic: Directory) -> None:
    """IsMemberInGroups answers NotFound for a group deleted since its id was resolved as for a user
    gone: only DescribeUser's answer is about the account, so the user, enabled, is not taken as
    deleted by the checks of the next seconds (their approvals would count out)."""
    from jitaccess.handlers.eligibility import _account_problem

    def group_gone(user_id: str, group_ids: list[str]) -> list[str]:
        raise NotFound("GROUP not found")

    paula = "paula@example.com"
    ic.missing_groups = group_gone  # type: ignore[method-assign]
    said = _account_problem(rt, cast(IdentityCenter, ic), paula, f"u-{paula}", {"g-x": "x"}) or ""
    assert said.startswith("an eligibility group (x) is no longer in Identity Center store"), said
    assert f"so {paula} cannot be found eligible" in said and "no longer exists" not in said
    assert rt.recently_refused(f"u-{paula}") is None
    assert approver_problem(rt, paula) is None, "paula's account is there and enabled"

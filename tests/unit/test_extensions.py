"""The rules of an AccessExtension (`jitaccess.domain.extensions`): the caps, who extends and who
decides, what the operator does next, and the audit records of an extended grant."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

import pytest

from jitaccess.api import audit, names
from jitaccess.api.models import AccessExtension, AccessGrant, Entitlement
from jitaccess.domain import approvals
from jitaccess.domain import extensions as rules
from jitaccess.domain.admission import Admit, OperatorIdentity, Phase, Refusal, Verdict
from jitaccess.domain.requests import Limits
from jitaccess.domain.teams import Caller
from jitaccess.handlers.runtime import ExtensionAdmissions
from tests.unit.factories import T0, condition, entitlement, grant, team

LIMITS = Limits(min_duration=timedelta(seconds=60), pending_timeout=timedelta(hours=24))
OPERATOR = OperatorIdentity(frozenset({"system:serviceaccount:jitaccess:jitaccess"}))
ALICE, PAULA, BOB = Caller("alice@example.com"), Caller("paula@example.com"), Caller("bob@example.com")


def active(duration: timedelta = timedelta(hours=1), extensions: list[dict[str, Any]] | None = None) -> AccessGrant:
    return grant(
        conditions=[condition(names.READY, "True", names.ACTIVE)],
        activationTime=T0.isoformat(),
        expirationTime=(T0 + duration).isoformat(),
        **({"extensions": extensions} if extensions else {}),
    )


def applied(n: int) -> list[dict[str, Any]]:
    return [
        {"name": f"x{i}", "by": "1m", "approvedBy": "auto", "time": T0.isoformat(), "expirationTime": T0.isoformat()}
        for i in range(n)
    ]


def extension(
    by: str = "30m", requester: str = ALICE.username, annotations: dict[str, str] | None = None, **spec: Any
) -> AccessExtension:
    return AccessExtension.model_validate(
        {
            "metadata": {"name": "g1-ext-1", "uid": "uid-g1-ext-1", "annotations": annotations or {}},
            "spec": {"grant": "g1", "duration": by, "reason": "INC-1 more", "requester": requester, **spec},
        }
    )


# --- caps ----------------------------------------------------------------------------------------


def test_the_whole_grant_stays_within_max_duration() -> None:
    three_hours = active(timedelta(hours=3))
    assert rules.cap_problem(three_hours, entitlement(), timedelta(hours=1)) is None
    problem = rules.cap_problem(three_hours, entitlement(), timedelta(hours=2))
    assert problem is not None
    assert problem.startswith("spec.duration: 2h more would make AccessGrant g1 last 5h")
    assert "maxDuration 4h: extend by at most 1h" in problem
    full = rules.cap_problem(active(timedelta(hours=4)), entitlement(), timedelta(minutes=1))
    assert full is not None and "it cannot be extended any more" in full


def test_waiting_extensions_are_counted_as_if_applied() -> None:
    waiting = [rules.Waiting("other", timedelta(minutes=40))]
    problem = rules.cap_problem(active(timedelta(hours=3)), entitlement(), timedelta(minutes=40), waiting)
    assert problem is not None and "(and 40m already asked for)" in problem and "at most 20m" in problem
    count = rules.cap_problem(active(extensions=applied(1)), entitlement(), timedelta(minutes=1), waiting)
    assert count is not None and "extended 1 time(s) and 1 more waits" in count


def test_max_extensions_counts_the_applied_ones_and_zero_means_never() -> None:
    assert rules.cap_problem(active(extensions=applied(1)), entitlement(), timedelta(minutes=1)) is None
    problem = rules.cap_problem(active(extensions=applied(2)), entitlement(), timedelta(minutes=1))
    assert problem == (
        "spec.grant: AccessGrant g1 has been extended 2 time(s), and Entitlement prod-eng-payments allows "
        "maxExtensions 2: request access again when it ends (kubectl jit request prod-eng-payments)"
    )
    never = rules.cap_problem(active(), entitlement(maxExtensions=0), timedelta(minutes=1))
    assert never is not None and "allows no extensions (maxExtensions 0)" in never
    assert entitlement().spec.max_extensions == 2, "the default"


def test_the_operator_applies_on_the_grant_as_stored_and_only_forward() -> None:
    outcome = rules.apply(extension(), active(), entitlement(), LIMITS, T0)
    assert isinstance(outcome, rules.Extended)
    assert outcome.previous == T0 + timedelta(hours=1)
    assert outcome.expiration == T0 + timedelta(hours=1, minutes=30) > outcome.previous
    late = rules.apply(extension(), active(), entitlement(), LIMITS, T0 + timedelta(minutes=59, seconds=59))
    assert isinstance(late, str) and "was ending" in late
    ended = grant(conditions=[condition(names.READY, "False", names.EXPIRED)])
    assert isinstance(rules.apply(extension(), ended, entitlement(), LIMITS, T0), str)
    capped = rules.apply(extension(), active(extensions=applied(2)), entitlement(), LIMITS, T0)
    assert isinstance(capped, str) and capped.endswith("nothing was extended")


# --- what the operator does next -------------------------------------------------------------------


def test_an_owner_team_member_is_extended_at_once_and_others_wait() -> None:
    mine = rules.next_step(extension(), active(), entitlement(), team(), LIMITS)
    assert (mine.step, mine.auto) == (rules.Step.APPLY, True)
    not_auto = rules.next_step(
        extension(), active(), entitlement(approval={"autoApproveOwnerTeam": False}), team(), LIMITS
    )
    assert not_auto.step is rules.Step.WAIT and PAULA.username in not_auto.message
    outsider = rules.next_step(extension(), active(), entitlement(), team(members=[]), LIMITS)
    assert outsider.step is rules.Step.WAIT


def stamped(flag: str, who: str) -> dict[str, str]:
    by = names.ANNOTATION_APPROVED_BY if flag == names.ANNOTATION_APPROVED else names.ANNOTATION_DENIED_BY
    return {flag: "true", by: who}


def test_decisions_count_only_when_stamped_by_an_approver_who_is_not_the_requester() -> None:
    others = team(members=[])
    approved = rules.next_step(
        extension(annotations=stamped(names.ANNOTATION_APPROVED, PAULA.username)),
        active(),
        entitlement(),
        others,
        LIMITS,
    )
    assert (approved.step, approved.who, approved.auto) == (rules.Step.APPLY, PAULA.username, False)
    denied = rules.next_step(
        extension(annotations=stamped(names.ANNOTATION_DENIED, PAULA.username)), active(), entitlement(), others, LIMITS
    )
    assert (denied.step, denied.who) == (rules.Step.DENY, PAULA.username)
    own = rules.next_step(
        extension(requester=PAULA.username, annotations=stamped(names.ANNOTATION_APPROVED, PAULA.username)),
        grant(conditions=[condition(names.READY, "True", names.ACTIVE)]).model_copy(
            update={"spec": active().spec.model_copy(update={"user": PAULA.username}), "status": active().status}
        ),
        entitlement(),
        others,
        LIMITS,
    )
    assert own.step is rules.Step.IGNORE and "cannot decide" in own.message
    unstamped = rules.next_step(
        extension(annotations={names.ANNOTATION_APPROVED: "true"}), active(), entitlement(), others, LIMITS
    )
    assert unstamped.step is rules.Step.IGNORE and names.ANNOTATION_APPROVED_BY in unstamped.message
    backup = rules.next_step(
        extension(annotations=stamped(names.ANNOTATION_APPROVED, "carol@example.com")),
        active(),
        entitlement(),
        others,
        LIMITS,
    )
    assert backup.step is rules.Step.IGNORE, "extensions do not escalate: backups never decide"


def two_approvals(*given: str, final: str = "") -> dict[str, str]:
    """The annotations admission stamps with approvalsRequired 2: the list, and the final stamp."""
    listed = approvals.encode([approvals.Given(by, frozenset()) for by in given])
    return {names.ANNOTATION_APPROVALS: listed, **(stamped(names.ANNOTATION_APPROVED, final) if final else {})}


def test_n_approvals_are_counted_against_the_live_team_not_the_lists_length() -> None:
    pci = entitlement(approval={"autoApproveOwnerTeam": False, "approvalsRequired": 2})
    both = team(approvers=[PAULA.username, "lena@example.com"])
    one = rules.next_step(extension(annotations=two_approvals(PAULA.username)), active(), pci, both, LIMITS)
    assert (one.step, one.counted, one.needed) == (rules.Step.WAIT, (PAULA.username,), 2)
    assert one.message.startswith("1 of 2 approvals (paula@example.com): waiting for 1 more")
    done = two_approvals(PAULA.username, "lena@example.com", final="lena@example.com")
    applied = rules.next_step(extension(annotations=done), active(), pci, both, LIMITS)
    assert (applied.step, applied.who, applied.counted) == (
        rules.Step.APPLY,
        "lena@example.com",
        (PAULA.username, "lena@example.com"),
    )
    # paula is no longer an approver of the team: lena's approval does not complete the count.
    paula_gone = team(approvers=["lena@example.com", "carol@example.com"])
    short = rules.next_step(extension(annotations=done), active(), pci, paula_gone, LIMITS)
    assert short.step is rules.Step.IGNORE and short.who == "lena@example.com"
    assert "approvalsRequired is 2, and only 1 approval(s)" in short.message and "not counted" in short.message
    assert short.counted == ("lena@example.com",) and short.waiting.startswith("1 of 2 approvals (lena@example.com)")
    assert "withdraw it (kubectl delete accessextension g1-ext-1)" in short.waiting


def test_extensions_are_decided_by_the_team_the_grant_recorded() -> None:
    recorded = active().model_copy(update={"spec": active().spec.model_copy(update={"owner_team": "ledger"})})
    assert rules.owner_of(recorded, entitlement()) == "ledger" and rules.owner_of(active(), entitlement()) == "payments"
    waits = rules.next_step(
        extension(), recorded, entitlement(approval={"autoApproveOwnerTeam": False}), team(), LIMITS
    )
    assert waits.step is rules.Step.WAIT and "approver of team ledger" in waits.message
    gone = rules.next_step(extension(), recorded, entitlement(), None, LIMITS)
    assert gone.step is rules.Step.FAIL
    assert "TeamOwnership ledger, which owned Entitlement prod-eng-payments when AccessGrant g1" in gone.message
    assert "request access again (kubectl jit request prod-eng-payments)" in gone.message
    renamed = rules.as_decided(entitlement(), "ledger")
    assert renamed.spec.owner == "ledger" and entitlement().spec.owner == "payments"


def test_a_grant_of_a_group_the_entitlement_no_longer_gives_is_not_extended() -> None:
    moved = entitlement(identityCenter={"groupName": "prod-eng-payments-v2"})
    assert rules.target_problem(active(), entitlement()) is None
    problem = rules.target_problem(active(), moved)
    assert problem is not None and problem.startswith("spec.grant: Entitlement prod-eng-payments changed since")
    assert "now gives group prod-eng-payments-v2, and the grant holds prod-eng-payments" in problem
    step = rules.next_step(extension(), active(), moved, team(), LIMITS)
    assert step.step is rules.Step.FAIL and "request access again" in step.message
    assert isinstance(rules.apply(extension(), active(), moved, LIMITS, T0), str)
    refused = rules.review_extension(
        "CREATE",
        None,
        wire(),
        ALICE,
        operator=OPERATOR,
        grant=active(),
        entitlement=moved,
        team=team(),
        waiting=[],
        limits=LIMITS,
        phase=Phase.VALIDATE,
    )
    assert isinstance(refused, Refusal) and "changed since AccessGrant g1 was granted" in refused.message


def test_the_same_group_spelled_by_its_id_now_is_still_what_the_entitlement_gives() -> None:
    """A GitOps edit gives the group by its id where it had the name: the grant (spec.groupName the
    name, status.groupId the id) holds what the Entitlement gives, and may be extended."""
    by_id = entitlement(identityCenter={"groupId": "g-123"})
    held = active().model_copy(update={"status": active().status.model_copy(update={"group_id": "g-123"})})
    assert rules.target_problem(held, by_id) is None
    other = entitlement(identityCenter={"groupId": "g-456"})
    assert rules.target_problem(held, other) is not None


def test_a_groupname_left_beside_a_groupid_of_another_group_is_not_what_the_entitlement_gives() -> None:
    """Attack 127: moved to another group by its id (which takes precedence), the old name left
    beside it; the grant holds the group the name still names, by name and by id, and is not extended."""
    held = active().model_copy(update={"status": active().status.model_copy(update={"group_id": "g-123"})})
    repointed = entitlement(identityCenter={"groupId": "g-456", "groupName": "prod-eng-payments"})
    problem = rules.target_problem(held, repointed)
    assert problem is not None and "now gives group g-456, and the grant holds prod-eng-payments" in problem
    assert rules.target_problem(held, entitlement(identityCenter={"groupId": "g-123", "groupName": "x"})) is None


@pytest.mark.parametrize(
    ("the_grant", "fragment"),
    [
        (None, "does not exist"),
        (grant(conditions=[condition(names.READY, "False", names.EXPIRED)]), "it ended as usual"),
        (grant(), "is Provisioning, not Active"),
    ],
)
def test_an_extension_of_a_grant_not_active_fails(the_grant: AccessGrant | None, fragment: str) -> None:
    step = rules.next_step(extension(), the_grant, entitlement(), team(), LIMITS)
    assert step.step is rules.Step.FAIL and fragment in step.message and "nothing was extended" in step.message


def test_an_extension_by_someone_other_than_the_grantee_fails() -> None:
    step = rules.next_step(extension(requester=BOB.username), active(), entitlement(), team(), LIMITS)
    assert step.step is rules.Step.FAIL and "only the grantee extends a grant" in step.message


# --- a grant deleted and created again under its name (attack 132) -------------------------------


def made(the_grant: AccessGrant, uid: str, created: datetime | None) -> AccessGrant:
    meta = the_grant.metadata.model_copy(update={"uid": uid, "creation_timestamp": created})
    return the_grant.model_copy(update={"metadata": meta})


def asked(at: datetime | None, recorded: str | None = None, **kw: Any) -> AccessExtension:
    x = extension(**kw)
    meta = x.metadata.model_copy(update={"creation_timestamp": at})
    return x.model_copy(update={"metadata": meta, "status": x.status.model_copy(update={"grant_uid": recorded})})


def test_an_extension_is_never_judged_against_or_applied_to_a_grant_created_again_under_its_name() -> None:
    """A grant's name is its request's, which may be used again once both are deleted: the grant
    found under `spec.grant` is the one whose uid the operator recorded, or, before it recorded one,
    one created no later than the extension (admission admits it only for a grant that exists)."""
    old = made(active(), "uid-old", T0 - timedelta(minutes=10))
    new = made(active(), "uid-new", T0 + timedelta(seconds=5))
    for extension_now in (asked(T0, "uid-old"), asked(T0)):
        step = rules.next_step(extension_now, new, entitlement(), team(), LIMITS)
        assert step.step is rules.Step.FAIL, extension_now.status
        assert step.message.startswith(
            "spec.grant: AccessGrant g1 was deleted and another was created under its name since this extension "
            "was asked ("
        )
        assert "kubectl jit extend g1 --by 30m" in step.message and step.message.endswith("nothing was extended")
        applied_now = rules.apply(extension_now, new, entitlement(), LIMITS, T0 + timedelta(seconds=6))
        assert isinstance(applied_now, str) and "another was created under its name" in applied_now
    recorded = rules.next_step(asked(T0, "uid-old"), new, entitlement(), team(), LIMITS).message
    assert "asked for the AccessGrant of uid uid-old, and the one of that name now is uid uid-new" in recorded
    timed = rules.next_step(asked(T0), new, entitlement(), team(), LIMITS).message
    assert "asked at 2026-11-23T12:00:00Z, and the one of that name now was created later, at 2026-11-23T12:00:05Z" in (
        timed
    )
    # Its own grant: recorded, created before it or in the same second, or with nothing to tell them apart.
    same_second = made(active(), "uid-new", T0)
    for extension_now, the_grant in (
        (asked(T0, "uid-old"), old),
        (asked(T0), old),
        (asked(T0), same_second),
        (asked(None), new),
        (asked(T0, "uid-new"), new),
    ):
        step = rules.next_step(extension_now, the_grant, entitlement(), team(), LIMITS)
        assert (step.step, step.auto) == (rules.Step.APPLY, True), (extension_now.status, the_grant.metadata)


def reconciling(
    waits: Entitlement, the_grant: AccessGrant, the_extension: AccessExtension
) -> tuple[Any, Callable[[], dict[str, Any]]]:
    """A cluster holding the Entitlement `waits`, its owner team, `the_grant` and `the_extension`,
    and the operator's `reconcile` of that extension, which answers it as stored after."""
    from jitaccess.adapters.identitycenter import IdentityCenter
    from jitaccess.adapters.kube import Kube
    from jitaccess.handlers import extensions as handler
    from jitaccess.handlers.common import NO_INDEX
    from jitaccess.handlers.recording import DEFERRED, Deferred
    from jitaccess.handlers.runtime import Runtime
    from jitaccess.settings import Settings
    from tests.unit.test_audit_trail import Cluster

    class Stored(Cluster):
        def get(self, plural: str, name: str) -> dict[str, Any] | None:
            found = self.objects.get((plural, name))
            return copy.deepcopy(found) if found is not None else None

    cluster = Stored()
    cluster.add(names.ENTITLEMENTS, {**waits.wire(), "metadata": {"name": "prod-eng-payments"}})
    cluster.add(names.TEAMS, {"metadata": {"name": "payments"}, "spec": team().wire()})
    cluster.add(names.GRANTS, the_grant.wire())
    cluster.add(names.EXTENSIONS, {**the_extension.wire(), "kind": names.ACCESS_EXTENSION})
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, cluster))
    key = (names.EXTENSIONS, the_extension.metadata.name)

    def reconcile() -> dict[str, Any]:
        token = DEFERRED.set(Deferred())  # no kopf watch to post Events from
        try:
            handler.reconcile(rt, copy.deepcopy(cluster.objects[key]), NO_INDEX, NO_INDEX, {})
        finally:
            DEFERRED.reset(token)
        return cluster.objects[key]

    return cluster, reconcile


def test_the_operator_records_the_grants_uid_and_fails_the_extension_once_it_is_another_grant() -> None:
    waits = entitlement(approval={"autoApproveOwnerTeam": False})
    cluster, reconcile = reconciling(waits, made(active(), "uid-old", T0 - timedelta(minutes=10)), asked(T0))
    pending = reconcile()
    assert pending["status"]["grantUid"] == "uid-old"
    assert pending["status"]["conditions"][-1]["reason"] == names.PENDING
    # The grant's request and grant deleted, a new one granted under the name, before paula approves.
    replacement = made(active(), "uid-new", T0 - timedelta(minutes=20))  # even one that reads as older
    cluster.add(names.GRANTS, replacement.wire())
    stamps = stamped(names.ANNOTATION_APPROVED, PAULA.username)
    cluster.objects[(names.EXTENSIONS, "g1-ext-1")]["metadata"]["annotations"] = stamps
    failed = reconcile()
    ready = next(c for c in failed["status"]["conditions"] if c["type"] == names.READY)
    assert ready["reason"] == names.FAILED, ready
    assert "uid uid-old, and the one of that name now is uid uid-new" in ready["message"], ready
    assert failed["status"]["grantUid"] == "uid-old"
    assert not cluster.objects[(names.GRANTS, "g1")]["status"].get("extensions")


# --- admission -------------------------------------------------------------------------------------


def review(
    caller: Caller,
    new: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    phase: Phase = Phase.VALIDATE,
    old: dict[str, Any] | None = None,
    the_grant: AccessGrant | None = None,
    waiting: list[rules.Waiting] | None = None,
    the_entitlement: Entitlement | None = None,
) -> Admit | Refusal:
    return rules.review_extension(
        operation,
        old,
        new,
        caller,
        operator=OPERATOR,
        grant=active() if the_grant is None else the_grant,
        entitlement=entitlement() if the_entitlement is None else the_entitlement,
        team=team(),
        waiting=waiting or [],
        limits=LIMITS,
        phase=phase,
    )


def wire(requester: str = ALICE.username, by: str = "30m", reason: str = "INC-1 more", **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "g1-ext-1", **meta},
        "spec": {"grant": "g1", "duration": by, "reason": reason, "requester": requester, "requesterGroups": []},
    }


def test_admission_stamps_the_requester_and_admits_the_grantee_within_the_caps() -> None:
    stamped_now = review(ALICE, {"spec": {"grant": "g1", "duration": "30m", "reason": "INC-1"}}, phase=Phase.MUTATE)
    assert stamped_now == Admit(spec={"requester": ALICE.username, "requesterGroups": []})
    assert review(ALICE, wire()) == Admit()


def test_admission_refuses_with_the_field_and_the_fix() -> None:
    other = review(BOB, wire(requester=BOB.username))
    assert isinstance(other, Refusal) and "is alice@example.com's, and only its grantee may extend it" in other.message
    forged = review(BOB, {"spec": {**wire()["spec"]}}, phase=Phase.MUTATE)
    assert isinstance(forged, Refusal) and forged.message.startswith("spec.requester is 'alice@example.com'")
    ended = review(ALICE, wire(), the_grant=grant(conditions=[condition(names.READY, "False", names.REVOKED)]))
    assert isinstance(ended, Refusal) and "has already ended (Revoked)" in ended.message
    too_long = review(ALICE, wire(by="4h"))
    assert isinstance(too_long, Refusal) and "maxDuration 4h: extend by at most 3h" in too_long.message
    too_short = review(ALICE, wire(by="10s"))
    assert isinstance(too_short, Refusal) and "below the operator's minimum 1m" in too_short.message
    no_ticket = review(ALICE, wire(reason="because"))
    assert isinstance(no_ticket, Refusal) and "reasonPattern" in no_ticket.message
    decided = review(ALICE, wire(annotations={names.ANNOTATION_APPROVED: "true"}))
    assert isinstance(decided, Refusal) and "cannot be created already decided" in decided.message


def test_decisions_at_admission_follow_the_request_rules() -> None:
    old = {**wire(), "status": {"entitlement": "prod-eng-payments"}}
    by_approver = review(
        PAULA,
        {**old, "metadata": {"name": "g1-ext-1", "annotations": {names.ANNOTATION_APPROVED: "true"}}},
        operation="UPDATE",
        phase=Phase.MUTATE,
        old=old,
    )
    assert by_approver == Admit(annotations={names.ANNOTATION_APPROVED_BY: PAULA.username})
    own = review(
        ALICE,
        {**old, "metadata": {"name": "g1-ext-1", "annotations": {names.ANNOTATION_APPROVED: "true"}}},
        operation="UPDATE",
        phase=Phase.MUTATE,
        old=old,
    )
    assert isinstance(own, Refusal) and "cannot decide on it" in own.message
    edited = review(ALICE, {**old, "spec": {**old["spec"], "duration": "4h"}}, operation="UPDATE", old=old)
    assert isinstance(edited, Refusal) and "create a new AccessExtension instead" in edited.message


def test_a_misspelt_decision_on_an_extension_is_refused_with_the_key_it_is_closest_to() -> None:
    old = {**wire(), "status": {"entitlement": "prod-eng-payments"}}
    for key, meant in (
        ("jitaccess.dev/approve", names.ANNOTATION_APPROVED),
        ("jitaccess.dev/denyed", names.ANNOTATION_DENIED),
    ):
        new = {**old, "metadata": {"name": "g1-ext-1", "annotations": {key: "true"}}}
        verdict = review(PAULA, new, operation="UPDATE", phase=Phase.MUTATE, old=old)
        assert isinstance(verdict, Refusal), verdict
        assert verdict.message.startswith(
            f"metadata.annotations[{key}]: AccessExtensions have no such annotation, and jitaccess would ignore it; "
            f"did you mean {meant}? People set only jitaccess.dev/approved, jitaccess.dev/denied, "
            "jitaccess.dev/decision-reason under jitaccess.dev/"
        ), verdict.message
    # A break-glass review is a request's: an extension has none.
    reviewed = {**old, "metadata": {"name": "g1-ext-1", "annotations": {names.ANNOTATION_REVIEWED: "true"}}}
    verdict = review(PAULA, reviewed, operation="UPDATE", phase=Phase.MUTATE, old=old)
    assert isinstance(verdict, Refusal) and "AccessExtensions have no such annotation" in verdict.message


def test_an_extension_being_deleted_takes_no_decision_and_keeps_its_records_finalizer() -> None:
    held = {**wire(finalizers=[names.RECORDS_FINALIZER]), "status": {"entitlement": "prod-eng-payments"}}
    assert review(ALICE, held) == Admit()  # the stamp's finalizer, on the create
    gone = {**held, "metadata": {**held["metadata"], "deletionTimestamp": "2026-11-23T12:05:00Z"}}
    approval = {**gone, "metadata": {**gone["metadata"], "annotations": {names.ANNOTATION_APPROVED: "true"}}}
    late = review(PAULA, approval, operation="UPDATE", phase=Phase.MUTATE, old=gone)
    assert isinstance(late, Refusal) and "was deleted at 2026-11-23T12:05:00Z" in late.message
    unheld = {**held, "metadata": {**held["metadata"], "finalizers": []}}
    dropped = review(PAULA, unheld, operation="UPDATE", old=held)
    assert isinstance(dropped, Refusal) and names.RECORDS_FINALIZER in dropped.message


def test_who_may_delete_an_extension() -> None:
    waiting = {**wire(), "status": {"conditions": [condition(names.READY, "False", names.PENDING)]}}
    done = {**wire(), "status": {"conditions": [condition(names.READY, "True", names.EXTENDED)]}}
    assert review(ALICE, None, operation="DELETE", old=waiting) == Admit()
    assert isinstance(review(BOB, None, operation="DELETE", old=waiting), Refusal)
    assert isinstance(review(ALICE, None, operation="DELETE", old=done), Refusal)
    assert review(PAULA, None, operation="DELETE", old=done) == Admit()


def test_an_approver_denies_someone_elses_waiting_extension_rather_than_delete_it() -> None:
    """Attack 131: deleted, alice's waiting extension left an `extension-withdrawn` record naming
    nobody, read as her own withdrawal. An approver denies it (stamped, with a reason), then may
    delete it; alice still withdraws her own."""
    pending = [condition(names.READY, "False", names.PENDING)]
    waiting = {**wire(), "status": {"conditions": pending}}
    refusal = review(PAULA, None, operation="DELETE", old=waiting)
    assert isinstance(refusal, Refusal)
    assert refusal.message.startswith(
        "AccessExtension g1-ext-1 is alice@example.com's, still awaiting a decision: only alice@example.com "
        "withdraws it, and paula@example.com may not delete it, as a deletion leaves no jitaccess.dev/denied-by stamp"
    )
    assert "`kubectl jit deny extension/g1-ext-1 --reason '...'`" in refusal.message
    # Not taken up by the operator yet (no status): the same.
    assert isinstance(review(PAULA, None, operation="DELETE", old=wire()), Refusal)
    # A stranger (an incident responder too, who is no approver) is told to deny it as well.
    stranger = review(BOB, None, operation="DELETE", old=waiting)
    assert isinstance(stranger, Refusal) and "kubectl jit deny extension/g1-ext-1" in stranger.message
    # Decided but not ended by the operator yet: left to end as decided, then deleted.
    for flag, by in (
        (names.ANNOTATION_DENIED, names.ANNOTATION_DENIED_BY),
        (names.ANNOTATION_APPROVED, names.ANNOTATION_APPROVED_BY),
    ):
        decided = {**wire(annotations={flag: "true", by: PAULA.username}), "status": {"conditions": pending}}
        late = review(PAULA, None, operation="DELETE", old=decided)
        assert isinstance(late, Refusal), flag
        assert "by paula@example.com, and the jitaccess operator has not ended it yet" in late.message
        assert "delete it once it has ended" in late.message
    denied = {
        **wire(annotations={names.ANNOTATION_DENIED: "true", names.ANNOTATION_DENIED_BY: PAULA.username}),
        "status": {"conditions": [condition(names.READY, "False", names.DENIED)]},
    }
    assert review(PAULA, None, operation="DELETE", old=denied) == Admit()
    failed = {**wire(), "status": {"conditions": [condition(names.READY, "False", names.FAILED)]}}
    assert review(PAULA, None, operation="DELETE", old=failed) == Admit()
    # Her own, even as an approver of the owner team.
    assert review(ALICE, None, operation="DELETE", old=waiting) == Admit()
    assert review(PAULA, None, operation="DELETE", old={**wire(requester=PAULA.username), "status": {}}) == Admit()


def test_extensions_of_a_grant_say_what_each_unfinished_one_adds() -> None:
    objs = [
        {**wire(), "metadata": {"name": "a"}},
        {**wire(), "metadata": {"name": "b"}, "status": {"conditions": [condition(names.READY, "False", "Denied")]}},
        {**wire(), "metadata": {"name": "c"}, "spec": {"grant": "other", "duration": "1m"}},
        {**wire(), "metadata": {"name": "d"}, "spec": {"grant": "g1", "duration": "soon"}},
    ]
    assert rules.extensions_of(objs, "g1") == {"a": rules.Waiting("a", timedelta(minutes=30)), "b": None, "d": None}


# --- audit -----------------------------------------------------------------------------------------


def test_an_extended_grant_has_one_record_per_extension_and_keeps_its_granted_end() -> None:
    first_end, second_end = T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=30)
    extended = active(
        timedelta(hours=2),
        extensions=[
            {
                "name": "x1",
                "by": "30m",
                "approvedBy": "auto",
                "time": T0.isoformat(),
                "reason": "INC-2",
                "previousExpirationTime": first_end.isoformat(),
                "expirationTime": second_end.isoformat(),
            },
            {
                "name": "x2",
                "by": "30m",
                "approvedBy": PAULA.username,
                "time": (T0 + timedelta(minutes=5)).isoformat(),
                "previousExpirationTime": second_end.isoformat(),
                "expirationTime": (T0 + timedelta(hours=2)).isoformat(),
            },
        ],
    ).wire()
    extended["metadata"]["uid"] = "u1"
    records = audit.records_of_grant(extended)
    assert [audit.action_key(r["id"]) for r in records] == ["granted", "extended/1", "extended/2"]
    assert records[0]["endTime"] == "2026-11-23T13:00:00Z", "the end as granted"
    first, second = records[1], records[2]
    assert first["action"] == second["action"] == audit.EXTENDED
    assert first["actor"] == {"username": audit.OPERATOR, "via": "auto-approved (owner team)"}
    assert second["actor"] == {"username": PAULA.username}
    assert (second["previousEndTime"], second["endTime"]) == ("2026-11-23T13:30:00Z", "2026-11-23T14:00:00Z")
    assert first["extension"] == "x1" and first["extendedBy"] == "30m" and first["extensionReason"] == "INC-2"


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE", "DELETE"])
def test_every_write_of_the_operator_is_admitted(operation: str) -> None:
    """Why the extension webhooks may skip the operator's writes (`matchConditions`)."""
    as_operator = Caller(next(iter(OPERATOR.usernames)))
    odd: list[dict[str, Any] | None] = [None, {}, {"metadata": {"annotations": {"kopf.zalando.org/x": "y"}}}, wire()]
    for old in odd:
        for new in odd:
            assert review(as_operator, new, operation=operation, old=old, the_grant=grant()) == Admit()


# --- extensions admitted at the same moment (runtime.ExtensionAdmissions) --------------------------------


def _caps(most: int) -> Callable[[list[rules.Waiting]], Verdict]:
    return lambda waiting: Admit() if len(waiting) < most else Refusal(f"{len(waiting)} wait")


def test_an_admitted_extension_counts_until_a_listing_shows_it() -> None:
    known, thirty = ExtensionAdmissions(), timedelta(minutes=30)
    a, b, c = (rules.Waiting(n, thirty) for n in "abc")
    assert known.admit("g1", a, {}, _caps(2)) == Admit()
    assert known.admit("g1", b, {}, _caps(2)) == Admit()
    assert known.admit("g1", c, {}, _caps(2)) == Refusal("2 wait")
    assert known.admit("g2", rules.Waiting("d", thirty), {}, _caps(2)) == Admit()  # another grant's room
    # The listing shows a finished and b still waiting: a no longer counts, b once, not twice.
    assert known.admit("g1", c, {"a": None, "b": b}, _caps(2)) == Admit()


def test_a_dry_run_or_a_refusal_reserves_nothing() -> None:
    known, a, b = ExtensionAdmissions(), rules.Waiting("a", timedelta(minutes=5)), rules.Waiting("b", timedelta(1))
    assert known.admit("g1", a, {}, _caps(1), reserve=False) == Admit()
    assert known.admit("g1", a, {}, lambda _: Refusal("no")) == Refusal("no")
    assert known.admit("g1", b, {}, _caps(1)) == Admit()


def test_a_withdrawn_or_forgotten_admission_frees_its_room() -> None:
    known, a, b = ExtensionAdmissions(seconds=0.05), rules.Waiting("a", timedelta(1)), rules.Waiting("b", timedelta(1))
    assert known.admit("g1", a, {}, _caps(1)) == Admit()
    known.forget("a")
    assert known.admit("g1", b, {}, _caps(1)) == Admit()
    time.sleep(0.1)  # never listed (refused after this webhook): forgotten after `seconds`
    assert known.admit("g1", a, {}, _caps(1)) == Admit()


def test_extensions_admitted_concurrently_see_each_other() -> None:
    known, start = ExtensionAdmissions(), threading.Barrier(16)
    answers: list[Verdict] = []

    def one(i: int) -> None:
        start.wait()
        answers.append(known.admit("g1", rules.Waiting(f"e{i}", timedelta(minutes=1)), {}, _caps(2)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count(Admit()) == 2


def test_an_admission_a_listing_shows_still_counts_for_one_that_listed_before() -> None:
    known, thirty = ExtensionAdmissions(), timedelta(minutes=30)
    a, b, c = (rules.Waiting(n, thirty) for n in "abc")
    assert known.admit("g1", a, {}, _caps(2)) == Admit()
    # c lists after a is stored: a counts as listed (once, not twice).
    assert known.admit("g1", c, {"a": a}, _caps(2)) == Admit()
    # b had listed before a was stored: a and c still count for it.
    assert known.admit("g1", b, {}, _caps(2)) == Refusal("2 wait")


def test_a_group_that_does_not_resolve_leaves_no_stale_id_to_extend_the_old_group() -> None:
    """Moved to a typo, the Entitlement's status still holds the old group's id (GroupNotFound does
    not write one): that id is not what it gives now."""
    from jitaccess.api.models import Condition

    held = active().model_copy(update={"status": active().status.model_copy(update={"group_id": "g-old"})})
    moved = entitlement(identityCenter={"groupName": "prod-eng-payments-v2-typo"})
    not_found = Condition.model_validate(
        {"type": "Ready", "status": "False", "reason": names.GROUP_NOT_FOUND, "lastTransitionTime": T0.isoformat()}
    )
    moved = moved.model_copy(
        update={"status": moved.status.model_copy(update={"group_id": "g-old", "conditions": [not_found]})}
    )
    assert rules.target_problem(held, moved) is not None


def test_an_extension_applied_on_several_approvals_keeps_each_approver_and_why_with_the_grant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The grant's `status.extensions` entry is what its `extended` record is read from: the
    # approvals that made the count go there, with the groups and reasons the webhook stamped.
    from jitaccess.adapters.identitycenter import IdentityCenter
    from jitaccess.adapters.kube import Kube
    from jitaccess.handlers import extensions as handler
    from jitaccess.handlers.recording import DEFERRED, Deferred
    from jitaccess.handlers.runtime import Runtime
    from jitaccess.settings import Settings
    from tests.unit.test_audit_trail import Cluster

    lena = "lena@example.com"
    pci = entitlement(approval={"autoApproveOwnerTeam": False, "approvalsRequired": 2})
    both = team(approvers=[PAULA.username, lena])
    listed = approvals.encode(
        [
            approvals.Given(PAULA.username, frozenset({"team-pci"}), "INC-1 the apply runs on"),
            approvals.Given(lena, frozenset({"team-pci", "sre"}), "seen on the bridge"),
        ]
    )
    stamps = {names.ANNOTATION_APPROVALS: listed, **stamped(names.ANNOTATION_APPROVED, lena)}
    # paula's approval counted at 12:05 while it waited; lena's completes the count when it is applied.
    counted = {"approvals": [{"by": PAULA.username, "time": (T0 + timedelta(minutes=5)).isoformat()}]}
    waiting = AccessExtension.model_validate({**extension(annotations=stamps).wire(), "status": counted})
    grant_now = made(active(), "uid-g1", None)
    step = rules.next_step(waiting, grant_now, pci, both, LIMITS)
    assert step.step is rules.Step.APPLY and step.counted == (PAULA.username, lena)
    cluster = Cluster()
    cluster.add(names.GRANTS, grant_now.wire())
    cluster.add(names.EXTENSIONS, {**waiting.wire(), "kind": names.ACCESS_EXTENSION})
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, cluster))
    monkeypatch.setattr(handler, "now", lambda: T0 + timedelta(minutes=10))
    token = DEFERRED.set(Deferred())  # no kopf watch to post Events from
    try:
        handler._apply(rt, waiting, grant_now, pci, step)
    finally:
        DEFERRED.reset(token)
    stored = cluster.objects[(names.GRANTS, "g1")]
    (entry,) = stored["status"]["extensions"]
    assert entry["approvedBy"] == lena
    assert entry["approvals"] == [
        {
            "by": PAULA.username,
            "time": "2026-11-23T12:05:00Z",
            "groups": ["team-pci"],
            "reason": "INC-1 the apply runs on",
        },
        {"by": lena, "time": "2026-11-23T12:10:00Z", "groups": ["sre", "team-pci"], "reason": "seen on the bridge"},
    ]
    assert AccessGrant.model_validate(stored).status.extensions is not None  # the model reads it back
    (extended,) = (r for r in audit.records_of({**stored, "kind": names.ACCESS_GRANT}) if r["action"] == "extended")
    assert [(a["by"], a.get("reason")) for a in extended["approvals"]] == [
        (PAULA.username, "INC-1 the apply runs on"),
        (lena, "seen on the bridge"),
    ]


# --- an extension's name used again on the same grant ------------------------------------------------


def entry(name: str = "g1-ext-1", uid: str | None = "uid-old-x", applied_at: datetime = T0) -> dict[str, Any]:
    """A `status.extensions` entry: lena approved +30m at `applied_at` (`uid` None: written before
    entries recorded it)."""
    return {
        "name": name,
        **({"uid": uid} if uid else {}),
        "by": "30m",
        "approvedBy": "lena@example.com",
        "time": applied_at.isoformat(),
        "reason": "INC-1 the first half hour",
        "previousExpirationTime": (T0 + timedelta(hours=1)).isoformat(),
        "expirationTime": (T0 + timedelta(hours=1, minutes=30)).isoformat(),
    }


def test_a_grants_entry_is_its_extensions_by_uid_not_by_name() -> None:
    """An approver may delete a finished extension while its grant runs, and its grantee create
    another under its name: that one is not the one the grant lists as applied."""
    listed = active(extensions=[entry()])
    again = asked(T0 + timedelta(minutes=5))  # g1-ext-1, uid-g1-ext-1: another object of the name
    assert rules.applied_entry(listed, again) is None
    first = again.model_copy(update={"metadata": again.metadata.model_copy(update={"uid": "uid-old-x"})})
    found = rules.applied_entry(listed, first)
    assert found is not None and found.approved_by == "lena@example.com"
    # An entry from before entries recorded the uid: by name, only for an extension asked before it was applied.
    old_entry = active(extensions=[entry(uid=None, applied_at=T0 + timedelta(minutes=1))])
    assert rules.applied_entry(old_entry, asked(T0)) is not None
    assert rules.applied_entry(old_entry, asked(T0 + timedelta(minutes=1))) is not None  # the same second
    assert rules.applied_entry(old_entry, asked(None)) is not None  # nothing to tell them apart
    assert rules.applied_entry(old_entry, asked(T0 + timedelta(minutes=2))) is None


def test_an_extension_asked_again_under_an_applied_ones_name_is_decided_on_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """lena approved alice's +30m (g1-ext-1), applied; lena deleted it once finished; alice asks for
    +3h under the same name. The operator took the grant's entry of that name for the new one's: it
    was written Approved and Extended, "approved by lena", though nobody had decided on it."""
    from jitaccess.handlers import extensions as handler

    waits = entitlement(approval={"autoApproveOwnerTeam": False}, maxDuration="8h")
    listed = made(active(timedelta(hours=1, minutes=30), extensions=[entry()]), "uid-g1", T0 - timedelta(hours=1))
    again = asked(T0 + timedelta(minutes=5), by="3h", reason="INC-2 three more hours")
    cluster, reconcile = reconciling(waits, listed, again)
    monkeypatch.setattr(handler, "approvers_problem", lambda *_: None)  # paula is still in Identity Center
    monkeypatch.setattr(handler, "now", lambda: T0 + timedelta(minutes=10))

    def ready(obj: dict[str, Any]) -> dict[str, Any]:
        return next(c for c in obj["status"]["conditions"] if c["type"] == names.READY)

    def listed_now() -> list[tuple[str, str | None, str, str]]:
        entries = cluster.objects[(names.GRANTS, "g1")]["status"]["extensions"]
        return [(e["name"], e.get("uid"), e["by"], e["approvedBy"]) for e in entries]

    pending = reconcile()
    assert ready(pending)["reason"] == names.PENDING, ready(pending)
    assert "approvedBy" not in pending["status"]
    assert listed_now() == [("g1-ext-1", "uid-old-x", "30m", "lena@example.com")]
    # paula decides on it: applied on her word, an entry of its own, with its uid.
    cluster.objects[(names.EXTENSIONS, "g1-ext-1")]["metadata"]["annotations"] = stamped(
        names.ANNOTATION_APPROVED, PAULA.username
    )
    extended = reconcile()
    assert ready(extended)["reason"] == names.EXTENDED and extended["status"]["approvedBy"] == PAULA.username
    assert listed_now() == [
        ("g1-ext-1", "uid-old-x", "30m", "lena@example.com"),
        ("g1-ext-1", "uid-g1-ext-1", "3h", PAULA.username),
    ]
    assert cluster.objects[(names.GRANTS, "g1")]["status"]["expirationTime"] == "2026-11-23T16:30:00Z"
    # Taken up again (a crash before its own status was written, a resync): found by its uid, not applied twice.
    reconcile()
    assert len(listed_now()) == 2


def test_admission_refuses_a_name_the_grant_already_lists_as_applied() -> None:
    listed = active(extensions=[entry()])
    again = review(ALICE, wire(by="3h"), the_grant=listed)
    assert isinstance(again, Refusal) and again.message == (
        "metadata.name: AccessGrant g1 already lists an extension named g1-ext-1 in its status.extensions (+30m, "
        "applied at 2026-11-23T12:00:00Z, approved by lena@example.com): a name is used once per grant, so that "
        "its records tell its extensions apart. Name this one otherwise, or let the API server choose "
        "(metadata.generateName, as `kubectl jit extend g1 --by DURATION --reason '...'` does)"
    )
    assert review(ALICE, {**wire(), "metadata": {"generateName": "g1-ext-"}}, the_grant=listed) == Admit()
    assert review(ALICE, {**wire(), "metadata": {"name": "g1-ext-2"}}, the_grant=listed) == Admit()

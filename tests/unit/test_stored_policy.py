"""Policy objects stored before the admission rules that refuse them (an upgrade, the webhooks down):
no name of Kubernetes' own in them, nor one that reads as someone else's, confers anything when a
decision is made (`teams.conferring`, `identities.confers_nothing`), and their `Ready` says what
admission refuses now (`PolicyRefused`, `admission.stored_policy_refusal`)."""

from __future__ import annotations

import asyncio
import copy
import re
from datetime import timedelta
from typing import Any, cast

import kopf
import pytest

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.api import names
from jitaccess.domain import admission as adm
from jitaccess.domain import breakglass, identities
from jitaccess.domain import extensions as extension_rules
from jitaccess.domain import notifications as notify
from jitaccess.domain import requests as request_rules
from jitaccess.domain.admission import Phase
from jitaccess.domain.requests import Outcome, Route
from jitaccess.domain.slackmessages import approvers_message
from jitaccess.domain.teams import Caller, is_approver, is_backup_approver, is_member, may_approve
from jitaccess.errors import InvalidInput
from jitaccess.handlers import catalog, oncall
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.factories import condition, entitlement, lands, request, team
from tests.unit.test_admission import BOB, OPERATOR, create, grant, new_request, stamped, with_annotations
from tests.unit.test_extensions import active, extension
from tests.unit.test_notifications_rules import PENDING, T0, _cond
from tests.unit.test_notifications_rules import request as notice_request
from tests.unit.test_requests import LIMITS

#: What the API server puts every user in, and the cluster's superusers.
EVERYONE = "system:authenticated"
MASTERS = "system:masters"
#: mallory, in no team, as the API server authenticates her (and someone who holds system:masters).
MALLORY = Caller("mallory@example.com", frozenset({EVERYONE}))
ADMIN = Caller("root@example.com", frozenset({EVERYONE, MASTERS}))


# --- at decision time: a name of Kubernetes' own counts for nobody ---------------------------------


def test_a_team_group_of_kubernetes_own_makes_nobody_a_member_or_approver() -> None:
    stored = team(
        memberGroups=[EVERYONE, "team-payments"],
        approverGroups=[MASTERS],
        backupApproverGroups=["system:serviceaccounts:kube-system"],
    )
    assert not is_member(stored, MALLORY)
    assert not is_approver(stored, ADMIN)
    sa = Caller("system:serviceaccount:kube-system:x", frozenset({EVERYONE, "system:serviceaccounts:kube-system"}))
    assert not is_backup_approver(stored, sa)
    assert may_approve(stored, ADMIN, requester="bob@example.com", escalated=True) == (
        "root@example.com is not an approver of the owner team"
    )
    # The team's own groups still count.
    assert is_member(stored, Caller("zed@example.com", frozenset({EVERYONE, "team-payments"})))


def test_a_system_user_stored_as_an_approver_approves_nothing() -> None:
    sa = "system:serviceaccount:kube-system:replicaset-controller"
    stored = team(approvers=[sa, "paula@example.com"], backupApprovers=["system:admin"])
    assert not is_approver(stored, Caller(sa))
    assert not is_backup_approver(stored, Caller("system:admin"))
    assert is_approver(stored, Caller("paula@example.com"))


def test_a_member_group_of_everyone_auto_approves_nobody() -> None:
    checked = request_rules.validate(
        request(requester="mallory@example.com", requesterGroups=[EVERYONE]),
        entitlement(),
        team(memberGroups=[EVERYONE]),
        LIMITS,
    )
    assert request_rules.route(checked) is Route.NEEDS_APPROVAL


def test_an_approval_through_a_group_of_kubernetes_own_does_not_count() -> None:
    req = request(
        annotations={
            "jitaccess.dev/approved": "true",
            "jitaccess.dev/approved-by": "root@example.com",
            "jitaccess.dev/approved-by-groups": f"{EVERYONE},{MASTERS}",
        },
        conditions=[condition("Ready", "False", "Pending")],
    )
    checked = request_rules.validate(req, entitlement(), team(approverGroups=[MASTERS]), LIMITS)
    decision = request_rules.decide_pending(req, checked, LIMITS, req.metadata.creation_timestamp)
    assert decision is not None and decision.outcome is Outcome.IGNORE
    assert "is not an approver of the owner team" in decision.why


def test_an_on_call_group_of_everyone_puts_nobody_on_call() -> None:
    """`autoApproveGroups: [system:authenticated]` auto-approved every logged-in user, mallory in no
    team too; the request now waits for an approver."""
    stored = entitlement(approval={"autoApproveGroups": [EVERYONE, "sre-oncall"]})
    mallory = request_rules.validate(
        request(requester=MALLORY.username, requesterGroups=[EVERYONE]), stored, team(), LIMITS
    )
    # No Identity Center group to ask: the runtime is never used.
    assert oncall.on_call_group(cast(Runtime, None), mallory) is None
    assert request_rules.on_call_kubernetes_groups(mallory) == []
    on_call = request_rules.validate(
        request(requester="carol@example.com", requesterGroups=[EVERYONE, "sre-oncall"]), stored, team(), LIMITS
    )
    assert oncall.on_call_group(cast(Runtime, None), on_call) == "sre-oncall (Kubernetes group)"


def test_a_break_glass_group_of_everyone_lets_nobody_break_glass() -> None:
    stored = entitlement(breakGlass={"groups": [EVERYONE]})
    with pytest.raises(InvalidInput, match="only groups of Kubernetes' own"):
        breakglass.checked_duration(stored, [EVERYONE], "x" * 60, timedelta(minutes=30), explicit=True)
    both = entitlement(breakGlass={"groups": [EVERYONE, "sre"]})
    with pytest.raises(InvalidInput, match=re.escape("only to members of the group(s) sre, and you are in none")):
        breakglass.checked_duration(both, [EVERYONE], "x" * 60, timedelta(minutes=30), explicit=True)
    assert breakglass.checked_duration(both, ["sre"], "x" * 60, timedelta(minutes=30), explicit=True)


# --- in status: what admission refuses now --------------------------------------------------------


def _team_object(**spec: Any) -> dict[str, Any]:
    base = {"members": ["alice@example.com"], "approvers": ["paula@example.com"]}
    return {
        "kind": names.TEAM_OWNERSHIP,
        "metadata": {"name": "payments", "uid": "uid-payments", "generation": 1},
        "spec": {**base, **spec},
    }


def _entitlement_object(**spec: Any) -> dict[str, Any]:
    base = {"owner": "payments", "identityCenter": {"groupName": "prod-eng-payments"}}
    return {
        "kind": names.ENTITLEMENT,
        "metadata": {"name": "prod", "uid": "uid-prod", "generation": 1},
        "spec": {**base, **spec},
    }


@pytest.mark.parametrize(
    ("obj", "said"),
    [
        (
            _entitlement_object(approval={"autoApproveGroups": [EVERYONE]}),
            "spec.approval.autoApproveGroups names system:authenticated, which stands for every user "
            "(ServiceAccounts included): name the on-call group",
        ),
        (_entitlement_object(breakGlass={"groups": ["system:nodes"]}), "spec.breakGlass.groups names system:nodes"),
        (
            _entitlement_object(maxDuration="30s", defaultDuration="30s"),
            "spec.maxDuration 30s is below the operator's minimum 1m (JITACCESS_MIN_DURATION_SECONDS)",
        ),
        (_team_object(approverGroups=[MASTERS]), "spec.approverGroups names system:masters, which stands for"),
        (
            _team_object(approvers=["p\u0430ula@example.com"]),
            "spec.approvers[0] 'p\u0430ula@example.com' mixes the scripts Cyrillic and Latin",
        ),
        (_team_object(backupApprovers=["system:admin"]), "spec.backupApprovers names system:admin"),
    ],
)
def test_a_stored_spec_admission_refuses_now_is_said_with_the_field_and_the_fix(obj: dict[str, Any], said: str) -> None:
    found = adm.stored_policy_refusal(obj, LIMITS)
    assert found is not None and said in found
    assert found.startswith("admission refuses this spec now, and it was stored before it did")
    # The very sentence admission refuses it with.
    refused = adm.review_catalog("CREATE", None, obj, MALLORY, operator=OPERATOR, limits=LIMITS)
    assert isinstance(refused, adm.Refusal) and refused.message in found
    assert adm.stored_policy_refusal(_team_object(), LIMITS) is None
    assert adm.stored_policy_refusal(_entitlement_object(approval={"autoApproveGroups": ["sre"]}), LIMITS) is None


class Cluster:
    """Stored objects, with `Kube.update_status`'s read-modify-write; `listed`: what a listing of a
    kind answers (none by default)."""

    def __init__(self, obj: dict[str, Any], listed: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self.obj = obj
        self.listed = listed or {}

    def list(self, plural: str, *_: Any, **__: Any) -> list[dict[str, Any]]:
        return copy.deepcopy(self.listed.get(plural, []))

    def update_status(
        self, plural: str, name: str, change: Any, current: Any = None, *, uid: Any = None
    ) -> dict[str, Any] | None:
        if not lands(self.obj, uid, current):
            return None
        fields = change(copy.deepcopy(self.obj))
        if fields is None:
            return None
        self.obj.setdefault("status", {}).update(fields)
        return copy.deepcopy(self.obj)


class Store:
    """An Identity Center where every group resolves."""

    identity_store_id = "d-0000000000"

    def resolve_group(self, name: str) -> str:
        return f"id-{name}"


def _ready(cluster: Cluster) -> tuple[str, str, str]:
    (ready,) = [c for c in cluster.obj["status"]["conditions"] if c["type"] == names.READY]
    return ready["status"], ready["reason"], ready["message"]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    found: list[tuple[str, bool]] = []

    def record(obj: dict[str, Any], reason: str, message: str, *, warning: bool = False, **_: Any) -> None:
        found.append((reason, warning))

    monkeypatch.setattr(catalog, "record", record)
    return found


def test_a_stored_entitlement_with_an_on_call_group_of_everyone_is_not_ready(recorded: list[tuple[str, bool]]) -> None:
    cluster = Cluster(_entitlement_object(approval={"autoApproveGroups": [EVERYONE]}))
    rt = Runtime(Settings(remove_unbacked_members=False), cast(IdentityCenter, Store()), cast(Kube, cluster))

    def check() -> None:
        asyncio.run(
            catalog.check_entitlement(
                body=kopf.Body(copy.deepcopy(cluster.obj)),
                memo=kopf.Memo(runtime=rt),
                teams={"payments": [{"approvers": ["paula@example.com"]}]},
            )
        )

    check()
    status, reason, message = _ready(cluster)
    assert (status, reason) == ("False", names.POLICY_REFUSED)
    assert "spec.approval.autoApproveGroups names system:authenticated" in message
    assert "no group or user of Kubernetes' own (system:) it names counts for anyone" in message
    check()  # the next pass: one Warning Event per change
    assert recorded == [(names.POLICY_REFUSED, True)]
    cluster.obj["spec"]["approval"]["autoApproveGroups"] = ["sre-oncall"]
    cluster.obj["metadata"]["generation"] = 2
    check()
    assert _ready(cluster)[:2] == ("True", names.RESOLVED)
    assert recorded == [(names.POLICY_REFUSED, True), (names.RESOLVED, False)]


def test_a_stored_team_with_an_approver_group_of_kubernetes_own_is_not_ready(recorded: list[tuple[str, bool]]) -> None:
    cluster = Cluster(_team_object(approverGroups=[MASTERS]))
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, cluster))
    catalog.check_team(body=kopf.Body(copy.deepcopy(cluster.obj)), memo=kopf.Memo(runtime=rt))
    status, reason, message = _ready(cluster)
    assert (status, reason) == ("False", names.POLICY_REFUSED)
    assert "spec.approverGroups names system:masters" in message
    assert recorded == [(names.POLICY_REFUSED, True)]
    # A problem the team had before keeps its reason.
    cluster = Cluster(_team_object(approverGroups=[MASTERS], escalateAfter="0s"))
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, cluster))
    catalog.check_team(body=kopf.Body(copy.deepcopy(cluster.obj)), memo=kopf.Memo(runtime=rt))
    assert _ready(cluster)[1] == names.INVALID


# --- who may approve, as counted and as told: only the names that confer ------------------------

#: A team stored with only names of Kubernetes' own to approve: nobody can approve for it.
OWN_APPROVERS = {
    "approvers": ["system:admin"],
    "approverGroups": [MASTERS],
    "backupApprovers": ["system:serviceaccount:kube-system:replicaset-controller"],
    "backupApproverGroups": [EVERYONE],
}


def test_a_team_whose_approvers_are_all_kubernetes_own_has_no_approvers(recorded: list[tuple[str, bool]]) -> None:
    """Not `PolicyRefused`, which would say only what to remove: the team has nobody to approve."""
    cluster = Cluster(_team_object(**OWN_APPROVERS))
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, cluster))
    catalog.check_team(body=kopf.Body(copy.deepcopy(cluster.obj)), memo=kopf.Memo(runtime=rt))
    status, reason, message = _ready(cluster)
    assert (status, reason) == ("False", names.NO_APPROVERS)
    assert message.startswith("the team has no approvers: set spec.approvers or spec.approverGroups")
    assert "system:admin and system:masters are Kubernetes' own (system:) and approve nothing" in message
    assert recorded == [(names.NO_APPROVERS, True)]


@pytest.mark.parametrize(
    "stored",
    [
        {"approvers": ["paula@example.com", "system:admin"]},
        {"approvers": ["paula@example.com"], "backupApproverGroups": [MASTERS]},
    ],
)
def test_an_entitlement_counts_only_approvers_that_confer(stored: dict[str, Any]) -> None:
    """Two approvals required, and one person (paula) who may give one: `TooFewApprovers`, and a
    request that waits for approvers is refused at creation rather than left to time out."""
    needs_two = entitlement(approval={"approvalsRequired": 2})
    ready, reason, message = catalog._usable(needs_two, stored, "resolved")
    assert (ready, reason) == (False, names.TOO_FEW_APPROVERS)
    assert "team payments names 1 who may approve (paula@example.com, backup approvers included)" in message
    checked = request_rules.validate(request(), needs_two, team(backupApprovers=[], **stored), LIMITS)
    with pytest.raises(InvalidInput, match=re.escape("names 1 who may approve a request of bob@example.com")):
        request_rules.route(checked)


def test_a_request_to_a_team_whose_approvers_are_all_kubernetes_own_is_refused_at_creation() -> None:
    stored = team(**OWN_APPROVERS)
    verdict = create(stamped(new_request(), BOB), BOB, phase=Phase.VALIDATE, team=stored)
    assert isinstance(verdict, adm.Refusal)
    assert "nobody can approve this request" in verdict.message
    assert "system:admin and system:masters are Kubernetes' own (system:) and approve nothing" in verdict.message
    not_auto = entitlement(approval={"autoApproveOwnerTeam": False})
    ended = extension_rules.next_step(extension(), active(), not_auto, stored, LIMITS)
    assert ended.step is extension_rules.Step.FAIL and "names no approvers" in ended.message


#: A team stored with a real approver and backup beside names of Kubernetes' own in every field.
MIXED = {**OWN_APPROVERS, "approvers": ["paula@example.com", "system:admin"], "backupApprovers": ["carol@example.com"]}


def test_who_may_decide_names_no_name_of_kubernetes_own() -> None:
    """In the operator's messages and the CLI's (`approvers_text`): a name of Kubernetes' own would
    send the requester to someone who cannot approve."""
    assert request_rules.approvers_text(team(**MIXED), False) == "paula@example.com"
    assert request_rules.approvers_text(team(**MIXED), True) == "paula@example.com, carol@example.com"


def test_slack_names_and_tells_no_name_of_kubernetes_own_as_an_approver() -> None:
    """The approvers' message says who can decide, mentions them, and tells each backup approver of
    an escalation directly: none of it goes to a name of Kubernetes' own (`notifications.Team`)."""
    raw = {"metadata": {"name": "ledger"}, "spec": {**MIXED, "notifications": {"slackChannel": "C0LEDGER"}}}
    ledger = notify.Team.of(raw)
    escalated = _cond(names.ESCALATED, "True", names.PENDING_TOO_LONG, "pending for over 30m")
    _, blocks = approvers_message(notice_request(PENDING, escalated), ledger, {})
    assert "Can decide: paula@example.com, carol@example.com" in str(blocks)
    assert "system:" not in str(blocks)
    config = notify.Config(slack=True, webhook=False, default_channel="C0DEFAULT", security_channel="C0SECURITY")
    found = notify.notices(notice_request(PENDING, escalated), ledger, config, T0)
    assert [n.key for n in found] == [
        "slack:team-message:pending",
        "slack:team-message:escalated",
        "slack:@carol@example.com:escalated",
    ]
    assert found[1].mentions == ("paula@example.com", "carol@example.com")


# --- a name that reads as someone else's counts for nobody either ----------------------------------

#: paula@example.com with a Cyrillic a (U+0430): read in review as paula, matched as nobody, or as
#: whoever the authenticator may one day report under that name.
LOOK_ALIKE = "p\u0430ula@example.com"
#: A name admission refuses on its own, one of each kind, as (name, in a group field, what is said).
UNREADABLE = [
    (LOOK_ALIKE, False, "mixes the scripts Cyrillic and Latin"),
    ("\u0455re-oncall", True, "mixes the scripts Cyrillic and Latin"),  # a Cyrillic dze
    ("carol@example.com ", False, "has spaces at its ends"),
    (" payments-leads", True, "has spaces at its ends"),
    ("", False, "is empty"),
    ("  ", True, "is empty"),
    ("paula\u200b@example.com", False, "holds U+200B (ZERO WIDTH SPACE)"),
    ("\u202epayments-leads", True, "holds U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("paula\uff20example.com", False, "holds U+FF20 (FULLWIDTH COMMERCIAL AT)"),
    ("paula smith", False, "holds a space"),
    # Attack 126: in one script, yet reading as another name.
    ("p\u0251ula@example.com", False, "mixes the scripts Latin and Phonetic"),  # a Latin (IPA) alpha
    ("pay\u0261roup", True, "mixes the scripts Latin and Phonetic"),  # a Latin script g
    (
        "pau\u217ca@example.com",  # a small Roman numeral fifty for its l
        False,
        "is not in Unicode's normal form (NFKC): it reads as 'paula@example.com', another name",
    ),
    (
        "rene\u0301e@example.com",  # renée decomposed: an e and a combining acute accent
        False,
        "is not in Unicode's normal form (NFKC): it reads as 'ren\u00e9e@example.com', another name",
    ),
    ("pau\u2113a-leads", True, "is not in Unicode's normal form (NFKC): it reads as 'paula-leads', another name"),
]


@pytest.mark.parametrize(("name", "group", "said"), UNREADABLE)
def test_a_name_admission_refuses_on_its_own_confers_nothing(name: str, group: bool, said: str) -> None:
    """One definition: what admission refuses a name for is what makes it confer nothing."""
    assert identities.confers_nothing(name, group=group)
    assert identities.unreadable(name, group=group) == said
    refusal = identities.problem("spec.approvers[0]", name, group=group)
    assert refusal is not None and said in refusal


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("paula@example.com", False),
        ("Paula@Example.com", False),  # a case variant is an exact name: only its twin in one object is refused
        ("josé@example.com", False),
        ("ren\u00e9e@example.com", False),  # composed, as typed and as authenticators report it
        ("\u0131\u015f\u0131k@example.com.tr", False),  # Turkish dotless i, a letter of an alphabet
        ("山田@example.jp", False),
        ("Domain Admins", True),  # a group's name may hold inner spaces
        ("\u043f\u043b\u0430\u0442\u0435\u0436\u0438", True),  # one script, Cyrillic: no look-alike trick
    ],
)
def test_a_name_that_reads_as_it_is_confers(name: str, group: bool) -> None:
    assert not identities.confers_nothing(name, group=group)
    assert identities.unreadable(name, group=group) is None
    assert identities.problem("spec.approvers[0]", name, group=group) is None


def test_a_name_of_kubernetes_own_confers_nothing_whatever_it_reads() -> None:
    assert identities.confers_nothing("system:masters", group=True)
    assert identities.confers_nothing("system:admin", group=False)


def test_a_look_alike_approver_approves_nothing() -> None:
    """Whoever the authenticator reports as `p\u0430ula@example.com` is not the approver the review saw;
    the real paula, named beside it, still approves."""
    stored = team(
        approvers=[LOOK_ALIKE, "paula@example.com"],
        backupApprovers=["carol@example.com "],
        approverGroups=[" payments-leads"],
        backupApproverGroups=["\u0455re"],
    )
    assert not is_approver(stored, Caller(LOOK_ALIKE))
    assert may_approve(stored, Caller(LOOK_ALIKE), requester="bob@example.com", escalated=True) == (
        f"{LOOK_ALIKE} is not an approver of the owner team"
    )
    assert not is_backup_approver(stored, Caller("carol@example.com "))
    assert not is_approver(stored, Caller("lead@example.com", frozenset({" payments-leads"})))
    assert not is_backup_approver(stored, Caller("sam@example.com", frozenset({"\u0455re"})))
    assert is_approver(stored, Caller("paula@example.com"))


def test_a_look_alike_member_group_makes_nobody_a_member() -> None:
    stored = team(memberGroups=["te\u0430m-payments", "team-payments"])
    assert not is_member(stored, Caller("mallory@example.com", frozenset({"te\u0430m-payments"})))
    assert is_member(stored, Caller("zed@example.com", frozenset({"team-payments"})))
    checked = request_rules.validate(
        request(requester="mallory@example.com", requesterGroups=["te\u0430m-payments"]),
        entitlement(),
        stored,
        LIMITS,
    )
    assert request_rules.route(checked) is Route.NEEDS_APPROVAL


def test_a_look_alike_or_system_member_name_makes_nobody_a_member() -> None:
    """`members` by name, as the approver fields: a look-alike of a member stored before the rule (or
    a ServiceAccount) is no member, so it gets no auto-approval as the owner team."""
    sa = "system:serviceaccount:payments:deployer"
    stored = team(members=[f"m{LOOK_ALIKE[1:]}", sa, "zed@example.com"])
    assert not is_member(stored, Caller(f"m{LOOK_ALIKE[1:]}"))
    assert not is_member(stored, Caller(sa))
    assert is_member(stored, Caller("zed@example.com"))
    checked = request_rules.validate(request(requester=sa), entitlement(), stored, LIMITS)
    assert request_rules.route(checked) is Route.NEEDS_APPROVAL


def test_names_that_differ_only_in_case_still_confer() -> None:
    """Each is an exact, readable name: the authenticator reports one of them. Only the flag applies."""
    stored = team(approvers=["paula@example.com", "Paula@Example.com"])
    assert is_approver(stored, Caller("paula@example.com"))
    assert is_approver(stored, Caller("Paula@Example.com"))
    found = adm.stored_policy_refusal(_team_object(approvers=["paula@example.com", "Paula@Example.com"]), LIMITS)
    assert found is not None and "differs only in case" in found


def test_an_approval_stamped_by_a_look_alike_does_not_count() -> None:
    req = request(
        annotations={"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": LOOK_ALIKE},
        conditions=[condition("Ready", "False", "Pending")],
    )
    checked = request_rules.validate(req, entitlement(), team(approvers=[LOOK_ALIKE, "lena@example.com"]), LIMITS)
    decision = request_rules.decide_pending(req, checked, LIMITS, req.metadata.creation_timestamp)
    assert decision is not None and decision.outcome is Outcome.IGNORE
    assert f"{LOOK_ALIKE} is not an approver of the owner team" in decision.why


def test_a_look_alike_on_call_group_puts_nobody_on_call() -> None:
    stored = entitlement(approval={"autoApproveGroups": ["sre-oncall\u200b", "sre-oncall"]})
    hidden = request_rules.validate(
        request(requester=MALLORY.username, requesterGroups=["sre-oncall\u200b"]), stored, team(), LIMITS
    )
    assert request_rules.on_call_kubernetes_groups(hidden) == []
    assert oncall.on_call_group(cast(Runtime, None), hidden) is None
    on_call = request_rules.validate(
        request(requester="carol@example.com", requesterGroups=["sre-oncall"]), stored, team(), LIMITS
    )
    assert request_rules.on_call_kubernetes_groups(on_call) == ["sre-oncall"]


def test_a_look_alike_break_glass_group_lets_nobody_break_glass() -> None:
    stored = entitlement(breakGlass={"groups": ["\u0455re"]})
    with pytest.raises(
        InvalidInput, match="names only groups of Kubernetes' own \\(system:\\) or names that read as another's"
    ):
        breakglass.checked_duration(stored, ["\u0455re"], "x" * 60, timedelta(minutes=30), explicit=True)


#: A team stored with only names that read as someone else's to approve: nobody can approve for it.
LOOK_ALIKE_APPROVERS = {
    "approvers": [LOOK_ALIKE],
    "approverGroups": [" payments-leads"],
    "backupApprovers": ["carol@example.com "],
    "backupApproverGroups": ["\u0455re"],
}
#: Why, as the messages that say whom the team lacks put it.
LOOK_ALIKE_NOTE = (
    f"; {LOOK_ALIKE!r} mixes the scripts Cyrillic and Latin and approves nothing; "
    "' payments-leads' has spaces at its ends and approves nothing"
)


def test_a_team_whose_approvers_all_read_as_others_has_no_approvers_and_says_why(
    recorded: list[tuple[str, bool]],
) -> None:
    cluster = Cluster(_team_object(**LOOK_ALIKE_APPROVERS))
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, cluster))
    catalog.check_team(body=kopf.Body(copy.deepcopy(cluster.obj)), memo=kopf.Memo(runtime=rt))
    status, reason, message = _ready(cluster)
    assert (status, reason) == ("False", names.NO_APPROVERS)
    assert message.endswith("or requests from outside the team can never be approved" + LOOK_ALIKE_NOTE)


def test_a_request_to_a_team_whose_approvers_all_read_as_others_is_refused_at_creation() -> None:
    stored = team(**LOOK_ALIKE_APPROVERS)
    verdict = create(stamped(new_request(), BOB), BOB, phase=Phase.VALIDATE, team=stored)
    assert isinstance(verdict, adm.Refusal)
    assert "names nobody who may approve, so nobody can approve this request" in verdict.message
    assert verdict.message.endswith("the team must name approvers" + LOOK_ALIKE_NOTE)
    not_auto = entitlement(approval={"autoApproveOwnerTeam": False})
    ended = extension_rules.next_step(extension(), active(), not_auto, stored, LIMITS)
    assert ended.step is extension_rules.Step.FAIL
    assert ended.message.endswith("nothing was extended" + LOOK_ALIKE_NOTE)


def test_too_few_approvers_counts_no_look_alike_and_says_why() -> None:
    stored = {"approvers": ["paula@example.com", LOOK_ALIKE]}
    needs_two = entitlement(approval={"approvalsRequired": 2})
    ready, reason, message = catalog._usable(needs_two, stored, "resolved")
    assert (ready, reason) == (False, names.TOO_FEW_APPROVERS)
    assert "team payments names 1 who may approve (paula@example.com, backup approvers included)" in message
    assert message.endswith(
        f"lower approvalsRequired; {LOOK_ALIKE!r} mixes the scripts Cyrillic and Latin and approves nothing"
    )
    checked = request_rules.validate(request(), needs_two, team(backupApprovers=[], **stored), LIMITS)
    with pytest.raises(InvalidInput, match=re.escape(f"need fewer; {LOOK_ALIKE!r} mixes the scripts Cyrillic")):
        request_rules.route(checked)


def test_who_may_decide_names_no_look_alike() -> None:
    """In the operator's messages, the CLI's, Slack's and a refused revocation's: a look-alike would
    send the requester to someone who cannot approve."""
    mixed = {
        **LOOK_ALIKE_APPROVERS,
        "approvers": ["paula@example.com", LOOK_ALIKE],
        "backupApprovers": ["carol@example.com"],
    }
    assert request_rules.approvers_text(team(**mixed), True) == "paula@example.com, carol@example.com"
    ledger = notify.Team.of({"metadata": {"name": "ledger"}, "spec": mixed})
    assert (ledger.approvers, ledger.approver_groups, ledger.backup_approver_groups) == (("paula@example.com",), (), ())
    refused = adm.review_grant(
        "UPDATE",
        grant(),
        with_annotations(grant(), jitaccess_dev__revoked="true"),
        MALLORY,
        operator=OPERATOR,
        team=team(**mixed),
        owner="payments",
        phase=Phase.MUTATE,
    )
    assert isinstance(refused, adm.Refusal)
    assert "an approver of team payments (paula@example.com) may set" in refused.message


def test_a_stored_team_with_a_look_alike_approver_is_refused_and_says_it_counts_for_nobody(
    recorded: list[tuple[str, bool]],
) -> None:
    cluster = Cluster(_team_object(approvers=["paula@example.com", LOOK_ALIKE]))
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, cluster))
    catalog.check_team(body=kopf.Body(copy.deepcopy(cluster.obj)), memo=kopf.Memo(runtime=rt))
    status, reason, message = _ready(cluster)
    assert (status, reason) == ("False", names.POLICY_REFUSED)
    assert f"spec.approvers[1] {LOOK_ALIKE!r} mixes the scripts Cyrillic and Latin" in message
    assert "nor does a name that reads as another's (empty, padded, a look-alike)" in message


def test_an_entitlement_stored_under_a_name_no_label_value_holds_is_said_with_the_name_and_the_fix() -> None:
    """Stored before the rule (an upgrade): `PolicyRefused` names it, why no grant of it can be made,
    and the fix; a name of 63 characters is fine, and the rule is an Entitlement's only."""
    long = "p" * 64
    obj = _entitlement_object()
    obj["metadata"]["name"] = long
    found = adm.stored_policy_refusal(obj, LIMITS)
    assert found is not None and found.startswith(f"admission refuses the name {long} now")
    assert "metadata.name is 64 characters long, above the limit of 63" in found
    assert found.endswith("create it again under a shorter name, then delete this one")
    obj["metadata"]["name"] = long[:63]
    assert adm.stored_policy_refusal(obj, LIMITS) is None
    team_obj = _team_object()
    team_obj["metadata"]["name"] = long
    assert adm.stored_policy_refusal(team_obj, LIMITS) is None

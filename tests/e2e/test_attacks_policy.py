"""Attacks 111-113, 140 and 141 of docs/security.md: policy objects (TeamOwnership, Entitlement,
PermissionCatalog) written so that they give more than they read.

The GitOps repository is reviewed, but a reviewer reads a group's or a user's name, not what the
cluster makes of it: `system:authenticated` as an on-call group, another team's standing group as
the production tier's. Each write is made as GitOps would (the admin, `kubectl apply`), through the
real API server and the operator's webhooks; each is refused with a message that names the field
and the fix, and the stored object is unchanged. One stored while the webhooks were gone (or before
an upgrade brought the rule) gives nothing through such a name, and its `Ready` says why.
"""

from __future__ import annotations

import contextlib
import copy
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.paths import EXAMPLES
from devenv.processes import child_env
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e
MALLORY, LENA, ALICE, CAROL = "mallory@example.com", "lena@example.com", "alice@example.com", "carol@example.com"
SERVICE_ACCOUNT, NEW_LEAD = "system:serviceaccount:kube-system:default", "newlead@example.com"


def example(file: str, name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / file).read_text()) if d]
    return copy.deepcopy(next(d for d in docs if d["metadata"]["name"] == name))


def refused(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode != 0, f"{result.args} was accepted:\n{result.stdout}"
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
    return result.stderr


def refused_and_unchanged(system: Jit, manifest: dict[str, Any], *fragments: str) -> str:
    """`manifest` applied as GitOps would (the admin) is refused with `fragments`, and the object
    stored before it is as it was."""
    kind, name = manifest["kind"].lower(), manifest["metadata"]["name"]
    before = (system.get(kind, name) or {}).get("spec")
    said = refused(system.apply(manifest, check=False), *fragments)
    assert (system.get(kind, name) or {}).get("spec") == before
    return said


def stored_without_webhooks(system: Jit, manifest: dict[str, Any]) -> None:
    """`manifest` stored as while the webhooks were gone (attack 22, or before an upgrade brought
    the rule): the operator stopped and its webhook configurations deleted, the admin applies it;
    then the operator back (which puts its configurations back), once it has read the stored spec,
    whatever it made of it."""
    kind, name = manifest["kind"].lower(), manifest["metadata"]["name"]
    system.operator.stop()
    try:
        for configuration in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            system.kubectl("delete", configuration, "jitaccess.dev", "--ignore-not-found")
        system.apply(manifest)
    finally:
        system.operator.start()

    def taken_up() -> bool:
        stored = system.get(kind, name) or {}
        ready = system.condition(kind, name, "Ready") or {}
        return ready.get("observedGeneration") == stored["metadata"]["generation"]

    eventually(lambda: taken_up() or None, timeout=30, what=f"{kind} {name}'s stored spec taken up")


@pytest.fixture
def policy(system: Jit) -> Iterator[Jit]:
    """The session's teams and Entitlements as the examples have them, put back afterwards (should
    a write that ought to be refused get through)."""
    yield system
    for file in ("01-teams.yaml", "02-entitlements.yaml"):
        system.kubectl("apply", "-f", str(EXAMPLES / file))


# --- 111. a group that stands for everyone, as an Entitlement's on-call or break-glass group ---------


@pytest.mark.parametrize(
    ("field", "group", "said"),
    [
        (
            ("approval", "autoApproveGroups"),
            "system:authenticated",
            "spec.approval.autoApproveGroups names system:authenticated, which stands for every user "
            "(ServiceAccounts included): name the on-call group",
        ),
        (
            ("breakGlass", "groups"),
            "system:serviceaccounts:default",
            "spec.breakGlass.groups names system:serviceaccounts:default, which stands for every ServiceAccount "
            "of namespace default: name the group of the people who may break glass",
        ),
        (("approval", "autoApproveGroups"), "system:masters", "a group of Kubernetes' own (system:)"),
    ],
)
def test_111_an_entitlement_never_gives_approval_to_everyone(
    policy: Jit, field: tuple[str, str], group: str, said: str
) -> None:
    """`autoApproveGroups: [system:authenticated]` read like an on-call group in review, and
    auto-approved every logged-in user (mallory, in no team) into production; break-glass to such a
    group let anyone approve their own request."""
    bad = example("02-entitlements.yaml", "prod-eng-payments")
    bad["spec"].setdefault(field[0], {})[field[1]] = ["sre", group]
    refused_and_unchanged(policy, bad, said)


@pytest.mark.parametrize(
    ("field", "group"),
    [
        ("memberGroups", "system:authenticated"),
        ("approverGroups", "system:masters"),
        ("backupApproverGroups", "system:nodes"),
    ],
)
def test_111_a_team_never_names_a_system_group(policy: Jit, field: str, group: str) -> None:
    bad = example("01-teams.yaml", "payments")
    bad["spec"][field] = [group]
    refused_and_unchanged(policy, bad, f"spec.{field} names {group}, which stands for")


def test_111_one_stored_before_the_rule_puts_nobody_on_call(policy: Jit) -> None:
    """prod-eng-ledger stored with `autoApproveGroups: [system:authenticated]` while the webhooks
    were gone: mallory, in no team, asks for it, and her request waits for ledger's approvers
    instead of being auto-approved (on call) into production; the Entitlement is Ready=False
    PolicyRefused, with admission's sentence, and a Warning Event."""
    bad = example("02-entitlements.yaml", "prod-eng-ledger")
    bad["spec"].setdefault("approval", {})["autoApproveGroups"] = ["system:authenticated"]
    stored_without_webhooks(policy, bad)
    policy.request("mallory-oncall", "prod-eng-ledger", user=MALLORY)
    policy.wait_reason("accessrequest", "mallory-oncall", "Pending")
    time.sleep(3)  # an auto-approval would have been made by now
    assert policy.ready_reason("accessrequest", "mallory-oncall") == "Pending"
    assert (policy.condition("accessrequest", "mallory-oncall", "Approved") or {}).get("status") != "True"
    assert policy.members("prod-eng-ledger") == set()
    ready = policy.wait_reason("entitlement", "prod-eng-ledger", "PolicyRefused")
    message = next(c["message"] for c in ready["status"]["conditions"] if c["type"] == "Ready")
    assert "spec.approval.autoApproveGroups names system:authenticated, which stands for every user" in message
    assert "name the on-call group" in message
    warned = eventually(
        lambda: [e for e in policy.events("prod-eng-ledger", "Entitlement") if e["reason"] == "PolicyRefused"] or None,
        what="the PolicyRefused Event",
    )
    assert warned[0]["type"] == "Warning"
    # A real approver still decides.
    policy.kubectl("annotate", "accessrequest", "mallory-oncall", "jitaccess.dev/approved=true", user=LENA)
    policy.wait_reason("accessrequest", "mallory-oncall", "Granted")
    assert policy.members("prod-eng-ledger") == {MALLORY}


def test_111_a_team_whose_approvers_are_all_kubernetes_own_approves_nothing(policy: Jit) -> None:
    """ledger stored, while the webhooks were gone, with a ServiceAccount as its approver and
    system:masters as its approver group, and a backup approver the Slack identity may not act as:
    nobody can approve its requests, so the team is NoApprovers naming those names, and alice (of
    payments) asking for prod-eng-ledger is refused at creation, told why, instead of waiting until
    her request times out. The Slack warning names the backup approver, never the ServiceAccount
    (the ClusterRole `kubectl jit rbac slack` prints never lists one: it approves nothing)."""
    bad = example("01-teams.yaml", "ledger")
    bad["spec"].update(approvers=[SERVICE_ACCOUNT], approverGroups=["system:masters"], backupApprovers=[NEW_LEAD])
    stored_without_webhooks(policy, bad)
    ready = policy.wait_reason("teamownership", "ledger", "NoApprovers", timeout=30)
    message = next(c["message"] for c in ready["status"]["conditions"] if c["type"] == "Ready")
    own = f"{SERVICE_ACCOUNT} and system:masters are Kubernetes' own (system:) and approve nothing"
    assert message.startswith("the team has no approvers") and own in message, message
    refused(
        policy.request("alice-own-approvers", "prod-eng-ledger", user=ALICE, check=False),
        "TeamOwnership 'ledger' spec.approvers names nobody who may approve, so nobody can approve this request",
        own,
    )
    assert policy.get("accessrequest", "alice-own-approvers") is None
    warned = eventually(
        lambda: (
            [
                e
                for e in policy.events("ledger", "TeamOwnership")
                if e["reason"] == "SlackApproverNotImpersonable" and NEW_LEAD in e["message"]
            ]
            or None
        ),
        what="the Slack warning on ledger",
    )[0]
    assert f"may not act as {NEW_LEAD} (approvers of team ledger)" in warned["message"], warned["message"]


def test_111_an_entitlement_whose_team_has_too_few_approvers_once_kubernetes_own_are_left_out_grants_nothing(
    policy: Jit,
) -> None:
    """prod-eng-ledger needs two approvals; ledger stored, while the webhooks were gone, with lena
    and a ServiceAccount as its approvers and system:admin as its backup approver: two names read
    as approvers in review, but only lena may approve. The Entitlement is TooFewApprovers, saying
    so, and alice (of payments) asking for it is refused at creation, told why and how to fix it,
    instead of waiting until her request times out."""
    needs_two = example("02-entitlements.yaml", "prod-eng-ledger")
    needs_two["spec"]["approval"]["approvalsRequired"] = 2
    policy.apply(needs_two)
    bad = example("01-teams.yaml", "ledger")
    bad["spec"].update(approvers=[LENA, SERVICE_ACCOUNT], backupApprovers=["system:admin"])
    stored_without_webhooks(policy, bad)
    own = f"{SERVICE_ACCOUNT} and system:admin are Kubernetes' own (system:) and approve nothing"
    short = policy.wait_reason("entitlement", "prod-eng-ledger", "TooFewApprovers", timeout=30)
    message = next(c["message"] for c in short["status"]["conditions"] if c["type"] == "Ready")
    assert (
        f"spec.approval.approvalsRequired is 2, but team ledger names 1 who may approve ({LENA}, backup approvers "
        "included)" in message
    ), message
    assert message.endswith(f"name more approvers in the team, or lower approvalsRequired; {own}"), message
    refused(
        policy.request("alice-too-few-approvers", "prod-eng-ledger", user=ALICE, check=False),
        f"TeamOwnership 'ledger' spec.approvers names 1 who may approve a request of {ALICE} ({LENA}, backup "
        "approvers included), and Entitlement prod-eng-ledger needs 2 approvals (spec.approval.approvalsRequired): "
        "it could never be approved; the team must name more approvers, or the Entitlement need fewer",
        own,
    )
    assert policy.get("accessrequest", "alice-too-few-approvers") is None


# --- 112. another team's standing group as the production tier's -------------------------------------


@pytest.fixture
def catalogs(policy: Jit) -> Iterator[Jit]:
    """The example catalogs applied (by the admin, as GitOps would), and put back afterwards."""
    policy.kubectl("apply", "-f", str(EXAMPLES / "04-permissions.yaml"))
    yield policy
    policy.kubectl("apply", "-f", str(EXAMPLES / "04-permissions.yaml"))


@pytest.mark.parametrize(
    ("tier", "group", "said"),
    [
        (
            "production",
            "eng-ledger",
            "spec.production.groupName 'eng-ledger' is PermissionCatalog ledger's baseline group, whose members hold "
            "it standing: they would all hold production with no grant; name the group of an Entitlement of team "
            "payments",
        ),
        ("production", "prod-eligible", "a group Entitlement prod-eng-payments names in spec.eligibility"),
        (
            "production",
            "prod-eng-ledger",
            "grants of team ledger would give the production permissions of team payments",
        ),
        ("baseline", "prod-eng-ledger", "spec.baseline.groupName 'prod-eng-ledger' is PermissionCatalog ledger's"),
    ],
)
def test_112_production_is_never_given_to_a_standing_group(catalogs: Jit, tier: str, group: str, said: str) -> None:
    """payments' production tier (AdministratorAccess, say) given to eng-ledger, another team's
    baseline group, was admitted: the whole of that team held production standing, with no grant."""
    bad = example("04-permissions.yaml", "payments")
    bad["spec"][tier]["groupName"] = group
    refused_and_unchanged(catalogs, bad, "PermissionCatalog payments cannot be provisioned", said)


def test_112_an_entitlement_never_grants_a_standing_group(catalogs: Jit) -> None:
    """The same from the Entitlement's side, whichever GitOps applies first: grants into a baseline
    group would be no grant at all (its members hold it), and into another team's production group
    would give that team's production."""
    bad = example("02-entitlements.yaml", "prod-eng-payments")
    bad["spec"]["identityCenter"]["groupName"] = "eng-ledger"
    refused_and_unchanged(
        catalogs, bad, "spec.identityCenter.groupName 'eng-ledger' is PermissionCatalog ledger's baseline group"
    )
    bad["spec"]["identityCenter"]["groupName"] = "prod-eng-ledger"
    refused_and_unchanged(catalogs, bad, "grants of team payments would give the production permissions of team ledger")


# --- 140. a group people are in (on call, eligible) as another Entitlement's granted group ----------


def ledger_x(**spec: Any) -> dict[str, Any]:
    """A ledger Entitlement, auto-approved for the ledger team (bob may have it at once)."""
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "Entitlement",
        "metadata": {"name": "ledger-x"},
        "spec": {"owner": "ledger", "approval": {"autoApproveOwnerTeam": True}, **spec},
    }


@pytest.fixture
def on_call(policy: Jit) -> Iterator[Jit]:
    """prod-eng-payments auto-approving whoever is in payments-oncall (the brief's scenario); put
    back by `policy`, and any ledger-x deleted."""
    payments = example("02-entitlements.yaml", "prod-eng-payments")
    payments["spec"]["approval"]["autoApproveIdentityCenterGroups"] = ["payments-oncall"]
    policy.apply(payments)
    yield policy
    policy.kubectl("delete", "entitlement", "ledger-x", "--ignore-not-found", "--timeout=60s")


@pytest.mark.parametrize(
    ("group", "said"),
    [
        ("payments-oncall", "on call for Entitlement prod-eng-payments, approved at once"),
        ("pci-secure-code-trained", "eligible for Entitlement prod-eng-payments"),
    ],
)
def test_140_an_entitlement_never_grants_a_group_another_names_as_one_people_are_in(
    on_call: Jit, group: str, said: str
) -> None:
    """ledger-x granting payments-oncall was admitted: bob, of ledger, was auto-approved into it, and
    then auto-approved "on call" into payments' production; ledger-x's drift scan emptied the group of
    the people really on call, and the eligibility group of the trained."""
    refused_and_unchanged(
        on_call,
        ledger_x(identityCenter={"groupName": group}),
        f"spec.identityCenter.groupName {group!r} is a group Entitlement prod-eng-payments names in spec.",
        f"whose members hold it standing: a grant of Entitlement ledger-x would make its grantee {said}",
        "and the drift scan of ledger-x would remove every member no grant backs; name a group that only grants of "
        "ledger-x fill",
    )


def test_140_nor_by_its_group_id_nor_its_own_nor_the_other_way_round(on_call: Jit) -> None:
    """By the group's id (the webhook asks Identity Center what the names are), an Entitlement's own
    on-call group, and a group grants fill named as one people are in."""
    by_id = ledger_x(identityCenter={"groupId": on_call.ic.group_id("payments-oncall")})
    refused_and_unchanged(on_call, by_id, "is a group Entitlement prod-eng-payments names in spec.approval")
    own = ledger_x(identityCenter={"groupName": "ledger-oncall"})
    own["spec"]["approval"]["autoApproveIdentityCenterGroups"] = ["ledger-oncall"]
    refused_and_unchanged(on_call, own, "'ledger-oncall' is a group Entitlement ledger-x names in spec.approval")
    payments = example("02-entitlements.yaml", "prod-eng-payments")
    payments["spec"]["eligibility"]["identityCenterGroups"].append("prod-eng-ledger")
    refused_and_unchanged(
        on_call,
        payments,
        "spec.eligibility.identityCenterGroups names 'prod-eng-ledger', which is the group of Entitlement "
        "prod-eng-ledger (team ledger), which people hold only through a grant",
    )


def test_140_one_stored_before_the_rule_is_refused_in_status_and_empties_nobody(on_call: Jit) -> None:
    """Stored while the webhooks were gone: `PolicyRefused`, and its drift scan leaves carol, on call
    in payments-oncall, where she is (it removed her, and the on-call people with her). It is
    granted to nobody: lena, of ledger, asks for it and is refused, saying why and whom to ask (she
    was auto-approved into payments-oncall, and so on call for payments' production)."""
    membership = on_call.ic.add_member("payments-oncall", CAROL)
    try:
        offset = on_call.operator.log_file.stat().st_size
        stored_without_webhooks(on_call, ledger_x(identityCenter={"groupName": "payments-oncall"}))
        refused_now = on_call.wait_reason("entitlement", "ledger-x", "PolicyRefused", timeout=30)
        message = next(c["message"] for c in refused_now["status"]["conditions"] if c["type"] == "Ready")
        assert "is a group Entitlement prod-eng-payments names in spec.approval" in message, message
        assert message.startswith("it would grant access its owner team does not own, so it is granted to nobody")
        refused(
            on_call.request("lena-ledger-x", "ledger-x", user=LENA, check=False),
            "spec.entitlement names 'ledger-x', whose Ready is PolicyRefused: it would grant access its owner team "
            "does not own",
            "Nothing was granted: ask its owners (team ledger) to fix it as said, then request again",
        )
        assert on_call.get("accessrequest", "lena-ledger-x") is None
        assert LENA not in on_call.members("payments-oncall")

        def passed_over() -> bool:
            with on_call.operator.log_file.open("rb") as log:
                log.seek(offset)
                return b"drift scan of ledger-x: payments-oncall is a group people hold standing" in log.read()

        eventually(lambda: passed_over() or None, timeout=30, what="a drift scan of ledger-x passing the group over")
        time.sleep(6)  # and the next pass (every 5 s)
        assert CAROL in on_call.members("payments-oncall")
    finally:
        on_call.ic.client().delete_group_membership(
            IdentityStoreId=on_call.ic.identity_store_id, MembershipId=membership
        )


# --- 141. another team's permission set, assigned directly ------------------------------------------


@pytest.fixture
def payments_arn(policy: Jit) -> Iterator[str]:
    """The example catalogs provisioned: the ARN of payments' production permission set."""
    for group in ("eng-payments", "eng-ledger"):  # the catalogs' baseline groups
        policy.ic.create_group(group)
    policy.kubectl("apply", "-f", str(EXAMPLES / "04-permissions.yaml"))

    def arn() -> str | None:
        production = ((policy.get("permissioncatalog", "payments") or {}).get("status") or {}).get("production")
        return (production or {}).get("permissionSetArn")

    yield eventually(arn, timeout=60, what=f"payments production provisioned; log:\n{policy.operator.tail(20)}")
    policy.kubectl("delete", "entitlement", "ledger-direct", "--ignore-not-found", "--timeout=60s")


def test_141_an_entitlement_never_assigns_another_teams_permission_set(policy: Jit, payments_arn: str) -> None:
    """ledger-direct assigning payments' production permission set to ledger's members, by its catalog
    tier or by its ARN, was admitted and Ready: attack 112 compared groups, and this mode names none."""
    direct = example("05-assignment.yaml", "payments-prod-direct")
    direct["metadata"]["name"] = "ledger-direct"
    direct["spec"]["owner"] = "ledger"
    refused_and_unchanged(
        policy,
        direct,
        "spec.identityCenter.accountAssignment.permissionSet names catalog:payments/production, a tier of "
        "PermissionCatalog payments: grants of team ledger would give the production permissions of team payments; "
        "name a tier of PermissionCatalog ledger, team ledger's own",
    )
    direct["spec"]["identityCenter"]["accountAssignment"]["permissionSet"] = {"arn": payments_arn}
    refused_and_unchanged(
        policy,
        direct,
        f"spec.identityCenter.accountAssignment.permissionSet.arn '{payments_arn}' is PermissionCatalog payments's "
        "production permission set (status.production.permissionSetArn)",
    )
    # Its own team's: the ledger catalog's production tier.
    direct["spec"]["identityCenter"]["accountAssignment"]["permissionSet"] = {"catalog": "ledger", "tier": "production"}
    policy.apply(direct)


def test_141_one_stored_before_the_rule_is_granted_to_nobody(policy: Jit, payments_arn: str) -> None:
    """Stored while the webhooks were gone: `PolicyRefused`, and lena, of ledger (auto-approved into
    payments' production permission set before), is refused, saying why and whom to ask."""
    direct = example("05-assignment.yaml", "payments-prod-direct")
    direct["metadata"]["name"] = "ledger-direct"
    direct["spec"]["owner"] = "ledger"
    direct["spec"]["identityCenter"]["accountAssignment"]["permissionSet"] = {"arn": payments_arn}
    stored_without_webhooks(policy, direct)
    refused_now = policy.wait_reason("entitlement", "ledger-direct", "PolicyRefused", timeout=30)
    message = next(c["message"] for c in refused_now["status"]["conditions"] if c["type"] == "Ready")
    assert message.startswith("it would grant access its owner team does not own, so it is granted to nobody")
    assert "grants of team ledger would give the production permissions of team payments" in message, message
    refused(
        policy.request("lena-ledger-direct", "ledger-direct", user=LENA, check=False),
        "spec.entitlement names 'ledger-direct', whose Ready is PolicyRefused",
        "ask its owners (team ledger) to fix it as said",
    )
    assert policy.get("accessrequest", "lena-ledger-direct") is None
    assert policy.get("accessgrant", "lena-ledger-direct") is None


# --- 113. an approver's name that reads as someone else's ------------------------------------------


@pytest.mark.parametrize(
    ("approvers", "said"),
    [
        (["p\u0430ula@example.com"], "spec.approvers[0] 'p\u0430ula@example.com' mixes the scripts Cyrillic and Latin"),
        (["paula@example.com", "Paula@Example.com"], "spec.approvers[1] 'Paula@Example.com' differs only in case"),
        (["paula@example.com "], "spec.approvers[0] 'paula@example.com ' has spaces at its ends"),
        (["paula@example.com", ""], "spec.approvers[1] is empty"),
    ],
)
def test_113_an_approver_is_written_as_the_authenticator_reports_them(
    policy: Jit, approvers: list[str], said: str
) -> None:
    """Reviewed, paula's name with a Cyrillic a (U+0430) reads as paula; matched, it is nobody, or
    whoever the authenticator may one day report under that name."""
    bad = example("01-teams.yaml", "payments")
    bad["spec"]["approvers"] = approvers
    refused_and_unchanged(policy, bad, said)


#: lena@example.com with a Cyrillic e (U+0435): read in review as lena.
LOOK_ALIKE = "l\u0435na@example.com"


@contextlib.contextmanager
def bound_as_approver(system: Jit, user: str) -> Iterator[Path]:
    """The kubeconfig of whoever the authenticator reports as `user` (a client certificate of the
    control plane's CA), bound to the approvers' ClusterRole as lena is; the binding removed
    afterwards."""
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "jitaccess-e2e-look-alike-approver"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "jitaccess-dev-approver"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    system.apply(binding)
    try:
        yield system.cluster.mint_kubeconfig(user)
    finally:
        system.kubectl("delete", "clusterrolebinding", binding["metadata"]["name"], "--ignore-not-found")


def kubectl_as(system: Jit, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl as whoever `kubeconfig` authenticates (not one of the harness's test users)."""
    argv = [str(system.cluster.binary), "kubectl", "--kubeconfig", str(kubeconfig), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60, env=child_env())


@pytest.fixture
def look_alike(policy: Jit) -> Iterator[Path]:
    """The kubeconfig of whoever the authenticator reports as LOOK_ALIKE (`bound_as_approver`)."""
    with bound_as_approver(policy, LOOK_ALIKE) as kubeconfig:
        yield kubeconfig


def test_113_a_look_alike_stored_before_the_rule_approves_nothing(policy: Jit, look_alike: Path) -> None:
    """ledger stored, while the webhooks were gone, with `l\u0435na@example.com` (a Cyrillic e)
    beside lena among its approvers: the review read lena twice. Whoever the authenticator reports
    under that exact name approves mallory's request for prod-eng-ledger, and the webhook refuses
    it: the name confers nothing. The team is Ready=False PolicyRefused with admission's sentence,
    and lena still approves."""
    bad = example("01-teams.yaml", "ledger")
    bad["spec"]["approvers"] = [LENA, LOOK_ALIKE]
    stored_without_webhooks(policy, bad)
    ready = policy.wait_reason("teamownership", "ledger", "PolicyRefused")
    message = next(c["message"] for c in ready["status"]["conditions"] if c["type"] == "Ready")
    assert f"spec.approvers[1] {LOOK_ALIKE!r} mixes the scripts Cyrillic and Latin" in message
    assert "nor does a name that reads as another's" in message
    policy.request("mallory-look-alike", "prod-eng-ledger", user=MALLORY)
    policy.wait_reason("accessrequest", "mallory-look-alike", "Pending")
    whoami = kubectl_as(policy, look_alike, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert whoami.stdout == LOOK_ALIKE  # the authenticator reports the look-alike, not lena
    attempt = kubectl_as(
        policy, look_alike, "annotate", "accessrequest", "mallory-look-alike", "jitaccess.dev/approved=true"
    )
    refused(attempt, f"{LOOK_ALIKE} is not an approver of the owner team")
    assert (policy.condition("accessrequest", "mallory-look-alike", "Approved") or {}).get("status") != "True"
    assert policy.members("prod-eng-ledger") == set()
    # A real approver still decides.
    policy.kubectl("annotate", "accessrequest", "mallory-look-alike", "jitaccess.dev/approved=true", user=LENA)
    policy.wait_reason("accessrequest", "mallory-look-alike", "Granted")
    assert policy.members("prod-eng-ledger") == {MALLORY}

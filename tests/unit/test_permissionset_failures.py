"""A catalog's pass where Identity Center refuses part of the work (`handlers.permissionsets.sync`):
an account that cannot be assigned, a tier whose policy is refused, a creation whose answer was lost or whose name is taken.

One account refused (the operator's role scoped to other accounts, a suspended account, a customer
managed policy missing there) used to fail the whole pass before any provisioning: a revocation's
deny never reached the accounts that held the permission set, the other tier's included (attack
147). Identity Center is a small stand-in for sso-admin holding the few facts a pass reads; the
end-to-end tier runs the same against the strict emulator (tests/e2e/test_attacks_catalog.py)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any, cast

import pytest

from jitaccess import metrics
from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.adapters.ssoadmin import PermissionSetState, Request, SsoAdmin
from jitaccess.api import names
from jitaccess.domain import assignmentdrift as drift_rules
from jitaccess.domain import permissions as rules
from jitaccess.errors import NotFound, NotLeading, PermanentFailure, RetryLater
from jitaccess.handlers import permissionsets
from jitaccess.handlers.common import now, ts
from jitaccess.handlers.recording import DEFERRED, Deferred
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit import test_drift_settling as drift_settling
from tests.unit import test_permissions

BASE, PROD = "111122223333", "444455556666"
ALICE = "9067b4a2-f0a1-70e0-5c1c-1d2e3f4a5b6c"
GROUPS = {"eng-payments": "g-base", "prod-eng-payments": "g-prod"}


class Sso:
    """sso-admin as a pass sees it: permission sets, assignments, what each account got provisioned.
    `refused` accounts refuse an assignment at once; `failing` ones take it and end it FAILED;
    likewise a removal in `refused_removal` and `failing_removal` ones (an SCP denying the deletion);
    provisioning ends FAILED in `unprovisionable` ones, and a provisioning to all accounts that reaches
    one of them fails as a whole, applied nowhere."""

    def __init__(self) -> None:
        self.sets: dict[str, dict[str, Any]] = {}
        self.assigned: set[tuple[str, str, str, str]] = set()  # (arn, account, type, principal)
        self.provisioned: dict[tuple[str, str], str] = {}  # (arn, account) -> inline policy there
        self.refused: set[str] = set()
        self.failing: set[str] = set()
        self.refused_removal: set[str] = set()
        self.failing_removal: set[str] = set()
        self.unprovisionable: set[str] = set()
        #: Accounts where provisioning is refused at once (AccessDenied), to them or to all accounts.
        self.refused_provisioning: set[str] = set()
        self.asked: list[str] = []
        self.requests: dict[str, Request] = {}
        #: A creation applied whose answer is lost: the SDK's retry meets ConflictException.
        self.lose_creation_answer = False

    def calls_made(self) -> int:
        return len(self.asked)

    def _ps(self, arn: str) -> dict[str, Any]:
        if arn not in self.sets:
            raise NotFound(f"no permission set {arn}")
        return self.sets[arn]

    def permission_set_arns(self) -> list[str]:
        self.asked.append("ListPermissionSets")
        return sorted(self.sets)

    def tags(self, arn: str) -> dict[str, str]:
        self.asked.append("ListTagsForResource")
        return dict(self._ps(arn)["tags"])

    def read(self, arn: str) -> PermissionSetState:
        self.asked.append("DescribePermissionSet")
        ps = self._ps(arn)
        return PermissionSetState(
            arn, ps["name"], ps["description"], ps["duration"], ps["inline"], tuple(sorted(ps["managed"])), ps["tags"]
        )

    def create(self, name: str, description: str, session_duration: str, tags: dict[str, str]) -> str:
        self.asked.append("CreatePermissionSet")
        if any(ps["name"] == name for ps in self.sets.values()):
            raise PermanentFailure("CreatePermissionSet: ConflictException: taken", code="ConflictException")
        arn = f"arn:aws:sso:::permissionSet/ssoins-1/ps-{len(self.sets):016d}"
        self.sets[arn] = {"name": name, "description": description, "duration": session_duration, "inline": "",
                          "managed": set(), "tags": dict(tags)}  # fmt: skip
        if self.lose_creation_answer:
            self.lose_creation_answer = False
            return self.create(name, description, session_duration, tags)
        return arn

    def update(self, arn: str, description: str, session_duration: str) -> None:
        self._ps(arn).update(description=description, duration=session_duration)

    def put_inline_policy(self, arn: str, policy: str) -> None:
        self.asked.append("PutInlinePolicyToPermissionSet")
        self._ps(arn)["inline"] = policy

    def attach(self, arn: str, key: str) -> None:
        self._ps(arn)["managed"].add(key)

    def detach(self, arn: str, key: str) -> None:
        self._ps(arn)["managed"].discard(key)

    def tag(self, arn: str, tags: dict[str, str]) -> None:
        self._ps(arn)["tags"].update(tags)

    def delete(self, arn: str) -> None:
        self.sets.pop(arn, None)

    def assigned_accounts(self, arn: str) -> list[str]:
        self.asked.append("ListAccountsForProvisionedPermissionSet")
        return sorted({account for a, account in self.provisioned if a == arn})

    def assignments(self, arn: str, account: str) -> list[tuple[str, str]]:
        self.asked.append("ListAccountAssignments")
        return sorted((t, p) for a, acc, t, p in self.assigned if (a, acc) == (arn, account))

    def _request(self, kind: str, failure: str = "") -> Request:
        request = Request(kind, f"r-{len(self.requests)}", "FAILED" if failure else "SUCCEEDED", failure)
        self.requests[request.request_id] = request
        return Request(kind, request.request_id, "IN_PROGRESS")

    def assign(self, arn: str, account: str, principal: str, principal_type: str = "GROUP") -> Request:
        self.asked.append(f"CreateAccountAssignment {account}")
        if account in self.refused:
            raise PermanentFailure(
                f"CreateAccountAssignment: AccessDeniedException: not authorized on account/{account}",
                operation="CreateAccountAssignment",
                code="AccessDeniedException",
            )
        if account in self.failing:
            return self._request("create", f"the account {account} cannot be assigned to")
        self.assigned.add((arn, account, principal_type, principal))
        self.provisioned[(arn, account)] = self._ps(arn)["inline"]
        return self._request("create")

    def unassign(self, arn: str, account: str, principal: str, principal_type: str = "GROUP") -> Request:
        if account in self.refused_removal:
            raise PermanentFailure(
                "DeleteAccountAssignment: AccessDeniedException: explicit deny in a service control policy",
                operation="DeleteAccountAssignment",
                code="AccessDeniedException",
            )
        if account in self.failing_removal:
            return self._request("delete", "the assignment could not be deleted")
        self.assigned.discard((arn, account, principal_type, principal))
        return self._request("delete")

    def provision(self, arn: str, account: str | None = None) -> Request:
        self.asked.append(f"ProvisionPermissionSet {account or 'ALL_PROVISIONED_ACCOUNTS'}")
        keys = [k for k in self.provisioned if k[0] == arn and account in (None, k[1])]
        if refused := sorted({k[1] for k in keys} & self.refused_provisioning):
            raise PermanentFailure(
                f"ProvisionPermissionSet: AccessDeniedException: not authorized on account/{refused[0]}",
                operation="ProvisionPermissionSet",
                code="AccessDeniedException",
            )
        if bad := sorted({k[1] for k in keys} & self.unprovisionable):
            return self._request("provision", f"the account {bad[0]} cannot be provisioned")
        for key in keys:
            self.provisioned[key] = self._ps(arn)["inline"]
        return self._request("provision")

    def finished(self, requests: list[Request]) -> list[Request]:
        return [self.requests[r.request_id] for r in requests]

    def wait(self, requests: list[Request]) -> list[Request]:
        done = self.finished(requests)
        if any(r.status == "FAILED" for r in done):
            raise PermanentFailure("Identity Center request(s) failed", operation="wait", code="FAILED")
        return done

    def policy_in(self, tier_name: str, account: str) -> dict[str, Any]:
        arn = next(a for a, ps in self.sets.items() if ps["name"] == tier_name)
        return dict(json.loads(self.provisioned[(arn, account)] or "{}"))


class Store:
    def resolve_group(self, name: str) -> str:
        if name not in GROUPS:
            raise NotFound(f"no group {name}")
        return GROUPS[name]

    def user_name(self, user_id: str) -> str:
        return "alice@example.com"


@pytest.fixture(autouse=True)
def events() -> Iterator[Deferred]:
    permissionsets._identity.clear()  # ARNs are made again by each test's stand-in
    deferred = Deferred()
    token = DEFERRED.set(deferred)
    yield deferred
    DEFERRED.reset(token)


def setup(sso: Sso) -> tuple[drift_settling.Cluster, Runtime]:
    cluster = drift_settling.Cluster()
    doc = test_permissions.example("payments")
    doc["metadata"].update(uid="c-1", generation=1)
    cluster.add(names.CATALOGS, doc)
    rt = Runtime(Settings(), cast(IdentityCenter, Store()), cast(Kube, cluster))
    rt.sso_admin = cast(SsoAdmin, sso)
    return cluster, rt


def status(cluster: drift_settling.Cluster) -> dict[str, Any]:
    return dict(cluster.objects[(names.CATALOGS, "payments")].get("status") or {})


def ready(cluster: drift_settling.Cluster) -> tuple[str, str, str]:
    (condition,) = [c for c in status(cluster)["conditions"] if c["type"] == "Ready"]
    return condition["status"], condition["reason"], condition["message"]


def revoke(cluster: drift_settling.Cluster, tier: str = "production") -> dict[str, Any]:
    """paula revokes alice's grant: her entry in the tier's deniedUsers (`handlers.sessions`)."""
    since = now()
    entry = {"userId": ALICE, "user": "alice@example.com", "grant": "alice-1", "since": ts(since),
             "until": "2099-01-01T00:00:00Z"}  # fmt: skip
    stored = cluster.objects[(names.CATALOGS, "payments")]
    stored["status"].setdefault(tier, {})["deniedUsers"] = [entry]
    return copy.deepcopy(stored)


def denied(policy: dict[str, Any]) -> list[str]:
    for statement in policy.get("Statement", []):
        if statement.get("Sid") == rules.DENY_SID:
            return list(statement["Condition"]["StringEquals"][rules.USER_ID_CONDITION_KEY])
    return []


def provisioned_catalog() -> tuple[Sso, drift_settling.Cluster, Runtime]:
    sso = Sso()
    cluster, rt = setup(sso)
    permissionsets.sync(rt, "payments", verify=True)
    assert ready(cluster)[:2] == ("True", "Provisioned")
    return sso, cluster, rt


# --- attack 147: one account that cannot be assigned ------------------------------------------------


@pytest.mark.parametrize("how", ["refused", "failing"])
def test_a_revocation_is_provisioned_though_an_account_of_the_baseline_cannot_be_assigned(
    how: str, events: Deferred
) -> None:
    sso, cluster, rt = provisioned_catalog()
    # A GitOps change adds an account to the baseline that Identity Center will not assign in.
    bad = "999988887777"
    getattr(sso, how).add(bad)
    cluster.objects[(names.CATALOGS, "payments")]["spec"]["baseline"]["accounts"].append(bad)
    permissionsets.sync(rt, "payments", verify=False)
    state, reason, message = ready(cluster)
    assert (state, reason) == ("False", "ProvisioningFailed")
    assert f"jit-payments-base for group eng-payments failed in {bad}: " in message, message
    assert "docs/aws-iam.md" in message and "customer managed policy" in message
    base = status(cluster)["baseline"]
    assert [(a["account"], a["state"]) for a in base["accounts"]] == [(BASE, "Provisioned"), (bad, "Failed")]
    assert base["accounts"][1]["message"] in message

    revoke(cluster)
    permissionsets.sync(rt, "payments", verify=False)
    assert denied(sso.policy_in("jit-payments-prod", PROD)) == [ALICE], "the revocation is provisioned"
    assert ready(cluster)[1] == "ProvisioningFailed", "the account is still reported"
    assert "not provisioned" not in ready(cluster)[2]
    assert not [e for e in events._pending if "removed outside jitaccess" in e[3]], (
        "an account never assigned is no drift"
    )


def test_a_revocation_in_the_tier_of_the_failing_account_reaches_its_other_accounts() -> None:
    sso, cluster, rt = provisioned_catalog()
    bad = "999988887777"
    sso.refused.add(bad)
    cluster.objects[(names.CATALOGS, "payments")]["spec"]["production"]["accounts"].append(bad)
    revoke(cluster)
    permissionsets.sync(rt, "payments", verify=False)
    assert denied(sso.policy_in("jit-payments-prod", PROD)) == [ALICE]
    assert f"in {bad}: CreateAccountAssignment: AccessDeniedException" in ready(cluster)[2]
    # Left to a later pass: the refused account is asked again, the others not.
    sso.asked.clear()
    permissionsets.sync(rt, "payments", verify=False)
    assert [a for a in sso.asked if a.startswith("CreateAccountAssignment")] == [f"CreateAccountAssignment {bad}"]
    sso.refused.clear()
    permissionsets.sync(rt, "payments", verify=False)
    assert ready(cluster)[:2] == ("True", "Provisioned")
    assert [a["state"] for a in status(cluster)["production"]["accounts"]] == ["Provisioned", "Provisioned"]


def test_a_tier_that_fails_does_not_stop_the_other_and_says_what_it_left_unprovisioned() -> None:
    sso, cluster, rt = provisioned_catalog()
    revoke(cluster, "baseline")
    revoke(cluster, "production")
    put = sso.put_inline_policy

    def refuse_baseline(arn: str, policy: str) -> None:
        if sso.sets[arn]["name"] == "jit-payments-base":
            raise PermanentFailure("PutInlinePolicyToPermissionSet: ValidationException: refused", code="x")
        put(arn, policy)

    sso.put_inline_policy = refuse_baseline  # type: ignore[method-assign]
    permissionsets.sync(rt, "payments", verify=False)
    assert denied(sso.policy_in("jit-payments-prod", PROD)) == [ALICE], "production, after the baseline, provisioned"
    assert denied(sso.policy_in("jit-payments-base", BASE)) == []
    message = ready(cluster)[2]
    assert "jit-payments-base: PutInlinePolicyToPermissionSet: ValidationException: refused" in message
    assert "1 session revocation(s) of jit-payments-base not provisioned" in message, message
    assert "of jit-payments-prod not provisioned" not in message
    assert status(cluster)["lastResult"]["outcome"] == "Failed"


def test_a_failed_pass_is_not_started_again_by_its_own_status_write() -> None:
    sso, cluster, rt = provisioned_catalog()
    memo = {"runtime": rt}
    sso.provision = lambda arn, account=None: sso._request("provision", "the provisioning failed")  # type: ignore[method-assign]
    body = revoke(cluster)
    assert permissionsets._revocation_pending(body=cast(Any, body), memo=memo)
    permissionsets.sync(rt, "payments", verify=False)
    assert "1 session revocation(s) of jit-payments-prod not provisioned" in ready(cluster)[2]
    # The failing pass wrote lastResult: that event finds the same denials pending, taken up already.
    after = copy.deepcopy(cluster.objects[(names.CATALOGS, "payments")])
    assert permissionsets.unprovisioned(after)
    assert not permissionsets._revocation_pending(body=cast(Any, after), memo=memo)
    # Another revocation is new work.
    after["status"]["production"]["deniedUsers"].append({**after["status"]["production"]["deniedUsers"][0],
                                                         "userId": "bob-id"})  # fmt: skip
    assert permissionsets._revocation_pending(body=cast(Any, after), memo=memo)


def test_a_pass_asked_to_retry_does_not_keep_its_revocations_from_the_next_event() -> None:
    """Identity Center throttles the pass that takes up a revocation: it writes nothing and is
    tried again. Before, the revocation was marked taken up before any call, so every later event
    of the catalog was filtered out until the periodic pass."""
    sso, cluster, rt = provisioned_catalog()
    memo = {"runtime": rt}
    body = revoke(cluster)
    read = sso.read

    def throttled(arn: str) -> PermissionSetState:
        raise RetryLater("DescribePermissionSet: ThrottlingException")

    sso.read = throttled  # type: ignore[method-assign]
    with pytest.raises(RetryLater):
        permissionsets.sync(rt, "payments", verify=False)
    assert permissionsets._revocation_pending(body=cast(Any, body), memo=memo), "still to take up"
    sso.read = read  # type: ignore[method-assign]
    permissionsets.sync(rt, "payments", verify=False)
    assert denied(sso.policy_in("jit-payments-prod", PROD)) == [ALICE]


# --- a creation whose answer was lost ---------------------------------------------------------------


def test_a_creation_applied_whose_retry_meets_the_name_taken_uses_its_own_permission_set() -> None:
    sso = Sso()
    sso.lose_creation_answer = True
    cluster, rt = setup(sso)
    permissionsets.sync(rt, "payments", verify=True)
    assert ready(cluster)[:2] == ("True", "Provisioned"), ready(cluster)
    assert sorted(ps["name"] for ps in sso.sets.values()) == ["jit-payments-base", "jit-payments-prod"]


def test_a_permission_set_found_made_already_is_provisioned_before_its_digest_tag(events: Deferred) -> None:
    """The pass's listing misses production's permission set (Identity Center's listing lagging),
    so it is created, ConflictException, and found by the second listing: adopted, as it is, held
    in PROD. Before, it was taken for one just created: the revocation's deny was written to its
    inline policy but never provisioned, and the digest tag said it was, so no later pass did."""
    sso, cluster, rt = provisioned_catalog()
    arn = next(a for a, ps in sso.sets.items() if ps["name"] == "jit-payments-prod")
    listing = sso.permission_set_arns
    missed = [True]

    def lagging() -> list[str]:
        found = listing()
        if missed.pop() if missed else False:
            return [a for a in found if a != arn]
        return found

    sso.permission_set_arns = lagging  # type: ignore[method-assign]
    revoke(cluster)
    permissionsets.sync(rt, "payments", verify=False)
    assert "CreatePermissionSet" in sso.asked, "the listing missed it"
    assert denied(sso.policy_in("jit-payments-prod", PROD)) == [ALICE], "provisioned where it is held"
    assert sso.sets[arn]["tags"][permissionsets.DIGEST_TAG] == status(cluster)["production"]["digest"]
    assert ready(cluster)[:2] == ("True", "Provisioned")
    assert not [e for e in events._pending if "deleted outside jitaccess" in e[3]], "the same permission set"


def test_a_name_taken_by_a_permission_set_jitaccess_did_not_create_is_refused() -> None:
    sso = Sso()
    sso.sets["arn:aws:sso:::permissionSet/ssoins-1/ps-admins000000000"] = {
        "name": "jit-payments-base", "description": "", "duration": "PT1H", "inline": "", "managed": set(),
        "tags": {"owner": "platform"},
    }  # fmt: skip
    cluster, rt = setup(sso)
    permissionsets.sync(rt, "payments", verify=True)
    state, reason, message = ready(cluster)
    assert (state, reason) == ("False", "ProvisioningFailed")
    assert "a permission set named jit-payments-base exists that jitaccess did not create" in message
    assert sso.sets["arn:aws:sso:::permissionSet/ssoins-1/ps-admins000000000"]["inline"] == ""
    assert "jit-payments-prod" in {ps["name"] for ps in sso.sets.values()}, "the other tier is made all the same"


def test_a_drift_removal_under_way_in_an_account_that_cannot_be_read_is_left_as_it_is() -> None:
    sso, cluster, rt = provisioned_catalog()
    arn = next(a for a, ps in sso.sets.items() if ps["name"] == "jit-payments-prod")
    cluster.objects[(names.CATALOGS, "payments")]["status"]["driftRemovals"] = [
        drift_rules.intent((arn, PROD, "GROUP", "g-hand"), "jit-payments-prod", None, "2026-12-01T10:00:00Z")
    ]
    sso.assigned.add((arn, PROD, "GROUP", "g-hand"))
    listing = sso.assignments

    def unreadable(ps: str, account: str) -> list[tuple[str, str]]:
        if account == PROD:
            raise PermanentFailure("ListAccountAssignments: AccessDeniedException: no", code="AccessDeniedException")
        return listing(ps, account)

    sso.assignments = unreadable  # type: ignore[method-assign]
    permissionsets.sync(rt, "payments", verify=True)
    assert f"in {PROD}: ListAccountAssignments: AccessDeniedException" in ready(cluster)[2]
    (entry,) = status(cluster)["driftRemovals"]
    assert not entry.get("time"), "not confirmed as made: nobody could read the account"


# --- provisioning that fails in one account holding the permission set ------------------------------

OTHER = "999988887777"


def test_a_revocation_is_provisioned_in_the_accounts_that_can_be_though_one_holding_it_fails() -> None:
    """production is held in two accounts; provisioning fails in one (suspended, a customer managed
    policy deleted there), and the request for all accounts with it. Before, that failed the whole
    tier: the deny reached neither account, the failing one went unnamed."""
    sso, cluster, rt = provisioned_catalog()
    cluster.objects[(names.CATALOGS, "payments")]["spec"]["production"]["accounts"].append(OTHER)
    permissionsets.sync(rt, "payments", verify=False)
    assert ready(cluster)[:2] == ("True", "Provisioned")
    arn = next(a for a, ps in sso.sets.items() if ps["name"] == "jit-payments-prod")
    tag = sso.sets[arn]["tags"][permissionsets.DIGEST_TAG]
    sso.unprovisionable.add(OTHER)
    revoke(cluster)
    permissionsets.sync(rt, "payments", verify=False)
    assert denied(sso.policy_in("jit-payments-prod", PROD)) == [ALICE], "provisioned account by account"
    assert denied(sso.policy_in("jit-payments-prod", OTHER)) == []
    state, reason, message = ready(cluster)
    assert (state, reason) == ("False", "ProvisioningFailed")
    assert f"in {OTHER}: provisioning failed (the account {OTHER} cannot be provisioned)" in message, message
    assert "not provisioned:" not in message, "the revocation is in effect where it could be provisioned"
    accounts = status(cluster)["production"]["accounts"]
    assert [(a["account"], a["state"]) for a in accounts] == [(PROD, "Provisioned"), (OTHER, "Failed")]
    assert sso.sets[arn]["tags"][permissionsets.DIGEST_TAG] == tag, "the digest tag waits for every account"

    # Tried again (the account Failed in the status), and done once the account can be provisioned.
    sso.unprovisionable.clear()
    permissionsets.sync(rt, "payments", verify=False)
    assert ready(cluster)[:2] == ("True", "Provisioned")
    assert denied(sso.policy_in("jit-payments-prod", OTHER)) == [ALICE]
    assert sso.sets[arn]["tags"][permissionsets.DIGEST_TAG] == status(cluster)["production"]["digest"]


def test_a_revocation_is_provisioned_account_by_account_when_one_holding_it_refuses_provisioning() -> None:
    """The operator's role is denied in OTHER, which holds production's permission set: the request
    for all accounts is refused at once (AccessDenied), not ended FAILED. Before, the tier failed
    there: the deny reached no account."""
    sso, cluster, rt = provisioned_catalog()
    cluster.objects[(names.CATALOGS, "payments")]["spec"]["production"]["accounts"].append(OTHER)
    permissionsets.sync(rt, "payments", verify=False)
    assert ready(cluster)[:2] == ("True", "Provisioned")
    sso.refused_provisioning.add(OTHER)
    revoke(cluster)
    permissionsets.sync(rt, "payments", verify=False)
    assert denied(sso.policy_in("jit-payments-prod", PROD)) == [ALICE], "provisioned account by account"
    assert denied(sso.policy_in("jit-payments-prod", OTHER)) == []
    message = ready(cluster)[2]
    assert f"in {OTHER}: provisioning failed (ProvisionPermissionSet: AccessDeniedException" in message, message
    assert "not provisioned:" not in message
    accounts = status(cluster)["production"]["accounts"]
    assert [(a["account"], a["state"]) for a in accounts] == [(PROD, "Provisioned"), (OTHER, "Failed")]


def test_provisioning_account_by_account_goes_on_past_one_throttled_and_asks_failed_accounts_first() -> None:
    """production is held in PROD, THIRD and OTHER; OTHER cannot be provisioned, so each account is
    asked on its own, and Identity Center throttles PROD's request. Before, the throttled request
    ended the pass: THIRD, after it, never got the deny, and each retry started at PROD again."""
    third = "777788889999"
    sso, cluster, rt = provisioned_catalog()
    cluster.objects[(names.CATALOGS, "payments")]["spec"]["production"]["accounts"] += [third, OTHER]
    permissionsets.sync(rt, "payments", verify=False)
    assert ready(cluster)[:2] == ("True", "Provisioned")
    sso.unprovisionable.add(OTHER)
    provision = sso.provision

    def throttled(arn: str, account: str | None = None) -> Request:
        if account == PROD:
            sso.asked.append(f"ProvisionPermissionSet {account}")
            raise RetryLater("ProvisionPermissionSet: ThrottlingException: Rate exceeded")
        return provision(arn, account)

    sso.provision = throttled  # type: ignore[method-assign]
    revoke(cluster)
    permissionsets.sync(rt, "payments", verify=False)
    assert denied(sso.policy_in("jit-payments-prod", third)) == [ALICE], "asked past the throttled account"
    accounts = {a["account"]: a for a in status(cluster)["production"]["accounts"]}
    assert accounts[PROD]["state"] == "Failed" and "did not answer" in accounts[PROD]["message"]
    assert accounts[third]["state"] == "Provisioned"

    # The next pass asks the accounts that failed first.
    sso.asked.clear()
    permissionsets.sync(rt, "payments", verify=False)
    asked = [a.split()[1] for a in sso.asked if a.startswith("ProvisionPermissionSet")]
    assert asked == ["ALL_PROVISIONED_ACCOUNTS", PROD, OTHER, third], asked


def test_a_replica_no_longer_leading_writes_no_account_failed() -> None:
    """The lease lost during the account-by-account provisioning: no call is made for the accounts
    left, and the pass ends as it began (the new leader's pass provisions them), not with each
    account written Failed, "Identity Center did not answer", over the new leader's status."""
    sso, cluster, rt = provisioned_catalog()
    cluster.objects[(names.CATALOGS, "payments")]["spec"]["production"]["accounts"] += [OTHER]
    permissionsets.sync(rt, "payments", verify=False)
    assert ready(cluster)[:2] == ("True", "Provisioned")
    sso.unprovisionable.add(OTHER)
    before = status(cluster)
    provision = sso.provision

    def lost(arn: str, account: str | None = None) -> Request:
        if account is not None:
            raise NotLeading("this replica is not the leader")
        return provision(arn, account)

    sso.provision = lost  # type: ignore[method-assign]
    revoke(cluster)
    with pytest.raises(NotLeading):
        permissionsets.sync(rt, "payments", verify=False)
    assert status(cluster) == before


def test_a_revocation_provisioned_in_no_account_is_said_not_provisioned() -> None:
    sso, cluster, rt = provisioned_catalog()
    sso.unprovisionable.add(PROD)
    revoke(cluster)
    permissionsets.sync(rt, "payments", verify=False)
    message = ready(cluster)[2]
    assert f"in {PROD}: provisioning failed" in message, message
    assert "1 session revocation(s) of jit-payments-prod not provisioned" in message


# --- a drift removal Identity Center refuses or fails -----------------------------------------------


@pytest.mark.parametrize("listed", [True, False], ids=["account listed", "account no longer listed"])
@pytest.mark.parametrize("how", ["refused_removal", "failing_removal"])
def test_a_drift_removal_not_made_is_an_error_and_never_said_removed(how: str, listed: bool, events: Deferred) -> None:
    """mallory assigns group g-hand the production permission set by hand, and an SCP keeps
    jitaccess from deleting it (refused at once, or the deletion ends FAILED). Before, the pass said
    "...: removed" (a DriftFound Event) at every pass while the assignment stayed."""
    sso, cluster, rt = provisioned_catalog()
    arn = next(a for a, ps in sso.sets.items() if ps["name"] == "jit-payments-prod")
    account = PROD if listed else OTHER
    sso.provisioned[(arn, account)] = sso.sets[arn]["inline"]
    sso.assigned.add((arn, account, "GROUP", "g-hand"))
    getattr(sso, how).add(account)
    errors = metrics.ERRORS.labels("handler")._value.get()
    for _ in range(2):
        permissionsets.sync(rt, "payments", verify=True)
    assert (arn, account, "GROUP", "g-hand") in sso.assigned
    assert not [e for e in events._pending if "g-hand" in e[3] and e[3].endswith("removed")], events._pending
    state, reason, message = ready(cluster)
    assert (state, reason) == ("False", "ProvisioningFailed")
    assert f"in {account}: group g-hand, assigned jit-payments-prod outside jitaccess, is not removed (" in message
    assert metrics.ERRORS.labels("handler")._value.get() - errors == 2, "an error at each pass"
    (entry,) = status(cluster)["driftRemovals"]
    assert not entry.get("time"), "not confirmed"

    # Once Identity Center lets it go, it is removed and said so, once.
    getattr(sso, how).clear()
    permissionsets.sync(rt, "payments", verify=True)
    assert (arn, account, "GROUP", "g-hand") not in sso.assigned
    assert len([e for e in events._pending if "g-hand" in e[3] and e[3].endswith("removed")]) == 1
    assert ready(cluster)[:2] == ("True", "Provisioned")


@pytest.mark.parametrize("how", ["group assignment refused", "provisioning failed"])
def test_a_drift_removal_made_is_confirmed_though_something_else_failed_in_its_account(
    how: str, events: Deferred
) -> None:
    """mallory assigns group g-hand the production permission set by hand in OTHER, where something
    else fails in the same pass. Before, a refused group assignment left the account before its
    assignments were scanned (the drift stayed), and any failure there kept the removal made from
    being said and confirmed: no DriftFound, no record, until a later pass found it gone."""
    sso, cluster, rt = provisioned_catalog()
    cluster.objects[(names.CATALOGS, "payments")]["spec"]["production"]["accounts"].append(OTHER)
    permissionsets.sync(rt, "payments", verify=False)
    assert ready(cluster)[:2] == ("True", "Provisioned")
    arn = next(a for a, ps in sso.sets.items() if ps["name"] == "jit-payments-prod")
    sso.assigned.add((arn, OTHER, "GROUP", "g-hand"))
    if how == "group assignment refused":
        sso.assigned.discard((arn, OTHER, "GROUP", "g-prod"))
        sso.refused.add(OTHER)
    else:
        sso.unprovisionable.add(OTHER)
        revoke(cluster)
    permissionsets.sync(rt, "payments", verify=True)
    assert ready(cluster)[:2] == ("False", "ProvisioningFailed")
    assert f"in {OTHER}: " in ready(cluster)[2]
    assert (arn, OTHER, "GROUP", "g-hand") not in sso.assigned
    assert len([e for e in events._pending if "g-hand" in e[3] and e[3].endswith("removed")]) == 1, events._pending
    (entry,) = status(cluster)["driftRemovals"]
    assert entry.get("time"), "confirmed in the pass that made it"


def test_a_failure_in_an_account_no_longer_listed_keeps_ready_false_until_it_is_done() -> None:
    """production still holds OTHER, no longer listed, where a hand assignment cannot be removed
    (an SCP). Before, OTHER was in no status: the next event pass found nothing stale and said
    Provisioned, the periodic pass ProvisioningFailed again, and so on."""
    sso, cluster, rt = provisioned_catalog()
    arn = next(a for a, ps in sso.sets.items() if ps["name"] == "jit-payments-prod")
    sso.provisioned[(arn, OTHER)] = sso.sets[arn]["inline"]
    sso.assigned.add((arn, OTHER, "GROUP", "g-hand"))
    sso.refused_removal.add(OTHER)
    permissionsets.sync(rt, "payments", verify=True)
    assert ready(cluster)[:2] == ("False", "ProvisioningFailed")
    accounts = status(cluster)["production"]["accounts"]
    assert [(a["account"], a["state"]) for a in accounts] == [(PROD, "Provisioned"), (OTHER, "Failed")]
    assert accounts[1]["message"].startswith("no longer listed in the tier: group g-hand")
    permissionsets.sync(rt, "payments", verify=False)
    assert ready(cluster)[:2] == ("False", "ProvisioningFailed"), "no flapping"
    sso.refused_removal.clear()
    permissionsets.sync(rt, "payments", verify=False)
    assert ready(cluster)[:2] == ("True", "Provisioned")
    assert [a["account"] for a in status(cluster)["production"]["accounts"]] == [PROD]


# --- a tier removed in a pass that is tried again ---------------------------------------------------


def test_a_tier_removed_goes_with_its_status_though_the_other_tier_asks_for_a_retry() -> None:
    """production leaves the catalog while the baseline's permission set cannot be read (Identity
    Center not answering). Before, production's permission set was deleted in the pass that then
    asked to be retried, and its status stayed for ever: ARN, accounts Provisioned, denials."""
    sso, cluster, rt = provisioned_catalog()
    cluster.objects[(names.CATALOGS, "payments")]["spec"].pop("production")
    read = sso.read

    def not_answering(arn: str) -> PermissionSetState:
        if sso.sets[arn]["name"] == "jit-payments-base":
            raise RetryLater("DescribePermissionSet: ThrottlingException")
        return read(arn)

    sso.read = not_answering  # type: ignore[method-assign]
    with pytest.raises(RetryLater):
        permissionsets.sync(rt, "payments", verify=True)
    assert "jit-payments-prod" in {ps["name"] for ps in sso.sets.values()}, "removed with its status, not before"
    sso.read = read  # type: ignore[method-assign]
    permissionsets.sync(rt, "payments", verify=True)
    assert "jit-payments-prod" not in {ps["name"] for ps in sso.sets.values()}
    assert status(cluster).get("production") is None
    assert ready(cluster)[:2] == ("True", "Provisioned")


def test_the_status_of_a_tier_removed_whose_permission_set_is_gone_is_cleared() -> None:
    """A catalog left so by an earlier version: production removed from the spec and from Identity
    Center, its status still there."""
    sso, cluster, rt = provisioned_catalog()
    cluster.objects[(names.CATALOGS, "payments")]["spec"].pop("production")
    for arn in [a for a, ps in sso.sets.items() if ps["name"] == "jit-payments-prod"]:
        del sso.sets[arn]
    assert status(cluster).get("production")
    permissionsets.sync(rt, "payments", verify=False)
    assert status(cluster).get("production") is None
    assert ready(cluster)[:2] == ("True", "Provisioned")

"""The permission-set reconciler against the real API server and the strict emulator's sso-admin:
catalog -> permission sets, assignments and policies as rendered; provisioning on change only;
removal; drift repaired; assignments made by hand removed, each with an audit record that reaches the
archive even when the pass stopped between listing the removal and confirming it; session
revocation held for its time and surviving an interrupted pass."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devenv.controlplane import ControlPlane
from devenv.emulator import IdentityCenterEmulator
from jitaccess.adapters.archive import Archive
from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube, load_client_config
from jitaccess.api import names
from jitaccess.api.models import AccessGrant, PermissionCatalog
from jitaccess.domain import permissions as rules
from jitaccess.errors import RetryLater
from jitaccess.handlers import permissionsets, sessions
from jitaccess.handlers.archive import AuditTrail
from jitaccess.handlers.indexes import holdings
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.component.test_handlers import prepare
from tests.support.harness import assign_by_hand, eventually

BASE_ACCOUNT, PROD_ACCOUNTS = "111122223333", ("444455556666", "777788889999")
CATALOG = f"""
apiVersion: jitaccess.dev/v1alpha1
kind: PermissionCatalog
metadata: {{name: payments}}
spec:
  region: eu-west-1
  baseline:
    groupName: eng-payments
    accounts: ["{BASE_ACCOUNT}"]
    sessionDuration: 8h
    permissions:
      managedPolicies: [arn:aws:iam::aws:policy/ReadOnlyAccess]
      lambdaFunctions: [{{name: payments-replay-webhook}}]
  production:
    groupName: prod-eng-payments
    accounts: {json.dumps(list(PROD_ACCOUNTS))}
    sessionDuration: 1h
    adds:
      lambdaFunctions: [{{name: payments-issue-refund}}]
"""


EVENTS: list[tuple[str, str]] = []


@pytest.fixture
def system(
    control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Runtime, IdentityCenterEmulator]]:
    emulator = prepare(control_plane, monkeypatch, JITACCESS_REVOCATION_HOLD_SECONDS="3")
    emulator.sso.async_seconds = 0.05
    emulator.create_group("eng-payments")
    load_client_config()
    rt = Runtime(
        settings=Settings(),
        identity_center=IdentityCenter.connect(
            emulator.identity_store_id, endpoint_url=emulator.endpoint_url, rate_limit=0
        ),
        kube=Kube(),
    )
    # Events are kopf's to post, from inside a handler: here they are kept for the test to read.
    EVENTS.clear()
    monkeypatch.setattr(permissionsets, "record", lambda _obj, reason, message, **_: EVENTS.append((reason, message)))
    control_plane.kubectl("apply", "-f", "-", input=CATALOG)
    try:
        yield rt, emulator
    finally:
        control_plane.kubectl("delete", "permissioncatalogs", "--all", "--timeout=30s", check=False)
        emulator.stop()


def catalog(rt: Runtime) -> PermissionCatalog:
    obj = rt.kube.get(names.CATALOGS, "payments")
    assert obj is not None
    return PermissionCatalog.model_validate(obj)


def by_name(emulator: IdentityCenterEmulator) -> dict[str, Any]:
    return {ps.name: ps for ps in emulator.sso.permission_sets.values()}


def deny_statement(policy: str) -> list[str]:
    for statement in json.loads(policy or "{}").get("Statement", []):
        if statement.get("Sid") == rules.DENY_SID:
            return list(statement["Condition"]["StringEquals"][rules.USER_ID_CONDITION_KEY])
    return []


def test_catalog_becomes_permission_sets_exactly_as_rendered(system: tuple[Runtime, IdentityCenterEmulator]) -> None:
    rt, emulator = system
    permissionsets.sync(rt, "payments", verify=True)
    sets = by_name(emulator)
    assert set(sets) == {"jit-payments-base", "jit-payments-prod"}
    for tier in rules.TIERS:
        spec = rules.render(catalog(rt), tier)
        ps = sets[spec.name]
        assert json.loads(ps.inline_policy) == spec.inline_policy
        assert (ps.session_duration, ps.description, sorted(ps.managed)) == (
            spec.session_duration,
            spec.description,
            sorted(spec.managed_policy_arns),
        )
        assert ps.tags[rules.MANAGED_BY_TAG] == rules.MANAGED_BY
        group = emulator.group_id(spec.group_name)
        assert {a for a in emulator.sso.assignments if a[1] == ps.arn} == {
            (account, ps.arn, "GROUP", group) for account in spec.accounts
        }
        for account in spec.accounts:  # what each account got is the rendered policy
            assert json.loads(emulator.sso.provisioned[(ps.arn, account)]["InlinePolicy"]) == spec.inline_policy
    status = catalog(rt).status
    assert status.production is not None and status.production.permission_set_arn == sets["jit-payments-prod"].arn
    assert [a.account for a in status.production.accounts or []] == list(PROD_ACCOUNTS)
    # The group each tier's permission set is assigned to, by the name resolved and its id (admission
    # finds a tier's grants by it, however their Entitlement spells the group: domain.assignments).
    for tier in (status.baseline, status.production):
        assert tier is not None and tier.group_name is not None
        assert tier.group_id == emulator.group_id(tier.group_name)
    assert status.production.group_name == "prod-eng-payments"
    assert status.last_result is not None and status.last_result.outcome == "Succeeded"
    assert [(c.type, c.status, c.reason) for c in status.conditions] == [("Ready", "True", "Provisioned")]

    # Unchanged input: nothing is called at all, and a verifying pass writes and provisions nothing.
    calls = sum(emulator.faults.calls.values())
    permissionsets.sync(rt, "payments", verify=False)
    assert sum(emulator.faults.calls.values()) == calls
    emulator.faults.clear()
    permissionsets.sync(rt, "payments", verify=True)
    writes = {op for op in emulator.faults.calls if not op.startswith(("List", "Describe", "Get"))}
    assert writes == set(), emulator.faults.calls


def test_one_lambda_more_is_one_provisioning_and_removal_takes_only_ours(
    system: tuple[Runtime, IdentityCenterEmulator], control_plane: ControlPlane
) -> None:
    rt, emulator = system
    permissionsets.sync(rt, "payments", verify=True)
    emulator.faults.clear()
    patch = {"spec": {"production": {"adds": {"lambdaFunctions": [{"name": "payments-issue-refund"}, {"name": "x"}]}}}}
    control_plane.kubectl("patch", "permissioncatalog", "payments", "--type=merge", "-p", json.dumps(patch))
    permissionsets.sync(rt, "payments", verify=False)
    assert emulator.faults.calls["ProvisionPermissionSet"] == 1
    prod = by_name(emulator)["jit-payments-prod"]
    for account in PROD_ACCOUNTS:
        assert "function:x" in emulator.sso.provisioned[(prod.arn, account)]["InlinePolicy"]

    # A permission set someone else made is never touched; the production tier removed goes.
    sso = emulator.client("sso-admin")
    foreign = sso.create_permission_set(InstanceArn=emulator.sso.arn, Name="hand-made")["PermissionSet"]
    control_plane.kubectl(
        "patch", "permissioncatalog", "payments", "--type=json", "-p", '[{"op":"remove","path":"/spec/production"}]'
    )
    permissionsets.sync(rt, "payments", verify=False)
    assert set(by_name(emulator)) == {"jit-payments-base", "hand-made"}
    assert not [a for a in emulator.sso.assignments if a[1] == prod.arn]
    assert catalog(rt).status.production is None
    assert foreign["PermissionSetArn"] in emulator.sso.permission_sets


def test_drift_made_by_hand_is_repaired_on_the_next_pass(system: tuple[Runtime, IdentityCenterEmulator]) -> None:
    rt, emulator = system
    permissionsets.sync(rt, "payments", verify=True)
    sso, instance = emulator.client("sso-admin"), emulator.sso.arn
    prod = by_name(emulator)["jit-payments-prod"]
    rendered = prod.inline_policy
    sso.put_inline_policy_to_permission_set(
        InstanceArn=instance, PermissionSetArn=prod.arn, InlinePolicy='{"Statement":[]}'
    )
    group = emulator.group_id("prod-eng-payments")
    sso.delete_account_assignment(
        InstanceArn=instance,
        TargetId=PROD_ACCOUNTS[0],
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=prod.arn,
        PrincipalType="GROUP",
        PrincipalId=group,
    )
    # The deletion is asynchronous, as in AWS: the drift exists once it has taken effect.
    removed = (PROD_ACCOUNTS[0], prod.arn, "GROUP", group)
    deadline = time.monotonic() + 10
    while removed in emulator.sso.assignments and time.monotonic() < deadline:
        time.sleep(0.02)
        emulator.sso.settle()
    assert removed not in emulator.sso.assignments
    permissionsets.sync(rt, "payments", verify=True)
    assert prod.inline_policy == rendered
    assert (PROD_ACCOUNTS[0], prod.arn, "GROUP", group) in emulator.sso.assignments
    assert emulator.sso.provisioned[(prod.arn, PROD_ACCOUNTS[1])]["InlinePolicy"] == rendered
    drift = [message for reason, message in EVENTS if reason == "DriftFound"]
    assert any("inline policy changed outside jitaccess" in m for m in drift), EVENTS
    assert any(f"in {PROD_ACCOUNTS[0]} was removed outside jitaccess" in m for m in drift), EVENTS


def grant_of(rt: Runtime, user: str, name: str) -> tuple[AccessGrant, str]:
    user_id = rt.identity_center.resolve_user(user)
    grant = AccessGrant.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "user": user,
                "entitlement": "prod-eng-payments",
                "groupName": "prod-eng-payments",
                "request": name,
                "duration": "1h",
                "userId": user_id,
            },
        }
    )
    return grant, user_id


def provisioned_group_id(rt: Runtime) -> str:
    """Provision the catalog; the GroupId its status records for the production tier's group."""
    permissionsets.sync(rt, "payments", verify=True)
    group_id = catalog(rt).status.production.group_id  # type: ignore[union-attr]
    assert group_id
    return group_id


def test_revoked_sessions_are_denied_for_the_hold_then_released(system: tuple[Runtime, IdentityCenterEmulator]) -> None:
    rt, emulator = system
    permissionsets.sync(rt, "payments", verify=True)
    alice, alice_id = grant_of(rt, "alice@example.com", "g-alice")
    bob, bob_id = grant_of(rt, "bob@example.com", "g-bob")
    # Two revocations at once: one pass, one provisioning of each account.
    assert sessions.deny(rt, alice, alice_id) == 1
    assert sessions.deny(rt, bob, bob_id) == 1
    emulator.faults.clear()
    permissionsets.sync(rt, "payments", verify=False)
    assert emulator.faults.calls["ProvisionPermissionSet"] == 1
    prod = by_name(emulator)["jit-payments-prod"]
    for account in PROD_ACCOUNTS:
        assert deny_statement(emulator.sso.provisioned[(prod.arn, account)]["InlinePolicy"]) == sorted(
            [alice_id, bob_id]
        )
    assert deny_statement(by_name(emulator)["jit-payments-base"].inline_policy) == []
    denied = catalog(rt).status.production.denied_users  # type: ignore[union-attr]
    assert {d.grant for d in denied or []} == {"g-alice", "g-bob"}

    def released() -> bool:
        permissionsets.sync(rt, "payments", verify=False)
        return all(deny_statement(emulator.sso.provisioned[(prod.arn, a)]["InlinePolicy"]) == [] for a in PROD_ACCOUNTS)

    eventually(released, timeout=10)
    assert not catalog(rt).status.production.denied_users  # type: ignore[union-attr]


def test_a_user_ending_grant_after_grant_early_keeps_one_denial_entry(
    system: tuple[Runtime, IdentityCenterEmulator],
) -> None:
    """The deny statement names UserIds: a user's later early end replaces their entry (the latest
    grant, until the latest end), so that ending grant after grant cannot grow the catalog's status
    past what the API server stores, which would stop every revocation of the tier."""
    rt, emulator = system
    permissionsets.sync(rt, "payments", verify=True)
    bob, bob_id = grant_of(rt, "bob@example.com", "g-bob")
    assert sessions.deny(rt, bob, bob_id) == 1
    for n in range(3):
        alice, alice_id = grant_of(rt, "alice@example.com", f"g-alice-{n}")
        assert sessions.deny(rt, alice, alice_id) == 1
    denied = catalog(rt).status.production.denied_users or []  # type: ignore[union-attr]
    assert [(d.user, d.grant) for d in denied] == [("bob@example.com", "g-bob"), ("alice@example.com", "g-alice-2")]
    permissionsets.sync(rt, "payments", verify=False)
    prod = by_name(emulator)["jit-payments-prod"]
    for account in PROD_ACCOUNTS:
        assert deny_statement(emulator.sso.provisioned[(prod.arn, account)]["InlinePolicy"]) == sorted(
            [alice_id, bob_id]
        )


def test_a_user_holding_the_group_again_by_its_id_is_denied_only_the_sessions_from_before(
    system: tuple[Runtime, IdentityCenterEmulator],
) -> None:
    """A re-granted user's new sessions are theirs; one issued before the revocation never is (attack 122)."""
    rt, emulator = system
    group_id = provisioned_group_id(rt)
    alice, alice_id = grant_of(rt, "alice@example.com", "g-alice")
    assert sessions.deny(rt, alice, alice_id) == 1
    # Alice holds the group through another live grant, of an Entitlement that names it by its
    # GroupId (its spec.groupName is the id), filed as the grants' watch files it.
    other = {"spec": {"user": alice.spec.user, "userId": alice_id, "groupName": group_id}, "status": {}}
    rt.holders.file("g-alice-by-id", holdings(other), "g-alice-by-id")
    permissionsets.sync(rt, "payments", verify=False)
    prod = by_name(emulator)["jit-payments-prod"]
    [entry] = catalog(rt).status.production.denied_users or []  # type: ignore[union-attr]
    since = rules.revoked_before(entry.since)
    before = {
        "StringEquals": {rules.USER_ID_CONDITION_KEY: [alice_id]},
        "DateLessThan": {rules.ISSUE_TIME_CONDITION_KEY: since},
    }
    for account in PROD_ACCOUNTS:
        policy = json.loads(emulator.sso.provisioned[(prod.arn, account)]["InlinePolicy"])
        revocation = {s["Sid"]: s["Condition"] for s in policy["Statement"] if s["Sid"].startswith("JitaccessRevoked")}
        assert revocation == {rules.ISSUED_BEFORE_SID + since.replace("-", "").replace(":", ""): before}
    # Listed still: once that grant ends too, the deny of every session is in force again.
    assert entry.grant == "g-alice"
    rt.holders.file("g-alice-by-id", (), "g-alice-by-id")
    permissionsets.sync(rt, "payments", verify=False)
    for account in PROD_ACCOUNTS:
        assert deny_statement(emulator.sso.provisioned[(prod.arn, account)]["InlinePolicy"]) == [alice_id]


def test_a_grant_naming_the_group_by_its_id_has_its_sessions_denied(
    system: tuple[Runtime, IdentityCenterEmulator],
) -> None:
    rt, emulator = system
    group_id = provisioned_group_id(rt)
    # The pass's status write, filed as the catalogs' watch files it (`index_catalog`).
    permissionsets.observe(rt, rt.kube.get(names.CATALOGS, "payments"), "payments")
    # Its Entitlement names the production group by GroupId: the grant's spec.groupName is the id.
    alice, alice_id = grant_of(rt, "alice@example.com", "g-alice")
    alice.spec.group_name = group_id
    assert sessions.deny(rt, alice, alice_id) == 1
    assert [d.grant for d in catalog(rt).status.production.denied_users or []] == ["g-alice"]  # type: ignore[union-attr]
    permissionsets.sync(rt, "payments", verify=False)
    prod = by_name(emulator)["jit-payments-prod"]
    for account in PROD_ACCOUNTS:
        assert deny_statement(emulator.sso.provisioned[(prod.arn, account)]["InlinePolicy"]) == [alice_id]
    assert deny_statement(by_name(emulator)["jit-payments-base"].inline_policy) == []


def denied_grants(rt: Runtime) -> list[str]:
    tier = catalog(rt).status.production
    return [d.grant for d in (tier.denied_users if tier else None) or []]


def test_a_grant_by_id_of_a_tier_no_pass_has_resolved_yet_has_its_sessions_denied(
    system: tuple[Runtime, IdentityCenterEmulator],
) -> None:
    rt, emulator = system
    # The catalog as its watch files it before any pass: no GroupId recorded for its tiers yet.
    permissionsets.observe(rt, rt.kube.get(names.CATALOGS, "payments"), "payments")
    assert catalog(rt).status.production is None
    # Its Entitlement names the production group by GroupId: the grant's spec.groupName is the id.
    alice, alice_id = grant_of(rt, "alice@example.com", "g-alice")
    alice.spec.group_name = emulator.group_id("prod-eng-payments")
    # Identity Center not answering: nothing is recorded and the error reaches the caller, whose
    # end of the grant (denial first) is retried, never ended without it.
    emulator.faults.fail("GetGroupId", error="InternalServerException", times=3)
    with pytest.raises(RetryLater):
        sessions.deny(rt, alice, alice_id)
    assert denied_grants(rt) == []
    # Answering, it resolves the tier's groupName to the grant's group.
    assert sessions.deny(rt, alice, alice_id) == 1
    assert denied_grants(rt) == ["g-alice"]
    permissionsets.sync(rt, "payments", verify=False)
    prod = by_name(emulator)["jit-payments-prod"]
    for account in PROD_ACCOUNTS:
        assert deny_statement(emulator.sso.provisioned[(prod.arn, account)]["InlinePolicy"]) == [alice_id]
    assert deny_statement(by_name(emulator)["jit-payments-base"].inline_policy) == []


def test_a_grant_spelling_an_unresolved_tier_group_in_another_case_has_its_sessions_denied(
    system: tuple[Runtime, IdentityCenterEmulator],
) -> None:
    rt, emulator = system
    permissionsets.observe(rt, rt.kube.get(names.CATALOGS, "payments"), "payments")
    bob, bob_id = grant_of(rt, "bob@example.com", "g-bob")
    bob.spec.group_name = "Prod-Eng-Payments"
    bob.status.group_id = emulator.group_id("prod-eng-payments")
    assert sessions.deny(rt, bob, bob_id) == 1
    assert denied_grants(rt) == ["g-bob"]


def test_a_grant_of_no_tier_asks_identity_center_nothing_once_every_tier_is_resolved(
    system: tuple[Runtime, IdentityCenterEmulator],
) -> None:
    rt, emulator = system
    provisioned_group_id(rt)
    permissionsets.observe(rt, rt.kube.get(names.CATALOGS, "payments"), "payments")
    carol, carol_id = grant_of(rt, "carol@example.com", "g-carol")
    carol.spec.group_name = "prod-eng-ledger"
    emulator.faults.clear()
    assert sessions.deny(rt, carol, carol_id) == 0
    assert emulator.faults.calls["GetGroupId"] == 0
    assert denied_grants(rt) == []


def test_a_deny_written_but_not_provisioned_is_provisioned_on_the_next_pass(
    system: tuple[Runtime, IdentityCenterEmulator],
) -> None:
    rt, emulator = system
    permissionsets.sync(rt, "payments", verify=True)
    alice, alice_id = grant_of(rt, "alice@example.com", "g-alice")
    sessions.deny(rt, alice, alice_id)
    # The pass stops between writing the policy and provisioning it, as a killed operator would.
    emulator.faults.fail("ProvisionPermissionSet", error="InternalServerException", times=3)
    with pytest.raises(RetryLater):
        permissionsets.sync(rt, "payments", verify=False)
    prod = by_name(emulator)["jit-payments-prod"]
    assert deny_statement(prod.inline_policy) == [alice_id]
    assert deny_statement(emulator.sso.provisioned[(prod.arn, PROD_ACCOUNTS[0])]["InlinePolicy"]) == []
    # A fresh process: the resume pass verifies, finds the policy right but not provisioned.
    permissionsets.sync(rt, "payments", verify=True)
    for account in PROD_ACCOUNTS:
        assert deny_statement(emulator.sso.provisioned[(prod.arn, account)]["InlinePolicy"]) == [alice_id]


def test_a_revocation_reaches_the_accounts_that_can_be_provisioned_though_one_cannot(
    system: tuple[Runtime, IdentityCenterEmulator],
) -> None:
    """One of production's accounts cannot be provisioned (suspended, a customer managed policy
    deleted there): the provisioning to all accounts ends FAILED, and each account is provisioned on
    its own; the failing one is named until it can be provisioned."""
    rt, emulator = system
    permissionsets.sync(rt, "payments", verify=True)
    alice, alice_id = grant_of(rt, "alice@example.com", "g-alice")
    sessions.deny(rt, alice, alice_id)
    good, bad = PROD_ACCOUNTS
    emulator.sso.unprovisionable_accounts.add(bad)
    permissionsets.sync(rt, "payments", verify=False)
    prod = by_name(emulator)["jit-payments-prod"]
    assert deny_statement(emulator.sso.provisioned[(prod.arn, good)]["InlinePolicy"]) == [alice_id]
    assert deny_statement(emulator.sso.provisioned[(prod.arn, bad)]["InlinePolicy"]) == []
    status = catalog(rt).status
    assert [(a.account, a.state) for a in status.production.accounts or []] == [  # type: ignore[union-attr]
        (good, "Provisioned"),
        (bad, "Failed"),
    ]
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "ProvisioningFailed")
    assert f"in {bad}: provisioning failed" in ready.message and "not provisioned:" not in ready.message
    emulator.sso.unprovisionable_accounts.clear()
    permissionsets.sync(rt, "payments", verify=False)
    assert deny_statement(emulator.sso.provisioned[(prod.arn, bad)]["InlinePolicy"]) == [alice_id]
    ready = next(c for c in catalog(rt).status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("True", "Provisioned")


class Stopped(Exception):
    """Stands for the operator stopping at this point of a pass (killed, or its leadership lost)."""


def archive_catalog(rt: Runtime, emulator: IdentityCenterEmulator) -> list[dict[str, Any]]:
    """The catalog's records as the operator's archiver writes them to a bucket of the emulator's S3:
    offered from the catalog as stored, written, and marked (its archived drift removals leave its status)."""
    bucket = emulator.create_bucket(f"audit-{secrets.token_hex(4)}")
    store = Archive.connect(bucket, "jitaccess", region="us-east-1", endpoint_url=emulator.endpoint_url)
    trail = AuditTrail(rt.kube, store)
    obj = rt.kube.get(names.CATALOGS, "payments")
    assert obj is not None
    trail.offer(names.CATALOGS, obj)
    while trail.flush():
        pass
    trail.close()
    today = dt.datetime.now(dt.UTC)
    written = store.keys_written(today - dt.timedelta(days=1), today + dt.timedelta(days=1))
    return [json.loads(line) for key in written for line in store.get(key).splitlines()]


def removals(rt: Runtime) -> list[dict[str, Any]]:
    return [r.wire() for r in catalog(rt).status.drift_removals or []]


def test_an_assignment_made_by_hand_is_removed_and_its_record_archived(
    system: tuple[Runtime, IdentityCenterEmulator],
) -> None:
    rt, emulator = system
    permissionsets.sync(rt, "payments", verify=True)
    prod = by_name(emulator)["jit-payments-prod"]
    mallory = emulator.user_id("mallory@example.com")
    assign_by_hand(emulator, prod.arn, PROD_ACCOUNTS[0], mallory)
    permissionsets.sync(rt, "payments", verify=True)
    assert (PROD_ACCOUNTS[0], prod.arn, "USER", mallory) not in emulator.sso.assignments
    (entry,) = removals(rt)
    assert entry["time"] >= entry["firstSeen"]
    assert {k: v for k, v in entry.items() if k not in ("time", "firstSeen")} == {
        "permissionSetArn": prod.arn,
        "permissionSetName": "jit-payments-prod",
        "account": PROD_ACCOUNTS[0],
        "principalType": "USER",
        "principalId": mallory,
        "user": "mallory@example.com",
        "message": f"jit-payments-prod: user mallory@example.com was assigned in {PROD_ACCOUNTS[0]} outside "
        "jitaccess: removed",
    }
    assert ("DriftFound", entry["message"]) in EVENTS, "the Event is kept"
    (record,) = archive_catalog(rt, emulator)
    assert (record["action"], record["kind"], record["name"]) == (
        "assignment-drift-removed",
        "PermissionCatalog",
        "payments",
    )
    assert record["user"] == {"username": "mallory@example.com", "identityStoreUserId": mallory}
    assert (record["account"], record["permissionSet"]["arn"]) == (PROD_ACCOUNTS[0], prod.arn)
    assert removals(rt) == [], "archived: the entry leaves the status"
    # jitaccess's own assignments are no drift: a pass that finds nothing else records nothing.
    permissionsets.sync(rt, "payments", verify=True)
    assert removals(rt) == []


def test_a_removal_the_operator_stopped_before_making_is_made_and_recorded_by_the_next_pass(
    system: tuple[Runtime, IdentityCenterEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, emulator = system
    permissionsets.sync(rt, "payments", verify=True)
    prod = by_name(emulator)["jit-payments-prod"]
    mallory = emulator.user_id("mallory@example.com")
    assign_by_hand(emulator, prod.arn, PROD_ACCOUNTS[1], mallory)
    sso = permissionsets.sso_of(rt)

    def stop(*_: Any, **__: Any) -> Any:
        raise Stopped

    with monkeypatch.context() as patched, pytest.raises(Stopped):
        patched.setattr(sso, "unassign", stop)
        permissionsets.sync(rt, "payments", verify=True)
    (listed,) = removals(rt)
    assert "time" not in listed, "listed before the removal, which was never asked for"
    assert (PROD_ACCOUNTS[1], prod.arn, "USER", mallory) in emulator.sso.assignments
    permissionsets.sync(rt, "payments", verify=True)
    assert (PROD_ACCOUNTS[1], prod.arn, "USER", mallory) not in emulator.sso.assignments
    (entry,) = removals(rt)
    assert entry["firstSeen"] == listed["firstSeen"] and entry["message"].endswith("outside jitaccess: removed")
    (record,) = archive_catalog(rt, emulator)
    assert record["startTime"] == listed["firstSeen"] and record["endTime"] == entry["time"]
    assert removals(rt) == []


def test_a_removal_made_and_never_confirmed_is_confirmed_as_gone_by_the_next_pass(
    system: tuple[Runtime, IdentityCenterEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, emulator = system
    permissionsets.sync(rt, "payments", verify=True)
    base = by_name(emulator)["jit-payments-base"]
    bob = emulator.user_id("bob@example.com")
    assign_by_hand(emulator, base.arn, BASE_ACCOUNT, bob)
    sso = permissionsets.sso_of(rt)
    unassign = sso.unassign

    def sent_then_stopped(*args: Any, **kwargs: Any) -> Any:
        unassign(*args, **kwargs)
        raise Stopped

    with monkeypatch.context() as patched, pytest.raises(Stopped):
        patched.setattr(sso, "unassign", sent_then_stopped)
        permissionsets.sync(rt, "payments", verify=True)
    deadline = time.monotonic() + 10
    while (BASE_ACCOUNT, base.arn, "USER", bob) in emulator.sso.assignments and time.monotonic() < deadline:
        time.sleep(0.02)
        emulator.sso.settle()
    assert [r.get("time") for r in removals(rt)] == [None], "made, and nobody confirmed it"
    EVENTS.clear()
    permissionsets.sync(rt, "payments", verify=True)
    (entry,) = removals(rt)
    assert "not confirmed" in entry["message"] and "gone when it was looked at again" in entry["message"]
    assert [m for reason, m in EVENTS if reason == "DriftFound"] == [entry["message"]]
    (record,) = archive_catalog(rt, emulator)
    assert record["user"]["username"] == "bob@example.com" and record["message"] == entry["message"]
    assert removals(rt) == []

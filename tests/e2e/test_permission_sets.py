"""PermissionCatalogs on the real control plane with the session operator and the strict emulator's
sso-admin (issue 14): the example catalogs become permission sets, assignments and provisioned
policies exactly as `domain.permissions.render` gives them; one Lambda changed costs one
provisioning; a tier removed takes its permission set and assignments along; a grant revoked early
puts its user in the production permission set's deny statement for the hold
(JITACCESS_REVOCATION_HOLD_SECONDS, tests/support/harness.py), even when the operator is killed
between writing the deny and provisioning it; an assignment made by hand is removed, and told to the
security channel and the CloudEvents sink once.

Catalogs are written as GitOps writes them (the deploy identity of `test_attacks_catalog`); each
test puts the examples back and waits until Identity Center holds them again, with no denial left.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from devenv.eventsink import EventSinkReceiver
from devenv.notifications import SECURITY_CHANNEL
from devenv.paths import EXAMPLES
from devenv.slack import SlackStandIn
from jitaccess.api.models import PermissionCatalog
from jitaccess.domain import permissions as rules
from tests.e2e.cli_run import Cli
from tests.e2e.test_attacks_catalog import GITOPS, example
from tests.support.harness import OPERATOR_ENV, Jit, assign_by_hand, eventually

pytestmark = pytest.mark.e2e

CATALOGS = EXAMPLES / "04-permissions.yaml"
TEAMS = ("payments", "ledger")
ALICE, PAULA = "alice@example.com", "paula@example.com"
PROD_ACCOUNT = "444455556666"  # payments-prod, the production tier's one account
HOLD = float(OPERATOR_ENV["JITACCESS_REVOCATION_HOLD_SECONDS"])
#: Long enough for denials other tests' revocations left behind to run out, and a pass or two.
SETTLE_SECONDS = HOLD + 30


def as_gitops(system: Jit, *args: str, input: str | None = None) -> None:
    system.kubectl("apply", *args, *GITOPS, input=input)


def catalog_of(system: Jit, name: str) -> PermissionCatalog:
    obj = system.get("permissioncatalog", name)
    assert obj is not None, f"permissioncatalog {name} is gone"
    return PermissionCatalog.model_validate(obj)


def permission_sets(system: Jit) -> dict[str, Any]:
    """The emulator's permission sets by name (a copy: the emulator's threads change the dict)."""
    return {ps.name: ps for ps in list(system.ic.sso.permission_sets.values())}


def deny_statement(policy: str) -> list[str]:
    for statement in json.loads(policy or "{}").get("Statement", []):
        if statement.get("Sid") == rules.DENY_SID:
            return list(statement["Condition"]["StringEquals"][rules.USER_ID_CONDITION_KEY])
    return []


def differences(system: Jit, name: str, denied: tuple[str, ...] = ()) -> list[str]:
    """How Identity Center and the catalog's status differ from the rendered catalog, whose
    production tier denies `denied` (UserIds); [] when they hold it exactly."""
    catalog = catalog_of(system, name)
    sso, found = system.ic.sso, []
    if catalog.metadata.generation != catalog.status.observed_generation:
        found.append(f"generation {catalog.metadata.generation} not yet observed")
    ready = next((c for c in catalog.status.conditions if c.type == "Ready"), None)
    if ready is None or (ready.status, ready.reason) != ("True", "Provisioned"):
        found.append(f"Ready: {ready}")
    sets = permission_sets(system)
    for tier in rules.tiers(catalog):
        spec = rules.render(catalog, tier)
        policy = rules.with_denied_users(spec.inline_policy, denied) if tier == "production" else spec.inline_policy
        ps = sets.get(spec.name)
        if ps is None:
            found.append(f"no permission set {spec.name}")
            continue
        if json.loads(ps.inline_policy or "{}") != policy:
            found.append(f"{spec.name}: inline policy {ps.inline_policy}")
        content = (ps.description, ps.session_duration, sorted(ps.managed), ps.customer_managed)
        if content != (spec.description, spec.session_duration, sorted(spec.managed_policy_arns), []):
            found.append(f"{spec.name}: {content}")
        if not dict(spec.tags).items() <= ps.tags.items():
            found.append(f"{spec.name}: tags {ps.tags}")
        group = system.ic.group_id(spec.group_name)
        assigned = {a for a in list(sso.assignments) if a[1] == ps.arn}
        if assigned != {(account, ps.arn, "GROUP", group) for account in spec.accounts}:
            found.append(f"{spec.name}: assignments {assigned}")
        for account in spec.accounts:
            provisioned = dict(sso.provisioned.get((ps.arn, account)) or {"InlinePolicy": "{}"})
            provisioned["InlinePolicy"] = json.loads(provisioned["InlinePolicy"] or "{}")
            wanted = {
                "InlinePolicy": policy,
                "ManagedPolicies": sorted(spec.managed_policy_arns),
                "CustomerManagedPolicies": [],
                "SessionDuration": spec.session_duration,
            }
            if provisioned != wanted:
                found.append(f"{spec.name} in {account}: provisioned {provisioned}")
        status = getattr(catalog.status, tier)
        if status is None or status.permission_set_arn != ps.arn:
            found.append(f"status.{tier}: {status}")
        elif [(a.account, a.state) for a in status.accounts or []] != [(a, "Provisioned") for a in spec.accounts]:
            found.append(f"status.{tier}.accounts: {status.accounts}")
        elif sorted(d.user_id for d in status.denied_users or []) != (sorted(denied) if tier == "production" else []):
            found.append(f"status.{tier}.deniedUsers: {status.denied_users}")
    return found


def wait_as_rendered(system: Jit, name: str, denied: tuple[str, ...] = (), timeout: float = SETTLE_SECONDS) -> None:
    eventually(
        lambda: not differences(system, name, denied),
        timeout=timeout,
        interval=0.3,
        what=f"Identity Center holds catalog {name} as rendered (denying {denied}): "
        f"{differences(system, name, denied)}; operator log:\n{system.operator.tail(20)}",
    )


def a_periodic_pass(system: Jit, when: str) -> None:
    """Wait for a pass over payments that begins more than one resync (5 s) from now."""
    passed = dt.datetime.now(dt.UTC)
    eventually(
        lambda: (
            (r := catalog_of(system, "payments").status.last_result) is not None
            and r.time > passed + dt.timedelta(seconds=6)
        ),
        timeout=30,
        what=f"a periodic pass {when}",
    )


@pytest.fixture
def catalogs(system: Jit) -> Iterator[Jit]:
    """The example catalogs applied and held by Identity Center; put back as they were afterwards."""
    as_gitops(system, "-f", str(CATALOGS))
    for team in TEAMS:
        wait_as_rendered(system, team)
    yield system
    system.ic.faults.clear()
    if not system.operator.running:
        system.operator.start()
    as_gitops(system, "-f", str(CATALOGS))
    for team in TEAMS:
        wait_as_rendered(system, team)


def test_example_catalogs_are_permission_sets_exactly_as_rendered(catalogs: Jit) -> None:
    jit_sets = {name for name in permission_sets(catalogs) if name.startswith(rules.NAME_PREFIX)}
    assert jit_sets == {"jit-payments-base", "jit-payments-prod", "jit-ledger-base", "jit-ledger-prod"}
    for team in TEAMS:
        assert differences(catalogs, team) == []
        catalog = catalog_of(catalogs, team)
        assert catalog.status.last_result is not None and catalog.status.last_result.outcome == "Succeeded"
        assert [(c.type, c.status, c.reason) for c in catalog.status.conditions] == [("Ready", "True", "Provisioned")]


def test_one_lambda_changed_is_one_provisioning(catalogs: Jit) -> None:
    ic = catalogs.ic
    sets = permission_sets(catalogs)
    prod, base = sets["jit-payments-prod"].arn, sets["jit-payments-base"].arn
    calls, provisions = ic.faults.calls["ProvisionPermissionSet"], dict(ic.sso.provisions)

    changed = example("payments")
    changed["spec"]["production"]["adds"]["lambdaFunctions"] = [{"name": "payments-issue-refund-v2"}]
    as_gitops(catalogs, "-f", "-", input=yaml.safe_dump(changed))
    wait_as_rendered(catalogs, "payments", timeout=20)
    provisioned = ic.sso.provisioned[(prod, PROD_ACCOUNT)]["InlinePolicy"]
    assert ":function:payments-issue-refund-v2" in provisioned
    assert ':function:payments-issue-refund"' not in provisioned

    # A verifying pass after the change (the periodic one) provisions nothing more.
    changed_at = dt.datetime.now(dt.UTC)

    def verified() -> bool:
        result = catalog_of(catalogs, "payments").status.last_result
        return result is not None and result.time > changed_at + dt.timedelta(seconds=1)

    eventually(verified, timeout=20, what="a periodic pass over payments after the change")
    assert ic.faults.calls["ProvisionPermissionSet"] - calls == 1
    # One call reaches every account the set is provisioned in: its catalog account, and any account
    # an account-assignment-mode grant used it in earlier in the session (tests/e2e/test_assignments.py).
    holding = {account for arn, account in ic.sso.provisioned if arn == prod}
    assert PROD_ACCOUNT in holding
    assert ic.sso.provisions[prod] - provisions.get(prod, 0) == len(holding), "each account holding it, once"
    assert ic.sso.provisions[base] == provisions.get(base, 0), "the baseline tier did not change"


def test_production_tier_removed_takes_its_permission_set_and_assignments(catalogs: Jit) -> None:
    prod = permission_sets(catalogs)["jit-payments-prod"].arn
    baseline_only = example("payments")
    del baseline_only["spec"]["production"]
    as_gitops(catalogs, "-f", "-", input=yaml.safe_dump(baseline_only))

    def gone() -> bool:
        status = catalog_of(catalogs, "payments").status
        return (
            "jit-payments-prod" not in permission_sets(catalogs)
            and not [a for a in list(catalogs.ic.sso.assignments) if a[1] == prod]
            and status.production is None
        )

    eventually(gone, timeout=20, what=f"jit-payments-prod gone; log:\n{catalogs.operator.tail(20)}")
    wait_as_rendered(catalogs, "payments", timeout=10)
    assert {"jit-payments-base", "jit-ledger-base", "jit-ledger-prod"} <= set(permission_sets(catalogs))
    assert differences(catalogs, "ledger") == []


def active_grant(system: Jit, name: str) -> str:
    """Alice's grant of her team's production role (approved at once); her Identity Store UserId."""
    system.request(name, "prod-eng-payments", duration="1h", user=ALICE)
    system.wait_reason("accessgrant", name, "Active")
    return system.ic.user_id(ALICE)


def test_grant_revoked_early_denies_the_users_sessions_for_the_hold(catalogs: Jit) -> None:
    alice = active_grant(catalogs, "ps-revoked")
    cli = Cli(catalogs)
    revoked = cli.run("revoke", "ps-revoked", "--reason", "INC-77 done early", user=PAULA)
    assert revoked.code == 0, revoked
    assert "are denied by the permission set until their session duration ends" in revoked.out
    assert catalogs.members("prod-eng-payments") == set()

    wait_as_rendered(catalogs, "payments", denied=(alice,), timeout=15)
    prod = permission_sets(catalogs)["jit-payments-prod"]
    assert deny_statement(catalogs.ic.sso.provisioned[(prod.arn, PROD_ACCOUNT)]["InlinePolicy"]) == [alice]
    base = permission_sets(catalogs)["jit-payments-base"]
    assert deny_statement(base.inline_policy) == [], "the baseline group's sessions are not the grant's"
    status = catalog_of(catalogs, "payments").status.production
    assert status is not None and status.denied_users is not None
    (entry,) = status.denied_users
    assert (entry.user, entry.grant) == (ALICE, "ps-revoked")
    # The hold counts from the end of `since`'s second (a session issued within it is covered for
    # its whole length): up to one second more than the session duration.
    assert dt.timedelta(seconds=HOLD) <= entry.until - entry.since <= dt.timedelta(seconds=HOLD + 1)

    # After the hold the entry goes, and the permission set is provisioned without it.
    wait_as_rendered(catalogs, "payments", timeout=HOLD + 20)
    assert dt.datetime.now(dt.UTC) >= entry.until
    assert deny_statement(catalogs.ic.sso.provisioned[(prod.arn, PROD_ACCOUNT)]["InlinePolicy"]) == []


def test_deny_written_but_not_provisioned_when_killed_is_provisioned_after_restart(catalogs: Jit) -> None:
    ic = catalogs.ic
    alice = active_grant(catalogs, "ps-killed")
    prod = permission_sets(catalogs)["jit-payments-prod"]
    # Identity Center fails every provisioning: the deny reaches the permission set, not the account.
    ic.faults.fail("ProvisionPermissionSet", times=10_000, error="InternalServerException")
    catalogs.kubectl("annotate", "accessgrant", "ps-killed", "jitaccess.dev/revoked=true", user=PAULA)
    catalogs.wait_reason("accessgrant", "ps-killed", "Revoked")
    eventually(
        lambda: deny_statement(prod.inline_policy) == [alice] and ic.faults.calls["ProvisionPermissionSet"] > 0,
        timeout=10,
        what=f"the deny written and its provisioning tried; log:\n{catalogs.operator.tail(20)}",
    )
    catalogs.operator.kill()
    assert deny_statement(ic.sso.provisioned[(prod.arn, PROD_ACCOUNT)]["InlinePolicy"]) == []
    ic.faults.clear()
    catalogs.operator.start()
    eventually(
        lambda: deny_statement(ic.sso.provisioned[(prod.arn, PROD_ACCOUNT)]["InlinePolicy"]) == [alice],
        timeout=HOLD,
        what=f"the deny provisioned after the restart; log:\n{catalogs.operator.tail(20)}",
    )


def test_assignments_made_by_hand_are_removed_and_told_to_security_once_each(
    catalogs: Jit, slack: SlackStandIn, events: EventSinkReceiver
) -> None:
    """Someone assigns the production permission set in the console, to a user and to a group: the
    next pass removes both, and the security channel and the CloudEvents sink hear of each removal
    once (who, which permission set, which account, when first seen and removed), however many
    passes and restarts follow."""
    ic, tag = catalogs.ic, secrets.token_hex(3)
    intruder = f"ps-drift-{tag}@example.com"
    user_id, group_id = ic.create_user(intruder), ic.create_group(f"ps-drift-{tag}")
    prod = permission_sets(catalogs)["jit-payments-prod"]
    made = dt.datetime.now(dt.UTC).replace(microsecond=0)
    for principal_type, principal in (("USER", user_id), ("GROUP", group_id)):
        assign_by_hand(ic, prod.arn, PROD_ACCOUNT, principal, principal_type)
    hand_made = {(PROD_ACCOUNT, prod.arn, "USER", user_id), (PROD_ACCOUNT, prod.arn, "GROUP", group_id)}
    eventually(
        lambda: not hand_made & set(ic.sso.assignments),
        timeout=30,
        what=f"both assignments removed; log:\n{catalogs.operator.tail(20)}",
    )

    def told() -> list[str]:
        return [
            m.text or ""
            for m in slack.messages(SECURITY_CHANNEL)
            if tag in (m.text or "") or group_id in (m.text or "")
        ]

    def sent() -> list[Any]:
        return [
            e
            for e in events.events()
            if e.get_type() == "dev.jitaccess.catalog.assignment-drift-removed"
            and e.get_data().get("account") == PROD_ACCOUNT
            and {
                (e.get_data().get("user") or {}).get("identityStoreUserId"),
                (e.get_data().get("group") or {}).get("id"),
            }
            & {user_id, group_id}
        ]

    eventually(lambda: len(told()) >= 2 and len(sent()) >= 2, timeout=30, what=f"security told: {told()}, {sent()}")

    def listed() -> list[str]:
        removals = (catalogs.get("permissioncatalog", "payments") or {}).get("status", {}).get("driftRemovals") or []
        return [r["principalId"] for r in removals if r.get("principalId") in (user_id, group_id)]

    # The entries leave once their deliveries are recorded (a kill between a delivery and its record
    # would send that notice again: at least once, docs/notifications.md).
    eventually(lambda: not listed(), timeout=30, what=f"the removals told and recorded: {listed()}")
    # A few more passes (RESYNC 5 s), and a fresh operator that lists every catalog again: nothing told twice.
    catalogs.operator.kill()
    catalogs.operator.start()
    a_periodic_pass(catalogs, "after the restart")
    messages, delivered = told(), sent()
    assert sorted(messages) == sorted(
        [
            f"Assignment removed: user {intruder} ({user_id}) from jit-payments-prod in {PROD_ACCOUNT}",
            f"Assignment removed: group {group_id} from jit-payments-prod in {PROD_ACCOUNT}",
        ]
    ), messages
    assert len(delivered) == 2, [e.get_id() for e in delivered]
    by_principal = {e.get_data()["principalType"]: e for e in delivered}
    uid = (catalogs.get("permissioncatalog", "payments") or {})["metadata"]["uid"]
    for principal_type, event in by_principal.items():
        data = event.get_data()
        assert event.get_id() == data["id"] and event.get_id().startswith(f"{uid}/assignment-drift-removed/ps-")
        assert event.get_source() == "/apis/jitaccess.dev/v1alpha1/permissioncatalogs/payments"
        assert (data["action"], data["kind"], data["ownerTeam"]) == (
            "assignment-drift-removed",
            "PermissionCatalog",
            "payments",
        )
        assert data["permissionSet"] == {"name": "jit-payments-prod", "arn": prod.arn}, principal_type
        first_seen, removed = (
            dt.datetime.fromisoformat(data[k].replace("Z", "+00:00")) for k in ("startTime", "endTime")
        )
        assert made <= first_seen <= removed <= dt.datetime.now(dt.UTC), data
    assert by_principal["USER"].get_data()["user"] == {"username": intruder, "identityStoreUserId": user_id}
    assert by_principal["GROUP"].get_data()["group"] == {"id": group_id}
    assert events.refusals() == []


def test_an_assignment_removal_waits_in_status_for_the_security_channel_across_a_restart(
    catalogs: Jit, slack: SlackStandIn, events: EventSinkReceiver
) -> None:
    """Slack is down when a hand-made assignment is removed: the removal stays in the catalog's
    status.driftRemovals (its record printed, the sink told) until the security channel is told, so
    that an operator killed meanwhile still tells it once Slack is back, exactly once; then it
    leaves, with its keys."""
    ic, tag = catalogs.ic, secrets.token_hex(3)
    intruder = f"ps-held-{tag}@example.com"
    user_id = ic.create_user(intruder)
    prod = permission_sets(catalogs)["jit-payments-prod"]

    def entry() -> tuple[dict[str, Any], list[str], list[str]] | None:
        status = (catalogs.get("permissioncatalog", "payments") or {}).get("status") or {}
        mine = [r for r in status.get("driftRemovals") or [] if r.get("principalId") == user_id]
        sent = [k for k in (status.get("notifications") or {}).get("sent", []) if user_id in k]
        archived = [k for k in status.get("archivedRecords") or [] if user_id in k]
        return (mine[0], archived, sent) if mine else None

    def told() -> list[str]:
        return [m.text or "" for m in slack.messages(SECURITY_CHANNEL) if tag in (m.text or "")]

    def sent() -> list[Any]:
        return [
            e
            for e in events.events()
            if e.get_type() == "dev.jitaccess.catalog.assignment-drift-removed"
            and (e.get_data().get("user") or {}).get("identityStoreUserId") == user_id
        ]

    def refused_since(count: int) -> bool:
        return any(c.status == 503 for c in slack.calls("chat.postMessage")[count:])

    slack.down(True)
    try:
        assign_by_hand(ic, prod.arn, PROD_ACCOUNT, user_id, "USER")
        eventually(
            lambda: (PROD_ACCOUNT, prod.arn, "USER", user_id) not in set(ic.sso.assignments),
            timeout=30,
            what=f"the assignment removed; log:\n{catalogs.operator.tail(20)}",
        )
        # Printed (the session has no archive: printing stands for archiving) and told to the sink:
        # only the security channel's notice holds the entry.
        removal, archived, keys = eventually(
            lambda: (found := entry()) and found[0].get("time") and found[1] and len(sent()) == 1 and found,
            timeout=30,
            what=f"the removal confirmed, printed and sent to the sink: {entry()}",
        )
        assert [k.split(":")[0] for k in keys] == ["webhook"], keys
        eventually(lambda: refused_since(0), what="the security channel tried while Slack is down")
        catalogs.operator.kill()
        catalogs.operator.start()
        tried = len(slack.calls("chat.postMessage"))
        eventually(lambda: refused_since(tried), timeout=30, what="the restarted operator tries Slack again")
        assert entry() == (removal, archived, keys), "still held, as it was"
    finally:
        slack.down(False)
    (message,) = eventually(told, timeout=90, what=f"the security channel told; log:\n{catalogs.operator.tail(20)}")
    assert message == f"Assignment removed: user {intruder} ({user_id}) from jit-payments-prod in {PROD_ACCOUNT}"
    eventually(lambda: entry() is None, timeout=30, what=f"the removal leaves once told: {entry()}")
    status = (catalogs.get("permissioncatalog", "payments") or {})["status"]
    assert not [k for k in (status.get("notifications") or {}).get("sent", []) if user_id in k]
    assert not [k for k in status.get("archivedRecords") or [] if user_id in k]
    # More passes (RESYNC 5 s): nothing is told again, nor sent again to the sink.
    a_periodic_pass(catalogs, "after it left")
    assert told() == [message] and len(sent()) == 1


def test_a_deleted_catalog_waits_for_its_removals_notice_across_a_restart(
    catalogs: Jit, slack: SlackStandIn, events: EventSinkReceiver
) -> None:
    """Slack is down when a hand-made assignment is removed, and the catalog is then deleted: it
    stays (its permission sets gone) until the security channel is told, so that an operator killed
    meanwhile still tells it once Slack is back; then it goes. Gone once the removal's record was
    printed, it took the untold entry with it, and only the killed process remembered it."""
    ic, tag = catalogs.ic, secrets.token_hex(3)
    intruder = f"ps-gone-{tag}@example.com"
    user_id = ic.create_user(intruder)
    prod = permission_sets(catalogs)["jit-payments-prod"]

    def waiting() -> bool:
        stored = catalogs.get("permissioncatalog", "payments") or {}
        removals = (stored.get("status") or {}).get("driftRemovals") or []
        return any(r.get("principalId") == user_id and r.get("time") for r in removals)

    def told() -> list[str]:
        return [m.text or "" for m in slack.messages(SECURITY_CHANNEL) if tag in (m.text or "")]

    slack.down(True)
    try:
        assign_by_hand(ic, prod.arn, PROD_ACCOUNT, user_id, "USER")
        eventually(waiting, timeout=30, what=f"the removal confirmed; log:\n{catalogs.operator.tail(20)}")
        eventually(
            lambda: [
                e
                for e in events.events()
                if e.get_type() == "dev.jitaccess.catalog.assignment-drift-removed"
                and (e.get_data().get("user") or {}).get("identityStoreUserId") == user_id
            ],
            timeout=30,
            what="the sink told (only the security channel's notice holds the entry)",
        )
        catalogs.kubectl("delete", "permissioncatalog", "payments", "--wait=false", *GITOPS)
        eventually(
            lambda: "jit-payments-prod" not in permission_sets(catalogs),
            timeout=30,
            what=f"its permission sets deleted; log:\n{catalogs.operator.tail(20)}",
        )
        catalogs.operator.kill()
        catalogs.operator.start()
        tried = len(slack.calls("chat.postMessage"))
        eventually(
            lambda: any(c.status == 503 for c in slack.calls("chat.postMessage")[tried:]),
            timeout=30,
            what="the restarted operator tries Slack again",
        )
        stored = catalogs.get("permissioncatalog", "payments")
        assert stored is not None and stored["metadata"].get("deletionTimestamp"), "held for the notice"
        assert waiting(), "the removal is still listed, for the notice derived from it"
        pending = eventually(
            lambda: next(
                (
                    c
                    for c in ((catalogs.get("permissioncatalog", "payments") or {}).get("status") or {}).get(
                        "conditions"
                    )
                    or []
                    if c.get("type") == "DriftNoticesPending"
                ),
                None,
            ),
            timeout=30,
            what="kubectl describe says why it stays",
        )
        assert pending["reason"] == "DriftRemovalsUntold"
        assert "for the security channel to be told of 1 drift removal(s)" in pending["message"], pending["message"]
    finally:
        slack.down(False)
    (message,) = eventually(told, timeout=90, what=f"the security channel told; log:\n{catalogs.operator.tail(20)}")
    assert message == f"Assignment removed: user {intruder} ({user_id}) from jit-payments-prod in {PROD_ACCOUNT}"
    eventually(
        lambda: catalogs.get("permissioncatalog", "payments") is None,
        timeout=30,
        what=f"the catalog gone once told; log:\n{catalogs.operator.tail(20)}",
    )

"""Attacks 123 and 147 of docs/security.md: a revoked user's old AWS sessions revived by a new
grant; kept alive by an account of the catalog that Identity Center will not assign in.

Session revocation denies a revoked user's sessions of the production permission set (the
PermissionCatalog tier's inline policy, `deniedUsers`) until the session duration has passed. A
user who holds the group again through a new grant is entitled to the new grant's sessions, and
was left out of the deny altogether: so a session stolen before the revocation became valid again
as soon as its owner was granted access again (their team's role is auto-approved). Plain kubectl as
the users of examples/, against the real API server and operator, and the strict Identity Center
emulator's sso-admin: the assertions are on the inline policy provisioned in the account.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from jitaccess.domain import permissions as rules
from tests.e2e.test_attacks_catalog import example
from tests.e2e.test_attacks_sizes import patch_status
from tests.e2e.test_permission_sets import (
    PROD_ACCOUNT,
    active_grant,
    as_gitops,
    catalog_of,
    deny_statement,
    permission_sets,
)
from tests.e2e.test_permission_sets import catalogs as catalogs  # the fixture
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e
ALICE, PAULA = "alice@example.com", "paula@example.com"


def provisioned(system: Jit) -> dict[str, Any]:
    """The inline policy Identity Center provisioned for payments' production tier in its account."""
    prod = permission_sets(system)["jit-payments-prod"]
    return dict(json.loads(system.ic.sso.provisioned[(prod.arn, PROD_ACCOUNT)]["InlinePolicy"] or "{}"))


def revocation_statements(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The policy's session-revocation statements: Sid -> Condition."""
    return {
        s["Sid"]: s["Condition"]
        for s in policy.get("Statement", [])
        if s["Sid"] == rules.DENY_SID or s["Sid"].startswith(rules.ISSUED_BEFORE_SID)
    }


def denies(policy: dict[str, Any], user_id: str, issued: dt.datetime) -> bool:
    """Whether `policy` denies everything to a session of `user_id` issued at `issued`, as IAM reads
    the conditions the revocation statements use (every operator of a statement must hold)."""

    def holds(operator: str, key: str, value: Any) -> bool:
        if (operator, key) == ("StringEquals", rules.USER_ID_CONDITION_KEY):
            return user_id in ([value] if isinstance(value, str) else value)
        if (operator, key) == ("DateLessThan", rules.ISSUE_TIME_CONDITION_KEY):
            return issued < dt.datetime.fromisoformat(value)
        raise AssertionError(f"a condition this test does not read: {operator} {key}")

    return any(
        s["Effect"] == "Deny"
        and s["Action"] == "*"
        and all(holds(op, key, v) for op, pairs in s.get("Condition", {}).items() for key, v in pairs.items())
        for s in policy.get("Statement", [])
    )


def wait_denied_every_session(system: Jit, user_id: str) -> None:
    """Until the provisioned policy denies every session of `user_id` (the plain deny, alone)."""
    eventually(
        lambda: (
            revocation_statements(provisioned(system))
            == {rules.DENY_SID: {"StringEquals": {rules.USER_ID_CONDITION_KEY: [user_id]}}}
        ),
        timeout=15,
        what=f"{user_id} denied every session: {provisioned(system)}; log:\n{system.operator.tail(20)}",
    )


# --- 123. a stolen session revived by a new grant of its user ---------------------------------------


def test_123_a_session_issued_before_a_revocation_stays_denied_when_its_user_is_granted_again(
    catalogs: Jit, tmp_path: Path
) -> None:
    """alice's session is stolen and paula revokes her grant; alice is granted again at once (her
    team's role is auto-approved): the permission set keeps denying her sessions issued before the
    revocation, and lets the new grant's through; revoked again, she is denied all of them."""
    alice = active_grant(catalogs, "ps-stolen")
    stolen = dt.datetime.now(dt.UTC)  # a moment before the revocation, likely in its second
    catalogs.kubectl("annotate", "accessgrant", "ps-stolen", "jitaccess.dev/revoked=true", user=PAULA)
    catalogs.wait_reason("accessgrant", "ps-stolen", "Revoked")
    status = catalog_of(catalogs, "payments").status.production
    assert status is not None and status.denied_users is not None
    (entry,) = status.denied_users
    try:
        # The tests' hold (JITACCESS_REVOCATION_HOLD_SECONDS) is shorter than what a grant takes and a
        # pass provisions: the entry is held as a permission set's session duration of an hour would.
        held = {**entry.wire(), "until": (entry.since + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
        assert patch_status(catalogs, {"status": {"production": {"deniedUsers": [held]}}}, tmp_path / "patch.json")
        wait_denied_every_session(catalogs, alice)
        assert denies(provisioned(catalogs), alice, stolen)

        active_grant(catalogs, "ps-again")
        assert catalogs.members("prod-eng-payments") == {ALICE}
        since = rules.revoked_before(entry.since)
        before = {
            rules.ISSUED_BEFORE_SID + since.replace("-", "").replace(":", ""): {
                "StringEquals": {rules.USER_ID_CONDITION_KEY: [alice]},
                "DateLessThan": {rules.ISSUE_TIME_CONDITION_KEY: since},
            }
        }
        eventually(
            lambda: revocation_statements(provisioned(catalogs)) == before,
            timeout=20,
            what=f"alice denied her sessions from before {since}: {provisioned(catalogs)}; "
            f"log:\n{catalogs.operator.tail(20)}",
        )
        policy = provisioned(catalogs)
        assert denies(policy, alice, stolen), "the stolen session is valid again"
        assert not denies(policy, alice, dt.datetime.now(dt.UTC)), "the new grant's sessions are alice's"
        listed = catalog_of(catalogs, "payments").status.production
        assert listed is not None and [(d.user_id, d.grant, d.since) for d in listed.denied_users or []] == [
            (alice, "ps-stolen", entry.since)
        ], "alice stays listed, her entry as her revocation wrote it"

        # The new grant revoked as well: every session of hers is denied again.
        catalogs.kubectl("annotate", "accessgrant", "ps-again", "jitaccess.dev/revoked=true", user=PAULA)
        catalogs.wait_reason("accessgrant", "ps-again", "Revoked")
        wait_denied_every_session(catalogs, alice)
        assert denies(provisioned(catalogs), alice, dt.datetime.now(dt.UTC))
    finally:
        patch_status(catalogs, {"status": {"production": {"deniedUsers": []}}}, tmp_path / "patch.json")


# --- 147. one account the catalog cannot assign keeps a revocation from the permission set ----------


def test_147_a_revocation_reaches_the_permission_set_though_an_account_of_the_catalog_cannot_be_assigned(
    catalogs: Jit, tmp_path: Path
) -> None:
    """payments' baseline lists an account where the operator's role is refused at once and another
    where every assignment ends FAILED (a suspended account, a policy missing there); alice's
    production grant is revoked by paula: the deny is provisioned in production's account all the
    same, and the catalog says which accounts failed and what to check. One account already holding
    production's permission set refuses the operator's role too (assigning, listing, provisioning to
    it or to all accounts): the deny is provisioned account by account, that one named."""
    refused, failing, held = "999900001111", "999900002222", "999900003333"
    sso = catalogs.ic.sso
    sso.refused_accounts.add(refused)
    sso.failing_accounts.add(failing)
    try:
        changed = example("payments")
        changed["spec"]["baseline"]["accounts"] += [refused, failing]
        changed["spec"]["production"]["accounts"] += [held]
        as_gitops(catalogs, "-f", "-", input=yaml.safe_dump(changed))

        def reported() -> str | None:
            catalog = catalog_of(catalogs, "payments")
            ready = next((c for c in catalog.status.conditions if c.type == "Ready"), None)
            if catalog.status.observed_generation != catalog.metadata.generation or ready is None:
                return None
            return ready.message if (ready.status, ready.reason) == ("False", "ProvisioningFailed") else None

        eventually(reported, timeout=30, what=f"payments fails its pass; log:\n{catalogs.operator.tail(20)}")
        prod = permission_sets(catalogs)["jit-payments-prod"]
        eventually(lambda: (prod.arn, held) in sso.provisioned, timeout=12, what=f"production held in {held}")
        sso.refused_accounts.add(held)
        alice = active_grant(catalogs, "ps-147")
        catalogs.kubectl("annotate", "accessgrant", "ps-147", "jitaccess.dev/revoked=true", user=PAULA)
        catalogs.wait_reason("accessgrant", "ps-147", "Revoked")
        eventually(
            lambda: deny_statement(sso.provisioned[(prod.arn, PROD_ACCOUNT)]["InlinePolicy"]) == [alice],
            timeout=12,
            what=f"alice denied in {PROD_ACCOUNT}: {provisioned(catalogs)}; log:\n{catalogs.operator.tail(20)}",
        )
        # The catalog says which accounts failed and what to check; their tier status, Failed.
        eventually(
            lambda: f"in {held}: provisioning failed" in (reported() or ""),
            timeout=12,
            what=f"{held} named: {reported()}",
        )
        message = reported() or ""
        assert f"in {refused}: ListAccountAssignments: AccessDeniedException" in message, message
        assert f"in {held}: provisioning failed (ProvisionPermissionSet: AccessDeniedException" in message, message
        assert deny_statement(sso.provisioned[(prod.arn, held)]["InlinePolicy"]) == []
        assert f"in {failing}: assigning it failed" in message, message
        assert "docs/aws-iam.md" in message
        base = catalog_of(catalogs, "payments").status.baseline
        assert base is not None and [(a.account, a.state) for a in base.accounts or []][1:] == [
            (refused, "Failed"),
            (failing, "Failed"),
        ]
        # The failing accounts are tried again by the periodic pass (every 5 s here), not in a loop.
        calls = catalogs.ic.faults.calls["CreateAccountAssignment"]
        time.sleep(6)
        assert catalogs.ic.faults.calls["CreateAccountAssignment"] - calls <= 6
    finally:
        sso.refused_accounts.discard(refused)
        sso.refused_accounts.discard(held)
        sso.failing_accounts.discard(failing)
        patch_status(catalogs, {"status": {"production": {"deniedUsers": []}}}, tmp_path / "patch.json")

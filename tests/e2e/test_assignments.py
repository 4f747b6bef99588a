"""Account-assignment mode end to end: a grant assigns the payments production permission set to
the user in each account of examples/05-assignment.yaml, as the real API server and the strict
sso-admin emulator see it; expiry and revocation take the assignments away, ref-counted between
grants of one user; an account that fails leaves no assignment behind and the grant Failed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from devenv.paths import EXAMPLES
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e

ALICE = "alice@example.com"
ENTITLEMENT = "payments-prod-direct"
ACCOUNTS = ("444455556666", "555566667777")


@pytest.fixture
def direct(system: Jit) -> Iterator[str]:
    """The example catalog and the assignment-mode Entitlement applied; the permission set's ARN."""
    for group in ("eng-payments", "eng-ledger"):  # the catalogs' baseline groups, not in the seed
        if not _group_exists(system, group):
            system.ic.create_group(group)
    system.kubectl("apply", "-f", str(EXAMPLES / "04-permissions.yaml"))
    system.kubectl("apply", "-f", str(EXAMPLES / "05-assignment.yaml"))
    system.wait_reason("entitlement", ENTITLEMENT, "Resolved", timeout=30)

    def arn() -> str | None:
        production = ((system.get("permissioncatalog", "payments") or {}).get("status") or {}).get("production") or {}
        return production.get("permissionSetArn")

    yield eventually(arn, timeout=60, what=f"payments production provisioned; log:\n{system.operator.tail(20)}")
    system.ic.sso.failing_accounts.clear()
    system.clean()  # the grants first: an Entitlement is not removed under live access
    # Later tests see the payments team's entitlements of the session again (the CLI's pick list).
    system.kubectl("delete", "-f", str(EXAMPLES / "05-assignment.yaml"), "--ignore-not-found", "--timeout=60s")


def _group_exists(system: Jit, group: str) -> bool:
    try:
        system.ic.group_id(group)
    except ClientError:  # ResourceNotFoundException
        return False
    return True


def _assigned(system: Jit, arn: str, user: str) -> set[str]:
    user_id = system.ic.user_id(user)
    system.ic.sso.settle()
    return {
        a
        for a, ps, kind, principal in system.ic.sso.assignments
        if ps == arn and (kind, principal) == ("USER", user_id)
    }


def test_grant_assigns_in_each_account_and_expiry_removes(system: Jit, direct: str) -> None:
    system.request("alice-direct", ENTITLEMENT, duration="4s", user=ALICE)
    grant = system.wait_reason("accessgrant", "alice-direct", "Active")
    assert grant["spec"]["groupName"] == "catalog:payments/production"
    assert grant["status"]["permissionSetArn"] == direct
    assert [(a["account"], a["state"]) for a in grant["status"]["accountAssignments"]] == [
        (ACCOUNTS[0], "Provisioned"),
        (ACCOUNTS[1], "Provisioned"),
    ]
    assert _assigned(system, direct, ALICE) == set(ACCOUNTS)
    assert system.members("prod-eng-payments") == set(), "no group membership in assignment mode"
    system.wait_reason("accessgrant", "alice-direct", "Expired", timeout=20)
    assert _assigned(system, direct, ALICE) == set()


def test_two_grants_of_one_user_are_ref_counted(system: Jit, direct: str) -> None:
    system.request("alice-direct-short", ENTITLEMENT, duration="3s", user=ALICE)
    system.request("alice-direct-long", ENTITLEMENT, duration="1h", user=ALICE)
    system.wait_reason("accessgrant", "alice-direct-long", "Active")
    system.wait_reason("accessgrant", "alice-direct-short", "Expired", timeout=20)
    assert _assigned(system, direct, ALICE) == set(ACCOUNTS), "the long grant still holds them"
    # The catalog's periodic pass (every 5 s in tests) reads Identity Center: a granted user's
    # assignment is not drift to it.
    time.sleep(6)
    assert _assigned(system, direct, ALICE) == set(ACCOUNTS)
    system.kubectl("delete", "accessgrant", "alice-direct-long", "--wait=true")
    eventually(lambda: _assigned(system, direct, ALICE) == set() or None, timeout=20, what="assignments removed")


def test_one_failing_account_leaves_nothing_and_fails_the_grant(system: Jit, direct: str) -> None:
    system.ic.sso.failing_accounts.add(ACCOUNTS[1])
    system.request("alice-direct-fail", ENTITLEMENT, duration="1h", user=ALICE)
    grant = system.wait_reason("accessgrant", "alice-direct-fail", "Failed", timeout=30)
    message = next(c["message"] for c in grant["status"]["conditions"] if c["type"] == "Ready")
    assert ACCOUNTS[1] in message and "taken back" in message, message
    assert _assigned(system, direct, ALICE) == set(), "the account that succeeded was rolled back"
    system.wait_reason("accessrequest", "alice-direct-fail", "Failed")


def test_group_and_assignment_together_are_refused(system: Jit) -> None:
    both = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "Entitlement",
        "metadata": {"name": "both-modes"},
        "spec": {
            "owner": "payments",
            "identityCenter": {
                "groupName": "prod-eng-payments",
                "accountAssignment": {"permissionSet": {"catalog": "payments"}, "accounts": ["4444"]},
            },
        },
    }
    result = system.apply(both, check=False)
    assert result.returncode != 0
    assert "identityCenter needs exactly one of" in result.stderr
    assert "permissionSet needs either catalog and tier" in result.stderr
    assert "an AWS account id is 12 digits" in result.stderr


def test_a_grant_that_fails_on_a_retry_takes_back_what_an_earlier_attempt_assigned(system: Jit, direct: str) -> None:
    """An attempt assigns the first account, then Identity Center stops answering (the assignment
    is made, the answer lost, every retry of the SDK too): the grant stays Provisioning and is
    retried. Before the retry the Entitlement changes under the request (its longest duration is cut
    below the request's hour), so the retry fails the grant as no longer backed: the assignment the
    earlier attempt made is taken back, not left with no grant and no expiry."""
    system.ic.faults.fail("CreateAccountAssignment", times=10_000, after_apply=True)
    system.request("alice-direct-retry", ENTITLEMENT, duration="1h", user=ALICE)
    eventually(
        lambda: _assigned(system, direct, ALICE) == {ACCOUNTS[0]} or None,
        timeout=30,
        what="the first account assigned by an attempt cut short",
    )
    assert system.ready_reason("accessgrant", "alice-direct-retry") in (None, "Provisioning")
    cut = '{"spec":{"defaultDuration":"30m","maxDuration":"30m"}}'
    system.kubectl("patch", "entitlement", ENTITLEMENT, "--type=merge", "-p", cut)
    # Identity Center answers again only once an attempt has begun after the operator saw the
    # change (its overlap check says when): one that began before it would rightly still grant.
    eventually(
        lambda: "maxDuration 30m here" in system.operator.tail(400) or None,
        timeout=30,
        what="the operator saw the Entitlement's change",
    )
    retried = "Handler 'provision_grant' failed temporarily"

    def attempts_since_the_change() -> int:
        log = system.operator.tail(400)
        return log[log.index("maxDuration 30m here") :].count(retried)

    def begun_after_the_change() -> bool:
        failed = system.ready_reason("accessgrant", "alice-direct-retry") == "Failed"
        return failed or attempts_since_the_change() >= 1

    eventually(lambda: begun_after_the_change() or None, timeout=30, what="an attempt after the change")
    system.ic.faults.clear()
    grant = system.wait_reason("accessgrant", "alice-direct-retry", "Failed", timeout=30)
    message = next(c["message"] for c in grant["status"]["conditions"] if c["type"] == "Ready")
    assert "does not hold against its Entitlement" in message, message
    assert _assigned(system, direct, ALICE) == set(), "the earlier attempt's assignment was taken back"
    assert "was taken back" in system.operator.tail(200)

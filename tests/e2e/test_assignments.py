"""Account-assignment mode end to end: a grant assigns the payments production permission set to
the user in each account of examples/05-assignment.yaml, as the real API server and the strict
sso-admin emulator see it; expiry and revocation take the assignments away, ref-counted between
grants of one user; an account that fails leaves no assignment behind and the grant Failed.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from devenv.paths import EXAMPLES
from jitaccess.api import audit
from tests.e2e.cli_run import Cli
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e

ALICE, PAULA = "alice@example.com", "paula@example.com"
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
    _cut_below_the_request(system, "alice-direct-retry")
    grant = system.wait_reason("accessgrant", "alice-direct-retry", "Failed", timeout=30)
    message = next(c["message"] for c in grant["status"]["conditions"] if c["type"] == "Ready")
    assert "does not hold against its Entitlement" in message, message
    assert _assigned(system, direct, ALICE) == set(), "the earlier attempt's assignment was taken back"
    assert "was taken back" in system.operator.tail(200)


def _cut_below_the_request(system: Jit, name: str) -> None:
    """Cut the Entitlement's longest duration below the hour grant `name` asked for, and let
    Identity Center answer again (`faults.clear`) only once an attempt has begun after the
    operator saw the change (its overlap check says when): one that began before it would rightly
    still grant."""
    offset = system.operator.log_file.stat().st_size  # an earlier test's lines say the same

    def logged() -> str:
        with system.operator.log_file.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    cut = '{"spec":{"defaultDuration":"30m","maxDuration":"30m"}}'
    system.kubectl("patch", "entitlement", ENTITLEMENT, "--type=merge", "-p", cut)
    eventually(
        lambda: "maxDuration 30m here" in logged() or None,
        timeout=30,
        what="the operator saw the Entitlement's change",
    )
    retried = "Handler 'provision_grant' failed temporarily"

    def attempts_since_the_change() -> int:
        log = logged()
        return log[log.index("maxDuration 30m here") :].count(retried)

    def begun_after_the_change() -> bool:
        failed = system.ready_reason("accessgrant", name) == "Failed"
        return failed or attempts_since_the_change() >= 1

    eventually(lambda: begun_after_the_change() or None, timeout=30, what="an attempt after the change")
    system.ic.faults.clear()


def test_a_grant_that_fails_half_way_is_audited_as_possible_access(system: Jit, direct: str, cli: Cli) -> None:
    """The scenario above, as an auditor reads it: the first account's assignment was real for as
    long as the grant was retried, though its answer was lost and the grant never became Active.
    Nothing is written to the grant on the way to Identity Center; the write that fails it records
    what the take-back removed and from when the user may have held it (the first attempt the
    operator knew of, at or after the grant's creation). Its `failed` record does not say that
    nobody was given access, and `kubectl jit audit --access` lists the period, from that first
    attempt to the take-back, as possible access (not confirmed)."""
    name = "alice-direct-possible"
    system.ic.faults.fail("CreateAccountAssignment", times=10_000, after_apply=True)
    system.request(name, ENTITLEMENT, duration="1h", user=ALICE)
    eventually(
        lambda: _assigned(system, direct, ALICE) == {ACCOUNTS[0]} or None,
        timeout=30,
        what="the first account assigned by an attempt whose answer was lost",
    )
    seen = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    provisioning = system.get("accessgrant", name) or {}
    assert "takeBack" not in (provisioning.get("status") or {}), provisioning
    _cut_below_the_request(system, name)
    grant = system.wait_reason("accessgrant", name, "Failed", timeout=60)
    assert _assigned(system, direct, ALICE) == set(), "taken back"

    status = grant["status"]
    back = status["takeBack"]
    asked = back.get("since")
    created = grant["metadata"]["creationTimestamp"]
    assert asked and created <= asked <= seen, (created, back, seen)  # the first attempt, before the add was seen
    assert back["removed"] == [ACCOUNTS[0]] and back["time"] >= seen, back
    message = next(c["message"] for c in status["conditions"] if c["type"] == "Ready")
    assert "nobody was given access" not in message, message
    assert f"may have held access from {asked} until the take-back at {back['time']}" in message, message
    (failed,) = [r for r in audit.records_of(grant) if r["action"] == "failed"]
    assert "startTime" not in failed, "no confirmed access"
    assert (failed["possibleStartTime"], failed["possibleEndTime"], failed["takenBack"]) == (
        asked,
        back["time"],
        [ACCOUNTS[0]],
    )

    window = ("--since", asked, "--until", back["time"])
    result = cli.run("audit", "--access", *window, "-o", "json", user=PAULA)
    assert result.code == 0, result
    (period,) = [p for p in json.loads(result.out)["periods"] if p.get("grant") == name]
    assert (period["start"], period["end"], period["ending"]) == (asked, back["time"], "failed"), period
    assert period["possible"] is True and period["takenBack"] == [ACCOUNTS[0]], period
    table = cli.run("audit", "--access", *window, "--user", ALICE, user=PAULA)
    assert table.code == 0, table
    row = next((line for line in table.out.splitlines() if f"{asked} (possible)" in line), "")
    assert "POSSIBLE access, not confirmed" in row and back["time"] in row, table.out


LOST = "alice-direct-lost"
#: A name the policy also refuses as a ConfigMap, so that a dry run tells when it is in force.
PROBE = "active-write-lost-probe"


def _active_write_lost(grant: str) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy that refuses the status write that makes `grant` Active: the
    operator's write is lost after its assignments are made, as in a crash between the two."""
    refused = (
        f"object.metadata.name == '{grant}' && has(object.status) && has(object.status.conditions) && "
        "object.status.conditions.exists(c, c.type == 'Ready' && has(c.reason) && c.reason == 'Active')"
    )
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": PROBE},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["jitaccess.dev"],
                            "apiVersions": ["*"],
                            "operations": ["UPDATE"],
                            "resources": ["accessgrants/status"],
                        },
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["configmaps"],
                        },
                    ]
                },
                "validations": [
                    {
                        "expression": f"request.resource.resource == 'configmaps' ? object.metadata.name != '{PROBE}'"
                        f" : !({refused})",
                        "message": "the Active write is lost (test)",
                    }
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": PROBE},
            "spec": {"policyName": PROBE, "validationActions": ["Deny"]},
        },
    ]


def _policy_in_force(system: Jit) -> bool:
    dry_run = system.kubectl("create", "configmap", PROBE, "-n", "default", "--dry-run=server", check=False)
    return dry_run.returncode != 0 and "the Active write is lost" in dry_run.stderr


def _time(grant: dict[str, Any], *path: str) -> dt.datetime:
    value: Any = grant
    for key in path:
        value = value[key]
    return dt.datetime.fromisoformat(str(value))


def test_an_assignment_whose_active_write_was_lost_counts_from_the_grant_creation(system: Jit, direct: str) -> None:
    """The operator assigns the permission set in every account, then its write of `Active` is lost
    (refused here by an admission policy) and it is killed. Started again a while later, it finds
    the grant still Provisioning and assigns again, which Identity Center does not tell from a
    first assignment: the grant's time counts from its creation, the earliest its access can have
    begun, not from the attempt after the restart (docs/api.md, status.activationTime). Counting
    from the restart, a crash lengthened the access by the time the operator was down."""
    system.apply({"apiVersion": "v1", "kind": "List", "items": _active_write_lost(LOST)})
    try:
        try:
            eventually(lambda: _policy_in_force(system) or None, timeout=30, what="the policy in force")
            system.request(LOST, ENTITLEMENT, duration="1h", user=ALICE)
            eventually(
                lambda: _assigned(system, direct, ALICE) == set(ACCOUNTS) or None,
                timeout=30,
                what="both accounts assigned",
            )
            eventually(
                lambda: "the Active write is lost" in system.operator.tail(200) or None,
                timeout=30,
                what=f"the Active write refused; log:\n{system.operator.tail(20)}",
            )
            assert system.ready_reason("accessgrant", LOST) in (None, "Provisioning")
            system.operator.kill()
        finally:
            system.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", PROBE, check=False)
        eventually(lambda: not _policy_in_force(system) or None, timeout=30, what="the policy gone")
        created = _time(system.get("accessgrant", LOST) or {}, "metadata", "creationTimestamp")
        # Down long enough that counting from the restart would show, to the second.
        time.sleep(max(0.0, (created + dt.timedelta(seconds=5) - dt.datetime.now(dt.UTC)).total_seconds()))
    finally:
        if not system.operator.running:
            system.operator.start()
    # The refused write is retried once a minute (adapters.kube.INVALID_RETRY_SECONDS), a delay kopf
    # keeps in the object across the restart.
    grant = system.wait_reason("accessgrant", LOST, "Active", timeout=90)
    assert _assigned(system, direct, ALICE) == set(ACCOUNTS)
    activated, expires = _time(grant, "status", "activationTime"), _time(grant, "status", "expirationTime")
    assert activated == created, f"activated at {activated}, created at {created}"
    assert expires == created + dt.timedelta(hours=1), f"expires at {expires}, created at {created}"


def test_a_grant_that_fails_takes_back_an_assignment_an_earlier_attempt_left_in_progress(
    system: Jit, direct: str
) -> None:
    """Identity Center carries out an assignment seconds after it is asked (here 10 s), and lists it
    only then. Attempts of a grant ask for it and lose every answer; the Entitlement changes under
    the request, and the next attempt fails the grant. The creations still in progress are waited
    for and taken back with the rest: none lands after the grant is Failed, with no grant to end it."""
    system.ic.sso.async_seconds = 10.0
    try:
        system.ic.faults.fail("CreateAccountAssignment", times=10_000, after_apply=True)
        system.request("alice-direct-pending", ENTITLEMENT, duration="1h", user=ALICE)
        eventually(
            lambda: system.ic.faults.calls["CreateAccountAssignment"] >= 3 or None, timeout=30, what="a first attempt"
        )
        cut = '{"spec":{"defaultDuration":"30m","maxDuration":"30m"}}'
        system.kubectl("patch", "entitlement", ENTITLEMENT, "--type=merge", "-p", cut)
        time.sleep(3)
        system.ic.faults.clear()
        grant = system.wait_reason("accessgrant", "alice-direct-pending", "Failed", timeout=90)
        message = next(c["message"] for c in grant["status"]["conditions"] if c["type"] == "Ready")
        assert "does not hold against its Entitlement" in message, message
        assert _assigned(system, direct, ALICE) == set()
        time.sleep(12)  # past the last creation's 10 s, had one been left in progress
        assert _assigned(system, direct, ALICE) == set(), "a creation in progress landed after the grant failed"
    finally:
        system.ic.sso.async_seconds = 0.2
        system.ic.faults.clear()


def test_a_conflict_on_an_assignment_is_retried(system: Jit, direct: str) -> None:
    """sso-admin answers ConflictException when a previous write has not yet propagated, and says
    "a retry (with appropriate backoff logic) is the recommended response": one such answer delays
    the grant, it does not fail it."""
    time.sleep(6)  # the catalog's own pass (every 5 s in tests) has settled: the fault is the grant's
    offset = system.operator.log_file.stat().st_size
    system.ic.faults.fail("CreateAccountAssignment", error="ConflictException")
    system.request("alice-direct-conflict", ENTITLEMENT, duration="1h", user=ALICE)
    grant = system.wait_reason("accessgrant", "alice-direct-conflict", "Active", "Failed", timeout=40)
    ready = next(c for c in grant["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "Active", ready["message"]
    assert system.ic.faults.injected["CreateAccountAssignment"] == 1
    with system.operator.log_file.open("rb") as f:
        f.seek(offset)
        log = f.read().decode(errors="replace")
    retried = [line for line in log.splitlines() if "Handler 'provision_grant' failed temporarily" in line]
    assert len(retried) == 1 and "CreateAccountAssignment: ConflictException" in retried[0], log[-3000:]
    assert _assigned(system, direct, ALICE) == set(ACCOUNTS)
    system.wait_reason("accessrequest", "alice-direct-conflict", "Granted")

"""The sso-admin adapter against the strict emulator: ensure-writes, asynchronous waits, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from devenv.emulator import IdentityCenterEmulator
from jitaccess.adapters.ssoadmin import SsoAdmin, policy_key
from jitaccess.errors import NotFound, NotLeading, PermanentFailure, RetryLater

ACCOUNT = "111111111111"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


@pytest.fixture
def sso(fresh_identity_center: IdentityCenterEmulator, monkeypatch: pytest.MonkeyPatch) -> SsoAdmin:
    env = fresh_identity_center.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    fresh_identity_center.sso.async_seconds = 0.05
    # No instance given: found with ListInstances, as a deployment without the setting does.
    return SsoAdmin.connect(
        None, region=env["AWS_DEFAULT_REGION"], endpoint_url=env["AWS_ENDPOINT_URL"], max_attempts=1
    )


def test_finds_the_instance_and_round_trips_a_permission_set(
    sso: SsoAdmin, fresh_identity_center: IdentityCenterEmulator
) -> None:
    assert sso.instance_arn == fresh_identity_center.sso.arn
    arn = sso.create("team-prod", "the team", "PT2H", {"managed-by": "jitaccess"})
    policy = json.dumps({"Version": "2012-10-17", "Statement": []})
    sso.put_inline_policy(arn, policy)
    sso.attach(arn, READ_ONLY)
    sso.attach(arn, READ_ONLY)  # attached already: done
    sso.attach(arn, policy_key("arn:aws:iam::111111111111:policy/shared/team-base"))
    state = sso.read(arn)
    assert (state.name, state.description, state.session_duration, state.inline_policy) == (
        "team-prod",
        "the team",
        "PT2H",
        policy,
    )
    assert state.managed_policies == ("/shared/team-base", READ_ONLY)
    assert state.tags == {"managed-by": "jitaccess"}
    sso.detach(arn, "/shared/team-base")
    sso.detach(arn, "/shared/team-base")  # gone already: done
    assert sso.read(arn).managed_policies == (READ_ONLY,)
    assert arn in sso.permission_set_arns()
    sso.delete(arn)
    with pytest.raises(NotFound):
        sso.read(arn)


def test_assignment_and_provisioning_are_waited_for(
    sso: SsoAdmin, fresh_identity_center: IdentityCenterEmulator
) -> None:
    group = fresh_identity_center.group_id("prod-eng-payments")
    arn = sso.create("team-prod", "", "PT1H", {})
    request = sso.assign(arn, ACCOUNT, group)
    assert request.status == "IN_PROGRESS"
    [done] = sso.wait([request])
    assert done.status == "SUCCEEDED"
    assert sso.assignments(arn, ACCOUNT) == [("GROUP", group)]
    assert sso.assigned_accounts(arn) == [ACCOUNT]
    sso.put_inline_policy(arn, '{"Version": "2012-10-17", "Statement": []}')
    sso.wait([sso.provision(arn)])
    assert fresh_identity_center.sso.provisioned[(arn, ACCOUNT)]["InlinePolicy"].startswith('{"Version"')
    sso.wait([sso.unassign(arn, ACCOUNT, group)])
    assert sso.assignments(arn, ACCOUNT) == []


def test_a_failed_request_is_a_permanent_failure_with_aws_reason(sso: SsoAdmin) -> None:
    arn = sso.create("team-prod", "", "PT1H", {})
    with pytest.raises(PermanentFailure, match="does not exist"):
        sso.wait([sso.assign(arn, ACCOUNT, "00000000-0000-0000-0000-000000000000")])


def test_a_request_that_does_not_finish_in_time_is_retried_later(
    sso: SsoAdmin, fresh_identity_center: IdentityCenterEmulator
) -> None:
    fresh_identity_center.sso.async_seconds = 5.0
    sso.wait_seconds = 0.3
    arn = sso.create("team-prod", "", "PT1H", {})
    with pytest.raises(RetryLater, match="still in progress"):
        sso.wait([sso.provision(arn, ACCOUNT)])


def test_limits_and_unknown_arns_are_typed_errors(sso: SsoAdmin) -> None:
    arn = sso.create("team-prod", "", "PT1H", {})
    with pytest.raises(PermanentFailure) as exc:
        sso.put_inline_policy(arn, json.dumps({"Sid": "x" * 32768}))
    assert exc.value.code == "ValidationException"
    with pytest.raises(NotFound):
        sso.read(arn[:-16] + "0123456789abcdef")


def test_throttling_is_retry_later_and_writes_need_the_lead(
    sso: SsoAdmin, fresh_identity_center: IdentityCenterEmulator
) -> None:
    fresh_identity_center.faults.fail("ListPermissionSets")
    with pytest.raises(RetryLater) as exc:
        sso.permission_set_arns()
    assert exc.value.code == "ThrottlingException"
    sso.may_write = lambda: False
    calls = fresh_identity_center.faults.calls["CreatePermissionSet"]
    with pytest.raises(NotLeading):
        sso.create("team-prod", "", "PT1H", {})
    assert fresh_identity_center.faults.calls["CreatePermissionSet"] == calls
    assert sso.permission_set_arns() == []  # reads still go out


def test_an_assignments_conflict_is_retried_a_permission_sets_is_not(
    sso: SsoAdmin, fresh_identity_center: IdentityCenterEmulator
) -> None:
    # sso-admin: a conflict on an assignment is a previous write not yet propagated, to retry.
    arn = sso.create("team-prod", "", "PT1H", {})
    for operation, call in (
        ("CreateAccountAssignment", sso.assign),
        ("DeleteAccountAssignment", sso.unassign),
    ):
        fresh_identity_center.faults.fail(operation, error="ConflictException")
        with pytest.raises(RetryLater) as retry:
            call(arn, ACCOUNT, "g-1")
        assert retry.value.code == "ConflictException"
    # A name taken stays taken.
    with pytest.raises(PermanentFailure) as taken:
        sso.create("team-prod", "", "PT1H", {})
    assert taken.value.code == "ConflictException"


def test_creations_in_progress_are_found_though_not_listed_yet(
    sso: SsoAdmin, fresh_identity_center: IdentityCenterEmulator
) -> None:
    fresh_identity_center.sso.async_seconds = 1.0
    user = fresh_identity_center.user_id("alice@example.com")
    group = fresh_identity_center.group_id("prod-eng-payments")
    arn = sso.create("team-prod", "", "PT1H", {})
    mine = sso.assign(arn, ACCOUNT, user, "USER")
    sso.assign(arn, ACCOUNT, group, "GROUP")  # another principal's
    sso.assign(arn, "222222222222", user, "USER")  # an account not asked about
    assert sso.assignments(arn, ACCOUNT) == [], "AWS lists an assignment only once its creation succeeds"
    found = sso.creations_in_progress(arn, [ACCOUNT], user, "USER")
    assert [r.request_id for r in found] == [mine.request_id]
    # Creations started before the caller (its grant) existed are not its own: not described.
    now = datetime.now(UTC)
    assert sso.creations_in_progress(arn, [ACCOUNT], user, "USER", since=now - timedelta(minutes=4)) == found
    assert sso.creations_in_progress(arn, [ACCOUNT], user, "USER", since=now + timedelta(minutes=6)) == []
    sso.wait(found)
    assert ("USER", user) in sso.assignments(arn, ACCOUNT)
    assert sso.creations_in_progress(arn, [ACCOUNT], user, "USER") == []

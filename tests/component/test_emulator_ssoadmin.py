"""The emulator's sso-admin through boto3: asynchronous requests, AWS's limits and error words."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from devenv.emulator import IdentityCenterEmulator
from tests.component.conftest import NO_RETRIES

ACCOUNT = "111111111111"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


@pytest.fixture
def sso(emulator: IdentityCenterEmulator) -> Any:
    return emulator.client("sso-admin", config=NO_RETRIES)


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def new_permission_set(sso: Any, instance: str, name: str = "payments-prod", **extra: Any) -> str:
    response = sso.create_permission_set(InstanceArn=instance, Name=name, SessionDuration="PT1H", **extra)
    return str(response["PermissionSet"]["PermissionSetArn"])


def test_list_instances_names_the_emulators_own_store(emulator: IdentityCenterEmulator, sso: Any) -> None:
    instances = sso.list_instances()["Instances"]
    assert [(i["InstanceArn"], i["IdentityStoreId"]) for i in instances] == [
        (emulator.sso.arn, emulator.identity_store_id)
    ]
    assert emulator.env()["JITACCESS_SSO_INSTANCE_ARN"] == emulator.sso.arn


def test_permission_set_arn_has_the_aws_shape_and_tags_are_kept(emulator: IdentityCenterEmulator, sso: Any) -> None:
    instance = emulator.sso.arn
    arn = new_permission_set(sso, instance, Tags=[{"Key": "managed-by", "Value": "jitaccess"}])
    assert arn.startswith(instance.replace(":instance/", ":permissionSet/") + "/ps-")
    sso.tag_resource(InstanceArn=instance, ResourceArn=arn, Tags=[{"Key": "hash", "Value": "abc"}])
    tags = sso.list_tags_for_resource(InstanceArn=instance, ResourceArn=arn)["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"managed-by": "jitaccess", "hash": "abc"}
    sso.untag_resource(InstanceArn=instance, ResourceArn=arn, TagKeys=["hash"])
    assert [t["Key"] for t in sso.list_tags_for_resource(InstanceArn=instance, ResourceArn=arn)["Tags"]] == [
        "managed-by"
    ]
    with pytest.raises(ClientError) as exc:
        new_permission_set(sso, instance)
    assert error_code(exc) == "ConflictException"


def test_account_assignment_is_asynchronous(emulator: IdentityCenterEmulator, sso: Any) -> None:
    emulator.sso.async_seconds = 0.3
    instance, group = emulator.sso.arn, emulator.group_id("prod-eng-payments")
    arn = new_permission_set(sso, instance)
    started = sso.create_account_assignment(
        InstanceArn=instance,
        TargetId=ACCOUNT,
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=arn,
        PrincipalType="GROUP",
        PrincipalId=group,
    )["AccountAssignmentCreationStatus"]
    assert started["Status"] == "IN_PROGRESS"
    listed = sso.list_account_assignments(InstanceArn=instance, AccountId=ACCOUNT, PermissionSetArn=arn)
    assert listed["AccountAssignments"] == []
    time.sleep(0.35)
    status = sso.describe_account_assignment_creation_status(
        InstanceArn=instance, AccountAssignmentCreationRequestId=started["RequestId"]
    )["AccountAssignmentCreationStatus"]
    assert status["Status"] == "SUCCEEDED"
    listed = sso.list_account_assignments(InstanceArn=instance, AccountId=ACCOUNT, PermissionSetArn=arn)
    assert [a["PrincipalId"] for a in listed["AccountAssignments"]] == [group]
    assert (arn, ACCOUNT) in emulator.sso.provisioned  # an assignment provisions the permission set there
    with pytest.raises(ClientError) as exc:
        sso.delete_permission_set(InstanceArn=instance, PermissionSetArn=arn)
    assert error_code(exc) == "ConflictException"
    deleting = sso.delete_account_assignment(
        InstanceArn=instance,
        TargetId=ACCOUNT,
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=arn,
        PrincipalType="GROUP",
        PrincipalId=group,
    )["AccountAssignmentDeletionStatus"]
    assert deleting["Status"] == "IN_PROGRESS"
    time.sleep(0.35)
    status = sso.describe_account_assignment_deletion_status(
        InstanceArn=instance, AccountAssignmentDeletionRequestId=deleting["RequestId"]
    )["AccountAssignmentDeletionStatus"]
    assert status["Status"] == "SUCCEEDED"
    sso.delete_permission_set(InstanceArn=instance, PermissionSetArn=arn)


def test_assignment_to_an_unknown_group_fails_asynchronously(emulator: IdentityCenterEmulator, sso: Any) -> None:
    emulator.sso.async_seconds = 0.0
    instance = emulator.sso.arn
    arn = new_permission_set(sso, instance)
    started = sso.create_account_assignment(
        InstanceArn=instance,
        TargetId=ACCOUNT,
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=arn,
        PrincipalType="GROUP",
        PrincipalId="00000000-0000-0000-0000-000000000000",
    )["AccountAssignmentCreationStatus"]
    status = sso.describe_account_assignment_creation_status(
        InstanceArn=instance, AccountAssignmentCreationRequestId=started["RequestId"]
    )["AccountAssignmentCreationStatus"]
    assert status["Status"] == "FAILED"
    assert "does not exist" in status["FailureReason"]


def test_provisioning_is_asynchronous_and_copies_the_content_of_its_time(
    emulator: IdentityCenterEmulator, sso: Any
) -> None:
    emulator.sso.async_seconds = 0.2
    instance = emulator.sso.arn
    arn = new_permission_set(sso, instance)
    first = json.dumps({"Version": "2012-10-17", "Statement": []})
    sso.put_inline_policy_to_permission_set(InstanceArn=instance, PermissionSetArn=arn, InlinePolicy=first)
    started = sso.provision_permission_set(
        InstanceArn=instance, PermissionSetArn=arn, TargetType="AWS_ACCOUNT", TargetId=ACCOUNT
    )["PermissionSetProvisioningStatus"]
    assert started["Status"] == "IN_PROGRESS"
    # Written after the provisioning was asked for: not what the account gets.
    sso.put_inline_policy_to_permission_set(InstanceArn=instance, PermissionSetArn=arn, InlinePolicy="{}")
    time.sleep(0.25)
    status = sso.describe_permission_set_provisioning_status(
        InstanceArn=instance, ProvisionPermissionSetRequestId=started["RequestId"]
    )["PermissionSetProvisioningStatus"]
    assert status["Status"] == "SUCCEEDED"
    assert emulator.sso.provisioned[(arn, ACCOUNT)]["InlinePolicy"] == first
    assert sso.list_accounts_for_provisioned_permission_set(InstanceArn=instance, PermissionSetArn=arn)[
        "AccountIds"
    ] == [ACCOUNT]


def test_inline_policy_limit_is_32768_characters(emulator: IdentityCenterEmulator, sso: Any) -> None:
    instance = emulator.sso.arn
    arn = new_permission_set(sso, instance)
    padding = "x" * (32768 - len('{"Sid":""}'))
    at_limit = json.dumps({"Sid": padding}, separators=(",", ":"))
    assert len(at_limit) == 32768
    sso.put_inline_policy_to_permission_set(InstanceArn=instance, PermissionSetArn=arn, InlinePolicy=at_limit)
    with pytest.raises(ClientError) as exc:
        sso.put_inline_policy_to_permission_set(
            InstanceArn=instance, PermissionSetArn=arn, InlinePolicy=at_limit.replace('":"', '":"x')
        )
    assert error_code(exc) == "ValidationException"
    assert "32768" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        sso.put_inline_policy_to_permission_set(InstanceArn=instance, PermissionSetArn=arn, InlinePolicy="not json")
    assert error_code(exc) == "ValidationException"


def test_managed_policies_count_against_twenty(emulator: IdentityCenterEmulator, sso: Any) -> None:
    instance = emulator.sso.arn
    arn = new_permission_set(sso, instance)
    sso.attach_managed_policy_to_permission_set(InstanceArn=instance, PermissionSetArn=arn, ManagedPolicyArn=READ_ONLY)
    with pytest.raises(ClientError) as exc:
        sso.attach_managed_policy_to_permission_set(
            InstanceArn=instance, PermissionSetArn=arn, ManagedPolicyArn=READ_ONLY
        )
    assert error_code(exc) == "ConflictException"
    with pytest.raises(ClientError) as exc:
        sso.attach_managed_policy_to_permission_set(
            InstanceArn=instance, PermissionSetArn=arn, ManagedPolicyArn="arn:aws:iam::aws:policy/NoSuchPolicy"
        )
    assert error_code(exc) == "ResourceNotFoundException"
    for n in range(19):
        sso.attach_customer_managed_policy_reference_to_permission_set(
            InstanceArn=instance, PermissionSetArn=arn, CustomerManagedPolicyReference={"Name": f"p{n}", "Path": "/"}
        )
    with pytest.raises(ClientError) as exc:
        sso.attach_customer_managed_policy_reference_to_permission_set(
            InstanceArn=instance, PermissionSetArn=arn, CustomerManagedPolicyReference={"Name": "one-too-many"}
        )
    assert error_code(exc) == "ServiceQuotaExceededException"


def test_unknown_and_malformed_arns_are_refused_as_aws_words_it(emulator: IdentityCenterEmulator, sso: Any) -> None:
    instance = emulator.sso.arn
    ps_prefix = instance.replace(":instance/", ":permissionSet/")
    with pytest.raises(ClientError) as exc:
        sso.describe_permission_set(InstanceArn=instance, PermissionSetArn=f"{ps_prefix}/ps-0123456789abcdef")
    assert error_code(exc) == "ResourceNotFoundException"
    assert "Could not find PermissionSet with id ps-0123456789abcdef" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        sso.describe_permission_set(InstanceArn=instance, PermissionSetArn="arn:aws:sso:::permissionSet/nope")
    assert error_code(exc) == "ValidationException"
    assert "regular expression pattern" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        sso.list_permission_sets(InstanceArn="arn:aws:sso:::instance/ssoins-0000000000000000")
    assert error_code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        sso.create_permission_set(InstanceArn=instance, Name="long", SessionDuration="PT13H")
    assert error_code(exc) == "ValidationException"


def test_a_quota_throttles_beyond_its_rate(emulator: IdentityCenterEmulator, sso: Any) -> None:
    instance = emulator.sso.arn
    emulator.faults.throttle(["ListPermissionSets", "DescribePermissionSet"], rate=5, burst=5)
    outcomes = []
    for _ in range(10):
        try:
            sso.list_permission_sets(InstanceArn=instance)
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    assert outcomes.count("ok") in (5, 6)  # the burst, and at most one refilled token
    assert set(outcomes) == {"ok", "ThrottlingException"}
    assert emulator.faults.throttled["ListPermissionSets"] == outcomes.count("ThrottlingException")

"""What a `ResourceNotFoundException` says is missing (`ResourceType`, `Reason`): only a user, group
or membership that does not exist is `NotFound`, which a removal takes for "gone already". The
identity store itself (a wrong store id), its resource policy, or the Identity Center instance's
customer managed KMS key not found is a refusal (`PermanentFailure`): the removal is tried again,
never taken for done while the member stays in the group.

The answers are botocore's own, parsed from the model (`Stubber`, which checks the fields against
the error's shape): the fields sit beside `Error` in the response, as the strict emulator shows."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from jitaccess.adapters.identitycenter import IdentityCenter, classify
from jitaccess.errors import NotFound, PermanentFailure

STORE = "d-0123456789"
GROUP, USER = "g-1", "u-1"
NOT_THE_OBJECT = [
    {"ResourceType": "IDENTITY_STORE"},
    {"ResourceType": "RESOURCE_POLICY"},
    {"ResourceType": "GROUP_MEMBERSHIP", "Reason": "KMS_KEY_NOT_FOUND"},
    {"Reason": "KMS_KEY_NOT_FOUND"},
]
IDS = ["store", "resource-policy", "kms-key-of-a-membership", "kms-key"]


def _stubbed() -> tuple[IdentityCenter, Stubber]:
    client = boto3.client(
        "identitystore", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    stub = Stubber(client)
    stub.activate()
    return IdentityCenter(client, STORE, rate_limit=0), stub


def _not_found(stub: Stubber, method: str, fields: dict[str, str]) -> None:
    stub.add_client_error(
        method, "ResourceNotFoundException", "not found.", modeled_fields={"Message": "not found.", **fields}
    )


@pytest.mark.parametrize("fields", NOT_THE_OBJECT, ids=IDS)
def test_a_removal_answered_not_found_for_the_store_is_refused_not_taken_for_done(fields: dict[str, str]) -> None:
    ic, stub = _stubbed()
    _not_found(stub, "delete_group_membership", fields)
    with pytest.raises(PermanentFailure) as exc:
        ic.remove_member(GROUP, USER, "m-1")
    assert exc.value.operation == "DeleteGroupMembership" and exc.value.code == "ResourceNotFoundException"
    assert "no user, group or membership is missing" in str(exc.value)
    stub.assert_no_pending_responses()


@pytest.mark.parametrize("fields", NOT_THE_OBJECT, ids=IDS)
def test_a_membership_lookup_answered_not_found_for_the_store_is_refused_not_no_membership(
    fields: dict[str, str],
) -> None:
    ic, stub = _stubbed()
    _not_found(stub, "get_group_membership_id", fields)
    with pytest.raises(PermanentFailure):
        ic.remove_member(GROUP, USER)


@pytest.mark.parametrize(
    "fields", [{"ResourceType": "GROUP_MEMBERSHIP"}, {"ResourceType": "GROUP"}, {"ResourceType": "USER"}, {}]
)
def test_a_membership_its_group_or_its_user_not_found_is_gone_already(fields: dict[str, str]) -> None:
    """The membership checked by the pair after the delete's not found (a stale id): not there either."""
    ic, stub = _stubbed()
    _not_found(stub, "delete_group_membership", fields)
    _not_found(stub, "get_group_membership_id", fields)
    assert ic.remove_member(GROUP, USER, "m-1") is False
    stub.assert_no_pending_responses()


def _client_error(fields: dict[str, Any], operation: str) -> ClientError:
    response: Any = {"Error": {"Code": "ResourceNotFoundException", "Message": "not found."}, **fields}
    return ClientError(response, operation)


def test_sso_admins_kms_key_not_found_is_refused_too() -> None:
    """sso-admin names its KMS reason otherwise (`KMS_NotFoundException`): an account assignment's
    removal answered so is not "the permission set is gone"."""
    error = classify(
        _client_error({"Reason": "KMS_NotFoundException"}, "DeleteAccountAssignment"), "DeleteAccountAssignment"
    )
    assert isinstance(error, PermanentFailure) and "KMS_NotFoundException" in str(error)
    plain = classify(_client_error({}, "DeleteAccountAssignment"), "DeleteAccountAssignment")
    assert isinstance(plain, NotFound)

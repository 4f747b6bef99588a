"""The rules of account-assignment mode (`jitaccess.domain.assignments`) and its admission rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jitaccess.api.models import AccountAssignmentTarget, IdentityCenterTarget, PermissionSetRef
from jitaccess.domain import assignments as rules

ARN = "arn:aws:sso:::permissionSet/ssoins-0123456789abcdef/ps-0123456789abcdef"


def _target(*accounts: str) -> AccountAssignmentTarget:
    return AccountAssignmentTarget(
        permission_set=PermissionSetRef(catalog="payments", tier="production"), accounts=list(accounts)
    )


def test_reference_names_a_catalog_tier_or_the_arn() -> None:
    assert rules.reference(PermissionSetRef(catalog="payments", tier="production")) == "catalog:payments/production"
    assert rules.reference(PermissionSetRef(arn=ARN)) == ARN
    assert rules.catalog_tier("catalog:payments/production") == ("payments", "production")
    assert rules.catalog_tier(ARN) is None


def test_target_name_is_the_group_or_the_reference() -> None:
    assert rules.target_name(IdentityCenterTarget(group_name="prod", group_id="g-1")) == "g-1"
    assert rules.target_name(IdentityCenterTarget(group_name="prod")) == "prod"
    assert rules.target_name(IdentityCenterTarget(account_assignment=_target("111122223333"))) == (
        "catalog:payments/production"
    )


def test_only_accounts_no_other_grant_holds_are_removed() -> None:
    mine = ["111122223333", "444455556666", "777788889999"]
    others = [_target("444455556666"), None, _target("777788889999", "999988887777")]
    assert rules.to_remove(mine, others) == ["111122223333"]
    assert rules.to_remove(mine, []) == sorted(mine)
    assert rules.to_remove(mine, [_target(*mine)]) == []


def test_accounts_are_required() -> None:
    with pytest.raises(ValidationError):
        AccountAssignmentTarget(permission_set=PermissionSetRef(arn=ARN), accounts=[])

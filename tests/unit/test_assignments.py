"""The rules of account-assignment mode (`jitaccess.domain.assignments`) and its admission rules,
and how a grant and its Entitlement's check resolve a catalog tier (`handlers.assignments.catalog_tier`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from jitaccess.api import names
from jitaccess.api.models import AccountAssignmentTarget, IdentityCenterTarget, PermissionSetRef
from jitaccess.domain import assignments as rules
from jitaccess.errors import NotFound, RetryLater
from jitaccess.handlers import assignments, catalog
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit import factories

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


class _Catalogs:
    """PermissionCatalogs as stored, by name; counts the reads."""

    def __init__(self, *stored: dict[str, Any]) -> None:
        self.stored = {c["metadata"]["name"]: c for c in stored}
        self.reads = 0

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        assert plural == names.CATALOGS
        self.reads += 1
        return self.stored.get(name)


def _catalog(name: str = "payments", *, arn: str | None = ARN, deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, **({"deletionTimestamp": "2026-11-23T12:00:00Z"} if deleting else {})}
    tier = {"groupName": "payments-prod", "accounts": ["111122223333"]}
    return {
        "metadata": metadata,
        "spec": {"region": "eu-west-1", "baseline": {**tier, "groupName": "payments"}, "production": tier},
        "status": {"production": {"permissionSetArn": arn}} if arn else {},
    }


def _runtime(kube: _Catalogs) -> Runtime:
    return Runtime(Settings(), SimpleNamespace(), kube)  # type: ignore[arg-type]


def _grant(reference: str, **status: Any) -> Any:
    grant = factories.grant(**status)
    grant.spec.group_name = reference
    return grant


def test_a_catalog_reference_names_its_stored_catalog_and_tier() -> None:
    stored = _catalog()
    rt = _runtime(_Catalogs(stored))
    assert assignments.catalog_tier(rt, "catalog:payments/production") == ("payments", "production", stored)
    assert assignments.catalog_tier(rt, ARN) is None
    with pytest.raises(NotFound, match=r"^PermissionCatalog paymnts does not exist$"):
        assignments.catalog_tier(rt, "catalog:paymnts/production")
    without = _catalog()
    del without["spec"]["production"]
    with pytest.raises(NotFound, match=r"^PermissionCatalog payments has no production tier$"):
        assignments.catalog_tier(_runtime(_Catalogs(without)), "catalog:payments/production")


def test_a_grant_and_its_entitlement_resolve_the_same_way() -> None:
    kube = _Catalogs(_catalog(arn=None), _catalog("identity"))
    rt = _runtime(kube)
    assert assignments.permission_set_arn(rt, _grant("catalog:identity/production")) == ARN
    with pytest.raises(RetryLater, match="has not provisioned its production permission set yet"):
        assignments.permission_set_arn(rt, _grant("catalog:payments/production"))
    assert catalog._missing_tier(rt, "catalog:payments/production") is None  # provisioned or not, it exists
    for missing, why in [("catalog:paymnts/production", "PermissionCatalog paymnts does not exist"),
                         ("catalog:payments/staging", "PermissionCatalog payments has no staging tier")]:  # fmt: skip
        with pytest.raises(NotFound, match=f"^{why}$"):
            assignments.permission_set_arn(rt, _grant(missing))
        reason, message = catalog._missing_tier(rt, missing) or ("", "")
        assert reason == names.PERMISSION_SET_NOT_FOUND
        assert f"permissionSet names {missing}, but {why}: fix the reference" in message
    # An ARN is not described; a grant active already has its ARN recorded: neither is read.
    reads = kube.reads
    assert catalog._missing_tier(rt, ARN) is None
    assert assignments.permission_set_arn(rt, _grant("catalog:paymnts/production", permissionSetArn=ARN)) == ARN
    assert kube.reads == reads


def test_a_catalog_being_deleted_is_gone_for_the_entitlement_not_for_its_grants() -> None:
    """The Entitlement says PermissionSetNotFound at once; a grant still resolves (and an ending one
    takes its assignments back) until the catalog's permission sets are gone."""
    rt = _runtime(_Catalogs(_catalog(deleting=True)))
    assert assignments.permission_set_arn(rt, _grant("catalog:payments/production")) == ARN
    with pytest.raises(NotFound, match=r"^PermissionCatalog payments does not exist$"):
        assignments.catalog_tier(rt, "catalog:payments/production", deleting_is_gone=True)
    reason, message = catalog._missing_tier(rt, "catalog:payments/production") or ("", "")
    assert reason == names.PERMISSION_SET_NOT_FOUND and "but PermissionCatalog payments does not exist" in message


def _stored_grant(name: str, reference: str, reason: str = "Active", arn: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True", "reason": reason}]}
    if arn:
        status["permissionSetArn"] = arn
    return {"metadata": {"name": name}, "spec": {"groupName": reference}, "status": status}


PAYMENTS_CATALOG = {
    "metadata": {"name": "payments"},
    "spec": {},
    "status": {"production": {"permissionSetArn": "arn:aws:sso:::permissionSet/ssoins-1/ps-prod"}, "conditions": []},
}


def test_a_catalog_is_held_by_the_unended_grants_of_its_tiers_by_name_or_by_arn() -> None:
    grants = [
        _stored_grant("by-tier", "catalog:payments/production"),
        _stored_grant("being-made", "catalog:payments/baseline", reason="Provisioning"),
        _stored_grant(
            "by-arn", "arn:aws:sso:::permissionSet/ssoins-1/ps-prod", arn="arn:aws:sso:::permissionSet/ssoins-1/ps-prod"
        ),
        _stored_grant("ended", "catalog:payments/production", reason="Expired"),
        _stored_grant("revoked", "catalog:payments/production", reason="Revoked"),
        _stored_grant("another-catalog", "catalog:payments-eu/production"),
        _stored_grant("a-group", "prod-eng-payments"),
    ]
    held = rules.catalog_dependents(PAYMENTS_CATALOG, grants)
    assert held == ["being-made", "by-arn", "by-tier"]
    message = rules.catalog_deletion_refusal("payments", held)
    assert message is not None and message.startswith(
        "PermissionCatalog payments gives the permission sets of 3 AccessGrant(s) that have not ended "
        "(being-made, by-arn, by-tier): deleting it would delete those permission sets"
    )
    assert "End them first (`kubectl jit revoke GRANT` for each" in message
    assert rules.catalog_deletion_refusal("payments", rules.catalog_dependents(PAYMENTS_CATALOG, grants[3:])) is None
    many = rules.catalog_deletion_refusal("payments", [f"g{i}" for i in range(7)])
    assert many is not None and "(g0, g1, g2, g3, g4 and 2 more)" in many

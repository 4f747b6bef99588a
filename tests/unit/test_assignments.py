"""The rules of account-assignment mode (`jitaccess.domain.assignments`) and its admission rules,
and how a grant and its Entitlement's check resolve a catalog tier (`handlers.assignments.catalog_tier`)."""

from __future__ import annotations

import asyncio
import copy
from types import SimpleNamespace
from typing import Any, cast

import kopf
import pytest
import yaml
from pydantic import ValidationError

from devenv.paths import EXAMPLES
from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.api import names, wire
from jitaccess.api.models import AccountAssignmentTarget, IdentityCenterTarget, PermissionSetRef
from jitaccess.domain import assignments as rules
from jitaccess.domain import groupids
from jitaccess.domain.admission import OperatorIdentity
from jitaccess.errors import NotFound, RetryLater
from jitaccess.handlers import admission, assignments, catalog
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
    message = rules.catalog_removal_refusal("payments", held)
    assert message is not None and message.startswith(
        "PermissionCatalog payments gives the permission sets of 3 AccessGrant(s) that have not ended "
        "(being-made, by-arn, by-tier): deleting it would delete those permission sets"
    )
    assert "End them first (`kubectl jit revoke GRANT` for each" in message
    assert rules.catalog_removal_refusal("payments", rules.catalog_dependents(PAYMENTS_CATALOG, grants[3:])) is None
    many = rules.catalog_removal_refusal("payments", [f"g{i}" for i in range(7)])
    assert many is not None and "(g0, g1, g2, g3, g4 and 2 more)" in many


PRODUCTION_ARN, BASELINE_ARN = (
    "arn:aws:sso:::permissionSet/ssoins-1/ps-prod",
    "arn:aws:sso:::permissionSet/ssoins-1/ps-base",
)


def _example_catalog() -> dict[str, Any]:
    """The example payments catalog as stored, both tiers provisioned."""
    docs = yaml.safe_load_all((EXAMPLES / "04-permissions.yaml").read_text())
    stored = copy.deepcopy(next(d for d in docs if d and d["metadata"]["name"] == "payments"))
    stored["status"] = {
        "baseline": {"permissionSetArn": BASELINE_ARN},
        "production": {"permissionSetArn": PRODUCTION_ARN},
    }
    return stored


def test_only_removing_a_tier_deletes_a_permission_set_and_only_that_tiers_grants_hold_it() -> None:
    old = _example_catalog()
    without = copy.deepcopy(old)
    del without["spec"]["production"]
    assert rules.removed_tiers(old, without) == ["production"]
    # Updated in place, their assignments kept (the module doc): accounts, group, permissions, session.
    changed = copy.deepcopy(old)
    changed["spec"]["production"].update(accounts=["555566667777"], groupName="prod-eng-other", sessionDuration="2h")
    changed["spec"]["production"]["adds"] = {}
    changed["spec"]["baseline"]["accounts"] = ["999988887777"]
    assert rules.removed_tiers(old, changed) == []
    assert rules.removed_tiers(without, old) == [], "a tier added deletes nothing"
    grants = [
        _stored_grant("prod-by-tier", "catalog:payments/production"),
        _stored_grant("prod-by-arn", PRODUCTION_ARN, arn=PRODUCTION_ARN),
        _stored_grant("base-by-tier", "catalog:payments/baseline"),
        _stored_grant("base-by-arn", BASELINE_ARN, arn=BASELINE_ARN),
        _stored_grant("prod-ended", "catalog:payments/production", reason="Expired"),
        # Group mode: a membership of the production tier's group is what gives its permission set.
        _stored_grant("prod-member", "prod-eng-payments"),
        _stored_grant("prod-member-ended", "prod-eng-payments", reason="Revoked"),
        _stored_grant("another-group", "prod-eng-ledger"),
    ]
    assert rules.catalog_dependents(old, grants, ["production"]) == ["prod-by-arn", "prod-by-tier", "prod-member"]
    assert rules.catalog_dependents(old, grants) == [
        "base-by-arn",
        "base-by-tier",
        "prod-by-arn",
        "prod-by-tier",
        "prod-member",
    ]
    assert rules.catalog_dependents(old, grants, ["baseline"]) == ["base-by-arn", "base-by-tier"]
    message = rules.catalog_removal_refusal("payments", ["prod-by-tier"], ["production"])
    assert message == (
        "PermissionCatalog payments gives the production permission set(s) to 1 AccessGrant(s) that have not ended "
        "(prod-by-tier): removing spec.production would delete them, and the users' access with them, while the "
        "grants still said Active. End them first (`kubectl jit revoke GRANT` for each, by its grantee or an approver "
        "of its owner team), or wait until they end; then remove spec.production"
    )
    assert rules.catalog_removal_refusal("payments", [], ["production"]) is None


class _Stored:
    """The API server as the catalog webhook reads it: the grants stored, and what was listed."""

    def __init__(
        self, grants: list[dict[str, Any]], selecting: bool = True, entitlements: list[dict[str, Any]] | None = None
    ) -> None:
        self.grants, self.listed = grants, []  # type: list[dict[str, Any]], list[str]
        self.entitlements = entitlements or []
        # The field selectors asked for, and whether the server applies them (Kubernetes 1.31+).
        self.selectors: list[dict[str, str]] = []
        self.selecting = selecting

    def list(self, plural: str, *, fields: dict[str, str] | None = None, **_: Any) -> list[dict[str, Any]]:
        self.listed.append(plural)
        if plural == names.ENTITLEMENTS:
            return self.entitlements
        if plural != names.GRANTS:
            return []
        if fields is None or not self.selecting:
            return self.grants
        self.selectors.append(fields)
        return [g for g in self.grants if all(_at(g, f) == v for f, v in fields.items())]

    def list_any(self, plural: str, selections: list[dict[str, str]], **_: Any) -> list[dict[str, Any]]:
        """`Kube.list_any`: one listing per selection, or one of every grant (filtered) from a server
        that cannot select."""
        if not self.selecting:
            return [g for g in self.list(plural) if any(wire.selected_by(g, f) for f in selections)]
        return list({wire.name_of(g): g for fields in selections for g in self.list(plural, fields=fields)}.values())

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        return {"metadata": {"name": name}, "spec": {}} if plural == names.TEAMS else None


def _at(obj: dict[str, Any], path: str) -> Any:
    part, _, key = path.partition(".")
    return (obj.get(part) or {}).get(key)


def _review(kube: _Stored, operation: str, old: dict[str, Any], new: dict[str, Any] | None, user: str) -> None:
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, kube))
    memo = kopf.Memo(runtime=rt, **{admission.OPERATOR_IDENTITY: OperatorIdentity(frozenset({"operator"}))})
    body = new if new is not None else old
    asyncio.run(
        admission.check_permission_catalog(
            operation=operation,
            old=kopf.Body(old),
            new=kopf.Body(new) if new is not None else None,
            userinfo={"username": user, "groups": ["system:masters"]},
            dryrun=True,
            warnings=[],
            memo=memo,
            body=kopf.Body(body),
        )
    )


def test_the_catalog_webhook_refuses_removing_a_tier_a_grant_holds_and_admits_the_rest() -> None:
    old = _example_catalog()
    without = copy.deepcopy(old)
    del without["spec"]["production"]
    kube = _Stored([_stored_grant("alice-db", "catalog:payments/production")])
    with pytest.raises(kopf.AdmissionError, match=r"removing spec.production would delete them") as refused:
        _review(kube, "UPDATE", old, without, "gitops@example.com")
    assert "(alice-db)" in str(refused.value) and "then remove spec.production" in str(refused.value)
    with pytest.raises(kopf.AdmissionError, match=r"deleting it would delete those permission sets"):
        _review(kube, "DELETE", old, None, "gitops@example.com")
    # An account the tier no longer lists keeps the grant's assignment: admitted, no grant listed.
    moved = copy.deepcopy(old)
    moved["spec"]["production"]["accounts"] = ["555566667777"]
    kube.listed.clear()
    _review(kube, "UPDATE", old, moved, "gitops@example.com")
    assert names.GRANTS not in kube.listed
    # The grant ended: nothing holds the tier.
    _review(
        _Stored([_stored_grant("alice-db", "catalog:payments/production", reason="Revoked")]),
        "UPDATE",
        old,
        without,
        "gitops@example.com",
    )
    # The operator's own writes are not judged by what grants hold.
    _review(kube, "UPDATE", old, without, "operator")


def test_a_new_group_of_a_tier_strands_the_group_mode_grants_of_the_old_one_only() -> None:
    old = _example_catalog()
    regrouped = copy.deepcopy(old)
    regrouped["spec"]["production"]["groupName"] = "prod-eng-payments-v2"
    assert rules.regrouped_tiers(old, regrouped) == ["production"]
    respelled = copy.deepcopy(old)
    respelled["spec"]["production"]["groupName"] = "Prod-Eng-Payments"
    assert rules.regrouped_tiers(old, respelled) == ["production"], "only Identity Center knows it is one group"
    moved = copy.deepcopy(old)
    moved["spec"]["production"]["accounts"] = ["555566667777"]
    without = copy.deepcopy(old)
    del without["spec"]["production"]
    assert rules.regrouped_tiers(old, moved) == []
    assert rules.regrouped_tiers(old, without) == [] and rules.regrouped_tiers(without, old) == []
    grants = [
        _stored_grant("prod-member", "prod-eng-payments"),
        _stored_grant("prod-member-ended", "prod-eng-payments", reason="Expired"),
        # Account-assignment grants keep their assignments: a new group moves the group's only.
        _stored_grant("prod-by-tier", "catalog:payments/production"),
        _stored_grant("prod-by-arn", PRODUCTION_ARN, arn=PRODUCTION_ARN),
        _stored_grant("base-member", "eng-payments"),
        _stored_grant("another-group", "prod-eng-ledger"),
    ]
    stranded = rules.catalog_dependents(old, grants, ["production"], by_group_only=True)
    assert stranded == ["prod-member"]
    message = rules.catalog_regroup_refusal(old, regrouped, stranded, ["production"])
    assert message == (
        "PermissionCatalog payments gives the production permission set(s) to 1 AccessGrant(s) that have not ended "
        "(prod-member) through their membership of prod-eng-payments: changing spec.production.groupName would move "
        "them to prod-eng-payments-v2, away from the members those grants put in prod-eng-payments, while the grants "
        "still said Active. End them first (`kubectl jit revoke GRANT` for each, by its grantee or an approver of "
        "its owner team), or wait until they end; then change spec.production.groupName (to stop new grants joining "
        "prod-eng-payments meanwhile, point the team's Entitlement at prod-eng-payments-v2 first)"
    )
    assert rules.catalog_regroup_refusal(old, regrouped, [], ["production"]) is None


def test_the_catalog_webhook_refuses_a_new_group_under_group_mode_grants_of_the_old_one() -> None:
    old = _example_catalog()
    regrouped = copy.deepcopy(old)
    regrouped["spec"]["production"]["groupName"] = "prod-eng-payments-v2"
    member = _stored_grant("alice-db", "prod-eng-payments")
    with pytest.raises(kopf.AdmissionError, match=r"changing spec.production.groupName would move them") as refused:
        _review(_Stored([member]), "UPDATE", old, regrouped, "gitops@example.com")
    assert "(alice-db)" in str(refused.value) and "then change spec.production.groupName" in str(refused.value)
    # Removing the tier as well: the removal is what is said (it deletes the permission set).
    without = copy.deepcopy(regrouped)
    del without["spec"]["production"]
    with pytest.raises(kopf.AdmissionError, match=r"removing spec.production would delete them"):
        _review(_Stored([member]), "UPDATE", old, without, "gitops@example.com")
    # An account-assignment grant of the tier keeps its assignments; a grant that ended holds nothing.
    _review(_Stored([_stored_grant("bob-direct", "catalog:payments/production")]), "UPDATE", old, regrouped, "gitops")
    ended = _stored_grant("alice-db", "prod-eng-payments", reason="Expired")
    _review(_Stored([ended]), "UPDATE", old, regrouped, "gitops@example.com")
    _review(_Stored([member]), "UPDATE", old, regrouped, "operator")


def test_the_catalog_webhook_selects_the_grants_it_judges_by_their_group_name() -> None:
    """Grants are kept for `config.retentionSeconds`: the webhook asks the API server for those that
    could hold the catalog's permission sets (`spec.groupName` is selectable), not for every one."""
    old = _example_catalog()
    kube = _Stored([_stored_grant("bob-old", "prod-eng-ledger"), _stored_grant("alice-db", PRODUCTION_ARN)])
    with pytest.raises(kopf.AdmissionError, match=r"\(alice-db\): deleting it"):
        _review(kube, "DELETE", old, None, "gitops@example.com")
    assert sorted(s[rules.GRANT_GROUP_FIELD] for s in kube.selectors) == sorted(
        [
            "catalog:payments/baseline",
            "catalog:payments/production",
            BASELINE_ARN,
            PRODUCTION_ARN,
            "eng-payments",
            "prod-eng-payments",
        ]
    )
    regrouped = copy.deepcopy(old)
    regrouped["spec"]["production"]["groupName"] = "prod-eng-payments-v2"
    kube.selectors.clear()
    _review(kube, "UPDATE", old, regrouped, "gitops@example.com")
    assert kube.selectors == [{"spec.groupName": "prod-eng-payments"}], "only the old group's grants are stranded"
    # A server that cannot select by the field answers every grant: one listing serves, filtered here.
    every = _Stored(
        [_stored_grant("bob-old", "prod-eng-ledger"), _stored_grant("alice-db", "prod-eng-payments")], False
    )
    with pytest.raises(kopf.AdmissionError, match=r"\(alice-db\) through their membership of prod-eng-payments"):
        _review(every, "UPDATE", old, regrouped, "gitops@example.com")
    without = copy.deepcopy(old)
    del without["spec"]["production"]
    every.listed.clear()
    with pytest.raises(kopf.AdmissionError, match=r"\(alice-db\): removing spec.production"):
        _review(every, "UPDATE", old, without, "gitops@example.com")
    assert every.listed.count(names.GRANTS) == 1


PRODUCTION_GROUP_ID = "9067a4b3c2-0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


def _resolved_catalog() -> dict[str, Any]:
    """The example payments catalog as a provisioning pass left it: the production tier's group resolved."""
    stored = _example_catalog()
    stored["status"]["production"].update(groupName="prod-eng-payments", groupId=PRODUCTION_GROUP_ID)
    return stored


def _by_id_grant(name: str, spelled: str, group_id: str | None = None, reason: str = "Active") -> dict[str, Any]:
    grant = _stored_grant(name, spelled, reason=reason)
    if group_id:
        grant["status"]["groupId"] = group_id
    return grant


def _group_entitlement(name: str, group_id: str | None, **target: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"identityCenter": target},
        "status": {"groupId": group_id} if group_id else {},
    }


def test_a_tiers_group_mode_grants_are_found_by_the_groups_id_whatever_their_spelling() -> None:
    """An Entitlement may name the tier's group by `groupId`, or spell its name otherwise: its grants
    say it that way in `spec.groupName`. They hold the tier all the same (attack 115)."""
    old = _resolved_catalog()
    entitlements = [
        _group_entitlement("by-id", PRODUCTION_GROUP_ID, groupId=PRODUCTION_GROUP_ID),
        _group_entitlement("respelled", PRODUCTION_GROUP_ID, groupName="Prod-Eng-Payments"),
        _group_entitlement("another", "other-id", groupName="prod-eng-ledger"),
        _group_entitlement("unresolved", None, groupName="PROD-ENG-PAYMENTS"),
        {"metadata": {"name": "direct"}, "spec": {"identityCenter": {"accountAssignment": {}}}, "status": {}},
    ]
    assert groupids.tier_group_ids(old) == {"production": PRODUCTION_GROUP_ID}
    assert rules.tier_spellings(old, ["production"], entitlements) == {
        "prod-eng-payments",
        PRODUCTION_GROUP_ID,
        "Prod-Eng-Payments",
    }
    grants = [
        _by_id_grant("by-id", PRODUCTION_GROUP_ID),
        # Provisioning: no status.groupId yet, its Entitlement's resolution says which group it is.
        _by_id_grant("respelled-new", "Prod-Eng-Payments", reason="Provisioning"),
        # Active: its own status.groupId says it, though no Entitlement spells the group so any more.
        _by_id_grant("respelled-old", "prod-eng-PAYMENTS", PRODUCTION_GROUP_ID),
        _by_id_grant("by-id-ended", PRODUCTION_GROUP_ID, PRODUCTION_GROUP_ID, reason="Expired"),
        _by_id_grant("another", "prod-eng-ledger", "other-id"),
        _by_id_grant("unresolved", "PROD-ENG-PAYMENTS", reason="Provisioning"),
    ]
    held = ["by-id", "respelled-new", "respelled-old"]
    assert rules.catalog_dependents(old, grants, ["production"], entitlements=entitlements) == held
    assert rules.catalog_dependents(old, grants, ["production"], by_group_only=True, entitlements=entitlements) == held
    assert rules.catalog_dependents(old, grants, ["baseline"], entitlements=entitlements) == []
    # Without the Entitlements, the grant not yet Active in another spelling is not known to be of the group.
    assert rules.catalog_dependents(old, grants, ["production"]) == ["by-id", "respelled-old"]
    assert (rules.GRANT_GROUP_ID_FIELD, PRODUCTION_GROUP_ID) in rules.dependent_selections(old, ["production"])
    assert rules.dependent_selections(old, ["production"], by_group_only=True, entitlements=entitlements) == [
        (rules.GRANT_GROUP_FIELD, PRODUCTION_GROUP_ID),
        (rules.GRANT_GROUP_FIELD, "Prod-Eng-Payments"),
        (rules.GRANT_GROUP_FIELD, "prod-eng-payments"),
        (rules.GRANT_GROUP_ID_FIELD, PRODUCTION_GROUP_ID),
    ]


def test_a_group_id_resolved_from_another_groupname_is_not_the_tiers() -> None:
    """A pass that has not yet followed a new `groupName` still reports the old group's id: the tier
    is matched by its name alone until a pass resolves the name it has now."""
    old = _resolved_catalog()
    old["spec"]["production"]["groupName"] = "prod-eng-payments-v2"
    assert groupids.tier_group_ids(old) == {}
    assert rules.tier_spellings(old, ["production"]) == {"prod-eng-payments-v2"}
    grants = [_by_id_grant("of-the-old-group", PRODUCTION_GROUP_ID, PRODUCTION_GROUP_ID)]
    assert rules.catalog_dependents(old, grants, ["production"]) == []
    unresolved = _example_catalog()
    assert groupids.tier_group_ids(unresolved) == {}
    assert rules.dependent_selections(unresolved, ["production"], by_group_only=True) == [
        (rules.GRANT_GROUP_FIELD, "prod-eng-payments")
    ]


def test_the_catalog_webhook_refuses_removing_or_regrouping_a_tier_under_grants_of_its_group_by_id() -> None:
    old = _resolved_catalog()
    without = copy.deepcopy(old)
    del without["spec"]["production"]
    regrouped = copy.deepcopy(old)
    regrouped["spec"]["production"]["groupName"] = "prod-eng-payments-v2"
    by_id = _Stored([_by_id_grant("alice-by-id", PRODUCTION_GROUP_ID)])
    with pytest.raises(kopf.AdmissionError, match=r"\(alice-by-id\): removing spec.production would delete them"):
        _review(by_id, "UPDATE", old, without, "gitops@example.com")
    assert {rules.GRANT_GROUP_FIELD: PRODUCTION_GROUP_ID} in by_id.selectors
    assert {rules.GRANT_GROUP_ID_FIELD: PRODUCTION_GROUP_ID} in by_id.selectors
    with pytest.raises(kopf.AdmissionError, match=r"\(alice-by-id\) through their membership of prod-eng-payments"):
        _review(by_id, "UPDATE", old, regrouped, "gitops@example.com")
    with pytest.raises(kopf.AdmissionError, match=r"\(alice-by-id\): deleting it"):
        _review(by_id, "DELETE", old, None, "gitops@example.com")
    # Spelled otherwise and not yet Active: found through the Entitlement whose group resolved to the id.
    respelled = [_by_id_grant("bob-respelled", "Prod-Eng-Payments", reason="Provisioning")]
    entitlement = _group_entitlement("respelled", PRODUCTION_GROUP_ID, groupName="Prod-Eng-Payments")
    with pytest.raises(kopf.AdmissionError, match=r"\(bob-respelled\) through their membership"):
        _review(_Stored(respelled, entitlements=[entitlement]), "UPDATE", old, regrouped, "gitops@example.com")
    with pytest.raises(kopf.AdmissionError, match=r"\(bob-respelled\): deleting it"):
        _review(_Stored(respelled, entitlements=[entitlement]), "DELETE", old, None, "gitops@example.com")
    # Active in another spelling: its own status.groupId, selected by field, says it.
    active = _Stored([_by_id_grant("carol", "PROD-ENG-PAYMENTS", PRODUCTION_GROUP_ID)])
    with pytest.raises(kopf.AdmissionError, match=r"\(carol\): removing spec.production"):
        _review(active, "UPDATE", old, without, "gitops@example.com")
    # A server that cannot select by field answers every grant once: still found.
    every = _Stored(
        [_stored_grant("bob-old", "prod-eng-ledger"), _by_id_grant("alice-by-id", PRODUCTION_GROUP_ID)], False
    )
    with pytest.raises(kopf.AdmissionError, match=r"\(alice-by-id\) through their membership"):
        _review(every, "UPDATE", old, regrouped, "gitops@example.com")
    assert every.listed.count(names.GRANTS) == 1
    # Ended, or of another group: nothing holds the tier.
    _review(
        _Stored([_by_id_grant("alice-by-id", PRODUCTION_GROUP_ID, PRODUCTION_GROUP_ID, reason="Revoked")]),
        "UPDATE",
        old,
        without,
        "gitops@example.com",
    )
    _review(_Stored([_by_id_grant("dan", "prod-eng-ledger", "other-id")]), "UPDATE", old, regrouped, "gitops")

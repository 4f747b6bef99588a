"""Session revocation finds a grant's catalog tier by the group's identity, not its spelling: a grant
of an Entitlement naming the tier's group by `groupId` (its `spec.groupName` the id), or spelling it
otherwise with the id in its `status.groupId`, has its user denied there (`sessions.deny`), through
the catalog index the watch keeps (`permissionsets.observe`): the tier's `groupName` and the GroupId
its status records for that name (`groupids.tier_group_ids`)."""

from __future__ import annotations

from typing import Any

import pytest

from jitaccess.adapters.kube import BY_NAME
from jitaccess.api import names
from jitaccess.api.models import AccessGrant
from jitaccess.errors import NotFound
from jitaccess.handlers import permissionsets, sessions
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.factories import grant
from tests.unit.test_grant_ended_while_provisioning import _Kube

GROUP_ID = "g-prod-123"


def _catalog(recorded_name: str = "prod-eng-payments") -> dict[str, Any]:
    tier = {"accounts": ["444455556666"], "sessionDuration": "1h"}
    return {
        "metadata": {"name": "payments"},
        "spec": {
            "region": "eu-west-1",
            "baseline": {
                "groupName": "eng-payments",
                "accounts": ["111122223333"],
                "sessionDuration": "8h",
                "permissions": {"managedPolicies": ["arn:aws:iam::aws:policy/ReadOnlyAccess"]},
            },
            "production": {
                "groupName": "prod-eng-payments",
                **tier,
                "adds": {"managedPolicies": ["arn:aws:iam::aws:policy/PowerUserAccess"]},
            },
        },
        "status": {
            "baseline": {"groupName": "eng-payments", "groupId": "g-base-1"},
            "production": {"groupName": recorded_name, "groupId": GROUP_ID},
        },
    }


def _grant(spelled: str, group_id: str | None = None) -> AccessGrant:
    found = grant(**({"groupId": group_id} if group_id else {}))
    found.spec.group_name = spelled
    return found


class _Directory:
    """Identity Center's GetGroupId, by DisplayName, and who asked for what."""

    def __init__(self, groups: dict[str, str]) -> None:
        self.groups = groups
        self.asked: list[str] = []

    def resolve_group(self, name: str) -> str:
        self.asked.append(name)
        if name not in self.groups:
            raise NotFound(f"no group {name}", operation="GetGroupId")
        return self.groups[name]


@pytest.fixture
def system() -> tuple[Runtime, _Kube]:
    kube = _Kube()
    rt = Runtime(Settings(), _Directory({}), kube)  # type: ignore[arg-type]
    return rt, kube


def _directory(rt: Runtime, groups: dict[str, str]) -> _Directory:
    directory = _Directory(groups)
    rt.identity_center = directory  # type: ignore[assignment]
    return directory


def _store(rt: Runtime, kube: _Kube, catalog: dict[str, Any]) -> None:
    kube.put(names.CATALOGS, catalog)
    permissionsets.observe(rt, kube.get(names.CATALOGS, "payments"), "payments")


def _denied(kube: _Kube, tier: str = "production") -> list[str]:
    status = (kube.get(names.CATALOGS, "payments") or {}).get("status", {})
    return [d["userId"] for d in status.get(tier, {}).get("deniedUsers") or []]


def test_a_grant_naming_the_tier_group_by_its_id_is_denied_in_that_tier(system: Any) -> None:
    rt, kube = system
    _store(rt, kube, _catalog())
    assert sessions.deny(rt, _grant(GROUP_ID), "u-alice") == 1
    assert _denied(kube) == ["u-alice"]
    assert _denied(kube, "baseline") == []


def test_a_grant_spelling_the_group_otherwise_is_denied_by_its_recorded_group_id(system: Any) -> None:
    rt, kube = system
    _store(rt, kube, _catalog())
    assert sessions.deny(rt, _grant("Prod-Eng-Payments", GROUP_ID), "u-alice") == 1
    assert _denied(kube) == ["u-alice"]


def test_the_group_id_its_membership_was_keyed_by_finds_the_tier_too(system: Any) -> None:
    rt, kube = system
    _store(rt, kube, _catalog())
    assert sessions.deny(rt, _grant("Prod-Eng-Payments"), "u-alice", GROUP_ID) == 1
    assert _denied(kube) == ["u-alice"]


def test_an_id_recorded_for_an_older_group_name_is_not_trusted(system: Any) -> None:
    rt, kube = system
    # The status' id was resolved from the tier's former groupName: not the group the spec names.
    _store(rt, kube, _catalog(recorded_name="prod-eng-payments-old"))
    assert sessions.deny(rt, _grant(GROUP_ID), "u-alice") == 0
    assert _denied(kube) == []
    # Named as the spec names it, the grant is found as before.
    assert sessions.deny(rt, _grant("prod-eng-payments"), "u-alice") == 1
    assert _denied(kube) == ["u-alice"]


def test_a_deleted_catalog_is_filed_under_neither_its_group_name_nor_its_id(system: Any) -> None:
    rt, kube = system
    _store(rt, kube, _catalog())
    kube.delete(names.CATALOGS, "payments", uid=BY_NAME)
    permissionsets.observe(rt, None, "payments")
    assert dict(rt.catalog_groups) == {}


def test_a_tier_no_pass_has_resolved_is_matched_by_the_id_identity_center_resolves_its_group_to(system: Any) -> None:
    rt, kube = system
    catalog = _catalog()
    del catalog["status"]
    _store(rt, kube, catalog)
    directory = _directory(rt, {"eng-payments": "g-base-1", "prod-eng-payments": GROUP_ID})
    assert sessions.deny(rt, _grant(GROUP_ID), "u-alice") == 1
    assert _denied(kube) == ["u-alice"]
    assert _denied(kube, "baseline") == []
    assert sorted(directory.asked) == ["eng-payments", "prod-eng-payments"]


def test_a_tier_whose_group_identity_center_knows_not_or_as_another_is_not_denied(system: Any) -> None:
    rt, kube = system
    catalog = _catalog()
    del catalog["status"]
    _store(rt, kube, catalog)
    _directory(rt, {"prod-eng-payments": "g-other"})
    assert sessions.deny(rt, _grant(GROUP_ID), "u-alice") == 0
    assert _denied(kube) == [] and _denied(kube, "baseline") == []


def test_a_tier_spelled_otherwise_is_asked_about_though_its_id_is_recorded(system: Any) -> None:
    rt, kube = system
    _store(rt, kube, _catalog())
    # The group was recreated under the tier's name: the id recorded is the old one's.
    directory = _directory(rt, {"prod-eng-payments": "g-prod-new"})
    assert sessions.deny(rt, _grant("Prod-Eng-Payments", "g-prod-new"), "u-alice") == 1
    assert _denied(kube) == ["u-alice"]
    assert directory.asked == ["prod-eng-payments"]
    # A grant of another group, every tier resolved: Identity Center is not asked.
    directory.asked.clear()
    assert sessions.deny(rt, _grant("prod-eng-ledger", "g-ledger"), "u-bob") == 0
    assert directory.asked == []

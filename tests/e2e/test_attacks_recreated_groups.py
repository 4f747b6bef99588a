"""Robustness: an Identity Center group deleted and re-created under the same name while grants of
it run (a Terraform replace, a console mistake undone), the operator running throughout.

The old group's memberships went with it; a grant made since is in the new group. A grant of the
old group still Active must not keep the new group's membership of another grant once that one
ends: it holds nothing there (its `status.groupId` is the old group's), so the end removes it.
"""

from __future__ import annotations

from tests.support.harness import Jit, eventually

GROUP = "prod-eng-recreated"
ENTITLEMENT = "recreated"
ALICE = "alice@example.com"


# --- 122. a group deleted and created again under its name while grants of it run (docs/security.md)


def _entitlement() -> dict[str, object]:
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "Entitlement",
        "metadata": {"name": ENTITLEMENT},
        "spec": {"owner": "payments", "identityCenter": {"groupName": GROUP}, "maxDuration": "4h"},
    }


def test_a_grant_of_the_deleted_group_keeps_nothing_in_the_group_recreated_under_its_name(system: Jit) -> None:
    ic = system.ic
    old = ic.create_group(GROUP)
    system.apply(_entitlement())
    try:
        system.wait_reason("entitlement", ENTITLEMENT, "Resolved", timeout=30)
        system.request("recreated-long", ENTITLEMENT, duration="4h")
        long = system.wait_reason("accessgrant", "recreated-long", "Active", timeout=30)
        assert long["status"]["groupId"] == old
        assert ic.members_of(GROUP) == {ALICE}

        # The group is replaced: its memberships go with it (as AWS does), its name is taken again.
        ic.client().delete_group(IdentityStoreId=ic.identity_store_id, GroupId=old)
        new = ic.create_group(GROUP)
        assert new != old and ic.members_of(GROUP) == set()
        eventually(
            lambda: (system.get("entitlement", ENTITLEMENT) or {}).get("status", {}).get("groupId") == new or None,
            timeout=30,
            what="the Entitlement resolves the new group",
        )

        # A second grant of alice's, in the new group, ends long before the first.
        system.request("recreated-short", ENTITLEMENT, duration="6s")
        short = system.wait_reason("accessgrant", "recreated-short", "Active", timeout=30)
        assert short["status"]["groupId"] == new
        assert ic.members_of(GROUP) == {ALICE}
        system.wait_reason("accessgrant", "recreated-short", "Expired", timeout=30)

        # The long grant is in the old group, which is gone: nothing backs alice in the new one.
        eventually(
            lambda: ic.members_of(GROUP) == set() or None,
            timeout=15,
            what=f"alice out of the new {GROUP} once her only grant in it expired; log:\n{system.operator.tail(30)}",
        )
        assert system.ready_reason("accessgrant", "recreated-long") == "Active"
    finally:
        system.clean()
        system.kubectl("delete", "entitlement", ENTITLEMENT, "--ignore-not-found")
    assert ic.members_of(GROUP) == set()

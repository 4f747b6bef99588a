"""Robustness: an Identity Center group deleted and re-created under the same name while grants of
it run (a Terraform replace, a console mistake undone), the operator running throughout.

The old group's memberships went with it; a grant made since is in the new group. A grant of the
old group still Active must not keep the new group's membership of another grant once that one
ends: it holds nothing there (its `status.groupId` is the old group's), so the end removes it.
A grant made while the operator still has the old group's id cached (`Runtime.cached`, a minute)
goes into the new group too, rather than failing on the old id.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.harness import Jit, entitlement, eventually

GROUP = "prod-eng-recreated"
ENTITLEMENT = "recreated"
ALICE = "alice@example.com"


# --- 122. a group deleted and created again under its name while grants of it run (docs/security.md)


def test_a_grant_of_the_deleted_group_keeps_nothing_in_the_group_recreated_under_its_name(system: Jit) -> None:
    ic = system.ic
    old = ic.create_group(GROUP)
    system.apply(entitlement(ENTITLEMENT, GROUP, eligible=(), maxDuration="4h"))
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


def test_a_grant_made_while_the_replaced_groups_id_is_cached_goes_into_the_new_group(
    system: Jit, tmp_path: Path
) -> None:
    """Without the fresh lookup, the add went to the old id, Identity Center answered that no such
    group exists, and the grant ended Failed ("group or user disappeared"): the requester asked again.
    The Entitlement's periodic check, which resolves its group afresh, is put out of the way (every
    10 minutes), so that the id the grants use is the one cached by the first grant's lookup."""
    group, named = "prod-eng-replaced", "replaced"
    ic = system.ic
    old = ic.create_group(group)
    with system.replaced(tmp_path, JITACCESS_RESYNC_SECONDS="600") as jit:
        jit.apply(entitlement(named, group, eligible=(), maxDuration="4h"))
        try:
            jit.wait_reason("entitlement", named, "Resolved", timeout=30)
            jit.request("replaced-first", named, duration="1h")
            first = jit.wait_reason("accessgrant", "replaced-first", "Active", timeout=30)
            assert first["status"]["groupId"] == old and ic.members_of(group) == {ALICE}

            # Replaced, seconds after the first grant's lookup: well within the cache's minute.
            ic.client().delete_group(IdentityStoreId=ic.identity_store_id, GroupId=old)
            new = ic.create_group(group)
            assert new != old and ic.members_of(group) == set()

            jit.request("replaced-second", named, duration="1h")
            second = jit.wait_reason("accessgrant", "replaced-second", "Active", "Failed", timeout=30)
            ready = next(c for c in second["status"]["conditions"] if c["type"] == "Ready")
            assert ready["reason"] == "Active", f"{ready['message']}; log:\n{jit.operator.tail(30)}"
            assert second["status"]["groupId"] == new, "the id the member was added to (the holders index files by it)"
            assert ic.members_of(group) == {ALICE}, "alice is in the new group"
            jit.wait_reason("accessrequest", "replaced-second", "Granted")
        finally:
            jit.clean()
            jit.kubectl("delete", "entitlement", named, "--ignore-not-found", "--timeout=60s")
    assert ic.members_of(group) == set()

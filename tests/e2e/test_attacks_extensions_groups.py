"""Extension attacks of docs/security.md on what an Entitlement gives (127): attack 58 with the
Entitlement moved to another group by its id (`groupId`, which takes precedence) while its
`groupName` still names the group the grants hold. Plain kubectl as the users of examples/, against
the real API server, the webhooks, RBAC and the admission policy, and Identity Center's emulator.

Each test asserts the refusal (the field, the group, the fix), that the grant's end did not move,
and (the `system` fixture, after each test) that no Identity Center membership is left.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_attacks_extensions import ALICE, APPROVED, BOB, LENA, refused, try_extend, unmoved
from tests.support.harness import Jit, entitlement, eventually

pytestmark = pytest.mark.e2e

NAME, OLD, NEW = "ext-repointed", "ext-repointed-1", "ext-repointed-2"


@pytest.fixture
def jit(system: Jit) -> Iterator[Jit]:
    yield system
    system.kubectl("delete", "accessextensions", "--all", "--wait=false", check=False)


def _repoint(jit: Jit, manifest: dict[str, Any], target: dict[str, str], group_id: str) -> None:
    """GitOps: the Entitlement's `identityCenter` is now `target`; wait until it resolved `group_id`."""
    manifest["spec"]["identityCenter"] = target
    jit.apply(manifest)
    eventually(
        lambda: (jit.get("entitlement", NAME) or {}).get("status", {}).get("groupId") == group_id or None,
        timeout=30,
        what=f"Entitlement {NAME} resolved to {group_id}",
    )


# --- 127. an extension of a grant of the Entitlement's former group, moved by its groupId -------------


def test_a_grant_of_the_group_the_groupname_still_names_is_not_extended_once_groupid_gives_another(
    jit: Jit,
) -> None:
    old_id, new_id = (jit.ic.create_group(group) for group in (OLD, NEW))
    for group in (OLD, NEW):
        jit.ic.empty_group(group)  # left by an earlier run
    # prod-eng-ledger of examples/ (team ledger, bob a member: at once), on a group of its own.
    manifest = entitlement(NAME, OLD, owner="ledger", maxDuration="4h", approval={"autoApproveOwnerTeam": True})
    jit.apply(manifest)
    jit.wait_reason("entitlement", NAME, "Resolved", timeout=30)
    try:
        jit.request("bob-repointed", NAME, user=BOB, duration="1h", reason="INC-127 e2e")
        bob = jit.wait_reason("accessgrant", "bob-repointed", "Active")
        assert bob["status"]["groupId"] == old_id
        jit.request("alice-repointed", NAME, user=ALICE, duration="1h", reason="INC-127 e2e")
        jit.wait_reason("accessrequest", "alice-repointed", "Pending")
        jit.kubectl("annotate", "accessrequest", "alice-repointed", f"{APPROVED}=true", user=LENA)
        alice = jit.wait_reason("accessgrant", "alice-repointed", "Active")
        assert try_extend(jit, "alice-repointed-1", "alice-repointed", "30m", ALICE).returncode == 0
        jit.wait_reason("accessextension", "alice-repointed-1", "Pending")
        # GitOps: the new group by its id, which takes precedence; the old name left beside it.
        _repoint(jit, manifest, {"groupId": new_id, "groupName": OLD}, new_id)
        # A new extension of the old group's grant is refused at admission ...
        refused(
            try_extend(jit, "bob-repointed-1", "bob-repointed", "30m", BOB),
            f"Entitlement {NAME} changed since AccessGrant bob-repointed was granted: it now gives group {new_id}",
            f"request access again (kubectl jit request {NAME})",
        )
        # ... and one that waited fails when approved.
        jit.kubectl("annotate", "accessextension", "alice-repointed-1", f"{APPROVED}=true", user=LENA)
        jit.wait_reason("accessextension", "alice-repointed-1", "Failed", "Extended")
        ready = jit.condition("accessextension", "alice-repointed-1", "Ready") or {}
        assert ready["reason"] == "Failed", ready
        assert f"now gives group {new_id}, and the grant holds {OLD}" in ready["message"], ready
        unmoved(jit, bob)
        unmoved(jit, alice)
        # The old group's id given beside its name is still the group the grant holds: extended.
        _repoint(jit, manifest, {"groupId": old_id, "groupName": OLD}, old_id)
        assert try_extend(jit, "bob-repointed-2", "bob-repointed", "30m", BOB).returncode == 0
        jit.wait_reason("accessextension", "bob-repointed-2", "Extended")
    finally:
        jit.clean()
        jit.kubectl("delete", "entitlement", NAME, "--ignore-not-found", "--timeout=60s")
        for group in (OLD, NEW):
            jit.ic.empty_group(group)

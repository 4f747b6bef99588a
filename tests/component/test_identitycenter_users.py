"""The Identity Center adapter's listing of users against the strict emulator: every page, user
names by UserId, and disabled accounts (``UserStatus``), which the eligibility re-check reads."""

from __future__ import annotations

import pytest

from devenv.emulator import IdentityCenterEmulator
from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.domain.eligibility import User
from jitaccess.errors import NotFound


def test_users_lists_every_page(adapter: IdentityCenter, fresh_identity_center: IdentityCenterEmulator) -> None:
    ids = fresh_identity_center.seed_users(f"user{i:03}@example.com" for i in range(250))
    listed = adapter.users()
    assert len(listed) == 250 + 7, "the seeded seven and the 250 new ones, over three pages"
    assert all(listed[uid] == User(name) for name, uid in ids.items())
    assert listed[fresh_identity_center.user_id("alice@example.com")] == User("alice@example.com")


def test_a_disabled_user_is_listed_and_described_as_disabled(
    adapter: IdentityCenter, fresh_identity_center: IdentityCenterEmulator
) -> None:
    bob = fresh_identity_center.user_id("bob@example.com")
    assert adapter.user_enabled(bob)
    fresh_identity_center.set_user_enabled("bob@example.com", False)
    assert not adapter.user_enabled(bob)
    assert adapter.users()[bob] == User("bob@example.com", enabled=False)
    fresh_identity_center.set_user_enabled("bob@example.com", True)
    assert adapter.users()[bob].enabled


def test_a_deleted_user_is_not_listed_and_not_found(
    adapter: IdentityCenter, fresh_identity_center: IdentityCenterEmulator
) -> None:
    eve = fresh_identity_center.user_id("eve@example.com")
    fresh_identity_center.client().delete_user(IdentityStoreId=fresh_identity_center.identity_store_id, UserId=eve)
    assert eve not in adapter.users()
    with pytest.raises(NotFound):
        adapter.user_enabled(eve)

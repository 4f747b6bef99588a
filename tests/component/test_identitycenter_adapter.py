"""The Identity Center adapter against the strict emulator: ensure-style writes, error
classification by code, the client-side rate limit, and fault handling."""

from __future__ import annotations

import threading
import time

import pytest

from devenv.emulator import IdentityCenterEmulator
from jitaccess.adapters.identitycenter import IdentityCenter, RateLimiter
from jitaccess.errors import NotFound, PermanentFailure, RetryLater


def test_resolves_users_and_groups_by_name(
    adapter: IdentityCenter, fresh_identity_center: IdentityCenterEmulator
) -> None:
    assert adapter.resolve_user("alice@example.com") == fresh_identity_center.user_id("alice@example.com")
    group_id = adapter.resolve_group("prod-eng-payments")
    assert group_id == fresh_identity_center.group_id("prod-eng-payments")
    assert adapter.resolve_group(group_id) == group_id, "a group id resolves to itself"


def test_unknown_names_are_not_found(adapter: IdentityCenter) -> None:
    with pytest.raises(NotFound):
        adapter.resolve_user("nobody@example.com")
    with pytest.raises(NotFound):
        adapter.resolve_group("no-such-group")


def test_add_member_is_an_ensure(adapter: IdentityCenter, fresh_identity_center: IdentityCenterEmulator) -> None:
    user, group = adapter.resolve_user("alice@example.com"), adapter.resolve_group("prod-eng-payments")
    first = adapter.ensure_member(group, user)
    # The strict emulator answers ConflictException for the duplicate, as AWS does: found, not added.
    second = adapter.ensure_member(group, user)
    assert first == (second[0], True) and second[1] is False
    assert fresh_identity_center.members_of("prod-eng-payments") == {"alice@example.com"}


def test_remove_member_is_an_ensure(adapter: IdentityCenter, fresh_identity_center: IdentityCenterEmulator) -> None:
    user, group = adapter.resolve_user("alice@example.com"), adapter.resolve_group("prod-eng-payments")
    membership = adapter.ensure_member(group, user)[0]
    assert adapter.remove_member(group, user, membership) is True
    # Gone already (AWS: ResourceNotFoundException): done, not an error.
    assert adapter.remove_member(group, user, membership) is False
    assert adapter.remove_member(group, user) is False
    assert fresh_identity_center.members_of("prod-eng-payments") == set()


def test_stale_membership_id_still_removes_the_current_one(adapter: IdentityCenter) -> None:
    user, group = adapter.resolve_user("alice@example.com"), adapter.resolve_group("prod-eng-payments")
    old = adapter.ensure_member(group, user)[0]
    adapter.remove_member(group, user, old)
    adapter.ensure_member(group, user)[0]
    assert adapter.remove_member(group, user, old) is True
    assert adapter.find_membership(group, user) is None


def test_timed_out_write_that_was_applied(
    adapter: IdentityCenter, fresh_identity_center: IdentityCenterEmulator
) -> None:
    user, group = adapter.resolve_user("bob@example.com"), adapter.resolve_group("prod-eng-ledger")
    fresh_identity_center.faults.fail("CreateGroupMembership", error="InternalServerException", after_apply=True)
    with pytest.raises(RetryLater):
        adapter.ensure_member(group, user)[0]
    # The retry finds the membership the failed call did create, and creates no second one.
    membership, added = adapter.ensure_member(group, user)
    assert membership == adapter.find_membership(group, user) and not added
    assert fresh_identity_center.members_of("prod-eng-ledger") == {"bob@example.com"}


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("ThrottlingException", RetryLater),
        ("InternalServerException", RetryLater),
        ("ServiceUnavailableException", RetryLater),
        ("AccessDeniedException", PermanentFailure),
        ("ValidationException", PermanentFailure),
        ("ResourceNotFoundException", NotFound),
    ],
)
def test_errors_are_classified_by_code(
    adapter: IdentityCenter, fresh_identity_center: IdentityCenterEmulator, code: str, kind: type[Exception]
) -> None:
    fresh_identity_center.faults.fail("GetUserId", error=code)
    with pytest.raises(kind):
        adapter.resolve_user("alice@example.com")


def test_a_concurrent_modification_is_retried_and_a_duplicate_is_found(
    adapter: IdentityCenter, fresh_identity_center: IdentityCenterEmulator
) -> None:
    user, group = adapter.resolve_user("alice@example.com"), adapter.resolve_group("prod-eng-payments")
    membership = adapter.ensure_member(group, user)[0]
    # identitystore says in `Reason` whether a conflict passes: this one does, the call is retried.
    fresh_identity_center.faults.fail(
        "DeleteGroupMembership", error="ConflictException", reason="CONCURRENT_MODIFICATION"
    )
    with pytest.raises(RetryLater) as exc:
        adapter.remove_member(group, user, membership)
    assert exc.value.code == "ConflictException"
    fresh_identity_center.faults.fail(
        "CreateGroupMembership", error="ConflictException", reason="CONCURRENT_MODIFICATION"
    )
    with pytest.raises(RetryLater):
        adapter.ensure_member(group, user)
    # The duplicate (the strict emulator's UNIQUENESS_CONSTRAINT_VIOLATION, as AWS) stays a member found.
    assert adapter.ensure_member(group, user) == (membership, False)
    assert adapter.remove_member(group, user, membership) is True


def test_eligibility_lists_missing_groups(adapter: IdentityCenter) -> None:
    eligible, trained = adapter.resolve_group("prod-eligible"), adapter.resolve_group("pci-secure-code-trained")
    assert adapter.missing_groups(adapter.resolve_user("alice@example.com"), [eligible, trained]) == []
    assert adapter.missing_groups(adapter.resolve_user("mallory@example.com"), [eligible, trained]) == [trained]
    assert adapter.missing_groups(adapter.resolve_user("eve@example.com"), [eligible, trained]) == [eligible, trained]


def test_group_members_follows_pages(adapter: IdentityCenter, fresh_identity_center: IdentityCenterEmulator) -> None:
    group = fresh_identity_center.create_group("big-group")
    names = [f"user{i}@example.com" for i in range(230)]
    for name in names:
        fresh_identity_center.create_user(name)
        fresh_identity_center.add_member("big-group", name)
    assert len(adapter.group_members(group)) == 230


def test_rate_limiter_holds_the_rate() -> None:
    limiter = RateLimiter(50.0, burst=1)
    started = time.monotonic()
    for _ in range(26):
        limiter.acquire()
    elapsed = time.monotonic() - started
    assert elapsed >= 0.45, f"26 calls at 50/s with no burst took only {elapsed:.2f}s"


def test_rate_limiter_is_thread_safe() -> None:
    limiter = RateLimiter(100.0, burst=1)
    count = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal count
        for _ in range(10):
            limiter.acquire()
            with guard:
                count += 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count == 40
    assert time.monotonic() - started >= 0.35


def test_rate_limit_zero_means_unlimited() -> None:
    # No wait is ever asked for, however many calls (acquire sleeps only for what take asks).
    limiter = RateLimiter(0)
    assert all(limiter.take() == 0.0 for _ in range(10_000))


def test_sdk_retries_wait_for_a_token_of_their_api(
    fresh_identity_center: IdentityCenterEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore retries a throttled call itself: each attempt takes a token of the call's API, or
    the retries go out over the quota beside the paced calls."""
    env = fresh_identity_center.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    taken: list[str] = []

    class Counting(RateLimiter):
        def acquire(self) -> None:
            taken.append(self.name)
            super().acquire()

        name = ""

    def counting(operation: str) -> RateLimiter:
        limiter = Counting(1000)
        limiter.name = operation
        return limiter

    monkeypatch.setattr(IdentityCenter, "_limiter", lambda _self, operation: counting(operation))
    adapter = IdentityCenter.connect(
        env["JITACCESS_IDENTITY_STORE_ID"],
        region=env["AWS_DEFAULT_REGION"],
        endpoint_url=env["AWS_ENDPOINT_URL"],
        rate_limit=1000,
        max_attempts=3,
    )
    adapter.resolve_group("prod-eligible")
    assert taken == ["GetGroupId"]
    fresh_identity_center.faults.fail("GetUserId", times=2)  # ThrottlingException twice, then the answer
    adapter.resolve_user("alice@example.com")
    assert taken == ["GetGroupId", "GetUserId", "GetUserId", "GetUserId"], "three attempts, three tokens"

"""The bound on Identity Center calls in flight: callers beyond it wait, and how many wait is a metric."""

from __future__ import annotations

import threading
import time

from prometheus_client import REGISTRY

from jitaccess.adapters.identitycenter import CallQueue, IdentityCenter, RateLimiter
from jitaccess.adapters.ssoadmin import SsoAdmin


class _SlowClient:
    """Counts how many calls run at once; each holds its slot until released."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.release = threading.Event()
        self._lock = threading.Lock()

    def get_user_id(self, **_: object) -> dict[str, str]:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.release.wait(5)
        with self._lock:
            self.running -= 1
        return {"UserId": "u-1"}


def _gauge() -> float | None:
    return REGISTRY.get_sample_value("jitaccess_identitycenter_queued")


def test_calls_beyond_the_bound_wait_and_are_counted_as_queued() -> None:
    client = _SlowClient()
    ic = IdentityCenter(client, "d-1", rate_limit=0, max_in_flight=3)
    threads = [threading.Thread(target=ic.resolve_user, args=(f"user{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while (ic.queue.queued < 5 or client.running < 3) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.running == 3 and ic.queue.queued == 5
    assert _gauge() == 5
    client.release.set()
    for thread in threads:
        thread.join(5)
    assert client.most == 3
    assert ic.queue.queued == 0 and _gauge() == 0


def test_a_free_slot_is_taken_without_waiting() -> None:
    queue = CallQueue(1)
    with queue:
        assert queue.queued == 0
    with queue:
        pass
    assert queue.queued == 0


class _TwoApis:
    """A lookup returns at once (GetUserId; sso-admin's DescribePermissionSet); a removal is recorded
    (DeleteGroupMembership; sso-admin's DeleteAccountAssignment)."""

    def __init__(self) -> None:
        self.deleted = threading.Event()
        self.looked_up = threading.Event()

    def get_user_id(self, **_: object) -> dict[str, str]:
        self.looked_up.set()
        return {"UserId": "u-1"}

    def delete_group_membership(self, **_: object) -> dict[str, str]:
        self.deleted.set()
        return {}

    def describe_permission_set(self, **_: object) -> dict[str, object]:
        self.looked_up.set()
        return {"PermissionSet": {}}

    def delete_account_assignment(self, **_: object) -> dict[str, object]:
        self.deleted.set()
        return {"AccountAssignmentDeletionStatus": {"Status": "SUCCEEDED", "RequestId": "r-1"}}


def test_callers_waiting_for_one_apis_quota_hold_no_slot_another_api_needs() -> None:
    # A burst of lookups (one a second, the quota spent) fills more threads than there are slots;
    # a revocation, on another API with its own quota, goes out at once instead of behind them.
    # The quota refills one token an hour: a revocation queued behind the lookups would wait for
    # hours, so returning at all (the generous bound only stops a hung test) is the proof.
    client = _TwoApis()
    ic = IdentityCenter(client, "d-1", rate_limit=1 / 3600, max_in_flight=2)
    lookups = [threading.Thread(target=ic.resolve_user, args=(f"user{i}",), daemon=True) for i in range(6)]
    for thread in lookups:
        thread.start()
    assert client.looked_up.wait(timeout=30)  # the first lookup took the one token
    time.sleep(0.2)  # the others reach the limiter and wait for theirs
    remover = threading.Thread(target=ic.remove_member, args=("g-1", "u-1"), kwargs={"membership_id": "m-1"})
    remover.start()
    remover.join(timeout=30)
    assert client.deleted.is_set()


def test_whether_a_membership_could_be_added_now_takes_no_token() -> None:
    clock = [0.0]
    limiter = RateLimiter(rate=2, burst=1, clock=lambda: clock[0])
    assert limiter.ready() and limiter.ready()  # asking takes nothing
    limiter.acquire()
    assert not limiter.ready()  # the quota is spent: a caller would wait
    clock[0] += 0.5
    assert limiter.ready()
    assert RateLimiter(rate=0).ready()  # no limit


def test_the_membership_quota_is_asked_of_its_own_api() -> None:
    ic = IdentityCenter(_SlowClient(), "d-1", rate_limit=1, max_in_flight=3)
    assert ic.can_add_member_now()
    ic._limiter("GetUserId").acquire()  # another API's quota spent: no matter
    assert ic.can_add_member_now()
    ic._limiter("CreateGroupMembership").acquire()
    assert not ic.can_add_member_now()


def test_sso_admin_callers_waiting_for_a_quota_hold_no_slot_of_the_shared_queue() -> None:
    # The sso-admin client shares the identity store's queue (one per replica): its callers wait for
    # their token before they take a slot, as the identity store's do. With one slot, a caller that
    # held it while waiting an hour for DescribePermissionSet's next token kept every other call
    # out: an account assignment's removal, and the identity store's own revocations.
    client = _TwoApis()
    queue = CallQueue(1)
    sso = SsoAdmin(client, "arn:aws:sso:::instance/ssoins-1", rate_limit=1 / 3600, queue=queue)
    first = threading.Thread(target=sso._call, args=("DescribePermissionSet", client.describe_permission_set))
    first.start()
    first.join(timeout=30)
    assert client.looked_up.is_set()  # it took the one token
    waiting = threading.Thread(
        target=sso._call, args=("DescribePermissionSet", client.describe_permission_set), daemon=True
    )
    waiting.start()
    time.sleep(0.2)  # it reaches the limiter and waits for the next token
    assert waiting.is_alive()
    # The one slot is free: a removal goes out at once (one behind the waiting caller would wait an hour).
    remover = threading.Thread(target=sso.unassign, args=("arn:ps", "111111111111", "u-1", "USER"), daemon=True)
    remover.start()
    remover.join(timeout=10)
    assert client.deleted.is_set()

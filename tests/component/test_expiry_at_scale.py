"""1,000 Active grants with the same expiration time all end at it: one expiry scheduler, real API
server, strict Identity Center emulator.

The grants (with their requests and memberships) are written straight into the cluster and the
emulator as the operator leaves them, then adopted by the in-process handlers as after a restart.
The Identity Center rate limit is off: what is tested is the scheduler taking a thousand grants
due in the same second, not the AWS quota (20 deletions a second would take 50 s).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kopf.testing import KopfRunner

from devenv.controlplane import ControlPlane
from devenv.emulator import IdentityCenterEmulator
from devenv.paths import EXAMPLES
from jitaccess.api import names
from tests.component.test_handlers import prepare
from tests.support.harness import eventually

COUNT = 1000
GROUP = "prod-eng-payments"
ENTITLEMENT = "prod-eng-payments"
# Time to adopt the grants before they are due: they expire while the operator runs.
ADOPTION_SECONDS = 15.0


def _ts(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def cluster(control_plane: ControlPlane) -> Iterator[tuple[ControlPlane, IdentityCenterEmulator]]:
    with pytest.MonkeyPatch.context() as patcher:
        emulator = prepare(control_plane, patcher, JITACCESS_RATE_LIMIT="0")
        control_plane.kubectl(
            "apply", "-f", str(EXAMPLES / "01-teams.yaml"), "-f", str(EXAMPLES / "02-entitlements.yaml")
        )
        try:
            yield control_plane, emulator
        finally:
            # The operator has stopped, so nothing lets its finalizers go (grants', and those kopf
            # put on Entitlements): strip them, or the objects stay Terminating and the next test's
            # Entitlements of the same names never resolve. Then delete each kind in one call
            # (kubectl deletes one object at a time).
            api = _api(control_plane)

            def release(plural: str, obj: dict[str, Any]) -> None:
                if obj["metadata"].get("finalizers"):
                    api.patch_cluster_custom_object(
                        names.GROUP, names.VERSION, plural, obj["metadata"]["name"], {"metadata": {"finalizers": []}}
                    )

            for plural in (names.GRANTS, names.REQUESTS, names.ENTITLEMENTS, names.TEAMS):
                items = api.list_cluster_custom_object(names.GROUP, names.VERSION, plural)["items"]
                with concurrent.futures.ThreadPoolExecutor(16) as pool:
                    list(pool.map(lambda obj, plural=plural: release(plural, obj), items))
                api.delete_collection_cluster_custom_object(names.GROUP, names.VERSION, plural)
            emulator.stop()


def _api(control_plane: ControlPlane) -> Any:
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(str(control_plane.admin_kubeconfig), client_configuration=config)  # type: ignore[no-untyped-call]
    config.connection_pool_maxsize = 16
    client = kubernetes.client.ApiClient(config)
    return kubernetes.client.CustomObjectsApi(client)


def _seed(api: Any, emulator: IdentityCenterEmulator, users: list[str]) -> dt.datetime:
    """Requests, grants and memberships for `users`, all Active until one time; that time."""
    user_ids = emulator.seed_users(users)
    for group in ("prod-eligible", "pci-secure-code-trained"):
        emulator.add_members(group, users)
    membership_ids = emulator.add_members(GROUP, users)
    group_id = emulator.group_id(GROUP)

    def create(user: str) -> None:
        name = user.split("@", 1)[0]
        api.create_cluster_custom_object(
            names.GROUP, names.VERSION, names.REQUESTS,
            {"apiVersion": names.API_VERSION, "kind": "AccessRequest", "metadata": {"name": name},
             "spec": {"entitlement": ENTITLEMENT, "requester": user, "reason": "INFRA-9 expiry at scale",
                      "duration": "1h"}},
        )  # fmt: skip
        api.create_cluster_custom_object(
            names.GROUP, names.VERSION, names.GRANTS,
            {"apiVersion": names.API_VERSION, "kind": "AccessGrant",
             "metadata": {"name": name, "finalizers": [names.FINALIZER]},
             "spec": {"user": user, "userId": user_ids[user], "entitlement": ENTITLEMENT, "groupName": GROUP,
                      "request": name, "duration": "1h"}},
        )  # fmt: skip

    def activate(user: str, start: dt.datetime, end: dt.datetime) -> None:
        name = user.split("@", 1)[0]
        ready = {"type": "Ready", "status": "True", "lastTransitionTime": _ts(start)}
        api.patch_cluster_custom_object_status(
            names.GROUP, names.VERSION, names.GRANTS, name,
            {"status": {"userId": user_ids[user], "groupId": group_id, "membershipId": membership_ids[user],
                        "activationTime": _ts(start), "expirationTime": _ts(end),
                        "conditions": [{**ready, "reason": "Active", "message": f"until {_ts(end)}"}]}},
        )  # fmt: skip
        api.patch_cluster_custom_object_status(
            names.GROUP, names.VERSION, names.REQUESTS, name,
            {"status": {"requester": user, "grant": name, "duration": "1h", "expirationTime": _ts(end),
                        "conditions": [{**ready, "type": "Approved", "reason": "AutoApproved", "message": "auto"},
                                       {**ready, "reason": "Granted", "message": f"until {_ts(end)}"}]}},
        )  # fmt: skip

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        began = time.monotonic()
        list(pool.map(create, users))
        took = time.monotonic() - began
        # The status writes (two per user) take about as long as the creates did, or longer on a
        # loaded machine: the grants fall due once all are written and the operator has had time to
        # adopt them, with room for the writes to take twice as long again.
        start = dt.datetime.now(dt.UTC).replace(microsecond=0)
        end = start + dt.timedelta(seconds=int(3 * took + ADOPTION_SECONDS))
        list(pool.map(lambda user: activate(user, start, end), users))
    return end


def test_a_thousand_grants_due_in_the_same_second_all_expire(
    cluster: tuple[ControlPlane, IdentityCenterEmulator],
) -> None:
    control_plane, emulator = cluster
    api = _api(control_plane)
    users = [f"scale-{i:04d}@example.com" for i in range(COUNT)]
    expiration = _seed(api, emulator, users)
    assert dt.datetime.now(dt.UTC) < expiration, "seeding took longer than planned: the grants are overdue"

    removed: list[float] = []
    lock = threading.Lock()

    def listener(added: bool, _membership: Any) -> None:
        if not added:
            with lock:
                removed.append(time.time())

    emulator.watch_memberships(listener)
    with KopfRunner(["run", "-A", "--standalone", "-m", "jitaccess.handlers"], timeout=120) as runner:

        def expired() -> bool:
            items = api.list_cluster_custom_object(names.GROUP, names.VERSION, names.GRANTS)["items"]
            reasons = [
                next((c["reason"] for c in g.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)
                for g in items
            ]
            return len(items) == COUNT and all(r == names.EXPIRED for r in reasons)

        wait = (expiration - dt.datetime.now(dt.UTC)).total_seconds() + 60
        eventually(expired, timeout=wait, interval=1.0, what="every grant Expired")
        requests = api.list_cluster_custom_object(names.GROUP, names.VERSION, names.REQUESTS)["items"]
        request_reasons = {
            next((c["reason"] for c in r["status"]["conditions"] if c["type"] == "Ready"), None) for r in requests
        }
    assert runner.exception is None, runner.output[-3000:]
    assert "Traceback" not in runner.output, runner.output[-5000:]

    assert request_reasons == {names.EXPIRED}
    assert not emulator.members_of(GROUP) & set(users), "memberships left behind"
    assert len(removed) == COUNT
    # Never early: the first removal is no sooner than the persisted expiration time.
    assert min(removed) >= expiration.timestamp()
    print(f"{COUNT} grants: last membership removed {max(removed) - expiration.timestamp():.1f} s after expiry")

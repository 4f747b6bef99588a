"""Leader election (docs/operations.md#replicas-and-hand-over): two or three operator processes
against the real control plane, one Lease between them.

Exactly one acts; every one serves the webhooks (one port shared, `devenv.replicas`). A killed
leader's grants are ended by the replica that takes over, within the Lease's duration, and a
leader cut off from the API server (`devenv.partition`) stops acting before its Lease expires.
The shared session operator (which runs without leader election) is stopped meanwhile.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.partition import Partition, kubeconfig_through
from devenv.replicas import Replicas
from jitaccess.domain.election import Timing
from tests.support.admission import AdmissionCalls
from tests.support.harness import OPERATOR_ENV, Jit, eventually

pytestmark = pytest.mark.e2e

LEASE_SECONDS, RENEW_DEADLINE_SECONDS = Timing().lease_duration, Timing().renew_deadline
PAYMENTS = "prod-eng-payments"
ALICE = "alice@example.com"


@pytest.fixture
def replaced(system: Jit) -> Iterator[Jit]:
    """The shared system with its operator stopped for the test's replicas, and started again after."""
    system.operator.stop()
    try:
        yield system
    finally:
        system.operator.start()


def start(replicas: Replicas) -> None:
    try:
        replicas.start()
    except BaseException:
        replicas.stop()
        raise


def one_leader(replicas: Replicas) -> int:
    leaders: list[int] = eventually(lambda: replicas.leaders() or None, timeout=10, what="a replica leads")
    assert len(leaders) == 1, f"more than one replica leads: {leaders}"
    return leaders[0]


def logged(replicas: Replicas, fragment: str) -> list[int]:
    return [n for n, p in enumerate(replicas.processes) if fragment in p.log_file.read_text(errors="replace")]


def expiration(system: Jit, grant: str) -> dt.datetime:
    obj = system.get("accessgrant", grant) or {}
    return dt.datetime.fromisoformat(obj["status"]["expirationTime"])


def sleep_until(when: dt.datetime) -> None:
    time.sleep(max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds()))


@pytest.mark.parametrize("count", [2, 3])
def test_exactly_one_acts_and_a_standby_takes_over_from_a_killed_leader(
    replaced: Jit, tmp_path: Path, count: int
) -> None:
    system, acting, overdue = replaced, f"one-actor-{count}", f"overdue-{count}"
    replicas = Replicas(count, system.cluster.admin_kubeconfig, system.ic.env(), tmp_path, env=OPERATOR_ENV)
    start(replicas)
    try:
        leader = one_leader(replicas)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # and it stays that way
            assert replicas.leaders() == [leader]
            time.sleep(0.2)

        # Every replica serves the webhooks: the request is stamped whichever one is asked.
        system.request(acting, PAYMENTS, duration="1h")
        system.wait_reason("accessrequest", acting, "Granted")
        assert logged(replicas, f"Granted AccessGrant/{acting}") == [leader], "a standby acted"
        assert len([e for e in system.events(acting, "AccessGrant") if e["reason"] == "Granted"]) == 1

        # A grant that expires while nobody leads: the standby that takes over ends it.
        system.request(overdue, PAYMENTS, duration="3s")
        system.wait_reason("accessgrant", overdue, "Active")
        replicas[leader].kill()
        killed = time.monotonic()
        sleep_until(expiration(system, overdue) + dt.timedelta(seconds=1))
        if not [n for n in replicas.leaders() if n != leader]:
            # Overdue, with no leader yet: no standby has touched it.
            assert system.ready_reason("accessgrant", overdue) == "Active"
            assert ALICE in system.members(PAYMENTS)
        successors: list[int] = eventually(
            lambda: replicas.leaders() or None, timeout=LEASE_SECONDS + 5, what="a standby takes over"
        )
        taken_over = time.monotonic() - killed
        assert len(successors) == 1 and successors[0] != leader
        assert taken_over <= LEASE_SECONDS + 1, f"the take-over took {taken_over:.1f}s"
        system.wait_reason("accessgrant", overdue, "Expired", timeout=10)
        # The log line follows the status write that wait_reason saw: give it a moment.
        expired_by = eventually(
            lambda: logged(replicas, f"Expired AccessGrant/{overdue}") or None, timeout=5, what="the expiry logged"
        )
        assert expired_by == successors
        # The grant that is still running keeps its member: the new leader resumed it, did not redo it.
        assert system.ready_reason("accessgrant", acting) == "Active"
        assert ALICE in system.members(PAYMENTS)
        assert len([e for e in system.events(acting, "AccessGrant") if e["reason"] == "Granted"]) == 1
    finally:
        system.clean()  # while a replica serves the webhooks and lets the grants go
        replicas.stop()


def test_a_partitioned_leader_stops_acting_before_its_lease_expires(replaced: Jit, tmp_path: Path) -> None:
    """The leader's API traffic goes through a proxy that is cut: at its renew deadline it stops
    (no Identity Center write after it), before the standby may take the Lease."""
    system = replaced
    with Partition(system.cluster.server_url) as partition:
        through = kubeconfig_through(system.cluster.admin_kubeconfig, partition, tmp_path / "partitioned.kubeconfig")
        replicas = Replicas(
            2, system.cluster.admin_kubeconfig, system.ic.env(), tmp_path, env=OPERATOR_ENV, kubeconfigs={0: through}
        )
        replicas[0].start()
        try:
            assert one_leader(replicas) == 0
            replicas[1].start()
            assert one_leader(replicas) == 0

            system.request("cut-off", PAYMENTS, duration="20s")
            system.wait_reason("accessgrant", "cut-off", "Active")
            expires = expiration(system, "cut-off")
            # The leader stops acting at most RENEW_DEADLINE after the cut; the standby may take the Lease
            # no sooner than LEASE_SECONDS - retry period (2 s) after it. The grant expires in between.
            cut_at = expires - dt.timedelta(seconds=RENEW_DEADLINE_SECONDS + 1)
            assert cut_at > dt.datetime.now(dt.UTC), "the grant took too long to become Active"
            sleep_until(cut_at)
            partition.cut()
            cut = time.monotonic()

            eventually(
                lambda: logged(replicas, "not renewed within") == [0] or None, timeout=RENEW_DEADLINE_SECONDS + 2
            )
            stopped_after = time.monotonic() - cut
            assert stopped_after <= RENEW_DEADLINE_SECONDS + 0.5
            sleep_until(expires + dt.timedelta(seconds=0.5))
            # Past its expiry, and the leader cut off: nobody may end it yet, and nobody has.
            assert replicas.leaders() == [], "the standby took the Lease before it expired"
            assert ALICE in system.members(PAYMENTS), "the cut-off leader acted after its renew deadline"

            eventually(lambda: replicas.leaders() == [1] or None, timeout=LEASE_SECONDS, what="the standby takes over")
            taken_over = time.monotonic() - cut
            assert taken_over >= LEASE_SECONDS - 2.5, f"taken over {taken_over:.1f}s after the cut"
            system.wait_reason("accessgrant", "cut-off", "Expired", timeout=10)
            assert system.members(PAYMENTS) == set()
            assert logged(replicas, "Expired AccessGrant/cut-off") == [1]

            partition.heal()  # the old leader comes back as a standby
            time.sleep(3)
            assert replicas.leaders() == [1]
        finally:
            partition.heal()
            system.clean()
            replicas.stop()


def test_a_replica_stopped_cleanly_drains_and_no_write_is_refused(replaced: Jit, tmp_path: Path) -> None:
    """SIGTERM to the leader while users write: it hands the Lease over at once and drains its
    webhooks (no new connection; each call on a kept one answered with `Connection: close`), so
    the API server's calls all reach a replica that answers them (docs/operations.md)."""
    system = replaced
    # The callers are alice's dry runs, 60 a second: OPERATOR_ENV has no limit on her pace.
    replicas = Replicas(2, system.cluster.admin_kubeconfig, system.ic.env(), tmp_path, env=OPERATOR_ENV)
    start(replicas)
    try:
        leader = one_leader(replicas)
        with AdmissionCalls(system.cluster, ALICE, PAYMENTS, period=0.05, callers=3) as calls:
            time.sleep(2)  # the API server now keeps connections to both replicas
            stopping, before = time.monotonic(), calls.admitted
            replicas[leader].stop()
            stopped, during = time.monotonic() - stopping, calls.admitted - before
            eventually(lambda: replicas.leaders() == [1 - leader] or None, timeout=10, what="the other takes over")
            time.sleep(2)
        assert calls.refused == [], calls.refused[:5]
        # Calls kept coming while it stopped (the pace itself depends on the machine's load).
        assert during >= 3, f"only {during} calls while the replica stopped ({stopped:.1f}s)"
        log = replicas[leader].log_file.read_text(errors="replace")
        assert "draining the admission webhooks" in log and "webhooks drained in" in log, log[-3000:]
        assert "released Lease" in log, log[-3000:]  # the hand-over ran to its end, drain or not
        # The drain waits out a quiet second, well within the stop's patience.
        assert stopped < 12, f"the replica took {stopped:.1f}s to stop"
        system.request("after-the-stop", PAYMENTS, duration="1h")
        system.wait_reason("accessgrant", "after-the-stop", "Active")
    finally:
        system.clean()
        replicas.stop()

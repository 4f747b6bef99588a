"""Leader election (docs/operations.md#replicas-and-hand-over): two or three operator processes
against the real control plane, one Lease between them.

Exactly one acts; every one serves the webhooks (one port shared, `devenv.replicas`). A killed
leader's grants are ended by the replica that takes over, within the Lease's duration, and a
leader cut off from the API server (`devenv.partition`) stops acting before its Lease expires.
The shared session operator (which runs without leader election) is stopped meanwhile.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
from pathlib import Path

import pytest

from devenv.partition import Partition, kubeconfig_through
from devenv.replicas import Replicas
from jitaccess.domain.election import Timing
from tests.support.admission import AdmissionCalls
from tests.support.harness import OPERATOR_ENV, Jit, eventually

pytestmark = pytest.mark.e2e

LEASE_SECONDS, RENEW_DEADLINE_SECONDS = Timing().lease_duration, Timing().renew_deadline
RETRY_SECONDS = Timing().retry_period
PAYMENTS = "prod-eng-payments"
ALICE = "alice@example.com"


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


def lease(system: Jit, replicas: Replicas) -> dict[str, object] | None:
    result = system.kubectl("get", "lease", replicas.lease, "-n", "default", "-o", "json", check=False)
    return json.loads(result.stdout)["spec"] if result.returncode == 0 else None


def lease_time(spec: dict[str, object], field: str) -> dt.datetime:
    return dt.datetime.fromisoformat(str(spec[field]))


# It runs its own two replicas: the two-replica tier (`make replicas`) would only run it again.
@pytest.mark.skipif(os.environ.get("JITACCESS_E2E_REPLICAS") == "2", reason="runs its own replicas in every tier")
def test_a_lease_deleted_by_hand_is_not_taken_while_its_holder_may_still_act(replaced: Jit, tmp_path: Path) -> None:
    """`kubectl delete lease` while one replica leads: the standby treats the Lease as still held,
    unchanged since it last saw it (docs/operations.md#replicas-and-hand-over). A holder that is
    alive re-creates it at its next try, and the standby never leads; a holder that is dead is
    waited out as a silent one is, until its last renewal plus the Lease's duration. (The standby
    took the missing Lease at its next try: two replicas acted until the old leader's next try.)"""
    system = replaced
    replicas = Replicas(2, system.cluster.admin_kubeconfig, system.ic.env(), tmp_path, env=OPERATOR_ENV)
    start(replicas)
    try:
        leader = one_leader(replicas)
        standby = 1 - leader
        time.sleep(2 * RETRY_SECONDS)  # the standby has read the Lease held by the leader
        assert replicas.leaders() == [leader]

        # The leader alive. It is paused (a long GC pause, a stalled node) across the deletion and
        # a standby's try, so that the standby's try comes first whatever their phases: it is
        # still within its renew deadline when it resumes, and acts.
        paused = replicas[leader].pid
        assert paused is not None
        os.killpg(paused, signal.SIGSTOP)
        try:
            system.kubectl("delete", "lease", replicas.lease, "-n", "default")
            time.sleep(RETRY_SECONDS + 1)
            assert replicas.leaders() == [leader], "the standby took the deleted Lease"
        finally:
            os.killpg(paused, signal.SIGCONT)
        recreated = eventually(lambda: lease(system, replicas), timeout=RETRY_SECONDS + 3, what="the Lease re-created")
        assert recreated["holderIdentity"] == f"replica-{leader}", recreated
        deadline = time.monotonic() + 2 * RETRY_SECONDS
        while time.monotonic() < deadline:  # and it stays that way
            assert replicas.leaders() == [leader], "the standby took the Lease"
            time.sleep(0.2)
        assert logged(replicas, "lost Lease") == [], "the leader lost the Lease it re-created"
        system.request("after-the-deletion", PAYMENTS, duration="1h")
        system.wait_reason("accessgrant", "after-the-deletion", "Active")
        assert logged(replicas, "Granted AccessGrant/after-the-deletion") == [leader], "a standby acted"

        # The leader dead, its Lease deleted: nobody acts until its last renewal plus the Lease's
        # duration, not even on a grant that falls due meanwhile; then the standby, alone.
        system.request("due-meanwhile", PAYMENTS, duration="3s")
        system.wait_reason("accessgrant", "due-meanwhile", "Active")
        replicas[leader].kill()
        last = lease(system, replicas)
        assert last is not None and last["holderIdentity"] == f"replica-{leader}", last
        system.kubectl("delete", "lease", replicas.lease, "-n", "default")
        # The standby counts the Lease's duration from when it last saw a renewal, on its own clock:
        # the holder's last renewal may have come after that read, by up to a retry period. What
        # must hold is that it waits that long, and so past the last moment the dead holder could
        # have acted (its renew deadline after its last renewal).
        renewed = lease_time(last, "renewTime")
        assert int(str(last["leaseDurationSeconds"])) == LEASE_SECONDS
        term_ends = renewed + dt.timedelta(seconds=LEASE_SECONDS - RETRY_SECONDS - 0.5)  # 0.5: the calls' own time
        holder_stopped = renewed + dt.timedelta(seconds=RENEW_DEADLINE_SECONDS)
        assert holder_stopped < term_ends
        sleep_until(max(expiration(system, "due-meanwhile"), term_ends - dt.timedelta(seconds=1)))
        assert dt.datetime.now(dt.UTC) < term_ends, "slept past the dead leader's term: nothing to see"
        assert replicas.leaders() == [] and lease(system, replicas) is None, "the standby took the deleted Lease"
        assert system.ready_reason("accessgrant", "due-meanwhile") == "Active", "someone acted"
        assert ALICE in system.members(PAYMENTS)

        eventually(lambda: replicas.leaders() == [standby] or None, timeout=5, what="the standby takes over")
        taken = lease(system, replicas)
        assert taken is not None and taken["holderIdentity"] == f"replica-{standby}", taken
        # Its own clock says when: no sooner than the dead holder's term would have run out.
        assert lease_time(taken, "acquireTime") >= term_ends, (taken, term_ends)
        assert lease_time(taken, "acquireTime") > holder_stopped, (taken, holder_stopped)
        system.wait_reason("accessgrant", "due-meanwhile", "Expired", timeout=10)
        expired_by = eventually(
            lambda: logged(replicas, "Expired AccessGrant/due-meanwhile") or None, timeout=5, what="the expiry logged"
        )
        assert expired_by == [standby]
        assert system.ready_reason("accessgrant", "after-the-deletion") == "Active"
        assert logged(replicas, "Granted AccessGrant/after-the-deletion") == [leader], "granted twice"
    finally:
        system.clean()
        replicas.stop()

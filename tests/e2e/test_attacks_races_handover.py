"""Races at the leader's hand-over: the old leader's last Identity Center call against the new leader's decisions.

Two replicas elect a leader on a Lease of their own (`devenv.replicas`); the shared session operator
is stopped meanwhile. The emulator holds the leader's membership write (`faults.delay`) so that it is
in flight, every time, while the leader dies and its standby takes over.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devenv.replicas import Replicas
from jitaccess.adapters.identitycenter import LONGEST_CALL_SECONDS
from jitaccess.domain.election import Timing
from tests.support.harness import OPERATOR_ENV, Jit, eventually

pytestmark = pytest.mark.e2e

LEASE_SECONDS = Timing().lease_duration
PAYMENTS = "prod-eng-payments"
ALICE = "alice@example.com"
#: How long the emulator holds the dying leader's CreateGroupMembership before applying it: past the
#: standby's take-over (at most the Lease's duration and a retry period after the kill) and its end
#: of the grant, yet within what a call the old leader sent before its death may take
#: (`LONGEST_CALL_SECONDS` after the take-over).
HELD = LEASE_SECONDS + 8.0
#: The drift scan, which removes members no grant backs, runs this seldom here: what is shown is
#: what the revocation itself does, not the scan's later repair.
ENV = {**OPERATOR_ENV, "JITACCESS_RESYNC_SECONDS": "600"}


def _one_leader(replicas: Replicas) -> int:
    leaders: list[int] = eventually(lambda: replicas.leaders() or None, timeout=15, what="a replica leads")
    assert len(leaders) == 1, f"more than one replica leads: {leaders}"
    return leaders[0]


# --- 129. a revocation overtaken by the dead leader's last add -------------------------------------


def test_129_a_revocation_after_a_hand_over_is_not_overtaken_by_the_old_leaders_add(
    replaced: Jit, tmp_path: Path
) -> None:
    """The leader sends alice's membership add and dies before Identity Center has applied it. The
    standby takes over, alice revokes her grant, the new leader ends it (nothing to remove yet), and
    then the old leader's add lands: alice was in the group with her grant Revoked, until the next
    drift scan (60 s by default), with nothing else to take her out."""
    system, name = replaced, "a127-late-add"
    replicas = Replicas(2, system.cluster.admin_kubeconfig, system.ic.env(), tmp_path, env=ENV)
    try:
        replicas.start()
        leader = _one_leader(replicas)
        sent = system.ic.faults.calls["CreateGroupMembership"]
        system.ic.faults.delay("CreateGroupMembership", HELD)
        system.request(name, PAYMENTS, duration="1h")  # alice's own team: auto-approved, provisioned at once
        eventually(
            lambda: system.ic.faults.calls["CreateGroupMembership"] > sent or None,
            timeout=20,
            what="the leader's CreateGroupMembership reaching Identity Center",
        )
        held_at = time.monotonic()
        replicas[leader].kill()

        # The grant is alice's, not Active yet: she may revoke it (an approver of payments too).
        system.kubectl("annotate", "accessgrant", name, "jitaccess.dev/revoked=true", user=ALICE)
        eventually(lambda: [n for n in replicas.leaders() if n != leader] or None, timeout=LEASE_SECONDS + 5)
        system.wait_reason("accessgrant", name, "Revoked", timeout=LEASE_SECONDS + LONGEST_CALL_SECONDS + 10)
        assert ALICE not in system.members(PAYMENTS)
        # Waiting for the old leader's add is a hand-over's normal course, not a failure: the new
        # leader says so at INFO (why, until when), with no ERROR line (which would count as an error
        # and page: kopf posts no Event for its log lines, so none is looked for).
        new = next(n for n in range(len(replicas.processes)) if n != leader)
        said = [line for line in replicas[new].log_file.read_text(errors="replace").splitlines() if name in line]
        waits = [line for line in said if f"AccessGrant {name} is ended at " in line]
        assert any(" INFO jitaccess.handlers.grants: " in line for line in waits), said
        assert all(" INFO " in line for line in waits), said
        assert not [line for line in said if " ERROR " in line], said

        # The dead leader's add lands now: it must not outlive the revocation.
        time.sleep(max(0.0, held_at + HELD + 1 - time.monotonic()))
        eventually(
            lambda: ALICE not in system.members(PAYMENTS) or None,
            timeout=LONGEST_CALL_SECONDS + 5,
            what="alice out of the group after the dead leader's late add, her grant being Revoked",
        )
        assert system.ready_reason("accessgrant", name) == "Revoked"
        time.sleep(3)
        assert ALICE not in system.members(PAYMENTS), "the membership came back"
    finally:
        system.ic.faults.clear()
        system.clean()
        replicas.stop()
        system.ic.empty_group(PAYMENTS)

"""Ordering races against a changed or deleted Entitlement: what was waiting on an Entitlement when
GitOps changed or deleted it gives no new access (attack 121; attack 101 covers the deletion itself).

A deleted Entitlement stays (`Ready=False Deleting`) while a grant of it runs, so it is still
stored and readable. Nothing about it may then be decided into new access: not a request that was
already waiting for its approver when the deletion came (an approval that arrives afterwards), nor
more time on a grant of it (an AccessExtension, which an owner-team member gets at once). Plain
kubectl as the users of examples/, against the real API server, webhooks and Identity Center
emulator; each test asserts that nobody new is in the group and that the grant's end did not move.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support.harness import Jit, entitlement, eventually

pytestmark = pytest.mark.e2e

ALICE, BOB, LENA = "alice@example.com", "bob@example.com", "lena@example.com"
NAME, GROUP = "e2e-race-retired", "e2e-race-retired-group"
APPROVED = "jitaccess.dev/approved"


@pytest.fixture
def retired(system: Jit) -> Iterator[str]:
    """An Entitlement of team ledger (members auto-approved, everyone else approved by lena) onto a
    group nothing else grants, with bob's grant running, then deleted: it stays `Deleting`."""
    system.ic.create_group(GROUP)
    system.apply(
        entitlement(
            NAME, GROUP, "ledger", defaultDuration="1h", maxDuration="4h", approval={"autoApproveOwnerTeam": True}
        )
    )
    system.wait_reason("entitlement", NAME, "Resolved", timeout=30)
    try:
        yield NAME
    finally:
        system.kubectl("delete", "accessextensions", "--all", "--wait=false", check=False)
        system.clean()
        system.kubectl("delete", "entitlement", NAME, "--ignore-not-found", "--timeout=60s")
        system.ic.empty_group(GROUP)


def _delete_while_bob_holds_it(system: Jit) -> dict[str, Any]:
    system.request("race-bob", NAME, user=BOB, duration="1h")
    grant = system.wait_reason("accessgrant", "race-bob", "Active")
    system.kubectl("delete", "entitlement", NAME, "--wait=false")
    system.wait_reason("entitlement", NAME, "Deleting", timeout=30)
    return grant


def _ready_message(obj: dict[str, Any]) -> str:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")["message"]


def test_a_request_waiting_when_its_entitlement_is_deleted_is_not_granted_on_a_later_approval(
    system: Jit, retired: str
) -> None:
    # alice (team payments) asks; the request waits for lena, ledger's approver.
    system.request("race-alice", retired, user=ALICE, duration="1h")
    system.wait_reason("accessrequest", "race-alice", "Pending")
    _delete_while_bob_holds_it(system)

    # lena approves after the deletion: refused at admission, or admitted and then granted nothing.
    approval = system.kubectl("annotate", "accessrequest", "race-alice", f"{APPROVED}=true", user=LENA, check=False)
    if approval.returncode == 0:
        ended = system.wait_reason("accessrequest", "race-alice", "Invalid", "Failed", timeout=30)
        assert "being deleted" in _ready_message(ended) or "does not exist" in _ready_message(ended), ended
    assert system.get("accessgrant", "race-alice") is None
    assert ALICE not in system.members(GROUP)
    assert system.members(GROUP) == {BOB}


def _extend(system: Jit, name: str, grant: str, by: str, user: str) -> subprocess.CompletedProcess[str]:
    manifest = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessExtension",
        "metadata": {"name": name},
        "spec": {"grant": grant, "duration": by, "reason": "INC-50 more time"},
    }
    result: subprocess.CompletedProcess[str] = system.kubectl(
        "create", "-f", "-", user=user, input=yaml.safe_dump(manifest), check=False
    )
    return result


def test_a_grant_of_a_deleted_entitlement_is_not_extended(system: Jit, retired: str) -> None:
    grant = _delete_while_bob_holds_it(system)

    # bob, an owner-team member (his extensions are applied at once), asks for more time.
    created = _extend(system, "race-bob-more", "race-bob", "1h", BOB)
    if created.returncode == 0:
        ended = system.wait_reason("accessextension", "race-bob-more", "Failed", "Denied", timeout=30)
        assert "nothing was extended" in _ready_message(ended), ended
    now = system.get("accessgrant", "race-bob") or {}
    assert now["status"]["expirationTime"] == grant["status"]["expirationTime"], "the grant's end moved"
    assert not now["status"].get("extensions")

    # And the Entitlement still goes when bob's grant ends.
    system.kubectl("annotate", "accessgrant", "race-bob", "jitaccess.dev/revoked=true", user=BOB)
    system.wait_reason("accessgrant", "race-bob", "Revoked")
    eventually(lambda: system.get("entitlement", NAME) is None or None, timeout=40, what="the Entitlement gone")
    assert system.members(GROUP) == set()


# --- 121. a scheduled approval used for what the Entitlement gives after it -------------------------


WIDER = "e2e-race-wider-group"


@pytest.fixture
def wider(system: Jit) -> Iterator[str]:
    system.ic.create_group(WIDER)
    try:
        yield WIDER
    finally:
        system.ic.empty_group(WIDER)


def test_121_a_scheduled_approval_is_not_used_for_the_group_an_entitlement_names_after_it(
    system: Jit, retired: str, wider: str
) -> None:
    """lena approves alice's window on the Entitlement as it grants GROUP; before the start, the
    Entitlement is changed (GitOps) to grant another group: lena never approved that access."""
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=8)).replace(microsecond=0)
    system.request("race-window", retired, user=ALICE, duration="1m", startTime=start.strftime("%Y-%m-%dT%H:%M:%SZ"))
    system.wait_reason("accessrequest", "race-window", "Pending")
    system.kubectl("annotate", "accessrequest", "race-window", f"{APPROVED}=true", user=LENA)
    system.wait_reason("accessrequest", "race-window", "Scheduled")
    system.kubectl(
        "patch",
        "entitlement",
        NAME,
        "--type",
        "merge",
        "-p",
        '{"spec":{"identityCenter":{"groupName":"' + wider + '"}}}',
    )
    ended = system.wait_reason("accessrequest", "race-window", "Failed", "Granted", "Active", timeout=30)
    message = _ready_message(ended)
    assert ALICE not in system.members(wider), message
    assert system.get("accessgrant", "race-window") is None, message
    assert f"Entitlement {NAME} changed since the request was approved" in message, message
    assert f"approved for {GROUP}, and the Entitlement now gives {wider}" in message, message
    assert ended["status"]["approvedFor"] == GROUP

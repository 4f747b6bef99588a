"""The drift scan reports only members it removed, and rides out Identity Center trouble quietly.

At start-up the scan runs beside the catch-up expiries of grants that ended while the operator
was down: a member those expiries take out after the scan listed the group is no drift.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from typing import Any

from tests.support.harness import Jit, eventually

ALICE = "alice@example.com"
GROUP = "prod-eng-payments"
EXTRAS = [f"drift-{i:02d}@example.com" for i in range(60)]
LOUD = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) ")


def _lines_since(system: Jit, offset: int) -> list[str]:
    with system.operator.log_file.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace").splitlines()


def _drift_found(lines: list[str]) -> list[str]:
    return [line for line in lines if f"DriftFound Entitlement/{GROUP}: " in line]


def test_members_taken_out_by_catch_up_expiries_are_no_drift(system: Jit) -> None:
    system.request("drift-alice", GROUP, duration="3s", user=ALICE)
    system.wait_reason("accessgrant", "drift-alice", "Active")
    system.operator.kill()
    # While the operator is down, the grant falls due and someone adds members by hand (real
    # drift). Alice's membership is made again, so that the scan lists her after all of them: by
    # the time it comes to her, the catch-up expiry has taken her out.
    system.ic.seed_users(EXTRAS)
    system.ic.add_members(GROUP, EXTRAS)
    client, store = system.ic.client(), system.ic.identity_store_id
    group_id, user_id = system.ic.group_id(GROUP), system.ic.user_id(ALICE)
    membership = client.get_group_membership_id(IdentityStoreId=store, GroupId=group_id, MemberId={"UserId": user_id})
    client.delete_group_membership(IdentityStoreId=store, MembershipId=membership["MembershipId"])
    system.ic.add_member(GROUP, ALICE)
    expires = dt.datetime.fromisoformat((system.get("accessgrant", "drift-alice") or {})["status"]["expirationTime"])
    eventually(lambda: dt.datetime.now(dt.UTC) > expires or None, timeout=10, what="the grant overdue")

    # The first removal after the restart waits a second: whether the expiry's or the scan's, the
    # scan lists the group before the expiry takes alice out.
    system.ic.faults.delay("DeleteGroupMembership", 1.0)
    offset = system.operator.log_file.stat().st_size
    system.operator.start()
    system.wait_reason("accessgrant", "drift-alice", "Expired", timeout=15)
    eventually(lambda: system.members(GROUP) == set() or None, timeout=60, what="every unbacked member removed")

    def all_reported() -> list[str] | None:
        found = _drift_found(_lines_since(system, offset))
        return found if len(found) >= len(EXTRAS) else None

    reported = eventually(all_reported, timeout=10, what="a DriftFound line for each member added by hand")
    assert not [line for line in reported if ALICE in line], "\n".join(reported)
    assert sorted(e for e in EXTRAS if any(f": {e} was in" in line for line in reported)) == EXTRAS


def test_identity_center_throttling_the_scan_is_no_error(system: Jit) -> None:
    offset = system.operator.log_file.stat().st_size
    # More failures than the SDK's attempts in any one call, even with every Entitlement's scan and
    # the eligibility re-checks taking turns at them (a few failures spread over calls that run at
    # once are retried away by the SDK, and nothing is said at all).
    system.ic.faults.fail("ListGroupMemberships", times=60)
    scan_said = re.compile(r" INFO jitaccess.handlers.catalog: drift scan of \S+: Identity Center not answering")

    def said_it() -> list[str] | None:
        lines = _lines_since(system, offset)
        return lines if any(scan_said.search(line) for line in lines) else None

    try:
        lines = eventually(said_it, timeout=30, what="the scan said Identity Center was not answering")
    finally:
        system.ic.faults.clear()
    assert [line for line in lines if LOUD.match(line) or "Traceback" in line] == [], "\n".join(lines)


def _removals_of(system: Jit, user_id: str) -> list[dict[str, Any]]:
    status = (system.get("entitlement", GROUP) or {}).get("status") or {}
    return [r for r in status.get("driftRemovals") or [] if r.get("userId") == user_id]


def test_a_removal_cut_short_by_a_crash_is_still_recorded(system: Jit) -> None:
    """The scan lists a removal in the Entitlement's status before it makes it: an operator killed
    while Identity Center carries it out leaves that entry, and the next operator confirms it (the
    member gone meanwhile), so the drift found has its record, Event and log line all the same."""
    intruder = f"drift-crash-{secrets.token_hex(3)}@example.com"
    system.ic.seed_users([intruder])
    user_id = system.ic.user_id(intruder)
    # Every removal is held a while (a grant of another test may be ending too): the scan's is
    # under way, its membership still in the group, when the operator is killed.
    system.ic.faults.delay("DeleteGroupMembership", 3.0, times=20)
    held = system.ic.faults.injected
    try:
        system.ic.add_member(GROUP, intruder)
        listed = eventually(
            lambda: _removals_of(system, user_id) or None, timeout=30, interval=0.05, what="the removal listed first"
        )
        assert [r.get("time") for r in listed] == [None], listed
        assert intruder in system.members(GROUP), "listed before it is made"
        eventually(lambda: held["DeleteGroupMembership"] or None, timeout=2, interval=0.02, what="the removal sent")
        system.operator.kill()
    finally:
        system.ic.faults.clear()
    # The call reached Identity Center before the kill: it is carried out all the same.
    eventually(lambda: intruder not in system.members(GROUP) or None, timeout=10, what="the stalled removal done")
    assert [r.get("time") for r in _removals_of(system, user_id)] == [None], "nobody confirmed it"

    offset = system.operator.log_file.stat().st_size
    system.operator.start()

    def recorded() -> list[str] | None:
        lines = _lines_since(system, offset)
        said = [i for i, line in enumerate(lines) if intruder in line and f"DriftFound Entitlement/{GROUP}: " in line]
        # The record's line names the action and the Entitlement (its JSON form, the user too).
        archived = f"audit drift-removed Entitlement/{GROUP} by system:jitaccess"
        return lines[said[0] :] if said and any(archived in line for line in lines[said[0] :]) else None

    lines = eventually(recorded, timeout=30, what="the removal confirmed, recorded and reported")
    said = lines[0]
    assert "not confirmed" in said and "gone when it was looked at again" in said, said
    # Without an archive its record is printed, and the entry leaves the status once it is, and told
    # (the security channel and the sink of the session are up).
    eventually(
        lambda: _removals_of(system, user_id) == [] or None, timeout=15, what="the entry gone once printed and told"
    )


def test_a_removal_identity_center_refused_is_made_and_confirmed_by_the_next_pass(system: Jit) -> None:
    intruder = f"drift-retry-{secrets.token_hex(3)}@example.com"
    system.ic.seed_users([intruder])
    user_id = system.ic.user_id(intruder)
    offset = system.operator.log_file.stat().st_size
    # More failures than the SDK's attempts in one call: the scan's removal fails outright at least once.
    system.ic.faults.fail("DeleteGroupMembership", times=12, error="InternalServerException")

    def failures_served() -> bool | None:
        # The status first, then the group: a removal confirmed while its member is still in the
        # group would be a record of something not done.
        confirmed = [r for r in _removals_of(system, user_id) if r.get("time")]
        assert not (confirmed and intruder in system.members(GROUP)), confirmed
        return system.ic.faults.pending("DeleteGroupMembership") == 0 or None

    try:
        system.ic.add_member(GROUP, intruder)
        eventually(failures_served, timeout=60, interval=0.05, what="the failures served")
    finally:
        system.ic.faults.clear()
    eventually(lambda: intruder not in system.members(GROUP) or None, timeout=30, what="removed by a later pass")
    found = eventually(
        lambda: [line for line in _drift_found(_lines_since(system, offset)) if intruder in line] or None,
        timeout=15,
        what="the DriftFound line",
    )
    assert len(found) == 1 and "with no active grant: removed" in found[0], found


def test_a_removal_whose_answer_was_lost_is_recorded_once(system: Jit) -> None:
    """Identity Center carries the removal out and its answer is lost: the SDK's retry finds the
    membership gone. No grant of ours took the member out, so the scan's own removal did: it is
    recorded, once, and says so."""
    intruder = f"drift-lost-{secrets.token_hex(3)}@example.com"
    system.ic.seed_users([intruder])
    offset = system.operator.log_file.stat().st_size
    system.ic.faults.fail("DeleteGroupMembership", error="InternalServerException", after_apply=True)
    try:
        system.ic.add_member(GROUP, intruder)
        found = eventually(
            lambda: [line for line in _drift_found(_lines_since(system, offset)) if intruder in line] or None,
            timeout=30,
            what="the DriftFound line",
        )
    finally:
        system.ic.faults.clear()
    assert intruder not in system.members(GROUP)
    assert len(found) == 1 and "removed (an earlier attempt had taken it out" in found[0], found
    time.sleep(6)  # a later pass (every 5 s here) must not record it again
    again = [line for line in _drift_found(_lines_since(system, offset)) if intruder in line]
    assert again == found, again

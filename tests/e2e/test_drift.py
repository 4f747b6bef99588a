"""The drift scan reports only members it removed, and rides out Identity Center trouble quietly.

At start-up the scan runs beside the catch-up expiries of grants that ended while the operator
was down: a member those expiries take out after the scan listed the group is no drift.
"""

from __future__ import annotations

import datetime as dt
import re

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

"""Attack 124: an approver ends someone's access (or request) by deleting it, and the record names someone else.

A revocation by annotation is stamped by the webhook with who revoked (`jitaccess.dev/revoked-by`)
and carries their reason (`revoke-reason`), and every record of its end says so. A deletion leaves
no stamp: the object does not say who deleted it. An approver of the owner team could delete a live
grant (RBAC and the webhook let them: "deleting is the approver's way to revoke"); the operator
then ended it with nobody named, so the `revoked` record in the archive and the CloudEvents sink
named the operator as the revoker (`system:jitaccess`), `kubectl jit audit --access` said "revoked
by system:jitaccess", Slack told the grantee and the team "revoked early by the operator", and the
`Revoked` audit log line's `who` was the grantee. Only a line of the operator's stdout
(`AdmissionDeleted`) named the approver, and no reason was asked of them. Now a grant whose access
has not ended (or whose revocation is not stamped) is deleted by nobody but the operator: the
approver is told to revoke it, with a reason, and may delete it once it has ended. So with someone
else's request that still awaits a decision: deleted, its `withdrawn` record named nobody and read
as its requester's own withdrawal; it is denied instead, which names who and why. And with one
approved for a later start (`Scheduled`), which can no longer be denied: it is revoked by name
(`jitaccess.dev/revoked=true`, stamped `revoked-by`) and never starts.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from jitaccess.api import audit
from tests.e2e.test_attacks import attempt, refused
from tests.support.harness import Jit

ALICE, LENA, PAULA = "alice@example.com", "lena@example.com", "paula@example.com"
LEDGER, PAYMENTS = "prod-eng-ledger", "prod-eng-payments"


# --- 124. a live grant deleted by an approver: its end recorded as the operator's, or the grantee's ----------


def test_124_a_live_grant_is_revoked_by_name_and_deleted_only_once_ended(system: Jit) -> None:
    system.request("a124", PAYMENTS, user=ALICE)
    system.wait_reason("accessgrant", "a124", "Active")
    said = refused(
        attempt(system, "delete", "accessgrant", "a124", "--wait=false", user=PAULA),
        "AccessGrant a124 is Active",
        "kubectl jit revoke a124 --reason",
    )
    assert "jitaccess.dev/revoked-by" in said, said
    # Refused with the access untouched: nothing ended, nobody's name missing from a record.
    assert system.ready_reason("accessgrant", "a124") == "Active"
    assert system.members(PAYMENTS) == {ALICE}
    why = "INC-124 alice's laptop reported stolen"
    system.kubectl(
        "annotate", "accessgrant", "a124", "jitaccess.dev/revoked=true", f"jitaccess.dev/revoke-reason={why}",
        user=PAULA,
    )  # fmt: skip
    revoked = system.wait_reason("accessgrant", "a124", "Revoked")
    assert system.members(PAYMENTS) == set()
    (record,) = [r for r in audit.records_of(revoked) if r["action"] == audit.REVOKED]
    assert record["actor"] == {"username": PAULA}, record
    assert record["revokeReason"] == why, record
    request = system.wait_reason("accessrequest", "a124", "Revoked")
    ready = next(c for c in request["status"]["conditions"] if c["type"] == "Ready")
    assert ready["message"] == f"access revoked by {PAULA}", ready
    # Ended, its record whole: the approver may delete it (retention would, later).
    system.kubectl("delete", "accessgrant", "a124", "--timeout=30s", user=PAULA)
    assert system.get("accessgrant", "a124") is None


def not_deleted_by_lena(system: Jit, name: str, state: str, stamp: str, command: str) -> None:
    """lena's deletion of alice's request `name` is refused, saying what `state` it is in, that a
    deletion leaves no `stamp`, and the `kubectl jit` `command` to use; and nothing was deleted."""
    refused(
        attempt(system, "delete", "accessrequest", name, "--wait=false", user=LENA),
        f"AccessRequest {name} is {ALICE}'s request, {state}",
        f"{LENA} may not delete it, as a deletion leaves no jitaccess.dev/{stamp} stamp",
        f"kubectl jit {command} {name} --reason",
    )
    kept = system.get("accessrequest", name) or {}
    assert not kept["metadata"].get("deletionTimestamp"), kept["metadata"]


def ended_by_lena(system: Jit, name: str, decision: str, reason_key: str, why: str, state: str) -> dict[str, Any]:
    """alice's request `name` ended by lena's `jitaccess.dev/<decision>=true` with `why` as its reason."""
    system.kubectl(
        "annotate",
        "accessrequest",
        name,
        f"jitaccess.dev/{decision}=true",
        f"jitaccess.dev/{reason_key}={why}",
        user=LENA,
    )
    return system.wait_reason("accessrequest", name, state)


# --- 124. someone else's request deleted while it awaits a decision: its end read as the requester's ---------


def test_124_a_request_awaiting_a_decision_is_denied_by_name_not_deleted(system: Jit) -> None:
    """An approver deleting alice's pending request left a `withdrawn` record with no actor, read as
    alice's own withdrawal; only the `AdmissionDeleted` line named the approver. Denied instead, the
    record names the approver and their reason; then the decided request may go."""
    system.request("a124-wait", LEDGER, user=ALICE)
    system.wait_reason("accessrequest", "a124-wait", "Pending")
    not_deleted_by_lena(system, "a124-wait", "still awaiting a decision", "denied-by", "deny")
    why = "INC-124 ledger frozen for the audit"
    denied = ended_by_lena(system, "a124-wait", "denied", "decision-reason", why, "Denied")
    (record,) = [r for r in audit.records_of(denied) if r["action"] == audit.DENIED]
    assert record["actor"]["username"] == LENA, record
    assert record["decisionReason"] == why, record
    assert not [r for r in audit.records_of(denied) if r["action"] == audit.WITHDRAWN]
    # Decided, its record whole: the approver may delete it; its requester withdraws their own.
    system.kubectl("delete", "accessrequest", "a124-wait", "--timeout=30s", user=LENA)
    assert system.get("accessrequest", "a124-wait") is None
    system.request("a124-mine", LEDGER, user=ALICE)
    system.kubectl("delete", "accessrequest", "a124-mine", "--timeout=30s", user=ALICE)
    assert system.get("accessrequest", "a124-mine") is None


# --- 124. someone else's Scheduled request deleted: its `withdrawn` record named nobody -------------------


def _scheduled(system: Jit, name: str, ahead: float) -> dt.datetime:
    """alice's request for ledger's entitlement, approved by lena for a start `ahead` seconds away."""
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ahead)).replace(microsecond=0)
    system.request(name, LEDGER, user=ALICE, duration="1m", startTime=start.strftime("%Y-%m-%dT%H:%M:%SZ"))
    system.wait_reason("accessrequest", name, "Pending")
    system.kubectl("annotate", "accessrequest", name, "jitaccess.dev/approved=true", user=LENA)
    system.wait_reason("accessrequest", name, "Scheduled")
    return start


def test_124_a_scheduled_request_is_revoked_by_name_and_never_starts(system: Jit) -> None:
    """lena deleting alice's Scheduled request left a `withdrawn` record with no actor and no reason
    (only the `AdmissionDeleted` line named her). Revoked instead, it ends `Revoked` at once, nothing
    is granted at its start, and its records name lena and her reason; then it may go."""
    start = _scheduled(system, "a124-later", ahead=15)
    not_deleted_by_lena(system, "a124-later", "approved and Scheduled for a later start", "revoked-by", "revoke")
    why = "INC-124 ledger migration called off"
    revoked = ended_by_lena(system, "a124-later", "revoked", "revoke-reason", why, "Revoked")
    assert dt.datetime.now(dt.UTC) < start, "ended at once, not at its start"
    assert revoked["metadata"]["annotations"]["jitaccess.dev/revoked-by"] == LENA
    ready = next(c for c in revoked["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and f"revoked by {LENA} before its start: {why}" in ready["message"], ready
    (record,) = [r for r in audit.records_of(revoked) if r["action"] == audit.REVOKED]
    assert record["actor"] == {"username": LENA}, record
    assert record["revokeReason"] == why, record
    assert not [r for r in audit.records_of(revoked) if r["action"] == audit.WITHDRAWN]
    # Its start comes and goes: no grant, no membership in the emulated Identity Center.
    while dt.datetime.now(dt.UTC) < start + dt.timedelta(seconds=4):
        time.sleep(0.5)
    assert system.get("accessgrant", "a124-later") is None
    assert ALICE not in system.members(LEDGER)
    assert system.ready_reason("accessrequest", "a124-later") == "Revoked"
    # Ended, its record whole: the approver may delete it; its requester withdraws her own Scheduled one.
    system.kubectl("delete", "accessrequest", "a124-later", "--timeout=30s", user=LENA)
    assert system.get("accessrequest", "a124-later") is None
    _scheduled(system, "a124-mine-later", ahead=600)
    system.kubectl("delete", "accessrequest", "a124-mine-later", "--timeout=30s", user=ALICE)
    assert system.get("accessrequest", "a124-mine-later") is None

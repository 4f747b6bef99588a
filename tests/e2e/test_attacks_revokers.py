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
as its requester's own withdrawal; it is denied instead, which names who and why.
"""

from __future__ import annotations

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


# --- 124. someone else's request deleted while it awaits a decision: its end read as the requester's ---------


def test_124_a_request_awaiting_a_decision_is_denied_by_name_not_deleted(system: Jit) -> None:
    """An approver deleting alice's pending request left a `withdrawn` record with no actor, read as
    alice's own withdrawal; only the `AdmissionDeleted` line named the approver. Denied instead, the
    record names the approver and their reason; then the decided request may go."""
    system.request("a124-wait", LEDGER, user=ALICE)
    system.wait_reason("accessrequest", "a124-wait", "Pending")
    refused(
        attempt(system, "delete", "accessrequest", "a124-wait", "--wait=false", user=LENA),
        f"AccessRequest a124-wait is {ALICE}'s request, still awaiting a decision",
        f"{LENA} may not delete it, as a deletion leaves no jitaccess.dev/denied-by stamp",
        "kubectl jit deny a124-wait --reason",
    )
    kept = system.get("accessrequest", "a124-wait") or {}
    assert not kept["metadata"].get("deletionTimestamp"), kept["metadata"]
    why = "INC-124 ledger frozen for the audit"
    system.kubectl(
        "annotate", "accessrequest", "a124-wait", "jitaccess.dev/denied=true",
        f"jitaccess.dev/decision-reason={why}", user=LENA,
    )  # fmt: skip
    denied = system.wait_reason("accessrequest", "a124-wait", "Denied")
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

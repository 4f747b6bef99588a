"""A request approved for a later start (`Scheduled`) is revoked by name, with a reason (attack 124).

A decision is final, so it cannot be denied; deleted, its `withdrawn` record named nobody (only the
AdmissionDeleted stdout line said who). It is revoked as a grant is (`jitaccess.dev/revoked=true`,
`revoke-reason`; the webhook stamps `revoked-by`, by `_revocation`'s rules), the operator ends it
`Revoked` before it starts, and its records name the revoker and the reason. Someone else's is
deleted only once revoked and ended; its requester still withdraws their own.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jitaccess.api import audit, names
from jitaccess.domain import admission as adm
from jitaccess.domain import notifications as notify
from jitaccess.domain.slackmessages import approvers_message, render
from tests.unit.test_admission import (
    BOB,
    CAROL,
    CREATED,
    LEAD,
    MALLORY,
    NOW,
    PAULA,
    SYSTEM,
    admitted,
    cond,
    delete,
    refused,
    request,
    update,
    with_annotations,
)
from tests.unit.test_notifications_rules import BOTH, LEDGER

SCHEDULED = [cond("Approved", "True", "Approved"), cond("Ready", "False", "Scheduled")]
APPROVED_BY = {"jitaccess.dev/approved": "true", "jitaccess.dev/approved-by": "paula@example.com"}
WHY = "INC-124 ledger frozen for the audit"


def scheduled(**annotations: str) -> dict[str, Any]:
    """bob's request, approved by paula for a start a day away, created at CREATED."""
    stored = request(conditions=SCHEDULED, annotations={**APPROVED_BY, **annotations}, startTime="2026-11-24T12:00:00Z")
    stored["metadata"]["creationTimestamp"] = CREATED
    return stored


def cancel(old: dict[str, Any], reason: str | None = WHY, **more: str | None) -> dict[str, Any]:
    return with_annotations(old, jitaccess_dev__revoked="true", jitaccess_dev__revoke_reason=reason, **more)


@pytest.mark.parametrize("who", [PAULA, LEAD, BOB], ids=["approver", "approver-by-group", "requester"])
def test_an_approver_or_the_requester_revokes_a_scheduled_request_stamped_with_their_name(who: Any) -> None:
    old = scheduled()
    stamped = admitted(update(old, cancel(old), who))
    assert stamped.annotations == {adm.REVOKED_BY: who.username}
    final = with_annotations(cancel(old), jitaccess_dev__revoked_by=who.username)
    assert update(old, final, who, phase=adm.Phase.VALIDATE) == stamped
    refused(update(old, cancel(old), who, phase=adm.Phase.VALIDATE), "must be exactly what the jitaccess mutating")
    # A reason is not required of them, as for a grant.
    assert admitted(update(old, cancel(old, reason=None), who)).annotations == {adm.REVOKED_BY: who.username}


def test_a_revocation_is_taken_past_the_decision_deadline_as_the_start_may_be_days_away() -> None:
    """The pending timeout bounds a decision; a Scheduled request waits up to 7 days for its start."""
    old = scheduled()
    late = NOW + timedelta(days=3)
    assert admitted(update(old, cancel(old), PAULA, now=late)).annotations == {adm.REVOKED_BY: PAULA.username}
    refused(
        update(old, with_annotations(old, jitaccess_dev__approved=None), PAULA, now=late), "already approved"
    )  # a decision is still final


def test_nobody_else_revokes_it_and_nobody_writes_the_stamp() -> None:
    old = scheduled()
    for who in (
        MALLORY,
        CAROL,
    ):  # carol: a backup approver, as good as anyone before an escalation? no: not an approver
        refused(update(old, cancel(old), who), f"{who.username} may not revoke this request", "the requester bob")
    refused(
        update(old, cancel(old, jitaccess_dev__revoked_by=PAULA.username), PAULA),
        "[jitaccess.dev/revoked-by] is written only by the jitaccess admission webhook",
    )
    refused(
        update(old, with_annotations(old, jitaccess_dev__revoke_reason=WHY), PAULA),
        "is recorded with a revocation: set it in the same change",
    )
    refused(update(old, with_annotations(old, jitaccess_dev__revoked="yes"), PAULA), 'its only value is "true"')
    mixed = cancel(old, jitaccess_dev__decision_reason="changed my mind")
    refused(update(old, mixed, PAULA), "jitaccess.dev/revoked=true is set on its own, not with")
    done = scheduled(**{"jitaccess.dev/revoked": "true", "jitaccess.dev/revoked-by": "paula@example.com"})
    refused(update(done, cancel(done, reason="another"), LEAD), "already revoked by paula@example.com")


def test_once_its_entitlement_is_gone_a_refusal_names_the_team_that_approved_it() -> None:
    """Taken up under payments, approved by ledger's approver once the Entitlement was handed to ledger
    (`status.decisionTeam`), then the Entitlement deleted: the refusal names ledger, whose approval it is."""
    old = scheduled()
    old["status"] |= {"ownerTeam": "payments", "decisionTeam": "ledger"}
    refused(
        update(old, cancel(old), MALLORY, entitlement=None, team=None),
        "only the requester bob@example.com or an approver of team ledger",
    )


@pytest.mark.parametrize(
    ("conditions", "said"),
    [
        (
            [cond("Ready", "False", "Pending")],
            "still awaits a decision: jitaccess.dev/revoked=true on a request cancels",
        ),
        (
            [cond("Approved", "True", "Approved"), cond("Ready", "True", "Granted")],
            "revoke its grant instead, `kubectl jit revoke r1",
        ),
        ([cond("Ready", "False", "Denied"), cond("Denied", "True", "Denied")], "has already ended (Denied)"),
        ([cond("Approved", "True", "Approved"), cond("Ready", "False", "Expired")], "has already ended (Expired)"),
    ],
)
def test_only_a_scheduled_request_is_revoked(conditions: list[dict[str, str]], said: str) -> None:
    """Pending: denied (someone else's) or withdrawn (one's own); once its access runs, its grant is
    revoked; finished, there is nothing left to end."""
    old = request(conditions=conditions)
    for who in (PAULA, BOB):
        refused(update(old, cancel(old), who), said)


def test_a_scheduled_request_being_withdrawn_is_not_revoked_as_well() -> None:
    """bob deleted his Scheduled request, which the records finalizer keeps until it is archived:
    its withdrawal is under way (the operator revokes any grant its start made, "its AccessRequest
    was deleted"), and paula's cancel afterwards would name her for it as well. Refused before the
    cancel's own rules are read (`review_withdrawn`), as any change of a deleted request is."""
    old = scheduled()
    old["metadata"] |= {"deletionTimestamp": "2026-11-23T12:00:00Z", "finalizers": ["jitaccess.dev/records"]}
    for who in (PAULA, BOB):
        refused(update(old, cancel(old), who), "r1 was deleted at 2026-11-23T12:00:00Z", "nothing on it can change")


def test_someone_elses_scheduled_request_is_deleted_only_once_revoked_and_ended() -> None:
    old = scheduled()
    for who in (PAULA, LEAD):
        refused(
            delete(old, who),
            "AccessRequest r1 is bob@example.com's request, approved and Scheduled for a later start",
            f"{who.username} may not delete it, as a deletion leaves no jitaccess.dev/revoked-by stamp",
            "kubectl jit revoke r1 --reason",
        )
    stamped = scheduled(**{"jitaccess.dev/revoked": "true", "jitaccess.dev/revoked-by": "lead@example.com"})
    refused(delete(stamped, PAULA), "was revoked by lead@example.com", "delete it once it is Revoked")
    ended = {**stamped, "status": {"conditions": [SCHEDULED[0], cond("Ready", "False", "Revoked")]}}
    assert delete(ended, PAULA) == adm.ALLOW
    # Its requester withdraws their own, revoked or not; the operator retires any.
    for mine in (old, stamped):
        assert delete(mine, BOB) == adm.ALLOW
        assert delete(mine, SYSTEM) == adm.ALLOW
    refused(delete(old, MALLORY), "only bob@example.com may withdraw it", "kubectl jit revoke r1 --reason")


# --- its records ------------------------------------------------------------------------------------


def revoked_request(by: str = "lena@example.com") -> dict[str, Any]:
    stored = request(
        conditions=[
            {**cond(names.APPROVED, "True", names.APPROVED), "lastTransitionTime": "2026-11-30T12:00:00Z"},
            {**cond(names.READY, "False", names.REVOKED), "lastTransitionTime": "2026-11-30T12:05:00Z"},
        ],
        annotations={
            "jitaccess.dev/revoked": "true",
            "jitaccess.dev/revoked-by": by,
            "jitaccess.dev/revoke-reason": WHY,
        },
    )
    stored["kind"] = names.ACCESS_REQUEST
    stored["metadata"] |= {"uid": "u-req", "creationTimestamp": "2026-11-30T11:00:00Z"}
    stored["status"] |= {"approvedBy": "paula@example.com", "requester": "bob@example.com"}
    stored["status"]["conditions"][1]["message"] = f"revoked by {by} before its start: {WHY}; nothing was granted"
    return stored


def test_its_revoked_record_names_the_revoker_and_the_reason() -> None:
    records = {r["action"]: r for r in audit.records_of_request(revoked_request())}
    assert set(records) == {"requested", "approved", "revoked"}
    revoked = records["revoked"]
    assert revoked["actor"] == {"username": "lena@example.com"}
    assert revoked["revokeReason"] == WHY and revoked["time"] == "2026-11-30T12:05:00Z"
    assert revoked["id"] == "u-req/revoked" and "grant" not in revoked
    # Deleted afterwards: still no withdrawn record naming nobody.
    gone = revoked_request()
    gone["metadata"]["deletionTimestamp"] = "2026-11-30T12:06:00Z"
    assert [r["action"] for r in audit.records_of_request(gone)] == ["requested", "approved", "revoked"]


def test_it_is_told_to_the_sink_the_approvers_message_and_the_requester_unless_they_revoked_it() -> None:
    found = notify.notices(revoked_request(), LEDGER, BOTH, NOW)
    keys = [n.key for n in found]
    assert {"webhook:revoked", "slack:team-message:revoked", "slack:@bob@example.com:revoked"} <= set(keys)
    (event,) = [n for n in found if n.key == "webhook:revoked"]
    assert event.event_type == "dev.jitaccess.request.revoked"
    assert event.record["actor"]["username"] == "lena@example.com" and event.record["revokeReason"] == WHY
    (to_bob,) = [n for n in found if n.key == "slack:@bob@example.com:revoked"]
    text, blocks = render(to_bob, revoked_request(), LEDGER, {})
    assert "Revoked before its start by lena@example.com" in text
    assert WHY in str(blocks)
    text, blocks = approvers_message(revoked_request(), LEDGER, {})
    assert text.endswith("Revoked before its start by lena@example.com") and WHY in str(blocks)
    own = [n.key for n in notify.notices(revoked_request(by="bob@example.com"), LEDGER, BOTH, NOW)]
    assert "slack:@bob@example.com:revoked" not in own and "slack:team-message:revoked" in own

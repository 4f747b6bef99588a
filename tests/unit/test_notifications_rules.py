"""Who is told what (domain.notifications) and in which words (domain.slackmessages)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import kopf
import pytest

from devenv.slack import as_shown
from jitaccess.adapters.slack import LITERAL_TEXT
from jitaccess.api import audit, names
from jitaccess.domain import notifications as notify
from jitaccess.domain.slackmessages import _OUTCOME, _shortened, approvers_message, escape, render
from jitaccess.handlers import notifications
from jitaccess.handlers.notifications import Notifier

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BOTH = notify.Config(slack=True, webhook=True, default_channel="C0DEFAULT", security_channel="C0SECURITY")
LEDGER = notify.Team(
    name="ledger",
    channel="C0LEDGER",
    slack_users={"lena@example.com": "U0LENA"},
    approvers=("lena@example.com",),
    backup_approvers=("carol@example.com",),
)


def _stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _cond(type_: str, status: str, reason: str, message: str = "", at: datetime = T0) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": _stamp(at)}


def request(*conditions: dict[str, Any], reason: str = "fix INC-1", **status: Any) -> dict[str, Any]:
    return {
        "kind": names.ACCESS_REQUEST,
        "metadata": {"name": "bob-ledger-1", "uid": "u-req", "creationTimestamp": _stamp(T0)},
        "spec": {"entitlement": "ledger-prod", "reason": reason, "requester": "bob@example.com", "duration": "1h"},
        "status": {"requester": "bob@example.com", "duration": "1h", "conditions": list(conditions), **status},
    }


PENDING = _cond(names.READY, "False", names.PENDING, "waiting for approval")


def keys(notices: list[notify.Notice]) -> list[str]:
    return [n.key for n in notices]


def test_a_request_that_waits_posts_the_approvers_message_and_the_pending_event() -> None:
    found = notify.notices(request(PENDING), LEDGER, BOTH, T0)
    assert keys(found) == ["webhook:pending", "webhook:requested", "slack:team-message:pending"]
    team_message = found[-1]
    assert team_message.mentions == ("lena@example.com",)
    assert found[0].event_type == "dev.jitaccess.request.pending"
    assert found[0].record["id"] == "u-req/pending"
    assert "ownerTeam" not in found[0].record, "not looked up yet: absent, never null"
    owned = notify.notices(request(PENDING, ownerTeam="ledger"), LEDGER, BOTH, T0)
    assert owned[0].record["ownerTeam"] == "ledger"


def test_a_request_not_classified_yet_tells_nobody_in_slack() -> None:
    # At creation, before the operator looked at it, it may still be auto-approved: no message.
    assert keys(notify.notices(request(), LEDGER, BOTH, T0)) == ["webhook:requested"]


def test_an_auto_approved_request_sends_no_slack_notice_and_no_pending_event() -> None:
    auto = _cond(names.APPROVED, "True", names.AUTO_APPROVED, "auto-approved")
    found = notify.notices(request(auto, PENDING), LEDGER, BOTH, T0)
    assert keys(found) == ["webhook:requested", "webhook:approved"]


def test_escalation_updates_the_message_and_tells_each_backup_directly() -> None:
    escalated = _cond(names.ESCALATED, "True", names.PENDING_TOO_LONG, "pending for over 30m")
    found = notify.notices(request(PENDING, escalated), LEDGER, BOTH, T0)
    slack = [n for n in found if n.sink == notify.SLACK]
    assert keys(slack) == [
        "slack:team-message:pending",
        "slack:team-message:escalated",
        "slack:@carol@example.com:escalated",
    ]
    assert slack[1].mentions == ("lena@example.com", "carol@example.com")


def test_a_decision_updates_the_message_and_tells_the_requester() -> None:
    approved = _cond(names.APPROVED, "True", names.APPROVED, "approved by lena")
    found = notify.notices(request(approved, PENDING, approvedBy="lena@example.com"), LEDGER, BOTH, T0)
    assert "slack:team-message:approved" in keys(found)
    assert "slack:@bob@example.com:approved" in keys(found)
    denied = _cond(names.DENIED, "True", names.DENIED, "no")
    ended = _cond(names.READY, "False", names.DENIED, "denied")
    found = notify.notices(request(denied, ended, deniedBy="lena@example.com"), LEDGER, BOTH, T0)
    assert {"slack:team-message:denied", "slack:@bob@example.com:denied"} <= set(keys(found))


def test_the_security_channel_is_told_of_a_break_glass_with_the_command_that_reviews_that_request() -> None:
    """The command names the request by uid: a reviewer acting on the notice reviews that one, never
    another created since under its name (`kubectl jit review NAME --uid UID`, attack 134)."""
    glass = _cond(names.APPROVED, "True", names.BREAK_GLASS, "break-glass")
    stored = request(glass)
    found = [n for n in notify.notices(stored, LEDGER, BOTH, T0) if n.key == "slack:security:break-glass"]
    assert len(found) == 1 and notify.channel_of(found[0], LEDGER, BOTH) == "C0SECURITY"
    _, blocks = render(found[0], stored, LEDGER, {})
    assert blocks[0]["text"]["text"].endswith(
        "An approver of the owner team must review it: `kubectl jit review bob-ledger-1 --uid u-req`."
    ), blocks


def test_a_request_refused_at_first_look_never_reaches_the_approvers_but_a_posted_message_follows_it() -> None:
    """Refused by the handler at its first look (admission admitted it, Identity Center not answering
    then): its approvers were never asked and hear nothing; its requester, who may have created it
    with `kubectl apply` and not be watching, is told why, and what to do."""
    refused = _cond(names.READY, "False", names.NOT_ELIGIBLE, "not in prod-eligible")
    stored = request(refused, ownerTeam="ledger")
    assert [n.key for n in notify.notices(stored, LEDGER, BOTH, T0) if n.sink == notify.SLACK] == [
        "slack:@bob@example.com:not-eligible"
    ]
    (told,) = [n for n in notify.notices(stored, LEDGER, BOTH, T0) if n.sink == notify.SLACK]
    _, blocks = render(told, stored, LEDGER, {})
    line = blocks[0]["text"]["text"]
    assert line.startswith(
        ":no_entry_sign: Refused: not eligible: your request `bob-ledger-1` for *ledger-prod*\n>not in"
    )
    assert "approved" not in line and "kubectl jit request ledger-prod" in line, line
    posted = request(refused, notifications={"slackChannel": "C0LEDGER", "slackTs": "1.000100"})
    found = [n.key for n in notify.notices(posted, LEDGER, BOTH, T0) if n.sink == notify.SLACK]
    assert "slack:team-message:not-eligible" in found


def test_delivered_keys_are_not_offered_again() -> None:
    obj = request(PENDING, notifications={"sent": ["slack:team-message:pending", "webhook:requested"]})
    left = [n for n in notify.notices(obj, LEDGER, BOTH, T0) if n.key not in notify.sent_keys(obj)]
    assert keys(left) == ["webhook:pending"]


def grant(ready: str, *, revoked_by: str = "", end: datetime = T0 + timedelta(hours=1)) -> dict[str, Any]:
    status: dict[str, Any] = {
        "activationTime": _stamp(T0),
        "expirationTime": _stamp(end),
        "conditions": [_cond(names.READY, "True" if ready == names.ACTIVE else "False", ready, at=T0)],
    }
    if revoked_by:
        status |= {"revokedBy": revoked_by, "revocationTime": _stamp(T0 + timedelta(minutes=5))}
    return {
        "kind": names.ACCESS_GRANT,
        "metadata": {"name": "bob-ledger-1", "uid": "u-grant"},
        "spec": {
            "user": "bob@example.com",
            "entitlement": "ledger-prod",
            "ownerTeam": "ledger",
            "request": "bob-ledger-1",
        },
        "status": status,
    }


def test_an_active_grant_tells_its_user_and_warns_before_it_ends() -> None:
    active = grant(names.ACTIVE)
    assert keys(notify.notices(active, LEDGER, BOTH, T0)) == ["webhook:granted", "slack:@bob@example.com:granted"]
    due = notify.expiring_due(active, BOTH)
    assert due == T0 + timedelta(minutes=50)
    later = notify.notices(active, LEDGER, BOTH, due)
    assert "slack:@bob@example.com:expiring" in keys(later)
    assert "webhook:expiring" in keys(later)
    # A grant shorter than the lead time is warned at activation, never before it began.
    short = grant(names.ACTIVE, end=T0 + timedelta(minutes=5))
    assert notify.expiring_due(short, BOTH) == T0


def test_access_active_says_how_to_end_that_grant_and_no_other() -> None:
    """`kubectl jit done` ends every grant its user holds: bob, done with ledger, would also lose the
    access to payments he holds for another incident. The command is pinned to the grant's uid: run
    from the message once this grant ended and another was granted under its name, it revokes nothing."""
    active = grant(names.ACTIVE)
    (notice,) = [n for n in notify.notices(active, LEDGER, BOTH, T0) if n.key == "slack:@bob@example.com:granted"]
    _, blocks = render(notice, active, LEDGER, {})
    assert "Done early? `kubectl jit revoke bob-ledger-1 --uid u-grant`: this access ends at once." in str(blocks)
    assert "jit done" not in str(blocks)


def test_revoked_early_tells_the_user_and_the_team_unless_the_user_ended_it() -> None:
    by_lead = notify.notices(grant(names.REVOKED, revoked_by="lena@example.com"), LEDGER, BOTH, T0)
    assert {"slack:@bob@example.com:revoked", "slack:team:revoked"} <= set(keys(by_lead))
    by_self = notify.notices(grant(names.REVOKED, revoked_by="bob@example.com"), LEDGER, BOTH, T0)
    assert "slack:team:revoked" in keys(by_self)
    assert "slack:@bob@example.com:revoked" not in keys(by_self)


def test_drift_removals_go_to_the_security_channel() -> None:
    entitlement = {
        "kind": names.ENTITLEMENT,
        "metadata": {"name": "ledger-prod", "uid": "u-ent"},
        "spec": {"owner": "ledger", "identityCenter": {"groupName": "ledger-prod"}},
        "status": {
            "driftRemovals": [{"membershipId": "m-1", "userId": "x", "user": "eve@example.com", "time": _stamp(T0)}]
        },
    }
    found = notify.notices(entitlement, LEDGER, BOTH, T0)
    assert keys(found) == ["webhook:drift-removed/m-1", "slack:security:drift-removed/m-1"]
    assert notify.channel_of(found[1], LEDGER, BOTH) == "C0SECURITY"
    text, _ = render(found[1], entitlement, LEDGER, {})
    assert "eve@example.com" in text


def test_a_released_entitlement_is_an_event_of_its_own_and_no_drift_in_slack() -> None:
    """A deleted Entitlement let go has a `released` record: the sink gets it as such, and the
    security channel hears of no "standing access removed" (nobody was)."""
    entitlement = {
        "kind": names.ENTITLEMENT,
        "metadata": {"name": "ledger-prod", "uid": "u-ent", "deletionTimestamp": _stamp(T0)},
        "spec": {"owner": "ledger", "identityCenter": {"groupName": "ledger-prod"}},
        "status": {"conditions": [_cond(names.READY, "False", names.RELEASED, "let go")], "releasedAt": _stamp(T0)},
    }
    (found,) = notify.notices(entitlement, LEDGER, BOTH, T0)
    assert (found.key, found.step, found.event_type) == (
        "webhook:released",
        "released",
        "dev.jitaccess.entitlement.released",
    )


PS_ARN = "arn:aws:sso:::permissionSet/ssoins-1/ps-0abc"
MALLORY_ID = "9067-mallory"


def catalog(*removals: dict[str, Any], sent: tuple[str, ...] = ()) -> dict[str, Any]:
    """The payments PermissionCatalog whose status lists `removals` (assignment drift)."""
    status: dict[str, Any] = {"driftRemovals": list(removals)}
    if sent:
        status["notifications"] = {"sent": list(sent)}
    return {
        "kind": names.PERMISSION_CATALOG,
        "metadata": {"name": "payments", "uid": "u-cat"},
        "spec": {},
        "status": status,
    }


def assignment_removal(
    principal_type: str = "USER", principal_id: str = MALLORY_ID, *, confirmed: bool = True, **fields: Any
) -> dict[str, Any]:
    entry = {
        "permissionSetArn": PS_ARN,
        "permissionSetName": "jit-payments-prod",
        "account": "444455556666",
        "principalType": principal_type,
        "principalId": principal_id,
        "firstSeen": _stamp(T0),
        **fields,
    }
    if confirmed:
        entry |= {"time": _stamp(T0 + timedelta(seconds=3)), "message": "jit-payments-prod: ... removed"}
    return entry


#: What follows the action in the record id of `assignment_removal()`.
REMOVAL_KEY = "ps-0abc/444455556666/9067-mallory/20261130T120000Z"


def test_assignment_drift_removals_go_to_the_security_channel_and_the_sink_once_confirmed() -> None:
    under_way = assignment_removal("USER", "someone-else", confirmed=False)
    obj = catalog(assignment_removal(user="mallory@example.com"), under_way)
    found = notify.notices(obj, None, BOTH, T0)
    assert keys(found) == [
        f"webhook:assignment-drift-removed/{REMOVAL_KEY}",
        f"slack:security:assignment-drift-removed/{REMOVAL_KEY}",
    ], "one of each per confirmed removal; none while the removal is under way"
    event, message = found
    assert event.event_type == "dev.jitaccess.catalog.assignment-drift-removed"
    assert event.record["id"] == f"u-cat/assignment-drift-removed/{REMOVAL_KEY}"
    assert notify.source_of(obj) == "/apis/jitaccess.dev/v1alpha1/permissioncatalogs/payments"
    assert notify.plural_of(obj) == names.CATALOGS
    assert (message.step, notify.channel_of(message, None, BOTH)) == ("assignment-drift-removed", "C0SECURITY")

    text, blocks = render(message, obj, None, {})
    assert text == f"Assignment removed: user mallory@example.com ({MALLORY_ID}) from jit-payments-prod in 444455556666"
    shown = str(blocks)
    for fact in (
        f"user mallory@example.com ({MALLORY_ID})",  # who
        "*jit-payments-prod*",  # which permission set
        "in account 444455556666",  # where
        "team payments",
        "First seen: 2026-11-30T12:00:00Z",
        "removed at: 2026-11-30T12:00:03Z",
    ):
        assert fact in shown, fact


def test_an_assignment_drift_removal_of_a_group_or_an_unnamed_user_names_the_principal_by_id() -> None:
    group, unnamed = assignment_removal("GROUP", "g-0sneaky"), assignment_removal("USER", "u-0nameless")
    for entry, who in ((group, "group g-0sneaky"), (unnamed, "user u-0nameless")):
        (message,) = [n for n in notify.notices(catalog(entry), None, BOTH, T0) if n.sink == notify.SLACK]
        text, _ = render(message, catalog(entry), None, {})
        assert text.startswith(f"Assignment removed: {who} from jit-payments-prod"), text


def test_an_assignment_drift_message_shows_a_hostile_user_name_literally() -> None:
    obj = catalog(assignment_removal(user="<!channel>@example.com"))
    (message,) = [n for n in notify.notices(obj, None, BOTH, T0) if n.sink == notify.SLACK]
    _, blocks = render(message, obj, None, {})
    assert "<!channel>" not in str(blocks) and "&lt;!channel&gt;@example.com" in str(blocks)


def test_an_assignment_drift_removal_is_told_once_across_restarts_and_again_only_when_made_again() -> None:
    """The keys are derived from the entry alone (the same on every replica and after a restart): a
    status that lists them is done. The same assignment made by hand again after its removal is
    another removal (first seen later), told again."""
    told = (f"webhook:assignment-drift-removed/{REMOVAL_KEY}", f"slack:security:assignment-drift-removed/{REMOVAL_KEY}")
    first = catalog(assignment_removal())
    assert keys(notify.notices(first, None, BOTH, T0)) == keys(notify.notices(first, None, BOTH, T0 + timedelta(1)))
    assert set(told) <= notify.sent_keys(catalog(assignment_removal(), sent=told))
    notifier = Notifier(kube=None, config=BOTH, slack=None, sink=None)  # type: ignore[arg-type]  # offer() writes nothing
    assert notifier.offer(catalog(assignment_removal(), sent=told), None, T0) == 0
    again = assignment_removal(firstSeen=_stamp(T0 + timedelta(hours=2)))
    assert notifier.offer(catalog(assignment_removal(), again, sent=told), None, T0) == 2


def test_a_drift_removal_first_seen_long_after_is_told_all_the_same_unlike_other_steps() -> None:
    """Its entry waits in the status for its notices (`settle_drift`): a restarted operator that
    first sees one two days after the removal, the target down all that time, still tells it; another
    step that old is too late to tell."""
    two_days_later = T0 + timedelta(days=2)
    notifier = Notifier(kube=None, config=BOTH, slack=None, sink=None)  # type: ignore[arg-type]  # offer() writes nothing
    assert notifier.offer(catalog(assignment_removal()), None, two_days_later) == 2
    assert notifier._waiting["u-cat"].stale == set()
    assert notifier.offer(grant(names.ACTIVE, end=T0 + timedelta(days=3)), LEDGER, two_days_later) > 0
    assert notifier._waiting["u-grant"].stale == {"slack:@bob@example.com:granted", "webhook:granted"}


def test_a_catalogs_delivered_drift_keys_leave_with_its_archived_removals() -> None:
    listed, archived = f"assignment-drift-removed/{REMOVAL_KEY}", "assignment-drift-removed/ps-0abc/1/2/3"
    sent = {f"slack:security:{listed}", f"webhook:{listed}", f"webhook:{archived}"}
    assert notify.still_meaningful(catalog(assignment_removal()), sent) == sent - {f"webhook:{archived}"}
    assert notify.still_meaningful(catalog(), sent) == set()


def test_a_status_without_drift_removals_is_passed_over_and_only_then() -> None:
    """`holds_drift` is the audit trail's cheap look before `settle_drift` on every event: where it
    says nothing is there, settling changes nothing; each place it looks, alone, has something to
    settle (an entry archived, a key whose entry has gone)."""
    listed = f"assignment-drift-removed/{REMOVAL_KEY}"
    bare = catalog()
    other_keys = catalog()
    other_keys["status"] |= {"archivedRecords": ["released"], "notifications": {"sent": ["webhook:released"]}}
    for obj in (bare, other_keys, request(PENDING), grant(names.ACTIVE)):
        assert not notify.holds_drift(obj)
        assert notify.settle_drift(obj, BOTH) is None
    entry = catalog(assignment_removal())
    entry["status"]["archivedRecords"] = [listed]
    archived_only = catalog()
    archived_only["status"]["archivedRecords"] = [listed]
    sent_only = catalog(sent=(f"slack:security:{listed}",))
    for obj in (entry, archived_only, sent_only):
        assert notify.holds_drift(obj)
        assert notify.settle_drift(obj, notify.Config()) is not None


def test_only_configured_sinks_get_notices() -> None:
    assert notify.notices(request(PENDING), LEDGER, notify.Config(), T0) == []
    only_slack = notify.notices(request(PENDING), LEDGER, notify.Config(slack=True), T0)
    assert {n.sink for n in only_slack} == {notify.SLACK}


def _buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_the_approvers_message_has_buttons_only_while_the_request_waits() -> None:
    text, blocks = approvers_message(request(PENDING), LEDGER, {"lena@example.com": "U0LENA"})
    assert [(b["action_id"], b["value"]) for b in _buttons(blocks)] == [
        # NAME/UID: a click decides this very request, never another created under its name later.
        (notify.APPROVE_ACTION, "bob-ledger-1/u-req"),
        (notify.DENY_ACTION, "bob-ledger-1/u-req"),
    ]
    assert "<@U0LENA>" in str(blocks)
    assert "kubectl jit approve bob-ledger-1" in str(blocks)
    assert "waiting for approval" in text
    approved = _cond(names.APPROVED, "True", names.APPROVED, "approved by lena")
    text, blocks = approvers_message(request(approved, PENDING, approvedBy="lena@example.com"), LEDGER, {})
    assert _buttons(blocks) == []
    assert "Approved by lena@example.com" in str(blocks)
    assert "Approved by lena@example.com" in text


@pytest.mark.parametrize(
    ("reason", "action"),
    [
        (names.NOT_ELIGIBLE, audit.NOT_ELIGIBLE),
        (names.FAILED, audit.FAILED),
        (names.INVALID, audit.INVALID),
        (names.TIMED_OUT, audit.TIMED_OUT),
    ],
)
def test_a_request_approved_then_ended_without_access_says_how_it_ended(reason: str, action: str) -> None:
    """Approved for a later start, its requester out of the eligibility group by then (or its
    Entitlement changed, or deleted): the request keeps `Approved=True` and ends without a grant. The
    approvers' message said "Approved by lena" alone, as if access had followed."""
    approved = _cond(names.APPROVED, "True", names.APPROVED, "approved by lena")
    ended = _cond(names.READY, "False", reason, "not granted: when access was to begin, bob left prod-eligible")
    stored = request(approved, ended, approvedBy="lena@example.com")
    stored["spec"]["startTime"] = _stamp(T0 + timedelta(days=2))
    text, blocks = approvers_message(stored, LEDGER, {"lena@example.com": "U0LENA"})
    line = blocks[-1]["text"]["text"]
    label = _OUTCOME[action]
    assert line.startswith(f":white_check_mark: Approved by <@U0LENA> at {_stamp(T0)}, then {label} at "), line
    assert line.endswith(": not granted: when access was to begin, bob left prod-eligible"), line
    assert text.endswith(f": Approved by lena@example.com, then {label.split(' ', 1)[1].lower()}"), text
    assert _buttons(blocks) == []
    found = keys(notify.notices(stored, LEDGER, BOTH, T0))
    assert {f"slack:team-message:{action}", f"slack:@bob@example.com:{action}"} <= set(found)


def test_a_grant_that_failed_before_access_began_is_told_with_its_request() -> None:
    """The grant failed (Identity Center refused the membership): the request follows it, `Failed`,
    with `status.grant` set, so its own records leave the failure to the grant's, which Slack did not
    tell. The approvers' message said "Approved by lena" of access that never began, and bob, told it
    follows in seconds, heard nothing more."""
    approved = _cond(names.APPROVED, "True", names.APPROVED, "approved by lena")
    failed = _cond(names.READY, "False", names.FAILED, "Identity Center refused the membership", T0 + timedelta(1))
    stored = request(approved, failed, approvedBy="lena@example.com", grant="bob-ledger-1", ownerTeam="ledger")
    found = {n.key: n for n in notify.notices(stored, LEDGER, BOTH, T0)}
    assert {"slack:team-message:failed", "slack:@bob@example.com:failed"} <= set(found)
    assert "webhook:failed" not in found, "the grant's own event tells the sink"
    text, blocks = approvers_message(stored, LEDGER, {})
    assert "then :x: Failed at 2026-12-01T12:00:00Z: Identity Center refused the membership" in str(blocks)
    assert text.endswith("Approved by lena@example.com, then failed"), text
    told = found["slack:@bob@example.com:failed"]
    assert told.record["grant"] == "bob-ledger-1" and told.record["ownerTeam"] == "ledger"
    text, blocks = render(told, stored, LEDGER, {})
    assert "Identity Center refused the membership" in str(blocks) and "Failed" in text
    assert "follows in seconds" not in str(blocks)
    # What to do: nothing more comes of it, so bob asks again once it is fixed.
    assert "Nothing more comes of this request" in str(blocks), blocks
    assert "request access again with `kubectl jit request ledger-prod`" in str(blocks)
    assert "approved at once" not in str(blocks), "lena approved it: bob was told so"
    # Its grant active, the request is granted: nothing more is told of it than before.
    granted = request(approved, _cond(names.READY, "True", names.GRANTED), approvedBy="lena", grant="bob-ledger-1")
    assert not [k for k in keys(notify.notices(granted, LEDGER, BOTH, T0)) if k.endswith(":failed")]


#: How a request nobody was asked about is approved: the owner team's member, on call, break-glass.
APPROVED_UNASKED = [
    (names.AUTO_APPROVED, "auto-approved: bob@example.com is a member of team ledger"),
    (names.AUTO_APPROVED, "auto (on call): bob@example.com is in the on-call group sre-oncall"),
    (names.BREAK_GLASS, "break-glass: bob@example.com approved their own request"),
]
REFUSED_ADD = (
    "Identity Center refused to add bob@example.com to ledger-prod: AccessDeniedException; nobody was given access"
)


def _slack_keys(stored: dict[str, Any]) -> list[str]:
    return [
        n.key for n in notify.notices(stored, LEDGER, BOTH, T0) if n.sink == notify.SLACK and n.recipient != "security"
    ]


@pytest.mark.parametrize(("how", "said"), APPROVED_UNASKED)
def test_an_auto_approved_request_whose_grant_fails_tells_its_requester_alone(how: str, said: str) -> None:
    """bob asked for his own team's access: approved at once, no approver asked, nothing told (the
    grant's "access is active" follows within seconds). Identity Center refused the membership, the
    grant Failed, the request followed it: Slack said nothing at all, and bob waited for access that
    never came. He is told, once, what failed and what to do; the approvers, never asked, are not."""
    approved = _cond(names.APPROVED, "True", how, said)
    failed = _cond(names.READY, "False", names.FAILED, REFUSED_ADD, T0 + timedelta(seconds=3))
    stored = request(approved, failed, grant="bob-ledger-1", ownerTeam="ledger")
    assert _slack_keys(stored) == ["slack:@bob@example.com:failed"]
    (told,) = [n for n in notify.notices(stored, LEDGER, BOTH, T0) if n.key == "slack:@bob@example.com:failed"]
    text, blocks = render(told, stored, LEDGER, {})
    line = blocks[0]["text"]["text"]
    assert line.startswith(
        f":x: Failed: your request `bob-ledger-1` for *ledger-prod*, approved at once ({said}), ended without access"
        f"\n>{REFUSED_ADD}\n"
    ), line
    assert "ask team ledger), request access again with `kubectl jit request ledger-prod`" in line, line
    assert "`kubectl jit status bob-ledger-1`" in line and "follows in seconds" not in line
    assert text == "Your request bob-ledger-1 for ledger-prod: Failed"
    # Once delivered (listed in its status), a restarted operator finds nothing more to tell.
    notifier = Notifier(kube=None, config=notify.Config(slack=True), slack=None, sink=None)  # type: ignore[arg-type]  # offer() writes nothing
    sent = ["slack:@bob@example.com:failed", "slack:security:break-glass"]  # the latter: break-glass's own
    told_once = request(approved, failed, grant="bob-ledger-1", notifications={"sent": sent})
    assert notifier.offer(told_once, LEDGER, T0) == 0
    assert notifier.offer(stored, LEDGER, T0) == (2 if how == names.BREAK_GLASS else 1)


@pytest.mark.parametrize(
    ("reason", "action"),
    [(names.NOT_ELIGIBLE, audit.NOT_ELIGIBLE), (names.INVALID, audit.INVALID), (names.FAILED, audit.FAILED)],
)
def test_an_auto_approved_request_refused_before_its_grant_tells_its_requester_alone(reason: str, action: str) -> None:
    """Approved at once, then refused by the handler before any grant was made (no longer eligible
    when access was to begin, its Entitlement changed or gone, the API server refused the grant):
    the request's own record says how it ended, and its requester alone hears it."""
    approved = _cond(
        names.APPROVED, "True", names.AUTO_APPROVED, "auto-approved: bob@example.com is a member of team ledger"
    )
    ended = _cond(names.READY, "False", reason, "not granted: when access was to begin, bob left prod-eligible")
    stored = scheduled(approved, ended, ownerTeam="ledger")
    # Approved for a later start: told of the approval (no grant follows within seconds), then of the end.
    assert _slack_keys(stored) == ["slack:@bob@example.com:approved", f"slack:@bob@example.com:{action}"]
    (told,) = [n for n in notify.notices(stored, LEDGER, BOTH, T0) if n.key == f"slack:@bob@example.com:{action}"]
    _, blocks = render(told, stored, LEDGER, {})
    assert "approved at once (auto-approved: bob@example.com is a member of team ledger), ended without access" in str(
        blocks
    )
    assert "bob left prod-eligible" in str(blocks) and "kubectl jit request ledger-prod" in str(blocks)


def test_an_auto_approved_request_cancelled_before_its_start_tells_its_requester_unless_he_cancelled_it() -> None:
    approved = _cond(
        names.APPROVED, "True", names.AUTO_APPROVED, "auto-approved: bob@example.com is a member of team ledger"
    )
    revoked = _cond(names.READY, "False", names.REVOKED, "revoked by lena@example.com before its start")
    by_lead = scheduled(approved, revoked)
    by_lead["metadata"]["annotations"] = {names.ANNOTATION_REVOKED_BY: "lena@example.com"}
    assert _slack_keys(by_lead) == ["slack:@bob@example.com:approved", "slack:@bob@example.com:revoked"]
    by_self = scheduled(approved, revoked)
    by_self["metadata"]["annotations"] = {names.ANNOTATION_REVOKED_BY: "bob@example.com"}
    assert _slack_keys(by_self) == ["slack:@bob@example.com:approved"]


def test_an_auto_approved_request_for_a_later_start_tells_its_requester_when_access_begins() -> None:
    """Auto-approved with a `spec.startTime` to come: no grant exists until then, so no "access is
    active" follows within seconds. Told nothing, bob would not know for days whether it was
    approved; he is told it was, and when access begins. Approvers, never asked, hear nothing."""
    approved = _cond(
        names.APPROVED, "True", names.AUTO_APPROVED, "auto-approved: bob@example.com is a member of team ledger"
    )
    stored = scheduled(approved, _cond(names.READY, "False", names.SCHEDULED, "approved; access begins later"))
    assert _slack_keys(stored) == ["slack:@bob@example.com:approved"]
    (told,) = [n for n in notify.notices(stored, LEDGER, BOTH, T0) if n.key == "slack:@bob@example.com:approved"]
    _, blocks = render(told, stored, LEDGER, {})
    assert "2026-12-02T12:00:00Z" in str(blocks), blocks
    assert "follows in seconds" not in str(blocks)


def scheduled(*conditions: dict[str, Any], start: datetime = T0 + timedelta(days=2), **status: Any) -> dict[str, Any]:
    """bob's request for access from `start` (`spec.startTime`, as a client may write it: not UTC)."""
    stored = request(*conditions, **status)
    stored["spec"]["startTime"] = start.astimezone(timezone(timedelta(hours=2))).isoformat()
    return stored


def test_the_approvers_see_when_the_access_they_approve_begins() -> None:
    """A request may be approved now for access that begins days later (`Scheduled` until then): the
    approvers' message showed who, what and how long, never from when."""
    text, blocks = approvers_message(scheduled(PENDING), LEDGER, {})
    fields = [f["text"] for b in blocks for f in b.get("fields", [])]
    assert "*Starts*\n2026-12-02T12:00:00Z" in fields
    assert "for 1h from 2026-12-02T12:00:00Z" in blocks[0]["text"]["text"]
    assert "for 1h from 2026-12-02T12:00:00Z (waiting for approval)" in text
    approved = _cond(names.APPROVED, "True", names.APPROVED, "approved by lena")
    waiting = _cond(names.READY, "False", names.SCHEDULED, "approved; access begins at 2026-12-02T12:00:00Z")
    _, blocks = approvers_message(scheduled(approved, waiting, approvedBy="lena@example.com"), LEDGER, {})
    assert "*Starts*\n2026-12-02T12:00:00Z" in [f["text"] for b in blocks for f in b.get("fields", [])]
    _, blocks = approvers_message(request(PENDING), LEDGER, {})
    assert "*Starts*\non approval" in [f["text"] for b in blocks for f in b.get("fields", [])]


def test_a_backup_approver_is_told_when_the_access_begins() -> None:
    escalated = _cond(names.ESCALATED, "True", names.PENDING_TOO_LONG, "pending for over 30m")
    for stored, starts in (
        (scheduled(PENDING, escalated), "2026-12-02T12:00:00Z"),
        (request(PENDING, escalated), "on approval"),
    ):
        (told,) = [n for n in notify.notices(stored, LEDGER, BOTH, T0) if n.key == "slack:@carol@example.com:escalated"]
        _, blocks = render(told, stored, LEDGER, {})
        assert f"Duration: 1h · starts: {starts}" in blocks[0]["text"]["text"], blocks


def test_a_requester_approved_for_a_later_start_is_told_when_access_begins_not_in_seconds() -> None:
    approved = _cond(names.APPROVED, "True", names.APPROVED, "approved by lena")
    waiting = _cond(names.READY, "False", names.SCHEDULED, "approved; access begins at 2026-12-02T12:00:00Z")
    for stored, said in (
        (scheduled(approved, waiting, approvedBy="lena@example.com"), "Access begins at 2026-12-02T12:00:00Z"),
        # Approved after its start had passed: access follows at once.
        (scheduled(approved, PENDING, start=T0 - timedelta(minutes=1), approvedBy="lena@example.com"), "in seconds"),
        (request(approved, PENDING, approvedBy="lena@example.com"), "Access follows in seconds"),
    ):
        (told,) = [n for n in notify.notices(stored, LEDGER, BOTH, T0) if n.key == "slack:@bob@example.com:approved"]
        _, blocks = render(told, stored, LEDGER, {})
        assert said in blocks[0]["text"]["text"], blocks
        assert ("in seconds" in str(blocks)) == (said != "Access begins at 2026-12-02T12:00:00Z")


def test_an_unknown_slack_user_is_named_in_plain_text() -> None:
    _, blocks = approvers_message(request(PENDING), LEDGER, {})
    assert "lena@example.com" in str(blocks)
    assert "<@" not in str(blocks)


def test_text_from_users_cannot_mention_everyone_or_make_links() -> None:
    hostile = request(PENDING, reason="<!channel> see <https://evil.example|the ticket> & more")
    _, blocks = approvers_message(hostile, LEDGER, {})
    shown = str(blocks)
    assert "<!channel>" not in shown
    assert "<https://evil" not in shown
    assert escape("<!channel> & <x>") == "&lt;!channel&gt; &amp; &lt;x&gt;"


# Attack 135: what a requester may write in a reason (a name, a denial) to make jitaccess's trusted
# bot page the approvers' channel with a phishing link.
HOSTILE = (
    "@channel @here @everyone URGENT prod down, approve now: https://evil.example/sso #general "
    "www.evil.example evil.com <!here> <https://evil.example|SSO>"
)


def test_a_requesters_words_in_slack_ping_nobody_and_link_nowhere() -> None:
    """Slack links bare URLs and turns `@channel` into a broadcast in a mrkdwn text that is not
    `verbatim` (Slack's default); escaping `<`, `&` and `>` does not stop that. As Slack shows it
    (the stand-in's model), the approvers' message carries no broadcast, channel or link, waiting
    or denied with such a reason, and its mention of the approver still notifies her."""
    ids = {"lena@example.com": "U0LENA"}
    text, blocks = approvers_message(request(PENDING, reason=HOSTILE), LEDGER, ids)
    assert "@channel" in str(blocks) and "https://evil.example/sso" in str(blocks), "shown, literally"
    shown = as_shown(text, blocks, channel_names=["general"], **LITERAL_TEXT)
    assert (shown.broadcasts, shown.channels, shown.links) == (set(), set(), set())
    assert shown.mentions == {"U0LENA"}
    denied = _cond(names.DENIED, "True", names.DENIED, "no")
    ended = _cond(names.READY, "False", names.DENIED, "denied")
    decided = request(denied, ended, reason=HOSTILE, deniedBy="lena@example.com", decisionReason=HOSTILE)
    text, blocks = approvers_message(decided, LEDGER, ids)
    assert "URGENT prod down" in str(blocks)
    shown = as_shown(text, blocks, channel_names=["general"], **LITERAL_TEXT)
    assert (shown.broadcasts, shown.channels, shown.links, shown.mentions) == (set(), set(), set(), {"U0LENA"})


def test_every_slack_notice_shows_words_from_users_literally() -> None:
    """Each kind of message, every field of its record someone else wrote (reasons, names, a
    revocation's reason, a drift's message) hostile: Slack would show no broadcast and no link in
    any of them, and every mrkdwn text object is `verbatim`."""
    record: dict[str, Any] = {
        key: HOSTILE
        for key in ("reason", "decisionReason", "revokeReason", "message", "entitlement", "grant", "extendedBy")
    }
    record |= {"user": {"username": HOSTILE}, "actor": {"username": "lena@example.com"}, "request": HOSTILE}
    record |= {"ownerTeam": HOSTILE, "group": {"name": HOSTILE}, "permissionSet": {"name": HOSTILE}}
    pending, ext = request(PENDING, reason=HOSTILE), {"kind": names.ACCESS_EXTENSION, "metadata": {"name": "x-1"}}
    grant_obj = {"kind": names.ACCESS_GRANT, "metadata": {"name": "g-1"}}
    # The words of an approval nobody was asked for name its requester: told with its end.
    auto = request(_cond(names.APPROVED, "True", names.AUTO_APPROVED, HOSTILE), reason=HOSTILE)
    cases = [
        (notify.TEAM_MESSAGE, notify.PENDING, pending),
        (notify.SECURITY, audit.BREAK_GLASS, pending),
        (notify.SECURITY, audit.ASSIGNMENT_DRIFT_REMOVED, grant_obj),
        (notify.SECURITY, "drift-removed", grant_obj),
        (notify.TEAM_CHANNEL, notify.EXTENSION_PENDING, ext),
        (notify.TEAM_CHANNEL, audit.REVOKED, grant_obj),
        (notify.TEAM_CHANNEL, audit.LAPSED, grant_obj),
        ("@bob@example.com", audit.DENIED, ext),
        ("@carol@example.com", audit.ESCALATED, pending),
        ("@bob@example.com", audit.DENIED, pending),
        ("@bob@example.com", audit.FAILED, auto),
        ("@bob@example.com", audit.GRANTED, grant_obj),
        ("@bob@example.com", notify.EXPIRING, grant_obj),
        ("@bob@example.com", audit.EXTENDED, grant_obj),
        ("@bob@example.com", audit.REVOKED, grant_obj),
    ]
    for recipient, step, obj in cases:
        notice = notify.Notice(f"slack:{recipient}:{step}", notify.SLACK, step, record, recipient=recipient)
        text, blocks = render(notice, obj, LEDGER, {"lena@example.com": "U0LENA"})
        shown = as_shown(text, blocks, channel_names=["general"], **LITERAL_TEXT)
        assert (shown.broadcasts, shown.channels, shown.links) == (set(), set(), set()), (recipient, step, shown)
        assert shown.mentions <= {"U0LENA"}, (recipient, step)
        assert "evil" in str(blocks), (recipient, step, "the words are shown")
        texts = [o for b in blocks for o in [b.get("text"), *b.get("fields", []), *b.get("elements", [])] if o]
        mrkdwn = [o for o in texts if o.get("type") == "mrkdwn"]
        assert mrkdwn and all(o.get("verbatim") is True for o in mrkdwn), (recipient, step)


def test_the_approvers_message_fits_slacks_limits_whatever_the_names() -> None:
    """A user name as long as a TeamOwnership's entries (1024 characters) whose `&`s escaping makes
    five each: Slack refuses a field over 2000 characters (the whole message, `invalid_blocks`),
    and the approvers would never be asked. Shortened with an ellipsis, the message goes."""
    name = "bob&" * 256
    long = request(PENDING)
    long["spec"]["requester"] = long["status"]["requester"] = name
    _, blocks = approvers_message(long, LEDGER, {})
    fields = [f["text"] for b in blocks for f in b.get("fields", [])]
    assert max(len(text) for text in fields) <= 2000
    assert fields[0].startswith("*Requester*\nbob&amp;bob&amp;") and fields[0].endswith("…")
    assert fields[1:] == ["*Entitlement*\nledger-prod", "*Duration*\n1h", "*Starts*\non approval", "*Team*\nledger"]
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section" and "text" in b)


def test_text_is_never_cut_inside_an_escape_or_a_mention() -> None:
    """A cut inside `&amp;` showed `&am…` in Slack, one inside `<@U0LENA>` an unclosed `<@U0L…`:
    the cut moves back to before either, and the text stays within the limit."""
    for tail in range(1, 6):
        text = "x" * (20 - tail) + "&amp;" + "y" * 10
        cut = _shortened(text, 20)
        assert len(cut) <= 20 and cut.endswith("…") and "&" not in cut, cut
    assert _shortened("ab <@U0LENA> cd", 9) == "ab …"
    assert _shortened("a &amp; b &lt; c", 12) == "a &amp; b …"
    assert _shortened("short", 20) == "short"


def test_slack_users_map_usernames_to_slack_ids() -> None:
    assert notify.slack_user_of("lena@example.com", [LEDGER]) == "U0LENA"
    assert notify.slack_user_of("paula@example.com", [LEDGER]) is None


def test_the_owner_teams_map_routes_its_notices_before_another_teams() -> None:
    """Another team's TeamOwnership maps this team's approver to someone else's Slack user: a
    notice about this team's request still goes to the Slack user this team names."""
    hijack = notify.Team(name="ledger", slack_users={"paula@example.com": "U0LENA"})
    payments = notify.Team(
        name="payments", slack_users={"paula@example.com": "U0PAULA"}, approvers=("paula@example.com",)
    )
    assert notify.slack_user_of("paula@example.com", [hijack, payments], payments) == "U0PAULA"
    assert notify.slack_user_of("paula@example.com", [hijack, payments]) == "U0PAULA", "ledger names no paula"


def test_another_teams_map_never_takes_an_approvers_mentions_or_escalations() -> None:
    """ledger does not map its approver lena (her Slack email is her username), nor its backup carol;
    payments, which edits its own TeamOwnership, maps both to paula's Slack user. The mentions in
    ledger's approvers' message and carol's escalation message went to paula: the owner team's
    approvers are found by its own map, else by their email, never by another team's."""
    ledger = notify.Team(name="ledger", approvers=("lena@example.com",), backup_approvers=("carol@example.com",))
    payments = notify.Team(
        name="payments",
        members=("paula@example.com",),
        slack_users={"lena@example.com": "U0PAULA", "carol@example.com": "U0PAULA"},
    )
    for approver in ("lena@example.com", "carol@example.com"):
        assert notify.slack_user_of(approver, [ledger, payments], ledger) is None, "by her email"
    assert notify.slack_user_of("lena@example.com", [ledger, payments], payments) is None, "payments names no lena"
    mapped = notify.Team(name="ledger", approvers=("lena@example.com",), slack_users={"lena@example.com": "U0LENA"})
    assert notify.slack_user_of("lena@example.com", [mapped, payments], mapped) == "U0LENA"


def test_a_requesters_slack_user_is_said_only_by_the_teams_that_name_them() -> None:
    """bob, a member of ledger whose Slack email is another, asks for payments' access: the decision
    and his grant's messages go where ledger maps him; payments, which names him nowhere, has no say,
    and two teams that name him and disagree leave it to his email."""
    ledger = notify.Team(name="ledger", members=("bob@example.com",), slack_users={"bob@example.com": "U0BOB"})
    payments = notify.Team(
        name="payments", approvers=("paula@example.com",), slack_users={"bob@example.com": "U0PAULA"}
    )
    assert notify.slack_user_of("bob@example.com", [ledger, payments], payments) == "U0BOB"
    assert notify.slack_user_of("bob@example.com", [payments], payments) is None
    other = notify.Team(name="ops", members=("bob@example.com",), slack_users={"bob@example.com": "U0MALLORY"})
    assert notify.slack_user_of("bob@example.com", [ledger, other], payments) is None
    # The owner team's own map for its member, before another team that names him too.
    owning = notify.Team(name="ledger", members=("bob@example.com",), slack_users={"bob@example.com": "U0BOB"})
    assert notify.slack_user_of("bob@example.com", [owning, other], owning) == "U0BOB"


def test_a_team_read_from_its_teamownership_knows_its_members() -> None:
    spec = {"members": ["bob@example.com"], "approvers": ["lena@example.com"]}
    assert notify.Team.of({"metadata": {"name": "ledger"}, "spec": spec}).members == ("bob@example.com",)


def test_an_entitlements_delivered_drift_keys_leave_with_its_archived_removals() -> None:
    entitlement = {
        "kind": names.ENTITLEMENT,
        "metadata": {"name": "ledger-prod", "uid": "u-ent"},
        "status": {"driftRemovals": [{"membershipId": "m-2"}]},
    }
    sent = {"slack:security:drift-removed/m-1", "webhook:drift-removed/m-1", "webhook:drift-removed/m-2"}
    assert notify.still_meaningful(entitlement, sent) == {"webhook:drift-removed/m-2"}
    assert notify.still_meaningful(request(PENDING), {"slack:team-message:pending"}) == {"slack:team-message:pending"}


def test_access_ending_soon_says_how_to_extend() -> None:
    active = grant(names.ACTIVE)
    later = T0 + timedelta(minutes=55)
    (notice,) = [n for n in notify.notices(active, LEDGER, BOTH, later) if n.step == "expiring" and n.sink == "slack"]
    text, blocks = render(notice, active, LEDGER, {})
    assert "kubectl jit extend bob-ledger-1 --by 30m" in str(blocks)
    assert "ends at" in text


def test_an_extension_is_told_to_the_grantee_and_warns_again_before_the_new_end() -> None:
    active = grant(names.ACTIVE, end=T0 + timedelta(hours=2))
    active["status"]["extensions"] = [
        {"name": "x1", "by": "1h", "approvedBy": "lena@example.com", "time": _stamp(T0 + timedelta(minutes=50))}
    ]
    later = T0 + timedelta(hours=1, minutes=55)
    found = notify.notices(active, LEDGER, BOTH, later)
    assert {"slack:@bob@example.com:extended/1", "webhook:extended/1"} <= set(keys(found))
    assert {"slack:@bob@example.com:expiring/1", "webhook:expiring/1"} <= set(keys(found))
    (told,) = [n for n in found if n.key == "slack:@bob@example.com:extended/1"]
    text, _ = render(told, active, LEDGER, {})
    assert "now ends at" in text


def extension(*conditions: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "kind": names.ACCESS_EXTENSION,
        "metadata": {"name": "alice-ledger-1-x", "uid": "u-ext", "creationTimestamp": _stamp(T0)},
        "spec": {
            "grant": "alice-ledger-1",
            "duration": "30m",
            "reason": "<!here> INC-9",
            "requester": "alice@example.com",
        },
        "status": {"entitlement": "ledger-prod", "conditions": list(conditions), **status},
    }


def test_an_extension_waiting_for_approvers_asks_the_team_and_a_denial_tells_the_requester() -> None:
    waiting = extension(_cond(names.READY, "False", names.PENDING))
    (asked,) = notify.notices(waiting, LEDGER, BOTH, T0)
    assert (asked.key, asked.mentions) == ("slack:team:extension-pending", ("lena@example.com",))
    text, blocks = render(asked, waiting, LEDGER, {"lena@example.com": "U0LENA"})
    assert "kubectl jit approve extension/alice-ledger-1-x" in str(blocks) and "<@U0LENA>" in str(blocks)
    assert "<!here>" not in str(blocks)
    denied = extension(
        _cond(names.DENIED, "True", names.DENIED),
        _cond(names.READY, "True", names.DENIED, "denied"),
        deniedBy="lena@example.com",
        decisionReason="finish tomorrow",
    )
    found = {n.key: n for n in notify.notices(denied, LEDGER, BOTH, T0)}
    assert set(found) == {"slack:team:extension-pending", "slack:@alice@example.com:denied"}
    text, blocks = render(found["slack:@alice@example.com:denied"], denied, LEDGER, {})
    assert "finish tomorrow" in str(blocks) and "Denied" in text
    auto = extension(_cond(names.APPROVED, "True", names.AUTO_APPROVED), _cond(names.READY, "True", names.EXTENDED))
    assert notify.notices(auto, LEDGER, BOTH, T0) == [], "an owner-team member's own: the grant's record tells"


def test_the_slack_stand_in_reads_the_request_a_button_decides() -> None:
    """The Slack stand-in tells which request a message's button decides (bench/notifications.py
    matches messages to requests so): it must follow the button's value, `NAME/UID`."""
    from devenv.slack import Message
    from jitaccess.domain.notifications import APPROVE_ACTION, DENY_ACTION

    text, blocks = approvers_message(request(PENDING), LEDGER, {})
    message = Message(channel="C0LEDGER1", ts="1.0", versions=[(text, blocks)])
    assert message.request(APPROVE_ACTION, as_posted=True) == "bob-ledger-1"
    assert message.request(DENY_ACTION) == "bob-ledger-1"
    assert message.request("something-else") is None


def test_untold_drift_names_the_removals_with_a_notice_owed_and_not_delivered_and_whom_they_wait_for() -> None:
    listed = f"assignment-drift-removed/{REMOVAL_KEY}"
    untold = notify.untold_drift(catalog(assignment_removal()), BOTH)
    assert (untold.keys, untold.sinks) == ((listed,), (notify.SLACK, notify.WEBHOOK))
    untold = notify.untold_drift(catalog(assignment_removal(), sent=(f"slack:security:{listed}",)), BOTH)
    assert (untold.keys, untold.sinks) == ((listed,), (notify.WEBHOOK,)), "the sink's notice still waits"
    told = (f"slack:security:{listed}", f"webhook:{listed}")
    assert notify.untold_drift(catalog(assignment_removal(), sent=told), BOTH) == notify.UntoldDrift()
    assert notify.untold_drift(catalog(assignment_removal()), notify.Config()) == notify.UntoldDrift(), "nobody to tell"
    under_way = notify.untold_drift(catalog(assignment_removal(confirmed=False)), BOTH)
    assert under_way == notify.UntoldDrift(), "under way: nothing owed yet"
    assert notify.untold_drift(request(PENDING), BOTH) == notify.UntoldDrift()


def _offered_to(handler: Any, body: dict[str, Any], entitlements: dict[str, list[Any]]) -> str | None:
    """The team whose channel and approvers `handler` (a watch handler) offers `body`'s notices to."""
    notifier = Notifier(kube=None, config=notify.Config(slack=True), slack=None, sink=None)  # type: ignore[arg-type]  # offer() writes nothing
    memo = kopf.Memo()
    memo[notifications.MEMO_KEY] = notifications.NotifierSlot(notifier)
    spec = {"approvers": ["lena@example.com"], "notifications": {"slackChannel": "C0LEDGER1"}}
    teams = {"ledger": [spec], "payments": [spec | {"notifications": {"slackChannel": "C0PAYMENTS1"}}]}
    asyncio.run(handler(body=kopf.Body(body), memo=memo, teams=teams, entitlements=entitlements))
    waiting = notifier._waiting.get(str(body["metadata"]["uid"]))
    return waiting.team.name if waiting is not None and waiting.team is not None else None


def test_an_extension_is_told_to_the_team_its_grant_recorded_not_the_entitlements_owner_now() -> None:
    """Attack 57: an extension is decided by the team its grant recorded (ledger), though the
    Entitlement was handed to payments since; the notice went to payments, who cannot decide it."""
    waiting = extension(_cond(names.READY, "False", names.PENDING), ownerTeam="ledger")
    moved = {"ledger-prod": [{"spec": {"owner": "payments"}}]}
    assert _offered_to(notifications.notify_extension, waiting, moved) == "ledger"
    older = extension(_cond(names.READY, "False", names.PENDING))  # its grant from before grants recorded it
    assert _offered_to(notifications.notify_extension, older, moved) == "payments"


def test_a_request_whose_entitlement_is_gone_is_told_to_the_team_it_recorded() -> None:
    denied = _cond(names.DENIED, "True", names.DENIED, "no")
    decided = request(denied, _cond(names.READY, "False", names.DENIED, "denied"), ownerTeam="ledger")
    assert _offered_to(notifications.notify_request, decided, {}) == "ledger"
    # Taken up under payments, decided by ledger's approver once the Entitlement was handed to ledger
    # (`status.decisionTeam`): ledger's channel hears of it, not payments'.
    handed = request(denied, _cond(names.READY, "False", names.DENIED, "denied"), ownerTeam="payments")
    handed["status"]["decisionTeam"] = "ledger"
    assert _offered_to(notifications.notify_request, handed, {}) == "ledger"
    # The Entitlement's owner now decides a request that waits (admission asks it), and is told.
    assert (
        _offered_to(notifications.notify_request, request(PENDING), {"ledger-prod": [{"spec": {"owner": "payments"}}]})
        == "payments"
    )

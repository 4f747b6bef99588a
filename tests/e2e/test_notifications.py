"""Notifications end to end: the session operator tells the example Slack workspace (the strict
stand-in) and a CloudEvents receiver; decisions come back through Slack as the clicking user."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from devenv.eventsink import EventSinkReceiver
from devenv.notifications import slack_id_of
from devenv.slack import Message, SlackStandIn
from tests.support.harness import Jit, eventually

ALICE, LENA, BOB = "alice@example.com", "lena@example.com", "bob@example.com"
LEDGER_CHANNEL, PAYMENTS_CHANNEL = "C0LEDGER1", "C0PAYMENTS1"
OUTAGE_SECONDS = 60


def _about(slack: SlackStandIn, name: str, channel: str | None = None) -> list[Message]:
    return [m for m in slack.messages(channel) if f"`{name}`" in json.dumps(m.blocks) or name in (m.text or "")]


def _buttons(message: Message) -> list[dict[str, Any]]:
    return [e for b in message.blocks or [] if b.get("type") == "actions" for e in b.get("elements", [])]


def _dms(slack: SlackStandIn, user: str, name: str) -> list[Message]:
    return [m for m in _about(slack, name) if m.channel in (slack_id_of(user), f"D{slack_id_of(user)[1:]}")]


def _events(events: EventSinkReceiver, name: str) -> dict[str, Any]:
    return {e.get_type(): e for e in events.events() if e.get_subject() == name}


def test_a_waiting_request_reaches_its_approvers_and_the_message_follows_a_kubectl_decision(
    system: Jit, slack: SlackStandIn, events: EventSinkReceiver
) -> None:
    system.request("alice-ledger-n1", "prod-eng-ledger", user=ALICE, reason="LEDGER-12 reconcile the books")
    (message,) = eventually(lambda: _about(slack, "alice-ledger-n1", LEDGER_CHANNEL), what="the approvers' message")
    # NAME/UID: a click decides this very request, never another created later under its name.
    uid = (system.get("accessrequest", "alice-ledger-n1") or {})["metadata"]["uid"]
    assert [(b["action_id"], b["value"]) for b in _buttons(message)] == [
        ("approve", f"alice-ledger-n1/{uid}"),
        ("deny", f"alice-ledger-n1/{uid}"),
    ]
    shown = json.dumps(message.blocks)
    assert "LEDGER-12 reconcile the books" in shown and "prod-eng-ledger" in shown
    assert f"<@{slack_id_of(LENA)}>" in shown, "the tech lead is mentioned by Slack id (found by email)"
    assert "kubectl jit approve alice-ledger-n1" in shown

    system.kubectl("annotate", "accessrequest", "alice-ledger-n1", "jitaccess.dev/approved=true", user=LENA)
    system.wait_reason("accessrequest", "alice-ledger-n1", "Granted")
    updated = eventually(
        lambda: next((m for m in _about(slack, "alice-ledger-n1", LEDGER_CHANNEL) if m.updates), None),
        what="the approvers' message updated",
    )
    assert updated.ts == message.ts, "the same message, updated in place"
    assert _buttons(updated) == [], "no live button once decided"
    assert "Approved" in json.dumps(updated.blocks) and f"<@{slack_id_of(LENA)}>" in json.dumps(updated.blocks)
    eventually(lambda: len(_dms(slack, ALICE, "alice-ledger-n1")) >= 2 or None, what="approved + granted DMs")

    seen = eventually(
        lambda: (found := _events(events, "alice-ledger-n1")) and len(found) >= 4 and found, what="events"
    )
    for step in ("request.pending", "request.requested", "request.approved", "grant.granted"):
        assert f"dev.jitaccess.{step}" in seen, step
    approved = seen["dev.jitaccess.request.approved"]
    assert approved.get_source() == "/apis/jitaccess.dev/v1alpha1/accessrequests/alice-ledger-n1"
    assert approved.get_data()["actor"]["username"] == LENA
    assert approved.get_id() == f"{system.get('accessrequest', 'alice-ledger-n1')['metadata']['uid']}/approved"
    sent = eventually(
        lambda: (
            (s := system.get("accessrequest", "alice-ledger-n1")["status"].get("notifications"))
            and "slack:team-message:approved" in s["sent"]
            and s
        ),
        what="delivery recorded in status",
    )
    assert sent["slackChannel"] == LEDGER_CHANNEL and sent["slackTs"] == message.ts
    assert events.refusals() == [], "every event signed with the shared secret"


def test_an_own_team_request_tells_only_its_requester(system: Jit, slack: SlackStandIn) -> None:
    system.request("alice-own-n2", "prod-eng-payments", user=ALICE)
    system.wait_reason("accessrequest", "alice-own-n2", "Granted")
    (dm,) = eventually(lambda: _dms(slack, ALICE, "alice-own-n2"), what="the granted DM")
    assert "active until" in (dm.text or "")
    assert _about(slack, "alice-own-n2", PAYMENTS_CHANNEL) == [], "auto-approved: no approvers' message"


def test_an_own_team_request_whose_grant_fails_tells_its_requester_what_failed(
    system: Jit, slack: SlackStandIn
) -> None:
    """alice's request for her own team's role is approved at once (nobody asked, nothing told: the
    "access is active" message would follow), then Identity Center refuses the membership (the
    operator's IAM policy lost CreateGroupMembership) and the grant fails. Slack said nothing at all;
    alice is told, once, what failed and what to do, and payments' approvers, never asked, nothing."""
    system.ic.faults.fail("CreateGroupMembership", times=100, error="AccessDeniedException")
    try:
        system.request("alice-own-n3", "prod-eng-payments", user=ALICE)
        system.wait_reason("accessrequest", "alice-own-n3", "Failed")
    finally:
        system.ic.faults.clear()
    (dm,) = eventually(lambda: _dms(slack, ALICE, "alice-own-n3"), what="the failure's DM")
    shown = json.dumps(dm.blocks)
    assert "approved at once (auto-approved: alice@example.com is a member of team payments)" in shown, shown
    assert "Identity Center refused to add alice@example.com" in shown, shown
    assert "kubectl jit request prod-eng-payments" in shown, shown
    assert (dm.text or "").endswith(": Failed"), dm.text
    eventually(
        lambda: (
            "slack:@alice@example.com:failed"
            in ((system.get("accessrequest", "alice-own-n3")["status"].get("notifications") or {}).get("sent") or [])
        ),
        what="its delivery recorded in the request's status (a restart does not send it again)",
    )
    assert _about(slack, "alice-own-n3", PAYMENTS_CHANNEL) == [], "no approver was asked: none is told"
    assert len(_dms(slack, ALICE, "alice-own-n3")) == 1


def test_a_slack_outage_delays_no_grant_and_loses_no_message(system: Jit, slack: SlackStandIn) -> None:
    slack.down(True)
    back = time.monotonic() + OUTAGE_SECONDS
    try:
        system.request("bob-own-n4", "prod-eng-ledger", user=BOB)
        system.wait_reason("accessrequest", "bob-own-n4", "Granted", timeout=10)  # Slack's outage is not ours
        system.request("alice-ledger-n4", "prod-eng-ledger", user=ALICE)
        system.wait_reason("accessrequest", "alice-ledger-n4", "Pending")
        eventually(
            lambda: any(c.status == 503 for c in slack.calls("chat.postMessage")) or None, what="tried while down"
        )
        time.sleep(max(0.0, back - time.monotonic()))
    finally:
        slack.down(False)
    eventually(lambda: _about(slack, "alice-ledger-n4", LEDGER_CHANNEL), timeout=90, what="the message once back")
    eventually(lambda: _dms(slack, BOB, "bob-own-n4"), timeout=90, what="the granted DM once back")
    assert len(_about(slack, "alice-ledger-n4", LEDGER_CHANNEL)) == 1
    assert len(_dms(slack, BOB, "bob-own-n4")) == 1


def test_a_crash_between_decision_and_update_updates_the_message_exactly_once(system: Jit, slack: SlackStandIn) -> None:
    system.request("alice-ledger-n5", "prod-eng-ledger", user=ALICE)
    (message,) = eventually(lambda: _about(slack, "alice-ledger-n5", LEDGER_CHANNEL), what="the approvers' message")
    slack.down(True)
    try:
        system.kubectl("annotate", "accessrequest", "alice-ledger-n5", "jitaccess.dev/approved=true", user=LENA)
        system.wait_reason("accessrequest", "alice-ledger-n5", "Granted")
        eventually(lambda: any(c.status == 503 for c in slack.calls("chat.update")) or None, what="update tried")
        system.operator.kill()
    finally:
        slack.down(False)
    system.operator.start()
    updated = eventually(
        lambda: next((m for m in _about(slack, "alice-ledger-n5", LEDGER_CHANNEL) if m.updates), None),
        timeout=60,
        what="the update after the restart",
    )
    assert updated.ts == message.ts
    eventually(
        lambda: (
            "slack:team-message:approved"
            in (system.get("accessrequest", "alice-ledger-n5")["status"].get("notifications") or {}).get("sent", [])
        ),
        what="the update recorded",
    )
    assert [m.updates for m in _about(slack, "alice-ledger-n5", LEDGER_CHANNEL)] == [1]


def _button_of(slack: SlackStandIn, name: str, action: str) -> Message:
    def find() -> Message | None:
        try:
            return slack.find_button(name, action, LEDGER_CHANNEL)[0]
        except LookupError:
            return None

    return eventually(find, what=f"the {action} button of {name}")


def test_the_tech_lead_approves_with_a_click_applied_as_herself(system: Jit, slack: SlackStandIn) -> None:
    system.request("alice-ledger-n6", "prod-eng-ledger", user=ALICE)
    message = _button_of(slack, "alice-ledger-n6", "approve")
    status, _ = slack.click(slack_id_of(LENA), message, "approve")
    assert status == 200
    granted = system.wait_reason("accessrequest", "alice-ledger-n6", "Granted")
    assert granted["status"]["approvedBy"] == LENA
    # Stamped by the admission webhook from the authenticated (impersonated) user, as for kubectl.
    assert granted["metadata"]["annotations"]["jitaccess.dev/approved-by"] == LENA
    assert system.members("prod-eng-ledger") == {ALICE}
    updated = eventually(
        lambda: next((m for m in _about(slack, "alice-ledger-n6", LEDGER_CHANNEL) if m.updates), None),
        what="the message updated",
    )
    assert _buttons(updated) == [] and "Approved" in json.dumps(updated.blocks)


def test_a_deny_click_asks_for_the_reason_the_requester_then_reads(system: Jit, slack: SlackStandIn) -> None:
    system.request("alice-ledger-n7", "prod-eng-ledger", user=ALICE)
    message = _button_of(slack, "alice-ledger-n7", "deny")
    status, _ = slack.click(slack_id_of(LENA), message, "deny")
    assert status == 200
    (view,) = eventually(
        lambda: [
            v for v in slack.views() if (v.private_metadata or "").startswith("alice-ledger-n7/") and not v.closed
        ],
        what="the deny modal",
    )
    assert system.ready_reason("accessrequest", "alice-ledger-n7") == "Pending", "a click alone denies nothing"
    status, _ = slack.submit_view(slack_id_of(LENA), view.id, {"reason": {"reason": "use the read-only role"}})
    assert status == 200
    denied = system.wait_reason("accessrequest", "alice-ledger-n7", "Denied")
    assert denied["status"]["deniedBy"] == LENA
    assert denied["status"]["decisionReason"] == "use the read-only role"
    (dm,) = eventually(
        lambda: [m for m in _dms(slack, ALICE, "alice-ledger-n7") if "Denied" in json.dumps(m.blocks)],
        what="the requester told",
    )
    assert "use the read-only role" in json.dumps(dm.blocks)
    assert system.members("prod-eng-ledger") == set()


def test_the_requesters_own_click_is_refused_and_told_why(system: Jit, slack: SlackStandIn) -> None:
    system.request("alice-ledger-n8", "prod-eng-ledger", user=ALICE)
    message = _button_of(slack, "alice-ledger-n8", "approve")
    slack.click(slack_id_of(ALICE), message, "approve")
    (told,) = eventually(
        lambda: (
            [e for e in slack.ephemerals() if e.user == slack_id_of(ALICE) and "alice-ledger-n8" in (e.text or "")]
            or None
        ),
        what="an ephemeral refusal",
    )
    assert system.ready_reason("accessrequest", "alice-ledger-n8") == "Pending"
    assert system.members("prod-eng-ledger") == set()
    (still,) = _about(slack, "alice-ledger-n8", LEDGER_CHANNEL)
    assert still.updates == 0 and _buttons(still), "the buttons stay live for the real approver"
    assert told.channel == LEDGER_CHANNEL


def test_standing_access_the_drift_scan_removes_is_told_to_the_security_channel(
    system: Jit, slack: SlackStandIn
) -> None:
    system.ic.add_members("prod-eng-ledger", ["eve@example.com"])  # by hand, in the console: no grant
    eventually(lambda: system.members("prod-eng-ledger") == set() or None, timeout=30, what="drift removed")
    (told,) = eventually(
        lambda: [m for m in slack.messages("C0SECURITY1") if "eve@example.com" in (m.text or "")],
        timeout=30,
        what="the security channel told",
    )
    assert "prod-eng-ledger" in (told.text or "")


def test_a_sink_that_keeps_refusing_raises_a_warning_event(system: Jit, slack: SlackStandIn) -> None:
    # A channel id of the right shape that the workspace does not have: Slack refuses every post.
    patch = '{"spec":{"notifications":{"slackChannel":"C0NOSUCH1"}}}'
    system.kubectl("patch", "teamownership", "ledger", "--type=merge", "-p", patch)
    try:
        names = [f"alice-ledger-f{n}" for n in range(5)]
        for hour, name in enumerate(names, start=1):
            # Windows of their own: alice may have one request for the same access now (attack 90).
            start = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hour)).strftime("%Y-%m-%dT%H:%M:%SZ")
            system.request(name, "prod-eng-ledger", user=ALICE, startTime=start)
        warned = eventually(
            lambda: [e for n in names for e in system.events(n) if e["reason"] == "NotificationFailing"] or None,
            timeout=30,
            what="a NotificationFailing warning",
        )
        assert warned[0]["type"] == "Warning" and "channel_not_found" in warned[0]["message"]
        assert all(system.ready_reason("accessrequest", n) == "Pending" for n in names), "requests unaffected"
    finally:
        restore = '{"spec":{"notifications":{"slackChannel":"C0LEDGER1"}}}'
        system.kubectl("patch", "teamownership", "ledger", "--type=merge", "-p", restore)


def test_an_extension_waiting_for_approvers_is_told_to_the_team_and_its_end_to_the_grantee(
    system: Jit, slack: SlackStandIn
) -> None:
    system.request("alice-ledger-n9", "prod-eng-ledger", duration="1h", user=ALICE)
    system.wait_reason("accessrequest", "alice-ledger-n9", "Pending")
    system.kubectl("annotate", "accessrequest", "alice-ledger-n9", "jitaccess.dev/approved=true", user=LENA)
    system.wait_reason("accessgrant", "alice-ledger-n9", "Active")
    for name, verdict in (("alice-ledger-n9-1", "jitaccess.dev/approved=true"), ("alice-ledger-n9-2", None)):
        manifest = {
            "apiVersion": "jitaccess.dev/v1alpha1",
            "kind": "AccessExtension",
            "metadata": {"name": name},
            "spec": {"grant": "alice-ledger-n9", "duration": "30m", "reason": "INC-9 the migration runs long"},
        }
        system.apply(manifest, user=ALICE, verb="create")
        system.wait_reason("accessextension", name, "Pending")
        (asked,) = eventually(
            lambda name=name: [m for m in slack.messages(LEDGER_CHANNEL) if name in (m.text or "")] or None,
            what="the team asked",
        )
        assert f"kubectl jit approve extension/{name}" in json.dumps(asked.blocks)
        assert f"<@{slack_id_of(LENA)}>" in json.dumps(asked.blocks)
        decision = verdict or "jitaccess.dev/denied=true"
        extra = () if verdict else ("jitaccess.dev/decision-reason=finish tomorrow",)
        system.kubectl("annotate", "accessextension", name, decision, *extra, user=LENA)
    eventually(
        lambda: [m for m in slack.messages(slack_id_of(ALICE)) if "now ends at" in (m.text or "")] or None,
        what="the grantee told of the new end",
    )
    (denied,) = eventually(
        lambda: [m for m in slack.messages(slack_id_of(ALICE)) if "alice-ledger-n9-2" in (m.text or "")] or None,
        what="the requester told of the denial",
    )
    assert "finish tomorrow" in json.dumps(denied.blocks)
    system.kubectl("delete", "accessextensions", "alice-ledger-n9-1", "alice-ledger-n9-2", "--wait=false", check=False)

"""The Slack interactivity endpoint alone: the signature, timestamp and replay gate, the payloads,
who a Slack user is, and what each click becomes (a fake impersonator stands for the API server)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from devenv.slack import as_shown
from jitaccess import metrics
from jitaccess.adapters.impersonation import DecisionError
from jitaccess.errors import ForeignUser
from jitaccess.handlers import interactions
from jitaccess.handlers.interactions import (
    Endpoint,
    Gate,
    Interaction,
    OwnerTeam,
    PayloadError,
    UnknownUser,
    email_username,
    mapped_username,
    parse,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_700_000_000
APPROVED, DENIED, REASON = "jitaccess.dev/approved", "jitaccess.dev/denied", "jitaccess.dev/decision-reason"
APPROVALS = "jitaccess.dev/approvals"
LEDGER = {
    "approvers": ["lena@example.com"],
    "backupApprovers": ["carol@example.com"],
    "notifications": {"slackUsers": {"carol@example.com": "U0CAROLSRE"}},  # her Slack email is another one
}
PAYMENTS = {"approvers": ["paula@example.com"], "notifications": {"slackUsers": {}}}


def sign(body: bytes, stamp: int = NOW, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": f"v0={digest}"}


def form(payload: Mapping[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


UID = "0b6f2c1e-3d4a-4f5b-9c8d-7e6f5a4b3c2d"


def click(action: str, user: str = "U0LENA", request: str = f"ledger-x1/{UID}") -> bytes:
    return form(
        {
            "type": "block_actions",
            "user": {"id": user},
            "trigger_id": "1234.5678",
            "channel": {"id": "C0LEDGER1"},
            "actions": [{"action_id": action, "value": request, "type": "button"}],
        }
    )


def submission(reason: str, user: str = "U0LENA", request: str = f"ledger-x1/{UID}") -> bytes:
    values = {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}
    return form(
        {
            "type": "view_submission",
            "user": {"id": user},
            "view": {"callback_id": "deny", "private_metadata": request, "state": {"values": values}},
        }
    )


# --- the gate ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


def test_gate_passes_a_signed_delivery_once() -> None:
    gate = Gate(SECRET, Clock())
    body = click("approve")
    assert gate.refusal(body, sign(body)) is None
    assert gate.refusal(body, sign(body)) == "replayed"


@pytest.mark.parametrize(
    ("headers", "refusal"),
    [
        (lambda body: {}, "unsigned"),
        (lambda body: {"X-Slack-Request-Timestamp": str(NOW)}, "unsigned"),
        (lambda body: sign(body, NOW - 301), "stale"),
        (lambda body: sign(body, NOW + 301), "stale"),
        (lambda body: {"X-Slack-Request-Timestamp": "17e8", "X-Slack-Signature": "v0=00"}, "stale"),
        # Digits `int` refuses (over 4,300 of them; not ASCII): refused, not a 500 before the signature.
        (lambda body: {"X-Slack-Request-Timestamp": "9" * 5000, "X-Slack-Signature": "v0=00"}, "stale"),
        (lambda body: {"X-Slack-Request-Timestamp": "17²", "X-Slack-Signature": "v0=00"}, "stale"),
        (lambda body: sign(body, NOW, secret="another secret"), "forged"),
        (lambda body: {"X-Slack-Request-Timestamp": str(NOW), "X-Slack-Signature": "v0=" + "0" * 64}, "forged"),
    ],
    ids=["none", "no-signature", "old", "future", "not-a-number", "huge", "not-ascii", "other-secret", "made-up"],
)
def test_gate_refuses(headers: Callable[[bytes], dict[str, str]], refusal: str) -> None:
    body = click("approve")
    assert Gate(SECRET, Clock()).refusal(body, headers(body)) == refusal


def test_gate_refuses_a_changed_body_and_bytes_that_are_not_text() -> None:
    gate = Gate(SECRET, Clock())
    body = click("approve")
    assert gate.refusal(click("approve", user="U0MALLORY"), sign(body)) == "forged"
    assert gate.refusal(b"\xff\xfe", sign(b"\xff\xfe")) == "forged"


def test_gate_forgets_a_signature_once_its_timestamp_is_out_of_the_window() -> None:
    clock = Clock()
    gate = Gate(SECRET, clock)
    body = click("approve")
    assert gate.refusal(body, sign(body)) is None
    clock.now += 299
    assert gate.refusal(body, sign(body)) == "replayed"
    clock.now += 2
    assert gate.refusal(body, sign(body)) == "stale"  # no longer remembered, and still refused
    later = click("deny")
    assert gate.refusal(later, sign(later, int(clock.now))) is None
    assert len(gate._seen) == 1


# --- payloads ----------------------------------------------------------------------------------


def test_parse_the_buttons_and_the_deny_modal() -> None:
    assert parse(click("approve")) == Interaction("approve", "U0LENA", "ledger-x1", "C0LEDGER1", "1234.5678", uid=UID)
    assert parse(click("deny")) == Interaction("deny", "U0LENA", "ledger-x1", "C0LEDGER1", "1234.5678", uid=UID)
    # A message posted before buttons carried the uid: parsed, and refused by the endpoint.
    assert parse(click("approve", request="ledger-x1")) == Interaction(
        "approve", "U0LENA", "ledger-x1", "C0LEDGER1", "1234.5678"
    )
    assert parse(submission("  INC-7 not needed ")) == Interaction(
        "deny-submit", "U0LENA", "ledger-x1", reason="INC-7 not needed", uid=UID
    )


def test_parse_ignores_what_is_not_a_decision() -> None:
    assert parse(click("open-details")) is None
    assert parse(form({"type": "view_closed", "user": {"id": "U1"}})) is None
    assert parse(form({"type": "view_submission", "user": {"id": "U1"}, "view": {"callback_id": "other"}})) is None


@pytest.mark.parametrize(
    "body",
    [
        b"payload=not-json",
        b"something=else",
        b"",
        form({"type": "block_actions", "actions": [{"action_id": "approve", "value": "x"}]}),  # no user
        click("approve", request="../../secrets/x"),
        click("approve", request="A-Upper"),
        click("approve", request=""),
        click("approve", request="a" * 254),
        urlencode({"payload": "[1, 2]"}).encode(),
    ],
)
def test_parse_refuses_malformed_payloads(body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse(body)


def test_deny_modal_follows_the_contract() -> None:
    modal = interactions.deny_modal("ledger-x1", UID)
    assert (modal["callback_id"], modal["private_metadata"]) == ("deny", f"ledger-x1/{UID}")
    (reason,) = [b for b in modal["blocks"] if b["type"] == "input"]
    assert reason["block_id"] == "reason" and reason["element"]["action_id"] == "reason"
    assert reason["element"]["max_length"] == 1024


def test_the_deny_modal_shows_the_requests_name_as_written() -> None:
    """Attack 135: the name is the requester's to choose, and `sso.evil.com` is a bare URL that
    Slack links in a mrkdwn text object unless it is `verbatim`, as every one jitaccess sends is."""
    modal = interactions.deny_modal("sso.evil.com", UID)
    assert "*sso.evil.com*" in json.dumps(modal["blocks"])
    mrkdwn = [b["text"] for b in modal["blocks"] if b.get("text", {}).get("type") == "mrkdwn"]
    assert mrkdwn and all(text["verbatim"] is True for text in mrkdwn)
    shown = as_shown(None, modal["blocks"])
    assert (shown.broadcasts, shown.channels, shown.links) == (set(), set(), set())


# --- who clicked -------------------------------------------------------------------------------


def test_explicit_mapping_first_and_unique() -> None:
    assert mapped_username("U0CAROLSRE", [LEDGER, PAYMENTS]) == "carol@example.com"
    assert mapped_username("U0LENA", [LEDGER, PAYMENTS]) is None
    twice = {"notifications": {"slackUsers": {"paula@example.com": "U0CAROLSRE"}}}
    with pytest.raises(UnknownUser, match="more than one Kubernetes user"):
        mapped_username("U0CAROLSRE", [LEDGER, twice])


def test_an_email_stands_for_its_username_unless_mapped_to_someone_else() -> None:
    assert email_username("U0PAULA", "paula@example.com", [LEDGER, PAYMENTS]) == "paula@example.com"
    with pytest.raises(UnknownUser, match="not to you"):
        email_username("U0IMPOSTOR", "carol@example.com", [LEDGER])
    assert email_username("U0CAROLSRE", "carol@example.com", [LEDGER]) == "carol@example.com"


# --- the endpoint ------------------------------------------------------------------------------


@dataclass
class FakeSlack:
    emails: dict[str, str | None] = field(default_factory=dict)
    ephemerals: list[tuple[str, str, str]] = field(default_factory=list)
    views: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    foreign: set[str] = field(default_factory=set)
    views_fail: bool = False  # open_view raises (Slack down, an expired trigger)

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        self.ephemerals.append((channel, user, text))

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        if self.views_fail:
            raise ConnectionError("Slack did not answer")
        self.views.append((trigger_id, view))

    async def email_of(self, user_id: str) -> str | None:
        if user_id in self.foreign:
            raise ForeignUser(f"Slack user {user_id} belongs to workspace T0OTHERCO, not T0JITACCESS")
        return self.emails.get(user_id)

    async def close(self) -> None:
        return None


@dataclass
class FakeApiServer:
    """Admits what `refusals` does not refuse, as the user it is told, and stamps it as the
    admission webhook does (`approved-by`, `denied-by`; of several approvals, the list, the flag
    taken out until the last); a patch that writes what is there already changes nothing, as
    admission lets it. Records every patch; returns the request as stored."""

    refusals: dict[str, DecisionError] = field(default_factory=dict)  # username -> refusal
    spec: dict[str, Any] = field(
        default_factory=lambda: {"requester": "bob@example.com", "entitlement": "prod-eng-ledger", "duration": "2h"}
    )
    annotations: dict[str, str] = field(default_factory=dict)  # the request's, as stored
    needed: int = 1  # the Entitlement's approvalsRequired
    stamps: bool = True  # False: no admission webhook (nothing stamps who decided)
    taken_up_by: str = "ledger"  # the request's status.ownerTeam: the team it was first taken up under
    patches: list[tuple[str, str, dict[str, str], bool]] = field(default_factory=list)
    uids: list[str | None] = field(default_factory=list)  # the precondition of each patch

    def annotate_request(
        self, name: str, username: str, annotations: Mapping[str, str], *, uid: str | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        self.patches.append((name, username, dict(annotations), dry_run))
        self.uids.append(uid)
        if username in self.refusals:
            raise self.refusals[username]
        stored = dict(self.annotations)
        if any(stored.get(key) != value for key, value in annotations.items()):
            stored |= annotations
            if annotations.get(APPROVED):
                listed = [*json.loads(stored.get(APPROVALS, "[]")), {"by": username}]
                stored[APPROVALS] = json.dumps(listed)
                if len(listed) < self.needed:
                    del stored[APPROVED]
                elif self.stamps:
                    stored[f"{APPROVED}-by"] = username
            if annotations.get(DENIED) and self.stamps:
                stored[f"{DENIED}-by"] = username
        if not dry_run:
            self.annotations = stored
        status = {"ownerTeam": self.taken_up_by, "approvalSummary": f"0/{self.needed}"}
        return {"metadata": {"annotations": stored}, "spec": dict(self.spec), "status": status}


def owners(ledger: Mapping[str, Any]) -> Callable[[str, str], OwnerTeam]:
    """The owner team of a clicked request: payments' for `payments-*`, else ledger's (this spec)."""
    return lambda name, _: (
        OwnerTeam("payments", PAYMENTS) if name.startswith("payments-") else OwnerTeam("ledger", ledger)
    )


@dataclass
class Harness:
    client: TestClient[aiohttp.web.Request, aiohttp.web.Application]
    slack: FakeSlack
    api: FakeApiServer
    endpoint: Endpoint

    async def post(self, body: bytes, headers: Mapping[str, str] | None = None) -> aiohttp.ClientResponse:
        signed = sign(body, int(time.time())) if headers is None else dict(headers)
        response = await self.client.post("/slack/interactions", data=body, headers=signed)
        await response.read()
        await self.endpoint.close()  # the ephemeral replies, sent after the answer
        return response


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    slack = FakeSlack(emails={"U0LENA": "lena@example.com", "U0ALICE": "alice@example.com", "U0GHOST": None})
    api = FakeApiServer()
    endpoint = Endpoint(Gate(SECRET), slack, api, owners(LEDGER))
    async with TestClient(TestServer(endpoint.app(), host="127.0.0.1")) as client:
        yield Harness(client, slack, api, endpoint)


async def reply_to(harness: Harness, body: bytes) -> str:
    """What the one clicker is told of `body` (a click), alone; the replies before it are forgotten."""
    harness.slack.ephemerals.clear()
    await harness.post(body)
    ((_, _, text),) = harness.slack.ephemerals
    return text


def counted(action: str, result: str) -> float:
    value = metrics.SLACK_INTERACTIONS.labels(action, result)._value.get()
    return float(value)


async def test_approve_is_patched_as_the_clicking_user(harness: Harness) -> None:
    before = counted("approve", "applied")
    response = await harness.post(click("approve"))
    assert response.status == 200
    assert harness.api.patches == [("ledger-x1", "lena@example.com", {APPROVED: "true"}, False)]
    assert harness.api.uids == [UID]  # only if it is still the request the message was posted for
    said = (
        "You approved AccessRequest ledger-x1: bob@example.com asks for prod-eng-ledger for 2h, starting on approval."
    )
    assert harness.slack.ephemerals == [("C0LEDGER1", "U0LENA", said)]
    assert counted("approve", "applied") == before + 1


async def test_the_approvers_reply_says_when_the_access_begins(harness: Harness) -> None:
    """Approved now, the access may begin only days later (`spec.startTime`): the reply says when."""
    harness.api.spec["startTime"] = "2026-12-02T14:00:00+02:00"
    await harness.post(click("approve"))
    ((_, _, text),) = harness.slack.ephemerals
    assert text.endswith("for 2h, starting 2026-12-02T12:00:00Z."), text


async def test_a_click_on_a_request_approved_already_says_so_and_not_you_approved(harness: Harness) -> None:
    """paula approved first; lena's click writes `approved=true`, which is there already: admission
    lets the no-op through, and nothing is decided by lena. She read "You approved"."""
    harness.api.annotations = {APPROVED: "true", f"{APPROVED}-by": "paula@example.com"}
    before = counted("approve", "unchanged")
    response = await harness.post(click("approve"))
    assert response.status == 200
    ((_, user, text),) = harness.slack.ephemerals
    assert user == "U0LENA"
    assert text == (
        "AccessRequest ledger-x1 was already decided (approved by paula@example.com): nothing changed. "
        "`kubectl jit status ledger-x1` shows where it stands"
    )
    assert counted("approve", "unchanged") == before + 1


async def test_one_approval_of_two_is_said_to_be_recorded_and_waiting_for_another(harness: Harness) -> None:
    """approvalsRequired 2: the webhook lists lena's approval and takes the approved flag out again;
    nothing is approved yet, and the reply says so, as `kubectl jit approve` does."""
    harness.api.needed = 2
    text = await reply_to(harness, click("approve"))
    assert text.startswith(
        "Your approval of AccessRequest ledger-x1 is recorded (1 of 2): another approver of team ledger must "
        "approve before access is granted. bob@example.com asks for prod-eng-ledger"
    ), text
    assert "You approved" not in text
    completed = await reply_to(harness, click("approve", user="U0CAROLSRE"))  # the second, which completes it
    assert completed.startswith("You approved AccessRequest ledger-x1: "), completed


async def test_one_approval_of_two_names_the_team_that_owns_the_request_now(harness: Harness) -> None:
    """The request was taken up under payments (its status.ownerTeam), then its Entitlement was handed
    to ledger, whose approver lena gave one approval of two: the next must come from ledger, as
    admission judges it. The reply used to send her to "another approver of team payments"."""
    harness.api.needed, harness.api.taken_up_by = 2, "payments"
    text = await reply_to(harness, click("approve"))
    assert "another approver of team ledger must approve" in text, text


async def test_a_denial_that_changed_nothing_is_said_in_the_dialog(harness: Harness) -> None:
    """paula denied with the same words between lena's Deny click and her submission: the patch is
    a no-op, and lena's dialog says who decided instead of closing as if hers had been taken."""
    harness.api.annotations = {DENIED: "true", f"{DENIED}-by": "paula@example.com", REASON: "INC-7 not needed"}
    response = await harness.post(submission("INC-7 not needed"))
    errors = (await response.json())["errors"]["reason"]
    assert errors.startswith("AccessRequest ledger-x1 was already decided (denied by paula@example.com)"), errors


async def test_a_decision_stored_without_a_stamp_is_not_taken_for_the_clickers(harness: Harness) -> None:
    """Admitted, yet nobody's name on it (no admission webhook saw it): the operator takes no
    unstamped decision, so lena did not approve, nor did anyone else; the reply says so."""
    harness.api.stamps = False
    before = counted("approve", "failed")
    said = "Your decision on AccessRequest ledger-x1 was stored without the admission webhook's stamp"
    assert (await reply_to(harness, click("approve"))).startswith(said)
    assert counted("approve", "failed") == before + 1


async def test_a_refusal_is_the_api_servers_words_to_the_clicker_alone(harness: Harness) -> None:
    harness.api.refusals["alice@example.com"] = DecisionError(
        403, "alice@example.com requested this access and cannot decide on it: ask an approver of the team"
    )
    before = counted("approve", "refused")
    response = await harness.post(click("approve", user="U0ALICE"))
    assert response.status == 200
    ((channel, user, text),) = harness.slack.ephemerals
    assert (channel, user) == ("C0LEDGER1", "U0ALICE")
    assert (
        text
        == "Not applied to AccessRequest ledger-x1: alice@example.com requested this access and cannot decide on it: ask an approver of the team"
    )
    assert counted("approve", "refused") == before + 1


async def test_impersonation_refused_says_who_jitaccess_acts_for(harness: Harness) -> None:
    harness.api.refusals["alice@example.com"] = DecisionError(
        403, 'users "alice@example.com" is forbidden: User "imp" cannot impersonate resource "users" in API group ""'
    )
    await harness.post(click("approve", user="U0ALICE"))
    ((_, _, text),) = harness.slack.ephemerals
    assert "only for the approvers and backup approvers the TeamOwnerships name" in text
    assert "kubectl jit rbac slack" in text and "kubectl jit approve ledger-x1" in text
    assert "&quot;" not in text and '"users"' in text


async def test_unknown_user_is_told_the_fix_and_nothing_is_patched(harness: Harness) -> None:
    await harness.post(click("approve", user="U0GHOST"))
    assert harness.api.patches == []
    ((_, user, text),) = harness.slack.ephemerals
    assert user == "U0GHOST" and "spec.notifications.slackUsers" in text


async def test_explicit_mapping_is_who_the_patch_is_made_as(harness: Harness) -> None:
    await harness.post(click("approve", user="U0CAROLSRE"))
    assert harness.api.patches[0][1] == "carol@example.com"


async def test_deny_asks_the_api_server_then_opens_the_modal(harness: Harness) -> None:
    response = await harness.post(click("deny"))
    assert response.status == 200
    ((name, username, annotations, dry_run),) = harness.api.patches
    assert (name, username, dry_run) == ("ledger-x1", "lena@example.com", True)
    assert annotations[DENIED] == "true"
    ((trigger, view),) = harness.slack.views
    assert trigger == "1234.5678" and view["private_metadata"] == f"ledger-x1/{UID}"
    assert harness.api.uids == [UID]  # the dry run asks of the same object


async def test_a_click_from_before_buttons_carried_the_uid_decides_nothing(harness: Harness) -> None:
    await harness.post(click("approve", request="ledger-x1"))
    assert harness.api.patches == []
    assert "posted before jitaccess tied its buttons to one request" in harness.slack.ephemerals[0][2]
    # No uid to pin the command with: the kind, so that no AccessExtension of the name is decided.
    assert "`kubectl jit approve request/ledger-x1` (or deny)" in harness.slack.ephemerals[0][2]


async def test_every_command_a_reply_gives_decides_the_request_clicked_and_no_other(harness: Harness) -> None:
    """Attack 137: a reply that says to decide prints the command pinned to the clicked request's uid,
    never a bare name another request (or an AccessExtension) may have taken since."""
    pinned = f"ledger-x1 --uid {UID}"
    harness.slack.views_fail = True
    await harness.post(click("deny"))
    await harness.post(click("approve", user="U0GHOST"))  # a Slack profile without an email
    harness.slack.foreign.add("U0OUTSIDER")
    await harness.post(click("approve", user="U0OUTSIDER"))
    dialog, ghost, outsider = (text for _, _, text in harness.slack.ephemerals)
    assert dialog.endswith(f'deny with `kubectl jit deny {pinned} --reason "..."`'), dialog
    assert f"`kubectl jit approve {pinned}` (or deny)" in ghost, ghost
    assert f"`kubectl jit approve {pinned}` (or deny)" in outsider, outsider
    assert "NAME" not in ghost + outsider


async def test_a_request_replaced_under_its_name_is_said_so(harness: Harness) -> None:
    harness.api.refusals["lena@example.com"] = DecisionError(
        422, 'AccessRequest.jitaccess.dev "ledger-x1" is invalid: metadata.uid: Invalid value: "x": field is immutable'
    )
    await harness.post(click("approve"))
    ((_, _, text),) = harness.slack.ephemerals
    assert "is no longer the request this message was posted for" in text and "Nothing was decided" in text


async def test_deny_by_someone_refused_opens_no_modal(harness: Harness) -> None:
    harness.api.refusals["alice@example.com"] = DecisionError(403, "alice@example.com requested this access")
    await harness.post(click("deny", user="U0ALICE"))
    assert harness.slack.views == []
    assert "requested this access" in harness.slack.ephemerals[0][2]


async def test_deny_submission_patches_the_reason_as_the_user(harness: Harness) -> None:
    response = await harness.post(submission("INC-7 not needed"))
    assert response.status == 200 and await response.text() == ""
    assert harness.api.patches == [
        ("ledger-x1", "lena@example.com", {DENIED: "true", REASON: "INC-7 not needed"}, False)
    ]


async def test_deny_submission_refused_shows_the_error_in_the_modal(harness: Harness) -> None:
    harness.api.refusals["lena@example.com"] = DecisionError(409, "this request was already approved by paula")
    response = await harness.post(submission("INC-7"))
    assert response.status == 200
    assert await response.json() == {
        "response_action": "errors",
        "errors": {"reason": "Not applied to AccessRequest ledger-x1: this request was already approved by paula"},
    }
    assert harness.slack.ephemerals == []


async def test_an_empty_reason_is_refused_before_the_api_server(harness: Harness) -> None:
    response = await harness.post(submission("   "))
    assert (await response.json())["errors"]["reason"].startswith("say why")
    assert harness.api.patches == []


async def test_forged_replayed_and_old_deliveries_are_refused_unread(harness: Harness) -> None:
    body = click("approve")
    forged = await harness.post(body, sign(body, int(time.time()), secret="guessed"))
    old = await harness.post(body, sign(body, int(time.time()) - 301))
    assert (forged.status, old.status) == (401, 401)
    headers = sign(body, int(time.time()))
    first, again = await harness.post(body, headers), await harness.post(body, headers)
    assert (first.status, again.status) == (200, 401)
    assert len(harness.api.patches) == 1
    assert len(harness.slack.ephemerals) == 1


async def test_health(harness: Harness) -> None:
    response = await harness.client.get("/slack/healthz")
    assert response.status == 200 and await response.text() == "ok"


async def test_an_api_server_that_does_not_answer_in_time_is_said(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API call is held until Slack has had its answer: the answer cannot have waited for it,
    # however slow the machine (no wall-clock bound to flake under load).
    monkeypatch.setattr(interactions, "ANSWER_WITHIN", 0.2)
    real = harness.api.annotate_request
    answered = threading.Event()

    def slow(*args: Any, **kwargs: Any) -> dict[str, Any]:
        answered.wait(timeout=30)
        return real(*args, **kwargs)

    monkeypatch.setattr(harness.api, "annotate_request", slow)
    try:
        response = await harness.post(click("approve"))
        assert response.status == 200
        assert "could not confirm" in harness.slack.ephemerals[0][2]
    finally:
        answered.set()


async def test_another_teams_map_cannot_make_its_slack_user_this_teams_approver(harness: Harness) -> None:
    """Team ledger's TeamOwnership (which ledger edits) maps payments' approver paula to lena's Slack
    user: lena's click on a payments request is still lena's own, never paula's; only the request's
    owner team's map says who its approvers are in Slack."""
    ledger = {**LEDGER, "notifications": {"slackUsers": {"paula@example.com": "U0LENA"}}}
    harness.endpoint._owner_team = owners(ledger)
    await harness.post(click("approve", request=f"payments-x1/{UID}"))
    assert [p[1] for p in harness.api.patches] == ["lena@example.com"]
    # On ledger's own request, ledger's map is the one that counts.
    await harness.post(click("approve", request=f"ledger-x2/{UID}"))
    assert [p[1] for p in harness.api.patches] == ["lena@example.com", "paula@example.com"]


async def test_a_request_that_cannot_be_read_decides_nothing(harness: Harness) -> None:
    def unreadable(name: str, uid: str) -> None:
        raise ConnectionError("API server down")

    harness.endpoint._owner_team = unreadable
    await harness.post(click("approve"))
    assert harness.api.patches == []
    ((_, _, text),) = harness.slack.ephemerals
    assert "could not read AccessRequest ledger-x1" in text and "nothing was decided" in text


async def test_a_click_from_another_workspace_decides_nothing(harness: Harness) -> None:
    """A Slack Connect channel shares the approvers' message with another company, which can give
    its people any profile email, an approver's included: such a click is nobody's."""
    harness.slack.foreign.add("U0OUTSIDER")
    harness.slack.emails["U0OUTSIDER"] = "lena@example.com"
    await harness.post(click("approve", user="U0OUTSIDER"))
    assert harness.api.patches == []
    ((_, user, text),) = harness.slack.ephemerals
    assert user == "U0OUTSIDER" and "not a member of the workspace" in text and "kubectl jit approve" in text

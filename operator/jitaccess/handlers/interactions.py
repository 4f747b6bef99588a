"""The Slack interactivity endpoint: Approve and Deny clicks, applied as the clicking approver.

Served on every replica (the admission part, `handlers.parts`), on its own port
(`JITACCESS_SLACK_INTERACTIONS_PORT`): `POST /slack/interactions` for Slack, `GET /slack/healthz`.
It never decides anything itself. There is one decision path, the API server's: a click becomes
the same annotation `kubectl annotate` would write, patched *as the clicking user* by the narrow
impersonating identity (`adapters.impersonation`), so the admission webhooks, RBAC and the audit
log treat it exactly as that user's own kubectl. A refusal (the requester's own click, a
non-approver, a backup approver before escalation, a request already decided or timed out) is
the API server's message, shown to the clicker alone (an ephemeral message, or the modal's error).
What the endpoint shows in Slack is shown as written (attack 135), as the notifications are: the
modal's text is `domain.slackmessages.section` (a `verbatim` mrkdwn object), an ephemeral message's
words are `escape`d and the Slack adapter posts it with `LITERAL_TEXT`, so neither a request's
name nor a message quoting someone's words links anything or notifies anyone.

In order, for every POST, each step bounded so that Slack has its answer within 3 s:

1. The gate (`Gate`), before the body is parsed: Slack's signature (`slack_sdk.signature`, HMAC of
   the timestamp and the exact body with the signing secret), a timestamp within 5 minutes, and a
   signature never accepted before (replays). The replay memory is per replica, and suffices:
   a delivery replayed to another replica re-applies the same user's same decision, which
   admission (`domain.admission._decision`) treats as a no-op (the same annotations, already
   there) or refuses ("a decision is final"; a deny after an approval, or the reverse). It can
   make a difference only where the first delivery was refused and, within those 5 minutes, the
   same user became allowed to make that very decision (an escalation, a TeamOwnership edit):
   then it applies what that user did click. docs/security.md says the same.
2. The payload: `block_actions` with action_id `approve` or `deny` and the AccessRequest name as
   value (the team message's buttons), or the deny modal's `view_submission` (`DENY_MODAL`).
3. Who clicked: the Kubernetes username the owner team of the clicked request maps the Slack user
   id to (its TeamOwnership's `spec.notifications.slackUsers`), else the Slack profile's email,
   which is the username here. Only the owner team's map counts: the team whose decision it is
   says who its approvers are in Slack. Another team's TeamOwnership (which that team edits) could
   otherwise map one of this team's approvers to its own Slack user and click Approve as them.
4. Approve: patch `jitaccess.dev/approved=true` as that user. Deny: ask the API server first, in
   a server-side dry run as that user, whether the denial would be admitted (a refusal is told at
   once), then open the modal that asks for the reason; its submission patches
   `jitaccess.dev/denied=true` and `jitaccess.dev/decision-reason`, as that user.
5. What it did, read from the request the API server returns (`approvals.decision_effect`), as `kubectl jit
   approve` reads it: an admitted patch is no proof of a decision. A patch that writes what is
   there already (an Approve on a request someone approved first) is a no-op admission lets
   through, and one approval of several is listed while the webhook takes the approved flag out
   again: the clicker is told who decided, or that their approval is recorded and another is needed.

The identity that impersonates may act only as the approvers the TeamOwnerships name (`kubectl
jit rbac slack`); `handlers.slack_rbac` warns when one is missing, and when it may act as someone no
team names as an approver any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, cast
from urllib.parse import parse_qs

import kopf
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from jitaccess import metrics
from jitaccess.adapters.impersonation import DecisionError, Impersonator
from jitaccess.api import audit, names, wire
from jitaccess.api.limits import NAME_MAX_LENGTH, REASON_MAX_LENGTH
from jitaccess.domain import approvals as approval_rules
from jitaccess.domain.slackmessages import escape, pinned, section, start_of
from jitaccess.errors import ForeignUser
from jitaccess.handlers.common import NO_INDEX, Index, first
from jitaccess.listening import described, start_site
from jitaccess.settings import Settings, load

log = logging.getLogger(__name__)

PATH, HEALTH_PATH = "/slack/interactions", "/slack/healthz"
#: Slack signs the timestamp: older (or later) than this is refused, and signatures are remembered this long.
WINDOW_SECONDS = 300
#: Slack gives up on an answer after 3 s; each call on the way is bounded within it.
ANSWER_WITHIN = 2.8
SLACK_TIMEOUT, API_TIMEOUT = 2.0, 2.0
#: The deny modal (Block Kit): its callback_id, and the block and action ids of the reason.
DENY_MODAL = "deny"
REASON_BLOCK = REASON_ACTION = "reason"
APPROVE, DENY, DENY_SUBMIT = "approve", "deny", "deny-submit"
_MEMO_KEY = "slack_interactions"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# An object's uid as the API server writes it (a UUID).
_UID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DRY_RUN_REASON = "(asked in Slack whether a denial would be admitted)"


class SlackApi(Protocol):
    """What the endpoint needs of `jitaccess.adapters.slack.Slack`."""

    async def ephemeral(self, channel: str, user: str, text: str) -> None: ...
    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> None: ...
    async def email_of(self, user_id: str) -> str | None: ...
    async def close(self) -> None: ...


class Decider(Protocol):
    """What the endpoint needs of `Impersonator`: its one write (blocking)."""

    def annotate_request(
        self, name: str, username: str, annotations: Mapping[str, str], *, uid: str | None = None, dry_run: bool = False
    ) -> dict[str, Any]: ...


def count(action: str, result: str) -> None:
    metrics.SLACK_INTERACTIONS.labels(action, result).inc()


# --- 1. the gate -------------------------------------------------------------------------------


class _Clock:
    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now


class Gate:
    """Signature, timestamp and replay checks of a delivery, before anything reads its body."""

    def __init__(self, signing_secret: str, now: Callable[[], float] = time.time) -> None:
        self._verifier = SignatureVerifier(signing_secret, clock=_Clock(now))  # type: ignore[arg-type]
        self._now = now
        self._seen: OrderedDict[str, float] = OrderedDict()  # accepted signature -> when to forget it

    def refusal(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """Why this delivery is refused (the metric's result: unsigned, stale, forged, replayed); None: pass."""
        stamp, signature = headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
        if not stamp or not signature:
            return "unsigned"
        now = self._now()
        # ASCII digits, and few: `isdigit` takes "²", which `int` refuses, and `int` refuses over
        # 4,300 digits too; either raised before the signature was checked, from anyone.
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) or abs(now - int(stamp)) > WINDOW_SECONDS:
            return "stale"
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return "forged"  # Slack signs UTF-8 text; nothing else can carry a valid signature
        if not self._verifier.is_valid(body, stamp, signature):
            return "forged"
        while self._seen and next(iter(self._seen.values())) <= now:
            self._seen.popitem(last=False)
        if signature in self._seen:
            return "replayed"
        # Kept until its timestamp leaves the window, after which the timestamp check refuses it.
        self._seen[signature] = int(stamp) + WINDOW_SECONDS + 1
        return None


# --- 2. the payload ----------------------------------------------------------------------------


class PayloadError(ValueError):
    """The body is not an interaction payload this endpoint understands."""


@dataclass(frozen=True)
class Interaction:
    """A click or a modal submission: who, what, on which AccessRequest, and where to answer."""

    action: str  # APPROVE, DENY or DENY_SUBMIT
    user: str  # Slack user id
    request: str  # AccessRequest name
    channel: str = ""
    trigger_id: str = ""
    reason: str = ""
    #: The uid of the request the message was posted for (the button's `NAME/UID`; empty in a
    #: message posted before buttons carried it, which is refused).
    uid: str = ""


def parse(body: bytes) -> Interaction | None:
    """The interaction in a (verified) form-encoded body; None for one this endpoint ignores."""
    try:
        payload = json.loads(parse_qs(body.decode("utf-8"), strict_parsing=True)["payload"][0])
    except (ValueError, KeyError, IndexError) as exc:
        raise PayloadError(f"not a Slack interaction payload ({type(exc).__name__})") from exc
    if not isinstance(payload, dict):
        raise PayloadError("the payload is not a JSON object")
    user = str((payload.get("user") or {}).get("id") or "")
    kind = payload.get("type")
    if kind == "block_actions":
        actions = payload.get("actions") or []
        action = actions[0] if actions and isinstance(actions[0], dict) else {}
        if action.get("action_id") not in (APPROVE, DENY):
            return None
        channel = str((payload.get("channel") or {}).get("id") or "")
        interaction = Interaction(
            str(action["action_id"]),
            user,
            str(action.get("value") or ""),
            channel,
            str(payload.get("trigger_id") or ""),
        )
    elif kind == "view_submission":
        view = payload.get("view") or {}
        if view.get("callback_id") != DENY_MODAL:
            return None
        values = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK) or {}
        reason = str((values.get(REASON_ACTION) or {}).get("value") or "")
        interaction = Interaction(DENY_SUBMIT, user, str(view.get("private_metadata") or ""), reason=reason.strip())
    else:
        return None
    if not user:
        raise PayloadError("the payload names no user")
    name, _, uid = interaction.request.partition("/")
    if len(name) > NAME_MAX_LENGTH or not _NAME.match(name):
        raise PayloadError(f"{name[:80]!r} is not an AccessRequest name")
    if uid and not _UID.match(uid):
        raise PayloadError(f"{uid[:80]!r} is not an object's uid")
    return dataclasses.replace(interaction, request=name, uid=uid)


def deny_modal(request: str, uid: str) -> dict[str, Any]:
    """The modal a Deny click opens: the reason, which the requester reads. It carries what the
    button did (`NAME/UID`), so that the submission decides the same object."""
    return {
        "type": "modal",
        "callback_id": DENY_MODAL,
        "private_metadata": f"{request}/{uid}",
        "title": {"type": "plain_text", "text": "Deny access"},
        "submit": {"type": "plain_text", "text": "Deny"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(f"Deny AccessRequest *{escape(request)}*? The requester reads your reason."),
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {"type": "plain_text_input", "action_id": REASON_ACTION, "max_length": REASON_MAX_LENGTH},
            },
        ],
    }


# --- 3. who clicked ----------------------------------------------------------------------------


class UnknownUser(Exception):
    """The Slack user maps to no Kubernetes username (the message says the fix)."""


def _slack_users(teams: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Every (username, Slack user id) the TeamOwnerships' `notifications.slackUsers` name."""
    return [
        (str(username), str(slack_id))
        for spec in teams
        for username, slack_id in ((spec.get("notifications") or {}).get("slackUsers") or {}).items()
    ]


def mapped_username(user_id: str, teams: Iterable[Mapping[str, Any]]) -> str | None:
    """The username TeamOwnerships map this Slack user to; None when none does."""
    found = sorted({username for username, slack_id in _slack_users(teams) if slack_id == user_id})
    if len(found) > 1:
        raise UnknownUser(
            f"the TeamOwnerships map your Slack user {user_id} to more than one Kubernetes user ({', '.join(found)}), "
            "so jitaccess cannot tell who you are: ask the platform team to correct spec.notifications.slackUsers"
        )
    return found[0] if found else None


def email_username(user_id: str, email: str, teams: Iterable[Mapping[str, Any]]) -> str:
    """The username a Slack user's email stands for, unless a TeamOwnership maps it to another Slack user."""
    others = sorted({slack_id for username, slack_id in _slack_users(teams) if username == email})
    if others and user_id not in others:
        raise UnknownUser(
            f"the TeamOwnerships map {email} to the Slack user {', '.join(others)}, not to you ({user_id}): "
            "jitaccess does not take your Slack email for that Kubernetes user"
        )
    return email


class OwnerTeam(NamedTuple):
    """The owner team of a clicked request, whose approvers admission lets decide: its name (the
    replies name it) and its TeamOwnership spec (its Slack map says who clicked)."""

    name: str
    spec: Mapping[str, Any]


def owner_team_reader(
    teams: Index, entitlements: Index, api_client: Any = None
) -> Callable[[str, str], OwnerTeam | None]:
    """`Endpoint`'s `owner_team`: the request read as the operator (`api_client`, the default
    client's configuration when None; a click is rare, and no index of requests is kept on every
    replica), its owner team from the indexes."""
    import kubernetes

    api = kubernetes.client.CustomObjectsApi(api_client)

    def owner_team(name: str, uid: str) -> OwnerTeam | None:
        try:
            obj = cast(
                dict[str, Any],
                api.get_cluster_custom_object(
                    names.GROUP, names.VERSION, names.REQUESTS, name, _request_timeout=SLACK_TIMEOUT
                ),
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        if uid and wire.metadata(obj).get("uid") != uid:
            return None  # replaced under its name: the patch's precondition refuses it too
        # The Entitlement's owner now, as admission decides whose approvers may decide; the owner
        # the request recorded (`audit.decision_team`) if the Entitlement is gone.
        entitlement = first(entitlements, wire.spec(obj).get("entitlement"))
        owner = ((entitlement or {}).get("spec") or {}).get("owner") or audit.decision_team(obj)
        spec = first(teams, owner) if owner else None
        if not isinstance(spec, Mapping):
            # The request is there, but whose it is cannot be told (the indexes still filling after
            # a start, the team gone): without its map, an email its owner team maps to another
            # Slack user could be taken for that user. Nothing is decided; the clicker may retry.
            raise LookupError(f"the owner team of AccessRequest {name} ({owner or 'not known yet'}) is not known")
        return OwnerTeam(str(owner), spec)

    return owner_team


# --- 4. the endpoint ---------------------------------------------------------------------------


def _text(message: str, limit: int = 1000) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _described(request: Mapping[str, Any]) -> str:
    """Whose request, for what, how long and from when: what the clicker has just decided, in their
    reply (a request approved now may give access only days later, at its `spec.startTime`)."""
    spec, status = wire.spec(request), wire.status(request)
    duration = status.get("duration") or spec.get("duration") or "its default duration"
    who = spec.get("requester") or "someone"
    return f"{who} asks for {spec.get('entitlement')} for {duration}, starting {start_of(request)}"


def counted_text(request: str, decided: Mapping[str, Any], team: str) -> str:
    """The reply to one approval of several: recorded, and how many are given of how many needed.
    `team`: the owner team the approval was judged against (the Entitlement's owner now), whose
    approver must give the next one; not the team the request was taken up under, which a change of
    owner since has made another."""
    given = len(approval_rules.given(wire.annotations_of(decided)))
    # The operator's count of the request (`0/2` once it waits): the number needed, as it was read.
    _, _, needed = str(wire.status(decided).get("approvalSummary") or "").partition("/")
    so_far = f" ({given} of {needed})" if needed.isdigit() else ""
    who = f"another approver of team {team}" if team else "another approver"
    return (
        f"Your approval of AccessRequest {request} is recorded{so_far}: {who} must approve before access is "
        f"granted. {_described(decided)}."
    )


def unchanged_text(request: str, decided: Mapping[str, Any]) -> str:
    """The reply to a decision that changed nothing: who had decided already."""
    notes = wire.annotations_of(decided)
    said = [
        f"{word} by {notes[by]}"
        for flag, by, word in (
            (names.ANNOTATION_APPROVED, names.ANNOTATION_APPROVED_BY, "approved"),
            (names.ANNOTATION_DENIED, names.ANNOTATION_DENIED_BY, "denied"),
        )
        if wire.truthy(notes.get(flag)) and notes.get(by)
    ]
    return (
        f"AccessRequest {request} was already decided ({', '.join(said) or 'by someone else'}): nothing changed. "
        f"`kubectl jit status {request}` shows where it stands"
    )


def unstamped_text(request: str, decided: Mapping[str, Any]) -> str:
    """The reply to a decision the API server stored with nobody's stamp: it decides nothing."""
    return (
        f"Your decision on AccessRequest {request} was stored without the admission webhook's stamp of who made "
        "it, so it decides nothing (jitaccess takes only stamped decisions): ask the platform team to check "
        f"jitaccess's admission webhooks. {_described(decided)}."
    )


def refusal_text(request: str, username: str, error: DecisionError, uid: str = "") -> str:
    """What the clicker reads when the API server did not apply their decision (`uid`: the
    request's, as the button carried it, so that the command given decides that request only)."""
    if error.impersonation_refused:
        return (
            f"jitaccess acts in Slack only for the approvers and backup approvers the TeamOwnerships name, and it "
            f"may not act as {username} (the API server: {error.message}). If you decide for a team through a "
            f"group, or were made an approver a moment ago, decide with `kubectl jit approve {pinned(request, uid)}` "
            "(or deny), "
            "and ask the platform team to re-apply `kubectl jit rbac slack`"
        )
    if error.status == 404:
        return f"AccessRequest {request} does not exist (any more): nothing was decided"
    if error.replaced:
        return (
            f"AccessRequest {request} is no longer the request this message was posted for: it was withdrawn, and "
            "a new request was created under the same name (by its requester or by someone else). Nothing was "
            f"decided; the new request is posted on its own. Look at it with `kubectl jit status {request}`"
        )
    if error.status == 0:
        return f"jitaccess could not reach the Kubernetes API server ({error.message}): nothing was decided, try again"
    return f"Not applied to AccessRequest {request}: {error.message}"


class Endpoint:
    """The aiohttp application's one handler and what it needs."""

    def __init__(
        self,
        gate: Gate,
        slack: SlackApi,
        decider: Decider,
        owner_team: Callable[[str, str], OwnerTeam | None],
    ) -> None:
        """`owner_team(name, uid)`: the request's owner team, None when the request is gone or
        replaced (the patch's precondition then says so); raises when it cannot be told (blocking)."""
        self._gate, self._slack, self._decider, self._owner_team = gate, slack, decider, owner_team
        self._replies: set[asyncio.Task[None]] = set()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)  # a payload is a few kilobytes
        app.router.add_post(PATH, self.handle)
        app.router.add_get(HEALTH_PATH, self.health)
        return app

    async def health(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        refused = self._gate.refusal(body, request.headers)
        if refused is not None:
            count("unknown", refused)
            log.warning("refused a Slack delivery from %s: %s", request.remote, refused)
            return web.Response(status=401, text=f"refused: {refused}")
        try:
            interaction = parse(body)
        except PayloadError as exc:
            count("unknown", "invalid")
            return web.Response(status=400, text=str(exc))
        if interaction is None:
            count("other", "ignored")
            return web.Response()
        try:
            return await asyncio.wait_for(self._act(interaction), ANSWER_WITHIN)
        except TimeoutError:
            count(interaction.action, "failed")
            message = (
                f"jitaccess could not confirm within Slack's 3 seconds whether your decision on {interaction.request} "
                f"was applied: see `kubectl jit status {interaction.request}`"
            )
            log.warning(
                "Slack %s of %s by %s: no answer in time", interaction.action, interaction.request, interaction.user
            )
            return self._refuse(interaction, message)

    async def close(self) -> None:
        """Wait briefly for the replies still being sent, then drop them."""
        if self._replies:
            await asyncio.wait(self._replies, timeout=SLACK_TIMEOUT)
        for task in self._replies:
            task.cancel()

    # --- steps -----------------------------------------------------------------------------

    async def _act(self, interaction: Interaction) -> web.Response:
        if not interaction.uid:
            count(interaction.action, "refused")
            return self._refuse(
                interaction,
                f"This message was posted before jitaccess tied its buttons to one request, so it cannot tell "
                f"that AccessRequest {interaction.request} is still the request shown: nothing was decided. "
                f"Check it with `kubectl jit status {interaction.request}`, then decide with "
                # No uid to pin it with: the kind at least, never an AccessExtension of the name (attack 137).
                f"`kubectl jit approve request/{interaction.request}` (or deny)",
            )
        try:
            owner = await asyncio.to_thread(self._owner_team, interaction.request, interaction.uid)
        except Exception as exc:  # any failure to read: nobody is taken for anyone
            count(interaction.action, "failed")
            log.warning("Slack: could not read AccessRequest %s: %s", interaction.request, exc)
            return self._refuse(
                interaction,
                f"jitaccess could not read AccessRequest {interaction.request} to tell who you are there: nothing was "
                "decided, try again",
            )
        try:
            username = await self._username(interaction, [owner.spec] if owner is not None else [])
        except UnknownUser as exc:
            count(interaction.action, "unknown-user")
            return self._refuse(interaction, str(exc))
        team = owner.name if owner is not None else ""
        if interaction.action == APPROVE:
            return await self._decide(interaction, username, {names.ANNOTATION_APPROVED: "true"}, team)
        if interaction.action == DENY:
            return await self._ask_reason(interaction, username)
        if not interaction.reason:
            count(interaction.action, "refused")
            return self._refuse(interaction, "say why: the requester reads the reason")
        annotations = {names.ANNOTATION_DENIED: "true", names.ANNOTATION_DECISION_REASON: interaction.reason}
        return await self._decide(interaction, username, annotations, team)

    async def _username(self, interaction: Interaction, teams: list[Mapping[str, Any]]) -> str:
        """The Kubernetes user the clicking Slack user is, by the maps of `teams` (the request's owner
        team); `UnknownUser` says how to decide instead, with the command that decides this request."""
        user_id = interaction.user
        command = f"`kubectl jit approve {pinned(interaction.request, interaction.uid)}` (or deny)"
        mapped = mapped_username(user_id, teams)
        if mapped is not None:
            return mapped
        try:
            email = await asyncio.wait_for(self._slack.email_of(user_id), SLACK_TIMEOUT)
        except ForeignUser as exc:
            log.warning("Slack: a click from outside the workspace: %s", exc)
            raise UnknownUser(
                f"your Slack user ({user_id}) is not a member of the workspace jitaccess is installed in, so its "
                f"email says nothing about who you are here: decide with {command}, or ask the "
                "owner team to map you in its TeamOwnership (spec.notifications.slackUsers)"
            ) from exc
        except Exception as exc:  # any Slack failure: nobody is taken for anyone
            log.warning("Slack did not say who %s is: %s", user_id, exc)
            raise UnknownUser(f"Slack did not tell jitaccess who you are ({type(exc).__name__}); try again") from exc
        if not email:
            raise UnknownUser(
                f"jitaccess cannot tell which Kubernetes user you are: your Slack profile ({user_id}) shows no email. "
                "Ask the platform team to map you in your team's TeamOwnership (spec.notifications.slackUsers: "
                f"your Kubernetes username: {user_id}), or decide with {command}"
            )
        return email_username(user_id, email, teams)

    async def _patch(
        self, interaction: Interaction, username: str, annotations: Mapping[str, str], *, dry_run: bool = False
    ) -> dict[str, Any]:
        return await asyncio.to_thread(
            self._decider.annotate_request,
            interaction.request,
            username,
            annotations,
            uid=interaction.uid,
            dry_run=dry_run,
        )

    async def _decide(
        self, interaction: Interaction, username: str, annotations: Mapping[str, str], team: str
    ) -> web.Response:
        """Apply the decision as `username`; `team`: the request's owner team, named in the reply."""
        name, approve = interaction.request, interaction.action == APPROVE
        try:
            decided = await self._patch(interaction, username, annotations)
        except DecisionError as exc:
            count(interaction.action, "refused" if exc.status else "failed")
            log.info("Slack: %s's decision on %s not applied: %s", username, name, exc.message)
            return self._refuse(interaction, refusal_text(name, username, exc, interaction.uid))
        outcome = approval_rules.decision_effect(decided, username, approve=approve)
        if outcome is approval_rules.Effect.UNCHANGED:
            count(interaction.action, "unchanged")
            log.info("Slack: %s's decision on %s changed nothing (already decided)", username, name)
            return self._refuse(interaction, unchanged_text(name, decided))
        if outcome is approval_rules.Effect.UNSTAMPED:
            count(interaction.action, "failed")
            log.warning("Slack: %s's decision on %s was stored without the admission webhook's stamp", username, name)
            return self._refuse(interaction, unstamped_text(name, decided))
        count(interaction.action, "applied")
        verb = (
            "denied"
            if not approve
            else "approved"
            if outcome is approval_rules.Effect.DECIDED
            else "gave one approval of"
        )
        log.info("Slack: %s %s AccessRequest %s (as %s)", interaction.user, verb, name, username)
        if outcome is approval_rules.Effect.COUNTED:
            self._reply(interaction, counted_text(name, decided, team))
        elif approve:
            self._reply(interaction, f"You approved AccessRequest {name}: {_described(decided)}.")
        return web.Response()

    async def _ask_reason(self, interaction: Interaction, username: str) -> web.Response:
        dry_run = {names.ANNOTATION_DENIED: "true", names.ANNOTATION_DECISION_REASON: _DRY_RUN_REASON}
        try:
            await self._patch(interaction, username, dry_run, dry_run=True)
        except DecisionError as exc:
            count(interaction.action, "refused" if exc.status else "failed")
            return self._refuse(interaction, refusal_text(interaction.request, username, exc, interaction.uid))
        try:
            await asyncio.wait_for(
                self._slack.open_view(interaction.trigger_id, deny_modal(interaction.request, interaction.uid)),
                SLACK_TIMEOUT,
            )
        except Exception as exc:  # the modal did not open: say so instead of leaving the click unanswered
            count(interaction.action, "failed")
            log.warning("Slack: the deny modal for %s did not open: %s", interaction.request, exc)
            return self._refuse(
                interaction,
                f"the reason dialog did not open ({type(exc).__name__}): deny with "
                f'`kubectl jit deny {pinned(interaction.request, interaction.uid)} --reason "..."`',
            )
        count(interaction.action, "opened")
        return web.Response()

    def _refuse(self, interaction: Interaction, message: str) -> web.Response:
        """Tell the clicker alone: the modal's error under the reason, else an ephemeral message."""
        if interaction.action == DENY_SUBMIT:
            return web.json_response({"response_action": "errors", "errors": {REASON_BLOCK: _text(message, 2000)}})
        self._reply(interaction, message)
        return web.Response()

    def _reply(self, interaction: Interaction, message: str) -> None:
        """An ephemeral message, sent after the HTTP answer (which Slack waits for) has gone."""
        if not interaction.channel:
            log.warning("Slack: no channel to tell %s: %s", interaction.user, message)
            return
        text = escape(_text(message))
        task = asyncio.create_task(self._send(self._slack.ephemeral(interaction.channel, interaction.user, text)))
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    async def _send(self, call: Awaitable[None]) -> None:
        try:
            await asyncio.wait_for(call, SLACK_TIMEOUT * 2)
        except Exception as exc:  # the decision stands (or not) whether or not the clicker was told
            log.warning("Slack: an ephemeral message was not delivered: %s", exc)


# --- start and stop, with the admission part ---------------------------------------------------


@dataclass
class _Serving:
    runner: web.AppRunner
    endpoint: Endpoint
    slack: SlackApi
    impersonator: Impersonator


#: How the identity each setting names is made (`Settings.slack_impersonators`: the first given).
_IMPERSONATORS: dict[str, Callable[..., Impersonator]] = {
    "slack_impersonator_kubeconfig": Impersonator.from_kubeconfig,
    "slack_impersonator_service_account": Impersonator.from_service_account,
    "slack_impersonator_token_file": Impersonator.from_token_file,
}


def impersonator_of(config: Settings) -> Impersonator | None:
    """The impersonating identity the settings name (kubeconfig, ServiceAccount or token file); None: none."""
    given = config.slack_impersonators
    if not given:
        return None
    setting, value = given[0]
    return _IMPERSONATORS[setting](value, timeout=API_TIMEOUT)


def _off_because(config: Settings) -> str | None:
    if not config.slack_interactions_port:
        return ""
    missing = [
        env
        for env, value in (
            ("JITACCESS_SLACK_SIGNING_SECRET", config.slack_signing_secret),
            ("JITACCESS_SLACK_TOKEN", config.slack_token),
        )
        if not value
    ]
    if not config.slack_impersonators:
        missing.append("JITACCESS_SLACK_IMPERSONATOR_SERVICE_ACCOUNT (or _KUBECONFIG, _TOKEN_FILE)")
    return f"{', '.join(missing)} unset" if missing else None


@kopf.on.startup()
async def serve_interactions(
    memo: kopf.Memo, teams: Index = NO_INDEX, entitlements: Index = NO_INDEX, **_: Any
) -> None:
    config: Settings = memo.get("settings") or load()
    off = _off_because(config)
    if off is not None:
        if off:
            log.warning("the Slack interactivity endpoint is off: %s (docs/notifications.md)", off)
        return
    if memo.get(_MEMO_KEY) is not None:
        return
    from jitaccess.adapters.kube import load_client_config
    from jitaccess.adapters.slack import Slack

    load_client_config()  # the operator's own API server and CA, which a ServiceAccount's tokens are used with
    impersonator = impersonator_of(config)
    if impersonator is None or not config.slack_signing_secret or not config.slack_token:
        return  # `_off_because` said so already
    slack = Slack(config.slack_token, config.slack_api_url, timeout=SLACK_TIMEOUT)
    endpoint = Endpoint(Gate(config.slack_signing_secret), slack, impersonator, owner_team_reader(teams, entitlements))
    runner = web.AppRunner(endpoint.app(), access_log=None)
    await runner.setup()
    # SO_REUSEPORT, as kopf's webhook server: replicas sharing a host's port (a local run) all serve.
    await start_site(runner, config.bind_address, config.slack_interactions_port, reuse_port=True)
    memo[_MEMO_KEY] = _Serving(runner, endpoint, slack, impersonator)
    log.info(
        "Slack interactivity served on %s, path %s",
        described(config.bind_address, config.slack_interactions_port),
        PATH,
    )


@kopf.on.cleanup()
async def stop_interactions(memo: kopf.Memo, **_: Any) -> None:
    serving = memo.get(_MEMO_KEY)
    if not isinstance(serving, _Serving):
        return
    memo[_MEMO_KEY] = None
    await serving.runner.cleanup()
    await serving.endpoint.close()
    with contextlib.suppress(Exception):
        await serving.slack.close()
    serving.impersonator.close()

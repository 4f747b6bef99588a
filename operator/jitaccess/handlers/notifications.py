"""Delivery of notices to Slack and the CloudEvents sink: at least once, never in a grant's way.

Notices are derived from the objects (`jitaccess.domain.notifications`) on every watch event of
AccessRequests, AccessGrants, AccessExtensions, Entitlements and PermissionCatalogs, the listing at
start-up included; what an object's `status.notifications.sent` lists is done. The rest waits
here, per object, for a task of its own (on the leader only, like every writer): grants, expiry
and the webhooks never wait for Slack.

- **At least once, in order, per object.** An object's notices go out in the order they arose, one
  object at a time per worker; each delivered key is then listed in the object's status (with the
  approvers' message's channel and ts, written as soon as that message is posted, so that a crash
  never posts a second message with live buttons). A crash between a delivery and its mark sends
  that one notice again: CloudEvents receivers deduplicate by the event id (the audit record id);
  a Slack update is idempotent.
- **Retries.** A sink that answers "later" (HTTP 429 with Retry-After, 5xx, no connection) is
  paused as a whole until then (doubling up to a minute when it names no time): a Slack outage
  delays Slack notices only, and every one of them goes out once Slack is back. A sink that
  refuses a notice for good (channel_not_found, a 4xx from the sink) is logged, counted and marked
  done: the same call would fail forever; after `FAILING_AFTER` refusals in a row a warning Event
  on the object says so.
- **What is not worth telling.** A Slack notice of a step older than `STALE_SLACK` (the operator was
  down, or the feature just enabled) is marked without being sent, except the approvers' message
  of a request that still waits; the sink gets everything up to `STALE_WEBHOOK` old. A drift
  removal's notices are never too old: its entry stays in its object's status until they are
  delivered (`handlers.archive`), so a restart finds them however long the target was down.
- **Grants about to end.** `expiring` is due at a time, not on an event: a heap of due times wakes
  the worker for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from jitaccess import metrics
from jitaccess.adapters.eventsink import EventSink, SinkRefused, SinkRetry
from jitaccess.adapters.kube import Kube
from jitaccess.adapters.slack import Slack, SlackRefused, SlackRetry
from jitaccess.api import audit, names, wire
from jitaccess.domain import notifications as notify
from jitaccess.domain.slackmessages import approvers_message, render, waits_for_decision
from jitaccess.handlers.common import NO_INDEX, Index, doubled, first
from jitaccess.handlers.runtime import runtime_of
from jitaccess.settings import Settings

log = logging.getLogger(__name__)

MEMO_KEY = "notifier"
WORKERS = 4
MAX_BACKOFF_SECONDS = 60.0
STALE_SLACK = timedelta(hours=1)
STALE_WEBHOOK = timedelta(hours=24)
FAILING_AFTER = 5
# Delivered keys are remembered a while: a stale watch event (from before the mark) must not
# send a notice again.
REMEMBERED_OBJECTS = 20_000


def config_of(settings: Settings) -> notify.Config:
    return notify.Config(
        slack=bool(settings.slack_token),
        webhook=bool(settings.event_sink_url and settings.event_sink_secret),
        default_channel=settings.slack_default_channel,
        security_channel=settings.slack_security_channel,
        expiring_before=timedelta(seconds=settings.notify_expiring_before_seconds),
        drift_hold_deletion=timedelta(seconds=settings.drift_notices_hold_deletion_seconds),
    )


@dataclass
class Waiting:
    """An object's notices not delivered yet, and the object as last seen (messages are rendered
    from it)."""

    plural: str
    name: str
    obj: dict[str, Any]
    team: notify.Team | None
    notices: OrderedDict[str, notify.Notice] = field(default_factory=OrderedDict)
    #: Keys found too old to tell when offered: marked without being sent.
    stale: set[str] = field(default_factory=set)


class Notifier:
    def __init__(self, kube: Kube, config: notify.Config, slack: Slack | None, sink: EventSink | None) -> None:
        self.kube = kube
        self.config = config
        self.slack = slack
        self.sink = sink
        self.teams: list[notify.Team] = []
        self._waiting: dict[str, Waiting] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._busy: set[str] = set()
        self._delivered: OrderedDict[str, set[str]] = OrderedDict()
        self._paused: dict[str, float] = {}  # sink -> monotonic time it may be tried again
        self._backoff: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._due: list[tuple[datetime, str]] = []  # (when, uid): grants' `expiring`
        self._due_objects: dict[str, tuple[dict[str, Any], notify.Team | None]] = {}
        self._messages: dict[str, tuple[str, str]] = {}  # uid -> the approvers' message, once posted
        self._withdrawals: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    # --- what waits --------------------------------------------------------------------------

    def offer(self, obj: Mapping[str, Any], team: notify.Team | None, now: datetime) -> int:
        """Queue what `obj` (as a watch event shows it) has not had delivered; how many wait now."""
        body = {k: v for k, v in obj.items() if k != "status"} | {
            "status": {k: v for k, v in wire.status(obj).items() if k != "kopf"}
        }
        uid = str(wire.metadata(body).get("uid") or "")
        plural = notify.plural_of(body)
        if not uid or plural is None:
            return 0
        done = notify.sent_keys(body) | self._delivered.get(uid, set())
        waiting = self._waiting.get(uid)
        if waiting is None:
            waiting = Waiting(plural, wire.name_of(body), body, team)
        waiting.obj, waiting.team = body, team
        for notice in notify.notices(body, team, self.config, now):
            if notice.key not in done and notice.key not in waiting.notices:
                waiting.notices[notice.key] = notice
                if self._stale(notice, body, now):
                    waiting.stale.add(notice.key)
        due = notify.expiring_due(body, self.config)
        if due is not None and due > now:
            if uid not in self._due_objects:
                heapq.heappush(self._due, (due, uid))
                self._wake.set()
            self._due_objects[uid] = (body, team)
        else:
            self._due_objects.pop(uid, None)
        if not waiting.notices:
            self._waiting.pop(uid, None)
            return 0
        self._waiting[uid] = waiting
        self._enqueue(uid)
        return len(waiting.notices)

    def withdrawn(self, obj: Mapping[str, Any], team: notify.Team | None) -> None:
        """A request deleted while it waited: its approvers' message loses its buttons. Best effort,
        once: the object is gone, so nothing can record that it was done; a button left behind
        (the operator down, Slack failing) decides nothing, since it names the deleted request's uid."""
        message = notify.team_message_of(obj) or self._messages.get(str(wire.metadata(obj).get("uid")))
        if self.slack is None or message is None or not waits_for_decision(obj):
            return
        task = asyncio.get_running_loop().create_task(self._withdraw(message, obj, team))
        self._withdrawals.add(task)
        task.add_done_callback(self._withdrawals.discard)

    async def _withdraw(self, message: tuple[str, str], obj: Mapping[str, Any], team: notify.Team | None) -> None:
        assert self.slack is not None
        text, blocks = approvers_message(obj, team, {}, withdrawn=True)
        try:
            await self.slack.update(message[0], message[1], text, blocks)
        except (SlackRetry, SlackRefused) as exc:
            log.info("notifications: the message of withdrawn %s keeps its buttons (%s)", wire.name_of(obj), exc)

    def _enqueue(self, uid: str) -> None:
        if uid not in self._queued and uid not in self._busy:
            self._queued.add(uid)
            self._queue.put_nowait(uid)

    def pending(self) -> int:
        return sum(len(w.notices) for w in self._waiting.values())

    # --- the loops ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Workers and the timer of due `expiring` notices, until cancelled."""
        async with asyncio.TaskGroup() as group:
            for number in range(WORKERS):
                group.create_task(self._work(), name=f"jitaccess notifications {number}")
            group.create_task(self._timer(), name="jitaccess notifications timer")

    async def _work(self) -> None:
        while True:
            uid = await self._queue.get()
            self._queued.discard(uid)
            self._busy.add(uid)
            try:
                again = await self._deliver(uid)
            except Exception:
                log.exception("notifications: delivery failed unexpectedly; will retry")
                again = 5.0
            finally:
                self._busy.discard(uid)
            waiting = self._waiting.get(uid)
            if waiting is None or not waiting.notices:
                self._waiting.pop(uid, None)
            elif again is not None:
                asyncio.get_running_loop().call_later(again, self._enqueue, uid)
            else:
                self._enqueue(uid)  # offered more while it was being delivered

    async def _timer(self) -> None:
        while True:
            self._wake.clear()
            now = datetime.now(UTC)
            while self._due and self._due[0][0] <= now:
                _, uid = heapq.heappop(self._due)
                seen = self._due_objects.pop(uid, None)
                if seen is not None:  # else: it ended, or its due time moved (a later entry stands)
                    self.offer(seen[0], seen[1], now)
            delay = (self._due[0][0] - now).total_seconds() if self._due else 3600.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.05, delay))

    # --- one object ----------------------------------------------------------------------------

    async def _deliver(self, uid: str) -> float | None:
        """Deliver what waits for one object; the seconds until it should be tried again, None
        when nothing waits on a paused sink."""
        waiting = self._waiting.get(uid)
        if waiting is None:
            return None
        delivered = self._delivered.setdefault(uid, set())
        self._delivered.move_to_end(uid)
        while len(self._delivered) > REMEMBERED_OBJECTS:
            self._delivered.popitem(last=False)
        marks: set[str] = set()
        message: tuple[str, str] | None = None
        retry: float | None = None
        team_message_done = False
        for key, notice in list(waiting.notices.items()):
            if key in delivered or key in notify.sent_keys(waiting.obj):
                waiting.notices.pop(key, None)
                continue
            paused = self._paused.get(notice.sink, 0.0) - time.monotonic()
            if paused > 0:
                retry = paused if retry is None else min(retry, paused)
                continue
            if key in waiting.stale:
                result = "stale"
            elif notice.recipient == notify.TEAM_MESSAGE and team_message_done:
                result = "sent"  # one post or update renders the request as it is now: it told this too
            else:
                try:
                    result, posted = await self._send(notice, waiting)
                except (SlackRetry, SinkRetry) as exc:
                    wait = self._pause(notice.sink, exc.after)
                    metrics.NOTIFICATIONS.labels(notice.sink, notice.step, "retry").inc()
                    self._failing(notice, waiting, exc, f"unavailable ({wait:.1f}s until the next try) for")
                    retry = wait if retry is None else min(retry, wait)
                    continue
                except (SlackRefused, SinkRefused) as exc:
                    result = "refused"
                    self._failing(notice, waiting, exc, "refused")
                else:
                    self._backoff.pop(notice.sink, None)
                    self._failures.pop(notice.sink, None)
                    if posted is not None:
                        message = posted
                        # Written before anything else: a crash now must not post a second message.
                        await self._mark(waiting, {key}, posted)
                if notice.recipient == notify.TEAM_MESSAGE and result == "sent":
                    team_message_done = True
            metrics.NOTIFICATIONS.labels(notice.sink, notice.step, result).inc()
            delivered.add(key)
            marks.add(key)
            waiting.notices.pop(key, None)
            waiting.stale.discard(key)
        if marks:
            await self._mark(waiting, marks, message)
        return retry

    def _stale(self, notice: notify.Notice, obj: Mapping[str, Any], now: datetime) -> bool:
        """Too old to be worth telling when first seen (the operator was down, or notifications
        were just turned on). Judged when the notice is offered, never later: a notice found fresh
        waits out any outage of its sink, however long."""
        when = _parse(notice.record.get("time"))
        if when is None or notify.is_drift(notice):
            # A drift removal's entry waits in its status for its notices (`notify.settle_drift`):
            # however late a restart finds one, it is told.
            return False
        if notice.sink == notify.WEBHOOK:
            return now - when > STALE_WEBHOOK
        if notice.recipient == notify.TEAM_MESSAGE:
            uid = str(wire.metadata(obj).get("uid") or "")
            if wire.ready_reason(obj) == names.PENDING or notify.team_message_of(obj) or uid in self._messages:
                # A waiting request's message is never too late, and a posted one is always
                # updated: a stale button must not look live, however late.
                return False
        return now - when > STALE_SLACK

    def _pause(self, sink: str, after: float) -> float:
        backoff = doubled(self._backoff.get(sink, 0.5), 1.0, MAX_BACKOFF_SECONDS)
        self._backoff[sink] = backoff
        wait = max(after, backoff) if after <= 1.0 else after
        self._paused[sink] = max(self._paused.get(sink, 0.0), time.monotonic() + wait)
        return wait

    def _failing(self, notice: notify.Notice, waiting: Waiting, exc: Exception, what: str) -> None:
        """Count a failure of `notice.sink` (refused, or unavailable); after `FAILING_AFTER` in a row,
        a warning Event on the object says so (once per `FAILING_AFTER`)."""
        count = self._failures[notice.sink] = self._failures.get(notice.sink, 0) + 1
        log.warning(
            "notifications: %s %s %s of %s/%s: %s", notice.sink, what, notice.key, waiting.plural, waiting.name, exc
        )
        if count % FAILING_AFTER == 0:
            body: Any = waiting.obj
            with contextlib.suppress(Exception):  # an Event is advice; it must not stop delivery
                kopf.event(
                    body,
                    type="Warning",
                    reason="NotificationFailing",
                    message=f"{notice.sink}: {count} failures in a row, the last {what} {notice.key}: {exc}"[:1000],
                )

    async def _send(self, notice: notify.Notice, waiting: Waiting) -> tuple[str, tuple[str, str] | None]:
        """Deliver one notice: ("sent" or "skipped", the approvers' message if this posted it)."""
        obj = waiting.obj
        if notice.sink == notify.WEBHOOK:
            assert self.sink is not None
            await self.sink.send(
                type=notice.event_type,
                id=str(notice.record.get("id")),
                source=notify.source_of(obj),
                subject=wire.name_of(obj),
                time=str(notice.record.get("time") or _rfc3339(datetime.now(UTC))),
                data=dict(notice.record),
            )
            self._observe(notice)
            return "sent", None
        assert self.slack is not None
        ids = {u: i for u in notice.mentions if (i := await self._slack_id(u, waiting.team))}
        text, blocks = render(notice, obj, waiting.team, ids)
        if notice.username:
            user = await self._slack_id(notice.username, waiting.team)
            if user is None:
                log.info("notifications: no Slack user for %s; %s not sent", notice.username, notice.key)
                return "skipped", None
            await self.slack.post(user, text, blocks)
            self._observe(notice)
            return "sent", None
        if notice.recipient == notify.TEAM_MESSAGE:
            existing = notify.team_message_of(obj) or self._messages.get(str(wire.metadata(obj).get("uid")))
            if existing is not None:
                await self.slack.update(existing[0], existing[1], text, blocks)
                self._observe(notice)
                return "sent", None
        channel = notify.channel_of(notice, waiting.team, self.config)
        if channel is None:
            return "skipped", None
        posted = await self.slack.post(channel, text, blocks)
        self._observe(notice)
        if notice.recipient == notify.TEAM_MESSAGE:
            self._messages[str(wire.metadata(obj).get("uid"))] = posted
            return "sent", posted
        return "sent", None

    def _observe(self, notice: notify.Notice) -> None:
        when = _parse(notice.record.get("time"))
        if when is not None:
            metrics.NOTIFICATION_DELAY.observe(max(0.0, (datetime.now(UTC) - when).total_seconds()))

    async def _slack_id(self, username: str, owner: notify.Team | None = None) -> str | None:
        """A username's Slack id: the map of a TeamOwnership that names them (`notify.slack_user_of`:
        the `owner` team's own for its approvers), else Slack's user with that email; None when
        Slack knows nobody by it. Slack being unavailable is not "nobody": SlackRetry goes up, and
        the notice waits."""
        found = notify.slack_user_of(username, self.teams, owner)
        if found or self.slack is None or "@" not in username:
            return found
        try:
            return await self.slack.user_id_by_email(username)
        except SlackRefused as exc:
            log.info("notifications: cannot look up %s in Slack (%s); named in plain text", username, exc)
            return None

    async def _mark(self, waiting: Waiting, keys: set[str], message: tuple[str, str] | None) -> None:
        uid = wire.uid_of(waiting.obj)  # the object notified of, not another created under its name since

        def change(obj: dict[str, Any]) -> dict[str, Any] | None:
            notified = dict(wire.status(obj).get("notifications") or {})
            have = set(notified.get("sent") or ())
            kept = notify.still_meaningful(obj, have | keys)
            if kept == have and (message is None or notified.get("slackTs")):
                return None
            notified["sent"] = sorted(kept)
            if message is not None and not notified.get("slackTs"):
                notified["slackChannel"], notified["slackTs"] = message
            return {"notifications": notified}

        try:
            write = functools.partial(self.kube.update_status, waiting.plural, waiting.name, change, uid=uid)
            updated = await asyncio.get_running_loop().run_in_executor(None, write)
        except Exception as exc:  # delivered all the same; the memory keeps it from going twice
            log.warning(
                "notifications: cannot record %s on %s/%s yet (%s)", sorted(keys), waiting.plural, waiting.name, exc
            )
            return
        if updated is not None:
            waiting.obj = updated

    async def close(self) -> None:
        for client in (self.slack, self.sink):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.close()


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _rfc3339(stamp: datetime) -> str:
    return stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- kopf ------------------------------------------------------------------------------------


@dataclass
class NotifierSlot:
    """Where the operator's one notifier lives (kopf hands handlers copies of the memo; the slot
    put there at start-up is shared by all of them). `off` once found unconfigured."""

    notifier: Notifier | None = None
    task: asyncio.Task[None] | None = None
    off: bool = False


def connect(settings: Settings, kube: Kube) -> Notifier | None:
    """The notifier the settings ask for; None when no sink is configured."""
    config = config_of(settings)
    if not (config.slack or config.webhook):
        return None
    slack = Slack(settings.slack_token or "", settings.slack_api_url) if config.slack else None
    sink = EventSink(settings.event_sink_url or "", settings.event_sink_secret or "") if config.webhook else None
    return Notifier(kube, config, slack, sink)


@kopf.on.startup()
def make_room_for_the_notifier(memo: kopf.Memo, **_: Any) -> None:
    memo[MEMO_KEY] = NotifierSlot()


def notifier_of(memo: Any) -> Notifier | None:
    """The operator's notifier, started with the first watch event (the Runtime exists by then);
    None when no sink is configured, or without a slot or a Runtime (handler tests)."""
    slot = memo.get(MEMO_KEY)
    if not isinstance(slot, NotifierSlot) or slot.off:
        return None
    if slot.notifier is not None:
        return slot.notifier
    try:
        rt = runtime_of(memo)
    except RuntimeError:
        return None
    notifier = connect(rt.settings, rt.kube)
    if notifier is None:
        slot.off = True
        return None
    slot.notifier = notifier
    slot.task = asyncio.get_running_loop().create_task(notifier.run(), name="jitaccess notifications")
    where = [s for s, on in (("slack", notifier.config.slack), ("webhook", notifier.config.webhook)) if on]
    log.info("notifications: to %s", " and ".join(where))
    return notifier


@kopf.on.cleanup()
async def stop_notifier(memo: kopf.Memo, **_: Any) -> None:
    """Stop delivering (what was not delivered is derived again at the next start)."""
    slot = memo.get(MEMO_KEY)
    if not isinstance(slot, NotifierSlot) or slot.notifier is None or slot.task is None:
        return
    slot.task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await slot.task
    await slot.notifier.close()


def _team(teams: Index, owner: Any) -> notify.Team | None:
    spec = first(teams, owner) if owner else None
    return notify.Team.of({"metadata": {"name": owner}, "spec": spec}) if spec is not None else None


def _offer(memo: Any, body: kopf.Body, owner: Any, teams: Index) -> None:
    notifier = notifier_of(memo)
    if notifier is None:
        return
    notifier.teams = [t for name in teams if (t := _team(teams, name)) is not None]
    notifier.offer(dict(body), _team(teams, owner), datetime.now(UTC))


async def notify_request(
    *,
    type: str | None = None,
    body: kopf.Body,
    memo: kopf.Memo,
    teams: Index = NO_INDEX,
    entitlements: Index = NO_INDEX,
    **_: Any,
) -> None:
    # The Entitlement's owner now, whose approvers admission lets decide; once the Entitlement is gone,
    # the team the request's decision was taken against, else the one it was taken up under (its
    # message still goes to that team's channel).
    entitlement = first(entitlements, body.spec.get("entitlement"))
    owner = (wire.spec(entitlement).get("owner") if entitlement else None) or audit.decision_team(body)
    if type == "DELETED":
        notifier = notifier_of(memo)
        if notifier is not None:
            notifier.withdrawn(dict(body), _team(teams, owner))
        return
    _offer(memo, body, owner, teams)


async def notify_grant(*, body: kopf.Body, memo: kopf.Memo, teams: Index = NO_INDEX, **_: Any) -> None:
    _offer(memo, body, body.spec.get("ownerTeam"), teams)


@kopf.on.event(names.GROUP, names.VERSION, names.EXTENSIONS)
async def notify_extension(
    *, body: kopf.Body, memo: kopf.Memo, teams: Index = NO_INDEX, entitlements: Index = NO_INDEX, **_: Any
) -> None:
    # Decided by the team its grant recorded (`status.ownerTeam`, the grant's `spec.ownerTeam`: attack
    # 57), which may no longer own the Entitlement; the Entitlement's owner for a grant from before
    # grants recorded theirs, as admission decides (`domain.extensions.owner_of`).
    entitlement = first(entitlements, body.status.get("entitlement"))
    owner = body.status.get("ownerTeam") or (wire.spec(entitlement).get("owner") if entitlement else None)
    _offer(memo, body, owner, teams)


@kopf.on.event(names.GROUP, names.VERSION, names.ENTITLEMENTS)
async def notify_entitlement(*, body: kopf.Body, memo: kopf.Memo, teams: Index = NO_INDEX, **_: Any) -> None:
    _offer(memo, body, body.spec.get("owner"), teams)


@kopf.on.event(names.GROUP, names.VERSION, names.CATALOGS)
async def notify_catalog(*, body: kopf.Body, memo: kopf.Memo, teams: Index = NO_INDEX, **_: Any) -> None:
    # A catalog is named after its team (admission refuses any other name).
    _offer(memo, body, body.metadata.name, teams)

"""How soon approvers hear of a request: its creation -> the approvers' Slack message posted.

The operator runs with the local Slack stand-in and CloudEvents receiver of `make dev`
(`devenv.notifications.LocalNotifications`, its operator settings as they are; the Slack clicks'
impersonator is not needed here). `count` bench users, payments engineers impersonated as in every
scenario, each ask for ledger's `prod-eng-ledger`: not their team's, so each request waits for
ledger's approvers and the operator posts one message per request to ledger's channel
(docs/notifications.md). Requests are created one a second, Slack's own pace for chat.postMessage
in one channel (which the stand-in enforces as well: past a burst, HTTP 429), so that what is
measured is the path to Slack, not a rate limit.

Each latency runs from the client's clock just before the create call (the API server's
`metadata.creationTimestamp` has whole seconds only) to the stand-in's `received` time of the
chat.postMessage whose Approve button carries the request's name; both are this process's wall
clock. It includes the admission webhooks on the create, the operator's validation (`Pending`), the
watch event, the delivery worker, the approver's users.lookupByEmail (Slack's answer is cached:
the first request only) and the HTTP call.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bench.scenarios import DEFAULT_RATE_LIMIT, summary
from bench.system import System, user_name
from devenv.notifications import LocalNotifications
from devenv.slack import Message, SlackStandIn
from jitaccess.domain.notifications import APPROVE_ACTION

log = logging.getLogger(__name__)
ENTITLEMENT = "prod-eng-ledger"  # examples/02-entitlements.yaml: ledger's, the bench users are payments
CHANNEL = "C0LEDGER1"  # examples/01-teams.yaml: ledger's slackChannel
PER_SECOND = 1.0


def request_of(message: Message) -> str | None:
    """The AccessRequest an approvers' message is about: its Approve button's, as first posted."""
    return message.request(APPROVE_ACTION, as_posted=True)


def _posts(slack: SlackStandIn, names: set[str]) -> dict[str, list[float]]:
    """request name -> when each message about it was posted, for the requests in `names`."""
    found: dict[str, list[float]] = {}
    for message in slack.messages(CHANNEL):
        name = request_of(message)
        if name in names:
            found.setdefault(name, []).append(message.received)
    return found


def _all_posted(slack: SlackStandIn, names: set[str]) -> dict[str, list[float]]:
    """`_posts` once every one of `names` has its message; until then nothing (`wait_for` polls on)."""
    found = _posts(slack, names)
    return found if len(found) == len(names) else {}


def approvers_message_latency(
    system: System, count: int, per_second: float = PER_SECOND, timeout: float = 60.0
) -> dict[str, Any]:
    """`count` requests for another team's entitlement, one every 1/`per_second` s: created -> posted."""
    assert system.operator is None
    with LocalNotifications() as local:
        system.start_operator(DEFAULT_RATE_LIMIT, wait_resolved=True, **local.operator_env())
        system.wait_entitlement_resolved(entitlement=ENTITLEMENT)
        created: dict[str, float] = {}
        began = time.monotonic()
        for index in range(1, count + 1):
            delay = began + (index - 1) / per_second - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            name = f"notify-{index:05d}"
            created[name] = time.time()
            system.create_request(name, user_name(index), "1h", entitlement=ENTITLEMENT)
        wanted = set(created)
        posts = local.slack.wait_for(lambda slack: _all_posted(slack, wanted), timeout)
        latencies = [min(posts[name]) - created[name] for name in created]
        limited = [c for c in local.slack.calls("chat.postMessage") if c.status == 429]
        result: dict[str, Any] = {
            "approvers_message": summary(latencies),
            # The first includes the approver's users.lookupByEmail and a new connection to Slack.
            "first_s": round(latencies[0], 4),
            "requests": count,
            "requests_per_s": per_second,
            "messages_posted": sum(len(times) for times in posts.values()),
            "rate_limited_posts": len(limited),
            "cloudevents_received": len(local.events.events()),
            "clock": "client time before the create call -> the stand-in's receipt of chat.postMessage",
        }
    s = result["approvers_message"]
    log.info(
        "approvers' Slack message after the request's creation: p50 %.3f s, p99 %.3f s, max %.3f s (%d requests)",
        s["p50"],
        s["p99"],
        s["max"],
        count,
    )
    return result

"""The controller's watch of requests, grants and extensions: one kopf handler per kind, which hands every
watch event to each of the modules' observers in turn.

An observer keeps something in memory current (the laggards `following` repairs, the scheduled
starts, the notifications to send, the audit archive's queue) or
acts on the rare event that calls for it (a request deleted while its access runs). kopf's cost
of an `on.event` handler is per handler and per event, whatever the handler does: its arguments,
its logger, its state and outcome are built for each. With six handlers on each kind, that was
kopf's largest share of the operator's CPU in a burst of grants (py-spy, bench/README.md), for
observers that mostly return at once. Here kopf runs one handler, and the observers are plain
`async` functions, called in the order listed with the arguments kopf gives a handler.

As kopf does for `on.event` handlers, an observer's failure is logged, with the traceback, on the
logger kopf gives watch handlers (the object's, which posts no Event: a watch sees every event of
every object) and the next observer still runs; nothing is retried: the next event of the object,
or the observer's own timer, catches up.

`expiry.schedule_expiry` stays a kopf handler of its own: it runs on a standby too (`parts.WARM`),
where this module's observers must not.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from jitaccess.api import names
from jitaccess.handlers import archive, deleted_requests, extensions, following, notifications, starts

Observer = Callable[..., Awaitable[None]]

REQUEST_OBSERVERS: tuple[Observer, ...] = (
    archive.audit_request,
    deleted_requests.end_grant_of_deleted_request,
    following.watch_request,
    notifications.notify_request,
    starts.observe_start,
)
GRANT_OBSERVERS: tuple[Observer, ...] = (
    archive.audit_grant,
    deleted_requests.end_orphaned_grant,
    extensions.follow_grant,
    following.watch_grant,
    notifications.notify_grant,
)
EXTENSION_OBSERVERS: tuple[Observer, ...] = (
    archive.audit_extension,
    extensions.observe_extension,
)


Logger = logging.Logger | logging.LoggerAdapter[Any]


async def hand_to(observers: tuple[Observer, ...], logger: Logger, **kwargs: Any) -> None:
    """Give one watch event (kopf's handler arguments, `logger` the object's) to each observer."""
    for observer in observers:
        try:
            await observer(logger=logger, **kwargs)
        except Exception:  # one observer's failure must not keep the event from the others
            logger.exception("%s.%s failed on this event", observer.__module__, observer.__name__)


@kopf.on.event(names.GROUP, names.VERSION, names.REQUESTS)
async def on_request_event(*, logger: Logger, **kwargs: Any) -> None:
    await hand_to(REQUEST_OBSERVERS, logger, **kwargs)


@kopf.on.event(names.GROUP, names.VERSION, names.GRANTS)
async def on_grant_event(*, logger: Logger, **kwargs: Any) -> None:
    await hand_to(GRANT_OBSERVERS, logger, **kwargs)


@kopf.on.event(names.GROUP, names.VERSION, names.EXTENSIONS)
async def on_extension_event(*, logger: Logger, **kwargs: Any) -> None:
    await hand_to(EXTENSION_OBSERVERS, logger, **kwargs)

"""The operator's two parts, each a kopf operator of its own with its own handler registry:

- the admission part, on every replica for the life of the process: the admission webhooks and
  what they read (the TeamOwnership and Entitlement indexes), the Runtime's indexes of grants and
  requests, and of the readiness of Entitlements and PermissionCatalogs (`indexes`), start-up,
  probes and metrics, and the Slack interactivity endpoint (which writes only through the API
  server, as the clicking user). It acts on nothing: the webhooks are
  stateless, so a fail-closed webhook keeps answering while one replica is down.
- the controller part, only while this replica leads (`leadership`): every other handler, timer
  and the expiry scheduler, i.e. everything that writes to the cluster or to Identity Center.
  It runs in a thread with an event loop of its own, started on acquiring the Lease and stopped
  on losing it: kopf cancels every task of its loop when it stops, so in the admission part's loop
  it would take the webhooks' tasks with it. Each start is a fresh kopf operator that lists
  everything again and resumes every grant from its persisted status.

Handlers are assigned by module (`ADMISSION_MODULES`); a new module belongs to the controller
unless listed, so nothing new acts on a standby by accident (`WARM` lists the few controller
handlers that only keep memory current and also run on a standby). The kopf indexes and the login go to
both parts: each kopf operator passes its handlers its own indexes and needs credentials.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kopf

log = logging.getLogger(__name__)

ADMISSION_MODULES = frozenset(
    {
        "jitaccess.handlers.admission",
        "jitaccess.handlers.extension_admission",
        "jitaccess.handlers.indexes",
        "jitaccess.handlers.interactions",
        "jitaccess.handlers.observability",
        "jitaccess.handlers.startup",
    }
)
#: Handlers both parts need: the kopf indexes (handlers take them as arguments) and the login.
SHARED = frozenset(
    {"jitaccess.handlers.indexes.teams", "jitaccess.handlers.indexes.entitlements", "jitaccess.handlers.startup.login"}
)
#: Controller handlers a standby runs too because they only keep in-memory state current: the
#: expiry schedule, so that a new leader ends a grant that ran out during the hand-over at once
#: instead of after its own watch has gone through every grant (seconds, at thousands of grants).
WARM = frozenset({"jitaccess.handlers.expiry.schedule_expiry"})


@dataclass(frozen=True)
class Parts:
    admission: kopf.OperatorRegistry
    controller: kopf.OperatorRegistry


def split(registry: kopf.OperatorRegistry) -> Parts:
    """The handlers of `registry` (kopf's default, where the decorators put them), by part."""
    parts = Parts(kopf.OperatorRegistry(), kopf.OperatorRegistry())
    for kind in ("_activities", "_indexing", "_watching", "_spawning", "_changing", "_webhooks"):
        for handler in getattr(registry, kind).get_all_handlers():
            fn = handler.fn
            module, qualified = getattr(fn, "__module__", ""), f"{getattr(fn, '__module__', '')}.{fn.__name__}"
            if getattr(handler, "_fallback", False):
                continue  # kopf's own fallback logins: `startup.login` replaces them
            if module in ADMISSION_MODULES or qualified in WARM:
                getattr(parts.admission, kind).append(handler)
            if module not in ADMISSION_MODULES or qualified in SHARED:
                getattr(parts.controller, kind).append(handler)
    return parts


class _SignalsAreTheAdmissionParts(logging.Filter):
    """kopf warns that a kopf operator outside the main thread ignores OS signals: the controller
    part does so by design (the admission part receives them and stops it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            threading.current_thread().name == Controller.THREAD and "OS signals are ignored" in record.getMessage()
        )


class Controller:
    """Runs the controller part in its own thread and event loop, from `start()` to `stop()`: each
    time with fresh kopf settings and a fresh memo (from the factories), as a new process would.
    `failed` is told when it stops without being asked to."""

    THREAD = "jitaccess-controller"

    def __init__(
        self,
        registry: kopf.OperatorRegistry,
        settings: Callable[[], kopf.OperatorSettings],
        memo: Callable[[], kopf.Memo],
        failed: Callable[[BaseException | None], None],
    ) -> None:
        self._registry, self._settings, self._memo, self._failed = registry, settings, memo, failed
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        logging.getLogger("kopf._core.reactor.running").addFilter(_SignalsAreTheAdmissionParts())

    async def start(self) -> None:
        await self.stop()  # a previous term may still be finishing its work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name=self.THREAD, daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop it now (kopf stops its watches and handlers); return once it has stopped."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join)
            log.info("the controller has stopped")

    def _run(self, stop: threading.Event) -> None:
        problem: BaseException | None = None
        try:
            asyncio.run(self._operator(stop))
        except BaseException as exc:  # reported below: the process must not carry on half-alive
            problem = exc
        if not stop.is_set():
            self._failed(problem)

    async def _operator(self, stop: threading.Event) -> None:
        kwargs: dict[str, Any] = {"clusterwide": True, "standalone": True, "stop_flag": stop}
        await kopf.operator(registry=self._registry, settings=self._settings(), memo=self._memo(), **kwargs)

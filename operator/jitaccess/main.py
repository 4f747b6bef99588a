"""`jitaccess-operator`: run the operator (settings from `JITACCESS_*` environment variables).

Two kopf operators in one process (`handlers.parts`): the admission part serves the webhooks on
every replica from start to stop; the controller part acts, on the leader only (`handlers.leadership`),
or always when leader election is off (a single replica).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
from pathlib import Path

import kopf

import jitaccess.handlers  # noqa: F401  (registers the handlers with kopf's default registry)
from jitaccess.adapters.lease import LeaseStore
from jitaccess.domain.election import Timing
from jitaccess.handlers import parts, startup
from jitaccess.handlers.leadership import Always, Elector, Leadership
from jitaccess.logs import configure_logging
from jitaccess.settings import Settings

log = logging.getLogger("jitaccess.main")
_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="jitaccess-operator", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_format, logging.DEBUG if args.verbose else logging.INFO)
    failed = asyncio.run(run(settings, args.liveness))
    if failed:
        sys.exit(1)


async def run(config: Settings, liveness: str | None) -> bool:
    """Run until a signal stops the admission part; True when the controller part failed instead."""
    split = parts.split(kopf.get_default_registry())
    leadership = Leadership() if config.leader_election else Always()
    memo = kopf.Memo(settings=config, **{startup.ADMISSION_PART: True, startup.LEADERSHIP: leadership})
    ready, stop = asyncio.Event(), asyncio.Event()
    failure: list[BaseException | None] = []
    loop = asyncio.get_running_loop()

    def controller_failed(problem: BaseException | None) -> None:
        failure.append(problem)
        loop.call_soon_threadsafe(stop.set)

    def controller_settings() -> kopf.OperatorSettings:
        settings = kopf.OperatorSettings()
        startup.kopf_settings(settings, config)
        return settings

    def controller_memo() -> kopf.Memo:
        return kopf.Memo(settings=config, runtime=memo["runtime"])

    controller = parts.Controller(split.controller, controller_settings, controller_memo, controller_failed)

    async def lead() -> None:
        await ready.wait()  # the Runtime and the webhooks are set up by the admission part's start-up
        if not config.leader_election:
            await controller.start()
            await asyncio.Event().wait()
        timing = Timing(config.lease_duration_seconds, config.renew_deadline_seconds, config.retry_period_seconds)
        store = LeaseStore(_lease_namespace(config), config.lease_name, timeout=timing.retry_period)
        identity = config.leader_identity or f"{socket.gethostname()}-{os.getpid()}"
        log.info("leader election on Lease %s/%s as %s", store.namespace, store.name, identity)
        await Elector(store, identity, timing, leadership).run(controller.start, controller.stop)

    # Created before the admission part starts, so kopf leaves it to us when it stops.
    leading = asyncio.create_task(lead(), name="leader election")

    @kopf.on.cleanup(registry=split.admission)
    async def hand_over(**_: object) -> None:
        """On a signal, stop acting and release the Lease as soon as the admission part has stopped,
        not after kopf's wind-down (which gives stray tasks seconds to finish): a standby takes over
        at its next try."""
        leading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leading

    admission = asyncio.create_task(
        kopf.operator(
            registry=split.admission,
            clusterwide=True,
            standalone=True,
            liveness_endpoint=liveness,
            memo=memo,
            ready_flag=ready,
            stop_flag=stop,
        ),
        name="admission part",
    )
    try:
        await admission
    finally:
        leading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leading
        await controller.stop()
    if failure:
        log.error("the controller part stopped on its own (%s): the operator exits", failure[0] or "no error")
    return bool(failure)


def _lease_namespace(config: Settings) -> str:
    if config.lease_namespace:
        return config.lease_namespace
    try:
        return _NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


if __name__ == "__main__":
    main(sys.argv[1:])

"""`jitaccess-operator`: run the operator (settings from `JITACCESS_*` environment variables).

Two kopf operators in one process (`handlers.parts`): the admission part serves the webhooks on
every replica from start to stop; the controller part acts, on the leader only (`handlers.leadership`),
or always when leader election is off (a single replica).

SIGTERM (a Pod's deletion) hands the Lease over at once; a replica that others can stand in for
(behind a Service, or electing a leader) then drains its webhooks
(`adapters.webhooks.WebhookServer.drain`) before kopf stops serving them. A second SIGTERM, or
SIGINT, stops at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import urllib.parse
from collections.abc import MutableMapping
from pathlib import Path

import kopf
from kopf._core.engines import probing

import jitaccess.handlers  # noqa: F401  (registers the handlers with kopf's default registry)
from jitaccess import memory
from jitaccess.adapters.lease import LeaseStore
from jitaccess.adapters.webhooks import WebhookServer
from jitaccess.domain.election import Timing
from jitaccess.handlers import parts, startup
from jitaccess.handlers.leadership import Always, Elector, Leadership
from jitaccess.listening import EVERYWHERE, url_host
from jitaccess.logs import configure_logging
from jitaccess.settings import Settings, kubeconfig_files, load, warn_of_unknown

log = logging.getLogger("jitaccess.main")
_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: A draining replica stops once no webhook call has reached it for this long: the API server's
#: kept connections to it are then closed (each by its last answer) or unused.
DRAIN_QUIET_SECONDS = 1.0
#: ... and at the latest after this long, well within the chart's grace period (30 s after the
#: preStop delay), so that the controller part and kopf still have time to stop.
DRAIN_LIMIT_SECONDS = 10.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="jitaccess-operator", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--liveness",
        default=None,
        help="liveness endpoint: http://:8080/healthz listens on JITACCESS_BIND_ADDRESS (every address by "
        "default), http://HOST:8080/healthz on HOST alone",
    )
    args = parser.parse_args(argv)
    settings = load()
    log_in_as_kubectl_would(os.environ)
    configure_logging(settings.log_format, logging.DEBUG if args.verbose else logging.INFO)
    warn_of_unknown(os.environ)  # once logging is set up: the warnings come in the log's own format
    memory.start()
    failed = asyncio.run(run(settings, liveness_endpoint(args.liveness, settings.bind_address)))
    if failed:
        sys.exit(1)


def liveness_endpoint(url: str | None, address: str) -> str | None:
    """kopf's liveness endpoint for `--liveness URL`. A URL that names a host (the chart's form
    before `JITACCESS_BIND_ADDRESS`) listens there alone, as kopf reads it; one that names none
    (`http://:8080/healthz`, the chart's and the image's) listens on `address` (`listening`).

    kopf binds the one host its URL names, and `localhost` when it names none: for an address, the
    URL names it; for every address, kopf's host for a URL without one (`probing.LOCALHOST`, read as
    the endpoint starts) becomes asyncio's every address, one socket per family."""
    if url is None:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.hostname:
        return url
    if address:
        netloc = url_host(address) + (f":{parts.port}" if parts.port is not None else "")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    if not isinstance(getattr(probing, "LOCALHOST", None), str):
        raise RuntimeError("kopf has no probing.LOCALHOST any more: its /healthz could not listen on every address")
    probing.LOCALHOST = EVERYWHERE
    return url


def log_in_as_kubectl_would(environ: MutableMapping[str, str]) -> None:
    """Stop at once, with what to fix, when outside a pod no kubeconfig can be read (`kubeconfig_files`);
    else leave in `KUBECONFIG` only the files that exist. kopf's login reads each file it lists and
    fails on one that does not exist, which kubectl and the kubernetes client skip: both log in with
    the same files, as kubectl would. Before any thread starts, which might read the variable."""
    files = kubeconfig_files(environ)
    if files is not None:
        environ["KUBECONFIG"] = os.pathsep.join(files)


async def run(config: Settings, liveness: str | None) -> bool:
    """Run until a signal stops the admission part; True when the controller part failed instead."""
    split = parts.split(kopf.get_default_registry())
    leadership = Leadership() if config.leader_election else Always()
    memo = kopf.Memo(settings=config, **{startup.ADMISSION_PART: True, startup.LEADERSHIP: leadership})
    admission_settings = kopf.OperatorSettings()  # its start-up puts the webhook server in it
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
    leading = HandOver(asyncio.create_task(lead(), name="leader election"))

    @kopf.on.cleanup(registry=split.admission)
    async def hand_over(**_: object) -> None:
        """On a signal, stop acting and release the Lease as soon as the admission part has stopped,
        not after kopf's wind-down (which gives stray tasks seconds to finish): a standby takes over
        at its next try."""
        await leading.done()

    draining: list[asyncio.Task[None]] = []

    async def drain_then_stop() -> None:
        leading.let_go()  # the standby may take over now; `hand_over` awaits the hand-over
        server = admission_settings.admission.server
        if isinstance(server, WebhookServer) and (server.service is not None or config.leader_election):
            # Only where another replica can answer the calls a drain sends away: not in a single
            # local process (a URL, no leader election), which stops at once as before.
            log.info("SIGTERM: draining the admission webhooks before stopping")
            started = loop.time()
            await server.drain(quiet=DRAIN_QUIET_SECONDS, limit=DRAIN_LIMIT_SECONDS)
            log.info(
                "webhooks drained in %.1f s: %d calls answered, each closing its connection",
                loop.time() - started,
                server.drained_calls,
            )
        stop.set()

    def on_sigterm() -> None:
        if draining:
            stop.set()
        else:
            draining.append(asyncio.create_task(drain_then_stop(), name="webhook drain"))

    async def catch_sigterm() -> None:
        """Take SIGTERM over from kopf, which would cancel the webhook server at once."""
        await ready.wait()  # kopf installs its signal handlers before it starts up
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)

    catching = asyncio.create_task(catch_sigterm(), name="SIGTERM catcher")
    admission = asyncio.create_task(
        kopf.operator(
            registry=split.admission,
            settings=admission_settings,
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
        catching.cancel()
        await leading.done()
        await controller.stop()
    if failure:
        log.error("the controller part stopped on its own (%s): the operator exits", failure[0] or "no error")
    return bool(failure)


class HandOver:
    """The leader election's task, stopped once: on cancellation it stops the controller, then
    releases the Lease (`handlers.leadership.Elector.run`)."""

    def __init__(self, task: asyncio.Task[None]) -> None:
        self.task = task

    def let_go(self) -> None:
        """Ask it to stop, once only: a second cancellation would cut the hand-over short, and the
        Lease would stay held until it expires (a standby then waits its whole duration)."""
        if not self.task.done() and not self.task.cancelling():
            self.task.cancel()

    async def done(self) -> None:
        """Let go, and wait until the hand-over has ended."""
        self.let_go()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self.task)  # shielded: the waiter's own cancellation must not reach it


def _lease_namespace(config: Settings) -> str:
    if config.lease_namespace:
        return config.lease_namespace
    try:
        return _NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


if __name__ == "__main__":
    main(sys.argv[1:])

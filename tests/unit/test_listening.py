"""Every server of the operator listens on `JITACCESS_BIND_ADDRESS` (`jitaccess.listening`): by
default on every address, IPv4 and IPv6 alike, so that on an IPv6-only cluster the kubelet's probes,
the API server's webhook calls and Prometheus's scrapes reach the pod at its IPv6 address, and on an
IPv4 cluster at its IPv4 one; `0.0.0.0` is IPv4 alone, `::` IPv6 alone.

Seen here on loopback: each server is asked at 127.0.0.1 and at ::1 (skipped where this machine has
no IPv6 loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import kopf
import pytest
from aiohttp import web
from kopf._core.engines import indexing, probing
from prometheus_client import CollectorRegistry

from devenv.processes import free_port
from jitaccess.adapters.tls import generate_serving_files
from jitaccess.handlers import startup
from jitaccess.listening import start_site
from jitaccess.main import liveness_endpoint
from jitaccess.observability import MetricsServer, State
from jitaccess.settings import Settings, SettingsError, load

V4, V6 = "127.0.0.1", "::1"
#: What listens where, by bind address.
REACHED = {"": {V4, V6}, "0.0.0.0": {V4}, "::": {V6}}


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind((V6, 0))
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")


def reached(port: int) -> set[str]:
    """The loopback addresses at which something accepts a connection on `port`."""
    found = set()
    for address in (V4, V6):
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=2):
            found.add(address)
    return found


def get(address: str, port: int, path: str) -> int:
    host = f"[{address}]" if ":" in address else address
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as response:
        return int(response.status)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in [k for k in os.environ if k.startswith("JITACCESS_")]:
        monkeypatch.delenv(key)
    return monkeypatch


@pytest.mark.parametrize("address", sorted(REACHED))
def test_the_setting_is_an_ip_address_or_empty(clean_env: pytest.MonkeyPatch, address: str) -> None:
    clean_env.setenv("JITACCESS_BIND_ADDRESS", address)
    assert Settings().bind_address == address


@pytest.mark.parametrize("address", ["[::]", "localhost", "0.0.0.0:8080", " ", "*"])
def test_anything_else_is_refused_at_start(clean_env: pytest.MonkeyPatch, address: str) -> None:
    clean_env.setenv("JITACCESS_BIND_ADDRESS", address)
    with pytest.raises(SettingsError) as caught:
        load()
    (line,) = str(caught.value.code).splitlines()[1:]
    assert line.startswith(f"- JITACCESS_BIND_ADDRESS={address!r}: not an IP address: "), line


def test_by_default_the_servers_listen_everywhere(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings().bind_address == ""


# --- /healthz (kopf's) ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def healthz(endpoint: str) -> AsyncIterator[None]:
    """kopf's liveness endpoint at `endpoint`, as kopf serves it for `--liveness`."""
    ready = asyncio.Event()
    task = asyncio.create_task(
        probing.health_reporter(
            endpoint,
            memo=kopf.Memo(),
            indices=indexing.OperatorIndices(indexing.OperatorIndexers()),
            registry=kopf.OperatorRegistry(),
            settings=kopf.OperatorSettings(),
            ready_flag=ready,
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("address", sorted(REACHED))
async def test_healthz_of_a_url_without_a_host_listens_on_the_bind_address(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    """The chart's `--liveness http://:PORT/healthz`: the kubelet probes the pod's own address."""
    monkeypatch.setattr(probing, "LOCALHOST", probing.LOCALHOST)  # put back after the test
    port = free_port()
    endpoint = liveness_endpoint(f"http://:{port}/healthz", address)
    assert endpoint is not None
    async with healthz(endpoint):
        found = await asyncio.to_thread(reached, port)
        assert found == REACHED[address]
        for where in found:
            assert await asyncio.to_thread(get, where, port, "/healthz") == 200


async def test_healthz_of_a_url_with_a_host_listens_there_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--liveness http://0.0.0.0:PORT/healthz`, as before the setting: what it says, whatever the setting."""
    monkeypatch.setattr(probing, "LOCALHOST", probing.LOCALHOST)
    port = free_port()
    endpoint = f"http://0.0.0.0:{port}/healthz"
    assert liveness_endpoint(endpoint, "") == endpoint
    assert liveness_endpoint(endpoint, "::") == endpoint
    async with healthz(endpoint):
        assert await asyncio.to_thread(reached, port) == {V4}
    assert liveness_endpoint(None, "") is None


# --- the admission webhooks -------------------------------------------------------------------


@pytest.mark.parametrize("address", sorted(REACHED))
async def test_the_webhooks_behind_a_service_listen_on_the_bind_address(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, address: str
) -> None:
    """As in a pod: the API server calls the Service, which reaches the pod at its own address."""
    tls = generate_serving_files(["jitaccess-webhook.jitaccess-system.svc"], tmp_path)
    port = free_port()
    for name, value in {
        "WEBHOOK_PORT": str(port),
        "WEBHOOK_SERVICE": "jitaccess-system/jitaccess-webhook",
        "WEBHOOK_MANAGED": "false",
        "WEBHOOK_CERTFILE": str(tls.certfile),
        "WEBHOOK_KEYFILE": str(tls.keyfile),
        "WEBHOOK_CAFILE": str(tls.cafile),
        "OPERATOR_USERNAMES": "system:serviceaccount:jitaccess-system:jitaccess",
        "BIND_ADDRESS": address,
    }.items():
        clean_env.setenv(f"JITACCESS_{name}", value)
    clean_env.setattr(startup, "own_username", _no_api_server)
    settings, memo = kopf.OperatorSettings(), kopf.Memo()
    startup._configure_admission(settings, memo, Settings())
    configs = cast(Any, settings.admission.server)(cast(kopf.WebhookFn, _never_called))
    assert isinstance(configs, AsyncGenerator)
    await configs.__anext__()  # serving from here
    try:
        assert await asyncio.to_thread(reached, port) == REACHED[address]
    finally:
        await configs.aclose()


def _no_api_server() -> str:
    raise ConnectionError("no API server in a unit test")


async def _never_called(*_: Any, **__: Any) -> dict[str, Any]:
    raise AssertionError("no webhook call is made here")


# --- /metrics ---------------------------------------------------------------------------------


@pytest.fixture
def metrics(request: pytest.FixtureRequest) -> Iterator[MetricsServer]:
    served = MetricsServer(0, State, lambda: datetime.now(UTC), addr=str(request.param), registry=CollectorRegistry())
    try:
        yield served
    finally:
        served.stop()


@pytest.mark.parametrize("metrics", sorted(REACHED), indirect=True)
def test_metrics_listen_on_the_bind_address(metrics: MetricsServer, request: pytest.FixtureRequest) -> None:
    """One socket, in its own thread: for every address an IPv6 socket that takes IPv4 too."""
    address = request.node.callspec.params["metrics"]
    found = reached(metrics.port)
    assert found == REACHED[address]
    for where in found:
        assert get(where, metrics.port, "/metrics") == 200


# --- the Slack interactivity endpoint -----------------------------------------------------------


@pytest.mark.parametrize("address", sorted(REACHED))
async def test_an_aiohttp_site_listens_on_the_bind_address(address: str) -> None:
    """The Slack endpoint's site (`handlers.interactions.serve_interactions` starts it so)."""
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    try:
        await start_site(runner, address, port, reuse_port=True)
        assert await asyncio.to_thread(reached, port) == REACHED[address]
    finally:
        await runner.cleanup()

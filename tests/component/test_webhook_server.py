"""The admission webhook server's TLS and what it advertises: kopf's server with the certificate
the project generates, reached over real HTTPS as an API server would (CA from the caBundle,
hostname checked against the subject alternative names).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from devenv.processes import free_port
from jitaccess.adapters.tls import ServingFiles, generate_serving_files
from jitaccess.adapters.webhooks import ServiceRef, WebhookServer, configurations


async def _review(request: Any, **_: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": request["request"]["uid"], "allowed": True},
    }


def _post(url: str, cafile: Path) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(cafile))
    body = json.dumps({"request": {"uid": "u-1"}}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, context=context, timeout=5) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


async def _first_config(server: WebhookServer) -> tuple[dict[str, Any], asyncio.Task[None]]:
    """Run the server until it advertises itself; its first client config and the serving task."""
    configs: asyncio.Queue[Any] = asyncio.Queue()

    async def serve() -> None:
        async with server:
            async for config in server(_review):
                await configs.put(config)

    task = asyncio.create_task(serve())
    return await asyncio.wait_for(configs.get(), 10), task


@contextlib.asynccontextmanager
async def _serving(
    files: ServingFiles, service: ServiceRef | None = None
) -> AsyncIterator[tuple[WebhookServer, dict[str, Any]]]:
    """A server on a free local port with `files`, serving for the block; with its first client config."""
    server = WebhookServer(
        addr="127.0.0.1",
        port=free_port(),
        host="127.0.0.1",
        service=service,
        certfile=files.certfile,
        pkeyfile=files.keyfile,
        cafile=files.cafile,
        operator_usernames={"operator"},
    )
    config, task = await _first_config(server)
    try:
        yield server, config
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_served_certificate_is_trusted_through_the_ca_bundle(tmp_path: Path) -> None:
    files = generate_serving_files(["127.0.0.1", "localhost"], tmp_path)
    assert oct(files.keyfile.stat().st_mode & 0o777) == "0o600"
    async with _serving(files) as (server, config):
        assert base64.b64decode(config["caBundle"]) == files.cafile.read_bytes()
        # What it expects of the cluster: the configurations that call it, by handler id.
        assert server.expected == configurations(config, ["operator"])
        response = await asyncio.to_thread(_post, f"{config['url']}/some-handler", files.cafile)
        assert response["response"] == {"uid": "u-1", "allowed": True}
        # A certificate for other names does not pass for this host.
        other = generate_serving_files(["127.0.0.1"], tmp_path / "other")
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            await asyncio.to_thread(_post, f"{config['url']}/x", other.cafile)


async def test_in_cluster_the_service_is_advertised_not_a_url(tmp_path: Path) -> None:
    service = ServiceRef.parse("jitaccess/jitaccess-webhook")
    files = generate_serving_files(["127.0.0.1", *service.hostnames], tmp_path)
    async with _serving(files, service) as (server, config):
        assert config == {
            "service": {"namespace": "jitaccess", "name": "jitaccess-webhook", "port": 443, "path": ""},
            "caBundle": base64.b64encode(files.cafile.read_bytes()).decode(),
        }
        assert server.expected is not None
        assert server.expected[0]["webhooks"][0]["clientConfig"]["service"]["path"] == "/accessrequests-stamp"


def test_service_reference_parsing() -> None:
    assert ServiceRef.parse("ns/name:8443") == ServiceRef("ns", "name", 8443)
    assert ServiceRef.parse(" ns/name ").hostnames[:2] == ["name.ns.svc", "name.ns.svc.cluster.local"]
    for bad in ("name", "ns/", "/name", "ns/name:https"):
        with pytest.raises(ValueError, match="namespace/name"):
            ServiceRef.parse(bad)


def test_a_certificate_needs_a_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one hostname"):
        generate_serving_files([], tmp_path)

"""The webhook server (`jitaccess.adapters.webhooks.WebhookServer`) never cuts a connection the API
server keeps while it serves:

- a stopping replica drains (`WebhookServer.drain`): every call it answers from then on closes its
  connection (`Connection: close`), so the API server calls again through the Service instead of
  reusing a connection that the stopping server would otherwise close under a call; a call in
  flight is answered in full; the drain ends once calls stop coming, or at its limit;
- a renewed certificate (cert-manager's Secret, mounted) is loaded into the serving TLS context:
  new connections get it, kept ones go on, and the new CA bundle is advertised.

The server serves kopf's route with aiohttp; the calls are raw HTTP/1.1 on kept connections, as the
API server makes them, so the tests see exactly what a connection does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any, cast

import kopf
import pytest
import trustme

from devenv.processes import free_port
from jitaccess.adapters.webhooks import WebhookServer

BODY = json.dumps({"request": {"uid": "u"}}).encode()


class Calls:
    """The webhook function: answers at once, or holds the calls while `held` is clear."""

    def __init__(self) -> None:
        self.held = asyncio.Event()
        self.held.set()
        self.started = asyncio.Event()

    async def __call__(self, request: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.started.set()
        await self.held.wait()
        return {"response": {"uid": request["request"]["uid"], "allowed": True}}


@contextlib.asynccontextmanager
async def serving(calls: Calls) -> AsyncIterator[tuple[WebhookServer, int]]:
    port = free_port()
    server = WebhookServer(operator_usernames=["op"], addr="127.0.0.1", port=port, host="127.0.0.1", insecure=True)
    configs = server(cast(kopf.WebhookFn, calls))
    assert isinstance(configs, AsyncGenerator)
    await configs.__anext__()  # serving from here
    try:
        yield server, port
    finally:
        await configs.aclose()  # as kopf stops it


async def call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict[str, str]:
    """One POST on a kept connection; the answer's headers (lower-case names) and its status."""
    writer.write(
        b"POST /accessrequests-check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
        + BODY
    )
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    status, *lines = head.strip().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    body = json.loads(await reader.readexactly(int(headers["content-length"])))
    assert body["response"]["allowed"] is True, body
    return {"status": status.split()[1], **headers}


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(1), timeout=5) == b""


async def test_calls_keep_their_connection_until_the_drain_then_each_answer_closes_it() -> None:
    calls = Calls()
    async with serving(calls) as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(2):  # one connection, reused, as the API server does
            answer = await call(reader, writer)
            assert answer["status"] == "200" and answer.get("connection", "keep-alive").lower() != "close"
        drain = asyncio.create_task(server.drain(quiet=0.5, limit=30))
        answer = await call(reader, writer)
        assert answer["status"] == "200" and answer["connection"].lower() == "close"
        assert await closed_by_server(reader)
        writer.close()
        # A new connection is refused: the API server's next call goes to a replica that stays.
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        await asyncio.wait_for(drain, timeout=5)
        assert server.drained_calls == 1


async def test_the_drain_waits_for_a_call_in_flight_and_answers_it_in_full() -> None:
    calls = Calls()
    async with serving(calls) as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        calls.held.clear()
        answer = asyncio.create_task(call(reader, writer))
        await asyncio.wait_for(calls.started.wait(), timeout=5)
        drain = asyncio.create_task(server.drain(quiet=0.05, limit=30))
        await asyncio.sleep(0.3)  # six quiet periods: only the call in flight keeps the drain going
        assert not drain.done()
        calls.held.set()
        assert (await asyncio.wait_for(answer, timeout=5))["connection"].lower() == "close"
        await asyncio.wait_for(drain, timeout=5)
        writer.close()


async def test_the_drain_ends_a_quiet_period_after_the_last_call_or_at_its_limit() -> None:
    loop = asyncio.get_running_loop()
    async with serving(Calls()) as (server, port):
        # Nothing comes: the drain still waits one quiet period (a call may be on its way).
        started = loop.time()
        await asyncio.wait_for(server.drain(quiet=0.2, limit=30), timeout=5)
        assert loop.time() - started >= 0.2

    async with serving(Calls()) as (server, port):
        # Calls keep coming, one every 20 ms, each on a connection opened before the drain (the
        # drain answers one call per connection, then closes it): the limit ends the drain.
        connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(60)]

        async def call_in_turn(turn: int) -> None:
            await asyncio.sleep(turn * 0.02)
            await call(*connections[turn])

        caller = asyncio.gather(*(call_in_turn(turn) for turn in range(len(connections))))
        started = loop.time()
        await asyncio.wait_for(server.drain(quiet=0.2, limit=0.6), timeout=5)
        assert loop.time() - started >= 0.6 and not caller.done()
        caller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await caller


async def test_a_refused_malformed_call_closes_its_connection_while_draining() -> None:
    body = b"not json"  # kopf refuses it with a raised 400
    async with serving(Calls()) as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        drain = asyncio.create_task(server.drain(quiet=0.3, limit=30))
        writer.write(
            b"POST /accessrequests-check HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
        assert head.startswith("http/1.1 400"), head
        assert "connection: close" in head
        writer.close()
        await asyncio.wait_for(drain, timeout=5)


# --- a renewed certificate ---------------------------------------------------------------------


def _write(path: Path, data: bytes) -> None:
    """Replace the file at once, as the kubelet swaps a Secret's files."""
    temporary = path.with_suffix(".new")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _issue(ca: trustme.CA, directory: Path) -> None:
    cert = ca.issue_cert("127.0.0.1")
    _write(directory / "tls.key", cert.private_key_pem.bytes())
    _write(directory / "tls.crt", b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    _write(directory / "ca.crt", ca.cert_pem.bytes())


def _trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_a_renewed_certificate_is_served_without_cutting_a_kept_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = trustme.CA(), trustme.CA()
    _issue(old, tmp_path)
    port = free_port()
    server = WebhookServer(
        operator_usernames=["op"],
        addr="127.0.0.1",
        port=port,
        host="127.0.0.1",
        certfile=str(tmp_path / "tls.crt"),
        pkeyfile=str(tmp_path / "tls.key"),
        cafile=str(tmp_path / "ca.crt"),
        file_check_interval=0.05,
    )
    configs = server(cast(kopf.WebhookFn, Calls()))
    assert isinstance(configs, AsyncGenerator)
    first = await configs.__anext__()
    try:
        assert base64.b64decode(str(first["caBundle"])) == old.cert_pem.bytes()
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=_trusting(old))
        assert (await call(reader, writer))["status"] == "200"

        # A certificate without its key (a half-done swap) is not loaded: the old one is served.
        _write(tmp_path / "tls.crt", new.issue_cert("127.0.0.1").cert_chain_pems[0].bytes())
        with caplog.at_level(logging.WARNING, logger="jitaccess.adapters.webhooks"), pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(renewal := asyncio.ensure_future(configs.__anext__())), 0.5)
        assert "does not load yet" in caplog.text
        probe_r, probe_w = await asyncio.open_connection("127.0.0.1", port, ssl=_trusting(old))
        assert (await call(probe_r, probe_w))["status"] == "200"
        probe_w.close()

        _issue(new, tmp_path)
        second = await asyncio.wait_for(renewal, timeout=5)
        assert base64.b64decode(str(second["caBundle"])) == new.cert_pem.bytes()
        assert server.expected is not None  # the configurations to apply carry the new bundle
        assert all(
            base64.b64decode(w["clientConfig"]["caBundle"]) == new.cert_pem.bytes()
            for obj in server.expected
            for w in obj["webhooks"]
        )
        # The kept connection goes on (kopf's own loop would have cut it), ...
        assert (await call(reader, writer))["status"] == "200"
        writer.close()
        # ... a new one gets the new certificate, which a client of the old CA does not trust.
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=_trusting(new))
        assert (await call(reader, writer))["status"] == "200"
        writer.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", port, ssl=_trusting(old))
    finally:
        await configs.aclose()

"""A network partition between one process and the API server, for the leader-election tests.

`Partition` is a TCP proxy on loopback in front of the API server; `kubeconfig_through` writes a
copy of a kubeconfig that reaches the server through it (TLS passes through untouched: the
server's certificate names 127.0.0.1, not a port). `cut()` black-holes the traffic: bytes already
on their way and every new connection hang without an answer, as behind a dead switch, so the
process's calls time out instead of failing fast. `heal()` lets traffic flow again.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit, urlunsplit

from devenv.processes import free_ports

_CHUNK = 65536


class Partition:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 443
        (self.port,) = free_ports(1)
        self._open = threading.Event()
        self._open.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="partition-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the partition proxy did not start")
        return self

    def cut(self) -> None:
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._server is not None:
            loop.call_soon_threadsafe(self._server.close)
            loop.call_soon_threadsafe(loop.stop)
        self._open.set()
        self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        self._server = loop.run_until_complete(asyncio.start_server(self._connect, "127.0.0.1", self.port))
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _connect(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        await self._passable()
        try:
            server_r, server_w = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_CHUNK):
                await self._passable()
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def _passable(self) -> None:
        while not self._open.is_set():
            await asyncio.sleep(0.05)


def kubeconfig_through(kubeconfig: Path, partition: Partition, path: Path) -> Path:
    """A copy of `kubeconfig` (JSON, as `devenv.kubeconfigs` writes them) whose server is `partition`."""
    config = json.loads(kubeconfig.read_text())
    for cluster in config["clusters"]:
        server = urlsplit(cluster["cluster"]["server"])
        cluster["cluster"]["server"] = urlunsplit(server._replace(netloc=f"127.0.0.1:{partition.port}"))
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path

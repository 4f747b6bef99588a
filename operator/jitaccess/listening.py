"""Where the operator's servers listen: the admission webhooks, `/metrics`, the Slack interactivity
endpoint and kopf's `/healthz` all listen on one address, `JITACCESS_BIND_ADDRESS` (the chart's
`bindAddress`).

Empty, the default, is every address of the pod, IPv4 and IPv6 alike: the kubelet probes a pod, and
the API server and Prometheus call it, at its pod IP, an IPv6 address on an IPv6-only cluster (EKS in
IPv6 mode) and an IPv4 address elsewhere, and a server on `0.0.0.0` alone is out of reach of the
first (the probes fail, the Pod restarts over and over, and the webhooks, which fail closed, refuse
every write). An address given listens there alone: `0.0.0.0` every IPv4 address, `::` every IPv6
address, `127.0.0.1` this host only.

- `host`, `start_site`: the host aiohttp binds (None for every address: asyncio opens one socket per
  family).
- `url_host`: an address as a URL names it (kopf's `/healthz` listens where the URL of `--liveness`
  says: `jitaccess.main.liveness_endpoint`).
- `WSGIServer`: the `/metrics` server, one socket in its own thread, which takes both families.
"""

from __future__ import annotations

import ipaddress
import socket
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler
from wsgiref.simple_server import WSGIServer as _WSGIServer
from wsgiref.types import WSGIApplication

from aiohttp import web

#: Every address of every family the host has.
EVERYWHERE = ""


def host(address: str) -> str | None:
    """What asyncio binds for `address`: None, every address of each family, for `EVERYWHERE`."""
    return address or None


def described(address: str, port: int) -> str:
    """`address` and `port` for a log line."""
    if not address:
        return f"every address (IPv4 and IPv6), port {port}"
    return f"{url_host(address)}:{port}"


def url_host(address: str) -> str:
    """`address` as the host of a URL: an IPv6 address in brackets."""
    return f"[{address}]" if ":" in address else address


async def start_site(runner: web.AppRunner, address: str, port: int, **kwargs: Any) -> web.TCPSite:
    """An aiohttp site of `runner` listening on `address` and `port`, started."""
    site = web.TCPSite(runner, host(address), port, **kwargs)
    await site.start()
    return site


class _Quiet(WSGIRequestHandler):
    """No line per scrape on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class WSGIServer(ThreadingMixIn, _WSGIServer):
    """A threaded WSGI server on one socket: for `EVERYWHERE`, an IPv6 socket that takes IPv4
    connections too (dual-stack), or IPv4 alone where the kernel has no IPv6; for `::`, IPv6 alone
    (as asyncio binds it)."""

    daemon_threads = True

    def __init__(self, address: str, port: int, app: WSGIApplication) -> None:
        self._dual_stack = not address and socket.has_dualstack_ipv6()
        if self._dual_stack:
            self.address_family, where = socket.AF_INET6, "::"
        elif address and ipaddress.ip_address(address).version == 6:
            self.address_family, where = socket.AF_INET6, address
        else:
            self.address_family, where = socket.AF_INET, address or "0.0.0.0"
        super().__init__((where, port), _Quiet)
        self.set_app(app)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if self._dual_stack else 1)
        super().server_bind()

"""The node's network: a bridge for the Pods, DNS on it, and the routes a cluster would have.

There is no kube-proxy. What the Pods and the API server need instead:

* Pods reach the API server at the ``kubernetes`` Service's IP (``KUBERNETES_SERVICE_HOST``) and by
  its name ``kubernetes.default.svc`` (kopf's in-cluster login): dnsmasq on the bridge answers the
  name with `KUBERNETES_SERVICE_IP`, and a DNAT rule sends that IP's port 443 to the API server's
  loopback port (``route_localnet`` on the bridge only: loopback itself is untouched).
* Pods reach any other loopback service of the host (the Identity Center emulator) at the bridge's
  address, port by port (`NodeNetwork.expose`).
* The API server reaches the webhook and metrics Services without ClusterIP routing: it runs with
  ``--enable-aggregator-routing``, so it calls an endpoint (a Pod IP, routed by the bridge).

Everything lives in one bridge and one nat chain of its own, removed by `NodeNetwork.remove` (and
at `NodeNetwork.create`, when a killed run left them behind).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import subprocess
from pathlib import Path
from typing import Final

from devenv.processes import ChildProcess

log = logging.getLogger(__name__)

BRIDGE: Final = "jitaccess0"
POD_SUBNET: Final = ipaddress.IPv4Network("10.244.217.0/24")
#: The bridge's address: the Pods' gateway, DNS server and way to the host.
GATEWAY: Final = str(POD_SUBNET.network_address + 1)
#: The ``kubernetes`` Service's ClusterIP: the first of the API server's service range (devenv.controlplane).
KUBERNETES_SERVICE_IP: Final = "10.0.0.1"
_CHAIN: Final = "JITACCESS-NODE"
_JUMP: Final = ("PREROUTING", "-i", BRIDGE, "-j", _CHAIN)
_KUBERNETES_NAMES: Final = (
    "kubernetes.default.svc.cluster.local",
    "kubernetes.default.svc",
    "kubernetes.default",
    "kubernetes",
)


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _nat(*rule: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run("iptables", "-w", "-t", "nat", *rule, check=check)


class NodeNetwork:
    """The bridge, its DNS server and the nat chain; `create`, `expose`, `remove`."""

    def __init__(self, workdir: Path, api_port: int) -> None:
        self._workdir = workdir
        self._api_port = api_port
        self._dns: ChildProcess | None = None

    def create(self) -> None:
        self.remove()
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{GATEWAY}/{POD_SUBNET.prefixlen}", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        # Only packets that arrive on the bridge may be routed to 127.0.0.1 (after DNAT).
        Path(f"/proc/sys/net/ipv4/conf/{BRIDGE}/route_localnet").write_text("1\n")
        _nat("-N", _CHAIN)
        _nat("-I", *_JUMP)
        _nat(
            "-A", _CHAIN, "-d", KUBERNETES_SERVICE_IP, "-p", "tcp", "--dport", "443",
            "-j", "DNAT", "--to-destination", f"127.0.0.1:{self._api_port}",
        )  # fmt: skip
        self._dns = ChildProcess(
            "dnsmasq",
            [
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                f"--listen-address={GATEWAY}",
                f"--pid-file={self._workdir / 'dnsmasq.pid'}",
                "--user=root",
                f"--host-record={','.join(_KUBERNETES_NAMES)},{KUBERNETES_SERVICE_IP}",
                # Every other name is unknown at once, so the resolver's search list moves on.
                "--address=/#/",
            ],
            self._workdir / "dnsmasq.log",
        )
        log.info("node network: bridge %s at %s, DNS and the kubernetes Service routed", BRIDGE, GATEWAY)

    def expose(self, port: int) -> str:
        """Make the host's loopback ``port`` reachable from Pods; the ``host:port`` they use."""
        _nat(
            "-A", _CHAIN, "-d", GATEWAY, "-p", "tcp", "--dport", str(port),
            "-j", "DNAT", "--to-destination", f"127.0.0.1:{port}",
        )  # fmt: skip
        return f"{GATEWAY}:{port}"

    def remove(self) -> None:
        """Stop DNS, delete the chain and the bridge (its sysctl goes with it); no error if absent."""
        if self._dns is not None:
            self._dns.stop()
            self._dns = None
        while _nat("-D", *_JUMP, check=False).returncode == 0:
            pass
        _nat("-F", _CHAIN, check=False)
        _nat("-X", _CHAIN, check=False)
        with contextlib.suppress(RuntimeError):
            if _run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
                _run("ip", "link", "delete", BRIDGE)

    def check_dns(self) -> None:
        """Raise if dnsmasq has exited (it logs why: e.g. the address is taken)."""
        if self._dns is not None and not self._dns.running():
            raise RuntimeError(f"dnsmasq exited:\n{self._dns.tail()}")

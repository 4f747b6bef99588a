"""A node for the local control plane: images run as Pods that the API server calls.

`Node` adds to a running `devenv.controlplane.ControlPlane` (``ControlPlane(with_node=True)``)
what a cluster's node has: containerd (with runc and a local pause image), the kubelet and
kube-scheduler (the node multi-call binary, built by ``tests/node/build.sh``), a bridge network
with DNS and the routes kube-proxy would make (`devenv.node_network`). Images built here are
imported into containerd with `Node.load_image`; Pods reach a loopback port of the host at the
address `Node.expose` returns.

Root only; the host must have cgroups and the packages ``tests/node/packages.sh`` installs (it is
run, idempotently, by `Node.start`). `NodeUnavailable` names a missing precondition. One node per
machine (a lock): its bridge and routes have fixed names. `Node.stop` removes everything it made:
Pods (deleted through the API first, so the kubelet tears their network down), processes, mounts,
cgroups, iptables chains, the bridge and the kernel settings the kubelet changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import logging
import os
import shutil
import signal
import ssl
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Self

from devenv.node_config import CGROUP_ROOT, PAUSE_IMAGE, cni_config, containerd_config, kubelet_config
from devenv.node_network import GATEWAY, NodeNetwork
from devenv.paths import REPO
from devenv.processes import ChildProcess, ProcessError, built_binary, free_port, tail, wait_for

__all__ = [
    "CONTROLLERS",
    "NODE_NAME",
    "Node",
    "NodeUnavailable",
    "apiserver_flags",
    "check_preconditions",
    "host_unsuitable",
]

log = logging.getLogger(__name__)

NODE_NAME: Final = "jitaccess-node"
BINARY_ENV: Final = "JITACCESS_NODE_BIN"
NODE_BUILD: Final = REPO / "tests" / "node" / "build.sh"
PACKAGES_SCRIPT: Final = REPO / "tests" / "node" / "packages.sh"
#: What the controller-manager must run besides the control plane's own controllers for Pods to
#: exist: Deployments make ReplicaSets make Pods, the node loses its not-ready taint, Services get
#: endpoints (which the API server calls, `devenv.node_network`), disruption budgets a status.
CONTROLLERS: Final = (
    "deployment-controller",
    "replicaset-controller",
    "node-lifecycle-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "disruption-controller",
)
_COMMANDS: Final = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "podman", "dnsmasq", "iptables", "ip")
_CNI_PLUGINS: Final = ("bridge", "host-local", "loopback")
_CATATONIT: Final = Path("/usr/bin/catatonit")
_CGROUP_CONTROLLERS: Final = ("cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer")
#: Kernel settings the kubelet sets at start (protectKernelDefaults: false): restored at stop.
_KUBELET_SYSCTLS: Final = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
#: Where the kubelet makes iptables chains of its own (KUBE-FIREWALL, KUBE-IPTABLES-HINT, its canaries).
_IPTABLES: Final = tuple(
    (command, table) for command in ("iptables", "ip6tables") for table in ("mangle", "nat", "filter")
)
_LOCK_FILE: Final = Path("/run/lock/jitaccess-node.lock")
#: containerd's socket, by a name that tells this node's shims from any other containerd's.
_SOCKET_NAME: Final = "jitaccess-node-containerd.sock"
_LOCK_TIMEOUT: Final = 1800.0
_READY_TIMEOUT: Final = 120.0
_DRAIN_TIMEOUT: Final = 60.0


class NodeUnavailable(RuntimeError):
    """A precondition of the node is missing on this machine; the message names it."""


def apiserver_flags(client_cert: Path, client_key: Path) -> list[str]:
    """The API server's flags for a node: call Services' endpoints (no kube-proxy), reach the kubelet."""
    return [
        "--enable-aggregator-routing=true",
        f"--kubelet-client-certificate={client_cert}",
        f"--kubelet-client-key={client_key}",
        "--kubelet-preferred-address-types=InternalIP",
    ]


def host_unsuitable() -> str | None:
    """Why no node can run on this machine at all (not root, cgroups missing), or None."""
    if os.geteuid() != 0:
        return "the node needs root (containerd, kubelet, a bridge and iptables rules)"
    missing = [c for c in _CGROUP_CONTROLLERS if not _cgroup_controller(c)]
    if missing:
        return f"cgroup controllers not mounted under /sys/fs/cgroup: {', '.join(missing)}"
    return None


def check_preconditions() -> None:
    """Raise `NodeUnavailable` naming the first missing precondition; installs the packages first."""
    reason = host_unsuitable()
    if reason:
        raise NodeUnavailable(reason)
    result = subprocess.run(["bash", str(PACKAGES_SCRIPT)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NodeUnavailable(f"{PACKAGES_SCRIPT} failed:\n{tail(result.stderr)}")
    for command in _COMMANDS:
        if shutil.which(command) is None:
            raise NodeUnavailable(f"command {command!r} not found (tests/node/packages.sh installs it)")
    for plugin in _CNI_PLUGINS:
        if not (Path("/usr/lib/cni") / plugin).exists():
            raise NodeUnavailable(f"CNI plugin /usr/lib/cni/{plugin} missing (package containernetworking-plugins)")
    if not _CATATONIT.exists():
        raise NodeUnavailable(f"{_CATATONIT} missing (package catatonit): the Pods' pause image")


def _cgroup_controller(name: str) -> bool:
    if Path("/sys/fs/cgroup", name).is_dir():
        return True  # cgroup v1 (or hybrid)
    controllers = Path("/sys/fs/cgroup/cgroup.controllers")
    return controllers.exists() and (name in controllers.read_text().split() or name == "cpuacct")


def _cgroup_dirs() -> list[Path]:
    """The node's cgroup root in every hierarchy (v1 controllers, or the v2 tree)."""
    base = Path("/sys/fs/cgroup")
    roots = [base] if (base / "cgroup.controllers").exists() else [p for p in base.iterdir() if p.is_dir()]
    return [root / CGROUP_ROOT.lstrip("/") for root in roots if (root / CGROUP_ROOT.lstrip("/")).is_dir()]


class _Api:
    """JSON over HTTPS to the API server with a client certificate (no kubectl fork)."""

    def __init__(self, server_url: str, ca_file: Path, cert: Path, key: Path) -> None:
        self._port = int(server_url.rsplit(":", 1)[1])
        self._context = ssl.create_default_context(cafile=str(ca_file))
        self._context.load_cert_chain(str(cert), str(key))

    def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        conn = http.client.HTTPSConnection("127.0.0.1", self._port, context=self._context, timeout=10)
        try:
            data = None if body is None else json.dumps(body)
            conn.request(method, path, body=data, headers={"Content-Type": content_type})
            response = conn.getresponse()
            payload = response.read()
            if response.status == 404:
                return None
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
            return json.loads(payload)
        finally:
            conn.close()


class Node:
    """containerd, kubelet, kube-scheduler and the network of one node; see the module doc."""

    def __init__(
        self,
        workdir: Path,
        *,
        server_url: str,
        ca_file: Path,
        admin_kubeconfig: Path,
        admin_cert: Path,
        admin_key: Path,
    ) -> None:
        self.workdir = workdir
        self._ca_file = ca_file
        self._kubeconfig = admin_kubeconfig
        self._api = _Api(server_url, ca_file, admin_cert, admin_key)
        self._network = NodeNetwork(workdir, int(server_url.rsplit(":", 1)[1]))
        self._socket = workdir / "containerd" / _SOCKET_NAME
        self._processes: list[ChildProcess] = []
        self._sysctls: dict[str, str] = {}
        self._kube_chains: set[tuple[str, str, str]] = set()
        self._lock: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        check_preconditions()
        binary = built_binary(BINARY_ENV, NODE_BUILD, NodeUnavailable)
        self._acquire_lock()
        began = time.monotonic()
        try:
            self._clean_stale()
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._sysctls = {name: Path("/proc/sys", name).read_text() for name in _KUBELET_SYSCTLS}
            self._kube_chains = _kube_chains()
            self._network.create()
            _make_cgroup_root()
            self._start_containerd()
            self.load_image(self._pause_image())
            self._start_kubelet(binary)
            self._spawn(
                binary,
                "kube-scheduler",
                [f"--kubeconfig={self._kubeconfig}", "--leader-elect=false", "--secure-port=0"],
            )
            wait_for(self._ready, f"node {NODE_NAME} to be Ready", self._processes, _READY_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        log.info("node %s ready after %.1f s (workdir %s)", NODE_NAME, time.monotonic() - began, self.workdir)
        return self

    def stop(self) -> None:
        """Delete the Pods (the kubelet tears down their network), then stop and remove everything."""
        if self._lock is None:
            return
        try:
            self._drain()
        finally:
            for process in reversed(self._processes):
                process.stop()
            self._processes = []
            self._kill_leftovers()
            self._network.remove()
            self._restore_host()
            os.close(self._lock)
            self._lock = None

    # -- what tests use ----------------------------------------------------------------------

    def load_image(self, image: str) -> None:
        """Import a podman image into the node's containerd (as the same name)."""
        began = time.monotonic()
        save = subprocess.Popen(
            ["podman", "save", "--format", "docker-archive", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        imported = subprocess.run(
            ["ctr", "--address", str(self._socket), "--namespace", "k8s.io", "images", "import", "-"],
            stdin=save.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        assert save.stdout is not None
        save.stdout.close()
        _, save_err = save.communicate()
        if save.returncode != 0 or imported.returncode != 0:
            raise RuntimeError(f"importing {image} failed: {save_err.decode(errors='replace')}{imported.stderr}")
        log.info("imported %s into the node in %.1f s", image, time.monotonic() - began)

    def expose(self, port: int) -> str:
        """The ``host:port`` at which Pods reach the host's loopback ``port``."""
        return self._network.expose(port)

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self, binary: Path | str, name: str, argv: Sequence[str]) -> ChildProcess:
        prefix = [str(binary), name] if str(binary) != name else [name]
        process = ChildProcess(name, [*prefix, *argv], self.workdir / f"{name}.log")
        self._processes.append(process)
        return process

    def _start_containerd(self) -> None:
        root = self.workdir / "containerd"
        cni_dir = self.workdir / "cni"
        cni_dir.mkdir(parents=True)
        (cni_dir / "10-jitaccess.conflist").write_text(cni_config(self.workdir / "ipam"))
        config = root / "config.toml"
        root.mkdir(parents=True, exist_ok=True)
        config.write_text(containerd_config(root, self._socket, cni_dir))
        process = self._spawn("containerd", "containerd", ["--config", str(config)])
        ctr = ["ctr", "--address", str(self._socket), "version"]
        wait_for(
            lambda: subprocess.run(ctr, capture_output=True, check=False).returncode == 0,
            "containerd to answer",
            [process],
            _READY_TIMEOUT,
        )

    def _pause_image(self) -> str:
        """The Pods' sandbox image: a static init that only waits (podman, from catatonit)."""
        exists = subprocess.run(["podman", "image", "exists", PAUSE_IMAGE], check=False)
        if exists.returncode != 0:
            with tempfile.TemporaryDirectory() as tmp:
                archive = Path(tmp) / "pause.tar"
                with tarfile.open(archive, "w") as tar:
                    tar.add(_CATATONIT, arcname="pause")
                subprocess.run(
                    [
                        "podman",
                        "import",
                        "--quiet",
                        "--change",
                        'ENTRYPOINT ["/pause", "-P"]',
                        str(archive),
                        PAUSE_IMAGE,
                    ],
                    capture_output=True,
                    check=True,
                )
        return PAUSE_IMAGE

    def _start_kubelet(self, binary: Path) -> None:
        kubelet_dir = self.workdir / "kubelet"
        kubelet_dir.mkdir()
        resolv_conf = self.workdir / "resolv.conf"
        resolv_conf.write_text("")
        config = self.workdir / "kubelet.json"
        config.write_text(
            kubelet_config(
                port=free_port(),
                ca_file=self._ca_file,
                socket=self._socket,
                resolv_conf=resolv_conf,
                pod_logs=self.workdir / "pod-logs",
            )
        )
        self._spawn(
            binary,
            "kubelet",
            [
                f"--config={config}",
                f"--kubeconfig={self._kubeconfig}",
                f"--root-dir={kubelet_dir}",
                f"--cert-dir={self.workdir / 'kubelet-pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={GATEWAY}",
            ],
        )

    def _ready(self) -> bool:
        self._network.check_dns()
        node = self._api.call("GET", f"/api/v1/nodes/{NODE_NAME}")
        conditions = (node or {}).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _drain(self) -> None:
        """Cordon the node and delete its Pods; wait until containerd runs no task."""
        if not any(p.name == "kubelet" and p.running() for p in self._processes):
            return
        try:
            self._api.call(
                "PATCH",
                f"/api/v1/nodes/{NODE_NAME}",
                {"spec": {"unschedulable": True}},
                "application/strategic-merge-patch+json",
            )
            pods = self._api.call("GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE_NAME}") or {}
            for pod in pods.get("items", []):
                meta = pod["metadata"]
                self._api.call(
                    "DELETE",
                    f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                    {"gracePeriodSeconds": 1},
                )
            tasks = ["ctr", "--address", str(self._socket), "--namespace", "k8s.io", "tasks", "ls", "--quiet"]
            wait_for(
                lambda: not subprocess.run(tasks, capture_output=True, text=True, check=False).stdout.strip(),
                "the node's Pods to stop",
                [],
                _DRAIN_TIMEOUT,
            )
        except (OSError, RuntimeError, ProcessError, http.client.HTTPException) as error:
            log.warning("could not drain node %s (%s); killing its containers", NODE_NAME, error)

    def _kill_leftovers(self) -> None:
        """Kill shims and Pod processes that outlived containerd, unmount and remove what they used.

        Any node's: only one runs at a time (the lock), so what another left behind is stale.
        """
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                if b"containerd-shim" in argv[0] and any(a.endswith(_SOCKET_NAME.encode()) for a in argv):
                    os.kill(int(proc.name), signal.SIGKILL)
        for cgroup in _cgroup_dirs():
            for procs in cgroup.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    for pid in procs.read_text().split():
                        os.kill(int(pid), signal.SIGKILL)
        _unmount_under(self.workdir)
        for stale in Path(tempfile.gettempdir()).glob("jitaccess-controlplane-*/node"):
            _unmount_under(stale)
        deadline = time.monotonic() + 10
        for cgroup in _cgroup_dirs():
            for directory in [*sorted(cgroup.rglob("*"), key=lambda p: len(p.parts), reverse=True), cgroup]:
                while directory.is_dir():
                    try:
                        directory.rmdir()
                    except OSError:
                        if time.monotonic() > deadline:
                            log.warning("cgroup %s still busy", directory)
                            break
                        time.sleep(0.1)

    def _restore_host(self) -> None:
        for name, value in self._sysctls.items():
            path = Path("/proc/sys", name)
            with contextlib.suppress(OSError):
                if path.read_text() != value:
                    path.write_text(value)
        for command, table, chain in _kube_chains() - self._kube_chains:
            rules = subprocess.run([command, "-w", "-t", table, "-S"], capture_output=True, text=True, check=False)
            for rule in rules.stdout.splitlines():
                if rule.startswith("-A ") and rule.endswith(f"-j {chain}"):
                    subprocess.run(
                        [command, "-w", "-t", table, "-D", *rule.split()[1:]], capture_output=True, check=False
                    )
            for flag in ("-F", "-X"):
                subprocess.run([command, "-w", "-t", table, flag, chain], capture_output=True, check=False)

    def _clean_stale(self) -> None:
        """What a killed run left: its network, its cgroups, its Pods' processes (we hold the lock)."""
        self._network.remove()
        for cgroup in _cgroup_dirs():
            log.warning("removing cgroup %s left by an earlier node", cgroup)
        self._kill_leftovers()

    def _acquire_lock(self) -> None:
        _LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + _LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise NodeUnavailable(f"another node holds {_LOCK_FILE}") from None
                time.sleep(1)
        self._lock = fd


def _make_cgroup_root() -> None:
    """The kubelet's cgroup root, in every hierarchy (it must exist; the kubelet makes what is under it)."""
    base = Path("/sys/fs/cgroup")
    roots = [base] if (base / "cgroup.controllers").exists() else [p for p in base.iterdir() if p.is_dir()]
    for root in roots:
        directory = root / CGROUP_ROOT.lstrip("/")
        directory.mkdir(exist_ok=True)
        # A v1 cpuset starts with no CPUs and no memory nodes: nothing could run in it.
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (root / name).exists() and not (directory / name).read_text().strip():
                (directory / name).write_text((root / name).read_text())


def _kube_chains() -> set[tuple[str, str, str]]:
    """The kubelet's iptables chains (KUBE-*) there are now: (command, table, chain)."""
    chains = set()
    for command, table in _IPTABLES:
        rules = subprocess.run([command, "-w", "-t", table, "-S"], capture_output=True, text=True, check=False)
        chains |= {
            (command, table, line.split()[1]) for line in rules.stdout.splitlines() if line.startswith("-N KUBE-")
        }
    return chains


def _unmount_under(directory: Path) -> None:
    """Lazily unmount every mount point under ``directory``, deepest first."""
    prefix = str(directory.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    points = sorted({m.replace("\\040", " ") for m in mounts if m.startswith(prefix)}, key=len, reverse=True)
    for point in points:
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)

"""A throwaway Kubernetes control plane on loopback, for tests, benchmarks and `make dev`.

`ControlPlane` runs etcd, kube-apiserver and (on request) kube-controller-manager as separate
processes of the project's multi-call binary (built by ``tests/controlplane/build.sh``).
Everything lives in a temp dir: the PKI (`devenv.pki`), a token file with the users in
`TEST_USERS`, one kubeconfig per identity (`devenv.kubeconfigs`; `mint_kubeconfig` makes more,
for any user name and groups, at run time) and each process's log
(`devenv.processes`). Ports are picked free, readiness is awaited on ``/readyz``, and no process
outlives the Python process that started it. ``JITACCESS_KEEP_CONTROLPLANE=1`` keeps the temp dir,
with the logs, after `ControlPlane.stop`.

Typical use::

    with ControlPlane().start(controller_manager=False) as cp:
        cp.kubectl("apply", "-f", "crds/")
        cp.start_controller_manager()   # after the CRDs: its GC reads discovery every 30 s
        cp.kubectl("auth", "whoami", user="alice@example.com")
"""

from __future__ import annotations

import atexit
import http.client
import json
import logging
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Final, Self

from devenv.kubeconfigs import ADMIN_FILE, write_admin, write_client_cert_user, write_token_user, write_users
from devenv.node import CONTROLLERS as NODE_CONTROLLERS
from devenv.node import Node, apiserver_flags
from devenv.paths import CONTROLPLANE_BUILD
from devenv.pki import CA_CERT, ControlPlanePki, issue_client_cert, write_private
from devenv.processes import ChildProcess, built_binary, child_env, free_ports, wait_for

__all__ = ["TEST_USERS", "ControlPlane", "ControlPlaneError", "KubectlError", "mint_kubeconfig"]

log = logging.getLogger(__name__)

BINARY_ENV: Final = "JITACCESS_CONTROLPLANE_BIN"
KEEP_ENV: Final = "JITACCESS_KEEP_CONTROLPLANE"

#: Test identities known to the apiserver's token file: user name -> groups.
#: The apiserver adds ``system:authenticated`` to each of them by itself.
TEST_USERS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "alice@example.com": ("team-payments",),  # payments engineer
        "paula@example.com": ("team-payments",),  # payments tech lead
        "bob@example.com": ("team-ledger",),  # ledger engineer
        "lena@example.com": ("team-ledger",),  # ledger tech lead
        "carol@example.com": ("sre",),  # backup approver
        "mallory@example.com": (),  # outsider, in no team
        "eve@example.com": ("team-payments",),  # payments engineer, not eligible in Identity Center
    }
)

CONTROLLERS: Final = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
)
#: The API server's --service-account-issuer, and so its one audience: a TokenRequest naming none is
#: given it (the chart's ci/slack-values.yaml names it in slack.interactions.tokenAudiences).
SERVICE_ACCOUNT_ISSUER: Final = "https://kubernetes.default.svc.cluster.local"
#: The operator's ServiceAccount (namespace, name) in the local run and the tests: examples/rbac.yaml
#: binds its operator ClusterRole (jitaccess-dev-operator) to it. Dev-only names, not the chart's
#: `jitaccess/jitaccess`: the example's role is wider than the chart's, and applying the example to a
#: cluster with the chart must not widen what the chart's operator may do.
OPERATOR_ACCOUNT: Final = ("jitaccess-dev", "jitaccess-dev")
_READY_TIMEOUT: Final = 120.0
_WORKDIR_PREFIX: Final = "jitaccess-controlplane-"
_PKI_DIR: Final = "pki"
_USERS_DIR: Final = "users"
_MINTED_DIR: Final = "minted"
_OWNER_FILE: Final = "owner.pid"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or reached."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl call failed; unlike its base class, its message carries kubectl's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}"


def find_binary() -> Path:
    """The control-plane binary: ``$JITACCESS_CONTROLPLANE_BIN``, else build.sh's output.

    build.sh is cached by a hash of the Go sources, so calling it costs a few milliseconds once
    built; the first build takes many minutes.
    """
    return built_binary(BINARY_ENV, CONTROLPLANE_BUILD, ControlPlaneError)


def mint_kubeconfig(workdir: Path, user: str, groups: Sequence[str] = ()) -> Path:
    """A kubeconfig for ``user`` in ``groups`` on the control plane whose temp dir is ``workdir``.

    It authenticates by a client certificate from the control plane's own CA, which the API server
    trusts (``--client-ca-file``): any user name and groups, while it runs, with no restart. It is
    written to ``users/minted/``; minting a name again replaces its file. Works from another
    process too (`devenv.mint`).
    """
    pki_dir = workdir / _PKI_DIR
    server = str(json.loads((workdir / ADMIN_FILE).read_text())["clusters"][0]["cluster"]["server"])
    cert, key = issue_client_cert(pki_dir, user, groups)
    ca_pem = (pki_dir / CA_CERT).read_bytes()
    return write_client_cert_user(workdir / _USERS_DIR / _MINTED_DIR, server, ca_pem, user, cert, key)


def _remove_stale_workdirs() -> None:
    """Remove the temp dirs of control planes whose Python process died without cleaning up."""
    for workdir in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        try:
            owner = int((workdir / _OWNER_FILE).read_text())
            os.kill(owner, 0)
        except ProcessLookupError:
            log.info("removing %s, left behind by process %d", workdir, owner)
            shutil.rmtree(workdir, ignore_errors=True)
        except (OSError, ValueError):
            continue  # no owner recorded (kept on purpose), or not ours to judge


_LIVE: set[ControlPlane] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all() -> None:
    with _LIVE_LOCK:
        planes = list(_LIVE)
    for plane in planes:
        plane.stop()


atexit.register(_stop_all)


class _AdminHttp:
    """Minimal HTTPS client with the admin certificate, for readiness probes (no kubectl fork)."""

    def __init__(self, server_url: str, pki: ControlPlanePki) -> None:
        self._port = int(server_url.rsplit(":", 1)[1])
        self._context = ssl.create_default_context(cafile=str(pki.ca_file))
        self._context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))

    def status(self, path: str) -> int:
        """GET ``path``; the HTTP status, or 0 when the server cannot be reached."""
        conn = http.client.HTTPSConnection("127.0.0.1", self._port, context=self._context, timeout=5)
        try:
            conn.request("GET", path)
            return conn.getresponse().status
        except (OSError, http.client.HTTPException):
            return 0
        finally:
            conn.close()


class _Started:
    """What a started control plane has: its files, its address and its processes."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.pki = ControlPlanePki(workdir / _PKI_DIR)
        etcd_port, self.peer_port, api_port = free_ports(3)
        self.etcd_port = etcd_port
        self.server_url = f"https://127.0.0.1:{api_port}"
        self.api_port = api_port
        self.tokens = {name: secrets.token_urlsafe(24) for name in TEST_USERS}
        self.admin_kubeconfig = write_admin(workdir, self.server_url, self.pki)
        self.user_kubeconfigs = write_users(workdir / _USERS_DIR, self.server_url, self.pki, self.tokens)
        self.processes: list[ChildProcess] = []
        self.controller_manager: ChildProcess | None = None
        self.node: Node | None = None

    def write_token_file(self) -> Path:
        lines = []
        for index, (name, groups) in enumerate(TEST_USERS.items()):
            # A fourth column, even empty, would give the user a group named "".
            fields = [self.tokens[name], name, f"uid-{index}"]
            if groups:
                fields.append('"' + ",".join(groups) + '"')
            lines.append(",".join(fields))
        return write_private(self.workdir / "tokens.csv", ("\n".join(lines) + "\n").encode())

    def spawn(self, name: str, argv: list[str]) -> ChildProcess:
        process = ChildProcess(name, [str(self.binary), name, *argv], self.workdir / f"{name}.log")
        self.processes.append(process)
        return process


class ControlPlane:
    """A local etcd + kube-apiserver (+ kube-controller-manager) with test users; see module doc.

    Its attributes are available once `start` has returned.
    """

    def __init__(self, *, with_node: bool = False, profiling: bool = False) -> None:
        """``with_node``: also a node (`devenv.node`) that runs Pods: root only, see that module.
        ``profiling``: the API server serves Go's CPU profiler at ``/debug/pprof`` (to the admin;
        the benchmarks' ``--profile``)."""
        self._with_node = with_node
        self._profiling = profiling
        self._keep_workdir = os.environ.get(KEEP_ENV, "") not in ("", "0")
        self._started: _Started | None = None
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, controller_manager: bool = True) -> Self:
        """Start etcd and kube-apiserver, wait for ``/readyz``, optionally the controller-manager.

        Pass ``controller_manager=False`` when CRDs are still to be installed, and call
        `start_controller_manager` afterwards.
        """
        with self._lock:
            if self._started is not None:
                raise ControlPlaneError("this ControlPlane has already been started")
            began = time.monotonic()
            binary = find_binary()
            _remove_stale_workdirs()
            workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
            (workdir / _OWNER_FILE).write_text(f"{os.getpid()}\n")
            started = self._started = _Started(binary, workdir)
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            self._start(started)
            log.info(
                "control plane ready at %s after %.1f s (workdir %s)",
                started.server_url,
                time.monotonic() - began,
                workdir,
            )
            if controller_manager:
                self.start_controller_manager()
            if self._with_node:
                pki = started.pki
                started.node = Node(
                    workdir / "node",
                    server_url=started.server_url,
                    ca_file=pki.ca_file,
                    admin_kubeconfig=started.admin_kubeconfig,
                    admin_cert=pki.admin_cert,
                    admin_key=pki.admin_key,
                ).start()
        except BaseException:
            # The logs the error points at stay until a later process finds this dir stale.
            self._stop(remove_workdir=False)
            log.warning("control plane failed to start; its logs are in %s", workdir)
            raise
        return self

    def _start(self, started: _Started) -> None:
        pki, workdir = started.pki, started.workdir
        token_file = started.write_token_file()
        etcd = started.spawn(
            "etcd",
            [
                f"--data-dir={workdir / 'etcd'}",
                f"--client-port={started.etcd_port}",
                f"--peer-port={started.peer_port}",
            ],
        )
        wait_for(lambda: "etcd: ready" in etcd.log_text(), "etcd to be ready", started.processes, _READY_TIMEOUT)
        started.spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{started.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={started.api_port}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--endpoint-reconciler-type=none",
                "--authorization-mode=RBAC",
                f"--client-ca-file={pki.ca_file}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--token-auth-file={token_file}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki.sa_public}",
                f"--service-account-signing-key-file={pki.sa_private}",
                f"--cert-dir={workdir / 'apiserver-certs'}",
                "--allow-privileged=true",
                f"--profiling={str(self._profiling).lower()}",
                *(apiserver_flags(pki.admin_cert, pki.admin_key) if self._with_node else []),
            ],
        )
        probe = _AdminHttp(started.server_url, pki)
        wait_for(lambda: probe.status("/readyz") == 200, "kube-apiserver /readyz", started.processes, _READY_TIMEOUT)

    def start_controller_manager(self) -> None:
        """Start kube-controller-manager (idempotent) and wait until it has done some work.

        Its garbage collector learns resource types from discovery only every 30 s, so install
        CRDs first when their objects must be garbage-collected promptly.
        """
        with self._lock:
            started = self._require()
            if started.controller_manager is not None and started.controller_manager.running():
                return
            pki = started.pki
            started.controller_manager = manager = started.spawn(
                "kube-controller-manager",
                [
                    f"--kubeconfig={started.admin_kubeconfig}",
                    f"--controllers={','.join(CONTROLLERS + (NODE_CONTROLLERS if self._with_node else ()))}",
                    f"--service-account-private-key-file={pki.sa_private}",
                    f"--root-ca-file={pki.ca_file}",
                    "--use-service-account-credentials=false",
                    "--leader-elect=false",
                    "--secure-port=0",
                    "--kube-api-qps=100",
                    "--kube-api-burst=200",
                    "--profiling=false",
                ],
            )
        probe = _AdminHttp(started.server_url, pki)
        # The 'default' ServiceAccount of namespace 'default' appears once the serviceaccount
        # controller has synced: proof the manager is working.
        wait_for(
            lambda: probe.status("/api/v1/namespaces/default/serviceaccounts/default") == 200,
            "kube-controller-manager to create the default ServiceAccount",
            [manager],
            _READY_TIMEOUT,
        )
        log.info("kube-controller-manager running")

    def stop(self) -> None:
        """Stop every process (newest first: SIGTERM, then SIGKILL) and remove the temp dir."""
        self._stop(remove_workdir=not self._keep_workdir)

    def _stop(self, *, remove_workdir: bool) -> None:
        with self._lock:
            started = self._started
            processes, workdir = (started.processes, started.workdir) if started else ([], None)
            node = started.node if started else None
            if started is not None:
                started.processes, started.controller_manager, started.node = [], None, None
        if node is not None:
            node.stop()  # while the API server runs: its Pods are deleted through it
        for process in reversed(processes):
            process.stop()
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if workdir is not None and workdir.exists():
            if remove_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            elif self._keep_workdir:
                # Without an owner, _remove_stale_workdirs() leaves it alone.
                (workdir / _OWNER_FILE).unlink(missing_ok=True)
                log.info("kept control-plane workdir %s", workdir)

    def __enter__(self) -> Self:
        if self._started is None:
            self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- what tests use ----------------------------------------------------------------------

    @property
    def node(self) -> Node:
        """The node of a ``ControlPlane(with_node=True)``."""
        started = self._require()
        if started.node is None:
            raise ControlPlaneError("this control plane has no node: ControlPlane(with_node=True)")
        return started.node

    @property
    def binary(self) -> Path:
        return self._require().binary

    @property
    def workdir(self) -> Path:
        return self._require().workdir

    @property
    def server_url(self) -> str:
        return self._require().server_url

    @property
    def ca_file(self) -> Path:
        return self._require().pki.ca_file

    @property
    def admin_kubeconfig(self) -> Path:
        return self._require().admin_kubeconfig

    @property
    def users_dir(self) -> Path:
        """The folder of the test users' kubeconfigs."""
        return self._require().workdir / _USERS_DIR

    def mint_kubeconfig(self, user: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig for any ``user`` in ``groups``, by client certificate (`mint_kubeconfig`)."""
        return mint_kubeconfig(self._require().workdir, user, groups)

    def service_account_kubeconfig(self, namespace: str, account: str, directory: Path, hours: int = 1) -> Path:
        """A kubeconfig in ``directory`` acting as ServiceAccount ``namespace/account`` (which must
        exist), as a Pod of it would: a token from the TokenRequest API, valid ``hours``."""
        token = self.kubectl("create", "token", account, "-n", namespace, f"--duration={hours}h").stdout.strip()
        user = f"system:serviceaccount:{namespace}:{account}"
        return write_token_user(directory, self.server_url, self.ca_file.read_bytes(), user, token)

    def operator_kubeconfig(self, directory: Path, hours: int = 24) -> Path:
        """The operator's credentials as a chart-installed operator has them (a ServiceAccount's
        token): a token of the dev-only ServiceAccount `OPERATOR_ACCOUNT`, created here, which
        examples/rbac.yaml binds the operator's ClusterRole to (applying that RBAC is the caller's).
        The API server then authorizes each of the operator's requests by that RBAC, and no admin's
        write passes for the operator's."""
        namespace, account = OPERATOR_ACCOUNT
        if self.kubectl("get", "namespace", namespace, check=False).returncode != 0:
            self.kubectl("create", "namespace", namespace)
        if self.kubectl("get", "serviceaccount", account, "-n", namespace, check=False).returncode != 0:
            self.kubectl("create", "serviceaccount", account, "-n", namespace)
        return self.service_account_kubeconfig(namespace, account, directory, hours=hours)

    def user_kubeconfig(self, name: str) -> Path:
        """The kubeconfig authenticating as test user ``name`` (bearer token)."""
        try:
            return self._require().user_kubeconfigs[name]
        except KeyError:
            raise KeyError(f"unknown test user {name!r}; known: {sorted(TEST_USERS)}") from None

    def kubectl(
        self,
        *args: str,
        user: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as admin, or as test user ``user``; raises `KubectlError` if ``check``."""
        cmd = self.kubectl_argv(*args, user=user)
        result = subprocess.run(
            cmd, input=input, capture_output=True, text=True, check=False, timeout=timeout, env=child_env()
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, cmd, result.stdout, result.stderr)
        return result

    def kubectl_argv(self, *args: str, user: str | None = None) -> list[str]:
        """The command line of `kubectl`, for a process of its own (a `--follow`, a long download)."""
        kubeconfig = self.admin_kubeconfig if user is None else self.user_kubeconfig(user)
        return [str(self.binary), "kubectl", "--kubeconfig", str(kubeconfig), *args]

    # -- internals ---------------------------------------------------------------------------

    def _require(self) -> _Started:
        if self._started is None:
            raise ControlPlaneError("start() the control plane first")
        return self._started

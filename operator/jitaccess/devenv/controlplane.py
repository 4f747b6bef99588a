"""Start a throwaway Kubernetes control plane on loopback, or adopt an existing cluster.

`ControlPlane` runs etcd, kube-apiserver and (on request) kube-controller-manager as
separate processes of the project's multi-call binary (built by
``tests/controlplane/build.sh``; see docs TESTENV.md).  Everything lives in a temp dir:
a CA, the apiserver's serving certificate, an admin client certificate
(``O=system:masters``), the service-account key pair, a token file with the users in
`TEST_USERS`, and one kubeconfig per identity.  Ports are picked free, readiness is
awaited on ``/readyz``, each process logs to a file whose tail is shown on failure, and
no process outlives the Python process that started it (process groups, ``atexit``, and
a parent-death signal when `setpriv` is available).

`ExistingCluster` offers the same surface for a cluster you already have (its kubeconfig
path in ``JITACCESS_TEST_KUBECONFIG``).  Test users there are played by impersonation:
``kubectl(user=...)`` adds ``--as``/``--as-group``, and `user_kubeconfig` writes
kubeconfigs carrying ``as``/``as-groups``.  Those two fields are honoured by kubectl and
client-go but silently ignored by the Python ``kubernetes`` client and by kopf, so Python
code acting as a test user against an existing cluster must impersonate explicitly.  The
admin kubeconfig needs the ``impersonate`` verb on users and groups.

Typical use::

    with ControlPlane().start(controller_manager=False) as cp:
        cp.kubectl("apply", "-f", "crds/")
        cp.start_controller_manager()   # after the CRDs: its GC reads discovery every 30 s
        cp.kubectl("auth", "whoami", user="alice@example.com")
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime
import http.client
import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Final, Protocol, Self, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "BINARY_ENV",
    "KUBECONFIG_ENV",
    "TEST_USERS",
    "Cluster",
    "ControlPlane",
    "ControlPlaneError",
    "ExistingCluster",
    "KubectlError",
    "find_binary",
    "from_env",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

REPO_ROOT: Final = Path(__file__).resolve().parents[3]
BUILD_SCRIPT: Final = REPO_ROOT / "tests" / "controlplane" / "build.sh"
BINARY_ENV: Final = "JITACCESS_CONTROLPLANE_BIN"
KUBECONFIG_ENV: Final = "JITACCESS_TEST_KUBECONFIG"

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
_SERVICE_ACCOUNT_ISSUER: Final = "https://kubernetes.default.svc.cluster.local"
_STOP_TIMEOUT: Final = 10.0
_WORKDIR_PREFIX: Final = "jitaccess-controlplane-"
_OWNER_FILE: Final = "owner.pid"
_LOG_TAIL_LINES: Final = 40


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or reached."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl call failed; unlike its base class, its message carries kubectl's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}"


class Cluster(Protocol):
    """What tests need from a cluster, whether started here or already running."""

    @property
    def binary(self) -> Path: ...
    @property
    def admin_kubeconfig(self) -> Path: ...
    @property
    def server_url(self) -> str: ...
    @property
    def ca_file(self) -> Path | None: ...
    @property
    def users(self) -> Mapping[str, tuple[str, ...]]: ...

    def user_kubeconfig(self, name: str) -> Path: ...

    def kubectl(
        self,
        *args: str,
        user: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]: ...

    def start_controller_manager(self) -> None: ...

    def stop(self) -> None: ...


def find_binary() -> Path:
    """Return the control-plane binary: ``$JITACCESS_CONTROLPLANE_BIN``, else build.sh's output.

    build.sh is cached by a hash of the Go sources, so calling it costs a few
    milliseconds once built; the first build takes many minutes.
    """
    configured = os.environ.get(BINARY_ENV)
    if configured:
        path = Path(configured)
        if not os.access(path, os.X_OK):
            raise ControlPlaneError(f"${BINARY_ENV}={configured} is not an executable file")
        return path
    log.info("locating the control-plane binary with %s (first build takes minutes)", BUILD_SCRIPT)
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {result.returncode}:\n{_tail(result.stderr)}")
    path = Path(lines[-1])
    if not os.access(path, os.X_OK):
        raise ControlPlaneError(f"{BUILD_SCRIPT} printed {path}, which is not executable")
    return path


def from_env(*, controller_manager: bool = True) -> Cluster:
    """Adopt the cluster named by ``$JITACCESS_TEST_KUBECONFIG``, else start a `ControlPlane`."""
    existing = os.environ.get(KUBECONFIG_ENV)
    if existing:
        return ExistingCluster(Path(existing))
    return ControlPlane().start(controller_manager=controller_manager)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Webhook calls and readiness probes go to loopback; a proxy from the
    # environment must never see them.
    for key in ("NO_PROXY", "no_proxy"):
        env[key] = ",".join(filter(None, ["127.0.0.1,localhost", env.get(key, "")]))
    env.pop("KUBECONFIG", None)
    return env


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _run_kubectl(
    binary: Path, argv: Sequence[str], *, input: str | None, check: bool, timeout: float
) -> subprocess.CompletedProcess[str]:
    cmd = [str(binary), "kubectl", *argv]
    result = subprocess.run(
        cmd,
        input=input,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=_child_env(),
    )
    if check and result.returncode != 0:
        raise KubectlError(result.returncode, cmd, result.stdout, result.stderr)
    return result


def _free_ports(count: int) -> list[int]:
    # Hold every socket until all are chosen so the kernel never hands out one port twice.
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


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


def _write_private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


class _Pki:
    """The certificates and keys of one control plane, written as PEM files into a directory."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        # Clocks of child processes may lag a little behind ours.
        self._not_before = now - datetime.timedelta(hours=1)
        self._not_after = now + datetime.timedelta(days=365)

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jitaccess-test-ca")])
        ca_cert = (
            self._builder(ca_name, ca_name, ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
        self.ca_file = directory / "ca.crt"
        self.ca_file.write_bytes(self.ca_pem)

        sans: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("10.0.0.1")),  # the kubernetes Service IP
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
            x509.DNSName("kubernetes.default.svc.cluster.local"),
        ]
        self.serving_cert, self.serving_key = self._leaf(
            directory,
            "apiserver",
            ca_cert,
            ca_key,
            "kube-apiserver",
            None,
            ExtendedKeyUsageOID.SERVER_AUTH,
            sans,
        )
        self.admin_cert, self.admin_key = self._leaf(
            directory,
            "admin",
            ca_cert,
            ca_key,
            "admin",
            "system:masters",
            ExtendedKeyUsageOID.CLIENT_AUTH,
            [],
        )

        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_private = _write_private(
            directory / "sa.key",
            sa_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        self.sa_public = directory / "sa.pub"
        self.sa_public.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def _builder(
        self, subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
        )

    def _leaf(
        self,
        directory: Path,
        stem: str,
        ca_cert: x509.Certificate,
        ca_key: ec.EllipticCurvePrivateKey,
        common_name: str,
        organization: str | None,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName],
    ) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        builder = (
            self._builder(x509.Name(attributes), ca_cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        cert_file = directory / f"{stem}.crt"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file = _write_private(
            directory / f"{stem}.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        return cert_file, key_file


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _kubeconfig(server: str, ca_pem: bytes, user_name: str, user: Mapping[str, object]) -> str:
    # JSON is YAML too, and every kubeconfig reader (kubectl, kubernetes, kopf) takes it.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "jitaccess-test",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [{"name": user_name, "user": dict(user)}],
        "contexts": [{"name": "jitaccess-test", "context": {"cluster": "jitaccess-test", "user": user_name}}],
        "current-context": "jitaccess-test",
    }
    return json.dumps(config, indent=2) + "\n"


def _file_name(user: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in user)


class _Process:
    """One child process of the control plane, in its own process group, logging to a file."""

    def __init__(self, name: str, argv: Sequence[str], log_file: Path) -> None:
        self.name = name
        self.log_file = log_file
        prefix: list[str] = []
        # A parent-death signal stops children even when pytest itself is SIGKILLed and
        # atexit never runs.  KILL, not TERM: all parts get it at once, and an apiserver
        # whose etcd is gone takes half a minute to shut down gracefully.  It fires when
        # the forking *thread* ends, so only the main thread (which lives as long as the
        # process) may ask for it.
        setpriv = shutil.which("setpriv")
        if setpriv and threading.current_thread() is threading.main_thread():
            prefix = [setpriv, "--pdeathsig", "KILL", "--"]
        with log_file.open("wb") as out:
            self.popen = subprocess.Popen(
                [*prefix, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                start_new_session=True,
            )
        log.debug("started %s (pid %d), log %s", name, self.popen.pid, log_file)

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self) -> str:
        return _tail(self.log_text())

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        if self.running():
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %.0f s; killing it", self.name, timeout)
        # Kill the group even after a clean exit: nothing it spawned may linger.
        self._signal_group(signal.SIGKILL)
        self.popen.wait()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


_LIVE: set[ControlPlane] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _LIVE_LOCK:
        planes = list(_LIVE)
    for plane in planes:
        plane.stop()


class _AdminHttp:
    """Minimal HTTPS client with the admin certificate, for readiness probes (no kubectl fork)."""

    def __init__(self, port: int, pki: _Pki) -> None:
        self._port = port
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


class ControlPlane:
    """A local etcd + kube-apiserver (+ kube-controller-manager) with test users; see module doc.

    Attributes are available once `start` has returned.  ``startup_seconds`` is the time
    `start` took until the apiserver answered ``/readyz`` (controller-manager excluded).
    Set ``keep_workdir=True`` (or ``JITACCESS_KEEP_CONTROLPLANE=1``) to keep the temp dir,
    with the process logs, after `stop`.
    """

    def __init__(
        self,
        *,
        binary: Path | None = None,
        users: Mapping[str, Sequence[str]] = TEST_USERS,
        ready_timeout: float = 120.0,
        keep_workdir: bool | None = None,
        extra_apiserver_args: Sequence[str] = (),
    ) -> None:
        self._binary = binary
        self._users = {name: tuple(groups) for name, groups in users.items()}
        self._tokens = {name: secrets.token_urlsafe(24) for name in self._users}
        self._ready_timeout = ready_timeout
        self._keep_workdir = (
            keep_workdir
            if keep_workdir is not None
            else os.environ.get("JITACCESS_KEEP_CONTROLPLANE", "") not in ("", "0")
        )
        self._extra_apiserver_args = tuple(extra_apiserver_args)
        self._workdir: Path | None = None
        self._pki: _Pki | None = None
        self._server_url: str | None = None
        self._admin_kubeconfig: Path | None = None
        self._user_kubeconfigs: dict[str, Path] = {}
        self._processes: list[_Process] = []
        self._controller_manager: _Process | None = None
        self._lock = threading.Lock()
        self.startup_seconds: float | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, *, controller_manager: bool = True) -> Self:
        """Start etcd and kube-apiserver, wait for ``/readyz``, optionally the controller-manager.

        Pass ``controller_manager=False`` when CRDs are still to be installed, and call
        `start_controller_manager` afterwards.
        """
        with self._lock:
            if self._workdir is not None:
                raise ControlPlaneError("this ControlPlane has already been started")
            began = time.monotonic()
            binary = self._binary = self._binary or find_binary()
            _remove_stale_workdirs()
            self._workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
            (self._workdir / _OWNER_FILE).write_text(f"{os.getpid()}\n")
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            self._start(binary, self._workdir, began)
            if controller_manager:
                self.start_controller_manager()
        except BaseException:
            # The logs the error points at stay until a later process finds this dir stale.
            self._stop(remove_workdir=False)
            log.warning("control plane failed to start; its logs are in %s", self._workdir)
            raise
        return self

    def _start(self, binary: Path, workdir: Path, began: float) -> None:
        pki = self._pki = _Pki(workdir / "pki")
        etcd_port, peer_port, api_port = _free_ports(3)
        self._server_url = f"https://127.0.0.1:{api_port}"

        token_file = workdir / "tokens.csv"
        lines = []
        for index, (name, groups) in enumerate(self._users.items()):
            # A fourth column, even empty, would give the user a group named "".
            fields = [self._tokens[name], name, f"uid-{index}"]
            if groups:
                fields.append('"' + ",".join(groups) + '"')
            lines.append(",".join(fields))
        _write_private(token_file, ("\n".join(lines) + "\n").encode())
        self._write_kubeconfigs(workdir, pki)

        etcd = self._spawn(
            "etcd",
            [
                str(binary),
                "etcd",
                f"--data-dir={workdir / 'etcd'}",
                f"--client-port={etcd_port}",
                f"--peer-port={peer_port}",
            ],
        )
        self._wait(lambda: "etcd: ready" in etcd.log_text(), "etcd to be ready")

        self._spawn(
            "kube-apiserver",
            [
                str(binary),
                "kube-apiserver",
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--endpoint-reconciler-type=none",
                "--authorization-mode=RBAC",
                f"--client-ca-file={pki.ca_file}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--token-auth-file={token_file}",
                f"--service-account-issuer={_SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki.sa_public}",
                f"--service-account-signing-key-file={pki.sa_private}",
                f"--cert-dir={workdir / 'apiserver-certs'}",
                "--allow-privileged=true",
                "--profiling=false",
                *self._extra_apiserver_args,
            ],
        )
        probe = _AdminHttp(api_port, pki)
        self._wait(lambda: probe.status("/readyz") == 200, "kube-apiserver /readyz")
        self.startup_seconds = time.monotonic() - began
        log.info(
            "control plane ready at %s after %.1f s (workdir %s)",
            self._server_url,
            self.startup_seconds,
            workdir,
        )

    def start_controller_manager(self) -> None:
        """Start kube-controller-manager (idempotent) and wait until it has done some work.

        Its garbage collector learns resource types from discovery only every 30 s, so
        install CRDs first when their objects must be garbage-collected promptly.
        """
        with self._lock:
            if self._controller_manager is not None and self._controller_manager.running():
                return
            pki, workdir, kubeconfig = self._pki, self._workdir, self._admin_kubeconfig
            if pki is None or workdir is None or kubeconfig is None:
                raise ControlPlaneError("start() the control plane first")
            self._controller_manager = manager = self._spawn(
                "kube-controller-manager",
                [
                    str(self.binary),
                    "kube-controller-manager",
                    f"--kubeconfig={kubeconfig}",
                    f"--controllers={','.join(CONTROLLERS)}",
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
        probe = _AdminHttp(int(self.server_url.rsplit(":", 1)[1]), pki)
        # The 'default' ServiceAccount of namespace 'default' appears once the
        # serviceaccount controller has synced: proof the manager is working.
        self._wait(
            lambda: probe.status("/api/v1/namespaces/default/serviceaccounts/default") == 200,
            "kube-controller-manager to create the default ServiceAccount",
            only=[manager],
        )
        log.info("kube-controller-manager running")

    def stop_controller_manager(self) -> None:
        """Stop kube-controller-manager, e.g. to restart it after installing more CRDs."""
        with self._lock:
            manager, self._controller_manager = self._controller_manager, None
        if manager is not None:
            manager.stop()
            with self._lock:
                if manager in self._processes:
                    self._processes.remove(manager)

    def stop(self) -> None:
        """Stop every process (newest first: SIGTERM, then SIGKILL) and remove the temp dir."""
        self._stop(remove_workdir=not self._keep_workdir)

    def _stop(self, *, remove_workdir: bool) -> None:
        with self._lock:
            processes, self._processes = self._processes, []
            self._controller_manager = None
            workdir = self._workdir
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
        if self._workdir is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @classmethod
    def existing(cls, kubeconfig: Path) -> ExistingCluster:
        """Use a running cluster instead of starting one; test users via impersonation."""
        return ExistingCluster(kubeconfig)

    # -- what tests use --------------------------------------------------------------------

    @property
    def binary(self) -> Path:
        if self._binary is None:
            raise ControlPlaneError("start() the control plane first")
        return self._binary

    @property
    def workdir(self) -> Path:
        return self._require(self._workdir)

    @property
    def server_url(self) -> str:
        return self._require(self._server_url)

    @property
    def ca_file(self) -> Path:
        return self._require(self._pki).ca_file

    @property
    def admin_kubeconfig(self) -> Path:
        return self._require(self._admin_kubeconfig)

    @property
    def users(self) -> Mapping[str, tuple[str, ...]]:
        return MappingProxyType(self._users)

    def user_kubeconfig(self, name: str) -> Path:
        """The kubeconfig authenticating as test user ``name`` (bearer token)."""
        self._require(self._admin_kubeconfig)
        try:
            return self._user_kubeconfigs[name]
        except KeyError:
            raise KeyError(f"unknown test user {name!r}; known: {sorted(self._users)}") from None

    def user_token(self, name: str) -> str:
        """The bearer token of test user ``name``."""
        return self._tokens[name]

    def log_file(self, name: str) -> Path:
        """The log file of process ``name`` (etcd, kube-apiserver, kube-controller-manager)."""
        return self.workdir / f"{name}.log"

    def kubectl(
        self,
        *args: str,
        user: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as admin, or as test user ``user``; raises `KubectlError` if ``check``."""
        kubeconfig = self.admin_kubeconfig if user is None else self.user_kubeconfig(user)
        return _run_kubectl(
            self.binary,
            ["--kubeconfig", str(kubeconfig), *args],
            input=input,
            check=check,
            timeout=timeout,
        )

    # -- internals ---------------------------------------------------------------------

    @staticmethod
    def _require(value: _T | None) -> _T:
        if value is None:
            raise ControlPlaneError("start() the control plane first")
        return value

    def _write_kubeconfigs(self, workdir: Path, pki: _Pki) -> None:
        server = self.server_url
        self._admin_kubeconfig = _write_private(
            workdir / "admin.kubeconfig",
            _kubeconfig(
                server,
                pki.ca_pem,
                "admin",
                {
                    "client-certificate-data": _b64(pki.admin_cert.read_bytes()),
                    "client-key-data": _b64(pki.admin_key.read_bytes()),
                },
            ).encode(),
        )
        users_dir = workdir / "users"
        users_dir.mkdir()
        for name in self._users:
            self._user_kubeconfigs[name] = _write_private(
                users_dir / f"{_file_name(name)}.kubeconfig",
                _kubeconfig(server, pki.ca_pem, name, {"token": self._tokens[name]}).encode(),
            )

    def _spawn(self, name: str, argv: Sequence[str]) -> _Process:
        process = _Process(name, argv, self.log_file(name))
        self._processes.append(process)
        return process

    def _wait(
        self,
        ready: Callable[[], bool],
        what: str,
        *,
        only: Sequence[_Process] | None = None,
    ) -> None:
        watched = list(self._processes if only is None else only)
        deadline = time.monotonic() + self._ready_timeout
        pause = 0.02
        while True:
            if ready():
                return
            for process in watched:
                if not process.running():
                    raise ControlPlaneError(
                        f"{process.name} exited with code {process.popen.returncode} while "
                        f"waiting for {what}; last lines of {process.log_file}:\n{process.tail()}"
                    )
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {p.name}:\n{p.tail()}" for p in watched)
                raise ControlPlaneError(f"timed out after {self._ready_timeout:.0f} s waiting for {what}\n{tails}")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.25)


class ExistingCluster:
    """A cluster that was already running, behind the same surface as `ControlPlane`.

    Test users are impersonated with the admin kubeconfig's credentials (see module doc).
    `start_controller_manager` does nothing, and `stop` only removes the files written here.
    """

    def __init__(
        self,
        kubeconfig: Path,
        *,
        binary: Path | None = None,
        users: Mapping[str, Sequence[str]] = TEST_USERS,
    ) -> None:
        self._kubeconfig = kubeconfig.resolve()
        self._binary = binary or find_binary()
        self._users = {name: tuple(groups) for name, groups in users.items()}
        view = _run_kubectl(
            self._binary,
            ["--kubeconfig", str(self._kubeconfig), "config", "view", "--raw", "--minify", "--flatten", "-o", "json"],
            input=None,
            check=True,
            timeout=60,
        )
        self._config: dict[str, object] = json.loads(view.stdout)
        cluster = self._first("clusters", "cluster")
        self._server_url = str(cluster["server"])
        self._workdir = Path(tempfile.mkdtemp(prefix="jitaccess-existing-"))
        # Removed at stop(), or when this object or the interpreter goes away.
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._workdir, ignore_errors=True)
        self._ca_file: Path | None = None
        ca_data = cluster.get("certificate-authority-data")
        if isinstance(ca_data, str):
            self._ca_file = self._workdir / "ca.crt"
            self._ca_file.write_bytes(base64.b64decode(ca_data))
        self._user_kubeconfigs: dict[str, Path] = {}

    def _first(self, list_key: str, item_key: str) -> dict[str, object]:
        entries = self._config.get(list_key)
        if not isinstance(entries, list) or not entries:
            raise ControlPlaneError(f"{self._kubeconfig}: no {list_key} in the current context")
        entry = entries[0][item_key]
        assert isinstance(entry, dict)
        return entry

    @property
    def binary(self) -> Path:
        return self._binary

    @property
    def admin_kubeconfig(self) -> Path:
        return self._kubeconfig

    @property
    def server_url(self) -> str:
        return self._server_url

    @property
    def ca_file(self) -> Path | None:
        return self._ca_file

    @property
    def users(self) -> Mapping[str, tuple[str, ...]]:
        return MappingProxyType(self._users)

    def user_kubeconfig(self, name: str) -> Path:
        """A kubeconfig impersonating ``name`` (``as``/``as-groups``; kubectl and client-go only)."""
        if name not in self._users:
            raise KeyError(f"unknown test user {name!r}; known: {sorted(self._users)}")
        if name not in self._user_kubeconfigs:
            config = json.loads(json.dumps(self._config))
            user = config["users"][0]["user"]
            user["as"] = name
            if self._users[name]:
                user["as-groups"] = list(self._users[name])
            self._user_kubeconfigs[name] = _write_private(
                self._workdir / f"{_file_name(name)}.kubeconfig",
                (json.dumps(config, indent=2) + "\n").encode(),
            )
        return self._user_kubeconfigs[name]

    def kubectl(
        self,
        *args: str,
        user: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as admin, or impersonating test user ``user`` (``--as``/``--as-group``)."""
        argv = ["--kubeconfig", str(self._kubeconfig)]
        if user is not None:
            if user not in self._users:
                raise KeyError(f"unknown test user {user!r}; known: {sorted(self._users)}")
            argv.append(f"--as={user}")
            argv.extend(f"--as-group={group}" for group in self._users[user])
        return _run_kubectl(self._binary, [*argv, *args], input=input, check=check, timeout=timeout)

    def start_controller_manager(self) -> None:
        """Nothing to do: an existing cluster runs its own controllers."""

    def stop(self) -> None:
        self._cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

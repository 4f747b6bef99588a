"""Read kubeconfig files the way kubectl does, without importing the `kubernetes` package.

Importing `kubernetes` costs about half a second of CPU (it loads every API model), which is the
plugin's whole latency budget. This module merges the files of `$KUBECONFIG` as kubectl does
(the first file to define a name wins), picks the context, and turns its cluster and user into
`Credentials`: the server, the TLS settings and the headers to send.

Supported: bearer tokens (`token`, `tokenFile`), client certificates (files or inline data),
basic auth, exec credential plugins (`client.authentication.k8s.io/v1` and `v1beta1`),
impersonation (`as`, `as-groups`, or the `--as` / `--as-group` flags), `proxy-url`,
`tls-server-name`, `insecure-skip-tls-verify`, and a pod's service account when there is no
kubeconfig. Legacy `auth-provider` users (gcp, azure, oidc) go through the `kubernetes` client's
own loader: slower, but complete.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jitaccess.cli.errors import Unreachable, UsageError

IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")


@dataclass
class Credentials:
    """Where the API server is and how to talk to it, for one context."""

    server: str
    context: str
    ca_data: bytes | None = None
    ca_file: str | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    token: str | None = None
    token_file: str | None = None
    basic_auth: tuple[str, str] | None = None
    exec_plugin: dict[str, Any] | None = None
    impersonate_user: str | None = None
    impersonate_groups: list[str] = field(default_factory=list)
    proxy_url: str | None = None
    _exec_ran: bool = False

    def ssl_context(self) -> ssl.SSLContext:
        self._run_exec_plugin_once()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.ca_data:
            context.load_verify_locations(cadata=self.ca_data.decode("ascii", errors="replace"))
        elif self.ca_file:
            context.load_verify_locations(cafile=self.ca_file)
        else:
            context.load_default_certs()
        if self.cert_data and self.key_data:
            _load_cert_data(context, self.cert_data, self.key_data)
        elif self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def headers(self) -> list[tuple[str, str]]:
        """Authorization and impersonation headers (several `Impersonate-Group` lines allowed)."""
        self._run_exec_plugin_once()
        headers: list[tuple[str, str]] = []
        token = self.token
        if token is None and self.token_file:
            token = _read_text(self.token_file, "tokenFile").strip()
        if token:
            headers.append(("Authorization", token if token.startswith(("Bearer ", "bearer ")) else f"Bearer {token}"))
        elif self.basic_auth:
            pair = base64.b64encode(":".join(self.basic_auth).encode()).decode()
            headers.append(("Authorization", f"Basic {pair}"))
        if self.impersonate_user:
            headers.append(("Impersonate-User", self.impersonate_user))
            headers.extend(("Impersonate-Group", group) for group in self.impersonate_groups)
        return headers

    def refresh(self) -> bool:
        """Run the exec plugin again after a 401 (its token may have expired); False if there is none."""
        if self.exec_plugin is None:
            return False
        self._exec_ran = False
        self._run_exec_plugin_once()
        return True

    def _run_exec_plugin_once(self) -> None:
        if self.exec_plugin is None or self._exec_ran:
            return
        self._exec_ran = True
        status = run_exec_plugin(self.exec_plugin, self.server, self.ca_data)
        if status.get("token"):
            self.token = str(status["token"])
        if status.get("clientCertificateData") and status.get("clientKeyData"):
            self.cert_data = str(status["clientCertificateData"]).encode()
            self.key_data = str(status["clientKeyData"]).encode()


def _load_cert_data(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl loads client certificates only from files: write them privately, load, remove.
    with tempfile.TemporaryDirectory(prefix="kubectl-jit-") as directory:
        cert_path, key_path = Path(directory, "client.crt"), Path(directory, "client.key")
        cert_path.write_bytes(cert)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key)
        context.load_cert_chain(str(cert_path), str(key_path))


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise Unreachable(f"cannot read the kubeconfig's {what} {path}: {exc.strerror}") from exc


def _decode(data: str, what: str) -> bytes:
    try:
        return base64.b64decode(data, validate=False)
    except ValueError as exc:
        raise Unreachable(f"the kubeconfig's {what} is not valid base64: fix the kubeconfig") from exc


def kubeconfig_paths(explicit: str | None) -> list[Path]:
    """The files kubectl would read: `--kubeconfig`, else every file of `$KUBECONFIG`, else ~/.kube/config."""
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _parse(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise Unreachable(
            f"cannot read kubeconfig {path}: {exc.strerror}: pass --kubeconfig or set KUBECONFIG"
        ) from exc
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise Unreachable(f"kubeconfig {path} is not valid JSON: {exc}") from exc
    else:
        import yaml

        try:
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            raise Unreachable(f"kubeconfig {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise Unreachable(f"kubeconfig {path} is not a kubeconfig (expected a mapping)")
    return data


@dataclass
class KubeConfig:
    """Merged kubeconfig files: named entries with the directory they came from."""

    clusters: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    users: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    current_context: str = ""
    sources: list[Path] = field(default_factory=list)

    @classmethod
    def load(cls, paths: Sequence[Path]) -> KubeConfig:
        merged = cls()
        for path in paths:
            if not path.exists():
                continue
            data = _parse(path)
            merged.sources.append(path)
            base = path.resolve().parent
            for key, target in (("clusters", merged.clusters), ("users", merged.users)):
                for entry in data.get(key) or []:
                    name = entry.get("name")
                    if name is not None and name not in target:
                        target[name] = (entry.get(key[:-1]) or {}, base)
            for entry in data.get("contexts") or []:
                name = entry.get("name")
                if name is not None and name not in merged.contexts:
                    merged.contexts[name] = entry.get("context") or {}
            if not merged.current_context and data.get("current-context"):
                merged.current_context = str(data["current-context"])
        return merged


def load_credentials(
    kubeconfig: str | None = None,
    context: str | None = None,
    impersonate: str | None = None,
    impersonate_groups: Sequence[str] = (),
) -> Credentials:
    """Credentials of the chosen context, with the `--as` / `--as-group` flags applied."""
    if impersonate_groups and not impersonate:
        raise UsageError("--as-group needs --as: name the user to impersonate")
    paths = kubeconfig_paths(kubeconfig)
    config = KubeConfig.load(paths)
    if not config.sources:
        if kubeconfig is None and "KUBECONFIG" not in os.environ and os.environ.get("KUBERNETES_SERVICE_HOST"):
            creds = _in_cluster()
        elif kubeconfig:
            raise Unreachable(f"kubeconfig {kubeconfig} does not exist: pass an existing file to --kubeconfig")
        else:
            names = ", ".join(str(p) for p in paths)
            raise Unreachable(f"no kubeconfig found ({names}): pass --kubeconfig or set KUBECONFIG")
    else:
        creds = _from_config(config, context, kubeconfig)
    if impersonate:
        creds.impersonate_user = impersonate
        creds.impersonate_groups = list(impersonate_groups)
    return creds


def _in_cluster() -> Credentials:
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    return Credentials(
        server=f"https://{host}:{port}",
        context="in-cluster",
        ca_file=str(IN_CLUSTER_DIR / "ca.crt"),
        token_file=str(IN_CLUSTER_DIR / "token"),
    )


def _from_config(config: KubeConfig, context_name: str | None, explicit: str | None) -> Credentials:
    name = context_name or config.current_context
    where = ", ".join(str(p) for p in config.sources)
    if not name:
        raise Unreachable(f"the kubeconfig ({where}) has no current-context: pass --context")
    context = config.contexts.get(name)
    if context is None:
        known = ", ".join(sorted(config.contexts)) or "none"
        error = UsageError if context_name else Unreachable
        raise error(f"context {name!r} is not in the kubeconfig ({where}); contexts: {known}")
    cluster_name = context.get("cluster", "")
    if cluster_name not in config.clusters:
        raise Unreachable(f"context {name!r} names cluster {cluster_name!r}, which the kubeconfig lacks: fix it")
    cluster, cluster_dir = config.clusters[cluster_name]
    server = str(cluster.get("server") or "")
    if not server:
        raise Unreachable(f"cluster {cluster_name!r} of context {name!r} has no server: fix the kubeconfig")
    creds = Credentials(
        server=server.rstrip("/"),
        context=name,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name") or None,
        proxy_url=cluster.get("proxy-url") or None,
    )
    if cluster.get("certificate-authority-data"):
        creds.ca_data = _decode(cluster["certificate-authority-data"], "certificate-authority-data")
    elif cluster.get("certificate-authority"):
        creds.ca_file = str(cluster_dir / cluster["certificate-authority"])
    user_name = context.get("user", "")
    if not user_name:
        return creds
    if user_name not in config.users:
        raise Unreachable(f"context {name!r} names user {user_name!r}, which the kubeconfig lacks: fix it")
    user, user_dir = config.users[user_name]
    if user.get("auth-provider"):
        return _auth_provider(creds, explicit)
    _apply_user(creds, user, user_dir)
    return creds


def _apply_user(creds: Credentials, user: Mapping[str, Any], base: Path) -> None:
    if user.get("client-certificate-data"):
        creds.cert_data = _decode(user["client-certificate-data"], "client-certificate-data")
    elif user.get("client-certificate"):
        creds.cert_file = str(base / user["client-certificate"])
    if user.get("client-key-data"):
        creds.key_data = _decode(user["client-key-data"], "client-key-data")
    elif user.get("client-key"):
        creds.key_file = str(base / user["client-key"])
    if user.get("token"):
        creds.token = str(user["token"])
    elif user.get("tokenFile"):
        creds.token_file = str(base / user["tokenFile"])
    if user.get("username") and user.get("password"):
        creds.basic_auth = (str(user["username"]), str(user["password"]))
    if user.get("exec"):
        creds.exec_plugin = {**user["exec"], "_base": str(base)}
    if user.get("as"):
        creds.impersonate_user = str(user["as"])
        creds.impersonate_groups = [str(g) for g in user.get("as-groups") or []]


def run_exec_plugin(plugin: Mapping[str, Any], server: str, ca_data: bytes | None) -> dict[str, Any]:
    """Run a client-go credential plugin; its ExecCredential `status` (token or client certificate)."""
    import subprocess

    command = str(plugin.get("command") or "")
    api_version = str(plugin.get("apiVersion") or "")
    if not command:
        raise Unreachable("the kubeconfig's exec plugin has no command: fix the kubeconfig")
    if api_version not in _EXEC_API_VERSIONS:
        raise Unreachable(f"exec plugin {command}: apiVersion {api_version!r} is not supported; use v1 or v1beta1")
    if "/" in command and not Path(command).is_absolute():
        command = str(Path(str(plugin.get("_base", "."))) / command)
    mode = str(plugin.get("interactiveMode") or "IfAvailable")
    interactive = mode == "Always" or (mode == "IfAvailable" and sys.stdin.isatty())
    spec: dict[str, Any] = {"interactive": interactive}
    if plugin.get("provideClusterInfo"):
        cluster: dict[str, Any] = {"server": server}
        if ca_data:
            cluster["certificate-authority-data"] = base64.b64encode(ca_data).decode()
        spec["cluster"] = cluster
    env = dict(os.environ)
    env.update({str(e["name"]): str(e["value"]) for e in plugin.get("env") or []})
    env["KUBERNETES_EXEC_INFO"] = json.dumps({"apiVersion": api_version, "kind": "ExecCredential", "spec": spec})
    try:
        result = subprocess.run(
            [command, *[str(a) for a in plugin.get("args") or []]],
            env=env,
            stdin=None if interactive else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            check=False,
        )
    except OSError as exc:
        hint = plugin.get("installHint") or "install it, or fix the kubeconfig's exec command"
        raise Unreachable(f"cannot run the kubeconfig's credential plugin {command}: {exc.strerror}: {hint}") from exc
    if result.returncode != 0:
        raise Unreachable(f"the credential plugin {command} failed (exit {result.returncode}): log in again")
    try:
        status = json.loads(result.stdout)["status"]
    except (ValueError, KeyError, TypeError) as exc:
        raise Unreachable(f"the credential plugin {command} printed no ExecCredential status") from exc
    if not isinstance(status, dict):
        raise Unreachable(f"the credential plugin {command} printed no ExecCredential status")
    return status


def _auth_provider(creds: Credentials, explicit: str | None) -> Credentials:
    """Legacy auth providers: let the `kubernetes` client do the provider-specific work."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=explicit, context=creds.context, client_configuration=configuration
        )
    except Exception as exc:
        raise Unreachable(f"cannot load credentials of context {creds.context!r}: {exc}") from exc
    creds.token = configuration.api_key.get("authorization") or None
    creds.cert_file = configuration.cert_file or creds.cert_file
    creds.key_file = configuration.key_file or creds.key_file
    if configuration.ssl_ca_cert:
        creds.ca_file, creds.ca_data = configuration.ssl_ca_cert, None
    creds.insecure = not configuration.verify_ssl
    return creds


def context_names(kubeconfig: str | None) -> list[str]:
    """For shell completion: the contexts of the kubeconfig, or nothing when it cannot be read."""
    try:
        return sorted(KubeConfig.load(kubeconfig_paths(kubeconfig)).contexts)
    except Exception:
        return []

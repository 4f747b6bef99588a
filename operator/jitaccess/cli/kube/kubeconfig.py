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

A kubeconfig that is not what kubectl reads (not UTF-8, an entry that is a string where kubectl wants
a mapping, a server without a usable port, a token an HTTP header cannot carry) is an `Unreachable`
naming the file, the entry and its field, never a traceback: kubectl refuses such a file too.
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
from urllib.parse import urlsplit

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
            _check_token(token, f"the kubeconfig's tokenFile {self.token_file}", "copy it again")
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
            _check_token(
                self.token, f"the token of credential plugin {self.exec_plugin.get('command')}", "log in again"
            )
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
    except UnicodeDecodeError as exc:
        raise Unreachable(f"the kubeconfig's {what} {path} is not UTF-8 text ({_undecodable(exc)})") from exc


def _undecodable(exc: UnicodeDecodeError) -> str:
    return f"byte {exc.object[exc.start]:#04x} at offset {exc.start}"


def _check_token(token: str, what: str, fix: str) -> None:
    """A bearer token goes into an HTTP header, which carries printable ASCII: anything else is a
    token copied wrongly (a smart quote, a line break), which http.client would refuse mid-request."""
    bad = next((c for c in token if not (c.isascii() and c.isprintable())), None)
    if bad is not None:
        raise Unreachable(f"{what} has a character an HTTP header cannot carry ({bad!r}): a token is ASCII; {fix}")


def _check_impersonation(value: str, what: str, error: type[Unreachable | UsageError]) -> None:
    """An impersonated user or group is sent as UTF-8, as kubectl sends it (any language's letters
    pass); a control character (a line break) cannot be sent in a header at all."""
    bad = next((c for c in value if not c.isprintable()), None)
    if bad is not None:
        raise error(f"{what} {value!r} has a control character ({bad!r}): give the name alone")


def _decode(data: str, entry: Entry, key: str) -> bytes:
    try:
        return base64.b64decode(data, validate=False)
    except ValueError as exc:
        raise Unreachable(f"{entry.where}: {key} is not valid base64: fix the kubeconfig") from exc


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
    except UnicodeDecodeError as exc:  # UTF-16, as some Windows editors save it, or not text at all
        raise Unreachable(
            f"kubeconfig {path} is not UTF-8 text ({_undecodable(exc)}): save it as UTF-8, as kubectl reads it"
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


@dataclass(frozen=True)
class Entry:
    """One named cluster, user or context: its fields, and the file it came from."""

    fields: dict[str, Any]
    file: Path
    #: How an error names it: `user 'dev' in kubeconfig /home/me/.kube/config`.
    where: str

    @property
    def base(self) -> Path:
        """Where its relative file names (certificate-authority, tokenFile, an exec command) start."""
        return self.file.resolve().parent


@dataclass
class KubeConfig:
    """Merged kubeconfig files: named entries with the file they came from."""

    clusters: dict[str, Entry] = field(default_factory=dict)
    users: dict[str, Entry] = field(default_factory=dict)
    contexts: dict[str, Entry] = field(default_factory=dict)
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
            for key, target in (("clusters", merged.clusters), ("users", merged.users), ("contexts", merged.contexts)):
                for name, entry in _entries(data, key, path):
                    target.setdefault(name, entry)
            if not merged.current_context and data.get("current-context"):
                merged.current_context = str(data["current-context"])
        return merged


def _a(value: Any) -> str:
    """What a YAML value is, in words, for an error."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, Mapping):
        return "a mapping"
    return {str: "a string", list: "a list", type(None): "null"}.get(type(value), type(value).__name__)


def _entries(data: Mapping[str, Any], key: str, path: Path) -> list[tuple[str, Entry]]:
    """The named entries of `clusters`, `users` or `contexts` of one file, each a mapping as kubectl
    requires (`- name: N` and `cluster:`, `user:` or `context:` a mapping of fields)."""
    listed, singular = data.get(key) or [], key[:-1]
    if not isinstance(listed, list):
        raise Unreachable(
            f"kubeconfig {path}: {key} is {_a(listed)}, not a list of named entries (- name: N, {singular}: ...): "
            "fix the kubeconfig"
        )
    found = []
    for index, item in enumerate(listed):
        name = item.get("name") if isinstance(item, Mapping) else None
        if isinstance(name, (int, float)) and not isinstance(name, bool):
            name = str(name)  # `name: 1` in YAML
        if not isinstance(item, Mapping) or not isinstance(name, (str, type(None))):
            what = f"{_a(item)}, not a mapping" if not isinstance(item, Mapping) else f"named by {_a(name)}"
            raise Unreachable(
                f"kubeconfig {path}: {key}[{index}] is {what} (- name: N, {singular}: ...): fix the kubeconfig"
            )
        if name is None:
            continue
        fields = item.get(singular) or {}
        if not isinstance(fields, Mapping):
            raise Unreachable(
                f"kubeconfig {path}: {key}[{index}] ({name}): {singular} is {_a(fields)}, not a mapping of its fields "
                f"({singular}: {{...}}): fix the kubeconfig"
            )
        found.append((name, Entry(dict(fields), path, f"{singular} {name!r} in kubeconfig {path}")))
    return found


def _text(entry: Entry, key: str) -> str | None:
    """A field that kubectl reads as a string (a number too, as YAML may write it); None when unset."""
    value = entry.fields.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Unreachable(f"{entry.where}: {key} is {_a(value)}, not a string: fix the kubeconfig")
    return str(value)


def _texts(entry: Entry, key: str) -> list[str]:
    value = entry.fields.get(key) or []
    if not isinstance(value, list) or any(isinstance(v, (bool, list, Mapping)) or v is None for v in value):
        raise Unreachable(f"{entry.where}: {key} is {_a(value)}, not a list of strings: fix the kubeconfig")
    return [str(v) for v in value]


def _url(entry: Entry, key: str, schemes: tuple[str, ...]) -> str | None:
    """A URL field (server, proxy-url) that http.client can dial: a scheme, a host, a port of 1 to 65535."""
    value = _text(entry, key)
    if value is None:
        return None
    url = urlsplit(value)
    try:
        url.port  # noqa: B018 -- the check: urllib raises ValueError for `:abc` or `:99999`
    except ValueError as exc:
        raise Unreachable(
            f"{entry.where}: {key} {value!r} has no usable port ({exc}): fix the kubeconfig "
            f"({schemes[0]}://HOST or {schemes[0]}://HOST:PORT, a port from 1 to 65535)"
        ) from exc
    if url.scheme not in schemes or not url.hostname:
        raise Unreachable(
            f"{entry.where}: {key} {value!r} is not a URL this plugin can use ({' or '.join(schemes)}://HOST:PORT): "
            "fix the kubeconfig"
        )
    return value


def load_credentials(
    kubeconfig: str | None = None,
    context: str | None = None,
    impersonate: str | None = None,
    impersonate_groups: Sequence[str] = (),
) -> Credentials:
    """Credentials of the chosen context, with the `--as` / `--as-group` flags applied."""
    if impersonate_groups and not impersonate:
        raise UsageError("--as-group needs --as: name the user to impersonate")
    for flag, value in [("--as", impersonate or ""), *(("--as-group", g) for g in impersonate_groups)]:
        _check_impersonation(value, flag, UsageError)
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
    cluster_name = _text(context, "cluster") or ""
    if cluster_name not in config.clusters:
        raise Unreachable(f"context {name!r} names cluster {cluster_name!r}, which the kubeconfig lacks: fix it")
    cluster = config.clusters[cluster_name]
    server = _url(cluster, "server", ("https", "http"))
    if not server:
        raise Unreachable(f"cluster {cluster_name!r} of context {name!r} has no server: fix the kubeconfig")
    insecure = cluster.fields.get("insecure-skip-tls-verify", False)
    if not isinstance(insecure, bool):  # "false" in quotes is a string, and any string would read as true
        raise Unreachable(
            f"{cluster.where}: insecure-skip-tls-verify is {_a(insecure)}, not true or false: fix the kubeconfig"
        )
    creds = Credentials(
        server=server.rstrip("/"),
        context=name,
        insecure=insecure,
        tls_server_name=_text(cluster, "tls-server-name"),
        proxy_url=_url(cluster, "proxy-url", ("http", "https")),
    )
    if ca_data := _text(cluster, "certificate-authority-data"):
        creds.ca_data = _decode(ca_data, cluster, "certificate-authority-data")
    elif ca_file := _text(cluster, "certificate-authority"):
        creds.ca_file = str(cluster.base / ca_file)
    user_name = _text(context, "user")
    if not user_name:
        return creds
    if user_name not in config.users:
        raise Unreachable(f"context {name!r} names user {user_name!r}, which the kubeconfig lacks: fix it")
    user = config.users[user_name]
    if user.fields.get("auth-provider"):
        return _auth_provider(creds, explicit)
    _apply_user(creds, user)
    return creds


def _apply_user(creds: Credentials, user: Entry) -> None:
    if cert_data := _text(user, "client-certificate-data"):
        creds.cert_data = _decode(cert_data, user, "client-certificate-data")
    elif cert_file := _text(user, "client-certificate"):
        creds.cert_file = str(user.base / cert_file)
    if key_data := _text(user, "client-key-data"):
        creds.key_data = _decode(key_data, user, "client-key-data")
    elif key_file := _text(user, "client-key"):
        creds.key_file = str(user.base / key_file)
    if token := _text(user, "token"):
        _check_token(token, f"{user.where}: token", "copy it again from where it was issued")
        creds.token = token
    elif token_file := _text(user, "tokenFile"):
        creds.token_file = str(user.base / token_file)
    username, password = _text(user, "username"), _text(user, "password")
    if username and password:
        creds.basic_auth = (username, password)
    if user.fields.get("exec"):
        creds.exec_plugin = {**_exec_plugin(user), "_base": str(user.base)}
    if impersonate := _text(user, "as"):
        groups = _texts(user, "as-groups")
        for value, key in [(impersonate, "as"), *((g, "as-groups") for g in groups)]:
            _check_impersonation(value, f"{user.where}: {key}", Unreachable)
        creds.impersonate_user, creds.impersonate_groups = impersonate, groups


def _exec_plugin(user: Entry) -> dict[str, Any]:
    """The user's `exec:` as `run_exec_plugin` reads it, checked as kubectl checks it: a mapping, its
    args a list, each of its env a mapping with a name and a value."""
    plugin = user.fields["exec"]
    if not isinstance(plugin, Mapping):
        raise Unreachable(
            f"{user.where}: exec is {_a(plugin)}, not a mapping (exec: {{apiVersion: "
            f"{_EXEC_API_VERSIONS[0]}, command: ..., args: [...]}}): fix the kubeconfig"
        )
    exec_entry = Entry(dict(plugin), user.file, f"{user.where}: exec")
    _text(exec_entry, "command")
    _texts(exec_entry, "args")
    env = plugin.get("env") or []
    if not isinstance(env, list):
        raise Unreachable(f"{exec_entry.where}: env is {_a(env)}, not a list of name and value: fix the kubeconfig")
    for index, variable in enumerate(env):
        if not isinstance(variable, Mapping) or not variable.get("name") or "value" not in variable:
            raise Unreachable(
                f"{exec_entry.where}: env[{index}] is not a name and a value (- name: VARIABLE, value: TEXT): "
                "fix the kubeconfig"
            )
    return dict(plugin)


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

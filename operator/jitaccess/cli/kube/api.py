"""A small Kubernetes REST client on the standard library: JSON in, JSON out, and watches.

One keep-alive HTTPS connection serves the plugin's sequential calls; a watch gets a connection
of its own and reads the API server's newline-delimited event stream as it arrives. Errors come
back as `ApiError` (the server's `Status`: code, reason, message) or as `Unreachable`: `Disconnected`
when the connection itself failed or dropped (refused, reset, cut mid-answer, timed out), which a
caller waiting for something may try again.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import ssl
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import SplitResult, quote, urlencode, urlsplit

from jitaccess import __version__
from jitaccess.cli.errors import Disconnected, Unreachable, UsageError
from jitaccess.cli.kube.kubeconfig import Credentials

USER_AGENT = f"kubectl-jit/{__version__}"
# The API server's prefix on a webhook's refusal: the webhook's own words follow it.
_WEBHOOK_PREFIX = re.compile(r'^admission webhook "[^"]*" denied the request: ')
# ... and on a webhook it could not call (fail closed): nothing was changed.
_WEBHOOK_DOWN = re.compile(r'failed calling webhook "([^"]*)": (?:failed to call webhook: )?(.*)$')
# Past this idle time a kept-alive connection may have been closed by the server or a proxy.
_IDLE_RECONNECT_SECONDS = 30.0


class ApiError(Exception):
    """The API server answered with an error `Status`."""

    def __init__(self, status: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        message = _WEBHOOK_PREFIX.sub("", message)
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    @property
    def object_missing(self) -> bool:
        """404 for a named object (as opposed to a whole API that is not installed)."""
        return self.status == 404 and bool(self.details.get("name"))


class _Connection(http.client.HTTPSConnection):
    """HTTPS with an optional TLS server name that differs from the host dialled (tls-server-name)."""

    def __init__(
        self, host: str, port: int | None, *, context: ssl.SSLContext, timeout: float, server_name: str | None
    ) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        hostname = self._server_name or getattr(self, "_tunnel_host", None) or self.host
        self.sock = self._context.wrap_socket(self.sock, server_hostname=hostname)  # type: ignore[attr-defined]


class KubeApi:
    """Blocking calls against one API server with one set of credentials."""

    def __init__(self, credentials: Credentials, timeout: float = 30.0) -> None:
        self.credentials = credentials
        self.timeout = timeout
        url = urlsplit(credentials.server)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise Unreachable(f"the kubeconfig's server {credentials.server!r} is not an http(s) URL: fix it")
        self._scheme = url.scheme
        self._host = url.hostname
        self._port = _port(url, f"the server {credentials.server!r} of context {credentials.context}")
        self._prefix = url.path.rstrip("/")
        self._ssl: ssl.SSLContext | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._last_used = 0.0

    # --- plumbing ----------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            try:
                self._ssl = self.credentials.ssl_context()
            except (ssl.SSLError, OSError) as exc:
                raise Unreachable(
                    f"cannot load the TLS settings of context {self.credentials.context!r}: {exc}: fix the kubeconfig"
                ) from exc
        return self._ssl

    def _new_connection(self, timeout: float) -> http.client.HTTPConnection:
        proxy = self.credentials.proxy_url or _environment_proxy(self._scheme, self._host)
        host, port = self._host, self._port
        if proxy:
            proxy_url = urlsplit(proxy)
            named = (
                "the kubeconfig's proxy-url"
                if self.credentials.proxy_url
                else f"{self._scheme.upper()}_PROXY (or {self._scheme}_proxy)"
            )
            host, port = proxy_url.hostname or host, _port(proxy_url, f"{named} {proxy!r}") or 3128
        conn: http.client.HTTPConnection
        if self._scheme == "https":
            conn = _Connection(
                host, port, context=self._ssl_context(), timeout=timeout, server_name=self.credentials.tls_server_name
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        if proxy:
            conn.set_tunnel(self._host, self._port)
        return conn

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is not None and time.monotonic() - self._last_used > _IDLE_RECONNECT_SECONDS:
            self.close()
        if self._conn is None:
            self._conn = self._new_connection(self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _target(self, path: str, query: Mapping[str, Any] | None) -> str:
        params = {k: v for k, v in (query or {}).items() if v is not None and v != ""}
        return self._prefix + path + (f"?{urlencode(params)}" if params else "")

    def _send(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        target: str,
        body: bytes | None,
        content_type: str,
    ) -> http.client.HTTPResponse:
        conn.putrequest(method, target, skip_accept_encoding=True)
        conn.putheader("Accept", "application/json")
        conn.putheader("User-Agent", USER_AGENT)
        for name, value in self.credentials.headers():
            # UTF-8, as kubectl sends them: http.client would encode latin-1, an impersonated José
            # garbled and 张三 not sent at all (the credentials checked what a header cannot carry).
            conn.putheader(name, value.encode())
        if body is not None:
            conn.putheader("Content-Type", content_type)
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        return conn.getresponse()

    def _unreachable(self, exc: BaseException) -> Unreachable:
        where = f"{self.credentials.server} (context {self.credentials.context})"
        if isinstance(exc, ssl.SSLCertVerificationError):
            return Unreachable(
                f"cannot verify the TLS certificate of {where}: {exc.verify_message}; "
                "check the kubeconfig's certificate-authority"
            )
        if isinstance(exc, TimeoutError):
            return Disconnected(f"{where} did not answer in time: check the cluster, your network or VPN")
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return Disconnected(f"cannot reach {where}: {detail}: check the cluster, your network or VPN, and --context")

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One call; the decoded JSON answer. Raises `ApiError` or `Unreachable`."""
        target = self._target(path, query)
        payload = json.dumps(body).encode() if body is not None else None
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            conn = self._connection()
            reused = conn.sock is not None
            try:
                response = self._send(conn, method, target, payload, content_type)
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                # A kept-alive connection the server had closed: nothing was processed, send again.
                if reused and attempt == 1:
                    continue
                raise self._unreachable(exc) from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise self._unreachable(exc) from exc
            self._last_used = time.monotonic()
            if response.will_close:
                self.close()
            if response.status == 401 and not refreshed and self.credentials.refresh():
                refreshed = True
                continue
            if response.status >= 400:
                raise self._error(response.status, data)
            try:
                decoded = json.loads(data) if data else {}
            except ValueError:  # not UTF-8, or not JSON
                decoded = None
            if not isinstance(decoded, dict):
                raise self._not_kubernetes(response)
            return decoded

    def _not_kubernetes(self, response: http.client.HTTPResponse) -> Unreachable:
        """A success that is no API server's answer: a login page of an authenticating proxy, a web
        server on the port, a load balancer's placeholder."""
        kind = response.getheader("Content-Type") or "no Content-Type"
        return Unreachable(
            f"{self.credentials.server} (context {self.credentials.context}) answered with something that is not "
            f"Kubernetes JSON ({response.status}, {kind}): a login page or a proxy? Check the cluster's server "
            "in the kubeconfig (its host and port), and that it is the API server's"
        )

    def _error(self, status: int, data: bytes) -> ApiError | Unreachable:
        try:
            body = json.loads(data)
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        message = str(body.get("message") or data.decode(errors="replace").strip() or http.client.responses.get(status))
        down = _WEBHOOK_DOWN.search(message) if status >= 500 else None
        if down is not None:
            return Unreachable(
                f"the admission webhook {down.group(1)} did not answer, so the API server changed nothing: "
                f"is the jitaccess operator running? ({down.group(2)})"
            )
        if status == 401:
            return Unreachable(
                f"the API server of context {self.credentials.context!r} rejected your credentials (401 Unauthorized): "
                "log in again or refresh your kubeconfig"
            )
        return ApiError(status, str(body.get("reason") or ""), message, body.get("details"))

    # --- verbs -------------------------------------------------------------------------------

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        return self.request("GET", path, query=query)

    def create(self, path: str, body: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        return self.request("POST", path, query={"dryRun": "All"} if dry_run else None, body=body)

    def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def delete(self, path: str, preconditions: Mapping[str, str]) -> dict[str, Any]:
        """Delete the object only if it is still the one described (uid, resourceVersion): else 409."""
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": dict(preconditions)}
        return self.request("DELETE", path, body=options)

    def watch(
        self, path: str, *, resource_version: str, timeout_seconds: int, **query: Any
    ) -> Iterator[dict[str, Any]]:
        """Events (`{"type", "object"}`) after `resource_version`, until the server ends the watch.

        The server closes the stream after `timeout_seconds`; the caller watches again from the
        last resourceVersion it saw (also after `Disconnected`: the stream dropped or was refused),
        and lists afresh on an ERROR event with code 410 (Gone).
        """
        params = {
            **query,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(max(1, timeout_seconds)),
        }
        target = self._target(path, params)
        for attempt in (1, 2):
            conn = self._new_connection(timeout_seconds + 30.0)
            try:
                response = self._send(conn, "GET", target, None, "")
                if response.status == 401 and attempt == 1 and self.credentials.refresh():
                    conn.close()
                    continue
                if response.status >= 400:
                    raise self._error(response.status, response.read())
                yield from _events(response, self._not_kubernetes(response))
                return
            except (OSError, http.client.HTTPException) as exc:
                raise self._unreachable(exc) from exc
            finally:
                conn.close()


def _events(response: http.client.HTTPResponse, garbled: Unreachable) -> Iterator[dict[str, Any]]:
    """The stream's events; `garbled` is raised at a line that is not one."""
    while True:
        line = response.readline()
        if not line:
            return
        if line.strip():
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                raise garbled
            yield event


def _environment_proxy(scheme: str, host: str) -> str | None:
    proxy = os.environ.get(f"{scheme}_proxy") or os.environ.get(f"{scheme.upper()}_PROXY")
    if not proxy:
        return None
    from urllib.request import proxy_bypass

    return None if proxy_bypass(host) else proxy


def _port(url: SplitResult, what: str) -> int | None:
    try:
        return url.port
    except ValueError as exc:  # `:abc`, `:99999`
        raise Unreachable(f"{what} has no usable port ({exc}): give a port from 1 to 65535, or none") from exc


def object_path(group: str, version: str, plural: str, name: str | None = None) -> str:
    """The path of a cluster-scoped custom resource collection (`name` None), or of one object in it.

    An empty name is refused (`UsageError`): its path would be the collection's, so a read would
    take the whole list for one object, and a deletion would delete every object of the kind."""
    base = f"/apis/{group}/{version}/{plural}"
    if name is None:
        return base
    if not name.strip():
        raise UsageError(f"NAME is empty: give the name of the {plural.removesuffix('s')}")
    return f"{base}/{quote(name, safe='')}"

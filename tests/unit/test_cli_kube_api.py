"""The plugin's REST client against a local HTTP server: headers, errors, keep-alive, watches."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jitaccess.cli.errors import Disconnected, Unreachable
from jitaccess.cli.kube import ApiError, Credentials, KubeApi

Reply = tuple[int, Any]
#: In a watch's events: the server drops the connection there, mid-event.
CUT = object()


class Server:
    """Answers each request with `reply(method, path, headers, body)`; records what it got."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.reply: Callable[[dict[str, Any]], Reply] = lambda request: (200, {})
        self.connections: set[int] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = {
                    "method": self.command,
                    "path": self.path,
                    "headers": self.headers,
                    "body": json.loads(self.rfile.read(length)) if length else None,
                }
                server.seen.append(request)
                server.connections.add(id(self.connection))
                status, body = server.reply(request)
                if isinstance(body, list):  # a watch: one JSON event per line, chunked
                    self.send_response(status)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for event in body:
                        if event is CUT:  # the connection dropped mid-event (a reset, a restart)
                            self.wfile.write(b'ff\r\n{"type": "MODI')
                            self.close_connection = True
                            return
                        line = (json.dumps(event) + "\n").encode()
                        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                # Bytes as they are: what is not an API server (a proxy's login page) on the port.
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if isinstance(body, bytes) else "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.stop()


def api(server: Server, **creds: Any) -> KubeApi:
    return KubeApi(Credentials(server=server.url, context="test", token="t0k", **creds))


def test_headers_impersonation_and_keep_alive(server: Server) -> None:
    client = api(server, impersonate_user="alice@example.com", impersonate_groups=["a", "b"])
    client.get("/apis/x/v1/things", labelSelector="k=v")
    client.create("/apis/x/v1/things", {"kind": "Thing"}, dry_run=True)
    client.merge_patch("/apis/x/v1/things/n", {"metadata": {"annotations": {"k": "v"}}})
    get, create, patch = server.seen
    assert get["path"] == "/apis/x/v1/things?labelSelector=k%3Dv"
    assert get["headers"]["Authorization"] == "Bearer t0k"
    assert get["headers"]["Impersonate-User"] == "alice@example.com"
    assert get["headers"].get_all("Impersonate-Group") == ["a", "b"]
    assert get["headers"]["User-Agent"].startswith("kubectl-jit/")
    assert create["path"] == "/apis/x/v1/things?dryRun=All" and create["body"] == {"kind": "Thing"}
    assert patch["headers"]["Content-Type"] == "application/merge-patch+json"
    assert len(server.connections) == 1, "one kept-alive connection for sequential calls"


def test_errors_carry_the_servers_words(server: Server) -> None:
    client = api(server)
    server.reply = lambda r: (
        404,
        {
            "kind": "Status",
            "reason": "NotFound",
            "message": 'things "n" not found',
            "details": {"name": "n", "kind": "things"},
        },
    )
    with pytest.raises(ApiError) as missing:
        client.get("/apis/x/v1/things/n")
    assert missing.value.status == 404 and missing.value.object_missing
    assert missing.value.message == 'things "n" not found'

    server.reply = lambda r: (404, {"kind": "Status", "reason": "NotFound", "message": "the server could not find"})
    with pytest.raises(ApiError) as no_api:
        client.get("/apis/x/v1/things")
    assert not no_api.value.object_missing

    server.reply = lambda r: (400, {"message": 'admission webhook "x.jitaccess.dev" denied the request: not you'})
    with pytest.raises(ApiError) as refused:
        client.create("/apis/x/v1/things", {})
    assert refused.value.message == "not you"

    server.reply = lambda r: (
        500,
        {
            "message": 'Internal error occurred: failed calling webhook "s.jitaccess.dev": '
            "failed to call webhook: connection refused"
        },
    )
    with pytest.raises(Unreachable, match=r"s.jitaccess.dev did not answer.*operator running\? \(connection refused\)"):
        client.create("/apis/x/v1/things", {})

    server.reply = lambda r: (401, {"message": "Unauthorized"})
    with pytest.raises(Unreachable, match="rejected your credentials"):
        client.get("/apis/x/v1/things")


def test_unreachable_server() -> None:
    client = KubeApi(Credentials(server="http://127.0.0.1:1", context="gone"))
    with pytest.raises(Unreachable, match=r"cannot reach http://127.0.0.1:1 \(context gone\)"):
        client.get("/")
    with pytest.raises(Unreachable, match="is not an http"):
        KubeApi(Credentials(server="ftp://x", context="odd"))


def test_a_dropped_connection_is_disconnected_which_a_wait_tries_again(server: Server) -> None:
    """Refused (nothing listening: an API server restarting) or cut in the middle of a watch's
    event: `Disconnected`, which the waits tell from a certificate or a login refused."""
    client = KubeApi(Credentials(server="http://127.0.0.1:1", context="gone"))
    with pytest.raises(Disconnected, match=r"cannot reach http://127.0.0.1:1 \(context gone\)"):
        list(client.watch("/apis/x/v1/things", resource_version="1", timeout_seconds=3))
    first = {"type": "ADDED", "object": {"n": 1}}
    server.reply = lambda r: (200, [first, CUT])
    seen = []
    with pytest.raises(Disconnected, match=rf"cannot reach {server.url} \(context test\)"):
        for event in api(server).watch("/apis/x/v1/things", resource_version="1", timeout_seconds=3):
            seen.append(event)
    assert seen == [first]


def test_watch_streams_events_with_its_own_connection(server: Server) -> None:
    client = api(server)
    events = [{"type": "ADDED", "object": {"n": 1}}, {"type": "MODIFIED", "object": {"n": 2}}]
    server.reply = lambda r: (200, events) if "watch=true" in r["path"] else (200, {})
    client.get("/apis/x/v1/things")
    seen = list(
        client.watch("/apis/x/v1/things", resource_version="7", timeout_seconds=3, fieldSelector="metadata.name=n")
    )
    assert seen == events
    path = server.seen[-1]["path"]
    for part in ("watch=true", "resourceVersion=7", "timeoutSeconds=3", "fieldSelector=metadata.name%3Dn"):
        assert part in path
    assert len(server.connections) == 2


def test_a_401_runs_the_exec_plugin_again(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = iter(["old", "new"])
    monkeypatch.setattr("jitaccess.cli.kube.kubeconfig.run_exec_plugin", lambda *a: {"token": next(tokens)})
    client = KubeApi(Credentials(server=server.url, context="exec", exec_plugin={"command": "x"}))
    server.reply = lambda r: (200, {"ok": 1}) if r["headers"]["Authorization"] == "Bearer new" else (401, {})
    assert client.get("/") == {"ok": 1}
    assert [r["headers"]["Authorization"] for r in server.seen] == ["Bearer old", "Bearer new"]


LOGIN_PAGE = b"<html><body>Sign in to continue</body></html>\n"


@pytest.mark.parametrize("body", [LOGIN_PAGE, b"\xff\xfe<\x00h\x00", b"[1, 2]", b'"ok"'])
def test_an_answer_that_is_not_kubernetes_json_is_unreachable(server: Server, body: bytes) -> None:
    client = api(server)
    server.reply = lambda r: (200, body)
    expected = (
        rf"^{server.url} \(context test\) answered with something that is not Kubernetes JSON \(200, text/html\): "
        r"a login page or a proxy\? Check the cluster's server in the kubeconfig"
    )
    with pytest.raises(Unreachable, match=expected):
        client.get("/apis/x/v1/things")
    with pytest.raises(Unreachable, match=expected):
        list(client.watch("/apis/x/v1/things", resource_version="1", timeout_seconds=3))

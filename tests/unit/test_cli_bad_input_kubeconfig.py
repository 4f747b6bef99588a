"""A kubeconfig kubectl would not read either is an error naming the file, the entry, the field and
the fix (exit 5, as for any kubeconfig that cannot be used), never a traceback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jitaccess.cli import main
from jitaccess.cli.errors import UNREACHABLE, USAGE, Unreachable, UsageError
from jitaccess.cli.kube import Credentials, KubeApi, load_credentials
from tests.unit.test_cli_kube_api import Server
from tests.unit.test_cli_kube_kubeconfig import kubeconfig


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.stop()


def raw(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


CONTEXT = "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
CLUSTER = 'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\n'


def test_a_kubeconfig_not_in_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config"
    path.write_bytes((CLUSTER + CONTEXT).encode("utf-16"))  # as some Windows editors save it
    assert main.main(["--kubeconfig", str(path), "list"]) == UNREACHABLE
    assert capsys.readouterr().err == (
        f"error: kubeconfig {path} is not UTF-8 text (byte 0xff at offset 0): save it as UTF-8, as kubectl reads it\n"
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("clusters: foo\n" + CONTEXT, "clusters is a string, not a list of named entries"),
        ("clusters: [foo]\n" + CONTEXT, r"clusters\[0\] is a string, not a mapping"),
        (
            'clusters: [{name: c, cluster: "https://x"}]\n' + CONTEXT,
            r"clusters\[0\] \(c\): cluster is a string, not a mapping",
        ),
        (
            CLUSTER + "contexts: [{name: x, context: c}]\ncurrent-context: x\n",
            r"contexts\[0\] \(x\): context is a string",
        ),
        (CLUSTER + "users: [{name: u, user: tok}]\n" + CONTEXT, r"users\[0\] \(u\): user is a string"),
        (CLUSTER + "users: {u: {token: t}}\n" + CONTEXT, "users is a mapping, not a list"),
    ],
)
def test_entries_that_are_not_mappings(tmp_path: Path, text: str, words: str) -> None:
    path = raw(tmp_path / "config", text)
    with pytest.raises(Unreachable, match=rf"^kubeconfig {re.escape(path)}: {words}.*: fix the kubeconfig$"):
        load_credentials(path)


@pytest.mark.parametrize(
    ("cluster", "words"),
    [
        ({"server": "https://127.0.0.1:abc"}, r"server 'https://127.0.0.1:abc' has no usable port \(Port could not"),
        ({"server": "https://127.0.0.1:99999"}, r"server 'https://127.0.0.1:99999' has no usable port \(Port out of"),
        ({"proxy-url": "http://proxy:99999"}, r"proxy-url 'http://proxy:99999' has no usable port"),
        ({"proxy-url": "proxy:3128"}, "proxy-url 'proxy:3128' is not a URL this plugin can use"),
        ({"insecure-skip-tls-verify": "false"}, "insecure-skip-tls-verify is a string, not true or false"),
        ({"certificate-authority": ["a", "b"]}, "certificate-authority is a list, not a string"),
    ],
)
def test_cluster_fields(tmp_path: Path, cluster: dict[str, Any], words: str) -> None:
    path = kubeconfig(tmp_path / "config", cluster=cluster)
    with pytest.raises(Unreachable, match=rf"^cluster 'dev-cluster' in kubeconfig {re.escape(str(path))}: {words}"):
        load_credentials(str(path))


EXEC = {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws"}


@pytest.mark.parametrize(
    ("user", "words"),
    [
        ({"exec": "aws"}, r"exec is a string, not a mapping \(exec: \{apiVersion: client.authentication.k8s.io/v1"),
        ({"exec": {**EXEC, "env": [{"value": "x"}]}}, r"exec: env\[0\] is not a name and a value"),
        ({"exec": {**EXEC, "env": {"AWS_PROFILE": "x"}}}, "exec: env is a mapping, not a list of name and value"),
        ({"exec": {**EXEC, "args": "eks get-token"}}, "exec: args is a string, not a list of strings"),
        ({"token": "tökén€"}, r"token has a character an HTTP header cannot carry \('ö'\): a token is ASCII"),
        ({"token": "abc", "as": "a\nb"}, r"as 'a\\nb' has a control character"),
    ],
)
def test_user_fields(tmp_path: Path, user: dict[str, Any], words: str) -> None:
    path = kubeconfig(tmp_path / "config", user=user)
    with pytest.raises(Unreachable, match=rf"^user 'dev-user' in kubeconfig {re.escape(str(path))}: {words}"):
        load_credentials(str(path))


def test_a_token_file_an_http_header_cannot_carry(tmp_path: Path) -> None:
    creds = load_credentials(str(kubeconfig(tmp_path / "config", user={"tokenFile": "token"})))
    (tmp_path / "token").write_text("abc€\n")
    with pytest.raises(Unreachable, match=r"tokenFile .*/token has a character an HTTP header cannot carry \('€'\)"):
        creds.headers()
    (tmp_path / "token").write_bytes(b"\xff\xfeabc")
    with pytest.raises(Unreachable, match=r"tokenFile .*/token is not UTF-8 text \(byte 0xff at offset 0\)"):
        creds.headers()


def test_impersonation_is_sent_as_utf8_as_kubectl_sends_it(tmp_path: Path, server: Server) -> None:
    creds = load_credentials(
        str(kubeconfig(tmp_path / "config", server=server.url)), impersonate="张三", impersonate_groups=["équipe"]
    )
    KubeApi(creds).get("/apis/x/v1/things")
    [seen] = server.seen
    # The test server reads header bytes as latin-1, as http.server does.
    assert seen["headers"]["Impersonate-User"].encode("latin-1").decode() == "张三"
    assert seen["headers"]["Impersonate-Group"].encode("latin-1").decode() == "équipe"


@pytest.mark.parametrize(
    ("flags", "flag"),
    [({"impersonate": "a\nb"}, "--as"), ({"impersonate": "a", "impersonate_groups": ["g\r"]}, "--as-group")],
)
def test_impersonation_flags_with_a_control_character(tmp_path: Path, flags: dict[str, Any], flag: str) -> None:
    with pytest.raises(UsageError, match=rf"^{flag} '.*' has a control character") as raised:
        load_credentials(str(kubeconfig(tmp_path / "config")), **flags)
    assert raised.value.code == USAGE


def test_a_proxy_variable_without_a_usable_port(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("no_proxy", "NO_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:abc")
    with pytest.raises(Unreachable, match=r"^HTTP_PROXY \(or http_proxy\) 'http://proxy:abc' has no usable port"):
        KubeApi(Credentials(server=server.url, context="test")).get("/")


def test_an_in_cluster_port_that_is_no_port() -> None:
    with pytest.raises(
        Unreachable, match=r"^the server 'https://10.0.0.1:abc' of context in-cluster has no usable port"
    ):
        KubeApi(Credentials(server="https://10.0.0.1:abc", context="in-cluster"))

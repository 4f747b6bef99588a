"""Kubeconfig loading as kubectl does it: merging, contexts, credentials, exec plugins, impersonation."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from jitaccess.cli.errors import Unreachable, UsageError
from jitaccess.cli.kube import Credentials, load_credentials


def kubeconfig(
    path: Path,
    *,
    context: str = "dev",
    server: str = "https://dev:6443",
    user: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
    current: str | None = "dev",
    as_json: bool = False,
) -> Path:
    data = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": f"{context}-cluster", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": f"{context}-user", "user": user if user is not None else {"token": f"{context}-token"}}],
        "contexts": [{"name": context, "context": {"cluster": f"{context}-cluster", "user": f"{context}-user"}}],
    }
    if current:
        data["current-context"] = current
    path.write_text(json.dumps(data) if as_json else yaml.safe_dump(data))
    return path


def test_yaml_and_json_with_a_token(tmp_path: Path) -> None:
    for as_json in (False, True):
        creds = load_credentials(str(kubeconfig(tmp_path / f"c{as_json}", as_json=as_json)))
        assert creds.server == "https://dev:6443"
        assert creds.context == "dev"
        assert creds.headers() == [("Authorization", "Bearer dev-token")]


def test_kubeconfig_variable_merges_first_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = kubeconfig(tmp_path / "a", context="dev", current=None)
    second = kubeconfig(tmp_path / "b", context="prod", server="https://prod:6443", current="prod")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
    assert load_credentials().server == "https://prod:6443"
    assert load_credentials(context="dev").server == "https://dev:6443"


def test_explicit_file_wins_over_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "a", context="prod", current="prod")))
    assert load_credentials(str(kubeconfig(tmp_path / "b"))).context == "dev"


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(Unreachable, match="does not exist: pass an existing file to --kubeconfig"):
        load_credentials(str(tmp_path / "nope"))
    with pytest.raises(UsageError, match=r"context 'other' is not in the kubeconfig .*; contexts: dev"):
        load_credentials(str(kubeconfig(tmp_path / "c")), context="other")
    with pytest.raises(Unreachable, match="no current-context: pass --context"):
        load_credentials(str(kubeconfig(tmp_path / "d", current=None)))
    (tmp_path / "e").write_text("{not json")
    with pytest.raises(Unreachable, match="is not valid JSON"):
        load_credentials(str(tmp_path / "e"))
    with pytest.raises(UsageError, match="--as-group needs --as"):
        load_credentials(str(kubeconfig(tmp_path / "f")), impersonate_groups=["g"])


def test_relative_files_resolve_next_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    creds = load_credentials(
        str(
            kubeconfig(
                tmp_path / "c",
                cluster={"certificate-authority": "certs/ca.crt"},
                user={"tokenFile": "certs/token", "client-certificate": "certs/me.crt", "client-key": "certs/me.key"},
            )
        )
    )
    assert creds.ca_file == str(tmp_path / "certs" / "ca.crt")
    assert creds.cert_file == str(tmp_path / "certs" / "me.crt")
    (tmp_path / "certs" / "token").write_text("from-file\n")
    assert creds.headers() == [("Authorization", "Bearer from-file")]


def test_basic_auth_and_impersonation(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "c", user={"username": "u", "password": "p", "as": "kube-as", "as-groups": ["g1"]})
    creds = load_credentials(str(path))
    assert creds.headers() == [
        ("Authorization", "Basic dTpw"),
        ("Impersonate-User", "kube-as"),
        ("Impersonate-Group", "g1"),
    ]
    flags = load_credentials(str(path), impersonate="alice@example.com", impersonate_groups=["a", "b"])
    assert flags.headers()[1:] == [
        ("Impersonate-User", "alice@example.com"),
        ("Impersonate-Group", "a"),
        ("Impersonate-Group", "b"),
    ]


def _exec_plugin(tmp_path: Path, status: dict[str, Any], exit_code: int = 0) -> Path:
    script = tmp_path / "plugin.py"
    script.write_text(
        "import json, os, sys\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "open(sys.argv[1], 'w').write(json.dumps({'info': info, 'extra': os.environ.get('EXTRA')}))\n"
        f"print(json.dumps({{'apiVersion': info['apiVersion'], 'kind': 'ExecCredential', 'status': {status!r}}}))\n"
        f"sys.exit({exit_code})\n"
    )
    wrapper = tmp_path / "plugin"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return wrapper


def _exec_credentials(path: Path, plugin: dict[str, Any]) -> Credentials:
    """The credentials of a kubeconfig whose user runs the exec plugin configured so."""
    return load_credentials(str(kubeconfig(path, user={"exec": plugin})))


def test_exec_plugin_gives_a_token_and_runs_again_on_refresh(tmp_path: Path) -> None:
    plugin = _exec_plugin(tmp_path, {"token": "exec-token"})
    seen = tmp_path / "seen.json"
    creds = _exec_credentials(
        tmp_path / "c",
        {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin),
            "args": [str(seen)],
            "env": [{"name": "EXTRA", "value": "yes"}],
            "interactiveMode": "Never",
            "provideClusterInfo": True,
        },
    )
    assert creds.headers() == [("Authorization", "Bearer exec-token")]
    recorded = json.loads(seen.read_text())
    assert recorded["extra"] == "yes"
    assert recorded["info"]["spec"] == {"interactive": False, "cluster": {"server": "https://dev:6443"}}
    seen.unlink()
    assert creds.refresh()
    assert creds.headers() == [("Authorization", "Bearer exec-token")]
    assert seen.exists()


def test_exec_plugin_failures(tmp_path: Path) -> None:
    failing = _exec_plugin(tmp_path, {}, exit_code=3)
    creds = _exec_credentials(
        tmp_path / "c",
        {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": str(failing),
            "args": [str(tmp_path / "x")],
        },
    )
    with pytest.raises(Unreachable, match=r"failed \(exit 3\): log in again"):
        creds.headers()
    missing = _exec_credentials(
        tmp_path / "d",
        {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "no-such-plugin-here",
            "installHint": "brew it",
        },
    )
    with pytest.raises(Unreachable, match="brew it"):
        missing.headers()


def test_in_cluster_service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    creds = load_credentials()
    assert creds.server == "https://10.0.0.1:443"
    assert creds.token_file is not None and creds.token_file.endswith("serviceaccount/token")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(Unreachable, match="no kubeconfig found"):
        load_credentials()

"""Kubeconfig files for a local control plane: one for the admin, one per test user, and minted ones.

They are written as JSON, which is YAML too: every kubeconfig reader (kubectl, the `kubernetes`
client, kopf) takes it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path

from devenv.pki import ControlPlanePki, write_private

_NAME = "jitaccess-test"
ADMIN_FILE = "admin.kubeconfig"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _kubeconfig(server: str, ca_pem: bytes, user_name: str, credentials: Mapping[str, str]) -> bytes:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": _NAME, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [{"name": user_name, "user": dict(credentials)}],
        "contexts": [{"name": _NAME, "context": {"cluster": _NAME, "user": user_name}}],
        "current-context": _NAME,
    }
    return (json.dumps(config, indent=2) + "\n").encode()


def _file_name(user: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in user)


def write_admin(directory: Path, server: str, pki: ControlPlanePki) -> Path:
    """The admin's kubeconfig (client certificate in ``system:masters``)."""
    credentials = {
        "client-certificate-data": _b64(pki.admin_cert.read_bytes()),
        "client-key-data": _b64(pki.admin_key.read_bytes()),
    }
    return write_private(directory / ADMIN_FILE, _kubeconfig(server, pki.ca_pem, "admin", credentials))


def write_users(directory: Path, server: str, pki: ControlPlanePki, tokens: Mapping[str, str]) -> dict[str, Path]:
    """One kubeconfig per test user, authenticating with its bearer token: user name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    return {
        name: write_private(
            directory / f"{_file_name(name)}.kubeconfig", _kubeconfig(server, pki.ca_pem, name, {"token": token})
        )
        for name, token in tokens.items()
    }


def write_client_cert_user(directory: Path, server: str, ca_pem: bytes, user: str, cert: bytes, key: bytes) -> Path:
    """A kubeconfig authenticating as ``user`` by a client certificate (`devenv.pki.issue_client_cert`)."""
    directory.mkdir(parents=True, exist_ok=True)
    credentials = {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}
    return write_private(directory / f"{_file_name(user)}.kubeconfig", _kubeconfig(server, ca_pem, user, credentials))


def write_token_user(directory: Path, server: str, ca_pem: bytes, user: str, token: str) -> Path:
    """A kubeconfig authenticating as ``user`` with a bearer token (a ServiceAccount's, say)."""
    directory.mkdir(parents=True, exist_ok=True)
    return write_private(
        directory / f"{_file_name(user)}.kubeconfig", _kubeconfig(server, ca_pem, user, {"token": token})
    )

"""The certificates and keys of one local control plane, written as PEM files into a directory.

A throwaway CA (`trustme`, made for test certificates) signs the kube-apiserver's serving
certificate and an admin client certificate; the API server reads a client certificate's
organization as its group, so the admin is in ``system:masters``. Service-account tokens are
signed with a key pair of their own. The operator's webhook certificates are another matter
(`jitaccess.adapters.tls`, part of the product).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

#: The names the API server is reached by: loopback, and the in-cluster Service (IP and DNS).
SERVING_NAMES: Final = (
    "127.0.0.1",
    "10.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


def write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, readable by this user only."""
    path.touch(mode=0o600)
    path.write_bytes(data)
    return path


class ControlPlanePki:
    """The files: `ca_file`, `serving_cert`/`serving_key`, `admin_cert`/`admin_key`, `sa_private`/`sa_public`."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="jitaccess-test")
        self.ca_pem = ca.cert_pem.bytes()
        self.ca_file = directory / "ca.crt"
        self.ca_file.write_bytes(self.ca_pem)

        serving = ca.issue_cert(*SERVING_NAMES, common_name="kube-apiserver")
        self.serving_cert = directory / "apiserver.crt"
        self.serving_cert.write_bytes(b"".join(pem.bytes() for pem in serving.cert_chain_pems))
        self.serving_key = write_private(directory / "apiserver.key", serving.private_key_pem.bytes())

        admin = ca.issue_cert("admin", common_name="admin", organization_name="system:masters")
        self.admin_cert = directory / "admin.crt"
        self.admin_cert.write_bytes(admin.cert_chain_pems[0].bytes())
        self.admin_key = write_private(directory / "admin.key", admin.private_key_pem.bytes())

        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_private = write_private(
            directory / "sa.key",
            sa_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        self.sa_public = directory / "sa.pub"
        self.sa_public.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

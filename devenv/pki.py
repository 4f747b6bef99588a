"""The certificates and keys of one local control plane, written as PEM files into a directory.

A throwaway CA (`trustme`, made for test certificates) signs the kube-apiserver's serving
certificate and an admin client certificate; the API server reads a client certificate's common
name as the user and each organization as a group, so the admin is in ``system:masters``. The CA's
key is kept (``ca.key``, this user only), so that `issue_client_cert` can make a user of any name
and groups while the API server runs. Service-account tokens are
signed with a key pair of their own. The operator's webhook certificates are another matter
(`jitaccess.adapters.tls`, part of the product).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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
CA_CERT: Final = "ca.crt"
CA_KEY: Final = "ca.key"
#: How long a minted client certificate is valid: longer than any local run.
_CLIENT_CERT_DAYS: Final = 30


def write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, readable by this user only."""
    path.touch(mode=0o600)
    path.write_bytes(data)
    return path


class ControlPlanePki:
    """The files: `ca_file`/`ca_key`, `serving_cert`/`serving_key`, `admin_cert`/`admin_key`, `sa_private`/`sa_public`."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="jitaccess-test")
        self.ca_pem = ca.cert_pem.bytes()
        self.ca_file = directory / CA_CERT
        self.ca_file.write_bytes(self.ca_pem)
        self.ca_key = write_private(directory / CA_KEY, ca.private_key_pem.bytes())

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


def issue_client_cert(directory: Path, user: str, groups: Sequence[str]) -> tuple[bytes, bytes]:
    """A client certificate for ``user`` in ``groups``, signed by the CA kept in ``directory``: (certificate, key) as PEM.

    The common name is the user, and each group an organization of its own (trustme takes one).
    """
    if not user:
        raise ValueError("a user name is required")
    ca_cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
    ca_key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TypeError(f"unexpected CA key type {type(ca_key).__name__} in {directory / CA_KEY}")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
        + [x509.NameAttribute(NameOID.COMMON_NAME, user)]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=_CLIENT_CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem

"""TLS for the admission webhook server: a private CA and a serving certificate, generated here.

The API server calls webhooks over HTTPS only, and checks the serving certificate against the
`caBundle` of the webhook configuration and against the host it calls (subject alternative names;
the common name is ignored). In a cluster the chart mounts a certificate (cert-manager, say) and
none of this runs; for local runs and tests the operator makes its own at start-up.

kopf can generate a self-signed certificate itself, but through `certbuilder`/`oscrypto`, which
fail on OpenSSL 3; the `cryptography` package is a dependency already.
"""

from __future__ import annotations

import atexit
import datetime as dt
import ipaddress
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Children (the API server) may run with a clock slightly behind ours.
_CLOCK_SKEW = dt.timedelta(hours=1)


@dataclass(frozen=True)
class ServingFiles:
    """PEM files: the server's certificate and key, and the CA that API servers trust it by."""

    certfile: Path
    keyfile: Path
    cafile: Path


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _subject_alternative_names(hostnames: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for hostname in dict.fromkeys(hostnames):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(hostname)))
        except ValueError:
            names.append(x509.DNSName(hostname))
    return names


def generate_serving_files(
    hostnames: Sequence[str], directory: Path, *, valid_for: dt.timedelta = dt.timedelta(days=365)
) -> ServingFiles:
    """Write a fresh CA and a serving certificate for `hostnames` (DNS names or IPs) into `directory`."""
    if not hostnames:
        raise ValueError("a serving certificate needs at least one hostname")
    now = dt.datetime.now(dt.UTC)
    not_before, not_after = now - _CLOCK_SKEW, now + valid_for

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jitaccess-webhook-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_subject_alternative_names(hostnames)), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    directory.mkdir(parents=True, exist_ok=True)
    files = ServingFiles(directory / "tls.crt", directory / "tls.key", directory / "ca.crt")
    files.keyfile.touch(mode=0o600)
    files.keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    files.certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.cafile.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return files


def temporary_serving_files(hostnames: Sequence[str]) -> ServingFiles:
    """`generate_serving_files` into a private temp dir, removed when the process exits.

    The CA's key is never written: nothing else is ever signed with it.
    """
    directory = Path(tempfile.mkdtemp(prefix="jitaccess-webhook-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return generate_serving_files(hostnames, directory)

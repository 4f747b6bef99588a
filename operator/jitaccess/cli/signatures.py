"""The public half of the audit archive's signing key, for `audit --verify --public-key FILE`.

The file is what `aws kms get-public-key` gives (DER, or its base64 with `--output text`) or the
same key as PEM; an EC P-256 key checks ECDSA_SHA_256 signatures, an RSA key RSASSA_PSS_SHA_256
(`jitaccess.adapters.signing` signs with those). The key comes from the verifier, never from the
batches: a batch names its signing key, but a forger would name their own.

`cryptography` is imported when a key is read: other commands never pay for it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from pathlib import Path

from jitaccess.cli.errors import UsageError


def check_of(path: str) -> Callable[[bytes, str], bool]:
    """Whether a base64 signature is of the message under the key in `path`; a file that holds no
    such key is a usage error that says what the file must be."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"--public-key {path}: cannot read it ({exc.strerror})") from exc
    key = None
    for load in (load_pem_public_key, load_der_public_key):
        for candidate in (raw, _unbase64(raw)):
            if candidate is None:
                continue
            try:
                key = load(candidate)
                break
            except ValueError:
                continue
        if key is not None:
            break
    fix = "give the file `aws kms get-public-key --key-id KEY --output text --query PublicKey` writes (or its PEM)"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise UsageError(f"--public-key {path}: an EC key on {key.curve.name}; the archive is signed with P-256")
        ec_key = key

        def valid(message: bytes, signature: str) -> bool:
            try:
                ec_key.verify(base64.b64decode(signature, validate=True), message, ec.ECDSA(hashes.SHA256()))
            except (InvalidSignature, binascii.Error, ValueError):
                return False
            return True

        return valid
    if isinstance(key, rsa.RSAPublicKey):
        rsa_key = key

        def valid_rsa(message: bytes, signature: str) -> bool:
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            try:
                rsa_key.verify(base64.b64decode(signature, validate=True), message, pss, hashes.SHA256())
            except (InvalidSignature, binascii.Error, ValueError):
                return False
            return True

        return valid_rsa
    raise UsageError(f"--public-key {path}: no EC P-256 or RSA public key in it; {fix}")


def _unbase64(raw: bytes) -> bytes | None:
    try:
        return base64.b64decode(b"".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        return None

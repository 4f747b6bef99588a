"""Checking the signatures of the audit archive's batches with the public half of the signing key.

An EC P-256 key checks ECDSA_SHA_256 signatures and an RSA key RSASSA_PSS_SHA_256 (with the salt
length AWS KMS uses, the digest's, or any: `PSS.AUTO`), which is what `jitaccess.adapters.signing`
has KMS make. The algorithm comes from the key, never from the batch's metadata: a forger writes
that too. Used by `kubectl jit audit --verify --public-key` and by the operator when it reads back
batches (a batch its key did not sign is not taken as the operator's).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
    load_pem_public_key,
)


@dataclass(frozen=True)
class Verifier:
    """One public key: `valid(message, signature)` for a base64 signature; `fingerprint` the SHA-256
    of the key (SubjectPublicKeyInfo, DER), to say which key checked."""

    key: Any
    fingerprint: str

    def valid(self, message: bytes, signature: str) -> bool:
        try:
            raw = base64.b64decode(signature, validate=True)
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                self.key.verify(raw, message, ec.ECDSA(hashes.SHA256()))
            else:
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
                self.key.verify(raw, message, pss, hashes.SHA256())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


def verifier(data: bytes) -> Verifier:
    """The key in `data`: PEM, DER, or base64 of DER (as `aws kms get-public-key --output text`
    writes it). `ValueError` saying what is wrong when it holds no EC P-256 or RSA public key."""
    key = None
    for candidate in (data, _unbase64(data)):
        for load in (load_pem_public_key, load_der_public_key):
            if candidate is None or key is not None:
                continue
            try:
                key = load(candidate)
            except (ValueError, UnsupportedAlgorithm):
                continue
    if isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"an EC key on {key.curve.name}; the archive is signed with P-256 (ECC_NIST_P256) or RSA")
    if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise ValueError("no EC P-256 or RSA public key in it")
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return Verifier(key, hashlib.sha256(der).hexdigest())


def _unbase64(data: bytes) -> bytes | None:
    try:
        return base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return None

"""The public half of the audit archive's signing key, for `audit --verify --public-key FILE`.

The file is what `aws kms get-public-key --output text --query PublicKey` writes (base64 of DER),
the DER itself or PEM (`jitaccess.domain.signatures` reads it). `--public-key` may be given more
than once, for a window across a key rotation: a batch passes when one of the keys signed it. The
keys come from the verifier, never from the batches: a batch names its signing key, but a forger
would name their own.

`cryptography` is imported when a key is read: other commands never pay for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from jitaccess.cli.errors import UsageError

FIX = "give the file `aws kms get-public-key --key-id KEY --output text --query PublicKey` writes (or its PEM)"


def check_of(paths: Sequence[str]) -> tuple[Callable[[bytes, str], bool], list[str]]:
    """Whether a base64 signature is of the message under one of the keys in `paths`, and the keys'
    fingerprints; a file that holds no such key is a usage error that says what the file must be."""
    from jitaccess.domain import signatures

    verifiers = []
    for path in paths:
        if not path.strip():
            raise UsageError(f"--public-key needs a file: {FIX}")
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"--public-key {path}: cannot read it ({exc.strerror})") from exc
        try:
            verifiers.append(signatures.verifier(data))
        except ValueError as exc:
            raise UsageError(f"--public-key {path}: {exc}; {FIX}") from exc

    def valid(message: bytes, signature: str) -> bool:
        return any(v.valid(message, signature) for v in verifiers)

    return valid, [v.fingerprint for v in verifiers]

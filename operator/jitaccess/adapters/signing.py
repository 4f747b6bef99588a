"""Signs each audit batch with an AWS KMS asymmetric key (`kms:Sign`), so that a batch that
verifies can only have been written by whoever may sign with that key: the operator's role.

The chain of digests (`jitaccess.domain.chain`) shows a batch changed, deleted or slipped in, but
anyone who can write the bucket can compute a digest; a signature they cannot make. The private
key never leaves KMS; `kubectl jit audit --verify --public-key FILE` checks the signatures offline
with the key's public half (`aws kms get-public-key`).

What is signed is `chain.signed_message`: the batch's key, the link it carries to the batch before
it and the digest of its bytes, in RAW mode (KMS hashes it with SHA-256). Keys of spec
ECC_NIST_P256 (ECDSA_SHA_256) and RSA_2048/3072/4096 (RSASSA_PSS_SHA_256) are taken; the key is
looked up once (DescribeKey), at the first batch, and a key that cannot sign is said plainly.
Batches the operator reads back (after a restart, or as a new leader) count as its own only when
the key signed them (`signed`, with the public half from `kms:GetPublicKey`).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from jitaccess.adapters.archive import ArchiveUnavailable, describe
from jitaccess.domain import chain, signatures

#: The signing algorithm for each key spec taken (SHA-256 throughout, as the chain's digests).
ALGORITHMS = {
    "ECC_NIST_P256": "ECDSA_SHA_256",
    "RSA_2048": "RSASSA_PSS_SHA_256",
    "RSA_3072": "RSASSA_PSS_SHA_256",
    "RSA_4096": "RSASSA_PSS_SHA_256",
}
SETTING = "audit.s3.signingKey (JITACCESS_AUDIT_SIGNING_KEY)"


class BatchSigner:
    """One KMS key that signs the archive's batches."""

    def __init__(self, client: Any, key_id: str) -> None:
        self._client, self.key_id = client, key_id
        self._lock = threading.Lock()
        self._key: tuple[str, str] | None = None  # (ARN, algorithm), once looked up
        self._public: signatures.Verifier | None = None

    @classmethod
    def connect(cls, key_id: str, *, region: str | None = None, endpoint_url: str | None = None) -> BatchSigner:
        config = Config(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=5, read_timeout=15)
        # A key named by its ARN lives in the ARN's region, whatever the bucket's.
        parts = key_id.split(":")
        if key_id.startswith("arn:") and len(parts) > 3 and parts[3]:
            region = parts[3]
        client = boto3.session.Session(region_name=region).client("kms", endpoint_url=endpoint_url, config=config)
        return cls(client, key_id)

    def signed(self, key: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        """Whether the batch at `key` carries a signature this key made (checked here, with the
        key's public half: `kms:GetPublicKey` once). Batches read back from the archive are taken
        as the operator's only then: someone who can write the bucket but not sign could otherwise
        plant a batch claiming the ids of records not archived yet, which would never be sent."""
        signature = metadata.get(chain.SIGNATURE)
        if not signature:
            return False
        return self._verifier().valid(chain.signed_message(key, data, metadata), signature)

    def _verifier(self) -> signatures.Verifier:
        arn, _ = self._looked_up()
        with self._lock:
            if self._public is None:
                try:
                    der = self._client.get_public_key(KeyId=arn)["PublicKey"]
                except (ClientError, BotoCoreError) as exc:
                    raise ArchiveUnavailable(
                        f"{SETTING}: cannot read the public half of {arn} to check the batches read back "
                        f"(kms:GetPublicKey): {_describe(exc)}"
                    ) from exc
                self._public = signatures.verifier(der)
            return self._public

    def sign(self, message: bytes) -> dict[str, str]:
        """The S3 metadata that carries the signature of `message`; `ArchiveUnavailable` when KMS
        did not sign it this time (the batch waits, as for S3), with the fix when it never will."""
        arn, algorithm = self._looked_up()
        try:
            answer = self._client.sign(KeyId=arn, Message=message, MessageType="RAW", SigningAlgorithm=algorithm)
        except (ClientError, BotoCoreError) as exc:
            raise ArchiveUnavailable(
                f"KMS did not sign the batch with {arn}: {_describe(exc)} (the key of {SETTING}: "
                "is it enabled, and may the operator's role use kms:Sign on it?)"
            ) from exc
        return {
            chain.SIGNATURE: base64.b64encode(answer["Signature"]).decode(),
            chain.SIGNED_BY: arn,
            chain.SIGNING_ALGORITHM: algorithm,
        }

    def _looked_up(self) -> tuple[str, str]:
        with self._lock:
            if self._key is not None:
                return self._key
            try:
                meta = self._client.describe_key(KeyId=self.key_id)["KeyMetadata"]
            except (ClientError, BotoCoreError) as exc:
                raise ArchiveUnavailable(f"{SETTING} {self.key_id!r}: cannot look it up: {_describe(exc)}") from exc
            spec = str(meta.get("KeySpec") or meta.get("CustomerMasterKeySpec") or "")
            problem = None
            if meta.get("KeyUsage") != "SIGN_VERIFY" or spec not in ALGORITHMS:
                problem = (
                    f"is a {spec or 'key'} for {meta.get('KeyUsage')}: create an asymmetric key with "
                    f"--key-usage SIGN_VERIFY --key-spec ECC_NIST_P256 (or RSA_2048/3072/4096) and name it here"
                )
            elif meta.get("KeyState") != "Enabled":
                problem = f"is {meta.get('KeyState')}: enable it (or name an enabled key)"
            if problem is not None:
                raise ArchiveUnavailable(f"{SETTING} {self.key_id!r} {problem}")
            self._key = (str(meta["Arn"]), ALGORITHMS[spec])
            return self._key


def _describe(exc: Exception) -> str:
    return describe(exc) if isinstance(exc, ClientError) else str(exc)

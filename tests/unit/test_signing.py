"""Signed audit batches: the operator's signer (adapters/signing.py) against KMS as moto serves it,
and `audit --verify --public-key` (cli/signatures.py, domain/chain.py) with the key's public half as
`aws kms get-public-key` gives it. A batch rewritten by someone who cannot sign with the key, even
with its chain recomputed, shows; so does one with no signature."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from moto import mock_aws

from jitaccess.adapters.archive import Archive, ArchiveUnavailable
from jitaccess.adapters.kube import Kube
from jitaccess.adapters.signing import BatchSigner
from jitaccess.cli.errors import UsageError
from jitaccess.cli.signatures import check_of
from jitaccess.domain import chain
from jitaccess.handlers.archive import AuditTrail
from jitaccess.settings import Settings, SettingsError, load
from tests.unit.test_chain import line


@pytest.fixture
def kms() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("kms", region_name="eu-west-1")


def signing_key(kms: Any, spec: str = "ECC_NIST_P256") -> str:
    return str(kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec=spec)["KeyMetadata"]["KeyId"])


def public_key_file(kms: Any, key_id: str, tmp_path: Path, text: bool = True) -> str:
    """As `aws kms get-public-key --output text --query PublicKey` writes it (base64 of DER), or raw DER."""
    der = kms.get_public_key(KeyId=key_id)["PublicKey"]
    path = tmp_path / f"{key_id}.pub"
    path.write_bytes(base64.b64encode(der) if text else der)
    return str(path)


def signed_line(signer: BatchSigner, count: int) -> list[chain.Stored]:
    """`count` batches as the operator writes them with a signing key (the signature is not part of
    the link the next batch carries, so each batch is signed as it stands)."""
    return [
        chain.Stored(s.key, s.data, s.metadata | signer.sign(chain.signed_message(s.key, s.data or b"", s.metadata)))
        for s in line(count)
    ]


def problems(stored: list[chain.Stored], check: Any) -> list[str]:
    return [
        f"{f.key.removesuffix('.jsonl')[-1]}: {f.text}"
        for f in chain.verify(stored, lambda _: None, check)
        if f.problem
    ]


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "RSA_2048"])
def test_signed_batches_verify_and_a_rewritten_chain_does_not(kms: Any, tmp_path: Path, spec: str) -> None:
    key_id = signing_key(kms, spec)
    signer = BatchSigner(kms, key_id)
    stored = signed_line(signer, 4)
    arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    assert {s.metadata[chain.SIGNED_BY] for s in stored} == {arn}
    check, fingerprints = check_of([public_key_file(kms, key_id, tmp_path)])
    assert [len(f) for f in fingerprints] == [64]
    assert problems(stored, check) == []
    # The batches from the third on rewritten with a chain of digests that holds: no signature can be made.
    forged = b'{"id": "made-up/approved"}\n'
    meta = chain.metadata(forged, chain.link_to(stored[1].key, stored[1].data or b"", stored[1].metadata))
    stored[2] = chain.Stored(stored[2].key, forged, {**meta, chain.SIGNATURE: stored[2].metadata[chain.SIGNATURE]})
    relinked = chain.metadata(stored[3].data or b"", chain.link_to(stored[2].key, forged, stored[2].metadata))
    stored[3] = chain.Stored(stored[3].key, stored[3].data, relinked)
    assert problems(stored, check) == [
        "2: its signature does not verify with the public key given: not signed by it",
        "3: not signed: written before signing was turned on, or not by the operator",
    ]
    assert [f for f in chain.verify(stored, lambda _: None) if f.problem] == [], "the chain alone cannot tell"


def test_a_signature_by_another_key_does_not_verify(kms: Any, tmp_path: Path) -> None:
    stored = signed_line(BatchSigner(kms, signing_key(kms)), 2)
    other = public_key_file(kms, signing_key(kms), tmp_path, text=False)
    assert problems(stored, check_of([other])[0]) == [
        "0: its signature does not verify with the public key given: not signed by it",
        "1: its signature does not verify with the public key given: not signed by it",
    ]


def test_a_window_across_a_key_rotation_verifies_with_both_keys(kms: Any, tmp_path: Path) -> None:
    old, new = signing_key(kms), signing_key(kms, "RSA_3072")
    stored = signed_line(BatchSigner(kms, old), 2) + signed_line(BatchSigner(kms, new), 4)[2:]
    both = check_of([public_key_file(kms, old, tmp_path), public_key_file(kms, new, tmp_path)])[0]
    assert problems(stored, both) == []
    assert problems(stored, check_of([public_key_file(kms, new, tmp_path)])[0]) == [
        "0: its signature does not verify with the public key given: not signed by it",
        "1: its signature does not verify with the public key given: not signed by it",
    ]


def test_the_operator_takes_back_only_batches_its_key_signed(kms: Any) -> None:
    """Read back after a restart: a batch planted by someone who can write the bucket but not sign,
    claiming the ids of records not archived yet, is not taken as written (they are written anew)."""
    signer, outsider = BatchSigner(kms, signing_key(kms)), BatchSigner(kms, signing_key(kms))
    genuine, planted = signed_line(signer, 1)[0], signed_line(outsider, 2)[1]
    assert signer.signed(genuine.key, genuine.data or b"", genuine.metadata)
    assert not signer.signed(planted.key, planted.data or b"", planted.metadata)
    unsigned = {k: v for k, v in genuine.metadata.items() if k != chain.SIGNATURE}
    assert not signer.signed(genuine.key, genuine.data or b"", unsigned)
    assert not signer.signed("audit/v1/elsewhere.jsonl", genuine.data or b"", genuine.metadata), "moved: not it"


def test_a_key_that_cannot_sign_is_named_with_the_fix(kms: Any) -> None:
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ArchiveUnavailable, match=r"JITACCESS_AUDIT_SIGNING_KEY.*--key-usage SIGN_VERIFY"):
        BatchSigner(kms, symmetric).sign(b"batch")
    disabled = signing_key(kms)
    kms.disable_key(KeyId=disabled)
    with pytest.raises(ArchiveUnavailable, match="is Disabled: enable it"):
        BatchSigner(kms, disabled).sign(b"batch")
    with pytest.raises(ArchiveUnavailable, match="cannot look it up: NotFoundException"):
        BatchSigner(kms, "alias/no-such-key").sign(b"batch")


def test_a_public_key_file_that_is_not_one_is_a_usage_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pub"
    junk.write_text("not a key\n")
    with pytest.raises(UsageError, match=r"no EC P-256 or RSA public key in it; give the file `aws kms get-public-key"):
        check_of([str(junk)])
    with pytest.raises(UsageError, match="cannot read it"):
        check_of([str(tmp_path / "missing.pub")])
    # An empty value (an unset variable in a script) never means "no key": it is refused.
    with pytest.raises(UsageError, match="--public-key needs a file"):
        check_of([""])
    p384 = tmp_path / "p384.pem"
    public = ec.generate_private_key(ec.SECP384R1()).public_key()
    p384.write_bytes(public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(UsageError, match=r"an EC key on secp384r1; the archive is signed with P-256"):
        check_of([str(p384)])


def test_a_signing_key_without_an_archive_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITACCESS_AUDIT_SIGNING_KEY", "alias/jitaccess-audit")
    monkeypatch.delenv("JITACCESS_AUDIT_BUCKET", raising=False)
    with pytest.raises(SettingsError, match="set JITACCESS_AUDIT_BUCKET too, or unset the signing key"):
        load()
    assert Settings(audit_bucket="audit", audit_signing_key="alias/jitaccess-audit").audit_signing_key


def test_read_back_ids_of_a_batch_the_key_did_not_sign_are_archived_anew(kms: Any) -> None:
    from tests.unit.test_audit_trail import Bucket, Cluster

    signer = BatchSigner(kms, signing_key(kms))
    bucket = Bucket()
    for stored, by in (
        (signed_line(signer, 1)[0], signer),
        (signed_line(BatchSigner(kms, signing_key(kms)), 2)[1], None),
    ):
        bucket.objects[stored.key], bucket.metadata[stored.key] = stored.data or b"", stored.metadata
        assert (by is signer) == signer.signed(stored.key, stored.data or b"", stored.metadata)
    trail = AuditTrail(cast(Kube, Cluster()), cast(Archive, bucket), signer=signer)
    try:
        trail._cover(cast(Archive, bucket), datetime(2026, 12, 1, tzinfo=UTC))  # what a restarted writer reads back
        assert set(trail._known) == {"u0/requested"}, "u1's batch was signed by another key: not taken as written"
    finally:
        trail.close()

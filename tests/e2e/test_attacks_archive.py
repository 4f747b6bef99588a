"""Attacks 102 and 103 of docs/security.md. 102: rewriting the audit archive. Whoever can write the bucket (an
administrator of the AWS account, a leaked key with s3:PutObject) replaces a batch with one of their
own (its digest recomputed to match), deletes another, and slips a made-up batch in: the operator
writes each batch naming the one before it, and `kubectl jit audit --verify` shows every change.
Against the real operator (two processes one after the other: a restart continues the chain) and
the emulator's S3, in a bucket with Object Lock but no default retention, so nothing stops the
writes themselves.

Attack 103: no trace of an extension. An extension asked and denied, or withdrawn, had no record
of its own, and went with its grant: an approver who deleted the grant (or retention) took the
only evidence along. Now each is archived, and an extension leaves with its grant only once its
records are in the bucket.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections import Counter
from typing import Any

import pytest

from jitaccess.api import audit, names
from jitaccess.domain import chain
from tests.e2e.cli_run import Cli
from tests.e2e.test_attacks import ALICE, LENA, PAULA
from tests.e2e.test_audit_archive import archive_records, archiving_operator
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e

PAYMENTS, LEDGER = "prod-eng-payments", "prod-eng-ledger"
PREFIX = "audit"


def batches(system: Jit, bucket: str) -> list[str]:
    listed = system.ic.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/")
    return sorted(item["Key"] for item in listed.get("Contents", []))


def granted_and_archived(system: Jit, bucket: str, name: str, operator: Any) -> None:
    """One auto-approved request, its records in a batch of their own (the operator writes each
    second: the next request waits until these are in)."""
    system.request(name, PAYMENTS, user=ALICE)
    granted = system.wait_reason("accessgrant", name, "Active")
    uid = granted["metadata"]["labels"][names.LABEL_REQUEST]

    def in_archive() -> bool:
        s3 = system.ic.client("s3")
        ids = {
            json.loads(line)["id"]
            for key in batches(system, bucket)
            for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
            if line.strip()
        }
        return f"{uid}/requested" in ids and f"{granted['metadata']['uid']}/granted" in ids

    eventually(in_archive, timeout=30, interval=0.3, what=f"{name}'s records archived:\n{operator.tail(20)}")


def verify(cli: Cli, location: str) -> tuple[int, list[dict[str, Any]], str]:
    result = cli.run("audit", "--verify", "--since", "1d", "--archive", location, "-o", "json", user=PAULA)
    document = json.loads(result.out) if result.out.strip() else {}
    return result.code, document.get("findings", []), result.err


# --- 102. rewriting the audit archive: a batch replaced, one deleted, one slipped in ------------------------


def test_102_a_rewritten_archive_shows_every_change(
    system: Jit, archived: tuple[Jit, str], cli: Cli, tmp_path: Any
) -> None:
    bucket = archived[1]
    location = f"s3://{bucket}/{PREFIX}"
    cli.env.update(system.ic.env())  # the archive is read with the reader's own AWS credentials
    operator = archiving_operator(system, tmp_path, bucket).start()
    try:
        for n in range(4):
            granted_and_archived(system, bucket, f"chain-{n}", operator)
    finally:
        operator.stop()
    # A restart (or a new leader) continues the chain from the newest batch in the bucket.
    operator = archiving_operator(system, tmp_path, bucket).start()
    try:
        granted_and_archived(system, bucket, "chain-4", operator)
    finally:
        operator.stop()
    assert "audit archive: the chain continues from" in operator.log_file.read_text(), operator.tail(40)
    keys = batches(system, bucket)
    assert len(keys) >= 5, keys
    s3 = system.ic.client("s3")
    for before, after in itertools.pairwise(keys):
        got = s3.get_object(Bucket=bucket, Key=before)
        named = chain.link_to(before, got["Body"].read(), got["Metadata"]).text()
        assert s3.head_object(Bucket=bucket, Key=after)["Metadata"][chain.PREVIOUS] == named

    code, findings, err = verify(cli, location)
    assert code == 0, (findings, err)
    assert [f for f in findings if f["problem"]] == []
    assert f"{len(keys)} batch(es) of {location}" in err and "each follows the one before it" in err

    # Replaced: the same key, a made-up approval, its digest recomputed and its link kept.
    replaced = keys[1]
    head = s3.head_object(Bucket=bucket, Key=replaced)["Metadata"]
    forged = audit.encode_lines([{"schema": audit.SCHEMA, "id": "made-up/approved", "action": "approved"}])
    s3.put_object(
        Bucket=bucket,
        Key=replaced,
        Body=forged,
        Metadata=chain.metadata(forged, chain.Link.parse(head[chain.PREVIOUS])),
    )
    # Deleted: the current version becomes a delete marker.
    deleted = keys[3]
    s3.delete_object(Bucket=bucket, Key=deleted)
    # Slipped in: a batch of its own after the first, named as the operator names them.
    slipped = keys[0].rsplit("-", 1)[0] + "-ffffffffffffffff.jsonl"
    first = s3.get_object(Bucket=bucket, Key=keys[0])
    s3.put_object(
        Bucket=bucket,
        Key=slipped,
        Body=forged,
        Metadata=chain.metadata(forged, chain.link_to(keys[0], first["Body"].read(), first["Metadata"])),
    )

    code, findings, err = verify(cli, location)
    assert code == 6, (code, findings, err)
    problems = {(f["key"], f["detail"]) for f in findings if f["problem"]}
    assert (replaced, "the bucket holds 2 versions of it: jitaccess writes a key once") in problems
    assert any(key == replaced and "changed or replaced since" in detail for key, detail in problems), problems
    assert (deleted, "deleted (its current version is a delete marker)") in problems
    assert (keys[4], f"follows {deleted}, which is missing: deleted?") in problems
    assert (keys[2], "no later batch follows it: the one after it is missing, or it was slipped in") in problems
    assert any(key == keys[0] and "2 batches follow it" in detail for key, detail in problems), problems
    assert "the archive is not as jitaccess wrote it" in err
    # The table says the same to a person.
    table = cli.run("audit", "--verify", "--since", "1d", "--archive", location, user=PAULA)
    assert table.code == 6 and f"{deleted}   PROBLEM   deleted" in table.out, table


# --- 105. the archive rewritten from some batch on, its chain recomputed: the signatures show it ----------


def test_105_batches_rewritten_with_their_chain_recomputed_fail_the_signing_keys_check(
    system: Jit, archived: tuple[Jit, str], cli: Cli, tmp_path: Any
) -> None:
    """Whoever can write the bucket can recompute every digest and link: attack 102's checks then
    see nothing. With a KMS signing key, the operator signs each batch, and `--verify --public-key`
    finds every batch that its key did not sign, the slipped-in one and the rewritten one alike."""
    bucket = archived[1]
    location = f"s3://{bucket}/{PREFIX}"
    cli.env.update(system.ic.env())
    kms = system.ic.client("kms")
    key_id = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]
    public_key = tmp_path / "audit-signing.pub"
    public_key.write_bytes(base64.b64encode(kms.get_public_key(KeyId=key_id)["PublicKey"]))
    signing = {"JITACCESS_AUDIT_SIGNING_KEY": key_id, "JITACCESS_AUDIT_KMS_ENDPOINT_URL": system.ic.endpoint_url}
    operator = archiving_operator(system, tmp_path, bucket, **signing).start()
    try:
        for n in range(3):
            granted_and_archived(system, bucket, f"signed-{n}", operator)
    finally:
        operator.stop()
    assert "each batch is signed with KMS key" in operator.log_file.read_text(), operator.tail(40)
    keys = batches(system, bucket)
    s3 = system.ic.client("s3")

    def signed(*extra: str) -> tuple[int, list[dict[str, Any]], str]:
        result = cli.run("audit", "--verify", "--since", "1d", "--archive", location, "-o", "json",
                         "--public-key", str(public_key), *extra, user=PAULA)  # fmt: skip
        document = json.loads(result.out) if result.out.strip() else {}
        if document:
            assert document["signatures"]["checked"] is True and len(document["signatures"]["publicKeySha256"]) == 1
        return result.code, document.get("findings", []), result.err

    code, findings, err = signed()
    assert code == 0 and [f for f in findings if f["problem"]] == [], (findings, err)
    assert "each signed with the key given" in err, err
    # An empty value (a variable a script forgot to set) is refused, never taken as "no key".
    empty = cli.run("audit", "--verify", "--since", "1d", "--archive", location, "--public-key", "", user=PAULA)
    assert empty.code == 2 and "--public-key needs a file" in empty.err, empty

    # From the second batch on, the line is written again by hand: the same keys' successors, made-up
    # records, every digest and link recomputed as the operator computes them, the old signature kept.
    forged = audit.encode_lines([{"schema": audit.SCHEMA, "id": "made-up/approved", "action": "approved"}])
    first = s3.get_object(Bucket=bucket, Key=keys[0])
    previous = chain.link_to(keys[0], first["Body"].read(), first["Metadata"])
    rewritten = [key.rsplit("-", 1)[0] + "-eeeeeeeeeeeeeeee.jsonl" for key in keys[1:]]
    for old, new in zip(keys[1:], rewritten, strict=True):
        meta = chain.metadata(forged, previous)
        carried = s3.head_object(Bucket=bucket, Key=old)["Metadata"]
        meta[chain.SIGNATURE] = carried[chain.SIGNATURE]  # a real signature, of another batch
        s3.put_object(Bucket=bucket, Key=new, Body=forged, Metadata=meta)
        s3.delete_object(Bucket=bucket, Key=old)
        previous = chain.link_to(new, forged, meta)
    # Without the key, the chain looks whole but for the delete markers the versioned bucket keeps.
    code, findings, _ = verify(cli, location)
    assert not any(f["key"] in rewritten for f in findings if f["problem"]), findings
    code, findings, err = signed()
    assert code == 6, (code, findings, err)
    problems = {(f["key"], f["detail"]) for f in findings if f["problem"]}
    for key in rewritten:
        assert (key, "its signature does not verify with the public key given: not signed by it") in problems
    assert not any(key == keys[0] for key, _ in problems), problems
    # A file that is no public key is said, before the archive is read.
    public_key.write_text("-----BEGIN NOTHING-----\n")
    code, _, err = signed()
    assert code == 2 and "--public-key" in err and "aws kms get-public-key" in err, err


# --- 103. no trace of an extension: its grant deleted while the archive is unreachable ---------------


def extend(jit: Jit, name: str, grant: str, user: str) -> None:
    manifest = {
        "apiVersion": names.API_VERSION,
        "kind": names.ACCESS_EXTENSION,
        "metadata": {"name": name},
        "spec": {"grant": grant, "duration": "10s", "reason": "INC-7 the apply runs on"},
    }
    jit.apply(manifest, user=user, verb="create")


def test_103_an_extension_denied_or_withdrawn_leaves_its_records_whatever_becomes_of_its_grant(
    archived: tuple[Jit, str], tmp_path: Any
) -> None:
    """An extension asked and denied, one withdrawn, one applied: each is its own evidence (who
    asked, who denied, who withdrew), archived exactly once. An approver deletes the grant while S3
    refuses every write (revoking it first: attack 124): its extensions stay until their records are in the bucket, and so does the
    withdrawn one (the records finalizer)."""
    jit, bucket = archived
    operator = archiving_operator(jit, tmp_path, bucket).start()
    grant = "audit-ext"
    kept = ("audit-ext-denied", "audit-ext-applied")
    try:
        jit.request(grant, LEDGER, duration="1h", user=ALICE)
        jit.wait_reason("accessrequest", grant, "Pending")
        jit.kubectl("annotate", "accessrequest", grant, "jitaccess.dev/approved=true", user=LENA)
        jit.wait_reason("accessgrant", grant, names.ACTIVE)
        jit.ic.faults.flaky("PutObject", 1.0)
        extend(jit, "audit-ext-denied", grant, ALICE)
        jit.wait_reason("accessextension", "audit-ext-denied", "Pending")
        deny = ("jitaccess.dev/denied=true", "jitaccess.dev/decision-reason=finish tomorrow")
        jit.kubectl("annotate", "accessextension", "audit-ext-denied", *deny, user=LENA)
        jit.wait_reason("accessextension", "audit-ext-denied", names.DENIED)
        extend(jit, "audit-ext-withdrawn", grant, ALICE)
        withdrawn_uid = jit.wait_reason("accessextension", "audit-ext-withdrawn", "Pending")["metadata"]["uid"]
        # S3 refuses every write: the withdrawn extension stays (held by the records finalizer), and
        # a `kubectl delete` that waited would wait for S3.
        jit.kubectl("delete", "accessextension", "audit-ext-withdrawn", "--wait=false", user=ALICE)
        extend(jit, "audit-ext-applied", grant, ALICE)
        jit.kubectl("annotate", "accessextension", "audit-ext-applied", "jitaccess.dev/approved=true", user=LENA)
        jit.wait_reason("accessextension", "audit-ext-applied", names.EXTENDED)
        # Revoked (a live grant is not deleted: attack 124), then deleted at once: the grant stays
        # until its `revoked` record is archived.
        jit.kubectl("annotate", "accessgrant", grant, "jitaccess.dev/revoked=true", user=LENA)
        jit.wait_reason("accessgrant", grant, names.REVOKED)
        jit.kubectl("delete", "accessgrant", grant, "--wait=false", user=LENA)
        eventually(lambda: ALICE not in jit.members(LEDGER) or None, timeout=10, what="alice out of the group")
        time.sleep(6)  # six batches' time, every PUT refused
        for name in (*kept, "audit-ext-withdrawn"):
            assert jit.get("accessextension", name) is not None, f"{name} left before its records were archived"
        deleting = jit.get("accessgrant", grant)
        assert deleting is not None and deleting["metadata"].get("deletionTimestamp"), "held until archived"
        jit.ic.faults.clear()
        eventually(
            lambda: (
                (
                    all(jit.get("accessextension", name) is None for name in (*kept, "audit-ext-withdrawn"))
                    and jit.get("accessgrant", grant) is None
                )
                or None
            ),
            timeout=30,
            interval=0.5,
            what=f"gone with their grant once archived:\n{operator.tail(20)}",
        )
    finally:
        operator.stop()
    records = archive_records(jit, bucket)
    assert all(n == 1 for n in Counter(r["id"] for r in records).values()), "each record once"
    of_extensions = {(r["extension"], r["action"]): r for r in records if r.get("kind") == names.ACCESS_EXTENSION}
    assert sorted(of_extensions) == [
        ("audit-ext-applied", "extension-requested"),
        ("audit-ext-denied", "extension-denied"),
        ("audit-ext-denied", "extension-requested"),
        ("audit-ext-withdrawn", "extension-requested"),
        ("audit-ext-withdrawn", "extension-withdrawn"),
    ]
    asked = of_extensions[("audit-ext-denied", "extension-requested")]
    assert asked["actor"]["username"] == ALICE and asked["grant"] == grant and asked["extendedBy"] == "10s"
    denied = of_extensions[("audit-ext-denied", "extension-denied")]
    assert denied["actor"]["username"] == LENA and denied["decisionReason"] == "finish tomorrow"
    assert denied["entitlement"] == LEDGER
    [granted] = [r for r in records if r["action"] == "granted"]
    assert granted["ownerTeam"] and denied["ownerTeam"] == granted["ownerTeam"], "the grant's owner team"
    assert of_extensions[("audit-ext-withdrawn", "extension-withdrawn")]["id"] == f"{withdrawn_uid}/extension-withdrawn"
    # The one applied is the grant's own record, with its approver.
    [extended] = [r for r in records if r["action"] == "extended"]
    assert extended["extension"] == "audit-ext-applied" and extended["actor"]["username"] == LENA
    # Who withdrew one: the webhook's audit line (AdmissionDeleted), which the docs point to.
    said = f"AccessExtension audit-ext-withdrawn ({ALICE}, Pending) deleted by {ALICE}"
    assert said in operator.log_file.read_text(), operator.tail(40)


# --- 104. a withdrawal with no record: deleted while S3 is down, then the operator killed ------------------


def test_104_a_withdrawal_is_archived_even_when_the_operator_dies_before_writing_it(
    archived: tuple[Jit, str], tmp_path: Any
) -> None:
    """The webhook gives a new request the records finalizer: deleted, it stays (its approval
    refused) until its `withdrawn` record is in the archive, through S3 failing and a SIGKILL of the
    operator; then it goes, and the record is dated by the API server's deletionTimestamp."""
    jit, bucket = archived
    operator = archiving_operator(jit, tmp_path, bucket).start()
    try:
        jit.request("audit-held", LEDGER, user=ALICE)
        held = jit.wait_reason("accessrequest", "audit-held", "Pending")
        assert held["metadata"]["finalizers"] == [names.RECORDS_FINALIZER], held["metadata"]
        uid = held["metadata"]["uid"]
        jit.ic.faults.flaky("PutObject", 1.0)
        jit.kubectl("delete", "accessrequest", "audit-held", "--wait=false", user=ALICE)
        deleted = jit.get("accessrequest", "audit-held")
        assert deleted is not None and deleted["metadata"].get("deletionTimestamp"), "held by its finalizer"
        approval = jit.kubectl(
            "annotate", "accessrequest", "audit-held", f"{names.ANNOTATION_APPROVED}=true", user=LENA, check=False
        )
        assert approval.returncode != 0 and "was deleted at" in approval.stderr, approval.stderr
        # Nor can an approver (RBAC lets them patch requests) let it go unrecorded.
        unheld = '{"metadata":{"finalizers":null}}'
        dropped = jit.kubectl(
            "patch", "accessrequest", "audit-held", "--type=merge", "-p", unheld, user=LENA, check=False
        )
        assert dropped.returncode != 0 and names.RECORDS_FINALIZER in dropped.stderr, dropped.stderr
        time.sleep(3)  # three batches' time, every PUT refused
        operator.kill()
    finally:
        operator.stop()
    assert jit.get("accessrequest", "audit-held") is not None, "no record archived: still held"
    assert not any(r["id"] == f"{uid}/withdrawn" for r in archive_records(jit, bucket))
    jit.ic.faults.clear()
    operator = archiving_operator(jit, tmp_path, bucket).start()
    try:
        eventually(
            lambda: jit.get("accessrequest", "audit-held") is None,
            timeout=30,
            interval=0.3,
            what=f"the withdrawn request let go once archived:\n{operator.tail(20)}",
        )
    finally:
        operator.stop()
    (record,) = [r for r in archive_records(jit, bucket) if r["id"] == f"{uid}/withdrawn"]
    assert record["time"] == deleted["metadata"]["deletionTimestamp"]

"""Attack 102 of docs/security.md: rewriting the audit archive. Whoever can write the bucket (an
administrator of the AWS account, a leaked key with s3:PutObject) replaces a batch with one of their
own (its digest recomputed to match), deletes another, and slips a made-up batch in: the operator
writes each batch naming the one before it, and `kubectl jit audit --verify` shows every change.
Against the real operator (two processes one after the other: a restart continues the chain) and
the emulator's S3, in a bucket with Object Lock but no default retention, so nothing stops the
writes themselves.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from jitaccess.api import audit, names
from jitaccess.domain import chain
from tests.e2e.cli_run import Cli
from tests.e2e.test_attacks import ALICE, PAULA
from tests.e2e.test_audit_archive import archiving_operator
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e

PAYMENTS = "prod-eng-payments"
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

"""The audit archive (docs/audit.md) against the real API server, the operator as a process and
moto's S3 in the emulator: every decision's record lands in the bucket exactly once, through S3
failing 30 % of the time and the operator killed twice; retention waits for the archive.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from kubernetes.config import new_client_from_config

from devenv.operator_process import OperatorProcess
from jitaccess.adapters.archive import Archive
from jitaccess.api import audit, names
from tests.support.harness import OPERATOR_ENV, Jit, eventually

PAYMENTS, LEDGER = "prod-eng-payments", "prod-eng-ledger"
ALICE, PAULA, BOB, LENA, MALLORY = (
    "alice@example.com",
    "paula@example.com",
    "bob@example.com",
    "lena@example.com",
    "mallory@example.com",
)
#: Owner-team members, auto-approved: requested, approved, granted, expired (4 records each).
AUTO = ((ALICE, PAYMENTS), (PAULA, PAYMENTS), (BOB, LEDGER), (LENA, LEDGER))
PER_AUTO_USER = 52
#: mallory is in no team: lena approves some (4 records), denies some (2), leaves the rest to time out (2).
PER_MALLORY_FATE = 20
PENDING_TIMEOUT_SECONDS = 30
EXPECTED_RECORDS = 4 * len(AUTO) * PER_AUTO_USER + PER_MALLORY_FATE * (4 + 2 + 2)


def api_as(jit: Jit, user: str | None = None) -> CustomObjectsApi:
    kubeconfig = jit.cluster.user_kubeconfig(user) if user else jit.cluster.admin_kubeconfig
    return CustomObjectsApi(new_client_from_config(str(kubeconfig)))  # type: ignore[no-untyped-call]


def retried(call: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """A write that the webhooks refuse while the operator is down (failurePolicy Fail): again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ApiException as exc:
            if exc.status not in (500, 502, 503, 504) or time.monotonic() > deadline:
                raise AssertionError(f"{what}: {exc.status} {exc.body}") from exc
            time.sleep(0.2)


def create_requests(jit: Jit, user: str, entitlement: str, prefix: str, count: int, duration: str) -> list[str]:
    api = api_as(jit, user)
    made = []
    for n in range(count):
        name = f"{prefix}-{n}"
        body = {
            "apiVersion": names.API_VERSION,
            "kind": names.ACCESS_REQUEST,
            "metadata": {"name": name},
            "spec": {"entitlement": entitlement, "reason": f"INFRA-{n} audit archive", "duration": duration},
        }
        retried(
            functools.partial(api.create_cluster_custom_object, names.GROUP, names.VERSION, names.REQUESTS, body), name
        )
        made.append(name)
    return made


def archiving_operator(jit: Jit, tmp: Any, bucket: str, **env: str) -> OperatorProcess:
    settings = {
        **OPERATOR_ENV,
        "JITACCESS_AUDIT_BUCKET": bucket,
        "JITACCESS_AUDIT_PREFIX": "audit",
        "JITACCESS_AUDIT_ENDPOINT_URL": jit.ic.endpoint_url,
        "JITACCESS_AUDIT_BATCH_SECONDS": "1",
        "JITACCESS_AUDIT_BATCH_RECORDS": "100",
        **env,
    }
    return OperatorProcess(
        jit.cluster.admin_kubeconfig, jit.ic.env(), tmp / f"operator-{time.time_ns()}.log", extra_env=settings
    )


def archive_records(jit: Jit, bucket: str) -> list[dict[str, Any]]:
    archive = Archive(jit.ic.client("s3"), bucket, "audit")
    now = dt.datetime.now(dt.UTC)
    keys = archive.keys_written(now - dt.timedelta(days=1), now + dt.timedelta(minutes=1))
    return [json.loads(line) for key in keys for line in archive.get(key).split(b"\n") if line.strip()]


def everything(api: CustomObjectsApi) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for plural, kind in ((names.REQUESTS, names.ACCESS_REQUEST), (names.GRANTS, names.ACCESS_GRANT)):
        listed: Any = api.list_cluster_custom_object(names.GROUP, names.VERSION, plural)
        objects += [{**item, "kind": kind} for item in listed["items"]]
    return objects


def test_every_decision_is_archived_exactly_once_through_s3_failures_and_two_crashes(
    archived: tuple[Jit, str], tmp_path: Any
) -> None:
    jit, bucket = archived
    # 30 % of S3 calls fail: half before anything is written, half after the object is in place
    # (a write whose answer was lost); listing and reading back fail too.
    for operation in ("PutObject", "GetObject", "ListObjectsV2"):
        jit.ic.faults.flaky(operation, 0.15, seed=16)
        jit.ic.faults.flaky(operation, 0.18, after_apply=True)
    # mallory's 60 requests for ledger's access wait at once: the approval-fatigue limits are off.
    env = {
        "JITACCESS_PENDING_TIMEOUT_SECONDS": str(PENDING_TIMEOUT_SECONDS),
        "JITACCESS_MAX_PENDING_PER_USER": "0",
    }
    operator = archiving_operator(jit, tmp_path, bucket, **env).start()
    admin, lena = api_as(jit), api_as(jit, LENA)
    pool = ThreadPoolExecutor(len(AUTO) + 1)
    try:
        # Three waves of owner-team requests (1 s grants); the operator is killed (SIGKILL) in the
        # middle of the work of each of the first two, and started again.
        for wave in range(3):
            share = PER_AUTO_USER // 3 + (PER_AUTO_USER % 3 if wave == 2 else 0)
            prefixes = [f"w{wave}-{user.split('@')[0]}" for user, _ in AUTO]
            list(
                pool.map(
                    create_requests,
                    [jit] * len(AUTO),
                    *zip(*AUTO, strict=True),
                    prefixes,
                    [share] * len(AUTO),
                    ["1s"] * len(AUTO),
                )
            )
            if wave < 2:
                time.sleep(1.5)
                operator.kill()
                operator = archiving_operator(jit, tmp_path, bucket, **env).start()
        fates = list(
            pool.map(
                lambda fate: create_requests(jit, MALLORY, LEDGER, f"mallory-{fate}", PER_MALLORY_FATE, "1s"),
                ("approved", "denied", "timeout"),
            )
        )
        for fate, flag in ((fates[0], names.ANNOTATION_APPROVED), (fates[1], names.ANNOTATION_DENIED)):
            for name in fate:
                jit.wait_reason("accessrequest", name, names.PENDING, timeout=30)
                patch = {"metadata": {"annotations": {flag: "true"}}}
                retried(
                    lambda name=name, patch=patch: lena.patch_cluster_custom_object(  # type: ignore[misc]
                        names.GROUP,
                        names.VERSION,
                        names.REQUESTS,
                        name,
                        patch,
                        _content_type="application/merge-patch+json",
                    ),
                    name,
                )

        def finished() -> list[dict[str, Any]] | None:
            objects = everything(admin)
            requests = [o for o in objects if o["kind"] == names.ACCESS_REQUEST]
            done = all(ready_reason(o) in names.REQUEST_FINISHED for o in requests)
            return objects if done and not any(audit.unarchived(o) for o in objects) else None

        objects = eventually(
            finished,
            timeout=PENDING_TIMEOUT_SECONDS + 90,
            interval=1.0,
            what=f"all finished and archived:\n{operator.tail(30)}",
        )
    finally:
        pool.shutdown()
        operator.stop()
    failed = dict(jit.ic.faults.injected)
    jit.ic.faults.clear()
    records = archive_records(jit, bucket)
    ids = Counter(r["id"] for r in records)
    assert [rid for rid, n in ids.items() if n > 1] == [], "records archived more than once"
    derived = {r["id"]: r for obj in objects for r in audit.records_of(obj)}
    assert len(derived) == EXPECTED_RECORDS, Counter(r["action"] for r in derived.values())
    assert set(ids) == set(derived), f"lost: {sorted(set(derived) - set(ids))[:10]}"
    # What was archived is what the objects say now: a record never changes once taken.
    assert [r for r in records if r != derived[r["id"]]] == []
    assert failed.get("PutObject", 0) > 0, failed


def ready_reason(obj: dict[str, Any]) -> str | None:
    ready = next((c for c in obj.get("status", {}).get("conditions", []) if c.get("type") == names.READY), None)
    return None if ready is None else str(ready.get("reason"))


def test_retention_waits_for_the_archive(archived: tuple[Jit, str], tmp_path: Any) -> None:
    jit, bucket = archived
    jit.ic.faults.flaky("PutObject", 1.0)
    env = {"JITACCESS_RETENTION_SECONDS": "1"}
    operator = archiving_operator(jit, tmp_path, bucket, **env).start()
    try:
        names_ = create_requests(jit, ALICE, PAYMENTS, "kept", 3, "1s")
        for name in names_:
            jit.wait_reason("accessgrant", name, names.EXPIRED, timeout=30)
        # Two retention passes (every 5 s) with S3 refusing every write: the evidence stays.
        time.sleep(11)
        for name in names_:
            assert jit.get("accessgrant", name) is not None and jit.get("accessrequest", name) is not None
        jit.ic.faults.clear()
        eventually(
            lambda: all(jit.get("accessrequest", n) is None and jit.get("accessgrant", n) is None for n in names_),
            timeout=30,
            interval=0.5,
            what=f"retired once archived:\n{operator.tail(20)}",
        )
    finally:
        operator.stop()
    # Object Lock with no default retention: the operator says at start that the bucket is not write-once.
    said = operator.log_file.read_text()
    assert "is not write-once: Object Lock is on but with no default retention" in said, operator.tail(40)
    archived_ids = Counter(r["id"] for r in archive_records(jit, bucket))
    assert sorted(Counter(rid.split("/", 1)[1] for rid in archived_ids).items()) == [
        ("approved", 3),
        ("expired", 3),
        ("granted", 3),
        ("requested", 3),
    ]
    assert set(archived_ids.values()) == {1}


def test_the_operator_says_whether_the_bucket_keeps_records_for_good(archived: tuple[Jit, str], tmp_path: Any) -> None:
    """A bucket locked in COMPLIANCE mode is said to be at INFO; one with no Object Lock at all at WARNING."""
    jit, _ = archived
    locked = jit.ic.create_bucket(f"audit-{secrets.token_hex(4)}", compliance_days=1)
    plain = jit.ic.create_bucket(f"audit-{secrets.token_hex(4)}")
    for bucket, words in (
        (locked, f"audit archive s3://{locked}/audit: every record is locked in COMPLIANCE mode once written"),
        (plain, f"audit archive s3://{plain}/audit is not write-once: the bucket has no Object Lock"),
    ):
        operator = archiving_operator(jit, tmp_path, bucket).start()
        try:
            log = operator.log_file
            eventually(lambda w=words, f=log: w in f.read_text() or None, timeout=30, what=words)
        finally:
            operator.stop()


def test_a_withdrawn_request_ends_with_a_withdrawn_record(archived: tuple[Jit, str], tmp_path: Any) -> None:
    jit, bucket = archived
    operator = archiving_operator(jit, tmp_path, bucket).start()
    try:
        jit.request("audit-withdrawn", "prod-eng-ledger", user=ALICE)
        uid = jit.wait_reason("accessrequest", "audit-withdrawn", "Pending")["metadata"]["uid"]
        jit.kubectl("delete", "accessrequest", "audit-withdrawn", user=ALICE)

        def withdrawn() -> dict[str, Any] | None:
            return next((r for r in archive_records(jit, bucket) if r["id"] == f"{uid}/withdrawn"), None)

        record = eventually(withdrawn, timeout=30, what=f"the withdrawn record in the archive:\n{operator.tail(20)}")
    finally:
        operator.stop()
    assert record["action"] == "withdrawn" and record["request"] == "audit-withdrawn" and "actor" not in record
    assert record["user"]["username"] == ALICE and record["time"].endswith("Z")
    # Who withdrew it: the webhook's audit line (AdmissionDeleted), which the record points to.
    said = f"AccessRequest audit-withdrawn ({ALICE}, Pending) deleted by {ALICE}"
    assert said in operator.log_file.read_text(), operator.tail(40)


def test_a_deleted_entitlement_goes_once_its_released_record_is_archived(
    archived: tuple[Jit, str], tmp_path: Any
) -> None:
    """When jitaccess stops watching a group is evidence too: a deleted Entitlement is let go
    (`Released`), and goes only once its `released` record is in the archive (S3 refusing meanwhile)."""
    jit, bucket = archived
    name, group = "e2e-audit-released", "e2e-audit-released-group"
    jit.ic.create_group(group)
    operator = archiving_operator(jit, tmp_path, bucket).start()
    try:
        jit.apply({
            "apiVersion": names.API_VERSION,
            "kind": names.ENTITLEMENT,
            "metadata": {"name": name},
            "spec": {"owner": "payments", "identityCenter": {"groupName": group}},
        })  # fmt: skip
        uid = jit.wait_reason("entitlement", name, "Resolved", timeout=30)["metadata"]["uid"]
        jit.ic.faults.flaky("PutObject", 1.0)
        jit.kubectl("delete", "entitlement", name, "--wait=false")
        jit.wait_reason("entitlement", name, names.RELEASED, timeout=30)
        time.sleep(3)  # three batches' time, every PUT refused
        assert jit.get("entitlement", name) is not None, "gone before its record was archived"
        jit.ic.faults.clear()
        eventually(lambda: jit.get("entitlement", name) is None or None, timeout=30, what="let go once archived")
    finally:
        operator.stop()
        jit.kubectl("delete", "entitlement", name, "--ignore-not-found", "--wait=false")
    (record,) = [r for r in archive_records(jit, bucket) if r["id"] == f"{uid}/released"]
    assert record["group"]["name"] == group and record["ownerTeam"] == "payments"
    assert f"no longer watches Identity Center group {group}" in record["message"], record

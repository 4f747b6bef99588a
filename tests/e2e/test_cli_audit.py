"""`kubectl jit audit` and `review` end to end: the real executable reads the records of a real,
auto-approved request from the real cluster (no archive configured), as the users who ask; and
from an S3 archive in the emulator, over HTTP, when one is configured: one the test writes, and
one the operator writes as it decides; and one with a forged copy of a record and an object that is
not JSON lines, which the reports show, warn of and exit 6 for (docs/audit.md). And `--access`
over an absolute window: a grant running across it is listed, and not once it ended before it; the
same period from the operator's archive as from the cluster.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devenv.operator_process import OperatorProcess
from jitaccess.api import audit
from tests.e2e.cli_run import Cli, Result
from tests.support.harness import OPERATOR_ENV, Jit, eventually

pytestmark = pytest.mark.e2e

ALICE, PAULA = "alice@example.com", "paula@example.com"
LENA, MALLORY = "lena@example.com", "mallory@example.com"
PAYMENTS, LEDGER = "prod-eng-payments", "prod-eng-ledger"
REASON = "INC-4711 audit trail e2e"


@pytest.fixture
def cli(cli: Cli) -> Cli:
    """The shared `cli`, reading the cluster unless a test names an archive."""
    cli.env.pop("JITACCESS_AUDIT_ARCHIVE", None)
    return cli


def requested(cli: Cli) -> str:
    result = cli.run("request", PAYMENTS, "--for", "5m", "--reason", REASON, user=ALICE)
    assert result.code == 0, result
    line = next(line for line in result.out.splitlines() if line.startswith("requested "))
    return line.rsplit("accessrequest ", 1)[1].strip()


def of_request(result: Result, name: str, source: str = "cluster") -> list[dict[str, Any]]:
    assert result.code == 0, result
    document = json.loads(result.out)
    assert document["source"] == source
    return [r for r in document["records"] if r.get("request") == name]


def test_audit_json_has_the_records_of_an_auto_approved_request(cli: Cli) -> None:
    name = requested(cli)
    result = cli.run("audit", "-o", "json", user=PAULA)
    assert result.err.startswith("records from the cluster: only the objects it still holds"), result
    records = of_request(result, name)
    assert [r["action"] for r in records] == ["requested", "approved", "granted"], records
    request, approved, granted = records
    assert request["actor"]["username"] == ALICE and request["reason"] == REASON
    assert approved["actor"] == {"username": "system:jitaccess", "via": "auto-approved (owner team)"}
    assert granted["kind"] == "AccessGrant" and granted["user"]["username"] == ALICE
    assert granted["group"]["name"] == PAYMENTS and granted["duration"] == "5m"
    # The owner team the operator looked up names the decision; the request as created has none.
    assert "ownerTeam" not in request and approved["ownerTeam"] == granted["ownerTeam"] == "payments"
    assert request["time"] <= approved["time"] <= granted["time"] < granted["endTime"]
    assert all(r["schema"] == "jitaccess.dev/audit/v1" and r["entitlement"] == PAYMENTS for r in records)
    assert len({r["id"] for r in records}) == 3

    # The same records again: they are derived from the stored objects, not counted twice.
    again = cli.run("audit", "--since", "1h", "--entitlement", PAYMENTS, "--user", "alice", "-o", "json", user=ALICE)
    assert of_request(again, name) == records
    assert of_request(cli.run("audit", "--user", "bob", "-o", "json", user=ALICE), name) == []


def test_a_denial_names_the_owner_team_whose_approver_denied(cli: Cli) -> None:
    pending = cli.run("request", LEDGER, "--for", "5m", "--reason", "INC-12 outsider", "--no-wait", user=MALLORY)
    assert pending.code == 3, pending
    name = next(w for w in pending.out.split() if w.startswith("mallory-"))
    denied = cli.run("deny", name, "--reason", "use the read-only role", user=LENA)
    assert denied.code == 0, denied

    def records() -> list[dict[str, Any]] | None:
        found = of_request(cli.run("audit", "-o", "json", user=LENA), name)
        return found if [r["action"] for r in found] == ["requested", "denied"] else None

    request, denial = eventually(records, timeout=15)
    assert "ownerTeam" not in request
    assert denial["ownerTeam"] == "ledger" and denial["actor"]["username"] == LENA


def test_audit_csv_table_and_review_of_the_same_request(cli: Cli) -> None:
    name = requested(cli)
    rows = list(csv.DictReader(io.StringIO(cli.run("audit", "-o", "csv", user=ALICE).out)))
    mine = [row for row in rows if row["request"] == name]
    assert [(row["action"], row["user"]) for row in mine] == [(a, ALICE) for a in ("requested", "approved", "granted")]
    table = cli.run("audit", user=ALICE)
    assert table.code == 0 and table.out.startswith("TIME ") and name in table.out

    review = cli.run("review", PAYMENTS, "--days", "1", "-o", "json", user=PAULA)
    assert review.code == 0, review
    report = json.loads(review.out)
    alice = next(u for u in report["usage"] if u["user"] == ALICE)
    assert alice["grants"] >= 1 and alice["requests"] >= 1
    assert report["breakGlass"] == {"enabled": False, "unreviewed": []}
    assert not any(g["grant"] == name for g in report["grantsWithoutTicket"])
    text = cli.run("review", PAYMENTS, user=PAULA)
    assert "Break-glass grants not reviewed: none (break-glass is not enabled)" in text.out, text


def test_audit_reads_the_archive_when_the_environment_names_one(cli: Cli, system: Jit) -> None:
    name = requested(cli)
    from_cluster = of_request(cli.run("audit", "-o", "json", user=ALICE), name)
    request, grant = system.get("accessrequest", name), system.get("accessgrant", name)
    assert request is not None and grant is not None
    # The records as the operator's archiver would write them: one gzip batch, dated now.
    bucket, prefix = system.ic.create_bucket(f"audit-{secrets.token_hex(4)}"), "jitaccess/e2e"
    body = gzip.compress(audit.encode_lines(audit.records_of_request(request) + audit.records_of_grant(grant)))
    key = audit.archive_key(prefix, datetime.now(UTC), "e2e") + ".gz"
    system.ic.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    location = f"s3://{bucket}/{prefix}"
    cli.env.update({**system.ic.env(), "JITACCESS_AUDIT_ARCHIVE": location})

    result = cli.run("audit", "-o", "json", user=ALICE)
    assert result.code == 0, result
    assert result.err == f"records from the audit archive {location}\n"
    document = json.loads(result.out)
    assert document["source"] == location
    assert [r for r in document["records"] if r.get("request") == name] == from_cluster

    back = cli.run("audit", "--archive", "", "-o", "json", user=ALICE)
    assert of_request(back, name) == from_cluster, "--archive '' reads the cluster"
    missing = cli.run("audit", "--archive", "s3://no-such-bucket-e2e/x", user=ALICE)
    assert missing.code == 4 and "does not exist" in missing.err, missing


def test_a_forged_copy_of_a_record_and_a_bad_object_are_reported_and_exit_doubtful(cli: Cli, system: Jit) -> None:
    name = requested(cli)
    request, grant = system.get("accessrequest", name), system.get("accessgrant", name)
    assert request is not None and grant is not None
    real = audit.records_of_request(request) + audit.records_of_grant(grant)
    bucket, prefix = system.ic.create_bucket(f"audit-{secrets.token_hex(4)}", object_lock=True), "jitaccess/e2e"
    s3, now = system.ic.client("s3"), datetime.now(UTC)
    real_key = audit.archive_key(prefix, now, "e2e")
    s3.put_object(Bucket=bucket, Key=real_key, Body=audit.encode_lines(real))
    # What Object Lock does not stop: a new object, with an earlier key (read first), holding the
    # approval again with another approver; and an object that is not JSON lines.
    approved = next(r for r in real if r["action"] == "approved")
    forged = {**approved, "actor": {"username": "mallory@example.com"}}
    forged_key = audit.archive_key(prefix, now.replace(hour=0, minute=0, second=0, microsecond=0), "0" * 16)
    bad_key = audit.archive_key(prefix, now, "bad")
    s3.put_object(Bucket=bucket, Key=forged_key, Body=audit.encode_lines([forged]))
    s3.put_object(Bucket=bucket, Key=bad_key, Body=b"this is not json\n")
    location = f"s3://{bucket}/{prefix}"
    cli.env.update(system.ic.env())

    result = cli.run("audit", "--archive", location, "-o", "json", user=PAULA)
    assert result.code == 6, result
    records = json.loads(result.out)["records"]
    assert [r for r in records if r["id"] == approved["id"]] == [forged, approved], (
        "both versions, the first read first"
    )
    assert [r for r in records if r["id"] != approved["id"]] == [r for r in real if r["id"] != approved["id"]]
    assert (
        f"warning: the audit archive holds 2 different records with the id {approved['id']}: "
        f"version 1 in {forged_key}; version 2 in {real_key}"
    ) in result.err, result
    assert f"warning: skipped line 1 of the archive object {bad_key}: not JSON" in result.err, result
    assert result.err.rstrip().splitlines()[-1].startswith("error: the report above is in doubt"), result

    table = cli.run("audit", "--archive", location, user=PAULA)
    assert table.code == 6, table
    marked = [line for line in table.out.splitlines() if "CONFLICT: " in line]
    assert len(marked) == 2 and "mallory@example.com" in "".join(marked), table

    review = cli.run("review", PAYMENTS, "--days", "1", "--archive", location, user=PAULA)
    assert review.code == 6 and review.out.startswith(f"Entitlement {PAYMENTS}"), review
    assert f"version 1 in {forged_key}" in review.err, review

    # Copies that are the same (at-least-once delivery) stay silent, and the exit code 0.
    for digest in ("e2e", "again"):
        key = audit.archive_key(f"{prefix}-clean", now, digest)
        s3.put_object(Bucket=bucket, Key=key, Body=audit.encode_lines(real))
    clean = f"s3://{bucket}/{prefix}-clean"
    again = cli.run("audit", "--archive", clean, "-o", "json", user=PAULA)
    assert again.code == 0 and "warning" not in again.err, again
    assert of_request(again, name, source=clean) == [r for r in real if r.get("request") == name]


@pytest.fixture
def archiving(system: Jit, tmp_path: Path) -> Iterator[str]:
    """The shared operator replaced by one that archives to a fresh bucket (two operators would
    both act on every request); the shared one comes back afterwards. Yields the archive's location."""
    bucket = system.ic.create_bucket(f"audit-{secrets.token_hex(4)}")
    settings = {
        **OPERATOR_ENV,
        "JITACCESS_AUDIT_BUCKET": bucket,
        "JITACCESS_AUDIT_PREFIX": "audit",
        "JITACCESS_AUDIT_ENDPOINT_URL": system.ic.endpoint_url,
        "JITACCESS_AUDIT_BATCH_SECONDS": "1",
    }
    log_file = tmp_path / f"operator-{time.time_ns()}.log"
    operator = OperatorProcess(system.cluster.admin_kubeconfig, system.ic.env(), log_file, extra_env=settings)
    system.operator.stop()
    try:
        operator.start()
        yield f"s3://{bucket}/audit"
    finally:
        operator.stop()
        system.operator.start()


def test_audit_reads_what_the_operator_archived(cli: Cli, system: Jit, archiving: str) -> None:
    name = requested(cli)
    cli.env.update(system.ic.env())

    def archived() -> list[dict[str, Any]]:
        result = cli.run("audit", "--archive", archiving, "--since", "1h", "-o", "json", user=PAULA)
        found = of_request(result, name, source=archiving)
        return found if [r["action"] for r in found] == ["requested", "approved", "granted"] else []

    records = eventually(archived, timeout=30, interval=0.5, what=f"{name}'s records in {archiving}")
    assert records == of_request(cli.run("audit", "--since", "1h", "-o", "json", user=PAULA), name)

    # The same grant as an access period, from the archive the operator wrote, and from the cluster alike.
    started = next(r for r in records if r["action"] == "granted")["startTime"]
    window = ("--since", started, "--until", started)
    from_archive = periods_of(cli, name, "--archive", archiving, *window)
    assert [(p["start"], p["active"], p["approval"]) for p in from_archive] == [(started, True, "auto (owner team)")]
    assert from_archive == periods_of(cli, name, "--archive", "", *window)


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def periods_of(cli: Cli, name: str, *window: str) -> list[dict[str, Any]]:
    result = cli.run("audit", "--access", *window, "-o", "json", user=PAULA)
    assert result.code == 0, result
    return [p for p in json.loads(result.out)["periods"] if p.get("grant") == name]


def test_access_lists_a_grant_running_across_the_window_and_not_one_ended_before_it(cli: Cli, system: Jit) -> None:
    name = requested(cli)
    grant = system.get("accessgrant", name)
    assert grant is not None
    started = datetime.fromisoformat(grant["status"]["activationTime"].replace("Z", "+00:00"))
    time.sleep(1.1)  # records have whole seconds: the window below begins after the grant's start
    inside = ("--since", stamp(started + timedelta(seconds=1)), "--until", stamp(datetime.now(UTC)))

    # Begun before the window and still running: a period; none of its records is in the window.
    [period] = periods_of(
        cli, name, "--since", stamp(started - timedelta(minutes=1)), "--until", stamp(datetime.now(UTC))
    )
    assert (period["start"], period["active"], period["ending"]) == (stamp(started), True, "active"), period
    assert period["user"]["username"] == ALICE and period["approval"] == "auto (owner team)", period
    assert period["reason"] == REASON and period["group"]["name"] == PAYMENTS, period
    assert periods_of(cli, name, *inside) == [period]
    records = cli.run("audit", *inside, "-o", "json", user=PAULA)
    assert of_request(records, name) == [], "records are selected by their time, periods by overlap"

    revoked = cli.run("revoke", name, "--reason", "INC-4711 done", user=PAULA)
    assert revoked.code == 0, revoked

    def ended() -> dict[str, Any] | None:
        found = periods_of(cli, name, "--since", stamp(started), "--until", stamp(datetime.now(UTC)))
        return found[0] if found and not found[0]["active"] else None

    period = eventually(ended, timeout=20, interval=0.5, what=f"{name}'s period ended")
    assert (period["ending"], period["endedBy"], period["endReason"]) == ("revoked", PAULA, "INC-4711 done"), period
    end = datetime.fromisoformat(period["end"].replace("Z", "+00:00"))
    time.sleep(1.1)
    # A window after the end: not listed; one that holds the end: listed.
    assert periods_of(cli, name, "--since", stamp(end + timedelta(seconds=1))) == []
    assert periods_of(cli, name, "--since", stamp(end), "--until", stamp(end + timedelta(hours=1))) == [period]

    backwards = cli.run("audit", "--access", "--since", stamp(end), "--until", stamp(started), user=PAULA)
    assert backwards.code == 2 and f"--until {stamp(started)} is before --since {stamp(end)}" in backwards.err
    no_zone = cli.run("audit", "--until", stamp(end)[:-1], user=PAULA)
    assert no_zone.code == 2 and "argument --until:" in no_zone.err and "2026-11-01T00:00:00Z" in no_zone.err


def test_a_drift_removal_is_archived_with_when_the_scan_first_saw_the_member(
    cli: Cli, system: Jit, archiving: str
) -> None:
    """A member added by hand is removed by the scan; its record starts when the scan first saw it
    (after it was added, at or before its removal), never at a time made up."""
    intruder = f"drift-audit-{secrets.token_hex(3)}@example.com"
    system.ic.seed_users([intruder])
    added = datetime.now(UTC).replace(microsecond=0)
    system.ic.add_member(PAYMENTS, intruder)
    cli.env.update(system.ic.env())

    def archived() -> dict[str, Any] | None:
        result = cli.run("audit", "--archive", archiving, "--since", "1h", "-o", "json", user=PAULA)
        assert result.code == 0, result
        found = [r for r in json.loads(result.out)["records"] if r.get("user", {}).get("username") == intruder]
        return found[0] if found else None

    record = eventually(archived, timeout=60, interval=1, what=f"the drift removal of {intruder} in {archiving}")
    assert record["action"] == "drift-removed" and record["kind"] == "Entitlement", record
    assert record["group"]["name"] == PAYMENTS and record["ownerTeam"] == "payments"
    first_seen, removed = (datetime.fromisoformat(record[k].replace("Z", "+00:00")) for k in ("startTime", "endTime"))
    assert added <= first_seen <= removed <= datetime.now(UTC), record
    assert record["endTime"] == record["time"]
    assert intruder not in system.members(PAYMENTS)

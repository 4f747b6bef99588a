"""`kubectl jit audit` and `review` against a seeded history: golden files for every output format,
the filters, both sources (the cluster, and an S3 archive in moto) giving the same records.

The history (golden/audit/history.yaml) is raw objects as the API server returns them; the
records come from jitaccess.api.audit, as in the plugin. After an intended change of the output,
rewrite the golden files with `JITACCESS_UPDATE_GOLDEN=1 pytest tests/unit/test_cli_reports.py`
and review their diff.
"""

from __future__ import annotations

import argparse
import copy
import csv
import gzip
import io
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from jitaccess.api import audit as records_api
from jitaccess.api import names
from jitaccess.cli import archive, history, main, parser, reports
from jitaccess.cli import objects as o
from jitaccess.cli.errors import DOUBTFUL, NOT_FOUND, Doubtful, NotFound, UsageError
from jitaccess.cli.kube import ApiError
from jitaccess.cli.objects import Identity
from jitaccess.cli.session import ClusterFlags, Session
from jitaccess.domain import chain

GOLDEN = Path(__file__).parent / "golden" / "audit"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BUCKET, PREFIX = "audit-archive", "jitaccess/prod"
LOCATION = f"s3://{BUCKET}/{PREFIX}"
HISTORY = yaml.safe_load((GOLDEN / "history.yaml").read_text())
PLURALS = {
    "entitlements": names.ENTITLEMENTS,
    "catalogs": names.CATALOGS,
    "requests": names.REQUESTS,
    "grants": names.GRANTS,
}


class FakeApi:
    """The seeded objects behind GET of one object or a list."""

    def __init__(self) -> None:
        seeded = copy.deepcopy(HISTORY)
        self.objects = {
            o.path(PLURALS[key], obj["metadata"]["name"]): obj for key, objs in seeded.items() for obj in objs
        }
        self.listed: list[str] = []

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        if path in self.objects:
            return self.objects[path]
        if path.count("/") == 4:
            self.listed.append(path.rsplit("/", 1)[1])
            return {"items": [v for k, v in self.objects.items() if k.startswith(path + "/")], "metadata": {}}
        raise ApiError(404, "NotFound", f"{path} not found", {"name": path.rsplit("/", 1)[1]})

    def close(self) -> None:
        pass


def session() -> Session:
    made = Session(ClusterFlags(), io.StringIO(), io.StringIO(), io.StringIO())
    made.__dict__["api"] = FakeApi()
    made.__dict__["me"] = Identity("paula@example.com", frozenset())
    return made


def out(s: Session) -> str:
    return s.out.getvalue()  # type: ignore[attr-defined, no-any-return]


def err(s: Session) -> str:
    return s.err.getvalue()  # type: ignore[attr-defined, no-any-return]


def options(**changes: Any) -> reports.AuditOptions:
    base: dict[str, Any] = {
        "since": timedelta(days=30),
        "entitlement": None,
        "user": None,
        "archive": "",
        "output": "json",
    }
    return reports.AuditOptions(**{**base, **changes})


def audit(**changes: Any) -> Session:
    s = session()
    assert reports.audit(s, options(**changes), now=NOW) == 0
    return s


def audited(**changes: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(out(audit(**changes)))["records"]
    return records


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("JITACCESS_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file (see this module's docstring)"


def all_records() -> list[dict[str, Any]]:
    found = [r for q in HISTORY["requests"] for r in records_api.records_of_request(q)]
    found += [r for g in HISTORY["grants"] for r in records_api.records_of_grant(g)]
    found += [r for c in HISTORY["catalogs"] for r in records_api.records_of_catalog(c)]
    return found + [r for e in HISTORY["entitlements"] for r in records_api.records_of_entitlement(e)]


# --- audit: golden files --------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["table", "json", "csv"])
def test_audit_output_matches_its_golden_file(output: str) -> None:
    s = audit(output=output)
    assert_golden(f"audit.{output}", out(s))
    assert err(s).startswith("records from the cluster: only the objects it still holds")


def test_the_golden_json_holds_the_records_of_the_window_unchanged_oldest_first() -> None:
    document = json.loads((GOLDEN / "audit.json").read_text())
    assert document["source"] == "cluster"
    assert document["since"] == "2026-10-31T12:00:00Z"
    in_window = [r for r in all_records() if r["time"] >= "2026-10-31T12:00:00Z"]
    assert sorted(document["records"], key=lambda r: r["id"]) == sorted(in_window, key=lambda r: r["id"])
    times = [r["time"] for r in document["records"]]
    assert times == sorted(times)
    first, second = document["records"][:2]
    assert first["time"] == second["time"], "the seed has a request and its approval in one second"
    assert (first["action"], second["action"]) == ("requested", "approved"), "in the order of the object's life"
    assert {r["action"] for r in document["records"]} == {
        "requested", "approved", "denied", "escalated", "timed-out", "not-eligible",
        "granted", "extended", "revoked", "expired", "drift-removed", "assignment-drift-removed",
    }  # fmt: skip
    assert not any(r["name"].endswith("old01") for r in document["records"])


def test_the_table_and_csv_escape_what_would_act_on_a_terminal_or_a_spreadsheet() -> None:
    table, rows = (GOLDEN / "audit.table").read_text(), (GOLDEN / "audit.csv").read_text()
    for text in (table, rows):
        assert "\x1b" not in text and "\x07" not in text
        assert "\\x1b[2J" in text
    mallory = next(line for line in rows.splitlines() if "mallory" in line and ",requested," in line)
    assert ',"\'=HYPERLINK(""http://x"") INC-1\\x1b[2J\\x1b]0;ok\\x07",' in mallory
    assert rows.splitlines()[0] == ",".join(reports.CSV_COLUMNS)


# --- audit: filters and window ----------------------------------------------------------------------


def test_since_narrows_the_window() -> None:
    records = audited(since=timedelta(hours=12))
    assert [(r["action"], r["name"]) for r in records] == [
        ("requested", "lena-prod-eng-ledger-llll1"),
        ("approved", "lena-prod-eng-ledger-llll1"),
        ("granted", "lena-prod-eng-ledger-llll1"),
        ("extended", "lena-prod-eng-ledger-llll1"),
    ]
    assert len(audited(since=timedelta(days=90))) == len(audited()) + 4  # alice's request and grant of October


def test_entitlement_filter() -> None:
    records = audited(entitlement="prod-eng-ledger")
    assert [r["action"] for r in records] == ["requested", "approved", "granted", "extended"]
    assert {r["entitlement"] for r in records} == {"prod-eng-ledger"}


def test_user_filter_matches_the_user_or_the_actor_by_username_or_local_part() -> None:
    paula = audited(user="paula")
    assert [(r["action"], r["name"]) for r in paula] == [
        ("approved", "bob-prod-eng-payments-bbbb1"),
        ("revoked", "bob-prod-eng-payments-bbbb1"),
        ("approved", "bob-prod-eng-payments-bbbb2"),
    ]
    bob = audited(user="bob@example.com")
    assert {r["user"]["username"] for r in bob} == {"bob@example.com"} and len(bob) == 8
    assert audited(user="bo") == []


def test_an_empty_window_says_so_on_stderr() -> None:
    s = audit(output="table", entitlement="nothing-here")
    assert out(s) == ""
    assert "No records in this window." in err(s)


# --- the archive --------------------------------------------------------------------------------------


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def put_batch(s3: Any, written: datetime, records: list[dict[str, Any]], *, zipped: bool = False) -> None:
    body = records_api.encode_lines(records)
    key = records_api.archive_key(PREFIX, written, f"batch{len(records)}")
    s3.put_object(Bucket=BUCKET, Key=key + (".gz" if zipped else ""), Body=gzip.compress(body) if zipped else body)


def test_the_archive_gives_the_same_records_as_the_cluster(s3: Any) -> None:
    records = sorted(all_records(), key=lambda r: r["time"])
    old = [r for r in records if r["time"] < "2026-11-01"]
    recent = [r for r in records if r["time"] >= "2026-11-01"]
    put_batch(s3, datetime(2026, 10, 1, 10, 1, tzinfo=UTC), old)  # a day folder before the window
    half = len(recent) // 2
    put_batch(s3, datetime(2026, 11, 25, 15, 0, tzinfo=UTC), recent[:half], zipped=True)
    put_batch(s3, datetime(2026, 11, 30, 11, 59, tzinfo=UTC), recent[half - 2 :])  # two written twice
    s3.put_object(Bucket=BUCKET, Key="jitaccess/other/v1/2026/11/30/x.jsonl", Body=b'{"id": "elsewhere"}\n')

    s = audit(archive=LOCATION)
    document = json.loads(out(s))
    assert document["source"] == LOCATION
    assert err(s) == f"records from the audit archive {LOCATION}\n"
    assert document["records"] == json.loads((GOLDEN / "audit.json").read_text())["records"]


def test_the_archive_is_read_from_the_day_of_the_start_less_the_skew_up_to_today() -> None:
    # A record of 00:03 may be in the batch the operator, its clock behind, dated 23:58 the day before;
    # the folders after the window's end are read as well: batches are filed when written.
    just_after_midnight, now = datetime(2026, 11, 29, 0, 3, tzinfo=UTC), datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    assert timedelta(minutes=5) == records_api.SKEW
    assert archive.folders(PREFIX, just_after_midnight, now) == [
        "jitaccess/prod/v1/2026/11/28/",
        "jitaccess/prod/v1/2026/11/29/",
        "jitaccess/prod/v1/2026/11/30/",
        "jitaccess/prod/v1/2026/12/01/",
    ]
    # The caller's clock behind the operator's: tomorrow's folder, once within the skew of midnight.
    assert archive.folders("", now, datetime(2026, 12, 1, 23, 58, tzinfo=UTC)) == ["v1/2026/12/01/", "v1/2026/12/02/"]
    # A window far in the past: each month wholly inside is one folder, not thirty.
    assert archive.folders("", datetime(2026, 9, 30, 12, 0, tzinfo=UTC), now) == [
        "v1/2026/09/30/",
        "v1/2026/10/",
        "v1/2026/11/",
        "v1/2026/12/01/",
    ]
    assert archive.folders("", datetime(2025, 12, 1, 0, 10, tzinfo=UTC), datetime(2026, 2, 28, 23, 0, tzinfo=UTC)) == [
        "v1/2025/12/",
        "v1/2026/01/",
        "v1/2026/02/",
    ]


def test_verify_checks_the_batches_written_in_the_day_folders_of_the_window() -> None:
    start, end = datetime(2026, 11, 29, 23, 0, tzinfo=UTC), datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    assert archive.day_prefixes(PREFIX, start, end) == [
        "jitaccess/prod/v1/2026/11/29/",
        "jitaccess/prod/v1/2026/11/30/",
        "jitaccess/prod/v1/2026/12/01/",
        "jitaccess/prod/v1/2026/12/02/",
    ]
    assert archive.day_prefixes("", end, end) == ["v1/2026/12/01/", "v1/2026/12/02/"]


FRIDAY = datetime(2026, 11, 27, tzinfo=UTC)


def fridays_records() -> list[dict[str, Any]]:
    found = sorted((r for r in all_records() if r["time"].startswith("2026-11-27")), key=lambda r: r["time"])
    assert found, "the seed has records of Friday 27 November"
    return found


def test_records_archived_days_after_their_window_are_found(s3: Any) -> None:
    # S3 down over the weekend: Friday's records are written on Monday, in Monday's folder.
    put_batch(s3, datetime(2026, 11, 30, 9, 0, tzinfo=UTC), fridays_records())
    records = audited(since=FRIDAY, until=FRIDAY + timedelta(days=1) - timedelta(seconds=1), archive=LOCATION)
    assert records == fridays_records()


def test_a_record_of_just_after_midnight_in_the_folder_of_the_day_before_is_found(s3: Any) -> None:
    early = a_record(id="early/approved", time="2026-11-28T00:00:10Z")
    put_batch(s3, datetime(2026, 11, 27, 23, 59, 58, tzinfo=UTC), [early])  # the operator's clock behind
    assert audited(since=datetime(2026, 11, 28, tzinfo=UTC), archive=LOCATION) == [early]


def test_a_forged_copy_written_after_the_window_is_a_conflict(s3: Any) -> None:
    real = fridays_records()[-1]
    forged = {**real, "actor": {"username": "mallory@example.com"}}
    put_batch(s3, datetime(2026, 11, 27, 18, 0, tzinfo=UTC), fridays_records())
    s3.put_object(
        Bucket=BUCKET,
        Key=records_api.archive_key(PREFIX, datetime(2026, 11, 29, 3, 0, tzinfo=UTC), "forged"),
        Body=records_api.encode_lines([forged]),
    )
    s = session()
    window = {"since": FRIDAY, "until": FRIDAY + timedelta(days=1), "archive": LOCATION}
    with pytest.raises(Doubtful, match=re.escape("1 id(s) with conflicting records")):
        reports.audit(s, options(**window), now=NOW)
    document = json.loads(out(s))
    assert [c["id"] for c in document["conflicts"]] == [real["id"]]
    assert [r for r in document["records"] if r["id"] == real["id"]] == [real, forged]


def test_a_window_keeps_every_version_of_a_conflict_it_holds_and_none_after_it() -> None:
    real, late = a_record(time="2026-11-27T10:00:00Z"), a_record(id="late/approved", time="2026-11-29T10:00:00Z")
    moved = {**real, "time": "2026-11-29T09:00:00Z"}  # a forged copy under another time
    late_forged = {**late, "reason": "forged"}
    records, conflicts = history.unique([("k1", real), ("k2", moved), ("k3", late), ("k4", late_forged)])
    found = history.History(LOCATION, records, conflicts)
    cut, kept = found.until(FRIDAY + timedelta(days=1), records)
    assert [c.id for c in cut.conflicts] == [real["id"]], "the conflict after the window is not this report's"
    assert kept == [real, moved]
    assert cut.records == records and cut.source == LOCATION


@pytest.mark.parametrize(
    ("location", "parsed"),
    [("s3://b-1/a/b/", ("b-1", "a/b")), ("s3://b-1", ("b-1", "")), ("s3://b-1/", ("b-1", ""))],
)
def test_archive_locations(location: str, parsed: tuple[str, str]) -> None:
    assert archive.parse_location(location) == parsed


@pytest.mark.parametrize("location", ["b-1/prefix", "s3:///prefix", "https://b-1.s3.amazonaws.com/x"])
def test_a_location_that_is_not_s3_is_a_usage_error(location: str) -> None:
    with pytest.raises(UsageError, match="s3://BUCKET/PREFIX"):
        archive.parse_location(location)


# --- the archive: what the reader checks ----------------------------------------------------------


def a_record(**changes: Any) -> dict[str, Any]:
    return {**all_records()[0], **changes}


def test_decode_keeps_each_record_with_its_key_and_skips_each_bad_line_by_number() -> None:
    good, other = a_record(), a_record(id="other/approved", reason="a\u2028b\u0085c")  # U+2028 is no line end
    lines = [
        records_api.encode_lines([good]),
        b"not json\n",
        b"\n",  # blank: not counted as bad, still numbered
        b'"a string"\n',
        b'{"schema": "jitaccess.dev/audit/v2", "id": "x/approved", "action": "approved"}\n',
        json.dumps({**good, "id": ""}).encode() + b"\n",
        json.dumps({k: v for k, v in good.items() if k != "action"}).encode() + b"\n",
        json.dumps({**good, "time": 17}).encode() + b"\n",
        b"\xff\xfe\n",
        records_api.encode_lines([other]),
    ]
    read = archive.Read()
    archive.decode("k1.jsonl", b"".join(lines), read)
    assert read.records == [("k1.jsonl", good), ("k1.jsonl", other)]
    skipped = [(s.key, s.line, s.why.split(" (")[0].split(":")[0]) for s in read.skipped]
    assert skipped == [
        ("k1.jsonl", 2, "not JSON"),
        ("k1.jsonl", 4, "not an audit record"),
        ("k1.jsonl", 5, "not an audit record of schema jitaccess.dev/audit/v1"),
        ("k1.jsonl", 6, "not an audit record"),
        ("k1.jsonl", 7, "not an audit record"),
        ("k1.jsonl", 8, "not an audit record"),
        ("k1.jsonl", 9, "not UTF-8"),
    ]
    assert "'id' is missing" in read.skipped[3].why and "'action' is missing" in read.skipped[4].why
    assert read.skipped[0].described == "skipped line 2 of the archive object k1.jsonl: " + read.skipped[0].why


@pytest.mark.parametrize("key", ["k.jsonl.gz", "k.jsonl"])
def test_decode_skips_a_whole_object_that_is_not_gzip_or_cut_short(key: str) -> None:
    read = archive.Read()
    archive.decode(key, b"\x1f\x8bcut short" if key == "k.jsonl" else b"plain text\n", read)
    assert read.records == []
    assert [(s.key, s.line) for s in read.skipped] == [(key, None)]
    assert read.skipped[0].described.startswith(f"skipped the archive object {key}: not gzip, or cut short")


def test_unique_keeps_identical_copies_once_and_every_version_of_a_conflicting_id() -> None:
    real, other = a_record(), a_record(id="b/granted")
    forged = {**real, "actor": {"username": "mallory@example.com"}}
    records, conflicts = history.unique(
        [("k0", forged), ("k1", real), ("k2", other), ("k3", real), ("k3", real), ("k4", other)]
    )
    assert records == [forged, real, other]
    assert conflicts == [history.Conflict(real["id"], [(["k0"], forged), (["k1", "k3"], real)])]
    assert conflicts[0].described.startswith(
        f"the audit archive holds 2 different records with the id {real['id']}: version 1 in k0; version 2 in k1, k3;"
    )
    assert history.unique([("k1", real), ("k2", dict(real))]) == ([real], []), "at-least-once: no conflict"


def test_history_warns_after_the_report_and_raises_doubtful_only_when_in_doubt() -> None:
    s = session()
    history.History("cluster", []).warn(s)
    assert err(s) == ""
    real = a_record()
    doubtful = history.History(
        LOCATION,
        [real],
        history.unique([("k0", {**real, "reason": "x"}), ("k1", real)])[1],
        [archive.Skipped("k2", 3, "not JSON (boom)")],
    )
    with pytest.raises(
        Doubtful, match=r"1 id\(s\) with conflicting records.*1 unreadable object\(s\) or line\(s\)"
    ) as raised:
        doubtful.warn(s)
    assert raised.value.code == DOUBTFUL == 6
    assert err(s).splitlines() == [
        f"warning: the audit archive holds 2 different records with the id {real['id']}: version 1 in k0; "
        "version 2 in k1; all are in the report, marked CONFLICT, and at most one is what the operator wrote",
        "warning: skipped line 3 of the archive object k2: not JSON (boom)",
    ]


def forged_approval(s3: Any) -> tuple[dict[str, Any], dict[str, Any], str, str]:
    """The archive as the operator wrote it, and a new object with an earlier key holding a copy of
    one approval with another approver (what Object Lock does not stop)."""
    records = sorted(all_records(), key=lambda r: r["time"])
    put_batch(s3, datetime(2026, 11, 30, 11, 59, tzinfo=UTC), records)
    real = next(r for r in records if r["action"] == "approved" and r["time"] >= "2026-11-01")
    forged = {**real, "actor": {"username": "mallory@example.com"}}
    early = records_api.archive_key(PREFIX, datetime(2026, 11, 30, 0, 0, tzinfo=UTC), "0000000000000000")
    s3.put_object(Bucket=BUCKET, Key=early, Body=records_api.encode_lines([forged]))
    real_key = records_api.archive_key(PREFIX, datetime(2026, 11, 30, 11, 59, tzinfo=UTC), f"batch{len(records)}")
    return real, forged, early, real_key


def test_a_forged_copy_of_a_record_is_reported_with_both_versions_and_doubtful(s3: Any) -> None:
    real, forged, early, real_key = forged_approval(s3)
    s = session()
    with pytest.raises(Doubtful, match=re.escape("1 id(s) with conflicting records")):
        reports.audit(s, options(archive=LOCATION), now=NOW)
    document = json.loads(out(s))
    assert [r for r in document["records"] if r["id"] == real["id"]] == [forged, real]
    others = [r for r in document["records"] if r["id"] != real["id"]]
    assert others == [r for r in json.loads((GOLDEN / "audit.json").read_text())["records"] if r["id"] != real["id"]]
    assert document["conflicts"] == [
        {"id": real["id"], "versions": [{"keys": [early], "record": forged}, {"keys": [real_key], "record": real}]}
    ]
    assert f"warning: the audit archive holds 2 different records with the id {real['id']}: " in err(s)
    assert f"version 1 in {early}; version 2 in {real_key}" in err(s)

    table = session()
    with pytest.raises(Doubtful):
        reports.audit(table, options(archive=LOCATION, output="table"), now=NOW)
    marked = [line for line in out(table).splitlines() if "CONFLICT: " in line]
    assert len(marked) == 2 and any("mallory@example.com" in line for line in marked), out(table)


def test_the_command_prints_the_report_then_the_warnings_and_exits_doubtful(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, _, early, _ = forged_approval(s3)
    monkeypatch.setattr(Session, "api", FakeApi(), raising=False)
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main.run(["audit", "--archive", LOCATION, "--since", "30d", "-o", "json"], io.StringIO(), stdout, stderr)
    assert code == DOUBTFUL, stderr.getvalue()
    assert json.loads(stdout.getvalue())["conflicts"][0]["id"] == real["id"]
    assert stderr.getvalue().splitlines()[-1].startswith("error: the report above is in doubt")
    assert early in stderr.getvalue()


@pytest.mark.parametrize("body", [b"not json\n", b"\x1f\x8bcut short", b"\xff\xfe\n"])
def test_an_archive_object_that_is_not_json_lines_is_skipped_by_name_and_the_rest_reported(
    s3: Any, body: bytes
) -> None:
    put_batch(s3, datetime(2026, 11, 30, 11, 59, tzinfo=UTC), sorted(all_records(), key=lambda r: r["time"]))
    key = records_api.archive_key(PREFIX, NOW, "bad")
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    s = session()
    with pytest.raises(Doubtful, match=re.escape("1 unreadable object(s) or line(s), whose records are missing")):
        reports.audit(s, options(archive=LOCATION), now=NOW)
    assert json.loads(out(s))["records"] == json.loads((GOLDEN / "audit.json").read_text())["records"]
    line = "" if body.startswith(b"\x1f\x8b") else "line 1 of "
    assert f"warning: skipped {line}the archive object {key}: " in err(s)
    assert [s["key"] for s in json.loads(out(s))["skipped"]] == [key]


def test_review_prints_its_report_then_warns_of_a_forged_copy(s3: Any) -> None:
    real, _, early, real_key = forged_approval(s3)
    s = session()
    with pytest.raises(Doubtful):
        reports.review(s, real["entitlement"], days=30, archive=LOCATION, output="text", now=NOW)
    assert out(s).startswith(f"Entitlement {real['entitlement']}")
    assert f"version 1 in {early}; version 2 in {real_key}" in err(s)


def test_a_missing_bucket_is_not_found(s3: Any) -> None:
    with pytest.raises(NotFound, match="'no-such-bucket' does not exist"):
        reports.audit(session(), options(archive="s3://no-such-bucket/x"), now=NOW)


def _glass(uid: str, day: int, reviewed: bool) -> dict[str, Any]:
    """A break-glass request `bob-glass` (a name used again) approved on November `day`."""
    at = f"2026-11-{day:02d}T10:00:00Z"
    conditions = [{"type": names.APPROVED, "status": "True", "reason": names.BREAK_GLASS, "lastTransitionTime": at}]
    if reviewed:
        conditions.append({"type": names.REVIEWED, "status": "True", "reason": "Reviewed", "lastTransitionTime": at})
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": "bob-glass", "uid": uid, "creationTimestamp": at},
        "spec": {"entitlement": "prod-eng-payments", "reason": "INC-9 down", "requester": "bob@example.com"},
        "status": {"reviewedBy": "paula@example.com" if reviewed else None, "conditions": conditions},
    }


def test_the_review_of_an_earlier_request_under_the_same_name_does_not_review_the_later_one(s3: Any) -> None:
    records = records_api.records_of_request(_glass("g-1", 20, True))
    records += records_api.records_of_request(_glass("g-2", 26, False))
    put_batch(s3, datetime(2026, 11, 27, 10, 0, tzinfo=UTC), records)
    s = session()
    assert reports.review(s, "prod-eng-payments", days=30, archive=LOCATION, output="json", now=NOW) == 0
    unreviewed = json.loads(out(s))["breakGlass"]["unreviewed"]
    assert [(g["request"], g["uid"], g["time"]) for g in unreviewed] == [("bob-glass", "g-2", "2026-11-26T10:00:00Z")]
    table = session()
    assert reports.review(table, "prod-eng-payments", days=30, archive=LOCATION, output="table", now=NOW) == 0
    assert "    kubectl jit review bob-glass --uid g-2\n" in out(table)
    assert "g-1" not in out(table)


def test_a_grant_without_its_reason_reads_its_own_requests_by_uid(s3: Any) -> None:
    """A `granted` record written before records kept the reason is given its request's, joined by
    the request's uid: a later request under the same name does not lend it its ticket."""
    at = "2026-11-26T10:00:00Z"

    def requested(uid: str, reason: str) -> dict[str, Any]:
        return {
            "schema": records_api.SCHEMA, "id": f"accessrequest/{uid}/requested", "action": "requested", "kind": "AccessRequest", "time": at,
            "name": "bob-x", "request": "bob-x", "uid": uid, "entitlement": "prod-eng-payments",
            "user": {"username": "bob@example.com"}, "reason": reason,
        }  # fmt: skip

    granted = {
        "schema": records_api.SCHEMA, "id": "accessgrant/gr-1/granted", "action": "granted", "kind": "AccessGrant", "time": at,
        "name": "bob-x", "grant": "bob-x", "uid": "gr-1", "request": "bob-x", "requestUid": "u-1",
        "entitlement": "prod-eng-payments", "user": {"username": "bob@example.com"},
    }  # fmt: skip
    put_batch(
        s3,
        datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
        [requested("u-1", "looking"), granted, requested("u-2", "INC-5 ok")],
    )
    s = session()
    assert reports.review(s, "prod-eng-payments", days=30, archive=LOCATION, output="json", now=NOW) == 0
    assert [(g["grant"], g["reason"]) for g in json.loads(out(s))["grantsWithoutTicket"]] == [("bob-x", "looking")]


def test_the_flag_chooses_the_archive_else_the_environment_and_empty_means_the_cluster() -> None:
    env = {parser.ARCHIVE_ENV: LOCATION}
    assert history.archive_location(None, env) == LOCATION
    assert history.archive_location("s3://other-bucket", env) == "s3://other-bucket"
    assert history.archive_location("", env) == ""
    assert history.archive_location(None, {}) == ""


# --- review ------------------------------------------------------------------------------------------


def review(entitlement: str, output: str, days: int = 30) -> Session:
    s = session()
    assert reports.review(s, entitlement, days=days, archive="", output=output, now=NOW) == 0
    return s


@pytest.mark.parametrize("output", ["table", "json"])
@pytest.mark.parametrize("entitlement", ["prod-eng-payments", "prod-eng-ledger"])
def test_review_output_matches_its_golden_file(entitlement: str, output: str) -> None:
    s = review(entitlement, output)
    assert_golden(f"review-{entitlement}.{output}", out(s))
    assert err(s).startswith("records from the cluster")


def test_review_counts_use_and_finds_reasons_without_a_ticket() -> None:
    report = json.loads(out(review("prod-eng-payments", "json")))
    assert [(u["user"], u["requests"], u["grants"], u["lastGranted"]) for u in report["usage"]] == [
        ("bob@example.com", 2, 2, "2026-11-27T16:02:01Z"),
        ("alice@example.com", 1, 1, "2026-11-20T09:00:02Z"),
        ("carol@example.com", 1, 0, None),
        ("eve@example.com", 1, 0, None),
        ("mallory@example.com", 1, 0, None),
    ]
    # Keyed by UserId where the records carry it (a renamed user is one row: test_cli_renamed_users).
    assert [(u["identityStoreUserId"], u["names"]) for u in report["usage"]][::4] == [
        ("uid-bob", ["bob@example.com"]),
        (None, ["mallory@example.com"]),
    ]
    assert report["eligibleUsers"] is None and report["neverUsed"] is None
    assert report["reasonPattern"] == reports.TICKET
    assert [(g["grant"], g["reason"]) for g in report["grantsWithoutTicket"]] == [
        ("bob-prod-eng-payments-bbbb2", "looking at something")
    ]
    assert report["breakGlass"] == {"enabled": False, "unreviewed": []}
    table = out(review("prod-eng-payments", "table"))
    assert "eligibility is known to the operator only" in table
    assert "Break-glass grants not reviewed: none (break-glass is not enabled)" in table


def test_review_names_the_eligible_who_never_used_it_when_the_status_lists_them() -> None:
    report = json.loads(out(review("prod-eng-ledger", "json")))
    assert report["eligibleUsers"] == ["bob@example.com", "carol@example.com", "lena@example.com"]
    assert report["neverUsed"] == ["bob@example.com", "carol@example.com"]
    assert report["reasonPattern"] == "LED-[0-9]+" and report["grantsWithoutTicket"] == []


def test_a_shorter_review_window_forgets_older_use() -> None:
    report = json.loads(out(review("prod-eng-payments", "json", days=2)))
    assert [u["user"] for u in report["usage"]] == ["carol@example.com", "eve@example.com"]
    assert report["grantsWithoutTicket"] == []


def test_review_without_eligibility_groups_or_with_a_broken_reason_pattern() -> None:
    s = session()
    payments = s.api.get(o.path(names.ENTITLEMENTS, "prod-eng-payments"))
    payments["spec"] = {**payments["spec"], "eligibility": {}, "reasonPattern": "(unclosed"}
    assert reports.review(s, "prod-eng-payments", days=30, archive="", output="table", now=NOW) == 0
    assert "Eligible: everyone in the identity store (the entitlement names no eligibility groups)" in out(s)
    assert "Never used (candidates for removal): not applicable, anyone may request it" in out(s)
    assert f"Grants without a ticket-like reason (pattern {reports.TICKET}):" in out(s)


def test_review_of_an_unknown_entitlement_is_not_found() -> None:
    with pytest.raises(NotFound, match="did you mean prod-eng-payments"):
        reports.review(session(), "prod-eng-payment", days=30, archive="", output="table", now=NOW)


# --- the command line ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("1d12h", timedelta(hours=36)),
        ("90m", timedelta(minutes=90)),
    ],
)
def test_since_windows(text: str, window: timedelta) -> None:
    assert parser.since(text) == window


@pytest.mark.parametrize("text", ["30", "1w", "0d", "-1d", "d", "1.5d"])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parser.since(text)


def test_main_runs_audit_and_review_and_refuses_bad_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeApi()
    monkeypatch.setattr(Session, "api", property(lambda self: fake))
    monkeypatch.delenv(parser.ARCHIVE_ENV, raising=False)
    stdout, stderr = io.StringIO(), io.StringIO()
    assert main.run(["audit", "--since", "3650d", "-o", "csv", "--user", "lena"], io.StringIO(), stdout, stderr) == 0
    assert stdout.getvalue().count("\n") == 5  # the header, and lena's requested, approved, granted, extended
    assert fake.listed == [names.REQUESTS, names.GRANTS, names.EXTENSIONS, names.ENTITLEMENTS, names.CATALOGS]
    stdout = io.StringIO()
    assert main.run(["review", "prod-eng-ledger", "--days", "3650"], io.StringIO(), stdout, stderr) == 0
    assert "Never used (candidates for removal): bob@example.com, carol@example.com" in stdout.getvalue()
    assert main.run(["review", "nope"], io.StringIO(), io.StringIO(), stderr) == NOT_FOUND
    for argv in (["audit", "--since", "1w"], ["review", "x", "--days", "0"], ["audit", "-o", "yaml"]):
        with pytest.raises(SystemExit) as exited:
            main.run(argv, io.StringIO(), io.StringIO(), io.StringIO())
        assert exited.value.code == 2


def test_an_extension_shows_its_own_reason_and_time_and_approvals_their_approvers() -> None:
    table = (GOLDEN / "audit.table").read_text()
    extended = next(line for line in table.splitlines() if " extended " in line)
    assert "+30m, until 2026-11-30T12:30:02Z: LED-12 the clos" in extended  # not the request's reason
    rows = list(csv.DictReader(io.StringIO((GOLDEN / "audit.csv").read_text())))
    row = next(r for r in rows if r["action"] == "extended")
    assert (row["extension"], row["extendedBy"], row["extensionReason"]) == (
        "lena-prod-eng-ledger-llll1-more",
        "30m",
        "LED-12 the close runs long",
    )
    assert (row["previousEndTime"], row["endTime"]) == ("2026-11-30T12:00:02Z", "2026-11-30T12:30:02Z")
    approved = next(r for r in rows if r["action"] == "approved" and r["name"].endswith("bbbb2"))
    assert (
        approved["approvals"]
        == "carol@example.com at 2026-11-27T16:01:00Z: seen with bob; paula@example.com at 2026-11-27T16:02:00Z"
    )


def test_an_entitlement_filter_that_names_nothing_suggests_the_close_names() -> None:
    typo = audit(entitlement="prod-eng-ledgr", output="table")
    assert (
        "No Entitlement 'prod-eng-ledgr' exists, and no record in this window names it: did you mean prod-eng-ledger"
        in err(typo)
    )
    assert "did you mean" not in err(audit(entitlement="prod-eng-ledger", output="table"))
    # An Entitlement that exists but has nothing in the window is not a typo.
    assert "No Entitlement" not in err(audit(entitlement="prod-eng-ledger", output="table", since=timedelta(minutes=1)))


# --- audit --verify ---------------------------------------------------------------------------------


def chained_batches(s3: Any, count: int) -> list[str]:
    """`count` batches in the window as the operator writes them, each naming the one before."""
    keys, previous = [], None
    for n in range(count):
        body = records_api.encode_lines(all_records()[n : n + 1])
        key = records_api.archive_key(PREFIX, NOW - timedelta(hours=count - n), f"chain{n}")
        meta = chain.metadata(body, previous)
        s3.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata=meta)
        previous = chain.link_to(key, body, meta)
        keys.append(key)
    return keys


def test_verify_needs_an_archive_and_goes_alone() -> None:
    with pytest.raises(UsageError, match=r"--verify checks the audit archive: give --archive s3://BUCKET/PREFIX"):
        reports.audit(session(), options(verify=True), now=NOW)
    for extra in ({"access": True}, {"entitlement": "prod-payments"}, {"user": "bob"}):
        with pytest.raises(UsageError, match="it goes without --access, --entitlement, --user"):
            reports.audit(session(), options(verify=True, archive=LOCATION, **extra), now=NOW)


def test_verify_passes_an_intact_chain_and_fails_a_replaced_batch(s3: Any) -> None:
    keys = chained_batches(s3, 3)
    s = session()
    assert reports.audit(s, options(verify=True, archive=LOCATION), now=NOW) == 0
    document = json.loads(out(s))
    assert document["batches"] == 3 and document["intact"] is True
    assert [f["problem"] for f in document["findings"]] == [False]
    assert "each follows the one before it" in err(s)
    forged = b'{"id": "made-up"}\n'
    meta = s3.head_object(Bucket=BUCKET, Key=keys[1])["Metadata"]
    s3.put_object(Bucket=BUCKET, Key=keys[1], Body=forged, Metadata={**meta, chain.DIGEST: chain.digest(forged)})
    s = session()
    with pytest.raises(Doubtful, match="1 problem"):
        reports.audit(s, options(verify=True, archive=LOCATION, output="table"), now=NOW)
    assert f"{keys[1]}   PROBLEM   changed or replaced since {keys[2]}" in out(s)


def test_verify_of_a_missing_bucket_says_so() -> None:
    with mock_aws(), pytest.raises(NotFound, match="bucket 'audit-archive' does not exist"):
        reports.audit(session(), options(verify=True, archive=LOCATION), now=NOW)


def test_selecting_an_entitlement_takes_in_the_extension_requests_of_its_grants() -> None:
    # `extension-requested` names only its grant; the grant's records name the entitlement.
    granted = {"id": "g/granted", "action": "granted", "grant": "g1", "entitlement": "prod-eng-payments"}
    asked = {"id": "x/extension-requested", "action": "extension-requested", "grant": "g1"}
    elsewhere = {"id": "y/extension-requested", "action": "extension-requested", "grant": "g2"}
    other = {"id": "h/granted", "action": "granted", "grant": "g2", "entitlement": "prod-eng-ledger"}
    chosen = history.select([granted, asked, elsewhere, other], entitlement="prod-eng-payments")
    assert [r["id"] for r in chosen] == ["g/granted", "x/extension-requested"]

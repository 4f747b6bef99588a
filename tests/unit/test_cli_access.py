"""`kubectl jit audit --since/--until` and `--access`: the window's times as given on the command
line (how long ago, or RFC 3339 with a zone) and their errors, and access periods built from a
grant's records (docs/audit.md, "Who had access between T1 and T2").

The records are written here as the operator derives them (`jitaccess.api.audit`) from objects
made for each case, so that a change to the record schema shows up here too.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import boto3
import pytest

from jitaccess.api import audit as records_api
from jitaccess.api import names
from jitaccess.cli import objects as cli_objects
from jitaccess.cli import parser, periods, reports
from jitaccess.cli.errors import Doubtful, UsageError
from tests.unit.test_cli_reports import (
    LOCATION,
    NOW,
    err,
    options,
    out,
    put_batch,
    s3,  # noqa: F401 (a fixture: the archive's bucket in moto)
    session,
)

T = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def request(
    name: str,
    *,
    at: datetime,
    approvals: list[str] | None = None,
    how: str = "",
    why: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An approved AccessRequest: by `approvals` (each in turn, a minute apart), else auto-approved, or
    as `how` says; `why` the reasons approvers gave, stamped as the webhook does (and the last one's
    as the decision's reason)."""
    how = how or ("Approved" if approvals else names.AUTO_APPROVED)
    status: dict[str, Any] = {
        "conditions": [{"type": names.APPROVED, "status": "True", "reason": how, "lastTransitionTime": stamp(at)}],
        "grant": name,
    }
    annotations = {}
    if approvals:
        status["approvedBy"] = approvals[-1]
        status["approvals"] = [
            {"by": by, "time": stamp(at - timedelta(minutes=len(approvals) - n))} for n, by in enumerate(approvals, 1)
        ]
        stamped = [{"by": by, "reason": (why or {}).get(by, "")} for by in approvals]
        annotations[names.ANNOTATION_APPROVALS] = json.dumps(stamped)
        if (why or {}).get(approvals[-1]):
            status["decisionReason"] = (why or {})[approvals[-1]]
    return {
        "kind": names.ACCESS_REQUEST,
        "metadata": {
            "name": name,
            "uid": f"req-{name}",
            "creationTimestamp": stamp(at - timedelta(minutes=10)),
            "annotations": annotations,
        },
        "spec": {"entitlement": "prod-eng-payments", "requester": "bob@example.com", "reason": "INC-9 look"},
        "status": status,
    }


def grant(
    name: str,
    start: datetime,
    length: timedelta,
    *,
    ended: str = "",
    at: datetime | None = None,
    revoked_by: str = "",
    extensions: list[timedelta] | None = None,
    approvals: list[dict[str, Any]] | None = None,
    made_for: str = "",
) -> dict[str, Any]:
    """An AccessGrant activated at `start` for `length`, extended by each of `extensions` (30 minutes
    after the start, a minute apart; each with `approvals`, those of an extension approved by several),
    and ended (`Expired`, `Revoked`, ...) at `at`, or running; `made_for`: its request's uid (the
    `jitaccess.dev/request` label), else a grant made before the label."""
    end = start + length
    applied = []
    for n, more in enumerate(extensions or []):
        applied.append(
            {
                "name": f"{name}-ext-{n}",
                "by": f"{int(more.total_seconds() // 60)}m",
                "approvedBy": "paula@example.com",
                "time": stamp(start + timedelta(minutes=30 + n)),
                "reason": "INC-9 longer",
                "previousExpirationTime": stamp(end),
                "expirationTime": stamp(end + more),
                **({"approvals": approvals} if approvals else {}),
            }
        )
        end += more
    status: dict[str, Any] = {
        "activationTime": stamp(start),
        "expirationTime": stamp(end),
        "groupId": "g-payments",
        "extensions": applied,
        "conditions": [],
    }
    if ended:
        when = stamp(at or end)
        status["conditions"] = [{"type": names.READY, "status": "False", "reason": ended, "lastTransitionTime": when}]
        if ended != names.EXPIRED:
            status["revocationTime"] = when
        if revoked_by:
            status["revokedBy"] = revoked_by
    return {
        "kind": names.ACCESS_GRANT,
        "metadata": {
            "name": name,
            "uid": f"grant-{name}",
            "labels": {names.LABEL_REQUEST: made_for} if made_for else {},
        },
        "spec": {
            "request": name,
            "entitlement": "prod-eng-payments",
            "ownerTeam": "payments",
            "user": "bob@example.com",
            "groupName": "prod-eng-payments",
            "reason": "INC-9 look",
            "duration": "1h",
        },
        "status": status,
    }


def records(*objects: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for obj in objects for r in records_api.records_of(obj)]


def overlapping(found: list[dict[str, Any]], start: datetime, end: datetime) -> list[periods.Period]:
    return [p for p in periods.build(found) if p.overlaps(start, end)]


# --- access periods ---------------------------------------------------------------------------------


def test_a_grant_begun_before_the_window_and_still_running_is_included() -> None:
    found = records(request("g1", at=T - timedelta(days=2)), grant("g1", T - timedelta(days=2), timedelta(days=5)))
    [period] = overlapping(found, T, T + timedelta(hours=1))
    assert (period.start, period.end, period.ending) == (stamp(T - timedelta(days=2)), None, "active")
    assert period.as_json()["active"] is True
    assert period.scheduled_end == stamp(T + timedelta(days=3))


def test_a_grant_ended_before_the_window_is_not_included_and_one_ended_in_it_is() -> None:
    found = records(grant("g1", T - timedelta(hours=3), timedelta(hours=1), ended=names.EXPIRED))
    assert overlapping(found, T - timedelta(hours=2) + timedelta(seconds=1), T) == []
    [period] = overlapping(found, T - timedelta(hours=2), T)  # ended at the window's very start: held then
    assert (period.end, period.ending) == (stamp(T - timedelta(hours=2)), "expired")
    assert overlapping(found, T - timedelta(days=1), T - timedelta(hours=3, seconds=1)) == [], "began after the window"


def test_an_extension_moves_the_end_and_is_listed_with_the_time_added() -> None:
    start = T - timedelta(hours=2)
    extended = grant("g1", start, timedelta(hours=1), extensions=[timedelta(minutes=90)], ended=names.EXPIRED)
    # Granted for 1 hour, it would have ended 1 hour before T; extended by 90 minutes, it ran into the window.
    [period] = overlapping(records(extended), T, T + timedelta(hours=1))
    assert period.end == stamp(T + timedelta(minutes=30)) == period.scheduled_end
    assert period.extensions == [
        {
            "time": stamp(start + timedelta(minutes=30)),
            "added": "90m",
            "approvedBy": "paula@example.com",
            "reason": "INC-9 longer",
            "previousEnd": stamp(T - timedelta(hours=1)),
            "end": stamp(T + timedelta(minutes=30)),
        }
    ]
    assert overlapping(records(grant("g2", start, timedelta(hours=1), ended=names.EXPIRED)), T, T) == []


def test_every_approver_of_a_multi_party_request_is_listed() -> None:
    approvers = ["carol@example.com", "paula@example.com"]
    found = records(request("g1", at=T, approvals=approvers), grant("g1", T, timedelta(hours=1)))
    [period] = overlapping(found, T, T)
    assert period.approvers == approvers and period.approval == "carol@example.com, paula@example.com"


def test_auto_approval_break_glass_and_its_review_revocation_and_a_missing_request() -> None:
    auto = records(request("a", at=T, how=names.AUTO_APPROVED), grant("a", T, timedelta(hours=1)))
    assert periods.build(auto)[0].approval == "auto (owner team)"
    glass = request("b", at=T, how=names.BREAK_GLASS)
    assert periods.build(records(glass, grant("b", T, timedelta(hours=1))))[0].approval == "break-glass, not reviewed"
    glass["status"]["conditions"].append(
        {"type": names.REVIEWED, "status": "True", "reason": "Reviewed", "lastTransitionTime": stamp(T)}
    )
    glass["status"]["reviewedBy"] = "lena@example.com"
    reviewed = periods.build(records(glass, grant("b", T, timedelta(hours=1))))[0]
    assert reviewed.approval == "break-glass, reviewed by lena@example.com"
    revoked = grant("c", T, timedelta(hours=1), ended=names.REVOKED, at=T + timedelta(minutes=5), revoked_by="paula")
    [period] = periods.build(records(revoked))
    assert (period.ending, period.ended_by, period.end) == ("revoked", "paula", stamp(T + timedelta(minutes=5)))
    assert period.approval == "unknown (no approval record read)", "the request's records were not read"


def two_requests_of_one_name(first_at: datetime, second_at: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """AccessRequest r approved by paula for a later start and withdrawn, then another r (another
    uid) approved by lena."""
    first = request("r", at=first_at, approvals=["paula@example.com"])
    first["metadata"].update(uid="req-1", deletionTimestamp=stamp(first_at + timedelta(seconds=1)))
    first["status"]["conditions"].append({"type": names.READY, "status": "False", "reason": names.SCHEDULED})
    second = request("r", at=second_at, approvals=["lena@example.com"])
    second["metadata"]["uid"] = "req-2"
    return first, second


@pytest.mark.parametrize(
    ("first_at", "second_at", "second_first"),
    [
        (T - timedelta(hours=1), T - timedelta(minutes=10), False),
        (T, T, False),  # whole seconds: one second holds both approvals and the grant's start
        (T, T, True),
        (T - timedelta(minutes=5), T - timedelta(minutes=10), True),  # clocks apart, records in any order
        (T - timedelta(minutes=5), T + timedelta(seconds=2), False),  # lena's recorded after the start
    ],
)
def test_a_grant_names_the_approver_of_its_own_request_when_the_name_was_used_before(
    first_at: datetime, second_at: datetime, second_first: bool
) -> None:
    first, second = two_requests_of_one_name(first_at, second_at)
    made = grant("r", T, timedelta(hours=1), made_for="req-2")
    found = records(*((second, first) if second_first else (first, second)), made)
    assert any(r["action"] == "withdrawn" and r["uid"] == "req-1" for r in found)
    [period] = periods.build(found)
    assert (period.approval, period.approvers) == ("lena@example.com", ["lena@example.com"])
    # The grant of the first, were it made: paula's, whatever the times.
    [period] = periods.build(records(first, second, grant("r", T, timedelta(hours=1), made_for="req-1")))
    assert period.approval == "paula@example.com"


def test_records_that_name_no_request_uid_are_joined_by_name_and_time() -> None:
    """A grant's records written before they named its request's uid, or approval records of no uid:
    the decision taken last before the grant began."""
    first, second = two_requests_of_one_name(T - timedelta(hours=1), T - timedelta(minutes=10))
    old_grant = records(first, second, grant("r", T, timedelta(hours=1)))
    assert "requestUid" not in next(r for r in old_grant if r["kind"] == names.ACCESS_GRANT)
    assert periods.build(old_grant)[0].approval == "lena@example.com"
    old_approvals = [{k: v for k, v in r.items() if k != "uid"} for r in records(first, second)]
    made = records(grant("r", T, timedelta(hours=1), made_for="req-3"))
    assert periods.build([*old_approvals, *made])[0].approval == "lena@example.com"
    # Records of other uids are other requests': none is this grant's.
    other = periods.build([*records(first, second), *made])[0]
    assert other.approval == "unknown (no approval record read)"


def test_a_grant_that_failed_before_activation_held_nothing() -> None:
    failed = grant("f", T, timedelta(hours=1), ended=names.FAILED)
    del failed["status"]["activationTime"]
    assert periods.build(records(failed)) == []


def test_a_drift_removed_member_is_outside_jitaccess_with_its_start_when_the_record_has_one() -> None:
    removal = {
        "schema": records_api.SCHEMA,
        "id": "ent/drift-removed/m-1",
        "time": stamp(T),
        "action": "drift-removed",
        "kind": "Entitlement",
        "entitlement": "prod-eng-payments",
        "user": {"username": "eve@example.com"},
        "group": {"name": "prod-eng-payments"},
    }
    [unknown] = periods.build([removal])
    assert (unknown.kind, unknown.start, unknown.end) == ("outside-jitaccess", None, stamp(T))
    assert unknown.overlaps(T - timedelta(hours=1), T) and not unknown.overlaps(
        T + timedelta(seconds=1), T + timedelta(hours=1)
    )
    assert not unknown.overlaps(T - timedelta(hours=2), T - timedelta(hours=1)), "an unknown start is not assumed early"
    [known] = periods.build([{**removal, "startTime": stamp(T - timedelta(hours=3))}])
    assert known.overlaps(T - timedelta(hours=2), T - timedelta(hours=1))


# --- through the command: the window and the outputs -----------------------------------------------


def test_access_from_the_golden_history_lists_the_running_grant_in_a_window_after_its_start() -> None:
    # lena's grant began at 11:00:02 and runs (extended) past NOW (12:00); no record of it is in 11:30-11:45.
    s = session()
    window = {"since": datetime(2026, 11, 30, 11, 30, tzinfo=UTC), "until": datetime(2026, 11, 30, 11, 45, tzinfo=UTC)}
    assert reports.audit(s, options(access=True, **window), now=NOW) == 0
    document = json.loads(out(s))
    assert (document["since"], document["until"]) == ("2026-11-30T11:30:00Z", "2026-11-30T11:45:00Z")
    assert [(p["user"]["username"], p["ending"], p["active"]) for p in document["periods"]] == [
        ("lena@example.com", "active", True)
    ]
    records = json.loads(out(audit_records(**window)))["records"]
    assert records == [], "records are filtered by their time: none of lena's is in the window"


def audit_records(**changes: Any) -> Any:
    s = session()
    assert reports.audit(s, options(**changes), now=NOW) == 0
    return s


def test_until_cuts_the_records_at_the_end_of_the_window() -> None:
    s = audit_records(since=timedelta(hours=12), until=datetime(2026, 11, 30, 11, 0, 1, tzinfo=UTC))
    assert [r["action"] for r in json.loads(out(s))["records"]] == ["requested", "approved"]


def test_access_csv_has_its_documented_columns_and_the_table_says_who_and_how() -> None:
    s = session()
    assert reports.audit(s, options(access=True, output="csv", since=timedelta(days=10)), now=NOW) == 0
    rows = list(csv.DictReader(io.StringIO(out(s))))
    assert tuple(rows[0]) == reports.ACCESS_CSV_COLUMNS
    bob = next(r for r in rows if r["grant"] == "bob-prod-eng-payments-bbbb2")
    assert bob["approvers"] == "carol@example.com; paula@example.com" and bob["ending"] == "expired"
    eve = next(r for r in rows if r["user"] == "eve@example.com")
    assert (eve["kind"], eve["start"], eve["ending"]) == ("outside-jitaccess", "", "drift-removed")
    lena = next(r for r in rows if r["user"] == "lena@example.com")
    assert lena["end"] == "" and lena["extensions"].startswith("30m added at 2026-11-30T11:50:00Z by auto (owner team)")
    table = session()
    assert reports.audit(table, options(access=True, output="table", since=timedelta(days=10)), now=NOW) == 0
    text = out(table)
    assert "revoked by paula@example.com" in text and "still active" in text and "outside jitaccess" in text
    empty = session()
    assert (
        reports.audit(empty, options(access=True, output="table", since=timedelta(days=10), user="nobody"), now=NOW)
        == 0
    )
    assert out(empty) == "" and "Nobody held access between" in err(empty)


def test_relative_until_is_that_long_ago_and_an_end_before_the_start_is_refused() -> None:
    assert reports.window(timedelta(days=7), timedelta(days=1), NOW) == (
        NOW - timedelta(days=7),
        NOW - timedelta(days=1),
    )
    plus_two = datetime(2026, 11, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert reports.window(plus_two, None, NOW) == (datetime(2026, 11, 1, 0, 0, tzinfo=UTC), NOW)
    assert reports.window(NOW, NOW, NOW) == (NOW, NOW), "one instant: who held access then"
    with pytest.raises(UsageError, match=r"--until 2026-11-29T12:00:00Z is before --since 2026-11-30T00:00:00Z"):
        reports.window(datetime(2026, 11, 30, tzinfo=UTC), timedelta(days=1), NOW)
    with pytest.raises(UsageError, match=r"--until .* is before --since"):
        reports.window(timedelta(days=1), timedelta(days=2), NOW)


# --- the times on the command line ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "meant"),
    [
        ("7d", timedelta(days=7)),
        ("1d12h", timedelta(hours=36)),
        ("2026-11-01T00:00:00Z", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01t00:00:00z", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T02:00:00+02:00", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01 00:00:00.5-01:30", datetime(2026, 11, 1, 1, 30, 0, 500000, tzinfo=UTC)),
    ],
)
def test_since_and_until_read_how_long_ago_or_an_rfc3339_time_with_a_zone(text: str, meant: Any) -> None:
    assert parser.moment(text) == meant


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2026-11-01T00:00:00", "neither how long ago"),  # no zone: whose local time?
        ("2026-11-01", "neither how long ago"),
        ("yesterday", "neither how long ago"),
        ("7 days", "neither how long ago"),
        ("0d", "is zero"),
        ("2026-02-30T00:00:00Z", "not a valid time"),
        ("2026-11-01T25:00:00Z", "not a valid time"),
    ],
)
def test_a_bad_time_is_refused_with_an_example(text: str, why: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=why):
        parser.moment(text)


@pytest.mark.parametrize("flag", ["--since", "--until"])
def test_the_error_names_the_flag_and_gives_an_example(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser.build_parser().parse_args(["audit", flag, "2026-11-01"])
    said = capsys.readouterr().err
    assert f"argument {flag}: '2026-11-01' is neither how long ago" in said and "2026-11-01T00:00:00Z" in said
    args = parser.build_parser().parse_args(["audit", flag, "2026-11-01T00:00:00Z", "--access"])
    assert getattr(args, flag[2:]) == datetime(2026, 11, 1, tzinfo=UTC) and args.access


@pytest.mark.usefixtures("s3")
def test_access_from_the_archive_reads_before_the_window_for_grants_begun_earlier() -> None:
    # Granted 3 days before the window (records filed that day), still running: only the lookback finds it.
    start = NOW - timedelta(days=3)
    running = records(request("g1", at=start), grant("g1", start, timedelta(days=5)))
    put_batch(boto3.client("s3"), start + timedelta(seconds=5), running)
    window = {"since": NOW - timedelta(hours=1), "access": True, "archive": LOCATION}
    s = session()
    assert reports.audit(s, options(**window), now=NOW) == 0
    [period] = json.loads(out(s))["periods"]
    assert (period["grant"], period["active"], period["approval"]) == ("g1", True, "auto (owner team)")
    short = session()
    assert reports.audit(short, options(**window, lookback=timedelta(days=1)), now=NOW) == 0
    assert json.loads(out(short))["periods"] == [], "its records are older than the lookback"


@pytest.mark.usefixtures("s3")
def test_a_period_built_from_a_conflicting_record_says_so_and_the_report_is_doubtful() -> None:
    found = records(
        request("g1", at=NOW - timedelta(hours=1)), grant("g1", NOW - timedelta(hours=1), timedelta(days=1))
    )
    granted = next(r for r in found if r["action"] == "granted")
    client = boto3.client("s3")
    put_batch(client, NOW - timedelta(minutes=50), found)
    put_batch(client, NOW - timedelta(minutes=40), [{**granted, "reason": "forged"}])
    s = session()
    with pytest.raises(Doubtful, match="conflicting records"):
        reports.audit(s, options(since=timedelta(minutes=30), access=True, archive=LOCATION), now=NOW)
    [period] = json.loads(out(s))["periods"]
    assert period["conflict"] is True and period["grant"] == "g1"
    assert f"the audit archive holds 2 different records with the id {granted['id']}" in err(s)


def test_lookback_goes_only_with_access() -> None:
    with pytest.raises(UsageError, match="--lookback goes only with --access"):
        reports.audit(session(), options(lookback=timedelta(days=1)), now=NOW)
    assert "conflict" not in periods.build(records(grant("g1", T, timedelta(hours=1))))[0].as_json()


# --- the approvers' reasons -----------------------------------------------------------------------


def reported(output: str, *objects: dict[str, Any]) -> str:
    """`audit --access -o OUTPUT` over the last ten days, the cluster holding only `objects`."""
    s = session()
    plurals = {names.ACCESS_REQUEST: names.REQUESTS, names.ACCESS_GRANT: names.GRANTS}
    s.api.objects = {cli_objects.path(plurals[o["kind"]], o["metadata"]["name"]): o for o in objects}  # type: ignore[attr-defined]
    assert reports.audit(s, options(access=True, output=output, since=timedelta(days=10)), now=NOW) == 0
    return out(s)


def table_row(text: str) -> dict[str, str]:
    """The one period of a table, by column (columns are three or more spaces apart)."""
    header, row = (re.split(" {3,}", line) for line in text.splitlines())
    return dict(zip(header, row, strict=True))


def test_each_approver_is_shown_with_the_reason_they_gave() -> None:
    at = NOW - timedelta(hours=2)
    why = {"carol@example.com": "INC-9 seen the pager, go ahead"}  # a comma: the approvers are ;-separated
    several = [request("g1", at=at, approvals=["carol@example.com", "paula@example.com"], why=why),
               grant("g1", at, timedelta(hours=1))]  # fmt: skip
    approved_by = table_row(reported("table", *several))["APPROVED BY"]
    assert approved_by == "carol@example.com: INC-9 seen the pager, go ahead; paula@example.com"
    [period] = json.loads(reported("json", *several))["periods"]
    assert period["approval"] == "carol@example.com: INC-9 seen the pager, go ahead; paula@example.com"
    assert period["approvers"] == ["carol@example.com", "paula@example.com"], "usernames only, as before"
    assert [(a["by"], a.get("reason")) for a in period["approvals"]] == [
        ("carol@example.com", "INC-9 seen the pager, go ahead"),
        ("paula@example.com", None),
    ]
    [row] = csv.DictReader(io.StringIO(reported("csv", *several)))
    assert tuple(row) == reports.ACCESS_CSV_COLUMNS, "the same columns"
    assert row["approval"] == period["approval"] and row["approvers"] == "carol@example.com; paula@example.com"
    # One approver: their reason is the decision's.
    one = request("g2", at=at, approvals=["paula@example.com"], why={"paula@example.com": "INC-9 ok"})
    assert table_row(reported("table", one, grant("g2", at, timedelta(hours=1))))["APPROVED BY"] == (
        "paula@example.com: INC-9 ok"
    )
    # Nobody gave a reason: the names, as before.
    plain = request("g3", at=at, approvals=["carol@example.com", "paula@example.com"])
    plain_row = table_row(reported("table", plain, grant("g3", at, timedelta(hours=1))))
    assert plain_row["APPROVED BY"] == "carol@example.com, paula@example.com"


def test_an_approval_recorded_before_the_approvals_held_reasons_keeps_the_decisions() -> None:
    at = NOW - timedelta(hours=2)
    found = records(
        request("g1", at=at, approvals=["carol@example.com", "paula@example.com"], why={"paula@example.com": "ok"}),
        grant("g1", at, timedelta(hours=1)),
    )
    approved = next(r for r in found if r["action"] == "approved")
    approved["approvals"] = [{"by": a["by"], "time": a["time"]} for a in approved["approvals"]]  # an older record
    [period] = periods.build(found)
    assert period.approval == "carol@example.com; paula@example.com: ok", "the completing approver's decisionReason"


def test_a_long_reason_is_shortened_in_the_table_only() -> None:
    at = NOW - timedelta(hours=2)
    long = "INC-9 " + "the settlement batch is stuck again " * 3
    objects = (request("g1", at=at, approvals=["paula@example.com"], why={"paula@example.com": long}),
               grant("g1", at, timedelta(hours=1)))  # fmt: skip
    assert table_row(reported("table", *objects))["APPROVED BY"] == f"paula@example.com: {long[:39]}…"
    [period] = json.loads(reported("json", *objects))["periods"]
    assert period["approval"] == f"paula@example.com: {long}"


def test_an_extension_approved_by_several_shows_their_reasons() -> None:
    at = NOW - timedelta(hours=2)
    approvals = [
        {"by": "carol@example.com", "time": stamp(at + timedelta(minutes=29)), "reason": "INC-9 still burning"},
        {"by": "paula@example.com", "time": stamp(at + timedelta(minutes=30)), "groups": ["leads"]},
    ]
    extended = grant("g1", at, timedelta(hours=1), extensions=[timedelta(minutes=30)], approvals=approvals)
    objects = (request("g1", at=at), extended)
    extended_cell = table_row(reported("table", *objects))["EXTENDED"]
    assert extended_cell == "+30m (carol@example.com: INC-9 still burning; paula@example.com)"
    [period] = json.loads(reported("json", *objects))["periods"]
    assert [(a["by"], a.get("reason")) for a in period["extensions"][0]["approvals"]] == [
        ("carol@example.com", "INC-9 still burning"),
        ("paula@example.com", None),
    ]
    # Approved by one (no approvals kept), or by several who gave no reason: the time added, as before.
    quiet = [{k: v for k, v in a.items() if k != "reason"} for a in approvals]
    for plain in (grant("g2", at, timedelta(hours=1), extensions=[timedelta(minutes=30)]),
                  grant("g3", at, timedelta(hours=1), extensions=[timedelta(minutes=30)], approvals=quiet)):  # fmt: skip
        name = plain["metadata"]["name"]
        assert table_row(reported("table", request(name, at=at), plain))["EXTENDED"] == "+30m"

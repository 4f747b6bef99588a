"""A grant that fails half-way may have held access: an attempt's add landed in Identity Center but
its answer was lost, a retry failed the grant and took the add back. The grant keeps when an add
was first asked for (`status.firstAddAttemptTime`, written before the call) and what the take-back
removed (`status.takeBack`); its `failed` record and `kubectl jit audit --access` show the upper
bound of that access, as possible, and never say that nobody was given access."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest

from jitaccess.api import audit, names
from jitaccess.api.models import AccessGrant
from jitaccess.cli import periods, reports
from jitaccess.domain import grants as grant_rules
from jitaccess.errors import RetryLater
from jitaccess.handlers import grants
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.test_activation_time import T0, _grant, _Known
from tests.unit.test_grant_ended_while_provisioning import GROUP, _Kube

WHY = "not provisioned: AccessGrant r1 is not backed by an approved AccessRequest (maxDuration 30m here)"


class _LostAnswers(_Known):
    """Adds the membership, then loses the answer (a read timeout once the request was sent)."""

    def ensure_member(self, group_id: str, user_id: str) -> tuple[str, bool]:
        super().ensure_member(group_id, user_id)
        raise RetryLater("CreateGroupMembership: read timeout", operation="CreateGroupMembership")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    at = [T0]
    monkeypatch.setattr(grants, "now", lambda: at[0])
    monkeypatch.setattr(grants, "record", lambda *a, **k: None)  # no kopf Event poster here
    return at


def _new() -> dict[str, Any]:
    return {**_grant(T0), "kind": names.ACCESS_GRANT}


def _stored(kube: _Kube) -> dict[str, Any]:
    return kube.get(names.GRANTS, "r1") or {}


def _ready_message(obj: dict[str, Any]) -> str:
    return str(next(c["message"] for c in obj["status"]["conditions"] if c["type"] == names.READY))


def test_a_lost_answer_then_a_failure_leaves_the_time_access_may_have_been_held(clock: list[dt.datetime]) -> None:
    kube, ic = _Kube(), _LostAnswers()
    rt = Runtime(Settings(), ic, kube)  # type: ignore[arg-type]
    kube.put(names.GRANTS, _new())
    for retry in range(2):  # the first attempt, and kopf's retry five seconds later: both answers lost
        clock[0] = T0 + dt.timedelta(seconds=5 * retry)
        with pytest.raises(RetryLater):
            grants.activate(rt, AccessGrant.model_validate(_stored(kube)))
    assert ic.members, "the add landed"
    assert _stored(kube)["status"]["firstAddAttemptTime"] == "2026-12-01T06:00:00Z", "the first attempt's, kept"

    clock[0] = T0 + dt.timedelta(seconds=8)  # the next retry finds the grant no longer backed
    grants.fail(rt, AccessGrant.model_validate(_stored(kube)), WHY)
    assert ic.members == {}, "the take-back removed the membership"
    failed = _stored(kube)
    assert failed["status"]["takeBack"] == {"time": "2026-12-01T06:00:08Z", "removed": [GROUP]}
    message = _ready_message(failed)
    assert message.startswith(WHY) and "nobody was given access" not in message
    assert "may have held access from 2026-12-01T06:00:00Z until the take-back at 2026-12-01T06:00:08Z" in message

    (record,) = audit.records_of_grant(failed)
    assert record["action"] == "failed" and "startTime" not in record and "endTime" not in record
    assert (record["possibleStartTime"], record["possibleEndTime"]) == ("2026-12-01T06:00:00Z", "2026-12-01T06:00:08Z")
    assert record["takenBack"] == [GROUP] and "nobody was given access" not in record["message"]

    (period,) = periods.build([record])
    assert period.possible and period.ending == "failed" and period.taken_back == [GROUP]
    assert (period.start, period.end) == ("2026-12-01T06:00:00Z", "2026-12-01T06:00:08Z")
    assert period.as_json()["possible"] is True and period.as_json()["active"] is False
    assert period.overlaps(T0 + dt.timedelta(seconds=3), T0 + dt.timedelta(seconds=3))
    assert not period.overlaps(T0 + dt.timedelta(seconds=9), T0 + dt.timedelta(hours=1))


def test_a_grant_failed_before_any_add_was_asked_for_still_says_nobody_was_given_access(
    clock: list[dt.datetime],
) -> None:
    kube, ic = _Kube(), _Known()
    rt = Runtime(Settings(), ic, kube)  # type: ignore[arg-type]
    kube.put(names.GRANTS, _new())
    grants.fail(rt, AccessGrant.model_validate(_stored(kube)), WHY)
    failed = _stored(kube)
    assert "firstAddAttemptTime" not in failed["status"]
    assert _ready_message(failed) == f"{WHY}; nobody was given access"
    (record,) = audit.records_of_grant(failed)
    assert not {"possibleStartTime", "possibleEndTime", "takenBack"} & set(record)
    assert periods.build([record]) == []


def test_the_failure_message_names_the_bound_and_what_the_take_back_found() -> None:
    at, back = T0, T0 + dt.timedelta(minutes=2)
    assert grant_rules.failure_message("refused", "bob", None, back, []) == "refused; nobody was given access"
    found = grant_rules.failure_message("refused", "bob", at, back, ["444455556666"])
    assert "bob may have held access from 2026-12-01T06:00:00Z until the take-back at 2026-12-01T06:02:00Z" in found
    assert "which removed 444455556666" in found
    nothing = grant_rules.failure_message("refused", "bob", at, back, [])
    assert "which found nothing left to remove" in nothing and "nobody" not in nothing


def _never_active(reason: str, **status: Any) -> dict[str, Any]:
    obj = _new()
    obj["metadata"]["uid"] = f"uid-{reason}"
    at = "2026-12-01T06:10:00Z"
    obj["status"] = {
        "conditions": [{"type": names.READY, "status": "False", "reason": reason, "lastTransitionTime": at}],
        **status,
    }
    return obj


def test_a_grant_revoked_before_it_became_active_may_have_held_access_until_its_end() -> None:
    revoked = _never_active(
        names.REVOKED, firstAddAttemptTime="2026-12-01T06:00:00Z", revocationTime="2026-12-01T06:10:00Z"
    )
    (record,) = audit.records_of_grant(revoked)
    assert (record["possibleStartTime"], record["possibleEndTime"]) == ("2026-12-01T06:00:00Z", "2026-12-01T06:10:00Z")
    assert "takenBack" not in record


def test_an_active_grant_has_its_confirmed_window_only() -> None:
    expired = _never_active(
        names.EXPIRED,
        firstAddAttemptTime="2026-12-01T06:00:00Z",
        activationTime="2026-12-01T06:00:01Z",
        expirationTime="2026-12-01T07:00:01Z",
    )
    records = audit.records_of_grant(expired)
    assert all("possibleStartTime" not in r for r in records)
    (period,) = periods.build(records)
    assert not period.possible and period.start == "2026-12-01T06:00:01Z"


def test_the_access_report_marks_a_possible_period_as_not_confirmed() -> None:
    failed = _never_active(
        names.FAILED,
        firstAddAttemptTime="2026-12-01T06:00:00Z",
        takeBack={"time": "2026-12-01T06:00:08Z", "removed": ["444455556666"]},
    )
    (period,) = periods.build(audit.records_of_grant(failed))
    row = dict(zip(reports.ACCESS_COLUMNS, reports._access_row(period), strict=True))
    assert row["START"] == "2026-12-01T06:00:00Z (possible)" and row["END"] == "2026-12-01T06:00:08Z"
    assert "POSSIBLE access, not confirmed" in row["ENDED"]
    out = io.StringIO()
    reports.write_access_csv([period], out)
    (line,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert (line["possible"], line["takenBack"], line["ending"]) == ("true", "444455556666", "failed")
    records = io.StringIO()
    reports.write_csv(audit.records_of_grant(failed), records)
    (flat,) = csv.DictReader(io.StringIO(records.getvalue()))
    assert (flat["possibleStartTime"], flat["possibleEndTime"], flat["takenBack"]) == (
        "2026-12-01T06:00:00Z",
        "2026-12-01T06:00:08Z",
        "444455556666",
    )

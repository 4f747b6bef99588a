"""A grant that fails half-way may have held access: an attempt's add landed in Identity Center but
its answer was lost, a retry failed the grant and took the add back. Nothing is written on the way
to Identity Center (an auto-approved grant's API requests are counted: bench/README.md); failing
the grant records, in the write that marks it Failed, what the take-back removed and from when the
user may have held it (`status.takeBack`: `since`, the first attempt this controller knows of, else
the grant's creation). Its `failed` record and `kubectl jit audit --access` show that upper bound
as possible access, and the message says nobody was given access only when no attempt can have
asked for anything."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest

from jitaccess.adapters.kube import BY_NAME
from jitaccess.api import audit, names
from jitaccess.api.models import AccessGrant
from jitaccess.cli import periods, reports
from jitaccess.domain import grants as grant_rules
from jitaccess.domain.schedule import CLOCK_SKEW
from jitaccess.errors import RetryLater
from jitaccess.handlers import grants
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.conftest import T0
from tests.unit.test_activation_time import _grant, _Known
from tests.unit.test_grant_ended_while_provisioning import GROUP, _Kube

WHY = "not provisioned: AccessGrant r1 is not backed by an approved AccessRequest (maxDuration 30m here)"
CREATED = "2026-12-01T05:59:58Z"  # two seconds before the first attempt, at T0


class _LostAnswers(_Known):
    """Adds the membership, then loses the answer (a read timeout once the request was sent)."""

    def ensure_member(self, group_id: str, user_id: str) -> tuple[str, bool]:
        super().ensure_member(group_id, user_id)
        raise RetryLater("CreateGroupMembership: read timeout", operation="CreateGroupMembership")


class _NotAnswering(_Known):
    """Never gets the add through (a connection refused before the request was sent)."""

    def ensure_member(self, group_id: str, user_id: str) -> tuple[str, bool]:
        raise RetryLater("CreateGroupMembership: connection refused", operation="CreateGroupMembership")


class _Counting(_Kube):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[dict[str, Any]] = []

    def update_status(
        self, plural: str, name: str, change: Any, current: Any = None, *, uid: Any = None
    ) -> dict[str, Any] | None:
        updated = super().update_status(plural, name, change, current, uid=uid)
        if updated is not None:
            self.writes.append(updated["status"])
        return updated


def _runtime(ic: _Known, kube: _Kube, began: dt.datetime = T0 - CLOCK_SKEW - dt.timedelta(minutes=1)) -> Runtime:
    """A controller that began acting at `began`: before the grant's creation by default, by more
    than the clocks' allowed skew (so the grant is this controller's own)."""
    rt = Runtime(Settings(), ic, kube)  # type: ignore[arg-type]
    rt.attempts.since = began
    return rt


def _new() -> dict[str, Any]:
    return {**_grant(T0 - dt.timedelta(seconds=2)), "kind": names.ACCESS_GRANT}


def _stored(kube: _Kube) -> dict[str, Any]:
    return kube.get(names.GRANTS, "r1") or {}


def _ready_message(obj: dict[str, Any]) -> str:
    return str(next(c["message"] for c in obj["status"]["conditions"] if c["type"] == names.READY))


def _attempt(rt: Runtime, kube: _Kube) -> None:
    with pytest.raises(RetryLater):
        grants.activate(rt, AccessGrant.model_validate(_stored(kube)))


def test_a_lost_answer_then_a_failure_leaves_the_time_access_may_have_been_held(clock: list[dt.datetime]) -> None:
    kube, ic = _Counting(), _LostAnswers()
    rt = _runtime(ic, kube)
    kube.put(names.GRANTS, _new())
    for retry in range(2):  # the first attempt, and kopf's retry five seconds later: both answers lost
        clock[0] = T0 + dt.timedelta(seconds=5 * retry)
        _attempt(rt, kube)
    assert ic.members, "the add landed"
    assert kube.writes == [], "nothing is written before Identity Center is asked"

    clock[0] = T0 + dt.timedelta(seconds=8)  # the next retry finds the grant no longer backed
    grants.fail(rt, AccessGrant.model_validate(_stored(kube)), WHY, before_add=True)
    assert ic.members == {}, "the take-back removed the membership"
    assert len(kube.writes) == 1, "the take-back is recorded in the write that fails the grant"
    failed = _stored(kube)
    assert failed["status"]["takeBack"] == {
        "time": "2026-12-01T06:00:08Z",
        "removed": [GROUP],
        "since": "2026-12-01T06:00:00Z",  # the first attempt, not the retry
    }
    message = _ready_message(failed)
    assert message.startswith(WHY) and "nobody was given access" not in message
    assert "may have held access from 2026-12-01T06:00:00Z until the take-back at 2026-12-01T06:00:08Z" in message
    assert rt.attempts.tried_at("uid-g1") is None, "forgotten once the grant has ended"

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


def test_after_a_restart_the_possible_access_starts_at_the_grants_creation(clock: list[dt.datetime]) -> None:
    """The attempt whose answer was lost was the previous process's: this one knows of none, and
    nothing is added for a grant before it exists."""
    kube, ic = _Kube(), _LostAnswers()
    kube.put(names.GRANTS, _new())
    _attempt(_runtime(ic, kube), kube)  # the process that is then killed
    clock[0] = T0 + dt.timedelta(minutes=3)
    restarted = _runtime(ic, kube, began=T0 + dt.timedelta(minutes=2))
    grants.fail(restarted, AccessGrant.model_validate(_stored(kube)), WHY, before_add=True)
    failed = _stored(kube)
    assert failed["status"]["takeBack"] == {"time": "2026-12-01T06:03:00Z", "removed": [GROUP], "since": CREATED}
    assert f"may have held access from {CREATED} until the take-back at 2026-12-01T06:03:00Z" in _ready_message(failed)
    (record,) = audit.records_of_grant(failed)
    assert (record["possibleStartTime"], record["possibleEndTime"]) == (CREATED, "2026-12-01T06:03:00Z")


def test_a_grant_an_earlier_controller_may_have_tried_starts_at_its_creation_even_if_tried_here(
    clock: list[dt.datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wait for an earlier controller's add (attack 129) is not what this shows: the clock is a test's.
    monkeypatch.setattr(grants, "_after_earlier_adds", lambda *_: None)
    kube, ic = _Kube(), _LostAnswers()
    rt = _runtime(ic, kube, began=T0 - dt.timedelta(seconds=1))  # the Lease taken after the grant was created
    kube.put(names.GRANTS, _new())
    _attempt(rt, kube)
    clock[0] = T0 + dt.timedelta(seconds=8)
    grants.fail(rt, AccessGrant.model_validate(_stored(kube)), WHY, before_add=True)
    assert _stored(kube)["status"]["takeBack"]["since"] == CREATED


def test_an_attempt_whose_add_never_landed_is_said_without_a_period(clock: list[dt.datetime]) -> None:
    kube, ic = _Kube(), _NotAnswering()
    rt = _runtime(ic, kube)
    kube.put(names.GRANTS, _new())
    _attempt(rt, kube)
    clock[0] = T0 + dt.timedelta(seconds=8)
    grants.fail(rt, AccessGrant.model_validate(_stored(kube)), WHY, before_add=True)
    failed = _stored(kube)
    assert failed["status"]["takeBack"] == {
        "time": "2026-12-01T06:00:08Z",
        "removed": [],
        "since": "2026-12-01T06:00:00Z",
    }
    message = _ready_message(failed)
    assert message == (
        f"{WHY}; an add was attempted at 2026-12-01T06:00:00Z and the take-back at 2026-12-01T06:00:08Z found "
        "nothing left to remove"
    )
    (record,) = audit.records_of_grant(failed)
    assert not {"possibleStartTime", "possibleEndTime", "takenBack"} & set(record)
    assert periods.build([record]) == []


def test_a_grant_failed_before_any_add_could_be_asked_for_says_nobody_was_given_access(
    clock: list[dt.datetime],
) -> None:
    kube, ic = _Counting(), _Known()
    rt = _runtime(ic, kube)
    kube.put(names.GRANTS, _new())
    grants.fail(rt, AccessGrant.model_validate(_stored(kube)), WHY, before_add=True)
    failed = _stored(kube)
    assert len(kube.writes) == 1
    assert failed["status"]["takeBack"] == {"time": "2026-12-01T06:00:00Z", "removed": [], "since": CREATED}
    assert _ready_message(failed) == f"{WHY}; nobody was given access"
    (record,) = audit.records_of_grant(failed)
    assert not {"possibleStartTime", "possibleEndTime", "takenBack"} & set(record)
    assert periods.build([record]) == []


@pytest.mark.parametrize(
    ("before_add", "began"),
    [
        (False, T0 - dt.timedelta(minutes=1)),  # failed after an add may have gone out in this call
        (True, T0 + dt.timedelta(minutes=1)),  # created before this controller began: an earlier one may have tried
    ],
)
def test_with_no_attempt_known_but_one_possible_it_never_claims_nobody_held_access(
    clock: list[dt.datetime], before_add: bool, began: dt.datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wait for an earlier controller's add (attack 129) is not what this shows: the clock is a test's.
    monkeypatch.setattr(grants, "_after_earlier_adds", lambda *_: None)
    kube, ic = _Kube(), _Known()
    rt = _runtime(ic, kube, began=began)
    kube.put(names.GRANTS, _new())
    grants.fail(rt, AccessGrant.model_validate(_stored(kube)), WHY, before_add=before_add)
    assert _ready_message(_stored(kube)) == f"{WHY}; the take-back at 2026-12-01T06:00:00Z found nothing to remove"


def test_a_grant_revoked_before_it_became_active_records_what_its_end_took_back(clock: list[dt.datetime]) -> None:
    kube, ic = _Counting(), _LostAnswers()
    rt = _runtime(ic, kube)
    kube.put(names.GRANTS, _new())
    _attempt(rt, kube)
    clock[0] = T0 + dt.timedelta(minutes=10)
    grants.end_grant(rt, "r1", names.REVOKED, rt.holders, who="paula@example.com", why="not needed", uid=BY_NAME)
    assert ic.members == {} and len(kube.writes) == 1, "the take-back rides on the Revoked write"
    revoked = _stored(kube)
    assert revoked["status"]["takeBack"] == {
        "time": "2026-12-01T06:10:00Z",
        "removed": [GROUP],
        "since": "2026-12-01T06:00:00Z",
    }
    (record,) = audit.records_of_grant(revoked)
    assert record["action"] == "revoked"
    assert (record["possibleStartTime"], record["possibleEndTime"]) == ("2026-12-01T06:00:00Z", "2026-12-01T06:10:00Z")
    (period,) = periods.build([record])
    assert period.possible and period.ending == "revoked"


def test_a_grant_revoked_before_any_add_records_no_take_back(clock: list[dt.datetime]) -> None:
    kube, ic = _Kube(), _Known()
    rt = _runtime(ic, kube)
    kube.put(names.GRANTS, _new())
    grants.end_grant(rt, "r1", names.REVOKED, rt.holders, who="paula@example.com", uid=BY_NAME)
    revoked = _stored(kube)
    assert "takeBack" not in revoked["status"]
    assert periods.build(audit.records_of_grant(revoked)) == []


def test_the_failure_message_names_the_bound_and_what_the_take_back_found() -> None:
    back = T0 + dt.timedelta(minutes=2)

    def said(removed: list[str], attempted: dt.datetime | None, maybe: bool) -> str:
        took = grant_rules.TakeBack(back, removed, T0, attempted, maybe)
        return grant_rules.failure_message("refused", "bob", took)

    found = said(["444455556666"], T0, True)
    assert "bob may have held access from 2026-12-01T06:00:00Z until the take-back at 2026-12-01T06:02:00Z" in found
    assert "which removed 444455556666" in found
    tried = said([], T0, True)
    assert "an add was attempted at 2026-12-01T06:00:00Z" in tried and "found nothing left to remove" in tried
    assert "nobody" not in tried and "may have held" not in tried
    assert said([], None, True) == "refused; the take-back at 2026-12-01T06:02:00Z found nothing to remove"
    assert said([], None, False) == "refused; nobody was given access"
    assert "may have held access from" in said(["g"], None, False), "what was removed was held, whatever is known"


def _never_active(reason: str, **status: Any) -> dict[str, Any]:
    obj = _new()
    obj["metadata"]["uid"] = f"uid-{reason}"
    at = "2026-12-01T06:10:00Z"
    obj["status"] = {
        "conditions": [{"type": names.READY, "status": "False", "reason": reason, "lastTransitionTime": at}],
        **status,
    }
    return obj


def test_a_take_back_without_since_starts_at_the_grants_creation() -> None:
    failed = _never_active(names.FAILED, takeBack={"time": "2026-12-01T06:00:08Z", "removed": [GROUP]})
    (record,) = audit.records_of_grant(failed)
    assert (record["possibleStartTime"], record["possibleEndTime"]) == (CREATED, "2026-12-01T06:00:08Z")


def test_an_active_grant_has_its_confirmed_window_only() -> None:
    expired = _never_active(
        names.EXPIRED,
        activationTime="2026-12-01T06:00:01Z",
        expirationTime="2026-12-01T07:00:01Z",
        takeBack={"time": "2026-12-01T06:00:08Z", "removed": [GROUP], "since": "2026-12-01T06:00:00Z"},
    )
    records = audit.records_of_grant(expired)
    assert all("possibleStartTime" not in r for r in records)
    (period,) = periods.build(records)
    assert not period.possible and period.start == "2026-12-01T06:00:01Z"


def test_the_access_report_marks_a_possible_period_as_not_confirmed() -> None:
    failed = _never_active(
        names.FAILED,
        takeBack={"time": "2026-12-01T06:00:08Z", "removed": ["444455556666"], "since": "2026-12-01T06:00:00Z"},
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


def test_a_failure_decided_for_a_grant_replaced_since_takes_nothing_back_from_the_new_one(
    clock: list[dt.datetime],
) -> None:
    """The grant was deleted and another stored under its name (its request's name taken again)
    while the failure was being decided: the membership the new grant's attempt added is the new
    grant's, and neither its access nor its status is touched by the old grant's end."""
    kube, ic = _Counting(), _LostAnswers()
    rt = _runtime(ic, kube)
    kube.put(names.GRANTS, _new())
    old = AccessGrant.model_validate(_stored(kube))
    replaced = _new()
    replaced["metadata"] = {**replaced["metadata"], "uid": "uid-g2"}
    kube.put(names.GRANTS, replaced)
    _attempt(rt, kube)  # the new grant's attempt: its add lands, its answer is lost
    assert ic.members, "the new grant's add landed"
    clock[0] = T0 + dt.timedelta(seconds=8)
    grants.fail(rt, old, WHY, before_add=True)
    assert ic.members, "the new grant's membership is not taken back for the old one"
    assert kube.writes == [] and "takeBack" not in _stored(kube).get("status", {}), "nothing lands on the new grant"


def test_an_end_decided_for_one_grant_leaves_another_stored_under_its_name(clock: list[dt.datetime]) -> None:
    """`end_grant` with the uid of the grant decided on (as the expiry, a lapse and a revocation
    pass it) ends nothing when another grant holds the name now: its access and status stay."""
    kube, ic = _Counting(), _LostAnswers()
    rt = _runtime(ic, kube)
    kube.put(names.GRANTS, _new())
    _attempt(rt, kube)  # the grant now stored: its add landed
    clock[0] = T0 + dt.timedelta(minutes=10)
    assert grants.end_grant(rt, "r1", names.REVOKED, rt.holders, why="decided for another", uid="uid-gone") is None
    assert ic.members and kube.writes == [], "nothing taken from, nothing written on, the grant stored now"
    with pytest.raises(ValueError, match="empty uid"):
        grants.end_grant(rt, "r1", names.REVOKED, rt.holders, uid="")

"""A deleted Entitlement's wait and release messages (`domain.releases`), and its retries kept out
of the error log (`logs.WaitsAreNotErrors`)."""

from __future__ import annotations

import datetime as dt
import logging

from jitaccess.domain import releases
from jitaccess.logs import WaitsAreNotErrors

AT = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def test_nothing_left_is_done() -> None:
    assert releases.Remaining(grants=[]).done
    assert not releases.Remaining(grants=[("g", None)]).done
    assert not releases.Remaining(grants=[], unkept_records=1).done


def test_waiting_names_the_grants_the_last_end_and_how_to_end_them() -> None:
    remaining = releases.Remaining(
        grants=[("late", AT + dt.timedelta(hours=2)), ("soon", AT + dt.timedelta(minutes=5))]
    )
    message = releases.waiting("prod-x", remaining, AT)
    assert "2 grant(s) of it are still active (soon, late), the last ending at 2026-12-02T14:00:00Z" in message
    assert "kubectl jit revoke --all --grants-only --entitlement prod-x --reason TEXT" in message
    assert "drift removal" not in message
    assert "it goes when they end, and its group is kept clear of anyone else until then;" in message
    # No group scanned (account-assignment mode): none is said kept clear.
    unscanned = releases.waiting("prod-x", remaining, AT, scanned=False)
    assert "it goes when they end; to end them now: kubectl jit revoke" in unscanned


def test_waiting_without_a_known_end_and_with_many_grants() -> None:
    grants = [(f"g{i}", AT + dt.timedelta(minutes=i + 1)) for i in range(7)] + [("provisioning", None)]
    message = releases.waiting("prod-x", releases.Remaining(grants=grants), AT)
    assert "8 grant(s) of it are still active (g0, g1, g2, g3, g4 and 3 more):" in message
    assert "the last ending" not in message  # one of them has no end yet


def test_waiting_for_records() -> None:
    message = releases.waiting("prod-x", releases.Remaining(grants=[], unkept_records=2), AT)
    assert message.startswith("2 drift removal record(s) not archived yet")


def test_released_says_what_is_left_in_aws() -> None:
    alone = releases.released("prod-eng-x", [])
    assert "no longer watches Identity Center group prod-eng-x" in alone
    assert "keeps the permission sets assigned to it in AWS" in alone
    shared = releases.released("prod-eng-x", ["b", "a"])
    assert "still granted, and watched, through Entitlement(s) a, b" in shared
    assert "account assignment" in releases.released(None, [])


def _record(message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)


def test_a_wait_is_not_an_error_but_a_failure_still_is() -> None:
    logging.getLogger("kopf.objects").setLevel(logging.INFO)
    wait = _record(f"Handler 'release_entitlement' failed temporarily: {releases.WAITING} 1 grant(s)")
    assert WaitsAreNotErrors().filter(wait)
    assert wait.levelno == logging.INFO
    failure = _record("Handler 'release_entitlement' failed temporarily: boom")
    assert WaitsAreNotErrors().filter(failure)
    assert failure.levelno == logging.ERROR
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    quiet = _record(f"Handler 'release_entitlement' failed temporarily: {releases.WAITING} 1 grant(s)")
    assert not WaitsAreNotErrors().filter(quiet)  # below the level kopf's lines are kept at: dropped
    logging.getLogger("kopf.objects").setLevel(logging.NOTSET)


def test_an_archived_drift_removal_waiting_for_its_notices_holds_no_release() -> None:
    """Its notices are waited for after the release, for a bounded time (`hold_until_archived`):
    a Slack outage must not keep the Entitlement in `Deleting`, scanned, for days."""
    archived = {"membershipId": "m-1", "time": "2026-12-02T11:00:00Z"}
    unarchived = {"membershipId": "m-2", "time": "2026-12-02T11:00:01Z"}
    under_way = {"membershipId": "m-3"}
    entitlement = {
        "kind": "Entitlement",
        "status": {"driftRemovals": [archived, unarchived, under_way], "archivedRecords": ["drift-removed/m-1"]},
    }
    assert releases.unkept_drift(entitlement) == 2
    assert releases.unkept_drift({"kind": "Entitlement", "status": {}}) == 0

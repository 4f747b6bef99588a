"""A request's `Ready` follows its grant's (`domain.following`), and what lags behind is found."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from jitaccess.domain import following
from jitaccess.domain.following import Laggards
from jitaccess.logs import RefusalsAreNotErrors
from tests.unit.factories import T0, condition, grant

EXPIRES = (T0 + timedelta(hours=1)).isoformat()


def test_provisioning_grant_asks_nothing_of_its_request() -> None:
    assert following.request_ready(grant()) is None
    assert not following.out_of_line("Pending", None)
    assert not following.out_of_line("Pending", "Provisioning")


def test_active_grant_makes_its_request_granted_until_it_expires() -> None:
    wanted = following.request_ready(grant(conditions=[condition("Ready", "True", "Active")], expirationTime=EXPIRES))
    assert wanted is not None
    assert (wanted.reason, wanted.ready) == ("Granted", True)
    assert wanted.message == "access active until 2026-11-23T13:00:00Z"
    assert wanted.expiration_time == T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    ("reason", "status", "message"),
    [
        ("Expired", {"expirationTime": EXPIRES}, "access expired at 2026-11-23T13:00:00Z"),
        ("Revoked", {"revokedBy": "lena@example.com"}, "access revoked by lena@example.com"),
        ("Revoked", {}, "access revoked"),
    ],
)
def test_finished_grant_finishes_its_request_alike(reason: str, status: dict[str, str], message: str) -> None:
    wanted = following.request_ready(grant(conditions=[condition("Ready", "False", reason)], **status))
    assert wanted is not None
    assert (wanted.reason, wanted.ready, wanted.message, wanted.expiration_time) == (reason, False, message, None)


def test_failed_grant_passes_its_message_on() -> None:
    failed = condition("Ready", "False", "Failed") | {"message": "group gone"}
    wanted = following.request_ready(grant(conditions=[failed]))
    assert wanted is not None and (wanted.reason, wanted.message) == ("Failed", "group gone")


@pytest.mark.parametrize(
    ("request_reason", "grant_reason", "behind"),
    [
        ("Pending", "Active", True),  # died after activating the grant
        ("Granted", "Expired", True),  # died after ending it
        ("Granted", "Revoked", True),
        ("Granted", "Active", False),
        ("Expired", "Expired", False),
    ],
)
def test_out_of_line(request_reason: str, grant_reason: str, behind: bool) -> None:
    assert following.out_of_line(request_reason, grant_reason) is behind


def test_a_grant_of_an_earlier_request_of_the_same_name_is_not_this_ones() -> None:
    labelled = grant().model_copy(deep=True)
    labelled.metadata.labels["jitaccess.dev/request"] = "uid-1"
    assert following.belongs_to(labelled, "uid-1")
    assert not following.belongs_to(labelled, "uid-2")
    assert following.belongs_to(grant(), "uid-2"), "no label: spec.request says whose it is"


def _all(_: str) -> bool:
    return True


def test_a_request_lagging_behind_is_due_only_after_the_grace_period() -> None:
    laggards = Laggards()
    laggards.see_request("r1", "uid-1", "Granted", True, now=0.0)
    laggards.see_grant("r1", "r1", "uid-1", "Expired", "payments", now=1.0)
    assert laggards.due(_all, now=5.0, grace=5.0) == [], "the handler may still be following"
    assert laggards.due(_all, now=6.0, grace=5.0) == [("r1", "r1")]
    assert laggards.due(_all, now=7.0, grace=5.0) == [], "not again before another grace period"
    assert laggards.due(_all, now=11.0, grace=5.0) == [("r1", "r1")], "still behind: tried again"
    laggards.see_request("r1", "uid-1", "Expired", True, now=12.0)
    assert laggards.due(_all, now=30.0, grace=5.0) == []


def test_the_order_of_the_watches_does_not_matter() -> None:
    laggards = Laggards()
    laggards.see_grant("r1", "r1", "uid-1", "Active", "payments", now=0.0)
    laggards.see_request("r1", "uid-1", "Pending", True, now=0.0)
    assert laggards.due(_all, now=10.0, grace=5.0) == [("r1", "r1")]


def test_requests_in_line_or_not_theirs_are_never_due() -> None:
    laggards = Laggards()
    laggards.see_grant("r1", "r1", "uid-1", "Active", "payments", now=0.0)
    laggards.see_request("r1", "uid-1", "Granted", True, now=0.0)
    laggards.see_grant("r2", "r2", "uid-old", "Expired", "payments", now=0.0)
    laggards.see_request("r2", "uid-new", "Pending", True, now=0.0)
    laggards.see_grant("r3", "r3", "uid-3", "Active", "payments", now=0.0)
    laggards.see_request("r3", "uid-3", "Pending", True, now=0.0)
    laggards.forget_grant("r3", now=0.0)
    assert laggards.due(_all, now=60.0, grace=5.0) == []


def test_due_picks_the_entitlements_asked_for() -> None:
    laggards = Laggards()
    laggards.see_request("r1", "uid-1", "Granted", True, now=0.0)
    laggards.see_grant("r1", "r1", "uid-1", "Revoked", "ledger", now=0.0)
    assert laggards.due(lambda entitlement: entitlement == "payments", now=10.0, grace=5.0) == []
    assert laggards.due(lambda entitlement: entitlement == "ledger", now=10.0, grace=5.0) == [("r1", "r1")]


def _record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)


def test_refused_admissions_are_not_errors_and_real_failures_stay() -> None:
    refusal = _record(logging.ERROR, "Webhook 'accessrequests-check' failed permanently: you may not approve")
    logger = logging.getLogger("kopf.objects")
    before = logger.level
    try:
        logger.setLevel(logging.WARNING)
        assert not RefusalsAreNotErrors().filter(refusal)
        assert refusal.levelno == logging.DEBUG and refusal.levelname == "DEBUG"
        logger.setLevel(logging.DEBUG)
        assert RefusalsAreNotErrors().filter(
            _record(logging.ERROR, "Webhook 'accessgrants-check' failed permanently: only the operator")
        )
    finally:
        logger.setLevel(before)
    crash = _record(logging.ERROR, "Webhook 'accessgrants-check' failed with an exception. Will stop.")
    assert RefusalsAreNotErrors().filter(crash) and crash.levelno == logging.ERROR
    handler = _record(logging.ERROR, "Handler 'provision_grant' failed permanently: broken")
    assert RefusalsAreNotErrors().filter(handler) and handler.levelno == logging.ERROR

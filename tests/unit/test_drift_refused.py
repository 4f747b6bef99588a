"""A drift removal Identity Center refuses (AccessDenied: the group not in the operator's IAM policy
yet, an SCP denying DeleteGroupMembership) is an error someone must fix, not Identity Center "not
answering" (attack 148 of docs/security.md): the member keeps the group's access until then.

It is counted in `jitaccess_errors_total`, said in an ERROR line and a `DriftNotRemoved` Warning
Event naming the member, the group and the IAM action, and tried again at every pass; the other
members of the group are removed all the same. A deleted Entitlement's wait says it first in its
`Deleting` message, and its retry is no `waiting:` one, which the log would keep quiet. The
end-to-end tier refuses the removal in the emulator (tests/e2e/test_attacks_deletion.py)."""

from __future__ import annotations

import copy
import logging
from typing import Any

import kopf
import pytest

from jitaccess import metrics
from jitaccess.api import names
from jitaccess.api.models import Entitlement
from jitaccess.domain import releases
from jitaccess.errors import PermanentFailure, RetryLater
from jitaccess.handlers import catalog
from jitaccess.logs import WaitsAreNotErrors
from tests.unit import test_drift_settling as drift
from tests.unit.test_drift_groups import _scanning

GROUP, GROUP_ID = "prod-payments-admins", "gid-1"
DENIED = "An error occurred (AccessDeniedException) when calling the DeleteGroupMembership operation"


def _entitlement(**metadata: Any) -> dict[str, Any]:
    return {"kind": names.ENTITLEMENT, "metadata": {"name": "prod", "uid": f"u-{id(metadata)}", **metadata},
            "spec": {"owner": "payments", "identityCenter": {"groupName": GROUP}},
            "status": {"groupId": GROUP_ID}}  # fmt: skip


def _refusing(store: drift.Store, *users: str) -> None:
    """Identity Center refuses to remove `users` from the group (the others it removes)."""
    remove = store.remove_member

    def refused(group_id: str, user_id: str, membership_id: str | None = None) -> bool:
        if user_id in users:
            raise PermanentFailure(DENIED, operation="DeleteGroupMembership", code="AccessDeniedException")
        return remove(group_id, user_id, membership_id)

    store.remove_member = refused  # type: ignore[method-assign]


def _errors() -> float:
    return float(metrics.ERRORS.labels("handler")._value.get())


@pytest.fixture
def said(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, bool]]:
    """The Events the handlers record: (reason, message, warning)."""
    found: list[tuple[str, str, bool]] = []
    monkeypatch.setattr(
        catalog, "record", lambda body, reason, message, **kw: found.append((reason, message, kw["warning"]))
    )
    # Each test is a process of its own for what is said once a minute or half-hour.
    monkeypatch.setattr(catalog, "REFUSALS_LOGGED", catalog.OncePer(60))
    monkeypatch.setattr(catalog, "REFUSALS_TOLD", catalog.OncePer(1800))
    return found


def test_a_refused_removal_is_an_error_naming_the_member_the_group_and_the_iam_action(
    said: list[tuple[str, str, bool]], caplog: pytest.LogCaptureFixture
) -> None:
    cluster, store, rt = _scanning(entitlement=_entitlement(), **{"m-eve": "eve", "m-mal": "mallory"})
    _refusing(store, "eve")
    body = Entitlement.model_validate(copy.deepcopy(cluster.objects[(names.ENTITLEMENTS, "prod")]))
    before = _errors()
    with caplog.at_level(logging.INFO, logger=catalog.log.name):
        catalog._watch_logged(rt, body, (GROUP, GROUP_ID), frozenset())
    # The refusal stops no other removal; eve's stays listed, unconfirmed, for the next pass.
    assert store.members == {"m-eve": "eve"}
    listed = {r["membershipId"]: r for r in cluster.objects[(names.ENTITLEMENTS, "prod")]["status"]["driftRemovals"]}
    assert "time" not in listed["m-eve"] and listed["m-mal"]["time"]
    assert _errors() == before + 1
    [(reason, message, warning)] = [s for s in said if s[0] != names.DRIFT_FOUND]
    assert reason == names.DRIFT_NOT_REMOVED and warning
    for word in ("eve@example.com", f"group {GROUP}", "identitystore:DeleteGroupMembership", "AccessDeniedException"):
        assert word in message, message
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "eve@example.com" in errors[0] and "identitystore:DeleteGroupMembership" in errors[0]
    assert not [r for r in caplog.records if "not answering" in r.getMessage()]

    # The next pass tries again: counted again; the line and the Event are not said at every pass.
    caplog.clear()
    body = Entitlement.model_validate(copy.deepcopy(cluster.objects[(names.ENTITLEMENTS, "prod")]))
    with caplog.at_level(logging.INFO, logger=catalog.log.name):
        catalog._watch_logged(rt, body, (GROUP, GROUP_ID), frozenset())
    assert _errors() == before + 2
    assert [s[0] for s in said].count(names.DRIFT_NOT_REMOVED) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    # The refusal lifted: removed, and confirmed as drift found.
    store.remove_member = drift.Store.remove_member.__get__(store)  # type: ignore[method-assign]
    body = Entitlement.model_validate(copy.deepcopy(cluster.objects[(names.ENTITLEMENTS, "prod")]))
    catalog._watch_logged(rt, body, (GROUP, GROUP_ID), frozenset())
    assert store.members == {} and _errors() == before + 2
    assert said[-1][0] == names.DRIFT_FOUND and "eve@example.com was in" in said[-1][1]


def test_each_member_whose_removal_is_refused_is_named(
    said: list[tuple[str, str, bool]], caplog: pytest.LogCaptureFixture
) -> None:
    """Two members no grant backs, both refused: each is counted, said and told, not only the first
    (an on-call engineer removing the one named by hand would leave the other unnamed)."""
    cluster, store, rt = _scanning(entitlement=_entitlement(), **{"m-eve": "eve", "m-mal": "mallory"})
    _refusing(store, "eve", "mallory")
    body = Entitlement.model_validate(copy.deepcopy(cluster.objects[(names.ENTITLEMENTS, "prod")]))
    before = _errors()
    with caplog.at_level(logging.INFO, logger=catalog.log.name):
        catalog._watch_logged(rt, body, (GROUP, GROUP_ID), frozenset())
    assert store.members == {"m-eve": "eve", "m-mal": "mallory"}
    assert _errors() == before + 2
    told = [message for reason, message, _ in said if reason == names.DRIFT_NOT_REMOVED]
    assert len(told) == 2 and {"eve@example.com", "mallory@example.com"} == {
        user for user in ("eve@example.com", "mallory@example.com") for m in told if user in m
    }
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2


def test_a_scan_identity_center_refuses_is_an_error_and_one_it_does_not_answer_is_not(
    said: list[tuple[str, str, bool]], caplog: pytest.LogCaptureFixture
) -> None:
    cluster, store, rt = _scanning(entitlement=_entitlement(), **{"m-eve": "eve"})
    body = Entitlement.model_validate(copy.deepcopy(cluster.objects[(names.ENTITLEMENTS, "prod")]))
    failures: list[Exception] = [
        RetryLater("throttled", operation="ListGroupMemberships", code="ThrottlingException"),
        PermanentFailure("denied", operation="ListGroupMemberships", code="AccessDeniedException"),
    ]

    def listing(group_id: str) -> dict[str, str]:
        raise failures.pop(0)

    store.group_members = listing  # type: ignore[method-assign]
    before = _errors()
    with caplog.at_level(logging.INFO, logger=catalog.log.name):
        catalog._watch_logged(rt, body, (GROUP, GROUP_ID), frozenset())
        assert _errors() == before and [r.levelno for r in caplog.records] == [logging.INFO]
        catalog._watch_logged(rt, body, (GROUP, GROUP_ID), frozenset())
    assert _errors() == before + 1
    error = caplog.records[-1]
    assert error.levelno == logging.ERROR and "identitystore:ListGroupMemberships" in error.getMessage()
    assert store.members == {"m-eve": "eve"} and said == []


def test_a_deleted_entitlement_whose_removal_is_refused_says_so_first_and_is_no_wait(
    said: list[tuple[str, str, bool]],
) -> None:
    deleted = _entitlement(deletionTimestamp="2026-12-01T10:00:00Z")
    cluster, store, rt = _scanning(entitlement=deleted, **{"m-eve": "eve"})
    _refusing(store, "eve")
    before = _errors()
    with pytest.raises(kopf.TemporaryError) as retried:
        catalog._release(rt, copy.deepcopy(deleted))
    text = str(retried.value)
    assert not text.startswith(releases.WAITING), text
    assert retried.value.delay == catalog.RESYNC_SECONDS
    # kopf's line for the retry stays an ERROR (a wait's is demoted).
    line = logging.LogRecord(
        "kopf.objects",
        logging.ERROR,
        __file__,
        1,
        f"Handler 'release_entitlement' failed temporarily: {text}",
        None,
        None,
    )
    assert WaitsAreNotErrors().filter(line) and line.levelno == logging.ERROR
    ready = next(
        c for c in cluster.objects[(names.ENTITLEMENTS, "prod")]["status"]["conditions"] if c["type"] == names.READY
    )
    assert ready["reason"] == names.DELETING and ready["message"] == text
    assert ready["message"].startswith("deleted, and kept until its drift scan succeeds: eve@example.com is in "), ready
    assert "identitystore:DeleteGroupMembership" in ready["message"]
    assert (names.DELETING, text, True) in said and names.DRIFT_NOT_REMOVED in [s[0] for s in said]
    assert _errors() == before + 1
    assert store.members == {"m-eve": "eve"}

    # Identity Center not answering is still a wait, said as one.
    def unanswered(group_id: str) -> dict[str, str]:
        raise RetryLater("throttled", operation="ListGroupMemberships", code="ThrottlingException")

    store.group_members = unanswered  # type: ignore[method-assign]
    with pytest.raises(kopf.TemporaryError, match=f"^{releases.WAITING} Identity Center not answering"):
        catalog._release(rt, copy.deepcopy(deleted))

"""A grant's access is in the identity store the operator pointed at when it was given
(`status.identityStoreId`). Pointed at another since (`config.identityStoreId` changed while grants
ran), the operator would find no such membership there, take it for gone and record the grant ended
("no longer holds") while the member stays in the old store for good (attack 150). Every end is
refused instead (`grants.in_operators_store`): nothing is removed from the new store, nothing is
written, and the refusal is retried and reported naming both stores and the fix; at start-up one
ERROR line counts such grants. A grant that records no store (stored before the field) is taken as
in the configured store."""

from __future__ import annotations

import logging
from typing import Any

import kopf
import pytest

from jitaccess.adapters.kube import BY_NAME
from jitaccess.api import names
from jitaccess.api.models import AccessGrant
from jitaccess.errors import OtherStore
from jitaccess.handlers import expiry, grants, removals, startup
from jitaccess.handlers.removals import Overdue
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.test_grant_ended_while_provisioning import _Kube
from tests.unit.test_grant_spellings import _grant, _IdentityCenter, _store, one_group
from tests.unit.test_group_replaced import _activated, _cached_then

OLD, NEW = "d-aaaaaaaaaa", "d-1234567890"  # the operator's store now: the test's identity center


@pytest.fixture
def system(monkeypatch: pytest.MonkeyPatch) -> tuple[Runtime, _Kube, _IdentityCenter]:
    """One group `g-123`, alice (`u-1`) a member of it in this store, `NEW` (`test_grant_spellings`)."""
    return one_group(monkeypatch)


class _Recording:
    """The identity center of `system`, counting the removals asked of it."""

    def __init__(self, ic: Any) -> None:
        self.removals: list[tuple[str, str]] = []
        removal = ic.remove_member

        def remove_member(group_id: str, user_id: str, membership_id: str | None = None) -> bool:
            self.removals.append((group_id, user_id))
            return bool(removal(group_id, user_id, membership_id))

        ic.remove_member = remove_member


def _in(store: str | None, name: str = "g1", *, expired: bool = False) -> dict[str, Any]:
    grant = _grant(name, "g-123", active=True)
    if store is not None:
        grant["status"]["identityStoreId"] = store
    if expired:
        grant["status"]["expirationTime"] = "2026-01-01T00:00:00Z"
    return grant


def _reason(kube: _Kube, name: str = "g1") -> str:
    stored = kube.get(names.GRANTS, name)
    assert stored is not None
    return str(stored["status"]["conditions"][-1]["reason"])


def test_a_grant_becoming_active_records_the_store_its_access_is_in(monkeypatch: pytest.MonkeyPatch) -> None:
    rt, kube, ic = _cached_then(monkeypatch, lambda ic: None)
    grant = _activated(rt, kube)
    assert grant["status"]["identityStoreId"] == ic.identity_store_id == NEW


@pytest.mark.parametrize("reason", [names.EXPIRED, names.REVOKED, names.ELIGIBILITY_LAPSED])
def test_a_grant_given_in_another_store_is_not_ended_nor_removed_from_this_one(system: Any, reason: str) -> None:
    rt, kube, ic = system
    calls = _Recording(ic)
    _store(rt, kube, _in(OLD))
    with pytest.raises(OtherStore) as refused:
        grants.end_grant(rt, "g1", reason, rt.holders, uid=BY_NAME)
    assert calls.removals == [] and ic.members == {("g-123", "u-1"): "m-1"}, "nothing asked of the new store"
    assert _reason(kube) == names.ACTIVE, "never recorded as ended: the member is still in the old store"
    said = str(refused.value)
    assert f"points at identity store {NEW}" in said and f"is in {OLD}" in said
    assert f"config.identityStoreId (and config.region) back to {OLD}" in said
    assert f"aws identitystore delete-group-membership --identity-store-id {OLD} --membership-id m-1" in said


def test_an_expiry_in_another_store_is_retried_and_reported_naming_both_stores(
    system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, kube, _ = system
    events: list[tuple[str, str]] = []
    monkeypatch.setattr(removals, "record", lambda obj, reason, message, **_: events.append((reason, message)))
    _store(rt, kube, _in(OLD, expired=True))
    with pytest.raises(OtherStore):
        expiry.expire_now(rt, "g1", Overdue())
    assert _reason(kube) == names.ACTIVE
    ((reason, message),) = events
    assert reason == names.EXPIRY_OVERDUE
    assert f"refused: AccessGrant g1: the operator now points at identity store {NEW}" in message
    assert "IAM" not in message, "no IAM action is missing: the store is the operator's setting"


def test_a_revocation_in_another_store_is_retried_never_written_revoked(system: Any) -> None:
    rt, kube, ic = system
    _store(rt, kube, _in(OLD))
    body = kopf.Body(kube.get(names.GRANTS, "g1"))
    with pytest.raises(kopf.TemporaryError) as retried:
        grants._end_or_retry(rt, body, names.REVOKED, rt.holders, why="revoked by annotation")
    assert OLD in str(retried.value) and NEW in str(retried.value)
    assert _reason(kube) == names.ACTIVE and ic.members == {("g-123", "u-1"): "m-1"}


@pytest.mark.parametrize("store", [None, NEW], ids=["recorded-none", "recorded-this-one"])
def test_a_grant_of_this_store_or_stored_before_the_field_ends_as_before(system: Any, store: str | None) -> None:
    rt, kube, ic = system
    _store(rt, kube, _in(store))
    grants.end_grant(rt, "g1", names.EXPIRED, rt.holders, uid=BY_NAME)
    assert _reason(kube) == names.EXPIRED and ic.members == {}


def test_an_account_assignment_given_in_another_store_is_not_ended(system: Any) -> None:
    rt, kube, _ = system
    grant = _in(OLD)
    grant["spec"]["accountAssignment"] = {"permissionSet": {"arn": "arn:aws:sso:::permissionSet/ssoins-1/ps-1"},
                                          "accounts": ["111111111111"]}  # fmt: skip
    grant["status"].update(
        permissionSetArn="arn:aws:sso:::permissionSet/ssoins-1/ps-1",
        accountAssignments=[{"account": "111111111111", "state": "Provisioned"}],
    )
    _store(rt, kube, grant)
    with pytest.raises(OtherStore) as refused:
        grants.end_grant(rt, "g1", names.REVOKED, rt.holders, uid=BY_NAME)
    assert _reason(kube) == names.ACTIVE
    said = str(refused.value)
    assert "aws sso-admin delete-account-assignment" in said and "--target-id <account>" in said
    assert f"<the Identity Center instance of {OLD}>" in said and "111111111111" in said


def test_failing_a_grant_recorded_in_another_store_takes_nothing_back_from_this_one(system: Any) -> None:
    rt, kube, ic = system
    calls = _Recording(ic)
    grant = _in(OLD)
    grant["status"]["conditions"] = []  # not Active: the fail path's take-back
    _store(rt, kube, grant)
    with pytest.raises(OtherStore):
        grants.fail(rt, AccessGrant.model_validate(kube.get(names.GRANTS, "g1")), "no longer backed")
    assert calls.removals == [] and kube.get(names.GRANTS, "g1")["status"]["conditions"] == []


class _Listed(_Kube):
    def each(self, plural: str) -> list[dict[str, Any]]:
        return [obj for (p, _), obj in self.objects.items() if p == plural]


def test_start_up_says_how_many_unended_grants_are_in_other_stores(caplog: pytest.LogCaptureFixture) -> None:
    kube = _Listed()
    rt = Runtime(Settings(), _IdentityCenter(), kube)  # type: ignore[arg-type]
    ended = _in(OLD, "ended")
    ended["status"]["conditions"] = [{"type": "Ready", "status": "False", "reason": names.EXPIRED, "message": ""}]
    for grant in (_in(OLD, "a"), _in(OLD, "b"), _in("d-bbbbbbbbbb", "c"), _in(NEW, "d"), _in(None, "e"), ended):
        kube.put(names.GRANTS, grant)
    with caplog.at_level(logging.ERROR, logger=startup.log.name):
        startup.know_what_is_stored(rt)
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert line.startswith(f"3 grant(s) not ended hold access in another identity store than {NEW}")
    assert f"(2 in {OLD}, 1 in d-bbbbbbbbbb)" in line


def test_start_up_says_nothing_when_every_grant_is_in_this_store(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger=startup.log.name):
        startup.say_other_stores({}, NEW)
    assert not caplog.records

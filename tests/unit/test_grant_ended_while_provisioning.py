"""A grant ended while an attempt to provision it was looking things up in Identity Center (its
scheduled request withdrawn, a revocation) gets no membership afterwards: the attempt asks, under
the membership lock the end took too, whether this process ended the grant (by uid), and adds
nothing. Without it the member was added to a grant already `Revoked`: access that no grant shows."""

from __future__ import annotations

import copy
import datetime as dt
import threading
from typing import Any

import kopf
import pytest

from jitaccess.adapters.identitycenter import LONGEST_CALL_SECONDS
from jitaccess.adapters.kube import BY_NAME
from jitaccess.api import names
from jitaccess.api.models import AccessGrant
from jitaccess.domain.schedule import CLOCK_SKEW
from jitaccess.handlers import grants
from jitaccess.handlers.runtime import Attempts, Runtime
from jitaccess.settings import Settings
from tests.unit.factories import lands, selected

STAMP = "%Y-%m-%dT%H:%M:%SZ"
GROUP = "prod-eng-payments"


class _Kube:
    """The API server as the handlers use it: objects by (plural, name), optimistic status writes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.version = 0

    def put(self, plural: str, obj: dict[str, Any]) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(plural, obj["metadata"]["name"])] = obj

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.objects.get((plural, name))
            return copy.deepcopy(found) if found else None

    def list(self, plural: str, label_selector: str = "", *, fields: Any = None, **_: Any) -> list[dict[str, Any]]:
        return selected(self.objects, plural, fields)

    def delete(self, plural: str, name: str, *, uid: Any) -> bool:
        with self.lock:
            if not lands(self.objects.get((plural, name)), uid):
                return False
            return self.objects.pop((plural, name)) is not None

    def update_status(
        self, plural: str, name: str, change: Any, current: Any = None, *, uid: Any = None
    ) -> dict[str, Any] | None:
        with self.lock:
            found = self.objects.get((plural, name))
            if found is None or not lands(found, uid, current):
                return None
            fields = change(copy.deepcopy(found))
            if fields is None:
                return None
            found.setdefault("status", {}).update(fields)
            self.put(plural, found)
            return copy.deepcopy(found)


class _IdentityCenter:
    """Memberships by (group id, user id); `resolve_user` of the grantee holds the attempt until told
    to go on (an approver's, which the start's check asks about, answers at once); every account enabled."""

    identity_store_id = "d-1234567890"

    def __init__(self) -> None:
        self.members: dict[tuple[str, str], str] = {}
        self.asked, self.go_on = threading.Event(), threading.Event()

    def resolve_user(self, name: str) -> str:
        if name != "bob@example.com":
            return "id-" + name
        self.asked.set()
        assert self.go_on.wait(5)
        return "id-bob"

    def user_enabled(self, _: str) -> bool:
        return True

    def resolve_group(self, name: str) -> str:
        return "gid-" + name

    def ensure_member(self, group_id: str, user_id: str) -> tuple[str, bool]:
        added = (group_id, user_id) not in self.members
        self.members[(group_id, user_id)] = "m-1"
        return "m-1", added

    def remove_member(self, group_id: str, user_id: str, membership_id: str | None = None) -> bool:
        return self.members.pop((group_id, user_id), None) is not None


def test_a_grant_ended_during_its_provisioning_gets_no_membership(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grants, "record", lambda *a, **k: None)  # no kopf Event poster here
    kube, ic = _Kube(), _IdentityCenter()
    rt = Runtime(Settings(), ic, kube)  # type: ignore[arg-type]
    approved = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=9)  # long enough ago to ask afresh
    at = approved.strftime(STAMP)
    request = {
        "metadata": {"name": "r1", "uid": "uid-r1", "creationTimestamp": at,
                     "annotations": {names.ANNOTATION_APPROVED: "true", "jitaccess.dev/approved-by": "paula@example.com"}},
        "spec": {"entitlement": GROUP, "reason": "CHG-1 window", "requester": "bob@example.com",
                 "requesterUserId": "id-bob", "duration": "1h", "startTime": at},
        "status": {"conditions": [
            {"type": "Approved", "status": "True", "reason": "Approved", "message": "", "lastTransitionTime": at},
            {"type": "Ready", "status": "False", "reason": "Scheduled", "message": "", "lastTransitionTime": at},
        ]},
    }  # fmt: skip
    grant = {
        # Created by this controller: no earlier one's add can be on its way (attack 129's wait).
        "metadata": {"name": "r1", "uid": "uid-g1", "labels": {"jitaccess.dev/request": "uid-r1"},
                     "creationTimestamp": (rt.attempts.since + CLOCK_SKEW + dt.timedelta(seconds=1)).strftime(STAMP)},
        "spec": {"user": "bob@example.com", "userId": "id-bob", "entitlement": GROUP, "groupName": GROUP,
                 "request": "r1", "duration": "1h", "ownerTeam": "payments", "reason": "CHG-1 window"},
        "status": {},
    }  # fmt: skip
    kube.put(names.REQUESTS, request)
    kube.put(names.GRANTS, grant)
    rt.holders.observe("r1", (("id-bob", GROUP), "r1"))
    teams = {"payments": [{"members": [], "approvers": ["paula@example.com"]}]}
    entitlement = {"metadata": {"name": GROUP}, "spec": {"owner": "payments", "identityCenter": {"groupName": GROUP},
                                                        "defaultDuration": "1h", "maxDuration": "4h"}}  # fmt: skip
    attempt = threading.Thread(
        target=grants._provision, args=(rt, kopf.Body(copy.deepcopy(grant)), rt.holders, teams, {GROUP: [entitlement]})
    )
    attempt.start()
    assert ic.asked.wait(5), "the attempt reached its Identity Center lookup"
    # Meanwhile the requester withdraws the scheduled request, and its grant is ended.
    kube.delete(names.REQUESTS, "r1", uid=BY_NAME)
    grants.end_grant(rt, "r1", names.REVOKED, rt.holders, why="its AccessRequest was deleted", uid=BY_NAME)
    ic.go_on.set()
    attempt.join(5)
    assert not attempt.is_alive()
    ended = kube.get(names.GRANTS, "r1")
    assert ended is not None and ended["status"]["conditions"][-1]["reason"] == names.REVOKED
    assert ic.members == {}, "nobody was added to the group for a grant already revoked"


def test_a_deleted_entitlement_waits_for_an_approved_request_whose_grant_is_not_made_yet() -> None:
    from jitaccess.handlers.catalog import _approved_ungranted

    def request(approved: str, ready: str | None) -> dict[str, Any]:
        conditions = [{"type": "Approved", "status": approved, "reason": "x", "message": ""}]
        if ready is not None:
            conditions.append({"type": "Ready", "status": "False", "reason": ready, "message": ""})
        return {"metadata": {"name": "r"}, "status": {"conditions": conditions}}

    assert _approved_ungranted(request("True", names.PENDING))
    assert _approved_ungranted(request("True", None))
    assert not _approved_ungranted(request("True", names.SCHEDULED)), "its start may be days away"
    assert not _approved_ungranted(request("True", names.GRANTED))
    assert not _approved_ungranted(request("False", names.PENDING)), "still waiting for an approver"


def test_a_grant_another_writer_ended_while_its_member_was_added_gives_the_membership_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not this process's end (another replica's, before this one knew it had lost the lease; an
    administrator's status write): the Active write finds the grant finished, and what the attempt
    has just added is taken out again, under the same lock."""
    monkeypatch.setattr(grants, "record", lambda *a, **k: None)
    kube = _Kube()

    class Ending(_IdentityCenter):
        def resolve_user(self, _: str) -> str:
            return "id-bob"

        def ensure_member(self, group_id: str, user_id: str) -> tuple[str, bool]:
            added = super().ensure_member(group_id, user_id)
            ended = kube.get(names.GRANTS, "r1")
            assert ended is not None
            revoked = {"type": "Ready", "status": "False", "reason": names.REVOKED, "message": "revoked",
                       "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip
            ended["status"] = {"conditions": [revoked]}
            kube.put(names.GRANTS, ended)
            return added

    ic = Ending()
    rt = Runtime(Settings(), ic, kube)  # type: ignore[arg-type]
    grant = {
        "metadata": {"name": "r1", "uid": "uid-g1"},
        "spec": {"user": "bob@example.com", "userId": "id-bob", "entitlement": GROUP, "groupName": GROUP,
                 "request": "r1", "duration": "1h", "ownerTeam": "payments", "reason": "CHG-1 window"},
        "status": {},
    }  # fmt: skip
    kube.put(names.GRANTS, grant)
    assert grants.activate(rt, AccessGrant.model_validate(copy.deepcopy(grant))) is False
    assert ic.members == {}, "the member added for a grant ended meanwhile is taken out again"


def test_a_grant_an_earlier_controller_may_have_been_adding_is_ended_once_its_add_has_settled() -> None:
    """Attack 129: the wait before ending a grant that is not Active, counted from when this
    controller began; none for a grant created since."""
    attempts = Attempts()
    began = attempts.since
    # Created after it began by more than the clocks' allowed skew: this controller's own.
    earlier, later = began - dt.timedelta(minutes=1), began + CLOCK_SKEW + dt.timedelta(seconds=1)
    assert attempts.earlier_adds_settled(earlier, began) == LONGEST_CALL_SECONDS
    assert attempts.earlier_adds_settled(earlier, began + dt.timedelta(seconds=5)) == LONGEST_CALL_SECONDS - 5
    assert attempts.earlier_adds_settled(earlier, began + dt.timedelta(seconds=LONGEST_CALL_SECONDS + 1)) == 0
    assert attempts.earlier_adds_settled(later, later) == 0

"""An Entitlement handed to another team (its `spec.owner` changed in Git) while a request waits.

alice's request waits under payments, which owned the Entitlement when the operator took it up
(`status.ownerTeam`); then the Entitlement is given to ledger, whose approver lena decides (the
webhook and `decide_pending` judge against the live owner). The records of that decision used to
name payments, beside lena as the actor, and the grant ledger. Each step now records the team it
was taken against (`status.escalationTeam`, `status.decisionTeam`), and its records name that;
`status.ownerTeam` keeps the team first taken up under (a break-glass request's reviewers).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, cast

import pytest

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.api import audit, names
from jitaccess.api.models import AccessRequest
from jitaccess.domain import notifications
from jitaccess.handlers import common, requests, schedules
from jitaccess.handlers.indexes import pending
from jitaccess.handlers.recording import DEFERRED, Deferred
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.factories import T0, condition, entitlement, lands, request, team
from tests.unit.test_grant_refused import _IdentityCenter

LENA, CAROL = "lena@example.com", "carol@example.com"
LEDGER = team(members=["bob@example.com"], approvers=[LENA], backupApprovers=[CAROL])
PAYMENTS = team()


class Cluster:
    """The request as stored (status writes land on it by uid), and the grants created."""

    def __init__(self, stored: dict[str, Any]) -> None:
        self.stored = stored
        self.grants: list[dict[str, Any]] = []

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.stored) if plural == names.REQUESTS else None

    def update_status(
        self, plural: str, name: str, change: Any, current: Any = None, *, uid: Any = None
    ) -> dict[str, Any] | None:
        assert plural == names.REQUESTS and lands(self.stored, uid, current)
        fields = change(copy.deepcopy(self.stored))
        if fields is None:
            return None
        self.stored["status"] = {**self.stored.get("status", {}), **fields}
        return copy.deepcopy(self.stored)

    def create(self, plural: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        self.grants.append(body)
        return body, True


@pytest.fixture(autouse=True)
def events() -> Iterator[Deferred]:
    """No kopf watch to post Events from: they are kept."""
    token = DEFERRED.set(deferred := Deferred())
    try:
        yield deferred
    finally:
        DEFERRED.reset(token)


def waiting(**status: Any) -> dict[str, Any]:
    """alice's request, taken up under payments at T0 and pending."""
    stored = request(requester="alice@example.com", conditions=[condition("Ready", "False", "Pending")]).wire()
    stored["metadata"]["generation"] = 1
    conditions = [*stored["status"]["conditions"], *status.pop("conditions", [])]
    owner = {"requester": "alice@example.com", "duration": "1h", "ownerTeam": "payments"}
    stored["status"] |= {**owner, **status, "conditions": conditions}
    return stored


def reconcile(
    cluster: Cluster, at: datetime, monkeypatch: pytest.MonkeyPatch, owner: str = "ledger", ledger: Any = LEDGER
) -> None:
    """The operator's look at the request at `at`, the Entitlement owned by `owner` now (`ledger`:
    the ledger TeamOwnership as it is then)."""
    monkeypatch.setattr(requests, "now", lambda: at)
    monkeypatch.setattr(common, "now", lambda: at)  # the conditions' times
    rt = Runtime(
        Settings(pending_timeout_seconds=24 * 3600), cast(IdentityCenter, _IdentityCenter()), cast(Kube, cluster)
    )
    owned = entitlement(owner=owner).model_dump(by_alias=True, exclude_none=True, mode="json")
    teams = {
        "payments": [PAYMENTS.model_dump(by_alias=True, exclude_none=True)],
        "ledger": [ledger.model_dump(by_alias=True, exclude_none=True)],
    }
    requests.reconcile(rt, copy.deepcopy(cluster.stored), teams, {"prod-eng-payments": [owned]}, announce_ignored=True)


def decided(cluster: Cluster, flag: str) -> None:
    """lena's decision, as the webhook stamps it (she approves for ledger, the owner now)."""
    cluster.stored["metadata"]["annotations"] |= {f"jitaccess.dev/{flag}": "true", f"jitaccess.dev/{flag}-by": LENA}


def records(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {r["action"]: r for r in audit.records_of_request(cluster.stored)}


def test_an_approval_by_the_new_owners_approver_names_the_new_owner_team(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(waiting())
    decided(cluster, "approved")
    reconcile(cluster, T0 + timedelta(minutes=5), monkeypatch)
    status = cluster.stored["status"]
    assert status["approvedBy"] == LENA and status["decisionTeam"] == "ledger"
    assert status["ownerTeam"] == "payments", "the team first asked is kept"
    approved = records(cluster)["approved"]
    assert approved["actor"]["username"] == LENA and approved["ownerTeam"] == "ledger"
    (grant,) = cluster.grants
    assert grant["spec"]["ownerTeam"] == "ledger"
    # Slack and the sink tell the grant's failure before access as the request's, of the same team.
    kept = [c for c in cluster.stored["status"]["conditions"] if c["type"] != "Ready"]
    failed = condition("Ready", "False", "Failed", T0 + timedelta(minutes=6))
    cluster.stored["status"] |= {"grant": "r1", "conditions": [*kept, failed]}
    assert notifications.told_of_request(cluster.stored)[audit.FAILED]["ownerTeam"] == "ledger"


def test_a_denial_and_a_time_out_name_the_team_that_owned_the_request_then(monkeypatch: pytest.MonkeyPatch) -> None:
    denied = Cluster(waiting())
    decided(denied, "denied")
    reconcile(denied, T0 + timedelta(minutes=5), monkeypatch)
    assert denied.stored["status"]["decisionTeam"] == "ledger"
    assert records(denied)["denied"]["ownerTeam"] == "ledger"
    timed_out = Cluster(waiting())
    reconcile(timed_out, T0 + timedelta(hours=24), monkeypatch)
    assert records(timed_out)["timed-out"]["ownerTeam"] == "ledger"


def test_an_escalation_names_the_team_whose_backup_approvers_were_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """Escalated under payments, then handed to ledger and approved there: each record its own team."""
    cluster = Cluster(waiting())
    reconcile(cluster, T0 + timedelta(minutes=15), monkeypatch, owner="payments")
    assert cluster.stored["status"]["escalationTeam"] == "payments"
    decided(cluster, "approved")
    reconcile(cluster, T0 + timedelta(minutes=20), monkeypatch)
    found = records(cluster)
    assert (found["escalated"]["ownerTeam"], found["approved"]["ownerTeam"]) == ("payments", "ledger")


def test_a_request_decided_before_the_field_names_the_team_it_was_taken_up_under() -> None:
    older = waiting(conditions=[condition("Denied", "True", "Denied")], deniedBy=LENA)
    assert records(Cluster(older))["denied"]["ownerTeam"] == "payments"


def test_an_escalation_under_the_old_owner_escalates_again_under_the_new_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Escalated at 15m under payments, then handed to ledger (escalateAfter 4h): payments' escalation
    is not ledger's. Nothing happens at 16m (it used to count as escalated for ledger's backups, and
    was never recorded for them); at 4h the request escalates under ledger, from then on: its
    `escalationTeam` ledger, its `Escalated` time new, and ledger's backup approvers told, once."""
    later = LEDGER.model_copy(update={"escalate_after": "4h"})
    cluster = Cluster(waiting())
    reconcile(cluster, T0 + timedelta(minutes=15), monkeypatch, owner="payments")
    assert cluster.stored["status"]["escalationTeam"] == "payments"
    slack = notifications.Config(slack=True, default_channel="C0DEFAULT")
    told = {n.key for n in notifications.notices(cluster.stored, None, slack, T0)}
    reconcile(cluster, T0 + timedelta(minutes=16), monkeypatch, ledger=later)
    assert cluster.stored["status"]["escalationTeam"] == "payments", "not yet due under ledger"
    reconcile(cluster, T0 + timedelta(hours=4), monkeypatch, ledger=later)
    status = cluster.stored["status"]
    assert status["escalationTeam"] == "ledger" and status["escalationTime"] == "2026-11-23T16:00:00Z"
    (escalated,) = [c for c in status["conditions"] if c["type"] == "Escalated"]
    assert escalated["lastTransitionTime"] == "2026-11-23T16:00:00Z" and "team ledger" in escalated["message"]
    assert records(cluster)["escalated"]["ownerTeam"] == "ledger"
    ledgers = notifications.Team("ledger", approvers=(LENA,), backup_approvers=(CAROL,))
    now_told = {n.key for n in notifications.notices(cluster.stored, ledgers, slack, T0)}
    assert {"slack:team-message:escalated/ledger", f"slack:@{CAROL}:escalated/ledger"} <= now_told - told
    # Escalated for ledger, it stays so: the next look records nothing more.
    before = copy.deepcopy(cluster.stored)
    reconcile(cluster, T0 + timedelta(hours=4, minutes=1), monkeypatch, ledger=later)
    assert cluster.stored == before


def test_the_deadline_timer_comes_back_for_the_new_owner_teams_escalation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The timer that escalates pending requests skipped an escalated one until its time-out, whatever
    team it had escalated under: ledger's escalateAfter (4h) would never have been looked at."""
    cluster = Cluster(waiting())
    reconcile(cluster, T0 + timedelta(minutes=15), monkeypatch, owner="payments")
    entry = pending(cluster.stored)
    assert entry is not None and entry.escalation_team == "payments"
    rt = Runtime(
        Settings(pending_timeout_seconds=24 * 3600), cast(IdentityCenter, _IdentityCenter()), cast(Kube, cluster)
    )
    later = LEDGER.model_copy(update={"escalate_after": "4h"})

    def due(owner: str, at: datetime) -> bool:
        monkeypatch.setattr(schedules, "now", lambda: at)
        owned = entitlement(owner=owner).model_dump(by_alias=True, exclude_none=True, mode="json")
        teams = {
            "payments": [PAYMENTS.model_dump(by_alias=True, exclude_none=True)],
            "ledger": [later.model_dump(by_alias=True, exclude_none=True)],
        }
        return schedules._due(rt, "prod-eng-payments", entry, teams, {"prod-eng-payments": [owned]})

    assert not due("payments", T0 + timedelta(hours=4)), "escalated under payments: only the time-out is left"
    assert not due("ledger", T0 + timedelta(hours=3))
    assert due("ledger", T0 + timedelta(hours=4))


def test_a_cancel_before_the_start_names_the_team_it_was_judged_against(monkeypatch: pytest.MonkeyPatch) -> None:
    """Approved under payments for a later start, the Entitlement then handed to ledger, whose lena
    revokes it before its start (admission judges a cancel against the owner now): the `revoked`
    record read actor lena beside `ownerTeam: payments`, the approval's team."""
    start = T0 + timedelta(days=1)
    stored = waiting(
        conditions=[condition("Approved", "True", "Approved", T0 + timedelta(minutes=5))],
        decisionTeam="payments",
        approvedBy="paula@example.com",
    )
    stored["status"]["conditions"] = [c for c in stored["status"]["conditions"] if c["type"] != "Ready"] + [
        condition("Ready", "False", "Scheduled")
    ]
    stored["spec"]["startTime"] = start.isoformat()
    stored["metadata"]["annotations"] |= {
        "jitaccess.dev/approved": "true",
        "jitaccess.dev/approved-by": "paula@example.com",
        "jitaccess.dev/revoked": "true",
        "jitaccess.dev/revoked-by": LENA,
    }
    cluster = Cluster(stored)
    monkeypatch.setattr(requests, "now", lambda: T0 + timedelta(hours=1))
    rt = Runtime(
        Settings(pending_timeout_seconds=24 * 3600), cast(IdentityCenter, _IdentityCenter()), cast(Kube, cluster)
    )
    owned = entitlement(owner="ledger").model_dump(by_alias=True, exclude_none=True, mode="json")
    teams = {"ledger": [LEDGER.model_dump(by_alias=True, exclude_none=True)]}
    parsed = AccessRequest.model_validate(copy.deepcopy(cluster.stored))
    requests.ensure_grant(rt, parsed, teams, {"prod-eng-payments": [owned]})
    status = cluster.stored["status"]
    assert [c["reason"] for c in status["conditions"] if c["type"] == "Ready"] == ["Revoked"]
    assert status["revocationTeam"] == "ledger" and status["decisionTeam"] == "payments"
    found = records(cluster)
    assert found["revoked"]["actor"]["username"] == LENA and found["revoked"]["ownerTeam"] == "ledger"
    assert found["approved"]["ownerTeam"] == "payments", "the approval stays the team's that gave it"
    # Revoked by a version before the field: the decision's team, as before.
    del status["revocationTeam"]
    assert records(cluster)["revoked"]["ownerTeam"] == "payments"

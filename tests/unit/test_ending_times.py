"""When an ending is dated: a request or an extension that waited (Ready False, Pending or
Scheduled) and then ended (Denied, Failed, NotEligible: Ready still False) is dated by its end, not
by when it began waiting. Its audit record and the CloudEvent are dated by `Ready`'s time, and its
Slack message, judged by that time, would be too old to send after an hour of waiting."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any, cast

import pytest

from jitaccess.api import audit, names, wire
from jitaccess.api.models import AccessGrant, Condition
from jitaccess.domain import conditions as cond
from jitaccess.domain import notifications as notify
from jitaccess.handlers import common, grants
from jitaccess.handlers.notifications import Notifier
from tests.unit.factories import T0, entitlement
from tests.unit.test_eligibility_lapse import StoredKube, ready_of
from tests.unit.test_extensions import active, asked, made, reconciling, stamped

LATER = T0 + timedelta(hours=3)
SLACK = notify.Config(slack=True)


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The handlers' clock (the condition stamps and the extension handler's own), T0 until set."""
    from jitaccess.handlers import extensions

    clock = [T0]
    monkeypatch.setattr(common, "now", lambda: clock[0])
    monkeypatch.setattr(extensions, "now", lambda: clock[0])
    return clock


def told(obj: dict[str, Any], step: str) -> notify.Notice:
    """The requester's Slack message of `step`."""
    (notice,) = [n for n in notify.notices(obj, None, SLACK, LATER) if n.step == step and n.recipient.startswith("@")]
    return notice


def told_at(obj: dict[str, Any], step: str) -> str:
    return str(told(obj, step).record["time"])


def sent_when_first_seen_at(obj: dict[str, Any], step: str, when: Any) -> bool:
    """Whether the notifier, first offered `obj` at `when`, finds the requester's message of `step`
    fresh enough to send (`Notifier._stale`)."""
    notifier = Notifier(kube=None, config=SLACK, slack=None, sink=None)  # type: ignore[arg-type]  # offer() writes nothing
    notifier.offer(obj, None, when)
    return told(obj, step).key not in notifier._waiting[wire.uid_of(obj)].stale


def test_an_ending_takes_the_time_it_is_written_even_when_ready_stays_false() -> None:
    pending = cond.set_condition([], names.READY, False, names.PENDING, "waiting", T0)
    kept = cond.set_condition(pending, names.READY, False, names.SCHEDULED, "starts later", LATER)
    assert kept[0].last_transition_time == T0  # not an ending: the convention holds
    ended = cond.set_condition(pending, names.READY, False, names.FAILED, "failed", LATER)
    assert ended[0].last_transition_time == LATER
    # The same ending written again (a retry) keeps its time.
    again = cond.set_condition(ended, names.READY, False, names.FAILED, "failed", LATER + timedelta(hours=1))
    assert again[0].last_transition_time == LATER


WAITING = [
    Condition(type=names.READY, status="False", reason=names.PENDING, message="waiting", last_transition_time=T0)
]


@pytest.mark.parametrize(
    "reason", sorted((names.REQUEST_FINISHED | names.GRANT_FINISHED | names.EXTENSION_FINISHED) - {names.INVALID})
)
def test_every_ending_reason_is_dated_when_written_by_its_reason_alone(reason: str, at: list[Any]) -> None:
    """No writer asks for it: a new ending written through `conditions_after` is dated now by its
    reason, though `Ready` stays False, however long the object waited."""
    at[0] = LATER
    (ready,) = common.conditions_after(WAITING, [(names.READY, False, reason, "ended")])
    assert ready["lastTransitionTime"] == wire.rfc3339(LATER)


@pytest.mark.parametrize("reason", [names.PENDING, names.SCHEDULED, names.PROVISIONING, names.NO_APPROVERS])
def test_a_reason_that_ends_nothing_keeps_the_time_status_last_moved(reason: str, at: list[Any]) -> None:
    at[0] = LATER
    (ready,) = common.conditions_after(WAITING, [(names.READY, False, reason, "still waiting")])
    assert ready["lastTransitionTime"] == wire.rfc3339(T0)


def test_an_entitlement_made_invalid_keeps_the_convention(at: list[Any]) -> None:
    """`Invalid` ends a request (dated by `requests._finish` itself) but not a TeamOwnership or an
    Entitlement, whose `Ready` takes it too: from GroupNotFound to Invalid it stays False since then."""
    unresolved = [WAITING[0].model_copy(update={"reason": names.GROUP_NOT_FOUND})]
    at[0] = LATER
    (ready,) = common.conditions_after(unresolved, [(names.READY, False, names.INVALID, "bad reasonPattern")])
    assert ready["lastTransitionTime"] == wire.rfc3339(T0)


def test_only_ready_is_an_ending(at: list[Any]) -> None:
    """Another condition taking a reason named like an ending (`Denied`'s own) follows the convention."""
    earlier = [Condition(type=names.ESCALATED, status="True", reason=names.PENDING_TOO_LONG, last_transition_time=T0)]
    at[0] = LATER
    (escalated,) = common.conditions_after(earlier, [(names.ESCALATED, True, names.DENIED, "x")])
    assert escalated["lastTransitionTime"] == wire.rfc3339(T0)


def test_an_extension_failed_hours_after_it_was_asked_is_dated_and_told_when_it_failed(at: list[Any]) -> None:
    """Asked at T0 and left waiting; the grant expired, the extension fails three hours later: its
    `extension-failed` record (and CloudEvent) comes after the grant's `expired`, `kubectl jit audit
    --since` of the last hours finds it, and its requester is told."""
    waits = entitlement(approval={"autoApproveOwnerTeam": False})
    cluster, reconcile = reconciling(waits, made(active(), "uid-g1", T0 - timedelta(minutes=10)), asked(T0))
    assert ready_of(reconcile()["status"])["reason"] == names.PENDING
    ended = active().model_copy(deep=True)
    ended.status.conditions = [
        Condition(
            type=names.READY,
            status="False",
            reason=names.EXPIRED,
            message="expired",
            last_transition_time=T0 + timedelta(hours=1),
        )
    ]
    cluster.add(names.GRANTS, made(ended, "uid-g1", T0 - timedelta(minutes=10)).wire())
    at[0] = LATER
    failed = reconcile()
    assert ready_of(failed["status"])["reason"] == names.FAILED
    (record,) = [r for r in audit.records_of_extension(failed) if r["action"] == audit.EXTENSION_FAILED]
    assert record["time"] == wire.rfc3339(LATER)
    assert told_at(failed, audit.FAILED) == wire.rfc3339(LATER)
    assert sent_when_first_seen_at(failed, audit.FAILED, LATER + timedelta(minutes=1))


def test_an_extension_denied_after_two_hours_is_told_as_denied_then(at: list[Any]) -> None:
    waits = entitlement(approval={"autoApproveOwnerTeam": False})
    cluster, reconcile = reconciling(waits, made(active(timedelta(hours=4)), "uid-g1", T0), asked(T0))
    reconcile()
    cluster.objects[(names.EXTENSIONS, "g1-ext-1")]["metadata"]["annotations"] = stamped(
        names.ANNOTATION_DENIED, "paula@example.com"
    )
    at[0] = T0 + timedelta(hours=2)
    denied = reconcile()
    assert ready_of(denied["status"])["reason"] == names.DENIED
    assert told_at(denied, audit.DENIED) == wire.rfc3339(at[0])
    assert sent_when_first_seen_at(denied, audit.DENIED, at[0] + timedelta(minutes=1))


def test_a_denial_stored_with_ready_still_dated_by_its_pending_is_told_by_its_denied_condition() -> None:
    """An extension denied before endings took their own time: `Ready` says T0 (when it began
    waiting), `Denied` says when paula denied it; the message is dated as its record is."""
    decided = T0 + timedelta(hours=2)
    stored = {
        "kind": names.ACCESS_EXTENSION,
        "metadata": {"name": "g1-ext-1", "uid": "uid-x", "creationTimestamp": wire.rfc3339(T0)},
        "spec": {"grant": "g1", "duration": "30m", "reason": "INC-1 more", "requester": "alice@example.com"},
        "status": {
            "deniedBy": "paula@example.com",
            "conditions": [
                {
                    "type": names.READY,
                    "status": "False",
                    "reason": names.DENIED,
                    "lastTransitionTime": wire.rfc3339(T0),
                },
                {
                    "type": names.DENIED,
                    "status": "True",
                    "reason": names.DENIED,
                    "lastTransitionTime": wire.rfc3339(decided),
                },
            ],
        },
    }
    (record,) = [r for r in audit.records_of_extension(stored) if r["action"] == audit.EXTENSION_DENIED]
    assert told_at(stored, audit.DENIED) == record["time"] == wire.rfc3339(decided)


def test_a_request_refused_on_a_lapse_while_it_waited_is_dated_when_it_was_refused(
    monkeypatch: pytest.MonkeyPatch, at: list[Any]
) -> None:
    import kopf

    from jitaccess.adapters.identitycenter import IdentityCenter
    from jitaccess.adapters.kube import Kube
    from jitaccess.domain import eligibility as rules
    from jitaccess.handlers import lapses
    from jitaccess.handlers.runtime import Runtime
    from jitaccess.settings import Settings
    from tests.unit.test_eligibility_lapse import pending_request

    monkeypatch.setattr(kopf, "event", lambda *_, **__: None)
    kube = StoredKube(pending_request("bob-r", "bob@example.com", "u-bob"))  # Pending since noon, T0
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, kube))
    at[0] = LATER
    lapse = rules.Lapse(
        name="bob-r", user="bob@example.com", user_id="u-bob", message="not in pci-trained", uid="uid-bob-r"
    )
    lapses._refuse(rt, "prod-eng-payments", lapse)
    refused = kube.objects[(names.REQUESTS, "bob-r")]
    assert ready_of(refused["status"])["reason"] == names.NOT_ELIGIBLE
    (record,) = [r for r in audit.records_of_request(refused) if r["action"] == audit.NOT_ELIGIBLE]
    assert record["time"] == wire.rfc3339(LATER)


def test_a_scheduled_request_whose_grant_failed_at_its_start_is_dated_and_told_then(
    clock: list[Any], at: list[Any]
) -> None:
    """Approved at T0 for a start three hours later; its grant fails at the start: the request's
    Failed (and the requester's message of it) is dated at the start, not at its approval."""
    from jitaccess.adapters.identitycenter import IdentityCenter
    from jitaccess.adapters.kube import Kube
    from jitaccess.handlers.runtime import Runtime
    from jitaccess.settings import Settings

    request = {
        "kind": names.ACCESS_REQUEST,
        "metadata": {"name": "bob-r", "uid": "uid-bob-r", "creationTimestamp": wire.rfc3339(T0)},
        "spec": {"entitlement": "prod-eng-payments", "reason": "INC-1 x", "requester": "bob@example.com"},
        "status": {
            "requester": "bob@example.com",
            "conditions": [
                {
                    "type": names.APPROVED,
                    "status": "True",
                    "reason": names.AUTO_APPROVED,
                    "lastTransitionTime": wire.rfc3339(T0),
                },
                {
                    "type": names.READY,
                    "status": "False",
                    "reason": names.SCHEDULED,
                    "lastTransitionTime": wire.rfc3339(T0),
                },
            ],
        },
    }
    kube = StoredKube(request)
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, kube))
    grant = AccessGrant.model_validate(
        {
            "metadata": {"name": "bob-r", "uid": "uid-g", "labels": {names.LABEL_REQUEST: "uid-bob-r"}},
            "spec": {
                "user": "bob@example.com",
                "entitlement": "prod-eng-payments",
                "groupName": "g",
                "request": "bob-r",
                "duration": "1h",
            },
            "status": {
                "conditions": [
                    {
                        "type": names.READY,
                        "status": "False",
                        "reason": names.FAILED,
                        "message": "could not add",
                        "lastTransitionTime": wire.rfc3339(LATER),
                    }
                ]
            },
        }
    )
    at[0] = LATER
    grants.follow_request(rt, grant, copy.deepcopy(request))
    failed = kube.objects[(names.REQUESTS, "bob-r")]
    assert ready_of(failed["status"])["reason"] == names.FAILED
    assert told_at(failed, audit.FAILED) == wire.rfc3339(LATER)
    assert sent_when_first_seen_at(failed, audit.FAILED, LATER + timedelta(minutes=1))


def test_a_grant_failed_after_it_waited_is_dated_when_it_failed(clock: list[Any], at: list[Any]) -> None:
    """A grant left Pending (Identity Center slow, the quota) and failed an hour later: its `failed`
    record is dated at the failure."""
    from tests.unit.conftest import T0 as CREATED  # the grant handlers' clock starts there
    from tests.unit.test_activation_time import _grant, _Known
    from tests.unit.test_grant_ended_while_provisioning import _Kube
    from tests.unit.test_possible_access import WHY, _runtime

    kube = _Kube()
    waiting = {**_grant(CREATED), "kind": names.ACCESS_GRANT}
    waiting["status"] = {
        "conditions": [
            {
                "type": names.READY,
                "status": "False",
                "reason": names.PENDING,
                "lastTransitionTime": wire.rfc3339(CREATED),
            }
        ]
    }
    kube.put(names.GRANTS, waiting)
    clock[0] = at[0] = failed = CREATED + timedelta(hours=1)
    grants.fail(
        _runtime(_Known(), kube), AccessGrant.model_validate(kube.get(names.GRANTS, "r1")), WHY, before_add=True
    )
    (record,) = audit.records_of_grant(kube.get(names.GRANTS, "r1") or {})
    assert (record["action"], record["time"]) == (audit.FAILED, wire.rfc3339(failed))


def test_a_request_denied_after_it_waited_says_since_when_it_is_denied(
    monkeypatch: pytest.MonkeyPatch, at: list[Any]
) -> None:
    """`kubectl jit status` shows how long ago `Ready` moved: denied two hours after it was asked,
    the request reads as denied since the denial, as its `denied` record is dated."""
    from jitaccess.adapters.identitycenter import IdentityCenter
    from jitaccess.adapters.kube import Kube
    from jitaccess.api.models import AccessRequest
    from jitaccess.domain.requests import ValidRequest
    from jitaccess.handlers import requests
    from jitaccess.handlers.runtime import Runtime
    from jitaccess.settings import Settings
    from tests.unit.factories import team
    from tests.unit.test_eligibility_lapse import pending_request

    monkeypatch.setattr(requests, "record", lambda *a, **k: None)  # no kopf Event poster here
    stored = pending_request("bob-r", "bob@example.com", "u-bob")  # Pending since T0
    kube = StoredKube(stored)
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, kube))
    valid = ValidRequest("bob@example.com", frozenset(), timedelta(hours=1), entitlement(), team())
    at[0] = T0 + timedelta(hours=2)
    requests._deny(rt, AccessRequest.model_validate(stored), valid, "lena@example.com", "not now")
    denied = kube.objects[(names.REQUESTS, "bob-r")]
    assert ready_of(denied["status"])["reason"] == names.DENIED
    (record,) = [r for r in audit.records_of_request(denied) if r["action"] == audit.DENIED]
    assert ready_of(denied["status"])["lastTransitionTime"] == record["time"] == wire.rfc3339(at[0])

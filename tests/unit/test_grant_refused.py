"""A grant the API server refuses as invalid ends its request `Failed`, once: no retry loop.

A 422 (a label value, a schema bound, a CEL rule, an admission policy refusing with reason Invalid)
or a 400 is an answer no retry of the same write can change; kopf retried it without end and the
request stayed `Pending` ("provisioning access"). 409 (the grant exists), 403 (a webhook down and
failing closed, RBAC being changed), 429, 5xx and timeouts may pass, and are still retried.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube, Refused
from jitaccess.domain import requests as rules
from jitaccess.handlers import requests
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.factories import T0, condition, entitlement, lands, request, team

SAID = 'AccessGrant.jitaccess.dev "r1" is invalid: metadata.labels: Invalid value: "x": must be no more than 63 bytes'


def _error(status: int, message: str = SAID) -> ApiException:
    exc = ApiException(status=status, reason="Unprocessable Entity" if status == 422 else "Refused")
    exc.body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "code": status})
    return exc


class _Api:
    """The API server's answer to a create: `error`, and the object already there for a 409."""

    def __init__(self, error: ApiException) -> None:
        self.error = error

    def create_cluster_custom_object(self, *_: Any) -> dict[str, Any]:
        raise self.error

    def get_cluster_custom_object(self, *_: Any) -> dict[str, Any]:
        return {"metadata": {"name": "r1"}}


def _kube(error: ApiException) -> Kube:
    kube = Kube.__new__(Kube)
    kube._api = cast(Any, _Api(error))
    return kube


@pytest.mark.parametrize("status", [422, 400])
def test_an_invalid_object_is_refused_for_good_in_the_api_servers_words(status: int) -> None:
    with pytest.raises(Refused) as refused:
        _kube(_error(status)).create("accessgrants", {"metadata": {"name": "r1"}})
    assert refused.value.status == status and refused.value.message == SAID


def test_a_refusal_without_a_status_body_keeps_the_reason() -> None:
    exc = ApiException(status=422, reason="Unprocessable Entity")
    with pytest.raises(Refused, match="Unprocessable Entity"):
        _kube(exc).create("accessgrants", {"metadata": {"name": "r1"}})


@pytest.mark.parametrize("status", [403, 429, 500, 503, 504])
def test_an_answer_that_may_pass_is_left_to_the_retry(status: int) -> None:
    """403 too: a webhook that is down and fails closed refuses every write for a while only."""
    with pytest.raises(ApiException) as raised:
        _kube(_error(status, "admission webhook denied the request")).create(
            "accessgrants", {"metadata": {"name": "r1"}}
        )
    assert not isinstance(raised.value, Refused) and raised.value.status == status


def test_a_conflict_is_the_object_already_there() -> None:
    assert _kube(_error(409)).create("accessgrants", {"metadata": {"name": "r1"}}) == (
        {"metadata": {"name": "r1"}},
        False,
    )


class _Patched:
    """The API server's answers to the status patches of a read-modify-write, one per try."""

    def __init__(self, *answers: ApiException | None) -> None:
        self.answers = list(answers)
        self.patches = 0

    def get_cluster_custom_object(self, *_: Any) -> dict[str, Any]:
        meta = {
            "name": "g1",
            "uid": "u1",
            "resourceVersion": str(self.patches),
            "finalizers": ["jitaccess.dev/finalizer"],
        }
        return {"metadata": meta, "status": {}}

    def patch_cluster_custom_object_status(self, *_: Any) -> dict[str, Any]:
        self.patches += 1
        answer = self.answers.pop(0)
        if answer is not None:
            raise answer
        return {"metadata": {"name": "g1"}, "status": {"written": True}}


def _status_write(*answers: ApiException | None) -> tuple[Kube, _Patched]:
    kube, api = Kube.__new__(Kube), _Patched(*answers)
    kube._api = cast(Any, api)
    return kube, api


@pytest.mark.parametrize("status", [422, 400])
def test_a_status_write_refused_as_invalid_is_refused_once_with_the_object_and_a_minutes_backoff(status: int) -> None:
    """Not re-read and tried again at once, nor left to kopf's 5 s: a TemporaryError of a minute,
    naming the object and the write, in the API server's words (which name the field)."""
    said = 'AccessGrant.jitaccess.dev "g1" is invalid: status.conditions: Invalid value: "Expired": refused'
    kube, api = _status_write(_error(status, said))
    with pytest.raises(Refused) as refused:
        kube.update_status("accessgrants", "g1", lambda _: {"x": 1}, uid="u1")
    assert api.patches == 1 and refused.value.status == status and refused.value.message == said
    assert isinstance(refused.value, kopf.TemporaryError) and refused.value.delay == 60
    assert str(refused.value) == f"the API server refused the status of accessgrants/g1 as invalid ({status}): {said}"


def test_a_conflict_on_a_status_write_is_read_again_and_written() -> None:
    kube, api = _status_write(_error(409), None)
    assert kube.update_status("accessgrants", "g1", lambda _: {"x": 1}, uid="u1") == {
        "metadata": {"name": "g1"},
        "status": {"written": True},
    }
    assert api.patches == 2


@pytest.mark.parametrize("status", [403, 429, 500, 503, 504])
def test_a_status_write_that_may_pass_is_left_to_the_retry(status: int) -> None:
    kube, _ = _status_write(_error(status, "admission webhook denied the request"))
    with pytest.raises(ApiException) as raised:
        kube.update_status("accessgrants", "g1", lambda _: {"x": 1}, uid="u1")
    assert not isinstance(raised.value, Refused) and raised.value.status == status


def test_annotations_and_finalizers_refused_name_what_was_written() -> None:
    kube, _ = _status_write()
    kube._api.patch_cluster_custom_object = lambda *_: (_ for _ in ()).throw(_error(422))  # type: ignore[attr-defined]
    with pytest.raises(Refused, match="refused the annotations of accessgrants/g1 as invalid"):
        kube.annotate("accessgrants", "g1", "u1", lambda _: {"a": "b"})
    with pytest.raises(Refused, match="refused the finalizers of accessgrants/g1 as invalid"):
        kube.remove_finalizer("accessgrants", "g1", "u1", "jitaccess.dev/finalizer")


class _Cluster:
    """The request as stored, and a grant creation refused as invalid."""

    def __init__(self, stored: dict[str, Any]) -> None:
        self.stored = stored
        self.created = 0

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        return self.stored if plural == "accessrequests" else None

    def create(self, plural: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        self.created += 1
        raise Refused(422, SAID)

    def update_status(
        self, plural: str, name: str, change: Any, current: Any = None, *, uid: Any = None
    ) -> dict[str, Any]:
        assert lands(self.stored, uid, current), "the write names the request stored"
        fields = change(self.stored)
        assert fields is not None
        self.stored = {**self.stored, "status": {**self.stored.get("status", {}), **fields}}
        return self.stored


class _IdentityCenter:
    """Identity Center as far as the grant's creation asks it: the requester is eligible, and the
    membership quota spent (the grant's own handler would add the membership)."""

    def resolve_user(self, name: str) -> str:
        return f"u-{name}"

    def missing_groups(self, user_id: str, group_ids: list[str]) -> list[str]:
        return []

    def user_enabled(self, user_id: str) -> bool:
        return True

    def can_add_member_now(self) -> bool:
        return False


def test_the_request_ends_failed_naming_the_api_servers_words_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[tuple[str, str]] = []
    monkeypatch.setattr(kopf, "event", lambda _, type, reason, message: events.append((reason, message)))
    approved = [condition("Approved", "True", "AutoApproved", T0), condition("Ready", "False", "Pending", T0)]
    req = request(requester="alice@example.com", conditions=approved)
    req.metadata.uid = "uid-r1"
    cluster = _Cluster(req.wire() | {"metadata": {**req.wire()["metadata"], "resourceVersion": "1", "generation": 1}})
    rt = Runtime(Settings(), cast(IdentityCenter, _IdentityCenter()), cast(Kube, cluster))
    valid = rules.validate(req, entitlement(), team(), rt.settings.limits)
    with caplog.at_level(logging.INFO, logger="jitaccess.audit"):
        requests._create_grant(rt, req, valid, written=cluster.stored)  # no exception: kopf has nothing to retry
    ready = [c for c in cluster.stored["status"]["conditions"] if c["type"] == "Ready"]
    assert [c["reason"] for c in ready] == ["Failed"]
    message = ready[0]["message"]
    assert "the API server refused to create AccessGrant r1 as invalid, so nothing was granted" in message
    assert "must be no more than 63 bytes" in message
    assert "create the request again under a new name" in message
    assert events == [("Failed", message)] and cluster.created == 1
    assert any("Failed" in r.getMessage() and "must be no more than 63 bytes" in r.getMessage() for r in caplog.records)
    assert rt.handoffs.take("r1") is None  # the hand-over of the approval to a grant that never came is dropped

"""Who a grant the operator revoked by annotation is recorded as revoked by. The admission policy
lets the operator stamp `revoked-by` with its own username only (its ServiceAccount's): the record's
actor is whoever the revocation was for, the canceller of a `Scheduled` request whose start made
the grant as the cancel was admitted (docs/api.md), else the operator's one name, `system:jitaccess`
(its request deleted); a person's own revocation stays theirs."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import kopf
import pytest

from jitaccess.api import audit, names
from jitaccess.api.models import AccessGrant
from jitaccess.handlers import deleted_requests, grants
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.conftest import T0
from tests.unit.factories import request
from tests.unit.test_activation_time import _grant, _Known
from tests.unit.test_grant_ended_while_provisioning import _Kube

OPERATOR_SA = "system:serviceaccount:jitaccess:jitaccess"
LENA = "lena@example.com"
# What the request's handler writes on the grant of lena's cancel (reason "x") admitted as the start made it.
LATE_CANCEL = f"its AccessRequest was revoked by {LENA} before its start: x"


def revoked_grant(kube: _Kube, clock: list[dt.datetime], by: str, why: str = "why") -> Runtime:
    """Alice's grant `r1`, made for request uid-r1 and Active, then annotated revoked by `by`, for `why`."""
    rt = Runtime(Settings(), _Known(), kube)  # type: ignore[arg-type]
    rt.cached("operator", "username", lambda _: OPERATOR_SA)  # who the API server says the operator is
    grant = {**_grant(T0 - dt.timedelta(seconds=2)), "kind": names.ACCESS_GRANT}
    grant["metadata"]["labels"] = {names.LABEL_REQUEST: "uid-r1"}
    kube.put(names.GRANTS, grant)
    grants.activate(rt, AccessGrant.model_validate(kube.get(names.GRANTS, "r1")))
    stored = kube.get(names.GRANTS, "r1") or {}
    stored["metadata"]["annotations"] = {
        names.ANNOTATION_REVOKED: "true",
        names.ANNOTATION_REVOKED_BY: by,
        names.ANNOTATION_REVOKE_REASON: why,
    }
    kube.put(names.GRANTS, stored)
    clock[0] = T0 + dt.timedelta(minutes=5)
    return rt


def revoked_record(rt: Runtime, kube: _Kube) -> dict[str, Any]:
    body = kopf.Body(kube.get(names.GRANTS, "r1") or {})
    asyncio.run(grants.revoke_on_annotation(body=body, memo=kopf.Memo(runtime=rt)))
    ended = kube.get(names.GRANTS, "r1") or {}
    (record,) = [r for r in audit.records_of_grant(ended) if r["action"] == audit.REVOKED]
    return record


def cancelled_request(uid: str = "uid-r1") -> dict[str, Any]:
    stamps = {names.ANNOTATION_REVOKED: "true", names.ANNOTATION_REVOKED_BY: LENA, names.ANNOTATION_REVOKE_REASON: "x"}
    stored = {**request(annotations=stamps).wire(), "kind": names.ACCESS_REQUEST}
    stored["metadata"]["uid"] = uid
    return stored


def test_a_grant_revoked_for_a_late_cancel_is_the_cancellers_revocation(clock: list[dt.datetime]) -> None:
    """lena revoked alice's Scheduled request just as its start created the grant: the request's
    handler revoked the grant as the operator. Its `revoked` record names lena (`kubectl jit audit
    --user lena` finds it), not the operator's ServiceAccount."""
    kube = _Kube()
    rt = revoked_grant(kube, clock, OPERATOR_SA, LATE_CANCEL)
    kube.put(names.REQUESTS, cancelled_request())
    record = revoked_record(rt, kube)
    assert record["actor"] == {"username": LENA}
    assert (kube.get(names.GRANTS, "r1") or {})["status"]["revokedBy"] == LENA


def test_a_cancel_after_the_operator_revoked_for_a_deletion_is_not_the_revocation(clock: list[dt.datetime]) -> None:
    """lena cancelled alice's Scheduled request as its start made the grant, and alice withdrew it
    (kubectl delete; the records finalizer keeps it stored) before the request's handler revoked the
    grant for the cancel. Identity Center refused the removal, so the operator revoked the grant
    for the deletion, "its AccessRequest was deleted": the record is the operator's, as its reason
    says, not lena's beside a reason that says the request was deleted."""
    kube = _Kube()
    rt = revoked_grant(kube, clock, OPERATOR_SA, deleted_requests.WHY)
    kube.put(names.REQUESTS, cancelled_request())
    record = revoked_record(rt, kube)
    assert record["actor"] == {"username": audit.OPERATOR}
    assert record["revokeReason"] == deleted_requests.WHY
    assert "revokedBy" not in (kube.get(names.GRANTS, "r1") or {})["status"]


@pytest.mark.parametrize("request_now", [None, cancelled_request("uid-another")], ids=["deleted", "another"])
def test_a_grant_the_operator_revoked_for_a_deleted_request_is_the_operators(
    clock: list[dt.datetime], request_now: dict[str, Any] | None
) -> None:
    """Its request deleted (or another created under its name since): the operator's own revocation,
    recorded under the one name docs/audit.md gives the operator, never its ServiceAccount's."""
    kube = _Kube()
    rt = revoked_grant(kube, clock, OPERATOR_SA, LATE_CANCEL)
    if request_now is not None:
        kube.put(names.REQUESTS, request_now)
    record = revoked_record(rt, kube)
    assert record["actor"] == {"username": audit.OPERATOR}
    assert "revokedBy" not in (kube.get(names.GRANTS, "r1") or {})["status"]


def test_a_persons_revocation_stays_theirs_whatever_the_request_says(clock: list[dt.datetime]) -> None:
    kube = _Kube()
    rt = revoked_grant(kube, clock, "paula@example.com")
    kube.put(names.REQUESTS, cancelled_request())
    assert revoked_record(rt, kube)["actor"] == {"username": "paula@example.com"}

"""The records finalizer (`jitaccess.dev/records`): added by the stamp at creation when there is an
archive, released by the audit trail once a deleted object's records are written; meanwhile the
object leads to nothing (no grant, no extension, no waiting), and the operator's own status writes
leave it alone."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any, cast

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.api import names
from jitaccess.api.models import AccessExtension, Entitlement
from jitaccess.domain.admission import OperatorIdentity
from jitaccess.handlers import admission, archive, catalog, extensions, indexes, requests, starts
from jitaccess.handlers.archive import AuditTrail, TrailSlot
from jitaccess.handlers.recording import DEFERRED, Deferred
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit import test_audit_trail as audit_trail

DELETED_AT = "2026-11-23T12:03:00Z"


def memo_with(bucket: str, kube: Any = None) -> Any:
    rt = Runtime(Settings(audit_bucket=bucket), cast(IdentityCenter, None), cast(Kube, kube))
    return kopf.Memo(runtime=rt, **{admission.OPERATOR_IDENTITY: OperatorIdentity(frozenset({"operator"}))})


def pending(name: str = "r1", **metadata: Any) -> dict[str, Any]:
    obj = audit_trail.request(name, f"u-{name}", conditions=[
        {"type": "Ready", "status": "False", "reason": "Pending", "lastTransitionTime": "2026-11-23T12:00:01Z"}
    ])  # fmt: skip
    obj["metadata"] |= metadata
    return obj


def held(name: str = "r1") -> dict[str, Any]:
    return pending(name, deletionTimestamp=DELETED_AT, finalizers=[names.RECORDS_FINALIZER])


# --- the stamp ------------------------------------------------------------------------------------


def test_the_stamp_adds_the_finalizer_to_a_new_object_only_with_an_archive() -> None:
    new = {"metadata": {"name": "r1", "finalizers": ["example.com/other"]}, "spec": {}}
    patch = kopf.Patch()
    admission.hold_for_the_archive(memo_with("audit"), "CREATE", new, patch)
    assert patch.metadata["finalizers"] == ["example.com/other", names.RECORDS_FINALIZER]
    for bucket, operation in (("", "CREATE"), ("audit", "UPDATE")):
        untouched = kopf.Patch()
        admission.hold_for_the_archive(memo_with(bucket), operation, new, untouched)
        assert not untouched, (bucket, operation)
    once = kopf.Patch()
    admission.hold_for_the_archive(memo_with("audit"), "CREATE", held(), once)
    assert not once, "asked for by its writer: not twice"


# --- the trail is handed deleted objects ------------------------------------------------------------


def trail_memo() -> tuple[Any, AuditTrail, audit_trail.Bucket, audit_trail.Cluster]:
    bucket, cluster = audit_trail.Bucket(), audit_trail.Cluster()
    trail = audit_trail.trail_over(bucket, cluster)
    memo = kopf.Memo(**{archive.MEMO_KEY: TrailSlot(trail=trail)})
    return memo, trail, bucket, cluster


def test_only_a_held_object_being_deleted_waits_for_its_records() -> None:
    memo, trail, bucket, cluster = trail_memo()
    cluster.add(names.REQUESTS, held("r1"))
    cluster.add(names.REQUESTS, pending("r2", deletionTimestamp=DELETED_AT))  # created before the finalizer
    for name in ("r1", "r2"):
        body = kopf.Body(copy.deepcopy(cluster.objects[(names.REQUESTS, name)]))
        asyncio.run(archive.audit_request(type="MODIFIED", body=body, memo=memo))
    asyncio.run(archive.audit_request(type=None, body=kopf.Body(pending("r3")), memo=memo))
    assert set(trail._releasing) == {archive.Ref(names.REQUESTS, "r1", "u-r1")}
    trail.flush()
    trail.close()
    assert (names.REQUESTS, "r1") not in cluster.objects, "written, then let go"
    assert sorted(bucket.ids()) == sorted(
        ["u-r1/requested", "u-r1/withdrawn", "u-r2/requested", "u-r2/withdrawn", "u-r3/requested"]
    )


# --- a deleted request or extension leads to nothing ------------------------------------------------


def test_a_request_being_deleted_is_not_reconciled_nor_started_nor_waiting() -> None:
    # No Runtime at all: any step past the guard would fail on it.
    assert requests.reconcile(cast(Runtime, None), held(), {}, {}, announce_ignored=True) is None
    scheduled = held()
    scheduled["spec"]["startTime"] = "2026-11-23T13:00:00Z"
    scheduled["status"]["conditions"] = [
        {"type": "Approved", "status": "True", "reason": "Approved"},
        {"type": "Ready", "status": "False", "reason": "Scheduled"},
    ]
    assert starts.scheduled(scheduled) is None
    assert starts.scheduled({**scheduled, "metadata": {"name": "r1"}}) is not None
    memo = memo_with("audit")
    rt: Runtime = memo["runtime"]
    asyncio.run(indexes.observe_request(type=None, body=kopf.Body(pending()), memo=memo))
    assert rt.requests.known("r1") == "u-r1" and [w.name for w in rt.waiting.of("bob")] == ["r1"]
    asyncio.run(indexes.observe_request(type="MODIFIED", body=kopf.Body(held()), memo=memo))
    assert rt.requests.known("r1") is None and rt.waiting.of("bob") == []


def test_an_extension_withdrawn_since_kopfs_view_is_not_applied() -> None:
    class Stored:
        def __init__(self, obj: dict[str, Any] | None) -> None:
            self.obj = obj

        def get(self, plural: str, name: str) -> dict[str, Any] | None:
            return copy.deepcopy(self.obj)

    ext = {
        "metadata": {"name": "x1", "uid": "u-x1"},
        "spec": {"grant": "g1", "duration": "30m", "reason": "INC-1 more", "requester": "bob"},
    }
    parsed = AccessExtension.model_validate(ext)

    def meanwhile(stored: dict[str, Any] | None) -> bool:
        rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, Stored(stored)))
        return extensions._withdrawn_meanwhile(rt, parsed)

    assert not meanwhile(ext)
    assert meanwhile({**ext, "metadata": {**ext["metadata"], "deletionTimestamp": DELETED_AT}})
    assert meanwhile({**ext, "metadata": {"name": "x1", "uid": "u-other"}}), "deleted and created again"
    assert meanwhile(None)
    assert extensions.reconcile(cast(Runtime, None), held("x1"), {}, {}, None) is None


# --- the finalizer's removal ------------------------------------------------------------------------


class Api:
    """What `Kube.remove_finalizer` calls of the CustomObjectsApi, with a conflict to retry."""

    def __init__(self, obj: dict[str, Any] | None, conflicts: int = 0) -> None:
        self.obj, self.conflicts = obj, conflicts
        self.patches: list[dict[str, Any]] = []

    def get_cluster_custom_object(self, group: str, version: str, plural: str, name: str) -> dict[str, Any]:
        if self.obj is None:
            raise ApiException(status=404)
        return copy.deepcopy(self.obj)

    def patch_cluster_custom_object(
        self, group: str, version: str, plural: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        self.patches.append(body)
        if self.conflicts:
            self.conflicts -= 1
            raise ApiException(status=409)
        assert self.obj is not None
        self.obj["metadata"]["finalizers"] = body["metadata"]["finalizers"]
        return copy.deepcopy(self.obj)


def kube_over(api: Api) -> Kube:
    kube = Kube.__new__(Kube)
    kube._api = api  # type: ignore[assignment]
    return kube


def test_the_finalizer_is_removed_from_the_same_object_only_under_its_resource_version() -> None:
    obj = held()
    obj["metadata"] |= {"resourceVersion": "7", "finalizers": ["example.com/other", names.RECORDS_FINALIZER]}
    api = Api(obj, conflicts=1)
    assert kube_over(api).remove_finalizer(names.REQUESTS, "r1", "u-r1", names.RECORDS_FINALIZER)
    assert api.patches == [{"metadata": {"finalizers": ["example.com/other"], "resourceVersion": "7"}}] * 2
    assert api.obj is not None and api.obj["metadata"]["finalizers"] == ["example.com/other"]
    for stored, uid in ((held(), "u-other"), (pending(), "u-r1"), (None, "u-r1")):
        if stored is not None:
            stored["metadata"]["resourceVersion"] = "8"
        quiet = Api(stored)
        assert not kube_over(quiet).remove_finalizer(names.REQUESTS, "r1", uid, names.RECORDS_FINALIZER)
        assert quiet.patches == []


class Refusing(Api):
    def __init__(self, obj: dict[str, Any], status: int) -> None:
        super().__init__(obj)
        self.status = status

    def patch_cluster_custom_object(
        self, group: str, version: str, plural: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        raise ApiException(status=self.status)


@pytest.mark.parametrize("status", [500, 403])
def test_a_failed_removal_raises_for_the_trail_to_retry(status: int) -> None:
    obj = held()
    obj["metadata"]["resourceVersion"] = "7"
    with pytest.raises(ApiException):
        kube_over(Refusing(obj, status)).remove_finalizer(names.REQUESTS, "r1", "u-r1", names.RECORDS_FINALIZER)


# --- a released Entitlement's word stands -----------------------------------------------------------


@pytest.fixture
def events_kept() -> Iterator[None]:
    token = DEFERRED.set(Deferred())
    yield
    DEFERRED.reset(token)


@pytest.mark.usefixtures("events_kept")
def test_a_deleted_entitlements_ready_is_the_deletions_and_released_is_said_once() -> None:
    cluster = audit_trail.Cluster()
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, cluster))

    def stored(reason: str) -> dict[str, Any]:
        return cluster.add(names.ENTITLEMENTS, {
            "kind": names.ENTITLEMENT,
            "metadata": {"name": "e1", "uid": "u-e1", "deletionTimestamp": DELETED_AT},
            "spec": {"owner": "payments", "identityCenter": {"groupName": "g"}},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": reason, "message": reason, "lastTransitionTime": DELETED_AT}]},
        })  # fmt: skip

    def ready_after(body: dict[str, Any], ready: bool, reason: str) -> str:
        catalog._set_ready(rt, names.ENTITLEMENTS, Entitlement.model_validate(body), ready, reason, "again")
        return str(cluster.objects[(names.ENTITLEMENTS, "e1")]["status"]["conditions"][0]["reason"])

    # A check begun before the deletion and finishing after it does not write over it.
    assert ready_after(stored(names.DELETING), True, "Resolved") == names.DELETING
    assert ready_after(stored(names.DELETING), False, names.RELEASED) == names.RELEASED
    # Released is written once: its record must not change.
    body = stored(names.RELEASED)
    assert ready_after(body, False, names.DELETING) == names.RELEASED
    assert cluster.objects[(names.ENTITLEMENTS, "e1")]["status"]["conditions"][0]["message"] == names.RELEASED

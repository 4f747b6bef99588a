"""Every status write and deletion of `Kube` names the object it is for (attacks 130-134,
docs/security.md): the uid of the object the caller's decision was taken on, or `BY_NAME` said on
purpose. One deleted and created again under the name since is another object: nothing lands on it.

The API server here is a small stand-in answering as one does: a patch carrying a stale
resourceVersion conflicts (409), a deletion whose uid precondition fails conflicts (409), an object
not there is 404. tests/component/test_races.py runs writes against a real one.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest
from kubernetes.client.exceptions import ApiException

from jitaccess.adapters.kube import BY_NAME, Kube
from jitaccess.api import names
from tests.unit.factories import lands

PLURAL = names.REQUESTS


def _obj(uid: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": "r1", "uid": uid, "resourceVersion": version}, "status": {}}


class Server:
    """Objects of one plural by name, with the API server's optimistic locking and preconditions."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.objects = {"r1": obj}
        self.version = 10

    def recreate(self, uid: str) -> None:
        """The object deleted and another created under its name."""
        self.version += 1
        self.objects["r1"] = _obj(uid, str(self.version))

    def get_cluster_custom_object(self, group: str, version: str, plural: str, name: str) -> dict[str, Any]:
        if name not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.objects[name])

    def patch_cluster_custom_object_status(
        self, group: str, version: str, plural: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        stored = self.objects.get(name)
        if stored is None:
            raise ApiException(status=404, reason="Not Found")
        if body["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        self.version += 1
        stored["status"].update(body["status"])
        stored["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(stored)

    def delete_cluster_custom_object(
        self, group: str, version: str, plural: str, name: str, body: Any = None
    ) -> dict[str, Any]:
        stored = self.objects.get(name)
        if stored is None:
            raise ApiException(status=404, reason="Not Found")
        wanted = body.preconditions.uid if body is not None and body.preconditions is not None else None
        if wanted is not None and wanted != stored["metadata"]["uid"]:
            raise ApiException(status=409, reason="Conflict")
        return self.objects.pop(name)


def _kube(server: Server) -> Kube:
    kube = Kube.__new__(Kube)
    kube._api = cast(Any, server)
    return kube


def _mark(_: dict[str, Any]) -> dict[str, Any]:
    return {"marked": True}


def test_a_status_write_for_an_object_lands_on_it_and_not_on_another_created_under_its_name() -> None:
    server = Server(_obj("uid-1", "10"))
    kube = _kube(server)
    assert kube.update_status(PLURAL, "r1", _mark, uid="uid-1") is not None
    server.recreate("uid-2")
    assert kube.update_status(PLURAL, "r1", _mark, uid="uid-1") is None
    assert server.objects["r1"]["status"] == {}, "the first object's write landed on the second"


def test_a_deletion_for_an_object_leaves_another_created_under_its_name() -> None:
    server = Server(_obj("uid-1", "10"))
    kube = _kube(server)
    server.recreate("uid-2")
    assert kube.delete(PLURAL, "r1", uid="uid-1") is False
    assert server.objects["r1"]["metadata"]["uid"] == "uid-2"
    assert kube.delete(PLURAL, "r1", uid="uid-2") is True
    assert kube.delete(PLURAL, "r1", uid="uid-2") is False, "gone: nothing to delete"


def test_current_given_is_the_object_written_a_conflict_reads_another_and_writes_nothing() -> None:
    """The caller read the object (`current=`) and decided on it: that is the uid. The write
    conflicts (the object changed since), the read again finds another under the name: no write."""
    first = _obj("uid-1", "10")
    server = Server(copy.deepcopy(first))
    kube = _kube(server)
    server.recreate("uid-2")
    assert kube.update_status(PLURAL, "r1", _mark, current=first) is None
    assert server.objects["r1"]["status"] == {}, "the decision on the first landed on the second"


def test_by_name_on_purpose_lands_on_whatever_is_stored_under_the_name() -> None:
    server = Server(_obj("uid-1", "10"))
    kube = _kube(server)
    server.recreate("uid-2")
    assert kube.update_status(PLURAL, "r1", _mark, uid=BY_NAME) is not None
    assert server.objects["r1"]["status"] == {"marked": True}
    assert kube.delete(PLURAL, "r1", uid=BY_NAME) is True


def test_a_write_that_names_no_object_is_refused_before_anything_is_sent() -> None:
    server = Server(_obj("uid-1", "10"))
    kube = _kube(server)
    with pytest.raises(TypeError, match="the status write of accessrequests/r1 needs uid="):
        kube.update_status(PLURAL, "r1", _mark)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="the status write of accessrequests/r1 has an empty uid"):
        kube.update_status(PLURAL, "r1", _mark, uid="")
    with pytest.raises(ValueError, match="the deletion of accessrequests/r1 has an empty uid"):
        kube.delete(PLURAL, "r1", uid="")
    assert server.objects["r1"]["status"] == {} and "r1" in server.objects
    # The unit tests' fakes (`factories.lands`) refuse them as it does: a handler that lost the uid fails there too.
    stored = server.objects["r1"]
    with pytest.raises(TypeError, match="needs uid="):
        lands(stored, None)
    for uid, current in (("", None), (None, {"metadata": {"name": "r1"}})):
        with pytest.raises(ValueError, match="has an empty uid"):
            lands(stored, uid, current)
        with pytest.raises(ValueError, match="has an empty uid"):
            lands(None, uid, current)


class _Grants:
    """One stored grant, annotated only while it is still the object with the uid asked for."""

    def __init__(self, uid: str) -> None:
        self.grant: dict[str, Any] = {"metadata": {"name": "g1", "uid": uid, "annotations": {}}, "status": {}}

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.grant)

    def annotate(self, plural: str, name: str, uid: str, change: Any) -> dict[str, Any] | None:
        if self.grant["metadata"]["uid"] != uid or (notes := change(copy.deepcopy(self.grant))) is None:
            return None
        self.grant["metadata"]["annotations"].update(notes)
        return self.grant


def test_a_deleted_requests_grant_is_marked_revoked_only_if_it_is_the_one_decided_on() -> None:
    """The orphaned grant's revocation, refused by Identity Center, is written down as the grant's
    own revocation: on that grant (its uid), never on another stored under its name since."""
    from jitaccess.handlers import deleted_requests
    from jitaccess.handlers.runtime import Runtime
    from jitaccess.settings import Settings

    for uid, marked in (("g-old", False), ("g-new", True), (BY_NAME, True)):
        grants = _Grants("g-new")
        rt = Runtime(Settings(), cast(Any, None), cast(Any, grants))
        rt.cached = lambda *_: "system:serviceaccount:jitaccess:operator"  # type: ignore[method-assign]
        deleted_requests.mark_revoked(rt, "g1", "its request was deleted", uid)
        assert (names.ANNOTATION_REVOKED in grants.grant["metadata"]["annotations"]) is marked, uid

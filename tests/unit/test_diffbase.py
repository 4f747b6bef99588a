"""kopf's diff-base carried by the grant handler's `Active` write (handlers/diffbase.py): kopf's
storage leaves out of its patch exactly what a handler's write stored, and nothing else; and the
request's, held in memory from its handler's end until the grant handler's write carries it."""

from __future__ import annotations

import json
import time
from typing import Any

import kopf
import pytest

from jitaccess.handlers import diffbase

ESSENCE: dict[str, Any] = {"spec": {"user": "alice"}, "metadata": {"labels": {"jitaccess.dev/request": "u-req"}}}


def body(uid: str, status: dict[str, Any] | None = None) -> kopf.Body:
    raw: Any = {"metadata": {"name": "g", "uid": uid}, "spec": ESSENCE["spec"], "status": status or {}}
    return kopf.Body(raw)


def stored_by_kopf(uid: str, essence: Any) -> kopf.Patch:
    patch = kopf.Patch()
    diffbase.CarriedDiffBase(field=diffbase.FIELD).store(body=body(uid), patch=patch, essence=essence)
    return patch


def test_the_fields_a_write_carries_are_what_kopf_would_store_and_fetch() -> None:
    storage = diffbase.CarriedDiffBase(field=diffbase.FIELD)
    encoded = diffbase.to_carry(kopf.Reason.CREATE, None, ESSENCE)
    assert encoded is not None
    written = body("u1", diffbase.fields(encoded))
    assert stored_by_kopf("u0", ESSENCE) == {"status": written["status"]}
    assert storage.fetch(body=written) == ESSENCE and json.loads(encoded) == ESSENCE


def test_kopf_does_not_write_again_what_a_handlers_write_carried_once() -> None:
    encoded = diffbase.encode(ESSENCE)
    diffbase.carried("u2", encoded)
    assert stored_by_kopf("u2", ESSENCE) == {}
    # Taken: the next time kopf stores this object's diff-base, it writes it.
    assert stored_by_kopf("u2", ESSENCE) != {}


def test_another_essence_than_the_one_carried_is_written_by_kopf() -> None:
    diffbase.carried("u3", diffbase.encode(ESSENCE))
    changed = {**ESSENCE, "metadata": {"annotations": {"jitaccess.dev/revoked": "true"}}}
    assert stored_by_kopf("u3", changed) == {"status": {"kopf": {"diffbase": diffbase.encode(changed)}}}
    assert stored_by_kopf("u3", ESSENCE) != {}  # the carried one was let go with it


def test_only_a_create_handler_carries_it_and_only_when_kopf_would_store_one() -> None:
    assert diffbase.to_carry(kopf.Reason.CREATE, None, ESSENCE) == diffbase.encode(ESSENCE)
    assert diffbase.to_carry(kopf.Reason.RESUME, ESSENCE, ESSENCE) is None
    assert diffbase.to_carry(kopf.Reason.UPDATE, {"spec": {}}, ESSENCE) is None
    assert diffbase.to_carry(kopf.Reason.CREATE, None, None) is None
    diffbase.carried("", diffbase.encode(ESSENCE))  # no uid: nothing to match later
    assert stored_by_kopf("", ESSENCE) != {}


def deferred_by_its_handler(uid: str) -> None:
    with diffbase.handling(uid):
        diffbase.defer(uid)


def test_a_deferred_diff_base_is_held_answered_from_memory_then_carried_by_a_later_write() -> None:
    storage = diffbase.CarriedDiffBase(field=diffbase.FIELD)
    deferred_by_its_handler("r1")
    assert stored_by_kopf("r1", ESSENCE) == {}  # held, not written
    # Until a write stores it, kopf reads it from memory: the handler's own write's event is no change.
    assert storage.fetch(body=body("r1")) == ESSENCE
    carried = diffbase.held_fields(dict(body("r1")))
    assert carried == diffbase.fields(diffbase.encode(ESSENCE))
    written = body("r1", carried)
    assert diffbase.held_fields(dict(written)) == {}  # stored already: nothing more to carry
    assert storage.fetch(body=written) == ESSENCE
    # Shown stored: memory let it go, and the object's own field is what kopf reads.
    assert storage.fetch(body=body("r1")) is None
    assert diffbase.held_fields(dict(body("r1"))) == {}


def test_only_the_objects_own_handler_defers_and_only_the_next_store() -> None:
    diffbase.defer("r2")  # a timer reaching the same code: kopf stores nothing after it
    with diffbase.handling("r3"):
        diffbase.defer("r2")
    assert stored_by_kopf("r2", ESSENCE) != {}
    deferred_by_its_handler("r4")
    assert stored_by_kopf("r4", ESSENCE) == {}
    changed = {**ESSENCE, "metadata": {"annotations": {"jitaccess.dev/approved": "true"}}}
    # A later essence kopf stores (an annotation, say) is written, and the held one let go.
    assert stored_by_kopf("r4", changed) == {"status": {"kopf": {"diffbase": diffbase.encode(changed)}}}
    assert diffbase.held_fields(dict(body("r4"))) == {}
    assert diffbase.CarriedDiffBase(field=diffbase.FIELD).fetch(body=body("r4")) is None


def test_what_no_write_carries_is_let_go_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    deferred_by_its_handler("r5")
    assert stored_by_kopf("r5", ESSENCE) == {}
    clock = time.monotonic() + diffbase._Held.HOLD_SECONDS + 1
    monkeypatch.setattr(diffbase.time, "monotonic", lambda: clock)
    deferred_by_its_handler("r6")  # any later defer sweeps
    assert diffbase.CarriedDiffBase(field=diffbase.FIELD).fetch(body=body("r5")) is None


def test_what_a_failed_handler_carried_is_let_go_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    diffbase.carried("g1", diffbase.encode(ESSENCE))  # kopf never takes it: the handler failed after
    clock = time.monotonic() + diffbase._Held.HOLD_SECONDS + 1
    monkeypatch.setattr(diffbase.time, "monotonic", lambda: clock)
    diffbase.carried("g2", diffbase.encode(ESSENCE))  # any later one sweeps
    assert stored_by_kopf("g1", ESSENCE) != {}
    assert stored_by_kopf("g2", ESSENCE) == {}


def test_the_essence_of_a_new_object_is_what_kopf_gives_its_create_handlers() -> None:
    """The request handler computes the essence of the grant it has just created: kopf adds the
    fields the kind's handlers watch (`field=`) to it, so `grants.WATCHED` must be all of them."""
    from kopf._cogs.structs.references import Resource

    from jitaccess.handlers import grants

    resource = Resource(group="jitaccess.dev", version="v1alpha1", plural="accessgrants")
    registry = kopf.get_default_registry()
    watched = registry._changing.get_extra_fields(resource=resource) | registry._spawning.get_extra_fields(
        resource=resource
    )
    assert watched == {tuple(grants.WATCHED.split("."))}
    created = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessGrant",
        "metadata": {
            "name": "g",
            "uid": "u-g",
            "resourceVersion": "7",
            "labels": {"jitaccess.dev/request": "u-req"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "payments"},
            "finalizers": ["jitaccess.dev/finalizer"],
        },
        "spec": {"user": "alice"},
        "status": {"kopf": {"progress": {}}},
    }
    storage = diffbase.CarriedDiffBase(field=diffbase.FIELD)
    kopfs = storage.build(body=kopf.Body(created), extra_fields=watched)  # type: ignore[arg-type]
    assert diffbase.essence(created, [grants.WATCHED]) == diffbase.encode(kopfs)
    assert json.loads(diffbase.essence(created, [grants.WATCHED])) == {
        "spec": {"user": "alice"},
        "metadata": {
            "labels": {"jitaccess.dev/request": "u-req"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "payments"},
        },
    }


def test_only_the_running_create_handler_of_the_object_may_carry_its_essence() -> None:
    encoded = diffbase.encode(ESSENCE)
    assert diffbase.carriable("u-req") is None
    with diffbase.handling("u-req", encoded):
        assert diffbase.carriable("u-req") == encoded
        assert diffbase.carriable("u-other") is None
    with diffbase.handling("u-req"):  # an update's or a resume's handler: kopf may run others after it
        assert diffbase.carriable("u-req") is None
    assert diffbase.carriable("u-req") is None


def test_what_a_write_carried_answers_for_the_events_from_before_it() -> None:
    """The request handler that provisions its grant writes the request twice before kopf stores
    the diff-base: kopf then handles the first write's event, which does not show it stored, and
    must not take the request for a new one."""
    storage = diffbase.CarriedDiffBase(field=diffbase.FIELD)
    encoded = diffbase.encode(ESSENCE)
    diffbase.carried("u-keep", encoded)
    assert stored_by_kopf("u-keep", ESSENCE) == {}
    assert storage.fetch(body=body("u-keep")) == ESSENCE  # the approval's event: nothing stored in it
    assert storage.fetch(body=body("u-keep", diffbase.fields(encoded))) == ESSENCE  # the carrying write's
    later = {"spec": {"user": "alice"}, "metadata": {"annotations": {"jitaccess.dev/revoked": "true"}}}
    assert storage.fetch(body=body("u-keep", diffbase.fields(diffbase.encode(later)))) == later
    assert storage.fetch(body=body("u-keep")) is None  # once seen, memory has let go


# --- the essence, built from the parts kopf keeps ------------------------------------------------

_MANAGED = [
    {
        "manager": f"m{i}",
        "operation": "Update",
        "fieldsV1": {"f:status": {"f:conditions": {f"k{j}": {} for j in range(9)}}},
    }
    for i in range(6)
]
BODIES: list[dict[str, Any]] = [
    {},
    {"spec": {"a": 1}},
    {"apiVersion": "jitaccess.dev/v1alpha1", "kind": "AccessRequest", "spec": {"entitlement": "e", "reason": "r"}},
    {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessGrant",
        "metadata": {
            "name": "g",
            "uid": "u",
            "resourceVersion": "7",
            "generation": 1,
            "finalizers": ["jitaccess.dev/finalizer"],
            "labels": {"jitaccess.dev/request": "u-req"},
            "annotations": {
                "jitaccess.dev/revoked": "true",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "other.example/last-handled-configuration": "{}",
                "other.example/handler": "{}",
            },
            "managedFields": _MANAGED,
        },
        "spec": {"user": "alice", "nested": {"list": [1, {"x": None}]}},
        "status": {"conditions": [{"type": "Ready"}], "kopf": {"diffbase": "{}"}, "phase": "Active"},
        "extra": {"top": ["level"]},
    },
    {"metadata": {"name": "n", "labels": {}, "annotations": {}}, "spec": {}, "status": {}},
]
EXTRA_FIELDS: list[list[Any]] = [
    [],
    ["metadata.annotations"],
    [("metadata", "annotations")],
    ["status.phase", "metadata.generation"],
    [("status", "conditions"), ("metadata", "finalizers"), ("spec", "user")],
    ["metadata"],
    ["status"],
    ["metadata.missing", "status.missing.deeper"],
]


@pytest.mark.parametrize("extra", EXTRA_FIELDS, ids=repr)
@pytest.mark.parametrize("raw", BODIES, ids=[f"body{i}" for i in range(len(BODIES))])
def test_the_essence_built_from_the_parts_kopf_keeps_is_kopfs_own(raw: dict[str, Any], extra: list[Any]) -> None:
    storages = (diffbase.CarriedDiffBase(field=diffbase.FIELD), diffbase.StatusDiffBase(field=diffbase.FIELD))
    theirs = kopf.StatusDiffBaseStorage(field=diffbase.FIELD).build(body=kopf.Body(raw), extra_fields=extra)
    for storage in storages:
        ours = storage.build(body=kopf.Body(raw), extra_fields=extra)
        assert ours == theirs
    # A copy: changing what was built leaves the object alone, as with kopf's own.
    built = storages[0].build(body=kopf.Body(raw), extra_fields=extra)
    before = json.dumps(raw, sort_keys=True)
    for value in built.values():
        if isinstance(value, dict):
            value.clear()
    assert json.dumps(raw, sort_keys=True) == before


def test_the_essence_is_built_without_copying_managed_fields_or_status() -> None:
    raw = BODIES[3]
    kept = diffbase.essential(raw, ["metadata.annotations"])
    assert "managedFields" not in kept["metadata"] and "status" not in kept
    assert kept["spec"] is raw["spec"]  # shared: kopf's build copies what it keeps

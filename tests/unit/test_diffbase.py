"""kopf's diff-base carried by the grant handler's `Active` write (handlers/diffbase.py): kopf's
storage leaves out of its patch exactly what a handler's write stored, and nothing else."""

from __future__ import annotations

import json
from typing import Any

import kopf

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
    assert diffbase.stored(dict(written)) and not diffbase.stored({"status": {"kopf": {"progress": {}}}})


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

"""Deadlines nobody triggers (see `jitaccess.handlers.schedules`), with the handlers in-process:
a request left pending when its Entitlement goes, and the retention of finished objects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devenv.controlplane import ControlPlane
from tests.component.test_handlers import Local, in_process_operator
from tests.support.harness import eventually

RETENTION_SECONDS = 6


@pytest.fixture(scope="module")
def local(control_plane: ControlPlane) -> Iterator[Local]:
    with (
        pytest.MonkeyPatch.context() as patcher,
        in_process_operator(control_plane, patcher, JITACCESS_RETENTION_SECONDS=str(RETENTION_SECONDS)) as system,
    ):
        yield system


def test_request_pending_when_its_entitlement_is_deleted_becomes_invalid(local: Local) -> None:
    local.apply("""
apiVersion: jitaccess.dev/v1alpha1
kind: Entitlement
metadata: {name: s-short-lived}
spec:
  owner: ledger
  identityCenter: {groupName: prod-eng-ledger}
  maxDuration: 1h
""")
    local.wait("entitlement", "s-short-lived", "Resolved")
    local.request("s-orphan", entitlement="s-short-lived")
    local.wait("accessrequest", "s-orphan", "Pending")
    local.cluster.kubectl("delete", "entitlement", "s-short-lived")
    invalid = local.wait("accessrequest", "s-orphan", "Invalid", timeout=15)
    assert "s-short-lived" in invalid["message"] and "does not exist" in invalid["message"]
    assert local.get("accessgrant", "s-orphan") == {}


def test_finished_objects_go_after_the_retention_period_and_live_ones_stay(local: Local) -> None:
    local.request("s-expired", duration="2s")  # auto-approved, then expires: grant and request go
    local.request("s-invalid", entitlement="s-nothing")  # ends without a grant: the request goes
    local.request("s-live", duration="1h")  # Active for an hour: stays
    local.wait("accessrequest", "s-invalid", "Invalid")
    assert local.get("accessrequest", "s-invalid"), "kept until the retention period has passed"
    local.wait("accessgrant", "s-live", "Active")
    local.wait("accessgrant", "s-expired", "Expired")
    for kind, name in (("accessgrant", "s-expired"), ("accessrequest", "s-expired"), ("accessrequest", "s-invalid")):
        eventually(lambda k=kind, n=name: local.get(k, n) == {} or None, timeout=RETENTION_SECONDS + 20,
                   what=f"{kind}/{name} retired")  # fmt: skip
    assert local.ready("accessgrant", "s-live")["reason"] == "Active"
    assert local.ready("accessrequest", "s-live")["reason"] == "Granted"
    assert local.ic.members_of("prod-eng-payments") == {"alice@example.com"}

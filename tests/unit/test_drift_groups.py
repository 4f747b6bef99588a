"""Which groups an Entitlement's drift scan covers besides its own: those its Active grants are in,
from the index of Active grants (each with its group id), with no API read at each pass; and the
group a pass no longer scans, said by the Runtime that scanned it (`Runtime.scanned`)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from jitaccess.api import names
from jitaccess.handlers import catalog, indexes
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings
from tests.unit.test_overlaps import ARN, ent


def _grant(name: str, group_name: str, group_id: str | None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": {"entitlement": "prod", "user": f"{name}@example.com", "userId": f"u-{name}", "groupName": group_name,
                 **spec},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Active"}],
                   **({"groupId": group_id} if group_id else {})},
    }  # fmt: skip


class _NoReads:
    def get(self, *_: Any) -> Any:
        raise AssertionError("no API read at each pass")


def _runtime(*grants: dict[str, Any]) -> Runtime:
    rt = Runtime(Settings(), SimpleNamespace(), _NoReads())  # type: ignore[arg-type]
    memo = kopf.Memo(runtime=rt)
    for grant in grants:
        asyncio.run(indexes.observe_grant(type="ADDED", body=kopf.Body(grant), memo=memo))
    return rt


def test_the_groups_grants_are_in_besides_the_entitlements_own() -> None:
    rt = _runtime(_grant("a", "old-group", "g-old"), _grant("b", "new-group", "g-new"), _grant("c", "g-old", "g-old"))
    moved = ent("prod", identityCenter={"groupName": "new-group"})
    assert catalog._granted_groups(rt, moved, ("new-group", "g-new")) == {"g-old": "old-group"}
    # Its group does not resolve now (a typo): both groups its grants are in are still scanned.
    typo = ent("prod", identityCenter={"groupName": "new-grup"})
    assert catalog._granted_groups(rt, typo, None) == {"g-old": "old-group", "g-new": "new-group"}


def test_account_assignment_entitlements_have_no_groups_to_scan_and_read_nothing() -> None:
    assignment = {"permissionSet": {"arn": ARN}, "accounts": ["111111111111"]}
    grants = [_grant(f"g{i}", ARN, None, accountAssignment=assignment) for i in range(100)]
    rt = _runtime(*grants)
    assert catalog._granted_groups(rt, ent("prod", identityCenter={"accountAssignment": assignment}), None) == {}


class _NoOtherEntitlements:
    def list(self, plural: str, **_: Any) -> list[dict[str, Any]]:
        return []


def test_a_group_the_last_pass_scanned_is_said_given_up_by_the_runtime_that_scanned_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    said: list[tuple[str, str]] = []
    monkeypatch.setattr(catalog, "record", lambda body, reason, message, **_: said.append((reason, message)))
    rt = Runtime(Settings(), SimpleNamespace(), _NoOtherEntitlements())  # type: ignore[arg-type]
    moved = ent("prod", identityCenter={"groupName": "new-group"})
    current = ("new-group", "g-new")
    catalog._report_unscanned(rt, moved, {"g-old": "old-group", "g-new": "new-group"}, current)
    assert said == []
    catalog._report_unscanned(rt, moved, {"g-new": "new-group"}, current)
    [(reason, message)] = said
    assert reason == names.SCAN_STOPPED and "no longer scans Identity Center group old-group (id g-old)" in message
    catalog._report_unscanned(rt, moved, {"g-new": "new-group"}, current)
    assert len(said) == 1, "said once"
    # A Runtime of its own (a process started anew) knows of no pass before: it says nothing.
    fresh = Runtime(Settings(), SimpleNamespace(), _NoOtherEntitlements())  # type: ignore[arg-type]
    catalog._report_unscanned(fresh, moved, {"g-new": "new-group"}, current)
    assert len(said) == 1
    catalog._report_unscanned(fresh, moved, {}, None)
    assert len(said) == 2 and "group new-group (id g-new)" in said[1][1]
    # A released Entitlement is forgotten: its last pass is said of by nothing to come.
    catalog._report_unscanned(fresh, moved, {"g-new": "new-group"}, current)
    fresh.scanned.forget(catalog._scan_key(moved))
    catalog._report_unscanned(fresh, moved, {}, None)
    assert len(said) == 2

"""Session revocation's deny statement: in force until its time, and what happens beyond AWS's limit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import yaml

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.api.models import PermissionCatalog
from jitaccess.domain import permissions, revocations
from jitaccess.domain.revocations import Denial
from jitaccess.handlers import permissionsets
from jitaccess.handlers.indexes import holdings
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RENDERED = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "A", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
}


def user(n: int) -> str:
    return f"90676{n:05d}-aaaa-bbbb-cccc-dddddddddddd"


def test_only_denials_in_force_are_kept() -> None:
    old = Denial(user(1), T0 - timedelta(hours=2), T0 - timedelta(hours=1))
    live = Denial(user(2), T0, T0 + timedelta(hours=1))
    assert revocations.current([old, live], T0) == [live]


def test_a_user_holding_the_tiers_group_by_its_id_through_a_live_grant_is_not_denied() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "04-permissions.yaml"
    doc = next(d for d in yaml.safe_load_all(examples.read_text()) if d and d["metadata"]["name"] == "payments")
    spec = permissions.render(PermissionCatalog.model_validate(doc), "production")
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    denials = [Denial(user(1), T0, T0 + timedelta(hours=1)), Denial(user(2), T0, T0 + timedelta(hours=1))]

    def holds(name: str, group: str, **status: Any) -> None:
        grant = {"spec": {"user": name, "userId": user(1), "groupName": group}, "status": status}
        rt.holders.file(name, holdings(grant), name)

    # A Provisioning grant of an Entitlement naming the group by its GroupId, an Active one spelling
    # it otherwise (filed under the id too): user 1 holds the group, by the id the catalog records.
    holds("g-by-id", "g-0123")
    assert permissionsets._in_force(rt, spec, denials, T0, "g-0123") == denials[1:]
    rt.holders.file("g-by-id", (), "g-by-id")
    holds("g-other-case", "PROD-eng-payments", groupId="g-0123")
    assert permissionsets._in_force(rt, spec, denials, T0, "g-0123") == denials[1:]
    # With no id recorded for the tier's groupName (a pass has not followed a new one), the name alone.
    assert permissionsets._in_force(rt, spec, denials, T0, None) == denials


def test_denied_users_join_one_statement_and_change_the_digest() -> None:
    plain = revocations.effective_policy(RENDERED, [])
    assert plain.policy == RENDERED and not plain.overflow
    denied = revocations.effective_policy(RENDERED, [Denial(user(2), T0, T0), Denial(user(1), T0, T0)])
    [deny] = [s for s in denied.policy["Statement"] if s["Sid"] == permissions.DENY_SID]
    assert deny["Condition"]["StringEquals"]["identitystore:UserId"] == [user(1), user(2)]
    assert revocations.digest("d", plain) != revocations.digest("d", denied)
    assert revocations.digest("d", denied) == revocations.digest(
        "d", revocations.effective_policy(RENDERED, [Denial(user(1), T0, T0), Denial(user(2), T0, T0)])
    )


def test_beyond_the_limit_every_session_before_the_latest_revocation_is_denied() -> None:
    many = [Denial(user(n), T0 + timedelta(minutes=n), T0 + timedelta(hours=1)) for n in range(400)]
    effective = revocations.effective_policy(RENDERED, many)
    assert effective.overflow
    assert revocations.size(effective.policy) < 1000
    [deny] = [s for s in effective.policy["Statement"] if s["Sid"] == revocations.ALL_SESSIONS_SID]
    assert deny["Condition"] == {"DateLessThan": {"aws:TokenIssueTime": "2026-12-01T15:39:00Z"}}
    assert json.loads(effective.json)["Statement"][0]["Sid"] == "A"

"""Session revocation's deny statement: in force until its time, and what happens beyond AWS's limit."""

from __future__ import annotations

import json
from dataclasses import replace
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
STAMP = "2026-12-01T09:00:01Z"  # the second after T0: sessions of T0 itself are before it
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


def test_a_user_holding_the_tiers_group_by_its_id_through_a_live_grant_is_denied_only_older_sessions() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "04-permissions.yaml"
    doc = next(d for d in yaml.safe_load_all(examples.read_text()) if d and d["metadata"]["name"] == "payments")
    spec = permissions.render(PermissionCatalog.model_validate(doc), "production")
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    denials = [Denial(user(1), T0, T0 + timedelta(hours=1)), Denial(user(2), T0, T0 + timedelta(hours=1))]

    def holds(name: str, group: str, **status: Any) -> None:
        grant = {"spec": {"user": name, "userId": user(1), "groupName": group}, "status": status}
        rt.holders.file(name, holdings(grant), name)

    # A Provisioning grant of an Entitlement naming the group by its GroupId, an Active one spelling
    # it otherwise (filed under the id too): user 1 holds the group, by the id the catalog records,
    # and stays denied the sessions issued before the revocation (attack 123), user 2 all of them.
    regranted = [replace(denials[0], held=True), denials[1]]
    holds("g-by-id", "g-0123")
    assert permissionsets._in_force(rt, spec, denials, T0, "g-0123") == regranted
    rt.holders.file("g-by-id", (), "g-by-id")
    holds("g-other-case", "PROD-eng-payments", groupId="g-0123")
    assert permissionsets._in_force(rt, spec, denials, T0, "g-0123") == regranted
    # With no id recorded for the tier's groupName (a pass has not followed a new one), the name alone.
    assert permissionsets._in_force(rt, spec, denials, T0, None) == denials
    # Holding it by the tier's groupName; a denial whose time has come goes either way.
    holds("g-by-name", "prod-eng-payments")
    ended = Denial(user(1), T0 - timedelta(hours=2), T0)
    assert permissionsets._in_force(rt, spec, [*denials, ended], T0, None) == regranted
    policy = revocations.effective_policy(spec.inline_policy, regranted).policy
    assert [s["Condition"] for s in policy["Statement"] if s["Sid"].startswith("JitaccessRevoked")] == [
        {"StringEquals": {"identitystore:UserId": [user(2)]}},
        {"StringEquals": {"identitystore:UserId": [user(1)]}, "DateLessThan": {"aws:TokenIssueTime": STAMP}},
    ]


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
    assert deny["Condition"] == {"DateLessThan": {"aws:TokenIssueTime": "2026-12-01T15:39:01Z"}}
    assert json.loads(effective.json)["Statement"][0]["Sid"] == "A"


# --- a user who holds the group again (attack 123) ------------------------------------------------


def deny_statements(effective: revocations.Effective) -> dict[str, dict[str, Any]]:
    """The revocation statements of `effective`, Sid -> Condition."""
    return {
        s["Sid"]: s["Condition"]
        for s in effective.policy["Statement"]
        if s["Sid"] == permissions.DENY_SID or s["Sid"].startswith(permissions.ISSUED_BEFORE_SID)
    }


def test_a_user_who_holds_the_group_again_is_denied_the_sessions_issued_before_the_revocation() -> None:
    later = T0 + timedelta(minutes=10, seconds=5)
    denials = [
        Denial(user(3), T0, T0 + timedelta(hours=1), held=True),
        Denial(user(1), T0, T0 + timedelta(hours=1), held=True),
        Denial(user(2), later, later + timedelta(hours=1), held=True),
        Denial(user(4), T0, T0 + timedelta(hours=1)),
    ]
    effective = revocations.effective_policy(RENDERED, denials)
    assert not effective.overflow
    assert deny_statements(effective) == {
        "JitaccessRevokedSessions": {"StringEquals": {"identitystore:UserId": [user(4)]}},
        "JitaccessRevokedSessionsIssuedBefore20261201T090001Z": {
            "StringEquals": {"identitystore:UserId": [user(1), user(3)]},
            "DateLessThan": {"aws:TokenIssueTime": STAMP},
        },
        "JitaccessRevokedSessionsIssuedBefore20261201T091006Z": {
            "StringEquals": {"identitystore:UserId": [user(2)]},
            "DateLessThan": {"aws:TokenIssueTime": "2026-12-01T09:10:06Z"},
        },
    }
    # Only the held form: no plain statement.
    only_held = revocations.effective_policy(RENDERED, denials[:1])
    assert list(deny_statements(only_held)) == ["JitaccessRevokedSessionsIssuedBefore20261201T090001Z"]
    assert json.loads(only_held.json)["Statement"][0]["Sid"] == "A"


def test_a_user_moving_between_the_plain_and_the_time_conditioned_deny_changes_the_digest() -> None:
    plain = revocations.effective_policy(RENDERED, [Denial(user(1), T0, T0 + timedelta(hours=1))])
    held = revocations.effective_policy(RENDERED, [Denial(user(1), T0, T0 + timedelta(hours=1), held=True)])
    assert revocations.digest("d", plain) != revocations.digest("d", held)
    other_time = revocations.effective_policy(
        RENDERED, [Denial(user(1), T0 + timedelta(seconds=1), T0 + timedelta(hours=1), held=True)]
    )
    assert revocations.digest("d", held) != revocations.digest("d", other_time)


def test_beyond_the_limit_users_who_hold_the_group_again_are_denied_their_sessions_before_the_latest() -> None:
    """The overflow statement denies every session issued before the latest revocation, whoever holds
    the group now: a re-granted user's stolen session too (they sign in again, being in the group)."""
    many = [Denial(user(n), T0 + timedelta(minutes=n), T0 + timedelta(hours=8), held=n % 2 == 0) for n in range(120)]
    effective = revocations.effective_policy(RENDERED, many)
    assert effective.overflow
    assert deny_statements(effective) == {}
    [deny] = [s for s in effective.policy["Statement"] if s["Sid"] == revocations.ALL_SESSIONS_SID]
    assert deny["Condition"] == {"DateLessThan": {"aws:TokenIssueTime": "2026-12-01T10:59:01Z"}}


def test_the_time_conditioned_deny_is_counted_against_the_limit() -> None:
    """Each revocation time is a statement of its own: what fits the plain deny may not fit so."""
    denials = [Denial(user(n), T0 + timedelta(seconds=n), T0 + timedelta(hours=1)) for n in range(30)]
    plain = revocations.effective_policy(RENDERED, denials)
    limit = revocations.size(plain.policy)
    assert not revocations.effective_policy(RENDERED, denials, limit).overflow
    held = [replace(d, held=True) for d in denials]
    assert revocations.size(revocations.effective_policy(RENDERED, held).policy) > limit
    assert revocations.effective_policy(RENDERED, held, limit).overflow

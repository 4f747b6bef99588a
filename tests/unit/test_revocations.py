"""Session revocation's deny statement: in force until its time, and what happens beyond AWS's limit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from jitaccess.domain import permissions, revocations
from jitaccess.domain.revocations import Denial

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

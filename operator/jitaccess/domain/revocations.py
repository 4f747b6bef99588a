"""Session revocation: which users' sessions a permission set denies now, and the policy that says so.

When a grant ends early, the user leaves the group at once, but the AWS sessions Identity Center
already issued them stay valid for up to the permission set's session duration. So the user's
Identity Store UserId goes into a deny statement of that permission set (`permissions.with_denied_users`,
conditioned on `identitystore:UserId`) until the session duration has passed since the revocation:
no session issued before it can outlive that. A user who holds the group again through a new
live grant (`Denial.held`) is denied only the sessions issued before their revocation (conditioned
on `aws:TokenIssueTime` as well): the new grant's sessions are theirs, but a session issued before
the revocation (a stolen one, say) never outlives it, whatever is granted afterwards.

Beyond AWS's inline policy limit (`limits.INLINE_POLICY_MAX_CHARACTERS`, not counting whitespace),
the users that do not fit are not dropped: the statement becomes one that denies every session
issued before the latest revocation (`aws:TokenIssueTime`), the way IAM's "revoke active sessions"
works. Everyone else signs in again through the portal and carries on; the revoked users cannot,
being out of the group (users who hold it again sign in again too, their sessions from before
their revocation denied like everyone's). It stays until the last of those revocations has run its time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jitaccess.api import limits
from jitaccess.domain import permissions

#: The Sid of the statement that replaces the per-user one when it does not fit.
ALL_SESSIONS_SID = "JitaccessRevokedAllSessionsBefore"


@dataclass(frozen=True)
class Denial:
    user_id: str
    since: datetime
    until: datetime
    #: The user holds the group again through a live grant: only their sessions issued before `since`
    #: are denied (module doc).
    held: bool = False


def current(denials: Iterable[Denial], now: datetime) -> list[Denial]:
    """The denials still in force at `now` (their `until` not yet reached), sorted by user."""
    return sorted((d for d in denials if d.until > now), key=lambda d: (d.user_id, d.since))


def size(policy: Mapping[str, Any]) -> int:
    """What AWS counts against the inline policy limit: the characters that are not whitespace."""
    return sum(1 for ch in permissions.policy_json(policy) if not ch.isspace())


@dataclass(frozen=True)
class Effective:
    """The inline policy to provision, and whether the denials overflowed into the all-sessions statement."""

    policy: dict[str, Any]
    overflow: bool

    @property
    def json(self) -> str:
        return permissions.policy_json(self.policy)


def effective_policy(
    rendered: Mapping[str, Any], denials: Iterable[Denial], limit: int = limits.INLINE_POLICY_MAX_CHARACTERS
) -> Effective:
    """`rendered` with the denials in force added (module doc: the overflow)."""
    active = list(denials)
    if not active:
        return Effective(dict(rendered), False)
    policy = permissions.with_denied_users(
        rendered or _empty(),
        [d.user_id for d in active if not d.held],
        [(d.since, d.user_id) for d in active if d.held],
    )
    if size(policy) <= limit and len(permissions.policy_json(policy)) <= limits.INLINE_POLICY_MAX_BYTES:
        return Effective(policy, False)
    latest = max(d.since for d in active)
    statements = [dict(s) for s in (rendered or _empty()).get("Statement", [])]
    statements.append(
        {
            "Sid": ALL_SESSIONS_SID,
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": permissions.sessions_issued_before(permissions.revoked_before(latest)),
        }
    )
    return Effective({"Version": permissions.POLICY_VERSION, "Statement": statements}, True)


def digest(spec_digest: str, effective: Effective) -> str:
    """What was provisioned: the rendered spec and the deny statements (a user moving from the plain
    deny to the time-conditioned one changes them); equal digests, nothing to do."""
    content = json.dumps([spec_digest, effective.json], separators=(",", ":"))
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def _empty() -> dict[str, Any]:
    return {"Version": permissions.POLICY_VERSION, "Statement": []}

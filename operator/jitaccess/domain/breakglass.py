"""Break-glass: the requester approves their own request, as the Entitlement's `spec.breakGlass` allows.

A request asks for it with `spec.breakGlass: true` (fixed at creation: spec is immutable). It is
allowed only to members of the named Kubernetes groups (from the stamped `requesterGroups`), with a
reason of at least `minReasonLength` characters, for at most `maxDuration` (a request naming no
duration gets the entitlement's default, capped to it), and at most `perUserPerDay` times in any
24 hours. Admission refuses what breaks a rule; the operator checks the same rules again before it
approves (the webhook may have been off), and counts the user's earlier break-glass requests in
creation order, so two made at once cannot both pass the limit.

Afterwards an approver of the owner team (never the requester) reviews it:
`jitaccess.dev/reviewed=true`, stamped `reviewed-by` from the authenticated caller as approvals are.
Pure functions; admission and the handlers wrap their answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jitaccess.api import names, wire
from jitaccess.api.models import BreakGlass, Entitlement, TeamOwnershipSpec
from jitaccess.domain.durations import format_duration, parse_duration
from jitaccess.domain.teams import Caller, conferring, groups_text, is_approver
from jitaccess.errors import InvalidInput

REVIEWED = names.ANNOTATION_REVIEWED
REVIEWED_BY = names.ANNOTATION_REVIEWED_BY
REVIEWED_BY_GROUPS = names.ANNOTATION_REVIEWED_BY_GROUPS
REVIEW_ANNOTATIONS = (REVIEWED, REVIEWED_BY, REVIEWED_BY_GROUPS)
WINDOW = timedelta(hours=24)
#: `status.approvalSummary` of a break-glass request.
SUMMARY = "break-glass"


def policy(entitlement: Entitlement) -> BreakGlass:
    """The entitlement's break-glass policy; `InvalidInput` when it allows none."""
    found = entitlement.spec.break_glass
    if found is None:
        raise InvalidInput(
            "spec.breakGlass",
            f"is set, but Entitlement {entitlement.metadata.name!r} does not allow break-glass (it has no "
            "spec.breakGlass): request it normally, without spec.breakGlass",
        )
    return found


def checked_duration(
    entitlement: Entitlement, requester_groups: Iterable[str], reason: str, duration: timedelta, explicit: bool
) -> timedelta:
    """The duration a break-glass request gets; `InvalidInput` naming the field and the fix when a
    rule of the entitlement's `spec.breakGlass` is broken."""
    rules = policy(entitlement)
    name = entitlement.metadata.name
    # A group of Kubernetes' own, or one that reads as another's, stored before admission refused it
    # lets nobody break glass.
    allowed = [g for g in rules.groups if g in conferring(rules.groups, group=True)]
    if not set(requester_groups) & set(allowed):
        raise InvalidInput(
            "spec.breakGlass",
            f"is allowed on {name} only to members of the group(s) {', '.join(allowed)}, and you are in none "
            f"of them: request it normally (`kubectl jit request {name}`), without spec.breakGlass"
            if allowed
            else f"is allowed on {name} to nobody: its spec.breakGlass.groups names only groups of Kubernetes' own "
            "(system:) or names that read as another's, which count for no one; request it normally "
            f"(`kubectl jit request {name}`), without spec.breakGlass",
        )
    length = len(reason.strip())
    if length < rules.min_reason_length:
        raise InvalidInput(
            "spec.reason",
            f"has {length} characters, and break-glass on {name} needs at least {rules.min_reason_length}: say "
            "what is broken and why it cannot wait for an approver (the incident, what you will do)",
        )
    cap = parse_duration(rules.max_duration, f"Entitlement {name!r} spec.breakGlass.maxDuration")
    if explicit and duration > cap:
        raise InvalidInput(
            "spec.duration",
            f"{format_duration(duration)} is above break-glass's cap on {name} "
            f"(spec.breakGlass.maxDuration {format_duration(cap)}): ask for {format_duration(cap)} or less",
        )
    return min(duration, cap)


def review_within(entitlement: Entitlement) -> timedelta:
    rules = policy(entitlement)
    return parse_duration(
        rules.review_within, f"Entitlement {entitlement.metadata.name!r} spec.breakGlass.reviewWithin"
    )


@dataclass(frozen=True)
class Earlier:
    """A break-glass request of the same user, as counted against the rate limit."""

    name: str
    created: datetime


def selecting(user: str) -> dict[str, str]:
    """The field selector of `user`'s break-glass requests (what `earlier` keeps, before its other tests)."""
    return {"spec.requester": user, "spec.breakGlass": "true"}


def earlier(requests: Iterable[Mapping[str, Any]], user: str, entitlement: str = "") -> list[Earlier]:
    """The user's stored break-glass requests that count against the limit (ended Invalid or
    NotEligible ones do not: they gave nothing), from a listing of requests on the wire."""
    found = []
    for obj in requests:
        spec = wire.spec(obj)
        if spec.get("breakGlass") is not True or spec.get("requester") != user:
            continue
        if entitlement and spec.get("entitlement") != entitlement:
            continue
        if wire.ready_reason(obj) in (names.INVALID, names.NOT_ELIGIBLE):
            continue
        stamp = wire.metadata(obj).get("creationTimestamp")
        if isinstance(stamp, str) and stamp:
            found.append(Earlier(wire.name_of(obj), datetime.fromisoformat(stamp.replace("Z", "+00:00"))))
    return found


def rate_problem(
    rules: BreakGlass, user: str, others: Iterable[Earlier], *, at: datetime, name: str = ""
) -> str | None:
    """Why one more break-glass request by `user` at `at` is beyond `perUserPerDay`; None if not.

    `name` is the request's own name once stored: only requests before it count (creation time,
    then name, for requests of the same second), so of two made at once the later one is refused.
    """
    window = [
        e
        for e in others
        if at - WINDOW < e.created <= at and e.name != name and (not name or (e.created, e.name) < (at, name))
    ]
    if len(window) < rules.per_user_per_day:
        return None
    oldest = min(e.created for e in window)
    return (
        f"spec.breakGlass: {user} has made {len(window)} break-glass request(s) in the last 24 hours "
        f"({', '.join(sorted(e.name for e in window))}), and perUserPerDay is {rules.per_user_per_day}: ask an "
        f"approver of the owner team instead (`kubectl jit request`), or wait until {(oldest + WINDOW).isoformat()}"
    )


def is_break_glass(request: Mapping[str, Any]) -> bool:
    return wire.spec(request).get("breakGlass") is True


def review_command(name: str, uid: str | None) -> str:
    """The command that reviews the stored request `name` whose uid is `uid`: with `--uid`, it
    reviews that very request, never another created under its name since (attack 134)."""
    return f"kubectl jit review {name} --uid {uid}" if uid else f"kubectl jit review request/{name}"


def recorded_reviewers(request: Mapping[str, Any], owner: str | None) -> str | None:
    """The team whose approvers review break-glass `request` when that is not its Entitlement's
    owner team now (`owner`; None: the Entitlement is gone): the team that owned the Entitlement
    when the operator took the request up (`status.ownerTeam`), as revocation rights come from a
    grant's record. The Entitlement may be gone since (renamed in Git) or owned by another team,
    and the use of production access still wants its review by those who owned it.

    None: the live owner team reviews (not break-glass, no team recorded, or the recorded one is
    the live owner). A recorded team that no longer exists leaves the review to the live owner
    team too: the callers look the name up (the webhook and the operator, each its own way)."""
    if not is_break_glass(request):
        return None
    recorded = str(wire.status(request).get("ownerTeam") or "")
    if not recorded or recorded == owner:
        return None
    return recorded


def review(
    old: Mapping[str, Any],
    before: Mapping[str, str],
    after: Mapping[str, str],
    caller: Caller,
    team: TeamOwnershipSpec | None,
    *,
    stamped: bool,
) -> dict[str, str] | str | None:
    """A change to the review annotations of a request: the stamps to write, a refusal, or None when
    the change does not touch them. Whoever reviews is an approver of the owner team, not the requester.
    `stamped`: the object is the final one (VALIDATE), whose stamps are then the webhook's own."""
    changed = [k for k in REVIEW_ANNOTATIONS if before.get(k) != after.get(k)]
    if not changed:
        return None
    name = wire.name_of(old)
    if REVIEWED_BY in before:
        return f"AccessRequest {name} was already reviewed by {before[REVIEWED_BY]}: a review is final"
    if not stamped and any(k in changed for k in (REVIEWED_BY, REVIEWED_BY_GROUPS)):
        return (
            f"metadata.annotations[{REVIEWED_BY}] is written only by the jitaccess admission webhook, from the "
            f"identity the API server authenticated: leave it out, and set {REVIEWED}=true"
        )
    if after.get(REVIEWED) != "true":
        return f'metadata.annotations[{REVIEWED}] is {after.get(REVIEWED)!r}: its only value is "true"'
    if not is_break_glass(old):
        return f"AccessRequest {name} is not a break-glass request: only those are reviewed ({REVIEWED}=true)"
    if not wire.is_true(old, names.APPROVED):
        return f"AccessRequest {name} has not been approved as break-glass (yet): there is nothing to review"
    requester = str(wire.spec(old).get("requester") or "")
    if caller.username == requester:
        return (
            f"{caller.username} made this break-glass request and cannot review it: an approver of the owner team does"
        )
    if team is None or not is_approver(team, caller):
        return (
            f"{caller.username} is not an approver of the owner team: only its approvers review a break-glass request "
            f"(`{review_command(name, wire.metadata(old).get('uid'))}`)"
        )
    stamps = {REVIEWED_BY: caller.username}
    if groups := groups_text(caller):
        stamps[REVIEWED_BY_GROUPS] = groups
    return stamps


def stamped_reviewer(request: Mapping[str, Any], team: TeamOwnershipSpec | None) -> str | None:
    """The reviewer the webhook stamped, if the review counts (an approver of the team, not the requester)."""
    notes = wire.annotations_of(request)
    who = notes.get(REVIEWED_BY, "")
    if notes.get(REVIEWED) != "true" or not who or team is None:
        return None
    groups = frozenset(g for g in notes.get(REVIEWED_BY_GROUPS, "").split(",") if g)
    if who == wire.spec(request).get("requester") or not is_approver(team, Caller(who, groups)):
        return None
    return who

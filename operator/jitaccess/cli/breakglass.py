"""`break-glass` and the review of a break-glass request (`review NAME`).

`break-glass ENTITLEMENT --reason "..."` is `request` with `spec.breakGlass: true`: the same
server-side dry run first (a refusal names the rule: the groups, the reason's length, the duration
cap, the rate limit), then the same wait until access is active, which for break-glass is at once.
Reviewing sets `jitaccess.dev/reviewed=true` on the request; the admission webhook stamps who did
and refuses anyone but an approver of the owner team (never the requester).
"""

from __future__ import annotations

from datetime import timedelta

from jitaccess.api import names, wire
from jitaccess.cli import objects as o
from jitaccess.cli import request as requests
from jitaccess.cli.errors import OK, Refused
from jitaccess.cli.kube import ApiError
from jitaccess.cli.session import Session

DEFAULT_WAIT = timedelta(minutes=2)


def run(session: Session, entitlement_name: str, duration: str | None, reason: str, *, wait: bool) -> int:
    api, me = session.api, session.me
    entitlement = o.get(api, names.ENTITLEMENTS, entitlement_name)
    if not wire.spec(entitlement).get("breakGlass"):
        raise Refused(
            f"entitlement {entitlement_name} does not allow break-glass (it has no spec.breakGlass): "
            f"`kubectl jit request {entitlement_name}` asks its approvers instead"
        )
    manifest = requests.request_manifest(me, entitlement, duration, reason)
    manifest["spec"]["breakGlass"] = True
    for dry_run in (True, False):
        try:
            created = api.create(o.path(names.REQUESTS), manifest, dry_run=dry_run)
        except ApiError as exc:
            raise o.refusal(exc, f"break-glass on {entitlement_name}") from exc
    name = wire.name_of(created)
    session.say(
        f"break-glass on {entitlement_name} as {me.username}: accessrequest {name}; the security channel is told, "
        "and an approver of the owner team reviews it"
    )
    return requests.Follower(session, created, entitlement, wait=wait).follow(DEFAULT_WAIT)


def is_break_glass_request(session: Session, name: str) -> bool:
    """Whether `name` is a break-glass AccessRequest (then `review NAME` records a review)."""
    found = o.get_optional(session.api, names.REQUESTS, name)
    return found is not None and wire.spec(found).get("breakGlass") is True


def review(session: Session, name: str) -> int:
    request = o.get(session.api, names.REQUESTS, name)
    notes = wire.annotations_of(request)
    if names.ANNOTATION_REVIEWED_BY in notes:
        raise Refused(f"accessrequest {name} was already reviewed by {notes[names.ANNOTATION_REVIEWED_BY]}")
    patch = {"metadata": {"annotations": {names.ANNOTATION_REVIEWED: "true"}}}
    try:
        session.api.merge_patch(o.path(names.REQUESTS, name), patch)
    except ApiError as exc:
        raise o.refusal(exc, f"reviewing accessrequest {name}") from exc
    spec = wire.spec(request)
    session.say(
        f"reviewed break-glass accessrequest {name} ({spec.get('requester')}, {spec.get('entitlement')}): {spec.get('reason')}"
    )
    return OK

"""`break-glass` and the review of a break-glass request (`review NAME`).

`break-glass ENTITLEMENT --reason "..."` is `request` with `spec.breakGlass: true`: the same
server-side dry run first (a refusal names the rule: the groups, the reason's length, the duration
cap, the rate limit), then the same wait until access is active, which for break-glass is at once.
Reviewing sets `jitaccess.dev/reviewed=true` on the request; the admission webhook stamps who did
and refuses anyone but an approver of the owner team (never the requester). The patch carries the
uid and resourceVersion of the request read, so a review never lands on another request created
under its name meanwhile; `--uid` (`review_meant`) pins the request meant, as `approve --uid` does.
"""

from __future__ import annotations

from datetime import timedelta

from jitaccess.api import names, wire
from jitaccess.cli import objects as o
from jitaccess.cli import request as requests
from jitaccess.cli.errors import OK, Refused
from jitaccess.cli.kube import ApiError
from jitaccess.cli.objects import Obj
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


def break_glass_request(session: Session, name: str) -> Obj | None:
    """The AccessRequest `name` when it is a break-glass one (then `review NAME` records a review of it)."""
    found = o.get_optional(session.api, names.REQUESTS, name)
    return found if found is not None and wire.spec(found).get("breakGlass") is True else None


def _not_break_glass(name: str) -> Refused:
    return Refused(f"accessrequest {name} is not a break-glass request: only those are reviewed")


def review_target(session: Session, given: str) -> tuple[str, Obj | None]:
    """(the name, the break-glass request to review, or None for the Entitlement's access review)
    that `review` is given: `request/NAME` records a review of that request, `entitlement/NAME` or
    a bare NAME reads the Entitlement's access review (`--uid` is `review_meant`'s).

    Recording a review is final, so it is never the reading of a bare name: a requester chooses
    their request's name, and a break-glass request under an Entitlement's name (or one freed by a
    rename, or a typo's) would have its review recorded, unread, by the approver who ran the
    routine access review. A bare name that is a break-glass request is refused, saying how to
    review it."""
    kind, _, name = given.rpartition("/")
    if kind.lower() in ("entitlement", "entitlements"):
        return name, None
    if kind and kind.lower() not in ("request", "accessrequest", "requests", "accessrequests"):
        raise Refused(f"{given}: the kind before / is entitlement or request (`entitlement/NAME`, `request/NAME`)")
    if kind:
        found = o.get(session.api, names.REQUESTS, name)
        if wire.spec(found).get("breakGlass") is not True:
            raise _not_break_glass(name)
        return name, found
    glass = break_glass_request(session, name)
    if glass is None:
        return name, None
    spec, uid = wire.spec(glass), str(wire.metadata(glass).get("uid") or "")
    who = f"{o.requester(glass) or 'no requester'}, {spec.get('entitlement')}"
    if o.get_optional(session.api, names.ENTITLEMENTS, name) is not None:
        what = (
            f"is both an Entitlement and a break-glass AccessRequest ({who}): say which, "
            f"`kubectl jit review entitlement/{name}` for the Entitlement's access review, or"
        )
    else:
        what = f"is a break-glass AccessRequest ({who}), not an Entitlement: to record your review of it, run"
    raise Refused(
        f"{name} {what} `kubectl jit review request/{name}`"
        + (f" (or `kubectl jit review {name} --uid {uid}`)" if uid else "")
        + ". Nothing was reviewed"
    )


def review_meant(session: Session, name: str, uid: str) -> int:
    """`review NAME --uid UID`: review the break-glass request `name` only if it is the object `uid`
    (from the alert's Warning Event, or a message), as `approve --uid` decides only the one meant."""
    found = o.get_optional(session.api, names.REQUESTS, name)
    if found is None:
        raise Refused(
            f"there is no accessrequest {name} (uid {uid}) any more: nothing was reviewed. --uid names a break-glass "
            "AccessRequest (an Entitlement's access review takes none); `kubectl get accessrequests` lists them"
        )
    if wire.metadata(found).get("uid") == uid and wire.spec(found).get("breakGlass") is not True:
        raise _not_break_glass(name)
    return review(session, found, uid=uid)


def review(session: Session, request: Obj, *, uid: str | None = None) -> int:
    """Review `request` as read (or, with `uid`, only if it is that object): the patch carries its
    uid and resourceVersion, so a request deleted and created again under its name meanwhile is not
    the one reviewed (attacks 130, 134: names are taken again). A change to the same request (the
    operator's status) is read and checked again."""
    name, meant = wire.name_of(request), uid or str(wire.metadata(request).get("uid") or "")
    for _ in range(o.CONFLICT_RETRIES):
        o.check_same(
            request,
            meant,
            "accessrequest",
            given=bool(uid),
            ended="deleted",
            done="reviewed",
            then=", and review it again if it is one to review",
        )
        notes = wire.annotations_of(request)
        if names.ANNOTATION_REVIEWED_BY in notes:
            raise Refused(f"accessrequest {name} was already reviewed by {notes[names.ANNOTATION_REVIEWED_BY]}")
        # Its uid is `meant` (checked above), and its resourceVersion the one read.
        reviewed = {names.ANNOTATION_REVIEWED: "true"}
        read, written = o.annotate_as_read(
            session.api, names.REQUESTS, request, reviewed, f"reviewing accessrequest {name}"
        )
        if not written:
            request = read
            continue
        spec = wire.spec(request)
        session.say(
            f"reviewed break-glass accessrequest {name} ({spec.get('requester')}, {spec.get('entitlement')}): "
            f"{spec.get('reason')}"
        )
        return OK
    raise Refused(
        f"accessrequest {name} kept changing while you reviewed it: look at it again and run the command again"
    )

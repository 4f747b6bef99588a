"""`kubectl jit extend GRANT --by 30m --reason TEXT`: more time for one of my Active grants.

1. The grant: mine and Active, or refused early with what to do instead.
2. A server-side dry run of the AccessExtension: the webhook's refusal (above maxDuration, beyond
   maxExtensions, with the numbers) is printed as the server words it, and nothing is created.
3. The create (generateName `<grant>-ext-`), then a watch on that one extension until it is
   Extended (the new end is printed), Denied or Failed, or waits for an approver (named).

`approve` and `deny` take an extension's name as well as a request's (`decide` here).
"""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Any

from jitaccess.api import names, wire
from jitaccess.cli import objects as o
from jitaccess.cli.errors import OK, CliError, Disconnected, Interrupted, Refused, StillPending, UsageError
from jitaccess.cli.kube import ApiError
from jitaccess.cli.objects import Obj
from jitaccess.cli.session import Session
from jitaccess.cli.text import human_age, until
from jitaccess.domain.durations import parse_duration
from jitaccess.errors import InvalidInput

DEFAULT_WAIT = timedelta(minutes=15)
DEFAULT_NO_WAIT = timedelta(seconds=30)


def run(session: Session, grant_name: str, *, by: str, reason: str, wait: bool, timeout: timedelta | None) -> int:
    api, me = session.api, session.me
    by = by.strip()  # sent as checked: the schema's pattern refuses the padding the parser forgives
    try:  # as `request --for` is: here, naming the flag, before the server names a field
        parse_duration(by, "the duration")
    except InvalidInput as exc:
        raise UsageError(f"--by: {exc}") from exc
    grant = o.get(api, names.GRANTS, grant_name)
    spec = wire.spec(grant)
    if spec.get("user") != me.username:
        raise Refused(
            f"accessgrant {grant_name} is {spec.get('user')}'s: only its grantee extends it "
            f"(for access of your own: kubectl jit request {spec.get('entitlement')})"
        )
    state = wire.ready_reason(grant)
    if state != names.ACTIVE:
        raise Refused(
            f"accessgrant {grant_name} is {state or 'not active yet'}: only an Active grant can be extended"
            + (f" (request access again: kubectl jit request {spec.get('entitlement')})" if state else "")
        )
    manifest = _manifest(grant_name, by, reason, me.username)
    for dry_run in (True, False):
        try:
            extension = api.create(o.path(names.EXTENSIONS), manifest, dry_run=dry_run)
        except ApiError as exc:
            if exc.status == 404 and not exc.object_missing:
                raise o.refusal(exc, f"extending accessgrant {grant_name}") from exc
            raise Refused(
                f"the cluster refused to extend accessgrant {grant_name}, nothing was created: {exc.message}"
            ) from exc
    name = wire.name_of(extension)
    session.say(f"asked to extend accessgrant {grant_name} by {by} as {me.username}: accessextension {name}")
    timeout = timeout or (DEFAULT_WAIT if wait else DEFAULT_NO_WAIT)
    return _follow(session, extension, wait=wait, timeout=timeout)


def _manifest(grant: str, by: str, reason: str, me: str) -> dict[str, Any]:
    # The webhook stamps the requester from the caller and refuses a different one.
    prefix = f"{grant}"[:57].rstrip("-.")
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.ACCESS_EXTENSION,
        "metadata": {"generateName": f"{prefix}-ext-"},
        "spec": {"grant": grant, "duration": by, "reason": reason, "requester": me},
    }


def _follow(session: Session, extension: Obj, *, wait: bool, timeout: timedelta) -> int:
    """Watch the extension until it settles; say who decides while it waits."""
    name = wire.name_of(extension)
    deadline = time.monotonic() + timeout.total_seconds()
    version = str(wire.metadata(extension).get("resourceVersion", ""))
    said: set[str] = set()
    current = extension
    look = f"`kubectl get accessextension {name}` shows where it stands"
    rewatch = o.Rewatch(deadline, f"accessextension {name} stays: {look}", session.note)
    try:
        while True:
            outcome = _react(session, current, said, wait)
            if outcome is not None:
                return outcome
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StillPending(
                    f"accessextension {name} is still waiting after {human_age(timeout.total_seconds())}; "
                    f"it stays open: `kubectl get accessextension {name}` shows where it stands"
                )
            try:
                for event in session.api.watch(
                    o.path(names.EXTENSIONS),
                    resource_version=version,
                    timeout_seconds=math.ceil(remaining),
                    fieldSelector=f"metadata.name={name}",
                ):
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        raise ApiError(int(obj.get("code") or 500), str(obj.get("reason", "")), str(obj.get("message")))
                    version = str(wire.metadata(obj).get("resourceVersion") or version)
                    if event.get("type") == "BOOKMARK":
                        continue
                    if event.get("type") == "DELETED":
                        raise Refused(f"accessextension {name} was deleted while waiting for it")
                    current = obj
                    outcome = _react(session, current, said, wait)
                    if outcome is not None:
                        return outcome
            except Disconnected as exc:
                rewatch.after(exc)
            except ApiError as exc:
                if o.passing(exc):
                    rewatch.after(exc)
                    continue
                if exc.status != 410:
                    raise o.refusal(exc, f"watching accessextension {name}") from exc
                try:
                    current = o.get(session.api, names.EXTENSIONS, name)
                except Disconnected as dropped:
                    rewatch.after(dropped)
                    continue
                version = str(wire.metadata(current).get("resourceVersion", ""))
    except KeyboardInterrupt:
        raise Interrupted(
            f"stopped waiting; accessextension {name} stays: `kubectl get accessextension {name}`"
        ) from None


def _react(session: Session, extension: Obj, said: set[str], wait: bool) -> int | None:
    name, reason = wire.name_of(extension), wire.ready_reason(extension)
    if reason == names.EXTENDED:
        ends = o.parse_time(wire.status(extension).get("expirationTime"))
        session.say(f"extended accessgrant {wire.spec(extension).get('grant')}: access now ends {until(ends)}")
        return OK
    if reason in names.EXTENSION_FINISHED:
        raise Refused(f"accessextension {name} {reason}: {o.ready_message(extension) or 'no message'}")
    if reason == names.PENDING and "pending" not in said:
        said.add("pending")
        session.say(o.ready_message(extension))
        session.say(f"  an approver runs: kubectl jit approve extension/{o.pinned(extension)}")
        if not wait:
            raise StillPending(f"accessextension {name} waits for an approval: `kubectl get accessextension {name}`")
    return None


# --- approve / deny an extension -----------------------------------------------------------------


def decide(session: Session, extension: Obj, *, approve: bool, reason: str | None, uid: str | None = None) -> int:
    """`kubectl jit approve|deny NAME` when NAME is an AccessExtension: the request's annotations,
    with the same early checks (the webhook has the last word). The patch carries the uid and
    resourceVersion read; a change to the same extension meanwhile is read and checked again, and
    another created under its name (or, with `uid`, any other than that one) is refused."""
    name, verb = wire.name_of(extension), "approve" if approve else "deny"
    meant = uid or str(wire.metadata(extension).get("uid") or "")
    for _ in range(o.CONFLICT_RETRIES):
        o.check_same(extension, meant, "accessextension", given=bool(uid))
        state = wire.ready_reason(extension)
        if state in names.EXTENSION_FINISHED or wire.is_true(extension, names.APPROVED):
            raise Refused(
                f"accessextension {name} is {state or 'approved'}: there is nothing left to decide "
                f"({o.ready_message(extension) or 'a decision cannot be changed'})"
            )
        if (wire.spec(extension).get("requester") or "") == session.me.username:
            raise Refused(
                f"you may not {verb} accessextension {name}: you asked for it; an approver of the team decides"
            )
        flag = names.ANNOTATION_APPROVED if approve else names.ANNOTATION_DENIED
        patched = {flag: "true", **({names.ANNOTATION_DECISION_REASON: reason} if reason else {})}
        doing = f"{'approving' if approve else 'denying'} accessextension {name}"
        stored, written = o.annotate_as_read(session.api, names.EXTENSIONS, extension, patched, doing)
        if not written:
            extension = stored
            continue
        if approve and _counted(stored, session.me.username):
            session.say(f"recorded your approval of accessextension {name}: {_more_needed(session, stored)}")
            return OK
        spec = wire.spec(extension)
        what = f"{spec.get('requester') or 'the grantee'}, +{spec.get('duration')} on accessgrant {spec.get('grant')}"
        session.say(
            f"{'approved' if approve else 'denied'} accessextension {name} ({what})" + (f": {reason}" if reason else "")
        )
        return OK
    raise Refused(f"accessextension {name} kept changing while you decided: run the command again")


def _counted(extension: Obj, me: str) -> bool:
    """Whether my approval, admitted, is one of several (approvalsRequired): listed, the approved
    flag taken out again for the next approver, nothing decided yet."""
    # The operator's own reading of what a decision did; imported here only, as pydantic comes with
    # it (too slow for the request path).
    from jitaccess.domain.approvals import Effect, decision_effect

    return decision_effect(extension, me, approve=True) is Effect.COUNTED


def _more_needed(session: Session, extension: Obj) -> str:
    """Who approved so far, how many more approvals are needed (the operator's `approvalSummary`,
    `1/2`), and who may give them, as `decisions` says it of a request."""
    from jitaccess.domain.approvals import given

    by = [a.by for a in given(wire.annotations_of(extension))]
    _, _, needed = str(wire.status(extension).get("approvalSummary") or "").partition("/")
    more = f"{max(1, int(needed) - len(by))} more needed" if needed.isdigit() else "more approvals are needed"
    owner = str(wire.status(extension).get("ownerTeam") or "")
    try:
        team = o.get_optional(session.api, names.TEAMS, owner) if owner else None
    except CliError:
        team = None  # said without the names
    excluding = {str(wire.spec(extension).get("requester") or ""), *by}
    who = ", ".join(o.approvers_of(team, escalated=False, excluding=excluding)) if team is not None else ""
    return f"approved so far by {', '.join(by)}; {more}, by another approver of team {owner or 'the owner team'}" + (
        f" ({who})" if who else ""
    )

"""`kubectl jit request`: from "I need production" to an active grant, in one command.

1. Who am I: a SelfSubjectReview (the API server's own answer, impersonation included).
2. Which entitlement: the one named, or, on a terminal, my team's proposed ("Request X? [Y/n]")
   with a numbered pick list of all entitlements as the alternative. One I hold already is said,
   with the command that lengthens it instead (on a terminal: "Request another grant anyway?").
3. For how long and why: the flags, else asked on the terminal, checked against the
   entitlement's limits and reason pattern (the prompt shows it, with its example) before anything
   is sent; and from when (`--start`, `cli.start`), else as soon as approved.
4. A server-side dry run of the AccessRequest: an admission refusal (not eligible, above the
   maximum) is printed as the server words it, and nothing is created.
5. The create (generateName `<me>-<entitlement>-`), then a watch on that one request from the
   resourceVersion the create returned, so no change between the two is missed, until the
   grant is active, refused, or waits for a human (whose names are printed).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jitaccess.api import names, wire
from jitaccess.cli import objects as o
from jitaccess.cli import start as starts
from jitaccess.cli.errors import OK, CliError, Disconnected, Interrupted, NotFound, Refused, StillPending, UsageError
from jitaccess.cli.kube import ApiError
from jitaccess.cli.objects import Identity, Obj
from jitaccess.cli.session import Session
from jitaccess.cli.text import human_age, until
from jitaccess.domain import reasons
from jitaccess.domain.durations import format_duration, parse_duration
from jitaccess.errors import InvalidInput

DEFAULT_WAIT = timedelta(minutes=15)
DEFAULT_NO_WAIT = timedelta(seconds=30)
# With no word from the operator this long, say that it may not be running.
QUIET_HINT_SECONDS = 5
NEXT_STEP = "the AWS access portal may need a fresh sign-in to show the new role"


@dataclass(frozen=True)
class RequestOptions:
    entitlement: str | None
    duration: str | None
    reason: str | None
    wait: bool
    timeout: timedelta | None
    #: `--start` as typed (`cli.start`); None: access begins once approved.
    start: str | None = None


def run(session: Session, options: RequestOptions) -> int:
    api, me = session.api, session.me
    named = options.entitlement
    entitlement = o.get(api, names.ENTITLEMENTS, named) if named else propose(session, me)
    if not another_grant_wanted(session, entitlement):
        session.say(f"nothing requested: you hold {wire.name_of(entitlement)} already")
        return OK
    duration = choose_duration(session, entitlement, options.duration)
    reason = choose_reason(session, entitlement, options.reason)
    start = starts.start_time(options.start, datetime.now(UTC)) if options.start else None
    manifest = request_manifest(me, entitlement, duration, reason, start)
    try:
        api.create(o.path(names.REQUESTS), manifest, dry_run=True)
    except ApiError as exc:
        raise _refused_at_admission(exc, wire.name_of(entitlement)) from exc
    try:
        request = api.create(o.path(names.REQUESTS), manifest)
    except ApiError as exc:
        raise _refused_at_admission(exc, wire.name_of(entitlement)) from exc
    name = wire.name_of(request)
    shown = duration or f"{wire.spec(entitlement).get('defaultDuration', '1h')} (the default)"
    starting = f" from {until(start)}" if start else ""
    session.say(f"requested {wire.name_of(entitlement)} for {shown}{starting} as {me.username}: accessrequest {name}")
    timeout = options.timeout or (DEFAULT_WAIT if options.wait else DEFAULT_NO_WAIT)
    return Follower(session, request, entitlement, wait=options.wait).follow(timeout)


def _refused_at_admission(exc: ApiError, entitlement: str) -> CliError:
    if exc.status == 404:
        return o.refusal(exc, f"requesting {entitlement}")
    return Refused(f"the cluster refused the request for {entitlement}, nothing was created: {exc.message}")


# --- what to ask for ---------------------------------------------------------------------------


def propose(session: Session, me: Identity) -> Obj:
    """The entitlement to request when none was named: my team's, or one picked from a list."""
    api = session.api
    teams, _ = o.list_all(api, names.TEAMS)
    listed, _ = o.list_all(api, names.ENTITLEMENTS)
    # A deleted one waits for its grants to end: nothing new can be asked of it.
    entitlements = [e for e in listed if not wire.deleting(e)]
    my_teams = sorted(wire.name_of(t) for t in teams if o.is_member(t, me))
    mine = sorted((e for e in entitlements if wire.spec(e).get("owner") in my_teams), key=wire.name_of)
    if not session.prompter.interactive:
        yours = f" (your team's: {', '.join(wire.name_of(e) for e in mine)})" if mine else ""
        raise UsageError(
            f"name the entitlement to request{yours}, e.g. "
            f"`kubectl jit request {wire.name_of(mine[0]) if mine else 'ENTITLEMENT'} --for 1h --reason 'INC-123 why'`: "
            "there is no terminal to ask on" + ("" if mine else "; `kubectl get entitlements` lists them")
        )
    if not entitlements:
        raise NotFound("this cluster defines no Entitlements yet: ask your platform team for one")
    team_text = f"team {', '.join(my_teams)}" if my_teams else "in no team"
    session.note(f"You are {me.username} ({team_text}).")
    if len(mine) == 1:
        only = mine[0]
        if session.prompter.confirm(f"Request {wire.name_of(only)} ({_describe(only, my_teams, me)})?"):
            return only
    others = sorted((e for e in entitlements if e not in mine), key=wire.name_of)
    ordered = mine + others
    index = session.prompter.choose("Entitlements:", [(wire.name_of(e), _describe(e, my_teams, me)) for e in ordered])
    return ordered[index]


def _describe(entitlement: Obj, my_teams: list[str], me: Identity) -> str:
    spec = wire.spec(entitlement)
    owner = str(spec.get("owner", "?"))
    limits = f"{spec.get('defaultDuration', '1h')} by default, at most {spec.get('maxDuration', '4h')}"
    approval = spec.get("approval") or {}
    needed = approval.get("approvalsRequired") or 1
    approvers = f"{needed} approvers" if isinstance(needed, int) and needed > 1 else "an approver"
    how = f"needs {approvers} of team {owner}"
    if owner in my_teams and approval.get("autoApproveOwnerTeam", True):
        how = "granted at once"
    return f"team {owner}{', yours' if owner in my_teams else ''}: {limits}, {how}{_not_eligible(entitlement, me)}"


def _not_eligible(entitlement: Obj, me: Identity) -> str:
    """ ", not eligible ..." when the Entitlement's last eligibility re-check listed every eligible
    user (`status.eligibleUsers`, not cut short) and `me` was not among them; else nothing, the
    request's admission being the one to ask Identity Center."""
    groups = ((wire.spec(entitlement).get("eligibility") or {}).get("identityCenterGroups")) or []
    status = wire.status(entitlement)
    listed = status.get("eligibleUsers")
    if not groups or not isinstance(listed, list) or status.get("eligibleUserCount") != len(listed):
        return ""
    # Identity Center compares user names without regard to case.
    if me.username.casefold() in {str((u or {}).get("username", "")).casefold() for u in listed}:
        return ""
    # The groups as the spec names them now: a change since the last check shows at the next one.
    return f", not among its eligible users at its last check (enabled, and in every one of: {', '.join(map(str, groups))})"


def held(session: Session, entitlement: Obj) -> list[Obj]:
    """My Active grants of this entitlement, soonest to end first; none when they cannot be read
    (the request itself does not depend on them)."""
    name, me = wire.name_of(entitlement), session.me.username
    try:
        grants, _ = o.list_all(session.api, names.GRANTS, fields={"spec.user": me, "spec.entitlement": name})
    except CliError:
        return []
    mine = [g for g in grants if wire.ready_reason(g) == names.ACTIVE]
    return sorted(mine, key=lambda g: str(wire.status(g).get("expirationTime") or ""))


def another_grant_wanted(session: Session, entitlement: Obj) -> bool:
    """Say so when I hold this entitlement already: a second request makes a second grant (each
    ends on its own time), where lengthening the one I hold is usually what was meant. On a
    terminal, ask (default no); in a script, say it and go on, since overlapping grants are allowed."""
    grants = held(session, entitlement)
    if not grants:
        return True
    grant = grants[-1]
    ends = o.parse_time(wire.status(grant).get("expirationTime"))
    session.note(
        f"You hold {wire.name_of(entitlement)} already until {until(ends) if ends else 'its expiry'} "
        f"(accessgrant {wire.name_of(grant)}); to lengthen it: "
        f"`kubectl jit extend {wire.name_of(grant)} --by 1h --reason '...'`. "
        "A new request makes a second grant, which ends on its own time."
    )
    if not session.prompter.interactive:
        return True
    return session.prompter.confirm("Request another grant anyway?", default=False)


def _duration_problem(text: str, entitlement: Obj) -> str | None:
    spec = wire.spec(entitlement)
    try:
        wanted = parse_duration(text, "the duration")
    except InvalidInput as exc:
        return str(exc)
    try:
        maximum = parse_duration(spec.get("maxDuration") or "4h", "maxDuration")
    except InvalidInput:
        return None  # the operator will say what is wrong with the entitlement
    if wanted > maximum:
        return (
            f"{format_duration(wanted)} is above {wire.name_of(entitlement)}'s maximum of "
            f"{format_duration(maximum)}: ask for {format_duration(maximum)} or less"
        )
    return None


def _given(flag: str, value: str, problem: str | None) -> str:
    """A value from the command line, refused for the problem the prompt would have refused it for."""
    if problem:
        raise UsageError(f"{flag}: {problem}")
    return value.strip()


def choose_duration(session: Session, entitlement: Obj, given: str | None) -> str | None:
    """The duration to ask for; None leaves it to the entitlement's default."""
    if given is not None:
        return _given("--for", given, _duration_problem(given, entitlement))
    if not session.prompter.interactive:
        return None
    spec = wire.spec(entitlement)
    return session.prompter.ask(
        f"For how long? (at most {spec.get('maxDuration', '4h')})",
        default=str(spec.get("defaultDuration") or "1h"),
        check=lambda text: _duration_problem(text, entitlement),
    )


def _reason_problem(text: str, entitlement: Obj) -> str | None:
    if not text.strip():
        return "say why you need access, for example a ticket or an incident id"
    spec = wire.spec(entitlement)
    try:
        return reasons.mismatch(text, spec.get("reasonPattern"), spec.get("reasonExample"), wire.name_of(entitlement))
    except reasons.PatternError:
        return None  # the operator reports a broken pattern on the request


def choose_reason(session: Session, entitlement: Obj, given: str | None) -> str:
    if given is not None:
        return _given("--reason", given, _reason_problem(given, entitlement))
    if not session.prompter.interactive:
        raise UsageError(
            "--reason is required (why you need access, e.g. --reason 'INC-123 fix the stuck batch'): "
            "there is no terminal to ask on"
        )
    spec = wire.spec(entitlement)
    hint = reasons.prompt_hint(spec.get("reasonPattern"), spec.get("reasonExample"))
    return session.prompter.ask(
        f"Why do you need it?{hint}", check=lambda text: _reason_problem(text, entitlement)
    ).strip()


def generate_name(me: Identity, entitlement: str) -> str:
    """`<local-part>-<entitlement>-`, made a valid object name prefix."""
    local = re.sub(r"[^a-z0-9-]+", "-", me.local_part.lower()).strip("-") or "user"
    prefix = f"{local}-{entitlement}"[:57].rstrip("-.")
    return f"{prefix}-"


def request_manifest(
    me: Identity, entitlement: Obj, duration: str | None, reason: str, start: datetime | None = None
) -> dict[str, Any]:
    # The admission webhook stamps the requester from the authenticated caller and refuses a
    # different one; sending the same value keeps requests valid where no webhook is installed.
    spec: dict[str, Any] = {"entitlement": wire.name_of(entitlement), "reason": reason, "requester": me.username}
    if duration:
        spec["duration"] = duration
    if start is not None:
        spec["startTime"] = starts.wire_text(start)
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.ACCESS_REQUEST,
        "metadata": {"generateName": generate_name(me, wire.name_of(entitlement))},
        "spec": spec,
    }


# --- waiting -------------------------------------------------------------------------------------


class Follower:
    """Watches one request and says each step once: pending (and who decides), approved, granted."""

    def __init__(self, session: Session, request: Obj, entitlement: Obj, *, wait: bool) -> None:
        self.session = session
        self.request = request
        self.entitlement = entitlement
        self.wait = wait
        self.name = wire.name_of(request)
        self._said: set[str] = set()
        #: The last resourceVersion seen: a watch that ends, or drops, is watched again from it.
        self._version = str(wire.metadata(request).get("resourceVersion", ""))

    def follow(self, timeout: timedelta) -> int:
        started = time.monotonic()
        deadline = started + timeout.total_seconds()
        look = f"`kubectl jit status {self.name}` shows where it stands"
        rewatch = o.Rewatch(deadline, f"accessrequest {self.name} stays: {look}", self.session.note)
        try:
            while True:
                outcome = self.react(self.request)
                if outcome is not None:
                    return outcome
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._still_pending(timeout)
                window = remaining
                if "quiet" not in self._said and not wire.status(self.request):
                    window = min(window, max(1.0, started + QUIET_HINT_SECONDS - time.monotonic()))
                try:
                    outcome = self._watch(window)
                except (Disconnected, ApiError) as exc:  # failures in passing (`objects.passing`) only
                    rewatch.after(exc)
                    continue
                if outcome is not None:
                    return outcome
                if "quiet" not in self._said and not wire.status(self.request) and time.monotonic() < deadline:
                    self._said.add("quiet")
                    self.session.note(
                        f"no word from the jitaccess operator on {self.name} yet: is it running? still waiting"
                    )
        except KeyboardInterrupt:
            raise Interrupted(
                f"stopped waiting; accessrequest {self.name} stays: `kubectl jit status {self.name}`"
            ) from None

    def _watch(self, window: float) -> int | None:
        """Watch the request from the last resourceVersion seen, for `window` seconds at most; the
        exit code once it has settled. A failure in passing (`objects.passing`) is raised for the
        caller to watch again from there."""
        api = self.session.api
        try:
            for event in api.watch(
                o.path(names.REQUESTS),
                resource_version=self._version,
                timeout_seconds=math.ceil(window),
                fieldSelector=f"metadata.name={self.name}",
            ):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    failed = ApiError(
                        int(obj.get("code") or 500), str(obj.get("reason") or ""), str(obj.get("message"))
                    )
                    if failed.status == 410 or o.passing(failed):
                        raise failed
                    raise Refused(f"watching accessrequest {self.name} failed: {obj.get('message')}")
                self._version = str(obj.get("metadata", {}).get("resourceVersion") or self._version)
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    raise Refused(f"accessrequest {self.name} was deleted while waiting for it")
                self.request = obj
                outcome = self.react(obj)
                if outcome is not None:
                    return outcome
        except ApiError as exc:
            if exc.status == 410:
                return self._relist()
            if o.passing(exc):
                raise
            raise o.refusal(exc, f"watching accessrequest {self.name}") from exc
        return None

    def _relist(self) -> int | None:
        self.request = o.get(self.session.api, names.REQUESTS, self.name)
        self._version = str(self.request["metadata"].get("resourceVersion", ""))
        return self.react(self.request)

    def react(self, request: Obj) -> int | None:
        """Say what is new; the exit code once the request has settled, else None."""
        reason = wire.ready_reason(request)
        if reason == names.GRANTED:
            self._granted(request)
            return OK
        if reason in names.REQUEST_FINISHED:
            raise Refused(f"accessrequest {self.name} {reason}: {o.ready_message(request) or 'no message'}")
        if reason == names.SCHEDULED:
            self._scheduled(request)
            return OK
        if wire.is_true(request, names.APPROVED) and "approved" not in self._said:
            self._said.add("approved")
            who = o.approved_by(request)
            if who and not who.startswith("auto"):
                self.session.say(f"approved by {who}; provisioning access")
        if o.awaiting_decision(request):
            self._pending(request)
            if not self.wait:
                raise self._still_pending(None)
        return None

    def _scheduled(self, request: Obj) -> None:
        """Approved for a start to come: nothing more to wait for now (it may be days away)."""
        start = o.parse_time(wire.spec(request).get("startTime"))
        who = o.approved_by(request)
        approved = f"approved by {who}" if who and not who.startswith("auto") else "approved"
        self.session.say(f"{approved}; access to {o.role_of(self.entitlement)} begins at {until(start)}")
        self.session.say(f"  eligibility is checked again then; `kubectl jit status {self.name}` shows where it stands")

    def _granted(self, request: Obj) -> None:
        expiry = o.parse_time(wire.status(request).get("expirationTime"))
        self.session.say(f"obtained {o.role_of(self.entitlement)} until {until(expiry)}")
        self.session.say(NEXT_STEP)

    def _pending(self, request: Obj) -> None:
        escalated = wire.is_true(request, names.ESCALATED)
        if "pending" not in self._said:
            self._said.add("pending")
            owner = str(wire.spec(self.entitlement).get("owner", ""))
            team = o.get_optional(self.session.api, names.TEAMS, owner) if owner else None
            if team is None:
                self.session.say(f"waiting for approval: {o.ready_message(request)}")
            else:
                mine = {o.requester(request) or self.session.me.username}
                approvers = ", ".join(o.approvers_of(team, escalated=escalated, excluding=mine)) or "nobody"
                backups = o.backup_approvers_of(team)
                after = f" (after escalation also {', '.join(backups)})" if backups and not escalated else ""
                self.session.say(f"waiting for approval by team {owner}: {approvers}{after}")
            self.session.say(f"  an approver runs: kubectl jit approve {o.pinned(request)}")
        if escalated and "escalated" not in self._said:
            self._said.add("escalated")
            message = (wire.condition(request, names.ESCALATED) or {}).get(
                "message", "escalated to the backup approvers"
            )
            self.session.say(f"escalated: {message}")

    def _still_pending(self, timeout: timedelta | None) -> StillPending:
        follow = f"`kubectl jit status {self.name}` shows where it stands"
        if not wire.status(self.request):
            waited = f" within {human_age(timeout.total_seconds())}" if timeout else ""
            return StillPending(
                f"the jitaccess operator has not acted on accessrequest {self.name}{waited}: is it running? "
                f"the request stays; {follow}"
            )
        if timeout is None:
            return StillPending(f"accessrequest {self.name} waits for an approval; {follow}")
        return StillPending(
            f"accessrequest {self.name} is still pending after {human_age(timeout.total_seconds())}; it stays open: "
            f"{follow}"
        )

"""The jitaccess objects as the plugin reads them: plain dicts from the API, and the caller's identity.

The plugin does not import the pydantic models on its fast paths (pydantic alone costs a few
hundred milliseconds to import): it reads objects with `jitaccess.api.wire`, and takes the API's
names from `jitaccess.api.names`, both standard library only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jitaccess.api import names, wire
from jitaccess.cli.errors import Disconnected, NotFound, Refused, Unreachable
from jitaccess.cli.kube import ApiError, KubeApi, object_path
from jitaccess.domain.identities import confers_nothing

Obj = dict[str, Any]


@dataclass(frozen=True)
class Identity:
    """Who the API server says the caller is (SelfSubjectReview)."""

    username: str
    groups: frozenset[str]

    @property
    def local_part(self) -> str:
        return self.username.split("@", 1)[0]


def whoami(api: KubeApi) -> Identity:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    try:
        answer = api.create("/apis/authentication.k8s.io/v1/selfsubjectreviews", review)
    except ApiError as exc:
        raise Refused(f"the cluster will not say who you are (SelfSubjectReview: {exc.message})") from exc
    info = answer.get("status", {}).get("userInfo", {})
    username = str(info.get("username") or "")
    if not username:
        raise Refused("the cluster says you are anonymous: use a kubeconfig that logs you in")
    return Identity(username, frozenset(info.get("groups") or []))


# --- reading objects ---------------------------------------------------------------------------


def path(plural: str, name: str | None = None) -> str:
    return object_path(names.GROUP, names.VERSION, plural, name)


def ready_message(obj: Obj) -> str:
    found = wire.condition(obj, names.READY)
    return str(found.get("message") or "") if found is not None else ""


def requester(request: Obj) -> str:
    return str(wire.status(request).get("requester") or wire.spec(request).get("requester") or "")


def made_for(grant: Obj, request: Obj) -> bool:
    """Whether `grant` is `request`'s own (its `jitaccess.dev/request` label is the request's uid),
    not another request's under the same name; a grant without the label is taken as its own."""
    made = (wire.metadata(grant).get("labels") or {}).get(names.LABEL_REQUEST)
    return not made or made == wire.metadata(request).get("uid")


def awaiting_decision(request: Obj) -> bool:
    """Pending, and nobody has approved or denied it yet; not deleted (one withdrawn stays a moment,
    until its audit record is archived, and takes no decision)."""
    return (
        wire.ready_reason(request) == names.PENDING
        and not (wire.is_true(request, names.APPROVED) or wire.is_true(request, names.DENIED))
        and not wire.deleting(request)
    )


def approval_stamped(request: Obj) -> bool:
    """An approval the admission webhook stamped (`approved=true` with `approved-by`), no denial
    beside it: final once stamped, whether or not the operator has acted on it yet (with
    approvalsRequired N, the webhook stamps only the Nth approval)."""
    notes = wire.annotations_of(request)
    return (
        wire.truthy(notes.get(names.ANNOTATION_APPROVED))
        and bool(notes.get(names.ANNOTATION_APPROVED_BY))
        and not wire.truthy(notes.get(names.ANNOTATION_DENIED))
    )


def access_under_way(request: Obj) -> bool:
    """Approved (or its approval stamped, the operator not yet acted on it), neither finished nor
    approved for a later start (`Scheduled`), not deleted: the operator is making its grant, and its
    access begins within seconds, once the grant is made (Identity Center slow, a restart: longer)."""
    state = wire.ready_reason(request)
    if state in names.REQUEST_FINISHED or state == names.SCHEDULED or wire.deleting(request):
        return False
    if wire.is_true(request, names.DENIED):
        return False
    return wire.is_true(request, names.APPROVED) or approval_stamped(request)


def approved_by(request: Obj) -> str:
    """Who approved: a person, `auto (owner team)`, or empty when nobody has."""
    who = wire.status(request).get("approvedBy") or wire.annotations_of(request).get(names.ANNOTATION_APPROVED_BY)
    if who:
        return str(who)
    found = wire.condition(request, names.APPROVED)
    if found is not None and found.get("status") == "True" and found.get("reason") == names.AUTO_APPROVED:
        return "auto (owner team)"
    return ""


def created(obj: Obj) -> datetime | None:
    return parse_time(obj.get("metadata", {}).get("creationTimestamp"))


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def role_of(entitlement: Obj) -> str:
    target = wire.spec(entitlement).get("identityCenter") or {}
    return str(target.get("groupName") or target.get("groupId") or wire.name_of(entitlement))


def _deciding(team_spec: Mapping[str, Any], field: str) -> list[str]:
    """A team's policy field less the names of Kubernetes' own and those that read as someone
    else's, which confer nothing (the operator's `teams.conferring`; a team stored before admission
    refused them may hold some)."""
    group = field.endswith("Groups")
    return [str(n) for n in team_spec.get(field) or [] if not confers_nothing(str(n), group=group)]


def is_member(team: Obj, me: Identity) -> bool:
    """The operator's `teams.is_member`, on the wire form."""
    team_spec = wire.spec(team)
    return me.username in _deciding(team_spec, "members") or bool(me.groups & set(_deciding(team_spec, "memberGroups")))


def holding(grant_spec: wire.Obj) -> str:
    """What a grant holds, in words: an Identity Center group, or in account-assignment mode a
    permission set in accounts (its `groupName` then names the permission set, not a group)."""
    assignment = grant_spec.get("accountAssignment") or {}
    if assignment:
        accounts = ", ".join(map(str, assignment.get("accounts") or [])) or "its accounts"
        return f"permission set {grant_spec.get('groupName')} in {accounts}"
    return f"Identity Center group {grant_spec.get('groupName')}"


def approvers_of(team: Obj, *, escalated: bool, excluding: Collection[str] = ()) -> list[str]:
    """Who may decide now, leaving out `excluding` (the requester, who already approved): the
    operator's `requests.approvers_text`, on the wire form."""
    team_spec = wire.spec(team)
    names = [a for a in _deciding(team_spec, "approvers") if a not in excluding]
    names += [f"group:{g}" for g in _deciding(team_spec, "approverGroups")]
    if escalated:
        names += [a for a in _deciding(team_spec, "backupApprovers") if a not in excluding]
        names += [f"group:{g}" for g in _deciding(team_spec, "backupApproverGroups")]
    return names


def backup_approvers_of(team: Obj, *, excluding: Collection[str] = ()) -> list[str]:
    team_spec = wire.spec(team)
    return [a for a in _deciding(team_spec, "backupApprovers") if a not in excluding] + [
        f"group:{g}" for g in _deciding(team_spec, "backupApproverGroups")
    ]


def deciders_text(team: Obj, *, escalated: bool, excluding: Collection[str] = ()) -> str:
    """Who may decide a pending request, in the operator's words (`requests.approvers_text`, on the
    wire form): its approvers, and once it has escalated its backup approvers too; "nobody before
    the escalation, then ..." for a team whose only deciders are backup approvers; "nobody"."""
    deciding = approvers_of(team, escalated=escalated, excluding=excluding)
    backups = [] if escalated or deciding else backup_approvers_of(team, excluding=excluding)
    if backups:
        return f"nobody before the escalation, then {', '.join(backups)}"
    return ", ".join(deciding) or "nobody"


def approvals_so_far(request: Obj) -> list[str]:
    """Who has approved a request of several approvals needed (approvalsRequired), in order: the
    `approvals` annotation the webhook keeps. Anything unreadable counts as nobody, as for the
    operator (`approvals.given`)."""
    try:
        listed = json.loads(wire.annotations_of(request).get(names.ANNOTATION_APPROVALS) or "[]")
    except ValueError:
        return []
    if not isinstance(listed, list):
        return []
    return [str(a["by"]) for a in listed if isinstance(a, dict) and isinstance(a.get("by"), str) and a["by"]]


# --- calls with the plugin's error wording ----------------------------------------------------


def refusal(exc: ApiError, doing: str) -> Refused | NotFound | Unreachable:
    """Turn an API error into the user's one line: what was refused, and the server's own words."""
    if exc.status == 404 and not exc.object_missing:
        return Unreachable(
            f"jitaccess is not installed on this cluster (no {names.GROUP} API while {doing}): "
            "check --context, or install the jitaccess CRDs"
        )
    if exc.status == 404:
        return NotFound(f"{doing}: {exc.message}")
    if exc.status == 403 and f'in API group "{names.GROUP}"' in exc.message and " cannot " in exc.message:
        # RBAC, not a rule of jitaccess: the first thing an engineer not yet given the role meets.
        return Refused(
            f"{doing} was refused: {exc.message}. Your Kubernetes identity has no role for jitaccess yet: ask the "
            "cluster's administrators to bind you to the jitaccess-requester ClusterRole (jitaccess's docs/rbac.md)"
        )
    return Refused(f"{doing} was refused: {exc.message}")


def passing(exc: Exception) -> bool:
    """Whether a failed watch (or read) may work a moment later: the connection refused, reset or
    cut mid-answer (`Disconnected`), or the API server restarting or overloaded (429, 5xx)."""
    if isinstance(exc, Disconnected):
        return True
    return isinstance(exc, ApiError) and (exc.status == 429 or exc.status >= 500)


class Rewatch:
    """A wait (`--wait`) whose watch failed in passing (`passing`) watches again, from the last
    resourceVersion it saw, after a short pause (half a second, doubling up to 5 s) until its
    deadline: a connection reset or an API server restarting does not end it. Past the deadline it
    gives up as Ctrl-C does, saying what stays (`left`: "accessrequest NAME stays: ..."), with the
    cluster's failure and exit code UNREACHABLE; `note` says once that the connection was lost."""

    FIRST_PAUSE = 0.5
    LONGEST_PAUSE = 5.0

    def __init__(self, deadline: float, left: str, note: Callable[[str], None]) -> None:
        self.deadline = deadline
        self.left = left
        self.note = note
        self.pause = self.FIRST_PAUSE
        self.lost = False

    def after(self, exc: Disconnected | ApiError) -> None:
        """Pause before watching again after `exc` (a `passing` failure); past the deadline, raise
        it as `Unreachable`, naming what stays."""
        if time.monotonic() + self.pause >= self.deadline:
            raise Unreachable(f"{exc.message}; stopped waiting: {self.left}") from exc
        if not self.lost:
            self.lost = True
            self.note(f"lost the connection to the cluster while waiting ({exc.message}): watching again")
        time.sleep(self.pause)
        self.pause = min(self.pause * 2, self.LONGEST_PAUSE)


#: How often a command that writes an object as read reads it again when it changed meanwhile
#: (the operator's status writes) before it asks the user to run it again.
CONFLICT_RETRIES = 3


def pinned(obj: Obj) -> str:
    """`NAME --uid UID` for a command a message tells someone to run: it then acts on this very
    object, not on another created under its name after this one was withdrawn."""
    uid = str(wire.metadata(obj).get("uid") or "")
    return f"{wire.name_of(obj)} --uid {uid}" if uid else wire.name_of(obj)


def as_read(obj: Obj) -> dict[str, str]:
    """The uid and resourceVersion `obj` was read with (those it has): in a patch's metadata, or as
    a deletion's preconditions, the API server writes only on that object as read. Another object
    created under its name since is refused (409: another resourceVersion; a patch, 422 naming
    metadata.uid, when the uid alone differs), and so is a change to it since (409)."""
    metadata = wire.metadata(obj)
    read = {"uid": str(metadata.get("uid") or ""), "resourceVersion": str(metadata.get("resourceVersion") or "")}
    return {k: v for k, v in read.items() if v}


def not_as_read(exc: ApiError) -> bool:
    """Whether a patch carrying `as_read` was refused as the object is no longer the one read (the
    caller reads it again, and checks it again)."""
    return exc.status == 409 or (exc.status == 422 and "metadata.uid" in exc.message)


def check_same(
    obj: Obj,
    uid: str | None,
    kind: str,
    *,
    given: bool = True,
    ended: str = "withdrawn",
    done: str = "decided",
    then: str = "",
) -> None:
    """With `--uid` (`given`), or the uid first read: refuse an object of the name that is not that
    one (it `ended`, and another was created under its name: nothing was `done`; `then`, what to do
    after looking). The patch that follows carries the uid and resourceVersion read (`as_read`), so
    the object checked here is the one acted on."""
    if uid and wire.metadata(obj).get("uid") != uid:
        which = "not the one you meant" if given else "no longer the one read"
        name = wire.name_of(obj)
        # `kubectl jit status` shows requests and grants; an extension is read as it is stored.
        look = f"kubectl get {kind} {name} -o yaml" if kind == "accessextension" else f"kubectl jit status {name}"
        raise Refused(
            f"{kind} {name} is {which} (uid {uid}): it was {ended}, and {requester(obj) or 'someone'} created "
            f"another under the same name. Nothing was {done}; look at it with `{look}` first{then}"
        )


def annotate_as_read(api: KubeApi, plural: str, obj: Obj, annotations: dict[str, str], doing: str) -> tuple[Obj, bool]:
    """Patch `annotations` onto `obj` only as it was read (`as_read`): (the object as the API server
    stored it, True) once written, which is what the write did (admission may have changed it:
    one approval of several is listed, its flag taken out); else (the object as read again, False),
    having changed (or been replaced) since: the caller checks it again. Any other refusal is
    raised, saying what was being done (`doing`)."""
    name = wire.name_of(obj)
    try:
        written = api.merge_patch(path(plural, name), {"metadata": {**as_read(obj), "annotations": annotations}})
    except ApiError as exc:
        if not_as_read(exc):
            return get(api, plural, name), False
        raise refusal(exc, doing) from exc
    return written, True


_LISTED_BY = {
    names.REQUESTS: "`kubectl jit list`",
    names.GRANTS: "`kubectl get accessgrants`",
    names.EXTENSIONS: "`kubectl get accessextensions`",
    names.ENTITLEMENTS: "`kubectl get entitlements`",
    names.TEAMS: "`kubectl get teamownerships`",
    names.CATALOGS: "`kubectl get permissioncatalogs`",
}


def get(api: KubeApi, plural: str, name: str, *, what: str | None = None) -> Obj:
    """One object; `NotFound` (exit 4) naming where to look, and close names when there are some."""
    try:
        return api.get(path(plural, name))
    except ApiError as exc:
        if not exc.object_missing:
            raise refusal(exc, f"reading {names.KINDS[plural]} {name}") from exc
    import difflib

    known = [wire.name_of(item) for item in list_all(api, plural)[0]]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise NotFound(f"{what or names.KINDS[plural]} {name!r} not found: {hint}{_LISTED_BY[plural]} lists them")


def get_optional(api: KubeApi, plural: str, name: str) -> Obj | None:
    try:
        return api.get(path(plural, name))
    except ApiError as exc:
        if exc.object_missing:
            return None
        raise refusal(exc, f"reading {names.KINDS[plural]} {name}") from exc


def list_all(
    api: KubeApi, plural: str, *, labels: str = "", fields: Mapping[str, str] | None = None
) -> tuple[list[Obj], str]:
    """All objects of a kind (with `labels`: a label selector) and the list's resourceVersion (to
    watch from); with `fields`, only those whose spec fields have these values. A server that cannot
    select by them (before Kubernetes 1.31) answers with every object instead, filtered here
    (`wire.selected_by`, as `adapters.kube.Kube.list` does): callers read only the objects selected,
    either way."""
    query = {"labelSelector": labels} if labels else {}
    # The fields the server could not select by: the listing of every object is filtered by them here.
    filtered_by: Mapping[str, str] = {}
    try:
        if fields:
            try:
                answer = api.get(path(plural), fieldSelector=wire.field_selector(fields), **query)
            except ApiError as exc:
                if exc.status != 400 or names.FIELD_LABEL_UNSUPPORTED not in exc.message:
                    raise
                answer, filtered_by = api.get(path(plural), **query), fields
        else:
            answer = api.get(path(plural), **query)
    except ApiError as exc:
        raise refusal(exc, f"listing {plural}") from exc
    items = [obj for obj in answer.get("items") or [] if wire.selected_by(obj, filtered_by)]
    return items, str(answer.get("metadata", {}).get("resourceVersion", ""))

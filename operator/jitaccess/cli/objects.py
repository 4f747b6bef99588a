"""The jitaccess objects as the plugin reads them: plain dicts from the API, and the caller's identity.

The plugin does not import the pydantic models on its fast paths (pydantic alone costs a few
hundred milliseconds to import); the names below mirror `jitaccess.api.models` and
`jitaccess.domain.requests`, and a unit test keeps them equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jitaccess.cli.errors import NotFound, Refused, Unreachable
from jitaccess.cli.kubeapi import ApiError, KubeApi, object_path

GROUP = "jitaccess.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

REQUESTS = "accessrequests"
GRANTS = "accessgrants"
ENTITLEMENTS = "entitlements"
TEAMS = "teamownerships"
KINDS = {REQUESTS: "AccessRequest", GRANTS: "AccessGrant", ENTITLEMENTS: "Entitlement", TEAMS: "TeamOwnership"}

ANNOTATION_APPROVED = f"{GROUP}/approved"
ANNOTATION_DENIED = f"{GROUP}/denied"
ANNOTATION_DECISION_REASON = f"{GROUP}/decision-reason"
ANNOTATION_APPROVED_BY = f"{GROUP}/approved-by"
ANNOTATION_DENIED_BY = f"{GROUP}/denied-by"
ANNOTATION_REVOKED = f"{GROUP}/revoked"
ANNOTATION_REVOKE_REASON = f"{GROUP}/revoke-reason"
LABEL_ENTITLEMENT = f"{GROUP}/entitlement"

READY, APPROVED, DENIED, ESCALATED = "Ready", "Approved", "Denied", "Escalated"
# Ready reasons after which a request or grant never changes again.
FINISHED = frozenset({"Denied", "NotEligible", "Invalid", "TimedOut", "Expired", "Revoked", "Failed"})
REQUEST_FAILURES = frozenset({"Denied", "NotEligible", "Invalid", "TimedOut", "Failed", "Expired", "Revoked"})
AUTO_APPROVED = "AutoApproved"

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
    return object_path(GROUP, VERSION, plural, name)


def name_of(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def spec(obj: Obj) -> dict[str, Any]:
    value: dict[str, Any] = obj.get("spec") or {}
    return value


def status(obj: Obj) -> dict[str, Any]:
    value: dict[str, Any] = obj.get("status") or {}
    return value


def annotations_of(obj: Obj) -> dict[str, str]:
    value: dict[str, str] = obj.get("metadata", {}).get("annotations") or {}
    return value


def condition(obj: Obj, type_: str) -> dict[str, Any] | None:
    return next((c for c in status(obj).get("conditions") or [] if c.get("type") == type_), None)


def is_true(obj: Obj, type_: str) -> bool:
    found = condition(obj, type_)
    return found is not None and found.get("status") == "True"


def ready_reason(obj: Obj) -> str | None:
    found = condition(obj, READY)
    return str(found.get("reason")) if found is not None else None


def ready_message(obj: Obj) -> str:
    found = condition(obj, READY)
    return str(found.get("message") or "") if found is not None else ""


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def requester(request: Obj) -> str:
    return str(status(request).get("requester") or spec(request).get("requester") or "")


def awaiting_decision(request: Obj) -> bool:
    """Pending, and nobody has approved or denied it yet."""
    return ready_reason(request) == "Pending" and not (is_true(request, APPROVED) or is_true(request, DENIED))


def approved_by(request: Obj) -> str:
    """Who approved: a person, `auto (owner team)`, or empty when nobody has."""
    who = status(request).get("approvedBy") or annotations_of(request).get(ANNOTATION_APPROVED_BY)
    if who:
        return str(who)
    found = condition(request, APPROVED)
    if found is not None and found.get("status") == "True" and found.get("reason") == AUTO_APPROVED:
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
    target = spec(entitlement).get("identityCenter") or {}
    return str(target.get("groupName") or target.get("groupId") or name_of(entitlement))


def is_member(team: Obj, me: Identity) -> bool:
    team_spec = spec(team)
    return me.username in (team_spec.get("members") or []) or bool(me.groups & set(team_spec.get("memberGroups") or []))


def approvers_of(team: Obj, *, escalated: bool) -> list[str]:
    team_spec = spec(team)
    names = list(team_spec.get("approvers") or []) + [f"group:{g}" for g in team_spec.get("approverGroups") or []]
    if escalated:
        names += list(team_spec.get("backupApprovers") or [])
        names += [f"group:{g}" for g in team_spec.get("backupApproverGroups") or []]
    return names


def backup_approvers_of(team: Obj) -> list[str]:
    team_spec = spec(team)
    return list(team_spec.get("backupApprovers") or []) + [
        f"group:{g}" for g in team_spec.get("backupApproverGroups") or []
    ]


# --- calls with the plugin's error wording ----------------------------------------------------


def refusal(exc: ApiError, doing: str) -> Refused | NotFound | Unreachable:
    """Turn an API error into the user's one line: what was refused, and the server's own words."""
    if exc.status == 404 and not exc.object_missing:
        return Unreachable(
            f"jitaccess is not installed on this cluster (no {GROUP} API while {doing}): "
            "check --context, or install the jitaccess CRDs"
        )
    if exc.status == 404:
        return NotFound(f"{doing}: {exc.message}")
    return Refused(f"{doing} was refused: {exc.message}")


_LISTED_BY = {
    REQUESTS: "`kubectl jit list`",
    GRANTS: "`kubectl get accessgrants`",
    ENTITLEMENTS: "`kubectl get entitlements`",
    TEAMS: "`kubectl get teamownerships`",
}


def get(api: KubeApi, plural: str, name: str, *, what: str | None = None) -> Obj:
    """One object; `NotFound` (exit 4) naming where to look, and close names when there are some."""
    try:
        return api.get(path(plural, name))
    except ApiError as exc:
        if not exc.object_missing:
            raise refusal(exc, f"reading {KINDS[plural]} {name}") from exc
    import difflib

    names = [name_of(item) for item in list_all(api, plural)[0]]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise NotFound(f"{what or KINDS[plural]} {name!r} not found: {hint}{_LISTED_BY[plural]} lists them")


def get_optional(api: KubeApi, plural: str, name: str) -> Obj | None:
    try:
        return api.get(path(plural, name))
    except ApiError as exc:
        if exc.object_missing:
            return None
        raise refusal(exc, f"reading {KINDS[plural]} {name}") from exc


def list_all(api: KubeApi, plural: str, **query: Any) -> tuple[list[Obj], str]:
    """All objects of a kind and the list's resourceVersion (to watch from)."""
    try:
        answer = api.get(path(plural), **query)
    except ApiError as exc:
        raise refusal(exc, f"listing {plural}") from exc
    return list(answer.get("items") or []), str(answer.get("metadata", {}).get("resourceVersion", ""))

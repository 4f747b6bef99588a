"""Who the Slack endpoint may act as: the approvers the TeamOwnerships name, and nothing else.

A Slack click is applied through the API server as the clicking user (impersonation), so that the
admission webhooks, RBAC and the audit log see that user, exactly as for `kubectl annotate`. The
identity that impersonates is given `impersonate` on `users` limited by `resourceNames` to every
approver and backup approver of every TeamOwnership: it can act as no one else (not the requester
of a request, not an administrator, not a ServiceAccount), and do nothing in its own name. A name of
Kubernetes' own (`system:`, a ServiceAccount's or a node's) is never listed, even from a TeamOwnership
stored before admission refused it there: it approves nothing (`teams.conferring`), and listed it would
let the Slack endpoint act with that identity's rights.

Groups are never impersonated: Slack cannot tell which Kubernetes groups a user is in, so an
approver known only by group (`approverGroups`) decides with kubectl, not from Slack.

Pure and standard library only: `kubectl jit rbac slack` (which must not import pydantic) prints
what `cluster_role` returns, and the chart renders the same rule from the list `usernames` yields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jitaccess.domain.identities import confers_nothing, is_kubernetes_own, unreadable

#: The ClusterRole's name in a local run, and the chart's for a release named "jitaccess".
ROLE_NAME = "jitaccess-slack-impersonator"
_APPROVER_FIELDS = ("approvers", "backupApprovers")
_GROUP_FIELDS = ("approverGroups", "backupApproverGroups")


def shape_problems(team: Mapping[str, Any]) -> list[str]:
    """What in a TeamOwnership (a raw object) is not the shape the functions here read: `spec` a
    mapping, each approver and group field a list of names. The CRD's schema refuses these in the
    cluster, but a file is read as it is written, and a string where a list belongs would be read
    as its letters (`approvers: paula` made p, a, u, l impersonable)."""
    spec = team.get("spec")
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        return [f"spec is {_what(spec)}, not a mapping of its fields"]
    problems = []
    for field in (*_APPROVER_FIELDS, *_GROUP_FIELDS):
        value = spec.get(field)
        if value is None:
            continue
        if not isinstance(value, list):
            problems.append(f"spec.{field} is {_what(value)}, not a list ({field}: [NAME, ...])")
            continue
        problems += [
            f"spec.{field}[{index}] is {_what(item)}, not a name"
            for index, item in enumerate(value)
            if not isinstance(item, str)
        ]
    return problems


def left_out(team: Mapping[str, Any]) -> list[str]:
    """The approver names of a TeamOwnership (a raw object of the shape `shape_problems` checks)
    that `usernames` leaves out, each with why: they confer nothing (`identities.confers_nothing`).
    Listed, the ClusterRole would let the Slack identity act as a ServiceAccount (with its rights),
    a node, or whoever the authenticator reports under a look-alike name. Admission refuses them in
    a TeamOwnership; a file, or a team stored before the rule, may hold them."""
    spec = team.get("spec") or {}
    found = []
    for field in _APPROVER_FIELDS:
        for index, name in enumerate(spec.get(field) or []):
            if not isinstance(name, str) or not confers_nothing(name, group=False):
                continue
            where = f"spec.{field}[{index}]"
            own = is_kubernetes_own(name)
            found.append(
                f"{where} is {name}, a system: user: approvers are people"
                if own
                else f"{where} {name!r} {unreadable(name)}"
            )
    return found


def _what(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", dict: "a mapping", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def usernames(teams: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every user a TeamOwnership (a raw object) names as an approver or backup approver, sorted;
    never one that confers nothing (`identities.confers_nothing`: Kubernetes' own, or a name that reads
    as someone else's), whatever the input."""
    found: set[str] = set()
    for team in teams:
        spec = team.get("spec") or {}
        for field in _APPROVER_FIELDS:
            found.update(str(name) for name in spec.get(field) or [])
    # Such a name approves nothing; listed, the Slack endpoint could act as that ServiceAccount or node,
    # or as whoever holds the look-alike name.
    return sorted(name for name in found if name and not confers_nothing(name, group=False))


def impersonable(rules: Iterable[Mapping[str, Any]]) -> list[str] | None:
    """The users an identity may impersonate, sorted, as RBAC lists its rules (a SelfSubjectRulesReview's
    `resourceRules`: `apiGroups`, `resources`, `verbs`, `resourceNames`); None when a rule lets it
    impersonate any user (no `resourceNames`, as a ClusterRole rendered with an empty list would)."""
    found: set[str] = set()
    for rule in rules:
        if not (
            {"", "*"} & set(rule.get("apiGroups") or [])
            and {"users", "*"} & set(rule.get("resources") or [])
            and {"impersonate", "*"} & set(rule.get("verbs") or [])
        ):
            continue
        listed = rule.get("resourceNames") or []
        if not listed:
            return None
        found.update(str(name) for name in listed)
    return sorted(found)


def not_approvers(users: Iterable[str], teams: Iterable[Mapping[str, Any]]) -> list[str]:
    """Those of `users` (who the Slack identity may impersonate) whom no TeamOwnership (a raw object)
    names as an approver or backup approver, sorted: each must be taken out of its ClusterRole (and,
    with the chart, out of `slack.approvers`, which binds them to the approver ClusterRole too)."""
    return sorted(set(users) - set(usernames(teams)))


def group_only_teams(teams: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Teams that name approver groups (their members cannot decide from Slack): team -> groups."""
    found: dict[str, list[str]] = {}
    for team in teams:
        spec = team.get("spec") or {}
        groups = sorted({str(g) for field in _GROUP_FIELDS for g in spec.get(field) or []})
        if groups:
            found[str((team.get("metadata") or {}).get("name", ""))] = groups
    return found


def cluster_role(teams: Iterable[Mapping[str, Any]], name: str = ROLE_NAME) -> dict[str, Any]:
    """The impersonating identity's ClusterRole: impersonate exactly these users, nothing else.

    With no approver at all it has no rule: an empty `resourceNames` would mean *every* user.
    """
    users = usernames(teams)
    rules = [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": users}]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "jitaccess"}},
        "rules": rules if users else [],
    }

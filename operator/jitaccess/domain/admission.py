"""Admission decisions: who may create, decide on, revoke or touch the jitaccess objects.

A watch event never says who made a change; an admission review does (`request.userInfo`, which
the API server authenticated). So every rule about *who* lives here, as pure functions of the
operation, the stored object (`old`), the object about to be stored (`new`), the `Caller`, and what
the handler looked up. Each returns a `Refusal` (a message that names the field, the fix and who
may do it) or an `Admit` (the identity stamps to write onto the object).

Kubernetes asks twice, and so does jitaccess (`Phase`):

- MUTATE, before the schema is checked: refuse early, and compute the stamps (`spec.requester`,
  `spec.requesterGroups`, `approved-by`, `denied-by`, `revoked-by` and their `-groups`). A stamp
  the client wrote itself is refused, even one naming the caller.
- VALIDATE, on the final object, after the schema: the stamps must be there and be exactly the
  caller's (no later mutation slipped something in), and a new request must be valid against its
  Entitlement and eligible in Identity Center. Eligibility needs I/O, so the handler passes it in
  as a function.

Reasons people write (`spec.reason`, `decision-reason`, `revoke-reason`) are checked whenever
they are written, in both phases and whoever writes them: bounded, one line of plain text
(`jitaccess.domain.text`). Annotations have no schema, so this is the only check they get.

The operator itself is recognised by username (`OperatorIdentity`): only it may create or change
AccessGrants, write any `status`, or touch kopf's bookkeeping (annotations under
`kopf.zalando.org/`, and the finalizers of jitaccess and kopf) on any of the four kinds. On the
records (requests, grants, extensions) it alone sets finalizers of any kind and labels under
`jitaccess.dev/` (`review_record`), and only the requester or grantee and the owner team's
approvers change anything of one at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from pydantic import ValidationError

from jitaccess.api import audit, limits, names, wire
from jitaccess.api.models import (
    AccessRequest,
    BreakGlass,
    Entitlement,
    EntitlementSpec,
    TeamOwnershipSpec,
    invalid_field,
)
from jitaccess.domain import annotationkeys, identities, reasons, standing, text
from jitaccess.domain import approvals as approval_rules
from jitaccess.domain import breakglass as break_glass_rules
from jitaccess.domain import requests as request_rules
from jitaccess.domain.durations import format_duration, parse_duration
from jitaccess.domain.teams import GROUPS_SEPARATOR, Caller, groups_text, is_approver, may_approve
from jitaccess.errors import InvalidInput

Obj = Mapping[str, Any]
#: Asks Identity Center whether the requester may ask at all; why not, or None.
EligibilityCheck = Callable[[request_rules.ValidRequest], str | None]
#: Asks Identity Center for the UserId of a user name; a `Refusal` when there is none (or no answer).
UserIdLookup = Callable[[str], "str | Refusal"]
#: For a valid request that waits for an approver: why its requester may not add it to the requests
#: they already have waiting (`requests.waiting_problem`), or None (and then it counts as waiting).
WaitingCheck = Callable[[request_rules.ValidRequest], str | None]

APPROVED, DENIED = names.ANNOTATION_APPROVED, names.ANNOTATION_DENIED
APPROVED_BY, DENIED_BY = names.ANNOTATION_APPROVED_BY, names.ANNOTATION_DENIED_BY
APPROVED_BY_GROUPS, DENIED_BY_GROUPS = names.ANNOTATION_APPROVED_BY_GROUPS, names.ANNOTATION_DENIED_BY_GROUPS
DECISION_REASON = names.ANNOTATION_DECISION_REASON
REVOKED, REVOKED_BY, REVOKE_REASON = (
    names.ANNOTATION_REVOKED,
    names.ANNOTATION_REVOKED_BY,
    names.ANNOTATION_REVOKE_REASON,
)
KOPF_PREFIX = "kopf.zalando.org/"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# flag annotation -> (its stamps, the verb for messages)
_DECISIONS: dict[str, tuple[str, str, str]] = {
    APPROVED: (APPROVED_BY, APPROVED_BY_GROUPS, "approve"),
    DENIED: (DENIED_BY, DENIED_BY_GROUPS, "deny"),
}
REQUEST_STAMPS = (APPROVED_BY, APPROVED_BY_GROUPS, DENIED_BY, DENIED_BY_GROUPS)
#: Nothing of a decision may exist when a request is created.
DECISION_ANNOTATIONS = (
    APPROVED,
    DENIED,
    DECISION_REASON,
    *REQUEST_STAMPS,
    approval_rules.APPROVALS,
    *break_glass_rules.REVIEW_ANNOTATIONS,
)
#: The user's earlier break-glass requests (a listing), for the rate limit at creation.
EarlierBreakGlass = Callable[[str], "list[break_glass_rules.Earlier]"]
#: What a grantee or an approver may change on an AccessGrant (the rest is the operator's).
_REVOCATION_ANNOTATIONS = frozenset({REVOKED, REVOKE_REASON, REVOKED_BY, LAST_APPLIED})
#: A revocation's annotations, which also cancel an AccessRequest approved for a later start (`_cancellation`).
CANCEL_ANNOTATIONS = (REVOKED, REVOKE_REASON, REVOKED_BY)
#: Annotations that carry free text people write (any later one belongs here too).
REASON_ANNOTATIONS = (DECISION_REASON, REVOKE_REASON)
# Finalizers that mean "the operator still has to clean up" (kopf's own, jitaccess's): removing one
# by hand would skip the cleanup, e.g. leave an Identity Center membership behind.
_OPERATOR_FINALIZER_PREFIXES = (f"{names.GROUP}/", KOPF_PREFIX)

FORBIDDEN = 403
INVALID = 422


class Phase(Enum):
    MUTATE = "mutate"
    VALIDATE = "validate"


@dataclass(frozen=True)
class Refusal:
    """The change is refused; `message` is what the user reads after `admission webhook ... denied`."""

    message: str
    code: int = FORBIDDEN


@dataclass(frozen=True)
class Admit:
    """The change is allowed, with these identity stamps written onto it (MUTATE phase)."""

    spec: Mapping[str, Any] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: Annotations taken out again (an approval of several, counted in `jitaccess.dev/approvals`).
    removed: tuple[str, ...] = ()


Verdict = Refusal | Admit
ALLOW = Admit()


@dataclass(frozen=True)
class OperatorIdentity:
    """The usernames the operator acts as: its ServiceAccount, or whoever runs it locally."""

    usernames: frozenset[str]

    def includes(self, caller: Caller) -> bool:
        return caller.username in self.usernames


@dataclass(frozen=True)
class Responders:
    """The incident responders: members of the groups `JITACCESS_RESPONDER_GROUPS` names.

    In an incident they end access across every team: they may revoke any AccessGrant, deny any
    pending AccessRequest or AccessExtension and withdraw any request that has no access yet
    (pending, or approved for a start still to come), always with a reason where the object has one
    to record. They never give access or erase its record: no approval (of a request or of an
    extension), no break-glass review, no extension, no deletion of a grant or of a finished
    request. The webhook stamps them like anyone else (`revoked-by`, `denied-by`), so the audit
    trail says who acted.
    """

    groups: frozenset[str] = frozenset()

    def includes(self, caller: Caller) -> bool:
        return bool(self.groups & caller.groups)


NO_RESPONDERS = Responders()
#: What an incident responder may do, for refusals that tell one why not.
RESPONDER_MAY = (
    "incident responders may revoke any AccessGrant and deny any pending AccessRequest or AccessExtension (each "
    "with a reason), revoke a request approved and Scheduled (with a reason), and withdraw one whose own requester "
    "they are (`kubectl jit revoke --all`); they never approve, review break-glass, extend, or delete grants or "
    "finished requests"
)


def _as_responder(caller: Caller, responders: Responders) -> str:
    """A refusal's last words for a responder: what they may do instead; nothing for anyone else."""
    return f" ({caller.username} is an incident responder: {RESPONDER_MAY})" if responders.includes(caller) else ""


def caller_of(userinfo: Mapping[str, Any]) -> Caller:
    """The caller of an admission review, from the `userInfo` the API server authenticated."""
    return Caller(str(userinfo.get("username") or ""), frozenset(str(g) for g in userinfo.get("groups") or []))


# --- what every kind shares -----------------------------------------------------------------


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def _operator_finalizers(obj: Obj | None, stamped: frozenset[str] = frozenset()) -> list[str]:
    finalizers = (obj or {}).get("metadata", {}).get("finalizers") or []
    return sorted(f for f in finalizers if str(f).startswith(_OPERATOR_FINALIZER_PREFIXES) and f not in stamped)


def _stamped_finalizers(operation: str, held: bool) -> frozenset[str]:
    """What the operator's own webhook adds to a new request or extension (`held`) as it is
    created: `names.RECORDS_FINALIZER`, which holds a deleted one until its audit records are
    archived. Found on a create, it is the stamp's (or the same finalizer, asked for by its
    writer: it changes nothing, the operator removes it all the same); never on a change."""
    return frozenset({names.RECORDS_FINALIZER}) if held and operation == "CREATE" else frozenset()


def review_bookkeeping(
    operation: str,
    old: Obj | None,
    new: Obj | None,
    caller: Caller,
    operator: OperatorIdentity,
    *,
    held: bool = False,
) -> Refusal | None:
    """kopf's annotations and the operator's finalizers are the operator's alone, on every kind.

    With them a user could mark a handler as done (so it never runs) or drop the finalizer that
    makes the operator remove an Identity Center membership before a grant goes away. `held`: the
    kind is one the webhook gives `names.RECORDS_FINALIZER` at creation (`_stamped_finalizers`).
    """
    if operator.includes(caller) or operation not in ("CREATE", "UPDATE"):
        return None
    stamped = _stamped_finalizers(operation, held)
    before, after = wire.annotations_of(old), wire.annotations_of(new)
    touched = [k for k in _changed(before, after) if k.startswith(KOPF_PREFIX)]
    if touched:
        return Refusal(
            f"metadata.annotations {', '.join(touched)}: annotations under {KOPF_PREFIX} are the jitaccess "
            "operator's bookkeeping and only the operator may write them; leave them out of your change"
        )
    if _operator_finalizers(old) != _operator_finalizers(new, stamped):
        return Refusal(
            f"metadata.finalizers: {', '.join(_operator_finalizers(old) or _operator_finalizers(new, stamped))} "
            "belong to the jitaccess operator, which removes them itself once it has cleaned up (for a grant: "
            "once the Identity Center membership is gone); leave metadata.finalizers as they are. "
            f"To end a grant early, annotate it {REVOKED}=true"
        )
    return None


#: The garbage collector's own finalizers: the API server adds them on a DELETE that asks for them,
#: and the garbage collector removes them, under its own identity.
_GC_FINALIZERS = frozenset({"orphan", "foregroundDeletion"})


def _gc_finalizers_removed(old: Obj, new: Obj | None) -> bool:
    """Whether `new` is `old` less some of the garbage collector's finalizers, and nothing else
    that a decision could be made of (spec, labels, annotations)."""
    if new is None:
        return False
    before, after = (set(map(str, wire.metadata(o).get("finalizers") or [])) for o in (old, new))
    removed = before - after
    return (
        bool(removed)
        and removed <= _GC_FINALIZERS
        and after <= before
        and all(wire.metadata(old).get(k) == wire.metadata(new).get(k) for k in ("labels", "annotations"))
        and wire.spec(old) == wire.spec(new)
    )


def _finalizers(obj: Obj | None, stamped: frozenset[str] = frozenset()) -> list[str]:
    finalizers = map(str, (obj or {}).get("metadata", {}).get("finalizers") or [])
    return sorted(f for f in finalizers if f not in _GC_FINALIZERS and f not in stamped)


def review_record(
    operation: str,
    old: Obj | None,
    new: Obj | None,
    caller: Caller,
    operator: OperatorIdentity,
    *,
    held: bool = False,
) -> Refusal | None:
    """Finalizers, owner references and `jitaccess.dev/` labels on a record (AccessRequest,
    AccessGrant, AccessExtension) are the operator's alone, whatever their name; and what others
    leave in its labels and annotations is bounded (`_metadata_grown`).

    A finalizer of anyone else's keeps the record from ever going: a withdrawn request would stay,
    still counted as waiting for its requester, a revoked grant would stay and keep its name taken.
    Labels under `jitaccess.dev/` are what tools select records by, so a request labelled with
    another entitlement than its own would mislead them.
    """
    if operator.includes(caller) or operation not in ("CREATE", "UPDATE"):
        return None
    stamped = _stamped_finalizers(operation, held)
    if _finalizers(old) != _finalizers(new, stamped):
        return Refusal(
            f"metadata.finalizers {', '.join(sorted(set(_finalizers(old)) ^ set(_finalizers(new, stamped))))}: "
            "only the jitaccess operator sets finalizers on AccessRequests, AccessGrants and AccessExtensions "
            "(a finalizer of anyone else's would keep the record from being withdrawn, revoked or retired); leave "
            "metadata.finalizers out of your change"
        )
    before = ((old or {}).get("metadata") or {}).get("labels") or {}
    after = ((new or {}).get("metadata") or {}).get("labels") or {}
    touched = [k for k in _changed(before, after) if str(k).startswith(f"{names.GROUP}/")]
    if touched:
        return Refusal(
            f"metadata.labels {', '.join(touched)}: labels under {names.GROUP}/ are written only by the jitaccess "
            "operator (tools select records by them); use a label of your own prefix"
        )
    return _owners_added(old, new) or _metadata_grown(old, new)


def _owner_references(obj: Obj | None) -> list[str]:
    refs = ((obj or {}).get("metadata") or {}).get("ownerReferences") or []
    return [json.dumps(r, sort_keys=True) for r in refs if isinstance(r, Mapping)]


def _owners_added(old: Obj | None, new: Obj | None) -> Refusal | None:
    """Owner references on a record are the operator's: the deletion of an owner has the garbage
    collector delete the record, as the controller-manager's identity, which no rule of withdrawal,
    revocation or break-glass review would then hold (one taken away makes nothing worse)."""
    added = set(_owner_references(new)) - set(_owner_references(old))
    if not added:
        return None
    return Refusal(
        "metadata.ownerReferences: only the jitaccess operator sets owner references on AccessRequests, "
        "AccessGrants and AccessExtensions (an owner's deletion would have the garbage collector delete the "
        "record, past the rules on who may end it); leave metadata.ownerReferences out of your change"
    )


#: Annotations jitaccess itself defines: bounded where they are checked, so not counted against
#: `USER_METADATA_MAX_CHARACTERS` (a decision on a record already above it must still be possible).
_OWN_ANNOTATIONS = frozenset(v for k, v in vars(names).items() if k.startswith("ANNOTATION_") and isinstance(v, str))


def _user_metadata(obj: Obj | None) -> int:
    meta = (obj or {}).get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    counted = [*labels.items(), *((k, v) for k, v in annotations.items() if k not in _OWN_ANNOTATIONS)]
    return sum(len(str(k)) + len(str(v)) for k, v in counted)


def _metadata_grown(old: Obj | None, new: Obj | None) -> Refusal | None:
    """A write that leaves more than `USER_METADATA_MAX_CHARACTERS` in a record's labels and
    annotations is refused, unless it made them no larger (a record stored before the bound)."""
    size = _user_metadata(new)
    if size <= limits.USER_METADATA_MAX_CHARACTERS or size <= _user_metadata(old):
        return None
    return Refusal(
        f"metadata: labels and annotations of {size:,} characters; AccessRequests, AccessGrants and "
        f"AccessExtensions hold at most {limits.USER_METADATA_MAX_CHARACTERS:,} (the operator keeps a copy of them "
        "with each record, for 90 days): remove labels or annotations, or keep the data elsewhere and link to it"
    )


def review_withdrawn(old: Obj | None, new: Obj | None, caller: Caller, operator: OperatorIdentity) -> Refusal | None:
    """A request or extension being deleted (held by `names.RECORDS_FINALIZER` until its audit
    records are archived, which takes seconds) takes no decision or change from anyone but the
    operator: it was withdrawn, and nothing may be granted or extended by it any more. The
    garbage collector still removes its own finalizers (a `kubectl delete --cascade=foreground`
    added one): refused, the object would stay for good."""
    if old is None or operator.includes(caller) or not wire.deleting(old) or _gc_finalizers_removed(old, new):
        return None
    kind = str(old.get("kind") or "object")
    return Refusal(
        f"{kind} {wire.name_of(old)} was deleted at {wire.metadata(old).get('deletionTimestamp')} and stays only "
        f"until its audit records are archived: nothing on it can change any more, and it leads to nothing; "
        f"create a new {kind} if the access is still needed"
    )


def review_text(old: Obj | None, new: Obj | None) -> Refusal | None:
    """The reasons this change writes (new, or different from `old`) must be storable (`text.problem`)."""
    before, after = wire.annotations_of(old), wire.annotations_of(new)
    written = [("spec.reason", wire.spec(old).get("reason"), wire.spec(new).get("reason"))]
    written += [(f"metadata.annotations[{key}]", before.get(key), after.get(key)) for key in REASON_ANNOTATIONS]
    for where, was, value in written:
        # A reason that is not a string is the schema's to refuse; an unchanged one was checked when written.
        problem = text.problem(where, value) if isinstance(value, str) and value != was else None
        if problem is not None:
            return Refusal(problem, INVALID)
    return None


def review_annotation_keys(
    kind: str, operation: str, old: Obj | None, new: Obj | None, caller: Caller, operator: OperatorIdentity
) -> Refusal | None:
    """A `jitaccess.dev/` annotation `kind` has none of, written by anyone but the operator
    (`annotationkeys`: a misspelt decision would be ignored)."""
    if operator.includes(caller) or operation not in ("CREATE", "UPDATE"):
        return None
    message = annotationkeys.unknown_key(kind, old, new)
    return Refusal(message, INVALID) if message is not None else None


def review_catalog(
    operation: str,
    old: Obj | None,
    new: Obj | None,
    caller: Caller,
    *,
    operator: OperatorIdentity,
    catalogs: Iterable[Obj] = (),
    entitlements: Iterable[Obj] = (),
    resolved: Mapping[str, str] | None = None,
    limits: request_rules.Limits | None = None,
) -> Verdict:
    """TeamOwnership and Entitlement come from GitOps: any writer RBAC allows, except kopf's bookkeeping;
    an Entitlement's reason policy and durations must hold together (`_reason_policy`,
    `_duration_policy`), and no name may give more than it reads (`_approver_names`, `_policy_groups`,
    and an Entitlement's groups and permission set against the PermissionCatalogs and Entitlements
    stored, `catalogs` and `entitlements`, with the GroupIds `resolved` for group names:
    `_entitlement_group`)."""
    return (
        _operator_policy_write(operation, old, new, caller, operator)
        or review_bookkeeping(operation, old, new, caller, operator)
        or _entitlement_name(operation, new)
        or _reason_policy(new, old)
        or _duration_policy(new, old, limits)
        or _approver_names(new, old)
        or _policy_groups(new, old)
        or _entitlement_group(new, old, catalogs, entitlements, resolved)
        or ALLOW
    )


def stored_policy_refusal(obj: Obj, limits: request_rules.Limits | None) -> str | None:
    """Why admission would refuse this stored TeamOwnership or Entitlement were it written now, by the
    rules that need nothing but the object and the operator's `limits` (an Entitlement's own name,
    durations, names, groups: `_entitlement_name`, `_duration_policy`, `_approver_names`,
    `_policy_groups`), as a sentence that names the field, the
    value and the fix; None when it would admit it. One stored before those rules were (an upgrade)
    or while the webhooks were down is never written again by itself: its `Ready` says this, and the
    decisions count no name of Kubernetes' own in it meanwhile, nor one that reads as someone else's
    (`teams.conferring`)."""
    named = _entitlement_name("CREATE", obj)
    if named is not None:
        return (
            f"admission refuses the name {wire.name_of(obj)} now, and it was stored before it did (an upgrade, or "
            f"the webhooks were down): {named.message}. Its requests are refused meanwhile: create it again under "
            "a shorter name, then delete this one"
        )
    refusal = _duration_policy(obj, None, limits) or _approver_names(obj, None) or _policy_groups(obj, None)
    if refusal is None:
        return None
    return (
        f"admission refuses this spec now, and it was stored before it did (an upgrade, or the webhooks were "
        f"down): {refusal.message}. Until it is fixed, no group or user of Kubernetes' own (system:) it names "
        "counts for anyone, nor does a name that reads as another's (empty, padded, a look-alike)"
    )


def stored_group_refusal(
    obj: Obj, catalogs: Iterable[Obj], entitlements: Iterable[Obj], resolved: Mapping[str, str]
) -> str | None:
    """Why admission would refuse this stored Entitlement's groups or permission set now, given the
    PermissionCatalogs and Entitlements stored and the GroupIds Identity Center `resolved` their
    group names to (`_entitlement_group`), as a sentence that names the field, the other object and
    the fix; None when it would admit them. One stored while the webhooks were down, before an
    upgrade brought the rule, or naming by id a group the webhook knew only by name: its `Ready`
    says this, and meanwhile the drift scan removes nobody from a group people hold standing
    (`standing.standing_ids`), whichever Entitlement's group it also is. One whose grants would
    give access its owner team does not own (`standing.Problems.given_away`) says so first
    (`standing.GIVES_AWAY`): nobody is granted it meanwhile (`standing.refused_grants`); any other
    is granted as before."""
    problems = standing.problems(obj, catalogs, entitlements, resolved)
    found = problems.found
    if not found:
        return None
    stored = (
        "admission refuses this spec now, and it was stored before it did (an upgrade, the webhooks down, or a "
        f"group named by id that admission knew by name only): {'; '.join(found)}. Until it is fixed, no drift "
        "scan removes members of a group an Entitlement names as one people are in, nor of a catalog's baseline "
        "group"
    )
    if not problems.given_away:
        return f"{stored}; its grants are made as before: fix it before anyone asks for it"
    return (
        f"{standing.GIVES_AWAY}: {stored}; requests for it are refused, no grant of it begins, and those already "
        "running are not extended (they run out as approved)"
    )


def _operator_policy_write(
    operation: str, old: Obj | None, new: Obj | None, caller: Caller, operator: OperatorIdentity
) -> Refusal | None:
    """The operator never creates a TeamOwnership, Entitlement or PermissionCatalog, nor changes
    their spec (it writes their finalizers, kopf's annotations and status): such a write with its
    ServiceAccount's credentials is someone else holding them (a token read from the pod), who
    would otherwise rewrite who may have what with no check and no PolicyChanged line (the webhook
    is called for the operator's writes only when they do, `adapters.webhooks`). An operator that
    runs as a user, as a local run's does as the cluster's administrator, also writes the policy:
    its writes are checked and recorded as anyone's."""
    if not operator.includes(caller) or new is None or not caller.username.startswith("system:serviceaccount:"):
        return None
    if operation == "CREATE" or (operation == "UPDATE" and old is not None and wire.spec(old) != wire.spec(new)):
        return Refusal(
            f"{caller.username} is the jitaccess operator, which never creates a {new.get('kind', 'policy object')} "
            "nor changes its spec: policy comes from the GitOps repository, written by its own identity"
        )
    return None


#: The approver fields of a TeamOwnership: the users the Slack endpoint's identity may impersonate.
_APPROVER_FIELDS = ("approvers", "backupApprovers")
#: Its fields of user names, each written exactly as the authenticator reports it (`identities`).
_USER_FIELDS = ("members", *_APPROVER_FIELDS)
#: Every field of a policy kind that names Kubernetes groups, each of which confers power on its
#: members (membership of a team and its auto-approval, approval, on-call auto-approval,
#: break-glass), by kind: path -> the fix a refusal suggests. (`spec.requesterGroups` of requests
#: and extensions is the caller's own, stamped; the responder groups are the operator's setting.)
_GROUP_FIELDS: dict[str, dict[str, str]] = {
    names.TEAM_OWNERSHIP: {
        "memberGroups": "name the team's own groups",
        "approverGroups": "name the group of the team's approvers",
        "backupApproverGroups": "name the group of the backup approvers",
    },
    names.ENTITLEMENT: {
        "approval.autoApproveGroups": "name the on-call group",
        "breakGlass.groups": "name the group of the people who may break glass",
    },
}
#: Groups whose stamps are read back (split on commas): a TeamOwnership's approver groups.
_STAMPED_GROUP_FIELDS = ("approverGroups", "backupApproverGroups")


def _at(spec: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted `path` of a spec (None where a part is missing)."""
    node: Any = spec
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _policy_groups(new: Obj | None, old: Obj | None) -> Refusal | None:
    """Every group field of a TeamOwnership or an Entitlement (`_GROUP_FIELDS`) confers power on its
    members, so none may name a group of Kubernetes' own (`identities.stands_for`): `system:authenticated` as
    an Entitlement's autoApproveGroups auto-approved every logged-in user into production, and as
    its breakGlass.groups let anyone approve their own request. Checked when any of them is written
    (an object stored before is not held up by a change elsewhere)."""
    fields = _GROUP_FIELDS.get(str((new or {}).get("kind")))
    if new is None or fields is None:
        return None
    before, after = wire.spec(old), wire.spec(new)
    if old is not None and all(_at(before, k) == _at(after, k) for k in fields):
        return None
    named = [(f"spec.{key}[{i}]", str(g)) for key in fields for i, g in enumerate(_at(after, key) or [])]
    for where, group in named:
        problem = identities.problem(where, group, group=True)
        if problem is not None:
            return Refusal(problem, INVALID)
    twins = identities.case_twins(named)
    if twins is not None:
        return Refusal(twins, INVALID)
    for key, fix in fields.items():
        for group in map(str, _at(after, key) or []):
            who = identities.stands_for(group)
            if who is not None:
                return Refusal(f"spec.{key} names {group}, which stands for {who}: {fix}", INVALID)
        # Only approver groups are read back from a stamp (members' are matched as a list).
        split = [str(g) for g in (_at(after, key) or []) if GROUPS_SEPARATOR in str(g) and key in _STAMPED_GROUP_FIELDS]
        if split:
            return Refusal(
                f"spec.{key} names {', '.join(repr(g) for g in split)}: a group whose name holds a comma cannot be "
                "recorded in a decision's stamp (`approved-by-groups` lists groups separated by commas); name a "
                "group without one (an alias of it in your identity provider, or its members)",
                INVALID,
            )
    return None


def _approver_names(new: Obj | None, old: Obj | None) -> Refusal | None:
    """A TeamOwnership's members and approvers are written as the authenticator reports them, and
    read as what they are (`identities`: not empty, no padding, no look-alikes, no two differing
    only in case); its approvers are people: a `system:` name (a ServiceAccount, a node, the API
    server's own users) is refused when written. Approvers become the users the Slack endpoint's
    identity may impersonate (`kubectl jit rbac slack`, the chart's ClusterRole), and a team that
    named `system:serviceaccount:kube-system:...` there would hand that identity a controller's rights."""
    if new is None or new.get("kind") != names.TEAM_OWNERSHIP:
        return None
    before, after = wire.spec(old), wire.spec(new)
    if old is not None and all(before.get(k) == after.get(k) for k in _USER_FIELDS):
        return None
    named = [(f"spec.{key}[{i}]", str(n)) for key in _USER_FIELDS for i, n in enumerate(after.get(key) or [])]
    for where, name in named:
        problem = identities.problem(where, name)
        if problem is not None:
            return Refusal(problem, INVALID)
    twins = identities.case_twins(named)
    if twins is not None:
        return Refusal(twins, INVALID)
    for key in _APPROVER_FIELDS:
        system = [str(n) for n in (after.get(key) or []) if identities.is_kubernetes_own(str(n))]
        if system:
            return Refusal(
                f"spec.{key} names {', '.join(system)}: approvers are people, and a system: user (a "
                "ServiceAccount, a node) cannot be one; name the people who decide, or their group in "
                f"spec.{'approverGroups' if key == 'approvers' else 'backupApproverGroups'}",
                INVALID,
            )
    return None


#: An Entitlement's fields `_entitlement_group` judges: its group or permission set, whose team it
#: is, and the groups it names as ones people are in.
_GROUP_FIELDS_JUDGED = ("owner", "identityCenter", *standing.STANDING_FIELDS)


def entitlement_groups_written(old: Obj | None, new: Obj | None) -> bool:
    """Whether this write creates an Entitlement or changes a field `_entitlement_group` judges
    (an object stored before is not held up by a change elsewhere, nor by the operator's writes)."""
    if new is None or new.get("kind") != names.ENTITLEMENT:
        return False
    before, after = wire.spec(old), wire.spec(new)
    return old is None or any(_at(before, path) != _at(after, path) for path in _GROUP_FIELDS_JUDGED)


def _entitlement_group(
    new: Obj | None,
    old: Obj | None,
    catalogs: Iterable[Obj],
    entitlements: Iterable[Obj] = (),
    resolved: Mapping[str, str] | None = None,
) -> Refusal | None:
    """An Entitlement's group is one grants fill: never a catalog's standing baseline group, nor
    another team's production group, nor a group any Entitlement (itself too) names as one people
    are in; the groups it names as such are none that grants fill; in account-assignment mode its
    permission set is its owner team's (`standing.entitlement_problems`); and no GroupId is written
    where a group's DisplayName goes (`standing.ids_for_names`). Checked when one of those fields is
    written (`entitlement_groups_written`)."""
    if not entitlement_groups_written(old, new):
        return None
    found = standing.ids_for_names(new or {}, old)
    found += standing.entitlement_problems(new or {}, catalogs, entitlements, resolved)
    return Refusal("; ".join(found), INVALID) if found else None


def _entitlement_name(operation: str, new: Obj | None) -> Refusal | None:
    """An Entitlement named longer than a label value can be (`request_rules.entitlement_name_problem`):
    no grant of it could be created. Checked at creation, as a name never changes; one stored before
    the rule (an upgrade, the webhooks down) stays writable, and requests for it are refused, saying why."""
    if operation != "CREATE" or new is None or new.get("kind") != names.ENTITLEMENT:
        return None
    problem = request_rules.entitlement_name_problem(wire.name_of(new))
    if problem is None:
        return None
    return Refusal(f"metadata.{problem}: name it in {limits.LABEL_VALUE_MAX_LENGTH} characters or fewer", INVALID)


def _reason_policy(new: Obj | None, old: Obj | None) -> Refusal | None:
    """An Entitlement whose reasonPattern does not compile, or whose reasonExample fails it, is refused
    when either is written (`reasons.entitlement_problem`): requesters are shown both."""
    if new is None or new.get("kind") != names.ENTITLEMENT:
        return None
    before, after = wire.spec(old), wire.spec(new)
    if old is not None and all(before.get(k) == after.get(k) for k in (reasons.PATTERN, reasons.EXAMPLE)):
        return None  # the operator's own writes, and GitOps changes elsewhere, are not held up by it
    problem = reasons.entitlement_problem(after)
    return Refusal(problem, INVALID) if problem is not None else None


#: An Entitlement's durations (wire name, the model's default): a request naming none gets the first.
_DURATIONS = tuple(
    (str(EntitlementSpec.model_fields[field].alias), str(EntitlementSpec.model_fields[field].default))
    for field in ("default_duration", "max_duration")
)


def _duration_policy(new: Obj | None, old: Obj | None, limits: request_rules.Limits | None = None) -> Refusal | None:
    """Every duration a TeamOwnership or an Entitlement sets must be one the operator can use, and
    is checked when written: zero and beyond ten years are refused (`parse_duration`), as is an
    Entitlement whose defaultDuration is above its maxDuration (every request naming no duration
    would be refused, blaming a duration its requester never gave), or whose maxDuration,
    defaultDuration or breakGlass.maxDuration is below the operator's minimum (`limits`,
    JITACCESS_MIN_DURATION_SECONDS: no request, none naming no duration, or no break-glass request
    could ever be granted, yet the Entitlement was Ready). Admitted, a zero escalateAfter or
    break-glass reviewWithin made every such request end Invalid after it was admitted, in the
    middle of an incident for break-glass. (The form is the schema's.)"""
    if new is None or new.get("kind") not in (names.ENTITLEMENT, names.TEAM_OWNERSHIP):
        return None
    fields = _duration_fields(new)
    if old is not None and fields == _duration_fields(old):
        return None  # the operator's own writes, and GitOps changes elsewhere, are not held up by it
    try:
        parsed = {path: parse_duration(text, path) for path, text in fields.items()}
    except InvalidInput as exc:
        return Refusal(str(exc), INVALID)
    if new.get("kind") != names.ENTITLEMENT:
        return None
    default, most = (parsed[f"spec.{k}"] for k, _ in _DURATIONS)
    short = _below_minimum(parsed, limits)
    if short is not None:
        return short
    if default > most:
        return Refusal(
            f"spec.defaultDuration {format_duration(default)} is above spec.maxDuration {format_duration(most)}: every "
            "request that names no duration would be refused; make defaultDuration at most maxDuration",
            INVALID,
        )
    return None


#: What an Entitlement's duration below the operator's minimum would leave impossible, by path.
_BELOW_MINIMUM = {
    "spec.maxDuration": "no request could ever be granted",
    "spec.defaultDuration": "every request that names no duration would be refused",
    "spec.breakGlass.maxDuration": "no break-glass request could ever be granted",
}


def _below_minimum(parsed: Mapping[str, timedelta], limits: request_rules.Limits | None) -> Refusal | None:
    """The first of an Entitlement's durations below the operator's minimum, refused."""
    if limits is None:
        return None
    least = limits.min_duration
    for path, impossible in _BELOW_MINIMUM.items():
        if path in parsed and parsed[path] < least:
            return Refusal(
                f"{path} {format_duration(parsed[path])} is below the operator's minimum {format_duration(least)} "
                f"(JITACCESS_MIN_DURATION_SECONDS): {impossible}; make it at least {format_duration(least)}",
                INVALID,
            )
    return None


def _duration_fields(obj: Obj) -> dict[str, str]:
    """The durations an Entitlement or a TeamOwnership sets (path -> text), defaults filled in."""
    spec = wire.spec(obj)
    if obj.get("kind") == names.TEAM_OWNERSHIP:
        return {"spec.escalateAfter": str(spec["escalateAfter"])} if spec.get("escalateAfter") else {}
    fields = {f"spec.{k}": str(spec.get(k) or d) for k, d in _DURATIONS}
    glass = spec.get("breakGlass")
    if isinstance(glass, Mapping):
        for key, model_field in (("maxDuration", "max_duration"), ("reviewWithin", "review_within")):
            fields[f"spec.breakGlass.{key}"] = str(glass.get(key) or BreakGlass.model_fields[model_field].default)
    return fields


def review_status(kind: str, caller: Caller, *, operator: OperatorIdentity) -> Verdict:
    """Status is the operator's record of what happened; nobody else writes it (RBAC says so too)."""
    if operator.includes(caller):
        return ALLOW
    return Refusal(
        f"{kind}.status is written only by the jitaccess operator, which records there what it did; "
        f"{caller.username} may not change it (to decide on a request or revoke a grant, set its annotations)"
    )


# --- AccessRequest --------------------------------------------------------------------------


def review_request(
    operation: str,
    old: Obj | None,
    new: Obj | None,
    caller: Caller,
    *,
    operator: OperatorIdentity,
    entitlement: Entitlement | None,
    team: TeamOwnershipSpec | None,
    limits: request_rules.Limits,
    phase: Phase,
    now: datetime,
    eligibility: EligibilityCheck | None = None,
    user_id: UserIdLookup | None = None,
    earlier_break_glass: EarlierBreakGlass | None = None,
    waiting: WaitingCheck | None = None,
    responders: Responders = NO_RESPONDERS,
    reviewers: TeamOwnershipSpec | None = None,
    gone: Mapping[str, str] = approval_rules.NOBODY_GONE,
) -> Verdict:
    """CREATE stamps the requester and checks the request; UPDATE takes a decision from an approver
    (or a denial from an incident responder), until the request's deadline (`now` is the API
    server's moment of the write, near enough); DELETE is refused while the request's access has
    not ended, and otherwise allowed to the requester (a pending or Scheduled request), the
    `responders` (a Scheduled one) and the approvers of the owner team (a Scheduled or finished
    one): someone else's request awaiting a decision is denied, which names who and why.

    `user_id` resolves the caller's Identity Center UserId at CREATE, stamped as
    `spec.requesterUserId`: the person the request is for, whatever later happens to the user name.
    `reviewers`: the team whose approvers review a break-glass request, when not `team` (the one
    that owned the Entitlement when the request was taken up, `status.ownerTeam`). `gone`: the
    stamped approvers whose Identity Center account is disabled or deleted, with why, asked by the
    handler (`handlers.eligibility.approvers_gone`): their approvals no longer count.
    """
    refusal = (
        review_bookkeeping(operation, old, new, caller, operator, held=True)
        or review_record(operation, old, new, caller, operator, held=True)
        or review_text(old, new)
        or review_annotation_keys(names.ACCESS_REQUEST, operation, old, new, caller, operator)
    )
    if refusal is not None:
        return refusal
    if operation == "CREATE" and new is not None:
        created = _request_created(new, caller, entitlement, team, limits, phase, eligibility, user_id, waiting)
        return _break_glass_rate(created, new, entitlement, caller, now, earlier_break_glass)
    if operation == "DELETE" and old is not None:
        return _request_deleted(old, caller, operator, team, responders)
    if operation == "UPDATE" and old is not None and new is not None:
        escalation = _escalation(old, entitlement, team)
        if operator.includes(caller):
            verdict = _spec_changed(old, new) or _request_updated(
                old, new, caller, entitlement, team, phase, gone=gone, escalation=escalation, now=now
            )
        else:
            verdict = review_withdrawn(old, new, caller, operator) or decision_update(
                old,
                new,
                caller,
                entitlement,
                team,
                phase,
                responders=responders,
                reviewers=reviewers,
                gone=gone,
                escalation=escalation,
                now=now,
            )
        # A decision arriving at or after the deadline is too late, whether or not the operator's
        # timer has declared the request TimedOut yet; a cancel (`revoked-by`) ends an approved
        # request, which may wait for its start well past that deadline.
        if isinstance(verdict, Admit) and set(verdict.annotations) - {REVOKED_BY}:
            return _too_late(old, limits, now) or verdict
        return verdict
    return ALLOW


def _escalation(old: Obj, entitlement: Entitlement | None, team: TeamOwnershipSpec | None) -> request_rules.Escalation:
    """When the stored request counts as escalated, as the operator counts it
    (`request_rules.Escalation`): against its live owner team. An `escalateAfter` the operator
    cannot read (stored before admission checked it) leaves the recorded escalation alone: the
    operator ends such a request `Invalid`."""
    if entitlement is None or team is None:
        return request_rules.NEVER_ESCALATES
    owner = entitlement.spec.owner
    try:
        return request_rules.escalation_of_stored(old, team.escalate_after, owner)
    except InvalidInput:
        return request_rules.escalation_of_stored(old, None, owner)


def _break_glass_rate(
    verdict: Verdict,
    new: Obj,
    entitlement: Entitlement | None,
    caller: Caller,
    now: datetime,
    earlier: EarlierBreakGlass | None,
) -> Verdict:
    """A valid break-glass request beyond the entitlement's `perUserPerDay` is refused (VALIDATE,
    where `earlier` lists the user's break-glass requests)."""
    if not isinstance(verdict, Admit) or earlier is None or entitlement is None:
        return verdict
    rules = entitlement.spec.break_glass
    if rules is None or not break_glass_rules.is_break_glass(new):
        return verdict
    problem = break_glass_rules.rate_problem(rules, caller.username, earlier(caller.username), at=now)
    return Refusal(problem) if problem is not None else verdict


def _too_late(old: Obj, limits: request_rules.Limits, now: datetime) -> Refusal | None:
    stamp = wire.metadata(old).get("creationTimestamp")
    created = datetime.fromisoformat(stamp) if isinstance(stamp, str) and stamp else None
    deadline = request_rules.decision_deadline(created, limits)
    if deadline is None or now < deadline:
        return None
    return Refusal(
        f"this request timed out at {deadline.isoformat()} (nobody decided within the pending timeout of "
        f"{format_duration(limits.pending_timeout)}), so it can no longer be approved or denied: "
        "ask the requester to create a new one"
    )


def _request_created(
    new: Obj,
    caller: Caller,
    entitlement: Entitlement | None,
    team: TeamOwnershipSpec | None,
    limits: request_rules.Limits,
    phase: Phase,
    eligibility: EligibilityCheck | None,
    user_id: UserIdLookup | None,
    waiting: WaitingCheck | None = None,
) -> Verdict:
    present = [k for k in DECISION_ANNOTATIONS if k in wire.annotations_of(new)]
    if present:
        return Refusal(
            f"metadata.annotations {', '.join(present)}: a request cannot be created already decided; "
            "remove them and create it again. Once it exists, an approver of the entitlement's owner team "
            f"decides with `kubectl annotate accessrequest NAME {APPROVED}=true` (or {DENIED}=true)"
        )
    spec = new.get("spec") or {}
    requester = spec.get("requester")
    if requester not in (None, "", caller.username):
        return Refusal(
            f"spec.requester is {requester!r}, but you are authenticated as {caller.username!r}: a request is "
            "always for the user who creates it; remove spec.requester (jitaccess fills it in). "
            f"If {requester} needs access, they create the request themselves"
        )
    groups = spec.get("requesterGroups")
    wanted = sorted(caller.groups)
    if groups not in (None, []) and (not isinstance(groups, list) or sorted(set(map(str, groups))) != wanted):
        return Refusal(
            f"spec.requesterGroups is {groups!r}, but the API server authenticated you with the groups "
            f"{wanted!r}: remove spec.requesterGroups (jitaccess fills it in from your authenticated identity)"
        )
    stamped_id = spec.get("requesterUserId")
    if phase is Phase.MUTATE and stamped_id not in (None, ""):
        return Refusal(
            f"spec.requesterUserId is {stamped_id!r}: it is the Identity Center UserId jitaccess looks up for "
            "the authenticated caller, never set by the client; remove it"
        )
    resolved = user_id(caller.username) if user_id is not None else None
    if isinstance(resolved, Refusal):
        return resolved
    if phase is Phase.MUTATE:
        stamps = {"requester": caller.username, "requesterGroups": wanted}
        return Admit(spec=stamps if resolved is None else {**stamps, "requesterUserId": resolved})
    if requester != caller.username or groups != wanted:
        return _not_stamped("spec.requester and spec.requesterGroups")
    if resolved is not None and stamped_id != resolved:
        return _not_stamped("spec.requesterUserId")
    return _request_valid(new, team, entitlement, limits, eligibility, waiting)


def _request_deleted(
    old: Obj,
    caller: Caller,
    operator: OperatorIdentity,
    team: TeamOwnershipSpec | None,
    responders: Responders = NO_RESPONDERS,
) -> Verdict:
    """A request is the audit record of the access it led to: it goes only once that access has ended.

    A pending request may be withdrawn by its requester; an incident responder or an approver of
    the owner team denies one still awaiting a decision instead (`_undecided_deleted`), and revokes
    one approved for a later start (`Scheduled`: `_scheduled_deleted`), which they may delete once
    revoked; a finished one deleted by such an
    approver (the operator retires them itself after the retention period). Nobody else: RBAC lets
    every requester delete requests, so that they can withdraw their own.
    """
    if operator.includes(caller):
        return ALLOW
    grant = request_rules.access_not_ended(old)
    # A request approved for a start still to come has no access yet: it may be withdrawn as a pending one.
    if grant is None or wire.ready_reason(old) == names.SCHEDULED:
        return _request_withdrawn(old, caller, team, responders)
    responder = (
        f" ({caller.username} is an incident responder: revoke its grant, `kubectl jit revoke {wire.name_of(old)} "
        f'--reason "..."{_pinning(old)}`; the request stays as the record of that access)'
        if responders.includes(caller)
        else ""
    )
    return Refusal(
        f"AccessRequest {wire.name_of(old)} is the record of access that has not ended yet (its AccessGrant "
        f"{grant}; the request is {wire.ready_reason(old)}): deleting it would drop the record while the access "
        f"remains. End the access first, with `kubectl jit revoke {wire.name_of(old)}{_pinning(old)}` (the grantee or "
        f"an approver of the owner team) or "
        f"`kubectl annotate accessgrant {grant} {REVOKED}=true`; "
        f"then the request may be deleted{responder}"
    )


def _request_withdrawn(
    old: Obj, caller: Caller, team: TeamOwnershipSpec | None, responders: Responders = NO_RESPONDERS
) -> Verdict:
    """A request with no access running: who may delete it (see `_request_deleted`). An incident
    responder withdraws one still to be decided or approved for a later start (`Scheduled`), of any
    team: the access it would give has not begun."""
    spec, name = old.get("spec") or {}, wire.name_of(old)
    requester = str(spec.get("requester") or "")
    if spec.get("breakGlass") and wire.is_true(old, names.APPROVED):
        refusal = _break_glass_kept(old, caller, requester)
        if refusal is not None:
            return refusal
    if team is not None and is_approver(team, caller):
        return _undecided_deleted(old, caller, team) or _scheduled_deleted(old, caller) or ALLOW
    reason = wire.ready_reason(old)
    pending = reason not in names.REQUEST_FINISHED and not wire.is_true(old, names.DENIED)
    if pending and caller.username == requester:
        return ALLOW
    if pending and responders.includes(caller):
        return _undecided_deleted(old, caller, team) or _scheduled_deleted(old, caller) or ALLOW
    approvers = "an approver of its owner team" + (f" ({request_rules.approvers_text(team, False)})" if team else "")
    if pending and reason == names.SCHEDULED:
        return Refusal(
            f"AccessRequest {name} is {requester}'s request, approved and Scheduled: only {requester} may withdraw it "
            f"(`kubectl jit withdraw {name}`), or {approvers} or an incident responder revoke it "
            f"(`kubectl jit revoke {name} --reason '...'{_pinning(old)}`); {caller.username} may not"
        )
    if pending:
        return Refusal(
            f"AccessRequest {name} is {requester}'s pending request: only {requester} may withdraw it "
            f"(`kubectl jit withdraw {name}`), or {approvers} deny it; {caller.username} may not"
        )
    return Refusal(
        f"AccessRequest {name} is finished ({reason or names.DENIED}): it is the audit record of that outcome, "
        "kept until the operator retires it after the retention period; only "
        f"{approvers} may delete it earlier, and {caller.username} may not{_as_responder(caller, responders)}"
    )


def _undecided_deleted(old: Obj, caller: Caller, team: TeamOwnershipSpec | None) -> Refusal | None:
    """Someone else's request that still awaits a decision is denied, never deleted: a deletion
    leaves no stamp (the object does not say who deleted it), so its `withdrawn` record would name
    nobody and read as its requester's own withdrawal; a denial is stamped (`denied-by`) and carries
    the decider's reason into every record. One approved (`Scheduled` for a later start) can no
    longer be denied: it is revoked instead (`_scheduled_deleted`). Without its owner team nobody
    can deny it either."""
    requester = str(wire.spec(old).get("requester") or "")
    annotations = wire.annotations_of(old)
    decided = APPROVED_BY in annotations or DENIED_BY in annotations or _decided_or_finished(old) is not None
    if caller.username == requester or team is None or decided or wire.ready_reason(old) == names.SCHEDULED:
        return None
    name = wire.name_of(old)
    return Refusal(
        f"AccessRequest {name} is {requester}'s request, still awaiting a decision: only {requester} withdraws it, "
        f"and {caller.username} may not delete it, as a deletion leaves no {DENIED_BY} stamp and no reason (its "
        f"withdrawn record would read as {requester}'s own withdrawal). Deny it instead, which names you and your "
        f"reason in its records: `kubectl jit deny {name} --reason '...'` (or `kubectl annotate accessrequest {name} "
        f"{DENIED}=true {DECISION_REASON}='...'`); once denied, an approver of its owner team may delete it"
    )


def _scheduled_deleted(old: Obj, caller: Caller) -> Refusal | None:
    """Someone else's request approved for a later start (`Scheduled`) is cancelled, never
    deleted, as a live grant is revoked (`_live_grant_deleted`): a deletion leaves no stamp, so its
    `withdrawn` record would name nobody and no reason; a cancel (`jitaccess.dev/revoked=true`,
    `_cancellation`) is stamped `revoked-by` and carries the reason into every record. Once the
    operator has ended it `Revoked` (seconds after the stamp), an approver of the owner team may
    delete it: deleted before, it would still be recorded as withdrawn by nobody."""
    requester = str(wire.spec(old).get("requester") or "")
    if caller.username == requester or wire.ready_reason(old) != names.SCHEDULED:
        return None
    name, revoker = wire.name_of(old), wire.annotations_of(old).get(REVOKED_BY)
    if revoker:
        return Refusal(
            f"AccessRequest {name} was revoked by {revoker}, and the jitaccess operator has not ended it yet (it is "
            f"still Scheduled): delete it once it is Revoked (seconds), so that its records say who ended it and why"
        )
    return Refusal(
        f"AccessRequest {name} is {requester}'s request, approved and Scheduled for a later start: only {requester} "
        f"withdraws it, and {caller.username} may not delete it, as a deletion leaves no {REVOKED_BY} stamp and no "
        f"reason (its withdrawn record would name nobody). Revoke it instead, which ends it before it starts and "
        f"names you and your reason in its records: `kubectl jit revoke {name} --reason '...'{_pinning(old)}` (or "
        f"`kubectl annotate accessrequest {name} {REVOKED}=true {REVOKE_REASON}='...'`); once revoked, an approver "
        "of its owner team may delete it"
    )


def _break_glass_kept(old: Obj, caller: Caller, requester: str) -> Refusal | None:
    """A break-glass request is the record its review and the daily limit read (the user's
    break-glass requests of the last day are counted from the stored ones): its own requester
    never deletes it, even one who approves for the owner team, and nobody does before its review."""
    name = wire.name_of(old)
    if caller.username == requester:
        return Refusal(
            f"AccessRequest {name} is your break-glass request: it stays as the record of that access, for its "
            "review by the owner team and your daily break-glass limit; the operator retires it after the "
            "retention period"
        )
    if not wire.is_true(old, names.REVIEWED):
        command = break_glass_rules.review_command(name, wire.metadata(old).get("uid"))
        return Refusal(
            f"AccessRequest {name} is a break-glass request not reviewed yet: review it first "
            f"(`{command}`, an approver of the owner team other than {requester}); "
            "an unreviewed one is kept"
        )
    return None


def _request_valid(
    new: Obj,
    team: TeamOwnershipSpec | None,
    entitlement: Entitlement | None,
    limits: request_rules.Limits,
    eligibility: EligibilityCheck | None,
    waiting: WaitingCheck | None = None,
) -> Verdict:
    """The checks the operator would make, made before the object exists (so `--dry-run=server` tells);
    and, last, whether a request that waits for an approver fits beside the requester's others."""
    try:
        request = AccessRequest.model_validate(dict(new))
        valid = request_rules.validate(request, entitlement, team, limits)
        waits = request_rules.route(valid) is request_rules.Route.NEEDS_APPROVAL and not valid.break_glass
        problem = eligibility(valid) if eligibility is not None else None
    except ValidationError as exc:
        where, message = invalid_field(exc)
        return Refusal(f"{where} {message}", INVALID)
    except InvalidInput as exc:
        return Refusal(str(exc), INVALID)
    if problem is not None:
        # A disabled account is enabled again, or stays a leaver's; a missing group is joined.
        fix = "enable your account" if problem.endswith(request_rules.DISABLED) else "add you"
        return Refusal(f"{problem}: ask your identity team to {fix}, then request again")
    # Asked last, of a request admitted in every other way: a yes counts it as waiting at once.
    crowded = waiting(valid) if waits and waiting is not None else None
    return Refusal(crowded) if crowded is not None else ALLOW


def _as_stamped(verdict: Verdict, phase: Phase, added: Mapping[str, str], what: str) -> Verdict:
    """At VALIDATE, an admitted change must carry exactly the annotations MUTATE stamped (`added`:
    those the final object has and the stored one had not)."""
    if phase is Phase.VALIDATE and isinstance(verdict, Admit) and added != dict(verdict.annotations):
        return _not_stamped(what)
    return verdict


def _not_stamped(what: str) -> Refusal:
    return Refusal(
        f"{what} must be exactly what the jitaccess mutating webhook stamped from the authenticated caller, "
        "and it is not (is the MutatingWebhookConfiguration jitaccess.dev installed, or did another webhook "
        "change the object after it?): ask the cluster administrators",
        INVALID,
    )


def name_held_by_grant(name: str, grant: Obj | None) -> Refusal | None:
    """A new request named like an AccessGrant that is already stored (an earlier request's, kept
    after that request went: retention keeps grants as records). A request's grant takes its name,
    so the two would share one: the operator, finding the name taken, fails the request once
    approved (an approval that gives nothing), while `kubectl jit status NAME` shows the earlier
    grant, its user and its end, as this request's, and `kubectl jit revoke NAME` finds that grant
    ended and refuses to revoke this request when it waits for its start (`Scheduled`); and once
    retention deletes that grant, the start grants it after all."""
    if grant is None:
        return None
    spec = wire.spec(grant)
    state = wire.ready_reason(grant) or "being provisioned"
    return Refusal(
        f"metadata.name: {name} is the name of AccessGrant {name} of an earlier request ({spec.get('user')}, "
        f"{spec.get('entitlement')}, {state}), and a request's grant takes the request's name, so this request "
        "would be approved for nothing and taken for that grant: choose another name, or let the API server "
        "choose one (metadata.generateName, as `kubectl jit request` does)"
    )


def decision_update(
    old: Obj,
    new: Obj,
    caller: Caller,
    entitlement: Entitlement | None,
    team: TeamOwnershipSpec | None,
    phase: Phase,
    *,
    responders: Responders = NO_RESPONDERS,
    reviewers: TeamOwnershipSpec | None = None,
    gone: Mapping[str, str] = approval_rules.NOBODY_GONE,
    escalation: request_rules.Escalation = request_rules.NEVER_ESCALATES,
    now: datetime | None = None,
) -> Verdict:
    """An UPDATE of an object decided as a request is (an AccessRequest, an AccessExtension), by
    anyone but the operator: spec immutable, the stamps the webhook's alone, who may approve or
    deny, and who may change anything else of it. `responders` may deny either, never approve;
    `reviewers` (default: `team`) review a break-glass request; `gone`: as `review_request`'s;
    `escalation`: when a request counts as escalated (an extension never does), judged at `now`."""
    # The spec first: a change of spec.entitlement makes `team` another entitlement's owner team.
    return (
        _spec_changed(old, new)
        or _others_change(old, new, caller, team)
        or _request_updated(
            old, new, caller, entitlement, team, phase, responders, reviewers, gone, escalation=escalation, now=now
        )
    )


@dataclass(frozen=True)
class _Change:
    """An update of a request's (or an extension's) annotations, as each of its checks reads it
    (`_cancellation`, `_reviewed`, `_approvals_changed`, `_decision`): the stored object and its
    annotations before and after, who writes them, the Entitlement and owner team they are judged
    against, the admission phase, the incident responders, the approvers `gone` from Identity
    Center (`review_request`), and when the request counts as escalated (`escalation`), judged at
    `now` (the API server's moment of the write)."""

    old: Obj
    before: Mapping[str, str]
    after: Mapping[str, str]
    caller: Caller
    entitlement: Entitlement | None
    team: TeamOwnershipSpec | None
    phase: Phase
    responders: Responders
    gone: Mapping[str, str]
    escalation: request_rules.Escalation = request_rules.NEVER_ESCALATES
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def escalated(self) -> bool:
        """Whether the request has escalated as the decision is written: its backup approvers may decide."""
        return self.escalation.by(self.now)


def _request_updated(
    old: Obj,
    new: Obj,
    caller: Caller,
    entitlement: Entitlement | None,
    team: TeamOwnershipSpec | None,
    phase: Phase,
    responders: Responders = NO_RESPONDERS,
    reviewers: TeamOwnershipSpec | None = None,
    gone: Mapping[str, str] = approval_rules.NOBODY_GONE,
    *,
    escalation: request_rules.Escalation = request_rules.NEVER_ESCALATES,
    now: datetime | None = None,
) -> Verdict:
    """The annotations' part of an update (the spec is checked unchanged before it)."""
    before, after = wire.annotations_of(old), wire.annotations_of(new)
    for key in REQUEST_STAMPS:
        if before.get(key) != after.get(key) and (phase is Phase.MUTATE or key in before):
            return Refusal(
                f"metadata.annotations[{key}] is written only by the jitaccess admission webhook, from the "
                "identity the API server authenticated, and never changes afterwards: leave it out of your "
                f"change. To decide, set {APPROVED}=true or {DENIED}=true"
            )
    change = _Change(
        old, before, after, caller, entitlement, team, phase, responders, gone, escalation, now or datetime.now(UTC)
    )
    cancelled = _cancellation(change)
    if cancelled is not None:
        return cancelled
    reviewed = _reviewed(change, reviewers or team)
    if reviewed is not None:
        return reviewed
    verdict = _approvals_changed(change) or _decision(change)
    added = {
        k: after[k] for k in (*REQUEST_STAMPS, approval_rules.APPROVALS) if k in after and after[k] != before.get(k)
    }
    return _as_stamped(verdict, phase, added, f"metadata.annotations {', '.join(sorted(added) or REQUEST_STAMPS[:1])}")


def _spec_changed(old: Obj, new: Obj) -> Refusal | None:
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    if old_spec == new_spec:
        return None
    fields = ", ".join(f"spec.{k}" for k in _changed(old_spec, new_spec))
    return Refusal(
        f"spec is immutable once a request is created ({fields} would change): create a new AccessRequest instead",
        INVALID,
    )


def _others_change(old: Obj, new: Obj, caller: Caller, team: TeamOwnershipSpec | None) -> Refusal | None:
    """Labels and annotations besides a decision's are changed only by the requester and the owner
    team's approvers: RBAC lets every approver patch every request (they decide for their own
    team), and the webhook is what tells the teams apart."""
    requester = str(wire.spec(old).get("requester") or "")
    if caller.username == requester or (team is not None and is_approver(team, caller)):
        return None
    labels = [
        f"label {k}"
        for k in _changed(
            ((old.get("metadata") or {}).get("labels")) or {}, ((new.get("metadata") or {}).get("labels")) or {}
        )
    ]
    annotations = _changed(wire.annotations_of(old), wire.annotations_of(new))
    # kubectl apply's record goes with a decision applied, whose rules then say who may decide.
    decision = [k for k in annotations if k in DECISION_ANNOTATIONS or k in CANCEL_ANNOTATIONS]
    ignored = {*DECISION_ANNOTATIONS, *CANCEL_ANNOTATIONS, *([LAST_APPLIED] if decision else [])}
    others = labels + [f"annotation {k}" for k in annotations if k not in ignored]
    if not others:
        return None
    return Refusal(
        f"AccessRequest {wire.name_of(old)} is {requester or 'its requester'}'s: only they or an approver of its owner "
        f"team{_approvers_suffix(team)} may change it ({', '.join(others)}); {caller.username} may not"
    )


def _reviewed(change: _Change, team: TeamOwnershipSpec | None) -> Verdict | None:
    """A review of a break-glass request (`breakglass.review`) by `team`'s approvers, on its own:
    never with a decision. Never by an incident responder as such: a review is the owner team's
    account of that access."""
    old, before, after, caller, phase = change.old, change.before, change.after, change.caller, change.phase
    verdict = break_glass_rules.review(old, before, after, caller, team, stamped=phase is Phase.VALIDATE)
    if verdict is None:
        return None
    decided = [k for k in (APPROVED, DENIED, DECISION_REASON) if before.get(k) != after.get(k)]
    if decided:
        return Refusal(f"{break_glass_rules.REVIEWED}=true is set on its own, not with {', '.join(decided)}", INVALID)
    if isinstance(verdict, str):
        return Refusal(verdict + _as_responder(caller, change.responders))
    added = {k: after[k] for k in break_glass_rules.REVIEW_ANNOTATIONS[1:] if k in after and k not in before}
    return _as_stamped(
        Admit(annotations=verdict), phase, added, f"metadata.annotations[{break_glass_rules.REVIEWED_BY}]"
    )


def _cancellation(change: _Change) -> Verdict | None:
    """A request approved for a later start (`Scheduled`) is cancelled as a grant is revoked
    (`jitaccess.dev/revoked=true`, with `revoke-reason`; `_revocation`'s rules: its requester, an
    approver of the owner team, or an incident responder with a reason), and stamped
    `revoked-by`: a decision is final, so it cannot be denied, and a deletion would name nobody in
    its records (attack 124). On its own, never with a decision; None when it touches none of it."""
    old, before, after, phase, entitlement = change.old, change.before, change.after, change.phase, change.entitlement
    changed = [k for k in CANCEL_ANNOTATIONS if before.get(k) != after.get(k)]
    if not changed:
        return None
    written = _revoker_written(changed, before, phase)
    if written is not None:
        return written
    others = [k for k in DECISION_ANNOTATIONS if before.get(k) != after.get(k)]
    if others:
        return Refusal(f"{REVOKED}=true is set on its own, not with {', '.join(sorted(others))}", INVALID)
    # The Entitlement gone, its refusal names the team that approved the request (`audit.decision_team`).
    owner = entitlement.spec.owner if entitlement is not None else (audit.decision_team(old) or "")
    verdict = _revocation(old, before, after, change.caller, change.team, owner, change.responders, request=True)
    added = {REVOKED_BY: after[REVOKED_BY]} if REVOKED_BY in after and REVOKED_BY not in before else {}
    return _as_stamped(verdict, phase, added, f"metadata.annotations[{REVOKED_BY}]")


def _not_cancellable(old: Obj) -> Refusal | None:
    """Why this request cannot be cancelled (`_cancellation`): only one approved and `Scheduled`
    can; None when it can."""
    state, name = wire.ready_reason(old), wire.name_of(old)
    if state == names.SCHEDULED and wire.is_true(old, names.APPROVED):
        return None
    if state in names.REQUEST_FINISHED:
        return Refusal(f"AccessRequest {name} has already ended ({state}): there is nothing left to revoke")
    grant = request_rules.access_not_ended(old)
    if grant is not None:
        return Refusal(
            f"AccessRequest {name} is {state or 'approved'}, its access under way (its AccessGrant {grant}): "
            f"{REVOKED}=true on a request cancels one approved for a later start (Scheduled); revoke its grant "
            f"instead, `kubectl jit revoke {name} --reason '...'{_pinning(old)}`"
        )
    return Refusal(
        f"AccessRequest {name} still awaits a decision: {REVOKED}=true on a request cancels one approved for a later "
        f"start (Scheduled); deny this one instead, `kubectl jit deny {name} --reason '...'` (or, as its requester, "
        f"withdraw it: `kubectl jit withdraw {name}`)"
    )


def _approvals_changed(change: _Change) -> Verdict | None:
    """A change of the approvals list (`domain.approvals`): the client's own is refused; at VALIDATE,
    one approval of several that the webhook counted (it took `approved` out again) is checked here,
    the approval that completes the count by `_decision` with its stamps."""
    old, before, after, caller, team, entitlement = (
        change.old, change.before, change.after, change.caller, change.team, change.entitlement
    )  # fmt: skip
    key = approval_rules.APPROVALS
    if before.get(key) == after.get(key):
        return None
    if change.phase is Phase.MUTATE:
        return Refusal(
            f"metadata.annotations[{key}] is written only by the jitaccess admission webhook, which records there "
            f"each approver the API server authenticated: leave it out of your change. To approve, set {APPROVED}=true"
        )
    if wire.truthy(after.get(APPROVED)) and APPROVED_BY not in before:
        return None
    state = _decided_or_finished(old)
    if state is not None or team is None or entitlement is None:
        return Refusal(f"this request cannot be approved any more ({state or 'its Entitlement or team is gone'})")
    spec = old.get("spec") or {}
    refusal = may_approve(
        team, caller, requester=str(spec.get("requester") or ""), escalated=change.escalated
    ) or approval_rules.validated(before, after, caller, approval_rules.required(entitlement), _counted(change))
    if refusal is not None:
        return _not_stamped(f"metadata.annotations[{key}] ({refusal}{_as_responder(caller, change.responders)})")
    return Admit(annotations={key: after[key]})


def _decision(change: _Change) -> Verdict:
    """An update that touches the decision annotations: who may, and what gets stamped. An incident
    responder who may not approve for the team may still deny, with a reason (`_responder_denial`)."""
    old, before, after, caller, team, entitlement = (
        change.old, change.before, change.after, change.caller, change.team, change.entitlement
    )  # fmt: skip
    changed = [f for f in _DECISIONS if before.get(f) != after.get(f)]
    if not changed and before.get(DECISION_REASON) == after.get(DECISION_REASON):
        return ALLOW
    recorded = next(((f, before[by]) for f, (by, _, _) in _DECISIONS.items() if by in before), None)
    # An approval that no longer counts (and never will as it stands) blocks no denial: both stay
    # stamped, and the operator takes the denial first (`request_rules.decide_pending`).
    void = recorded is not None and changed == [DENIED] and _approval_void(change)
    if void:
        recorded = None
        stale = _reason_left_over(old, before, after)
        if stale is not None:
            return stale
    if recorded is not None:
        word = "approved" if recorded[0] == APPROVED else "denied"
        return Refusal(
            f"this request was already {word} by {recorded[1]}, and a decision is final: it cannot be changed "
            f"or removed, nor its {DECISION_REASON}. For new access, create a new AccessRequest"
        )
    state = _decided_or_finished(old)
    if state is not None:
        return Refusal(f"this request is already {state}: there is nothing left to decide; create a new AccessRequest")
    newly = [f for f in changed if after.get(f) is not None]
    for flag in newly:
        if not wire.truthy(after[flag]):
            other = DENIED if flag == APPROVED else APPROVED
            return Refusal(
                f'metadata.annotations[{flag}] is {after[flag]!r}: its only value is "true" '
                f"(to decide the other way, set {other}=true instead)",
                INVALID,
            )
    if wire.truthy(after.get(APPROVED)) and wire.truthy(after.get(DENIED)) and not void:
        return Refusal(
            f"{APPROVED} and {DENIED} are both set: a request is either approved or denied; set one", INVALID
        )
    if not newly:
        if before.get(DECISION_REASON) != after.get(DECISION_REASON):
            return Refusal(
                f"metadata.annotations[{DECISION_REASON}] is recorded with a decision: set it in the same change "
                f"as {APPROVED}=true or {DENIED}=true (`kubectl annotate accessrequest NAME {DENIED}=true "
                f'{DECISION_REASON}="..."`)',
                INVALID,
            )
        return ALLOW
    flag = newly[0]
    by, by_groups, verb = _DECISIONS[flag]
    spec = old.get("spec") or {}
    if team is None or entitlement is None:
        return Refusal(
            f"nobody can {verb} this request: Entitlement {spec.get('entitlement')!r} or its owner team no "
            "longer exists, so there is no approver to check against",
            INVALID,
        )
    requester = str(spec.get("requester") or (old.get("status") or {}).get("requester") or "")
    escalated = change.escalated
    refusal = may_approve(team, caller, requester=requester, escalated=escalated)
    if refusal is not None and caller.username != requester and change.responders.includes(caller):
        refusal = _responder_denial(flag, after, caller)
        if refusal is not None:
            return Refusal(refusal, INVALID if flag == DENIED else FORBIDDEN)
    elif refusal is not None:
        who = request_rules.approvers_text(team, escalated, excluding={requester})
        return Refusal(
            f"{refusal}; {flag}=true on requests for {entitlement.metadata.name} may be set only by an approver of "
            f"team {entitlement.spec.owner} ({who})"
            + ("" if escalated else ", or by its backup approvers once the request has escalated")
        )
    stamps = {by: caller.username}
    if groups := groups_text(caller):
        stamps[by_groups] = groups
    needed = approval_rules.required(entitlement)
    if flag == APPROVED and needed > 1:
        counting = _counted(change)
        counted = approval_rules.stamp(before, caller, needed, after.get(DECISION_REASON, ""), stamps, counting)
        if isinstance(counted, str):
            return Refusal(counted)
        return Admit(annotations=counted.annotations, removed=counted.removed)
    return Admit(annotations=stamps)


def _reason_left_over(old: Obj, before: Mapping[str, str], after: Mapping[str, str]) -> Refusal | None:
    """A denial over an approval that no longer counts, which leaves the approver's reason in place:
    the operator would record that reason as the denier's (`decisionReason` of the `denied` record,
    the Event, Slack). A reason is its decider's own, written with the decision: refused unless the
    denial writes one (an empty one says none)."""
    reason = before.get(DECISION_REASON)
    if not reason or after.get(DECISION_REASON) != reason:
        return None
    return Refusal(
        f"metadata.annotations[{DECISION_REASON}] is {before.get(APPROVED_BY)}'s, written with their approval, which "
        f"no longer counts: a denial that leaves it in place would be recorded with their reason as yours. Write your "
        f"own in the same change: `kubectl annotate {str(old.get('kind') or 'AccessRequest').lower()} "
        f"{wire.name_of(old)} {DENIED}=true {DECISION_REASON}='...' --overwrite` (`{DECISION_REASON}=` for none)",
        INVALID,
    )


def _counted(change: _Change) -> int:
    """Of the stored approvals list, how many count against the live team, as the operator counts
    them (`request_rules.approvals_counted`): a backup approver's once the request had escalated
    when the operator counted it, or, not counted yet, once it has escalated (`change.escalation`);
    none by an approver `gone` from Identity Center."""
    old, team = change.old, change.team
    if team is None:
        return 0
    status = old.get("status") or {}
    times = {
        str(entry.get("by")): when
        for entry in status.get("approvals") or []
        if isinstance(entry, dict) and (when := _time(entry.get("time"))) is not None
    }
    found = request_rules.stamped_approvals_counted(
        approval_rules.given(change.before),
        team,
        str(wire.spec(old).get("requester") or status.get("requester") or ""),
        escalation=change.escalation,
        times=times,
        now=change.now,
        gone=change.gone,
    )
    return len(found.counted)


def _time(stamp: Any) -> datetime | None:
    return datetime.fromisoformat(stamp) if isinstance(stamp, str) and stamp else None


def _approval_void(change: _Change) -> bool:
    """A stamped approval the operator has not taken and never will as it stands: its approver no
    longer approves for the team, or (approvalsRequired N > 1) the approvals that still count fall
    short of N. It must not keep the request from being denied until it times out."""
    old, before, entitlement, team = change.old, change.before, change.entitlement, change.team
    who = before.get(APPROVED_BY)
    if not who or entitlement is None or team is None or _decided_or_finished(old) is not None:
        return False
    groups = frozenset(g for g in before.get(APPROVED_BY_GROUPS, "").split(",") if g)
    requester = str(wire.spec(old).get("requester") or "")
    if may_approve(team, Caller(who, groups), requester=requester, escalated=change.escalated):
        return True
    needed = approval_rules.required(entitlement)
    return needed > 1 and _counted(change) < needed


def _responder_denial(flag: str, after: Mapping[str, str], caller: Caller) -> str | None:
    """Why an incident responder (not an approver of the team) may not take this decision; None for
    a denial with a reason, which they may take on any team's request or extension."""
    if flag != DENIED:
        return (
            f"{caller.username} is not an approver of the owner team, and as an incident responder may not set "
            f"{flag}=true: {RESPONDER_MAY}"
        )
    if not (after.get(DECISION_REASON) or "").strip():
        return (
            f"metadata.annotations[{DECISION_REASON}] is required when an incident responder denies another "
            f"team's AccessRequest: say why, for the requester and the audit trail (`kubectl annotate accessrequest "
            f'NAME {DENIED}=true {DECISION_REASON}="..."`, or `kubectl jit deny request/NAME --reason "..."`)'
        )
    return None


def _decided_or_finished(request: Obj) -> str | None:
    """The request's state when no decision can be taken on it any more, in words; else None."""
    for type_, word in ((names.APPROVED, "approved"), (names.DENIED, "denied")):
        found = wire.condition(request, type_)
        if found is not None and found.get("status") == "True":
            return f"{word} ({found.get('reason')})"
    reason = wire.ready_reason(request)
    if reason in names.REQUEST_FINISHED:
        return f"finished ({reason})"
    return None


# --- AccessGrant ----------------------------------------------------------------------------


def recorded_owner(grant: Obj) -> str | None:
    """The owner team a grant recorded when it was created (`spec.ownerTeam`); None for a grant from
    before grants recorded it, whose owner is then the live Entitlement's.

    Revocation rights come from this record, not from the Entitlement: once an Entitlement is deleted
    (or handed to another team), the approvers of the team that owned it when access was granted can
    still end that access early.
    """
    owner = wire.spec(grant).get("ownerTeam")
    return str(owner) if owner else None


def review_grant(
    operation: str,
    old: Obj | None,
    new: Obj | None,
    caller: Caller,
    *,
    operator: OperatorIdentity,
    team: TeamOwnershipSpec | None,
    owner: str,
    phase: Phase,
    responders: Responders = NO_RESPONDERS,
) -> Verdict:
    """Grants are the operator's; others may only revoke (annotation) or, as approvers, delete them.

    `team` is the grant's owner team, `owner` its name (for messages): the team `recorded_owner`
    names, whose approvers keep the right to end the grant whatever becomes of its Entitlement.
    The `responders` may revoke any grant, with a reason; never delete one.
    """
    if operator.includes(caller):
        return ALLOW
    if operation == "CREATE":
        return Refusal(
            "AccessGrants are created only by the jitaccess operator, when an AccessRequest is approved: "
            "create an AccessRequest instead (`kubectl create -f request.yaml`)"
        )
    if operation == "DELETE" and old is not None:
        return _grant_deleted(old, caller, team, owner, responders)
    if operation != "UPDATE" or old is None or new is None:
        return ALLOW
    # Labels of any prefix are the operator's on a grant: its own message says so, before the
    # records' rule (`review_record`), which then holds the finalizers.
    refusal = (
        review_bookkeeping(operation, old, new, caller, operator)
        or _grant_fields_changed(old, new, owner)
        or review_record(operation, old, new, caller, operator)
        or review_text(old, new)
    )
    if refusal is not None:
        return refusal
    before, after = wire.annotations_of(old), wire.annotations_of(new)
    changed = _changed(before, after)
    foreign = [k for k in changed if k not in _REVOCATION_ANNOTATIONS]
    if foreign:
        return Refusal(
            f"metadata.annotations {', '.join(foreign)}: on an AccessGrant, users may set only {REVOKED}=true "
            f"(and {REVOKE_REASON}); everything else is the jitaccess operator's"
        )
    written = _revoker_written(changed, before, phase)
    if written is not None:
        return written
    # What is left to change is a revocation, whose rules (and who may) follow; kubectl apply's
    # record of the manifest goes with one or not at all, so nobody else writes into the grant.
    if LAST_APPLIED in changed and not {REVOKED, REVOKE_REASON} & set(changed):
        return Refusal(
            f"metadata.annotations[{LAST_APPLIED}] changes on an AccessGrant only with a revocation: "
            f"`kubectl annotate accessgrant NAME {REVOKED}=true` ends the grant; nothing else of it is yours to change"
        )
    verdict = _revocation(old, before, after, caller, team, owner, responders)
    added = {REVOKED_BY: after[REVOKED_BY]} if REVOKED_BY in after and REVOKED_BY not in before else {}
    return _as_stamped(verdict, phase, added, f"metadata.annotations[{REVOKED_BY}]")


def _revoker_written(changed: Sequence[str], before: Mapping[str, str], phase: Phase) -> Refusal | None:
    """`revoked-by` written by the client (at MUTATE), or changed once stamped: the webhook's alone."""
    if REVOKED_BY not in changed or (phase is Phase.VALIDATE and REVOKED_BY not in before):
        return None
    return Refusal(
        f"metadata.annotations[{REVOKED_BY}] is written only by the jitaccess admission webhook, from the "
        f"identity the API server authenticated: leave it out, and set {REVOKED}=true"
    )


def _grant_fields_changed(old: Obj, new: Obj, owner: str) -> Refusal | None:
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    for where, was, will in (
        ("spec", old.get("spec"), new.get("spec")),
        ("metadata.labels", old_meta.get("labels"), new_meta.get("labels")),
        ("metadata.ownerReferences", old_meta.get("ownerReferences"), new_meta.get("ownerReferences")),
    ):
        if (was or None) != (will or None):
            return Refusal(
                f"{where} of an AccessGrant is written only by the jitaccess operator: a grant records what was "
                f"approved. The grantee or an approver of team {owner or '(unknown)'} may only revoke it, with "
                f"`kubectl annotate accessgrant NAME {REVOKED}=true`"
            )
    return None


def _revocation(
    old: Obj,
    before: Mapping[str, str],
    after: Mapping[str, str],
    caller: Caller,
    team: TeamOwnershipSpec | None,
    owner: str,
    responders: Responders = NO_RESPONDERS,
    *,
    request: bool = False,
) -> Verdict:
    """Who may revoke a grant (its grantee, an approver of its owner team, an incident responder
    with a reason), and what is stamped; with `request`, the same of an AccessRequest approved for a
    later start, cancelled before its access begins (`_cancellation`; its requester in the grantee's place)."""
    what, kind, holder_is = (
        ("request", "accessrequest", "requester") if request else ("grant", "accessgrant", "grantee")
    )
    if before.get(REVOKED) == after.get(REVOKED) and before.get(REVOKE_REASON) == after.get(REVOKE_REASON):
        return ALLOW
    if REVOKED_BY in before:
        return Refusal(
            f"this {what} was already revoked by {before[REVOKED_BY]}: {REVOKED} and {REVOKE_REASON} "
            "cannot be changed or removed any more"
        )
    if before.get(REVOKED) == after.get(REVOKED):
        return Refusal(
            f"metadata.annotations[{REVOKE_REASON}] is recorded with a revocation: set it in the same change as "
            f'{REVOKED}=true (`kubectl annotate {kind} NAME {REVOKED}=true {REVOKE_REASON}="..."`)',
            INVALID,
        )
    if not wire.truthy(after.get(REVOKED)):
        return Refusal(
            f'metadata.annotations[{REVOKED}] is {after.get(REVOKED)!r}: its only value is "true" '
            "(and a revocation cannot be undone)",
            INVALID,
        )
    state = wire.ready_reason(old)
    if request:
        refused = _not_cancellable(old)
        if refused is not None:
            return refused
    elif state in names.GRANT_FINISHED:
        return Refusal(f"this grant has already ended ({state}): there is no access left to revoke")
    spec = old.get("spec") or {}
    holder = str(spec.get("requester" if request else "user") or "")
    if caller.username == holder or (team is not None and is_approver(team, caller)):
        return Admit(annotations={REVOKED_BY: caller.username})
    if not responders.includes(caller):
        return Refusal(
            f"{caller.username} may not revoke this {what}: only the {holder_is} {holder} or an approver of team "
            f"{owner or '(unknown)'}{_approvers_suffix(team)} may set {REVOKED}=true, or an incident responder "
            f"(with {REVOKE_REASON})"
        )
    if not (after.get(REVOKE_REASON) or "").strip():
        return Refusal(
            f"metadata.annotations[{REVOKE_REASON}] is required when an incident responder revokes someone else's "
            f"{what}: say why, for the {holder_is} and the audit trail (`kubectl jit revoke {wire.name_of(old)} "
            f'--reason "..."{_pinning(old)}`, or `kubectl annotate {kind} {wire.name_of(old)} {REVOKED}=true '
            f'{REVOKE_REASON}="..."`)',
            INVALID,
        )
    return Admit(annotations={REVOKED_BY: caller.username})


def _grant_deleted(
    old: Obj, caller: Caller, team: TeamOwnershipSpec | None, owner: str, responders: Responders = NO_RESPONDERS
) -> Verdict:
    name = (old.get("metadata") or {}).get("name", "NAME")
    if team is not None and is_approver(team, caller):
        return _live_grant_deleted(old, name) or ALLOW
    if responders.includes(caller):
        return Refusal(
            f"deleting an AccessGrant removes the record of that access from the audit trail, which only approvers "
            f"of team {owner or '(unknown)'}{_approvers_suffix(team)} may do; {caller.username} is an incident "
            f"responder, who ends access without erasing its record: `kubectl jit revoke {name} --reason '...'"
            f"{_pinning(old)}` ({RESPONDER_MAY})"
        )
    return Refusal(
        f"deleting an AccessGrant revokes it and removes it from the audit trail, which only approvers of team "
        f"{owner or '(unknown)'}{_approvers_suffix(team)} may do; to end your own access, annotate it instead: "
        f"`kubectl annotate accessgrant {name} {REVOKED}=true`"
    )


def _live_grant_deleted(old: Obj, name: str) -> Refusal | None:
    """A grant whose access has not ended is ended by a revocation, never by its deletion: a deletion
    leaves no stamp (the object does not say who deleted it), so its end would be recorded as the
    operator's, without a reason. Ended, or its revocation stamped, it may go."""
    state = wire.ready_reason(old)
    if state in names.GRANT_FINISHED or REVOKED_BY in wire.annotations_of(old):
        return None
    grantee = str((old.get("spec") or {}).get("user") or "its grantee")
    return Refusal(
        f"AccessGrant {name} is {state or 'being provisioned'}: deleting it would end {grantee}'s access with "
        f"nobody named in its records, as a deletion leaves no {REVOKED_BY} stamp and no reason; revoke it instead, "
        f"`kubectl jit revoke {name} --reason '...'{_pinning(old)}` (or `kubectl annotate accessgrant {name} "
        f"{REVOKED}=true {REVOKE_REASON}='...'`), and delete it once it has ended"
    )


def _pinning(obj: Obj) -> str:
    """` --uid UID` for a `kubectl jit revoke` a refusal gives about `obj`: the command then revokes
    this very object, never another created under its name since (this one ended and deleted, and
    another requested or granted under the name), which the name alone would find. Of a request
    whose access runs, it revokes the grant the operator made for that request (labelled with its
    uid, whatever the grant's name): a refusal cannot give the grant's own uid, which the request
    does not hold."""
    uid = wire.uid_of(obj)
    return f" --uid {uid}" if uid else ""


def _approvers_suffix(team: TeamOwnershipSpec | None) -> str:
    if team is None:
        return " (the team no longer exists)"
    # Only names that approve: one of Kubernetes' own, or one that reads as another's, stored before
    # admission refused it approves nothing.
    names: Sequence[str] = [
        *(n for n in team.approvers if not identities.confers_nothing(n, group=False)),
        *(f"group:{g}" for g in team.approver_groups if not identities.confers_nothing(g, group=True)),
    ]
    return f" ({', '.join(names) or 'nobody'})"


#: How much of one changed value a policy-change line quotes (a whole approver list is kept; a long
#: reason pattern is cut).
_POLICY_VALUE_CHARACTERS = 200


def policy_changes(old: Obj | None, new: Obj | None) -> list[str]:
    """What a write changes in a policy object's spec (TeamOwnership, Entitlement,
    PermissionCatalog), one `path: before -> after` per changed leaf, in path order: who may ask,
    who approves and what is granted, for the audit log line the webhook writes for each change."""
    changes: list[str] = []

    def walk(path: str, before: Any, after: Any) -> None:
        if before == after:
            return
        if isinstance(before, Mapping) or isinstance(after, Mapping):
            if not isinstance(before, Mapping | None) or not isinstance(after, Mapping | None):
                changes.append(f"{path}: {_quoted(before)} -> {_quoted(after)}")
                return
            before, after = before or {}, after or {}
            for key in sorted(set(before) | set(after), key=str):
                walk(f"{path}.{key}", before.get(key), after.get(key))
            return
        changes.append(f"{path}: {_quoted(before)} -> {_quoted(after)}")

    walk("spec", wire.spec(old) if old is not None else None, wire.spec(new) if new is not None else None)
    return changes


def _quoted(value: Any) -> str:
    if value is None:
        return "(none)"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= _POLICY_VALUE_CHARACTERS else text[: _POLICY_VALUE_CHARACTERS - 3] + "..."

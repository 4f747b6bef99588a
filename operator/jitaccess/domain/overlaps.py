"""Entitlements that grant the same access: which overlap, how their rules differ, and the
`Overlapping` condition each should carry.

Two Entitlements overlap when a grant of either gives what a grant of the other does: the same
Identity Center group (by DisplayName, or by id: `spec.identityCenter.groupId`, or the
`status.groupId` the operator resolved a `groupName` to for the current generation), or the same
permission set in at least one common account. A PermissionCatalog tier (`Tier`) assigns its
permission set to its group in its accounts, so a grant of that group gives the permission set
there, as one of an Entitlement assigning the tier (by `catalog`/`tier`, or by the ARN the tier
was provisioned as) does in those accounts. An Entitlement's group is the tier's by name, or by id
once the catalog records the GroupId its pass resolved the tier's `groupName` to (`group_id`, taken
only while it was resolved from that name: `groupids.tier_group_ids`): the id in the spec, or
the one resolved for the current generation.

Whoever may get the one with the weaker rules gets what the other guards, so each names the
other(s) and the rules that differ: owner team, eligibility groups, approvals, break-glass,
maxDuration, reasonPattern. Overlap under identical rules is reported too, with its own reason
(`Duplicate`, a Normal Event): nothing is bypassed today, but two names for one access split its
audit trail and reviews, and the next edit of one of them, not the other, is the bypass (then
`SameAccess`, a Warning).

A permission set named by catalog tier in one Entitlement and by ARN in another is matched once
the catalog has reported the tier's ARN; an ARN of no catalog is matched only with the same ARN.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from jitaccess.api import names
from jitaccess.api.models import Condition, Entitlement, EntitlementSpec
from jitaccess.domain import assignments, groupids
from jitaccess.domain import conditions as cond
from jitaccess.domain.durations import format_duration, parse_duration
from jitaccess.errors import InvalidInput

#: At most this many other Entitlements are described in one message (the rest are counted).
LISTED = 10

# What an Entitlement grants, as keys two overlapping Entitlements share at least one of.
_GROUP_NAME, _GROUP_ID, _ASSIGNMENT = "group-name", "group-id", "assignment"
Key = tuple[str, ...]


@dataclass(frozen=True)
class Tier:
    """A PermissionCatalog tier: its permission set (`reference`, `catalog:<catalog>/<tier>`, and
    `arn` once provisioned) is assigned to Identity Center group `group` in `accounts`; `group_id`:
    that group's GroupId, once the catalog records it for that name."""

    reference: str
    group: str
    accounts: frozenset[str]
    arn: str | None = None
    group_id: str | None = None


@dataclass(frozen=True)
class Overlap:
    """Another Entitlement (`other`) that grants some of what this one does (`shared`, in words),
    and how its rules differ from this one's (`differences`, empty when they are the same);
    `whole`: the two grant exactly the same (not only some accounts of a permission set in common)."""

    other: str
    shared: str
    differences: tuple[str, ...]
    whole: bool = True


@dataclass(frozen=True)
class Verdict:
    """The `Overlapping` condition an Entitlement should carry."""

    status: bool
    reason: str
    message: str

    @property
    def warning(self) -> bool:
        return self.reason == names.SAME_ACCESS


def keys(entitlement: Entitlement, tiers: Sequence[Tier] = ()) -> frozenset[Key]:
    """What the Entitlement grants: its group by name and by id (the id alone when the spec names
    one: it takes precedence over the name), with the permission sets catalog `tiers` assign to that
    group, in their accounts; or its permission set (under each of its names) in each of its accounts."""
    target = entitlement.spec.identity_center
    if target.account_assignment is not None:
        reference = assignments.reference(target.account_assignment.permission_set)
        named = _names_of(reference, tiers)
        return frozenset(
            (_ASSIGNMENT, name, account) for name in named for account in target.account_assignment.accounts
        )
    found: set[Key] = set()
    group = None if target.group_id else target.group_name
    if target.group_id:
        found.add((_GROUP_ID, target.group_id))
    else:
        if group:
            found.add((_GROUP_NAME, group))
        resolved = entitlement.status.group_id
        if resolved and groupids.resolved_for_this_generation(entitlement):
            found.add((_GROUP_ID, resolved))
    ids = {key[1] for key in found if key[0] == _GROUP_ID}
    for tier in tiers:
        if (group and tier.group == group) or (tier.group_id and tier.group_id in ids):
            found.update((_ASSIGNMENT, name, account) for name in _names(tier) for account in tier.accounts)
    return frozenset(found)


def _names(tier: Tier) -> tuple[str, ...]:
    return (tier.reference, tier.arn) if tier.arn else (tier.reference,)


def _names_of(reference: str, tiers: Sequence[Tier]) -> set[str]:
    """A permission set reference and its other name: a tier's ARN, or the tier of an ARN."""
    named = {reference}
    for tier in tiers:
        if reference in _names(tier):
            named.update(_names(tier))
    return named


def describe(shared: Iterable[Key]) -> str:
    """The shared keys in words: `Identity Center group payments-prod`, `permission set ... in account ...`."""
    found = sorted(shared)
    groups = [k for k in found if k[0] != _ASSIGNMENT]
    if groups:
        named = next((k[1] for k in groups if k[0] == _GROUP_NAME), None)
        return f"Identity Center group {named}" if named else f"Identity Center group id {groups[0][1]}"
    # A tier's permission set is keyed by reference and by ARN: the reference (`catalog:...`) reads best.
    reference = min((k[1] for k in found), key=lambda name: (not name.startswith(names.CATALOG_REFERENCE_PREFIX), name))
    accounts = sorted({k[2] for k in found if k[1] == reference})
    plural = "account" if len(accounts) == 1 else "accounts"
    return f"permission set {reference} in {plural} {', '.join(accounts)}"


def rules(spec: EntitlementSpec) -> dict[str, str]:
    """The rules that decide who gets the access, how, and for how long, each as it reads in a
    message; lists are compared as sets, durations by length (`60m` is `1h`)."""
    approval, glass = spec.approval, spec.break_glass
    return {
        "owner team": spec.owner,
        "eligibility groups": _listed(spec.eligibility.identity_center_groups),
        "approvalsRequired": str(approval.approvals_required),
        "autoApproveOwnerTeam": str(approval.auto_approve_owner_team).lower(),
        "autoApproveGroups": _listed(approval.auto_approve_groups),
        "autoApproveIdentityCenterGroups": _listed(approval.auto_approve_identity_center_groups),
        "breakGlass": "off"
        if glass is None
        else f"groups {_listed(glass.groups)}, maxDuration {_length(glass.max_duration)}, "
        f"{glass.per_user_per_day} per user per day",
        "maxDuration": _length(spec.max_duration),
        "reasonPattern": repr(spec.reason_pattern) if spec.reason_pattern else "none",
    }


def _listed(values: Sequence[str]) -> str:
    return f"[{', '.join(sorted(set(values)))}]" if values else "none"


def _length(text: str) -> str:
    try:
        return format_duration(parse_duration(text, "maxDuration"))
    except InvalidInput:
        return text


def differences(here: EntitlementSpec, there: EntitlementSpec) -> tuple[str, ...]:
    """Each rule that differs: `eligibility groups [a, b] here, none there`."""
    mine, theirs = rules(here), rules(there)
    return tuple(f"{label} {mine[label]} here, {theirs[label]} there" for label in mine if mine[label] != theirs[label])


def overlaps(entitlements: Iterable[Entitlement], tiers: Sequence[Tier] = ()) -> dict[str, list[Overlap]]:
    """For every Entitlement that overlaps another, the others (by name) and how; those that overlap
    none are absent. Entitlements are bucketed by what they grant: no pair is compared that shares nothing."""
    by_name = {e.metadata.name: e for e in entitlements if e.metadata.name}
    granted = {name: keys(e, tiers) for name, e in by_name.items()}
    holders: defaultdict[Key, set[str]] = defaultdict(set)
    for name, found in granted.items():
        for key in found:
            holders[key].add(name)
    found_overlaps: dict[str, list[Overlap]] = {}
    for name, mine in granted.items():
        others = sorted({other for key in mine for other in holders[key]} - {name})
        if not others:
            continue
        here = by_name[name].spec
        found_overlaps[name] = [
            Overlap(
                other,
                describe(mine & granted[other]),
                differences(here, by_name[other].spec),
                whole=mine == granted[other],
            )
            for other in others
        ]
    return found_overlaps


def verdict(found: Sequence[Overlap], previous: Condition | None) -> Verdict | None:
    """The `Overlapping` condition to write, given the overlaps found and the condition as it is;
    None when it is right already. An Entitlement that never overlapped carries none."""
    if not found:
        if previous is None or previous.status != "True":
            return None
        return Verdict(False, names.NO_OVERLAP, "no other Entitlement grants the same access any more")
    wanted = Verdict(True, _reason(found), message(found))
    if (
        previous is not None
        and previous.status == "True"
        and previous.reason == wanted.reason
        and previous.message == wanted.message
    ):
        return None
    return wanted


def _reason(found: Sequence[Overlap]) -> str:
    return names.SAME_ACCESS if any(o.differences for o in found) else names.DUPLICATE


def message(found: Sequence[Overlap]) -> str:
    """One sentence per other Entitlement, those whose rules differ first (they are the bypass)."""
    ordered = sorted(found, key=lambda o: (not o.differences, o.other))
    sentences = [_sentence(o) for o in ordered[:LISTED]]
    if len(ordered) > LISTED:
        sentences.append(f"And {len(ordered) - LISTED} more.")
    return " ".join(sentences)


def _sentence(overlap: Overlap) -> str:
    start = f"Entitlement {overlap.other} also grants {overlap.shared}"
    if not overlap.differences:
        return f"{start}, under the same rules" + (": keep one of them." if overlap.whole else ".")
    return f"{start}, under other rules: {'; '.join(overlap.differences)}."


def changes(entitlements: Iterable[Entitlement], tiers: Sequence[Tier] = ()) -> list[tuple[Entitlement, Verdict]]:
    """Every Entitlement whose `Overlapping` condition is not what the overlaps say, with what it should be."""
    listed = list(entitlements)
    found = overlaps(listed, tiers)
    stale = []
    for entitlement in listed:
        previous = cond.find(entitlement.status.conditions, names.OVERLAPPING)
        wanted = verdict(found.get(entitlement.metadata.name or "", []), previous)
        if wanted is not None:
            stale.append((entitlement, wanted))
    return stale

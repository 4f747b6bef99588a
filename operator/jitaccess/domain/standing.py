"""Which Identity Center groups people hold standing, and which they hold only through a grant.

A PermissionCatalog assigns its baseline permission set to a standing group (the team's everyday
role: the identity provider keeps its members) and its production one to the group of the team's
Entitlement, which jitaccess fills for the length of a grant only. The two must never meet, or
production becomes standing: a production tier given to any catalog's baseline group, or to a
group an Entitlement names as one people are in (eligibility, on-call), hands that tier to all of
its members with no grant; one given to another catalog's production group, or to the group of
another team's Entitlement, hands it to whoever that team grants. The other way round, a baseline
group that is an Entitlement's group makes the JIT access standing (and the drift scan would empty
the standing group).

Entitlements keep the two kinds apart among themselves too. An Entitlement's group, the one its
grants fill, is no group any Entitlement (itself included) names as one people are in
(`STANDING_FIELDS`): its grants would make their grantees eligible for, or on call for, the other
Entitlement (another team's production, approved at once), and its drift scan would remove the
standing members (the people on call, the trained), whose grants would then lapse. Nor does an
Entitlement name as such a group one that grants fill: another Entitlement's group, or a catalog's
production group. In account-assignment mode an Entitlement assigns a permission set itself: a
tier of its owner team's catalog, never another team's (`assignment_problems`), by `catalog` (a
catalog is named after its team) or by the ARN a catalog reports for its tier. The accounts are the
Entitlement's to name, as a catalog's are the catalog's: jitaccess does not know which team owns an
account, and a tier's `accounts` place its group, not the grants' users (`assignments`).

Group DisplayNames are compared case-insensitively and stripped: two names that a reviewer reads
as one are treated as one, and refused, whatever Identity Center would make of them. A group is
also known by its GroupId where the stored objects say it, and two groups whose ids are both known
and equal are one: an Entitlement's `groupId`, or the `status.groupId` its `groupName` resolved to
for the current generation (`groupids.group_id`); a catalog tier's `status.<tier>.groupId`, while
the name it was resolved from is the spec's (`groupids.tier_group_ids`). An id resolved for an
older name or generation is not trusted: admission never refuses on it. The groups an Entitlement
names as ones people are in are known by name only (but for a GroupId written as one, below); so
is a group no object records an id for.
Where a group known by id alone is compared with them (`by_id_alone`), the caller may give the ids
Identity Center resolves those names to (`resolved`, by name as written): the webhook then asks
for them, and the operator always does, for the Entitlements stored.

A GroupId written where a DisplayName goes (`groupName`, the groups people are in) is the group it
is the id of to Identity Center (`groupids.looks_like_group_id`), and another name to a comparison
by name: admission refuses one written (`ids_for_names`), and one stored before the rule is known
by that id (so compared with the ids the other names resolve to).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

from jitaccess.api import names, wire
from jitaccess.api.models import Entitlement
from jitaccess.domain import conditions as cond
from jitaccess.domain import groupids

Obj = Mapping[str, Any]

#: An Entitlement's fields that name Identity Center groups people are in standing (its own group
#: is the one grants fill).
STANDING_FIELDS = ("eligibility.identityCenterGroups", "approval.autoApproveIdentityCenterGroups")
#: What being in a group an Entitlement names in one of `STANDING_FIELDS` gives, in words.
_GIVES = {
    "eligibility.identityCenterGroups": "eligible for Entitlement {}",
    "approval.autoApproveIdentityCenterGroups": "on call for Entitlement {}, approved at once",
}
_PERMISSION_SET = "spec.identityCenter.accountAssignment.permissionSet"


def key(group: str) -> str:
    """How two group names are compared (the module's docstring says why)."""
    return group.strip().casefold()


@dataclass(frozen=True)
class Use:
    """A group as one object names it: `what` it is to that object, in words for a message."""

    group: str  # its DisplayName; empty for an Entitlement's group named by id only
    what: str
    owner: str  # the team of the object (a catalog's name, an Entitlement's owner)
    standing: bool  # its members hold it standing (True) or through a grant (False)
    group_id: str | None = None  # its GroupId, where the object says it (the module's docstring)
    entitlement: str = ""  # the Entitlement that names it (empty: a catalog's tier)
    field: str = ""  # where that Entitlement names a group people are in (one of `STANDING_FIELDS`)
    created: datetime | None = None  # when the object was created (`metadata.creationTimestamp`)
    as_created: bool = False  # its spec is as it was created (`metadata.generation` 1)

    def same(self, other: Use) -> bool:
        """Whether `other` is the same group: by name, or by id where both ids are known."""
        by_name = bool(key(self.group)) and key(self.group) == key(other.group)
        return by_name or (self.group_id is not None and self.group_id == other.group_id)


def _came_first(use: Use, other: Use) -> bool:
    """Whether the object of `use` named its group as it does before the object of `other` existed:
    it was created before it, and its spec has not changed since (a spec changed may have named
    the group only later: not known, so not first)."""
    return use.as_created and use.created is not None and other.created is not None and use.created < other.created


def _dated(obj: Obj) -> dict[str, Any]:
    """The `Use` fields saying when `obj` wrote what it names (`_came_first`)."""
    return {"created": wire.created_at(obj), "as_created": wire.metadata(obj).get("generation") == 1}


def _listed(spec: Mapping[str, Any], path: str) -> list[str]:
    node: Any = spec
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return [str(g) for g in node or [] if isinstance(g, str)] if isinstance(node, list) else []


def catalog_uses(catalog: Obj) -> list[Use]:
    """The groups a PermissionCatalog's tiers are assigned to."""
    name, spec = wire.name_of(catalog), wire.spec(catalog)
    ids = groupids.tier_group_ids(catalog)
    found = []
    for tier, standing in (("baseline", True), ("production", False)):
        settings = spec.get(tier)
        group = settings.get("groupName") if isinstance(settings, Mapping) else None
        if isinstance(group, str) and group:
            what = f"PermissionCatalog {name}'s {tier} group"
            found.append(Use(group, what, name, standing, ids.get(tier) or _written_id(group), **_dated(catalog)))
    return found


def entitlement_uses(entitlement: Obj) -> list[Use]:
    """The groups an Entitlement names: its own (filled by grants; none in account-assignment mode)
    and those people are in."""
    name, spec = wire.name_of(entitlement), wire.spec(entitlement)
    owner = str(spec.get("owner") or "")
    found = []
    dated = _dated(entitlement)
    target = spec.get("identityCenter")
    target = target if isinstance(target, Mapping) else {}
    group, group_id = target.get("groupName"), groupids.group_id(entitlement)
    if target.get("groupId"):
        what = f"the group of Entitlement {name} (team {owner}, by groupId {group_id})"
        found.append(Use("", what, owner, False, group_id, name, **dated))
    elif isinstance(group, str) and group:
        what = f"the group of Entitlement {name} (team {owner})"
        found.append(Use(group, what, owner, False, group_id or _written_id(group), name, **dated))
    for path in STANDING_FIELDS:
        what = f"a group Entitlement {name} names in spec.{path}"
        found += [Use(g, what, owner, True, _written_id(g), name, path, **dated) for g in _listed(spec, path)]
    return found


def _written_id(group: str) -> str | None:
    """`group`, where a DisplayName goes, as the GroupId it is when it is one (the module's docstring)."""
    return group if groupids.looks_like_group_id(group) else None


def ids_for_names(new: Obj, old: Obj | None = None) -> list[str]:
    """Where an Entitlement or a PermissionCatalog writes a GroupId where a group's DisplayName goes
    (one `old` did not have there): Identity Center would take it for the group it is the id of,
    while this module compares those fields by name and would see another group, and let an
    Entitlement grant, or name as one people are in, a group admission refuses it by name."""
    written = [*_names_of(new)]
    before = set(_names_of(old)) if old is not None else set()
    return [
        f"{field}: {group!r} is a GroupId, not a group's DisplayName: the groups named there are compared by "
        f"name, and this one would pass for another; {fix}"
        for field, group, fix in written
        if (field, group, fix) not in before and groupids.looks_like_group_id(group)
    ]


def _names_of(obj: Obj) -> list[tuple[str, str, str]]:
    """The group names `obj` writes: (the field, the name as written, how to name it by id instead)."""
    spec = wire.spec(obj)
    by_name = "name the group by its DisplayName"
    if obj.get("kind") == names.PERMISSION_CATALOG:
        return [(f"spec.{tier}.groupName", group, by_name) for tier, group in groupids.tier_groups(obj).items()]
    target = spec.get("identityCenter")
    group = target.get("groupName") if isinstance(target, Mapping) else None
    found = [("spec.identityCenter.groupName", group, "name it by spec.identityCenter.groupId")] if group else []
    return found + [(f"spec.{path}", g, by_name) for path in STANDING_FIELDS for g in _listed(spec, path)]


def _known(uses: Iterable[Use], resolved: Mapping[str, str]) -> list[Use]:
    """`uses`, each known by the GroupId `resolved` gives its name where no object records one."""
    return [replace(u, group_id=resolved[u.group]) if u.group_id is None and u.group in resolved else u for u in uses]


def _others(uses: Iterable[Use], group: Use) -> list[Use]:
    return [u for u in uses if group.same(u)]


def _field(use: Use) -> str:
    """How an Entitlement's own group reads in a message: the field that names it, and its value."""
    return (
        f"spec.identityCenter.groupName {use.group!r}" if use.group else f"spec.identityCenter.groupId {use.group_id!r}"
    )


def catalog_problems(catalog: Obj, catalogs: Iterable[Obj], entitlements: Iterable[Obj]) -> list[str]:
    """Why `catalog`'s tiers would make production standing, or JIT access standing, given the
    other catalogs and the Entitlements stored; each names the other object and the fix."""
    name = wire.name_of(catalog)
    others = [u for c in catalogs if wire.name_of(c) != name for u in catalog_uses(c)]
    others += [u for e in entitlements for u in entitlement_uses(e)]
    mine = catalog_uses(catalog)
    found = []
    production = next((u for u in mine if not u.standing), None)
    if production is not None:
        group = production.group
        for use in _others(others, production):
            if use.standing:
                found.append(
                    f"spec.production.groupName {group!r} is {use.what}, whose members hold it standing: they "
                    f"would all hold production with no grant; name the group of an Entitlement of team {name}, "
                    "which people hold only through a grant"
                )
            elif use.owner != name:
                found.append(
                    f"spec.production.groupName {group!r} is {use.what}: grants of team {use.owner} would give the "
                    f"production permissions of team {name}; name the group of an Entitlement of team {name}"
                )
    baseline = next((u for u in mine if u.standing), None)
    if baseline is not None:
        group = baseline.group
        for use in _others(others, baseline):
            if not use.standing:
                found.append(
                    f"spec.baseline.groupName {group!r} is {use.what}, which people hold only through a grant: "
                    "a standing tier there would make that access standing (and the drift scan removes its "
                    "members); name the team's everyday group"
                )
    return found


def entitlement_problems(
    entitlement: Obj,
    catalogs: Iterable[Obj],
    entitlements: Iterable[Obj] = (),
    resolved: Mapping[str, str] | None = None,
) -> list[str]:
    """Why an Entitlement would make standing access granted, or granted access standing, or give
    another team's permissions, given the catalogs and the other Entitlements stored (its stored
    self among them or not) and the GroupIds `resolved` for group names: each names the field, the
    other object and the fix. Its group, the one grants fill, is no catalog's baseline group, no
    other team's production group, and no group any Entitlement (itself too) names as one people
    are in; the groups it names as such are no group grants fill (another Entitlement's, a
    catalog's production group); its permission set is its owner team's (`assignment_problems`)."""
    return problems(entitlement, catalogs, entitlements, resolved or {}).found


class Problems(NamedTuple):
    """`entitlement_problems` sorted: those of its own group (`own`: its grants would give access
    away; `late`: another team's object made the conflict after it granted the group), those of the
    groups it names as ones people are in (`named`: they let in whom its owner team chose; `taken`:
    one is a group another team granted before this Entitlement named it), and those of its
    permission set."""

    own: list[str]
    named: list[str]
    assigned: list[str]
    late: list[str]
    taken: list[str]

    @property
    def found(self) -> list[str]:
        """Every one, each once."""
        return list(dict.fromkeys([*self.own, *self.late, *self.named, *self.taken, *self.assigned]))

    @property
    def given_away(self) -> list[str]:
        """Those by which its grants would hand out access its owner team does not own: its own
        group is one people hold standing (a catalog's baseline group, a group an Entitlement names
        as one people are in: its grantee would be eligible for, or on call for, that Entitlement,
        and a grant's end would take the group from someone who holds it standing), or another
        team's production group, or its permission set is another team's. Stored so (before
        admission refused it), it is granted to nobody (`refused_grants`).

        Which of two teams' objects is at fault is not written in them: the one that came last is
        (`_came_first`). Its own group named so by an object of another team made after it, its
        spec unchanged since its creation, is that object's to fix (`late`): its grants go on, or
        another team could stop them by naming its group. The other way round, an Entitlement
        that names as one people are in a group another team's Entitlement (or catalog's
        production tier) granted first lets in whomever that team grants (`taken`), and is the one
        granted to nobody: of the two, exactly one is. Any other group it names as one people are
        in lets in only whom its owner team chose to let in: it refuses nothing of it."""
        return list(dict.fromkeys([*self.own, *self.taken, *self.assigned]))


def problems(
    entitlement: Obj, catalogs: Iterable[Obj], entitlements: Iterable[Obj], resolved: Mapping[str, str]
) -> Problems:
    """`entitlement_problems`, sorted (`Problems`)."""
    catalogs = list(catalogs)
    name = wire.name_of(entitlement)
    mine = _known(entitlement_uses(entitlement), resolved)
    tiers = _known([u for c in catalogs for u in catalog_uses(c)], resolved)
    others = _known([u for e in entitlements if wire.name_of(e) != name for u in entitlement_uses(e)], resolved)
    granted = next((u for u in mine if not u.standing), None)
    own, late = _granted_problems(name, granted, tiers, [*others, *mine]) if granted is not None else ([], [])
    named: list[str] = []
    taken: list[str] = []
    for use in mine:
        if use.standing:
            for other in _others([u for u in [*tiers, *others] if not u.standing], use):
                problem = _standing_problem(name, use, other)
                if other.owner != use.owner and _came_first(other, use):
                    taken.append(
                        f"{problem}. {_granter(other)}, of team {other.owner}, granted the group before Entitlement "
                        f"{name} was made: {name} would let in whomever team {other.owner} grants"
                    )
                else:
                    named.append(problem)
    return Problems(own, named, assignment_problems(entitlement, catalogs), late, taken)


def _granted_problems(
    name: str, granted: Use, tiers: list[Use], entitlements: list[Use]
) -> tuple[list[str], list[str]]:
    """Entitlement `name`'s own group (`granted`) against the catalogs' tiers and what the
    Entitlements (`name` among them) name as groups people are in: those that give access away,
    and those another team's object made after `name` granted the group (`Problems`)."""
    field, owner = _field(granted), granted.owner
    found = []
    for use in _others(tiers, granted):
        if use.standing:
            found.append(
                (
                    use,
                    f"{field} is {use.what}, whose members hold it standing: a grant "
                    "of it would be no grant at all, and the drift scan would remove them; name the group that "
                    "carries the production tier",
                )
            )
        elif use.owner != owner:
            found.append(
                (
                    use,
                    f"{field} is {use.what}: grants of team {owner} would give the "
                    f"production permissions of team {use.owner}; name a group of team {owner}",
                )
            )
    for use in _others(entitlements, granted):
        if use.standing:
            gives = _GIVES[use.field].format(use.entitlement)
            found.append(
                (
                    use,
                    f"{field} is {use.what}, whose members hold it standing: a grant of Entitlement {name} would "
                    f"make its grantee {gives}, and the drift scan of {name} would remove every member no grant "
                    f"backs; name a group that only grants of {name} fill",
                )
            )
    own = [problem for use, problem in found if not _excused(granted, use)]
    late = [
        f"{problem}. But {_object(use)}, of team {use.owner}, was made after Entitlement {name} granted the group: "
        f"it is the one to fix, and grants of {name} go on"
        for use, problem in found
        if _excused(granted, use)
    ]
    return own, late


def _excused(granted: Use, use: Use) -> bool:
    """Whether the granting Entitlement's grants go on although `use`, another team's, meets its
    group: only an Entitlement made later is refused instead (`taken`). A catalog is never refused
    by the operator (its pass assigns every tier it lists), so a tier on the group stays the
    Entitlement's problem, whichever came first: else its grantees would get that tier."""
    return bool(use.entitlement) and use.owner != granted.owner and _came_first(granted, use)


def _granter(use: Use) -> str:
    """The object whose grants fill `use`, in words."""
    return f"Entitlement {use.entitlement}" if use.entitlement else f"PermissionCatalog {use.owner}'s production tier"


def _object(use: Use) -> str:
    """The object that names `use`, in words."""
    return f"Entitlement {use.entitlement}" if use.entitlement else f"PermissionCatalog {use.owner}"


def _standing_problem(name: str, standing: Use, use: Use) -> str:
    """A group Entitlement `name` names as one people are in (`standing`) that is a group grants
    fill (`use`): another Entitlement's, a catalog's production group (its own group:
    `_granted_problems`)."""
    gives = _GIVES[standing.field].format(name)
    return (
        f"spec.{standing.field} names {standing.group!r}, which is {use.what}, which people hold only through a "
        f"grant: whoever is granted it would be {gives}, and the drift scan removes everyone else in it; name a "
        "group people are in standing (one the identity provider keeps)"
        + (f", or give Entitlement {use.entitlement} a group of its own" if use.entitlement else "")
    )


def assignment_problems(entitlement: Obj, catalogs: Iterable[Obj]) -> list[str]:
    """Why an Entitlement in account-assignment mode would give another team's permissions: its
    `permissionSet` names a tier of a catalog not its owner team's (`catalog`: a catalog is named
    after its team), or an ARN a catalog of another team reports for a tier
    (`status.<tier>.permissionSetArn`). An ARN no catalog reports is not jitaccess's to judge."""
    spec = wire.spec(entitlement)
    target = spec.get("identityCenter")
    assignment = target.get("accountAssignment") if isinstance(target, Mapping) else None
    permission_set = assignment.get("permissionSet") if isinstance(assignment, Mapping) else None
    if not isinstance(permission_set, Mapping):
        return []
    owner, catalog, tier = str(spec.get("owner") or ""), permission_set.get("catalog"), permission_set.get("tier")
    fix = f"name a tier of PermissionCatalog {owner}, team {owner}'s own"
    if catalog:
        if catalog == owner:
            return []
        return [
            f"{_PERMISSION_SET} names {names.CATALOG_REFERENCE_PREFIX}{catalog}/{tier}, a tier of PermissionCatalog "
            f"{catalog}: grants of team {owner} would give the {tier} permissions of team {catalog}; {fix}"
        ]
    arn = permission_set.get("arn")
    return [
        f"{_PERMISSION_SET}.arn {arn!r} is PermissionCatalog {wire.name_of(c)}'s {tier} permission set "
        f"(status.{tier}.permissionSetArn): grants of team {owner} would give the {tier} permissions of team "
        f"{wire.name_of(c)}; {fix}"
        for c in catalogs
        if wire.name_of(c) != owner
        for tier in names.TIERS
        if arn and isinstance(state := wire.status(c).get(tier), Mapping) and state.get("permissionSetArn") == arn
    ]


#: How the `PolicyRefused` message of a stored Entitlement begins when its grants would give
#: access its owner team does not own (`Problems.given_away`): the operator writes it
#: (`catalog._group_policy`), and the request and extension checks read it (`refused_grants`).
GIVES_AWAY = "it would grant access its owner team does not own, so it is granted to nobody until it is fixed"


def refused_grants(entitlement: Entitlement) -> str | None:
    """Why nobody is granted a stored Entitlement, nor has a grant of it extended: its `Ready` is
    `PolicyRefused` for access its owner team does not own (`GIVES_AWAY`), the operator's sentence
    (status is the operator's alone). None for any other `Ready`: a `PolicyRefused` for anything else
    (a `system:` group named, a duration below the minimum) gives nothing that is not its team's, and
    refuses nothing. Whatever generation it was written for: a spec changed since is checked again
    at once, and until then the refusal stands (a spec that still gives it away must not slip through)."""
    ready = cond.find(entitlement.status.conditions, names.READY)
    if ready is None or ready.reason != names.POLICY_REFUSED or not ready.message.startswith(GIVES_AWAY):
        return None
    return ready.message


def by_id_alone(entitlement: Obj, entitlements: Iterable[Obj]) -> bool:
    """Whether an Entitlement, or another one stored, names its group by id alone (`groupId`, or a
    GroupId in `groupName` stored before admission refused that, `ids_for_names`), or one people
    are in by a GroupId (stored so too): only the GroupIds Identity Center resolves the other
    groups' names to can match it (`unresolved`)."""
    return any(
        (not u.standing and not u.group) or u.group_id == u.group
        for e in [entitlement, *entitlements]
        for u in entitlement_uses(e)
    )


def unresolved(catalogs: Iterable[Obj], entitlements: Iterable[Obj]) -> set[str]:
    """The names (as written) of the groups people hold standing that the catalogs and Entitlements
    name and no object records a GroupId for: those a group granted by id alone can be matched with
    only through the ids `resolved` gives them (a granted group has its name beside any id, or is
    compared by name with these)."""
    uses = [u for c in catalogs for u in catalog_uses(c)] + [u for e in entitlements for u in entitlement_uses(e)]
    # A standing group stored by a GroupId written as its name is known by that id alone: the
    # granted groups' names are resolved too, to be matched with it.
    granted_too = any(u.standing and u.group_id == u.group for u in uses)
    return {u.group for u in uses if (u.standing or granted_too) and u.group_id is None}


def standing_ids(catalogs: Iterable[Obj], entitlements: Iterable[Obj], resolved: Mapping[str, str]) -> set[str]:
    """The GroupIds of the groups people hold standing: every catalog's baseline group and every
    group an Entitlement names as one people are in, by the id recorded or `resolved`. The drift
    scan removes nobody from them: their members are not the grants'."""
    uses = _known(
        [u for c in catalogs for u in catalog_uses(c)] + [u for e in entitlements for u in entitlement_uses(e)],
        resolved,
    )
    granted = [u for u in uses if not u.standing and u.entitlement]
    # A naming refused because another team's older Entitlement granted the group first (`_excused`:
    # that one's grants go on) holds nobody standing: the group stays scanned, else the grants that
    # go on would have no drift scan behind them.
    return {
        u.group_id for u in uses if u.standing and u.group_id and not any(_excused(g, u) for g in _others(granted, u))
    }


def ungranted_production(catalog: Obj, entitlements: Iterable[Obj]) -> str | None:
    """A warning: the production group is no Entitlement's of the catalog's team (yet: GitOps may
    apply the catalog first). Nobody can get production until one grants it."""
    name = wire.name_of(catalog)
    production = next((u for u in catalog_uses(catalog) if not u.standing), None)
    if production is None:
        return None
    granted = [u for e in entitlements for u in entitlement_uses(e) if not u.standing and u.owner == name]
    if _others(granted, production):
        return None
    return (
        f"no {names.ENTITLEMENT} of team {name} grants spec.production.groupName {production.group!r}: the production tier is "
        "held only through such an Entitlement's grants, and nobody holds it until one exists"
    )

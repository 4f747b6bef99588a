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

Group DisplayNames are compared case-insensitively and stripped: two names that a reviewer reads
as one are treated as one, and refused, whatever Identity Center would make of them. A group is
also known by its GroupId where the stored objects say it, and two groups whose ids are both known
and equal are one: an Entitlement's `groupId`, or the `status.groupId` its `groupName` resolved to
for the current generation (`groupids.group_id`); a catalog tier's `status.<tier>.groupId`, while
the name it was resolved from is the spec's (`groupids.tier_group_ids`). An id resolved for an
older name or generation is not trusted: admission never refuses on it. An Entitlement naming its
group by id only is compared by that id alone, so with a catalog tier no provisioning pass has
resolved yet it is not compared (that needs Identity Center).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jitaccess.api import names, wire
from jitaccess.domain import groupids

Obj = Mapping[str, Any]

#: An Entitlement's fields that name Identity Center groups people are in standing (its own group
#: is the one grants fill).
STANDING_FIELDS = ("eligibility.identityCenterGroups", "approval.autoApproveIdentityCenterGroups")


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

    def same(self, other: Use) -> bool:
        """Whether `other` is the same group: by name, or by id where both ids are known."""
        by_name = bool(key(self.group)) and key(self.group) == key(other.group)
        return by_name or (self.group_id is not None and self.group_id == other.group_id)


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
            found.append(Use(group, f"PermissionCatalog {name}'s {tier} group", name, standing, ids.get(tier)))
    return found


def entitlement_uses(entitlement: Obj) -> list[Use]:
    """The groups an Entitlement names: its own (filled by grants) and those people are in."""
    name, spec = wire.name_of(entitlement), wire.spec(entitlement)
    owner = str(spec.get("owner") or "")
    found = []
    target = spec.get("identityCenter")
    target = target if isinstance(target, Mapping) else {}
    group, group_id = target.get("groupName"), groupids.group_id(entitlement)
    if target.get("groupId"):
        what = f"the group of Entitlement {name} (team {owner}, by groupId {group_id})"
        found.append(Use("", what, owner, False, group_id))
    elif isinstance(group, str) and group:
        found.append(Use(group, f"the group of Entitlement {name} (team {owner})", owner, False, group_id))
    for path in STANDING_FIELDS:
        found += [Use(g, f"a group Entitlement {name} names in spec.{path}", owner, True) for g in _listed(spec, path)]
    return found


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


def entitlement_problems(entitlement: Obj, catalogs: Iterable[Obj]) -> list[str]:
    """Why an Entitlement's group would turn a catalog's tier standing or hand it to another team:
    a catalog's baseline group (standing) or another team's production group."""
    mine = [u for u in entitlement_uses(entitlement) if not u.standing]
    if not mine:
        return []
    field, owner = _field(mine[0]), mine[0].owner
    found = []
    for use in _others([u for c in catalogs for u in catalog_uses(c)], mine[0]):
        if use.standing:
            found.append(
                f"{field} is {use.what}, whose members hold it standing: a grant "
                "of it would be no grant at all, and the drift scan would remove them; name the group that carries "
                "the production tier"
            )
        elif use.owner != owner:
            found.append(
                f"{field} is {use.what}: grants of team {owner} would give the "
                f"production permissions of team {use.owner}; name a group of team {owner}"
            )
    return found


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

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
as one are treated as one, and refused, whatever Identity Center would make of them. An
Entitlement that names its group by id only (`groupId`) cannot be compared without asking
Identity Center, and is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jitaccess.api import names, wire

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

    group: str
    what: str
    owner: str  # the team of the object (a catalog's name, an Entitlement's owner)
    standing: bool  # its members hold it standing (True) or through a grant (False)


def _listed(spec: Mapping[str, Any], path: str) -> list[str]:
    node: Any = spec
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return [str(g) for g in node or [] if isinstance(g, str)] if isinstance(node, list) else []


def catalog_uses(catalog: Obj) -> list[Use]:
    """The groups a PermissionCatalog's tiers are assigned to."""
    name, spec = wire.name_of(catalog), wire.spec(catalog)
    found = []
    for tier, standing in (("baseline", True), ("production", False)):
        settings = spec.get(tier)
        group = settings.get("groupName") if isinstance(settings, Mapping) else None
        if isinstance(group, str) and group:
            found.append(Use(group, f"PermissionCatalog {name}'s {tier} group", name, standing))
    return found


def entitlement_uses(entitlement: Obj) -> list[Use]:
    """The groups an Entitlement names: its own (filled by grants) and those people are in."""
    name, spec = wire.name_of(entitlement), wire.spec(entitlement)
    owner = str(spec.get("owner") or "")
    found = []
    target = spec.get("identityCenter")
    target = target if isinstance(target, Mapping) else {}
    group = target.get("groupName")
    if isinstance(group, str) and group and not target.get("groupId"):
        found.append(Use(group, f"the group of Entitlement {name} (team {owner})", owner, False))
    for path in STANDING_FIELDS:
        found += [Use(g, f"a group Entitlement {name} names in spec.{path}", owner, True) for g in _listed(spec, path)]
    return found


def _others(uses: Iterable[Use], group: str) -> list[Use]:
    return [u for u in uses if key(u.group) == key(group)]


def catalog_problems(catalog: Obj, catalogs: Iterable[Obj], entitlements: Iterable[Obj]) -> list[str]:
    """Why `catalog`'s tiers would make production standing, or JIT access standing, given the
    other catalogs and the Entitlements stored; each names the other object and the fix."""
    name, spec = wire.name_of(catalog), wire.spec(catalog)
    others = [u for c in catalogs if wire.name_of(c) != name for u in catalog_uses(c)]
    others += [u for e in entitlements for u in entitlement_uses(e)]
    found = []
    production = spec.get("production") if isinstance(spec.get("production"), Mapping) else None
    group = (production or {}).get("groupName")
    if isinstance(group, str) and group:
        for use in _others(others, group):
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
    baseline = spec.get("baseline") if isinstance(spec.get("baseline"), Mapping) else None
    group = (baseline or {}).get("groupName")
    if isinstance(group, str) and group:
        for use in _others(others, group):
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
    group, owner = mine[0].group, mine[0].owner
    found = []
    for use in _others([u for c in catalogs for u in catalog_uses(c)], group):
        if use.standing:
            found.append(
                f"spec.identityCenter.groupName {group!r} is {use.what}, whose members hold it standing: a grant "
                "of it would be no grant at all, and the drift scan would remove them; name the group that carries "
                "the production tier"
            )
        elif use.owner != owner:
            found.append(
                f"spec.identityCenter.groupName {group!r} is {use.what}: grants of team {owner} would give the "
                f"production permissions of team {use.owner}; name a group of team {owner}"
            )
    return found


def ungranted_production(catalog: Obj, entitlements: Iterable[Obj]) -> str | None:
    """A warning: the production group is no Entitlement's of the catalog's team (yet: GitOps may
    apply the catalog first). Nobody can get production until one grants it."""
    name, spec = wire.name_of(catalog), wire.spec(catalog)
    production = spec.get("production")
    group = production.get("groupName") if isinstance(production, Mapping) else None
    if not isinstance(group, str) or not group:
        return None
    granted = [u for e in entitlements for u in entitlement_uses(e) if not u.standing and u.owner == name]
    if _others(granted, group):
        return None
    return (
        f"no {names.ENTITLEMENT} of team {name} grants spec.production.groupName {group!r}: the production tier is "
        "held only through such an Entitlement's grants, and nobody holds it until one exists"
    )

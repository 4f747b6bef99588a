"""`permissions [TEAM]`: what a team's roles may do in AWS, in words, and where Identity Center stands.

Reads the team's PermissionCatalog (named after its TeamOwnership): baseline and production side by
side, one line per thing a role may do, so what production adds stands out; then, from the
catalog's status, each permission set, its assignment in each account and the last provisioning
result. Without TEAM, the caller's own teams (members, by name or group). Plain dicts, as the rest
of the plugin: the IAM actions behind each line are in docs/api.md.
"""

from __future__ import annotations

from typing import Any

from jitaccess.api import names, wire
from jitaccess.cli import objects as o
from jitaccess.cli.errors import NotFound
from jitaccess.cli.objects import Obj
from jitaccess.cli.session import Session
from jitaccess.cli.text import as_list, dump, printable, table

TIERS = ("baseline", "production")
COLUMNS = ("ACCESS", "RESOURCE", "BASELINE", "PRODUCTION")


def _where(entry: dict[str, Any]) -> str:
    place = [str(entry[key]) for key in ("region", "account") if entry.get(key)]
    return f" ({', '.join(place)})" if place else ""


def _lines(permissions: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, on what) for every entry of one tier's permissions, in the catalog's order."""
    s3, secrets = permissions.get("s3") or {}, permissions.get("secrets") or {}
    return [
        *(("managed policy", str(arn).rpartition("/")[2]) for arn in permissions.get("managedPolicies") or []),
        *(("run pipeline", f"{e.get('name')}{_where(e)}") for e in permissions.get("pipelines") or []),
        *(("invoke Lambda", f"{e.get('name')}{_where(e)}") for e in permissions.get("lambdaFunctions") or []),
        *(
            ("exec into ECS", f"{e.get('cluster')}/{e.get('service')}{_where(e)}")
            for e in permissions.get("ecsExec") or []
        ),
        *(("read S3", f"s3://{path}") for path in s3.get("read") or []),
        *(("write S3", f"s3://{path}") for path in s3.get("write") or []),
        *(("read secret", f"{e.get('name')}{_where(e)}") for e in secrets.get("read") or []),
        *(("edit secret", f"{e.get('name')}{_where(e)}") for e in secrets.get("edit") or []),
    ]


def describe(catalog: Obj) -> tuple[list[str], list[tuple[str, str, str, str]]]:
    """The catalog in words: the tiers' groups, accounts and sessions, and one row per permission
    (what, on what, baseline, production), baseline's first and then what production adds."""
    spec = wire.spec(catalog)
    base, production = spec.get("baseline") or {}, spec.get("production")
    team = wire.name_of(catalog)
    out = [f"Team {team}" + (f": {printable(str(spec['description']))}" if spec.get("description") else "")]
    tiers = [("baseline", base)] + ([("production", production)] if production else [])
    for tier, settings in tiers:
        held = "held through a grant of its Entitlement" if tier == "production" else "standing"
        out.append(
            f"  {tier}: group {settings.get('groupName')} ({held}), accounts "
            f"{', '.join(settings.get('accounts') or []) or '-'}, sessions of {settings.get('sessionDuration')}"
        )
    if not production:
        out.append("  no production tier (the catalog has no spec.production)")
    baseline_lines = _lines(base.get("permissions") or {})
    added = _lines((production or {}).get("adds") or {})
    rows = [(what, on, "yes", "yes" if production else "-") for what, on in baseline_lines]
    rows += [(what, on, "-", "added") for what, on in added if (what, on) not in baseline_lines]
    return out, rows


def state(catalog: Obj) -> list[str]:
    """Where Identity Center stands, from the catalog's status (written by the operator)."""
    status = wire.status(catalog)
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == names.READY), None)
    if ready is None and not status.get("lastResult"):
        return ["In Identity Center: not provisioned yet (the operator has not reported on this catalog)"]
    out = ["In Identity Center:"]
    if ready is not None:
        out.append(f"  {ready.get('reason')}: {printable(str(ready.get('message') or ''))}".rstrip(": "))
    for tier in TIERS:
        tier_status = status.get(tier) or {}
        if not tier_status:
            continue
        out.append(f"  {tier}: {tier_status.get('permissionSetArn') or 'no permission set yet'}")
        for account in tier_status.get("accounts") or []:
            why = f" ({printable(str(account['message']))})" if account.get("message") else ""
            out.append(f"    account {account.get('account')}: {account.get('state')}{why}")
        denied = tier_status.get("deniedUsers") or []
        if denied:
            out.append(
                f"    sessions denied (revoked): {', '.join(str(d.get('user') or d.get('userId')) for d in denied)}"
            )
    last = status.get("lastResult")
    if last:
        message = f": {printable(str(last['message']))}" if last.get("message") else ""
        out.append(f"  last provisioning: {last.get('outcome')} at {last.get('time')}{message}")
    return out


def _my_teams(session: Session) -> list[str]:
    teams, _ = o.list_all(session.api, names.TEAMS)
    return sorted(wire.name_of(t) for t in teams if o.is_member(t, session.me))


def show(session: Session, team: str | None, *, output: str) -> int:
    """The catalog of `team`, or of each of the caller's teams."""
    api = session.api
    if team:
        catalogs = [o.get(api, names.CATALOGS, team, what="PermissionCatalog")]
    else:
        mine = _my_teams(session)
        if not mine:
            raise NotFound(
                f"{session.me.username} is a member of no team: name one (`kubectl jit permissions TEAM`; "
                "`kubectl get permissioncatalogs` lists them)"
            )
        found = [(name, o.get_optional(api, names.CATALOGS, name)) for name in mine]
        catalogs = [c for _, c in found if c is not None]
        for name, catalog in found:
            if catalog is None:
                session.note(f"team {name} has no PermissionCatalog: its roles are not managed by jitaccess")
        if not catalogs:
            raise NotFound(f"none of your teams ({', '.join(mine)}) has a PermissionCatalog")
    if output != "table":
        dump(as_list(catalogs) if len(catalogs) > 1 or not team else catalogs[0], output, session.out)
        return 0
    for index, catalog in enumerate(catalogs):
        header, rows = describe(catalog)
        session.out.write(("\n" if index else "") + "\n".join(header) + "\n\n")
        if rows:
            table(rows, COLUMNS, session.out, indent="  ")
        else:
            session.out.write("  (no permissions listed)\n")
        footer = [
            "",
            *state(catalog),
            f"Change it by pull request to the team's PermissionCatalog {wire.name_of(catalog)} (GitOps).",
        ]
        session.out.write("\n".join(footer) + "\n")
    return 0

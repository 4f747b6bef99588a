"""`kubectl jit rbac slack`: the ClusterRole of the identity that applies Slack decisions.

That identity may impersonate exactly the approvers and backup approvers the TeamOwnerships name
(`jitaccess.domain.impersonation`), so the ClusterRole follows the TeamOwnerships: the platform
team prints it from the cluster's TeamOwnerships, or from the GitOps files (-f), and applies it
(or, with the chart, puts the list into the values: `-o values`). Printed to stdout; what Slack
cannot do for a team (approver groups) is said on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jitaccess.api import names
from jitaccess.cli import objects as o
from jitaccess.cli.errors import OK, UsageError
from jitaccess.cli.session import Session
from jitaccess.cli.text import dump
from jitaccess.domain import impersonation


def teams_in_files(paths: Sequence[str]) -> list[dict[str, Any]]:
    """The TeamOwnerships in YAML files (`-` is stdin), also inside a `List`; other kinds are skipped.

    A file is read as it is written, unchecked by the API server: a TeamOwnership the rule cannot
    read (a string for a list) is refused naming the file, the object and the field, and so are
    files that hold no TeamOwnership at all: the role printed would let Slack act as nobody, and
    applied it would take every approver's Slack rights away."""
    import yaml

    found: list[dict[str, Any]] = []
    others: set[str] = set()
    for path in paths:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text()
            documents = list(yaml.safe_load_all(text))
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"cannot read TeamOwnerships from {path}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"cannot read TeamOwnerships from {path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                f"offset {exc.start}): save it as UTF-8"
            ) from exc
        kinds: set[str] = set()
        teams = _teams(documents, kinds)
        # `kind: Teamownership` is no TeamOwnership to kubectl either: its approvers would be left out.
        misspelt = sorted(k for k in kinds if k.lower() == names.TEAM_OWNERSHIP.lower())
        if misspelt:
            raise UsageError(
                f"{path}: kind {misspelt[0]} is not {names.TEAM_OWNERSHIP} (its case matters): fix the file"
            )
        others |= kinds
        for index, team in enumerate(teams):
            _check(team, f"{'stdin' if path == '-' else path}: TeamOwnership", index)
        found += teams
    if not found:
        seen = f" (kinds found: {', '.join(sorted(others))})" if others else ""
        raise UsageError(
            f"no TeamOwnership in {', '.join(paths)}{seen}: a role from none would let Slack act as nobody; "
            "give the files that hold your TeamOwnerships (kind: TeamOwnership)"
        )
    return found


def _check(team: Mapping[str, Any], where: str, index: int, *, stored: bool = False) -> str:
    """The team's name, once it is one the role can be read from. An approver name that confers
    nothing is refused in a file (admission would refuse it too), but not in a team `stored` before
    admission refused it: the operator does not count it, the role leaves it out (`usernames`), and
    refusing would keep every other team's new approvers out of the role until it is fixed."""
    metadata = team.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        raise UsageError(f"{where} #{index + 1} has no metadata.name: name it as in the cluster")
    problems = impersonation.shape_problems(team) or ([] if stored else impersonation.left_out(team))
    if problems:
        raise UsageError(f"{where} {name}: {'; '.join(problems)}: fix it (kubectl apply would refuse it too)")
    return name


def _teams(documents: Iterable[Any], others: set[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for doc in documents:
        if not isinstance(doc, Mapping):
            continue
        if doc.get("kind") == "List":
            items = doc.get("items") or []
            found += _teams(items if isinstance(items, list) else [], others)
        elif doc.get("kind") == names.TEAM_OWNERSHIP:
            found.append(dict(doc))
        elif doc.get("kind"):
            others.add(str(doc["kind"]))
    return found


def slack(session: Session, files: Sequence[str], name: str, output: str) -> int:
    if files:
        teams = teams_in_files(files)
    else:
        # Through the plugin's wrapper: no jitaccess API (404) or no role to list teams (403) is one
        # line saying what to do, not a traceback.
        teams = o.list_all(session.api, names.TEAMS)[0]
        for index, listed in enumerate(teams):
            team = _check(listed, "the cluster's TeamOwnership", index, stored=True)
            for problem in impersonation.left_out(listed):
                session.note(
                    f"# team {team}: {problem}; stored before admission refused it, it approves nothing and "
                    "the role leaves it out: fix the team"
                )
    for team, groups in impersonation.group_only_teams(teams).items():
        session.note(
            f"# team {team} names approver groups ({', '.join(groups)}): Slack cannot tell who is in a group, so "
            "their members decide with kubectl unless also listed by name in spec.approvers or spec.backupApprovers"
        )
    if output == "values":
        dump({"slack": {"approvers": impersonation.usernames(teams)}}, "yaml", session.out)
    else:
        dump(impersonation.cluster_role(teams, name), "yaml", session.out)
    return OK

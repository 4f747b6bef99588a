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
from jitaccess.cli.errors import OK, UsageError
from jitaccess.cli.kube import object_path
from jitaccess.cli.session import Session
from jitaccess.cli.text import dump
from jitaccess.domain import impersonation


def teams_in_files(paths: Sequence[str]) -> list[dict[str, Any]]:
    """The TeamOwnerships in YAML files (`-` is stdin), also inside a `List`; other kinds are skipped."""
    import yaml

    found: list[dict[str, Any]] = []
    for path in paths:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text()
            documents = list(yaml.safe_load_all(text))
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"cannot read TeamOwnerships from {path}: {exc}") from exc
        found += _teams(documents)
    return found


def _teams(documents: Iterable[Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for doc in documents:
        if not isinstance(doc, Mapping):
            continue
        if doc.get("kind") == "List":
            found += _teams(doc.get("items") or [])
        elif doc.get("kind") == names.TEAM_OWNERSHIP:
            found.append(dict(doc))
    return found


def slack(session: Session, files: Sequence[str], name: str, output: str) -> int:
    if files:
        teams = teams_in_files(files)
    else:
        teams = list(session.api.get(object_path(names.GROUP, names.VERSION, names.TEAMS)).get("items") or [])
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

"""The Slack impersonator on a local control plane: the narrow identity that applies Slack decisions.

In a cluster it is a ServiceAccount whose tokens the operator obtains (the chart); locally it is a
user of its own, `IMPERSONATOR`, authenticated by a client certificate minted from the control
plane's CA, and bound to the ClusterRole `kubectl jit rbac slack` prints
(`jitaccess.domain.impersonation.cluster_role`), under a dev-only name: impersonate the approvers
of the TeamOwnerships given, nothing else. Start the operator with `JITACCESS_SLACK_IMPERSONATOR_KUBECONFIG` set to the
path `impersonator_kubeconfig` returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from devenv.controlplane import ControlPlane
from devenv.paths import EXAMPLES
from jitaccess.domain import impersonation

#: The local impersonator's user name (its client certificate's CN; no groups).
IMPERSONATOR = "jitaccess-dev-slack-impersonator"
#: Its ClusterRole and that role's binding: a dev-only name, as examples/rbac.yaml's are. The chart's
#: are `<release>-slack-impersonator` (`jitaccess-slack-impersonator`, `kubectl jit rbac slack`'s
#: default): in a cluster with the chart a local run named so would replace the chart's objects.
ROLE = "jitaccess-dev-slack-impersonator"


def example_teams() -> list[dict[str, Any]]:
    """The examples' TeamOwnerships (what `make dev` and the end-to-end tests apply)."""
    documents = yaml.safe_load_all((EXAMPLES / "01-teams.yaml").read_text())
    return [doc for doc in documents if isinstance(doc, dict) and doc.get("kind") == "TeamOwnership"]


def objects(teams: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The impersonator's ClusterRole for `teams` and its binding to `IMPERSONATOR`."""
    role = impersonation.cluster_role(teams, ROLE)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": ROLE, "labels": {"app.kubernetes.io/part-of": "jitaccess"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": IMPERSONATOR}],
    }
    return [role, binding]


def apply_role(cluster: ControlPlane, teams: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """(Re-)apply the impersonator's ClusterRole for `teams`, and its binding (`objects`); the role."""
    role, binding = objects(teams)
    cluster.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, binding]})
    )
    return role


def impersonator_kubeconfig(cluster: ControlPlane, teams: Iterable[Mapping[str, Any]] | None = None) -> Path:
    """Set up the impersonator on `cluster` for `teams` (default: the examples') and return its kubeconfig."""
    apply_role(cluster, example_teams() if teams is None else teams)
    return cluster.mint_kubeconfig(IMPERSONATOR)

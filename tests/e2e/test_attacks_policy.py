"""Attacks 111 and on of docs/security.md: policy objects (TeamOwnership, Entitlement,
PermissionCatalog) written so that they give more than they read.

The GitOps repository is reviewed, but a reviewer reads a group's or a user's name, not what the
cluster makes of it: `system:authenticated` as an on-call group, another team's standing group as
the production tier's. Each write is made as GitOps would (the admin, `kubectl apply`), through the
real API server and the operator's webhooks; each is refused with a message that names the field
and the fix, and the stored object is unchanged.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from devenv.paths import EXAMPLES
from tests.support.harness import Jit

pytestmark = pytest.mark.e2e


def example(file: str, name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / file).read_text()) if d]
    return copy.deepcopy(next(d for d in docs if d["metadata"]["name"] == name))


def refused(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode != 0, f"{result.args} was accepted:\n{result.stdout}"
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
    return result.stderr


def refused_and_unchanged(system: Jit, manifest: dict[str, Any], *fragments: str) -> str:
    """`manifest` applied as GitOps would (the admin) is refused with `fragments`, and the object
    stored before it is as it was."""
    kind, name = manifest["kind"].lower(), manifest["metadata"]["name"]
    before = (system.get(kind, name) or {}).get("spec")
    said = refused(system.apply(manifest, check=False), *fragments)
    assert (system.get(kind, name) or {}).get("spec") == before
    return said


@pytest.fixture
def policy(system: Jit) -> Iterator[Jit]:
    """The session's teams and Entitlements as the examples have them, put back afterwards (should
    a write that ought to be refused get through)."""
    yield system
    for file in ("01-teams.yaml", "02-entitlements.yaml"):
        system.kubectl("apply", "-f", str(EXAMPLES / file))


# --- 111. a group that stands for everyone, as an Entitlement's on-call or break-glass group ---------


@pytest.mark.parametrize(
    ("field", "group", "said"),
    [
        (
            ("approval", "autoApproveGroups"),
            "system:authenticated",
            "spec.approval.autoApproveGroups names system:authenticated, which stands for every user "
            "(ServiceAccounts included): name the on-call group",
        ),
        (
            ("breakGlass", "groups"),
            "system:serviceaccounts:default",
            "spec.breakGlass.groups names system:serviceaccounts:default, which stands for every ServiceAccount "
            "of namespace default: name the group of the people who may break glass",
        ),
        (("approval", "autoApproveGroups"), "system:masters", "a group of Kubernetes' own (system:)"),
    ],
)
def test_111_an_entitlement_never_gives_approval_to_everyone(
    policy: Jit, field: tuple[str, str], group: str, said: str
) -> None:
    """`autoApproveGroups: [system:authenticated]` read like an on-call group in review, and
    auto-approved every logged-in user (mallory, in no team) into production; break-glass to such a
    group let anyone approve their own request."""
    bad = example("02-entitlements.yaml", "prod-eng-payments")
    bad["spec"].setdefault(field[0], {})[field[1]] = ["sre", group]
    refused_and_unchanged(policy, bad, said)


@pytest.mark.parametrize(
    ("field", "group"),
    [
        ("memberGroups", "system:authenticated"),
        ("approverGroups", "system:masters"),
        ("backupApproverGroups", "system:nodes"),
    ],
)
def test_111_a_team_never_names_a_system_group(policy: Jit, field: str, group: str) -> None:
    bad = example("01-teams.yaml", "payments")
    bad["spec"][field] = [group]
    refused_and_unchanged(policy, bad, f"spec.{field} names {group}, which stands for")

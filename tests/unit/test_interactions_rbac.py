"""Whom the Slack impersonator may act as: the ClusterRole generated from the TeamOwnerships, the
`kubectl jit rbac slack` command that prints it, and the impersonator's typed errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from devenv.paths import EXAMPLES
from jitaccess.adapters.impersonation import DecisionError, ServiceAccountRef, _error
from jitaccess.cli import main
from jitaccess.domain import impersonation


def team(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "jitaccess.dev/v1alpha1", "kind": "TeamOwnership", "metadata": {"name": name}, "spec": spec}


TEAMS = [
    team("ledger", approvers=["lena@example.com"], backupApprovers=["carol@example.com"], members=["bob@example.com"]),
    team("payments", approvers=["paula@example.com"], backupApprovers=["carol@example.com"], approverGroups=["leads"]),
]


def test_cluster_role_lists_every_approver_and_backup_approver_once() -> None:
    role = impersonation.cluster_role(TEAMS)
    assert role["metadata"]["name"] == "jitaccess-slack-impersonator"
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["users"],
            "verbs": ["impersonate"],
            "resourceNames": ["carol@example.com", "lena@example.com", "paula@example.com"],
        }
    ]


def test_no_approver_means_no_rule_never_an_empty_resource_names() -> None:
    # An empty resourceNames would allow impersonating *every* user.
    assert impersonation.cluster_role([team("empty", members=["bob@example.com"])])["rules"] == []
    assert impersonation.cluster_role([])["rules"] == []


def test_members_groups_and_requesters_are_never_listed() -> None:
    names = impersonation.usernames([*TEAMS, team("x", members=["mallory@example.com"], memberGroups=["g"])])
    assert "bob@example.com" not in names and "mallory@example.com" not in names
    assert not any(n in names for n in ("leads", "g", "system:masters"))
    assert impersonation.group_only_teams(TEAMS) == {"payments": ["leads"]}


def test_kubernetes_own_names_are_never_listed_whatever_a_team_says() -> None:
    """A TeamOwnership stored before admission refused system: approvers (or a file read as
    written): listed, the Slack endpoint could act as that ServiceAccount or node."""
    stored = team(
        "ledger",
        approvers=["system:serviceaccount:kube-system:default", "lena@example.com"],
        backupApprovers=["system:node:worker-1", "system:admin"],
    )
    assert impersonation.usernames([stored]) == ["lena@example.com"]
    only_own = team("old", approvers=["system:admin"], backupApprovers=["system:serviceaccount:default:x"])
    assert impersonation.usernames([only_own]) == []
    assert impersonation.cluster_role([only_own])["rules"] == [], "never an empty resourceNames (every user)"


def test_a_look_alike_approver_is_never_listed() -> None:
    """Stored before admission refused it: it approves nothing, and the endpoint must not be able to
    act as whoever the authenticator reports under that name."""
    stored = team("ledger", approvers=["l\u0435na@example.com", "lena@example.com"], backupApprovers=[" carol"])
    assert impersonation.usernames([stored]) == ["lena@example.com"]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main.run(list(argv), io.StringIO(), out, err)
    return code, out.getvalue(), err.getvalue()


def test_cli_prints_the_cluster_role_from_files(tmp_path: Path) -> None:
    code, out, err = run_cli("rbac", "slack", "-f", str(EXAMPLES / "01-teams.yaml"))
    assert code == 0 and err == ""
    role = yaml.safe_load(out)
    assert role == impersonation.cluster_role(yaml.safe_load_all((EXAMPLES / "01-teams.yaml").read_text()))
    assert role["rules"][0]["resourceNames"] == ["carol@example.com", "lena@example.com", "paula@example.com"]


def test_cli_values_and_groups_note_and_lists(tmp_path: Path) -> None:
    listed = tmp_path / "teams.yaml"
    listed.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": TEAMS}))
    other = tmp_path / "other.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    code, out, err = run_cli("rbac", "slack", "-f", str(listed), "-f", str(other), "-o", "values")
    assert code == 0
    assert yaml.safe_load(out) == {
        "slack": {"approvers": ["carol@example.com", "lena@example.com", "paula@example.com"]}
    }
    assert "team payments names approver groups (leads)" in err


def test_cli_reads_stdin_and_names_the_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(yaml.safe_dump_all(TEAMS)))
    code, out, _ = run_cli("rbac", "slack", "-f", "-", "--name", "jit-slack")
    assert code == 0 and yaml.safe_load(out)["metadata"]["name"] == "jit-slack"


def test_cli_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = run_cli("rbac", "slack", "-f", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read TeamOwnerships" in err


def test_cli_rbac_imports_nothing_heavy() -> None:
    script = textwrap.dedent(
        """
        import sys
        from jitaccess.cli import rbac
        print(json.dumps(sorted(m for m in ("pydantic", "kubernetes", "kopf", "boto3") if m in sys.modules)))
        """
    )
    done = subprocess.run([sys.executable, "-c", "import json\n" + script], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_api_server_errors_keep_status_and_message_without_the_webhook_prefix() -> None:
    denied = ApiException(status=403, reason="Forbidden")
    denied.body = json.dumps(
        {"message": 'admission webhook "accessrequests-stamp.jitaccess.dev" denied the request: x is not an approver'}
    )
    error = _error(denied)
    assert (error.status, error.message, error.impersonation_refused) == (403, "x is not an approver", False)
    rbac = ApiException(status=403, reason="Forbidden")
    rbac.body = json.dumps({"message": 'users "m" is forbidden: User "i" cannot impersonate resource "users"'})
    assert _error(rbac).impersonation_refused
    garbled = ApiException(status=500, reason="Internal")
    garbled.body = "<html>"
    assert _error(garbled).message == "Internal"
    assert isinstance(_error(garbled), DecisionError)


def test_service_account_reference() -> None:
    assert ServiceAccountRef.parse("jitaccess/jitaccess-slack") == ServiceAccountRef("jitaccess", "jitaccess-slack")
    for bad in ("jitaccess", "/x", "a/", "a/b/c"):
        with pytest.raises(ValueError):
            ServiceAccountRef.parse(bad)

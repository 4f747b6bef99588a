"""`kubectl jit rbac slack -f FILE` refuses files it cannot read as TeamOwnerships, naming the file,
the object and the field: a string where a list belongs was read as its letters (one-letter users
made impersonable), and files with no TeamOwnership printed a role with no rule (applied, it takes
every approver's Slack rights away)."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from jitaccess.cli import main
from jitaccess.cli.errors import REFUSED, UNREACHABLE, USAGE
from jitaccess.cli.kube import ApiError
from jitaccess.cli.session import Session
from jitaccess.domain import impersonation
from tests.unit.test_interactions_rbac import TEAMS, run_cli, team


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "kind: TeamOwnership\nmetadata: {name: payments}\nspec: {approvers: paula@example.com}\n",
            "TeamOwnership payments: spec.approvers is a string, not a list (approvers: [NAME, ...])",
        ),
        (
            "kind: TeamOwnership\nmetadata: {name: payments}\nspec: {backupApprovers: carol, approverGroups: leads}\n",
            "TeamOwnership payments: spec.backupApprovers is a string, not a list (backupApprovers: [NAME, ...]); "
            "spec.approverGroups is a string",
        ),
        (
            "kind: TeamOwnership\nmetadata: {name: t}\nspec: {approvers: [bob, 5, null]}\n",
            "TeamOwnership t: spec.approvers[1] is a number, not a name; spec.approvers[2] is null, not a name",
        ),
        ("kind: TeamOwnership\nmetadata: {name: t}\nspec: x\n", "TeamOwnership t: spec is a string, not a mapping"),
        ("kind: TeamOwnership\nspec: {approvers: [bob]}\n", "TeamOwnership #1 has no metadata.name"),
        (
            "kind: List\nitems: [{kind: TeamOwnership, metadata: {name: t}, spec: {approvers: bob}}]\n",
            "TeamOwnership t: spec.approvers is a string",
        ),
        (
            "kind: TeamOwnership\nmetadata: {name: t}\nspec: {backupApprovers: [carol, 'system:serviceaccount:kube-system:x']}\n",
            "TeamOwnership t: spec.backupApprovers[1] is system:serviceaccount:kube-system:x, a system: user: approvers are people",
        ),
        (
            'kind: TeamOwnership\nmetadata: {name: t}\nspec: {approvers: [lena@example.com, "l\u0435na@example.com"]}\n',
            "TeamOwnership t: spec.approvers[1] 'l\u0435na@example.com' mixes the scripts Cyrillic and Latin",
        ),
    ],
)
def test_a_team_the_rule_cannot_read_is_refused_naming_file_object_and_field(
    tmp_path: Path, text: str, said: str
) -> None:
    path = tmp_path / "teams.yaml"
    path.write_text(text)
    code, out, err = run_cli("rbac", "slack", "-f", str(path))
    assert (code, out) == (USAGE, "")
    assert err.startswith(f"error: {path}: {said}"), err


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "no TeamOwnership in {path}: a role from none would let Slack act as nobody"),
        ("- 1\n- 2\n", "no TeamOwnership in {path}: a role from none"),
        ("kind: ConfigMap\nmetadata: {name: x}\n", "no TeamOwnership in {path} (kinds found: ConfigMap): a role"),
        (
            "kind: Teamownership\nmetadata: {name: payments}\nspec: {approvers: [paula@example.com]}\n",
            "{path}: kind Teamownership is not TeamOwnership (its case matters): fix the file",
        ),
    ],
)
def test_files_without_a_team_are_refused(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "teams.yaml"
    path.write_text(text)
    code, out, err = run_cli("rbac", "slack", "-f", str(path))
    assert (code, out) == (USAGE, "")
    assert err.startswith("error: " + said.format(path=path)), err


def test_a_misspelt_kind_is_refused_beside_good_files(tmp_path: Path) -> None:
    good, typo = tmp_path / "good.yaml", tmp_path / "typo.yaml"
    good.write_text(yaml.safe_dump_all(TEAMS))
    typo.write_text(yaml.safe_dump({**team("cards", approvers=["cora@example.com"]), "kind": "teamOwnership"}))
    code, out, err = run_cli("rbac", "slack", "-f", str(good), "-f", str(typo))
    assert (code, out) == (USAGE, "")
    assert "kind teamOwnership is not TeamOwnership" in err


def test_a_file_not_in_utf8_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "teams.yaml"
    path.write_bytes(yaml.safe_dump(TEAMS[0]).encode("utf-16"))
    code, out, err = run_cli("rbac", "slack", "-f", str(path))
    assert (code, out) == (USAGE, "")
    assert err == (
        f"error: cannot read TeamOwnerships from {path}: not UTF-8 text (byte 0xff at offset 0): save it as UTF-8\n"
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(path.read_bytes()), encoding="utf-8"))
    code, _, err = run_cli("rbac", "slack", "-f", "-")
    assert code == USAGE and "cannot read TeamOwnerships from -: not UTF-8 text" in err


def test_shape_problems_of_a_well_formed_team_are_none() -> None:
    assert [impersonation.shape_problems(t) for t in TEAMS] == [[], []]
    assert impersonation.shape_problems({"metadata": {"name": "t"}}) == []


def test_a_team_stored_before_the_rule_is_noted_and_its_names_left_out_not_the_whole_role_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Read from the cluster: a team stored before admission refused system: and look-alike approvers
    keeps nobody else's approvers out of the role; the names are left out and said."""
    stored = team(
        "ledger",
        approvers=["system:serviceaccount:kube-system:default", "l\u0435na@example.com"],
        backupApprovers=["lena@example.com"],
    )
    items = {"items": [stored, *TEAMS]}
    monkeypatch.setattr(Session, "api", property(lambda self: Listing(items)))
    code, out, err = run_cli("rbac", "slack", "-o", "values")
    assert code == 0, err
    assert yaml.safe_load(out) == {
        "slack": {"approvers": ["carol@example.com", "lena@example.com", "paula@example.com"]}
    }
    assert "team ledger: spec.approvers[0] is system:serviceaccount:kube-system:default, a system: user" in err
    assert "team ledger: spec.approvers[1] 'l\u0435na@example.com' mixes the scripts Cyrillic and Latin" in err
    assert "the role leaves it out: fix the team" in err


class Listing:
    """The API server's answer to the one read the command makes: the TeamOwnerships."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    def get(self, path: str, **_: Any) -> dict[str, Any]:
        assert path.endswith("/teamownerships"), path
        return self.answer


class Refusing:
    """An API server that refuses the listing of TeamOwnerships."""

    def __init__(self, error: ApiError) -> None:
        self.error = error

    def get(self, path: str, **_: Any) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "code", "said"),
    [
        (
            ApiError(404, "NotFound", "the server could not find the requested resource"),
            UNREACHABLE,
            "error: jitaccess is not installed on this cluster (no jitaccess.dev API while listing teamownerships)",
        ),
        (
            ApiError(
                403,
                "Forbidden",
                'teamownerships.jitaccess.dev is forbidden: User "bob" cannot list resource "teamownerships" in API '
                'group "jitaccess.dev" at the cluster scope',
            ),
            REFUSED,
            "error: listing teamownerships was refused: teamownerships.jitaccess.dev is forbidden",
        ),
    ],
)
def test_a_cluster_that_refuses_the_listing_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, error: ApiError, code: int, said: str
) -> None:
    """No CRDs (404) or no role to list teams (403): the ApiError escaped as a traceback."""
    monkeypatch.setattr(Session, "api", property(lambda self: Refusing(error)))
    got, out, err = run_cli("rbac", "slack")
    assert (got, out) == (code, "")
    assert err.startswith(said) and err.count("\n") == 1, err


def test_any_api_error_no_wrapper_caught_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last net, in `main`: a call left unwrapped still ends in the refusal's words and code."""

    def failing(*_: Any) -> int:
        raise ApiError(500, "InternalError", "etcdserver: request timed out")

    monkeypatch.setitem(main.COMMANDS, "rbac", failing)
    got, out, err = run_cli("rbac", "slack")
    assert (got, out, err) == (REFUSED, "", "error: kubectl jit rbac was refused: etcdserver: request timed out\n")

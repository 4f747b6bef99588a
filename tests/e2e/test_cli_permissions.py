"""`kubectl jit permissions [TEAM]` against the real API server, as the test users.

The example catalogs (examples/04-permissions.yaml) are applied as GitOps would; every user may
read any team's catalog, and without TEAM the plugin shows the caller's own teams'.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.cli_run import Cli
from tests.support.harness import Jit

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "04-permissions.yaml"
ALICE, BOB, MALLORY = "alice@example.com", "bob@example.com", "mallory@example.com"


@pytest.fixture
def cli(system: Jit, cli: Cli) -> Cli:
    """The shared `cli`, with every example applied (the catalogs included)."""
    system.kubectl("apply", "-f", str(EXAMPLES))
    return cli


def test_my_teams_catalog_side_by_side(cli: Cli) -> None:
    result = cli.run("permissions", user=ALICE)
    assert result.code == 0, result
    out = result.out
    assert out.startswith("Team payments: Card payments API, refunds and the settlement exports\n")
    assert "  baseline: group eng-payments (standing), accounts 111122223333, sessions of 8h" in out
    assert "  production: group prod-eng-payments (held through a grant of its Entitlement)" in out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "ACCESS RESOURCE BASELINE PRODUCTION" in lines
    assert "invoke Lambda payments-replay-webhook yes yes" in lines
    assert "invoke Lambda payments-issue-refund - added" in lines
    assert "exec into ECS payments/payments-refunds-worker - added" in lines
    assert "write S3 s3://payments-settlement-exports/corrections/* - added" in lines
    assert "managed policy ReadOnlyAccess yes yes" in lines
    assert "In Identity Center:" in out
    assert "ledger" not in out


def test_any_team_by_name_and_as_json(cli: Cli) -> None:
    result = cli.run("permissions", "ledger", user=ALICE)
    assert result.code == 0, result
    lines = [" ".join(line.split()) for line in result.out.splitlines()]
    assert "invoke Lambda ledger-dr-failover (eu-central-1) - added" in lines
    as_json = cli.run("permissions", "payments", "-o", "json", user=BOB)
    assert as_json.code == 0, as_json
    assert json.loads(as_json.out)["spec"]["production"]["groupName"] == "prod-eng-payments"


def test_no_team_and_no_catalog_exit_4(cli: Cli) -> None:
    outsider = cli.run("permissions", user=MALLORY)
    assert outsider.code == 4, outsider
    assert "mallory@example.com is a member of no team: name one (`kubectl jit permissions TEAM`" in outsider.err
    missing = cli.run("permissions", "paymints", user=BOB)
    assert missing.code == 4, missing
    assert "PermissionCatalog 'paymints' not found: did you mean payments?" in missing.err

"""Empty filters are refused: code that tests a filter by truthiness reads an empty one as no
filter at all (`revoke --all --team ""` ended every team's grants)."""

from __future__ import annotations

import pytest

from jitaccess.cli import decisions, main
from jitaccess.cli.errors import USAGE, UsageError
from tests.unit.test_cli_commands import FakeApi, err, incident, out, session


@pytest.fixture
def api() -> FakeApi:
    made = FakeApi()
    incident(made)
    return made


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["revoke", "--all", "--reason", "INC-9", "--team", ""], "--team"),
        (["revoke", "--all", "--reason", "INC-9", "--entitlement", ""], "--entitlement"),
        (["revoke", "--all", "--reason", "INC-9", "--team", "  "], "--team"),
        (["list", "--team", ""], "--team"),
        (["audit", "--entitlement", ""], "--entitlement"),
        (["audit", "--user", ""], "--user"),
        (["audit", "--verify", "--entitlement", ""], "--entitlement"),
        (["approve", "r", "--uid", ""], "--uid"),
        (["deny", "r", "--reason", "no", "--uid", ""], "--uid"),
        (["who-has", ""], "ENTITLEMENT"),
        (["permissions", ""], "TEAM"),
        (["request", "", "--reason", "INC-1 x"], "ENTITLEMENT"),
    ],
)
def test_an_empty_filter_is_a_usage_error_naming_it(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # No kubeconfig is read and nothing is sent: the parser refuses it first.
    with pytest.raises(SystemExit) as exited:
        main.main(argv)
    assert exited.value.code == USAGE
    said = capsys.readouterr()
    assert f"argument {flag}: is empty: give " in said.err
    assert "Traceback" not in said.err and said.out == ""


def test_an_empty_scope_is_refused_where_it_is_used(api: FakeApi) -> None:
    for scope in ({"team": ""}, {"entitlement": " "}):
        with pytest.raises(UsageError, match="is empty: name one"):
            decisions.revoke_all(session(api), decisions.Scope(**scope), reason="INC-9", wait=False, timeout=None)
    assert not [c for c in api.calls if c[0] in ("patch", "delete")]


def test_revoke_all_says_when_no_entitlement_has_the_name(api: FakeApi) -> None:
    s = session(api)
    scope = decisions.Scope(entitlement="prod-eng-paymens")
    assert decisions.revoke_all(s, scope, reason="INC-9", wait=False, timeout=None) == 0
    assert err(s) == (
        "note: no Entitlement prod-eng-paymens exists now (did you mean prod-eng-payments?); "
        "grants and requests that name it are still ended\n"
    )
    assert out(s).startswith("nothing to revoke")
    s = session(api)
    assert (
        decisions.revoke_all(
            s, decisions.Scope(entitlement="prod-eng-payments"), reason="INC-9", wait=False, timeout=None
        )
        == 0
    )
    assert err(s) == "", "an Entitlement that exists: no note"

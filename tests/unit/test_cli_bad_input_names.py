"""An empty NAME is refused: its path would be the whole collection's (`status ''` printed the
list as if it were one request; a deletion by it would be a deletecollection)."""

from __future__ import annotations

import io
import shlex

import pytest

from jitaccess.api import names
from jitaccess.cli import decisions, main
from jitaccess.cli import objects as o
from jitaccess.cli.errors import NOT_FOUND, USAGE, NotFound, UsageError
from jitaccess.cli.kube import object_path
from jitaccess.cli.session import Session
from tests.unit.test_cli_commands import ALICE, FakeApi, cond, req, session


def test_object_path_refuses_an_empty_name() -> None:
    assert object_path("g", "v1", "things") == "/apis/g/v1/things"
    assert object_path("g", "v1", "things", "a/b") == "/apis/g/v1/things/a%2Fb"
    for empty in ("", "  "):
        with pytest.raises(UsageError, match=r"^NAME is empty: give the name of the thing$"):
            object_path("g", "v1", "things", empty)


@pytest.mark.parametrize(
    "command",
    [
        "status ''",
        "status '' -o json",
        "approve ''",
        "approve request/",
        "deny extension/ --reason no",
        "extend '' --by 30m --reason 'INC-1 more'",
        "review ''",
        "withdraw ''",
        "break-glass '' --reason 'INC-1 down'",
    ],
)
def test_every_command_refuses_an_empty_name(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi()
    monkeypatch.setattr(Session, "api", property(lambda self: api))
    monkeypatch.setattr(Session, "me", property(lambda self: ALICE))
    stdout, stderr = io.StringIO(), io.StringIO()
    assert main.run(shlex.split(command), io.StringIO(), stdout, stderr) == USAGE
    assert stderr.getvalue().startswith("error: NAME is empty: give the name of the ")
    assert stdout.getvalue() == ""
    collections = {o.path(plural) for plural in names.KINDS}
    assert not [call for call in api.calls if call[1] in collections], "no collection read as one object"


def test_a_request_naming_no_entitlement_has_no_owner_team() -> None:
    """An empty name read from an object is no object, not the caller's usage error."""
    api = FakeApi()
    pending = req(cond("Ready", "False", "Pending"), name="r")
    pending["spec"]["entitlement"] = ""
    api.objects[o.path(names.REQUESTS, "r")] = pending
    with pytest.raises(NotFound, match="asks for entitlement '', which does not exist") as raised:
        decisions.decide(session(api), "r", approve=True, reason=None)
    assert raised.value.code == NOT_FOUND


def test_an_engineer_without_the_role_is_told_whom_to_ask() -> None:
    """The first thing a new engineer not yet bound meets: RBAC's refusal, and what to do about it."""
    from jitaccess.cli import objects as o
    from jitaccess.cli.errors import Refused
    from jitaccess.cli.kube import ApiError

    rbac = ApiError(
        403,
        "Forbidden",
        'entitlements.jitaccess.dev "prod-eng-payments" is forbidden: User "zed@example.com" cannot get resource '
        '"entitlements" in API group "jitaccess.dev" at the cluster scope',
    )
    said = o.refusal(rbac, "reading Entitlement prod-eng-payments")
    assert isinstance(said, Refused) and "bind you to the jitaccess-requester ClusterRole" in str(said)
    webhook = ApiError(403, "Forbidden", "alice@example.com may not approve this request: ...")
    assert "jitaccess-requester" not in str(o.refusal(webhook, "approving"))

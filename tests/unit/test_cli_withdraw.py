"""`kubectl jit withdraw NAME`: the requester deletes their own pending request, conditionally on
the request they checked; anything else is refused before a call, or by the server."""

from __future__ import annotations

import io
from typing import Any

import pytest

from jitaccess.api import names
from jitaccess.cli import decisions, main
from jitaccess.cli import objects as o
from jitaccess.cli.errors import NOT_FOUND, REFUSED, Refused
from jitaccess.cli.kube import ApiError
from tests.unit.test_cli_commands import FakeApi, cond, err, out, req, session

PATH = o.path(names.REQUESTS, "r")


class DeletingApi(FakeApi):
    def __init__(self) -> None:
        super().__init__()
        self.delete_errors: list[ApiError] = []

    def delete(self, path: str, preconditions: dict[str, str]) -> dict[str, Any]:
        self.calls.append(("delete", (path, preconditions)))
        if self.delete_errors:
            raise self.delete_errors.pop(0)
        self.objects.pop(path, None)
        return {}


def stored(*conditions: dict[str, str], requester: str = "alice@example.com", version: str = "9") -> dict[str, Any]:
    base = req(*conditions)
    return {
        **base,
        "metadata": {**base["metadata"], "name": "r", "uid": "u-1", "resourceVersion": version},
        "spec": {**base["spec"], "requester": requester},
    }


@pytest.fixture
def api() -> DeletingApi:
    return DeletingApi()


@pytest.mark.parametrize("conditions", [(), (cond("Ready", "False", "Pending"),)])
def test_the_requester_withdraws_a_pending_request(api: DeletingApi, conditions: tuple[dict[str, str], ...]) -> None:
    api.objects[PATH] = stored(*conditions)
    alice = session(api)
    assert decisions.withdraw(alice, "r") == 0
    assert ("delete", (PATH, {"uid": "u-1", "resourceVersion": "9"})) in api.calls
    assert out(alice) == "withdrew accessrequest r (prod-eng-payments): nothing is granted of it\n"


def test_a_change_in_between_checks_again(api: DeletingApi) -> None:
    """Approved between the read and the deletion: the precondition fails, and the check refuses."""
    api.objects[PATH] = stored(cond("Ready", "False", "Pending"))
    api.delete_errors = [ApiError(409, "Conflict", "Precondition failed: ResourceVersion")]
    original = api.get

    def get(path: str, **query: Any) -> dict[str, Any]:
        if any(c[0] == "delete" for c in api.calls):
            api.objects[PATH] = stored(
                cond("Approved", "True", "Approved"), cond("Ready", "False", "Pending", "provisioning"), version="10"
            )
        return original(path, **query)

    api.get = get  # type: ignore[method-assign]
    with pytest.raises(Refused, match=r"accessrequest r is no longer pending \(approved: provisioning\)"):
        decisions.withdraw(session(api), "r")
    assert len([c for c in api.calls if c[0] == "delete"]) == 1


@pytest.mark.parametrize(
    ("obj", "words"),
    [
        (
            stored(cond("Ready", "False", "Pending"), requester="bob@example.com"),
            "is bob@example.com's: only its.*`kubectl jit deny r --uid u-1 --reason ...`",
        ),
        (stored(cond("Denied", "True", "Denied"), cond("Ready", "False", "Denied", "no")), r"\(Denied: no\)"),
        (stored(cond("Approved", "True", "AutoApproved"), cond("Ready", "True", "Granted", "x")), r"\(approved: x\)"),
        (stored(cond("Ready", "False", "TimedOut", "late")), r"\(TimedOut: late\)"),
    ],
)
def test_only_ones_own_undecided_request(api: DeletingApi, obj: dict[str, Any], words: str) -> None:
    api.objects[PATH] = obj
    with pytest.raises(Refused, match=words):
        decisions.withdraw(session(api), "r")
    assert not [c for c in api.calls if c[0] == "delete"]


def test_the_servers_refusal_and_a_missing_request_exit_with_their_codes(
    api: DeletingApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.objects[PATH] = stored(cond("Ready", "False", "Pending"))
    api.delete_errors = [ApiError(403, "Forbidden", "admission webhook denied the request: only alice may withdraw it")]
    alice = session(api)
    monkeypatch.setattr("jitaccess.cli.session.Session", lambda *_: alice)
    assert main.run(["withdraw", "r"], io.StringIO(), alice.out, alice.err) == REFUSED
    assert "withdrawing accessrequest r was refused: admission webhook denied the request" in err(alice)
    assert main.run(["withdraw", "nope"], io.StringIO(), alice.out, alice.err) == NOT_FOUND


def test_a_request_withdrawn_already_is_said_to_be_and_not_deleted_again(api: DeletingApi) -> None:
    # Held by the records finalizer until its `withdrawn` record is archived: no longer pending.
    held = stored(cond("Ready", "False", "Pending"))
    held["metadata"]["deletionTimestamp"] = "2026-11-23T12:00:00Z"
    api.objects[PATH] = held
    alice = session(api)
    assert decisions.withdraw(alice, "r") == 0
    assert not [c for c in api.calls if c[0] == "delete"]
    assert out(alice) == "accessrequest r is withdrawn already: it goes once its audit record is archived\n"
    assert not o.awaiting_decision(held)
    assert o.awaiting_decision(stored(cond("Ready", "False", "Pending")))


def test_a_scheduled_request_is_withdrawn_and_the_help_says_so(
    api: DeletingApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """Approved for a later start, no access yet: its requester may take it back (docs/api.md). The
    help said "only while nobody has approved or denied it", which kept requesters from trying."""
    api.objects[PATH] = stored(cond("Approved", "True", "Approved"), cond("Ready", "False", "Scheduled"))
    alice = session(api)
    assert decisions.withdraw(alice, "r") == 0
    assert ("delete", (PATH, {"uid": "u-1", "resourceVersion": "9"})) in api.calls
    with pytest.raises(SystemExit):
        main.main(["withdraw", "--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert "approved for a later start (Scheduled), until it starts" in said
    assert "Only while nobody has approved or denied it" not in said

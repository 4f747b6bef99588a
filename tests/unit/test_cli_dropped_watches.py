"""A watch that drops while a command waits (`--wait`): a connection reset, an event cut in the
middle, the API server restarting. The wait watches again from the last resourceVersion it saw
until its deadline; giving up, it names what it waited for and says that it stays, as Ctrl-C does.
It ended with exit 5 "cannot reach ..." and no word that the request or revocation existed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jitaccess.api import names
from jitaccess.cli import decisions, extend, request
from jitaccess.cli import objects as o
from jitaccess.cli.errors import Disconnected, Unreachable
from jitaccess.cli.kube import ApiError
from tests.unit.test_cli_commands import GRANTED, FakeApi, cond, err, extension, grant, options, out, req, session

RESET = Disconnected("cannot reach https://cluster (context prod): Connection reset by peer: check the cluster")
RESTARTING = ApiError(503, "ServiceUnavailable", "the apiserver is shutting down")


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda _: None)


def watched_from(api: FakeApi) -> list[str]:
    return [call[1][0] for call in api.calls if call[0] == "watch"]


@pytest.mark.parametrize("failure", [RESET, RESTARTING], ids=["reset", "restarting"])
def test_a_request_wait_watches_again_from_where_it_was(failure: Exception) -> None:
    api = FakeApi()
    pending = req(cond("Ready", "False", "Pending", "waiting for approval"))
    pending["metadata"]["resourceVersion"] = "12"
    api.watches = [[{"type": "MODIFIED", "object": pending}], failure, [{"type": "MODIFIED", "object": GRANTED}]]
    s = session(api)
    assert request.run(s, options()) == 0, err(s)
    assert "obtained prod-eng-payments until" in out(s)
    assert watched_from(api) == ["5", "12", "12"], "from the last resourceVersion seen, not the first"
    assert "lost the connection to the cluster while waiting (" in err(s) and "watching again" in err(s)


def test_a_request_wait_that_cannot_reach_the_cluster_by_its_deadline_says_the_request_stays() -> None:
    api = FakeApi()
    api.watches = [RESET]
    with pytest.raises(Unreachable) as gave_up:
        request.run(session(api), options(timeout=timedelta(milliseconds=100)))
    assert gave_up.value.message == (
        f"{RESET.message}; stopped waiting: accessrequest alice-prod-eng-payments-abcde stays: "
        "`kubectl jit status alice-prod-eng-payments-abcde` shows where it stands"
    )


def test_an_extension_wait_watches_again() -> None:
    api = FakeApi()
    api.objects[o.path(names.GRANTS, "g-alice")] = grant("g-alice", "prod-eng-payments", user="alice@example.com")
    done = extension("g-alice-ext-abcde", "g-alice", "alice@example.com", "Extended")
    api.watches = [RESET, [{"type": "MODIFIED", "object": done}]]
    s = session(api)
    assert extend.run(s, "g-alice", by="30m", reason="INC-1 more", wait=True, timeout=None) == 0, err(s)
    assert "extended accessgrant g-alice" in out(s)

    api.watches = [RESET]
    with pytest.raises(Unreachable, match=r"stopped waiting: accessextension g-alice-ext-abcde stays: `kubectl get"):
        extend.run(session(api), "g-alice", by="30m", reason="INC-1", wait=True, timeout=timedelta(milliseconds=100))


def test_a_revocation_wait_watches_again() -> None:
    api = FakeApi()
    live = grant("g", "prod-eng-payments")
    api.objects[o.path(names.GRANTS, "g")] = live
    ended: dict[str, Any] = {**live, "status": {"conditions": [cond("Ready", "False", "Revoked")]}}
    api.watches = [RESET, [{"type": "MODIFIED", "object": ended}]]
    s = session(api)
    assert decisions.revoke(s, "g", reason="INC-1", wait=True, timeout=None) == 0, err(s)
    assert "revoked accessgrant g" in out(s)

    api.watches = [RESET]
    with pytest.raises(Unreachable, match=r"stopped waiting: the revocation is recorded and the operator carries it"):
        decisions.revoke(session(api), "g", reason="INC-1", wait=True, timeout=timedelta(milliseconds=100))


def test_a_refusal_while_watching_is_no_drop() -> None:
    """A 403 is the cluster's answer, not a connection lost: said at once, not watched again."""
    api = FakeApi()
    api.watches = [ApiError(403, "Forbidden", "cannot watch resource accessrequests")]
    with pytest.raises(Exception, match="cannot watch resource accessrequests") as refused:
        request.run(session(api), options())
    assert not isinstance(refused.value, Unreachable)
    assert len(watched_from(api)) == 1

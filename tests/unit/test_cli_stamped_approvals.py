"""An approval stamped on a request that the operator has not acted on: it may no longer count (its
approver left the team, or one of several needed stopped counting), and then the webhook admits a
denial over it (`domain.admission`). `kubectl jit deny` lets the webhook judge; `status` never
offers `approve` for it."""

from __future__ import annotations

from typing import Any

import pytest

from jitaccess.api import names
from jitaccess.cli import decisions, views
from jitaccess.cli import objects as o
from jitaccess.cli.errors import Refused
from jitaccess.cli.objects import Identity
from jitaccess.cli.session import Session
from tests.unit.test_cli_commands import FakeApi, cond, out, req, session

PATH = o.path(names.REQUESTS, "r")


def stamped(*conditions: dict[str, str]) -> dict[str, Any]:
    """alice's request, approved by lena (stamped by the webhook) before lena left the team: the
    operator does not take the approval, and the request still waits."""
    base = req(*(conditions or (cond("Ready", "False", "Pending", "waiting for approval"),)))
    base["metadata"].update(
        name="r",
        uid="u-1",
        annotations={names.ANNOTATION_APPROVED: "true", names.ANNOTATION_APPROVED_BY: "lena@example.com"},
    )
    return base


def paula(api: FakeApi) -> Session:
    made = session(api)
    made.__dict__["me"] = Identity("paula@example.com", frozenset())
    return made


def test_a_denial_over_an_approval_not_acted_on_is_sent_for_the_webhook_to_judge() -> None:
    api = FakeApi()
    api.objects[PATH] = stamped()
    s = paula(api)
    assert decisions.decide(s, "r", approve=False, reason="INC-1 lena has left") == 0
    [(_, (path, patch))] = [c for c in api.calls if c[0] == "patch"]
    assert path == PATH and patch["metadata"]["annotations"][names.ANNOTATION_DENIED] == "true"
    assert out(s).startswith("denied accessrequest r (alice@example.com, prod-eng-payments")


@pytest.mark.parametrize(
    ("obj", "approve", "words"),
    [
        # Another approval over a stamped one is refused early, as the webhook would.
        (stamped(), True, "already carries an approval by lena@example.com"),
        # Taken by the operator: final, whatever the approver does since.
        (stamped(cond("Approved", "True", "Approved")), False, r"already approved \(lena@example\.com\)"),
    ],
)
def test_a_decision_over_a_decision_taken_is_refused_early(obj: dict[str, Any], approve: bool, words: str) -> None:
    api = FakeApi()
    api.objects[PATH] = obj
    with pytest.raises(Refused, match=words):
        decisions.decide(paula(api), "r", approve=approve, reason="INC-1 x")
    assert not [c for c in api.calls if c[0] == "patch"]


def test_status_offers_no_approval_over_a_stamped_one() -> None:
    api = FakeApi()
    api.objects[PATH] = stamped()
    s = session(api)
    assert views.status(s, "r", output="table") == 0
    shown = out(s)
    assert "kubectl jit approve" not in shown
    assert "Waiting for: the operator, to act on the approval by lena@example.com" in shown
    assert '`kubectl jit deny r --uid u-1 --reason "..."`' in shown

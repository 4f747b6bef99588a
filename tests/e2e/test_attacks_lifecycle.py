"""Attack 116: a request withdrawn and re-created under the same name while the operator decides on it.

The operator's writes to a request's `status` are read-modify-writes by name: a conflict (the object
changed since the handler's view of it) reads the object again and writes there. A request deleted
and created again under its name is a new object with that name, so a decision taken for the first
(here an on-call auto-approval, for which the operator asks Identity Center live) landed on the
second: alice's new request, for another team's entitlement that waits for that team's approver,
was recorded `Approved` ("auto (on call)", with its audit record), got a grant, and ended `Failed`
when that grant's check found no approval behind it; a decision nobody took for it, and a request
she had to make again. Now each write goes to the request it was decided for (its uid) only.
Identity Center's answer is held (the emulator's `faults.delay`) so that the withdrawal and the new
request fall, every time, into the moment the operator's handler waits for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.harness import Jit, eventually

ALICE = "alice@example.com"
ONCALL_ENTITLEMENT, GROUP, ONCALL = "e2e-lifecycle-oncall", "e2e-lifecycle-group", "e2e-lifecycle-oncall"
OTHER_TEAMS = "prod-eng-ledger"
NAME = "lifecycle-reused"
ENTITLEMENT = f"""
apiVersion: jitaccess.dev/v1alpha1
kind: Entitlement
metadata: {{name: {ONCALL_ENTITLEMENT}}}
spec:
  owner: ledger
  identityCenter: {{groupName: {GROUP}}}
  eligibility: {{identityCenterGroups: [prod-eligible]}}
  approval: {{autoApproveIdentityCenterGroups: [{ONCALL}]}}
"""
#: How long the operator's on-call question to Identity Center is held: the attacker's window.
HELD = 4.0
#: How long the operator reuses an eligibility answer (`Runtime.recently_eligible`): an earlier test's
#: answer for alice would spare the admission webhook its question, and the held pair of calls would
#: then not be the webhook's and the handler's.
ELIGIBILITY_REUSED = 5.0


def _group(system: Jit, name: str) -> None:
    try:
        system.ic.create_group(name)
    except Exception:  # made by an earlier run of the session
        system.ic.empty_group(name)


@pytest.fixture
def on_call(system: Jit) -> Iterator[str]:
    """An Entitlement of team ledger (alice is not in it) that approves the members of an Identity
    Center on-call group at once, with alice on call."""
    _group(system, GROUP)
    _group(system, ONCALL)
    system.ic.add_member(ONCALL, ALICE)
    system.apply(ENTITLEMENT)
    system.wait_reason("entitlement", ONCALL_ENTITLEMENT, "Resolved", timeout=30)
    try:
        yield ONCALL_ENTITLEMENT
    finally:
        system.ic.faults.clear()
        system.clean()
        system.kubectl("delete", "entitlement", ONCALL_ENTITLEMENT, "--ignore-not-found", "--timeout=60s")
        system.ic.empty_group(GROUP)
        system.ic.empty_group(ONCALL)


# --- 116. a request withdrawn and re-created under its name while the operator decides -------------


def test_116_a_decision_for_a_withdrawn_request_never_lands_on_its_successor(system: Jit, on_call: str) -> None:
    time.sleep(ELIGIBILITY_REUSED + 0.5)
    asked = system.ic.faults.calls["IsMemberInGroups"]
    # The admission webhook's eligibility question, then the handler's live on-call one: both held.
    system.ic.faults.delay("IsMemberInGroups", HELD, times=2)
    system.request(NAME, on_call, user=ALICE)
    first = system.get("accessrequest", NAME)
    assert first is not None
    eventually(
        lambda: system.ic.faults.calls["IsMemberInGroups"] >= asked + 2 or None,
        timeout=20,
        what="the operator asking whether alice is on call",
    )
    # While the operator waits for that answer: withdrawn, and a new request under the same name,
    # for ledger's entitlement, which only lena may approve for alice.
    system.kubectl("delete", "accessrequest", NAME, "--wait=true", user=ALICE)
    system.request(NAME, OTHER_TEAMS, user=ALICE)
    second = system.get("accessrequest", NAME)
    assert second is not None and second["metadata"]["uid"] != first["metadata"]["uid"]

    # Once the held answer is out, the withdrawn request's handler has acted on it: the new request
    # waits for ledger's approver, and nothing came of the withdrawn one.
    time.sleep(HELD + 1)
    now = system.wait_reason("accessrequest", NAME, "Pending", "Granted", "Failed", timeout=20)
    assert now["metadata"]["uid"] == second["metadata"]["uid"]
    assert now["spec"]["entitlement"] == OTHER_TEAMS
    conditions = {c["type"]: c for c in now["status"]["conditions"]}
    assert conditions["Ready"]["reason"] == "Pending", conditions
    assert conditions.get("Approved", {}).get("status") != "True", conditions
    assert "waiting for approval by an approver of team ledger" in conditions["Ready"]["message"], conditions
    assert system.get("accessgrant", NAME) is None
    assert system.members(GROUP) == set()
    assert system.members(OTHER_TEAMS) == set()

"""Attacks 23-25 of docs/security.md: what a grant may rest on when access is to begin.

The same style as `test_attacks.py` (real identities, plain kubectl, the real API server, the
operator's webhooks, RBAC and the admission policy), for the moment an approval turns into access:

- 23: an approval that arrives just after the request's deadline, before the operator's deadline
  timer (one tick a second) has noticed it;
- 24: a requester who lost their eligibility while the request was pending;
- 25: `status` written as `Approved=True` by the operator's identity, with no approval stamped.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from kubernetes.config import new_client_from_config

from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e

ALICE, LENA = "alice@example.com", "lena@example.com"
LEDGER = "prod-eng-ledger"
ELIGIBILITY_GROUP = "prod-eligible"
APPROVED, APPROVED_BY = "jitaccess.dev/approved", "jitaccess.dev/approved-by"
GROUP, VERSION, REQUESTS = "jitaccess.dev", "v1alpha1", "accessrequests"
#: The pending timeout of the operator that attack 23 runs against: long enough for a request to be
#: created and become Pending, short enough to wait for.
TIMEOUT_SECONDS = 8


def no_access(system: Jit, name: str) -> None:
    assert system.get("accessgrant", name) is None
    assert system.members(LEDGER) == set()


# --- 23. a decision after the deadline -------------------------------------------------------------


@pytest.fixture
def short_timeout(jit: Jit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jit]:
    """The system with an operator whose requests time out after TIMEOUT_SECONDS, in place of the
    shared one (two operators would both serve the webhooks and act on every request)."""
    log_dir = tmp_path_factory.mktemp("operator-short-timeout")
    with jit.replaced(log_dir, JITACCESS_PENDING_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS)) as system:
        yield system


def test_23_an_approval_just_after_the_deadline_is_refused_and_grants_nothing(short_timeout: Jit) -> None:
    """lena's approvals reach the API server 20, 50 and 300 ms after the deadline, before the
    operator's one-second timer has (most likely) declared the requests TimedOut: admission refuses
    them from the deadline alone, and the requests end TimedOut with nothing granted.

    The approvals are sent with lena's own token kubeconfig from this process (a merge patch, as
    `kubectl annotate` sends it), so that they arrive when meant to, not a kubectl start-up later.
    """
    system = short_timeout
    offsets = {"late-approval-20ms": 0.02, "late-approval-50ms": 0.05, "late-approval-300ms": 0.3}
    # Three requesters: one user may have one request for the same access waiting (attack 90).
    requesters = dict(zip(offsets, (ALICE, "paula@example.com", "mallory@example.com"), strict=True))
    for name in offsets:
        system.request(name, LEDGER, user=requesters[name])
    created = {}
    for name in offsets:
        request = system.wait_reason("accessrequest", name, "Pending")
        created[name] = dt.datetime.fromisoformat(request["metadata"]["creationTimestamp"])
    client = new_client_from_config(str(system.cluster.user_kubeconfig(LENA)))  # type: ignore[no-untyped-call]
    lena = CustomObjectsApi(client)
    patch = {"metadata": {"annotations": {APPROVED: "true"}}}

    def approve_late(name: str) -> str:
        deadline = created[name] + dt.timedelta(seconds=TIMEOUT_SECONDS)
        time.sleep(max(0.0, (deadline - dt.datetime.now(dt.UTC)).total_seconds() + offsets[name]))
        try:
            lena.patch_cluster_custom_object(
                GROUP, VERSION, REQUESTS, name, patch, _content_type="application/merge-patch+json"
            )
        except ApiException as exc:
            return f"refused ({exc.status}): {exc.body}"
        return "admitted"

    with ThreadPoolExecutor(len(offsets)) as pool:
        outcomes = dict(zip(offsets, pool.map(approve_late, offsets), strict=True))
    for name, outcome in outcomes.items():
        assert outcome.startswith("refused"), f"{name}: an approval after the deadline was {outcome}"
        # The timer may, rarely, have ended the request in the moment before: refused all the same.
        assert "this request timed out at" in outcome or "already finished (TimedOut)" in outcome, outcome
    for name in offsets:
        ended = system.wait_reason("accessrequest", name, "TimedOut", timeout=10)
        assert APPROVED_BY not in (ended["metadata"].get("annotations") or {})
        no_access(system, name)


# --- 24. eligibility lost while pending ------------------------------------------------------------


def _remove_from_group(system: Jit, group: str, user: str) -> None:
    client, store = system.ic.client(), system.ic.identity_store_id
    membership = client.get_group_membership_id(
        IdentityStoreId=store, GroupId=system.ic.group_id(group), MemberId={"UserId": system.ic.user_id(user)}
    )
    client.delete_group_membership(IdentityStoreId=store, MembershipId=membership["MembershipId"])


@pytest.fixture
def alice_eligible_again(system: Jit) -> Iterator[None]:
    """alice back in the eligibility group after the test (the emulator is shared by the session)."""
    try:
        yield None
    finally:
        system.ic.add_member(ELIGIBILITY_GROUP, ALICE)


def test_24_a_requester_no_longer_eligible_is_not_granted_on_approval(system: Jit, alice_eligible_again: None) -> None:
    """alice asks for ledger's entitlement (she is eligible then), is taken out of prod-eligible
    while it is pending, and lena approves within the seconds the webhook's "eligible" is cached
    for: the request ends NotEligible, naming the group, and nobody is added to anything."""
    system.request("lost-eligibility", LEDGER, user=ALICE)
    system.wait_reason("accessrequest", "lost-eligibility", "Pending")
    _remove_from_group(system, ELIGIBILITY_GROUP, ALICE)
    system.kubectl("annotate", "accessrequest", "lost-eligibility", f"{APPROVED}=true", user=LENA)

    ended = system.wait_reason("accessrequest", "lost-eligibility", "NotEligible", "Granted")
    ready = next(c for c in ended["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "NotEligible", ready
    assert f"{ALICE} is not in the Identity Center group(s) {ELIGIBILITY_GROUP}" in ready["message"]
    no_access(system, "lost-eligibility")


# --- 25. status written as Approved by the operator's identity ----------------------------------------


def test_25_status_approved_without_a_stamped_approval_grants_nothing(system: Jit) -> None:
    """The e2e operator acts as the cluster admin, so the admin here is "anyone who can act as the
    operator's identity": it writes Approved=True (and an approvedBy) into the status of a request
    nobody approved, then nudges the operator with a harmless annotation. The operator re-derives
    the approval from the stamps, finds none, and grants nothing."""
    system.request("forged-status", LEDGER, user=ALICE)
    pending = system.wait_reason("accessrequest", "forged-status", "Pending")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    forged = {
        "status": {
            "approvedBy": LENA,
            "conditions": [
                {"type": "Approved", "status": "True", "reason": "Approved", "message": "", "lastTransitionTime": now},
                *(c for c in pending["status"]["conditions"] if c["type"] != "Approved"),
            ],
        }
    }
    system.kubectl(
        "patch", "accessrequest", "forged-status", "--subresource=status", "--type=merge", "-p", json.dumps(forged)
    )
    assert (system.condition("accessrequest", "forged-status", "Approved") or {}).get("status") == "True"
    system.kubectl("annotate", "accessrequest", "forged-status", "example.com/nudge=1")

    ended = system.wait_reason("accessrequest", "forged-status", "Failed", "Granted", "Active")
    ready = next(c for c in ended["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "Failed", ready
    assert "no approval stamped by the admission webhook backs it" in ready["message"]
    no_access(system, "forged-status")
    warnings = eventually(
        lambda: [e for e in system.events("forged-status", kind="AccessRequest") if e.get("type") == "Warning"],
        what="a Warning event on the request",
    )
    assert any("no approval stamped" in e.get("message", "") for e in warnings), warnings

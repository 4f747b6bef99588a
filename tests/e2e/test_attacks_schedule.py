"""Attacks 70-76 of docs/security.md: a scheduled start and the reason policy (issue 13).

The same style as `test_attacks.py` (real identities, plain kubectl, the real API server, the
operator's webhooks, RBAC and the admission policy). Each ends with nothing granted and nobody
left in any group:

- 70: a `startTime` in the past (to begin at once, skipping a change window's approval);
- 71: a `startTime` beyond the operator's horizon (an approval left dormant for months);
- 72: a `startTime` moved after the approval (approved for one window, used in another);
- 73: eligibility removed in Identity Center between the approval and the start;
- 74: the approver no longer an approver of the owner team at the start;
- 75: a reason that fails the entitlement's pattern: the refusal shows the pattern and an example;
- 76: an Entitlement whose example fails its own pattern (or whose pattern does not compile).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.harness import Jit

pytestmark = pytest.mark.e2e

ALICE, LENA, CAROL = "alice@example.com", "lena@example.com", "carol@example.com"
PAYMENTS, LEDGER = "prod-eng-payments", "prod-eng-ledger"
ELIGIBILITY_GROUP = "prod-eligible"
APPROVED = "jitaccess.dev/approved"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rfc3339(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def refused(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode != 0, f"{result.args} was accepted:\n{result.stdout}"
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
    return result.stderr


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def nothing_granted(system: Jit, name: str, group: str = LEDGER) -> None:
    assert system.get("accessgrant", name) is None
    assert system.members(group) == set()


def scheduled(system: Jit, name: str, ahead: float, entitlement: str = LEDGER, approver: str = LENA) -> dt.datetime:
    """alice's request for `entitlement` starting `ahead` seconds from now, approved and `Scheduled`."""
    start = (utcnow() + dt.timedelta(seconds=ahead)).replace(microsecond=0)
    system.request(name, entitlement, duration="1m", user=ALICE, startTime=rfc3339(start))
    system.wait_reason("accessrequest", name, "Pending")
    system.kubectl("annotate", "accessrequest", name, f"{APPROVED}=true", user=approver)
    system.wait_reason("accessrequest", name, "Scheduled")
    return start


# --- 70. a startTime in the past -----------------------------------------------------------------


def test_70_a_start_in_the_past_is_refused_at_admission(system: Jit) -> None:
    past = rfc3339(utcnow() - dt.timedelta(minutes=10))
    refused(
        system.request("past-start", LEDGER, user=ALICE, startTime=past, check=False),
        f"spec.startTime {past} is in the past",
        "leave spec.startTime out to begin as soon as the request is approved",
    )
    assert system.get("accessrequest", "past-start") is None
    nothing_granted(system, "past-start")


# --- 71. a startTime beyond the horizon ----------------------------------------------------------


def test_71_a_start_beyond_the_horizon_is_refused_at_admission(system: Jit) -> None:
    far = rfc3339(utcnow() + dt.timedelta(days=90))
    refused(
        system.request("far-start", LEDGER, user=ALICE, startTime=far, check=False),
        f"spec.startTime {far} is more than 168h ahead",
        "JITACCESS_MAX_START_AHEAD_SECONDS",
        "ask for a start before",
    )
    # Nor does a server-side dry run (the plugin's first step) say otherwise, nor a malformed time pass.
    body = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": "far-start"},
        "spec": {"entitlement": LEDGER, "reason": "INC-1 e2e", "startTime": far},
    }
    dry_run = system.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(body), user=ALICE, check=False)
    refused(dry_run, "is more than 168h ahead")
    refused(system.request("bad-start", LEDGER, user=ALICE, startTime="next tuesday", check=False), "startTime")
    for name in ("far-start", "bad-start"):
        assert system.get("accessrequest", name) is None
        nothing_granted(system, name)


# --- 72. a startTime changed after approval --------------------------------------------------------


def test_72_a_start_moved_after_the_approval_is_refused(system: Jit) -> None:
    """lena approved alice's access for a window an hour from now; alice (and lena, and anyone) moving
    it to now is refused by the immutable spec, with every kubectl verb that could change it."""
    start = scheduled(system, "moved-start", ahead=3600)
    now = rfc3339(utcnow() + dt.timedelta(seconds=5))
    # alice's RBAC lets her create and delete requests, not change them; lena may patch (to decide).
    for user, words in ((ALICE, "cannot patch"), (LENA, "immutable")):
        patch = json.dumps({"spec": {"startTime": now}})
        moved = system.kubectl(
            "patch", "accessrequest", "moved-start", "--type", "merge", "-p", patch, user=user, check=False
        )
        refused(moved, words)
        live = system.get("accessrequest", "moved-start") or {}
        edited = {k: v for k, v in live.items() if k != "status"}
        edited["spec"] = {**edited["spec"], "startTime": now}
        refused(system.apply(edited, user=user, verb="replace", check=False), words.replace("patch", "update"))
    request = system.get("accessrequest", "moved-start") or {}
    assert request["spec"]["startTime"] == rfc3339(start)
    assert ready(request)["reason"] == "Scheduled"
    nothing_granted(system, "moved-start")
    # Taking it back is the requester's: nothing was granted, so the approved request may be withdrawn.
    system.kubectl("delete", "accessrequest", "moved-start", user=ALICE)
    nothing_granted(system, "moved-start")


# --- 73. eligibility removed between approval and start -------------------------------------------


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


def test_73_eligibility_removed_before_the_start_means_no_grant(system: Jit, alice_eligible_again: None) -> None:
    scheduled(system, "lapsed-start", ahead=6)
    _remove_from_group(system, ELIGIBILITY_GROUP, ALICE)
    ended = system.wait_reason("accessrequest", "lapsed-start", "NotEligible", "Granted", timeout=25)
    message = ready(ended)["message"]
    assert ready(ended)["reason"] == "NotEligible", message
    assert "not granted: when access was to begin" in message
    assert f"{ALICE} is not in the Identity Center group(s) {ELIGIBILITY_GROUP}" in message
    nothing_granted(system, "lapsed-start")


# --- 74. the approver is no longer an approver at the start ---------------------------------------


WINDOW_GROUP = "prod-e2e-window"


@pytest.fixture
def own_team(system: Jit) -> Iterator[str]:
    """A team whose approver is lena, owning an entitlement to a group of its own (the ledger
    catalog's production group is team ledger's: attack 112)."""
    system.ic.create_group(WINDOW_GROUP)
    system.apply("""
apiVersion: jitaccess.dev/v1alpha1
kind: TeamOwnership
metadata: {name: e2e-window}
spec: {approvers: [lena@example.com]}
---
apiVersion: jitaccess.dev/v1alpha1
kind: Entitlement
metadata: {name: e2e-window-prod}
spec: {owner: e2e-window, identityCenter: {groupName: prod-e2e-window}, maxDuration: 1h}
""")
    system.wait_reason("entitlement", "e2e-window-prod", "Resolved")
    try:
        yield "e2e-window-prod"
    finally:
        system.clean()
        system.kubectl("delete", "entitlement", "e2e-window-prod", "--ignore-not-found")
        system.kubectl("delete", "teamownership", "e2e-window", "--ignore-not-found")


def test_74_an_approval_that_no_longer_stands_at_the_start_grants_nothing(system: Jit, own_team: str) -> None:
    """lena approves, then the team replaces her with carol before the start: the approval is
    re-derived at the start against the live TeamOwnership, and lena's no longer counts."""
    scheduled(system, "stale-approval", ahead=6, entitlement=own_team)
    system.kubectl(
        "patch", "teamownership", "e2e-window", "--type", "merge", "-p", '{"spec":{"approvers":["' + CAROL + '"]}}'
    )
    ended = system.wait_reason("accessrequest", "stale-approval", "Failed", "Granted", timeout=25)
    message = ready(ended)["message"]
    assert ready(ended)["reason"] == "Failed", message
    assert f"the approval stamped for {LENA} does not count" in message
    nothing_granted(system, "stale-approval", WINDOW_GROUP)


# --- 75. a reason that fails the pattern ----------------------------------------------------------


def test_75_a_reason_without_a_ticket_is_refused_with_the_pattern_and_an_example(system: Jit) -> None:
    stderr = refused(
        system.request("no-ticket", PAYMENTS, reason="rolling back the deploy", user=ALICE, check=False),
        "spec.reason 'rolling back the deploy' does not match the entitlement's reasonPattern '^[A-Z]+-[0-9]+'",
        "cite a ticket, for example 'INC-1234 roll back the deploy'",
    )
    assert "no-ticket" not in system.kubectl("get", "accessrequests", "-o", "name").stdout, stderr
    nothing_granted(system, "no-ticket", PAYMENTS)


# --- 76. an Entitlement whose example fails its own pattern -----------------------------------------


def test_76_an_entitlement_with_a_failing_example_or_a_broken_pattern_is_refused(system: Jit) -> None:
    """GitOps (a deploy identity with every right, impersonated by the admin; the operator's own
    writes skip the webhooks) cannot publish a policy whose example would itself be refused, nor one
    that no reason could satisfy because it does not compile; the stored Entitlement is unchanged."""
    live = system.get("entitlement", PAYMENTS) or {}
    gitops = ("--as", "gitops@example.com", "--as-group", "system:masters")
    for spec, words in (
        ({"reasonExample": "roll back the deploy"}, "spec.reasonExample 'roll back the deploy' does not match"),
        ({"reasonPattern": "([A-Z"}, "is not a valid regular expression"),
    ):
        patch = json.dumps({"spec": spec})
        refused(
            system.kubectl("patch", "entitlement", PAYMENTS, "--type", "merge", "-p", patch, *gitops, check=False),
            words,
        )
    after = system.get("entitlement", PAYMENTS) or {}
    assert after["spec"] == live["spec"]
    nothing_granted(system, "none", PAYMENTS)

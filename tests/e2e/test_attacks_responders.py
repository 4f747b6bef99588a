"""Incident responders (`JITACCESS_RESPONDER_GROUPS`, attacks 99-100 of docs/security.md).

A responder is a member of group sre-oncall (the e2e operator's setting; examples/rbac.yaml binds
the group to jitaccess-dev-responder), minted here as a client-certificate user of the control plane.
In an incident they end access across teams: revoke another team's grant, deny a pending request or
a pending extension of a grant they leave running, revoke a Scheduled request; each with a reason
where the object records one. They never give access (approve a request or an extension) nor erase
its record (99), and nobody becomes one by claiming the group (100).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.processes import child_env
from tests.e2e.approval_policies import CAROL, PCI, annotate, break_glass, extension_pending, pci
from tests.e2e.cli_run import Cli, Result
from tests.support.harness import Jit

pytestmark = pytest.mark.e2e
__all__ = ["pci"]

ALICE, BOB, LENA, MALLORY = (f"{n}@example.com" for n in ("alice", "bob", "lena", "mallory"))
#: The on-call responder: in group sre-oncall only, in no team.
OSCAR = "oscar@example.com"
RESPONDERS = "sre-oncall"
LEDGER, PAYMENTS = "prod-eng-ledger", "prod-eng-payments"
APPROVED, DENIED, REVOKED = "jitaccess.dev/approved", "jitaccess.dev/denied", "jitaccess.dev/revoked"
REVOKE_REASON, DECISION_REASON = "jitaccess.dev/revoke-reason", "jitaccess.dev/decision-reason"
INCIDENT = "INC-4711 credential leak, ending all production access"


@pytest.fixture(scope="module")
def responder(jit: Jit) -> Path:
    """The kubeconfig of OSCAR, a member of the responder group (by client certificate)."""
    return jit.cluster.mint_kubeconfig(OSCAR, [RESPONDERS])


def as_(system: Jit, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl as the user of `kubeconfig` (a minted one: the harness knows only the token users)."""
    argv = [str(system.cluster.binary), "kubectl", "--kubeconfig", str(kubeconfig), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60, env=child_env())


def refused(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode != 0, f"{result.args} was accepted:\n{result.stdout}"
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
    return result.stderr


def ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}:\n{result.stderr}"


def granted(system: Jit, name: str, entitlement: str = LEDGER, user: str = ALICE, approver: str = LENA) -> None:
    system.request(name, entitlement, user=user)
    system.wait_reason("accessrequest", name, "Pending")
    system.kubectl("annotate", "accessrequest", name, f"{APPROVED}=true", user=approver)
    system.wait_reason("accessgrant", name, "Active")


def pending(system: Jit, name: str, entitlement: str = LEDGER, user: str = ALICE) -> None:
    system.request(name, entitlement, user=user)
    system.wait_reason("accessrequest", name, "Pending")


def scheduled(system: Jit, name: str, ahead: float = 600) -> None:
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ahead)).strftime("%Y-%m-%dT%H:%M:%SZ")
    system.request(name, LEDGER, user=ALICE, duration="1m", startTime=start)
    system.wait_reason("accessrequest", name, "Pending")
    system.kubectl("annotate", "accessrequest", name, f"{APPROVED}=true", user=LENA)
    system.wait_reason("accessrequest", name, "Scheduled")


@pytest.fixture
def extensions(system: Jit) -> Iterator[Jit]:
    """The shared system; extensions a test leaves go with it (the operator deletes a grant's own
    with it, but not before the next test may list them)."""
    yield system
    system.kubectl("delete", "accessextensions", "--all", "--wait=false", check=False)


def ends(system: Jit, grant: str) -> str:
    return str(((system.get("accessgrant", grant) or {}).get("status") or {}).get("expirationTime"))


def audit_lines(system: Jit, text: str) -> list[str]:
    return [line for line in system.operator.log_file.read_text().splitlines() if text in line]


# --- what a responder may do, across teams --------------------------------------------------------


def test_a_responder_revokes_another_teams_grant_with_a_reason(system: Jit, responder: Path) -> None:
    granted(system, "inc-grant")
    assert system.members(LEDGER) == {ALICE}
    ok(as_(system, responder, "annotate", "accessgrant", "inc-grant", f"{REVOKED}=true", f"{REVOKE_REASON}={INCIDENT}"))
    grant = system.wait_reason("accessgrant", "inc-grant", "Revoked")
    assert grant["metadata"]["annotations"]["jitaccess.dev/revoked-by"] == OSCAR
    assert grant["status"]["revokedBy"] == OSCAR
    assert system.members(LEDGER) == set(), "the membership is gone from Identity Center"


def ended_by_responder(
    system: Jit, responder: Path, name: str, decision: str, reason_key: str, state: str
) -> dict[str, Any]:
    """Request `name` ended by the responder's `decision`=true with the incident as its reason, which
    the webhook stamped with the responder (`<decision>-by`)."""
    ok(as_(system, responder, "annotate", "accessrequest", name, f"{decision}=true", f"{reason_key}={INCIDENT}"))
    request = system.wait_reason("accessrequest", name, state)
    assert request["metadata"]["annotations"][f"{decision}-by"] == OSCAR
    return request


def test_a_responder_denies_a_pending_request_of_another_team(system: Jit, responder: Path) -> None:
    pending(system, "inc-pending")
    request = ended_by_responder(system, responder, "inc-pending", DENIED, DECISION_REASON, "Denied")
    assert request["status"].get("deniedBy") == OSCAR
    assert system.get("accessgrant", "inc-pending") is None


def test_a_responder_revokes_a_scheduled_request_with_a_reason(system: Jit, responder: Path) -> None:
    """Not deleted (its record would name nobody, attack 124): revoked, which names the responder."""
    scheduled(system, "inc-later")
    refused(as_(system, responder, "delete", "accessrequest", "inc-later"), "kubectl jit revoke inc-later --reason")
    refused(
        as_(system, responder, "annotate", "accessrequest", "inc-later", f"{REVOKED}=true"),
        "jitaccess.dev/revoke-reason] is required when an incident responder revokes someone else's request",
    )
    ended_by_responder(system, responder, "inc-later", REVOKED, REVOKE_REASON, "Revoked")
    assert system.get("accessgrant", "inc-later") is None
    assert system.members(LEDGER) == set()
    assert any(OSCAR in line for line in audit_lines(system, "AccessRequest/inc-later")), "who revoked it"


def test_a_responder_denies_a_pending_extension_and_the_grant_keeps_its_end(extensions: Jit, responder: Path) -> None:
    system = extensions
    granted(system, "inc-run")
    before = ends(system, "inc-run")
    extension_pending(system, "inc-run-longer", "inc-run", ALICE)
    ok(
        as_(
            system,
            responder,
            "annotate",
            "accessextension",
            "inc-run-longer",
            f"{DENIED}=true",
            f"{DECISION_REASON}={INCIDENT}",
        )
    )
    denied = system.wait_reason("accessextension", "inc-run-longer", "Denied")
    assert denied["metadata"]["annotations"]["jitaccess.dev/denied-by"] == OSCAR
    assert RESPONDERS in denied["metadata"]["annotations"]["jitaccess.dev/denied-by-groups"].split(",")
    assert denied["status"]["deniedBy"] == OSCAR and denied["status"]["decisionReason"] == INCIDENT
    # The access runs on as it was, not a second longer.
    assert system.ready_reason("accessgrant", "inc-run") == "Active"
    assert ends(system, "inc-run") == before
    assert not (system.get("accessgrant", "inc-run") or {})["status"].get("extensions")
    assert system.members(LEDGER) == {ALICE}
    refused(
        system.kubectl("annotate", "accessextension", "inc-run-longer", f"{APPROVED}=true", user=LENA, check=False),
        "already denied by oscar@example.com",
    )


# --- 99. a responder tries to give access, or to erase its record -----------------------------------


def test_99_a_responder_never_approves(system: Jit, responder: Path) -> None:
    pending(system, "inc-approve")
    refused(
        as_(system, responder, "annotate", "accessrequest", "inc-approve", f"{APPROVED}=true"),
        "as an incident responder may not set jitaccess.dev/approved=true",
        "never approve",
    )
    assert system.ready_reason("accessrequest", "inc-approve") == "Pending"
    assert system.get("accessgrant", "inc-approve") is None


def test_99_a_responder_never_approves_an_extension(extensions: Jit, responder: Path) -> None:
    system = extensions
    granted(system, "inc-prolong")
    before = ends(system, "inc-prolong")
    extension_pending(system, "inc-prolong-more", "inc-prolong", ALICE)
    refused(
        as_(
            system,
            responder,
            "annotate",
            "accessextension",
            "inc-prolong-more",
            f"{APPROVED}=true",
            f"{DECISION_REASON}={INCIDENT}",
        ),
        "as an incident responder may not set jitaccess.dev/approved=true",
        "never approve",
    )
    refused(
        as_(system, responder, "annotate", "accessextension", "inc-prolong-more", f"{DENIED}=true"),
        "jitaccess.dev/decision-reason] is required when an incident responder denies another team's AccessExtension",
        "kubectl jit deny extension/NAME",
    )
    assert system.ready_reason("accessextension", "inc-prolong-more") == "Pending"
    assert "jitaccess.dev/approved-by" not in (system.get("accessextension", "inc-prolong-more") or {})["metadata"].get(
        "annotations", {}
    )
    assert ends(system, "inc-prolong") == before


def test_99_a_responder_acts_only_with_a_reason(system: Jit, responder: Path) -> None:
    granted(system, "inc-bare")
    refused(
        as_(system, responder, "annotate", "accessgrant", "inc-bare", f"{REVOKED}=true"),
        "jitaccess.dev/revoke-reason] is required when an incident responder revokes",
    )
    pending(system, "inc-bare-2")
    refused(
        as_(system, responder, "annotate", "accessrequest", "inc-bare-2", f"{DENIED}=true"),
        "jitaccess.dev/decision-reason] is required when an incident responder denies",
    )
    assert system.ready_reason("accessgrant", "inc-bare") == "Active"
    assert system.members(LEDGER) == {ALICE}
    assert system.ready_reason("accessrequest", "inc-bare-2") == "Pending"


def test_99_a_responder_never_deletes_a_grant_or_a_finished_request(system: Jit, responder: Path) -> None:
    granted(system, "inc-record")
    # RBAC first (the role has no delete on grants); the webhook would refuse it too.
    refused(as_(system, responder, "delete", "accessgrant", "inc-record"), "forbidden")
    refused(as_(system, responder, "delete", "accessrequest", "inc-record"), "access that has not ended")
    ok(
        as_(
            system, responder, "annotate", "accessgrant", "inc-record", f"{REVOKED}=true", f"{REVOKE_REASON}={INCIDENT}"
        )
    )
    system.wait_reason("accessrequest", "inc-record", "Revoked")
    refused(
        as_(system, responder, "delete", "accessrequest", "inc-record"),
        "is finished (Revoked)",
        "audit record",
        "is an incident responder",
    )
    assert system.get("accessrequest", "inc-record") is not None
    assert system.get("accessgrant", "inc-record") is not None


def test_99_a_responder_never_reviews_break_glass(pci: Jit, responder: Path) -> None:
    assert break_glass(pci, "inc-glass").returncode == 0
    pci.wait_reason("accessrequest", "inc-glass", "Granted")
    refused(
        as_(pci, responder, "annotate", "accessrequest", "inc-glass", "jitaccess.dev/reviewed=true"),
        "not an approver of the owner team",
        "is an incident responder",
    )
    reviewed = pci.condition("accessrequest", "inc-glass", "Reviewed")
    assert reviewed is not None and reviewed["status"] == "False"
    # Ending the access is theirs, as for any grant: the review stays due.
    ok(as_(pci, responder, "annotate", "accessgrant", "inc-glass", f"{REVOKED}=true", f"{REVOKE_REASON}={INCIDENT}"))
    pci.wait_reason("accessgrant", "inc-glass", "Revoked")
    assert pci.members(PCI) == set()
    refused(annotate(pci, "inc-glass", "jitaccess.dev/reviewed=true", user=CAROL), "cannot review it")


# --- 100. someone outside the responder groups claims to be one --------------------------------------


def test_100_claiming_the_responder_group_gives_nothing(system: Jit) -> None:
    granted(system, "inc-claim")
    # --as-group needs the right to impersonate, which no engineer has.
    refused(
        system.kubectl(
            "annotate",
            "accessgrant",
            "inc-claim",
            f"{REVOKED}=true",
            f"{REVOKE_REASON}=INC-1",
            "--as",
            MALLORY,
            "--as-group",
            RESPONDERS,
            user=MALLORY,
            check=False,
        ),
        "cannot impersonate",
    )
    # A user whose name is the group's, in no group: no role at all.
    named = system.cluster.mint_kubeconfig(RESPONDERS, [])
    refused(
        as_(system, named, "annotate", "accessgrant", "inc-claim", f"{REVOKED}=true", f"{REVOKE_REASON}=INC-1"),
        "forbidden",
    )
    # Groups written into an object are only ever the webhook's, from the authenticated caller.
    refused(
        system.request("inc-claim-2", LEDGER, user=MALLORY, requesterGroups=[RESPONDERS], check=False),
        "spec.requesterGroups",
        "authenticated you with the groups",
    )
    refused(
        system.kubectl(
            "annotate",
            "accessgrant",
            "inc-claim",
            f"{REVOKED}=true",
            f"{REVOKE_REASON}=INC-1",
            f"jitaccess.dev/revoked-by-groups={RESPONDERS}",
            user=MALLORY,
            check=False,
        ),
        "users may set only",
    )
    refused(
        system.kubectl(
            "annotate",
            "accessgrant",
            "inc-claim",
            f"{REVOKED}=true",
            f"{REVOKE_REASON}=INC-1",
            user=MALLORY,
            check=False,
        ),
        "mallory@example.com may not revoke this grant",
    )
    assert system.ready_reason("accessgrant", "inc-claim") == "Active"
    assert system.members(LEDGER) == {ALICE}


# --- kubectl jit revoke --all -----------------------------------------------------------------------


def jit_as(cli: Cli, kubeconfig: Path, *args: str) -> Result:
    done = subprocess.run(
        [str(cli.script), "--kubeconfig", str(kubeconfig), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env=cli.env,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def test_revoke_all_ends_every_grant_and_request_in_reach(extensions: Jit, cli: Cli, responder: Path) -> None:
    system = extensions
    granted(system, "all-ledger")
    granted(system, "all-payments", entitlement=PAYMENTS, user=BOB, approver="paula@example.com")
    pending(system, "all-pending")
    scheduled(system, "all-later")
    extension_pending(system, "all-ledger-longer", "all-ledger", ALICE)
    result = jit_as(cli, responder, "revoke", "--all", "--reason", INCIDENT)
    assert result.code == 0, result
    for line in (
        "revoked AccessGrant all-ledger",
        "revoked AccessGrant all-payments",
        "denied AccessRequest all-pending",
        "revoked AccessRequest all-later",
        f"denied AccessExtension all-ledger-longer ({ALICE}, +30m on AccessGrant all-ledger)",
    ):
        assert line in result.out, result
    summary = (
        "2 grants revoked, 1 request denied, 0 requests withdrawn, 1 Scheduled request revoked, 1 extension denied"
    )
    assert summary in result.out, result
    # Denied, with the incident's reason, before its grant's revocation could fail it.
    longer = system.wait_reason("accessextension", "all-ledger-longer", "Denied")
    assert longer["status"]["deniedBy"] == OSCAR and longer["status"]["decisionReason"] == INCIDENT
    for name in ("all-ledger", "all-payments"):
        grant = system.wait_reason("accessgrant", name, "Revoked")
        assert grant["metadata"]["annotations"][REVOKE_REASON] == INCIDENT
    assert system.wait_reason("accessrequest", "all-pending", "Denied")
    later = system.wait_reason("accessrequest", "all-later", "Revoked")
    assert later["metadata"]["annotations"]["jitaccess.dev/revoked-by"] == OSCAR
    assert later["metadata"]["annotations"][REVOKE_REASON] == INCIDENT
    assert system.members(LEDGER) == set() and system.members(PAYMENTS) == set()


def test_revoke_all_says_what_was_refused(system: Jit, cli: Cli) -> None:
    granted(system, "mine-a")
    granted(system, "bobs", entitlement=PAYMENTS, user=BOB, approver="paula@example.com")
    # Alice is no responder: her own grant is revoked, bob's is refused, and the exit code says so.
    result = cli.run("revoke", "--all", "--grants-only", "--reason", "INC-1 done", user=ALICE)
    assert result.code != 0, result
    assert "revoked AccessGrant mine-a" in result.out, result
    assert "bobs" in result.err and "may not revoke this grant" in result.err, result
    assert system.wait_reason("accessgrant", "mine-a", "Revoked")
    assert system.ready_reason("accessgrant", "bobs") == "Active"
    assert json.loads(system.kubectl("get", "accessgrant", "bobs", "-o", "json").stdout)["spec"]["user"] == BOB


def test_kubectl_jit_deny_as_a_responder_and_as_nobody(system: Jit, cli: Cli, responder: Path) -> None:
    pending(system, "inc-cli-pending")
    # An approver of payments, not of ledger, nor a responder: the webhook refuses, and the plugin says why.
    result = cli.run("deny", "request/inc-cli-pending", "--reason", "INC-1 not mine", user="paula@example.com")
    assert result.code != 0 and "not an approver" in result.err, result
    assert system.ready_reason("accessrequest", "inc-cli-pending") == "Pending"
    # The responder, who approves nothing, denies any team's request from the plugin too.
    result = jit_as(cli, responder, "deny", "request/inc-cli-pending", "--reason", INCIDENT)
    assert result.code == 0 and "denied accessrequest inc-cli-pending" in result.out, result
    request = system.wait_reason("accessrequest", "inc-cli-pending", "Denied")
    assert request["status"].get("deniedBy") == OSCAR and request["status"].get("decisionReason") == INCIDENT

"""Attack 101: a deleted Entitlement stays until no access it gave remains, and keeps its group
clear meanwhile.

Deleting the Entitlement of a group with an active grant used to leave that group, and its
permission sets, with nobody watching who was added to it. Now the Entitlement is kept
(Terminating, `Ready=False Deleting`) until its last grant ends; nothing new is asked of it; its
group is still scanned for members no grant backs; and when it goes, a `Released` audit line says
what jitaccess leaves behind in AWS.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.e2e.cli_run import Cli
from tests.support.harness import Jit, eventually

ALICE, BOB = "alice@example.com", "bob@example.com"
NAME, GROUP = "e2e-released", "e2e-released-group"
SHARED = "e2e-second-name"
REVOKED = "jitaccess.dev/revoked"
LOUD = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) ")


def _entitlement(name: str, group: str) -> dict[str, object]:
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "Entitlement",
        "metadata": {"name": name},
        "spec": {
            "owner": "payments",
            "identityCenter": {"groupName": group},
            "eligibility": {"identityCenterGroups": ["prod-eligible"]},
        },
    }


def _log_since(system: Jit, offset: int) -> list[str]:
    with system.operator.log_file.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace").splitlines()


@pytest.fixture
def own_group(system: Jit) -> Iterator[str]:
    """An Entitlement of team payments onto a group nothing else grants."""
    system.ic.create_group(GROUP)
    system.apply(_entitlement(NAME, GROUP))
    system.wait_reason("entitlement", NAME, "Resolved", timeout=30)
    try:
        yield NAME
    finally:
        system.clean()
        system.kubectl("delete", "entitlement", NAME, "--ignore-not-found", "--timeout=60s")
        system.ic.empty_group(GROUP)


# --- 101. an Entitlement deleted to leave its group unwatched ----------------------------------------


def test_101_kept_while_a_grant_runs_its_group_scanned_and_released_after(
    system: Jit, own_group: str, cli: Cli
) -> None:
    offset = system.operator.log_file.stat().st_size
    system.request("del-alice", own_group, user=ALICE)
    system.wait_reason("accessgrant", "del-alice", "Active")
    assert system.members(GROUP) == {ALICE}

    system.kubectl("delete", "entitlement", own_group, "--wait=false")
    deleting = system.wait_reason("entitlement", own_group, "Deleting", timeout=30)
    assert deleting["metadata"].get("deletionTimestamp")
    message = next(c for c in deleting["status"]["conditions"] if c["type"] == "Ready")["message"]
    assert "1 grant(s) of it are still active (del-alice), the last ending at 20" in message, message
    assert f"kubectl jit revoke --all --grants-only --entitlement {own_group} --reason TEXT" in message, message

    # Nothing new is asked of it: a new request is refused, or declared invalid, naming the deletion.
    created = system.request("del-alice-2", own_group, user=ALICE, check=False)
    if created.returncode == 0:
        invalid = system.wait_reason("accessrequest", "del-alice-2", "Invalid")
        text = next(c for c in invalid["status"]["conditions"] if c["type"] == "Ready")["message"]
    else:
        text = created.stderr
    assert "does not exist (or is being deleted)" in text, text
    assert system.get("accessgrant", "del-alice-2") is None
    # Nor does `kubectl jit request` offer it: the entitlements of alice's team, without it.
    offered = cli.run("request", "--for", "1h", "--reason", "INFRA-1 e2e", user=ALICE)
    assert offered.code != 0 and "your team's: " in offered.err, offered
    assert "prod-eng-payments" in offered.err and own_group not in offered.err, offered

    # Someone adds themselves to the group by hand meanwhile: still drift, still removed.
    system.ic.add_member(GROUP, BOB)
    eventually(lambda: system.members(GROUP) == {ALICE} or None, timeout=30, what="bob removed from the group")
    assert system.get("entitlement", own_group) is not None, "gone while its grant still runs"

    system.kubectl("annotate", "accessgrant", "del-alice", f"{REVOKED}=true", user=ALICE)
    system.wait_reason("accessgrant", "del-alice", "Revoked")
    eventually(lambda: system.get("entitlement", own_group) is None or None, timeout=40, what="the Entitlement gone")
    assert system.members(GROUP) == set()

    lines = _log_since(system, offset)
    drift = [line for line in lines if f"DriftFound Entitlement/{own_group}: {BOB} was in" in line]
    assert drift, "\n".join(lines[-40:])
    released = [line for line in lines if f"Released Entitlement/{own_group}: " in line]
    assert len(released) == 1, "\n".join(lines[-40:])
    assert f"no longer watches Identity Center group {GROUP}" in released[0]
    assert "keeps the permission sets assigned to it in AWS" in released[0]
    # Waiting is not an error: kopf's retries are kept out of the error log (and the Events).
    assert [line for line in lines if LOUD.match(line)] == [], "\n".join(lines[-40:])
    warnings = [e for e in system.events(own_group, "Entitlement") if "failed temporarily" in e.get("message", "")]
    assert warnings == []


def test_a_grant_that_expires_lets_it_go(system: Jit, own_group: str) -> None:
    system.request("del-expiring", own_group, user=ALICE, duration="8s")
    system.wait_reason("accessgrant", "del-expiring", "Active")
    system.kubectl("delete", "entitlement", own_group, "--wait=false")
    system.wait_reason("entitlement", own_group, "Deleting", timeout=30)
    system.wait_reason("accessgrant", "del-expiring", "Expired", timeout=30)
    eventually(lambda: system.get("entitlement", own_group) is None or None, timeout=40, what="the Entitlement gone")
    assert system.members(GROUP) == set()


def test_without_grants_it_goes_at_once_and_names_who_still_grants_the_group(system: Jit) -> None:
    offset = system.operator.log_file.stat().st_size
    system.apply(_entitlement(SHARED, "prod-eng-payments"))
    system.wait_reason("entitlement", SHARED, "Resolved", timeout=30)
    # `kubectl delete` waits until it is gone: nothing keeps it.
    system.kubectl("delete", "entitlement", SHARED, "--timeout=30s")
    assert system.get("entitlement", SHARED) is None

    def released() -> list[str] | None:
        found = [line for line in _log_since(system, offset) if f"Released Entitlement/{SHARED}: " in line]
        return found or None

    (line,) = eventually(released, timeout=10, what="the Released line")
    assert "Identity Center group prod-eng-payments is still granted, and watched, through Entitlement(s)" in line
    assert "prod-eng-payments" in line.split("through Entitlement(s)", 1)[1]

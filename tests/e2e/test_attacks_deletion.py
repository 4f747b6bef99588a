"""Attacks 101 and 142: a deleted Entitlement stays until no access it gave remains, and keeps its
group clear meanwhile; so does one switched to account-assignment mode while its grants of group
mode run. Attack 148: a drift removal Identity Center refuses is an error that names the member,
live or deleted, and no quiet "not answering".

Deleting the Entitlement of a group with an active grant used to leave that group, and its
permission sets, with nobody watching who was added to it. Now the Entitlement is kept
(Terminating, `Ready=False Deleting`) until its last grant ends; nothing new is asked of it; its
group is still scanned for members no grant backs; and when it goes, a `Released` audit line says
what jitaccess leaves behind in AWS.

Released, it still waits for the notices of its drift removals (derived from its
`status.driftRemovals`: gone with one untold, nobody tells it after a restart): while Slack is down
its `DriftNoticesPending` condition names the removal and whom it waits for, and it goes once the
security channel is told; or, past `JITACCESS_DRIFT_NOTICES_HOLD_DELETION_SECONDS` from its deletion
(an hour; here an operator run with seconds), without it, with one `DriftRemovalsUntold` Warning Event.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.notifications import SECURITY_CHANNEL, LocalNotifications
from devenv.slack import SlackStandIn
from tests.e2e.cli_run import Cli
from tests.e2e.test_metrics import grown, scrape
from tests.support.harness import Jit, entitlement, eventually

ALICE, BOB = "alice@example.com", "bob@example.com"
NAME, GROUP = "e2e-released", "e2e-released-group"
SHARED = "e2e-second-name"
REVOKED = "jitaccess.dev/revoked"
LOUD = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) ")


def _log_since(system: Jit, offset: int) -> list[str]:
    with system.operator.log_file.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace").splitlines()


def _revoked_and_gone(system: Jit, grant: str, name: str, offset: int) -> tuple[list[str], list[str]]:
    """Alice revokes `grant`, the last of deleted Entitlement `name`: it goes, its group left empty.
    The operator's log since `offset`, and its lines of bob's drift removals."""
    system.kubectl("annotate", "accessgrant", grant, f"{REVOKED}=true", user=ALICE)
    system.wait_reason("accessgrant", grant, "Revoked")
    eventually(lambda: system.get("entitlement", name) is None or None, timeout=40, what="the Entitlement gone")
    assert system.members(GROUP) == set()
    lines = _log_since(system, offset)
    return lines, [line for line in lines if f"DriftFound Entitlement/{name}: {BOB} was in" in line]


@pytest.fixture
def own_group(system: Jit) -> Iterator[str]:
    """An Entitlement of team payments onto a group nothing else grants."""
    system.ic.create_group(GROUP)
    system.apply(entitlement(NAME, GROUP))
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

    lines, drift = _revoked_and_gone(system, "del-alice", own_group, offset)
    assert drift, "\n".join(lines[-40:])
    released = [line for line in lines if f"Released Entitlement/{own_group}: " in line]
    assert len(released) == 1, "\n".join(lines[-40:])
    assert f"no longer watches Identity Center group {GROUP}" in released[0]
    assert "keeps the permission sets assigned to it in AWS" in released[0]
    # Waiting is not an error: kopf's retries are kept out of the error log. (kopf posts no Event for
    # its log lines, `posting.loggers` being off: an assertion on such Events could not fail.)
    assert [line for line in lines if LOUD.match(line)] == [], "\n".join(lines[-40:])


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
    system.apply(entitlement(SHARED, "prod-eng-payments"))
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


# --- 142. an Entitlement switched to account-assignment mode to leave its group unwatched --------

#: A permission set by ARN: the Entitlement's check describes none (nothing of it is granted here).
ARN = "arn:aws:sso:::permissionSet/ssoins-0123456789abcdef/ps-0123456789abcdef"


def test_142_switched_to_account_assignment_mode_its_group_is_scanned_while_its_grants_run(
    system: Jit, own_group: str
) -> None:
    offset = system.operator.log_file.stat().st_size
    system.request("sw-alice", own_group, user=ALICE)
    system.wait_reason("accessgrant", "sw-alice", "Active")

    # A pull request moves the Entitlement to account-assignment mode (the CRD allows the switch).
    switched = entitlement(own_group, GROUP)
    assignment = {"permissionSet": {"arn": ARN}, "accounts": ["444455556666"]}
    switched["spec"]["identityCenter"] = {"accountAssignment": assignment}
    system.apply(switched)
    eventually(
        lambda: (
            "account-assignment mode" in (system.condition("entitlement", own_group, "Ready") or {}).get("message", "")
            or None
        ),
        timeout=30,
        what="the Entitlement checked in account-assignment mode",
    )
    # Alice's grant still holds access in the group: someone adding themselves there is removed.
    system.ic.add_member(GROUP, BOB)
    eventually(lambda: system.members(GROUP) == {ALICE} or None, timeout=30, what="bob removed from the group")
    assert not [e for e in system.events(own_group, "Entitlement") if e["reason"] == "ScanStopped"]

    # Deleted meanwhile: it waits for the grant, and the group is kept clear as its message says.
    system.kubectl("delete", "entitlement", own_group, "--wait=false")
    deleting = system.wait_reason("entitlement", own_group, "Deleting", timeout=30)
    message = next(c for c in deleting["status"]["conditions"] if c["type"] == "Ready")["message"]
    assert "still active (sw-alice)" in message and "its group is kept clear of anyone else until then" in message
    system.ic.add_member(GROUP, BOB)
    eventually(lambda: system.members(GROUP) == {ALICE} or None, timeout=30, what="bob removed again")

    lines, drift = _revoked_and_gone(system, "sw-alice", own_group, offset)
    assert len(drift) == 2, "\n".join(lines[-40:])


# --- 148. a drift removal Identity Center refuses, taken for Identity Center not answering ------


def test_148_a_refused_drift_removal_is_an_error_named_counted_and_tried_until_it_is_made(
    system: Jit, own_group: str
) -> None:
    """The Entitlement's group is not in the operator's IAM policy (or an SCP denies the removal):
    Identity Center refuses DeleteGroupMembership. A member added by hand stays in the group, and
    that is said as an error, with who, where and the IAM action; deleted, the Entitlement says it
    first, and is no quiet wait; once allowed, the member is removed and recorded, and it goes."""
    intruder = f"refused-{secrets.token_hex(3)}@example.com"
    system.ic.seed_users([intruder])
    offset = system.operator.log_file.stat().st_size
    before = scrape(system)
    system.ic.faults.fail("DeleteGroupMembership", times=100_000, error="AccessDeniedException")
    try:
        system.ic.add_member(GROUP, intruder)

        def told() -> dict[str, Any] | None:
            found = [e for e in system.events(own_group, "Entitlement") if e["reason"] == "DriftNotRemoved"]
            return found[0] if found else None

        event = eventually(told, timeout=30, what=f"a DriftNotRemoved Event; log:\n{system.operator.tail(20)}")
        assert event["type"] == "Warning"
        for word in (intruder, f"group {GROUP}", "identitystore:DeleteGroupMembership", "AccessDeniedException"):
            assert word in event["message"], event["message"]
        assert intruder in system.members(GROUP), "refused: still there"
        assert grown(before, scrape(system), "jitaccess_errors_total", kind="handler") >= 1
        lines = _log_since(system, offset)
        errors = [line for line in lines if LOUD.match(line) and intruder in line]
        assert errors and "identitystore:DeleteGroupMembership" in errors[0], "\n".join(lines[-40:])
        assert not [line for line in lines if "Identity Center not answering" in line and own_group in line]

        # Deleted meanwhile: its Deleting message begins with the refusal, and it stays.
        system.kubectl("delete", "entitlement", own_group, "--wait=false")

        def deleting() -> str | None:
            ready = system.condition("entitlement", own_group, "Ready") or {}
            text = str(ready.get("message", ""))
            return text if ready.get("reason") == "Deleting" and intruder in text else None

        message = eventually(deleting, timeout=30, what=f"Deleting names the refusal; log:\n{system.operator.tail(20)}")
        assert message.startswith(f"deleted, and kept until its drift scan succeeds: {intruder} is in "), message
        assert "identitystore:DeleteGroupMembership" in message, message
        assert system.get("entitlement", own_group) is not None
    finally:
        system.ic.faults.clear()
    # Allowed again: removed, recorded as drift, and the Entitlement goes.
    eventually(lambda: intruder not in system.members(GROUP) or None, timeout=90, what="the member removed")
    eventually(lambda: system.get("entitlement", own_group) is None or None, timeout=90, what="the Entitlement gone")
    lines = _log_since(system, offset)
    assert [line for line in lines if f"DriftFound Entitlement/{own_group}: {intruder} was in" in line], "\n".join(
        lines[-40:]
    )


# --- deleted with a drift removal whose notice is not delivered ----------------------------------


def _drift_notices_pending(system: Jit, name: str) -> dict[str, Any] | None:
    conditions = ((system.get("entitlement", name) or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "DriftNoticesPending"), None)


def _deleted_with_an_untold_removal(system: Jit, name: str) -> tuple[str, str, str]:
    """Slack is down (the caller's): someone adds themselves to the Entitlement's group by hand, the
    drift scan removes them (the sink is told, the security channel cannot be), and the Entitlement
    is deleted. Returns its uid, the intruder and the removal's key, once it waits for that notice."""
    intruder = f"del-drift-{secrets.token_hex(3)}@example.com"
    system.ic.seed_users([intruder])
    membership = system.ic.add_member(GROUP, intruder)
    key = f"drift-removed/{membership}"

    def confirmed_and_sunk() -> bool:
        status = (system.get("entitlement", name) or {}).get("status") or {}
        removals = [r for r in status.get("driftRemovals") or [] if r.get("membershipId") == membership]
        sent = (status.get("notifications") or {}).get("sent") or []
        return bool(removals and removals[0].get("time") and f"webhook:{key}" in sent)

    eventually(
        confirmed_and_sunk,
        timeout=30,
        what=f"the removal confirmed and told to the sink; log:\n{system.operator.tail(20)}",
    )
    assert intruder not in system.members(GROUP)
    uid = (system.get("entitlement", name) or {})["metadata"]["uid"]
    system.kubectl("delete", "entitlement", name, "--wait=false")
    pending = eventually(
        lambda: _drift_notices_pending(system, name),
        timeout=30,
        what=f"kubectl describe says why it stays; log:\n{system.operator.tail(20)}",
    )
    assert (pending["status"], pending["reason"]) == ("True", "DriftRemovalsUntold"), pending
    assert f"for the security channel to be told of 1 drift removal(s) ({key})" in pending["message"], pending
    stored = system.get("entitlement", name)
    assert stored is not None and stored["metadata"].get("deletionTimestamp"), "held for the notice"
    assert system.ready_reason("entitlement", name) == "Released"
    return uid, intruder, key


def _untold_events(system: Jit, name: str, uid: str) -> list[dict[str, Any]]:
    return [
        e
        for e in system.events(name, "Entitlement")
        if e.get("reason") == "DriftRemovalsUntold" and (e.get("involvedObject") or {}).get("uid") == uid
    ]


def test_deleted_with_a_drift_removal_untold_it_waits_for_slack_and_goes_once_told(
    system: Jit, own_group: str, slack: SlackStandIn
) -> None:
    slack.down(True)
    try:
        uid, intruder, _ = _deleted_with_an_untold_removal(system, own_group)
    finally:
        slack.down(False)
    (told,) = eventually(
        lambda: [m for m in slack.messages(SECURITY_CHANNEL) if intruder in (m.text or "")],
        timeout=90,
        what=f"the security channel told; log:\n{system.operator.tail(20)}",
    )
    assert GROUP in (told.text or "")
    eventually(
        lambda: system.get("entitlement", own_group) is None or None,
        timeout=30,
        what=f"the Entitlement gone once told; log:\n{system.operator.tail(20)}",
    )
    assert _untold_events(system, own_group, uid) == []


def test_deleted_with_a_drift_removal_untold_past_the_wait_it_goes_with_one_warning(
    system: Jit, own_group: str, slack: SlackStandIn, notifications: LocalNotifications, tmp_path: Path
) -> None:
    """Past the wait (20 s here) from its deletion, Slack still down: it goes without the notice, and one
    Warning Event names the removal left untold."""
    wait = 20
    slack.down(True)
    try:
        with system.replaced(
            tmp_path, JITACCESS_DRIFT_NOTICES_HOLD_DELETION_SECONDS=str(wait), **notifications.operator_env()
        ) as short:
            uid, intruder, key = _deleted_with_an_untold_removal(short, own_group)
            eventually(
                lambda: short.get("entitlement", own_group) is None or None,
                timeout=wait + 40,
                what=f"the Entitlement gone past the wait; log:\n{short.operator.tail(20)}",
            )
            (event,) = eventually(
                lambda: _untold_events(short, own_group, uid), timeout=15, what="the DriftRemovalsUntold Event"
            )
    finally:
        slack.down(False)  # once the operator that remembered the notice is stopped
    assert event["type"] == "Warning", event
    assert f"not delivered within {wait}s of the deletion" in event["message"], event["message"]
    assert key in event["message"], event["message"]
    assert not [m for m in slack.messages(SECURITY_CHANNEL) if intruder in (m.text or "")], "gone untold"
    assert len(_untold_events(system, own_group, uid)) == 1

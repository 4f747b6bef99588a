"""`kubectl jit` end to end: the real executable against the real control plane, emulator and operator.

Each command runs as the user it is for and as users it must refuse; the interactive flow is
driven through a real terminal (pexpect), the scripted one with flags and no terminal. The users'
permissions are the project's own (examples/rbac.yaml) and the operator's admission webhooks run,
so refusals come from the plugin's early checks and, behind them, from the API server.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
import yaml

from tests.e2e.cli_run import Cli, Result
from tests.support.harness import Jit

pytestmark = pytest.mark.e2e

ALICE, PAULA, BOB, LENA, CAROL, MALLORY, EVE = (
    f"{n}@example.com" for n in ("alice", "paula", "bob", "lena", "carol", "mallory", "eve")
)
PAYMENTS, LEDGER = "prod-eng-payments", "prod-eng-ledger"
NEXT_STEP = "the AWS access portal may need a fresh sign-in to show the new role"


def request_name(result: Result) -> str:
    """The name from `requested X for D as U: accessrequest NAME`."""
    line = next(line for line in result.out.splitlines() if line.startswith("requested "))
    return line.rsplit("accessrequest ", 1)[1].strip()


def requests_of(system: Jit, user: str) -> list[dict[str, Any]]:
    items = json.loads(system.kubectl("get", "accessrequests", "-o", "json").stdout)["items"]
    return [r for r in items if r["spec"].get("requester") == user or r.get("status", {}).get("requester") == user]


def granted(cli: Cli, user: str, entitlement: str = PAYMENTS, duration: str = "5m") -> str:
    result = cli.run("request", entitlement, "--for", duration, "--reason", "INC-1 e2e", user=user)
    assert result.code == 0, result
    return request_name(result)


# --- request ---------------------------------------------------------------------------------------


def test_request_auto_approved_for_the_owner_team(cli: Cli, system: Jit) -> None:
    result = cli.run("request", PAYMENTS, "--for", "5m", "--reason", "INC-2441 fix the stuck batch", user=ALICE)
    assert result.code == 0, result
    assert f"obtained {PAYMENTS} until " in result.out
    assert NEXT_STEP in result.out
    assert result.err == ""
    name = request_name(result)
    assert name.startswith("alice-prod-eng-payments-")
    request = system.get("accessrequest", name)
    assert request is not None
    assert request["spec"] == {
        "entitlement": PAYMENTS,
        "duration": "5m",
        "reason": "INC-2441 fix the stuck batch",
        "requester": ALICE,
        "requesterGroups": ["system:authenticated", "team-payments"],
        "requesterUserId": system.ic.user_id(ALICE),
    }
    assert system.members(PAYMENTS) == {ALICE}
    assert system.ready_reason("accessgrant", name) == "Active"


def test_request_with_the_default_duration(cli: Cli, system: Jit) -> None:
    result = cli.run("request", LEDGER, "--reason", "INC-3 default duration", user=BOB)
    assert result.code == 0, result
    assert "for 1h (the default)" in result.out
    name = request_name(result)
    request = system.get("accessrequest", name)
    assert request is not None and "duration" not in request["spec"]
    assert request["status"]["duration"] == "1h"


def test_request_refused_for_a_user_who_is_not_eligible(cli: Cli, system: Jit) -> None:
    result = cli.run("request", PAYMENTS, "--for", "5m", "--reason", "INC-4 try", user=EVE)
    assert result.code == 1, result
    assert result.err.startswith("error: ")
    assert "pci-secure-code-trained" in result.err
    assert "obtained" not in result.out
    assert "nothing was created" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert requests_of(system, EVE) == []
    assert system.members(PAYMENTS) == set()


def test_request_that_needs_an_approval_returns_with_no_wait(cli: Cli, system: Jit) -> None:
    result = cli.run("request", LEDGER, "--for", "30m", "--reason", "INC-5 help ledger", "--no-wait", user=ALICE)
    assert result.code == 3, result
    assert f"waiting for approval by team ledger: {LENA} (after escalation also {CAROL})" in result.out
    name = request_name(result)
    assert f"kubectl jit approve {name}" in result.out
    assert f"kubectl jit status {name}" in result.err
    assert not result.err.startswith("error")
    assert system.ready_reason("accessrequest", name) == "Pending"
    assert system.members(LEDGER) == set()


def test_request_still_pending_at_timeout(cli: Cli) -> None:
    result = cli.run("request", LEDGER, "--for", "5m", "--reason", "INC-6 outsider", "--timeout", "2s", user=MALLORY)
    assert result.code == 3, result
    assert f"waiting for approval by team ledger: {LENA}" in result.out
    assert "still pending after 2s" in result.err


def test_requests_without_a_terminal_need_flags(cli: Cli, system: Jit) -> None:
    no_entitlement = cli.run("request", "--reason", "INC-7 x", user=ALICE)
    assert no_entitlement.code == 2, no_entitlement
    assert "no terminal" in no_entitlement.err and PAYMENTS in no_entitlement.err

    no_reason = cli.run("request", PAYMENTS, user=ALICE)
    assert no_reason.code == 2, no_reason
    assert "--reason is required" in no_reason.err

    for flags, words in (
        (["--for", "5h"], "above prod-eng-payments's maximum of 4h"),
        (["--for", "soon"], "is not a duration"),
        (["--for", "0m"], "is zero"),
    ):
        bad = cli.run("request", PAYMENTS, "--reason", "INC-7 x", *flags, user=ALICE)
        assert bad.code == 2, bad
        assert words in bad.err

    no_ticket = cli.run("request", PAYMENTS, "--reason", "because", user=ALICE)
    assert no_ticket.code == 2, no_ticket
    assert "reasonPattern" in no_ticket.err and "INC-1234 roll back the deploy" in no_ticket.err

    unknown = cli.run("request", "prod-eng-paymnts", "--reason", "INC-7 x", user=ALICE)
    assert unknown.code == 4, unknown
    assert f"did you mean {PAYMENTS}?" in unknown.err

    bad_timeout = cli.run("request", PAYMENTS, "--reason", "INC-7 x", "--timeout", "forever", user=ALICE)
    assert bad_timeout.code == 2, bad_timeout

    assert requests_of(system, ALICE) == []


def test_request_as_an_impersonated_user(cli: Cli, system: Jit) -> None:
    result = cli.run(
        "--as",
        ALICE,
        "--as-group",
        "team-payments",
        "request",
        PAYMENTS,
        "--for",
        "5m",
        "--reason",
        "INC-8 impersonated",
        user=None,
    )
    assert result.code == 0, result
    request = system.get("accessrequest", request_name(result))
    assert request is not None and request["spec"]["requester"] == ALICE
    assert system.members(PAYMENTS) == {ALICE}


def test_a_user_with_no_role_is_refused(cli: Cli, system: Jit) -> None:
    result = cli.run("--as", "intruder@example.com", "request", PAYMENTS, "--reason", "INC-9 x", user=None)
    assert result.code == 1, result
    assert result.err.startswith("error: ") and "intruder@example.com" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert requests_of(system, "intruder@example.com") == []


@pytest.fixture
def team_without_rbac(system: Jit) -> Iterator[str]:
    """A team whose approver (mallory) was never given the approver role: a real misconfiguration.
    Its Entitlement grants a group of its own: the payments catalog's production group is team
    payments' alone."""
    system.ic.create_group("prod-e2e-platform")
    system.apply(
        {
            "apiVersion": "jitaccess.dev/v1alpha1",
            "kind": "TeamOwnership",
            "metadata": {"name": "platform"},
            "spec": {"members": [CAROL], "approvers": [MALLORY]},
        }
    )
    system.apply(
        {
            "apiVersion": "jitaccess.dev/v1alpha1",
            "kind": "Entitlement",
            "metadata": {"name": "prod-platform"},
            "spec": {"owner": "platform", "identityCenter": {"groupName": "prod-e2e-platform"}, "maxDuration": "1h"},
        }
    )
    system.wait_reason("entitlement", "prod-platform", "Resolved", timeout=30)
    yield "prod-platform"
    system.clean()
    system.kubectl("delete", "entitlement", "prod-platform", "--ignore-not-found")
    system.kubectl("delete", "teamownership", "platform", "--ignore-not-found")


def test_rbac_refusal_is_printed(cli: Cli, team_without_rbac: str) -> None:
    pending = cli.run("request", team_without_rbac, "--reason", "INC-9 x", "--no-wait", user=ALICE)
    assert pending.code == 3, pending
    assert f"waiting for approval by team platform: {MALLORY}" in pending.out
    result = cli.run("approve", request_name(pending), user=MALLORY)
    assert result.code == 1, result
    assert result.err.startswith(f"error: approving accessrequest {request_name(pending)} was refused: ")
    assert f'User "{MALLORY}" cannot patch resource "accessrequests"' in result.err


# --- approve / deny ----------------------------------------------------------------------------------


def test_approve_as_the_right_and_the_wrong_users(cli: Cli, system: Jit) -> None:
    waiting = cli.start("request", LEDGER, "--for", "30m", "--reason", "INC-10 ledger", "--timeout", "60s", user=ALICE)
    waiting.wait_for_line("waiting for approval by team ledger")
    [line] = [line for line in waiting.out if line.startswith("requested ")]
    name = line.rsplit("accessrequest ", 1)[1].strip()

    for user, words in (
        (ALICE, "requested this access and cannot decide on it"),
        (BOB, "is not an approver of the owner team"),
        (CAROL, "may decide only after the request has escalated"),
        (MALLORY, "is not an approver of the owner team"),
    ):
        refused = cli.run("approve", name, user=user)
        assert refused.code == 1, (user, refused)
        assert words in refused.err
        assert f"approvers now: {LENA}" in refused.err

    approved = cli.run("approve", name, "--reason", "INC-10 looks right", user=LENA)
    assert approved.code == 0, approved
    assert approved.out == f"approved accessrequest {name} ({ALICE}, {LEDGER} for 30m): INC-10 looks right\n"

    waiting.wait_for_line(f"approved by {LENA}")
    waiting.wait_for_line(f"obtained {LEDGER} until")
    result = waiting.finish()
    assert result.code == 0, result
    assert system.members(LEDGER) == {ALICE}

    again = cli.run("approve", name, user=LENA)
    assert again.code == 1, again
    assert "already approved" in again.err and LENA in again.err
    deny_after = cli.run("deny", name, "--reason", "changed my mind", user=LENA)
    assert deny_after.code == 1 and "a decision cannot be changed" in deny_after.err

    holders = cli.run("who-has", LEDGER, user=BOB)
    assert holders.code == 0, holders
    [header, row] = holders.out.splitlines()
    assert header.split() == ["USER", "UNTIL", "REASON", "APPROVED-BY", "GRANT"]
    assert row.startswith(ALICE) and "INC-10 ledger" in row and LENA in row and name in row


def test_deny_with_a_reason(cli: Cli, system: Jit) -> None:
    waiting = cli.start("request", LEDGER, "--for", "5m", "--reason", "INC-11 outsider", user=MALLORY)
    waiting.wait_for_line("waiting for approval by team ledger")
    name = request_name(Result(0, "".join(waiting.out), ""))

    missing = cli.run("deny", name, user=LENA)
    assert missing.code == 2 and "--reason" in missing.err
    wrong = cli.run("deny", name, "--reason", "no", user=PAULA)
    assert wrong.code == 1 and "not an approver" in wrong.err

    denied = cli.run("deny", name, "--reason", "use the read-only role", user=LENA)
    assert denied.code == 0, denied
    assert denied.out.startswith(f"denied accessrequest {name} ({MALLORY}, {LEDGER}")

    result = waiting.finish()
    assert result.code == 1, result
    assert f"accessrequest {name} Denied: denied by {LENA}: use the read-only role" in result.err

    twice = cli.run("approve", name, user=LENA)
    assert twice.code == 1 and f"already denied by {LENA}" in twice.err
    assert system.members(LEDGER) == set()


def test_decisions_on_missing_requests(cli: Cli) -> None:
    for command in (["approve", "nope"], ["deny", "nope", "--reason", "x"], ["status", "nope"], ["revoke", "nope"]):
        result = cli.run(*command, user=PAULA)
        assert result.code == 4, (command, result)
        assert "not found" in result.err or "no accessrequest" in result.err


# --- revoke / done ------------------------------------------------------------------------------------


def test_revoke_by_the_owner_team_approver(cli: Cli, system: Jit) -> None:
    name = granted(cli, ALICE)
    refused = cli.run("revoke", name, user=BOB)
    assert refused.code == 1, refused
    # The webhook's words: only it knows the incident responders (JITACCESS_RESPONDER_GROUPS).
    assert f"{BOB} may not revoke this grant: only the grantee {ALICE} or an approver of team payments ({PAULA})" in (
        refused.err
    )
    assert "or an incident responder" in refused.err
    assert system.members(PAYMENTS) == {ALICE}

    revoked = cli.run("revoke", name, "--reason", "INC-12 done here", user=PAULA)
    assert revoked.code == 0, revoked
    assert f"revoked accessgrant {name} ({ALICE} in Identity Center group {PAYMENTS})" in revoked.out
    assert "session duration" in revoked.out
    assert system.members(PAYMENTS) == set()
    grant = system.get("accessgrant", name)
    assert grant is not None
    annotations = grant["metadata"]["annotations"]
    assert annotations["jitaccess.dev/revoke-reason"] == "INC-12 done here"
    assert annotations["jitaccess.dev/revoked-by"] == PAULA

    again = cli.run("revoke", name, user=PAULA)
    assert again.code == 1 and "already ended (Revoked" in again.err


def test_done_ends_only_my_grants(cli: Cli, system: Jit) -> None:
    first, second = granted(cli, ALICE), granted(cli, ALICE, duration="10m")
    bobs = granted(cli, BOB, LEDGER)

    nothing = cli.run("done", user=CAROL)
    assert nothing.code == 0 and "holds no active grants" in nothing.out

    done = cli.run("done", user=ALICE)
    assert done.code == 0, done
    assert f"revoked accessgrant {first}" in done.out and f"revoked accessgrant {second}" in done.out
    assert system.members(PAYMENTS) == set()
    assert system.members(LEDGER) == {BOB}
    assert system.ready_reason("accessgrant", bobs) == "Active"

    again = cli.run("done", user=ALICE)
    assert again.code == 0 and "holds no active grants" in again.out


# --- list / status / who-has ------------------------------------------------------------------------


def test_list_filters_and_formats(cli: Cli, system: Jit) -> None:
    alices = granted(cli, ALICE)
    pending = cli.run("request", LEDGER, "--for", "30m", "--reason", "INC-13 x", "--no-wait", user=ALICE)
    assert pending.code == 3, pending
    alices_pending = request_name(pending)
    bobs = granted(cli, BOB, LEDGER)

    table = cli.run("list", user=LENA)
    assert table.code == 0, table
    header, *rows = table.out.splitlines()
    assert header.split() == ["NAME", "REQUESTER", "ENTITLEMENT", "DURATION", "STATUS", "AGE", "REASON"]
    # Oldest first; requests made within the same second come in name order.
    assert sorted(r.split()[0] for r in rows) == sorted([alices, alices_pending, bobs])
    assert next(r for r in rows if r.startswith(alices)).split()[1:5] == [ALICE, PAYMENTS, "5m", "Granted"]

    def names(*flags: str, user: str = LENA) -> list[str]:
        result = cli.run("list", *flags, "-o", "json", user=user)
        assert result.code == 0, result
        return [item["metadata"]["name"] for item in json.loads(result.out)["items"]]

    assert names("--pending") == [alices_pending]
    assert names("--mine", user=BOB) == [bobs]
    assert sorted(names("--mine", user=ALICE)) == sorted([alices, alices_pending])
    assert sorted(names("--team", "ledger")) == sorted([alices_pending, bobs])
    assert names("--team", "ledger", "--pending") == [alices_pending]
    assert names("--mine", user=CAROL) == []

    as_yaml = cli.run("list", "--team", "payments", "-o", "yaml", user=LENA)
    assert [i["metadata"]["name"] for i in yaml.safe_load(as_yaml.out)["items"]] == [alices]

    unknown_team = cli.run("list", "--team", "nope", user=LENA)
    assert unknown_team.code == 4 and "team 'nope' not found" in unknown_team.err

    empty = cli.run("list", "--pending", "--mine", user=BOB)
    assert empty.code == 0 and empty.out == "" and "No access requests found." in empty.err


def test_status_of_a_granted_and_of_a_pending_request(cli: Cli, system: Jit) -> None:
    name = granted(cli, ALICE)
    status = cli.run("status", name, user=BOB)
    assert status.code == 0, status
    fields = dict(line.split(":", 1) for line in status.out.splitlines() if not line.startswith(" ") and ":" in line)
    assert fields["Requester"].strip() == ALICE
    assert fields["Status"].strip().startswith("Granted: access active until")
    assert fields["Approved by"].strip() == "auto (owner team)"
    assert fields["Grant"].strip() == f"{name}: Active"
    assert "in 4m" in fields["Expires"] or "in 5m" in fields["Expires"]
    assert "AutoApproved" in status.out and "grant/Ready" in status.out

    as_json = json.loads(cli.run("status", name, "-o", "json", user=BOB).out)
    assert as_json["request"]["metadata"]["name"] == name and as_json["grant"]["spec"]["user"] == ALICE

    pending = cli.run("request", LEDGER, "--reason", "INC-14 x", "--no-wait", user=ALICE)
    pending_status = cli.run("status", request_name(pending), user=ALICE)
    waiting_for = next(line for line in pending_status.out.splitlines() if line.startswith("Waiting for:"))
    assert waiting_for.split(":", 1)[1].strip().startswith(f"an approver of team ledger: {LENA}")


def test_who_has_lists_active_holders_only(cli: Cli, system: Jit) -> None:
    nobody = cli.run("who-has", PAYMENTS, user=CAROL)
    assert nobody.code == 0 and nobody.out == "" and f"Nobody holds {PAYMENTS} now." in nobody.err

    name = granted(cli, ALICE)
    holders = cli.run("who-has", PAYMENTS, "-o", "json", user=CAROL)
    [holder] = json.loads(holders.out)["items"]
    assert holder == {
        "user": ALICE,
        "entitlement": PAYMENTS,
        "until": holder["until"],
        "reason": "INC-1 e2e",
        "approvedBy": "auto (owner team)",
        "grant": name,
    }
    assert cli.run("who-has", LEDGER, user=CAROL).out == ""
    missing = cli.run("who-has", "nope", user=CAROL)
    assert missing.code == 4
    # Without an entitlement: everyone who holds production access now, by entitlement.
    everyone = cli.run("who-has", user=CAROL)
    header, *rows = everyone.out.splitlines()
    assert header.split()[:2] == ["ENTITLEMENT", "USER"]
    assert [row.split()[:2] for row in rows] == [[PAYMENTS, ALICE]], everyone.out


# --- the terminal -------------------------------------------------------------------------------------


def test_interactive_request_in_a_terminal(cli: Cli, system: Jit, tmp_path: Path) -> None:
    transcript = io.StringIO()
    child = cli.spawn("request", user=ALICE)
    child.logfile_read = transcript
    try:
        child.expect(r"You are alice@example.com \(team payments\)\.")
        child.expect(r"Request prod-eng-payments \(.*\)\? \[Y/n\] ")
        child.sendline("Y")
        child.expect(r"For how long\? \(at most 4h\) \[1h\] ")
        child.sendline("9h")
        child.expect(r"above prod-eng-payments's maximum of 4h.*\r\nFor how long\? \(at most 4h\) \[1h\] ")
        child.sendline("20m")
        child.expect(
            r"Why do you need it\? \(must match \^\[A-Z\]\+-\[0-9\]\+; e\.g\. INC-1234 roll back the deploy\) "
        )
        child.sendline("INC-2441 fix the stuck settlement batch")
        child.expect(
            r"requested prod-eng-payments for 20m as alice@example.com: accessrequest alice-prod-eng-payments-"
        )
        child.expect(r"obtained prod-eng-payments until .* \(in (19|20)m\)")
        child.expect(NEXT_STEP)
        child.expect(pexpect.EOF)
    finally:
        child.close()
        (tmp_path / "transcript.txt").write_text(transcript.getvalue())
        print(transcript.getvalue())
    assert child.exitstatus == 0, transcript.getvalue()
    assert system.members(PAYMENTS) == {ALICE}
    [request] = requests_of(system, ALICE)
    assert request["spec"]["duration"] == "20m"
    assert request["spec"]["reason"] == "INC-2441 fix the stuck settlement batch"


def test_interactive_pick_list_then_ctrl_c_while_pending(cli: Cli, system: Jit) -> None:
    transcript = io.StringIO()
    child = cli.spawn("request", user=ALICE)
    child.logfile_read = transcript
    try:
        child.expect(r"\[Y/n\] ")
        child.sendline("n")
        child.expect(r"1\) prod-eng-payments .*yours.*\r\n\s+2\) prod-eng-ledger .*needs an approver of team ledger")
        child.expect(r"Which one\? \[1-2\] ")
        child.sendline("3")
        child.expect("please answer with a number from 1 to 2")
        child.sendline("2")
        child.expect(r"\[1h\] ")
        child.sendline("")
        child.expect(r"Why do you need it\? ")
        child.sendline("help the ledger team")
        child.expect("waiting for approval by team ledger: lena@example.com")
        child.sendintr()
        child.expect(r"stopped waiting; accessrequest (\S+) stays")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 130, transcript.getvalue()
    [request] = requests_of(system, ALICE)
    assert request["spec"]["entitlement"] == LEDGER and "duration" in request["spec"]


def test_interactive_with_end_of_input_creates_nothing(cli: Cli, system: Jit) -> None:
    child = cli.spawn("request", PAYMENTS, user=ALICE)
    try:
        child.expect(r"\[1h\] ")
        child.sendeof()
        child.expect("no answer")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 2
    assert requests_of(system, ALICE) == []


# --- kubectl, flags, errors ----------------------------------------------------------------------------


def test_kubectl_finds_the_plugin(cli: Cli) -> None:
    result = cli.via_kubectl("jit", "request", PAYMENTS, "--for", "5m", "--reason", "INC-15 plugin", user=ALICE)
    assert result.code == 0, result
    assert f"obtained {PAYMENTS}" in result.out
    help_text = cli.via_kubectl("jit", "--help", user=ALICE)
    assert "usage: kubectl jit" in help_text.out and "exit codes:" in help_text.out


def test_kubectl_completes_the_plugin(cli: Cli, tmp_path: Path) -> None:
    name = cli.run("request", LEDGER, "--reason", "INC-16 x", "--no-wait", user=ALICE)
    pending = request_name(name)
    shim = tmp_path / "kubectl_complete-jit"
    shim.write_text(f'#!/bin/sh\nexec "{cli.script}" __complete "$@"\n')
    shim.chmod(0o755)
    commands = cli.via_kubectl("__complete", "jit", "ap", user=None, path=[tmp_path])
    assert commands.code == 0, commands
    assert "approve" in commands.out.split()
    objects = cli.via_kubectl(
        "__complete", "jit", "approve", "--kubeconfig", cli.kubeconfig(LENA), "", user=None, path=[tmp_path]
    )
    assert objects.out.splitlines()[0].split("\t")[0] == pending, objects
    assert objects.out.rstrip().endswith(":4")


def test_unreachable_cluster_and_bad_kubeconfig(cli: Cli, tmp_path: Path) -> None:
    kubeconfig = json.loads(Path(cli.kubeconfig(ALICE)).read_text())
    kubeconfig["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(json.dumps(kubeconfig))
    result = cli.run("--kubeconfig", str(dead), "list", user=ALICE)
    assert result.code == 5, result
    assert "cannot reach https://127.0.0.1:1" in result.err

    missing = cli.run("--kubeconfig", str(tmp_path / "nope"), "list", user=ALICE)
    assert missing.code == 5 and "does not exist" in missing.err

    context = cli.run("--context", "elsewhere", "list", user=ALICE)
    assert context.code == 2 and "context 'elsewhere' is not in the kubeconfig" in context.err

    kubeconfig["users"][0]["user"]["token"] = "not-a-token"
    kubeconfig["clusters"][0]["cluster"]["server"] = cli.system.cluster.server_url
    forged = tmp_path / "forged.kubeconfig"
    forged.write_text(json.dumps(kubeconfig))
    rejected = cli.run("--kubeconfig", str(forged), "list", user=ALICE)
    assert rejected.code == 5 and "rejected your credentials" in rejected.err


def test_request_while_identity_center_hangs_is_refused_by_the_webhook_in_its_own_words(cli: Cli, system: Jit) -> None:
    # The emulator holds the user lookup longer than the webhook's client waits: the webhook, not the
    # API server's timeout, answers, and says what is wrong (not "is the operator running?").
    system.ic.faults.delay("GetUserId", 20, times=3)
    try:
        result = cli.run("request", PAYMENTS, "--for", "5m", "--reason", "INC-17 x", "--no-wait", user=ALICE)
    finally:
        system.ic.faults.clear()
    assert result.code != 0, result
    assert "Identity Center did not answer" in result.err and "try again in a minute" in result.err, result
    assert "is the jitaccess operator running?" not in result.err


def test_request_while_the_operator_is_down(cli: Cli, system: Jit) -> None:
    system.operator.stop()
    try:
        result = cli.run("request", PAYMENTS, "--for", "5m", "--reason", "INC-17 x", user=ALICE)
    finally:
        system.operator.start()
    assert result.code == 5, result
    assert "did not answer, so the API server changed nothing: is the jitaccess operator running?" in result.err
    assert requests_of(system, ALICE) == []

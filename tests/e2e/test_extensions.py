"""Extending an Active grant (AccessExtension), end to end as the users of examples/: the owner
team's member at once, another team's engineer through its tech lead, and `kubectl jit extend`.
The attacks are in test_attacks_extensions.py.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jitaccess.api import audit, wire
from tests.e2e.cli_run import Cli
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e

ALICE, BOB, LENA = (f"{n}@example.com" for n in ("alice", "bob", "lena"))
LEDGER = "prod-eng-ledger"


@pytest.fixture
def jit(system: Jit) -> Iterator[Jit]:
    """The shared system; extensions left by a test go with it (their grants are deleted after each test)."""
    yield system
    system.kubectl("delete", "accessextensions", "--all", "--wait=false", check=False)


def extend(system: Jit, name: str, grant: str, by: str, user: str, reason: str = "INC-7 more time") -> Any:
    manifest = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessExtension",
        "metadata": {"name": name},
        "spec": {"grant": grant, "duration": by, "reason": reason},
    }
    return system.apply(manifest, user=user, verb="create")


def when(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def active(system: Jit, name: str, entitlement: str, duration: str, user: str) -> dict[str, Any]:
    system.request(name, entitlement, duration=duration, user=user, reason="INC-7 e2e")
    return system.wait_reason("accessgrant", name, "Active")


def test_own_team_member_extends_at_once_and_expiry_follows_the_new_end(jit: Jit) -> None:
    grant = active(jit, "bob-ext", LEDGER, "4s", BOB)
    before = when(grant["status"]["expirationTime"])
    extend(jit, "bob-ext-1", "bob-ext", "4s", BOB)
    done = jit.wait_reason("accessextension", "bob-ext-1", "Extended", timeout=10)
    assert done["spec"]["requester"] == BOB, "stamped from the caller"
    grant = jit.get("accessgrant", "bob-ext") or {}
    after = when(grant["status"]["expirationTime"])
    assert after - before == dt.timedelta(seconds=4)
    (entry,) = grant["status"]["extensions"]
    assert (entry["name"], entry["by"], entry["approvedBy"]) == ("bob-ext-1", "4s", "auto")
    assert grant["status"]["extensionCount"] == 1
    assert when(done["status"]["expirationTime"]) == after and when(done["status"]["previousExpirationTime"]) == before
    approved = jit.condition("accessextension", "bob-ext-1", "Approved") or {}
    assert approved.get("reason") == "AutoApproved"
    request = jit.get("accessrequest", "bob-ext") or {}
    assert when(request["status"]["expirationTime"]) == after, "the request says until when, too"
    # Past the old end the membership stays; the scheduler ends it at the new one.
    eventually(lambda: dt.datetime.now(dt.UTC) > before + dt.timedelta(seconds=1), timeout=10)
    assert jit.ready_reason("accessgrant", "bob-ext") == "Active"
    assert jit.members(LEDGER) == {BOB}
    expired = jit.wait_reason("accessgrant", "bob-ext", "Expired", timeout=15)
    assert jit.members(LEDGER) == set()
    assert abs((dt.datetime.now(dt.UTC) - after).total_seconds()) < 5
    assert when(expired["status"]["expirationTime"]) == after
    reasons = {e["reason"] for e in jit.events("bob-ext", kind="AccessGrant")}
    assert "Extended" in reasons
    # The audit records say the duration that applied: 4s granted, 8s once extended, and the
    # `expired` record's from activation to the actual end (docs/audit.md), not the 4s granted.
    records = {r["action"]: r for r in audit.records_of(expired)}
    assert records["granted"]["duration"] == "4s" and records["extended"]["duration"] == "8s"
    ending = records["expired"]
    lasted = when(ending["endTime"]) - when(ending["startTime"])
    assert lasted >= dt.timedelta(seconds=8) and ending["duration"] == wire.duration_text(lasted), ending


def test_thirty_minutes_more_shows_in_kubectl_get(jit: Jit) -> None:
    grant = active(jit, "bob-ext-30m", LEDGER, "1h", BOB)
    before = when(grant["status"]["expirationTime"])
    extend(jit, "bob-ext-30m-1", "bob-ext-30m", "30m", BOB)
    jit.wait_reason("accessextension", "bob-ext-30m-1", "Extended", timeout=10)
    grant = jit.get("accessgrant", "bob-ext-30m") or {}
    assert when(grant["status"]["expirationTime"]) - before == dt.timedelta(minutes=30)
    table = jit.kubectl("get", "agrant", "bob-ext-30m", user=BOB).stdout.splitlines()
    header, row = table[0].split(), table[1].split()
    assert header[header.index("EXTENDED")] and row[header.index("EXTENDED")] == "1"
    ext_table = jit.kubectl("get", "aext", "bob-ext-30m-1", user=BOB).stdout.splitlines()
    assert ext_table[0].split() == ["NAME", "GRANT", "BY", "STATUS", "APPROVALS", "AGE"]
    assert ext_table[1].split()[:5] == ["bob-ext-30m-1", "bob-ext-30m", "30m", "Extended", "auto"]
    records = json.loads(jit.kubectl("get", "agrant", "bob-ext-30m", "-o", "json").stdout)["status"]
    assert records["extensions"][0]["reason"] == "INC-7 more time"


def test_other_team_extension_waits_for_the_tech_lead(jit: Jit) -> None:
    system = jit
    system.request("alice-ledger-ext", LEDGER, duration="1h", user=ALICE)
    system.wait_reason("accessrequest", "alice-ledger-ext", "Pending")
    system.kubectl("annotate", "accessrequest", "alice-ledger-ext", "jitaccess.dev/approved=true", user=LENA)
    grant = system.wait_reason("accessgrant", "alice-ledger-ext", "Active")
    before = when(grant["status"]["expirationTime"])
    extend(system, "alice-ledger-ext-1", "alice-ledger-ext", "30m", ALICE)
    pending = system.wait_reason("accessextension", "alice-ledger-ext-1", "Pending")
    message = next(c["message"] for c in pending["status"]["conditions"] if c["type"] == "Ready")
    assert LENA in message
    time.sleep(1)
    assert when((system.get("accessgrant", "alice-ledger-ext") or {})["status"]["expirationTime"]) == before
    system.kubectl(
        "annotate",
        "accessextension",
        "alice-ledger-ext-1",
        "jitaccess.dev/approved=true",
        "jitaccess.dev/decision-reason=ok for the migration",
        user=LENA,
    )
    done = system.wait_reason("accessextension", "alice-ledger-ext-1", "Extended")
    assert done["metadata"]["annotations"]["jitaccess.dev/approved-by"] == LENA
    assert done["status"]["approvedBy"] == LENA and done["status"]["decisionReason"] == "ok for the migration"
    grant = system.get("accessgrant", "alice-ledger-ext") or {}
    assert when(grant["status"]["expirationTime"]) - before == dt.timedelta(minutes=30)
    assert grant["status"]["extensions"][0]["approvedBy"] == LENA
    assert system.members(LEDGER) == {ALICE}


def test_tech_lead_denies_an_extension(jit: Jit) -> None:
    system = jit
    system.request("alice-ledger-no-ext", LEDGER, duration="1h", user=ALICE)
    system.wait_reason("accessrequest", "alice-ledger-no-ext", "Pending")
    system.kubectl("annotate", "accessrequest", "alice-ledger-no-ext", "jitaccess.dev/approved=true", user=LENA)
    grant = system.wait_reason("accessgrant", "alice-ledger-no-ext", "Active")
    extend(system, "alice-ledger-no-ext-1", "alice-ledger-no-ext", "30m", ALICE)
    system.wait_reason("accessextension", "alice-ledger-no-ext-1", "Pending")
    system.kubectl(
        "annotate",
        "accessextension",
        "alice-ledger-no-ext-1",
        "jitaccess.dev/denied=true",
        "jitaccess.dev/decision-reason=finish tomorrow",
        user=LENA,
    )
    denied = system.wait_reason("accessextension", "alice-ledger-no-ext-1", "Denied")
    assert denied["status"]["deniedBy"] == LENA
    after = system.get("accessgrant", "alice-ledger-no-ext") or {}
    assert after["status"]["expirationTime"] == grant["status"]["expirationTime"]
    assert not after["status"].get("extensions")


def test_a_grant_that_expires_while_its_extension_waits_ends_as_usual(jit: Jit) -> None:
    system = jit
    system.request("alice-ledger-short", LEDGER, duration="5s", user=ALICE)
    system.wait_reason("accessrequest", "alice-ledger-short", "Pending")
    system.kubectl("annotate", "accessrequest", "alice-ledger-short", "jitaccess.dev/approved=true", user=LENA)
    system.wait_reason("accessgrant", "alice-ledger-short", "Active")
    extend(system, "alice-ledger-short-1", "alice-ledger-short", "5s", ALICE)
    system.wait_reason("accessextension", "alice-ledger-short-1", "Pending")
    system.wait_reason("accessgrant", "alice-ledger-short", "Expired", timeout=15)
    failed = system.wait_reason("accessextension", "alice-ledger-short-1", "Failed")
    message = next(c["message"] for c in failed["status"]["conditions"] if c["type"] == "Ready")
    assert "Expired" in message and "nothing was extended" in message
    assert system.members(LEDGER) == set()
    refused = system.kubectl(
        "annotate", "accessextension", "alice-ledger-short-1", "jitaccess.dev/approved=true", user=LENA, check=False
    )
    assert refused.returncode != 0 and "already" in refused.stderr
    assert system.members(LEDGER) == set()


def test_kubectl_jit_extend_and_approve(jit: Jit) -> None:
    cli = Cli(jit)
    try:
        own = active(jit, "bob-cli-ext", LEDGER, "1h", BOB)
        bad = cli.run("extend", "bob-cli-ext", "--by", "90", "--reason", "INC-8 long apply", user=BOB)
        assert bad.code == 2 and "--by: the duration '90' is not a duration" in bad.err, bad
        result = cli.run("extend", "bob-cli-ext", "--by", "30m", "--reason", "INC-8 long apply", user=BOB)
        assert result.code == 0, result
        assert "extended accessgrant bob-cli-ext: access now ends" in result.out
        grant = jit.get("accessgrant", "bob-cli-ext") or {}
        moved = when(grant["status"]["expirationTime"]) - when(own["status"]["expirationTime"])
        assert moved == dt.timedelta(minutes=30)

        jit.request("alice-cli-ext", LEDGER, duration="1h", user=ALICE)
        jit.wait_reason("accessrequest", "alice-cli-ext", "Pending")
        jit.kubectl("annotate", "accessrequest", "alice-cli-ext", "jitaccess.dev/approved=true", user=LENA)
        jit.wait_reason("accessgrant", "alice-cli-ext", "Active")
        waiting = cli.run("extend", "alice-cli-ext", "--by", "15m", "--reason", "INC-9", "--no-wait", user=ALICE)
        assert waiting.code == 3, waiting
        assert LENA in waiting.out and "kubectl jit approve" in waiting.out
        name = waiting.out.split("accessextension ", 1)[1].split()[0]
        assert f"kubectl jit approve extension/{name} --uid " in waiting.out, waiting
        assert cli.run("approve", f"extension/{name}", user=ALICE).code != 0, "never one's own"
        approved = cli.run("approve", f"extension/{name}", "--reason", "fine", user=LENA)
        assert approved.code == 0, approved
        jit.wait_reason("accessextension", name, "Extended")
    finally:
        cli.stop_all()

"""Attacks 90-97 of docs/security.md: approvers buried in requests (approval fatigue), and the
identity store's quota used up by a script creating requests.

A requester who may ask for another team's access can ask again and again, hoping that a tired
approver approves one by mistake, as a flood of MFA prompts gets one accepted. Admission lets a
user have one request for the same access waiting for a decision, and a few in all
(`JITACCESS_MAX_PENDING_PER_USER`, 5 here as by default); what waits for nobody (auto-approved, break-glass)
is never held back. Each creation asks Identity Center, so one user may create only so many a minute
(`JITACCESS_REQUESTS_PER_USER_PER_MINUTE`), and ask approvers only so many times an hour
(`JITACCESS_APPROVAL_REQUESTS_PER_USER_PER_HOUR`): both off in the shared operator, whose tests
create requests faster than people would, and on in the operators of attacks 94 and 95. The same style as `test_attacks.py`: real identities, plain kubectl, the real
API server with the operator's webhooks.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.test_metrics import grown, scrape
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e

ALICE, LENA = "alice@example.com", "lena@example.com"
PAYMENTS, LEDGER = "prod-eng-payments", "prod-eng-ledger"


def refused(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode != 0, f"{result.args} was accepted:\n{result.stdout}"
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
    return result.stderr


def at(hours: float) -> str:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def waits(system: Jit, name: str) -> None:
    system.wait_reason("accessrequest", name, "Pending")


# --- 90. a second request for the same access while the first waits ----------------------------


def test_90_a_second_request_for_what_already_waits_is_refused(system: Jit) -> None:
    assert system.request("alice-ledger-1", LEDGER, user=ALICE).returncode == 0
    waits(system, "alice-ledger-1")
    before = scrape(system)

    message = refused(
        system.request("alice-ledger-2", LEDGER, user=ALICE, check=False),
        "AccessRequest alice-ledger-1 for prod-eng-ledger already waits for a decision by lena@example.com",
        "kubectl jit withdraw alice-ledger-1",
    )
    assert "spec.entitlement" in message
    # A dry run gets the same answer, and holds nothing back for later.
    dry = system.kubectl(
        "create", "--dry-run=server", "-f", "-", user=ALICE, check=False, input=_manifest("alice-ledger-3", LEDGER)
    )
    refused(dry, "alice-ledger-1 for prod-eng-ledger already waits")
    assert system.get("accessrequest", "alice-ledger-2") is None
    assert system.get("accessrequest", "alice-ledger-3") is None
    assert grown(before, scrape(system), "jitaccess_requests_limited_total", limit="waiting") == 2

    # Withdrawn, the first no longer waits: asking again is admitted at once.
    system.kubectl("delete", "accessrequest", "alice-ledger-1", user=ALICE)
    eventually(lambda: system.get("accessrequest", "alice-ledger-1") is None or None, 10, what="withdrawn")
    assert system.request("alice-ledger-2", LEDGER, user=ALICE).returncode == 0
    waits(system, "alice-ledger-2")
    # Decided, it no longer waits either.
    system.kubectl("annotate", "accessrequest", "alice-ledger-2", "jitaccess.dev/denied=true", user=LENA)
    system.wait_reason("accessrequest", "alice-ledger-2", "Denied")
    assert system.request("alice-ledger-4", LEDGER, user=ALICE).returncode == 0
    assert system.members(LEDGER) == set()


# --- 91. many requests created at the same moment ---------------------------------------------------


def test_91_requests_created_at_the_same_moment_are_admitted_once(system: Jit) -> None:
    names = [f"alice-burst-{i:02d}" for i in range(12)]
    with ThreadPoolExecutor(len(names)) as pool:
        results = list(pool.map(lambda n: system.request(n, LEDGER, user=ALICE, check=False), names))
    admitted = [n for n, r in zip(names, results, strict=True) if r.returncode == 0]
    # One replica answers (the tier's operator, or the survivor of two): each call is checked
    # against the others it admitted, stored or not yet.
    assert len(admitted) == 1, admitted
    for name, result in zip(names, results, strict=True):
        if name not in admitted:
            refused(result, f"AccessRequest {admitted[0]} for prod-eng-ledger already waits")
    stored = system.kubectl("get", "accessrequests", "-o", "name").stdout.split()
    assert stored == [f"accessrequest.jitaccess.dev/{admitted[0]}"]
    waits(system, admitted[0])
    assert system.members(LEDGER) == set()


# --- 92. requests for several windows, up to the limit ----------------------------------------------


def test_92_beyond_the_limit_of_waiting_requests_is_refused(system: Jit) -> None:
    # Windows of their own are not the same access twice, but each waits for an approver.
    for hour in range(1, 6):
        assert system.request(f"alice-window-{hour}", LEDGER, user=ALICE, startTime=at(hour)).returncode == 0
    refused(
        system.request("alice-window-6", LEDGER, user=ALICE, startTime=at(6), check=False),
        "you already have 5 requests waiting for a decision (alice-window-1, alice-window-2",
        "the most one user may have waiting at once (5)",
        "kubectl jit withdraw NAME",
    )
    # Another user is not held back by alice's.
    assert system.request("paula-ledger", LEDGER, user="paula@example.com").returncode == 0
    # One approved leaves room for one more.
    system.kubectl("annotate", "accessrequest", "alice-window-1", "jitaccess.dev/approved=true", user=LENA)
    system.wait_reason("accessrequest", "alice-window-1", "Scheduled")
    assert system.request("alice-window-6", LEDGER, user=ALICE, startTime=at(6)).returncode == 0
    assert system.members(LEDGER) == set()


# --- 93. what waits for nobody is never held back ---------------------------------------------------


def test_93_auto_approved_requests_are_not_held_back(system: Jit) -> None:
    for hour in range(1, 6):
        assert system.request(f"alice-later-{hour}", LEDGER, user=ALICE, startTime=at(hour)).returncode == 0
    # At the limit for what waits, alice's own team's access is still granted at once, twice.
    for name in ("alice-own-1", "alice-own-2"):
        assert system.request(name, PAYMENTS, user=ALICE, duration="1h").returncode == 0
        system.wait_reason("accessgrant", name, "Active")
    assert system.members(PAYMENTS) == {ALICE}


# --- 94. a script creating requests, to use up the Identity Center quota ---------------------------------

PER_MINUTE = 4


@pytest.fixture
def paced(jit: Jit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jit]:
    """The system with an operator that lets a user create PER_MINUTE requests a minute, in place
    of the shared one (two operators would both serve the webhooks and act on every request)."""
    log_dir = tmp_path_factory.mktemp("operator-paced")
    with jit.replaced(log_dir, JITACCESS_REQUESTS_PER_USER_PER_MINUTE=str(PER_MINUTE)) as system:
        yield system


def test_94_a_user_creating_requests_in_a_loop_is_refused_before_identity_center_is_asked(paced: Jit) -> None:
    system = paced
    # Four at once, of any kind (a dry run, one refused as a duplicate, one granted) count alike.
    dry = system.kubectl("create", "--dry-run=server", "-f", "-", user=ALICE, check=False, input=_manifest("d", LEDGER))
    assert dry.returncode == 0, dry.stderr
    assert system.request("loop-1", LEDGER, user=ALICE).returncode == 0
    refused(system.request("loop-2", LEDGER, user=ALICE, check=False), "already waits")
    assert system.request("loop-3", PAYMENTS, user=ALICE, duration="1h").returncode == 0
    system.wait_reason("accessgrant", "loop-3", "Active")
    # Who the caller is: the first thing admission asks Identity Center of a new request.
    asked = system.ic.faults.calls.get("GetUserId", 0)
    assert asked > 0
    before = scrape(system)

    message = refused(
        system.request("loop-4", PAYMENTS, user=ALICE, duration="1h", check=False),
        f"you are creating AccessRequests faster than the {PER_MINUTE} a minute one user may",
        "try again in",
    )
    wait = re.search(r"try again in (\d+) s", message)
    assert wait is not None and 1 <= int(wait.group(1)) <= 60 // PER_MINUTE, message
    assert system.ic.faults.calls.get("GetUserId", 0) == asked, "Identity Center was asked about a refused creation"
    assert grown(before, scrape(system), "jitaccess_requests_limited_total", limit="pace") == 1
    assert system.get("accessrequest", "loop-4") is None
    # Another user's requests go on.
    assert system.request("paula-own", PAYMENTS, user="paula@example.com", duration="1h").returncode == 0
    system.wait_reason("accessgrant", "paula-own", "Active")
    # A minute's pace later (one every 15 s here), alice may create one more.
    eventually(
        lambda: system.request("loop-4", PAYMENTS, user=ALICE, duration="1h", check=False).returncode == 0 or None,
        timeout=20,
        interval=1,
        what="alice's next request admitted",
    )
    system.wait_reason("accessgrant", "loop-4", "Active")


# --- 95. withdrawn and asked again, and again -------------------------------------------------------------

ASKS_PER_HOUR = 3


@pytest.fixture
def counted(jit: Jit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jit]:
    """The system with an operator that lets a user ask approvers ASKS_PER_HOUR times an hour."""
    log_dir = tmp_path_factory.mktemp("operator-counted")
    with jit.replaced(log_dir, JITACCESS_APPROVAL_REQUESTS_PER_USER_PER_HOUR=str(ASKS_PER_HOUR)) as system:
        yield system


def test_95_asking_approvers_again_and_again_is_refused_withdrawn_requests_included(counted: Jit) -> None:
    system = counted
    names = [f"alice-ask-{hour}" for hour in range(ASKS_PER_HOUR)]
    for hour, name in enumerate(names):
        extra = {"startTime": at(hour)} if hour else {}
        assert system.request(name, LEDGER, user=ALICE, **extra).returncode == 0
        waits(system, name)
    for name in names:  # withdrawn: nothing of alice's waits any more
        system.kubectl("delete", "accessrequest", name, user=ALICE)
    before = scrape(system)

    message = refused(
        system.request("alice-ask-again", LEDGER, user=ALICE, startTime=at(5), check=False),
        f"you have asked approvers for access {ASKS_PER_HOUR} times within the last hour",
        "withdrawn requests count too",
        "or talk to an approver",
    )
    wait = re.search(r"ask again in (\d+)m", message)
    assert wait is not None and int(wait.group(1)) <= 60 // ASKS_PER_HOUR, message
    dry = system.kubectl(
        "create",
        "--dry-run=server",
        "-f",
        "-",
        user=ALICE,
        check=False,
        input=_manifest("alice-ask-dry", LEDGER, at(6)),
    )
    refused(dry, "you have asked approvers for access")
    assert grown(before, scrape(system), "jitaccess_requests_limited_total", limit="asks") == 2
    assert system.get("accessrequest", "alice-ask-again") is None
    # What goes to no approver is not counted, and other users ask as before.
    assert system.request("alice-own", PAYMENTS, user=ALICE, duration="1h").returncode == 0
    system.wait_reason("accessgrant", "alice-own", "Active")
    assert system.request("paula-ask", LEDGER, user="paula@example.com").returncode == 0
    waits(system, "paula-ask")


# --- 96. an extension withdrawn and asked again, and again --------------------------------------------------


def extend(system: Jit, name: str, grant: str, *, dry_run: bool = False) -> subprocess.CompletedProcess[str]:
    manifest = (
        "apiVersion: jitaccess.dev/v1alpha1\nkind: AccessExtension\n"
        f"metadata: {{name: {name}}}\nspec: {{grant: {grant}, duration: 10m, reason: INFRA-1 more time}}\n"
    )
    flags = ["--dry-run=server"] if dry_run else []
    result: subprocess.CompletedProcess[str] = system.kubectl(
        "create", *flags, "-f", "-", user=ALICE, check=False, input=manifest
    )
    return result


def test_96_an_extension_withdrawn_and_asked_again_takes_from_the_same_hourly_count(counted: Jit) -> None:
    system = counted
    # The request that gave alice ledger's access was the first time she asked its approvers.
    assert system.request("alice-ledger", LEDGER, user=ALICE, duration="1h").returncode == 0
    waits(system, "alice-ledger")
    system.kubectl("annotate", "accessrequest", "alice-ledger", "jitaccess.dev/approved=true", user=LENA)
    system.wait_reason("accessgrant", "alice-ledger", "Active")
    for number in range(1, ASKS_PER_HOUR):
        name = f"alice-more-{number}"
        created = extend(system, name, "alice-ledger")
        assert created.returncode == 0, created.stderr
        system.wait_reason("accessextension", name, "Pending")
        system.kubectl("delete", "accessextension", name, user=ALICE)  # withdrawn: nothing waits
    before = scrape(system)

    refused(
        extend(system, "alice-more-again", "alice-ledger"),
        f"you have asked approvers for access {ASKS_PER_HOUR} times within the last hour",
        "ask again in",
    )
    refused(extend(system, "alice-more-dry", "alice-ledger", dry_run=True), "you have asked approvers for access")
    assert grown(before, scrape(system), "jitaccess_requests_limited_total", limit="asks") == 2
    assert system.get("accessextension", "alice-more-again") is None
    grant = system.get("accessgrant", "alice-ledger") or {}
    assert not grant["status"].get("extensions"), "the grant was extended"
    # An extension of her own team's access goes to no approver, and is not held back.
    assert system.request("alice-own", PAYMENTS, user=ALICE, duration="1h").returncode == 0
    system.wait_reason("accessgrant", "alice-own", "Active")
    created = extend(system, "alice-own-more", "alice-own")
    assert created.returncode == 0, created.stderr
    system.wait_reason("accessextension", "alice-own-more", "Extended")
    system.kubectl("delete", "accessextensions", "--all", "--wait=false", check=False)


# --- 97. extensions created in a loop ------------------------------------------------------------------------


def test_97_extensions_created_in_a_loop_take_from_the_same_pace_as_requests(paced: Jit) -> None:
    system = paced
    assert system.request("alice-own", PAYMENTS, user=ALICE, duration="1h").returncode == 0
    system.wait_reason("accessgrant", "alice-own", "Active")
    # The request and three dry-run extensions: PER_MINUTE creations in all.
    for number in range(PER_MINUTE - 1):
        dry = extend(system, f"alice-dry-{number}", "alice-own", dry_run=True)
        assert dry.returncode == 0, dry.stderr
    before = scrape(system)

    message = refused(
        extend(system, "alice-loop", "alice-own"),
        f"you are creating AccessExtensions faster than the {PER_MINUTE} a minute one user may",
        "AccessRequests and AccessExtensions together",
        "try again in",
    )
    wait = re.search(r"try again in (\d+) s", message)
    assert wait is not None and 1 <= int(wait.group(1)) <= 60 // PER_MINUTE, message
    assert grown(before, scrape(system), "jitaccess_requests_limited_total", limit="pace") == 1
    assert system.get("accessextension", "alice-loop") is None
    grant = system.get("accessgrant", "alice-own") or {}
    assert not grant["status"].get("extensions"), "the grant was extended"
    # Once the pace allows (one every 15 s here), the same extension is admitted and applied.
    eventually(
        lambda: extend(system, "alice-loop", "alice-own").returncode == 0 or None,
        timeout=20,
        interval=1,
        what="alice's extension admitted",
    )
    system.wait_reason("accessextension", "alice-loop", "Extended")
    system.kubectl("delete", "accessextensions", "--all", "--wait=false", check=False)


def _manifest(name: str, entitlement: str, start: str | None = None) -> str:
    window = f", startTime: '{start}'" if start else ""
    return (
        "apiVersion: jitaccess.dev/v1alpha1\nkind: AccessRequest\n"
        f"metadata: {{name: {name}}}\nspec: {{entitlement: {entitlement}, reason: INFRA-1 e2e test{window}}}\n"
    )

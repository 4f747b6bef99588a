"""The extension attacks of docs/security.md (50-59, 131, 132), tried as the users of examples/ would: more
time than the Entitlement allows, more extensions than it allows, someone else's grant, a grant
that has ended, an extension approved by its own requester, a request named like a waiting
extension to be approved in its place, approvals that no longer count, an Entitlement handed to
another team, one whose group changed, an approver deleting someone else's waiting extension
rather than denying it, and one asked for a grant whose name another grant took since. Plain kubectl against the real API server, the webhooks, RBAC and the
admission policy.

Each test asserts the refusal (the field, the numbers, the fix), that the grant's end did not move,
and (the `system` fixture, after each test) that no Identity Center membership is left.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from devenv.paths import EXAMPLES
from jitaccess.api import audit
from tests.e2e.approval_policies import CAROL, PCI
from tests.e2e.cli_run import Cli
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e

ALICE, PAULA, BOB, LENA, MALLORY = (f"{n}@example.com" for n in ("alice", "paula", "bob", "lena", "mallory"))
LEDGER = "prod-eng-ledger"
APPROVED, APPROVED_BY = "jitaccess.dev/approved", "jitaccess.dev/approved-by"
DECISION_REASON = "jitaccess.dev/decision-reason"


@pytest.fixture
def jit(system: Jit) -> Iterator[Jit]:
    yield system
    system.kubectl("delete", "accessextensions", "--all", "--wait=false", check=False)


def try_extend(
    system: Jit,
    name: str,
    grant: str,
    by: str,
    user: str,
    *,
    dry_run: bool = False,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> subprocess.CompletedProcess[str]:
    manifest = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessExtension",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"grant": grant, "duration": by, "reason": "INC-50 more time", **spec},
    }
    flags = ["--dry-run=server"] if dry_run else []
    result: subprocess.CompletedProcess[str] = system.kubectl(
        "create", *flags, "-f", "-", user=user, input=yaml.safe_dump(manifest), check=False
    )
    return result


def refused(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0, f"accepted:\n{result.stdout}"
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"


def grant_of(system: Jit, name: str, duration: str, user: str = BOB) -> dict[str, Any]:
    system.request(name, LEDGER, duration=duration, user=user, reason="INC-50 e2e")
    if user != BOB:
        system.wait_reason("accessrequest", name, "Pending")
        system.kubectl("annotate", "accessrequest", name, f"{APPROVED}=true", user=LENA)
    return system.wait_reason("accessgrant", name, "Active")


def unmoved(system: Jit, grant: dict[str, Any]) -> None:
    now = system.get("accessgrant", grant["metadata"]["name"]) or {}
    assert now["status"]["expirationTime"] == grant["status"]["expirationTime"], "the grant's end moved"
    assert not now["status"].get("extensions")


# --- 50. an extension beyond the Entitlement's maxDuration ------------------------------------------


def test_extension_beyond_max_duration_is_refused_with_the_numbers(jit: Jit) -> None:
    grant = grant_of(jit, "bob-long", "3h")
    result = try_extend(jit, "bob-long-x", "bob-long", "2h", BOB)
    refused(result, "spec.duration", "above Entitlement prod-eng-ledger's maxDuration 4h", "extend by at most 1h")
    full = grant_of(jit, "bob-full", "4h")
    refused(try_extend(jit, "bob-full-x", "bob-full", "1m", BOB), "it cannot be extended any more")
    probe = try_extend(jit, "bob-long-dry", "bob-long", "2h", BOB, dry_run=True)
    refused(probe, "maxDuration 4h")
    assert jit.get("accessextension", "bob-long-x") is None
    unmoved(jit, grant)
    unmoved(jit, full)


def test_waiting_extensions_count_against_max_duration(jit: Jit) -> None:
    grant = grant_of(jit, "alice-queue", "3h", user=ALICE)
    assert try_extend(jit, "alice-queue-1", "alice-queue", "40m", ALICE).returncode == 0
    jit.wait_reason("accessextension", "alice-queue-1", "Pending")
    refused(
        try_extend(jit, "alice-queue-2", "alice-queue", "40m", ALICE),
        "(and 40m already asked for)",
        "extend by at most 20m",
    )
    unmoved(jit, grant)


# --- 51. more extensions than the Entitlement's maxExtensions ---------------------------------------


def test_extensions_beyond_max_extensions_are_refused(jit: Jit) -> None:
    grant_of(jit, "bob-many", "1h")
    for number in (1, 2):
        assert try_extend(jit, f"bob-many-{number}", "bob-many", "1m", BOB).returncode == 0
        jit.wait_reason("accessextension", f"bob-many-{number}", "Extended")
    before = jit.get("accessgrant", "bob-many") or {}
    refused(
        try_extend(jit, "bob-many-3", "bob-many", "1m", BOB),
        "spec.grant",
        "has been extended 2 time(s)",
        "allows maxExtensions 2",
        "kubectl jit request prod-eng-ledger",
    )
    after = jit.get("accessgrant", "bob-many") or {}
    assert after["status"]["expirationTime"] == before["status"]["expirationTime"]
    assert [e["name"] for e in after["status"]["extensions"]] == ["bob-many-1", "bob-many-2"]


def test_extensions_created_at_the_same_moment_never_wait_beyond_max_extensions(jit: Jit) -> None:
    # Each creation lists the grant's other extensions; created together, none is stored yet when
    # the others are checked, so the replica counts what it has just admitted as well. The API
    # calls go out at once from one process (a kubectl each starts too slowly to overlap).
    grant = grant_of(jit, "alice-race", "1h", user=ALICE)
    start = threading.Barrier(6)

    def one(number: int) -> str | None:
        body = {
            "apiVersion": "jitaccess.dev/v1alpha1",
            "kind": "AccessExtension",
            "metadata": {"name": f"alice-race-{number}"},
            "spec": {"grant": "alice-race", "duration": "1m", "reason": "INC-50 more time"},
        }
        with k8s_config.new_client_from_config(str(jit.cluster.user_kubeconfig(ALICE))) as api:  # type: ignore[no-untyped-call]
            objects = k8s.CustomObjectsApi(api)
            start.wait()
            try:
                objects.create_cluster_custom_object("jitaccess.dev", "v1alpha1", "accessextensions", body)
            except ApiException as exc:
                return str(exc.body)
        return None

    with ThreadPoolExecutor(6) as pool:
        refusals = list(pool.map(one, range(1, 7)))
    admitted = [f"alice-race-{n}" for n, refusal in enumerate(refusals, 1) if refusal is None]
    assert len(admitted) == 2, refusals
    for refusal in filter(None, refusals):
        assert "has been extended 0 time(s) and 2 more wait" in refusal and "allows maxExtensions 2" in refusal
    stored = json.loads(jit.kubectl("get", "accessextensions", "-o", "json").stdout)["items"]
    assert sorted(e["metadata"]["name"] for e in stored if e["spec"]["grant"] == "alice-race") == admitted
    unmoved(jit, grant)


# --- 52. extending someone else's grant ------------------------------------------------------------


def test_someone_elses_grant_cannot_be_extended(jit: Jit) -> None:
    grant = grant_of(jit, "bob-mine", "1h")
    refused(try_extend(jit, "mallory-x", "bob-mine", "30m", MALLORY), "is bob@example.com's", "only its grantee")
    # The owner team's tech lead neither: an approver approves, never asks for someone.
    refused(try_extend(jit, "lena-x", "bob-mine", "30m", LENA), "only its grantee may extend it")
    # Claiming to be the grantee is refused by the webhook and by the admission policy.
    refused(try_extend(jit, "mallory-as-bob", "bob-mine", "30m", MALLORY, requester=BOB), "spec.requester")
    unmoved(jit, grant)
    assert jit.members(LEDGER) == {BOB}


# --- 53. extending a finished grant ----------------------------------------------------------------


def test_a_finished_grant_cannot_be_extended(jit: Jit) -> None:
    grant = grant_of(jit, "bob-over", "1h")
    jit.kubectl("annotate", "accessgrant", "bob-over", "jitaccess.dev/revoked=true", user=BOB)
    jit.wait_reason("accessgrant", "bob-over", "Revoked")
    refused(
        try_extend(jit, "bob-over-x", "bob-over", "30m", BOB),
        "has already ended (Revoked)",
        "kubectl jit request prod-eng-ledger",
    )
    refused(try_extend(jit, "bob-none-x", "bob-never-was", "30m", BOB), "does not exist")
    after = jit.get("accessgrant", "bob-over") or {}
    assert after["status"]["expirationTime"] == grant["status"]["expirationTime"]
    assert jit.members(LEDGER) == set()


# --- 54. an extension approved by its own requester -------------------------------------------------


def test_an_extension_is_never_approved_by_its_requester(jit: Jit) -> None:
    # paula is an approver (of payments: she may patch extensions) asking for more ledger time,
    # which waits for lena.
    grant = grant_of(jit, "paula-self", "1h", user=PAULA)
    assert try_extend(jit, "paula-self-1", "paula-self", "30m", PAULA).returncode == 0
    jit.wait_reason("accessextension", "paula-self-1", "Pending")
    refused(
        jit.kubectl("annotate", "accessextension", "paula-self-1", f"{APPROVED}=true", user=PAULA, check=False),
        "requested this access and cannot decide on it",
    )
    # A stamp written by hand, naming someone else or herself: the webhook's alone.
    refused(
        jit.kubectl("annotate", "accessextension", "paula-self-1", f"{APPROVED_BY}={LENA}", user=PAULA, check=False),
        "is written only by the jitaccess admission webhook",
    )
    # Created already approved: refused by the webhook (and the admission policy).
    refused(
        try_extend(jit, "paula-self-2", "paula-self", "30m", PAULA, annotations={APPROVED: "true", APPROVED_BY: LENA}),
        "cannot be created already decided",
    )
    # A plain requester has no verb for it at all (RBAC).
    alice = grant_of(jit, "alice-self", "1h", user=ALICE)
    assert try_extend(jit, "alice-self-1", "alice-self", "30m", ALICE).returncode == 0
    refused(
        jit.kubectl("annotate", "accessextension", "alice-self-1", f"{APPROVED}=true", user=ALICE, check=False),
        "forbidden",
    )
    assert jit.ready_reason("accessextension", "paula-self-1") == "Pending"
    unmoved(jit, grant)
    unmoved(jit, alice)


# --- 55. a request created under the name of an extension that waits --------------------------------


def test_a_request_squatting_an_extensions_name_is_never_what_the_approver_decides(jit: Jit) -> None:
    # alice's extension of her ledger grant waits for lena, who is told `kubectl jit approve extension/NAME`.
    grant = grant_of(jit, "alice-squat", "1h", user=ALICE)
    assert try_extend(jit, "alice-squat-more", "alice-squat", "15m", ALICE).returncode == 0
    jit.wait_reason("accessextension", "alice-squat-more", "Pending")
    # mallory, who may list extensions, creates a 4 h request of the same name with alice's reason.
    assert (
        jit.request("alice-squat-more", LEDGER, duration="4h", user=MALLORY, reason="INC-50 more time").returncode == 0
    )
    jit.wait_reason("accessrequest", "alice-squat-more", "Pending")
    squatted = jit.get("accessrequest", "alice-squat-more") or {}
    ext_uid = (jit.get("accessextension", "alice-squat-more") or {})["metadata"]["uid"]
    req_uid = squatted["metadata"]["uid"]
    cli = Cli(jit)
    try:
        for verb, extra in (("approve", ()), ("deny", ("--reason", "INC-50 no"))):
            bare = cli.run(verb, "alice-squat-more", *extra, user=LENA)
            assert bare.code != 0, bare
            assert "is both an AccessRequest (mallory@example.com, prod-eng-ledger)" in bare.err, bare
            assert (
                f"`kubectl jit approve request/alice-squat-more --uid {req_uid}` or "
                f"`kubectl jit approve extension/alice-squat-more --uid {ext_uid}`"
            ) in bare.err, bare
        assert jit.ready_reason("accessrequest", "alice-squat-more") == "Pending"
        approved = cli.run("approve", "extension/alice-squat-more", "--reason", "fine", user=LENA)
        assert approved.code == 0, approved
        jit.wait_reason("accessextension", "alice-squat-more", "Extended")
        # mallory's request was decided by nobody: it still waits, and she holds nothing.
        assert jit.ready_reason("accessrequest", "alice-squat-more") == "Pending"
        assert jit.get("accessgrant", "alice-squat-more") is None
        assert jit.members(LEDGER) == {ALICE}
        moved = jit.get("accessgrant", "alice-squat") or {}
        assert moved["status"]["expirationTime"] != grant["status"]["expirationTime"]
    finally:
        cli.stop_all()


# --- 56. an extension's approvals, one of which no longer counts --------------------------------------


def test_an_extension_needs_approvals_required_approvers_who_count_now(jit: Jit) -> None:
    jit.kubectl("apply", "-f", str(EXAMPLES / "03-pci.yaml"))
    jit.wait_reason("entitlement", PCI, "Resolved", timeout=30)
    try:
        _pci_extension_approvals(jit)
    finally:
        jit.clean()
        jit.kubectl("delete", "-f", str(EXAMPLES / "03-pci.yaml"), "--ignore-not-found", "--timeout=60s")


def _pci_extension_approvals(pci: Jit) -> None:
    # alice's PCI grant (two approvers of team pci) is Active; her extension needs two approvals too.
    pci.request("alice-pci-more", PCI, user=ALICE, duration="1h", reason="INC-56 e2e")
    pci.wait_reason("accessrequest", "alice-pci-more", "Pending")
    for approver in (PAULA, LENA):
        pci.kubectl("annotate", "accessrequest", "alice-pci-more", f"{APPROVED}=true",
                    f"{DECISION_REASON}=INC-56 seen by {approver}", user=approver)  # fmt: skip
    grant = pci.wait_reason("accessgrant", "alice-pci-more", "Active")
    # The request's `approved` record names each approver with their groups and reason, not only
    # who and when (each but the last one's reason is only in the webhook's approvals list).
    (approved,) = (r for r in _records("accessrequest", "alice-pci-more", pci) if r["action"] == "approved")
    assert [(a["by"], a.get("reason")) for a in approved["approvals"]] == [
        (PAULA, f"INC-56 seen by {PAULA}"),
        (LENA, f"INC-56 seen by {LENA}"),
    ], approved
    assert all("system:authenticated" in a["groups"] and a["time"] for a in approved["approvals"]), approved
    assert try_extend(pci, "alice-pci-more-1", "alice-pci-more", "30m", ALICE).returncode == 0
    pending = pci.wait_reason("accessextension", "alice-pci-more-1", "Pending")
    assert pending["status"]["approvalSummary"] == "0/2"
    pci.kubectl("annotate", "accessextension", "alice-pci-more-1", f"{APPROVED}=true",
                f"{DECISION_REASON}=paula: fine", user=PAULA)  # fmt: skip
    counted = eventually(
        lambda: (
            (s := (pci.get("accessextension", "alice-pci-more-1") or {})["status"])["approvalSummary"] == "1/2" and s
        ),
        timeout=15,
        what="paula's approval counted, 1/2",
    )
    assert [a["by"] for a in counted["approvals"]] == [PAULA]
    assert (pci.condition("accessextension", "alice-pci-more-1", "Ready") or {})["message"].startswith(
        f"1 of 2 approvals ({PAULA}): waiting for 1 more, by another approver of team pci"
    )
    # paula stops approving for team pci (carol takes her place); the operator sees it when carol may approve.
    team = next(d for d in yaml.safe_load_all((EXAMPLES / "03-pci.yaml").read_text()) if d["kind"] == "TeamOwnership")
    team["spec"]["approvers"] = [LENA, CAROL]
    pci.apply(team)
    eventually(
        lambda: pci.kubectl(
            "annotate", "accessextension", "alice-pci-more-1", f"{APPROVED}=true", "--dry-run=server",
            user=CAROL, check=False,
        ).returncode == 0 or None,
        timeout=30,
        what="the webhook (and the operator, same indexes) seeing carol approve for pci",
    )  # fmt: skip
    pci.kubectl("annotate", "accessextension", "alice-pci-more-1", f"{APPROVED}=true",
                f"{DECISION_REASON}=lena: the close runs long", user=LENA)  # fmt: skip
    # Counted against the team as it is now, lena's is the one approval that counts: 1 of 2, not
    # 2 of 2 on the list's length; nothing is extended, and the extension still waits for another.
    recounted = eventually(
        lambda: (
            (s := (pci.get("accessextension", "alice-pci-more-1") or {})["status"]).get("approvals")
            and [a["by"] for a in s["approvals"]] == [LENA]
            and s
        ),
        timeout=15,
        what="the approvals recounted against the team as it is now: lena's only",
    )
    assert recounted["approvalSummary"] == "1/2", recounted
    assert pci.ready_reason("accessextension", "alice-pci-more-1") == "Pending"
    unmoved(pci, grant)
    # Another approver who counts completes it.
    pci.kubectl("annotate", "accessextension", "alice-pci-more-1", f"{APPROVED}=true",
                f"{DECISION_REASON}=carol: agreed", user=CAROL)  # fmt: skip
    applied = pci.wait_reason("accessextension", "alice-pci-more-1", "Extended")
    # Its record names the approvals that made the count, not paula's, which made nothing.
    assert [a["by"] for a in applied["status"]["approvals"]] == [LENA, CAROL], applied["status"]
    assert applied["status"]["approvalSummary"] == "2/2"
    extended = pci.get("accessgrant", "alice-pci-more") or {}
    assert extended["status"]["expirationTime"] != grant["status"]["expirationTime"]
    # The grant's `extended` record (an applied extension's only record) names both approvers who
    # made the count, each with their reason: not just carol, who completed it, nor paula's.
    (record,) = (r for r in _records("accessgrant", "alice-pci-more", pci) if r["action"] == "extended")
    assert record["actor"]["username"] == CAROL, record
    assert [(a["by"], a.get("reason")) for a in record.get("approvals") or []] == [
        (LENA, "lena: the close runs long"),
        (CAROL, "carol: agreed"),
    ], record


def _records(kind: str, name: str, system: Jit) -> list[dict[str, Any]]:
    """The audit records of the object as the API server stores it (what the archive would hold)."""
    return audit.records_of(system.get(kind, name) or {})


# --- 57. an extension decided by the Entitlement's new owner team -------------------------------------


def test_an_extension_is_decided_by_the_team_that_owned_the_entitlement_when_granted(jit: Jit) -> None:
    # alice (team payments) holds ledger access, approved by lena (team ledger); then GitOps hands
    # prod-eng-ledger to team payments, whose member alice is.
    # A ledger PermissionCatalog left by an earlier test names prod-eng-ledger as ledger's production
    # group, and admission refuses handing that group to another team (attack 112): none here.
    jit.kubectl("delete", "permissioncatalog", "ledger", "--ignore-not-found", "--timeout=60s")
    grant = grant_of(jit, "alice-handed", "1h", user=ALICE)
    assert grant["spec"]["ownerTeam"] == "ledger"
    handed = json.dumps({"spec": {"owner": "payments"}})
    jit.kubectl("patch", "entitlement", LEDGER, "--type=merge", "-p", handed)
    try:
        # Its Ready condition is written for each generation (Overlapping only when it changes).
        eventually(
            lambda: (
                (jit.condition("entitlement", LEDGER, "Ready") or {}).get("observedGeneration")
                == (jit.get("entitlement", LEDGER) or {})["metadata"]["generation"]
                or None
            ),
            timeout=30,
            what="the operator seeing the new owner",
        )
        # Not auto-extended as a member of payments: it waits for ledger's approver.
        assert try_extend(jit, "alice-handed-1", "alice-handed", "30m", ALICE).returncode == 0
        pending = jit.wait_reason("accessextension", "alice-handed-1", "Pending", "Extended")
        ready = jit.condition("accessextension", "alice-handed-1", "Ready") or {}
        assert pending["status"]["conditions"] and ready["reason"] == "Pending", ready
        assert "approver of team ledger (lena@example.com)" in ready["message"], ready
        unmoved(jit, grant)
        refused(
            jit.kubectl("annotate", "accessextension", "alice-handed-1", f"{APPROVED}=true", user=PAULA, check=False),
            "may be set only by an approver of team ledger",
        )
        jit.kubectl("annotate", "accessextension", "alice-handed-1", f"{APPROVED}=true", user=LENA)
        done = jit.wait_reason("accessextension", "alice-handed-1", "Extended")
        assert done["status"]["approvedBy"] == LENA and done["status"]["ownerTeam"] == "ledger"
    finally:
        jit.kubectl("patch", "entitlement", LEDGER, "--type=merge", "-p", json.dumps({"spec": {"owner": "ledger"}}))


# --- 58. an extension of a grant of the Entitlement's former group ------------------------------------


def test_a_grant_of_a_group_the_entitlement_no_longer_gives_is_not_extended(jit: Jit) -> None:
    old, new = "ext-moved-1", "ext-moved-2"
    for group in (old, new):
        try:
            jit.ic.create_group(group)
        except Exception:  # left by an earlier run
            jit.ic.empty_group(group)
    # prod-eng-ledger of examples/, on a group of its own.
    entitlements = yaml.safe_load_all((EXAMPLES / "02-entitlements.yaml").read_text())
    entitlement = next(d for d in entitlements if d and d["metadata"]["name"] == LEDGER)
    entitlement["metadata"] = {"name": "ext-moved"}
    entitlement["spec"]["identityCenter"] = {"groupName": old}
    jit.apply(entitlement)
    jit.wait_reason("entitlement", "ext-moved", "Resolved", timeout=30)
    try:
        # bob's (team ledger: at once) and alice's (waiting for lena) grants of the old group.
        jit.request("bob-moved", "ext-moved", user=BOB, duration="1h", reason="INC-58 e2e")
        bob = jit.wait_reason("accessgrant", "bob-moved", "Active")
        jit.request("alice-moved", "ext-moved", user=ALICE, duration="1h", reason="INC-58 e2e")
        jit.wait_reason("accessrequest", "alice-moved", "Pending")
        jit.kubectl("annotate", "accessrequest", "alice-moved", f"{APPROVED}=true", user=LENA)
        alice = jit.wait_reason("accessgrant", "alice-moved", "Active")
        assert try_extend(jit, "alice-moved-1", "alice-moved", "30m", ALICE).returncode == 0
        jit.wait_reason("accessextension", "alice-moved-1", "Pending")
        # GitOps: the Entitlement now gives another group.
        entitlement["spec"]["identityCenter"] = {"groupName": new}
        jit.apply(entitlement)
        eventually(
            lambda: new in (jit.condition("entitlement", "ext-moved", "Ready") or {}).get("message", "") or None,
            timeout=30,
            what="the Entitlement resolved to the new group",
        )
        # A new extension of the old group's grant is refused at admission ...
        refused(
            try_extend(jit, "bob-moved-1", "bob-moved", "30m", BOB),
            f"Entitlement ext-moved changed since AccessGrant bob-moved was granted: it now gives group {new}",
            "request access again (kubectl jit request ext-moved)",
        )
        # ... and one that waited fails when approved.
        jit.kubectl("annotate", "accessextension", "alice-moved-1", f"{APPROVED}=true", user=LENA)
        failed = jit.wait_reason("accessextension", "alice-moved-1", "Failed", "Extended")
        ready = jit.condition("accessextension", "alice-moved-1", "Ready") or {}
        assert failed and ready["reason"] == "Failed", ready
        assert f"now gives group {new}, and the grant holds {old}" in ready["message"], ready
        assert "nothing was extended" in ready["message"], ready
        unmoved(jit, bob)
        unmoved(jit, alice)
    finally:
        jit.clean()
        jit.kubectl("delete", "entitlement", "ext-moved", "--ignore-not-found", "--timeout=60s")
        for group in (old, new):
            jit.ic.empty_group(group)


# --- 131. someone else's waiting extension deleted: its `extension-withdrawn` record named nobody ---------


def test_131_a_waiting_extension_is_denied_by_name_not_deleted(jit: Jit) -> None:
    """lena deleting alice's waiting extension left an `extension-withdrawn` record naming nobody,
    read as alice's own withdrawal (only the operator's `AdmissionDeleted` line named lena). Refused:
    lena denies it with `kubectl jit deny extension/NAME`, the records name her and her reason, and
    the denied extension may then go; alice still withdraws her own."""
    grant = grant_of(jit, "alice-131", "1h", user=ALICE)
    assert try_extend(jit, "alice-131-1", "alice-131", "30m", ALICE).returncode == 0
    jit.wait_reason("accessextension", "alice-131-1", "Pending")
    refused(
        jit.kubectl("delete", "accessextension", "alice-131-1", "--wait=false", user=LENA, check=False),
        f"AccessExtension alice-131-1 is {ALICE}'s, still awaiting a decision",
        f"{LENA} may not delete it, as a deletion leaves no jitaccess.dev/denied-by stamp",
        "kubectl jit deny extension/alice-131-1 --reason",
    )
    kept = jit.get("accessextension", "alice-131-1") or {}
    assert not kept["metadata"].get("deletionTimestamp"), kept["metadata"]
    why = "INC-131 ledger frozen for the audit"
    cli = Cli(jit)
    try:
        denial = cli.run("deny", "extension/alice-131-1", "--reason", why, user=LENA)
        assert denial.code == 0, denial
    finally:
        cli.stop_all()
    denied = jit.wait_reason("accessextension", "alice-131-1", "Denied")
    assert (denied["status"]["deniedBy"], denied["status"]["decisionReason"]) == (LENA, why), denied["status"]
    records = audit.records_of(denied)
    (record,) = [r for r in records if r["action"] == audit.EXTENSION_DENIED]
    assert record["actor"]["username"] == LENA, record
    assert record["decisionReason"] == why, record
    assert not [r for r in records if r["action"] == audit.EXTENSION_WITHDRAWN]
    unmoved(jit, grant)
    # Denied, its records whole: the approver may delete it; alice withdraws her own.
    jit.kubectl("delete", "accessextension", "alice-131-1", "--timeout=30s", user=LENA)
    assert jit.get("accessextension", "alice-131-1") is None
    assert try_extend(jit, "alice-131-2", "alice-131", "30m", ALICE).returncode == 0
    jit.wait_reason("accessextension", "alice-131-2", "Pending")
    jit.kubectl("delete", "accessextension", "alice-131-2", "--timeout=30s", user=ALICE)
    assert jit.get("accessextension", "alice-131-2") is None
    unmoved(jit, grant)


# --- 132. an extension applied to another grant created under its grant's name ---------------------------


def test_132_an_extension_extends_only_the_grant_it_was_asked_for(jit: Jit) -> None:
    """A grant's name is its request's, which may be used again: an extension that waited while its
    grant was deleted and another granted under the name (an operator that missed the `DELETED`
    event) was judged against the new grant and, once approved, moved its end. The operator records
    the uid of the grant it was asked for; here the state a missed event leaves is written as the
    operator would have (its status: the e2e admin is the operator's identity), the uid of a grant
    gone since, and lena's approval then extends nothing."""
    grant = grant_of(jit, "alice-132", "1h", user=ALICE)
    assert try_extend(jit, "alice-132-1", "alice-132", "30m", ALICE).returncode == 0
    waiting = jit.wait_reason("accessextension", "alice-132-1", "Pending")
    assert waiting["status"]["grantUid"] == grant["metadata"]["uid"], waiting["status"]
    gone = "0b1c2d3e-0000-4000-8000-000000000131"
    patch = json.dumps({"status": {"grantUid": gone}})
    jit.kubectl("patch", "accessextension", "alice-132-1", "--subresource=status", "--type=merge", "-p", patch)
    jit.kubectl("annotate", "accessextension", "alice-132-1", f"{APPROVED}=true", user=LENA)
    jit.wait_reason("accessextension", "alice-132-1", "Failed", "Extended")
    ready = jit.condition("accessextension", "alice-132-1", "Ready") or {}
    assert ready["reason"] == "Failed", ready
    assert "AccessGrant alice-132 was deleted and another was created under its name" in ready["message"], ready
    assert f"uid {gone}, and the one of that name now is uid {grant['metadata']['uid']}" in ready["message"], ready
    assert ready["message"].endswith("nothing was extended"), ready
    unmoved(jit, grant)


# --- 137. an extension created under the name of a withdrawn request its approver was told to approve ----


def test_137_a_bare_name_that_is_only_an_extension_is_never_decided(jit: Jit) -> None:
    """alice's request waits for lena, who is told `kubectl jit approve alice-137` (the plugin's and
    the status's words before they carried `--uid`). alice withdraws it and asks, under its name, for
    four more hours on the grant she holds. lena's command approved that extension: a bare name was
    an extension's when no request had it. Refused now, nothing decided; the extension is decided
    only by its kind (`extension/NAME`) or its uid."""
    grant = grant_of(jit, "alice-137-held", "1h", user=ALICE)
    jit.request("alice-137", LEDGER, duration="30m", user=ALICE, reason="INC-137 read the ledger")
    jit.wait_reason("accessrequest", "alice-137", "Pending")
    jit.kubectl("delete", "accessrequest", "alice-137", "--timeout=30s", user=ALICE)
    assert try_extend(jit, "alice-137", "alice-137-held", "3h", ALICE).returncode == 0
    waiting = jit.wait_reason("accessextension", "alice-137", "Pending")
    cli = Cli(jit)
    try:
        bare = cli.run("approve", "alice-137", user=LENA)
        assert bare.code != 0, bare
        assert "alice-137 is not an AccessRequest but an AccessExtension (alice@example.com, +3h on accessgrant" in (
            bare.err
        ), bare
        uid = waiting["metadata"]["uid"]
        assert f"`kubectl jit approve extension/alice-137 --uid {uid}` (or deny). Nothing was decided" in bare.err, bare
        assert jit.ready_reason("accessextension", "alice-137") == "Pending"
        unmoved(jit, grant)
        pinned = cli.run("deny", "alice-137", "--uid", waiting["metadata"]["uid"], "--reason", "INC-137 no", user=LENA)
        assert pinned.code == 0, pinned
        jit.wait_reason("accessextension", "alice-137", "Denied")
        unmoved(jit, grant)
    finally:
        cli.stop_all()


# --- 138. a pinned decision, once its request is withdrawn and the name taken by both kinds ---------


def test_138_a_uid_whose_object_is_gone_is_never_traded_for_a_kind(jit: Jit) -> None:
    """lena holds `kubectl jit approve alice-138 --uid U` of alice's request. alice withdraws it;
    under its name alice asks for more time on the grant she holds and mallory asks for ledger. The
    plugin answered the name that is both kinds with "say which, `request/alice-138` or
    `extension/alice-138`", which dropped the pin: lena, following it, approved mallory's request.
    Now the uid is the object, whichever kind it is, or it is gone and nothing is decided."""
    grant = grant_of(jit, "alice-138-held", "1h", user=ALICE)
    jit.request("alice-138", LEDGER, duration="30m", user=ALICE, reason="INC-138 read the ledger")
    meant = jit.wait_reason("accessrequest", "alice-138", "Pending")["metadata"]["uid"]
    jit.kubectl("delete", "accessrequest", "alice-138", "--timeout=30s", user=ALICE)
    assert try_extend(jit, "alice-138", "alice-138-held", "3h", ALICE).returncode == 0
    extension = jit.wait_reason("accessextension", "alice-138", "Pending")["metadata"]["uid"]
    assert jit.request("alice-138", LEDGER, duration="4h", user=MALLORY, reason="INC-138 more").returncode == 0
    jit.wait_reason("accessrequest", "alice-138", "Pending")
    cli = Cli(jit)
    try:
        pinned = cli.run("approve", "alice-138", "--uid", meant, user=LENA)
        assert pinned.code != 0, pinned
        assert f"alice-138 (uid {meant}) is gone: nothing was decided. The name is now an AccessRequest " in (
            pinned.err
        ), pinned
        assert "mallory@example.com" in pinned.err and "request/alice-138`" not in pinned.err, pinned
        assert jit.ready_reason("accessrequest", "alice-138") == "Pending"
        assert jit.ready_reason("accessextension", "alice-138") == "Pending"
        assert jit.get("accessgrant", "alice-138") is None
        unmoved(jit, grant)
        # The extension's own uid decides the extension, the name being both kinds.
        denied = cli.run("deny", "alice-138", "--uid", extension, "--reason", "INC-138 no", user=LENA)
        assert denied.code == 0, denied
        jit.wait_reason("accessextension", "alice-138", "Denied")
        assert jit.ready_reason("accessrequest", "alice-138") == "Pending"
        unmoved(jit, grant)
    finally:
        cli.stop_all()


def test_138_a_pinned_revoke_never_ends_another_grant_of_the_name(jit: Jit) -> None:
    """bob holds the "access is active" message's `kubectl jit revoke bob-138 --uid U` of his grant.
    That grant ends, its request and grant are deleted (retention, an administrator), and under the
    name bob is granted again for another incident. The command from the old message revoked
    whatever held the name; pinned, it revokes nothing, names the grant there and gives that grant's
    own pinned command, which revokes it."""
    meant = grant_of(jit, "bob-138", "1h")["metadata"]["uid"]
    jit.kubectl("annotate", "accessgrant", "bob-138", "jitaccess.dev/revoked=true", user=BOB)
    jit.wait_reason("accessgrant", "bob-138", "Revoked")
    jit.kubectl("delete", "accessrequest,accessgrant", "bob-138", "--timeout=30s")
    now = grant_of(jit, "bob-138", "1h")["metadata"]["uid"]
    assert now != meant
    cli = Cli(jit)
    try:
        stale = cli.run("revoke", "bob-138", "--uid", meant, user=BOB)
        gone = f"bob-138 (uid {meant}) is gone: nothing was revoked. The name is now an AccessGrant ({BOB} in "
        assert stale.code != 0 and gone in stale.err, stale
        assert f"to revoke it, `kubectl jit revoke bob-138 --uid {now}`" in stale.err, stale
        assert jit.ready_reason("accessgrant", "bob-138") == "Active"
        revoked = cli.run("revoke", "bob-138", "--uid", now, "--reason", "INC-138 done", user=BOB)
        assert revoked.code == 0, revoked
        assert "revoked accessgrant bob-138" in revoked.out, revoked
        jit.wait_reason("accessgrant", "bob-138", "Revoked")
    finally:
        cli.stop_all()


# --- 139. an applied extension's name used again on the same grant ----------------------------------


def test_139_an_applied_extensions_name_is_not_taken_again_on_its_grant(jit: Jit) -> None:
    """alice's extension, approved by lena and applied, is listed by name in the grant's status;
    lena deletes it once finished, and alice asks again under its name for three more hours. The
    operator matched the grant's entries by name and wrote the new one Extended, "approved by lena",
    nobody having decided on it. Refused at admission now, naming the entry and the fix; and the
    operator matches an entry by uid where the webhook did not run (unit `test_extensions.py`)."""
    grant_of(jit, "alice-139", "1h", user=ALICE)
    assert try_extend(jit, "alice-139-1", "alice-139", "15m", ALICE).returncode == 0
    jit.wait_reason("accessextension", "alice-139-1", "Pending")
    jit.kubectl("annotate", "accessextension", "alice-139-1", f"{APPROVED}=true", user=LENA)
    jit.wait_reason("accessextension", "alice-139-1", "Extended")
    extended = jit.get("accessgrant", "alice-139") or {}
    [entry] = extended["status"]["extensions"]
    assert entry["name"] == "alice-139-1" and entry.get("uid"), entry
    jit.kubectl("delete", "accessextension", "alice-139-1", "--timeout=30s", user=LENA)
    assert jit.get("accessextension", "alice-139-1") is None
    refused(
        try_extend(jit, "alice-139-1", "alice-139", "3h", ALICE),
        "metadata.name: AccessGrant alice-139 already lists an extension named alice-139-1 in its status.extensions",
        f"approved by {LENA}",
        "a name is used once per grant",
        "metadata.generateName",
    )
    assert jit.get("accessextension", "alice-139-1") is None
    now = jit.get("accessgrant", "alice-139") or {}
    assert now["status"]["expirationTime"] == extended["status"]["expirationTime"], "the grant's end moved"
    assert now["status"]["extensions"] == extended["status"]["extensions"]
    # Another name is asked for and decided on its own.
    assert try_extend(jit, "alice-139-2", "alice-139", "15m", ALICE).returncode == 0
    jit.wait_reason("accessextension", "alice-139-2", "Pending")

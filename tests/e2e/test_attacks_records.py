"""Attacks 45-49 of docs/security.md: writing into someone else's record, or too much into any. RBAC lets every approver
patch every request (they decide for their own team) and every requester patch every grant (a
grantee revokes their own): the webhooks are what keep a record its owners'. A finalizer of
anyone's would keep a withdrawn request or a revoked grant from ever going, a `jitaccess.dev/`
label would mislead the tools that select records by it, and kubectl's last-applied record is room
for anyone's text in someone else's grant. An owner reference would have the garbage collector
delete a record past every rule on who may end it; megabytes of labels, copied by the operator and
kept for 90 days, would fill etcd's quota and stop every writer in the cluster. Tried with every kubectl verb, as the users of
examples/ would, against the real API server with the operator's webhooks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.test_attacks import (
    ALICE,
    BOB,
    LEDGER,
    LENA,
    MALLORY,
    PAULA,
    all_refused,
    attempt,
    every_way_to_change,
    granted_request,
    pending_request,
    refused,
)
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ONLY_THE_OPERATOR = "only the jitaccess operator sets finalizers"


def pin_refused(system: Jit, kind: str, name: str, pin: str) -> None:
    """`pin` added to the live finalizers with every verb, by paula: she approves for payments only,
    but RBAC lets her patch and update every request and grant."""
    live = list(((system.get(kind, name) or {}).get("metadata") or {}).get("finalizers") or [])
    results = every_way_to_change(system, kind, name, PAULA, finalizers=[*live, pin])
    all_refused(results, f"metadata.finalizers {pin}", ONLY_THE_OPERATOR)


def manifest(name: str, **metadata: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "jitaccess.dev/v1alpha1",
            "kind": "AccessRequest",
            "metadata": {"name": name, **metadata},
            "spec": {"entitlement": LEDGER, "reason": "INFRA-1 e2e test"},
        }
    )


# --- 45. a finalizer on a request, so that once withdrawn it never goes ------------------------------------


def test_45_nobody_pins_a_request_with_a_finalizer(system: Jit) -> None:
    pending_request(system, "a45")
    pin_refused(system, "accessrequest", "a45", "paula.example/pin")
    refused(
        attempt(system, "create", "-f", "-", input=manifest("a45-pinned", finalizers=["x.example/keep"]), user=ALICE),
        "metadata.finalizers x.example/keep",
        ONLY_THE_OPERATOR,
    )
    # Withdrawn, it goes, and asking again is admitted (nothing of alice's waits any more).
    system.kubectl("delete", "accessrequest", "a45", "--timeout=30s", user=ALICE)
    assert system.get("accessrequest", "a45") is None
    eventually(
        lambda: system.request("a45-again", LEDGER, user=ALICE, check=False).returncode == 0 or None,
        timeout=10,
        what="alice's request for ledger admitted again",
    )


# --- 46. writing into someone else's grant ---------------------------------------------------------------


def test_46_nobody_writes_into_a_grant_but_to_revoke_it(system: Jit) -> None:
    granted_request(system, "a46")
    pin_refused(system, "accessgrant", "a46", "mallory.example/pin")
    add = json.dumps([{"op": "add", "path": "/metadata/finalizers/-", "value": "mallory.example/pin"}])
    refused(
        attempt(system, "patch", "accessgrant", "a46", "--type", "json", "-p", add, user=MALLORY),
        "metadata.finalizers mallory.example/pin",
    )
    # kubectl apply's record, 10 KB of someone's text: refused to everyone, the grantee too,
    # unless it comes with a revocation (and more than 16 KB to anyone: attack 49).
    blob = json.dumps({"metadata": {"annotations": {LAST_APPLIED: "x" * 10_000}}})
    for who in (MALLORY, ALICE, LENA):
        refused(
            attempt(system, "patch", "accessgrant", "a46", "--type", "merge", "-p", blob, user=who),
            LAST_APPLIED,
            "only with a revocation",
        )
    grant = system.get("accessgrant", "a46") or {}
    assert LAST_APPLIED not in (grant["metadata"].get("annotations") or {})
    # Revoked, then deleted by an approver, it goes at once: no finalizer of anyone's holds it.
    system.kubectl("annotate", "accessgrant", "a46", "jitaccess.dev/revoked=true", user=LENA)
    system.wait_reason("accessgrant", "a46", "Revoked")
    system.kubectl("delete", "accessgrant", "a46", "--timeout=30s", user=LENA)
    assert system.get("accessgrant", "a46") is None
    assert system.members(LEDGER) == set()


# --- 47. someone else's request relabelled, or a request labelled as another entitlement's -----------------


def test_47_only_its_requester_and_its_approvers_change_a_request(system: Jit) -> None:
    pending_request(system, "a47")
    refused(
        attempt(system, "label", "accessrequest", "a47", "x.example/sorted=yes", user=PAULA),
        "may change it (label x.example/sorted); paula@example.com may not",
    )
    refused(
        attempt(system, "annotate", "accessrequest", "a47", "note=mine", user=PAULA),
        "may change it (annotation note); paula@example.com may not",
    )
    # Its owner team's approver and its requester may (alice through a patch: RBAC gives her no
    # `patch` on requests, only create and delete, so hers is refused by RBAC, not by the webhook).
    system.kubectl("label", "accessrequest", "a47", "x.example/sorted=yes", user=LENA)
    # Labels under jitaccess.dev/ are what tools select records by: nobody's but the operator's.
    refused(
        attempt(system, "label", "accessrequest", "a47", "jitaccess.dev/entitlement=prod-eng-payments", user=LENA),
        "metadata.labels jitaccess.dev/entitlement",
        "written only by the jitaccess operator",
    )
    labelled = manifest("a47-labelled", labels={"jitaccess.dev/entitlement": "prod-eng-payments"})
    refused(
        attempt(system, "create", "-f", "-", input=labelled, user=ALICE),
        "metadata.labels jitaccess.dev/entitlement",
    )
    assert system.get("accessrequest", "a47-labelled") is None


# --- 48. an owner reference on a record, so that the garbage collector deletes it ----------------------------


def test_48_nobody_but_the_operator_sets_owner_references(system: Jit) -> None:
    pending_request(system, "a48")
    entitlement = system.get("entitlement", LEDGER) or {}
    owner = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "Entitlement",
        "name": LEDGER,
        "uid": entitlement["metadata"]["uid"],
    }
    owned = json.dumps({"metadata": {"ownerReferences": [owner]}})
    for who in (PAULA, LENA):  # another team's approver, and its own team's
        refused(
            attempt(system, "patch", "accessrequest", "a48", "--type", "merge", "-p", owned, user=who),
            "metadata.ownerReferences: only the jitaccess operator sets owner references",
        )
    refused(
        attempt(system, "create", "-f", "-", input=manifest("a48-owned", ownerReferences=[owner]), user=ALICE),
        "metadata.ownerReferences",
    )
    assert not ((system.get("accessrequest", "a48") or {})["metadata"].get("ownerReferences"))
    assert system.get("accessrequest", "a48-owned") is None


# --- 49. megabytes of labels and annotations on records, kept for 90 days ------------------------------------


def test_49_a_record_holds_at_most_16k_of_labels_and_annotations(system: Jit) -> None:
    # bob's own team's entitlement: auto-approved, limited only by the pace of creations.
    bulk = {f"k{i:05d}": "v" * 63 for i in range(300)}  # 20,700 characters
    refused(
        attempt(system, "create", "-f", "-", input=manifest("a49-bulk", labels=bulk), user=BOB),
        "metadata: labels and annotations of 20,700 characters",
        "at most 16,384",
    )
    assert system.get("accessrequest", "a49-bulk") is None
    # Added later, by an approver who may otherwise annotate it: refused too.
    pending_request(system, "a49")
    note = json.dumps({"metadata": {"annotations": {"x.example/notes": "n" * 20_000}}})
    refused(
        attempt(system, "patch", "accessrequest", "a49", "--type", "merge", "-p", note, user=LENA),
        "at most 16,384",
    )
    # What people do write fits: kubectl apply's own record, labels of a ticket system.
    system.request("a49-applied", LEDGER, user=BOB, verb="apply")
    system.wait_reason("accessrequest", "a49-applied", "Granted")

"""The numbered attacks of docs/security.md, tried as an attacker would: real identities (token
kubeconfigs), plain kubectl (annotate, patch of every type, apply, server-side apply, replace,
status patches), against the real API server, the operator's admission webhooks, RBAC from
`examples/rbac.yaml` and the ValidatingAdmissionPolicy from `examples/admission-policy.yaml`.

Each test asserts the refusal message and that no Identity Center membership came of it. Two
layers are shown apart: users with the shipped RBAC are mostly stopped by RBAC already, so the
`mallory_can_do_anything` fixture grants mallory every verb on jitaccess.dev (a misconfigured
cluster) to show that the webhooks hold on their own.
"""

from __future__ import annotations

import copy
import json
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from devenv.paths import EXAMPLES
from jitaccess.adapters.webhooks import not_the_operator
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e

ALICE, PAULA, BOB, LENA, CAROL, MALLORY, EVE = (
    f"{n}@example.com" for n in ("alice", "paula", "bob", "lena", "carol", "mallory", "eve")
)
LEDGER, PAYMENTS = "prod-eng-ledger", "prod-eng-payments"
APPROVED, DENIED = "jitaccess.dev/approved", "jitaccess.dev/denied"
APPROVED_BY, DENIED_BY = "jitaccess.dev/approved-by", "jitaccess.dev/denied-by"
REVOKED, REVOKED_BY = "jitaccess.dev/revoked", "jitaccess.dev/revoked-by"
WEBHOOK_CONFIGURATION = "jitaccess.dev"
VAP = "ValidatingAdmissionPolicy 'jitaccess.dev-identity'"

NOT_APPROVER = "is not an approver of the owner team"
OWN_REQUEST = "requested this access and cannot decide on it"
STAMP = "is written only by the jitaccess admission webhook"
OPERATOR_ONLY = "written only by the jitaccess operator"


# --- helpers --------------------------------------------------------------------------------


def attempt(system: Jit, *args: str, user: str | None, input: str | None = None) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = system.kubectl(*args, user=user, input=input, check=False)
    return result


def refused(result: subprocess.CompletedProcess[str], *fragments: str, how: str = "") -> str:
    assert result.returncode != 0, f"{how or result.args} was accepted:\n{result.stdout}"
    for fragment in fragments:
        assert fragment in result.stderr, f"{how}: {fragment!r} not in:\n{result.stderr}"
    return result.stderr


def annotations_of(system: Jit, kind: str, name: str) -> dict[str, str]:
    return dict(((system.get(kind, name) or {}).get("metadata") or {}).get("annotations") or {})


def manifest(system: Jit, kind: str, name: str, *, keep_version: bool) -> dict[str, Any]:
    """The live object as a user would save and edit it."""
    live = copy.deepcopy(system.get(kind, name) or {})
    live.pop("status", None)
    meta = live["metadata"]
    for key in ("managedFields", "uid", "creationTimestamp", "generation", "selfLink"):
        meta.pop(key, None)
    if not keep_version:
        meta.pop("resourceVersion", None)
    return live


def every_way_to_change(
    system: Jit,
    kind: str,
    name: str,
    user: str,
    *,
    annotations: dict[str, str | None] | None = None,
    spec: dict[str, Any] | None = None,
    finalizers: list[str] | None = None,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Make one change to a live object with each kubectl verb an attacker has; the results by verb."""
    annotations, spec = annotations or {}, spec or {}
    live = system.get(kind, name) or {}
    results: dict[str, subprocess.CompletedProcess[str]] = {}
    if annotations and not spec and finalizers is None:
        pairs = [f"{k}={v}" if v is not None else f"{k}-" for k, v in annotations.items()]
        results["annotate"] = attempt(system, "annotate", "--overwrite", kind, name, *pairs, user=user)
    meta_patch: dict[str, Any] = {}
    if annotations:
        meta_patch["annotations"] = annotations
    if finalizers is not None:
        meta_patch["finalizers"] = finalizers
    merge: dict[str, Any] = {"metadata": meta_patch} if meta_patch else {}
    if spec:
        merge["spec"] = spec
    results["patch --type merge"] = attempt(
        system, "patch", kind, name, "--type", "merge", "-p", json.dumps(merge), user=user
    )
    results["patch --type strategic"] = attempt(
        system, "patch", kind, name, "--type", "strategic", "-p", json.dumps(merge), user=user
    )
    ops: list[dict[str, Any]] = []
    if annotations and "annotations" not in live["metadata"]:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": annotations})
    else:
        for key, value in annotations.items():
            path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
            ops.append({"op": "remove", "path": path} if value is None else {"op": "add", "path": path, "value": value})
    ops += [{"op": "replace", "path": f"/spec/{key}", "value": value} for key, value in spec.items()]
    if finalizers is not None:
        ops.append({"op": "replace", "path": "/metadata/finalizers", "value": finalizers})
    results["patch --type json"] = attempt(
        system, "patch", kind, name, "--type", "json", "-p", json.dumps(ops), user=user
    )

    def edited(keep_version: bool) -> dict[str, Any]:
        obj = manifest(system, kind, name, keep_version=keep_version)
        current = obj["metadata"].setdefault("annotations", {})
        for key, value in annotations.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        obj["spec"].update(spec)
        if finalizers is not None:
            obj["metadata"]["finalizers"] = finalizers
        return obj

    # Apply cannot take away what it never applied (a key missing from the manifest is kept), and
    # server-side apply never removes what another field manager owns: removals are not tried there.
    removes = any(v is None for v in annotations.values())
    if not removes:
        results["apply"] = attempt(system, "apply", "-f", "-", input=yaml.safe_dump(edited(False)), user=user)
    results["replace"] = attempt(system, "replace", "-f", "-", input=json.dumps(edited(True)), user=user)
    if not removes and finalizers is None:
        partial: dict[str, Any] = {
            "apiVersion": live["apiVersion"],
            "kind": live["kind"],
            "metadata": {"name": name, **meta_patch},
        }
        if spec:
            partial["spec"] = spec
        results["apply --server-side"] = attempt(
            system,
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=attacker",
            "-f",
            "-",
            input=yaml.safe_dump(partial),
            user=user,
        )
    return results


def all_refused(results: dict[str, subprocess.CompletedProcess[str]], *fragments: str) -> None:
    """Every verb refused; the message checked wherever the API server got as far as admission.

    Custom resources have no strategic merge patch: the API server refuses that verb before
    admission, so only its refusal is checked.
    """
    for how, result in results.items():
        if how == "patch --type strategic":
            refused(result, "strategic-merge-patch+json is not supported", how=how)
        else:
            refused(result, *fragments, how=how)


def pending_request(system: Jit, name: str, entitlement: str = LEDGER, user: str = ALICE) -> dict[str, Any]:
    system.request(name, entitlement, user=user)
    return system.wait_reason("accessrequest", name, "Pending")


def granted_request(system: Jit, name: str, approver: str = LENA) -> dict[str, Any]:
    pending_request(system, name)
    system.kubectl("annotate", "accessrequest", name, f"{APPROVED}=true", user=approver)
    system.wait_reason("accessgrant", name, "Active")
    return system.wait_reason("accessrequest", name, "Granted")


def nothing_granted(system: Jit, name: str, group: str = LEDGER) -> None:
    request = system.get("accessrequest", name)
    if request is not None:
        annotations = request["metadata"].get("annotations") or {}
        assert APPROVED_BY not in annotations and APPROVED not in annotations, annotations
        assert system.ready_reason("accessrequest", name) in (None, "Pending")
    assert system.get("accessgrant", name) is None
    assert system.members(group) == set()


@pytest.fixture
def mallory_can_do_anything(system: Jit) -> Iterator[str]:
    """A misconfigured cluster: mallory may use every verb on every jitaccess.dev resource."""
    system.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "e2e-too-broad"},
            "rules": [{"apiGroups": ["jitaccess.dev"], "resources": ["*"], "verbs": ["*"]}],
        }
    )
    system.kubectl("create", "clusterrolebinding", "e2e-too-broad", "--clusterrole=e2e-too-broad", f"--user={MALLORY}")
    eventually(
        lambda: (
            attempt(system, "auth", "can-i", "patch", "accessgrants.jitaccess.dev/status", user=MALLORY).stdout.strip()
            == "yes"
        ),
        what="RBAC to grant mallory everything",
    )
    try:
        yield MALLORY
    finally:
        system.kubectl("delete", "clusterrolebinding,clusterrole", "e2e-too-broad", "--ignore-not-found")


@pytest.fixture
def racers(system: Jit) -> Iterator[str]:
    """A team of three approvers and no members, owning an entitlement to a group of its own."""
    system.ic.create_group("racers-prod")
    system.apply(
        """
apiVersion: jitaccess.dev/v1alpha1
kind: TeamOwnership
metadata: {name: e2e-racers}
spec: {approvers: [paula@example.com, lena@example.com, carol@example.com], escalateAfter: 1h}
---
apiVersion: jitaccess.dev/v1alpha1
kind: Entitlement
metadata: {name: racers-prod}
spec:
  owner: e2e-racers
  identityCenter: {groupName: racers-prod}
  maxDuration: 1h
  eligibility: {identityCenterGroups: [prod-eligible]}
"""
    )
    system.wait_reason("entitlement", "racers-prod", "Resolved")
    try:
        yield "racers-prod"
    finally:
        system.clean()
        assert system.members("racers-prod") == set()
        system.kubectl("delete", "entitlement", "racers-prod", "--ignore-not-found")
        system.kubectl("delete", "teamownership", "e2e-racers", "--ignore-not-found")


# --- 1. the requester approves their own request ----------------------------------------------


def test_01_requester_cannot_approve_own_request(system: Jit, racers: str) -> None:
    # paula approves for team e2e-racers, and has the approver RBAC: only the webhook stops her.
    pending_request(system, "a01-own", racers, user=PAULA)
    all_refused(
        every_way_to_change(system, "accessrequest", "a01-own", PAULA, annotations={APPROVED: "true"}),
        OWN_REQUEST,
        "may be set only by an approver of team e2e-racers",
    )
    # alice has requester RBAC only: RBAC refuses her first.
    pending_request(system, "a01-alice", LEDGER)
    refused(
        attempt(system, "annotate", "accessrequest", "a01-alice", f"{APPROVED}=true", user=ALICE),
        f'User "{ALICE}" cannot patch resource "accessrequests"',
    )
    nothing_granted(system, "a01-own", racers)
    nothing_granted(system, "a01-alice")
    assert system.ready_reason("accessrequest", "a01-own") == "Pending"


# --- 2. a request created already approved -----------------------------------------------------


@pytest.mark.parametrize(
    "annotations",
    [
        {APPROVED: "true"},
        {APPROVED: "true", APPROVED_BY: LENA},
        {APPROVED_BY: LENA},
        {DENIED: "true", DENIED_BY: ALICE},
        {"jitaccess.dev/approved-by-groups": "team-ledger"},
    ],
    ids=["approved", "approved+by", "by-only", "denied+by", "groups"],
)
def test_02_request_cannot_be_created_decided(system: Jit, annotations: dict[str, str]) -> None:
    body = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": "a02", "annotations": annotations},
        "spec": {"entitlement": LEDGER, "reason": "INFRA-1 attack"},
    }
    for verb in ("create", "apply"):
        refused(system.apply(body, user=ALICE, verb=verb, check=False), "cannot be created already decided", how=verb)
    refused(
        attempt(system, "apply", "--server-side", "-f", "-", input=yaml.safe_dump(body), user=ALICE),
        f'User "{ALICE}" cannot patch',  # server-side apply is a patch, even when it creates
    )
    refused(
        attempt(system, "apply", "--server-side", "-f", "-", input=yaml.safe_dump(body), user=LENA),
        "cannot be created already decided",
    )
    nothing_granted(system, "a02")


# --- 3. a user who is not an approver of the owner team approves ---------------------------------


def test_03_non_approver_cannot_approve(system: Jit) -> None:
    pending_request(system, "a03")
    # paula approves for payments, not ledger: RBAC lets her patch, the webhook does not.
    for flag in (APPROVED, DENIED):
        all_refused(
            every_way_to_change(system, "accessrequest", "a03", PAULA, annotations={flag: "true"}),
            f"{PAULA} {NOT_APPROVER}",
            "approver of team ledger (lena@example.com)",
        )
    # bob is in team ledger, but a member is no approver; his RBAC already says no.
    refused(attempt(system, "annotate", "accessrequest", "a03", f"{APPROVED}=true", user=BOB), "cannot patch")
    nothing_granted(system, "a03")
    assert not any(e["reason"] in ("Approved", "Denied") for e in system.events("a03"))


def test_03_non_approver_with_every_rbac_verb_cannot_approve(system: Jit, mallory_can_do_anything: str) -> None:
    pending_request(system, "a03-broad")
    all_refused(
        every_way_to_change(system, "accessrequest", "a03-broad", MALLORY, annotations={APPROVED: "true"}),
        f"{MALLORY} {NOT_APPROVER}",
    )
    nothing_granted(system, "a03-broad")


# --- 4. a backup approver before escalation ------------------------------------------------------


def test_04_backup_approver_cannot_approve_before_escalation(system: Jit) -> None:
    pending_request(system, "a04")
    assert system.condition("accessrequest", "a04", "Escalated") is None
    all_refused(
        every_way_to_change(system, "accessrequest", "a04", CAROL, annotations={APPROVED: "true"}),
        "is a backup approver: they may decide only after the request has escalated",
    )
    nothing_granted(system, "a04")


# --- 5. someone else as the requester ------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"requester": BOB}, f"spec.requester is '{BOB}', but you are authenticated as '{ALICE}'"),
        ({"requester": ALICE, "requesterGroups": ["team-ledger"]}, "spec.requesterGroups is ['team-ledger']"),
        ({"requesterGroups": ["system:masters", "team-ledger"]}, "spec.requesterGroups"),
    ],
    ids=["requester", "groups", "groups-only"],
)
def test_05_requester_is_always_the_caller(system: Jit, spec: dict[str, Any], message: str) -> None:
    body = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": "a05"},
        "spec": {"entitlement": LEDGER, "reason": "INFRA-1 attack", **spec},
    }
    for verb in ("create", "apply"):
        refused(system.apply(body, user=ALICE, verb=verb, check=False), message, how=verb)
    nothing_granted(system, "a05")
    # Without the forgery, the same request is stamped with the caller.
    system.request("a05-honest", LEDGER, user=ALICE)
    honest = system.get("accessrequest", "a05-honest") or {}
    assert honest["spec"]["requester"] == ALICE
    assert honest["spec"]["requesterGroups"] == ["system:authenticated", "team-payments"]


# --- 6. spec edited after approval ---------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", [{"duration": "4h"}, {"entitlement": PAYMENTS}, {"requester": LENA}], ids=lambda s: next(iter(s))
)
def test_06_spec_is_immutable_after_approval(system: Jit, spec: dict[str, str]) -> None:
    before = granted_request(system, "a06")
    all_refused(every_way_to_change(system, "accessrequest", "a06", LENA, spec=spec), "spec is immutable")
    after = system.get("accessrequest", "a06") or {}
    assert after["spec"] == before["spec"]
    grant = system.get("accessgrant", "a06") or {}
    assert grant["spec"]["duration"] == "1h" and grant["spec"]["user"] == ALICE


# --- 7. status written by a user -----------------------------------------------------------------


#: An `Approved` condition as a user would forge it into a request's status.
FORGED_APPROVAL = {
    "type": "Approved",
    "status": "True",
    "reason": "Approved",
    "message": "",
    "lastTransitionTime": "2026-01-01T00:00:00Z",
}


def test_07_users_cannot_write_status(system: Jit) -> None:
    granted_request(system, "a07")
    expiry = (system.get("accessgrant", "a07") or {})["status"]["expirationTime"]
    later = {"status": {"expirationTime": "2099-01-01T00:00:00Z"}}
    fake = {"status": {"conditions": [FORGED_APPROVAL]}}
    for user in (ALICE, LENA):
        for kind, name, body in (("accessgrant", "a07", later), ("accessrequest", "a07", fake)):
            for patch_type in ("merge", "json"):
                patch = (
                    json.dumps(body)
                    if patch_type == "merge"
                    else json.dumps([{"op": "replace", "path": "/status", "value": body["status"]}])
                )
                result = attempt(
                    system, "patch", kind, name, "--subresource=status", "--type", patch_type, "-p", patch, user=user
                )
                # kubectl reads the status before it patches: RBAC refuses that already.
                refused(result, f'cannot get resource "{kind}s/status"', how=f"{user} {kind} {patch_type}")
    assert (system.get("accessgrant", "a07") or {})["status"]["expirationTime"] == expiry


def test_07_status_holds_even_when_rbac_allows_it(system: Jit, mallory_can_do_anything: str) -> None:
    pending_request(system, "a07-broad")
    granted = {"status": {"conditions": [FORGED_APPROVAL], "approvedBy": LENA}}
    result = attempt(
        system,
        "patch",
        "accessrequest",
        "a07-broad",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        json.dumps(granted),
        user=MALLORY,
    )
    refused(result, "AccessRequest.status is written only by the jitaccess operator")
    for kind in ("teamownership", "entitlement"):
        name = "ledger" if kind == "teamownership" else LEDGER
        result = attempt(
            system,
            "patch",
            kind,
            name,
            "--subresource=status",
            "--type",
            "merge",
            "-p",
            '{"status": {"conditions": []}}',
            user=MALLORY,
        )
        refused(result, "is written only by the jitaccess operator", how=kind)
    nothing_granted(system, "a07-broad")


# --- 8. a user creates or edits an AccessGrant ----------------------------------------------------


def _forged_grant(name: str, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessGrant",
        "metadata": {"name": name},
        "spec": {"user": user, "entitlement": LEDGER, "groupName": LEDGER, "request": name, "duration": "4h"},
    }


def test_08_users_cannot_create_grants(system: Jit) -> None:
    for user in (ALICE, LENA):
        for verb in ("create", "apply"):
            refused(
                system.apply(_forged_grant("a08", user), user=user, verb=verb, check=False),
                f'User "{user}" cannot',
                how=f"{user} {verb}",
            )
    nothing_granted(system, "a08")


def test_08_grants_stay_operator_only_when_rbac_allows_everything(system: Jit, mallory_can_do_anything: str) -> None:
    for verb in ("create", "apply"):
        refused(
            system.apply(_forged_grant("a08-broad", MALLORY), user=MALLORY, verb=verb, check=False),
            "AccessGrants are created only by the jitaccess operator",
            how=verb,
        )
    refused(
        attempt(
            system,
            "apply",
            "--server-side",
            "-f",
            "-",
            input=yaml.safe_dump(_forged_grant("a08-broad", MALLORY)),
            user=MALLORY,
        ),
        "created only by the jitaccess operator",
    )
    granted_request(system, "a08-live")
    all_refused(
        every_way_to_change(system, "accessgrant", "a08-live", MALLORY, spec={"user": MALLORY}),
        "spec of an AccessGrant is written only by the jitaccess operator",
    )
    all_refused(
        every_way_to_change(system, "accessgrant", "a08-live", MALLORY, annotations={REVOKED: "true"}),
        f"{MALLORY} may not revoke this grant",
    )
    refused(
        attempt(system, "delete", "accessgrant", "a08-live", "--wait=false", user=MALLORY),
        "only approvers of team ledger",
    )
    assert system.members(LEDGER) == {ALICE}


def test_08_grants_cannot_be_edited_by_approver_or_grantee(system: Jit) -> None:
    granted_request(system, "a08-edit")
    for user in (LENA, ALICE):
        for change, message in (
            ({"spec": {"duration": "4h"}}, "spec of an AccessGrant is written only by the jitaccess operator"),
            (
                {"annotations": {REVOKED_BY: MALLORY, REVOKED: "true"}},
                "jitaccess.dev/revoked-by] is written only by the jitaccess admission webhook",
            ),
        ):
            results = every_way_to_change(system, "accessgrant", "a08-edit", user, **change)
            if user == ALICE:  # a grantee may patch (to revoke), not update: RBAC refuses `replace`
                refused(results.pop("replace"), f'User "{ALICE}" cannot update resource "accessgrants"')
            all_refused(results, message)
    refused(
        attempt(
            system,
            "label",
            "accessgrant",
            "a08-edit",
            "jitaccess.dev/entitlement=prod-eng-payments",
            "--overwrite",
            user=LENA,
        ),
        "metadata.labels of an AccessGrant",
    )
    grant = system.get("accessgrant", "a08-edit") or {}
    assert grant["spec"]["duration"] == "1h" and REVOKED not in (grant["metadata"].get("annotations") or {})
    assert system.ready_reason("accessgrant", "a08-edit") == "Active"


# --- 9. the operator's bookkeeping -----------------------------------------------------------------


def test_09_kopf_bookkeeping_is_out_of_reach(system: Jit, mallory_can_do_anything: str) -> None:
    pending_request(system, "a09")
    forged = {"kopf.zalando.org/reconcile_request": '{"started":"2026-01-01T00:00:00Z","success":true}'}
    all_refused(
        every_way_to_change(system, "accessrequest", "a09", LENA, annotations=forged),
        "kopf.zalando.org/reconcile_request",
        "only the operator may write them",
    )
    progress = {"status": {"kopf": {"progress": {"reconcile_request": {"success": True}}}}}
    for user, fragment in ((LENA, 'cannot get resource "accessrequests/status"'), (MALLORY, OPERATOR_ONLY)):
        result = attempt(
            system,
            "patch",
            "accessrequest",
            "a09",
            "--subresource=status",
            "--type",
            "merge",
            "-p",
            json.dumps(progress),
            user=user,
        )
        refused(result, fragment, how=user)
    refused(
        attempt(system, "annotate", "teamownership", "ledger", "kopf.zalando.org/check_team=done", user=MALLORY),
        "kopf.zalando.org/check_team",
    )
    # The operator still acts on the request as usual: lena's approval goes through.
    system.kubectl("annotate", "accessrequest", "a09", f"{APPROVED}=true", user=LENA)
    system.wait_reason("accessgrant", "a09", "Active")
    assert system.members(LEDGER) == {ALICE}


def test_09_grant_finalizer_cannot_be_removed(system: Jit) -> None:
    granted_request(system, "a09-fin")
    finalizers = (system.get("accessgrant", "a09-fin") or {})["metadata"]["finalizers"]
    assert finalizers
    all_refused(
        every_way_to_change(system, "accessgrant", "a09-fin", LENA, finalizers=[]),
        "metadata.finalizers",
        "belong to the jitaccess operator",
    )
    # A deletion that reaches the grant while it runs (the operator's identity, here; an approver
    # revokes it first: attack 124): the finalizer makes sure the membership goes first.
    system.kubectl("delete", "accessgrant", "a09-fin", "--timeout=30s")
    assert system.members(LEDGER) == set()
    system.wait_reason("accessrequest", "a09-fin", "Revoked")


# --- 10. GitOps re-applies a manifest that once carried an approval ----------------------------------


def test_10_reapplied_approval_grants_nothing_new(system: Jit) -> None:
    granted_request(system, "a10")
    saved = manifest(system, "accessrequest", "a10", keep_version=False)
    assert saved["metadata"]["annotations"][APPROVED_BY] == LENA
    system.kubectl("annotate", "accessgrant", "a10", f"{REVOKED}=true", user=ALICE)
    system.wait_reason("accessrequest", "a10", "Revoked")
    assert system.members(LEDGER) == set()
    # Re-applied onto the live object (by someone allowed to patch it): a no-op, nothing granted again.
    system.apply(saved, user=LENA)
    assert system.ready_reason("accessrequest", "a10") == "Revoked"
    assert system.ready_reason("accessgrant", "a10") == "Revoked"
    # Re-created after a prune, or under a new name: refused, the approval does not travel.
    system.kubectl("delete", "accessrequest,accessgrant", "a10", "--timeout=30s")
    for name in ("a10", "a10-copy"):
        copy_ = copy.deepcopy(saved)
        copy_["metadata"]["name"] = name
        for user in (ALICE, LENA):
            refused(system.apply(copy_, user=user, check=False), "cannot be created already decided", how=user)
    assert system.get("accessgrant", "a10") is None
    assert system.members(LEDGER) == set()


# --- 11. durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "message"),
    [
        ("5h", "spec.duration 5h is above the entitlement's maxDuration 4h: ask for 4h or less"),
        ("-1h", "must be a duration such as 30m, 1h or 1h30m"),
        ("0s", "spec.duration '0s' is zero"),
        ("soon", "must be a duration such as 30m, 1h or 1h30m"),
        ("1d", "must be a duration such as 30m, 1h or 1h30m"),
        # 31 digits: within the schema's pattern and length, past what a date can hold.
        ("9" * 31 + "h", "is longer than 87600h (ten years), the longest duration jitaccess takes"),
    ],
)
def test_11_durations_out_of_bounds_are_refused(system: Jit, duration: str, message: str) -> None:
    refused(system.request("a11", LEDGER, duration=duration, user=ALICE, check=False), message)
    nothing_granted(system, "a11")


# --- 12. entitlements or teams that do not exist ------------------------------------------------------


def test_12_unknown_entitlement_or_owner_team_is_refused(system: Jit) -> None:
    refused(
        system.request("a12", "prod-eng-nope", user=ALICE, check=False),
        "spec.entitlement names 'prod-eng-nope', which does not exist",
    )
    system.apply(
        {
            "apiVersion": "jitaccess.dev/v1alpha1",
            "kind": "Entitlement",
            "metadata": {"name": "e2e-orphan"},
            # A group of its own: ledger's production group is team ledger's alone (attack 112).
            "spec": {"owner": "no-such-team", "identityCenter": {"groupName": "prod-e2e-orphan"}},
        }
    )
    try:
        refused(
            system.request("a12", "e2e-orphan", user=ALICE, check=False),
            "owner team 'no-such-team' does not exist",
        )
    finally:
        system.kubectl("delete", "entitlement", "e2e-orphan")
    nothing_granted(system, "a12")


def test_12_ineligible_requester_is_told_what_is_missing(system: Jit) -> None:
    refused(
        system.request("a12-eve", PAYMENTS, user=EVE, check=False),
        f"{EVE} is not in the Identity Center group(s) prod-eligible, pci-secure-code-trained",
    )
    # The same answer in advance, without creating anything.
    refused(
        attempt(
            system,
            "create",
            "--dry-run=server",
            "-f",
            str(EXAMPLES / "requests" / "alice-prod-payments.yaml"),
            user=EVE,
        ),
        "pci-secure-code-trained",
    )
    nothing_granted(system, "a12-eve", PAYMENTS)


# --- 13. decisions race -------------------------------------------------------------------------------


ROUNDS = 20


def test_13_concurrent_decisions_have_exactly_one_outcome(system: Jit, racers: str) -> None:
    names = [f"a13-race-{i}" for i in range(ROUNDS)]
    actors = ((PAULA, f"{APPROVED}=true"), (LENA, f"{APPROVED}=true"), (CAROL, f"{DENIED}=true"))
    winners: dict[str, str] = {}

    def outcome(name: str) -> None:
        winner = winners[name]
        if winner == CAROL:
            assert system.wait_reason("accessrequest", name, "Denied")["status"]["deniedBy"] == CAROL
        else:
            assert system.wait_reason("accessrequest", name, "Granted")["status"]["approvedBy"] == winner

    for name in names:
        # One round at a time: alice may have one request for this access waiting (attack 90).
        system.request(name, racers, user=ALICE)
        system.wait_reason("accessrequest", name, "Pending")
        barrier = threading.Barrier(len(actors))
        results: dict[str, subprocess.CompletedProcess[str]] = {}

        def act(
            user: str,
            flag: str,
            name: str = name,
            barrier: threading.Barrier = barrier,
            results: dict[str, subprocess.CompletedProcess[str]] = results,
        ) -> None:
            barrier.wait()
            # --overwrite: the API server, not kubectl's own earlier read, is the arbiter.
            results[user] = attempt(system, "annotate", "--overwrite", "accessrequest", name, flag, user=user)

        threads = [threading.Thread(target=act, args=actor) for actor in actors]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        accepted = {user for user, result in results.items() if result.returncode == 0}
        # A second approval finds approved=true already there: an unchanged annotation, so the API
        # server reports success and records nothing. A change against the decision is refused.
        assert accepted in ({CAROL}, {PAULA}, {LENA}, {PAULA, LENA}), {u: r.stderr for u, r in results.items()}
        for user, result in results.items():
            if user not in accepted:
                assert "already" in result.stderr and "a decision is final" in result.stderr, result.stderr
        annotations = annotations_of(system, "accessrequest", name)
        stamps = {key: annotations[key] for key in (APPROVED_BY, DENIED_BY) if key in annotations}
        assert len(stamps) == 1, annotations
        winner = next(iter(stamps.values()))
        assert winner in accepted
        winners[name] = winner
        outcome(name)
    grants = json.loads(system.kubectl("get", "accessgrants", "-o", "json").stdout)["items"]
    granted = sorted(g["metadata"]["name"] for g in grants)
    assert granted == sorted(n for n, w in winners.items() if w != CAROL), "one grant per approval, none per denial"
    memberships = system.ic.client().list_group_memberships(
        IdentityStoreId=system.ic.identity_store_id, GroupId=system.ic.group_id(racers)
    )["GroupMemberships"]
    assert len(memberships) == (1 if granted else 0), "one membership, however many grants hold it"


# --- 14. the webhook is down ---------------------------------------------------------------------------


def test_14_webhook_down_fails_closed(system: Jit) -> None:
    pending_request(system, "a14")
    system.operator.stop()
    try:
        for how, result in every_way_to_change(
            system, "accessrequest", "a14", LENA, annotations={APPROVED: "true"}
        ).items():
            if how != "patch --type strategic":
                refused(result, "failed calling webhook", how=how)
        refused(system.request("a14-new", LEDGER, user=ALICE, check=False), "failed calling webhook")
        # Even the cluster admin: nothing skips the checks while the operator is away.
        refused(
            attempt(system, "annotate", "accessrequest", "a14", f"{APPROVED}=true", user=None), "failed calling webhook"
        )
        # A grant by any administrator but the operator's own identity (which the grant webhooks skip:
        # they admit its every write, docs/security.md; attack 33 is what it could do with that).
        forged = yaml.safe_dump(_forged_grant("a14-forged", ALICE))
        refused(
            attempt(
                system, "apply", "-f", "-", "--as=another-admin", "--as-group=system:masters", user=None, input=forged
            ),
            "failed calling webhook",
        )
        assert APPROVED not in annotations_of(system, "accessrequest", "a14")
    finally:
        system.operator.start()
    assert system.get("accessrequest", "a14-new") is None and system.get("accessgrant", "a14-forged") is None
    nothing_granted(system, "a14")
    # Back up: the same approval now goes through, at once (the operator reports ready only once
    # its webhooks answer).
    system.kubectl("annotate", "accessrequest", "a14", f"{APPROVED}=true", user=LENA)
    system.wait_reason("accessgrant", "a14", "Active")
    assert system.members(LEDGER) == {ALICE}


# --- 15. a decision changed after it is final -----------------------------------------------------


def test_a_decision_is_final(system: Jit) -> None:
    pending_request(system, "x-final")
    system.kubectl(
        "annotate", "accessrequest", "x-final", f"{DENIED}=true", "jitaccess.dev/decision-reason=no", user=LENA
    )
    system.wait_reason("accessrequest", "x-final", "Denied")
    for changes in ({APPROVED: "true"}, {DENIED: None}, {DENIED: "false"}, {"jitaccess.dev/decision-reason": "yes"}):
        all_refused(
            every_way_to_change(system, "accessrequest", "x-final", LENA, annotations=changes),
            f"already denied by {LENA}",
            "a decision is final",
        )
    all_refused(
        every_way_to_change(system, "accessrequest", "x-final", LENA, annotations={DENIED_BY: MALLORY}),
        f"{DENIED_BY}] {STAMP}",
    )
    assert system.get("accessgrant", "x-final") is None
    assert system.members(LEDGER) == set()


# --- 16. an approver writes their own stamp -------------------------------------------------------


def test_approver_cannot_write_their_own_stamp(system: Jit) -> None:
    pending_request(system, "x-stamp")
    for stamps in (
        {APPROVED: "true", APPROVED_BY: LENA},
        {APPROVED_BY: LENA},
        {APPROVED: "true", APPROVED_BY: BOB},
    ):
        all_refused(every_way_to_change(system, "accessrequest", "x-stamp", LENA, annotations=stamps), STAMP)
    nothing_granted(system, "x-stamp")


def test_approval_by_apply_of_a_modified_manifest_is_stamped(system: Jit) -> None:
    """The legitimate counterpart: an approver may approve with `kubectl apply`; it is stamped."""
    pending_request(system, "x-apply")
    edited = manifest(system, "accessrequest", "x-apply", keep_version=False)
    edited["metadata"].setdefault("annotations", {})[APPROVED] = "true"
    refused(system.apply(edited, user=PAULA, check=False), f"{PAULA} {NOT_APPROVER}")
    system.apply(edited, user=LENA)
    assert annotations_of(system, "accessrequest", "x-apply")[APPROVED_BY] == LENA
    system.wait_reason("accessgrant", "x-apply", "Active")


# --- 17. impersonating an approver ----------------------------------------------------------------


def test_impersonation_without_the_right_is_refused(system: Jit) -> None:
    pending_request(system, "x-as")
    for extra in (
        [f"--as={LENA}"],
        [f"--as={MALLORY}", "--as-group=team-ledger"],
        ["--as=admin", "--as-group=system:masters"],
    ):
        refused(
            attempt(system, "annotate", "accessrequest", "x-as", f"{APPROVED}=true", *extra, user=MALLORY),
            "cannot impersonate",
            how=" ".join(extra),
        )
    nothing_granted(system, "x-as")


# --- 18. removing the admission layers ------------------------------------------------------------


def test_users_cannot_remove_the_admission_layers(system: Jit) -> None:
    for kind, name in (
        ("validatingwebhookconfiguration", WEBHOOK_CONFIGURATION),
        ("mutatingwebhookconfiguration", WEBHOOK_CONFIGURATION),
        ("validatingadmissionpolicy", "jitaccess.dev-identity"),
        ("validatingadmissionpolicybinding", "jitaccess.dev-identity"),
        ("clusterrolebinding", "jitaccess-dev-approvers"),
    ):
        for user in (MALLORY, LENA):
            refused(attempt(system, "delete", kind, name, user=user), "forbidden", how=f"{user} {kind}")
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        patch = '{"webhooks": []}'
        refused(
            attempt(system, "patch", kind, WEBHOOK_CONFIGURATION, "--type", "merge", "-p", patch, user=LENA),
            "forbidden",
        )
    webhooks = json.loads(
        system.kubectl("get", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION, "-o", "json").stdout
    )
    assert {w["failurePolicy"] for w in webhooks["webhooks"]} == {"Fail"}


# --- 19. a write the webhooks do not see ----------------------------------------------------------


def test_webhook_configurations_fail_closed_and_cover_every_write(system: Jit) -> None:
    configs = {
        kind: json.loads(system.kubectl("get", kind, WEBHOOK_CONFIGURATION, "-o", "json").stdout)["webhooks"]
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration")
    }
    rules = {}
    for kind, webhooks in configs.items():
        for webhook in webhooks:
            assert webhook["failurePolicy"] == "Fail", webhook["name"]
            assert webhook["clientConfig"].get("caBundle"), webhook["name"]
            for rule in webhook["rules"]:
                assert rule["apiGroups"] == ["jitaccess.dev"], webhook["name"]
                for resource in rule["resources"]:
                    rules.setdefault((kind, resource), set()).update(rule["operations"])
    mutating, validating = "mutatingwebhookconfiguration", "validatingwebhookconfiguration"
    assert rules[(mutating, "accessrequests")] == {"CREATE", "UPDATE"}
    assert rules[(mutating, "accessgrants")] == {"CREATE", "UPDATE"}
    assert rules[(validating, "accessrequests")] == {"CREATE", "UPDATE", "DELETE"}
    assert rules[(validating, "accessgrants")] == {"CREATE", "UPDATE", "DELETE"}
    for plural in ("accessrequests", "accessgrants", "teamownerships", "entitlements"):
        assert rules[(validating, f"{plural}/status")] == {"UPDATE"}
    # The API server skips a webhook only for the operator's own writes (the session's operator runs
    # as the admin), and only on the kinds whose rules admit every write of the operator unseen:
    # every user's write is still sent, and requests are checked whoever writes them.
    operator = json.loads(system.kubectl("auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]["username"]
    skipping = not_the_operator([operator])
    # The policy kinds skip it only while their spec stays as it was (attack 110).
    spec_kept = not_the_operator([operator], unless_spec_changes=True)
    policy = {f"{plural}-check.jitaccess.dev" for plural in ("teamownerships", "entitlements", "permissioncatalogs")}
    for webhooks in configs.values():
        for webhook in webhooks:
            conditions = webhook.get("matchConditions")
            assert conditions in (None, [spec_kept if webhook["name"] in policy else skipping]), webhook["name"]
    skipped = {w["name"] for webhooks in configs.values() for w in webhooks if w.get("matchConditions")}
    assert "accessrequests-stamp.jitaccess.dev" not in skipped and "accessrequests-check.jitaccess.dev" not in skipped
    assert "accessgrants-check.jitaccess.dev" in skipped and "accessrequests-status.jitaccess.dev" in skipped


# --- 20. someone else revokes or deletes a grant --------------------------------------------------


def test_grant_revocation_is_for_the_grantee_and_owner_approvers(system: Jit) -> None:
    granted_request(system, "x-revoke")
    for user in (BOB, PAULA, CAROL):  # a ledger member, another team's lead, a backup approver
        refused(
            attempt(system, "annotate", "accessgrant", "x-revoke", f"{REVOKED}=true", user=user),
            f"{user} may not revoke this grant: only the grantee {ALICE} or an approver of team ledger",
            how=user,
        )
    refused(
        attempt(system, "delete", "accessgrant", "x-revoke", "--wait=false", user=PAULA),
        "only approvers of team ledger (lena@example.com) may do",
    )
    refused(attempt(system, "delete", "accessgrant", "x-revoke", "--wait=false", user=ALICE), "cannot delete")
    assert system.members(LEDGER) == {ALICE}
    system.kubectl("annotate", "accessgrant", "x-revoke", f"{REVOKED}=true", user=LENA)
    revoked = system.wait_reason("accessgrant", "x-revoke", "Revoked")
    assert revoked["metadata"]["annotations"][REVOKED_BY] == LENA and revoked["status"]["revokedBy"] == LENA
    assert system.members(LEDGER) == set()
    refused(
        attempt(system, "annotate", "accessgrant", "x-revoke", f"{REVOKED}-", user=LENA),
        f"already revoked by {LENA}",
    )


# --- 21. probing with a server-side dry run -------------------------------------------------------


def test_dry_run_tells_the_same_without_changing_anything(system: Jit) -> None:
    pending_request(system, "x-dry")
    refused(
        attempt(system, "annotate", "--dry-run=server", "accessrequest", "x-dry", f"{APPROVED}=true", user=PAULA),
        NOT_APPROVER,
    )
    result = attempt(
        system, "annotate", "--dry-run=server", "-o", "json", "accessrequest", "x-dry", f"{APPROVED}=true", user=LENA
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["metadata"]["annotations"][APPROVED_BY] == LENA
    assert APPROVED not in annotations_of(system, "accessrequest", "x-dry")
    nothing_granted(system, "x-dry")


# --- 22. the webhooks are gone: the ValidatingAdmissionPolicy alone -------------------------------


def test_policy_holds_the_identity_invariants_with_the_webhooks_gone(system: Jit) -> None:
    system.operator.stop()
    try:
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            system.kubectl("delete", kind, WEBHOOK_CONFIGURATION, "--ignore-not-found")
        body = {
            "apiVersion": "jitaccess.dev/v1alpha1",
            "kind": "AccessRequest",
            "metadata": {"name": "p-1"},
            "spec": {"entitlement": LEDGER, "reason": "INFRA-1 policy"},
        }
        # Refused by the policy: a decision at creation, someone else as the requester.
        decided = copy.deepcopy(body)
        decided["metadata"]["annotations"] = {APPROVED: "true", APPROVED_BY: LENA}
        refused(system.apply(decided, user=ALICE, check=False), VAP, "cannot be created already decided")
        forged = copy.deepcopy(body)
        forged["spec"]["requester"] = BOB
        refused(
            system.apply(forged, user=ALICE, check=False),
            VAP,
            f"spec.requester must be the authenticated caller ({ALICE})",
        )
        # Groups the caller does not have would be an auto-approval (owner team, on call, break-glass).
        grouped = copy.deepcopy(body)
        grouped["spec"]["requesterGroups"] = ["team-ledger"]
        refused(
            system.apply(grouped, user=ALICE, check=False),
            VAP,
            "spec.requesterGroups can only name groups the API server authenticated you with",
        )
        # Without the webhook nothing is stamped; the policy still keeps every stamp the caller's own.
        system.apply(body, user=ALICE)
        refused(
            attempt(
                system, "annotate", "accessrequest", "p-1", f"{APPROVED}=true", f"{APPROVED_BY}={LENA}", user=PAULA
            ),
            VAP,
            f"can only ever be the authenticated caller ({PAULA})",
        )
        refused(
            attempt(
                system, "annotate", "accessrequest", "p-1", "jitaccess.dev/approved-by-groups=system:masters", user=LENA
            ),
            VAP,
            "can only name groups of the authenticated caller",
        )
        system.kubectl("annotate", "accessrequest", "p-1", f"{APPROVED}=true", f"{APPROVED_BY}={LENA}", user=LENA)
        for change in (f"{APPROVED_BY}={PAULA}", f"{APPROVED_BY}-"):
            refused(
                attempt(system, "annotate", "--overwrite", "accessrequest", "p-1", change, user=PAULA),
                VAP,
                "never change or go away",
                how=change,
            )
        refused(
            attempt(
                system,
                "patch",
                "accessrequest",
                "p-1",
                "--type",
                "merge",
                "-p",
                json.dumps({"spec": {"requester": MALLORY}}),
                user=LENA,
            ),
            "immutable",
        )
        # The operator's own writes pass: the admin (the operator's identity here) can still clean up.
        system.kubectl("delete", "accessrequest", "p-1")
    finally:
        system.operator.start()
    # kopf wrote the configurations again at start-up, and they answer.
    forged_again = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": "p-2"},
        "spec": {"entitlement": LEDGER, "reason": "INFRA-1 policy", "requester": BOB},
    }
    refused(system.apply(forged_again, user=ALICE, check=False), "admission webhook", "spec.requester is")


# --- 114. a decision under a key jitaccess does not read (jitaccess.dev/approve=true) ------------------


def test_a_misspelt_decision_is_refused_and_the_request_stays_pending(system: Jit) -> None:
    """Stored, `approve` would be read by nobody: the approver would believe the request decided."""
    pending_request(system, "x-typo")
    for key, meant in (("jitaccess.dev/approve", APPROVED), ("jitaccess.dev/deny", DENIED)):
        all_refused(
            every_way_to_change(system, "accessrequest", "x-typo", LENA, annotations={key: "true"}),
            f"metadata.annotations[{key}]: AccessRequests have no such annotation",
            f"did you mean {meant}?",
        )
    nothing_granted(system, "x-typo")
    # The approver's own annotations are theirs, and the right key still decides.
    system.kubectl("annotate", "accessrequest", "x-typo", "example.com/ticket=INC-111", user=LENA)
    system.kubectl("annotate", "accessrequest", "x-typo", f"{APPROVED}=true", user=LENA)
    system.wait_reason("accessgrant", "x-typo", "Active")
    # An extension of the grant: the same rule.
    extension = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessExtension",
        "metadata": {"name": "x-typo-1"},
        "spec": {"grant": "x-typo", "duration": "30m", "reason": "INC-111 more time"},
    }
    system.kubectl("create", "-f", "-", user=ALICE, input=yaml.safe_dump(extension))
    system.wait_reason("accessextension", "x-typo-1", "Pending")
    all_refused(
        every_way_to_change(system, "accessextension", "x-typo-1", LENA, annotations={"jitaccess.dev/aproved": "true"}),
        "metadata.annotations[jitaccess.dev/aproved]: AccessExtensions have no such annotation",
        f"did you mean {APPROVED}?",
    )
    assert system.ready_reason("accessextension", "x-typo-1") == "Pending"
    system.kubectl("delete", "accessextension", "x-typo-1", "--wait=false")

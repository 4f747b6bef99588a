"""Attack 117 of docs/security.md: a name at Kubernetes' limit where jitaccess derives another from it,
and, its principle, any grant the API server refuses as invalid.

An object name may be 253 characters long, a label value 63. Each AccessGrant carries its
Entitlement's name as the value of the label `jitaccess.dev/entitlement`, so an Entitlement named
in 64 to 253 characters was admitted and Ready, and every grant of it was refused by the API
server: its requests were approved, and then never granted, the operator trying again without end.
Written as GitOps would (the admin, `kubectl apply`), through the real API server and the
operator's webhooks.

Attack 130: a request created under the name of an earlier request's AccessGrant, which a request's
grant would take, so that the plugin takes the old grant for the new request's.

Attack 134: the retention of an ended grant deleting, by name, a request that is not the grant's.

Attack 136: a break-glass request named after its Entitlement, so that the Entitlement's access
review (`kubectl jit review NAME`) recorded a review of the request instead.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.paths import CRDS
from tests.e2e.approval_policies import CAROL, PCI, break_glass, pci
from tests.e2e.cli_run import Cli
from tests.e2e.test_attacks_policy import example, refused, stored_without_webhooks
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e
__all__ = ["pci"]  # the PCI example installed for attack 136 (a fixture)
LENA = "lena@example.com"
#: A valid object name, one character too long for a label value.
LONG = ("prod-eng-ledger-" + "x" * 64)[:64]


def long_named() -> dict[str, Any]:
    """ledger's Entitlement as the examples have it, under a 64-character name."""
    entitlement = example("02-entitlements.yaml", "prod-eng-ledger")
    entitlement["metadata"]["name"] = LONG
    return entitlement


@pytest.fixture
def named(system: Jit) -> Iterator[Jit]:
    """The shared system; the long-named Entitlement deleted afterwards (should it get through)."""
    yield system
    system.clean()
    system.kubectl("delete", "entitlement", LONG, "--ignore-not-found")


def stored_before_the_rules(system: Jit) -> None:
    """The long-named Entitlement stored as before the rules (an upgrade): the webhooks gone and
    the CRD without its rule on the name; then the CRD as this version has it again."""
    path = CRDS / "jitaccess.dev_entitlements.yaml"
    crd = yaml.safe_load(path.read_text())
    del crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"]
    system.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(crd))
    try:
        stored_without_webhooks(system, long_named())
    finally:
        system.kubectl("apply", "--server-side", "-f", str(path))


# --- 117. an Entitlement named beyond what a label value may hold -----------------------------------


def test_117_an_entitlement_named_beyond_a_label_value_is_refused(named: Jit) -> None:
    """64 characters: refused at creation, naming the field, the limit and the fix; nothing stored
    (by the CRD's rule, which the API server checks before the webhook's)."""
    said = refused(
        named.apply(long_named(), check=False),
        "metadata.name is longer than 63 characters, the limit",
        "the label jitaccess.dev/entitlement",
        "name it in 63 characters or fewer",
    )
    assert "no grant of it could be created" in said
    assert named.get("entitlement", LONG) is None


def test_117_a_request_for_one_stored_before_the_rule_is_refused_saying_why(named: Jit, cli: Cli) -> None:
    """Stored while the webhooks were gone (or before an upgrade brought the rule), the Entitlement
    is there, not Ready (PolicyRefused, naming the name and the fix, as `kubectl get entitlements`
    shows); lena, of its owner team, would be auto-approved into a grant the API server refuses.
    Her request is refused at creation instead, saying why and what to do; `kubectl jit who-has`
    of it answers (a label selector cannot hold its name)."""
    stored_before_the_rules(named)
    stored = named.wait_reason("entitlement", LONG, "PolicyRefused", timeout=30)
    ready = next(c for c in stored["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert f"admission refuses the name {LONG} now" in ready["message"]
    assert "metadata.name is 64 characters long, above the limit of 63" in ready["message"]
    assert "create it again under a shorter name, then delete this one" in ready["message"]
    holders = cli.run("who-has", LONG, user=LENA)
    assert holders.code == 0 and f"Nobody holds {LONG} now." in holders.out + holders.err, holders
    refused(
        named.request("lena-long-name", LONG, user=LENA, check=False),
        "spec.entitlement names an Entitlement whose name is 64 characters long, above the limit of 63",
        "ask its owners to create it again under a shorter name",
    )
    assert named.get("accessrequest", "lena-long-name") is None
    assert named.members("prod-eng-ledger") == set()


def test_117_the_crd_refuses_the_name_where_no_webhook_runs(named: Jit) -> None:
    """The webhooks gone (attack 22's setting): the API server refuses the name by the CRD's rule."""
    named.operator.stop()
    try:
        for configuration in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            named.kubectl("delete", configuration, "jitaccess.dev", "--ignore-not-found")
        refused(
            named.apply(long_named(), check=False),
            "metadata.name is longer than 63 characters, the limit",
            "name it in 63 characters or fewer",
        )
        assert named.get("entitlement", LONG) is None
    finally:
        named.operator.start()


def test_117_one_stored_before_the_rule_can_still_be_changed_and_deleted(named: Jit) -> None:
    """The rule is on the name, which never changes: an Entitlement stored before it is still
    written (the operator's status, an owner's spec change) and deleted (its finalizer removed)."""
    stored_before_the_rules(named)
    named.wait_reason("entitlement", LONG, "PolicyRefused", timeout=30)
    named.kubectl("patch", "entitlement", LONG, "--type=merge", "-p", '{"spec": {"maxDuration": "2h"}}')
    eventually(
        lambda: (named.condition("entitlement", LONG, "Ready") or {}).get("observedGeneration") == 2 or None,
        timeout=30,
        what="the operator's status write of the changed spec",
    )
    named.kubectl("delete", "entitlement", LONG, "--wait=true", "--timeout=30s")
    assert named.get("entitlement", LONG) is None


# --- 117, the principle: any grant the API server refuses as invalid ---------------------------------

#: The policy's name, and a ConfigMap name it refuses too, so that a dry run tells when it is in force.
REFUSING = "refuse-ledger-grants"
REFUSAL = "grants of prod-eng-ledger are refused here (test)"


def _refusing_ledger_grants() -> dict[str, Any]:
    """A ValidatingAdmissionPolicy refusing, as Invalid (422), every AccessGrant of prod-eng-ledger:
    the operator's own write, as a cluster's rule or a schema bound refuses it."""
    refuses = (
        f"request.resource.resource == 'configmaps' ? object.metadata.name != '{REFUSING}'"
        " : object.spec.entitlement != 'prod-eng-ledger'"
    )
    rules = [
        {"apiGroups": ["jitaccess.dev"], "apiVersions": ["*"], "operations": ["CREATE"], "resources": ["accessgrants"]},
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]},
    ]
    policy = {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": rules},
        "validations": [{"expression": refuses, "message": REFUSAL, "reason": "Invalid"}],
    }
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": REFUSING},
                "spec": policy,
            },
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": REFUSING},
                "spec": {"policyName": REFUSING, "validationActions": ["Deny"]},
            },
        ],
    }


def test_117_a_grant_the_api_server_refuses_as_invalid_fails_its_request(named: Jit) -> None:
    """lena, of ledger's owner team, is auto-approved; the API server refuses her grant (422, here an
    admission policy's). Her request ends Failed in the API server's words, with the fix, instead of
    staying Pending while the operator retries the same write without end; nobody is given access."""
    named.apply(_refusing_ledger_grants())
    try:
        probe = ("create", "configmap", REFUSING, "-n", "default", "--dry-run=server")
        eventually(
            lambda: REFUSAL in named.kubectl(*probe, check=False).stderr or None, timeout=30, what="the policy in force"
        )
        named.request("lena-refused-grant", "prod-eng-ledger", user=LENA)
        done = named.wait_reason("accessrequest", "lena-refused-grant", "Failed", timeout=30)
        ready = next(c for c in done["status"]["conditions"] if c["type"] == "Ready")
        assert "the API server refused to create AccessGrant lena-refused-grant as invalid" in ready["message"]
        assert REFUSAL in ready["message"] and "create the request again under a new name" in ready["message"]
        said = [e for e in named.events("lena-refused-grant", "AccessRequest") if e["reason"] == "Failed"]
        assert [e["type"] for e in said] == ["Warning"] and REFUSAL in said[0]["message"]
        assert named.get("accessgrant", "lena-refused-grant") is None
        assert named.members("prod-eng-ledger") == set()
        log = named.operator.tail(400).splitlines()
        assert not [line for line in log if "lena-refused-grant" in line and "retry" in line.lower()]
    finally:
        named.kubectl(
            "delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", REFUSING, "--ignore-not-found"
        )


# --- 130. a request named after an earlier request's grant, which `kubectl jit` then takes for its own -------

ALICE, PAULA = "alice@example.com", "paula@example.com"
PAYMENTS = "prod-eng-payments"


def ended_grant_left_alone(system: Jit, name: str) -> dict[str, Any]:
    """alice's grant `name`, revoked, and its request deleted: the grant stays, alone under the name."""
    system.request(name, PAYMENTS, user=ALICE)
    system.wait_reason("accessgrant", name, "Active")
    system.kubectl("annotate", "accessgrant", name, "jitaccess.dev/revoked=true", user=ALICE)
    system.wait_reason("accessrequest", name, "Revoked")
    # The finished request may go (its owner team's approver); its grant stays, the record of that access.
    system.kubectl("delete", "accessrequest", name, "--timeout=30s", user=PAULA)
    assert system.get("accessrequest", name) is None
    return system.get("accessgrant", name) or {}


def window(name: str, entitlement: str, reason: str, **spec: str) -> dict[str, Any]:
    """A request for a window starting in 30 minutes."""
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name},
        "spec": {"entitlement": entitlement, "reason": reason, "startTime": start, **spec},
    }


def test_130_a_request_under_the_name_of_an_earlier_grant_is_refused(system: Jit) -> None:
    """A request's grant takes its name, and grants stay as records after their requests go. A new
    request under the name of such a grant was admitted: approved, it failed ("an AccessGrant named
    ... already exists"); Scheduled, `kubectl jit revoke NAME` found the old grant ended and refused to
    revoke it ("has already ended"), so it started once retention (or an approver) deleted the old
    grant; `kubectl jit status NAME` showed the old grant, its user and its end, as the request's.
    Refused at creation now, also in a dry run, naming the grant; the old grant is untouched."""
    kept = ended_grant_left_alone(system, "a130")
    body = window("a130", "prod-eng-ledger", "INC-130 ledger window")
    said = f"metadata.name: a130 is the name of AccessGrant a130 of an earlier request ({ALICE}, {PAYMENTS}, Revoked)"
    for dry in (["--dry-run=server"], []):
        result = system.kubectl("create", *dry, "-f", "-", input=json.dumps(body), user=ALICE, check=False)
        refused(result, said, "metadata.generateName")
        assert system.get("accessrequest", "a130") is None
    now = system.get("accessgrant", "a130") or {}
    assert now["metadata"]["resourceVersion"] == kept["metadata"]["resourceVersion"], "the old grant is untouched"
    # A name of its own (a generated one too) is admitted as ever; withdrawn, it leaves nothing waiting.
    body["metadata"] = {"generateName": "a130-"}
    created = json.loads(system.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(body), user=ALICE).stdout)
    name = created["metadata"]["name"]
    system.wait_reason("accessrequest", name, "Pending")
    system.kubectl("delete", "accessrequest", name, "--timeout=30s", user=ALICE)


# --- 134. retention of an ended grant deletes another request that took its name ---------------------


def test_134_retention_deletes_only_the_request_its_grant_was_made_for(system: Jit, tmp_path: Path) -> None:
    """Retention deleted a finished grant and then, by name, whatever request was stored under it:
    alice's approved window (`Scheduled`), asked under the name of an ended grant whose own request
    had gone (stored before attack 130's rule, or while the webhooks were gone; or created in the
    moment between retention's two deletions, the grant's name free), went with the old grant, her
    approval with it. Retention now deletes only the objects that ended: the request the grant was
    made for (its `jitaccess.dev/request` label), by uid."""
    with system.replaced(tmp_path, JITACCESS_RETENTION_SECONDS="30") as jit:
        old = ended_grant_left_alone(jit, "a134")
        asked = window("a134", PAYMENTS, "INC-134 payments window", requester=ALICE)
        # Stored while the webhooks were gone (or before attack 130's rule), by alice herself.
        jit.operator.stop()
        try:
            for configuration in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
                jit.kubectl("delete", configuration, "jitaccess.dev", "--ignore-not-found")
            jit.apply(asked, user=ALICE)
        finally:
            jit.operator.start()
        scheduled = jit.wait_reason("accessrequest", "a134", "Scheduled", timeout=60)
        assert scheduled["metadata"]["uid"] != old["metadata"]["labels"]["jitaccess.dev/request"]
        # The old grant's retention comes (30 s after its end, a pass every 5 s): it goes alone.
        eventually(
            lambda: jit.get("accessgrant", "a134") is None,
            timeout=60,
            interval=0.5,
            what=f"the old grant retired:\n{jit.operator.tail(20)}",
        )
        time.sleep(6)  # another retention pass
        kept = jit.get("accessrequest", "a134")
        assert kept is not None, f"alice's window went with the old grant:\n{jit.operator.tail(20)}"
        assert kept["metadata"]["uid"] == scheduled["metadata"]["uid"]
        assert (jit.condition("accessrequest", "a134", "Ready") or {}).get("reason") == "Scheduled"


# --- 136. a break-glass request named after its Entitlement, whose access review then reviewed it ---------


def not_reviewed(system: Jit) -> bool:
    stored = system.get("accessrequest", PCI) or {}
    return "jitaccess.dev/reviewed" not in (stored["metadata"].get("annotations") or {})


def test_136_a_bare_name_both_an_entitlement_and_a_break_glass_request_reviews_nothing(pci: Jit) -> None:
    """carol breaks glass under the Entitlement's own name (a requester chooses the name). paula's
    routine access review of the Entitlement, `kubectl jit review prod-eng-payments-pci`, recorded a
    review of carol's request instead: gone from the review list and the overdue gauge, unread.
    Refused now, naming both; `entitlement/NAME` and `request/NAME` each do only what they name."""
    cli = Cli(pci)
    try:
        assert break_glass(pci, PCI).returncode == 0
        pci.wait_reason("accessrequest", PCI, "Granted", timeout=30)
        bare = cli.run("review", PCI, user=PAULA)
        assert bare.code != 0, bare
        assert f"{PCI} is both an Entitlement and a break-glass AccessRequest ({CAROL}, {PCI})" in bare.err, bare
        assert f"`kubectl jit review request/{PCI}`" in bare.err, bare
        assert not_reviewed(pci)

        report = cli.run("review", f"entitlement/{PCI}", "-o", "json", user=PAULA)
        assert report.code == 0, report
        assert [g["request"] for g in json.loads(report.out)["breakGlass"]["unreviewed"]] == [PCI]
        assert not_reviewed(pci)

        reviewed = cli.run("review", f"request/{PCI}", user=PAULA)
        assert reviewed.code == 0 and f"reviewed break-glass accessrequest {PCI} ({CAROL}" in reviewed.out, reviewed
        eventually(
            lambda: (pci.condition("accessrequest", PCI, "Reviewed") or {}).get("status") == "True" or None,
            timeout=15,
            what="the Reviewed condition",
        )
    finally:
        cli.stop_all()

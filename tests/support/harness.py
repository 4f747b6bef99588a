"""The harness shared by the component and end-to-end tests and the benchmarks: a real control
plane with the CRDs, the Identity Center emulator and the operator as a subprocess, plus the few
verbs the tests use (install, apply as a user, wait, read).

Waiting is always a poll against a deadline on the real objects, never a bare sleep.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from devenv.controlplane import ControlPlane
from devenv.emulator import IdentityCenterEmulator
from devenv.operator_process import OperatorProcess
from devenv.paths import CRDS, EXAMPLES

T = TypeVar("T")

#: The name of the operator's webhook configurations (validating and mutating).
WEBHOOK_CONFIGURATION = "jitaccess.dev"
#: The operator's settings under test: short minimum duration, quick resync.
OPERATOR_ENV = {
    "JITACCESS_MIN_DURATION_SECONDS": "1",
    "JITACCESS_RESYNC_SECONDS": "5",
    "JITACCESS_PENDING_TIMEOUT_SECONDS": "120",
    "JITACCESS_REVOCATION_HOLD_SECONDS": "15",
    # The suite has alice create requests faster than a person would, and ask ledger's approvers
    # dozens of times an hour: attacks 94 and 95 run operators with these limits
    # (tests/e2e/test_attacks_fatigue.py).
    "JITACCESS_REQUESTS_PER_USER_PER_MINUTE": "0",
    "JITACCESS_APPROVAL_REQUESTS_PER_USER_PER_HOUR": "0",
    # Incident responders: examples/rbac.yaml binds the group to jitaccess-dev-responder, and the tests mint
    # users into it (tests/e2e/test_attacks_responders.py).
    "JITACCESS_RESPONDER_GROUPS": "sre-oncall",
}
#: The requesters' ClusterRole of examples/rbac.yaml (its dev-only name; the chart's is jitaccess-requester).
REQUESTER_ROLE = "jitaccess-dev-requester"
#: The example Entitlements, which `Jit.apply_examples` waits for.
EXAMPLE_ENTITLEMENTS = ("prod-eng-payments", "prod-eng-ledger")


#: The API server's own layer under the webhooks (a ValidatingAdmissionPolicy and its binding).
ADMISSION_POLICY = EXAMPLES / "admission-policy.yaml"
#: The name of that policy and of its binding.
ADMISSION_POLICY_NAME = "jitaccess.dev-identity"


def install(cluster: ControlPlane) -> None:
    """The CRDs, then who may do what (RBAC) and the API server's own layer under the webhooks (CEL)."""
    install_rbac(cluster)
    cluster.kubectl("apply", "-f", str(ADMISSION_POLICY))


def install_rbac(cluster: ControlPlane) -> None:
    """The CRDs and who may do what (RBAC), without the admission policy: component tests write
    objects as the webhooks would have stamped them, which the policy (rightly) refuses."""
    cluster.kubectl("apply", "--server-side", "-f", str(CRDS))
    cluster.kubectl("wait", "--for=condition=Established", "crd", "-l", "", "--all", "--timeout=60s")
    cluster.kubectl("apply", "-f", str(EXAMPLES / "rbac.yaml"))


def interruptible() -> None:
    """A child's `preexec_fn`: Ctrl-C (SIGINT) stops it as in a terminal, also when the suite itself
    runs with SIGINT ignored (started in the background by a shell without job control, or under
    nohup), which a child would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def eventually(check: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.1, what: str = "") -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"not within {timeout}s: {what or check} (last: {last!r})")


def assign_by_hand(
    emulator: IdentityCenterEmulator, arn: str, account: str, principal_id: str, principal_type: str = "USER"
) -> None:
    """A user (or group) assigned the permission set in the console, outside jitaccess
    (asynchronous, as in AWS): returns once the assignment is made."""
    emulator.client("sso-admin").create_account_assignment(
        InstanceArn=emulator.sso.arn,
        TargetId=account,
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=arn,
        PrincipalType=principal_type,
        PrincipalId=principal_id,
    )
    assignment = (account, arn, principal_type, principal_id)
    deadline = time.monotonic() + 10
    while assignment not in emulator.sso.assignments and time.monotonic() < deadline:
        time.sleep(0.02)
        emulator.sso.settle()
    assert assignment in emulator.sso.assignments


def entitlement(
    name: str, group: str, owner: str = "payments", eligible: tuple[str, ...] = ("prod-eligible",), **spec: Any
) -> dict[str, Any]:
    """The manifest of Entitlement `name` of team `owner` onto Identity Center group `group`, for the
    members of the `eligible` groups (none: no eligibility), with the other `spec` fields as given
    (`maxDuration="4h"`, ...)."""
    eligibility = {"eligibility": {"identityCenterGroups": list(eligible)}} if eligible else {}
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "Entitlement",
        "metadata": {"name": name},
        "spec": {"owner": owner, "identityCenter": {"groupName": group}, **eligibility, **spec},
    }


class Jit:
    """One test session's jitaccess system."""

    def __init__(
        self,
        cluster: ControlPlane,
        ic: IdentityCenterEmulator,
        operator: OperatorProcess,
        env: Mapping[str, str] = OPERATOR_ENV,
    ) -> None:
        self.cluster = cluster
        self.ic = ic
        self.operator = operator
        # The operator's settings its start was given (the tier's Slack and CloudEvents sinks among
        # them): a replaced operator (`replaced`) gets them too.
        self.env = dict(env)

    # --- kubectl as anyone -----------------------------------------------------------------

    @contextlib.contextmanager
    def replaced(self, log_dir: Path, **env: str) -> Iterator[Jit]:
        """This system with its operator replaced (two operators would both serve the webhooks and
        act on every request) by one run with `env` on top of the settings its own was started with
        (`self.env`: OPERATOR_ENV and the tier's Slack and CloudEvents sinks); afterwards cleaned,
        and the shared operator back."""
        self.operator.stop()
        log_file = log_dir / "operator.log"
        settings = {**self.env, **env}
        operator = OperatorProcess(self.cluster.admin_kubeconfig, self.ic.env(), log_file, extra_env=settings).start()
        system = Jit(self.cluster, self.ic, operator, settings)
        try:
            yield system
            system.clean()
        finally:
            operator.stop()
            self.operator.start()

    def kubectl(self, *args: str, user: str | None = None, input: str | None = None, check: bool = True) -> Any:
        return self.cluster.kubectl(*args, user=user, input=input, check=check)

    def apply(
        self, manifest: dict[str, Any] | str, user: str | None = None, verb: str = "apply", check: bool = True
    ) -> Any:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        return self.kubectl(verb, "-f", "-", user=user, input=text, check=check)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        result = self.kubectl("get", kind, name, "-o", "json", check=False)
        if result.returncode != 0:
            return None
        obj: dict[str, Any] = json.loads(result.stdout)
        return obj

    def ready_reason(self, kind: str, name: str) -> str | None:
        obj = self.get(kind, name) or {}
        for c in obj.get("status", {}).get("conditions", []):
            if c.get("type") == "Ready":
                return str(c.get("reason"))
        return None

    def wait_reason(self, kind: str, name: str, *reasons: str, timeout: float = 20.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj = self.get(kind, name)
            for c in (obj or {}).get("status", {}).get("conditions", []):
                if c.get("type") == "Ready" and c.get("reason") in reasons:
                    return obj
            return None

        return eventually(
            check,
            timeout,
            what=f"{kind}/{name} Ready.reason in {reasons} "
            f"(now {self.ready_reason(kind, name)}); operator log:\n{self.operator.tail(15)}",
        )

    def condition(self, kind: str, name: str, type_: str) -> dict[str, Any] | None:
        obj = self.get(kind, name) or {}
        return next((c for c in obj.get("status", {}).get("conditions", []) if c.get("type") == type_), None)

    def request(
        self,
        name: str,
        entitlement: str,
        reason: str = "INFRA-1 e2e test",
        duration: str | None = None,
        user: str = "alice@example.com",
        verb: str = "create",
        check: bool = True,
        **extra: Any,
    ) -> Any:
        spec: dict[str, Any] = {"entitlement": entitlement, "reason": reason, **extra}
        if duration:
            spec["duration"] = duration
        manifest = {
            "apiVersion": "jitaccess.dev/v1alpha1",
            "kind": "AccessRequest",
            "metadata": {"name": name},
            "spec": spec,
        }
        return self.apply(manifest, user=user, verb=verb, check=check)

    def members(self, group: str) -> set[str]:
        return self.ic.members_of(group)

    def events(self, name: str, kind: str | None = None) -> list[dict[str, Any]]:
        """Events about an object; a request and its grant share a name, so `kind` tells them apart."""
        selector = f"involvedObject.name={name}" + (f",involvedObject.kind={kind}" if kind else "")
        result = self.kubectl("get", "events", "-A", "--field-selector", selector, "-o", "json")
        return list(json.loads(result.stdout)["items"])

    @contextlib.contextmanager
    def own_entitlement(self, name: str, group: str, **spec: Any) -> Iterator[str]:
        """An Entitlement `name` onto Identity Center group `group`, which nothing else grants, with
        `spec` (`owner` and the rest), resolved; on exit every grant is ended, the Entitlement
        deleted and the group emptied."""
        self.ic.create_group(group)
        self.apply(
            {
                "apiVersion": "jitaccess.dev/v1alpha1",
                "kind": "Entitlement",
                "metadata": {"name": name},
                "spec": {"identityCenter": {"groupName": group}, **spec},
            }
        )
        self.wait_reason("entitlement", name, "Resolved", timeout=30)
        with contextlib.ExitStack() as undo:  # last in, first out: the grants, the Entitlement, the group
            undo.callback(self.ic.empty_group, group)
            undo.callback(self.kubectl, "delete", "entitlement", name, "--ignore-not-found", "--timeout=60s")
            undo.callback(self.clean)
            yield name

    # --- lifecycle ---------------------------------------------------------------------------

    def apply_examples(self) -> None:
        """The example teams and entitlements, once the operator has resolved the entitlements."""
        for name in ("01-teams.yaml", "02-entitlements.yaml"):
            self.kubectl("apply", "-f", str(EXAMPLES / name))
        for name in EXAMPLE_ENTITLEMENTS:
            self.wait_reason("entitlement", name, "Resolved", timeout=30)

    def clean(self) -> None:
        """End every grant (the finalizer removes memberships) and forget every request.

        Admission refuses to delete a request while its access has not ended, so deleting them is
        tried again until their grants (one may still be in the making) have ended and gone.
        """

        def done() -> bool | None:
            self.kubectl("delete", "accessgrants", "--all", "--wait=false", check=False)
            self.kubectl("delete", "accessrequests", "--all", "--wait=false", check=False)
            return (not self._names("accessgrants") and not self._names("accessrequests")) or None

        eventually(
            done, timeout=30, interval=0.5, what=f"all grants and requests deleted; log:\n{self.operator.tail(20)}"
        )

    def _names(self, kind: str) -> list[str]:
        out = self.kubectl("get", kind, "-o", "name", check=False).stdout
        return [line for line in out.splitlines() if line.strip()]

"""What the approval-policy e2e tests and attacks share: the PCI example (examples/03-pci.yaml:
two approvers, on-call, break-glass for SREs), installed once per test and cleaned after it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from devenv.paths import EXAMPLES
from tests.support.harness import Jit, eventually

ALICE, PAULA, BOB, LENA, CAROL, MALLORY = (
    f"{n}@example.com" for n in ("alice", "paula", "bob", "lena", "carol", "mallory")
)
PCI = "prod-eng-payments-pci"
ONCALL = "payments-oncall"
#: A break-glass reason long enough for the example's minReasonLength of 40.
EMERGENCY = "INC-900 card authorisations failing since 03:10, rolling back the release"


@pytest.fixture
def pci(system: Jit) -> Iterator[Jit]:
    system.kubectl("apply", "-f", str(EXAMPLES / "03-pci.yaml"))
    system.wait_reason("entitlement", PCI, "Resolved", timeout=30)
    yield system
    system.clean()
    system.ic.empty_group(ONCALL)
    assert system.members(PCI) == set(), f"memberships left behind in {PCI}"
    # Later tests see the two-team company of the session again (a third team changes, e.g., the
    # CLI's pick list).
    system.kubectl("delete", "-f", str(EXAMPLES / "03-pci.yaml"), "--ignore-not-found", "--timeout=60s")


def break_glass(system: Jit, name: str, user: str = CAROL, reason: str = EMERGENCY, **spec: Any) -> Any:
    return system.request(name, PCI, reason=reason, user=user, check=False, breakGlass=True, **spec)


def annotate(system: Jit, name: str, *annotations: str, user: str) -> Any:
    return system.kubectl("annotate", "accessrequest", name, *annotations, user=user, check=False)


def status(system: Jit, name: str) -> dict[str, Any]:
    return dict((system.get("accessrequest", name) or {}).get("status") or {})


def nothing_granted(system: Jit, name: str) -> None:
    assert system.get("accessgrant", name) is None
    assert system.members(PCI) == set()


def pci_approvers(system: Jit, approvers: list[str]) -> None:
    """Team pci's TeamOwnership with `approvers` in place of the example's, once the operator has it."""
    docs = list(yaml.safe_load_all((EXAMPLES / "03-pci.yaml").read_text()))
    team = next(d for d in docs if d and d["kind"] == "TeamOwnership")
    team["spec"]["approvers"] = approvers
    system.apply(team)
    name = team["metadata"]["name"]

    def taken_up() -> bool:  # by the operator, its index (which the webhook reads) with it
        ready = system.condition("teamownership", name, "Ready") or {}
        return ready.get("observedGeneration") == (system.get("teamownership", name) or {})["metadata"]["generation"]

    eventually(lambda: taken_up() or None, what=f"team {name}'s change taken up")


def extension_pending(
    system: Jit, name: str, grant: str, user: str, reason: str = "INC-4711 the migration needs longer"
) -> Any:
    """`user`'s AccessExtension of their Active grant by 30m, once the operator has it waiting for approvers."""
    manifest = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessExtension",
        "metadata": {"name": name},
        "spec": {"grant": grant, "duration": "30m", "reason": reason},
    }
    system.apply(manifest, user=user, verb="create")
    return system.wait_reason("accessextension", name, "Pending")

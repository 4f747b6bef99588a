"""Records are selected by the API server, by their spec fields (the CRDs' `selectableFields`): what
`kubectl get --field-selector` offers everyone, and what the webhooks and `kubectl jit` ask for
instead of every record kept for 90 days. On a server that cannot select them (Kubernetes before
1.31, or CRDs older than the operator), the same answers come from listing everything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from devenv.paths import CRDS
from tests.e2e.approval_policies import CAROL, break_glass, pci
from tests.e2e.cli_run import Cli
from tests.support.harness import Jit, eventually

pytestmark = pytest.mark.e2e
__all__ = ["pci"]

ALICE, PAULA, BOB = (f"{n}@example.com" for n in ("alice", "paula", "bob"))
PAYMENTS, LEDGER = "prod-eng-payments", "prod-eng-ledger"
REQUESTS_CRD = "accessrequests.jitaccess.dev"


def selected(system: Jit, kind: str, selector: str, user: str | None = None) -> set[str]:
    """The names `kubectl get KIND --field-selector SELECTOR` answers `user` with."""
    answer = system.kubectl("get", kind, "--field-selector", selector, "-o", "json", user=user)
    return {item["metadata"]["name"] for item in json.loads(answer.stdout)["items"]}


def test_every_kind_is_selected_by_the_fields_people_look_records_up_by(system: Jit) -> None:
    system.request("fs-alice", PAYMENTS, user=ALICE)
    system.request("fs-bob", LEDGER, user=BOB)
    for name in ("fs-alice", "fs-bob"):
        system.wait_reason("accessgrant", name, "Active")
    extension = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "AccessExtension",
        "metadata": {"name": "fs-alice-more"},
        "spec": {"grant": "fs-alice", "duration": "30m", "reason": "INC-7 more time"},
    }
    system.apply(extension, user=ALICE, verb="create")
    try:
        # As an engineer, with nothing but the RBAC of examples/rbac.yaml.
        assert selected(system, "accessrequests", f"spec.requester={ALICE}", user=BOB) >= {"fs-alice"}
        assert "fs-bob" not in selected(system, "accessrequests", f"spec.requester={ALICE}", user=BOB)
        assert "fs-alice" not in selected(system, "accessrequests", f"spec.entitlement={LEDGER}", user=ALICE)
        assert "fs-bob" in selected(system, "accessrequests", f"spec.entitlement={LEDGER}", user=ALICE)
        assert selected(system, "accessrequests", "spec.breakGlass=true", user=ALICE).isdisjoint({"fs-alice", "fs-bob"})
        assert selected(system, "accessgrants", "spec.request=fs-bob", user=ALICE) == {"fs-bob"}
        by_user = selected(system, "accessgrants", f"spec.user={BOB},spec.entitlement={LEDGER}", user=ALICE)
        assert "fs-bob" in by_user and "fs-alice" not in by_user
        assert selected(system, "accessextensions", "spec.grant=fs-alice", user=ALICE) == {"fs-alice-more"}
        assert selected(system, "accessextensions", "spec.grant=fs-bob", user=ALICE) == set()
        owned = selected(system, "entitlements", "spec.owner=ledger", user=ALICE)
        assert LEDGER in owned and PAYMENTS not in owned
        # A field that is not selectable is refused by name, not ignored (an empty answer would lie).
        refused = system.kubectl("get", "accessrequests", "--field-selector", "spec.reason=x", user=ALICE, check=False)
        assert refused.returncode != 0 and "field label not supported: spec.reason" in refused.stderr, refused.stderr
    finally:
        system.kubectl("delete", "accessextension", "fs-alice-more", "--ignore-not-found", check=False)
        system.clean()


def _selectable(system: Jit) -> bool:
    answer = system.kubectl(
        "get", "accessrequests", "--field-selector", f"spec.requester={ALICE}", "-o", "name", check=False
    )
    return answer.returncode == 0


@pytest.fixture
def unselectable(system: Jit) -> Iterator[Jit]:
    """The AccessRequest CRD without its selectableFields, as on a cluster before 1.31 or with CRDs
    older than the operator; the CRD as installed again afterwards."""
    crd: dict[str, Any] = json.loads(system.kubectl("get", "crd", REQUESTS_CRD, "-o", "json").stdout)
    index = next(i for i, v in enumerate(crd["spec"]["versions"]) if "selectableFields" in v)
    remove = [{"op": "remove", "path": f"/spec/versions/{index}/selectableFields"}]
    system.kubectl("patch", "crd", REQUESTS_CRD, "--type=json", "-p", json.dumps(remove))
    assert eventually(lambda: not _selectable(system) or None, timeout=30), "the field selector still works"
    try:
        yield system
    finally:
        system.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", str(CRDS / "jitaccess.dev_accessrequests.yaml")
        )
        assert eventually(lambda: _selectable(system) or None, timeout=30), "the CRD's selectableFields are back"


def test_without_selectable_fields_the_same_answers_come_from_every_record(
    unselectable: Jit, pci: Jit, cli: Cli
) -> None:
    system = unselectable
    system.request("fs-old-alice", PAYMENTS, user=ALICE)
    system.request("fs-old-paula", PAYMENTS, user=PAULA)
    for name in ("fs-old-alice", "fs-old-paula"):
        system.wait_reason("accessgrant", name, "Active")
    # kubectl jit list --mine: the server refuses the selector, the plugin lists all and keeps hers.
    mine = cli.run("list", "--mine", "-o", "json", user=ALICE)
    assert mine.code == 0, mine
    names = {item["metadata"]["name"] for item in json.loads(mine.out)["items"]}
    assert "fs-old-alice" in names and "fs-old-paula" not in names
    # The webhook's count of a user's break-glass requests (perUserPerDay 2) lists every request.
    for name in ("carol-old-glass-1", "carol-old-glass-2"):
        assert break_glass(system, name).returncode == 0
        system.wait_reason("accessrequest", name, "Granted")
    third = break_glass(system, "carol-old-glass-3")
    assert third.returncode != 0 and "perUserPerDay is 2" in third.stderr, third.stderr
    assert "carol-old-glass-1, carol-old-glass-2" in third.stderr
    assert system.get("accessrequest", "carol-old-glass-3") is None
    assert system.members("prod-eng-payments-pci") == {CAROL}

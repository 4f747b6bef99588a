"""The chart ships the repository's CRDs (and admission policy) unchanged; CRDs survive `helm uninstall`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.chart import CHART, REPO, Helm, documents, helm_binary

CRDS = REPO / "crds"
CHART_CRDS = CHART / "files" / "crds"
FIX = f"cp {CRDS.relative_to(REPO)}/*.yaml {CHART_CRDS.relative_to(REPO)}/"


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.yaml"))


def test_chart_carries_every_crd_and_nothing_else() -> None:
    assert _names(CHART_CRDS) == _names(CRDS), f"the chart's CRDs differ from crds/: run `{FIX}`"


@pytest.mark.parametrize("name", _names(CRDS))
def test_chart_crd_is_a_byte_for_byte_copy(name: str) -> None:
    assert (CHART_CRDS / name).read_bytes() == (CRDS / name).read_bytes(), f"{name} is stale: run `{FIX}`"


@pytest.fixture(scope="module")
def rendered_crds() -> dict[str, dict[str, Any]]:
    objects = documents(Helm(helm_binary()).template())
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "CustomResourceDefinition"}


def test_rendered_crds_equal_the_repository_ones(rendered_crds: dict[str, dict[str, Any]]) -> None:
    """Through the template's YAML round trip, only metadata may change: labels and the keep policy."""
    expected = {}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        expected[crd["metadata"]["name"]] = crd
    assert set(rendered_crds) == set(expected)
    for name, crd in rendered_crds.items():
        assert {k: v for k, v in crd.items() if k != "metadata"} == {
            k: v for k, v in expected[name].items() if k != "metadata"
        }, f"{name}: the rendered CRD differs from crds/"
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_crds_can_be_left_to_the_uninstall(rendered_crds: dict[str, dict[str, Any]]) -> None:
    objects = documents(Helm(helm_binary()).template(set_values={"crds.keep": "false"}))
    for crd in (o for o in objects if o["kind"] == "CustomResourceDefinition"):
        assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {})
    objects = documents(Helm(helm_binary()).template(set_values={"crds.install": "false"}))
    assert not [o for o in objects if o["kind"] == "CustomResourceDefinition"]


def test_the_chart_ships_no_crd_of_kopf_peering() -> None:
    """Leader election uses a built-in Lease: kopf's ClusterKopfPeering CRD is gone from the chart
    (Helm never deletes a CRD of its crds/ folder: an upgraded cluster keeps it, unused)."""
    assert not (CHART / "crds").exists()


def test_every_supported_kubernetes_gets_the_rules_reading_an_optional_old_self() -> None:
    # optionalOldSelf needs CRD validation ratcheting, on by default from 1.30, the oldest the chart
    # installs on: every version gets the Entitlement's bound on its name.
    args = ("template", "jitaccess", str(CHART), "--namespace", "jitaccess-system")
    for version in ("1.30.0", "1.35.4"):
        objects = documents(Helm(helm_binary()).run(*args, "--kube-version", version).stdout)
        crds = {o["metadata"]["name"]: o for o in objects if o["kind"] == "CustomResourceDefinition"}
        rules = [
            rule
            for v in crds["entitlements.jitaccess.dev"]["spec"]["versions"]
            for rule in v["schema"]["openAPIV3Schema"].get("x-kubernetes-validations", [])
        ]
        assert [r for r in rules if r.get("optionalOldSelf")], version
        # the rules nested in the schema too
        entitlements = str(crds["entitlements.jitaccess.dev"]["spec"])
        assert "must be a permission set ARN" in entitlements, version


def test_the_chart_refuses_kubernetes_before_1_30() -> None:
    """1.29 would go without the admission policies and CRD validation ratcheting (off by default
    there): an object stored over a newer bound could take no write, not even its finalizer's removal."""
    helm = Helm(helm_binary())
    for version in ("1.29.4", "1.29.0"):
        refused = helm.run("template", "jitaccess", str(CHART), "--kube-version", version, check=False)
        assert refused.returncode != 0, version
        assert f"chart requires kubeVersion: >=1.30.0-0 which is incompatible with Kubernetes v{version}" in (
            refused.stderr
        ), refused.stderr
    assert helm.run("template", "jitaccess", str(CHART), "--kube-version", "1.30.0").returncode == 0


def test_chart_admission_policy_is_the_examples() -> None:
    copy, original = CHART / "files" / "admission-policy.yaml", REPO / "examples" / "admission-policy.yaml"
    assert copy.read_bytes() == original.read_bytes(), (
        f"stale: run `cp {original.relative_to(REPO)} {copy.relative_to(REPO)}`"
    )


def test_before_1_31_the_crds_go_without_selectable_fields() -> None:
    # 1.30 serves no field selector on them (its CustomResourceFieldSelectors gate is off by default).
    args = ("template", "jitaccess", str(CHART), "--namespace", "jitaccess-system")
    for version, expected in (("1.30.2", False), ("1.31.0", True), ("1.35.4", True)):
        objects = documents(Helm(helm_binary()).run(*args, "--kube-version", version).stdout)
        crds = {o["metadata"]["name"]: o for o in objects if o["kind"] == "CustomResourceDefinition"}
        selectable = {n for n, c in crds.items() if any("selectableFields" in v for v in c["spec"]["versions"])}
        assert bool(selectable) is expected, version
        if expected:
            assert "accessrequests.jitaccess.dev" in selectable

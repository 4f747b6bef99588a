"""Values a first install gets wrong: the chart refuses those that cannot work.

A PodDisruptionBudget whose percentage Kubernetes rounds up to every replica, and a ServiceMonitor or
PrometheusRule asked for with metrics off, are refused at render with the value and the fix (like the
refusals of tests/unit/test_chart_render.py).
"""

from __future__ import annotations

import math

import pytest

from tests.helm.chart import CHART, Helm, documents, helm_binary, value_args


@pytest.fixture(scope="module")
def helm() -> Helm:
    return Helm(helm_binary())


def refusal(helm: Helm, settings: dict[str, str]) -> str:
    """The render's complaint; fails when it renders."""
    result = helm.run("template", "jitaccess", str(CHART), *value_args(set_values=settings), check=False)
    assert result.returncode != 0, f"{settings} rendered"
    return result.stderr


# --- PodDisruptionBudget percentages -----------------------------------------------------------


def pods_kept(percent: int, replicas: int) -> int:
    """The pods a minAvailable percentage keeps, as the disruption controller computes it
    (intstr.GetScaledValueFromIntOrPercent with roundUp=true): int(math.Ceil(pct * total / 100))."""
    return math.ceil(percent * replicas / 100)


@pytest.mark.parametrize(
    ("replicas", "percent", "most"),
    [(2, 51, 50), (2, 60, 50), (2, 99, 50), (3, 67, 66), (7, 86, 85)],
)
def test_a_percentage_rounded_up_to_every_replica_is_refused(
    helm: Helm, replicas: int, percent: int, most: int
) -> None:
    """60% of 2 replicas is 2 pods: no eviction is ever allowed, and every node drain blocks."""
    assert pods_kept(percent, replicas) == replicas  # what Kubernetes would make of it
    complaint = refusal(helm, {"replicaCount": str(replicas), "podDisruptionBudget.minAvailable": f"{percent}%"})
    assert f"podDisruptionBudget.minAvailable is {percent}%: no replica could ever be evicted" in complaint
    assert f"{percent}% of replicaCount {replicas} is {replicas} pods" in complaint
    assert f"set it to {most}% or less" in complaint
    # The fix the message gives is the largest percentage that works.
    assert pods_kept(most, replicas) < replicas <= pods_kept(most + 1, replicas)


@pytest.mark.parametrize(("replicas", "percent"), [(2, 50), (3, 66), (7, 85), (2, 0)])
def test_a_percentage_that_lets_one_replica_go_renders(helm: Helm, replicas: int, percent: int) -> None:
    settings = {"replicaCount": str(replicas), "podDisruptionBudget.minAvailable": f"{percent}%"}
    (budget,) = [o for o in documents(helm.template(set_values=settings)) if o["kind"] == "PodDisruptionBudget"]
    assert budget["spec"]["minAvailable"] == f"{percent}%"
    assert pods_kept(percent, replicas) < replicas


def test_the_values_comment_says_how_a_percentage_is_rounded() -> None:
    comment = (CHART / "values.yaml").read_text().split("podDisruptionBudget:", 1)[1].split("minAvailable:", 1)[0]
    flat = " ".join(comment.replace("#", " ").lower().split())
    assert "rounds up" in flat and "at most 50% with 2 replicas" in flat, flat


# --- metrics ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("part", "kind"), [("serviceMonitor", "ServiceMonitor"), ("prometheusRule", "PrometheusRule")])
def test_a_monitor_or_rules_without_metrics_are_refused(helm: Helm, part: str, kind: str) -> None:
    """With metrics off the chart renders neither (there is no metrics Service): asked for, it says so."""
    complaint = refusal(helm, {"metrics.enabled": "false", f"metrics.{part}.enabled": "true"})
    assert f"metrics.{part}.enabled needs metrics.enabled" in complaint
    assert f"no {kind} would be created" in complaint
    assert f"set metrics.enabled=true, or metrics.{part}.enabled=false" in complaint
    objects = documents(helm.template(set_values={f"metrics.{part}.enabled": "true"}))
    assert [o["kind"] for o in objects].count(kind) == 1

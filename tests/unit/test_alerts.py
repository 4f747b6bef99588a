"""The alerting rules the chart ships (charts/jitaccess/files/alerts.yaml) select what the operator
exports: every expression parses as PromQL, and every metric, label and label value it names is
one the operator can emit. A metric or label renamed in the code, or a typo in a rule, would
otherwise leave an alert that never fires, which nobody notices until the night it should have.
docs/metrics.md lists the same alerts.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from jitaccess import metrics
from jitaccess.observability import State, state_metrics

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "charts" / "jitaccess" / "files" / "alerts.yaml"
SOURCES = REPO / "operator" / "jitaccess"
JOB = "jitaccess-metrics"
SEVERITIES = {"critical", "warning", "info"}


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def exported() -> dict[str, frozenset[str]]:
    """Every series name the operator exports -> the labels it carries (besides the target's own)."""
    found: dict[str, frozenset[str]] = {"up": frozenset()}
    for value in vars(metrics).values():
        if not isinstance(value, Counter | Gauge | Histogram):
            continue
        name, labels = value._name, frozenset(value._labelnames)
        if isinstance(value, Counter):
            found[f"{name}_total"] = labels
        elif isinstance(value, Histogram):
            found[f"{name}_bucket"] = labels | {"le"}
            found[f"{name}_count"] = found[f"{name}_sum"] = labels
        else:
            found[name] = labels
    # A state in which every scrape-time gauge has a sample, for its labels.
    for family in state_metrics(EVERY_GAUGE, datetime.now(UTC)):
        found[family.name] = frozenset(family.samples[0].labels)
    return found


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def written_in_the_operator(value: str) -> bool:
    """`value` is a string literal of the operator's code, or the name of one of its classes (the
    outcome of a failed Identity Center call is its error's class name)."""
    pattern = re.compile(rf"""["']{re.escape(value)}["']|class {re.escape(value)}\b""")
    return any(pattern.search(path.read_text()) for path in SOURCES.rglob("*.py"))


RULES = rules()
EVERY_GAUGE = State(
    active_grants={"e": 1},
    expirations=[],
    leader=True,
    archive_backlog=(0, None),
    readiness={("entitlements", "true", "Resolved"): 1, ("permissioncatalogs", "true", "Provisioned"): 1},
    review_deadlines={"e": []},
    overlapping={"SameAccess": 1},
)


def test_the_file_holds_alerts_with_unique_names() -> None:
    names = [rule["alert"] for rule in RULES]
    assert len(names) >= 10
    assert len(set(names)) == len(names), names


@pytest.mark.parametrize("rule", RULES, ids=[rule["alert"] for rule in RULES])
def test_each_alert_selects_what_the_operator_exports(rule: dict[str, Any]) -> None:
    metrics_known = exported()
    found = selectors(rule["expr"])
    assert found, f"{rule['alert']} selects no series"
    for selector in found:
        assert selector.name in metrics_known, f"{rule['alert']}: the operator exports no {selector.name}"
        labels = metrics_known[selector.name] | {"job"}
        matchers = {m.name: m for m in selector.matchers.matchers}
        # The job is what the chart rewrites to its release's Service: every selector names it.
        assert "job" in matchers and matchers["job"].value == JOB, f"{rule['alert']}: {selector.name} without the job"
        for name, matcher in matchers.items():
            assert name in labels, f"{rule['alert']}: {selector.name} has no label {name!r} (it has {sorted(labels)})"
            if name in ("job", "le"):
                continue
            for value in matcher.value.split("|"):
                assert written_in_the_operator(value), f"{rule['alert']}: {name}={value!r} is never emitted"


@pytest.mark.parametrize("rule", RULES, ids=[rule["alert"] for rule in RULES])
def test_each_alert_says_how_bad_and_what_it_means(rule: dict[str, Any]) -> None:
    assert rule["alert"].startswith("Jitaccess")
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    if "for" in rule:
        assert promql_parser.parse_duration(rule["for"]).total_seconds() > 0


def test_a_rule_with_an_unknown_metric_or_label_is_caught() -> None:
    # The checks above must be able to fail: a renamed metric, a label the metric lacks, a value never emitted.
    known = exported()
    assert "jitaccess_expiry_lag_second_bucket" not in known
    assert "entitlement" not in known["jitaccess_identitycenter_calls_total"]
    assert not written_in_the_operator("throttling")
    with pytest.raises(ValueError):
        promql_parser.parse('sum(rate(jitaccess_errors_total{job="x"}[5m]) >')


def test_docs_list_the_same_alerts() -> None:
    docs = (REPO / "docs" / "metrics.md").read_text()
    section = docs[docs.index("## Alerts") :]
    listed = re.findall(r"^\| `(Jitaccess\w+)` \|", section, re.MULTILINE)
    assert sorted(listed) == sorted(rule["alert"] for rule in RULES)
    assert "charts/jitaccess/files/alerts.yaml" in section


def test_docs_list_every_metric_once() -> None:
    docs = (REPO / "docs" / "metrics.md").read_text()
    table = docs[docs.index("## Reference") : docs.index("## Alerts")]
    listed = re.findall(r"^\| `(jitaccess_\w+)` \|", table, re.MULTILINE)
    assert len(listed) == len(set(listed)), sorted(n for n in listed if listed.count(n) > 1)
    families = {name.removesuffix("_bucket") for name in exported() if not name.endswith(("_count", "_sum"))}
    families.discard("up")
    assert set(listed) == families

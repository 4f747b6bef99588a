"""The alerting rules the chart ships (charts/jitaccess/files/alerts.yaml) select what the operator
exports: every expression parses as PromQL, and every metric, label and label value it names is
one the operator can emit. A metric or label renamed in the code, or a typo in a rule, would
otherwise leave an alert that never fires, which nobody notices until the night it should have.
docs/metrics.md lists the same alerts, with their severities, and every metric with its type and labels.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

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


# --- series there from the start ---------------------------------------------------------------
# A counter's labelled series appears at its first increment, and Prometheus sees no increase in a
# series whose first sample is already 1: an alert on `increase()` or `rate()` of it would miss the
# first event, after every restart too. What the registry holds before anything happens must
# already include every series an alert selects, at 0. (Gauges are set, or computed at each
# scrape: their first sample is their value.)

Series = list[tuple[dict[str, str], float]]


def served_after_import() -> str:
    """/metrics right after `import jitaccess.handlers`: in a process of its own, since this one's
    counters have moved in other tests."""
    script = (
        "import jitaccess.handlers\nfrom prometheus_client import generate_latest\nprint(generate_latest().decode())"
    )
    path = os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": path},
        timeout=60,
    ).stdout


def registry_after_import(text: str) -> dict[str, Series]:
    """Counter samples by name, in what /metrics serves (`served_after_import`)."""
    found: dict[str, Series] = {}
    for family in text_string_to_metric_families(text):
        if family.type == "counter":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


COUNTERS = {f"{value._name}_total" for value in vars(metrics).values() if isinstance(value, Counter)}
_LITERAL = re.compile(r"[\w.-]+")


def missing_series(expr: str, registry: dict[str, Series]) -> Iterator[str]:
    """What `expr` selects of a counter that the registry does not hold at 0. Each value an equality
    or a regex of alternatives (`a|b`) names is required; a label left open, or only excluded
    (`!=`, `!~`), may take any value the code gives it, but one series at least must match."""
    for selector in selectors(expr):
        if selector.name not in COUNTERS:
            continue
        required: dict[str, list[str]] = {}
        tests: list[tuple[str, Any]] = []
        for matcher in selector.matchers.matchers:
            if matcher.name == "job":  # the target's, added by Prometheus
                continue
            options = matcher.value.split("|")
            if matcher.op == promql_parser.MatchOp.Equal:
                required[matcher.name] = [matcher.value]
            elif matcher.op == promql_parser.MatchOp.Re and all(_LITERAL.fullmatch(o) for o in options):
                required[matcher.name] = options
            else:
                tests.append((matcher.name, matcher))
        series = registry.get(selector.name, [])
        for combination in itertools.product(*required.values()):
            wanted = dict(zip(required, combination, strict=True))
            matching = [
                value
                for labels, value in series
                if all(labels.get(k) == v for k, v in wanted.items())
                and all(_matches(m, labels.get(name, "")) for name, m in tests)
            ]
            if not matching or any(value != 0 for value in matching):
                shown = ",".join(f'{k}="{v}"' for k, v in wanted.items())
                yield f"{selector.name}{{{shown}}} ({'at ' + str(matching) if matching else 'absent'})"


def _matches(matcher: Any, value: str) -> bool:
    op = matcher.op
    if op == promql_parser.MatchOp.Equal:
        return bool(value == matcher.value)
    if op == promql_parser.MatchOp.NotEqual:
        return bool(value != matcher.value)
    found = re.fullmatch(matcher.value, value) is not None
    return found if op == promql_parser.MatchOp.Re else not found


@pytest.fixture(scope="module")
def served() -> str:
    return served_after_import()


@pytest.fixture(scope="module")
def registry(served: str) -> dict[str, Series]:
    return registry_after_import(served)


def test_every_series_an_alert_selects_is_there_at_zero_from_the_start(registry: dict[str, Series]) -> None:
    checked = [rule for rule in RULES if any(s.name in COUNTERS for s in selectors(rule["expr"]))]
    assert len(checked) >= 5, [rule["alert"] for rule in checked]
    missing = {rule["alert"]: list(missing_series(rule["expr"], registry)) for rule in checked}
    assert not any(missing.values()), {alert: series for alert, series in missing.items() if series}


def test_a_series_made_only_at_its_first_event_is_caught(registry: dict[str, Series]) -> None:
    # The check above must be able to fail: a value no code made in advance, a label never given one.
    assert list(missing_series('increase(jitaccess_audit_events_total{job="j",event="Granted"}[1h])', registry))
    assert list(
        missing_series('rate(jitaccess_slack_interactions_total{job="j",result=~"stale|forged"}[5m])', registry)
    )
    assert list(missing_series('rate(jitaccess_requests_total{job="j",outcome!="x"}[5m])', registry))
    assert not list(missing_series('rate(jitaccess_errors_total{job="j",kind="handler"}[5m])', registry))


def test_docs_list_the_same_alerts() -> None:
    docs = (REPO / "docs" / "metrics.md").read_text()
    section = docs[docs.index("## Alerts") :]
    listed = dict(re.findall(r"^\| `(Jitaccess\w+)` \| (\w+) \|", section, re.MULTILINE))
    assert listed == {rule["alert"]: rule["labels"]["severity"] for rule in RULES}
    assert "charts/jitaccess/files/alerts.yaml" in section


def test_docs_list_every_metric_once() -> None:
    docs = (REPO / "docs" / "metrics.md").read_text()
    table = docs[docs.index("## Reference") : docs.index("## Alerts")]
    listed = re.findall(r"^\| `(jitaccess_\w+)` \|", table, re.MULTILINE)
    assert len(listed) == len(set(listed)), sorted(n for n in listed if listed.count(n) > 1)
    families = {name.removesuffix("_bucket") for name in exported() if not name.endswith(("_count", "_sum"))}
    families.discard("up")
    assert set(listed) == families
    # Each with its type and its labels.
    rows = re.findall(r"^\| `(jitaccess_\w+)` \| (\w*) \|([^|]*)\|", table, re.MULTILINE)
    documented = {name: (kind, frozenset(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}
    assert documented == kinds()


def kinds() -> dict[str, tuple[str, frozenset[str]]]:
    """Every metric family the operator exports (a counter's name with `_total`) -> its type and labels."""
    found = {}
    for value in vars(metrics).values():
        if isinstance(value, Counter | Gauge | Histogram):
            kind = "counter" if isinstance(value, Counter) else "histogram" if isinstance(value, Histogram) else "gauge"
            found[f"{value._name}_total" if kind == "counter" else value._name] = (kind, frozenset(value._labelnames))
    for family in state_metrics(EVERY_GAUGE, datetime.now(UTC)):
        found[family.name] = (family.type, frozenset(family.samples[0].labels))
    return found


# --- the webhooks' trust -------------------------------------------------------------------------


def test_the_webhook_alert_fires_on_any_replica_not_trusted_and_only_where_webhooks_are_checked(
    served: str,
) -> None:
    rule = next(rule for rule in RULES if rule["alert"] == "JitaccessWebhookNotTrusted")
    (selector,) = selectors(rule["expr"])
    assert selector.name == metrics.WEBHOOK_CONFIGURED._name
    # min: the API server calls whichever replica the Service picks, so one not trusted refuses writes.
    assert rule["expr"].startswith("min(") and rule["expr"].endswith("< 1"), rule["expr"]
    assert rule["labels"]["severity"] == "critical"
    assert promql_parser.parse_duration(rule["for"]).total_seconds() <= 300
    assert "calling_webhook_error" in rule["annotations"]["description"]
    # A gauge at 0 from import would fire it in a process that serves no webhooks: it is exported
    # only once the operator has checked its configurations (`handlers.startup.WebhookTrust`).
    assert metrics.WEBHOOK_CONFIGURED._name not in served
    assert "jitaccess_leader_transitions_total" in served  # what was served is the registry's


# --- failures that persist at a low rate ---------------------------------------------------------
# The failures that matter most are slow: a write the API server refuses is retried once a minute
# (adapters.kube `Refused`), a take-back Identity Center refuses once a minute (grants), a drift scan
# or an eligibility re-check once per object and pass (every 60 s, every 300 s). An alert on a rate
# of 0.1/s needed 7 such objects, or 31, before it fired at all.


def fires(rule: dict[str, Any], failures: list[float], span: float = 3 * 3600) -> bool:
    """Whether `rule`, of the form `sum(increase(C[W])) > T` or `sum(rate(C[W])) > T` with its
    `for`, fires on one series of C that grows by one at each time of `failures` (seconds from 0),
    scraped every 30 s and evaluated every minute for `span` seconds. (Prometheus extrapolates
    `increase` to the window's edges: more, never less, than counted here.)"""
    expr = promql_parser.parse(rule["expr"])
    assert isinstance(expr, promql_parser.BinaryExpr) and str(expr.op) == ">", rule["expr"]
    assert isinstance(expr.lhs, promql_parser.AggregateExpr) and str(expr.lhs.op) == "sum", rule["expr"]
    call = expr.lhs.expr
    assert isinstance(call, promql_parser.Call) and call.func.name in ("increase", "rate"), rule["expr"]
    window = call.args[0].range.total_seconds()
    threshold = expr.rhs.val
    hold = promql_parser.parse_duration(rule["for"]).total_seconds() if "for" in rule else 0.0
    since: float | None = None
    for now in range(0, int(span), 60):
        scraped = [sum(1 for f in failures if f <= t) for t in range(0, now + 1, 30) if t > now - window]
        grown = scraped[-1] - scraped[0] if len(scraped) > 1 else 0
        value = grown if call.func.name == "increase" else grown / window
        if value <= threshold:
            since = None
            continue
        since = now if since is None else since
        if now - since >= hold:
            return True
    return False


def every(seconds: float, start: float = 600, end: float = 3 * 3600) -> list[float]:
    return [start + i * seconds for i in range(int((end - start) // seconds))]


@pytest.mark.parametrize(
    ("alert", "period"),
    [
        ("JitaccessHandlerErrors", 60),  # one write refused, retried once a minute
        ("JitaccessHandlerErrors", 300),  # one Entitlement's eligibility re-check refused at each pass
        ("JitaccessEligibilityRecheckFailing", 300),
    ],
)
def test_a_failure_that_persists_fires_however_few_objects_fail(alert: str, period: float) -> None:
    rule = next(rule for rule in RULES if rule["alert"] == alert)
    assert fires(rule, every(period)), f"{alert} stays silent on one failure every {period} s"


@pytest.mark.parametrize("alert", ["JitaccessHandlerErrors", "JitaccessEligibilityRecheckFailing"])
def test_one_blip_does_not_fire(alert: str) -> None:
    rule = next(rule for rule in RULES if rule["alert"] == alert)
    assert not fires(rule, [600, 601, 660]), "a failure that its retries got past"
    assert fires({key: value for key, value in rule.items() if key != "for"}, [600]), "the check above can fail"


def test_the_eligibility_alert_counts_refusals_of_every_stage() -> None:
    rule = next(rule for rule in RULES if rule["alert"] == "JitaccessEligibilityRecheckFailing")
    (selector,) = selectors(rule["expr"])
    assert selector.name == f"{metrics.ELIGIBILITY_RECHECK_FAILURES._name}_total"
    matchers = {m.name: m.value for m in selector.matchers.matchers}
    assert matchers == {"job": JOB, "outcome": "refused"}, "every stage: a listing and a lapse refused alike"
    assert rule["labels"]["severity"] == "critical", "leavers keep production access while it lasts"

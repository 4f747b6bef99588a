"""The results: the run's context (machine, load, commit), the table, and `latest.json`."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# key, what, target text, met(value) -> bool, unit
Row = tuple[str, str, str, Callable[[float], bool], str]
ROWS: list[Row] = [
    ("grant_latency_p50_s", "grant latency p50 (request -> membership + Active)", "< 0.5 s", lambda v: v < 0.5, "s"),
    ("grant_latency_p99_s", "grant latency p99", "< 1.5 s", lambda v: v < 1.5, "s"),
    ("floor_latency_p50_s", "floor p50 (same work, one client, no operator)", "", lambda v: True, "s"),
    ("grant_latency_ratio", "ratio grant p50 / floor p50", "< 3", lambda v: v < 3, "x"),
    ("grant_latency_settled_p50_s", "grant latency p50, the operator idle", "", lambda v: True, "s"),
    ("grant_latency_settled_ratio", "ratio settled grant p50 / floor p50", "<= 2", lambda v: v <= 2, "x"),
    ("expiry_lag_p50_s", "expiry lag p50 (membership removed - expirationTime)", "", lambda v: True, "s"),
    ("expiry_lag_p99_s", "expiry lag p99", "< 1 s", lambda v: v < 1, "s"),
    ("throughput_grants_per_s.limited", "throughput, 20/s rate limit", "", lambda v: True, "/s"),
    ("quota_fraction_used", "share of the 20/s quota used (membership writes)", ">= 90 %", lambda v: v >= 0.9, "%"),
    ("throughput_grants_per_s.unlimited", "throughput, no rate limit", "> 50 /s", lambda v: v > 50, "/s"),
    ("rss_mb_5000_grants", "operator RSS holding the scale-test grants", "< 250 MB", lambda v: v < 250, "MB"),
    ("expiry_lag_at_scale_p99_s", "expiry lag p99 beside them", "< 1 s", lambda v: v < 1, "s"),
    ("rss_mb_10000_grants", "operator RSS holding 10,000 Active grants", "<= 250 MB", lambda v: v <= 250, "MB"),
    ("expiry_lag_at_10000_p99_s", "expiry lag p99 beside them", "<= 0.5 s", lambda v: v <= 0.5, "s"),
    ("lookup_among_10000_all_s", "one user's requests among 10,000: listing all", "", lambda v: True, "s"),
    ("lookup_among_10000_selected_s", "the same, selected by spec.requester", "", lambda v: True, "s"),
    ("restart_recovery_s", "restart -> every overdue grant revoked", "<= 5 s", lambda v: v <= 5, "s"),
    ("failover_s", "leader SIGKILLed -> the standby revokes an overdue grant", "<= 15 s", lambda v: v <= 15, "s"),
    ("failover_webhook_refusals", "requests refused during the hand-over (one per 100 ms)", "0", lambda v: v == 0, ""),
    ("slack_message_p50_s", "approvers' Slack message p50 (request created -> posted)", "< 1 s", lambda v: v < 1, "s"),
    ("slack_message_p99_s", "approvers' Slack message p99", "< 1 s", lambda v: v < 1, "s"),
    ("slack_message_max_s", "approvers' Slack message max", "", lambda v: True, "s"),
]


def context() -> dict[str, Any]:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return result.stdout.strip()

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "python": sys.version.split()[0],
    }


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _value(key: str, value: float, unit: str) -> str:
    if unit == "%":
        return f"{value * 100:.0f} %"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    return f"{value:.1f} {unit}"


def table(results: dict[str, Any]) -> str:
    """A Markdown table of the headline numbers, with the targets and whether each is met."""
    lines = ["| metric | result | target | |", "|---|---|---|---|"]
    for key, what, target, met, unit in ROWS:
        value: Any = results
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            continue
        mark = ("yes" if met(value) else "**no**") if target else ""
        lines.append(f"| {what} | {_value(key, value, unit)} | {target} | {mark} |")
    m = results["machine"]
    lines.append("")
    lines.append(
        f"{m['cores']} cores ({m['cpu'] or 'unknown CPU'}), {m['memory_gb']} GB; load average "
        f"{' / '.join(map(str, results['load_before']))} before, {' / '.join(map(str, results['load_after']))} after; "
        f"commit {results['git_commit'][:10]}{' (+ local changes)' if results['git_dirty'] else ''}, "
        f"{results['date']}; sizes {json.dumps(results['sizes'])}."
    )
    return "\n".join(lines)


def write(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)

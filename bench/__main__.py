"""`python -m bench [--quick] [--only floor,latency,...]`: run the benchmarks, print the table,
write `bench/results/latest.json` (a `--quick` run writes `bench/results/quick.json.tmp`).
One scenario alone, with the small system's users: `python -m bench --quick --only notifications
--size notifications=100`."""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import notifications, permissionsets, report, scenarios
from bench.procstats import cpu_seconds, cpu_used, machine
from bench.profiles import Profiles
from bench.system import System

log = logging.getLogger("bench")
RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = (
    "floor",
    "latency",
    "expiry",
    "throughput",
    "recovery",
    "failover",
    "scale",
    "audit",
    "notifications",
    "permissionsets",
)
FULL = {
    "floor": 200,
    "latency": 200,
    "expiry": 200,
    "throughput": 1000,
    "recovery_active": 500,
    "recovery_overdue": 100,
    "failover": 1000,
    "scale": 5000,
    "scale_large": 10000,
    "scale_probes": 100,
    "audit": 500,
    "notifications": 100,
    "permissionsets_teams": 20,
    "permissionsets_accounts": 5,
}
QUICK = {
    "floor": 20,
    "latency": 20,
    "expiry": 30,
    "throughput": 100,
    "recovery_active": 100,
    "recovery_overdue": 20,
    "failover": 100,
    "scale": 300,
    "scale_large": 600,
    "scale_probes": 20,
    "audit": 100,
    "notifications": 20,
    "permissionsets_teams": 4,
    "permissionsets_accounts": 2,
}
UNLIMITED = 0.0
#: Users for the requests created every 100 ms during a fail-over (up to a minute of them) and its probe.
FAILOVER_REQUESTS = 700


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for trying the benchmark out")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}")
    parser.add_argument("--size", action="append", default=[], metavar="NAME=N", help="override one size")
    parser.add_argument("--out", type=Path, help="where to write the JSON")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="profile the operator (py-spy) and the API server (pprof) into DIR"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the operator logs (their path is printed)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("jitaccess").setLevel(logging.WARNING)
    sizes = dict(QUICK if args.quick else FULL)
    for item in args.size:
        name, _, value = item.partition("=")
        if name not in sizes:
            parser.error(f"unknown size {name!r}; one of {sorted(sizes)}")
        sizes[name] = int(value)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
    out = args.out or RESULTS / ("quick.json.tmp" if args.quick or args.size or args.only != parser.get_default("only")
                                 else "latest.json")  # fmt: skip

    results: dict[str, Any] = {
        **report.context(),
        "machine": machine(),
        "load_before": report.load(),
        "sizes": sizes,
        "scenarios": {},
    }
    users = max(sizes["throughput"], sizes["recovery_active"], sizes["scale_large"] + sizes["scale_probes"],
                sizes["latency"], sizes["floor"], sizes["expiry"], sizes["audit"], sizes["notifications"],
                sizes["failover"] + FAILOVER_REQUESTS)  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="jitaccess-bench-"))
    system = System(workdir, users, profiling=args.profile is not None)
    began = time.monotonic()

    def run(name: str, rate_limit: float | None, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        log.info("--- %s (load %s)", name, report.load())
        started = time.monotonic()
        if rate_limit is not None:
            system.start_operator(rate_limit)
        profiler = Profiles(system, args.profile, name) if args.profile is not None else None
        cpu_before = cpu_seconds()
        try:
            result = measure()
            result["cpu_s"] = cpu_used(cpu_before, cpu_seconds())
        except Exception as exc:
            # One scenario failing (a timeout, refused requests) is a finding; the others still run.
            log.exception("%s failed", name)
            result = {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
        finally:
            if profiler is not None:
                profiler.stop()
            if system.operator is not None:
                log.info("operator log: %s", system.operator.log_file)
            system.reset()
        result["load_at_start"], result["wall_s"] = report.load(), round(time.monotonic() - started, 1)
        results["scenarios"][name] = result
        log.info("%s: %s", name, result)
        report.write(results, out)
        return result

    try:
        system.start()
        if "floor" in only:
            run("floor", None, lambda: scenarios.floor_latency(system, sizes["floor"]))
        if "latency" in only:
            run("latency", scenarios.DEFAULT_RATE_LIMIT, lambda: scenarios.grant_latency(system, sizes["latency"]))
        if "expiry" in only:
            run("expiry", scenarios.DEFAULT_RATE_LIMIT, lambda: scenarios.expiry_lag(system, sizes["expiry"]))
        if "throughput" in only:
            run(
                "throughput_limited",
                scenarios.DEFAULT_RATE_LIMIT,
                lambda: scenarios.throughput(system, sizes["throughput"], scenarios.DEFAULT_RATE_LIMIT),
            )
            run("throughput_unlimited", UNLIMITED, lambda: scenarios.throughput(system, sizes["throughput"], UNLIMITED))
        if "recovery" in only:
            run(
                "recovery",
                UNLIMITED,
                lambda: scenarios.restart_recovery(system, sizes["recovery_active"], sizes["recovery_overdue"]),
            )
        if "failover" in only:
            run("failover", None, lambda: scenarios.failover(system, sizes["failover"]))
        if "scale" in only:
            run("scale", None, lambda: scenarios.scale(system, sizes["scale"], sizes["scale_probes"]))
            run("scale_large", None, lambda: scenarios.scale(system, sizes["scale_large"], sizes["scale_probes"]))
        if "audit" in only:
            run("audit", None, lambda: scenarios.audit_archive(system, sizes["audit"]))
        if "permissionsets" in only:
            run(
                "permissionsets",
                None,
                lambda: permissionsets.resync(system, sizes["permissionsets_teams"], sizes["permissionsets_accounts"]),
            )
        if "notifications" in only:
            run(
                "notifications",
                None,
                lambda: notifications.approvers_message_latency(system, sizes["notifications"]),
            )
    finally:
        system.stop()
        if not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log.info("logs kept in %s", workdir)
    headline(results)
    results["load_after"] = report.load()
    results["wall_s"] = round(time.monotonic() - began, 1)
    report.write(results, out)
    print(report.table(results))
    print(f"\nwritten to {out}")


def headline(results: dict[str, Any]) -> None:
    """The keys the issue names, from the scenarios' details."""
    s = {name: r for name, r in results["scenarios"].items() if "error" not in r}
    if "latency" in s:
        results["grant_latency_p50_s"] = s["latency"]["grant_latency"]["p50"]
        results["grant_latency_p99_s"] = s["latency"]["grant_latency"]["p99"]
    if "floor" in s:
        results["floor_latency_p50_s"] = s["floor"]["floor_latency"]["p50"]
        if "latency" in s:
            results["grant_latency_ratio"] = round(results["grant_latency_p50_s"] / results["floor_latency_p50_s"], 2)
    if "latency" in s and "grant_latency_settled" in s["latency"]:
        results["grant_latency_settled_p50_s"] = s["latency"]["grant_latency_settled"]["p50"]
        if "floor" in s:
            settled = results["grant_latency_settled_p50_s"] / results["floor_latency_p50_s"]
            results["grant_latency_settled_ratio"] = round(settled, 2)
    if "expiry" in s:
        results["expiry_lag_p50_s"] = s["expiry"]["expiry_lag"]["p50"]
        results["expiry_lag_p99_s"] = s["expiry"]["expiry_lag"]["p99"]
    if "throughput_limited" in s or "throughput_unlimited" in s:
        results["throughput_grants_per_s"] = {
            "limited": s.get("throughput_limited", {}).get("grants_per_s"),
            "unlimited": s.get("throughput_unlimited", {}).get("grants_per_s"),
        }
    if "throughput_limited" in s:
        results["quota_fraction_used"] = s["throughput_limited"]["quota_fraction_used"]
    if "failover" in s:
        results["failover_s"] = s["failover"]["failover_s"]
        results["failover_webhook_refusals"] = s["failover"]["webhook_refusals"]
    if "scale" in s:
        results["rss_mb_5000_grants"] = s["scale"]["rss_mb"]
        results["expiry_lag_at_scale_p50_s"] = s["scale"]["expiry_lag"]["p50"]
        results["expiry_lag_at_scale_p99_s"] = s["scale"]["expiry_lag"]["p99"]
    if "scale_large" in s:
        results["rss_mb_10000_grants"] = s["scale_large"]["rss_mb"]
        results["expiry_lag_at_10000_p99_s"] = s["scale_large"]["expiry_lag"]["p99"]
        lookups = s["scale_large"]["lookup_one_users_requests_s"]
        results["lookup_among_10000_all_s"] = lookups["every_request"]
        results["lookup_among_10000_selected_s"] = lookups["selected_by_field"]
    if "recovery" in s:
        results["restart_recovery_s"] = s["recovery"]["recovery_s"]
    if "notifications" in s:
        results["slack_message_p50_s"] = s["notifications"]["approvers_message"]["p50"]
        results["slack_message_p99_s"] = s["notifications"]["approvers_message"]["p99"]
        results["slack_message_max_s"] = s["notifications"]["approvers_message"]["max"]


if __name__ == "__main__":
    main()

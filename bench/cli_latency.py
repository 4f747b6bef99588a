"""How long `kubectl jit request --wait` takes, from the command's start to its "obtained" line.

Starts the whole local system the end-to-end tests use (control plane, Identity Center emulator,
operator with its admission webhooks, the project's RBAC and examples), then runs, as alice:

    kubectl-jit request prod-eng-payments --for 1m --reason "BENCH-1 x" --wait

`--runs` times (100 by default) after a few warm-up runs that are not counted. Each run is a new
process (interpreter start-up included) and is timed from just before it is started to the moment
its "obtained" line arrives on the pipe. Between runs, alice's grant is ended with
`kubectl-jit done` (not timed), so every run starts with alice outside the Identity Center group
and the operator really adds the membership; `--coexist` lets the grants pile up instead.

Prints median, p90, p99, min and max, and writes them with every sample to
bench/results/cli_latency.json. Run it from the repository root: `python -m bench.cli_latency`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devenv.controlplane import ControlPlane
from devenv.emulator import IdentityCenterEmulator
from devenv.operator_process import OperatorProcess
from devenv.paths import REPO, SEED_FILE
from tests.support.harness import OPERATOR_ENV, Jit, install

USER = "alice@example.com"
ENTITLEMENT = "prod-eng-payments"
COMMAND = ["request", ENTITLEMENT, "--for", "1m", "--reason", "BENCH-1 x", "--wait"]
KUBECTL_JIT = Path(sys.executable).parent / "kubectl-jit"


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least p% of the samples at or below it."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def one_request(kubeconfig: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(KUBECTL_JIT), "--kubeconfig", str(kubeconfig), *COMMAND],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    elapsed: float | None = None
    for line in process.stdout:
        if line.startswith("obtained "):
            elapsed = time.perf_counter() - started
    code = process.wait(60)
    if code != 0 or elapsed is None:
        raise RuntimeError(
            f"kubectl-jit exited {code} without an obtained line: {process.stderr.read() if process.stderr else ''}"
        )
    return elapsed


def end_grants(kubeconfig: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [str(KUBECTL_JIT), "--kubeconfig", str(kubeconfig), "done"],
        env=env,
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        timeout=60,
    )


def startup_seconds(env: dict[str, str], runs: int = 20) -> float:
    """The median time of `kubectl-jit --version`: the interpreter and the plugin's imports alone."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([str(KUBECTL_JIT), "--version"], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--coexist", action="store_true", help="let grants pile up instead of ending each one")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "cli_latency.json")
    args = parser.parse_args()
    if not KUBECTL_JIT.exists():
        parser.error(f"{KUBECTL_JIT} is missing: run `pip install -e .[dev]`")

    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    env.pop("KUBECONFIG", None)
    workdir = Path(tempfile.mkdtemp(prefix="jitaccess-bench-"))
    began = time.monotonic()
    with ControlPlane().start(controller_manager=False) as cluster, IdentityCenterEmulator() as emulator:
        emulator.seed(SEED_FILE)
        install(cluster)
        operator = OperatorProcess(
            cluster.admin_kubeconfig,
            emulator.env(),
            workdir / "operator.log",
            # alice's hundred requests in a row measure the CLI: OPERATOR_ENV puts no limit on her pace.
            extra_env=OPERATOR_ENV,
        )
        with operator:
            system = Jit(cluster, emulator, operator)
            system.apply_examples()
            print(f"system up in {time.monotonic() - began:.1f} s; operator log {operator.log_file}", flush=True)
            kubeconfig = cluster.user_kubeconfig(USER)
            startup = startup_seconds(env)
            samples: list[float] = []
            for run in range(args.warmup + args.runs):
                seconds = one_request(kubeconfig, env)
                if run >= args.warmup:
                    samples.append(seconds)
                if not args.coexist:
                    end_grants(kubeconfig, env)
                    if system.members(ENTITLEMENT):
                        raise RuntimeError(f"{USER} still in {ENTITLEMENT} after `kubectl-jit done`")
            version = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]

    result: dict[str, Any] = {
        "benchmark": "kubectl jit request --wait, start to 'obtained' line, auto-approved",
        "command": ["kubectl-jit", "--kubeconfig", f"<{USER}>", *COMMAND],
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "kubernetes": version,
        },
        "mode": "coexisting grants" if args.coexist else "each grant ended (kubectl-jit done, untimed) before the next",
        "warmup_runs": args.warmup,
        "runs": len(samples),
        "seconds": {
            "median": statistics.median(samples),
            "p90": percentile(samples, 90),
            "p99": percentile(samples, 99),
            "min": min(samples),
            "max": max(samples),
            "mean": statistics.fmean(samples),
            "plugin_startup_median": startup,
        },
        "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    s = result["seconds"]
    print(
        f"kubectl jit request --wait over {len(samples)} runs: median {s['median'] * 1000:.0f} ms, "
        f"p90 {s['p90'] * 1000:.0f} ms, p99 {s['p99'] * 1000:.0f} ms, min {s['min'] * 1000:.0f} ms, "
        f"max {s['max'] * 1000:.0f} ms (plugin start-up alone {startup * 1000:.0f} ms); written to {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The embedded local default (`make dev`): the whole system on this machine, in one command.

Starts a real Kubernetes control plane and the Identity Center emulator (seeded with the example
company), installs the CRDs, RBAC, admission policy and example teams and entitlements, runs the
operator with its admission webhooks, prints what to try as which user, and follows the
operator's log. Ctrl-C stops everything and leaves no process behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from devenv.controlplane import ControlPlane
from devenv.emulator import IdentityCenterEmulator
from devenv.operator_process import OperatorProcess
from devenv.paths import CRDS, EXAMPLES, SEED_FILE
from devenv.processes import LOOPBACK


class _Stop(Exception):
    pass


def _raise_stop(*_: object) -> None:
    raise _Stop


def _kubectl_wrapper(binary: Path, directory: Path) -> Path:
    """A `kubectl` on PATH that is the control plane's own (same version as the server)."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "kubectl"
    wrapper.write_text(f'#!/bin/sh\nexec "{binary}" kubectl "$@"\n')
    wrapper.chmod(0o755)
    return bin_dir


def _instructions(cp: ControlPlane, bin_dir: Path, env_file: Path) -> str:
    def kc(user: str) -> str:
        return str(cp.user_kubeconfig(user))

    scripts = Path(sys.executable).parent
    return f"""
jitaccess is running: Kubernetes {cp.server_url}, Identity Center emulator, operator with webhooks.

In another terminal:
  source {env_file}            # PATH with kubectl and kubectl-jit, KUBECONFIG=alice

  # alice (payments engineer) gets her own team's production role at once:
  kubectl jit request prod-eng-payments --for 1h --reason "INFRA-2441 fix stuck settlement batch"
  kubectl get accessrequests,accessgrants

  # alice asks for ledger's role; lena (ledger tech lead) approves it:
  kubectl jit request prod-eng-ledger --for 30m --reason "INC-7 reconcile ledger" --no-wait
  kubectl --kubeconfig {kc("lena@example.com")} get accessrequests
  kubectl --kubeconfig {kc("lena@example.com")} annotate accessrequest NAME jitaccess.dev/approved=true

  # alice cannot approve her own request (refused at admission):
  kubectl annotate accessrequest NAME jitaccess.dev/approved=true

  # who has production access right now, and end it:
  kubectl jit who-has prod-eng-payments
  kubectl jit done

Users (kubeconfigs in {cp.workdir}): alice, paula (payments lead), bob, lena (ledger lead),
carol (backup approver), mallory (outsider), eve (payments, not eligible); admin: {cp.admin_kubeconfig}
kubectl: {bin_dir}/kubectl   kubectl-jit: {scripts}/kubectl-jit
Ctrl-C stops everything.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="jitaccess-dev", description=__doc__)
    parser.add_argument("--min-duration-seconds", default="60", help="shortest grant allowed (default 60)")
    parser.add_argument("--no-follow", action="store_true", help="do not print the operator's log")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_stop)
    workdir = Path(tempfile.mkdtemp(prefix="jitaccess-dev-"))
    started = time.monotonic()
    try:
        with ControlPlane().start(controller_manager=False) as cp, IdentityCenterEmulator() as ic:
            ic.seed(SEED_FILE)
            cp.kubectl("apply", "--server-side", "-f", str(CRDS))
            cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
            cp.start_controller_manager()
            operator = OperatorProcess(
                cp.admin_kubeconfig,
                ic.env(),
                workdir / "operator.log",
                extra_env={"JITACCESS_MIN_DURATION_SECONDS": args.min_duration_seconds},
            )
            with operator:
                cp.kubectl("apply", "-f", str(EXAMPLES))
                bin_dir = _kubectl_wrapper(cp.binary, workdir)
                env_file = workdir / "env.sh"
                scripts = Path(sys.executable).parent
                env_file.write_text(
                    f'export PATH="{bin_dir}:{scripts}:$PATH"\n'
                    f'export KUBECONFIG="{cp.user_kubeconfig("alice@example.com")}"\n'
                )
                print(_instructions(cp, bin_dir, env_file), flush=True)
                print(f"(up in {time.monotonic() - started:.1f} s; operator log: {operator.log_file})\n", flush=True)
                _follow(operator, quiet=args.no_follow)
    except (KeyboardInterrupt, _Stop):
        print("\nstopping jitaccess...", flush=True)


def _follow(operator: OperatorProcess, *, quiet: bool) -> None:
    with operator.log_file.open(errors="replace") as log:
        while operator.running:
            line = log.readline()
            if not line:
                time.sleep(0.2)
                continue
            if not quiet:
                sys.stdout.write(line)
                sys.stdout.flush()
    raise SystemExit(f"the operator exited:\n{operator.tail()}")


if __name__ == "__main__":
    os.environ.setdefault("NO_PROXY", LOOPBACK)
    main()

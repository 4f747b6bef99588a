"""The embedded local default (`make dev`): the whole system on this machine, in one command.

Starts a real Kubernetes control plane and the Identity Center emulator (seeded with the example
company), installs the CRDs, RBAC, admission policy and example teams and entitlements, runs the
operator with its admission webhooks, prints what to try as which user (and how to mint new
users, and to look at the AWS side and the audit archive in the emulated S3 bucket), and follows the operator's log. The operator is supervised as
a Deployment would have it: when it crashes it is restarted with a back-off, and the control plane
and the emulator keep their objects. Ctrl-C (or SIGTERM, SIGHUP) stops everything and leaves no
process and no file behind.
"""

from __future__ import annotations

import argparse
import base64
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from devenv.controlplane import OPERATOR_ACCOUNT, ControlPlane
from devenv.emulator import IdentityCenterEmulator
from devenv.mint import CONTROLPLANE_ENV
from devenv.notifications import DEFAULT_CHANNEL, SECURITY_CHANNEL, LocalNotifications
from devenv.operator_process import OperatorProcess, OperatorSupervisor
from devenv.paths import CRDS, EXAMPLES, REPO, SEED_FILE
from devenv.processes import LOOPBACK
from devenv.slack import STATE_ENV
from devenv.slack_identity import impersonator_kubeconfig

AUDIT_BUCKET, AUDIT_PREFIX = "jitaccess-audit", "jitaccess"


class _Stop(Exception):
    pass


def _raise_stop(*_: object) -> None:
    raise _Stop


def _say(message: str) -> None:
    print(f"[make dev] {message}", flush=True)


def _wrappers(binary: Path, directory: Path) -> Path:
    """Commands for PATH: the control plane's own `kubectl` (same version as the server) and `mint-user`."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    scripts = {
        "kubectl": f'exec "{binary}" kubectl "$@"',
        # devenv is not installed: it is found from the repository's root.
        "mint-user": f'PYTHONPATH="{REPO}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" -m devenv.mint "$@"',
        # The Slack stand-in's command line: click a button as someone, list the messages.
        "slack": f'PYTHONPATH="{REPO}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" -m devenv.slack "$@"',
    }
    for name, command in scripts.items():
        wrapper = bin_dir / name
        wrapper.write_text(f"#!/bin/sh\n{command}\n")
        wrapper.chmod(0o755)
    return bin_dir


def _aws_env(ic: IdentityCenterEmulator) -> str:
    """The variables that point an AWS SDK at the emulator, with its dummy credentials."""
    env = ic.env()
    return shlex.join(
        [
            f"AWS_ACCESS_KEY_ID={env['AWS_ACCESS_KEY_ID']}",
            f"AWS_SECRET_ACCESS_KEY={env['AWS_SECRET_ACCESS_KEY']}",
            f"AWS_DEFAULT_REGION={ic.region}",
            f"AWS_ENDPOINT_URL={ic.endpoint_url}",
        ]
    )


def _aws(ic: IdentityCenterEmulator, *args: str) -> str:
    """An AWS CLI line against the emulator, with its dummy credentials."""
    env = ic.env()
    argv = [
        f"AWS_ACCESS_KEY_ID={env['AWS_ACCESS_KEY_ID']}",
        f"AWS_SECRET_ACCESS_KEY={env['AWS_SECRET_ACCESS_KEY']}",
        "aws",
        "--endpoint-url",
        ic.endpoint_url,
        "--region",
        ic.region,
        *args,
    ]
    return shlex.join(argv)


def aws_command(ic: IdentityCenterEmulator, group_id: str) -> str:
    """An AWS CLI line listing a group's memberships in the emulator."""
    return _aws(
        ic,
        "identitystore",
        "list-group-memberships",
        "--identity-store-id",
        ic.identity_store_id,
        "--group-id",
        group_id,
    )


def archive_listing(ic: IdentityCenterEmulator) -> str:
    """An AWS CLI line listing the audit archive's objects in the emulator."""
    return _aws(ic, "s3", "ls", "--recursive", f"s3://{AUDIT_BUCKET}/{AUDIT_PREFIX}/")


def signing_key(ic: IdentityCenterEmulator, workdir: Path) -> tuple[str, Path]:
    """A KMS key in the emulator that signs the audit batches, as in production, and the file of its
    public half (what `aws kms get-public-key --output text --query PublicKey` writes)."""
    kms = ic.client("kms")
    key_id = str(kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"])
    public_key = workdir / "audit-signing.pub"
    public_key.write_bytes(base64.b64encode(kms.get_public_key(KeyId=key_id)["PublicKey"]))
    return key_id, public_key


def _instructions(
    cp: ControlPlane,
    ic: IdentityCenterEmulator,
    bin_dir: Path,
    env_file: Path,
    notifications: LocalNotifications,
    public_key: Path,
) -> str:
    def kc(user: str) -> str:
        return str(cp.user_kubeconfig(user))

    scripts = Path(sys.executable).parent
    namespace, account = OPERATOR_ACCOUNT
    return f"""
jitaccess is running: Kubernetes {cp.server_url}, Identity Center emulator, operator with webhooks.

In another terminal:
  source {env_file}            # PATH with kubectl and kubectl-jit, KUBECONFIG=alice

  # alice (payments engineer) gets her own team's production role at once:
  kubectl jit request prod-eng-payments --for 1h --reason "INFRA-2441 fix stuck settlement batch"
  kubectl get accessrequests,accessgrants
  # ... and 30 minutes more of it, at once (EXTENDED in `kubectl get accessgrants`):
  kubectl jit extend NAME --by 30m --reason "INFRA-2441 the batch needs longer"

  # alice asks for ledger's role; lena (ledger tech lead) approves it:
  kubectl jit request prod-eng-ledger --for 30m --reason "INC-7 reconcile ledger" --no-wait
  kubectl --kubeconfig {kc("lena@example.com")} get accessrequests
  kubectl --kubeconfig {kc("lena@example.com")} annotate accessrequest NAME jitaccess.dev/approved=true

  # a two-party approval: prod-eng-payments-pci needs paula and lena (APPROVALS 1/2, then 2/2):
  kubectl jit request prod-eng-payments-pci --for 30m --reason "PCI-12 rotate the card vault key" --no-wait
  KUBECONFIG={kc("paula@example.com")} kubectl jit approve NAME
  KUBECONFIG={kc("lena@example.com")} kubectl jit approve NAME

  # break-glass: carol (SRE) approves her own emergency access, reviewed by paula afterwards:
  KUBECONFIG={kc("carol@example.com")} kubectl jit break-glass prod-eng-payments-pci \
    --reason "INC-900 card authorisations failing, rolling back release 2026.11.3"
  KUBECONFIG={kc("paula@example.com")} kubectl jit review NAME

  # a change window: alice asks for her role from 5 minutes on (approval now, membership then);
  # START in `kubectl get accessrequests`, and `kubectl jit status NAME` says when it begins:
  kubectl jit request prod-eng-payments --for 1h --start +5m --reason "CHG-88 rotate the keys"

  # alice cannot approve her own request: refused (RBAC gives requesters no verb on requests but
  # create and delete; `kubectl jit approve NAME` says why in words):
  kubectl annotate accessrequest NAME jitaccess.dev/approved=true

  kubectl jit permissions payments   # what payments' roles may do, and their permission sets in Identity Center

  # who has production access right now, and end it:
  kubectl jit who-has prod-eng-payments
  kubectl jit done

  # Slack (a local stand-in for the workspace, docs/notifications.md): the approvers' message of
  # alice's ledger request in #ledger-approvals (C0LEDGER1), and lena clicking "Approve" on it:
  slack messages --channel C0LEDGER1
  slack click --as lena@example.com approve NAME     # prints what Slack showed lena (a refusal is hers alone)
  slack click --as lena@example.com deny NAME        # or Deny instead: it opens the reason dialog; then:
  slack submit --as lena@example.com --reason "not during the freeze"
  slack messages --channel U0ALICE        # what alice was told (her direct messages)

Users (kubeconfigs in {cp.users_dir}): alice, paula (payments lead), bob, lena (ledger lead),
carol (backup approver), mallory (outsider), eve (payments, not eligible); admin: {cp.admin_kubeconfig}
(cluster-admin, checked by the webhooks like everyone; the operator runs as the dev-only ServiceAccount
{namespace}/{account} under the RBAC of examples/rbac.yaml, as a chart-installed one under the chart's)
Anyone else, with any groups (a client certificate; prints the kubeconfig's path):
  kubectl --kubeconfig "$(mint-user dave@example.com --group team-payments)" auth whoami
  kubectl --kubeconfig "$(mint-user gitops@example.com --group system:masters)" apply -f {EXAMPLES / "02-entitlements.yaml"}
kubectl: {bin_dir}/kubectl   kubectl-jit: {scripts}/kubectl-jit   mint-user: {bin_dir}/mint-user

AWS side: Identity Center emulator at {ic.endpoint_url}, region {ic.region}, identity store {ic.identity_store_id}
  # who is in prod-eng-payments now:
  {aws_command(ic, ic.group_id("prod-eng-payments"))}
Audit archive (docs/audit.md): s3://{AUDIT_BUCKET}/{AUDIT_PREFIX}/v1/ in the emulator's S3
  {_aws_env(ic)} kubectl jit audit --archive s3://{AUDIT_BUCKET}/{AUDIT_PREFIX}
  # every batch as the operator wrote and signed it (the KMS key's public half: {public_key}):
  {_aws_env(ic)} kubectl jit audit --verify --archive s3://{AUDIT_BUCKET}/{AUDIT_PREFIX} --public-key {public_key}
  {archive_listing(ic)}
Slack Web API stand-in: {notifications.slack.api_url} (default channel {DEFAULT_CHANNEL}, security {SECURITY_CHANNEL});
CloudEvents receiver: {notifications.events.url}
Ctrl-C stops everything.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="jitaccess-dev", description=__doc__)
    parser.add_argument("--min-duration-seconds", default="60", help="shortest grant allowed (default 60)")
    parser.add_argument("--no-follow", action="store_true", help="do not print the operator's log")
    args = parser.parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_stop)
    workdir = Path(tempfile.mkdtemp(prefix="jitaccess-dev-"))
    started = time.monotonic()
    try:
        with (
            ControlPlane().start(controller_manager=False) as cp,
            IdentityCenterEmulator() as ic,
            LocalNotifications() as notifications,
        ):
            ic.seed(SEED_FILE)
            cp.kubectl("apply", "--server-side", "-f", str(CRDS))
            cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
            cp.start_controller_manager()
            # The audit archive: a bucket whose objects are locked in COMPLIANCE mode, as in production
            # (a day here: the emulator's S3 lives only as long as this run).
            ic.create_bucket(AUDIT_BUCKET, compliance_days=1)
            audit_key, public_key = signing_key(ic, workdir)
            # Slack decisions are applied as the clicking user, by an identity that may only impersonate approvers.
            notifications.impersonator_kubeconfig = impersonator_kubeconfig(cp)
            notifications.slack.write_state(workdir / "slack.json")
            # The operator runs as a ServiceAccount of its own (dev-only names), under RBAC as a chart
            # install gives it (so a missing permission shows here first), and the admin's writes meet
            # the webhooks.
            cp.kubectl("apply", "-f", str(EXAMPLES / "rbac.yaml"))
            operator_kubeconfig = cp.operator_kubeconfig(workdir / "operator-identity", hours=24 * 365)
            operator = OperatorProcess(
                operator_kubeconfig,
                ic.env(),
                workdir / "operator.log",
                extra_env={
                    "JITACCESS_MIN_DURATION_SECONDS": args.min_duration_seconds,
                    "JITACCESS_AUDIT_BUCKET": AUDIT_BUCKET,
                    "JITACCESS_AUDIT_PREFIX": AUDIT_PREFIX,
                    "JITACCESS_AUDIT_ENDPOINT_URL": ic.endpoint_url,
                    "JITACCESS_AUDIT_SIGNING_KEY": audit_key,
                    "JITACCESS_AUDIT_KMS_ENDPOINT_URL": ic.endpoint_url,
                    # examples/rbac.yaml binds it to jitaccess-dev-responder: `python -m devenv.mint NAME -g sre-oncall`.
                    "JITACCESS_RESPONDER_GROUPS": "sre-oncall",
                }
                | notifications.operator_env(),
            )
            with OperatorSupervisor(operator, _say):
                cp.kubectl("apply", "-f", str(EXAMPLES))
                bin_dir = _wrappers(cp.binary, workdir)
                env_file = workdir / "env.sh"
                scripts = Path(sys.executable).parent
                env_file.write_text(
                    f'export PATH="{bin_dir}:{scripts}:$PATH"\n'
                    f'export KUBECONFIG="{cp.user_kubeconfig("alice@example.com")}"\n'
                    f'export {CONTROLPLANE_ENV}="{cp.workdir}"\n'
                    f'export {STATE_ENV}="{workdir / "slack.json"}"\n'
                )
                print(_instructions(cp, ic, bin_dir, env_file, notifications, public_key), flush=True)
                print(
                    f"(up in {time.monotonic() - started:.1f} s; operator pid {operator.pid}, "
                    f"log {operator.log_file}; restarted if it crashes)\n",
                    flush=True,
                )
                _follow(operator.log_file, quiet=args.no_follow)
    except (KeyboardInterrupt, _Stop):
        print("\nstopping jitaccess...", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _follow(log_file: Path, *, quiet: bool) -> None:
    """Print the operator's log as it grows (a restarted operator appends to it), until stopped."""
    with log_file.open(errors="replace") as log:
        while True:
            line = log.readline()
            if not line:
                time.sleep(0.2)
                continue
            if not quiet:
                sys.stdout.write(line)
                sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("NO_PROXY", LOOPBACK)
    main()

"""`make dev` as a person runs it: `python -m devenv.dev` in a subprocess, its output followed.

A crashed operator is restarted while the control plane keeps its objects; the printed commands
work (the users' folder, minting a user, the AWS CLI line against the emulator); Ctrl-C leaves no
process and no file behind.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import boto3
import pytest
from botocore import xform_name

from devenv.paths import REPO
from devenv.processes import child_env
from tests.support.harness import eventually, interruptible

START_TIMEOUT = 240.0


class Dev:
    """The running `make dev`, with its output as it comes."""

    def __init__(self) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "devenv.dev", "--no-follow"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=child_env(),
            preexec_fn=interruptible,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        assert self.popen.stdout is not None
        threading.Thread(target=self._read, args=(self.popen.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first line from now on that matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s; output:\n" + "\n".join(self.output))

    def line_with(self, pattern: str) -> re.Match[str]:
        """A line already printed that matches ``pattern``."""
        for line in self.output:
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.output))


@pytest.fixture
def dev() -> Iterator[Dev]:
    dev = Dev()
    try:
        yield dev
    finally:
        if dev.popen.poll() is None:
            dev.popen.send_signal(signal.SIGINT)
            try:
                dev.popen.wait(60)
            except subprocess.TimeoutExpired:
                dev.popen.kill()
                dev.popen.wait()


def descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def shell(env_file: Path, command: str) -> subprocess.CompletedProcess[str]:
    """A command in a shell that has sourced make dev's env.sh, as the printed text says to."""
    return subprocess.run(
        ["bash", "-c", f"source {shlex.quote(str(env_file))} && {command}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=child_env(),
    )


def check_aws_line(line: str) -> None:
    """The printed AWS CLI line names boto3's parameters and works against the emulator."""
    words = shlex.split(line)
    env = dict(word.split("=", 1) for word in words[: words.index("aws")])
    args = words[words.index("aws") + 1 :]
    options = dict(zip(args[0::2], args[1::2], strict=False))
    service, operation = args[args.index("identitystore")], args[args.index("identitystore") + 1]
    assert (service, operation) == ("identitystore", "list-group-memberships")
    client = boto3.client(
        "identitystore",
        endpoint_url=options.pop("--endpoint-url"),
        region_name=options.pop("--region"),
        aws_access_key_id=env.pop("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.pop("AWS_SECRET_ACCESS_KEY"),
    )
    assert env == {}
    shape = client.meta.service_model.operation_model("ListGroupMemberships").input_shape
    assert shape is not None
    # The AWS CLI's option for a parameter is its snake_case name with dashes.
    cli_names = {"--" + xform_name(name).replace("_", "-"): name for name in shape.members}
    params: dict[str, Any] = {cli_names[option]: value for option, value in options.items() if option.startswith("--")}
    assert set(params) == set(shape.required_members)
    response = client.list_group_memberships(**params)
    assert response["GroupMemberships"] == []
    group = client.describe_group(IdentityStoreId=params["IdentityStoreId"], GroupId=params["GroupId"])
    assert group["DisplayName"] == "prod-eng-payments"


def test_make_dev_restarts_a_crashed_operator_and_leaves_nothing_behind(dev: Dev) -> None:
    up = dev.wait_for(r"^\(up in .* operator pid (\d+), log (\S+);", START_TIMEOUT)
    operator_pid, log_file = int(up.group(1)), Path(up.group(2))
    env_file = Path(dev.line_with(r"source (\S+)").group(1))
    workdir = env_file.parent
    assert log_file.parent == workdir
    users_dir = Path(dev.line_with(r"kubeconfigs in (\S+)\)").group(1))
    assert (users_dir / "alice_example.com.kubeconfig").exists()
    admin = Path(dev.line_with(r"admin: (\S+)").group(1))
    check_aws_line(dev.line_with(r"^\s*(AWS_ACCESS_KEY_ID=.*)$").group(1))

    minted = shell(
        env_file, 'kubectl --kubeconfig "$(mint-user dave@example.com --group team-payments)" auth whoami -o json'
    )
    assert minted.returncode == 0, minted.stderr
    user = json.loads(minted.stdout)["status"]["userInfo"]
    assert (user["username"], user["groups"]) == ("dave@example.com", ["team-payments", "system:authenticated"])

    # The operator runs as its own ServiceAccount, so the admin is checked by the webhooks like anyone.
    forged = shell(
        env_file,
        f'kubectl --kubeconfig "{admin}" create -f - <<EOF\n'
        "apiVersion: jitaccess.dev/v1alpha1\nkind: AccessGrant\nmetadata: {name: admin-forged}\n"
        "spec: {user: alice@example.com, entitlement: prod-eng-payments, groupName: prod-eng-payments,"
        " request: none, duration: 1h}\nEOF",
    )
    assert forged.returncode != 0 and "created only by the jitaccess operator" in forged.stderr, forged.stderr

    # The example catalogs, provisioned into the emulator's Identity Center as the printed command shows.
    deadline = time.monotonic() + 60
    while "arn:aws:sso:::permissionSet/" not in (shown := shell(env_file, "kubectl jit permissions payments")).stdout:
        assert shown.returncode == 0, shown.stderr
        assert time.monotonic() < deadline, f"no permission set ARN: {shown.stdout}"
        time.sleep(0.5)
    assert "Provisioned: Identity Center holds jit-payments-base in 1 account(s), jit-payments-prod" in shown.stdout

    # The Slack flow as printed: alice asks for ledger's role, lena clicks "Approve" in the stand-in.
    asked = shell(env_file, 'kubectl jit request prod-eng-ledger --for 30m --reason "INC-7 reconcile ledger" --no-wait')
    assert asked.returncode == 3, asked.stderr  # 3: it waits for an approver (the exit-code table)
    name = re.search(r"accessrequest (\S+)", asked.stdout + asked.stderr).group(1)  # type: ignore[union-attr]
    deadline = time.monotonic() + 30
    while "approve" not in (listed := shell(env_file, "slack messages --channel C0LEDGER1")).stdout:
        assert time.monotonic() < deadline, f"no approvers' message for {name}: {listed.stdout}{listed.stderr}"
        time.sleep(0.5)
    clicked = shell(env_file, f"slack click --as lena@example.com approve {name}")
    assert clicked.returncode == 0, clicked.stdout + clicked.stderr
    waited = shell(env_file, f"kubectl wait --for=condition=Ready accessrequest/{name} --timeout=30s")
    assert waited.returncode == 0, waited.stderr

    # The printed plugin lines of other users work as copied (kubectl refuses flags before a plugin's name).
    pci = shell(
        env_file,
        'kubectl jit request prod-eng-payments-pci --for 30m --reason "PCI-12 rotate the card vault key" --no-wait',
    )
    assert pci.returncode == 3, pci.stdout + pci.stderr
    pci_name = re.search(r"accessrequest (\S+)", pci.stdout + pci.stderr).group(1)  # type: ignore[union-attr]
    for who in ("paula", "lena"):
        line = dev.line_with(rf"^\s*(KUBECONFIG=\S*/{who}_example\.com\.kubeconfig kubectl jit approve NAME)$").group(1)
        approved = shell(env_file, line.replace("NAME", pci_name))
        assert approved.returncode == 0, approved.stdout + approved.stderr
    # The grant exists only once the operator has read the second approval: wait on the request first
    # (kubectl wait on a name not yet created fails at once).
    decided = shell(env_file, f"kubectl wait --for=condition=Ready accessrequest/{pci_name} --timeout=30s")
    assert decided.returncode == 0, decided.stderr
    granted = shell(env_file, f"kubectl wait --for=condition=Ready accessgrant/{pci_name} --timeout=30s")
    assert granted.returncode == 0, granted.stderr
    audit = shell(env_file, dev.line_with(r"^\s*(AWS_ACCESS_KEY_ID=\S+ .*kubectl jit audit --archive \S+)$").group(1))
    assert audit.returncode == 0, audit.stdout + audit.stderr
    verify = dev.line_with(r"^\s*(AWS_ACCESS_KEY_ID=\S+ .*kubectl jit audit --verify .* --public-key \S+)$").group(1)

    def signed_and_verified() -> str | None:
        checked = shell(env_file, verify)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        signed = "each signed with the key given" in checked.stderr and " 0 batch(es) " not in f" {checked.stderr}"
        return checked.stderr if signed else None

    eventually(signed_and_verified, timeout=30, what="the local archive's batches, signed, verified")

    children = descendants(dev.popen.pid)
    assert operator_pid in children
    os.killpg(operator_pid, signal.SIGKILL)
    dev.wait_for(r"^\[make dev\] operator killed by SIGKILL; last lines in " + re.escape(str(log_file)), 30)
    restarted = dev.wait_for(r"^\[make dev\] operator restarted \(pid (\d+)", 120)
    assert dev.popen.poll() is None
    # The control plane kept its objects, and alice still reaches them.
    listed = shell(env_file, "kubectl get entitlements -o name")
    assert listed.returncode == 0, listed.stderr
    assert "entitlement.jitaccess.dev/prod-eng-payments" in listed.stdout.split()

    children |= descendants(dev.popen.pid)
    assert int(restarted.group(1)) in children
    dev.popen.send_signal(signal.SIGINT)
    assert dev.popen.wait(60) == 0
    assert not workdir.exists()
    assert not admin.parent.exists()  # the control plane's own directory
    assert [pid for pid in children if alive(pid)] == []


def test_make_dev_stops_on_sigterm_and_leaves_nothing_behind(dev: Dev) -> None:
    up = dev.wait_for(r"^\(up in .* log (\S+);", START_TIMEOUT)
    workdir = Path(up.group(1)).parent
    admin = Path(dev.line_with(r"admin: (\S+)").group(1))
    children = descendants(dev.popen.pid)
    assert len(children) >= 4  # etcd, kube-apiserver, kube-controller-manager, the operator
    dev.popen.send_signal(signal.SIGTERM)
    assert dev.popen.wait(60) == 0
    assert not workdir.exists()
    assert not admin.parent.exists()
    assert [pid for pid in children if alive(pid)] == []

"""Run `kubectl-jit` as a real process, as a test user: without a terminal, in the background,
in a terminal (pexpect), or found by kubectl's plugin discovery (`kubectl jit ...`).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest

from tests.support.harness import Jit, interruptible

SCRIPT_DIR = Path(sys.executable).parent
KUBECTL_JIT = SCRIPT_DIR / "kubectl-jit"
OPERATOR_SOURCE = Path(__file__).resolve().parents[2] / "operator"


def kubectl_jit() -> Path:
    if not KUBECTL_JIT.exists():
        pytest.fail(f"{KUBECTL_JIT} is missing: run `pip install -e .[dev]` to install the kubectl-jit script")
    return KUBECTL_JIT


@dataclass
class Result:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}--- stderr\n{self.err}"


class Background:
    """A `kubectl-jit` process whose output lines are read as they come."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line)

    def wait_for_line(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.out.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {timeout}s; so far: {''.join(self.out)!r}")

    def finish(self, timeout: float = 30.0) -> Result:
        code = self.popen.wait(timeout)
        self._reader.join(5)
        while not self.lines.empty():
            self.out.append(self.lines.get())
        assert self.popen.stderr is not None
        return Result(code, "".join(self.out), self.popen.stderr.read())

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


class Cli:
    """`kubectl-jit` as the test users of the control plane."""

    def __init__(self, system: Jit) -> None:
        self.system = system
        self.script = kubectl_jit()
        self.env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        # The plugin imports this tree's package, as the operator's process does (devenv.operator_process),
        # not whichever checkout a shared virtualenv's editable install names.
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(OPERATOR_SOURCE), os.environ.get("PYTHONPATH", "")]))
        self.env.pop("KUBECONFIG", None)
        self._background: list[Background] = []

    def kubeconfig(self, user: str | None) -> str:
        cluster = self.system.cluster
        return str(cluster.admin_kubeconfig if user is None else cluster.user_kubeconfig(user))

    def argv(self, args: tuple[str, ...], user: str | None) -> list[str]:
        return [str(self.script), "--kubeconfig", self.kubeconfig(user), *args]

    def run(self, *args: str, user: str | None, timeout: float = 60.0) -> Result:
        """Without a terminal: stdin is /dev/null, output captured."""
        done = subprocess.run(
            self.argv(args, user),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str, user: str | None) -> Background:
        background = Background(self.argv(args, user), self.env)
        self._background.append(background)
        return background

    def spawn(self, *args: str, user: str | None, timeout: float = 30.0) -> pexpect.spawn:
        """In a real terminal (a pty), as an engineer would type."""
        return pexpect.spawn(
            str(self.script),
            ["--kubeconfig", self.kubeconfig(user), *args],
            env=self.env,
            encoding="utf-8",
            timeout=timeout,
            dimensions=(50, 160),
            preexec_fn=interruptible,
        )

    def via_kubectl(self, *args: str, user: str | None, path: list[Path] | None = None) -> Result:
        """`kubectl jit ...` through kubectl's own plugin discovery on PATH."""
        env = {
            **self.env,
            "PATH": os.pathsep.join([*(str(p) for p in path or []), str(SCRIPT_DIR), "/usr/bin", "/bin"]),
        }
        argv = [str(self.system.cluster.binary), "kubectl", *args]
        if args and args[0] == "jit":
            argv = [str(self.system.cluster.binary), "kubectl", "jit", "--kubeconfig", self.kubeconfig(user), *args[1:]]
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=60, check=False
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def stop_all(self) -> None:
        for background in self._background:
            background.stop()

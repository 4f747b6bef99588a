"""Run the jitaccess operator as a real subprocess against a cluster and an Identity Center.

Used by the local run (`make dev`), the end-to-end tests and the benchmarks: the operator is
started exactly as in production (`python -m jitaccess`), with its admission webhooks served on
loopback, and can be stopped gracefully or killed with SIGKILL to prove crash safety.
`OperatorSupervisor` restarts it when it exits on its own, as a Deployment's kubelet would.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Final, Self

from devenv.paths import REPO
from devenv.processes import LOOPBACK, free_ports


class OperatorProcess:
    """`python -m jitaccess` with the given environment; logs go to `log_file`."""

    def __init__(
        self,
        kubeconfig: Path,
        identity_center_env: Mapping[str, str],
        log_file: Path,
        *,
        extra_env: Mapping[str, str] | None = None,
        webhooks: bool = True,
    ) -> None:
        self.log_file = log_file
        self.liveness_port, webhook_port, self.metrics_port = free_ports(3)
        self.webhook_port = webhook_port if webhooks else 0
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "NO_PROXY": LOOPBACK,
            **identity_center_env,
            "JITACCESS_WEBHOOK_PORT": str(self.webhook_port),
            "JITACCESS_WEBHOOK_HOST": "127.0.0.1",
            "JITACCESS_METRICS_PORT": str(self.metrics_port),
            # The operator of this checkout, whichever the virtualenv's editable install points at:
            # tests run from a second worktree or clone that shares a virtualenv start the code
            # they are testing, not the first checkout's.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH", "")])),
            **(extra_env or {}),
        }
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 60.0, *, cancel: threading.Event | None = None) -> Self:
        """Start it and wait until it is ready; `RuntimeError` if it exits first, or ``cancel`` is set."""
        self._close_log()  # a process that exited on its own left it open
        self._log = self.log_file.open("ab")
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "jitaccess", "--liveness", f"http://127.0.0.1:{self.liveness_port}/healthz"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self.wait_ready(timeout, cancel)
        except BaseException:
            self.kill()
            raise
        return self

    def wait_ready(self, timeout: float, cancel: threading.Event | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                raise RuntimeError("the operator's start was cancelled")
            if self._popen is None or self._popen.poll() is not None:
                raise RuntimeError(f"the operator exited during start-up:\n{self.tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.liveness_port, timeout=1)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the operator was not ready within {timeout}s:\n{self.tail()}")

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """How the last process ended (negative: the signal that killed it); None while it runs."""
        return self._popen.poll() if self._popen is not None else None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no finalizers, as a crash or an OOM kill would."""
        if self._popen is not None and self._popen.poll() is None:
            os.killpg(self._popen.pid, signal.SIGKILL)
            self._popen.wait()
        self._close_log()

    def stop(self, timeout: float = 15.0) -> None:
        if self._popen is not None and self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._popen.pid, signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        return self.start() if self._popen is None else self

    def __exit__(self, *_: object) -> None:
        self.stop()


def describe_exit(returncode: int | None) -> str:
    """``killed by SIGKILL`` or ``exited with code 1``, from a `subprocess.Popen.returncode`."""
    if returncode is not None and returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


class OperatorSupervisor:
    """Keeps an `OperatorProcess` running, as ``restartPolicy: Always`` does in a Deployment.

    A thread watches it; when it exits other than by `stop`, ``report`` is told (how it ended,
    where its log is), and it is started again after a back-off that doubles from ``backoff``
    up to ``max_backoff`` and starts over once the operator has stayed up ``stable_after``
    seconds (the kubelet's CrashLoopBackOff, with shorter times). It never gives up: a person
    fixes what makes it crash while it keeps trying.
    """

    _POLL: Final = 0.2

    def __init__(
        self,
        operator: OperatorProcess,
        report: Callable[[str], None],
        *,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        stable_after: float = 60.0,
        start_timeout: float = 60.0,
    ) -> None:
        self.operator = operator
        self.restarts = 0
        self._report = report
        self._initial_backoff = self._backoff = backoff
        self._max_backoff = max_backoff
        self._stable_after = stable_after
        self._start_timeout = start_timeout
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._up_since = 0.0

    def start(self) -> Self:
        self.operator.start(self._start_timeout)
        self._up_since = time.monotonic()
        self._thread = threading.Thread(target=self._watch, name="operator-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (a start under way is cancelled), then stop the operator gracefully."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self.operator.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _watch(self) -> None:
        while not self._stopping.wait(self._POLL):
            if self.operator.running:
                if time.monotonic() - self._up_since >= self._stable_after:
                    self._backoff = self._initial_backoff
                continue
            delay, self._backoff = self._backoff, min(self._backoff * 2, self._max_backoff)
            self._report(
                f"operator {describe_exit(self.operator.returncode)}; last lines in {self.operator.log_file}; "
                f"restarting it in {delay:g} s"
            )
            if self._stopping.wait(delay):
                return
            try:
                self.operator.start(self._start_timeout, cancel=self._stopping)
            except RuntimeError as exc:
                if not self._stopping.is_set():
                    self._report(f"operator failed to start again: {str(exc).splitlines()[0]}")
                continue
            self._up_since = time.monotonic()
            self.restarts += 1
            self._report(f"operator restarted (pid {self.operator.pid}, restart {self.restarts}), ready")

"""Run the jitaccess operator as a real subprocess against a cluster and an Identity Center.

Used by the local run (`make dev`), the end-to-end tests and the benchmarks: the operator is
started exactly as in production (`python -m jitaccess`), with its admission webhooks served on
loopback, and can be stopped gracefully or killed with SIGKILL to prove crash safety.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Self

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
            **(extra_env or {}),
        }
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Self:
        self._log = self.log_file.open("ab")
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "jitaccess", "--liveness", f"http://127.0.0.1:{self.liveness_port}/healthz"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
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

"""Profiles of one scenario (`python -m bench --profile DIR`): where the CPU of a grant goes.

- the operator, with py-spy (`NAME.txt`, collapsed stacks of the samples holding the GIL, for flame
  graphs or grep);
- the kube-apiserver, with its own Go CPU profiler (`NAME-kube-apiserver-N.pprof`, consecutive
  windows of `WINDOW_S`: the API server profiles a fixed time per call; read them together with
  `go tool pprof -top DIR/NAME-kube-apiserver-*.pprof`). The bench's control plane serves
  `/debug/pprof` only in a profiled run (`ControlPlane(profiling=True)`); the window cut short by
  the scenario's end is dropped.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
from pathlib import Path

from bench.system import System

WINDOW_S = 5


class Profiles:
    """Started with the scenario's operator; `stop` when the scenario ends."""

    def __init__(self, system: System, directory: Path, name: str) -> None:
        py_spy = shutil.which("py-spy")
        if py_spy is None:
            raise SystemExit("--profile needs py-spy on PATH (pip install py-spy)")
        if system.cp is None:
            raise SystemExit("--profile needs the bench's control plane started")
        directory.mkdir(parents=True, exist_ok=True)
        self._directory, self._name, self._system = directory, name, system
        self._spy: subprocess.Popen[bytes] | None = None
        if system.operator is not None and system.operator.pid is not None:
            self._spy = subprocess.Popen(
                [py_spy, "record", "--pid", str(system.operator.pid), "--rate", "50", "--format", "raw", "--gil",
                 "--output", str(directory / f"{name}.txt"), "--nonblocking"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        self._stopping = threading.Event()
        self._window: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._api_server, name="apiserver-profile", daemon=True)
        self._thread.start()

    def _api_server(self) -> None:
        cp = self._system.cp
        assert cp is not None
        index = 0
        while True:
            path = self._directory / f"{self._name}-kube-apiserver-{index}.pprof"
            window: subprocess.Popen[bytes] | None = None
            with path.open("wb") as out, self._lock:
                if not self._stopping.is_set():
                    self._window = window = subprocess.Popen(
                        cp.kubectl_argv("get", "--raw", f"/debug/pprof/profile?seconds={WINDOW_S}"),
                        stdout=out,
                        stderr=subprocess.DEVNULL,
                    )
            if window is None or window.wait() != 0:
                path.unlink(missing_ok=True)  # cut short, or refused (a control plane not profiling)
                return
            index += 1

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            if self._window is not None and self._window.poll() is None:
                self._window.terminate()
        self._thread.join(30)
        if self._spy is not None:
            self._spy.send_signal(signal.SIGINT)
            self._spy.wait(30)

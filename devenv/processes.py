"""Child processes of the development environment: started, watched, and never left behind.

Each child runs in a process group of its own and logs to a file whose tail explains a failure.
No child outlives the Python process that started it: `ChildProcess.stop` kills the whole group,
and a parent-death signal (when `setpriv` is available) covers a parent that is SIGKILLed before
it can clean up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

LOOPBACK: Final = "127.0.0.1,localhost"
_LOG_TAIL_LINES: Final = 40
_STOP_TIMEOUT: Final = 10.0


class ProcessError(RuntimeError):
    """A child process exited, or did not become ready in time."""


def child_env() -> dict[str, str]:
    """This process's environment for a child: loopback bypasses any proxy, no inherited KUBECONFIG."""
    env = dict(os.environ)
    # Webhook calls and readiness probes go to loopback; a proxy from the environment must never see them.
    for key in ("NO_PROXY", "no_proxy"):
        env[key] = ",".join(filter(None, [LOOPBACK, env.get(key, "")]))
    env.pop("KUBECONFIG", None)
    return env


def tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def built_binary(env_var: str, script: Path, error: Callable[[str], Exception]) -> Path:
    """The executable ``$env_var`` names, else the one a build script of tests/ prints last (it
    builds it first when its cached copy is missing, which takes minutes); `error` is raised."""
    configured = os.environ.get(env_var)
    if configured:
        path = Path(configured)
        if not os.access(path, os.X_OK):
            raise error(f"${env_var}={configured} is not an executable file")
        return path
    log.info("locating a binary with %s (first build takes minutes)", script)
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise error(f"{script} failed with exit code {result.returncode}:\n{tail(result.stderr)}")
    path = Path(lines[-1])
    if not os.access(path, os.X_OK):
        raise error(f"{script} printed {path}, which is not executable")
    return path


#: Ports this process has handed out: never handed out twice, even once their probe is closed.
_GIVEN: set[int] = set()
_GIVEN_LOCK = threading.Lock()


def _unassigned_range() -> range | None:
    """Ports below the kernel's ephemeral range, which it never picks for a bind to port 0 or for
    an outgoing connection's own end; None when that range is too small to draw from."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return range(10000, low) if low - 10000 >= 2000 else None


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on loopback, none handed out before by this process.

    A port the kernel picks for port 0 is free only until someone else binds it: a server that
    binds port 0 itself, or the next call here once the probe is closed, may be given the same one
    (a replica's liveness port once came out equal to the replicas' shared webhook port). So the
    ports are drawn outside the kernel's ephemeral range when it leaves room, probed, and
    remembered.
    """
    pool = _unassigned_range()
    chosen: list[int] = []
    with _GIVEN_LOCK:
        for _ in range(count * 50):
            if len(chosen) == count:
                break
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind(("127.0.0.1", random.choice(pool) if pool else 0))
                except OSError:
                    continue  # taken: draw again
                port = int(probe.getsockname()[1])
            if port not in _GIVEN:
                _GIVEN.add(port)
                chosen.append(port)
        if len(chosen) < count:
            raise OSError(f"no {count} free loopback ports found")
    return chosen


def free_port() -> int:
    return free_ports(1)[0]


class ChildProcess:
    """One child process in its own process group, logging to a file."""

    def __init__(self, name: str, argv: Sequence[str], log_file: Path) -> None:
        self.name = name
        self.log_file = log_file
        prefix: list[str] = []
        # A parent-death signal stops children even when pytest itself is SIGKILLed and atexit
        # never runs. KILL, not TERM: all parts get it at once, and an apiserver whose etcd is gone
        # takes half a minute to shut down gracefully. It fires when the forking *thread* ends, so
        # only the main thread (which lives as long as the process) may ask for it.
        setpriv = shutil.which("setpriv")
        if setpriv and threading.current_thread() is threading.main_thread():
            prefix = [setpriv, "--pdeathsig", "KILL", "--"]
        with log_file.open("wb") as out:
            self.popen = subprocess.Popen(
                [*prefix, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child_env(),
                start_new_session=True,
            )
        log.debug("started %s (pid %d), log %s", name, self.popen.pid, log_file)

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self) -> str:
        return tail(self.log_text())

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL to the whole group (even after a clean exit: nothing it spawned may linger)."""
        if self.running():
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %.0f s; killing it", self.name, timeout)
        self._signal_group(signal.SIGKILL)
        self.popen.wait()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


def wait_for(ready: Callable[[], bool], what: str, watched: Sequence[ChildProcess], timeout: float) -> None:
    """Poll ``ready`` until it holds; `ProcessError` with the logs' tails if a watched child exits or time runs out."""
    deadline = time.monotonic() + timeout
    pause = 0.02
    while not ready():
        for process in watched:
            if not process.running():
                raise ProcessError(
                    f"{process.name} exited with code {process.popen.returncode} while waiting for {what}; "
                    f"last lines of {process.log_file}:\n{process.tail()}"
                )
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}:\n{p.tail()}" for p in watched)
            raise ProcessError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")
        time.sleep(pause)
        pause = min(pause * 1.5, 0.25)

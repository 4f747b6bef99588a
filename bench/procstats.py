"""What the kernel says about the benchmark's processes and machine, read from /proc.

CPU time is user + system time in clock ticks (``/proc/PID/stat`` fields 14 and 15); memory is the
resident set now and at its peak (``VmRSS``, ``VmHWM`` of ``/proc/PID/status``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

_PROC = Path("/proc")
_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    stat = (_PROC / str(pid) / "stat").read_text()
    # The command name, in parentheses, may itself hold spaces and parentheses.
    return stat[stat.rindex(")") + 2 :].split()


def cpu_time(pid: int) -> float:
    """The CPU seconds (user + system) process ``pid`` has used so far."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_mb(pid: int) -> tuple[float, float]:
    """The resident memory of process ``pid`` now and at its peak (VmRSS, VmHWM), in MiB."""
    fields = {}
    for line in (_PROC / str(pid) / "status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _role(pid: int, me: int) -> str:
    if pid == me:
        return "bench+emulator"
    argv = (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    words = [a.decode(errors="replace") for a in argv if a]
    for role in ("jitaccess", "kube-apiserver", "etcd"):
        if role in words:
            return "operator" if role == "jitaccess" else role
    return Path(words[0]).name if words else "?"


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU time of this process and of its children: pid -> (what, seconds).

    This process holds the emulator and the bench's own clients; its children are etcd, the
    kube-apiserver and the operator.
    """
    me = os.getpid()
    found: dict[int, tuple[str, float]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            pid = int(entry.name)
            if pid != me and int(_stat_fields(pid)[1]) != me:
                continue
            found[pid] = (_role(pid, me), cpu_time(pid))
    return found


def _spent(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds each part used between two `cpu_seconds` snapshots, unrounded."""
    used: dict[str, float] = {}
    for pid, (what, seconds) in after.items():
        used[what] = used.get(what, 0.0) + seconds - before.get(pid, (what, 0.0))[1]
    return used


def cpu_used(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds each part used between two `cpu_seconds` snapshots."""
    return {what: round(seconds, 1) for what, seconds in _spent(before, after).items()}


def cpu_ms_per(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], count: int
) -> dict[str, float]:
    """CPU milliseconds each part used per one of `count` units of work (grants) between two
    `cpu_seconds` snapshots, and all of them together (`all`): unlike a rate, it does not move
    with how fast the machine is that day, only with what the work costs."""
    used = _spent(before, after)
    used["all"] = sum(used.values())
    return {what: round(seconds * 1000 / count, 1) for what, seconds in used.items()}


def machine() -> dict[str, Any]:
    """Cores, CPU model and memory of this machine."""
    meminfo = dict(line.split(":", 1) for line in (_PROC / "meminfo").read_text().splitlines() if ":" in line)
    model = ""
    with contextlib.suppress(OSError):
        model = next(
            (line.split(":", 1)[1].strip() for line in (_PROC / "cpuinfo").read_text().splitlines()
             if line.startswith("model name")),
            "",
        )  # fmt: skip
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(int(meminfo["MemTotal"].split()[0]) / 1024 / 1024, 1),
    }

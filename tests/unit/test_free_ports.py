"""The development environment's free ports: distinct across calls, and never one already bound."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv import processes
from devenv.processes import free_port, free_ports


def test_no_port_is_handed_out_twice_by_one_process() -> None:
    # 400 draws: the kernel's own choice for port 0 repeats within far fewer (a birthday collision
    # in ~28,000 ports), which is how a replica's liveness port once equalled the webhook port.
    ports = [free_port() for _ in range(200)] + free_ports(200)
    assert len(set(ports)) == len(ports)


def test_ports_come_from_below_the_kernels_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    if low < 12000:
        pytest.skip(f"this machine's ephemeral range starts at {low}: no room below it")
    assert all(10000 <= port < low for port in free_ports(50))


@pytest.fixture
def held() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        yield sock


def test_a_port_someone_listens_on_is_drawn_again(held: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = held.getsockname()[1]
    other = free_port()
    processes._GIVEN.difference_update({taken, other})  # as if never handed out: only the bind can refuse `taken`
    draws = iter([taken, other])
    monkeypatch.setattr(processes.random, "choice", lambda _pool: next(draws))
    monkeypatch.setattr(processes, "_unassigned_range", lambda: range(10000, 32768))
    assert free_ports(1) == [other]

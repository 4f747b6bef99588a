"""Several operator processes as the replicas of one Deployment, on one machine.

In a cluster the API server calls the webhooks through a Service, which spreads the calls over the
live pods. Here the replicas all listen on one loopback port (kopf's server sets SO_REUSEPORT):
the kernel spreads new connections over the live listeners, and a killed replica's listener is
gone with it, as a dead pod leaves the Service. They share one serving certificate (the chart's
Secret), so the webhook configuration any of them applies trusts all of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path

from devenv.operator_process import OperatorProcess
from devenv.processes import free_ports
from jitaccess.adapters.tls import generate_serving_files

#: What the operator logs as it starts and stops leading (`jitaccess.handlers.leadership`).
_LEADERSHIP_LINES = ("leading: ", "lost Lease", "stopping: ")


class Replicas:
    """`count` operator processes electing a leader on a Lease of their own."""

    def __init__(
        self,
        count: int,
        kubeconfig: Path,
        identity_center_env: Mapping[str, str],
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        kubeconfigs: Mapping[int, Path] | None = None,
    ) -> None:
        (self.webhook_port,) = free_ports(1)
        self.lease = f"jitaccess-{uuid.uuid4().hex[:8]}"
        tls = generate_serving_files(["127.0.0.1", "localhost"], workdir / "webhook-tls")
        shared = {
            "JITACCESS_LEADER_ELECTION": "true",
            "JITACCESS_LEASE_NAME": self.lease,
            "JITACCESS_LEASE_NAMESPACE": "default",
            "JITACCESS_WEBHOOK_PORT": str(self.webhook_port),
            "JITACCESS_WEBHOOK_CERTFILE": str(tls.certfile),
            "JITACCESS_WEBHOOK_KEYFILE": str(tls.keyfile),
            "JITACCESS_WEBHOOK_CAFILE": str(tls.cafile),
            **(env or {}),
        }
        self.processes = [
            OperatorProcess(
                (kubeconfigs or {}).get(n, kubeconfig),
                identity_center_env,
                workdir / f"replica-{n}.log",
                extra_env={**shared, "JITACCESS_LEADER_IDENTITY": f"replica-{n}"},
            )
            for n in range(count)
        ]

    def __getitem__(self, n: int) -> OperatorProcess:
        return self.processes[n]

    def start(self) -> None:
        for process in self.processes:
            process.start()

    def stop(self) -> None:
        for process in self.processes:
            process.stop()

    def leaders(self) -> list[int]:
        """The replicas whose log says they lead now (their last leadership line is `leading`)."""
        found = []
        for n, process in enumerate(self.processes):
            if not process.running:
                continue
            lines = [line for line in _lines(process) if any(word in line for word in _LEADERSHIP_LINES)]
            if lines and "leading: " in lines[-1]:
                found.append(n)
        return found


def _lines(process: OperatorProcess) -> list[str]:
    try:
        return process.log_file.read_text(errors="replace").splitlines()
    except OSError:
        return []

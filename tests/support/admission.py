"""Writes through the admission webhooks at a steady pace, each one's outcome kept.

`AdmissionCalls` sends a server-side dry run of a user's AccessRequest every 100 ms from each of its
threads (the API server calls the mutating and validating webhooks for it, and stores nothing),
straight over HTTPS with the user's token, so the pace holds on a busy machine where forking kubectl
would not. Several threads keep several calls in flight at once, as several users would: the API
server then keeps several connections to each Pod, and a Pod that stops must leave none of them
with a call unanswered.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from devenv.controlplane import ControlPlane

PATH = "/apis/jitaccess.dev/v1alpha1/accessrequests?dryRun=All"


class AdmissionCalls:
    """Dry-run creations of ``user``'s AccessRequest every ``period`` s from each of ``callers``
    threads while in the ``with`` block."""

    def __init__(
        self, cluster: ControlPlane, user: str, entitlement: str, period: float = 0.1, callers: int = 1
    ) -> None:
        config = json.loads(Path(cluster.user_kubeconfig(user)).read_text())
        self._token = config["users"][0]["user"]["token"]
        self._port = int(cluster.server_url.rsplit(":", 1)[1])
        self._context = ssl.create_default_context(cafile=str(cluster.ca_file))
        self._body = json.dumps(
            {
                "apiVersion": "jitaccess.dev/v1alpha1",
                "kind": "AccessRequest",
                "metadata": {"generateName": "dry-run-"},
                "spec": {"entitlement": entitlement, "reason": "INFRA-1 admission while rolling"},
            }
        )
        self._period = period
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"admission-calls-{n}", daemon=True) for n in range(callers)
        ]
        self._lock = threading.Lock()
        self.admitted = 0
        #: (HTTP status, message) of every call that was not admitted.
        self.refused: list[tuple[int, str]] = []

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        next_call = time.monotonic()
        while not self._stop.is_set():
            status, message = self._call()
            with self._lock:
                if status == 201:
                    self.admitted += 1
                else:
                    self.refused.append((status, message))
            next_call += self._period
            self._stop.wait(max(0.0, next_call - time.monotonic()))

    def _call(self) -> tuple[int, str]:
        conn = http.client.HTTPSConnection("127.0.0.1", self._port, context=self._context, timeout=40)
        try:
            headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
            conn.request("POST", PATH, body=self._body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            if response.status == 201:
                return 201, ""
            return response.status, str(json.loads(payload).get("message", payload[:300]))
        except (OSError, http.client.HTTPException, ValueError) as error:
            return 0, repr(error)
        finally:
            conn.close()

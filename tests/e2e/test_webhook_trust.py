"""The operator notices when the API server stops trusting its webhooks, long after start-up.

Its webhook configurations' caBundle replaced by an unrelated CA (a stale copy applied, a renewed
certificate from another CA): every user's write is refused with an x509 error. The operator's
`jitaccess_webhook_configured` gauge goes to 0 (what JitaccessWebhookNotTrusted alerts on) and its
/healthz says why, still answering 200 (liveness must not restart-loop on what a restart cannot
fix); both come back once the caBundle is restored.
"""

from __future__ import annotations

import base64
import http.client
import json
from pathlib import Path

import pytest

from jitaccess.adapters.tls import generate_serving_files
from tests.e2e.test_metrics import gauge_becomes, scrape, value
from tests.support.harness import WEBHOOK_CONFIGURATION, Jit, eventually

pytestmark = pytest.mark.e2e
PAYMENTS = "prod-eng-payments"
KINDS = ("validatingwebhookconfiguration", "mutatingwebhookconfiguration")
GAUGE = "jitaccess_webhook_configured"


def healthz(system: Jit) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", system.operator.liveness_port, timeout=10)
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def put_back(system: Jit, saved: dict[str, str]) -> None:
    for kind in KINDS:
        obj = json.loads(saved[kind])
        obj["metadata"].pop("resourceVersion", None)
        system.kubectl("replace", "-f", "-", input=json.dumps(obj))


def _webhooks(answer: tuple[int, dict[str, str]]) -> tuple[int, str | None]:
    """The /healthz status and its `webhooks` check (it has others: `leadership`)."""
    return answer[0], answer[1].get("webhooks")


def test_a_replaced_ca_bundle_is_seen_and_so_is_its_repair(system: Jit, tmp_path: Path) -> None:
    assert value(scrape(system), GAUGE) == 1
    assert _webhooks(healthz(system)) == (200, "configured")
    unrelated = generate_serving_files(["127.0.0.1"], tmp_path).cafile.read_bytes()
    saved = {kind: system.kubectl("get", kind, WEBHOOK_CONFIGURATION, "-o", "json").stdout for kind in KINDS}
    try:
        for kind in KINDS:
            obj = json.loads(saved[kind])
            for webhook in obj["webhooks"]:
                webhook["clientConfig"]["caBundle"] = base64.b64encode(unrelated).decode()
            obj["metadata"].pop("resourceVersion", None)
            system.kubectl("replace", "-f", "-", input=json.dumps(obj))

        refused = system.request("trust-lost", PAYMENTS, duration="1h", check=False)
        assert refused.returncode != 0
        assert "x509" in refused.stderr, refused.stderr
        # Checked every 30 s while trusted: within that, and a scrape or two.
        gauge_becomes(system, GAUGE, 0, timeout=45)
        status, body = eventually(
            lambda: (answer := healthz(system))[1]["webhooks"] != "configured" and answer, timeout=15
        )
        assert status == 200  # liveness holds: a restart meets the same caBundle
        assert "does not trust this server's certificate" in body["webhooks"], body
        log = system.operator.log_file.read_text(errors="replace")
        assert "every user's write to jitaccess objects is refused" in log
    finally:
        put_back(system, saved)

    # Checked every 5 s while not trusted: back within seconds of the repair.
    gauge_becomes(system, GAUGE, 1, timeout=20)
    eventually(lambda: _webhooks(healthz(system)) == (200, "configured"), timeout=15)
    assert "the API server can call this server again" in system.operator.log_file.read_text(errors="replace")
    system.request("trust-back", PAYMENTS, duration="30s")
    system.wait_reason("accessrequest", "trust-back", "Granted")

"""A restarted operator brings requests back into line with their grants.

The grant handler writes the grant and then its request. An operator that dies between the two
writes leaves the request behind: here the handlers run in-process, are stopped, and the grant's
half of each crash window is written by hand (no admission webhook runs in this tier, so the
admin may write status) before they start again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kopf.testing import KopfRunner

from devenv.controlplane import ControlPlane
from devenv.paths import EXAMPLES
from jitaccess.handlers.following import CHECK_SECONDS, GRACE_SECONDS
from tests.component.test_handlers import Local, prepare

LENA = "lena@example.com"


@contextmanager
def handlers_running() -> Iterator[None]:
    with KopfRunner(["run", "-A", "--standalone", "-m", "jitaccess.handlers"], timeout=60) as runner:
        yield
    assert runner.exception is None, runner.output[-3000:]
    assert "Traceback" not in runner.output, runner.output[-5000:]


@pytest.fixture
def local(control_plane: ControlPlane) -> Iterator[Local]:
    with pytest.MonkeyPatch.context() as patcher:
        emulator = prepare(control_plane, patcher)
        try:
            yield Local(control_plane, emulator)
        finally:
            with handlers_running():
                # While the operator runs, so that its finalizer lets the grants go.
                control_plane.kubectl("delete", "accessgrants,accessrequests", "--all", "--timeout=60s", check=False)
                control_plane.kubectl("delete", "entitlements,teamownerships", "--all", "--timeout=60s", check=False)
            emulator.stop()


def _write_status(local: Local, kind: str, name: str, ready: dict[str, Any], **fields: Any) -> None:
    """What the operator's status write would have left, `Ready` replaced, written by the admin."""
    status = local.get(kind, name)["status"]
    conditions = [c for c in status["conditions"] if c["type"] != "Ready"]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    conditions.append({"type": "Ready", "lastTransitionTime": stamp, "message": "", **ready})
    patch = json.dumps({"status": {"conditions": conditions, **fields}})
    local.cluster.kubectl("patch", kind, name, "--subresource=status", "--type=merge", "-p", patch)


def test_requests_left_behind_by_a_crash_catch_up_with_their_grants(local: Local) -> None:
    with handlers_running():
        local.cluster.kubectl(
            "apply", "-f", str(EXAMPLES / "01-teams.yaml"), "-f", str(EXAMPLES / "02-entitlements.yaml")
        )
        local.wait("entitlement", "prod-eng-payments", "Resolved")
        for name in ("r-expired", "r-revoked", "r-activated"):
            local.request(name, duration="1h")
        for name in ("r-expired", "r-revoked", "r-activated"):
            local.wait("accessrequest", name, "Granted")

    # The operator is down. It had ended two grants and activated a third, and died each time
    # before it wrote the request.
    _write_status(local, "accessgrant", "r-expired", {"status": "False", "reason": "Expired"})
    _write_status(
        local,
        "accessgrant",
        "r-revoked",
        {"status": "False", "reason": "Revoked"},
        revokedBy=LENA,
        revocationTime=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    _write_status(
        local,
        "accessrequest",
        "r-activated",
        {"status": "False", "reason": "Pending", "message": "approved; provisioning access"},
        expirationTime=None,
    )
    assert (local.ready("accessrequest", "r-expired") or {}).get("reason") == "Granted"
    assert (local.ready("accessrequest", "r-activated") or {}).get("reason") == "Pending"

    with handlers_running():
        timeout = GRACE_SECONDS + CHECK_SECONDS + 20
        expired = local.wait("accessrequest", "r-expired", "Expired", timeout=timeout)
        grant_expires = local.get("accessgrant", "r-expired")["status"]["expirationTime"]
        assert expired["message"] == f"access expired at {grant_expires}"
        revoked = local.wait("accessrequest", "r-revoked", "Revoked", timeout=timeout)
        assert revoked["message"] == f"access revoked by {LENA}"
        granted = local.wait("accessrequest", "r-activated", "Granted", timeout=timeout)
        activated = local.get("accessgrant", "r-activated")["status"]["expirationTime"]
        assert granted["message"] == f"access active until {activated}"
        assert local.get("accessrequest", "r-activated")["status"]["expirationTime"] == activated

        # Idempotent: once in line, nothing is written again.
        versions = {n: local.get("accessrequest", n)["metadata"]["resourceVersion"] for n in ("r-expired", "r-revoked")}
        time.sleep(GRACE_SECONDS + 2 * CHECK_SECONDS)
        after = {n: local.get("accessrequest", n)["metadata"]["resourceVersion"] for n in ("r-expired", "r-revoked")}
        assert after == versions
        events = json.loads(
            local.cluster.kubectl(
                "get", "events", "-A", "--field-selector", "involvedObject.name=r-expired,reason=Expired", "-o", "json"
            ).stdout
        )["items"]
        # The repair writes the request's status and its audit line, not an Event: a change of the
        # access is an Event on the grant alone (docs/api.md, Events), and this grant was ended by hand.
        assert events == [], "the request does not repeat its grant's Event"
        assert (local.ready("accessgrant", "r-activated") or {}).get("reason") == "Active"

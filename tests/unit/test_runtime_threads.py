"""The Runtime's threads for blocking work: a grant's work (provisioning, ending it) has threads of
its own, so it never waits behind a burst of new requests' decisions (`Runtime.run_granting`)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from typing import Any, cast

import kopf

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.handlers import deleted_requests, grants
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings


def _runtime(max_workers: int = 32) -> Runtime:
    return Runtime(Settings(max_workers=max_workers), cast(IdentityCenter, None), cast(Kube, None))


async def test_grant_work_goes_while_every_request_thread_is_taken() -> None:
    rt = _runtime(max_workers=1)
    release = threading.Event()
    busy = asyncio.ensure_future(rt.run_blocking(release.wait, 30))
    queued = asyncio.ensure_future(rt.run_blocking(lambda: "decided"))
    try:
        assert await asyncio.wait_for(rt.run_granting(lambda: "granted"), 5) == "granted"
        await asyncio.sleep(0.05)
        assert not queued.done()  # the one request thread is still taken
    finally:
        release.set()
    assert await busy is True
    assert await queued == "decided"


async def test_grant_threads_carry_the_callers_context() -> None:
    """kopf finds where to post an Event through context variables: the thread must see them."""
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker")
    marker.set("the handler's")
    assert await _runtime().run_granting(marker.get) == "the handler's"


class _Recording(Runtime):
    """Which threads each handler asked for, without running the work."""

    lanes: list[tuple[str, str]]

    async def run_blocking(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self.lanes.append(("requests", fn.__name__))

    async def run_granting(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self.lanes.append(("grants", fn.__name__))


GRANT = {
    "apiVersion": "jitaccess.dev/v1alpha1",
    "kind": "AccessGrant",
    "metadata": {"name": "g", "uid": "u-g", "annotations": {}},
    "spec": {"user": "alice@example.com", "request": "g", "entitlement": "e", "groupName": "x", "duration": "1h"},
}


async def test_the_grant_handlers_work_in_the_grant_threads() -> None:
    rt = _Recording(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    rt.lanes = []
    memo = kopf.Memo(runtime=rt)
    body = kopf.Body(GRANT)
    await grants.provision_grant(body=body, memo=memo)
    await grants.revoke_on_annotation(body=body, memo=memo)
    await grants.revoke_on_delete(body=body, memo=memo)
    assert rt.lanes == [("grants", "_provision"), ("grants", "_end_or_retry"), ("grants", "_end_or_retry")]


async def test_a_deleted_requests_grant_is_ended_in_the_grant_threads() -> None:
    rt = _Recording(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    rt.lanes = []
    await deleted_requests._revoke(rt, "g", "u-g")
    assert rt.lanes == [("grants", "end_grant")]

"""`following.repair_laggards`: one request that cannot be brought into line (say, a status write
etcd refuses) does not keep the others of its Entitlement waiting behind it."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import kopf
import pytest

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import Kube
from jitaccess.handlers import following
from jitaccess.handlers.runtime import Runtime
from jitaccess.settings import Settings


def test_a_request_that_cannot_be_repaired_does_not_hold_back_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    rt = Runtime(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    for name in ("poisoned", "fine-1", "fine-2"):
        rt.laggards.see_grant(f"g-{name}", name, f"u-{name}", "Active", "prod", now=0.0)
        rt.laggards.see_request(name, f"u-{name}", "Pending", approved=True, now=0.0)
    repaired: list[str] = []

    def repair(rt: Runtime, request: str, grant: str) -> None:
        if request == "poisoned":
            raise RuntimeError("etcdserver: request is too large")
        repaired.append(request)

    monkeypatch.setattr(following, "_repair", repair)
    memo: Any = kopf.Memo(runtime=rt)
    with pytest.raises(kopf.TemporaryError, match="1 request"):
        asyncio.run(following.repair_laggards(name="prod", memo=memo, entitlements={"prod": ()}))
    assert sorted(repaired) == ["fine-1", "fine-2"]

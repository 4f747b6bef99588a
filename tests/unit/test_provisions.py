"""A grant provisioned by its request's handler (`grants.provision_at_once`) is not provisioned
again by its own handler, which kopf starts for it meanwhile (`Runtime.provisions`); any other
outcome leaves the work to the grant's handler, as for every grant."""

from __future__ import annotations

import asyncio
import threading
from typing import cast

import kopf

from jitaccess.adapters.identitycenter import IdentityCenter
from jitaccess.adapters.kube import BY_NAME, Kube
from jitaccess.handlers import grants
from jitaccess.handlers.runtime import Provisions
from jitaccess.settings import Settings
from tests.unit.test_runtime_threads import GRANT, _Recording


async def test_the_grants_handler_waits_for_the_request_handlers_work_and_learns_its_outcome() -> None:
    provisions = Provisions()
    done = provisions.start("g")
    waiting = asyncio.ensure_future(provisions.handled("g", "u-g", timeout=5))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    threading.Thread(target=done.set_result, args=("u-g",)).start()
    assert await waiting is True
    assert await provisions.handled("g", "u-g", timeout=5) is False  # taken once


async def test_anything_but_this_very_grant_provisioned_leaves_it_to_its_handler() -> None:
    provisions = Provisions()
    provisions.start("left").set_result("")  # not provisioned there (Identity Center did not answer, say)
    assert await provisions.handled("left", "u-left", timeout=5) is False
    provisions.start("again").set_result("u-earlier")  # a grant of the same name, deleted and made again
    assert await provisions.handled("again", "u-now", timeout=5) is False
    assert await provisions.handled("unknown", "u-x", timeout=5) is False


async def test_a_waiter_that_gives_up_leaves_the_work_able_to_finish() -> None:
    provisions = Provisions()
    done = provisions.start("slow")
    assert await provisions.handled("slow", "u-slow", timeout=0.05) is False
    done.set_result("u-slow")  # no InvalidStateError: the wait did not cancel it
    assert done.result() == "u-slow"


def test_what_no_grant_handler_asked_for_is_let_go_in_time() -> None:
    provisions = Provisions(seconds=0.0)
    provisions.start("never-asked").set_result("u-1")
    provisions.start("next")
    assert list(provisions._items) == ["next"]


async def test_the_grants_handler_does_nothing_more_for_a_grant_provisioned_at_once() -> None:
    rt = _Recording(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    rt.lanes = []
    memo = kopf.Memo(runtime=rt)
    rt.provisions.start("g").set_result("u-g")
    await grants.provision_grant(body=kopf.Body(GRANT), memo=memo)
    assert rt.lanes == []
    rt.provisions.start("g").set_result("")
    await grants.provision_grant(body=kopf.Body(GRANT), memo=memo)
    assert rt.lanes == [("grants", "_provision")]


async def test_work_still_running_is_never_forgotten_so_a_late_grant_handler_still_waits_for_it() -> None:
    provisions = Provisions(seconds=0.0)
    slow = provisions.start("queued")  # a burst: waiting for the quota long after it began
    provisions.start("next")
    waiting = asyncio.ensure_future(provisions.handled("queued", "u-queued", timeout=5))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    slow.set_result("u-queued")
    assert await waiting is True


def test_ending_a_grant_waits_for_its_provisioning_in_flight() -> None:
    provisions = Provisions()
    assert provisions.wait_finished("none", timeout=5) is False
    done = provisions.start("g")
    threading.Timer(0.05, done.set_result, args=("u-g",)).start()
    assert provisions.wait_finished("g", timeout=5) is True
    assert done.done()
    assert provisions.wait_finished("g", timeout=5) is False  # over: nothing to wait for


class _Reads:
    """A Kube that only answers reads, recording them: the grant is gone by the time it is read."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def get(self, plural: str, name: str) -> None:
        self.reads.append(name)


def test_a_grant_ended_while_its_request_handler_provisions_it_is_ended_as_it_stands_after() -> None:
    # kopf hands the grant's deletion over with the body it last saw (`Provisioning`, no
    # membership): the end waits for the provisioning under way, then reads the grant afresh.
    kube = _Reads()
    rt = _Recording(Settings(), cast(IdentityCenter, None), cast(Kube, kube))
    done = rt.provisions.start("g")
    ending = threading.Thread(
        target=grants.end_grant,
        args=(rt, "g", "Revoked", {}),
        kwargs={"current": dict(GRANT), "uid": BY_NAME},
        daemon=True,
    )
    ending.start()
    ending.join(0.1)
    assert ending.is_alive() and kube.reads == []  # waiting, not ending the stale `Provisioning` body
    done.set_result("u-g")
    ending.join(5)
    assert not ending.is_alive() and kube.reads == ["g"]


async def test_a_grant_kopf_first_sees_revoked_is_revoked_even_when_provisioned_at_once() -> None:
    rt = _Recording(Settings(), cast(IdentityCenter, None), cast(Kube, None))
    rt.lanes = []
    revoked = {**GRANT, "metadata": {**GRANT["metadata"], "annotations": {"jitaccess.dev/revoked": "true"}}}
    rt.provisions.start("g").set_result("u-g")
    await grants.provision_grant(body=kopf.Body(revoked), memo=kopf.Memo(runtime=rt))
    assert rt.lanes == [("grants", "_end_or_retry")]

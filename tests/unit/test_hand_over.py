"""`jitaccess.main.HandOver`: the leader election's task is stopped once, so that its hand-over
(the controller stops, then the Lease is released) runs to its end however many parts of the
operator ask it to stop: SIGTERM's handler, then the admission part's cleanup, then `run` itself."""

from __future__ import annotations

import asyncio

from jitaccess.main import HandOver


def elector(steps: list[str]) -> asyncio.Task[None]:
    async def run() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            steps.append("controller stopping")
            await asyncio.sleep(0.1)  # the controller part takes a moment to stop
            steps.append("released")

    return asyncio.create_task(run())


async def test_asked_to_stop_three_times_the_hand_over_still_ends_with_the_release() -> None:
    steps: list[str] = []
    leading = HandOver(elector(steps))
    await asyncio.sleep(0)
    leading.let_go()  # SIGTERM
    await asyncio.sleep(0.01)
    assert steps == ["controller stopping"]
    await leading.done()  # the admission part's cleanup
    await leading.done()  # `run`'s own finally
    assert steps == ["controller stopping", "released"]


async def test_a_second_plain_cancel_would_cut_it_short() -> None:
    """What `HandOver` prevents (and what happened before it): the release never comes."""
    steps: list[str] = []
    task = elector(steps)
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert steps == ["controller stopping"]


async def test_whoever_waits_for_the_hand_over_may_be_cancelled_without_cutting_it() -> None:
    steps: list[str] = []
    leading = HandOver(elector(steps))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(leading.done())
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    await asyncio.wait_for(asyncio.gather(leading.task, return_exceptions=True), timeout=5)
    assert steps == ["controller stopping", "released"]

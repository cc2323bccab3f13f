"""component/tasks.py's InOrder: steps that read before they record keep the order they began in.

Seen in tests/federation (about one run in ten): a peer Courier's "released" report (two store
reads) was recorded after the recipient's receipt that came after it (one read), so the
sender's trace listed "received" before "released".  Real asyncio, no sleeps: each step's "read"
is a future the test completes in the order it chooses.
"""

from __future__ import annotations

import asyncio

from component.tasks import InOrder


async def test_a_step_whose_read_returns_first_waits_for_the_step_that_began_before_it() -> None:
    in_order, recorded = InOrder(), []
    loop = asyncio.get_running_loop()
    reads = {name: loop.create_future() for name in ("report", "receipt")}

    async def step(name: str) -> None:
        turn = in_order.turn()
        try:
            await reads[name]
            await turn.wait()
            recorded.append(name)
        finally:
            turn.done()

    steps = [asyncio.ensure_future(step("report")), asyncio.ensure_future(step("receipt"))]
    await asyncio.sleep(0)  # both began: the report first
    reads["receipt"].set_result(None)  # the receipt's read returns first
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert recorded == []  # it waits for the report
    reads["report"].set_result(None)
    await asyncio.gather(*steps)
    assert recorded == ["report", "receipt"]


async def test_a_step_that_failed_does_not_hold_up_the_next() -> None:
    in_order, recorded = InOrder(), []

    async def failing() -> None:
        turn = in_order.turn()
        try:
            raise RuntimeError("the store is gone")
        finally:
            turn.done()

    async def next_step() -> None:
        turn = in_order.turn()
        try:
            await turn.wait()
            recorded.append("next")
        finally:
            turn.done()

    first = asyncio.ensure_future(failing())
    second = asyncio.ensure_future(next_step())
    results = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 5)
    assert isinstance(results[0], RuntimeError)
    assert recorded == ["next"]

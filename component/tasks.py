"""Background tasks, one way: :func:`spawn` for short jobs (tracked, failures logged).  What
runs at a time, or again and again, is a job of the one scheduler (component/scheduler.py).

A bare ``asyncio.create_task`` whose exception nobody reads ends its work silently — the SMS
outbox once stopped sending every SMS after one error that way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("component.tasks")


def spawn(coro: Coroutine[Any, Any, Any], tasks: set[asyncio.Task[Any]], what: str) -> asyncio.Task[Any]:
    """Run *coro* in the background, kept in *tasks* until it ends; its failure is logged."""
    task = asyncio.ensure_future(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    task.add_done_callback(lambda t: _log_failure(t, what))
    return task


class InOrder:
    """Steps that read the store before they record, applied in the order they began.

    Two background steps that each await a read and then record a hop (a peer's report, a
    receipt seen for the same message) would otherwise record in the order their reads
    returned — which depends on how many reads each makes, not on which came first.  A step
    takes its turn when it begins (:meth:`turn`), reads, then awaits its turn, records,
    and :meth:`Turn.done` lets the next one go (always: in a ``finally``)."""

    def __init__(self) -> None:
        self._last: asyncio.Future[None] | None = None

    def turn(self) -> Turn:
        before, self._last = self._last, asyncio.get_running_loop().create_future()
        return Turn(before, self._last)


class Turn:
    def __init__(self, before: asyncio.Future[None] | None, mine: asyncio.Future[None]) -> None:
        self._before, self._mine = before, mine

    async def wait(self) -> None:
        """Until every step that began before this one is done."""
        if self._before is not None and not self._before.done():
            await asyncio.shield(self._before)

    def done(self) -> None:
        if not self._mine.done():
            self._mine.set_result(None)


def _log_failure(task: asyncio.Task[Any], what: str) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", what, exc_info=task.exception())


__all__ = ["InOrder", "Turn", "spawn"]

"""Background tasks, one way: :func:`spawn` for short jobs (tracked, failures logged) and
:func:`supervise` for loops that must keep running (restarted with back-off, logged).

A bare ``asyncio.create_task`` whose exception nobody reads ends its work silently — the SMS
outbox once stopped sending every SMS after one error that way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger("component.tasks")


def spawn(coro: Coroutine[Any, Any, Any], tasks: set[asyncio.Task[Any]], what: str) -> asyncio.Task[Any]:
    """Run *coro* in the background, kept in *tasks* until it ends; its failure is logged."""
    task = asyncio.ensure_future(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    task.add_done_callback(lambda t: _log_failure(t, what))
    return task


def _log_failure(task: asyncio.Task[Any], what: str) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", what, exc_info=task.exception())


async def supervise(
    name: str,
    loop: Callable[[], Awaitable[None]],
    stopping: Callable[[], bool],
    first_delay: float = 0.5,
    max_delay: float = 30.0,
) -> None:
    """Run *loop* until *stopping()*; when it raises (or returns early) log it and run it again
    after a back-off that doubles up to *max_delay* and starts over once a run lasted a minute."""
    delay = first_delay
    while not stopping():
        started = time.monotonic()
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; restarting it in %.1f s", name, delay)
        else:
            if stopping():
                return
            log.error("%s ended on its own; restarting it in %.1f s", name, delay)
        if time.monotonic() - started > 60:
            delay = first_delay
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)


__all__ = ["spawn", "supervise"]

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


def _log_failure(task: asyncio.Task[Any], what: str) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", what, exc_info=task.exception())


__all__ = ["spawn"]

"""The retention timer: once an hour, closed messages older than ``store.retention_days`` go.

Supervised (component/tasks.py): a failing purge is logged and retried with back-off, and
never touches a message still at the server (see component/store/retention.py).
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..store import Store
from ..tasks import supervise

log = logging.getLogger(__name__)


class Retention:
    """Deletes closed messages and their hops after *days* (0: keep them for ever)."""

    def __init__(self, store: Store, days: float, interval: float = 3600.0) -> None:
        self.store = store
        self.days = days
        self.interval = interval
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.days > 0:
            self._task = asyncio.create_task(
                supervise("The retention purge", self._run, lambda: self._stopping), name="courier-retention"
            )

    async def purge_once(self) -> int:
        """Delete what is past retention now; how many messages went."""
        n = await self.store.retention.purge(time.time() - self.days * 86400)
        if n:
            log.info("Retention: %d closed messages older than %g days deleted with their hops", n, self.days)
        return n

    async def _run(self) -> None:
        while not self._stopping:
            await self.purge_once()
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

"""The retention timer: once an hour, closed messages older than ``store.retention_days`` go.

A periodic job on the app's scheduler (component/scheduler.py), ``("retention",)``: the
first purge at start, the next an interval after each; a failing purge is logged and tried
again with back-off, and never touches a message still at the server (see
component/store/retention.py).
"""

from __future__ import annotations

import logging
import time

from ..scheduler import Scheduler
from ..store import Store

log = logging.getLogger(__name__)

#: The retention's periodic job on the scheduler.
TIMER = ("retention",)


class Retention:
    """Deletes closed messages and their hops after *days* (0: keep them for ever)."""

    def __init__(self, store: Store, days: float, scheduler: Scheduler, interval: float = 3600.0) -> None:
        self.store = store
        self.days = days
        self.scheduler = scheduler
        self.interval = interval

    def start(self) -> None:
        if self.days > 0:
            self.scheduler.every(self.interval, TIMER, self.purge_once)

    async def purge_once(self) -> int:
        """Delete what is past retention now; how many messages went."""
        n = await self.store.retention.purge(time.time() - self.days * 86400)
        if n:
            log.info("Retention: %d closed messages older than %g days deleted with their hops", n, self.days)
        return n

    async def stop(self) -> None:
        await self.scheduler.end(TIMER)

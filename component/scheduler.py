"""The one scheduler: every timer of Courier runs here — the release of messages whose
undo-send window ends (the pipeline's holds), the drafts' time triggers, the SMS outbox
(due entries, retries with back-off), the retention purge and federation's re-send of
unacknowledged hop reports.

- **keyed timers**: :meth:`Scheduler.at` sets (or moves) the one timer of a key,
  :meth:`~Scheduler.cancel` drops it, :meth:`~Scheduler.every` runs a job periodically.  A
  key is a tuple whose first item names the feature (``("release", seq)``,
  ``("drafts",)``, ``("sms", "outbox")``, ``("retention",)``); the log names a job by it.
- **wall-clock due times, monotonic waits**: a due time is a :func:`time.time` instant, as
  the store keeps it (due times come back from the store on start: held messages' ends of
  window, drafts' ``due_at``, SMS entries' ``next_at``).  The scheduler waits for the
  earliest one with ``loop.call_at`` (the monotonic clock), at most :data:`MAX_WAIT` at a
  time, and looks at the wall clock again when it wakes: a job never runs before its
  time, and a step of the wall clock (NTP, a suspended machine) delays one by at most
  :data:`MAX_WAIT`.
- **one error boundary**: every job runs under it.  A job that raises is logged with its
  name and the scheduler goes on; a job given ``retry`` (and every periodic job) runs
  again after a back-off that doubles up to :data:`RETRY_MAX`.  A job may be a coroutine
  function: it runs as a task, one at a time per key — a key due again while its job runs
  runs once more right after it.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("component.scheduler")

#: The longest the scheduler waits before it looks at the wall clock again.
MAX_WAIT = 60.0
#: The longest back-off between attempts of a failing job.
RETRY_MAX = 30.0

#: A job: a function, or a coroutine function (its coroutine runs as a task).
Job = Callable[[], object]


@dataclass(slots=True)
class _Entry:
    when: float
    job: Job
    seq: int
    retry: float | None  # first back-off after a failure; None: a failure is only logged
    failures: int = 0


def describe(key: Hashable) -> str:
    """A job's name in the log: its key's items, ``release 42``."""
    return " ".join(map(str, key)) if isinstance(key, tuple) else str(key)


class Scheduler:
    """Keyed timers on wall-clock due times, one loop timer for the earliest, one error boundary."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock  # the wall clock due times are read on
        self._entries: dict[Hashable, _Entry] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._seq = 0
        self._handle: asyncio.TimerHandle | None = None
        self._armed: float | None = None  # the due time the loop timer was set for
        self._running: dict[Hashable, asyncio.Task[Any]] = {}
        self._again: dict[Hashable, _Entry] = {}  # due while its job was running: run after it
        self._cancelled: set[Hashable] = set()  # cancelled while running: the job may not re-arm it
        self._periodic: dict[Hashable, Job] = {}
        self._stopped = False

    # -- timers ---------------------------------------------------------------------

    def at(self, when: float, key: Hashable, job: Job, *, earliest: bool = False, retry: float | None = None) -> None:
        """Run *job* at *when* (a :func:`time.time` instant; past: at once) under *key*,
        replacing the key's timer — or, with *earliest*, only if that makes it ring sooner."""
        if self._stopped or key in self._cancelled:
            return
        current = self._entries.get(key)
        if earliest and current is not None and current.when <= when:
            return
        self._put(key, _Entry(when, job, 0, retry))

    def soon(self, key: Hashable, job: Job, *, retry: float | None = None) -> None:
        """Run *key*'s job as soon as possible (an earlier due time stays)."""
        self.at(self._clock(), key, job, earliest=True, retry=retry)

    def due(self, key: Hashable) -> float | None:
        """When *key*'s timer rings (None: it has none)."""
        entry = self._entries.get(key)
        return None if entry is None else entry.when

    def cancel(self, key: Hashable) -> bool:
        """Drop *key*'s timer (and, if its job is running, any timer that job sets); whether it had one."""
        self._periodic.pop(key, None)
        self._again.pop(key, None)
        if key in self._running:
            self._cancelled.add(key)
        return self._entries.pop(key, None) is not None

    def cancel_group(self, group: str) -> None:
        """Drop every timer whose key starts with *group* (a feature's stop)."""
        for key in [k for k in self._entries if isinstance(k, tuple) and k and k[0] == group]:
            self.cancel(key)

    def every(self, interval: float, key: Hashable, job: Job, *, first: float | None = None) -> None:
        """Run *job* at *first* (None: now), then *interval* seconds after each run ends; a
        failing run is logged and tried again with back-off (0.5 s, doubling)."""

        async def periodic() -> None:
            result = job()
            if inspect.isawaitable(result):
                await result
            if self._periodic.get(key) is periodic:
                self._put(key, _Entry(self._clock() + interval, periodic, 0, 0.5))

        self._periodic[key] = periodic
        self._put(key, _Entry(self._clock() if first is None else first, periodic, 0, 0.5))

    # -- running ----------------------------------------------------------------------

    def running(self, key: Hashable) -> bool:
        return key in self._running or key in self._again

    async def wait(self, key: Hashable) -> None:
        """Until *key*'s job (and a run due meanwhile) is no longer running."""
        while (task := self._running.get(key)) is not None:
            await asyncio.wait({task})

    async def end(self, key: Hashable) -> None:
        """Cancel *key*'s timer and its running job, and wait until that job is gone."""
        self.cancel(key)
        task = self._running.get(key)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})

    def stop(self) -> None:
        """Ring no more (jobs already running go on: :meth:`close` ends them)."""
        self._stopped = True
        self._entries.clear()
        self._heap.clear()
        self._again.clear()
        self._periodic.clear()
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._armed = None, None

    async def close(self) -> None:
        """Stop, cancel the jobs still running and wait for them."""
        self.stop()
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # -- the loop timer -------------------------------------------------------------------

    def _put(self, key: Hashable, entry: _Entry) -> None:
        if self._stopped:
            return
        self._seq += 1
        entry.seq = self._seq
        self._entries[key] = entry
        heapq.heappush(self._heap, (entry.when, entry.seq, key))
        if len(self._heap) > 2 * len(self._entries) + 1024:  # many cancelled: rebuild
            self._heap = [(e.when, e.seq, k) for k, e in self._entries.items()]
            heapq.heapify(self._heap)
        if self._armed is None or entry.when < self._armed:
            self._arm()

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._armed = None, None
        while self._heap and self._stale(self._heap[0]):
            heapq.heappop(self._heap)
        if not self._heap or self._stopped:
            return
        when = self._heap[0][0]
        loop = asyncio.get_running_loop()
        delay = min(max(0.0, when - self._clock()), MAX_WAIT)
        self._armed = when
        self._handle = loop.call_at(loop.time() + delay, self._ring)

    def _stale(self, item: tuple[float, int, Hashable]) -> bool:
        entry = self._entries.get(item[2])
        return entry is None or entry.seq != item[1]

    def _ring(self) -> None:
        self._handle, self._armed = None, None
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:  # (a job may set timers: self._heap each time)
            item = heapq.heappop(self._heap)
            if self._stale(item):
                continue
            key = item[2]
            self._run(key, self._entries.pop(key))
        self._arm()

    def _run(self, key: Hashable, entry: _Entry) -> None:
        """The error boundary: run *entry*'s job; a failure is logged with its name (and retried)."""
        if key in self._running:
            self._again[key] = entry
            return
        try:
            result = entry.job()
        except Exception:
            self._failed(key, entry, None)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._running[key] = task
            task.add_done_callback(lambda t: self._done(key, entry, t))

    def _done(self, key: Hashable, entry: _Entry, task: asyncio.Task[Any]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        cancelled = key in self._cancelled
        self._cancelled.discard(key)
        exc = None if task.cancelled() else task.exception()
        if exc is not None and cancelled:
            log.error("%s failed", describe(key), exc_info=exc)  # cancelled meanwhile: not retried
        elif exc is not None:
            self._failed(key, entry, exc)
        again = self._again.pop(key, None)
        if again is not None and not self._stopped:
            self._run(key, again)

    def _failed(self, key: Hashable, entry: _Entry, exc: BaseException | None) -> None:
        exc_info = exc if exc is not None else True
        if entry.retry is None or self._stopped or key in self._entries:
            log.error("%s failed", describe(key), exc_info=exc_info)
            return
        delay = min(entry.retry * 2**entry.failures, RETRY_MAX)
        log.error("%s failed; trying again in %.1f s", describe(key), delay, exc_info=exc_info)
        self._put(key, _Entry(self._clock() + delay, entry.job, 0, entry.retry, entry.failures + 1))


__all__ = ["MAX_WAIT", "RETRY_MAX", "Scheduler", "describe"]

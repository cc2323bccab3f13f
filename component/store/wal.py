"""SQLite's write-ahead log: checkpointed off the commit path, and kept bounded.

SQLite's automatic checkpoint would run inside a commit and stall that batch (p99), so it is
off; a second connection copies the log into the database every second instead.  That alone
does not bound the log: it only starts over when a checkpoint has copied *every* frame at the
moment the next transaction begins, and under sustained traffic commits keep landing while
the checkpoint runs (measured: 318 MB after 9 s of one-at-a-time hand-offs; each commit then
extended the file, and the kernel's zeroing of the new pages alone was 11 % of Courier's
CPU).  Past :data:`WAL_LIMIT` the writer runs the checkpoint itself, between two of its
commits, when no frame can be added meanwhile; the next commit starts the log over, and
SQLite's journal_size_limit truncates the file back to the limit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

import aiosqlite

from .. import metrics
from .engine import DB_ERRORS

log = logging.getLogger(__name__)

#: The size the write-ahead log may reach before the writer checkpoints it itself (bytes).
WAL_LIMIT = 64 << 20


class WalKeeper:
    """The write-ahead log of a SQLite file store (*path*), written through *conn* under *tx*."""

    def __init__(self, conn: aiosqlite.Connection, path: str, tx: asyncio.Lock) -> None:
        self._conn = conn
        self._tx = tx
        self._path = path
        self._file = f"{path}-wal"
        self.limit = WAL_LIMIT
        self._threshold = WAL_LIMIT  # raised after a catch-up while the log could not start over
        self.catch_ups = 0  # checkpoints the writer ran itself (tests, benchmarks)
        self._ckpt_conn: aiosqlite.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, commits: Callable[[], int]) -> None:
        """Turn the automatic checkpoint off and checkpoint every second while *commits* () moves."""
        await self._conn.execute("PRAGMA wal_autocheckpoint=0")
        await self.set_limit(WAL_LIMIT)
        self._ckpt_conn = await aiosqlite.connect(self._path, isolation_level=None)
        self._task = asyncio.create_task(self._loop(commits), name="courier-store-checkpoint")

    async def set_limit(self, size: int) -> None:
        """Keep the log to about *size* bytes (:data:`WAL_LIMIT`)."""
        self.limit = self._threshold = size
        await self._conn.execute(f"PRAGMA journal_size_limit={int(size)}")

    async def _loop(self, commits: Callable[[], int], interval: float = 1.0) -> None:
        assert self._ckpt_conn is not None
        done = 0
        while True:
            await asyncio.sleep(interval)
            if commits() != done:
                done = commits()
                try:
                    await self._ckpt_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except DB_ERRORS as exc:
                    log.warning("WAL checkpoint failed (will retry): %s", exc)

    async def after_commit(self) -> None:
        """Past the limit, checkpoint the log on the writer's own connection (in aiosqlite's
        thread: the event loop goes on parsing meanwhile; the writer waits, between two
        commits, so that no frame is added while it runs and the log can start over)."""
        try:
            size = os.stat(self._file).st_size
        except OSError:
            return
        if size <= self._threshold:
            if size <= self.limit:
                self._threshold = self.limit
            return
        started = time.perf_counter()
        async with self._tx:
            try:
                async with self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)") as cur:
                    row = await cur.fetchone()
            except DB_ERRORS as exc:
                log.warning("WAL checkpoint by the writer failed (will retry): %s", exc)
                return
        busy, frames, copied = row if row else (1, -1, -1)
        if busy:  # the checkpoint connection's pass is running: the next commit tries again
            return
        self.catch_ups += 1
        metrics.wal_catch_up(time.perf_counter() - started)
        if frames != copied:
            log.info("WAL at %d bytes: %d of %d frames checkpointed (a read holds the rest)", size, copied, frames)
        # Not again before the log has grown by another quarter, should it not start over (a
        # read on an older snapshot holds it): every commit would checkpoint meanwhile.
        self._threshold = size + self.limit // 4

    async def close(self) -> None:
        """Stop the checkpoints and leave an empty log (the writer has committed its last)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._ckpt_conn is not None:
            try:
                await self._ckpt_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except DB_ERRORS as exc:  # a full or read-only disk: the WAL stays, and is replayed at start
                log.warning("WAL checkpoint at shutdown failed: %s", exc)
            await self._ckpt_conn.close()

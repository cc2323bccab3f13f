"""aiosqlite's connection, shared with the event loop for small commits.

A commit through aiosqlite's thread is two thread switches: the loop hands the work to the
thread, the thread wakes the loop with the result.  On a busy machine either wake-up can be
late (measured on this project's 2-core machine, one message at a time across two servers:
80-180 us each at the median, milliseconds at p99; the commit's own SQLite work ~200 us;
the store's commit histogram, ``courier_store_commit_seconds``, shows it).  A small commit
(``INLINE_ROWS``: a message or two, the latency case) therefore runs on the event loop
itself, on the *same* sqlite3 connection, whenever aiosqlite's thread is not using it at
that moment; larger commits (bursts) still go to the thread, where SQLite runs beside the
parsing of the next stanzas.

One connection, not two: a second writer connection was tried (and reverted) — in WAL mode a
write on one connection fails at once with 'database is locked' while the other holds a read
snapshot.  With one connection there is no second writer, and the transactions stay in the
one order the write loop gives them.

Mutual exclusion is exact: every function aiosqlite runs on its thread runs under
:attr:`SharedConnection.lock` (aiosqlite queues all of them through ``Connection._execute``,
its cursors' too), and the loop runs a commit only when it takes that lock without waiting.
aiosqlite's own close is not queued that way; the store closes the connection only after its
writer, the one user of the inline path, has finished.

This wraps a private method of aiosqlite (``Connection._execute``, 0.20-0.22) and uses its
private ``_connection``, as :meth:`Store._transaction` already did: tests/store/test_shared.py
fails at once if either changes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import aiosqlite

#: A commit of at most this many rows may run on the event loop (a one-message hand-off is
#: 3-4 rows: the message, its hops, the outbox entry of its release).
INLINE_ROWS = 64


class SharedConnection:
    """The sqlite3 connection behind an aiosqlite connection, usable on the event loop while
    aiosqlite's thread is idle.  The connection must be opened with ``check_same_thread=False``."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        raw = conn._connection
        if not isinstance(raw, sqlite3.Connection):
            raise TypeError("aiosqlite connection not open")
        self.raw = raw
        self.lock = threading.Lock()
        self.inline = 0  # commits run on the event loop (tests, benchmarks)
        queued = conn._execute

        async def execute(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            def locked() -> Any:
                with self.lock:
                    return fn(*args, **kwargs)

            return await queued(locked)

        conn._execute = execute  # type: ignore[method-assign]

    def try_run(self, work: Callable[[sqlite3.Connection], None]) -> bool:
        """Run *work* on the raw connection now, on the calling (event loop) thread, if
        aiosqlite's thread is not using the connection; False (nothing done) if it is.
        *work*'s exception propagates (the lock is released)."""
        if not self.lock.acquire(blocking=False):
            return False
        try:
            work(self.raw)
        finally:
            self.lock.release()
        self.inline += 1
        return True

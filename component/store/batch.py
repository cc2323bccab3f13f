"""The group commit's unit: the writes of one commit and the effects that wait for it; and the
direct path of a small commit on SQLite."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: A commit of at most this many rows (SQLite file) runs on the event loop's own connection, at
#: once: a message or two when the writer is idle, the latency case.  Through aiosqlite's thread
#: it is two thread switches, each a wake-up the OS may delay on a busy machine; larger commits
#: (bursts) still go to that thread, where SQLite runs beside the parsing of the next stanzas.
DIRECT_ROWS = 64


@dataclass
class Segment:
    """Queued writes of one commit, and the effects that wait for it."""

    inserts: list[tuple] = field(default_factory=list)
    hops: list[tuple] = field(default_factory=list)
    updates: list[tuple] = field(default_factory=list)
    absorbed: list[tuple] = field(default_factory=list)
    notices: list[tuple] = field(default_factory=list)
    outbox: list[tuple] = field(default_factory=list)  # unconfirmed sends (store/outbox.py)
    peer_tracks: list[tuple] = field(default_factory=list)  # messages tracked at a peer (store/peers.py)
    callbacks: list[Callable[[], None]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.inserts or self.hops or self.updates or self.absorbed or self.notices or self.outbox
                    or self.peer_tracks or self.callbacks)  # fmt: skip


def direct_connection(path: Path | str, synchronous: str) -> sqlite3.Connection:
    """The event loop's own connection for small commits: the same settings as the main one
    (opening.py), no automatic checkpoint (the checkpointer does it), and never waiting for a
    lock (busy: the commit goes through aiosqlite's thread instead)."""
    direct = sqlite3.connect(path, isolation_level=None, timeout=0)
    for pragma in (f"synchronous={synchronous.upper()}", "foreign_keys=ON", "wal_autocheckpoint=0"):
        direct.execute(f"PRAGMA {pragma}")
    return direct


def direct_transaction(direct: sqlite3.Connection, steps: list[tuple[str, list]]) -> bool:
    """One transaction of *steps* on *direct*, on the event loop: False (nothing done) when the
    write lock is taken (a write of another connection under way): the caller's path then."""
    try:
        direct.execute("BEGIN IMMEDIATE")
    except sqlite3.Error:
        return False
    try:
        for sql, rows in steps:
            direct.executemany(sql, rows)
        direct.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            direct.execute("ROLLBACK")
        raise
    return True

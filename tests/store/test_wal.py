"""SQLite's write-ahead log stays bounded under sustained commits (component/store/wal.py).

The checkpoint connection alone cannot start the log over while commits keep landing during
its pass; the writer checkpoints it itself, between two commits, once it passes the limit."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from component.delivery.states import Hop, State
from component.store import Store
from tests import storeview
from tests.store.rows import T0, flush, row

pytestmark = pytest.mark.sqlite_only

LIMIT = 256 << 10
BODY = "x" * 3000  # in the body and the stanza, with the hops and indexes: some 40 KiB of log a commit


def wal_size(db: Path) -> int:
    try:
        return Path(f"{db}-wal").stat().st_size
    except FileNotFoundError:
        return 0


async def commit_one(s: Store, seq: int) -> None:
    s.queue_message(row(seq, body=BODY))
    s.queue_hop(seq, Hop("accepted", State.ACCEPTED, T0 + seq, "shakespeare.lit"))
    await flush(s)


async def test_one_commit_after_another_keeps_the_log_near_its_limit_and_loses_nothing(db: Path) -> None:
    s = await Store.open(db)
    try:
        assert s.wal is not None
        await s.wal.set_limit(LIMIT)
        await commit_one(s, 1)  # the first commit also carries the schema's creation
        largest = 0
        for seq in range(2, 601):  # some 24 MB of log without the bound
            await commit_one(s, seq)
            largest = max(largest, wal_size(db))
        # the limit, the quarter it may grow by before a second try, and the commit that crossed it
        assert largest < LIMIT + LIMIT // 4 + (64 << 10), largest
        assert s.wal.catch_ups >= 3
    finally:
        await s.close()
    with storeview.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 600


async def test_a_read_holding_the_log_does_not_make_every_commit_checkpoint(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A reader on an old snapshot keeps the log from starting over: the writer tries again
    only each time the log has grown by another quarter of the limit, and once the reader is
    gone the log comes back under the limit."""
    s = await Store.open(db)
    reader = sqlite3.connect(db, isolation_level=None)
    try:
        assert s.wal is not None
        await s.wal.set_limit(LIMIT)
        await commit_one(s, 1)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM messages").fetchone()  # a snapshot held from here on
        with caplog.at_level(logging.INFO, logger="component.store"):
            for seq in range(2, 202):
                await commit_one(s, seq)
        grown = wal_size(db)
        assert grown > 2 * LIMIT  # held: the log could not start over
        tries = s.wal.catch_ups
        assert 1 <= tries <= (grown - LIMIT) // (LIMIT // 4) + 1
        assert any("a read holds the rest" in r.getMessage() for r in caplog.records)
        reader.execute("COMMIT")
        for seq in range(202, 262):
            await commit_one(s, seq)
        assert wal_size(db) < LIMIT + LIMIT // 4 + (64 << 10)
        assert s.wal.catch_ups > tries
    finally:
        reader.close()
        await s.close()

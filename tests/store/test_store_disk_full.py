"""The SQLite store on a small tmpfs that really fills up: both commit paths (the direct one on
the event loop's own connection, DIRECT_ROWS rows at most, and aiosqlite's thread for larger
ones) fail with SQLITE_FULL, then recover for good once space returns — no second episode of
"cannot commit" while the checkpointer copies the WAL into the database file."""

from __future__ import annotations

import asyncio

import pytest

from component.store import Store, StoreUnavailable
from component.store.batch import DIRECT_ROWS
from tests.faults.conftest import SmallDisk, small_disk  # noqa: F401  (the fixture: a 32 MB tmpfs)
from tests.store.test_store import count, flush, row

pytestmark = pytest.mark.sqlite_only  # faults of SQLite's own disk


async def test_both_commit_paths_recover_for_good_after_the_disk_was_full(small_disk: SmallDisk) -> None:  # noqa: F811
    disk = small_disk
    db = disk.path / "courier.sqlite"
    store = await Store.open(db)
    try:
        store.flush_patience = 0.5
        for seq in range(1, 101):
            store.queue_message(row(seq, body="kept"))
        await flush(store)
        await asyncio.sleep(1.2)  # one checkpoint: the database file holds them
        disk.fill()
        small = [row(seq, body="x" * 150_000) for seq in range(101, 103)]  # the direct path
        large = [row(seq, body="y" * 10_000) for seq in range(103, 103 + DIRECT_ROWS)]  # the thread's
        for m in small:  # a commit of the direct path fails first, and is retried alone
            store.queue_message(m)
        with pytest.raises(StoreUnavailable):
            await store.flush()
        for m in large:  # then one of the thread's, behind it
            store.queue_message(m)
        with pytest.raises(StoreUnavailable):
            await store.flush()
        assert store.failing and "full" in store.failure and count(db, "messages") == 100
        disk.free()
        store.flush_patience = 3.0  # the next retry comes within its delay (at most 2 s)
        await flush(store)
        assert count(db, "messages") == 102 + DIRECT_ROWS
        # Afterwards: small and large commits alternate while the checkpointer runs (every
        # second): each is committed, none fails again.
        episodes = 0
        for turn in range(8):
            for m in small if turn % 2 else small + large:
                store.queue_update(m)
            await flush(store)
            episodes += store.failing
            await asyncio.sleep(0.3)
        assert episodes == 0 and not store.failing and store.failure == ""
    finally:
        await store.close()

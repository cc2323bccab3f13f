"""Small commits on the event loop, on aiosqlite's own connection (component/store/shared.py)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import aiosqlite
import pytest

from component.delivery.states import Hop, State
from component.store import Store
from component.store.shared import INLINE_ROWS, SharedConnection
from tests import storeview
from tests.store.rows import T0, TIMEOUT, flush, row

pytestmark = pytest.mark.sqlite_only


def committed(path: Path) -> int:
    with storeview.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]


async def test_a_one_message_commit_runs_on_the_loop_and_is_durable_when_its_callback_runs(db: Path) -> None:
    s = await Store.open(db)
    try:
        assert s._shared is not None
        before = s._shared.inline
        seen: list[tuple[str, int]] = []
        s.queue_message(row(1))
        s.queue_hop(1, Hop("accepted", State.ACCEPTED, T0 + 1, "shakespeare.lit"))
        s.after_commit(lambda: seen.append((threading.current_thread().name, committed(db))))
        await flush(s)
        assert s._shared.inline == before + 1
        assert seen == [(threading.main_thread().name, 1)]  # on the loop's thread, and readable elsewhere
    finally:
        await s.close()


async def test_a_burst_goes_through_aiosqlites_thread(db: Path) -> None:
    s = await Store.open(db)
    try:
        assert s._shared is not None
        before = s._shared.inline
        for seq in range(1, INLINE_ROWS + 2):  # one commit of more than INLINE_ROWS rows
            s.queue_message(row(seq))
        await flush(s)
        assert s._shared.inline == before
        assert committed(db) == INLINE_ROWS + 1
    finally:
        await s.close()


async def test_a_commit_while_aiosqlites_thread_is_busy_waits_for_it_and_keeps_the_order(db: Path) -> None:
    """aiosqlite's thread in the middle of a read: the small commit does not touch the
    connection meanwhile (it goes to the thread, after the read), and nothing is lost."""
    s = await Store.open(db)
    release = threading.Event()
    started = threading.Event()
    conn = s._conn
    assert isinstance(conn, aiosqlite.Connection) and s._shared is not None

    def slow_read() -> int:
        started.set()
        release.wait(TIMEOUT)
        return s._shared.raw.execute("SELECT COUNT(*) FROM messages").fetchone()[0]  # type: ignore[union-attr]

    try:
        before = s._shared.inline
        read = asyncio.ensure_future(conn._execute(slow_read))
        await asyncio.to_thread(started.wait, TIMEOUT)
        s.queue_message(row(1))
        done = asyncio.ensure_future(flush(s))
        async with asyncio.timeout(TIMEOUT):  # the writer queued its commit behind the read
            while conn._tx.qsize() == 0:
                await asyncio.sleep(0.001)
        assert not done.done() and committed(db) == 0
        release.set()
        assert await read == 0  # the read ran first, on the thread
        await done
        assert committed(db) == 1 and s._shared.inline == before
    finally:
        release.set()
        await s.close()


async def test_every_call_aiosqlite_queues_runs_under_the_lock(tmp_path: Path) -> None:
    """The wrapper is in place: what aiosqlite runs on its thread (a cursor's fetch included)
    holds the lock the loop's commits take.  Fails at once if aiosqlite stops queueing its
    calls through ``Connection._execute``."""
    conn = await aiosqlite.connect(tmp_path / "shared.sqlite", isolation_level=None, check_same_thread=False)
    try:
        shared = SharedConnection(conn)
        held: list[bool] = []
        await conn._execute(lambda: held.append(shared.lock.locked()))
        async with conn.execute("SELECT 1") as cur:
            assert await cur.fetchone() == (1,)
        assert held == [True]
        assert shared.try_run(lambda raw: held.append(raw.execute("SELECT 2").fetchone() == (2,)))
        assert held == [True, True] and not shared.lock.locked()
    finally:
        await conn.close()

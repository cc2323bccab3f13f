"""The store facade on a throw-away database: schema, group commit, durability, reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from component.delivery.states import Hop, State
from component.store import Store, StoreUnavailable
from component.store.opening import migrations
from tests import storeview
from tests.store.rows import JULIET, ROMEO, T0, TIMEOUT, flush, row

BENVOLIO = "benvolio@montague.lit"


def other_conn(path: Path | str) -> Any:
    """A second, independent connection to the same store (what a crash would leave)."""
    return storeview.connect(path)


def count(path: Path, table: str) -> int:
    with other_conn(path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


# -- schema -------------------------------------------------------------------


@pytest.mark.sqlite_only
async def test_migrations_create_schema_and_set_user_version(db: Path) -> None:
    s = await Store.open(db)
    await s.close()
    latest = max(n for n, _ in migrations("sqlite"))
    assert latest >= 1
    with other_conn(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"messages", "hops", "absorbed_handoffs", "user_settings"} <= tables


@pytest.mark.sqlite_only
async def test_reopening_does_not_reapply_migrations(db: Path) -> None:
    s = await Store.open(db)
    s.queue_message(row(1))
    await s.close()
    # A re-applied 0001 would fail on CREATE TABLE (or, if it did not, lose nothing
    # visible), so check both that opening works and that the data is intact.
    s = await Store.open(db)
    try:
        assert await s.max_seq() == 1
    finally:
        await s.close()
    with other_conn(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == max(n for n, _ in migrations("sqlite"))


# -- durability: callbacks after commit -----------------------------------------


async def test_after_commit_runs_only_once_rows_are_readable_elsewhere(store: Store, db: Path) -> None:
    seen: list[tuple[int, int, int, str]] = []

    def check() -> None:
        with other_conn(db) as conn:
            seen.append(
                (
                    conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0],
                    conn.execute("SELECT COUNT(*) FROM hops").fetchone()[0],
                    conn.execute("SELECT COUNT(*) FROM absorbed_handoffs").fetchone()[0],
                    conn.execute("SELECT state FROM messages WHERE seq=1").fetchone()[0],
                )
            )

    m1, m2 = row(1), row(2)
    store.queue_message(m1)
    store.queue_hop(1, Hop("accepted", State.ACCEPTED, T0 + 1, "shakespeare.lit"))
    store.queue_message(m2)
    m1.state = State.HELD
    store.queue_update(m1)
    store.queue_absorbed("hid-edit-0001", 2, "edited", T0 + 3)
    store.after_commit(check)
    assert seen == []  # never synchronously, before any commit
    assert count(db, "messages") == 0
    await flush(store)
    assert seen == [(2, 1, 1, "held")]


async def test_after_commit_waits_for_every_batch_queued_before_it(db: Path) -> None:
    s = await Store.open(db, batch_max=10)
    seen: list[int] = []
    try:
        for seq in range(1, 26):
            s.queue_message(row(seq))
        s.after_commit(lambda: seen.append(count(db, "messages")))
        await flush(s)
    finally:
        await s.close()
    assert seen == [25]


async def test_after_callbacks_runs_once_after_a_commits_callbacks_and_not_for_other_commits(
    store: Store, db: Path
) -> None:
    """The route's flush of batched acknowledgements (app.py) is hooked here: it must come
    after every callback of the commit (they queue the acks), once, and only for commits
    that had callbacks."""
    seen: list[str] = []
    store.after_callbacks = lambda: seen.append(f"flush after {count(db, 'messages')} rows")

    async def committed(*callbacks: Callable[[], None]) -> None:
        done = asyncio.Event()
        for callback in callbacks:
            store.after_commit(callback)
        store.after_commit(done.set)
        await asyncio.wait_for(done.wait(), TIMEOUT)

    store.queue_message(row(1))
    store.queue_message(row(2))
    await committed(lambda: seen.append("ack 1"), lambda: seen.append("ack 2"))
    assert seen == ["ack 1", "ack 2", "flush after 2 rows"]
    seen.clear()
    store.queue_message(row(3))  # a commit without callbacks: no flush for it
    for _ in range(200):
        if count(db, "messages") == 3:
            break
        await asyncio.sleep(0.01)
    assert count(db, "messages") == 3
    await committed()  # a commit of a callback alone, after row 3's
    assert seen == ["flush after 3 rows"]


async def test_a_refused_operation_is_dropped_alone_and_the_valid_ones_are_kept(store: Store, db: Path) -> None:
    """A bad row (a PRIMARY KEY violation: a bug) used to take its whole batch with it, valid
    rows included, and the callbacks waiting on them never ran."""
    called: list[str] = []
    store.queue_message(row(1))
    await flush(store)
    store.queue_message(row(1, hid="hid-other"))  # same seq: PRIMARY KEY violation
    store.after_commit(lambda: called.append("with the bad one"))
    store.queue_message(row(2))
    store.queue_message(row(3))
    store.after_commit(lambda: called.append("good"))
    await flush(store)
    assert called == ["with the bad one", "good"]
    with other_conn(db) as conn:
        assert [r[0] for r in conn.execute("SELECT seq FROM messages ORDER BY seq")] == [1, 2, 3]
        assert [r[0] for r in conn.execute("SELECT hid FROM messages WHERE seq=1")] == [row(1).hid]


@pytest.mark.sqlite_only
async def test_a_store_that_cannot_write_keeps_everything_and_commits_it_when_it_can(store: Store, db: Path) -> None:
    """Commits failing (here SQLite's query_only, as a read-only or full disk would): nothing
    queued is dropped, a waiting caller is told instead of hanging, and everything is committed,
    callbacks run, once writing works again."""
    called: list[int] = []
    store.flush_patience = 0.3
    async with store._tx:
        await store._conn.execute("PRAGMA query_only=ON")
    for seq in (1, 2):
        store.queue_message(row(seq))
        store.after_commit(lambda seq=seq: called.append(seq))
    with pytest.raises(StoreUnavailable, match="cannot store anything right now"):
        await store.flush()
    assert store.failing and called == [] and count(db, "messages") == 0
    async with store._tx:
        await store._conn.execute("PRAGMA query_only=OFF")
    await flush(store)
    assert called == [1, 2] and not store.failing
    assert count(db, "messages") == 2


# -- group commit ---------------------------------------------------------------


async def test_group_commit_1000_messages_in_few_transactions(store: Store, db: Path) -> None:
    acked: list[int] = []
    for seq in range(1, 1001):
        store.queue_message(row(seq))
        store.queue_hop(seq, Hop("accepted", State.ACCEPTED, T0 + seq, "shakespeare.lit"))
        store.after_commit(lambda seq=seq: acked.append(seq))
    await flush(store)
    assert store.commits < 10, store.commits
    assert acked == list(range(1, 1001))
    assert count(db, "messages") == 1000
    assert count(db, "hops") == 1000
    assert await store.max_seq() == 1000


async def test_batch_max_splits_and_hops_land_after_their_message(db: Path) -> None:
    s = await Store.open(db, batch_max=10)
    try:
        for seq in range(1, 26):
            s.queue_message(row(seq))
            s.queue_hop(seq, Hop("accepted", State.ACCEPTED, T0 + seq, "shakespeare.lit"))
        last = row(25)
        last.state = State.HELD
        last.hold_reason = "offline"
        s.queue_update(last)
        await flush(s)
        # 25 messages at 10 per transaction: 10 + 10 + 5
        assert s.commits == 3
        # hops reference messages (foreign keys are on): a hop committed before its
        # message would have failed its whole batch.
        assert count(db, "messages") == 25
        assert count(db, "hops") == 25
        # an update queued after the last insert is applied after it, not lost
        got = await s.message(25)
        assert got is not None and got.state is State.HELD and got.hold_reason == "offline"
    finally:
        await s.close()


async def test_an_effect_waits_for_its_own_commit_not_for_later_hand_offs(db: Path) -> None:
    """Under a steady stream of hand-offs (more queued than one commit takes), the acks and
    releases of the first ones go out after the first commit: Courier never falls silent
    while it is busy (bench/receipts.py saw Prosody fall back when it did)."""
    s = await Store.open(db, batch_max=10)
    try:
        seen: dict[int, int] = {}
        for seq in range(1, 36):
            s.queue_message(row(seq))
            s.queue_hop(seq, Hop("accepted", State.ACCEPTED, T0 + seq, "shakespeare.lit"))
            s.after_commit(lambda seq=seq: seen.setdefault(seq, s.commits))
        await flush(s)
        # 35 hand-offs at 10 per commit: the effects of 1-10 ran after commit 1, 11-20 after 2 …
        assert [seen[seq] for seq in (1, 10, 11, 20, 21, 30, 31, 35)] == [1, 1, 2, 2, 3, 3, 4, 4]
        assert count(db, "hops") == 35
    finally:
        await s.close()


# -- reads ----------------------------------------------------------------------


async def test_open_messages_are_accepted_or_held_oldest_first(store: Store) -> None:
    states = {
        4: State.HELD,
        1: State.ACCEPTED,
        2: State.RELEASED,
        6: State.ACCEPTED,
        3: State.RECALLED,
        5: State.FAILED,
        7: State.READ,
        8: State.RECEIVED,
        9: State.RETRACTED,
    }
    for seq, state in states.items():  # queued out of order on purpose
        store.queue_message(row(seq, state=state))
    await flush(store)
    got = await store.open_messages()
    assert [(m.seq, m.state) for m in got] == [(1, State.ACCEPTED), (4, State.HELD), (6, State.ACCEPTED)]
    assert all(isinstance(m.state, State) for m in got)


async def test_recent_handoffs_includes_messages_and_absorbed_since(store: Store) -> None:
    since = T0 + 10
    store.queue_message(row(1, created=since - 5))  # too old
    store.queue_message(row(2, created=since))  # exactly at the limit
    store.queue_message(row(3, hid=None, created=since + 1))  # Courier's own: no hid
    store.queue_message(row(4, created=since + 2))
    store.queue_absorbed("hid-edit", 4, "edited", since + 3)
    store.queue_absorbed("hid-old-recall", 1, "recalled", since - 1)
    await flush(store)
    assert await store.recent_handoffs(since) == {"hid-0002": 2, "hid-0004": 4, "hid-edit": 4}
    assert await store.recent_handoffs(since + 2.5) == {"hid-edit": 4}


async def test_find_message_by_id_or_origin_id_only_for_its_owner(store: Store) -> None:
    store.queue_message(row(1, msg_id="client-id-1", origin_id="origin-1"))
    # Benvolio's message to Romeo with the same ids
    store.queue_message(row(2, sender=BENVOLIO, resource="street", msg_id="client-id-1", origin_id="origin-1"))
    # Juliet's message with the same ids to another recipient
    store.queue_message(row(3, recipient=BENVOLIO, msg_id="client-id-1", origin_id="origin-1"))
    await flush(store)

    by_id = await store.find_message(JULIET, ROMEO, "client-id-1")
    by_origin = await store.find_message(JULIET, ROMEO, "origin-1")
    assert by_id is not None and by_id.seq == 1
    assert by_origin is not None and by_origin.seq == 1
    assert (await store.find_message(BENVOLIO, ROMEO, "client-id-1")).seq == 2  # type: ignore[union-attr]
    assert (await store.find_message(JULIET, BENVOLIO, "origin-1")).seq == 3  # type: ignore[union-attr]

    # Another sender cannot reach Juliet's message, even knowing its id.
    assert await store.find_message("mercutio@shakespeare.lit", ROMEO, "client-id-1") is None
    assert await store.find_message(JULIET, "tybalt@capulet.lit", "client-id-1") is None
    assert await store.find_message(JULIET, ROMEO, "no-such-id") is None


async def test_find_message_returns_newest_and_ignores_corrections(store: Store) -> None:
    store.queue_message(row(1, msg_id="dup"))
    store.queue_message(row(2, msg_id="dup"))
    store.queue_message(row(3, msg_id="dup", kind="correction"))
    await flush(store)
    got = await store.find_message(JULIET, ROMEO, "dup")
    assert got is not None and got.seq == 2


async def test_hops_come_back_in_order(store: Store) -> None:
    hops = [
        Hop("accepted", State.ACCEPTED, T0, "shakespeare.lit"),
        Hop("held", State.HELD, T0 + 0.5, "courier.shakespeare.lit", "recipient offline"),
        Hop("edited", State.HELD, T0 + 0.25, "juliet@shakespeare.lit/balcony"),  # time not monotonic
        Hop("released", State.RELEASED, T0 + 60, "shakespeare.lit", "via XEP-0356"),
        Hop("received", State.RECEIVED, T0 + 61, "romeo@shakespeare.lit/orchard"),
    ]
    store.queue_message(row(1))
    store.queue_message(row(2))
    for i, hop in enumerate(hops):
        store.queue_hop(1, hop)
        store.queue_hop(2, Hop(f"other-{i}", State.ACCEPTED, T0, "shakespeare.lit"))
    await flush(store)
    got = await store.hops(1)
    assert got == hops
    assert all(isinstance(h.state, State) for h in got)
    assert [h.label for h in await store.hops(2)] == [f"other-{i}" for i in range(5)]
    assert await store.hops(99) == []


async def test_message_and_message_by_hid(store: Store) -> None:
    m = row(7, hold_reason="scheduled", release_at=T0 + 3600, state=State.HELD)
    store.queue_message(m)
    await flush(store)
    assert await store.message(7) == m
    assert await store.message_by_hid("hid-0007") == m
    assert await store.message(8) is None
    assert await store.message_by_hid("hid-0008") is None


# -- settings ---------------------------------------------------------------------


async def test_undo_window_round_trip_and_clear(store: Store, db: Path) -> None:
    assert await store.undo_windows() == {}
    await store.set_undo_window(JULIET, 10)
    await store.set_undo_window(ROMEO, 2.5)
    assert await store.undo_windows() == {JULIET: 10.0, ROMEO: 2.5}
    await store.set_undo_window(JULIET, 30)
    assert await store.undo_windows() == {JULIET: 30.0, ROMEO: 2.5}
    await store.set_undo_window(ROMEO, None)
    assert await store.undo_windows() == {JULIET: 30.0}
    # committed at once, not left in an open transaction
    with other_conn(db) as conn:
        assert conn.execute("SELECT jid, undo_window FROM user_settings WHERE undo_window IS NOT NULL").fetchall() == [
            (JULIET, 30.0)
        ]


# -- life cycle -------------------------------------------------------------------


async def test_close_commits_what_was_queued(db: Path) -> None:
    s = await Store.open(db)
    called: list[bool] = []
    for seq in range(1, 6):
        s.queue_message(row(seq))
    s.queue_hop(5, Hop("accepted", State.ACCEPTED, T0, "shakespeare.lit"))
    s.after_commit(lambda: called.append(True))
    await asyncio.wait_for(s.close(), TIMEOUT)
    assert called == [True]
    assert count(db, "messages") == 5
    assert count(db, "hops") == 1


async def test_message_survives_close_and_reopen(db: Path) -> None:
    m = row(42, state=State.HELD, hold_reason="undo window", release_at=T0 + 10.125, body="Good night, good night!")
    hop = Hop("held", State.HELD, T0 + 42, "courier.shakespeare.lit", "undo window")
    s = await Store.open(db)
    s.queue_message(m)
    s.queue_hop(42, hop)
    await s.set_undo_window(JULIET, 10.125)
    await s.close()

    s = await Store.open(db)
    try:
        assert await s.message(42) == m
        assert await s.hops(42) == [hop]
        assert [x.seq for x in await s.open_messages()] == [42]
        assert await s.recent_handoffs(T0) == {"hid-0042": 42}
        assert await s.undo_windows() == {JULIET: 10.125}
        assert await s.max_seq() == 42
    finally:
        await s.close()

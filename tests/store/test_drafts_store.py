"""The drafts table behind ``Store.drafts`` (migration 0005) on a throw-away database:
numbering, limits, pending-only changes, and the claims that make a trigger fire
exactly once or not at all."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from component.store import Store
from component.store.drafts import DraftRow, LimitReached

T0 = 1_795_000_000.0  # 2026-11-19, a pinned clock
JULIET = "juliet@shakespeare.lit"
ROMEO = "romeo@shakespeare.lit"
NURSE = "nurse@shakespeare.lit"
TYBALT = "tybalt@shakespeare.lit"


async def add(
    store: Store,
    author: str = JULIET,
    target: str = ROMEO,
    body: str = "Wherefore art thou Romeo?",
    action: str = "send",
    trigger: str = "manual",
    *,
    due_at: float | None = None,
    trigger_jid: str = "",
    max_pending: int = 100,
) -> DraftRow:
    return await store.drafts.insert(
        author, target, body, action, trigger, due_at=due_at, tz="UTC" if due_at else "", trigger_jid=trigger_jid,
        msg_id=f"draft-msg-{author[:3]}-{target[:3]}-{body[:8]}", now=T0, max_pending=max_pending,
    )  # fmt: skip


async def test_drafts_are_numbered_per_author_and_numbers_are_never_reused(store: Store) -> None:
    first = await add(store)
    second = await add(store, body="Parting is such sweet sorrow")
    other = await add(store, author=ROMEO, target=JULIET, body="It is the east")
    assert (first.number, second.number, other.number) == (1, 2, 1)
    assert first.state == "pending" and first.created == T0 and first.author == JULIET
    assert await store.drafts.delete(JULIET, 2, T0 + 1)
    third = await add(store, body="Good night, good night")
    assert third.number == 3
    deleted = await store.drafts.get(JULIET, 2)
    assert deleted is not None and deleted.state == "deleted" and deleted.body == ""  # the text is dropped


async def test_only_the_author_sees_a_draft(store: Store) -> None:
    await add(store)
    assert await store.drafts.get(TYBALT, 1) is None
    assert await store.drafts.pending(TYBALT) == []
    assert not await store.drafts.delete(TYBALT, 1, T0)
    assert await store.drafts.claim_manual(TYBALT, 1, T0) is None
    changed = await store.drafts.update(
        TYBALT, 1, target=ROMEO, body="Forged", action="send", trigger="manual", due_at=None, tz="", trigger_jid="",
        now=T0,
    )  # fmt: skip
    assert changed is None
    row = await store.drafts.get(JULIET, 1)
    assert row is not None and row.body == "Wherefore art thou Romeo?" and row.state == "pending"


async def test_the_pending_limit_is_checked_in_the_insert_transaction(store: Store) -> None:
    await add(store, max_pending=2)
    await add(store, body="Second", max_pending=2)
    with pytest.raises(LimitReached):
        await add(store, body="Third", max_pending=2)
    await add(store, author=ROMEO, body="Other authors have their own", max_pending=2)
    # concurrent inserts cannot overshoot the limit either
    results = await asyncio.gather(
        *(add(store, author=NURSE, body=f"n{i}", max_pending=3) for i in range(6)), return_exceptions=True
    )
    assert sum(isinstance(r, DraftRow) for r in results) == 3
    assert sum(isinstance(r, LimitReached) for r in results) == 3
    assert await store.drafts.count_pending(NURSE) == 3


async def test_pending_lists_by_target_then_number(store: Store) -> None:
    await add(store, target=TYBALT, body="Thou art a villain")
    await add(store, target=ROMEO, body="one")
    await add(store, target=ROMEO, body="two")
    rows = await store.drafts.pending(JULIET)
    assert [(r.target, r.number) for r in rows] == [(ROMEO, 2), (ROMEO, 3), (TYBALT, 1)]


async def test_update_and_delete_change_only_pending_drafts(store: Store) -> None:
    await add(store)
    changed = await store.drafts.update(
        JULIET, 1, target=ROMEO, body="O Romeo, Romeo", action="remind", trigger="at", due_at=T0 + 60, tz="UTC",
        trigger_jid="", now=T0 + 1,
    )  # fmt: skip
    assert changed is not None
    assert (changed.body, changed.action, changed.trigger, changed.due_at, changed.updated) == (
        "O Romeo, Romeo", "remind", "at", T0 + 60, T0 + 1,
    )  # fmt: skip
    claimed = await store.drafts.claim_manual(JULIET, 1, T0 + 2)
    assert claimed is not None and claimed.state == "firing"
    assert not await store.drafts.delete(JULIET, 1, T0 + 3)
    late_edit = await store.drafts.update(
        JULIET, 1, target=ROMEO, body="Too late", action="send", trigger="manual", due_at=None, tz="",
        trigger_jid="", now=T0 + 3,
    )  # fmt: skip
    assert late_edit is None
    row = await store.drafts.get(JULIET, 1)
    assert row is not None and row.body == "O Romeo, Romeo"


async def test_claim_due_takes_only_due_drafts_earliest_first_and_only_once(store: Store) -> None:
    await add(store, body="later", trigger="at", due_at=T0 + 100)
    await add(store, body="second", trigger="at", due_at=T0 + 20)
    await add(store, body="first", trigger="at", due_at=T0 + 10)
    await add(store, body="by hand")
    assert await store.drafts.next_due() == T0 + 10
    assert await store.drafts.claim_due(T0 + 5) == []
    rows = await store.drafts.claim_due(T0 + 30)
    assert [r.body for r in rows] == ["first", "second"]
    assert {r.state for r in rows} == {"firing"}
    assert [r.late for r in rows] == [20.0, 10.0]  # how long after its time each fired
    assert await store.drafts.claim_due(T0 + 30) == []  # exactly once
    assert await store.drafts.next_due() == T0 + 100
    assert [r.body for r in await store.drafts.claim_due(T0 + 1000, limit=1)] == ["later"]
    assert await store.drafts.next_due() is None


async def test_claim_due_respects_the_batch_limit(store: Store) -> None:
    for i in range(5):
        await add(store, body=f"b{i}", trigger="at", due_at=T0 + i)
    first = await store.drafts.claim_due(T0 + 10, limit=3)
    second = await store.drafts.claim_due(T0 + 10, limit=3)
    assert [r.body for r in first] == ["b0", "b1", "b2"]
    assert [r.body for r in second] == ["b3", "b4"]


async def test_a_remind_claim_uses_up_the_trigger_and_the_draft_is_pending_once_reminded(store: Store) -> None:
    await add(store, action="remind", trigger="at", due_at=T0 + 10)
    (row,) = await store.drafts.claim_due(T0 + 10)
    assert (row.state, row.trigger, row.fired_at, row.late) == ("reminding", "manual", T0 + 10, 0.0)
    assert row.due_at == T0 + 10  # kept: the reminder says when it was due
    assert await store.drafts.claim_due(T0 + 99) == []  # one reminder, not one per wake-up
    assert [r.number for r in await store.drafts.reminding()] == [1]  # until its reminder is durable
    await store.drafts.mark_reminded(row.id, T0 + 11)
    assert await store.drafts.reminding() == []
    assert [(r.number, r.state) for r in await store.drafts.pending(JULIET)] == [(1, "pending")]
    again = await store.drafts.claim_manual(JULIET, 1, T0 + 20)  # "send draft 1" after the reminder
    assert again is not None and again.state == "firing"


async def test_presence_and_message_claims(store: Store) -> None:
    await add(store, body="when online", trigger="target-online")
    await add(store, body="when online, too", trigger="target-online")
    await add(store, target=TYBALT, body="when tybalt", trigger="target-online")
    await add(store, body="when the nurse writes", trigger="message-from", trigger_jid=NURSE)
    await add(store, author=ROMEO, target=JULIET, body="romeo's", trigger="message-from", trigger_jid=NURSE)
    assert await store.drafts.online_targets() == {ROMEO, TYBALT}
    assert await store.drafts.message_from_pairs() == {(JULIET, NURSE), (ROMEO, NURSE)}
    rows = await store.drafts.claim_target_online(ROMEO, T0 + 1)
    assert [r.body for r in rows] == ["when online", "when online, too"]
    assert await store.drafts.claim_target_online(ROMEO, T0 + 2) == []
    rows = await store.drafts.claim_message_from(JULIET, NURSE, T0 + 3)
    assert [r.body for r in rows] == ["when the nurse writes"]  # not romeo's draft
    assert await store.drafts.claim_message_from(JULIET, TYBALT, T0 + 3) == []
    assert await store.drafts.online_targets() == {TYBALT}
    assert await store.drafts.message_from_pairs() == {(ROMEO, NURSE)}


async def test_racing_delete_and_claim_exactly_one_wins(store: Store) -> None:
    for i in range(20):
        await add(store, body=f"race {i}", trigger="at", due_at=T0)
    outcomes = []
    for i in range(1, 21):
        deleted, claimed = await asyncio.gather(
            store.drafts.delete(JULIET, i, T0), store.drafts.claim_manual(JULIET, i, T0)
        )
        outcomes.append((deleted, claimed is not None))
        assert deleted != (claimed is not None), f"draft {i}: deleted={deleted}, claimed={claimed}"
    assert await store.drafts.claim_due(T0 + 1) == []


async def test_firing_and_mark_sent(store: Store) -> None:
    await add(store)
    claimed = await store.drafts.claim_manual(JULIET, 1, T0)
    assert claimed is not None
    assert [r.id for r in await store.drafts.firing()] == [claimed.id]
    await store.drafts.mark_sent(claimed.id, 42, T0 + 1)
    assert await store.drafts.firing() == []
    row = await store.drafts.get(JULIET, 1)
    assert row is not None and (row.state, row.message_seq) == ("sent", 42)


@pytest.mark.sqlite_only
async def test_drafts_and_triggers_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "courier.sqlite"
    s = await Store.open(path)
    await s.drafts.insert(
        JULIET, ROMEO, "Good night", "remind", "at", due_at=T0 + 60, tz="Europe/Paris", trigger_jid="",
        msg_id="m-1", now=T0, max_pending=10,
    )  # fmt: skip
    await s.drafts.insert_many([(ROMEO, 1, JULIET, "bulk", "send", "target-online", None, "", "", "m-2", T0)])
    await s.close()
    s = await Store.open(path)
    try:
        assert await s.drafts.next_due() == T0 + 60
        row = await s.drafts.get(JULIET, 1)
        assert row is not None and (row.tz, row.action, row.msg_id) == ("Europe/Paris", "remind", "m-1")
        assert await s.drafts.online_targets() == {JULIET}
    finally:
        await s.close()
    with sqlite3.connect(str(path)) as conn:
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        plan = " ".join(
            r[3]
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT MIN(due_at) FROM drafts WHERE state = 'pending' AND trigger_kind = 'at'"
            )
        )
    assert {"drafts_due", "drafts_target_online", "drafts_message_from"} <= indexes
    assert "drafts_due" in plan  # the scheduler's question is an index lookup, not a scan

"""Drafts (P5): the SQL of server-stored drafts and their triggers (migration 0005).

Exposed as ``Store.drafts``.  Every write takes the store's transaction lock, so
it never lands inside a group commit of the delivery pipeline.  A trigger fires
through a *claim*: one ``UPDATE … WHERE state = 'pending' AND <the trigger still
holds> RETURNING …`` statement, so that an edit, a postponement or a deletion
racing the trigger either happens before the claim (the claim then sees it) or
finds the draft no longer pending: a draft fires exactly once or not at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .. import metrics
from .engine import DB_ERRORS, Connection

#: Draft states: waiting for its trigger; claimed to be sent (its message not yet
#: durable); claimed to remind its author (the reminder not yet durable: pending again once
#: it is); sent (became a tracked message); deleted by its author.
PENDING, FIRING, REMINDING, SENT, DELETED = "pending", "firing", "reminding", "sent", "deleted"
ACTIONS = ("send", "remind")
TRIGGERS = ("manual", "at", "target-online", "message-from")


class LimitReached(Exception):
    """The author already has as many pending drafts as allowed."""


@dataclass(slots=True)
class DraftRow:
    """A draft as stored."""

    id: int
    author: str
    number: int  # per author: the "3" of "send draft 3"
    target: str
    body: str
    action: str  # send | remind
    trigger: str  # manual | at | target-online | message-from
    due_at: float | None  # at: UTC instant
    tz: str  # at: the zone the author wrote the time in ("" = UTC)
    trigger_jid: str  # message-from: the contact
    state: str  # pending | firing | reminding | sent | deleted
    msg_id: str  # the id of the tracked message it becomes
    message_seq: int | None
    created: float
    updated: float
    fired_at: float | None
    late: float  # seconds after its due time that it fired (0: on time, or not a time trigger)


_COLUMNS = (
    "id, author, number, target, body, action, trigger_kind, due_at, tz, trigger_jid, state, msg_id, "
    "message_seq, created, updated, fired_at, late"
)

# What a claim does: a draft that is sent (action send, or fired by hand) becomes 'firing';
# a reminder makes it 'reminding', its trigger used up (manual), until the reminder is in the
# outbox (:meth:`DraftStore.mark_reminded`: pending again).  In SQLite every
# expression of an UPDATE reads the old row, so `late` still sees the old trigger.
_CLAIM = (
    "UPDATE drafts SET "
    "state = CASE WHEN action = 'send' OR :force = 1 THEN 'firing' ELSE 'reminding' END, "
    "trigger_kind = CASE WHEN action = 'send' OR :force = 1 THEN trigger_kind ELSE 'manual' END, "
    "late = CASE WHEN trigger_kind = 'at' AND due_at < :now THEN :now - due_at ELSE 0 END, "
    "fired_at = :now, updated = :now "
    "WHERE {where} RETURNING " + _COLUMNS
)


def _row(values: Iterable[Any]) -> DraftRow:
    return DraftRow(*values)


class DraftStore:
    """Typed access to the ``drafts`` table."""

    def __init__(self, conn: Connection, tx: asyncio.Lock) -> None:
        self._conn = conn
        self._tx = tx

    # -- writes -------------------------------------------------------------

    async def insert(
        self,
        author: str,
        target: str,
        body: str,
        action: str,
        trigger: str,
        *,
        due_at: float | None,
        tz: str,
        trigger_jid: str,
        msg_id: str,
        now: float,
        max_pending: int,
    ) -> DraftRow:
        """Store a new pending draft with the author's next number; :class:`LimitReached` if full."""
        async with self._tx:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                async with self._conn.execute(
                    "SELECT COUNT(*) FROM drafts WHERE author = ? AND state = 'pending'", (author,)
                ) as cur:
                    row = await cur.fetchone()
                if row is not None and row[0] >= max_pending:
                    raise LimitReached(max_pending)
                async with self._conn.execute(
                    f"INSERT INTO drafts (author, number, target, body, action, trigger_kind, due_at, tz, "
                    f"trigger_jid, state, msg_id, created, updated) VALUES (?, "
                    f"(SELECT COALESCE(MAX(number), 0) + 1 FROM drafts WHERE author = ?), "
                    f"?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?) RETURNING {_COLUMNS}",
                    (author, author, target, body, action, trigger, due_at, tz, trigger_jid, msg_id, now, now),
                ) as cur:
                    inserted = await cur.fetchone()
                await self._conn.execute("COMMIT")
            except BaseException:
                await self._rollback()
                raise
        assert inserted is not None
        return _row(inserted)

    async def insert_many(self, rows: list[tuple[Any, ...]]) -> None:
        """Bulk load (benchmarks, imports): tuples of (author, number, target, body, action,
        trigger, due_at, tz, trigger_jid, msg_id, created); all pending."""
        async with self._tx:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                await self._conn.executemany(
                    "INSERT INTO drafts (author, number, target, body, action, trigger_kind, due_at, tz, trigger_jid, "
                    "state, msg_id, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                    [(*r, r[-1]) for r in rows],
                )
                await self._conn.execute("COMMIT")
            except BaseException:
                await self._rollback()
                raise

    async def update(
        self,
        author: str,
        number: int,
        *,
        target: str,
        body: str,
        action: str,
        trigger: str,
        due_at: float | None,
        tz: str,
        trigger_jid: str,
        now: float,
    ) -> DraftRow | None:
        """Replace a *pending* draft's fields; None when it is not pending (or not the author's)."""
        async with (
            self._tx,
            self._conn.execute(
                f"UPDATE drafts SET target = ?, body = ?, action = ?, trigger_kind = ?, due_at = ?, tz = ?, "
                f"trigger_jid = ?, updated = ? WHERE author = ? AND number = ? AND state = 'pending' "
                f"RETURNING {_COLUMNS}",
                (target, body, action, trigger, due_at, tz, trigger_jid, now, author, number),
            ) as cur,
        ):
            row = await cur.fetchone()
        return _row(row) if row else None

    async def delete(self, author: str, number: int, now: float) -> bool:
        """Delete a *pending* draft (its text is dropped); False when it is not pending."""
        async with (
            self._tx,
            self._conn.execute(
                "UPDATE drafts SET state = 'deleted', body = '', updated = ? "
                "WHERE author = ? AND number = ? AND state = 'pending' RETURNING id",
                (now, author, number),
            ) as cur,
        ):
            row = await cur.fetchone()
        return row is not None

    async def mark_sent(self, draft_id: int, message_seq: int, now: float) -> None:
        """A firing draft's tracked message is durable."""
        async with self._tx:
            await self._conn.execute(
                "UPDATE drafts SET state = 'sent', message_seq = ?, updated = ? WHERE id = ? AND state = 'firing'",
                (message_seq, now, draft_id),
            )
        metrics.DRAFTS_FIRED.inc()

    async def mark_reminded(self, draft_id: int, now: float) -> None:
        """A reminding draft's reminder is durable (in the outbox): the draft is pending again,
        waiting to be sent by hand."""
        async with self._tx:
            await self._conn.execute(
                "UPDATE drafts SET state = 'pending', updated = ? WHERE id = ? AND state = 'reminding'",
                (now, draft_id),
            )

    # -- claims: the only way a trigger fires -----------------------------------

    async def _claim(self, where: str, params: dict[str, Any]) -> list[DraftRow]:
        async with self._tx, self._conn.execute(_CLAIM.format(where=where), params) as cur:
            rows = await cur.fetchall()
        return [_row(r) for r in rows]

    async def claim_due(self, now: float, limit: int = 100) -> list[DraftRow]:
        """Claim up to *limit* time-triggered drafts due at *now*, earliest first."""
        rows = await self._claim(
            "id IN (SELECT id FROM drafts WHERE state = 'pending' AND trigger_kind = 'at' AND due_at <= :now "
            "ORDER BY due_at LIMIT :limit)",
            {"now": now, "limit": limit, "force": 0},
        )
        return sorted(rows, key=lambda r: (r.due_at or 0.0, r.id))

    async def claim_target_online(self, target: str, now: float) -> list[DraftRow]:
        """Claim every pending draft waiting for *target* to come online."""
        rows = await self._claim(
            "state = 'pending' AND trigger_kind = 'target-online' AND target = :target",
            {"now": now, "target": target, "force": 0},
        )
        return sorted(rows, key=lambda r: r.id)

    async def claim_message_from(self, author: str, sender: str, now: float) -> list[DraftRow]:
        """Claim every pending draft of *author* waiting for a message from *sender*."""
        rows = await self._claim(
            "state = 'pending' AND trigger_kind = 'message-from' AND author = :author AND trigger_jid = :sender",
            {"now": now, "author": author, "sender": sender, "force": 0},
        )
        return sorted(rows, key=lambda r: r.id)

    async def claim_manual(self, author: str, number: int, now: float) -> DraftRow | None:
        """Claim one pending draft to be sent now, whatever its trigger and action."""
        rows = await self._claim(
            "state = 'pending' AND author = :author AND number = :number",
            {"now": now, "author": author, "number": number, "force": 1},
        )
        return rows[0] if rows else None

    # -- reads ---------------------------------------------------------------

    async def get(self, author: str, number: int) -> DraftRow | None:
        """The author's draft *number*, in any state."""
        async with self._conn.execute(
            f"SELECT {_COLUMNS} FROM drafts WHERE author = ? AND number = ?", (author, number)
        ) as cur:
            row = await cur.fetchone()
        return _row(row) if row else None

    async def pending(self, author: str) -> list[DraftRow]:
        """The author's pending drafts, by target, then number."""
        async with self._conn.execute(
            f"SELECT {_COLUMNS} FROM drafts WHERE author = ? AND state = 'pending' ORDER BY target, number",
            (author,),
        ) as cur:
            return [_row(r) for r in await cur.fetchall()]

    async def count_pending(self, author: str) -> int:
        async with self._conn.execute(
            "SELECT COUNT(*) FROM drafts WHERE author = ? AND state = 'pending'", (author,)
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def next_due(self) -> float | None:
        """When the earliest pending time trigger is due (None: there is none)."""
        async with self._conn.execute(
            "SELECT MIN(due_at) FROM drafts WHERE state = 'pending' AND trigger_kind = 'at'"
        ) as cur:
            row = await cur.fetchone()
        return float(row[0]) if row and row[0] is not None else None

    async def firing(self) -> list[DraftRow]:
        """Drafts claimed to be sent whose message may not be durable (after a crash)."""
        async with self._conn.execute(f"SELECT {_COLUMNS} FROM drafts WHERE state = 'firing' ORDER BY id") as cur:
            return [_row(r) for r in await cur.fetchall()]

    async def reminding(self) -> list[DraftRow]:
        """Drafts claimed to remind their author whose reminder may not be durable (after a crash)."""
        async with self._conn.execute(f"SELECT {_COLUMNS} FROM drafts WHERE state = 'reminding' ORDER BY id") as cur:
            return [_row(r) for r in await cur.fetchall()]

    async def online_targets(self) -> set[str]:
        """Targets that pending target-online drafts wait for."""
        async with self._conn.execute(
            "SELECT DISTINCT target FROM drafts WHERE state = 'pending' AND trigger_kind = 'target-online'"
        ) as cur:
            return {t for (t,) in await cur.fetchall()}

    async def message_from_pairs(self) -> set[tuple[str, str]]:
        """(author, contact) pairs that pending message-from drafts wait for."""
        async with self._conn.execute(
            "SELECT DISTINCT author, trigger_jid FROM drafts WHERE state = 'pending' AND trigger_kind = 'message-from'"
        ) as cur:
            return {(a, j) for a, j in await cur.fetchall()}

    async def _rollback(self) -> None:
        try:
            await self._conn.execute("ROLLBACK")
        except DB_ERRORS:
            pass


__all__ = [
    "ACTIONS", "DELETED", "FIRING", "PENDING", "REMINDING", "SENT", "TRIGGERS",
    "DraftRow", "DraftStore", "LimitReached",
]  # fmt: skip

"""Tracked messages as stored, and the store's reads of them and of the users' settings
(undo window, receipt policies, reports): the read side of :class:`component.store.Store`,
whose group commit (``__init__.py``) writes them."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import Any

from ..delivery.states import Hop, State
from .batch import Segment
from .engine import Connection


@dataclass(slots=True)
class MessageRow:
    """A tracked message as stored."""

    seq: int
    hid: str | None
    sender: str
    sender_resource: str
    recipient: str
    recipient_bare: str
    msg_id: str
    origin_id: str
    kind: str
    body: str | None
    stanza: str
    state: State
    hold_reason: str
    release_at: float | None
    created: float
    updated: float
    reports: bool = False  # the sender asked for a report at every hop


_MESSAGE_COLUMNS = (
    "seq, hid, sender, sender_resource, recipient, recipient_bare, msg_id, origin_id, kind, body, "
    "stanza, state, hold_reason, release_at, created, updated, reports"
)


def _row_to_message(row: Any) -> MessageRow:
    values = list(row)
    values[11] = State(values[11])
    values[16] = bool(values[16])
    return MessageRow(*values)


class MessageReads:
    """Reads of messages, hops and settings; mixed into Store (which opens ``_conn``)."""

    _conn: Connection
    _tx: asyncio.Lock
    _wake: asyncio.Event
    _queue: collections.deque[Segment]  # the group commit queue

    # -- reads -----------------------------------------------------------

    async def max_seq(self) -> int:
        async with self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM messages") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def open_messages(self) -> list[MessageRow]:
        """Messages still at the server (accepted or held), oldest first."""
        async with self._conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE state IN ('accepted', 'held') ORDER BY seq"
        ) as cur:
            return [_row_to_message(r) for r in await cur.fetchall()]

    async def recent_handoffs(self, since: float) -> dict[str, int]:
        """hid -> message seq for hand-offs received since *since* (for de-duplication)."""
        result: dict[str, int] = {}
        async with self._conn.execute(
            "SELECT hid, seq FROM messages WHERE hid IS NOT NULL AND created >= ?", (since,)
        ) as cur:
            for hid, seq in await cur.fetchall():
                result[hid] = seq
        async with self._conn.execute("SELECT hid, message_seq FROM absorbed_handoffs WHERE at >= ?", (since,)) as cur:
            for hid, seq in await cur.fetchall():
                result[hid] = seq
        return result

    async def message(self, seq: int) -> MessageRow | None:
        async with self._conn.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE seq=?", (seq,)) as cur:
            row = await cur.fetchone()
        return _row_to_message(row) if row else None

    async def message_by_hid(self, hid: str) -> MessageRow | None:
        async with self._conn.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE hid=?", (hid,)) as cur:
            row = await cur.fetchone()
        return _row_to_message(row) if row else None

    async def find_message(self, sender: str, recipient_bare: str, ref: str) -> MessageRow | None:
        """The newest message *sender* sent to *recipient_bare* whose id or origin-id is *ref*."""
        async with self._conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE seq = (SELECT MAX(seq) FROM messages WHERE "
            "((sender=? AND msg_id=? AND recipient_bare=?) OR (sender=? AND origin_id=? AND recipient_bare=?)) "
            "AND kind='message')",
            (sender, ref, recipient_bare, sender, ref, recipient_bare),
        ) as cur:
            row = await cur.fetchone()
        return _row_to_message(row) if row else None

    async def find_sent(self, sender: str, ref: str) -> MessageRow | None:
        """The newest message *sender* sent (to anyone) whose id or origin-id is *ref*."""
        async with self._conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE seq = (SELECT MAX(seq) FROM messages WHERE "
            "(sender=? AND msg_id=?) OR (sender=? AND origin_id=?))",
            (sender, ref, sender, ref),
        ) as cur:
            row = await cur.fetchone()
        return _row_to_message(row) if row else None

    async def recent_sent(self, sender: str, limit: int = 10) -> list[MessageRow]:
        """*sender*'s newest messages (kind message), newest first: choices for trace."""
        async with self._conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE sender=? AND kind='message' ORDER BY seq DESC LIMIT ?",
            (sender, limit),
        ) as cur:
            return [_row_to_message(row) for row in await cur.fetchall()]

    async def unconfirmed(self, recipient_bare: str, limit: int = 10) -> list[MessageRow]:
        """Messages delivered to *recipient_bare* with no receipt yet, newest first: choices for confirm."""
        async with self._conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE recipient_bare=? AND kind='message' AND state='released' "
            "ORDER BY seq DESC LIMIT ?",
            (recipient_bare, limit),
        ) as cur:
            return [_row_to_message(row) for row in await cur.fetchall()]

    async def find_received(self, recipient_bare: str, ref: str, sender: str | None = None) -> MessageRow | None:
        """The newest delivered message to *recipient_bare* with id or origin-id *ref* (from *sender*)."""
        query = (
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE ((recipient_bare=? AND msg_id=?) OR "
            "(recipient_bare=? AND origin_id=?)) AND kind='message' AND state IN ('released', 'received', 'read')"
        )
        params: tuple[str, ...] = (recipient_bare, ref, recipient_bare, ref)
        if sender:
            query += " AND sender=?"
            params += (sender,)
        async with self._conn.execute(query + " ORDER BY seq DESC LIMIT 1", params) as cur:
            row = await cur.fetchone()
        return _row_to_message(row) if row else None

    async def messages_between(self, sender: str, recipient_bare: str) -> list[MessageRow]:
        async with self._conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE sender=? AND recipient_bare=? ORDER BY seq",
            (sender, recipient_bare),
        ) as cur:
            return [_row_to_message(r) for r in await cur.fetchall()]

    async def hops(self, seq: int) -> list[Hop]:
        async with self._conn.execute(
            "SELECT label, state, at, place, note FROM hops WHERE message_seq=? ORDER BY id", (seq,)
        ) as cur:
            return [Hop(label, State(state), at, place, note) for label, state, at, place, note in await cur.fetchall()]

    # -- settings ------------------------------------------------------------

    async def undo_windows(self) -> dict[str, float]:
        """Every user's own undo-send window (users without one use the default)."""
        async with self._conn.execute(
            "SELECT jid, undo_window FROM user_settings WHERE undo_window IS NOT NULL"
        ) as cur:
            return {jid: float(w) for jid, w in await cur.fetchall()}

    # -- receipt policies (P2) --------------------------------------------------

    async def receipt_policies(self) -> dict[tuple[str, str], str]:
        """(user, contact or '') -> policy, for every user who set one."""
        async with self._conn.execute("SELECT jid, contact, policy FROM receipt_policies") as cur:
            return {(jid, contact): policy for jid, contact, policy in await cur.fetchall()}

    async def set_receipt_policy(self, jid: str, contact: str, policy: str | None) -> None:
        """Set (or with None remove) *jid*'s policy, its default when *contact* is ''."""
        async with self._tx:
            if policy is None:
                await self._conn.execute("DELETE FROM receipt_policies WHERE jid=? AND contact=?", (jid, contact))
            else:
                await self._conn.execute(
                    "INSERT INTO receipt_policies (jid, contact, policy) VALUES (?, ?, ?) "
                    "ON CONFLICT(jid, contact) DO UPDATE SET policy=excluded.policy",
                    (jid, contact, policy),
                )

    async def policy_notices(self) -> dict[tuple[str, str], str]:
        """(sender, recipient) -> the policy the sender was last told about."""
        async with self._conn.execute("SELECT sender, recipient, policy FROM policy_notices") as cur:
            return {(s, r): p for s, r, p in await cur.fetchall()}

    def queue_policy_notice(self, sender: str, recipient: str, policy: str, at: float) -> None:
        self._queue[-1].notices.append((sender, recipient, policy, at))
        self._wake.set()

    async def report_defaults(self) -> set[str]:
        """Users who want hop reports for every message they send."""
        async with self._conn.execute("SELECT jid FROM user_settings WHERE reports = 1") as cur:
            return {jid for (jid,) in await cur.fetchall()}

    async def set_reports(self, jid: str, on: bool) -> None:
        async with self._tx:
            await self._conn.execute(
                "INSERT INTO user_settings (jid, reports) VALUES (?, ?) "
                "ON CONFLICT(jid) DO UPDATE SET reports=excluded.reports",
                (jid, int(on)),
            )

    async def chat_report_users(self) -> set[str]:
        """Users who want a chat line when a cached message is delivered or read."""
        async with self._conn.execute("SELECT jid FROM user_settings WHERE chat_reports = 1") as cur:
            return {jid for (jid,) in await cur.fetchall()}

    async def set_chat_reports(self, jid: str, on: bool) -> None:
        async with self._tx:
            await self._conn.execute(
                "INSERT INTO user_settings (jid, chat_reports) VALUES (?, ?) "
                "ON CONFLICT(jid) DO UPDATE SET chat_reports=excluded.chat_reports",
                (jid, int(on)),
            )

    async def set_undo_window(self, jid: str, seconds: float | None) -> None:
        async with self._tx:
            await self._conn.execute(
                "INSERT INTO user_settings (jid, undo_window) VALUES (?, ?) "
                "ON CONFLICT(jid) DO UPDATE SET undo_window=excluded.undo_window",
                (jid, seconds),
            )

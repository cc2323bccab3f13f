"""SMS fallback (P3): the SQL of phone numbers, the SMS outbox and inbound SMS (migration 0006).

Exposed as ``Store.sms``.  Every write takes the store's transaction lock, so it
never lands inside a group commit of the delivery pipeline.  An outbox entry
moves ``queued → sending → submitted → delivered | failed`` (or ``cancelled``
when XMPP won); ``sending`` is written *before* the request leaves, so that
after a crash an entry whose fate is unknown is never sent a second time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .. import metrics
from .engine import INTEGRITY_ERRORS, Connection

QUEUED, SENDING, SUBMITTED, DELIVERED, FAILED, CANCELLED = (
    "queued",
    "sending",
    "submitted",
    "delivered",
    "failed",
    "cancelled",
)
PURPOSES = ("fallback", "direct", "code")


class NumberTaken(Exception):
    """Another user has that number active."""


@dataclass(slots=True)
class NumberRow:
    """A user's phone number(s) as stored."""

    jid: str
    number: str | None  # active, verified
    fallback: bool
    pending: str | None  # waiting for its code
    code_hash: str | None
    code_expires: float | None
    code_tries: int
    verified_at: float | None
    updated: float


@dataclass(slots=True)
class OutboxRow:
    """One SMS Courier sends (or sent)."""

    id: int
    ref: str
    purpose: str  # fallback | notice | direct | code
    message_seq: int | None
    owner: str
    sender: str
    recipient: str
    text: str
    encoding: str
    parts: int
    state: str
    attempts: int
    next_at: float | None
    note: str
    created: float
    updated: float


_NUMBER_COLUMNS = "jid, number, fallback, pending, code_hash, code_expires, code_tries, verified_at, updated"
_OUTBOX_COLUMNS = (
    "id, ref, purpose, message_seq, owner, sender, recipient, text, encoding, parts, state, attempts, next_at, "
    "note, created, updated"
)


def _number(values: Iterable[Any]) -> NumberRow:
    v = list(values)
    v[2] = bool(v[2])
    return NumberRow(*v)


def _outbox(values: Iterable[Any]) -> OutboxRow:
    return OutboxRow(*values)


class SmsStore:
    """Typed access to the ``sms_*`` tables."""

    def __init__(self, conn: Connection, tx: asyncio.Lock) -> None:
        self._conn = conn
        self._tx = tx

    # -- numbers ---------------------------------------------------------------

    async def numbers(self) -> list[NumberRow]:
        """Every user with an active or pending number."""
        async with self._conn.execute(f"SELECT {_NUMBER_COLUMNS} FROM sms_numbers") as cur:
            return [_number(r) for r in await cur.fetchall()]

    async def number(self, jid: str) -> NumberRow | None:
        async with self._conn.execute(f"SELECT {_NUMBER_COLUMNS} FROM sms_numbers WHERE jid = ?", (jid,)) as cur:
            row = await cur.fetchone()
        return _number(row) if row else None

    async def set_pending(self, jid: str, pending: str, code_hash: str, expires: float, now: float) -> NumberRow:
        """Start (or restart) verification of *pending* for *jid*; the active number stays."""
        async with (
            self._tx,
            self._conn.execute(
                f"INSERT INTO sms_numbers (jid, pending, code_hash, code_expires, code_tries, updated) "
                f"VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT(jid) DO UPDATE SET pending = excluded.pending, "
                f"code_hash = excluded.code_hash, code_expires = excluded.code_expires, code_tries = 0, "
                f"updated = excluded.updated RETURNING {_NUMBER_COLUMNS}",
                (jid, pending, code_hash, expires, now),
            ) as cur,
        ):
            row = await cur.fetchone()
        assert row is not None
        return _number(row)

    async def count_try(self, jid: str, now: float) -> None:
        """A wrong code was entered."""
        async with self._tx:
            await self._conn.execute(
                "UPDATE sms_numbers SET code_tries = code_tries + 1, updated = ? WHERE jid = ?", (now, jid)
            )

    async def activate(self, jid: str, now: float) -> NumberRow:
        """The pending number becomes the active one (fallback on); :class:`NumberTaken` if it is
        somebody else's active number by now."""
        try:
            async with (
                self._tx,
                self._conn.execute(
                    f"UPDATE sms_numbers SET number = pending, pending = NULL, code_hash = NULL, "
                    f"code_expires = NULL, code_tries = 0, fallback = 1, verified_at = ?, updated = ? "
                    f"WHERE jid = ? AND pending IS NOT NULL RETURNING {_NUMBER_COLUMNS}",
                    (now, now, jid),
                ) as cur,
            ):
                row = await cur.fetchone()
        except INTEGRITY_ERRORS:
            raise NumberTaken() from None
        assert row is not None
        return _number(row)

    async def set_fallback(self, jid: str, on: bool, now: float) -> None:
        async with self._tx:
            await self._conn.execute(
                "INSERT INTO sms_numbers (jid, fallback, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(jid) DO UPDATE SET fallback = excluded.fallback, updated = excluded.updated",
                (jid, int(on), now),
            )

    async def remove(self, jid: str) -> None:
        """Forget *jid*'s numbers (active and pending)."""
        async with self._tx:
            await self._conn.execute("DELETE FROM sms_numbers WHERE jid = ?", (jid,))

    # -- outbox ------------------------------------------------------------------

    async def queue(
        self,
        *,
        ref: str,
        purpose: str,
        message_seq: int | None,
        owner: str,
        sender: str,
        recipient: str,
        text: str,
        encoding: str,
        parts: int,
        next_at: float,
        now: float,
    ) -> OutboxRow:
        """A new SMS to send at *next_at*."""
        async with (
            self._tx,
            self._conn.execute(
                f"INSERT INTO sms_outbox (ref, purpose, message_seq, owner, sender, recipient, text, encoding, "
                f"parts, state, attempts, next_at, created, updated) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?) RETURNING {_OUTBOX_COLUMNS}",
                (ref, purpose, message_seq, owner, sender, recipient, text, encoding, parts, next_at, now, now),
            ) as cur,
        ):
            row = await cur.fetchone()
        assert row is not None
        return _outbox(row)

    async def outbox(self, outbox_id: int) -> OutboxRow | None:
        async with self._conn.execute(f"SELECT {_OUTBOX_COLUMNS} FROM sms_outbox WHERE id = ?", (outbox_id,)) as cur:
            row = await cur.fetchone()
        return _outbox(row) if row else None

    async def for_message(self, message_seq: int) -> OutboxRow | None:
        """The newest SMS of a tracked message."""
        async with self._conn.execute(
            f"SELECT {_OUTBOX_COLUMNS} FROM sms_outbox WHERE message_seq = ? ORDER BY id DESC LIMIT 1",
            (message_seq,),
        ) as cur:
            row = await cur.fetchone()
        return _outbox(row) if row else None

    async def due(self, now: float, limit: int = 50) -> list[OutboxRow]:
        """Queued SMS whose time has come, earliest first."""
        async with self._conn.execute(
            f"SELECT {_OUTBOX_COLUMNS} FROM sms_outbox WHERE state = 'queued' AND next_at <= ? "
            f"ORDER BY next_at, id LIMIT ?",
            (now, limit),
        ) as cur:
            return [_outbox(r) for r in await cur.fetchall()]

    async def next_due(self, exclude: Iterable[int] = ()) -> float | None:
        """When the next queued SMS is due (leaving out those in *exclude*)."""
        skip = list(exclude)
        marks = ", ".join("?" * len(skip))
        where = f" AND id NOT IN ({marks})" if skip else ""
        async with self._conn.execute(
            f"SELECT MIN(next_at) FROM sms_outbox WHERE state = 'queued'{where}", skip
        ) as cur:
            row = await cur.fetchone()
        return float(row[0]) if row and row[0] is not None else None

    async def in_state(self, state: str) -> list[OutboxRow]:
        async with self._conn.execute(
            f"SELECT {_OUTBOX_COLUMNS} FROM sms_outbox WHERE state = ? ORDER BY id", (state,)
        ) as cur:
            return [_outbox(r) for r in await cur.fetchall()]

    async def start_attempt(
        self, outbox_id: int, *, sender: str, text: str, encoding: str, parts: int, now: float
    ) -> OutboxRow | None:
        """queued → sending (attempts + 1), with the text as it goes; None if it is not queued."""
        async with (
            self._tx,
            self._conn.execute(
                f"UPDATE sms_outbox SET state = 'sending', attempts = attempts + 1, next_at = NULL, sender = ?, "
                f"text = ?, encoding = ?, parts = ?, updated = ? WHERE id = ? AND state = 'queued' "
                f"RETURNING {_OUTBOX_COLUMNS}",
                (sender, text, encoding, parts, now, outbox_id),
            ) as cur,
        ):
            row = await cur.fetchone()
        if row is not None:
            async with self._tx:
                await self._conn.execute(
                    "INSERT INTO sms_transport_ids (transport_id, outbox_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (row[1], outbox_id),
                )
        return _outbox(row) if row else None

    async def move(
        self,
        outbox_id: int,
        to_state: str,
        *,
        from_states: tuple[str, ...],
        note: str,
        now: float,
        next_at: float | None = None,
    ) -> OutboxRow | None:
        """Change state if the entry is in one of *from_states*; None if it was not (a duplicate
        report, a race already decided)."""
        marks = ", ".join("?" * len(from_states))
        async with (
            self._tx,
            self._conn.execute(
                f"UPDATE sms_outbox SET state = ?, note = ?, next_at = ?, updated = ? "
                f"WHERE id = ? AND state IN ({marks}) RETURNING {_OUTBOX_COLUMNS}",
                (to_state, note, next_at, now, outbox_id, *from_states),
            ) as cur,
        ):
            row = await cur.fetchone()
        if row:
            metrics.sms_moved(to_state)
        return _outbox(row) if row else None

    async def add_transport_ids(self, outbox_id: int, ids: Iterable[str]) -> None:
        async with self._tx:
            await self._conn.executemany(
                "INSERT INTO sms_transport_ids (transport_id, outbox_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(i, outbox_id) for i in ids],
            )

    async def by_transport_id(self, transport_id: str) -> OutboxRow | None:
        async with self._conn.execute(
            f"SELECT {', '.join('o.' + c.strip() for c in _OUTBOX_COLUMNS.split(','))} FROM sms_transport_ids t "
            "JOIN sms_outbox o ON o.id = t.outbox_id WHERE t.transport_id = ?",
            (transport_id,),
        ) as cur:
            row = await cur.fetchone()
        return _outbox(row) if row else None

    async def sent_since(self, owner: str, since: float, purposes: tuple[str, ...]) -> int:
        """How many SMS for *owner* of these purposes were queued since *since* (rate limits)."""
        marks = ", ".join("?" * len(purposes))
        async with self._conn.execute(
            f"SELECT COALESCE(SUM(parts), 0) FROM sms_outbox WHERE owner = ? AND created >= ? "
            f"AND purpose IN ({marks}) AND state != 'cancelled'",
            (owner, since, *purposes),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def noticed(self, message_seq: int) -> bool:
        """Whether an SMS notice of (encrypted) message *message_seq* was ever queued: one a message."""
        async with self._conn.execute(
            "SELECT 1 FROM sms_outbox WHERE purpose = 'notice' AND message_seq = ? LIMIT 1", (message_seq,)
        ) as cur:
            return await cur.fetchone() is not None

    async def codes_since(self, owner: str, number: str, since: float) -> int:
        """Verification codes sent for *owner* or to *number* since *since*."""
        async with self._conn.execute(
            "SELECT COUNT(*) FROM sms_outbox WHERE purpose = 'code' AND created >= ? AND (owner = ? OR recipient = ?)",
            (since, owner, number),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # -- inbound ----------------------------------------------------------------

    async def take_inbound(self, key: str, sender: str, recipient: str, now: float) -> bool:
        """Record an inbound SMS; False if it was taken before (a duplicate)."""
        async with (
            self._tx,
            self._conn.execute(
                "INSERT INTO sms_inbound (key, sender, recipient, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING "
                "RETURNING key",
                (key, sender, recipient, now),
            ) as cur,
        ):
            row = await cur.fetchone()
        return row is not None

    async def inbound_delivered(self, key: str, jid: str) -> None:
        async with self._tx:
            await self._conn.execute("UPDATE sms_inbound SET delivered_to = ? WHERE key = ?", (jid, key))

    async def forget_inbound(self, key: str) -> None:
        """Handling failed: let the gateway's retry through."""
        async with self._tx:
            await self._conn.execute("DELETE FROM sms_inbound WHERE key = ?", (key,))

    async def set_contact(self, number: str, jid: str, now: float) -> None:
        async with self._tx:
            await self._conn.execute(
                "INSERT INTO sms_contacts (number, jid, at) VALUES (?, ?, ?) "
                "ON CONFLICT(number) DO UPDATE SET jid = excluded.jid, at = excluded.at",
                (number, jid, now),
            )

    async def contact(self, number: str) -> str | None:
        async with self._conn.execute("SELECT jid FROM sms_contacts WHERE number = ?", (number,)) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None

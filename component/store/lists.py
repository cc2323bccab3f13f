"""Broadcast lists (P4): the SQL of lists, members, fan-outs and copies (migration 0004).

Exposed as ``Store.lists``.  Every write takes the store's transaction lock, so
it never lands inside a group commit of the delivery pipeline.  A list is
found by (owner, key): the key is the name as it appears in the list's JID
(:mod:`component.lists.names`); a temporary list whose ``expires`` has passed
is treated as gone by every read and deleted by the next write of its owner
(or :meth:`ListStore.purge_expired`).

A fan-out is recorded with one row per member *before* the member copies are
sent (their message ids are chosen up front), and each copy's ``message_seq``
is filled in once its tracked message is durable; so a fan-out interrupted by
a crash can be completed after the restart (:meth:`ListStore.unsent_copies`),
and the aggregate status and recall read the copies' states straight from the
``messages`` table.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from .engine import DB_ERRORS, INTEGRITY_ERRORS, Connection


class NameTaken(Exception):
    """The owner already has a list with that name (names are compared as in the JID)."""


class LimitReached(Exception):
    """Too many lists, or too many members in one list; ``args[0]`` is the limit."""


@dataclass(slots=True)
class ListRow:
    """A broadcast list as stored, with its members in the order they were added."""

    id: int
    owner: str
    name: str
    key: str
    created: float
    expires: float | None  # None: permanent
    members: list[str] = field(default_factory=list)


@dataclass(slots=True)
class FanoutRow:
    """One message sent to many."""

    owner: str
    id: str
    list_name: str  # '' when sent to XEP-0033 addresses
    source_id: str  # the 'id' of the owner's message ('' if none)
    source_origin: str  # its XEP-0359 origin-id ('' if none)
    body: str
    created: float
    recalled: float | None


@dataclass(slots=True)
class CopyRow:
    """One member's copy of a fan-out, with its tracked message's state (None: not sent yet)."""

    member: str
    msg_id: str
    message_seq: int | None
    retraction_id: str
    state: str | None
    hold_reason: str


_LIST_COLUMNS = "id, owner, name, key, created, expires"
_FANOUT_COLUMNS = "owner, id, list_name, source_id, source_origin, body, created, recalled"


class ListStore:
    """Typed access to ``lists``, ``list_members``, ``fanouts`` and ``fanout_copies``."""

    def __init__(self, conn: Connection, tx: asyncio.Lock) -> None:
        self._conn = conn
        self._tx = tx

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        async with self._tx:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                try:
                    await self._conn.execute("ROLLBACK")
                except DB_ERRORS:
                    pass
                raise
            await self._conn.execute("COMMIT")

    # -- lists: reads --------------------------------------------------------------

    async def _members(self, list_id: int) -> list[str]:
        async with self._conn.execute(
            "SELECT jid FROM list_members WHERE list_id = ? ORDER BY added, rowid", (list_id,)
        ) as cur:
            return [jid for (jid,) in await cur.fetchall()]

    async def _find(self, owner: str, key: str, now: float) -> ListRow | None:
        async with self._conn.execute(
            f"SELECT {_LIST_COLUMNS} FROM lists WHERE owner = ? AND key = ? AND (expires IS NULL OR expires > ?)",
            (owner, key, now),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        found = ListRow(*row)
        found.members = await self._members(found.id)
        return found

    async def get(self, owner: str, key: str, now: float) -> ListRow | None:
        """*owner*'s list *key*, with its members; None if there is none (or it expired)."""
        return await self._find(owner, key, now)

    async def of(self, owner: str, now: float) -> list[ListRow]:
        """Every list of *owner* that has not expired, by name, with members."""
        async with self._conn.execute(
            f"SELECT {_LIST_COLUMNS} FROM lists WHERE owner = ? AND (expires IS NULL OR expires > ?) ORDER BY key",
            (owner, now),
        ) as cur:
            rows = [ListRow(*r) for r in await cur.fetchall()]
        for r in rows:
            r.members = await self._members(r.id)
        return rows

    async def names(self, now: float) -> list[tuple[str, str, str, float | None]]:
        """(owner, key, name, expires) of every list that has not expired (for start-up caches)."""
        async with self._conn.execute(
            "SELECT owner, key, name, expires FROM lists WHERE expires IS NULL OR expires > ? ORDER BY owner, key",
            (now,),
        ) as cur:
            return [(o, k, n, e) for o, k, n, e in await cur.fetchall()]

    # -- lists: writes -------------------------------------------------------------

    async def _purge_owner(self, owner: str, now: float) -> None:
        await self._conn.execute("DELETE FROM lists WHERE owner = ? AND expires <= ?", (owner, now))

    async def create(
        self,
        owner: str,
        name: str,
        key: str,
        members: Sequence[str],
        *,
        expires: float | None,
        now: float,
        max_lists: int,
        max_members: int,
    ) -> ListRow:
        """A new list; :class:`NameTaken` or :class:`LimitReached` (lists or members) otherwise."""
        members = list(dict.fromkeys(members))
        if len(members) > max_members:
            raise LimitReached(max_members)
        async with self._transaction():
            await self._purge_owner(owner, now)
            async with self._conn.execute("SELECT COUNT(*) FROM lists WHERE owner = ?", (owner,)) as cur:
                count = await cur.fetchone()
            if count is not None and count[0] >= max_lists:
                raise LimitReached(max_lists)
            try:
                async with self._conn.execute(
                    "INSERT INTO lists (owner, name, key, created, expires) VALUES (?, ?, ?, ?, ?) RETURNING id",
                    (owner, name, key, now, expires),
                ) as cur:
                    inserted = await cur.fetchone()
            except INTEGRITY_ERRORS:
                raise NameTaken(name) from None
            assert inserted is not None
            list_id = int(inserted[0])
            await self._conn.executemany(
                "INSERT INTO list_members (list_id, jid, added) VALUES (?, ?, ?)",
                [(list_id, jid, now) for jid in members],
            )
        return ListRow(list_id, owner, name, key, now, expires, members)

    async def rename(self, owner: str, key: str, name: str, new_key: str, now: float) -> ListRow | None:
        """Give list *key* a new name; None if there is no such list, :class:`NameTaken` on a clash."""
        async with self._transaction():
            await self._purge_owner(owner, now)
            try:
                async with self._conn.execute(
                    "UPDATE lists SET name = ?, key = ? WHERE owner = ? AND key = ? RETURNING id",
                    (name, new_key, owner, key),
                ) as cur:
                    row = await cur.fetchone()
            except INTEGRITY_ERRORS:
                raise NameTaken(name) from None
        return await self._find(owner, new_key, now) if row else None

    async def set_expires(self, owner: str, key: str, expires: float | None, now: float) -> ListRow | None:
        """Make list *key* permanent (None) or temporary until *expires*; None if there is no such list."""
        async with self._transaction():
            await self._purge_owner(owner, now)
            async with self._conn.execute(
                "UPDATE lists SET expires = ? WHERE owner = ? AND key = ? RETURNING id", (expires, owner, key)
            ) as cur:
                row = await cur.fetchone()
        return await self._find(owner, key, now) if row else None

    async def add_members(
        self, owner: str, key: str, jids: Iterable[str], *, now: float, max_members: int
    ) -> tuple[ListRow, list[str]] | None:
        """Add *jids* (those not members yet); the list and who was added, or None if no such list."""
        async with self._transaction():
            await self._purge_owner(owner, now)
            found = await self._find(owner, key, now)
            if found is None:
                return None
            new = [j for j in dict.fromkeys(jids) if j not in found.members]
            if len(found.members) + len(new) > max_members:
                raise LimitReached(max_members)
            await self._conn.executemany(
                "INSERT INTO list_members (list_id, jid, added) VALUES (?, ?, ?)", [(found.id, j, now) for j in new]
            )
        found.members += new
        return found, new

    async def remove_members(
        self, owner: str, key: str, jids: Iterable[str], now: float
    ) -> tuple[ListRow, list[str]] | None:
        """Remove *jids*; the list and who was removed, or None if there is no such list."""
        async with self._transaction():
            found = await self._find(owner, key, now)
            if found is None:
                return None
            gone = [j for j in dict.fromkeys(jids) if j in found.members]
            await self._conn.executemany(
                "DELETE FROM list_members WHERE list_id = ? AND jid = ?", [(found.id, j) for j in gone]
            )
        found.members = [m for m in found.members if m not in gone]
        return found, gone

    async def delete(self, owner: str, key: str, now: float) -> bool:
        """Delete list *key* (its fan-outs stay); False if there was none."""
        async with self._transaction():
            await self._purge_owner(owner, now)
            async with self._conn.execute(
                "DELETE FROM lists WHERE owner = ? AND key = ? RETURNING id", (owner, key)
            ) as cur:
                row = await cur.fetchone()
        return row is not None

    async def purge_expired(self, now: float) -> int:
        """Delete every temporary list whose time is up; how many."""
        async with self._transaction():
            async with self._conn.execute("DELETE FROM lists WHERE expires <= ? RETURNING id", (now,)) as cur:
                rows = list(await cur.fetchall())
        return len(rows)

    # -- fan-outs ------------------------------------------------------------------

    async def add_fanout(
        self,
        fanout: FanoutRow,
        copies: Sequence[tuple[str, str]],  # (member, msg_id)
        *,
        since: float,
        max_since: int,
    ) -> bool:
        """Record a fan-out and its copies (not sent yet); False if the owner already has that id.

        :class:`LimitReached` if the owner started *max_since* fan-outs since *since* (the rate limit).
        """
        async with self._transaction():
            async with self._conn.execute(
                "SELECT COUNT(*) FROM fanouts WHERE owner = ? AND created >= ?", (fanout.owner, since)
            ) as cur:
                recent = await cur.fetchone()
            if recent is not None and recent[0] >= max_since:
                raise LimitReached(max_since)
            try:
                await self._conn.execute(
                    f"INSERT INTO fanouts ({_FANOUT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (fanout.owner, fanout.id, fanout.list_name, fanout.source_id, fanout.source_origin, fanout.body,
                     fanout.created, fanout.recalled),
                )  # fmt: skip
            except INTEGRITY_ERRORS:
                return False
            await self._conn.executemany(
                "INSERT INTO fanout_copies (owner, fanout_id, member, msg_id) VALUES (?, ?, ?, ?)",
                [(fanout.owner, fanout.id, member, msg_id) for member, msg_id in copies],
            )
        return True

    async def set_copy_seqs(self, owner: str, fanout_id: str, seqs: Iterable[tuple[str, int]]) -> None:
        """The copies of these members (member, message seq) are durable tracked messages."""
        async with self._tx:
            await self._conn.executemany(
                "UPDATE fanout_copies SET message_seq = ? WHERE owner = ? AND fanout_id = ? AND member = ?",
                [(seq, owner, fanout_id, member) for member, seq in seqs],
            )

    async def set_retraction(self, owner: str, fanout_id: str, member: str, retraction_id: str) -> None:
        async with self._tx:
            await self._conn.execute(
                "UPDATE fanout_copies SET retraction_id = ? WHERE owner = ? AND fanout_id = ? AND member = ?",
                (retraction_id, owner, fanout_id, member),
            )

    async def mark_recalled(self, owner: str, fanout_id: str, now: float) -> None:
        async with self._tx:
            await self._conn.execute(
                "UPDATE fanouts SET recalled = COALESCE(recalled, ?) WHERE owner = ? AND id = ?",
                (now, owner, fanout_id),
            )

    async def fanout(self, owner: str, fanout_id: str) -> FanoutRow | None:
        async with self._conn.execute(
            f"SELECT {_FANOUT_COLUMNS} FROM fanouts WHERE owner = ? AND id = ?", (owner, fanout_id)
        ) as cur:
            row = await cur.fetchone()
        return FanoutRow(*row) if row else None

    async def fanout_by_source(self, owner: str, source_id: str) -> FanoutRow | None:
        """The newest fan-out of the owner's message with this id or origin-id."""
        async with self._conn.execute(
            f"SELECT {_FANOUT_COLUMNS} FROM fanouts WHERE owner = ? AND (source_id = ? OR source_origin = ?) "
            "ORDER BY created DESC, rowid DESC LIMIT 1",
            (owner, source_id, source_id),
        ) as cur:
            row = await cur.fetchone()
        return FanoutRow(*row) if row else None

    async def recent_fanouts(self, owner: str, limit: int) -> list[FanoutRow]:
        """*owner*'s newest fan-outs, newest first."""
        async with self._conn.execute(
            f"SELECT {_FANOUT_COLUMNS} FROM fanouts WHERE owner = ? ORDER BY created DESC, rowid DESC LIMIT ?",
            (owner, limit),
        ) as cur:
            return [FanoutRow(*r) for r in await cur.fetchall()]

    async def latest_fanouts(self, per_owner: int) -> list[FanoutRow]:
        """Every owner's *per_owner* newest fan-outs, newest first (for start-up caches)."""
        async with self._conn.execute(
            f"SELECT {_FANOUT_COLUMNS} FROM (SELECT *, ROW_NUMBER() OVER "
            "(PARTITION BY owner ORDER BY created DESC, rowid DESC) AS n FROM fanouts) AS newest WHERE n <= ? "
            "ORDER BY owner, created DESC",
            (per_owner,),
        ) as cur:
            return [FanoutRow(*r) for r in await cur.fetchall()]

    async def copies(self, owner: str, fanout_id: str) -> list[CopyRow]:
        """Every copy of a fan-out, in the order the members were sent to, with its message's state."""
        async with self._conn.execute(
            "SELECT c.member, c.msg_id, c.message_seq, c.retraction_id, m.state, COALESCE(m.hold_reason, '') "
            "FROM fanout_copies c LEFT JOIN messages m ON m.seq = c.message_seq "
            "WHERE c.owner = ? AND c.fanout_id = ? ORDER BY c.rowid",
            (owner, fanout_id),
        ) as cur:
            return [CopyRow(*r) for r in await cur.fetchall()]

    async def unsent_copies(self) -> list[tuple[FanoutRow, list[CopyRow]]]:
        """Fan-outs (not recalled) with copies not yet recorded as sent: cut short by a restart."""
        async with self._conn.execute(
            "SELECT DISTINCT owner, fanout_id FROM fanout_copies WHERE message_seq IS NULL"
        ) as cur:
            keys = await cur.fetchall()
        result = []
        for owner, fanout_id in keys:
            fanout = await self.fanout(owner, fanout_id)
            if fanout is not None and fanout.recalled is None:
                unsent = [c for c in await self.copies(owner, fanout_id) if c.message_seq is None]
                result.append((fanout, unsent))
        return result

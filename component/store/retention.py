"""Retention: closed messages and their hops are deleted once older than ``store.retention_days``.

A message is closed when nothing more can happen to it at the server: every state except
accepted, held and sms (an SMS still waiting for its delivery report).  Deletion runs in
small transactions so that it never stalls the group commit for long.
"""

from __future__ import annotations

import asyncio

from .engine import Connection

_CLOSED = "state NOT IN ('accepted', 'held', 'sms')"


class RetentionStore:
    """Deletes closed messages (with their hops and absorbed hand-offs) older than a cut-off."""

    def __init__(self, conn: Connection, tx: asyncio.Lock) -> None:
        self._conn = conn
        self._tx = tx

    async def purge_chunk(self, before: float, limit: int = 500) -> int:
        """Delete at most *limit* closed messages last updated before *before*; how many went."""
        async with self._tx:
            await self._conn.execute("BEGIN")
            try:
                async with self._conn.execute(
                    f"SELECT seq FROM messages WHERE {_CLOSED} AND updated < ? LIMIT ?", (before, limit)
                ) as cur:
                    seqs = [(seq,) for (seq,) in await cur.fetchall()]
                if seqs:
                    await self._conn.executemany("DELETE FROM hops WHERE message_seq=?", seqs)
                    await self._conn.executemany("DELETE FROM absorbed_handoffs WHERE message_seq=?", seqs)
                    await self._conn.executemany("DELETE FROM peer_tracks WHERE message_seq=?", seqs)
                    await self._conn.executemany("DELETE FROM messages WHERE seq=?", seqs)
                await self._conn.execute("COMMIT")
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
        return len(seqs)

    async def purge(self, before: float, limit: int = 500) -> int:
        """Delete every closed message last updated before *before*, chunk by chunk; how many went."""
        total = 0
        while True:
            n = await self.purge_chunk(before, limit)
            total += n
            if n < limit:
                return total
            await asyncio.sleep(0)  # let queued commits in between chunks


__all__ = ["RetentionStore"]

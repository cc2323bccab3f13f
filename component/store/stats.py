"""Counts for metrics, ``courier status`` and the admins' statistics (read-only, indexed)."""

from __future__ import annotations

import asyncio

from .engine import Connection


class StatsStore:
    """Queue depths read from the tables the feature services own."""

    def __init__(self, conn: Connection, tx: asyncio.Lock) -> None:
        self._conn = conn
        self._tx = tx

    async def _count(self, sql: str) -> int:
        async with self._conn.execute(sql) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def depths(self) -> dict[str, int]:
        """Pending drafts and SMS not yet handed to the gateway (both served by partial indexes)."""
        return {
            "drafts_pending": await self._count("SELECT COUNT(*) FROM drafts WHERE state = 'pending'"),
            "sms_outbox": await self._count("SELECT COUNT(*) FROM sms_outbox WHERE state IN ('queued', 'sending')"),
        }

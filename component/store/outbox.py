"""The outbox (migration 0009): releases and originated messages not yet confirmed by the server
(among them, kind ``own``, messages from Courier's own JID such as a draft's reminder, kept as
composed on the component's stream), and hop reports to a peer Courier not yet acknowledged
by it (kind ``hop``, courier-federation).

Rows are queued with the commit that decides the send (:meth:`Store.queue_outbox`)
and deleted when the server's ``<routed/>`` (or the peer's ``<acked/>``) arrives
(:meth:`Store.queue_routed`); this class holds the reads.  Exposed as ``Store.outbox``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .engine import Connection


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One send the server has not confirmed yet."""

    token: str
    kind: str  # release | originate | own | hop
    sender: str
    stanza: str
    at: float


class OutboxStore:
    """Reads of the outbox table."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def unconfirmed(self, limit: int = 100_000) -> list[OutboxRow]:
        """Every release and originated message the server did not confirm, oldest first."""
        async with self._conn.execute(
            "SELECT token, kind, sender, stanza, at FROM outbox WHERE kind <> 'hop' ORDER BY at, rowid LIMIT ?",
            (limit,),
        ) as cur:
            return [OutboxRow(*row) for row in await cur.fetchall()]

    async def unacknowledged_hops(self, before: float, limit: int = 1000) -> list[OutboxRow]:
        """Hop reports to peers queued before *before* and not acknowledged, oldest first."""
        async with self._conn.execute(
            "SELECT token, kind, sender, stanza, at FROM outbox WHERE kind = 'hop' AND at < ? "
            "ORDER BY at, rowid LIMIT ?",
            (before, limit),
        ) as cur:
            return [OutboxRow(*row) for row in await cur.fetchall()]

    async def count(self) -> int:
        async with self._conn.execute("SELECT COUNT(*) FROM outbox") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

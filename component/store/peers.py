"""Messages tracked at a peer Courier (courier-federation, migration 0011): reads.

Rows are queued with the commit of the hop that decides them (:meth:`Store.queue_peer_track`):
a message Courier composed toward a peer gets its token when it is accepted; a peer's
``cached``/``held`` report sets ``held_since``, any later report of it leaving clears it.
Exposed as ``Store.peers``.
"""

from __future__ import annotations

from .engine import Connection
from .messages import _MESSAGE_COLUMNS, MessageRow, _row_to_message


class PeerTrackStore:
    """Reads of the peer_tracks table."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def seq_of(self, token: str) -> int | None:
        """The message tracked at a peer as *token*, or None."""
        async with self._conn.execute("SELECT message_seq FROM peer_tracks WHERE token=?", (token,)) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else None

    async def token_of(self, seq: int) -> str | None:
        """The token message *seq* is tracked under at a peer, or None."""
        async with self._conn.execute(
            "SELECT token FROM peer_tracks WHERE message_seq=? ORDER BY token LIMIT 1", (seq,)
        ) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def held(self) -> list[tuple[str, MessageRow]]:
        """(token, message) of every message a peer said it holds, oldest first."""
        columns = ", ".join(f"m.{c.strip()}" for c in _MESSAGE_COLUMNS.split(","))
        async with self._conn.execute(
            f"SELECT t.token, {columns} FROM peer_tracks t JOIN messages m ON m.seq = t.message_seq "
            "WHERE t.held_since IS NOT NULL ORDER BY m.seq"
        ) as cur:
            return [(str(row[0]), _row_to_message(row[1:])) for row in await cur.fetchall()]

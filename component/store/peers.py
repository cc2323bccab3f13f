"""Messages tracked at a peer Courier (courier-federation, migration 0011): reads.

Rows are queued with the commit of the hop that decides them (:meth:`Store.queue_peer_track`):
a message Courier composed toward a peer gets its token when it is accepted; a peer's
``cached``/``held`` report sets ``held_since``, any later report of it leaving clears it.
Exposed as ``Store.peers``.
"""

from __future__ import annotations

from .engine import Connection
from .messages import _MESSAGE_COLUMNS, MessageRow, _row_to_message

#: Ids in one ``IN (…)`` query (SQLite allows 999 parameters in older builds).
CHUNK = 500


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

    async def by_tokens(self, tokens: list[str]) -> dict[str, MessageRow]:
        """The messages tracked at a peer under *tokens* (hand-off ids, or composed messages'
        tokens): token -> message, for those that exist."""
        found: dict[str, MessageRow] = {}
        columns = ", ".join(f"m.{c.strip()}" for c in _MESSAGE_COLUMNS.split(","))
        for start in range(0, len(tokens), CHUNK):
            chunk = tokens[start : start + CHUNK]
            marks = ", ".join("?" * len(chunk))
            async with self._conn.execute(f"SELECT {columns} FROM messages m WHERE m.hid IN ({marks})", chunk) as cur:
                for row in await cur.fetchall():
                    m = _row_to_message(row)
                    found[m.hid or ""] = m
            rest = [t for t in chunk if t not in found]
            if rest:
                marks = ", ".join("?" * len(rest))
                async with self._conn.execute(
                    f"SELECT t.token, {columns} FROM peer_tracks t JOIN messages m ON m.seq = t.message_seq "
                    f"WHERE t.token IN ({marks})",
                    rest,
                ) as cur:
                    for row in await cur.fetchall():
                        found[str(row[0])] = _row_to_message(row[1:])
        return found

    async def recorded(self, seqs: list[int]) -> set[tuple[int, str, float, str]]:
        """(seq, label, at, place) of every hop recorded for the messages *seqs*."""
        found: set[tuple[int, str, float, str]] = set()
        for start in range(0, len(seqs), CHUNK):
            chunk = seqs[start : start + CHUNK]
            marks = ", ".join("?" * len(chunk))
            async with self._conn.execute(
                f"SELECT message_seq, label, at, place FROM hops WHERE message_seq IN ({marks})", chunk
            ) as cur:
                rows = await cur.fetchall()
            found.update((int(seq), str(label), float(at), str(place)) for seq, label, at, place in rows)
        return found

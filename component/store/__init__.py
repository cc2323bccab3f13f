"""The store: the only place with SQL.  One facade, :class:`Store`.

Writes that belong to the delivery pipeline are *queued* (``queue_*``) and
committed in batches by one writer task (group commit); callbacks registered
with :meth:`Store.after_commit` run only once everything queued before them is
durable, which is how "stored before anything else happens" is kept at
thousands of messages a second.  Reads and rare writes are plain coroutines.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from .. import metrics
from ..delivery.states import Hop, State
from .batch import Segment
from .drafts import DraftStore
from .engine import DB_ERRORS, INTEGRITY_ERRORS, Connection
from .errors import StoreUnavailable
from .lists import ListStore
from .lock import StoreLock, StoreLocked  # noqa: F401  (StoreLocked: what open() raises)
from .opening import connect
from .outbox import OutboxStore
from .retention import RetentionStore
from .sms import SmsStore
from .stats import StatsStore

log = logging.getLogger(__name__)

#: How long the server's <routed/> confirmations may wait for a commit to go with (seconds).
ROUTED_DELAY = 0.05


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


class Store:
    """Facade over the database: SQLite (WAL mode) or PostgreSQL (store/engine.py)."""

    def __init__(self, conn: Connection, batch_max: int = 256, engine: str = "sqlite") -> None:
        self._conn = conn
        self.engine = engine
        self._batch_max = batch_max
        # What waits for a commit, in segments of at most batch_max inserts: whatever is queued
        # after an insert goes into the same or a later segment, so a commit of the first
        # segment takes only what depends on committed inserts, and runs the effects that
        # wait for exactly those (acks, releases, reports) while later hand-offs still queue.
        self._queue: collections.deque[Segment] = collections.deque([Segment()])
        self._routed: list[tuple] = []  # the server's confirmations of sends (no dependency)
        self._routed_timer: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._tx = asyncio.Lock()  # one transaction at a time on the shared connection
        self.drafts = DraftStore(conn, self._tx)  # drafts (P5): store/drafts.py
        self.lists = ListStore(conn, self._tx)  # broadcast lists (P4): store/lists.py
        self.sms = SmsStore(conn, self._tx)  # SMS fallback (P3): store/sms.py
        self.retention = RetentionStore(conn, self._tx)  # closed messages deleted by age: store/retention.py
        self.stats = StatsStore(conn, self._tx)  # counts for metrics and status: store/stats.py
        self.outbox = OutboxStore(conn)  # sends the server has not confirmed: store/outbox.py
        self._ckpt_conn: aiosqlite.Connection | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self.commits = 0  # for tests and benchmarks: how many transactions
        self._lock: StoreLock | None = None
        # Commit failures: queued work is kept and retried, never dropped (see _commit_batch).
        self.failing_since: float | None = None  # monotonic start of the current episode
        self.failure = ""  # the last commit error, for logs and users
        self.flush_patience = 3.0  # a flush() waiting this long on a failing store raises StoreUnavailable
        self.close_patience = 2.0  # a close() on a failing store gives up after this long
        self._retry_delay = 0.05

    # -- life cycle -------------------------------------------------------

    @classmethod
    async def open(cls, target: str | Path, synchronous: str = "normal", batch_max: int = 256) -> Store:
        """Open (creating if needed) and migrate the store at *target*: a SQLite path or a ``store.url``."""
        opened = await connect(target, synchronous)
        store = cls(opened.conn, batch_max, opened.engine)
        store._lock = opened.lock
        store._writer = asyncio.create_task(store._write_loop(), name="courier-store-writer")
        if opened.path:
            # Checkpoint the WAL from a second connection, off the commit path: SQLite's
            # automatic checkpoint would run inside a commit and stall that batch (p99).
            await opened.conn.execute("PRAGMA wal_autocheckpoint=0")
            store._ckpt_conn = await aiosqlite.connect(opened.path, isolation_level=None)
            store._checkpointer = asyncio.create_task(store._checkpoint_loop(), name="courier-store-checkpoint")
        return store

    async def _checkpoint_loop(self, interval: float = 1.0) -> None:
        assert self._ckpt_conn is not None
        done = 0
        while not self._closing:
            await asyncio.sleep(interval)
            if self.commits != done:
                done = self.commits
                try:
                    await self._ckpt_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except DB_ERRORS as exc:
                    log.warning("WAL checkpoint failed (will retry): %s", exc)

    async def close(self) -> None:
        """Commit what is queued, then close."""
        self._closing = True
        if self._routed_timer is not None:
            self._routed_timer.cancel()
            self._routed_timer = None
        self._wake.set()
        if self._writer:
            await self._writer
        if self._checkpointer:
            self._checkpointer.cancel()
            try:
                await self._checkpointer
            except asyncio.CancelledError:
                pass
        if self._ckpt_conn is not None:
            try:
                await self._ckpt_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except DB_ERRORS as exc:  # a full or read-only disk: the WAL stays, and is replayed at start
                log.warning("WAL checkpoint at shutdown failed: %s", exc)
            await self._ckpt_conn.close()
        await self._conn.close()
        if self._lock is not None:
            self._lock.release()

    # -- queued writes (group commit) ---------------------------------------

    def queue_message(self, m: MessageRow) -> None:
        if len(self._queue[-1].inserts) >= self._batch_max:
            self._queue.append(Segment())
        self._queue[-1].inserts.append(
            (
                m.seq,
                m.hid,
                m.sender,
                m.sender_resource,
                m.recipient,
                m.recipient_bare,
                m.msg_id,
                m.origin_id,
                m.kind,
                m.body,
                m.stanza,
                m.state.value,
                m.hold_reason,
                m.release_at,
                m.created,
                m.updated,
                int(m.reports),
            )
        )
        self._wake.set()

    def queue_hop(self, seq: int, hop: Hop) -> None:
        self._queue[-1].hops.append((seq, hop.label, hop.state.value, hop.at, hop.place, hop.note))
        self._wake.set()

    def queue_update(self, m: MessageRow) -> None:
        """Persist the mutable fields of *m* (state, body, stanza, hold)."""
        self._queue[-1].updates.append((m.state.value, m.body, m.stanza, m.hold_reason, m.release_at, m.updated, m.seq))
        self._wake.set()

    def queue_absorbed(self, hid: str, seq: int, outcome: str, at: float) -> None:
        self._queue[-1].absorbed.append((hid, seq, outcome, at))
        self._wake.set()

    def queue_outbox(self, token: str, kind: str, sender: str, stanza: str, at: float) -> None:
        """Keep a release / originated message until the server confirms it routed it."""
        self._queue[-1].outbox.append((token, kind, sender, stanza, at))
        self._wake.set()

    def queue_routed(self, tokens: list[str]) -> None:
        """The server confirmed it routed these sends.  Not urgent: the deletes go with the next
        commit, or ROUTED_DELAY seconds later when none comes (one commit fewer per message at
        a low rate; a re-send after a reconnect meanwhile is dropped by the server as routed)."""
        self._routed.extend((t,) for t in tokens)
        if self._routed_timer is None:
            self._routed_timer = asyncio.get_running_loop().call_later(ROUTED_DELAY, self._routed_due)

    def _routed_due(self) -> None:
        self._routed_timer = None
        if self._routed:
            self._wake.set()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run *callback* once everything queued so far is committed."""
        self._queue[-1].callbacks.append(callback)
        self._wake.set()

    @property
    def failing(self) -> bool:
        """True while commits fail (until one succeeds again)."""
        return self.failing_since is not None

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._routed or any(not segment.empty for segment in self._queue):
                if not await self._commit_batch():
                    if self._closing and time.monotonic() - (self.failing_since or 0) > self.close_patience:
                        self._give_up()
                        return
                    await asyncio.sleep(self._retry_delay)
                    self._retry_delay = min(self._retry_delay * 2, 2.0)
            if self._closing:
                return

    async def _commit_batch(self) -> bool:
        """Commit the first segment; False (everything put back, in order) when the store cannot."""
        segment = self._queue.popleft()
        if not self._queue:
            self._queue.append(Segment())
        inserts, hops, updates = segment.inserts, segment.hops, segment.updates
        absorbed, notices, callbacks, outbox = segment.absorbed, segment.notices, segment.callbacks, segment.outbox
        routed, self._routed = self._routed, []
        started = time.perf_counter()
        async with self._tx:
            error = await self._write(inserts, hops, updates, absorbed, notices, extra=(outbox, routed))
            if isinstance(error, INTEGRITY_ERRORS):
                # A bad operation (a bug): commit the others one by one, drop only what fails.
                error = await self._write_each(inserts, hops, updates, absorbed, notices)
                if error is None:
                    error = await self._write([], [], [], [], [], extra=(outbox, routed))
        metrics.commit(time.perf_counter() - started, error is None)
        if error is not None:
            self._routed[:0] = routed
            self._queue.appendleft(segment)
            if self.failing_since is None:
                self.failing_since = time.monotonic()
                log.error(
                    "Store cannot commit (%s): %d operations kept and retried; new hand-offs are not "
                    "acknowledged meanwhile (Prosody delivers them itself)",
                    error,
                    len(inserts) + len(updates),
                )
            self.failure = str(error)
            return False
        if self.failing_since is not None:
            log.warning("Store commits again after %.1f s", time.monotonic() - self.failing_since)
            self.failing_since, self.failure, self._retry_delay = None, "", 0.05
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("after-commit callback failed")
        return True

    async def _write(
        self,
        inserts: list,
        hops: list,
        updates: list,
        absorbed: list,
        notices: list,
        extra: tuple[list, list] = ([], []),
    ) -> Exception | None:
        """One transaction; the error (rolled back) or None.  *extra*: outbox rows, routed tokens."""
        outbox, routed = extra
        steps = [(sql, rows) for sql, rows in (
            (f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES ({', '.join('?' * 17)})", inserts),
            ("INSERT INTO hops (message_seq, label, state, at, place, note) VALUES (?, ?, ?, ?, ?, ?)", hops),
            ("UPDATE messages SET state=?, body=?, stanza=?, hold_reason=?, release_at=?, updated=? WHERE seq=?",
             updates),
            ("INSERT INTO absorbed_handoffs (hid, message_seq, outcome, at) VALUES (?, ?, ?, ?) "
             "ON CONFLICT DO NOTHING", absorbed),
            ("INSERT INTO policy_notices (sender, recipient, policy, at) VALUES (?, ?, ?, ?) "
             "ON CONFLICT(sender, recipient) DO UPDATE SET policy=excluded.policy, at=excluded.at", notices),
            ("INSERT INTO outbox (token, kind, sender, stanza, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(token) "
             "DO UPDATE SET kind=excluded.kind, sender=excluded.sender, stanza=excluded.stanza, at=excluded.at",
             outbox),
            ("DELETE FROM outbox WHERE token=?", routed),
        ) if rows]  # fmt: skip
        try:
            await self._transaction(steps)
            self.commits += 1
        except Exception as exc:
            try:
                await self._conn.execute("ROLLBACK")
            except DB_ERRORS:
                pass
            return exc
        return None

    async def _transaction(self, steps: list[tuple[str, list]]) -> None:
        """BEGIN, each statement over its rows, COMMIT.  On SQLite in one call to aiosqlite's
        thread instead of one per statement: each call is a thread round trip plus a wake-up of
        the event loop, and those were a third of Courier's CPU at full rate (bench/README.md,
        Profile).  An error leaves the transaction open for the caller's ROLLBACK."""
        conn = self._conn
        raw = getattr(conn, "_connection", None)  # aiosqlite's sqlite3 connection (PostgreSQL: none)
        if isinstance(conn, aiosqlite.Connection) and isinstance(raw, sqlite3.Connection):

            def run() -> None:
                raw.execute("BEGIN")
                for sql, rows in steps:
                    raw.executemany(sql, rows)
                raw.execute("COMMIT")

            await conn._execute(run)
            return
        await conn.execute("BEGIN")
        for sql, rows in steps:
            await conn.executemany(sql, rows)
        await conn.execute("COMMIT")

    async def _write_each(
        self, inserts: list, hops: list, updates: list, absorbed: list, notices: list
    ) -> Exception | None:
        """Commit operation by operation, dropping (and logging) only those the schema refuses.
        Another kind of error stops it: what is left is retried as a whole (safe: every insert
        is keyed by seq and refused twice as the same IntegrityError, hops and updates repeat)."""
        for kind, ops in (("insert", inserts), ("hop", hops), ("update", updates), ("absorbed", absorbed),
                          ("notice", notices)):  # fmt: skip
            for op in ops:
                args: list[list] = [[], [], [], [], []]
                args[("insert", "hop", "update", "absorbed", "notice").index(kind)] = [op]
                error = await self._write(args[0], args[1], args[2], args[3], args[4])
                if isinstance(error, INTEGRITY_ERRORS):
                    log.error("Store refused one %s and dropped it (%s): %r", kind, error, op[:3])
                elif error is not None:
                    return error
        return None

    def _give_up(self) -> None:
        lost = sum(len(q.inserts) + len(q.updates) + len(q.hops) for q in self._queue)
        log.error(
            "Store still cannot commit at shutdown (%s): %d operations were not stored; hand-offs among "
            "them were never acknowledged, so Prosody delivers or re-sends those messages itself",
            self.failure,
            lost,
        )
        self._queue = collections.deque([Segment()])
        self._routed.clear()

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def resolve() -> None:
            if not done.done():
                done.set_result(None)

        self.after_commit(resolve)
        while True:
            finished, _ = await asyncio.wait({done}, timeout=self.flush_patience)
            if finished:
                return
            if self.failing:
                raise StoreUnavailable(
                    f"The server cannot store anything right now ({self.failure}); what you asked is kept "
                    "and applied once storage works again."
                )

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

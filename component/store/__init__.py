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
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import aiosqlite

from .. import metrics
from ..delivery.states import Hop
from .batch import Segment
from .drafts import DraftStore
from .engine import DB_ERRORS, INTEGRITY_ERRORS, Connection
from .errors import StoreUnavailable
from .lists import ListStore
from .lock import StoreLock, StoreLocked  # noqa: F401  (StoreLocked: what open() raises)
from .messages import _MESSAGE_COLUMNS, MessageReads, MessageRow, _row_to_message  # noqa: F401
from .opening import connect
from .outbox import OutboxStore
from .peers import PeerTrackStore
from .retention import RetentionStore
from .shared import INLINE_ROWS, SharedConnection
from .sms import SmsStore
from .stats import StatsStore
from .wal import WalKeeper

log = logging.getLogger(__name__)

#: How long the server's <routed/> confirmations may wait for a commit to go with (seconds).
ROUTED_DELAY = 0.05

class Store(MessageReads):
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
        self._stopping = asyncio.Event()  # set by close(): ends a retry delay at once
        self._tx = asyncio.Lock()  # one transaction at a time on the shared connection
        self.drafts = DraftStore(conn, self._tx)  # drafts (P5): store/drafts.py
        self.lists = ListStore(conn, self._tx)  # broadcast lists (P4): store/lists.py
        self.sms = SmsStore(conn, self._tx)  # SMS fallback (P3): store/sms.py
        self.retention = RetentionStore(conn, self._tx)  # closed messages deleted by age: store/retention.py
        self.stats = StatsStore(conn, self._tx)  # counts for metrics and status: store/stats.py
        self.outbox = OutboxStore(conn)  # sends the server has not confirmed: store/outbox.py
        self.peers = PeerTrackStore(conn)  # messages tracked at a peer Courier: store/peers.py
        self._shared: SharedConnection | None = None  # small commits on the loop (store/shared.py)
        self.wal: WalKeeper | None = None  # SQLite's write-ahead log, a file store only (store/wal.py)
        self.commits = 0  # for tests and benchmarks: how many transactions
        self._committing = False  # a commit (with its after-commit effects) is under way
        #: Run once after a commit's callbacks (the route's flush of batched acknowledgements:
        #: they go out in this turn of the loop instead of the next one).
        self.after_callbacks: Callable[[], None] | None = None
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
        if isinstance(opened.conn, aiosqlite.Connection):
            store._shared = SharedConnection(opened.conn)
        store._writer = asyncio.create_task(store._write_loop(), name="courier-store-writer")
        if opened.path:
            assert isinstance(opened.conn, aiosqlite.Connection)
            store.wal = WalKeeper(opened.conn, opened.path, store._tx)
            await store.wal.start(lambda: store.commits)
        return store

    async def close(self) -> None:
        """Commit what is queued, then close."""
        self._closing = True
        self._stopping.set()
        if self._routed_timer is not None:
            self._routed_timer.cancel()
            self._routed_timer = None
        self._wake.set()
        if self._writer:
            await self._writer
        if self.wal is not None:
            await self.wal.close()
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

    def queue_peer_track(self, token: str, seq: int, held_since: float | None) -> None:
        """Message *seq* is tracked at a peer Courier as *token*; held there since *held_since*."""
        self._queue[-1].peer_tracks.append((token, seq, held_since))
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
    def idle(self) -> bool:
        """Nothing waits for a commit: no write or effect queued, no commit under way (so an
        effect run now cannot overtake one that waits for a commit)."""
        return not self._committing and len(self._queue) == 1 and self._queue[0].empty

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
                    failing_for = time.monotonic() - (self.failing_since or 0)
                    if self._closing and failing_for > self.close_patience:
                        self._give_up()
                        return
                    if self._closing:  # one more try once the patience is spent, no longer
                        await asyncio.sleep(min(self._retry_delay, self.close_patience - failing_for + 0.01))
                    else:  # a close() ends the wait: a stop never waits out a retry delay
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._stopping.wait(), self._retry_delay)
                    self._retry_delay = min(self._retry_delay * 2, 2.0)
                else:  # one loop turn between commits (an inline one does not yield: store/shared.py)
                    await asyncio.sleep(0)
            if self._closing:
                return

    async def _commit_batch(self) -> bool:
        """Commit the first segment; False (everything put back, in order) when the store cannot."""
        self._committing = True
        try:
            return await self._commit_first()
        finally:
            self._committing = False

    async def _commit_first(self) -> bool:
        segment = self._queue.popleft()
        if not self._queue:
            self._queue.append(Segment())
        inserts, hops, updates = segment.inserts, segment.hops, segment.updates
        absorbed, notices, callbacks, outbox = segment.absorbed, segment.notices, segment.callbacks, segment.outbox
        routed, self._routed = self._routed, []
        extra = (outbox, routed, segment.peer_tracks)
        started = time.perf_counter()
        async with self._tx:
            error = await self._write(inserts, hops, updates, absorbed, notices, extra)
            if isinstance(error, INTEGRITY_ERRORS):
                # A bad operation (a bug): commit the others one by one, drop only what fails.
                error = await self._write_each(inserts, hops, updates, absorbed, notices)
                if error is None:
                    error = await self._write([], [], [], [], [], extra)
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
        if callbacks and self.after_callbacks is not None:
            try:
                self.after_callbacks()
            except Exception:
                log.exception("after-commit flush failed")
        if self.wal is not None:
            await self.wal.after_commit()
        return True

    async def _write(
        self,
        inserts: list,
        hops: list,
        updates: list,
        absorbed: list,
        notices: list,
        extra: tuple[list, list, list] = ([], [], []),
    ) -> Exception | None:
        """One transaction; the error (rolled back) or None.  *extra*: outbox rows, routed tokens,
        peer tracks."""
        outbox, routed, peer_tracks = extra
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
            ("INSERT INTO peer_tracks (token, message_seq, held_since) VALUES (?, ?, ?) ON CONFLICT(token) "
             "DO UPDATE SET held_since=excluded.held_since", peer_tracks),
        ) if rows]  # fmt: skip
        if not steps:  # callbacks alone: what was queued before them is committed already
            return None
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
        Profile).  A small one (INLINE_ROWS) runs on the event loop itself, on the same
        connection, when aiosqlite's thread is not using it (store/shared.py).  An error leaves
        the transaction open for the caller's ROLLBACK."""
        conn, shared = self._conn, self._shared
        if shared is not None:

            def run(raw: sqlite3.Connection) -> None:
                raw.execute("BEGIN")
                for sql, rows in steps:
                    raw.executemany(sql, rows)
                raw.execute("COMMIT")

            if sum(len(rows) for _, rows in steps) <= INLINE_ROWS and shared.try_run(run):
                return
            await conn._execute(run, shared.raw)  # type: ignore[union-attr]
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

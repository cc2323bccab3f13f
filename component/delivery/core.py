"""The tracked-message core: the state every part of the pipeline shares, and the one way a
message is tracked (accepted, then held or released), recorded (hops, reports), held in
order per recipient, released and timed.

Decisions are taken synchronously, in arrival order, on in-memory state (the
messages still at the server, who is online); their writes are queued to the
store and every visible effect (acknowledgement, release, hop report) waits
for the commit that makes the decision durable.  That keeps per-recipient
order and lets the store commit in batches.

It knows nothing of XMPP streams: it talks to a :class:`~.ports.Transport`.  The
:class:`component.delivery.pipeline.Pipeline` is this core plus the parts built
on it (originate, SMS claims) and the hand-off reader."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import uuid
from collections import OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from xml.etree import ElementTree as ET

from .. import metrics
from ..scheduler import Scheduler
from ..store import MessageRow, Store, StoreUnavailable
from ..tasks import InOrder, spawn
from . import stanzas
from .caches import ClosedRefs, Presence, Settings
from .ports import Report, SmsFallback, Transport, send_stored
from .receipts import ReceiptPolicy
from .states import Event, Hop, State, accept, apply, hop_word

log = logging.getLogger(__name__)

#: Held messages released at once when their recipient comes online; the next ones are committed
#: meanwhile, sent once the server confirms it routed these (one chunk in flight at most).
#: bench/held_flush.py, 5,000 held, 2026-12-02 07:21 (shared machine), others' live p99 meanwhile:
#: 3 → 7.4-7.7 ms at 808-824 msg/s; 5 → 9.5-13.1 ms at 935-1,067; 20 paced by a ping → 17.8-20.4 ms.
FLUSH_CHUNK = 3


class Core:
    """Tracked messages: their state, and how one is tracked, recorded, held and released."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        domain: str,
        default_undo_window: float = 0.0,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.store = store
        #: The one scheduler (component/scheduler.py), the app's: ends of undo-send windows here,
        #: and the drafts', SMS and retention timers of the services built on this pipeline.
        self.scheduler = scheduler or Scheduler()
        self.transport = transport
        self.domain = domain
        self.seq = 0
        self.open: dict[int, MessageRow] = {}
        self.queues: defaultdict[str, deque[int]] = defaultdict(deque)
        # (sender, recipient_bare, id or origin-id) -> seq, of held messages (JIDs interned)
        self.by_ref: dict[tuple[str, str, str], int] = {}
        self.known_hids: OrderedDict[str, tuple[float, int]] = OrderedDict()
        #: the same of recalled messages (and of those gone as SMS), for a day at most (REF_MAX)
        self.closed_refs = ClosedRefs()
        #: The caches and the receipt policy (services of their own), and their methods under the
        #: names the commands and the XMPP glue call on the pipeline.
        self.seen = Presence()
        self.online = self.seen.online
        self.settings = Settings(store, default_undo_window)
        self.undo_window, self.set_undo_window = self.settings.undo_window, self.settings.set_undo_window
        self.reports_on, self.set_reports = self.settings.reports_on, self.settings.set_reports
        self.receipts = ReceiptPolicy(store, transport, domain)
        self.policy_of, self.policies_of = self.receipts.policy_of, self.receipts.policies_of
        self.set_policy = self.receipts.set_policy
        #: Observers (drafts, lists…): a user's message was handed off (sender, recipient_bare),
        #: and a local user became available (bare JID).  Called synchronously; keep them quick.
        self.message_observers: list[Callable[[str, str], None]] = []
        self.available_observers: list[Callable[[str], None]] = []
        #: ... and each device (full JID) that becomes available, every time.
        self.resource_observers: list[Callable[[str], None]] = []
        #: ... and every hop recorded (message, hop), after its commit (chat reports).
        self.hop_observers: list[Callable[[MessageRow, Hop], None]] = []
        #: ... and every hop as it is recorded, before its commit: what they queue is in the
        #: same commit (federation's durable hop reports to a peer Courier).
        self.hop_recorders: list[Callable[[MessageRow, Hop], None]] = []
        #: SMS fallback (P3, component/sms/): told of every message held for an offline recipient.
        #: A message whose submission as SMS is under way (sms_claim) is not released meanwhile,
        #: and once submitted never is: never both.  Messages to phone numbers' JIDs under
        #: sms_domain (Courier's JID) are the SMS side's alone.
        self.sms: SmsFallback | None = None
        self.sms_domain: str | None = None
        self.sms_inflight: set[int] = set()
        #: Federation (delivery/remote.py): recall / edit of a message released to a Courier peer;
        #: (sender, remote recipient) -> hold it like a local one (its presence is visible, XEP-0356).
        self.remote: Any = None
        self.remote_held: Callable[[str, str], bool] = lambda _sender, _recipient: False
        self._tasks: set[asyncio.Task[None]] = set()
        self.in_order = InOrder()  #: hops recorded after a read (receipts, peers' reports), in order
        #: Awaited between chunks of a flush: returns once the server routed what was sent
        #: (the route plugin's routed); None: the next chunk follows the commit at once.
        self.pace: Callable[[], Awaitable[None]] | None = None
        self._flushing: set[str] = set()  # recipients whose flush continues after a chunk

    @property
    def default_undo_window(self) -> float:
        return self.settings.default_undo_window

    @default_undo_window.setter
    def default_undo_window(self, seconds: float) -> None:
        self.settings.default_undo_window = seconds

    # -- indexes -------------------------------------------------------------

    def _index_open(self, m: MessageRow) -> None:
        self.open[m.seq] = m
        self.queues[m.recipient_bare].append(m.seq)
        self._index_ref(m)
        if m.release_at is not None:
            self._release_timer(m)

    def _index_ref(self, m: MessageRow) -> None:
        sender, recipient = sys.intern(m.sender), sys.intern(m.recipient_bare)
        for ref in (m.msg_id, m.origin_id):
            if ref:
                self.by_ref[(sender, recipient, ref)] = m.seq
                self.closed_refs.discard((sender, recipient, ref))  # (a recalled one's id, reused)

    def _close(self, m: MessageRow, keep_refs: bool = True) -> None:
        """Take *m* off the open set and its recipient's queue.  Its refs stay for late edits (until
        :meth:`_forget_closed_refs`), or go at once with *keep_refs* false (a released message)."""
        self.open.pop(m.seq, None)
        self.scheduler.cancel(("release", m.seq))
        kept = []  # released: its later corrections and retractions are passed on (none kept)
        for ref in (m.msg_id, m.origin_id):
            key = (m.sender, m.recipient_bare, ref)
            if ref and self.by_ref.get(key) == m.seq:  # (not when a newer message took the ref)
                del self.by_ref[key]
                kept.append(key)
        if keep_refs and kept:
            self.closed_refs.add(kept, m.seq, time.time())
        queue = self.queues.get(m.recipient_bare)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(m.seq)
            if not queue:
                del self.queues[m.recipient_bare]

    # -- recording ---------------------------------------------------------------

    def _record(self, m: MessageRow, hop: Hop) -> None:
        """Queue *hop* of *m*; report it to the sender after the commit if they asked."""
        self.store.queue_hop(m.seq, hop)
        metrics.hop(m, hop)
        for recorder in self.hop_recorders:
            recorder(m, hop)
        for observer in self.hop_observers:
            self.store.after_commit(lambda observer=observer: observer(m, hop))  # type: ignore[misc]
        if m.reports:
            report = Report(
                m.sender,
                m.msg_id,
                m.origin_id,
                m.recipient_bare,
                hop_word(hop.label, m.hold_reason),
                hop.at,
                hop.place,
                hop.note,
            )
            self.store.after_commit(lambda: self.transport.report(report))

    def _after_commit(self, effect: Callable[[], None]) -> None:
        self.store.after_commit(effect)

    def _send_after_commit(
        self,
        hid: str | None,
        stanza: str,
        sender: str,
        by_reference: bool = False,
        kind: str = "",
        to: str = "",
        sends: list[Callable[[], None]] | None = None,
        sent: bool = False,
    ) -> None:
        """Release hand-off *hid* (None: originate a message) once committed; kept in the
        outbox, in the same commit, until the server confirms it routed it (re-sent meanwhile,
        in full).  *by_reference*: the server's copy is released (it is *stanza* unchanged;
        toward a Courier peer, recipient *to*, with ``<tracked/>``).
        *kind*: ``own`` for a message from Courier's own JID (:meth:`Originate.originate_own`).
        *sends*: the send is appended there instead (a flush's chunk, sent when the server is ready).
        *sent*: released already (:meth:`_track`'s *early*): only the outbox entry."""
        token = hid or uuid.uuid4().hex
        kind = kind or ("release" if hid else "originate")
        self.store.queue_outbox(token, kind, sender, stanza, time.time())
        if sent:
            return
        if by_reference and hid is not None:
            send = lambda: self.transport.release_copy(hid, to)  # noqa: E731
        else:
            send = lambda: send_stored(self.transport, kind, token, stanza, sender)  # noqa: E731
        if sends is None:
            self._after_commit(send)
        else:
            sends.append(send)

    # -- tracking ----------------------------------------------------------------

    def _track(
        self,
        hid: str | None,  # None: a message Courier originates
        where: str,  # the recipient: online | offline | remote
        stamp: float,  # when it reached the server
        inner: ET.Element,
        kind: str,
        sender_full: str,
        sender: str,
        recipient: str,
        recipient_bare: str,
        wants_reports: bool,
        now: float,
        note: str = "",
        by_reference: bool = False,  # released at once: the server's copy (the hand-off's, unchanged)
        early: bool = False,  # ... and before the commit if the store is idle (Pipeline.tracked_by_peer)
    ) -> None:
        self.seq += 1
        seq = self.seq
        msg_id, origin_id = stanzas.refs(inner)
        accepted = accept(stamp, self.domain, note or f"from {sender_full}")
        window = self.undo_window(sender)
        release_at = stamp + window if window > 0 and stamp + window > now else None
        queue = self.queues.get(recipient_bare)
        remote = where == "remote" and not self.remote_held(sender, recipient_bare)
        if where == "unknown":
            hop = apply(State.ACCEPTED, Event.FAIL, now, self.domain, "item-not-found: no such user")
            reason = ""
            release_at = None
        elif release_at is None and not queue and self._ready(recipient_bare, remote):
            note = "to a remote server" if remote and not self.online(recipient_bare) else "recipient online"
            hop = apply(State.ACCEPTED, Event.RELEASE, now, stanzas.domain(recipient_bare), note)
            reason = ""
        else:
            if release_at is not None:
                reason = "undo-window"
            elif remote or self.online(recipient_bare):
                reason = "queued"  # behind an older message still in its undo-send window
            else:
                reason = "recipient-offline"
            hop = apply(State.ACCEPTED, Event.HOLD, now, self.domain, reason)
        if early and by_reference and hid is not None and hop.state is State.RELEASED and self.store.idle:
            self.transport.release_copy(hid, recipient_bare, now=True)  # nothing waits for a commit
        else:
            early = False
        row = MessageRow(
            seq, hid, sender, sender_full.partition("/")[2], recipient, recipient_bare, msg_id, origin_id,
            kind, stanzas.text(inner), stanzas.serialize(inner), hop.state, reason, release_at, now,
            now, wants_reports,
        )  # fmt: skip
        if hid is not None:
            self.known_hids[hid] = (now, seq)
        self.store.queue_message(row)
        self._record(row, accepted)
        self._record(row, hop)
        if hop.state is State.FAILED:
            pass  # the server did not wait for us: it bounces its own error to the sender
        elif hop.state is State.RELEASED:
            self._send_after_commit(hid, row.stanza, sender, by_reference, to=recipient_bare, sent=early)
        else:
            self._index_open(row)
            if hid is not None:
                self._after_commit(lambda: self.transport.ack(hid))
            if reason == "recipient-offline":
                self._offer_sms(row)
            if reason == "queued" and (remote or self.online(recipient_bare)):
                self.flush(recipient_bare)  # older messages were waiting for a recipient who is here now

    def _ready(self, recipient_bare: str, remote: bool) -> bool:
        """A message for *recipient_bare*, with nothing queued before it, may go at once: not
        while a flush's chunk is still to be sent."""
        return recipient_bare not in self._flushing and (remote or self.online(recipient_bare))

    def _offer_sms(self, m: MessageRow) -> None:
        if self.sms is not None and m.kind == "message":
            self.sms.held_offline(m)  # it decides: the text as SMS, a notice for an encrypted one

    # -- release -----------------------------------------------------------------

    def flush(self, recipient_bare: str) -> None:
        """Release, in order, every message for *recipient_bare* that may go now: FLUSH_CHUNK
        at a time.  The first chunk goes once committed; each next one is committed while the
        server routes the one before, and sent once the server has routed it (:attr:`pace`): one
        chunk in flight at most, and others' live releases committed meanwhile go before it."""
        if recipient_bare in self._flushing or not self._take(recipient_bare, None):
            return
        if self.queues.get(recipient_bare):
            self._flushing.add(recipient_bare)
            self._spawn(self._flush_next(recipient_bare))

    def _take(self, recipient_bare: str, sends: list[Callable[[], None]] | None) -> int:
        """Release up to FLUSH_CHUNK of *recipient_bare*'s queue; their sends after the commit,
        or (*sends*) appended there.  How many were released."""
        queue = self.queues.get(recipient_bare)
        if not queue:
            return 0
        released = 0
        now = time.time()
        online = self.online(recipient_bare)
        remote = stanzas.domain(recipient_bare) != self.domain
        kept: list[int] = []  # a remote recipient's messages waiting for them (remote_held): others pass
        while queue and released < FLUSH_CHUNK:
            m = self.open[queue[0]]
            if m.seq in self.sms_inflight:
                break  # being submitted as SMS right now: it, and what follows, waits for the outcome
            if m.release_at is not None and m.release_at > now:
                break
            if not (online or (remote and not self.remote_held(m.sender, recipient_bare))):
                if m.hold_reason != "recipient-offline":
                    m.hold_reason, m.release_at, m.updated = "recipient-offline", None, now
                    self._record(m, apply(m.state, Event.HOLD, now, self.domain, "recipient-offline"))
                    self.store.queue_update(m)
                    self._offer_sms(m)
                if not remote:
                    break
                kept.append(queue.popleft())
                continue
            self._release(m, now, "to a remote server" if remote and not online else "recipient online", sends)
            released += 1
        if kept:
            queue.extendleft(reversed(kept))
            self.queues[recipient_bare] = queue
        if not queue:
            self.queues.pop(recipient_bare, None)
        return released

    async def _store_committed(self) -> None:
        while True:
            try:
                return await self.store.flush()
            except StoreUnavailable:
                await asyncio.sleep(1.0)  # kept and retried by the store: the chunk goes later

    async def _flush_next(self, recipient_bare: str) -> None:
        """The chunks after the first (:meth:`flush`); new messages for *recipient_bare* queue
        behind them meanwhile (:meth:`_track`)."""
        try:
            await self._store_committed()  # the first chunk is sent
            routed = asyncio.ensure_future(self.pace()) if self.pace is not None else None
            sends: list[Callable[[], None]] = []
            while self._take(recipient_bare, sends):
                await self._store_committed()
                if routed is not None:
                    await routed
                for send in sends:
                    send()
                sends.clear()
                if self.pace is not None and self.queues.get(recipient_bare):
                    routed = asyncio.ensure_future(self.pace())
        finally:
            self._flushing.discard(recipient_bare)
        self.flush(recipient_bare)

    def _release(self, m: MessageRow, now: float, note: str, sends: list[Callable[[], None]] | None = None) -> None:
        hop = apply(m.state, Event.RELEASE, now, stanzas.domain(m.recipient_bare), note)
        m.state, m.updated, m.hold_reason, m.release_at = hop.state, now, "", None
        self._close(m, keep_refs=False)
        self._record(m, hop)
        self.store.queue_update(m)
        self._send_after_commit(m.hid, m.stanza, m.sender, sends=sends)

    # -- time ------------------------------------------------------------------------

    def _release_timer(self, m: MessageRow) -> None:
        """At the end of *m*'s undo-send window its recipient's queue is flushed (the scheduler's
        timer ``("release", seq)``, dropped when *m* closes earlier)."""
        assert m.release_at is not None
        recipient = m.recipient_bare
        self.scheduler.at(m.release_at, ("release", m.seq), lambda: self.flush(recipient))

    # -- background work ------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        spawn(coro, self._tasks, "A pipeline task")

    async def drain(self) -> None:
        """Wait for background work and commit everything (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.store.flush()

    def stop(self) -> None:
        """No more releases by time (the scheduler's ``release`` timers go)."""
        self.scheduler.cancel_group("release")

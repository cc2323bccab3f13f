"""The delivery pipeline: hand-offs in, holds, edits, recalls and releases out.

Decisions are taken synchronously, in arrival order, on in-memory state (the
messages still at the server, who is online); their writes are queued to the
store and every visible effect (acknowledgement, release) waits for the commit
that makes the decision durable.  That keeps per-recipient order and lets the
store commit in batches.

The pipeline knows nothing of XMPP streams: it talks to a :class:`Transport`.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from xml.etree import ElementTree as ET

from ..store import MessageRow, Store
from .states import DELIVERED, OPEN, Event, IllegalTransition, State, accept, apply

log = logging.getLogger(__name__)

NS_CLIENT = "jabber:client"
NS_SID = "urn:xmpp:sid:0"
NS_CORRECT = "urn:xmpp:message-correct:0"
NS_RETRACT1 = "urn:xmpp:message-retract:1"
NS_RETRACT0 = "urn:xmpp:message-retract:0"
NS_FASTEN = "urn:xmpp:fasten:0"
NS_XHTML_IM = "http://jabber.org/protocol/xhtml-im"
OUR_NS_PREFIX = "{https://courier.chat/ns/"

#: How long hand-off ids are remembered in memory for de-duplication (the
#: server only re-sends hand-offs younger than its ack timeout).
HID_MEMORY = 900.0


class Transport(Protocol):
    """What the pipeline needs from the XMPP side."""

    def ack(self, hid: str) -> None: ...

    def release(self, hid: str, inner: ET.Element, sender_bare: str) -> None: ...


@dataclass
class Handoff:
    """One hand-off as the pipeline sees it."""

    hid: str
    recipient: str  # "online" | "offline" | "remote"
    inner: ET.Element  # the jabber:client message
    stamp: float  # when the server received it


def _bare(jid: str) -> str:
    return jid.split("/", 1)[0]


def _refs(inner: ET.Element) -> tuple[str, str]:
    origin = inner.find(f"{{{NS_SID}}}origin-id")
    return inner.get("id", ""), (origin.get("id", "") if origin is not None else "")


def _retract_ref(inner: ET.Element) -> str | None:
    retract = inner.find(f"{{{NS_RETRACT1}}}retract")
    if retract is not None:
        return retract.get("id") or None
    fasten = inner.find(f"{{{NS_FASTEN}}}apply-to")
    if fasten is not None and fasten.find(f"{{{NS_RETRACT0}}}retract") is not None:
        return fasten.get("id") or None
    return None


def _replace_ref(inner: ET.Element) -> str | None:
    replace = inner.find(f"{{{NS_CORRECT}}}replace")
    return (replace.get("id") or None) if replace is not None else None


def _body(inner: ET.Element) -> str | None:
    body = inner.find(f"{{{NS_CLIENT}}}body")
    return body.text or "" if body is not None else None


def strip_ours(inner: ET.Element) -> None:
    """Remove every element of our namespaces a client put on a message (forgeries)."""
    for child in [c for c in inner if c.tag.startswith(OUR_NS_PREFIX)]:
        inner.remove(child)


class Pipeline:
    """Tracked messages from hand-off to release."""

    def __init__(self, store: Store, transport: Transport, domain: str, default_undo_window: float = 0.0) -> None:
        self.store = store
        self.transport = transport
        self.domain = domain
        self.default_undo_window = default_undo_window
        self.seq = 0
        self.open: dict[int, MessageRow] = {}
        self.queues: defaultdict[str, list[int]] = defaultdict(list)
        # (sender, recipient_bare, id or origin-id) -> seq, for held and recalled messages
        self.by_ref: dict[tuple[str, str, str], int] = {}
        self.known_hids: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self.available: defaultdict[str, set[str]] = defaultdict(set)
        self.undo_windows: dict[str, float] = {}
        self._due: list[tuple[float, int]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- start-up ---------------------------------------------------------

    async def start(self) -> None:
        """Load what survived a restart: held messages, recent hand-off ids, settings."""
        self.seq = await self.store.max_seq()
        for m in await self.store.open_messages():
            self._index_open(m)
        now = time.time()
        for hid, seq in (await self.store.recent_handoffs(now - HID_MEMORY)).items():
            self.known_hids[hid] = (now, seq)
        self.undo_windows = await self.store.undo_windows()
        if self.open:
            log.info("%d held messages waiting for their recipients", len(self.open))
        self._schedule()

    def _index_open(self, m: MessageRow) -> None:
        self.open[m.seq] = m
        self.queues[m.recipient_bare].append(m.seq)
        self._index_ref(m)
        if m.release_at is not None:
            heapq.heappush(self._due, (m.release_at, m.seq))

    def _index_ref(self, m: MessageRow) -> None:
        for ref in (m.msg_id, m.origin_id):
            if ref:
                self.by_ref[(m.sender, m.recipient_bare, ref)] = m.seq

    # -- presence ------------------------------------------------------------

    def presence(self, full_jid: str, available: bool) -> None:
        """A local user's resource became available or unavailable."""
        bare = _bare(full_jid)
        resources = self.available[bare]
        if available:
            resources.add(full_jid)
            resources.discard("?")
            self.flush(bare)
        else:
            resources.discard(full_jid)
            if not resources or resources == {"?"}:
                del self.available[bare]

    def online(self, bare: str) -> bool:
        return bool(self.available.get(bare))

    # -- settings --------------------------------------------------------------

    def undo_window(self, sender: str) -> float:
        return self.undo_windows.get(sender, self.default_undo_window)

    async def set_undo_window(self, sender: str, seconds: float | None) -> None:
        await self.store.set_undo_window(sender, seconds)
        if seconds is None:
            self.undo_windows.pop(sender, None)
        else:
            self.undo_windows[sender] = seconds

    # -- hand-offs -------------------------------------------------------------

    def handoff(self, h: Handoff) -> None:
        """Process one hand-off (synchronously; effects follow the commit)."""
        now = time.time()
        self._forget_old_hids(now)
        if h.hid in self.known_hids:
            self._spawn(self._answer_again(h.hid, self.known_hids[h.hid][1]))
            return
        inner = h.inner
        strip_ours(inner)
        sender_full = inner.get("from", "")
        sender = _bare(sender_full)
        recipient = inner.get("to", "")
        recipient_bare = _bare(recipient)

        # Remember what the server says about the recipient right now.
        if h.recipient == "online" and not self.available.get(recipient_bare):
            self.available[recipient_bare].add("?")
        elif h.recipient == "offline":
            self.available.pop(recipient_bare, None)

        retract_ref = _retract_ref(inner)
        replace_ref = None if retract_ref else _replace_ref(inner)
        ref = retract_ref or replace_ref
        if ref is not None:
            target_seq = self.by_ref.get((sender, recipient_bare, ref))
            if target_seq is not None:
                if self._apply_to_held(h, target_seq, retract_ref is not None, inner, sender_full, now):
                    return
            else:
                self._spawn(self._note_on_delivered(sender, recipient_bare, ref, retract_ref is not None, now))
        kind = "retraction" if retract_ref else "correction" if replace_ref else "message"
        self._track(h, inner, kind, sender_full, sender, recipient, recipient_bare, now)

    def _track(
        self,
        h: Handoff,
        inner: ET.Element,
        kind: str,
        sender_full: str,
        sender: str,
        recipient: str,
        recipient_bare: str,
        now: float,
    ) -> None:
        self.seq += 1
        seq = self.seq
        msg_id, origin_id = _refs(inner)
        accepted = accept(h.stamp, self.domain, f"from {sender_full}")
        window = self.undo_window(sender)
        release_at = h.stamp + window if window > 0 and h.stamp + window > now else None
        queue = self.queues.get(recipient_bare)
        remote = h.recipient == "remote"
        if release_at is None and not queue and (remote or self.online(recipient_bare)):
            hop = apply(
                State.ACCEPTED,
                Event.RELEASE,
                now,
                recipient_bare.split("@")[-1],
                "recipient online" if not remote else "to a remote server",
            )
            reason = ""
        else:
            reason = "undo-window" if release_at is not None else "queued" if queue else "recipient-offline"
            hop = apply(State.ACCEPTED, Event.HOLD, now, self.domain, reason)
        row = MessageRow(
            seq,
            h.hid,
            sender,
            sender_full.partition("/")[2],
            recipient,
            recipient_bare,
            msg_id,
            origin_id,
            kind,
            _body(inner),
            ET.tostring(inner, encoding="unicode"),
            hop.state,
            reason,
            release_at,
            now,
            now,
        )
        self.known_hids[h.hid] = (now, seq)
        self.store.queue_message(row)
        self.store.queue_hop(seq, accepted)
        self.store.queue_hop(seq, hop)
        hid = h.hid
        if hop.state is State.RELEASED:
            self.store.after_commit(lambda: self.transport.release(hid, inner, sender))
        else:
            self._index_open(row)
            self.store.after_commit(lambda: self.transport.ack(hid))
            if release_at is not None:
                self._schedule()
            elif reason == "queued" and (remote or self.online(recipient_bare)):
                self.flush(recipient_bare)  # older messages were waiting for a recipient who is here now

    def _apply_to_held(
        self, h: Handoff, target_seq: int, is_retract: bool, inner: ET.Element, sender_full: str, now: float
    ) -> bool:
        """Edit or recall a message still at the server; False if it has left already."""
        target = self.open.get(target_seq)
        hid = h.hid
        if target is None:
            # Recalled before: nothing of it ever reaches the recipient, nor of this.
            self.known_hids[hid] = (now, target_seq)
            self.store.queue_absorbed(hid, target_seq, "dropped", now)
            self.store.after_commit(lambda: self.transport.ack(hid))
            return True
        if is_retract:
            hop = apply(target.state, Event.RECALL, now, self.domain, f"by {sender_full}")
            self._close(target)
            outcome = "recalled"
        else:
            hop = apply(target.state, Event.EDIT, now, self.domain, f"by {sender_full}")
            original = ET.fromstring(target.stanza)
            new_body = _body(inner) or ""
            body = original.find(f"{{{NS_CLIENT}}}body")
            if body is None:
                body = ET.SubElement(original, f"{{{NS_CLIENT}}}body")
            body.text = new_body
            for html in original.findall(f"{{{NS_XHTML_IM}}}html"):
                original.remove(html)
            target.body = new_body
            target.stanza = ET.tostring(original, encoding="unicode")
            outcome = "edited"
        target.state = hop.state
        target.updated = now
        self.known_hids[hid] = (now, target_seq)
        self.store.queue_hop(target.seq, hop)
        self.store.queue_update(target)
        self.store.queue_absorbed(hid, target.seq, outcome, now)
        self.store.after_commit(lambda: self.transport.ack(hid))
        if is_retract:
            self.flush(target.recipient_bare)  # later messages may have waited behind it
        return True

    def _close(self, m: MessageRow) -> None:
        """Take *m* off the open set and its recipient's queue (its refs stay, for late edits)."""
        self.open.pop(m.seq, None)
        queue = self.queues.get(m.recipient_bare)
        if queue is not None:
            try:
                queue.remove(m.seq)
            except ValueError:
                pass
            if not queue:
                del self.queues[m.recipient_bare]

    # -- release -----------------------------------------------------------------

    def flush(self, recipient_bare: str) -> None:
        """Release, in order, every message for *recipient_bare* that may go now."""
        queue = self.queues.get(recipient_bare)
        if not queue:
            return
        now = time.time()
        online = self.online(recipient_bare)
        while queue:
            m = self.open[queue[0]]
            remote = recipient_bare.split("@")[-1] != self.domain
            if m.release_at is not None and m.release_at > now:
                break
            if not (online or remote):
                if m.hold_reason != "recipient-offline":
                    m.hold_reason = "recipient-offline"
                    m.release_at = None
                    self.store.queue_update(m)
                break
            self._release(m, now, "recipient online" if not remote else "to a remote server")
        if not queue:
            self.queues.pop(recipient_bare, None)

    def _release(self, m: MessageRow, now: float, note: str) -> None:
        hop = apply(m.state, Event.RELEASE, now, m.recipient_bare.split("@")[-1], note)
        m.state = hop.state
        m.updated = now
        m.hold_reason = ""
        m.release_at = None
        self._close(m)
        self.store.queue_hop(m.seq, hop)
        self.store.queue_update(m)
        hid, stanza, sender = m.hid or f"courier-{m.seq}", m.stanza, m.sender
        self.store.after_commit(lambda: self.transport.release(hid, ET.fromstring(stanza), sender))

    def fallback(self, hids: Iterable[str]) -> None:
        """The server delivered these hand-offs itself: never release them."""
        now = time.time()
        for hid in hids:
            known = self.known_hids.get(hid)
            if known is None:
                continue
            m = self.open.get(known[1])
            if m is not None and m.hid == hid:
                log.warning(
                    "Message %d (%s -> %s) was delivered by the server's fallback", m.seq, m.sender, m.recipient
                )
                hop = apply(
                    m.state, Event.RELEASE, now, self.domain, "delivered by the server (fallback: Courier was late)"
                )
                m.state, m.updated, m.hold_reason, m.release_at = hop.state, now, "", None
                recipient = m.recipient_bare
                self._close(m)
                self.store.queue_hop(m.seq, hop)
                self.store.queue_update(m)
                self.flush(recipient)

    # -- time ------------------------------------------------------------------------

    def _schedule(self) -> None:
        """One timer, for the earliest release time."""
        while self._due and self._due[0][1] not in self.open:
            heapq.heappop(self._due)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._due:
            loop = asyncio.get_running_loop()
            delay = max(0.0, self._due[0][0] - time.time())
            self._timer = loop.call_at(loop.time() + delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = time.time()
        recipients = []
        while self._due and self._due[0][0] <= now:
            _, seq = heapq.heappop(self._due)
            m = self.open.get(seq)
            if m is not None:
                recipients.append(m.recipient_bare)
        for r in dict.fromkeys(recipients):
            self.flush(r)
        self._schedule()

    # -- helpers -----------------------------------------------------------------------

    def _forget_old_hids(self, now: float) -> None:
        while self.known_hids:
            hid, (t, _) = next(iter(self.known_hids.items()))
            if now - t < HID_MEMORY:
                break
            self.known_hids.popitem(last=False)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    async def _answer_again(self, hid: str, seq: int) -> None:
        """A re-sent hand-off: answer as the first time, never store it twice."""
        await self.store.flush()
        if seq in self.open:
            self.transport.ack(hid)
            return
        m = await self.store.message_by_hid(hid)
        if m is not None and m.state in DELIVERED:
            # The release may have been lost with the connection; the server drops a duplicate.
            self.transport.release(hid, ET.fromstring(m.stanza), m.sender)
        else:
            self.transport.ack(hid)

    async def _note_on_delivered(
        self, sender: str, recipient_bare: str, ref: str, is_retract: bool, now: float
    ) -> None:
        """Record on an already delivered message that a correction or retraction was passed on."""
        target = await self.store.find_message(sender, recipient_bare, ref)
        if target is None or target.state not in DELIVERED:
            return
        try:
            hop = apply(target.state, Event.RETRACT if is_retract else Event.EDIT, now, self.domain, "passed on")
        except IllegalTransition:
            return
        target.state, target.updated = hop.state, now
        self.store.queue_hop(target.seq, hop)
        self.store.queue_update(target)

    async def drain(self) -> None:
        """Wait for background work and commit everything (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.store.flush()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("pipeline task failed", exc_info=task.exception())


__all__ = ["Handoff", "Pipeline", "Transport", "strip_ours", "OPEN"]

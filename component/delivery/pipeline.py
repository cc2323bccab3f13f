"""The delivery pipeline: hand-offs in, holds, edits, recalls and releases out.

:class:`Pipeline` is the tracked-message core (:mod:`.core`) with the parts built on it —
the one originate / passed-on path (:mod:`.originate`) and the SMS claim protocol
(:mod:`.sms_claims`) — plus what this module adds: reading each hand-off (de-duplicated
by its id), holding, editing and recalling messages still at the server, acknowledgements,
the server's fallback, and presence.  The stock XEPs' stanzas are read in :mod:`.stanzas`,
receipt policy is :mod:`.receipts`, presence and settings are cached in :mod:`.caches`.
See docs/architecture.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from xml.etree import ElementTree as ET

from .. import metrics
from ..namespaces import NS_CLIENT, NS_HOPS, NS_RECEIPTS, NS_RECEIPTS_POLICY, NS_XHTML_IM, TRACKED_TAG
from ..store import MessageRow
from ..xep import e2ee
from . import sender_copy, stanzas
from .originate import Originate
from .ports import Encrypted, Handoff, Invalid, NotFound, Report, SmsFallback, TooLate, Transport, send_stored
from .receipts import POLICIES
from .sms_claims import SmsClaims
from .stanzas import bare, encrypted, strip_ours
from .states import DELIVERED, Event, Hop, apply

log = logging.getLogger(__name__)

#: How long hand-off ids are remembered in memory for de-duplication: the server
#: re-sends only hand-offs it still holds, and it holds none longer than its
#: courier_ack_deadline (120 s by default), so 2.5 times that.  (900 s made the
#: memory grow with the message rate: bench/soak.py, +29 % RSS at 200,000 messages.)
HID_MEMORY = 300.0
#: ... and at most this many (oldest forgotten first): memory stays bounded at any rate.  The
#: server re-sends only un-acknowledged hand-offs (younger than its ack timeout, seconds), so
#: 200,000 covers minutes even at the highest rate measured on this machine.
HID_MAX = 200_000
#: Refs of recalled messages (and of those gone as SMS) stay indexed this long, so that a late
#: correction or retraction of them is absorbed; at most REF_MAX of them (oldest forgotten first).
REF_MEMORY = 86400.0
REF_MAX = 100_000
_HOPS_REQUEST, _RECEIPTS_REQUEST = f"{{{NS_HOPS}}}request", f"{{{NS_RECEIPTS}}}request"
_NO_REQUEST = f"{{{NS_RECEIPTS_POLICY}}}no-request"


class Pipeline(Originate, SmsClaims):
    """Tracked messages from hand-off to release."""

    #: Called before a local user's receipt or marker to another server's user is passed on
    #: (federation sets it: the hop reports waiting for that server's Courier go first).
    before_acknowledgement: Callable[[], None] | None = None
    #: Whether a hand-off is of a message its sender's Courier stored and tracks (federation sets
    #: it: a ``<tracked/>`` that may be believed); released to an online recipient before its
    #: commit here (:meth:`Core._track`'s *early*, xeps/courier-federation.xml, "Relaying").
    tracked_by_peer: Callable[[Handoff], bool] | None = None

    # -- start-up ---------------------------------------------------------

    async def start(self) -> None:
        """Load what survived a restart: held messages, recent hand-off ids, settings."""
        self.seq = await self.store.max_seq()
        now = time.time()
        for hid, seq in (await self.store.recent_handoffs(now - HID_MEMORY)).items():
            self.known_hids[hid] = (now, seq)
        await self.settings.load()
        await self.receipts.load()
        # Last: a held message whose undo-send window ended meanwhile is released by its
        # timer (the scheduler's) once the settings and policies above are loaded.
        for m in await self.store.open_messages():
            if self.sms_domain is not None and stanzas.domain(m.recipient_bare) == self.sms_domain:
                continue  # a message to a phone number waiting for its SMS: the SMS side's
            self._index_open(m)
        if self.open:
            log.info("%d held messages waiting for their recipients", len(self.open))

    def _forget_old_hids(self, now: float) -> None:
        while self.known_hids:
            hid, (t, _) = next(iter(self.known_hids.items()))
            if now - t < HID_MEMORY and len(self.known_hids) <= HID_MAX:
                break
            self.known_hids.popitem(last=False)

    def ref_of(self, sender: str, recipient_bare: str, ref: str) -> int | None:
        """The seq of the held or recalled message *ref* of *sender* to *recipient_bare*, if any."""
        key = (sender, recipient_bare, ref)
        seq = self.by_ref.get(key)
        return self.closed_refs.get(key) if seq is None else seq

    def _forget_closed_refs(self, now: float) -> None:
        """Refs of closed messages older than REF_MEMORY, or beyond REF_MAX, go."""
        self.closed_refs.forget(now, REF_MEMORY, REF_MAX)

    # -- presence ------------------------------------------------------------

    def presence(self, full_jid: str, available: bool) -> None:
        """A local user's resource became available or unavailable."""
        came_online, new_device = self.seen.update(full_jid, available)
        if not available:
            return
        user = bare(full_jid)
        self.flush(user)
        if came_online:
            for observer in self.available_observers:
                observer(user)
        if new_device:
            for device_observer in self.resource_observers:
                device_observer(full_jid)

    # -- hand-offs -------------------------------------------------------------

    def handoff(self, h: Handoff) -> None:
        """Process one hand-off (synchronously; effects follow the commit)."""
        now = time.time()
        self._forget_old_hids(now)
        self._forget_closed_refs(now)
        if h.hid in self.known_hids:
            self._spawn(self._answer_again(h, self.known_hids[h.hid][1]))
            return
        inner = h.inner
        sender_full = inner.get("from", "")
        sender = bare(sender_full)
        recipient = inner.get("to", "")
        recipient_bare = bare(recipient)
        local_sender = stanzas.domain(sender) == self.domain
        asked = inner.find(_HOPS_REQUEST) is not None or inner.find(_RECEIPTS_REQUEST) is not None
        declined = inner.find(_NO_REQUEST) is not None
        wants_reports = not declined and (asked or self.reports_on(sender))
        strip_ours(inner, "" if local_sender else TRACKED_TAG)
        self.seen.hint(recipient_bare, h.recipient)

        body = stanzas.body(inner)
        retract_ref = stanzas.retract_ref(inner)
        if body is None and retract_ref is None:
            acknowledgement = stanzas.acknowledgement(inner)
            if acknowledgement is not None:
                self._acknowledged(h, inner, sender, recipient_bare, *acknowledgement, now)
                return
        replace_ref = None if retract_ref else stanzas.replace_ref(inner)
        ref = retract_ref or replace_ref
        if ref is not None:
            target_seq = self.ref_of(sender, recipient_bare, ref)
            if target_seq is not None:
                if self._apply_to_held(h, target_seq, retract_ref is not None, inner, sender_full, now):
                    return
            else:
                self._spawn(self._note_on_delivered(sender, recipient_bare, ref, retract_ref is not None, now))
        kind = "retraction" if retract_ref else "correction" if replace_ref else "message"
        asked_receipt = asked and not declined
        changed = kind == "message" and self.receipts.strip_refused(inner, sender, recipient_bare, asked_receipt, now)
        # by reference where the release adds nothing, or toward another server (where
        # courier-federation may add <tracked/>) where the server adds the <tracked/> given
        outward = local_sender and stanzas.domain(recipient_bare) != self.domain
        by_reference = h.copy_kept and not changed and (h.adds_tracked or not outward)
        relayed = self.tracked_by_peer  # (_track releases it early only by reference, at once)
        early = kind == "message" and not local_sender and relayed is not None and relayed(h)
        self._track(h.hid, h.recipient, h.stamp, inner, kind, sender_full, sender, recipient, recipient_bare,
                    wants_reports, now, by_reference=by_reference, early=early)  # fmt: skip
        if kind == "message":
            for observer in self.message_observers:
                observer(sender, recipient_bare)

    async def _answer_again(self, h: Handoff, seq: int) -> None:
        """A re-sent hand-off: answer as the first time, never store it twice."""
        if seq == -1:  # an acknowledgement the policy withheld
            self.transport.ack(h.hid)
            return
        if seq == 0:  # an acknowledgement, passed on at once the first time
            strip_ours(h.inner)
            self.transport.release(h.hid, h.inner, bare(h.inner.get("from", "")))
            return
        await self.store.flush()
        if seq in self.open:
            self.transport.ack(h.hid)
            return
        m = await self.store.message_by_hid(h.hid)
        if m is not None and m.state in DELIVERED:
            # The release may have been lost with the connection; the server drops a duplicate.
            self.transport.release(h.hid, ET.fromstring(m.stanza), m.sender)
        else:
            self.transport.ack(h.hid)

    # -- holding: edits and recalls of messages still at the server ------------------

    def _apply_to_held(
        self, h: Handoff, target_seq: int, is_retract: bool, inner: ET.Element, sender_full: str, now: float
    ) -> bool:
        """Edit or recall a message still at the server with a XEP-0308/0424 stanza."""
        target = self.open.get(target_seq)
        hid = h.hid
        self.known_hids[hid] = (now, target_seq)
        if target is None or target_seq in self.sms_inflight:
            # Recalled before (nothing of it ever reaches the recipient, nor of this), or gone or
            # going as SMS (an SMS cannot be changed).
            self.store.queue_absorbed(hid, target_seq, "dropped", now)
        elif is_retract:
            self._recall_held(target, f"by {sender_full}", now)
            self.store.queue_absorbed(hid, target.seq, "recalled", now)
        else:
            self._correct_held(target, inner, f"by {sender_full}", now)
            self.store.queue_absorbed(hid, target.seq, "edited", now)
        self._after_commit(lambda: self.transport.ack(hid))
        return True

    def _recall_held(self, target: MessageRow, note: str, now: float) -> None:
        hop = apply(target.state, Event.RECALL, now, self.domain, note)
        self._close(target)
        target.state, target.updated = hop.state, now
        self._record(target, hop)
        self.store.queue_update(target)
        self.flush(target.recipient_bare)  # later messages may have waited behind it

    def _edit_held(self, target: MessageRow, new_body: str, note: str, now: float) -> None:
        hop = apply(target.state, Event.EDIT, now, self.domain, note)
        original = ET.fromstring(target.stanza)
        body = original.find(f"{{{NS_CLIENT}}}body")
        if body is None:
            body = ET.SubElement(original, f"{{{NS_CLIENT}}}body")
        body.text = new_body
        for html in original.findall(f"{{{NS_XHTML_IM}}}html"):
            original.remove(html)
        target.body = new_body
        target.stanza = stanzas.serialize(original)
        target.updated = now
        self._record(target, hop)
        self.store.queue_update(target)

    def _correct_held(self, target: MessageRow, correction: ET.Element, note: str, now: float) -> None:
        """A XEP-0308 correction from the sender's client: its whole payload-bearing part (body,
        encrypted elements, EME, fallback markers) replaces the held message's."""
        hop = apply(target.state, Event.EDIT, now, self.domain, note)
        original = ET.fromstring(target.stanza)
        e2ee.swap_payload(original, correction)
        target.body = stanzas.text(original)
        target.stanza = stanzas.serialize(original)
        target.updated = now
        self._record(target, hop)
        self.store.queue_update(target)

    # -- acknowledgements (XEP-0184, XEP-0333) -----------------------------------------

    def _acknowledged(
        self, h: Handoff, inner: ET.Element, sender: str, recipient_bare: str, ref: str, event: Event, now: float
    ) -> None:
        """A receipt or marker from *sender* (the recipient of the acknowledged message)."""
        if self.receipts.withholds(sender, recipient_bare, event):
            self.known_hids[h.hid] = (now, -1)
            self.transport.ack(h.hid)
            return
        # It goes on at once: nothing of the acknowledgement needs to wait for the store.
        self.known_hids[h.hid] = (now, 0)
        if self.before_acknowledgement is not None and stanzas.domain(recipient_bare) != self.domain:
            self.before_acknowledgement()
        if h.copy_kept:
            self.transport.release_copy(h.hid)
        else:
            self.transport.release(h.hid, inner, sender)
        self._spawn(self._note_acknowledgement(recipient_bare, sender, ref, event, now))

    async def _note_acknowledgement(
        self, original_sender: str, recipient: str, ref: str, event: Event, now: float
    ) -> None:
        turn = self.in_order.turn()  # (after a peer's report that came before it: its hops first)
        try:
            target = await self.find_committed(original_sender, recipient, ref)
            await turn.wait()
            if target is None:
                return
            live = self.open.get(target.seq)  # (cannot happen: acknowledged before release)
            if live is not None:
                return
            self.record_on(target, event, stanzas.domain(recipient), f"by {recipient}", now)
        finally:
            turn.done()

    # -- the server's fallback -----------------------------------------------------------

    def fallback(self, hids: Iterable[str]) -> None:
        """The server delivered these hand-offs itself: never release them."""
        now = time.time()
        for hid in metrics.fallbacks(self, hids):
            known = self.known_hids.get(hid)
            if known is None:
                # Older than the in-memory window (a notice re-sent at reconnect): ask the store.
                self._spawn(self._fallback_stored(hid))
                continue
            m = self.open.get(known[1])
            if m is not None and m.hid == hid:
                log.warning(
                    "Message %d (%s -> %s) was delivered by the server's fallback", m.seq, m.sender, m.recipient
                )
                note = "delivered by the server (fallback: Courier was late)"
                hop = apply(m.state, Event.RELEASE, now, self.domain, note)
                m.state, m.updated, m.hold_reason, m.release_at = hop.state, now, "", None
                self._close(m, keep_refs=False)
                self._record(m, hop)
                self.store.queue_update(m)
                self.flush(m.recipient_bare)

    async def _fallback_stored(self, hid: str) -> None:
        await self.store.flush()
        m = await self.store.message_by_hid(hid)
        if m is not None:
            self.known_hids[hid] = (time.time(), m.seq)
            self.fallback([hid])

    # -- the sender's own operations (courier-hops, commands) ---------------------

    def _held_by(self, sender: str, ref: str) -> MessageRow | None:
        for m in sorted(self.open.values(), key=lambda m: -m.seq):
            if m.sender == sender and ref in (m.msg_id, m.origin_id):
                return m
        return None

    async def _not_held(self, sender: str, ref: str) -> Exception:
        row = await self.store.find_sent(sender, ref)
        if row is None:
            return NotFound(ref)
        return TooLate(f"the message is already {row.state}")

    def pending(self, sender: str) -> list[MessageRow]:
        """*sender*'s messages still at the server, oldest first (then those held at a Courier peer)."""
        here = sorted((m for m in self.open.values() if m.sender == sender), key=lambda m: m.seq)
        return here + (self.remote.pending(sender) if self.remote is not None else [])

    async def trace(self, sender: str, ref: str) -> tuple[MessageRow, list[Hop]]:
        """The newest message of *sender* with id or origin-id *ref*, and its hops."""
        await self.store.flush()
        row = await self.store.find_sent(sender, ref)
        if row is None:
            raise NotFound(ref)
        return row, await self.store.hops(row.seq)

    async def recall(self, sender: str, ref: str, note: str = "by command") -> MessageRow:
        """Withdraw a held message of *sender*; durable when this returns."""
        m = self._held_by(sender, ref)
        if m is None and self.remote is not None:
            return await self.remote.recall(sender, ref, note)  # type: ignore[no-any-return]
        if m is None:
            raise await self._not_held(sender, ref)
        if m.seq in self.sms_inflight:
            raise TooLate("the message is being sent as SMS")
        self._recall_held(m, note, time.time())
        await self.store.flush()
        if m.hid is not None:  # her own message, archived and carbon-copied when she sent it
            self.transport.originate(sender_copy.recalled(m), m.sender)
        return m

    async def edit(self, sender: str, ref: str, body: str, note: str = "by command") -> MessageRow:
        """Replace the text of a held message of *sender*; durable when this returns."""
        if not body.strip():
            raise Invalid("the new text is empty")
        m = self._held_by(sender, ref)
        if m is None and self.remote is not None:
            return await self.remote.edit(sender, ref, body, note)  # type: ignore[no-any-return]
        if m is None:
            raise await self._not_held(sender, ref)
        if m.seq in self.sms_inflight:
            raise TooLate("the message is being sent as SMS")
        if encrypted(m):
            raise Encrypted()
        self._edit_held(m, body, note, time.time())
        await self.store.flush()
        return m


__all__ = [
    "POLICIES", "Encrypted", "Handoff", "NotFound", "Pipeline", "Report", "SmsFallback", "TooLate",
    "Transport", "encrypted", "send_stored", "strip_ours",
]  # fmt: skip

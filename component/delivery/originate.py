"""The one originate / passed-on path: messages Courier sends on a user's behalf (lists'
copies, fired drafts, confirmed receipts), messages to phone numbers tracked for the SMS
side, and the record that a correction or retraction of a delivered message was passed on
(hand-offs, lists' copies) and every hop recorded on a message after it left (receipts, a
remote server's bounce).  Lists, drafts, SMS and federation all go through here, so each
such message is tracked, held, released and reported like one the user sent."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from xml.etree import ElementTree as ET

from ..namespaces import NS_CLIENT, NS_RECEIPTS
from ..store import MessageRow
from . import stanzas
from .core import Core
from .ports import NotFound, send_stored
from .states import DELIVERED, Event, IllegalTransition, State, accept, apply

log = logging.getLogger(__name__)


class Originate(Core):
    """Messages Courier composes, and hops recorded on delivered messages."""

    async def originate(
        self,
        sender: str,
        recipient: str,
        body: str,
        *,
        msg_id: str | None = None,
        reports: bool = False,
        extra: Iterable[ET.Element] = (),
        note: str = "by Courier",
    ) -> MessageRow:
        """Send *body* from *sender* (bare JID) to *recipient* as a tracked message.

        It is held and released like a message the user sent (P1 and P2 apply);
        when released it passes the sender's archive and carbons.  Durable when
        this returns.
        """
        recipient_bare = stanzas.bare(recipient)
        msg_id = msg_id or uuid.uuid4().hex
        inner = stanzas.chat(sender, recipient, body, msg_id, msg_id, extra)
        token = None
        if stanzas.domain(recipient_bare) != self.domain:
            where = "remote"
            if self.remote is not None:  # tracked at a Courier peer like a hand-off (delivery/remote.py)
                token = self.remote.tracking(inner)
        else:
            where = "online" if self.online(recipient_bare) else "offline"
        now = time.time()
        self._track(
            None, where, now, inner, "message", f"{sender}/courier", sender, recipient,
            recipient_bare, reports or self.reports_on(sender), now, note,
        )  # fmt: skip
        if token is not None:
            self.store.queue_peer_track(token, self.seq, None)  # (in the message's commit)
        row = self.open.get(self.seq) or await self._committed(self.seq)
        await self.store.flush()
        return row

    def originate_own(self, message: ET.Element) -> None:
        """Send *message*, composed on the component's stream from Courier's own JID (a draft's
        reminder), the way every message Courier originates goes: kept in the outbox with the
        next commit, sent once committed, re-sent after a reconnect until the server confirms
        it routed it.  Durable after the next commit."""
        self._send_after_commit(None, stanzas.serialize(message), message.get("from", ""), kind="own")

    async def _committed(self, seq: int) -> MessageRow:
        await self.store.flush()
        row = await self.store.message(seq)
        assert row is not None
        return row

    async def track_sms(
        self,
        sender_full: str,
        recipient: str,
        body: str,
        *,
        msg_id: str,
        origin_id: str = "",
        wants_reports: bool = False,
        extra: Iterable[ET.Element] = (),
        note: str = "",
    ) -> MessageRow:
        """A message to a phone number's JID (under :attr:`sms_domain`): tracked like any message
        (accepted, reported, traceable), then submitted as SMS by the SMS side, never released
        over XMPP.  Durable when this returns."""
        now = time.time()
        sender = stanzas.bare(sender_full)
        inner = stanzas.chat(sender_full, recipient, body, msg_id, origin_id, extra)
        self.seq += 1
        row = MessageRow(
            self.seq, None, sender, sender_full.partition("/")[2], recipient, stanzas.bare(recipient), msg_id,
            origin_id, "message", body, stanzas.serialize(inner), State.ACCEPTED, "", None, now, now,
            wants_reports or self.reports_on(sender),
        )  # fmt: skip
        self.store.queue_message(row)
        self._record(row, accept(now, self.domain, note or f"from {sender_full}"))
        await self.store.flush()
        return row

    def record_on(self, target: MessageRow, event: Event, place: str, note: str, now: float | None = None) -> bool:
        """Record *event* on tracked message *target* after it left the server (a correction or
        retraction passed on, a receipt, a remote server's bounce) and report it to its sender
        if they asked.  Durable after the next commit; False when the hop is not legal in its
        state (a duplicate, "received" after "read", …): nothing new to say."""
        now = time.time() if now is None else now
        try:
            hop = apply(target.state, event, now, place, note)
        except IllegalTransition:
            return False
        target.state, target.updated = hop.state, now
        self._record(target, hop)
        self.store.queue_update(target)
        return True

    def passed_on(self, target: MessageRow | None, event: Event, note: str, now: float | None = None) -> bool:
        """Record on delivered message *target* that its correction (``Event.EDIT``) or
        retraction (``Event.RETRACT``) was passed on, and report it to its sender if they
        asked — the one passed-on path (hand-offs, lists' copies, …).  Durable after the
        next commit; False when there is nothing to record."""
        if target is None or target.state not in DELIVERED:
            return False
        return self.record_on(target, event, self.domain, note, now)

    async def _note_on_delivered(
        self, sender: str, recipient_bare: str, ref: str, is_retract: bool, now: float
    ) -> None:
        """A correction or retraction of an already delivered message was passed on."""
        target = await self.find_committed(sender, recipient_bare, ref)
        self.passed_on(target, Event.RETRACT if is_retract else Event.EDIT, "passed on", now)

    async def find_committed(self, sender: str, recipient_bare: str, ref: str) -> MessageRow | None:
        """The store's ``find_message``, after the commit that may still be under way for it (a
        message released before its commit, :meth:`Core._track`'s *early*, may be followed by an
        edit or receipt of it at once)."""
        target = await self.store.find_message(sender, recipient_bare, ref)
        if target is None and not self.store.idle:
            await self.store.flush()
            target = await self.store.find_message(sender, recipient_bare, ref)
        return target

    async def resend_unconfirmed(self) -> None:
        """Releases and originated messages the server never confirmed: send them again
        (same hand-off id / token: the server drops what it already routed).  At each connect."""
        await self.store.flush()
        rows = await self.store.outbox.unconfirmed()
        if rows:
            log.info("Re-sending %d releases and messages the server did not confirm", len(rows))
        for row in rows:
            send_stored(self.transport, row.kind, row.token, row.stanza, row.sender)

    async def confirm(self, user: str, ref: str, sender: str | None = None) -> MessageRow:
        """*user* confirms receiving message *ref* (manual receipt policy): Courier sends the
        receipt to its sender."""
        await self.store.flush()
        m = await self.store.find_received(user, ref, sender)
        if m is None:
            raise NotFound(ref)
        receipt = ET.Element(f"{{{NS_CLIENT}}}message", {"to": m.sender, "type": "chat", "id": uuid.uuid4().hex})
        ET.SubElement(receipt, f"{{{NS_RECEIPTS}}}received", id=m.msg_id or m.origin_id)
        self.record_on(m, Event.RECEIVE, stanzas.domain(user), f"confirmed by {user}")
        self._send_after_commit(None, stanzas.serialize(receipt), user)
        await self.store.flush()
        return m

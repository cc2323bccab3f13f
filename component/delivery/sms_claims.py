"""The SMS claim protocol (P3): how the SMS side takes a held message off the XMPP path.

A message held for an offline recipient is offered to the SMS side
(:meth:`Core._offer_sms`).  Before submitting it the SMS side *claims* it: from then on it
is not released over XMPP until the claim is given back (nothing submitted) or the outcome
is recorded (``sms``, ``sms-delivered`` or ``failed``) — never both.  An SMS *notice* of an
encrypted message leaves the message held for XMPP."""

from __future__ import annotations

import time

from ..store import MessageRow
from .core import Core
from .states import Event, IllegalTransition, State, annotate, apply


class SmsClaims(Core):
    """Held messages as the SMS side sees them."""

    def waiting_offline(self, seq: int) -> MessageRow | None:
        """Held message *seq*, if it still waits for an offline recipient (for an SMS notice,
        which leaves the message held for XMPP)."""
        m = self.open.get(seq)
        if m is None or m.state is not State.HELD or m.hold_reason != "recipient-offline":
            return None
        return None if self.online(m.recipient_bare) else m

    async def sms_notice_hop(self, seq: int, place: str, note: str) -> MessageRow | None:
        """Record that an SMS *notice* of held message *seq* went out (hop ``sms``): the message
        itself stays held for XMPP.  None if it is not held any more.  Durable when this returns."""
        m = self.open.get(seq)
        if m is None:
            return None
        try:
            hop = annotate(m.state, Event.SMS, time.time(), place, note)
        except IllegalTransition:
            return None
        self._record(m, hop)
        await self.store.flush()
        return m

    def sms_claim(self, seq: int) -> MessageRow | None:
        """The SMS side is about to submit held message *seq*.  If it still waits for an offline
        recipient it is returned, and not released until :meth:`sms_unclaim` or :meth:`sms_hop`:
        the recipient coming online wins only before this.  None: XMPP won (or it was recalled)."""
        m = self.open.get(seq)
        if m is None or m.state is not State.HELD or m.hold_reason != "recipient-offline":
            return None
        if self.online(m.recipient_bare) or seq in self.sms_inflight:
            return None
        self.sms_inflight.add(seq)
        return m

    def sms_unclaim(self, seq: int) -> None:
        """The attempt did not submit it: it waits again, and goes over XMPP if the recipient is here."""
        self.sms_inflight.discard(seq)
        m = self.open.get(seq)
        if m is not None:
            self.flush(m.recipient_bare)

    async def sms_hop(self, seq: int, event: Event, place: str, note: str = "") -> MessageRow | None:
        """Record an SMS hop of message *seq* — ``sms`` (submitted), ``sms-delivered``, or ``failed`` —
        and report it; durable when this returns.  None when the message is unknown or the hop
        is not legal in its state (a duplicate report, an outcome already recorded)."""
        self.sms_inflight.discard(seq)
        m = self.open.get(seq)
        if m is None:
            await self.store.flush()
            m = await self.store.message(seq)
            if m is None:
                return None
        now = time.time()
        try:
            hop = apply(m.state, event, now, place, note)
        except IllegalTransition:
            return None
        was_open = seq in self.open
        if was_open:
            # Like a recall: its refs stay, so that a late correction or retraction of it is
            # absorbed; nothing of it ever reaches the recipient's XMPP client.
            self._close(m)
        m.state, m.updated, m.release_at = hop.state, now, None
        self._record(m, hop)
        self.store.queue_update(m)
        if was_open:
            self.flush(m.recipient_bare)  # later messages may have waited behind it
        await self.store.flush()
        return m

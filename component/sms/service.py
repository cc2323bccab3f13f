"""SMS fallback (P3): the core, between the delivery pipeline, the store and an SMS transport.

:class:`SmsService` owns

- **phone numbers**: a user registers an E.164 number, gets a code by SMS and
  activates the number with it; codes expire, wrong codes and codes sent are
  limited; a number is active for one user at a time; SMS fallback is on once
  a number is verified and can be turned off;
- **fallback**: the pipeline tells it of every message held for an offline
  recipient (:meth:`held_offline`); if the recipient has an active number with
  fallback on, an outbox entry is queued.  When it is due the message is
  *claimed* from the pipeline — only if it still waits for an offline
  recipient: if the recipient came online first, XMPP won and no SMS is sent —
  and submitted; from then on it is never released over XMPP (never both);
- **the outbox**: every SMS (fallback, direct to a number JID, verification
  code) is an entry with attempts and an outcome.  A gateway that did not take
  an SMS is retried with exponential back-off, and the SMS fails after
  ``max_attempts``; an attempt whose outcome is unknown (Courier stopped, or
  the gateway did not answer) is never resent, so nothing is sent twice;
- **reports**: delivery reports are mapped back (transport id → outbox entry →
  tracked message) and become the hops ``sms-delivered`` or ``failed``;
- **rate limits**: SMS parts per user and hour (fallback and direct), codes per
  user or number and hour;
- **inbound**: a mobile-originated SMS goes to the user whose active number it
  was sent to (or, sent to the gateway's own number, to whoever last wrote to
  that phone from it), from ``+<E.164>@<Courier's JID>``.  If the sending
  number is another user's active number, it arrives from that user's XMPP JID
  instead, marked ``<sms/>`` — one conversation per person — and never goes
  out again as SMS.

The fallback offer and the outbox are in :mod:`.outbox` (the base class), the values in
:mod:`.model`.  It knows nothing of XMPP streams: the XMPP side (:mod:`.xmpp`) implements
:class:`SmsDelivery`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Iterable
from xml.etree import ElementTree as ET

from ..delivery.states import Event
from ..namespaces import NS_RECEIPTS, NS_SMS
from ..store.sms import DELIVERED, FAILED, QUEUED, SENDING, SUBMITTED, NumberRow, NumberTaken
from . import transport as tp
from .encoding import fit, measure
from .model import HOUR, NumberStatus, SmsDelivery, SmsError, SmsSettings, code_hash
from .numbers import BadNumber, display, normalize, number_jid, number_of
from .outbox import TIMER, SmsOutbox

log = logging.getLogger(__name__)


class SmsService(SmsOutbox):
    """Phone numbers, SMS fallback, the outbox and inbound SMS of one Courier."""

    # -- life cycle ------------------------------------------------------------

    async def start(self) -> None:
        """Load numbers, settle what a stop interrupted, start the transport and the outbox."""
        for number in await self.store.sms.numbers():
            self._remember(number)
        for entry in await self.store.sms.in_state(SENDING):
            # Its request may have reached the gateway: never resend (a report may still come).
            await self._submitted(entry, [], "Courier stopped during the submission: assumed submitted, not resent")
        for entry in await self.store.sms.in_state(QUEUED):
            if entry.purpose in ("fallback", "notice") and entry.message_seq is not None:
                self.offered.add(entry.message_seq)
        for m in list(self.pipeline.open.values()):
            if m.hold_reason == "recipient-offline" and m.kind == "message":
                self.held_offline(m)  # held while Courier was down, or offered and not yet queued
        await self.transport.start(self.on_inbound, self.on_report)
        self._wake()  # the outbox's timer: what is due now, then the next entry's next_at
        log.info("SMS fallback on (%s); %d verified numbers", self.transport.name, len(self.owners))

    async def stop(self) -> None:
        self._stopping = True
        await self.scheduler.end(TIMER)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self.transport.stop()

    async def drain(self) -> None:
        """Wait for background work (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _remember(self, row: NumberRow) -> None:
        old = self.rows.get(row.jid)
        if old is not None and old.number and self.owners.get(old.number) == row.jid:
            del self.owners[old.number]
        self.rows[row.jid] = row
        if row.number:
            self.owners[row.number] = row.jid

    # -- phone numbers -----------------------------------------------------------

    def status(self, user: str) -> NumberStatus:
        row = self.rows.get(user)
        if row is None:
            return NumberStatus(None, False, None, None)
        expired = row.code_expires is not None and row.code_expires < time.time()
        pending = None if expired else row.pending
        return NumberStatus(row.number, row.fallback, pending, row.code_expires if pending else None)

    def normalize(self, text: str) -> str:
        """*text* as E.164, or :class:`SmsError` (``bad-request``) saying why."""
        try:
            return normalize(text, self.settings.region)
        except BadNumber as exc:
            raise SmsError("bad-request", str(exc)) from None

    def jid_for(self, text: str) -> str:
        """The JID of a phone number (XEP-0100 ``jabber:iq:gateway``)."""
        return number_jid(self.normalize(text), self.component)

    async def register(self, user: str, text: str) -> NumberStatus:
        """Start verifying *text* (any spelling) for *user*: a code goes to it by SMS."""
        number = self.normalize(text)
        owner = self.owners.get(number)
        if owner is not None and owner != user:
            raise SmsError("conflict", f"{display(number)} is the verified number of another account.")
        current = self.status(user)
        if current.number == number:
            return current  # already verified: nothing to do
        if current.pending == number:
            return current  # a valid code is on its way; "verify CODE" (it can be asked again once expired)
        now = time.time()
        if await self.store.sms.codes_since(user, number, now - HOUR) >= self.settings.codes_per_hour:
            raise SmsError(
                "resource-constraint",
                f"At most {self.settings.codes_per_hour} codes an hour may be sent; try again later.",
            )
        code = f"{secrets.randbelow(10**6):06d}"
        row = await self.store.sms.set_pending(
            user, number, code_hash(user, number, code), now + self.settings.code_ttl, now
        )
        self._remember(row)
        minutes = max(1, round(self.settings.code_ttl / 60))
        text = f"Courier: your code for {user} is {code}. It expires in {minutes} minutes."
        await self._queue("code", None, user, self.settings.sender, number, text, now)
        log.info("SMS: verification code for %s queued to %s", user, number)
        return self.status(user)

    async def verify(self, user: str, code: str) -> NumberStatus:
        """Activate *user*'s pending number with *code*."""
        row = self.rows.get(user)
        now = time.time()
        if row is None or not row.pending:
            raise SmsError("item-not-found", "No number is waiting for a code: register one first.")
        if row.code_expires is None or row.code_expires < now:
            raise SmsError("not-allowed", "The code has expired: register the number again for a new one.")
        if row.code_tries >= self.settings.code_tries:
            raise SmsError("not-allowed", "Too many wrong codes: register the number again for a new one.")
        digits = "".join(c for c in code if c.isdigit())
        if not row.code_hash or not hmac.compare_digest(code_hash(user, row.pending, digits), row.code_hash):
            await self.store.sms.count_try(user, now)
            row.code_tries += 1
            raise SmsError("not-acceptable", "That is not the code that was sent.")
        owner = self.owners.get(row.pending)
        if owner is not None and owner != user:
            raise SmsError("conflict", f"{display(row.pending)} is the verified number of another account.")
        try:
            row = await self.store.sms.activate(user, now)
        except NumberTaken:
            raise SmsError("conflict", "That number is the verified number of another account.") from None
        self._remember(row)
        log.info("SMS: %s verified %s", user, row.number)
        return self.status(user)

    async def remove(self, user: str) -> None:
        """Forget *user*'s numbers; SMS fallback stops at once."""
        await self.store.sms.remove(user)
        row = self.rows.pop(user, None)
        if row is not None and row.number and self.owners.get(row.number) == user:
            del self.owners[row.number]

    async def set_fallback(self, user: str, on: bool) -> NumberStatus:
        row = self.rows.get(user)
        if row is None or not row.number:
            raise SmsError("item-not-found", "Register and verify a phone number first.")
        await self.store.sms.set_fallback(user, on, time.time())
        row.fallback = on
        if on:
            for m in list(self.pipeline.open.values()):
                if m.recipient_bare == user and m.hold_reason == "recipient-offline" and m.kind == "message":
                    self.held_offline(m)
        return self.status(user)

    # -- messages to number JIDs (called by the XMPP side) ----------------------------

    async def send_direct(
        self,
        sender_full: str,
        localpart: str,
        body: str,
        *,
        msg_id: str,
        origin_id: str = "",
        wants_reports: bool = False,
        extra: Iterable[ET.Element] = (),
    ) -> None:
        """*sender_full* wrote *body* to ``localpart@<Courier's JID>``: SMS to that number.

        If the number is another user's verified number, the message goes to that user's XMPP
        JID instead (network first; SMS only if they are offline with fallback on)."""
        try:
            number = number_of(localpart, self.settings.region)
        except BadNumber as exc:
            raise SmsError("item-not-found", f"{exc} Write to +<number>@{self.component}.") from None
        sender = sender_full.partition("/")[0]
        owner = self.owners.get(number)
        if owner is not None and owner != sender:
            await self.pipeline.originate(
                sender, owner, body, msg_id=msg_id or None, reports=wants_reports, extra=extra,
                note=f"from {sender_full} to {number}: the verified number of {owner}",
            )  # fmt: skip
            return
        now = time.time()
        from_number, text = self._compose(sender, body)
        parts = measure(fit(text, self.settings.max_parts)).parts
        m = await self.pipeline.track_sms(
            sender_full, number_jid(number, self.component), body, msg_id=msg_id, origin_id=origin_id,
            wants_reports=wants_reports, extra=extra,
        )  # fmt: skip
        async with self._quota:
            over = await self._over_limit(sender, parts, now)
            if not over:
                await self._queue("direct", m.seq, sender, from_number, number, text, now)
        if over:
            limit = self.settings.parts_per_hour
            await self.pipeline.sms_hop(m.seq, Event.FAIL, self.component, f"rate limit: {limit} SMS an hour")
            raise SmsError("resource-constraint", f"You may send at most {limit} SMS an hour; try again later.")
        if from_number == self.settings.sender:
            await self.store.sms.set_contact(number, sender, now)

    # -- from the gateway ----------------------------------------------------------------

    async def on_report(self, report: tp.DeliveryReport) -> None:
        """A delivery report: the SMS reached the phone (``sms-delivered``) or not (``failed``)."""
        found = await self.store.sms.by_transport_id(report.transport_id)
        if found is None:
            log.info("SMS: report for an unknown id %r (%s)", report.transport_id, report.outcome)
            return
        if report.outcome not in (tp.DELIVERED, tp.FAILED):
            log.debug("SMS %s: %s %s", found.ref, report.outcome, report.detail)
            return
        async with self._lock(found.id):  # after the attempt that sent it has recorded it
            now = time.time()
            if report.outcome == tp.DELIVERED:
                row = await self.store.sms.move(
                    found.id, DELIVERED, from_states=(SUBMITTED,), note=report.detail, now=now
                )
                event, note = Event.SMS_DELIVER, f"delivered to {display(found.recipient)}"
            else:
                row = await self.store.sms.move(found.id, FAILED, from_states=(SUBMITTED,), note=report.detail, now=now)
                event, note = Event.FAIL, f"SMS not delivered: {report.detail or 'the SMSC gave up'}"
            if row is None:
                return  # a duplicate, or a later report of a multi-part SMS
            self._locks.pop(found.id, None)
            if row.message_seq is None or row.purpose == "notice":
                return  # a notice's fate is not the message's: that one still waits for XMPP
            m = await self.pipeline.sms_hop(row.message_seq, event, number_jid(row.recipient, self.component), note)
            if m is not None and event is Event.SMS_DELIVER and row.purpose == "direct" and NS_RECEIPTS in m.stanza:
                self.delivery.receipt(row.recipient, m.sender, m.msg_id or m.origin_id)

    async def on_inbound(self, sms: tp.InboundSms) -> None:
        """A mobile-originated SMS: to the user who owns the number it was sent to."""
        now = time.time()
        sender = self._canonical(sms.sender)
        recipient = self._canonical(sms.recipient)
        key = (
            sms.transport_id
            or hashlib.sha256(f"{sender}\n{recipient}\n{sms.text}\n{int(now // 60)}".encode()).hexdigest()
        )
        if not await self.store.sms.take_inbound(key, sender, recipient, now):
            log.info("SMS: duplicate inbound %s from %s ignored", key, sender)
            return
        try:
            user = self.owners.get(recipient)
            if user is None and (not recipient or recipient == self.settings.sender):
                user = await self.store.sms.contact(sender)  # a reply to the gateway's number
            if user is None:
                log.warning("SMS from %s to %s: no user has that number; dropped", sender, recipient)
                return
            via = self.owners.get(sender)
            if via is not None and via != user:
                marker = ET.Element(f"{{{NS_SMS}}}sms", number=sender)
                await self.pipeline.originate(via, user, sms.text, extra=[marker], note=f"by SMS from {sender}")
            else:
                self.delivery.inbound(sender, user, sms.text)
            await self.store.sms.inbound_delivered(key, user)
            log.info("SMS from %s delivered to %s%s", sender, user, f" as {via}" if via and via != user else "")
        except BaseException:
            await self.store.sms.forget_inbound(key)  # not taken: the gateway's retry gets through
            raise

    def _canonical(self, number: str) -> str:
        """A gateway's number as E.164 when it is one; short codes and names stay as they are."""
        try:
            return normalize(number, self.settings.region)
        except BadNumber:
            return number.strip()


__all__ = ["NS_SMS", "NumberStatus", "SmsDelivery", "SmsError", "SmsService", "SmsSettings"]

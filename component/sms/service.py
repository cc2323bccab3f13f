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

It knows nothing of XMPP streams: the XMPP side (:mod:`.xmpp`) implements
:class:`SmsDelivery`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from xml.etree import ElementTree as ET

from ..delivery.pipeline import Pipeline, encrypted
from ..delivery.states import Event
from ..namespaces import NS_RECEIPTS, NS_SMS
from ..store import MessageRow, Store
from ..store.sms import CANCELLED, DELIVERED, FAILED, QUEUED, SENDING, SUBMITTED, NumberRow, NumberTaken, OutboxRow
from ..tasks import spawn, supervise
from . import transport as tp
from .encoding import fit, measure
from .numbers import BadNumber, display, normalize, number_jid, number_of

log = logging.getLogger(__name__)

HOUR = 3600.0


class SmsError(Exception):
    """An expected failure: an XMPP error condition and a sentence for the user."""

    def __init__(self, condition: str, text: str) -> None:
        super().__init__(text)
        self.condition = condition
        self.text = text


@dataclass(frozen=True, slots=True)
class SmsSettings:
    """The ``sms.*`` options the core uses (component/config.py documents them)."""

    sender: str = ""  # the gateway's own number: codes, and users without a verified number
    region: str = ""  # numbers without "+" are read in this region
    max_attempts: int = 5
    retry_delay: float = 2.0  # first back-off; doubles with every attempt
    retry_max: float = 300.0
    fallback_delay: float = 0.0  # how long a held message waits before it goes as SMS
    max_parts: int = 6
    code_ttl: float = 600.0
    codes_per_hour: int = 3
    code_tries: int = 5
    parts_per_hour: int = 30  # SMS parts one user may cause per hour (fallback + direct)
    #: sent instead of an end-to-end encrypted message, which stays held for XMPP
    encrypted_notice: str = "{sender} sent you an end-to-end encrypted message; open your XMPP app to read it."

    @classmethod
    def from_config(cls, config: Any) -> SmsSettings:
        return cls(
            sender=str(config["sms.sender"]),
            region=str(config["sms.region"]),
            max_attempts=int(config["sms.max_attempts"]),
            retry_delay=float(config["sms.retry_delay"]),
            fallback_delay=float(config["sms.fallback_delay"]),
            max_parts=int(config["sms.max_parts"]),
            code_ttl=float(config["sms.code_ttl"]),
            codes_per_hour=int(config["sms.codes_per_hour"]),
            parts_per_hour=int(config["sms.parts_per_hour"]),
            encrypted_notice=str(config["sms.encrypted_notice"]),
        )


@dataclass(frozen=True, slots=True)
class NumberStatus:
    """What a user has: an active number (and fallback), a number waiting for its code."""

    number: str | None
    fallback: bool
    pending: str | None
    expires: float | None

    def describe(self) -> str:
        if self.number:
            text = f"Your number: {display(self.number)} (verified). SMS fallback: " + (
                "on — messages sent to you while you are offline come as SMS."
                if self.fallback
                else "off — messages wait until you are online."
            )
        else:
            text = "You have no verified phone number."
        if self.pending:
            text += f" Waiting for the code sent to {display(self.pending)}: send “verify CODE”."
        return text


class SmsDelivery(Protocol):
    """What the core needs from the XMPP side."""

    def inbound(self, number: str, user: str, text: str) -> None:
        """Deliver an SMS from *number* (E.164, or the sender as the gateway gave it) to *user*."""
        ...

    def receipt(self, number: str, user: str, msg_id: str) -> None:
        """Tell *user* (XEP-0184) that their message *msg_id* to *number* was delivered."""
        ...

    def notify(self, user: str, text: str) -> None:
        """A line from Courier to *user* (e.g. a verification code could not be sent)."""
        ...


def _code_hash(user: str, number: str, code: str) -> str:
    return hashlib.sha256(f"{user}\n{number}\n{code}".encode()).hexdigest()


class SmsService:
    """Phone numbers, SMS fallback, the outbox and inbound SMS of one Courier."""

    def __init__(
        self,
        store: Store,
        pipeline: Pipeline,
        transport: tp.SmsTransport,
        settings: SmsSettings,
        *,
        component: str,
        delivery: SmsDelivery,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.transport = transport
        self.settings = settings
        self.component = component
        self.delivery = delivery
        self.rows: dict[str, NumberRow] = {}  # user -> their numbers
        self.owners: dict[str, str] = {}  # active number -> user
        self.offered: set[int] = set()  # message seqs with a live (queued/sending) fallback entry
        self._busy: set[int] = set()  # outbox ids with an attempt under way
        self._locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._quota = asyncio.Lock()  # a limit check and the entry it admits, one at a time
        self._worker: asyncio.Task[None] | None = None
        self._stopping = False

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
        self._worker = asyncio.create_task(
            supervise("The SMS outbox", self._run, lambda: self._stopping), name="courier-sms-outbox"
        )
        log.info("SMS fallback on (%s); %d verified numbers", self.transport.name, len(self.owners))

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        spawn(coro, self._tasks, "An SMS task")

    def _lock(self, outbox_id: int) -> asyncio.Lock:
        lock = self._locks.get(outbox_id)
        if lock is None:
            lock = self._locks[outbox_id] = asyncio.Lock()
        return lock

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
            user, number, _code_hash(user, number, code), now + self.settings.code_ttl, now
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
        if not row.code_hash or not hmac.compare_digest(_code_hash(user, row.pending, digits), row.code_hash):
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

    # -- fallback (called by the pipeline) ------------------------------------------

    def held_offline(self, m: MessageRow) -> None:
        """*m* waits for its offline recipient: queue it as SMS if the recipient wants that."""
        row = self.rows.get(m.recipient_bare)
        if row is None or not row.number or not row.fallback or m.seq in self.offered:
            return
        if NS_SMS in m.stanza:
            return  # it came in by SMS: the recipient's phone has it already
        purpose = "notice" if encrypted(m) else "fallback"  # never an encrypted message's fallback body
        if purpose == "fallback" and not m.body:
            return  # nothing to read (a chat state, say)
        self.offered.add(m.seq)
        self._spawn(self._offer(m, row.number, purpose))

    def _notice(self, sender: str) -> tuple[str, str]:
        """(from, text) of the SMS notice of an encrypted message from *sender*: never its
        fallback sentence; from the sender's own verified number, else the gateway's."""
        own = self.rows.get(sender)
        text = self.settings.encrypted_notice.replace("{sender}", sender)
        return (own.number if own is not None and own.number else self.settings.sender), text

    async def _offer(self, m: MessageRow, number: str, purpose: str) -> None:
        """Queue *m* as SMS (``fallback``), or for an end-to-end encrypted message, whose text
        cannot go as SMS, a notice (``notice``, once a message; the message stays held for XMPP)."""
        now = time.time()
        try:
            if purpose == "notice" and await self.store.sms.noticed(m.seq):
                return  # sent (or queued) before a restart: one notice a message
            sender, text = self._notice(m.sender) if purpose == "notice" else self._compose(m.sender, m.body or "")
            parts = measure(fit(text, self.settings.max_parts)).parts
            async with self._quota:
                if await self._over_limit(m.sender, parts, now):
                    log.info("SMS: %s is over the hourly limit; message %d waits for XMPP", m.sender, m.seq)
                    self.offered.discard(m.seq)
                    return
                at = now + self.settings.fallback_delay
                await self._queue(purpose, m.seq, m.sender, sender, number, text, at)
            if sender == self.settings.sender:
                await self.store.sms.set_contact(number, m.sender, now)
        except BaseException:
            self.offered.discard(m.seq)
            raise

    def _compose(self, sender: str, body: str) -> tuple[str, str]:
        """(from, text) of an SMS for *sender*: from their own verified number as they wrote it,
        else from the gateway's number, with their JID in front so the phone's owner knows."""
        own = self.rows.get(sender)
        if own is not None and own.number:
            return own.number, body
        return self.settings.sender, f"{sender}: {body}"

    async def _over_limit(self, owner: str, parts: int, now: float) -> bool:
        used = await self.store.sms.sent_since(owner, now - HOUR, ("fallback", "notice", "direct"))
        return used + parts > self.settings.parts_per_hour

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

    # -- the outbox ------------------------------------------------------------------

    async def _queue(
        self, purpose: str, seq: int | None, owner: str, sender: str, recipient: str, text: str, at: float
    ) -> OutboxRow:
        text = fit(text, self.settings.max_parts)
        m = measure(text)
        row = await self.store.sms.queue(
            ref=uuid.uuid4().hex, purpose=purpose, message_seq=seq, owner=owner, sender=sender,
            recipient=recipient, text=text, encoding=m.encoding, parts=m.parts, next_at=at, now=time.time(),
        )  # fmt: skip
        self._wake.set()
        return row

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            now = time.time()
            for row in await self.store.sms.due(now):
                if row.id not in self._busy:
                    self._busy.add(row.id)
                    self._spawn(self._attempt(row))
            next_at = await self.store.sms.next_due(exclude=self._busy)
            timeout = None if next_at is None else max(0.0, next_at - time.time())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _attempt(self, row: OutboxRow) -> None:
        try:
            async with self._lock(row.id):
                sender, text = row.sender, row.text
                if row.purpose == "fallback":
                    assert row.message_seq is not None
                    m = self.pipeline.sms_claim(row.message_seq)
                    if m is None:  # the recipient came online (XMPP won), or it was recalled
                        await self.store.sms.move(
                            row.id, CANCELLED, from_states=(QUEUED,), note="not held any more", now=time.time()
                        )
                        self.offered.discard(row.message_seq)
                        return
                    if encrypted(m):  # corrected into an encrypted message since it was queued
                        self.pipeline.sms_unclaim(row.message_seq)
                        note = "encrypted: a notice instead"
                        await self.store.sms.move(row.id, CANCELLED, from_states=(QUEUED,), note=note, now=time.time())
                        self.offered.discard(row.message_seq)
                        self.held_offline(m)
                        return
                    sender, text = self._compose(m.sender, m.body or "")  # edits up to now apply
                elif row.purpose == "notice":
                    assert row.message_seq is not None
                    if self.pipeline.waiting_offline(row.message_seq) is None:  # XMPP won, or recalled
                        await self.store.sms.move(
                            row.id, CANCELLED, from_states=(QUEUED,), note="not held any more", now=time.time()
                        )
                        return
                text = fit(text, self.settings.max_parts)
                size = measure(text)
                started = await self.store.sms.start_attempt(
                    row.id, sender=sender, text=text, encoding=size.encoding, parts=size.parts, now=time.time()
                )
                if started is None:
                    return
                sms = tp.OutgoingSms(started.ref, sender, started.recipient, text, size.encoding)
                try:
                    ids = await self.transport.send(sms)
                except tp.GatewayUnavailable as exc:
                    await self._not_taken(started, str(exc))
                except tp.GatewayRejected as exc:
                    await self._give_up(started, str(exc))
                except tp.GatewayUncertain as exc:
                    await self._submitted(started, [], f"{exc}: assumed submitted, not resent")
                else:
                    await self._submitted(started, ids)
        finally:
            if row.purpose == "fallback" and row.message_seq in self.pipeline.sms_inflight:
                assert row.message_seq is not None
                self.pipeline.sms_unclaim(row.message_seq)  # not submitted after all (or an error)
            self._busy.discard(row.id)
            self._wake.set()

    async def _submitted(self, row: OutboxRow, ids: list[str], note: str = "") -> None:
        now = time.time()
        moved = await self.store.sms.move(row.id, SUBMITTED, from_states=(SENDING,), note=note, now=now)
        if moved is None:
            return
        if ids:
            await self.store.sms.add_transport_ids(row.id, ids)
        log.info("SMS %s (%s, %d part(s)) submitted to %s", row.ref, row.purpose, row.parts, row.recipient)
        if row.purpose == "notice" and row.message_seq is not None:
            # The message itself stays held for XMPP; the hop says only a notice went.
            await self.pipeline.sms_notice_hop(row.message_seq, self.component, "notice: encrypted")
        elif row.message_seq is not None:
            self.offered.discard(row.message_seq)
            detail = f"to {display(row.recipient)} via {self.transport.name}: {row.parts} part(s), {row.encoding}"
            await self.pipeline.sms_hop(row.message_seq, Event.SMS, self.component, note or detail)

    async def _not_taken(self, row: OutboxRow, error: str) -> None:
        if row.attempts >= self.settings.max_attempts:
            await self._give_up(row, f"SMS gateway unavailable after {row.attempts} attempts ({error})")
            return
        delay = min(self.settings.retry_max, self.settings.retry_delay * 2 ** (row.attempts - 1))
        now = time.time()
        await self.store.sms.move(row.id, QUEUED, from_states=(SENDING,), note=error, now=now, next_at=now + delay)
        log.warning("SMS %s not taken (attempt %d): %s; retrying in %.1f s", row.ref, row.attempts, error, delay)
        if row.purpose == "fallback" and row.message_seq is not None:
            self.pipeline.sms_unclaim(row.message_seq)  # the recipient may come online meanwhile: XMPP wins

    async def _give_up(self, row: OutboxRow, reason: str) -> None:
        moved = await self.store.sms.move(row.id, FAILED, from_states=(SENDING,), note=reason, now=time.time())
        if moved is None:
            return
        log.warning("SMS %s to %s failed: %s", row.ref, row.recipient, reason)
        if row.purpose == "notice":
            return  # only a notice: the message still waits for XMPP, unharmed
        if row.message_seq is not None:
            self.offered.discard(row.message_seq)
            await self.pipeline.sms_hop(row.message_seq, Event.FAIL, self.component, reason)
        elif row.purpose == "code":
            self.delivery.notify(row.owner, f"The code could not be sent to {display(row.recipient)}: {reason}.")

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

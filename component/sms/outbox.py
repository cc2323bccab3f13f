"""SMS fallback (P3): the fallback offer and the outbox of :class:`~.service.SmsService`.

- **fallback**: the pipeline tells the service of every message held for an offline
  recipient (:meth:`SmsOutbox.held_offline`); if the recipient has an active number with
  fallback on, an outbox entry is queued.  When it is due the message is *claimed* from
  the pipeline (:mod:`component.delivery.sms_claims`) — only if it still waits for an
  offline recipient: if the recipient came online first, XMPP won and no SMS is sent —
  and submitted; from then on it is never released over XMPP (never both);
- **the outbox**: every SMS (fallback, direct to a number JID, verification code) is an
  entry with attempts and an outcome.  A gateway that did not take an SMS is retried with
  exponential back-off, and the SMS fails after ``max_attempts``; an attempt whose
  outcome is unknown (Courier stopped, or the gateway did not answer) is never resent, so
  nothing is sent twice.  The outbox has one timer on the app's scheduler
  (component/scheduler.py), :data:`TIMER`: it rings when the earliest entry is due (its
  ``next_at`` in the store, so the outbox resumes after a restart) and whenever an entry is
  queued or an attempt ends; each ring starts the due attempts and sets it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from ..delivery.pipeline import Pipeline, encrypted
from ..delivery.states import Event
from ..namespaces import NS_SMS
from ..scheduler import Scheduler
from ..store import MessageRow, Store
from ..store.sms import CANCELLED, FAILED, QUEUED, SENDING, SUBMITTED, NumberRow, OutboxRow
from ..tasks import spawn
from . import transport as tp
from .encoding import fit, measure
from .model import HOUR, SmsDelivery, SmsSettings
from .numbers import display

log = logging.getLogger("component.sms.service")

#: The outbox's one timer on the scheduler.
TIMER = ("sms", "outbox")
#: After a failure of the outbox's round (the store, say), the first back-off (doubling).
RETRY = 0.5


class SmsOutbox:
    """The SMS core's state, the fallback offer, and the outbox worker."""

    def __init__(
        self,
        store: Store,
        pipeline: Pipeline,
        transport: tp.SmsTransport,
        settings: SmsSettings,
        *,
        component: str,
        delivery: SmsDelivery,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.store = store
        self.scheduler = scheduler or pipeline.scheduler
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
        self._quota = asyncio.Lock()  # a limit check and the entry it admits, one at a time
        self._stopping = False

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        spawn(coro, self._tasks, "An SMS task")

    def _lock(self, outbox_id: int) -> asyncio.Lock:
        lock = self._locks.get(outbox_id)
        if lock is None:
            lock = self._locks[outbox_id] = asyncio.Lock()
        return lock

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
        self._wake()
        return row

    def _wake(self) -> None:
        """Look at the outbox now (an entry was queued, an attempt ended)."""
        if not self._stopping:
            self.scheduler.soon(TIMER, self._run, retry=RETRY)

    async def _run(self) -> None:
        """The outbox's timer rang: start the due attempts, set it for the next entry due (a
        failure here is logged and the timer rings again after a back-off: the scheduler's)."""
        now = time.time()
        for row in await self.store.sms.due(now):
            if row.id not in self._busy:
                self._busy.add(row.id)
                self._spawn(self._attempt(row))
        next_at = await self.store.sms.next_due(exclude=self._busy)
        if next_at is not None and not self._stopping:
            self.scheduler.at(next_at, TIMER, self._run, earliest=True, retry=RETRY)

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
            self._wake()

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

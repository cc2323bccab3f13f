"""Drafts (P5): server-stored drafts, their send triggers, reminders and roaming.

:class:`DraftService` owns the drafts of every user:

- **storage**: create, update, delete, list; numbered per author; only the
  author ever sees or touches a draft (anybody else gets :class:`DraftNotFound`);
  per-user limits (:class:`Limits`).
- **triggers**: ``at`` (a UTC instant, written in a time zone), ``target-online``,
  ``message-from`` a contact, or ``manual``.  A trigger fires through a *claim*
  in the store (one SQL statement that checks the draft is still pending and its
  trigger still holds), so an edit or a deletion racing a trigger makes the draft
  fire exactly once or not at all.
- **one timer**: the scheduler keeps no per-draft state in memory.  It asks the
  store when the next time trigger is due (an index lookup) and sets one timer
  for it (at most :data:`MAX_SLEEP` ahead, then it asks again).  Triggers live in
  the store, so they survive restarts; a time trigger that passed while Courier
  was down fires at start-up, marked late.  The presence and message triggers
  are looked up in two in-memory sets (targets, (author, contact) pairs), loaded
  in the background after start-up, so that live traffic costs one set lookup.
- **actions**: ``send`` makes the draft a tracked message from its author
  (:meth:`Pipeline.originate`: held, released, archived and carbon-copied like
  any message); ``remind`` asks the :class:`Notifier` to remind the author, and
  the draft stays pending with a manual trigger.  A claimed send is recorded as
  ``firing`` with the message id it will get, so a crash between the claim and
  the message's commit is repaired at start-up without sending twice.
- **roaming**: each device of an author that comes online (once per session) is
  told that drafts are pending.

The service knows nothing of XMPP stanzas: it talks to a :class:`Notifier`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from slixmpp.jid import JID, InvalidJID

from ..store import MessageRow, Store
from ..store.drafts import ACTIONS, DELETED, FIRING, PENDING, SENT, TRIGGERS, DraftRow, LimitReached
from ..tasks import spawn
from ..when import (
    TIME_SYNTAX,
    DraftError,
    DraftInvalid,
    DraftLimit,
    DraftNotFound,
    DraftTooLate,
    format_time,
    parse_duration,
    parse_instant,
    parse_when,
    parse_zone,
    take_time,
)
from .pipeline import Pipeline

log = logging.getLogger(__name__)

#: A time trigger that fires more than this many seconds after its time is late.
LATE_AFTER = 2.0
#: A time a little in the past (a slow client, a clock a little off) fires at once; older ones are refused.
PAST_GRACE = 60.0
#: The timer never sleeps longer than this: then it asks the store again (clock changes, safety).
MAX_SLEEP = 60.0
#: Due drafts claimed per store round trip.
CLAIM_BATCH = 100
#: The notice to a new device names at most this many drafts.
NOTICE_ITEMS = 3


@dataclass(frozen=True)
class Trigger:
    """When a draft fires."""

    kind: str = "manual"  # manual | at | target-online | message-from
    at: float | None = None  # at: UTC instant
    tz: str = ""  # at: the zone it was written in ("" = UTC)
    jid: str = ""  # message-from: the contact


@dataclass(frozen=True)
class Limits:
    """Per-user limits (config ``drafts.*``)."""

    max_pending: int = 100
    max_length: int = 10_000
    max_days_ahead: float = 366.0


class Notifier(Protocol):
    """What the service tells people (implemented on the XMPP side)."""

    def reminder(self, draft: DraftRow) -> None:
        """A remind trigger fired: show *draft* to its author with a one-step way to send it."""
        ...

    def fired(self, draft: DraftRow, how: str) -> None:
        """*draft* was sent by its trigger (*how*: what happened); late when ``draft.late``."""
        ...

    def pending(self, device: str, drafts: list[DraftRow]) -> None:
        """Device *device* (a full JID) of the author came online; *drafts* are pending."""
        ...


def describe_trigger(draft: DraftRow) -> str:
    """The trigger in words, for people."""
    if draft.trigger == "at" and draft.due_at is not None:
        return "at " + format_time(draft.due_at, draft.tz)
    if draft.trigger == "target-online":
        return f"when {draft.target} comes online"
    if draft.trigger == "message-from":
        return f"when {draft.trigger_jid} writes to you"
    return "when you send it"


def describe_late(draft: DraftRow) -> str:
    """``"" `` when on time, else how late, in words."""
    if draft.late <= LATE_AFTER:
        return ""
    seconds = int(draft.late)
    if seconds < 120:
        return f"{seconds} s late"
    if seconds < 7200:
        return f"{seconds // 60} min late"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min late"


# -- the service ------------------------------------------------------------------------


class DraftService:
    """Every user's drafts, their triggers and their one timer."""

    def __init__(self, store: Store, pipeline: Pipeline, notifier: Notifier, limits: Limits | None = None) -> None:
        self.store = store
        self.db = store.drafts
        self.pipeline = pipeline
        self.domain = pipeline.domain
        self.notifier = notifier
        self.limits = limits or Limits()
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None
        self._running = False
        self._again = False
        self._online_targets: set[str] = set()
        self._from_pairs: set[tuple[str, str]] = set()  # (author, contact)
        self._indexed = False  # until the sets are loaded, every event asks the store
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = False
        #: author -> pending drafts, for the authors seen since start-up (forms need them synchronously)
        self._known: dict[str, list[DraftRow]] = {}
        pipeline.available_observers.append(self._on_available)
        pipeline.resource_observers.append(self._on_device)
        pipeline.message_observers.append(self._on_message)

    # -- life cycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Repair interrupted sends, set the timer for the next due draft, load the trigger sets."""
        self._stopped = False
        for row in await self.db.firing():
            await self._recover(row)
        await self._arm()
        if self._armed_for is not None:
            log.info("drafts: next time trigger due %s", format_time(self._armed_for))
        self._spawn(self._load_indexes())

    def stop(self) -> None:
        self._stopped = True
        self._cancel_timer()

    async def drain(self) -> None:
        """Wait for firings under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _load_indexes(self) -> None:
        started = time.monotonic()
        targets = await self.db.online_targets()
        pairs = await self.db.message_from_pairs()
        self._online_targets |= targets
        self._from_pairs |= pairs
        self._indexed = True
        log.info(
            "drafts: trigger sets loaded in %.0f ms (%d targets awaited online, %d (author, contact) pairs)",
            (time.monotonic() - started) * 1000, len(targets), len(pairs),
        )  # fmt: skip

    async def _recover(self, row: DraftRow) -> None:
        """A send claimed before a crash: finish it, or record that its message exists."""
        existing = await self.store.find_sent(row.author, row.msg_id)
        if existing is not None:
            await self.db.mark_sent(row.id, existing.seq, time.time())
            log.info("draft %d of %s: its message was stored before the restart", row.number, row.author)
        else:
            log.warning("draft %d of %s: sending it now (interrupted by a restart)", row.number, row.author)
            await self._send(row, "after a restart")

    # -- the author's operations -----------------------------------------------------------

    async def create(self, author: str, target: str, body: str, trigger: Trigger, action: str = "send") -> DraftRow:
        """Store a draft; durable when this returns (Courier's confirmation)."""
        now = time.time()
        target = self._target(author, target)
        body = self._body(body)
        action = self._action(action)
        trigger = self._trigger(trigger, target, now)
        try:
            row = await self.db.insert(
                author, target, body, action, trigger.kind,
                due_at=trigger.at, tz=trigger.tz, trigger_jid=trigger.jid, msg_id=uuid.uuid4().hex, now=now,
                max_pending=self.limits.max_pending,
            )  # fmt: skip
        except LimitReached:
            raise DraftLimit(
                f"You already have {self.limits.max_pending} pending drafts, the most allowed: "
                "send or delete one first.",
                "pending",
            ) from None
        log.info("draft %d of %s stored for %s (%s, %s)", row.number, author, target, trigger.kind, action)
        await self._refresh(author)
        self._watch(row)
        return row

    async def drafts(self, author: str) -> list[DraftRow]:
        """The author's pending drafts, by target then number."""
        pending = self._known[author] = await self.db.pending(author)
        return pending

    def known(self, author: str) -> list[DraftRow] | None:
        """The author's pending drafts as last read (None: not read since start-up); for forms."""
        return self._known.get(author)

    async def _refresh(self, author: str) -> None:
        self._known[author] = await self.db.pending(author)

    async def get(self, author: str, number: int | str) -> DraftRow:
        """One of the author's drafts (pending or sent); :class:`DraftNotFound` otherwise."""
        n = self._number(number)
        row = await self.db.get(author, n)
        if row is None or row.state == DELETED:
            raise DraftNotFound(f"You have no draft {number}." if row is None else f"Draft {n} was deleted.")
        return row

    async def update(
        self,
        author: str,
        number: int | str,
        *,
        target: str | None = None,
        body: str | None = None,
        trigger: Trigger | None = None,
        action: str | None = None,
    ) -> DraftRow:
        """Change a pending draft; what is None stays."""
        current = await self._pending(author, number)
        now = time.time()
        new_target = self._target(author, target) if target else current.target
        new_body = self._body(body) if body is not None else current.body
        new_action = self._action(action) if action else current.action
        if trigger is None:
            trigger = Trigger(current.trigger, current.due_at, current.tz, current.trigger_jid)
            if trigger.kind == "target-online" and new_target != current.target:
                trigger = self._trigger(trigger, new_target, now)
        else:
            trigger = self._trigger(trigger, new_target, now)
        row = await self.db.update(
            author, current.number, target=new_target, body=new_body, action=new_action, trigger=trigger.kind,
            due_at=trigger.at, tz=trigger.tz, trigger_jid=trigger.jid, now=now,
        )  # fmt: skip
        if row is None:  # it fired (or was deleted) meanwhile
            raise await self._gone(author, current.number)
        await self._refresh(author)
        self._watch(row)
        return row

    async def postpone(self, author: str, number: int | str, when: str) -> DraftRow:
        """A new time trigger for a draft (``in 1h``, ``at 18:00``…); its action stays."""
        instant, zone = parse_when(when, time.time())
        return await self.update(author, number, trigger=Trigger("at", instant, zone))

    async def delete(self, author: str, number: int | str) -> DraftRow:
        """Drop a pending draft: it never fires."""
        current = await self._pending(author, number)
        if not await self.db.delete(author, current.number, time.time()):
            raise await self._gone(author, current.number)
        log.info("draft %d of %s deleted", current.number, author)
        await self._refresh(author)
        return current

    async def fire(self, author: str, number: int | str) -> tuple[DraftRow, MessageRow]:
        """Send a pending draft now, whatever its trigger and action; durable when this returns."""
        n = self._number(number)
        row = await self.db.claim_manual(author, n, time.time())
        if row is None:
            raise await self._gone(author, n)
        m = await self._send(row, "sent by hand", notify=False)
        await self._refresh(author)
        return row, m

    # -- validation ----------------------------------------------------------------------

    def _target(self, author: str, target: str) -> str:
        try:
            jid = JID(target.strip())
        except InvalidJID:
            raise DraftInvalid(f"“{target}” is not a JID (user@domain).") from None
        if not jid.user or not jid.domain:
            raise DraftInvalid(f"A draft is for a contact (user@domain), not “{target}”.")
        if jid.bare == author:
            raise DraftInvalid("A draft is for somebody else: use remind to send yourself a reminder about it.")
        return str(jid.bare)

    def _body(self, body: str) -> str:
        if not body.strip():
            raise DraftInvalid("The draft's text is empty.")
        if len(body) > self.limits.max_length:
            raise DraftLimit(
                f"The draft is {len(body)} characters long; at most {self.limits.max_length} are allowed.", "length"
            )
        return body

    @staticmethod
    def _action(action: str) -> str:
        if action not in ACTIONS:
            raise DraftInvalid(f"The action is send or remind, not “{action}”.")
        return action

    def _trigger(self, trigger: Trigger, target: str, now: float) -> Trigger:
        if trigger.kind not in TRIGGERS:
            raise DraftInvalid(f"The trigger is manual, at, target-online or message-from, not “{trigger.kind}”.")
        if trigger.kind == "at":
            if trigger.at is None:
                raise DraftInvalid("A time trigger needs a time. " + TIME_SYNTAX)
            if trigger.at < now - PAST_GRACE:
                raise DraftInvalid(f"{format_time(trigger.at, trigger.tz)} has passed. " + TIME_SYNTAX)
            if trigger.at > now + self.limits.max_days_ahead * 86400:
                raise DraftLimit(
                    f"{format_time(trigger.at, trigger.tz)} is too far ahead: at most "
                    f"{self.limits.max_days_ahead:g} days are allowed.",
                    "ahead",
                )
            if trigger.tz and parse_zone(trigger.tz) is None:
                raise DraftInvalid(f"“{trigger.tz}” is not a time zone (Europe/Paris, UTC, +02:00).")
            return Trigger("at", trigger.at, trigger.tz or "UTC")
        if trigger.kind == "target-online":
            if JID(target).domain != self.domain:
                raise DraftInvalid(f"Courier sees only when users of {self.domain} come online, not {target}.")
            return Trigger("target-online")
        if trigger.kind == "message-from":
            try:
                contact = JID(trigger.jid.strip())
            except InvalidJID:
                raise DraftInvalid(f"“{trigger.jid}” is not a JID (user@domain).") from None
            if not contact.user:
                raise DraftInvalid("Whose message should send it? Give a contact (user@domain).")
            # (a contact on another server too: mod_courier_route hands off what arrives over s2s)
            return Trigger("message-from", jid=str(contact.bare))
        return Trigger("manual")

    @staticmethod
    def _number(number: int | str) -> int:
        try:
            n = int(str(number).strip().lstrip("#"))
        except ValueError:
            raise DraftNotFound(f"You have no draft {number}.") from None
        if n < 1:
            raise DraftNotFound(f"You have no draft {number}.")
        return n

    async def _pending(self, author: str, number: int | str) -> DraftRow:
        row = await self.get(author, number)
        if row.state != PENDING:
            raise DraftTooLate(f"Draft {row.number} was already sent to {row.target}.")
        return row

    async def _gone(self, author: str, number: int) -> DraftError:
        """Why a pending-only operation found nothing: not the author's, deleted, or sent."""
        try:
            row = await self.get(author, number)
        except DraftNotFound as exc:
            return exc
        return DraftTooLate(f"Draft {row.number} was already sent to {row.target}.")

    # -- triggers ------------------------------------------------------------------------

    def _watch(self, row: DraftRow) -> None:
        """A draft was stored or changed: make sure its trigger is looked after."""
        if row.trigger == "at" and row.due_at is not None:
            self._set_timer(row.due_at)
        elif row.trigger == "target-online":
            self._online_targets.add(row.target)
            if self.pipeline.online(row.target):
                self._on_available(row.target)  # the occasion is already here
        elif row.trigger == "message-from":
            self._from_pairs.add((row.author, row.trigger_jid))

    def _on_available(self, bare: str) -> None:
        """Pipeline observer: a local user came online."""
        if self._indexed and bare not in self._online_targets:
            return
        self._online_targets.discard(bare)
        self._spawn(self._claimed(lambda: self.db.claim_target_online(bare, time.time()), f"{bare} came online"))

    def _on_message(self, sender: str, recipient: str) -> None:
        """Pipeline observer: *sender* wrote to *recipient*."""
        pair = (recipient, sender)
        if self._indexed and pair not in self._from_pairs:
            return
        self._from_pairs.discard(pair)
        self._spawn(
            self._claimed(lambda: self.db.claim_message_from(recipient, sender, time.time()), f"{sender} wrote to you")
        )

    def _on_device(self, device: str) -> None:
        """Pipeline observer: a device (full JID) became available: tell it about pending drafts."""
        author = device.split("/", 1)[0]
        if author.rpartition("@")[2] == self.domain:
            self._spawn(self._notice(device, author))

    async def _notice(self, device: str, author: str) -> None:
        pending = self._known[author] = await self.db.pending(author)
        if pending:
            self.notifier.pending(device, pending)

    async def _claimed(self, claim: Callable[[], Awaitable[list[DraftRow]]], how: str) -> None:
        rows = await claim()
        if rows:
            await self._fire_all(rows, how)

    async def _fire_all(self, rows: list[DraftRow], how: str) -> None:
        await asyncio.gather(*(self._fired(row, how) for row in rows))
        for author in {row.author for row in rows}:
            if author in self._known:
                await self._refresh(author)

    async def _fired(self, row: DraftRow, how: str) -> None:
        late = describe_late(row)
        if late:
            log.warning("draft %d of %s was due %s and fired %s", row.number, row.author,
                        format_time(row.due_at or 0.0, row.tz), late)  # fmt: skip
        try:
            if row.state == FIRING:
                await self._send(row, how)
            else:
                log.info("draft %d of %s: reminding its author (%s)", row.number, row.author, how)
                self.notifier.reminder(row)
        except Exception:
            log.exception("draft %d of %s: firing failed (it is retried at start-up)", row.number, row.author)

    async def _send(self, row: DraftRow, how: str, notify: bool = True) -> MessageRow:
        late = describe_late(row)
        note = f"draft {row.number} of {row.author}, {how}" + (f", {late}" if late else "")
        m = await self.pipeline.originate(row.author, row.target, row.body, msg_id=row.msg_id, note=note)
        await self.db.mark_sent(row.id, m.seq, time.time())
        row.state, row.message_seq = SENT, m.seq
        log.info("draft %d of %s sent to %s (%s)", row.number, row.author, row.target, how)
        if notify:
            self.notifier.fired(row, how)
        return m

    # -- the one timer -----------------------------------------------------------------------

    async def _arm(self) -> None:
        if not self._stopped:
            self._set_timer(await self.db.next_due())

    def _set_timer(self, due: float | None) -> None:
        """Make the timer ring by *due* (an earlier timer stays)."""
        if due is None or self._stopped:
            return
        if self._timer is not None and self._armed_for is not None and self._armed_for <= due:
            return
        self._cancel_timer()
        loop = asyncio.get_running_loop()
        delay = min(max(0.0, due - time.time()), MAX_SLEEP)
        self._armed_for = due
        self._timer = loop.call_at(loop.time() + delay, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._armed_for = None, None

    def _on_timer(self) -> None:
        self._timer, self._armed_for = None, None
        self._spawn(self._run_due())

    async def _run_due(self) -> None:
        if self._running:
            self._again = True
            return
        self._running = True
        try:
            while not self._stopped:
                self._again = False
                rows = await self.db.claim_due(time.time(), CLAIM_BATCH)
                if rows:
                    await self._fire_all(rows, "its time came")
                if len(rows) < CLAIM_BATCH and not self._again:
                    break
            await self._arm()
        finally:
            self._running = False

    # -- helpers ----------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        spawn(coro, self._tasks, "A drafts task")


__all__ = [
    "TIME_SYNTAX",
    "DraftError",
    "DraftInvalid",
    "DraftLimit",
    "DraftNotFound",
    "DraftService",
    "DraftTooLate",
    "Limits",
    "Notifier",
    "Trigger",
    "describe_late",
    "describe_trigger",
    "format_time",
    "parse_duration",
    "parse_instant",
    "parse_when",
    "take_time",
]

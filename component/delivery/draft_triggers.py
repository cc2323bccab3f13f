"""Drafts (P5): the triggers and the one timer of :class:`~.drafts.DraftService`.

- **triggers**: ``at`` (a UTC instant, written in a time zone), ``target-online``,
  ``message-from`` a contact, or ``manual``.  A trigger fires through a *claim*
  in the store (one SQL statement that checks the draft is still pending and its
  trigger still holds), so an edit or a deletion racing a trigger makes the draft
  fire exactly once or not at all.
- **one timer**: the drafts keep no per-draft timer in memory.  They ask the
  store when the next time trigger is due (an index lookup) and set one timer,
  ``("drafts",)``, on the app's scheduler (component/scheduler.py) for it; when it
  rings, what is due is claimed and the store is asked again.  Triggers live in
  the store, so they survive restarts; a time trigger that passed while Courier
  was down fires at start-up, marked late.  The presence and message triggers
  are looked up in two in-memory sets (targets, (author, contact) pairs), loaded
  in the background after start-up, so that live traffic costs one set lookup.
- **firing**: ``send`` makes the draft a tracked message from its author
  (:meth:`Pipeline.originate`); ``remind`` asks the :class:`Notifier` to remind the
  author.  A claimed send is recorded as ``firing`` with the message id it will get, so
  a crash between the claim and the message's commit is repaired at start-up without
  sending twice; a claimed reminder is ``reminding`` until the reminder is in the outbox
  (then pending again), so that a crash between the two reminds again at start-up.
- **roaming**: each device of an author that comes online (once per session) is
  told that drafts are pending.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ..scheduler import Scheduler
from ..store import MessageRow, Store
from ..store.drafts import FIRING, PENDING, SENT, DraftRow
from ..tasks import spawn
from ..when import format_time
from .draft_rules import CLAIM_BATCH, Limits, Notifier, describe_late
from .pipeline import Pipeline

log = logging.getLogger("component.delivery.drafts")

#: The drafts' one timer on the scheduler.
TIMER = ("drafts",)


class DraftTriggers:
    """The state of every draft's trigger, the timer, and firing."""

    def __init__(
        self,
        store: Store,
        pipeline: Pipeline,
        notifier: Notifier,
        limits: Limits | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.store = store
        self.scheduler = scheduler or pipeline.scheduler
        self.db = store.drafts
        self.pipeline = pipeline
        self.domain = pipeline.domain
        self.notifier = notifier
        self.limits = limits or Limits()
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
        for row in await self.db.reminding():
            log.info("draft %d of %s: its reminder was claimed before the restart: reminding again",
                     row.number, row.author)  # fmt: skip
            await self._remind(row)
        await self._arm()
        if self.timer_due is not None:
            log.info("drafts: next time trigger due %s", format_time(self.timer_due))
        self._spawn(self._load_indexes())

    def stop(self) -> None:
        self._stopped = True
        self.scheduler.cancel(TIMER)

    async def drain(self) -> None:
        """Wait for firings under way (tests, shutdown)."""
        await self.scheduler.wait(TIMER)
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

    async def _refresh(self, author: str) -> None:
        self._known[author] = await self.db.pending(author)

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
                await self._remind(row)
        except Exception:
            log.exception("draft %d of %s: firing failed (it is retried at start-up)", row.number, row.author)

    async def _remind(self, row: DraftRow) -> None:
        """The reminder into the outbox (durable with the store's next commit), then the draft
        pending again: a crash in between leaves it ``reminding``, reminded again at start-up."""
        row.state = PENDING  # what the reminder shows: the draft waits to be sent by hand
        self.notifier.reminder(row)
        await self.store.flush()
        await self.db.mark_reminded(row.id, time.time())

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

    @property
    def timer_due(self) -> float | None:
        """When the drafts' timer rings (the earliest time trigger; None: no timer)."""
        return self.scheduler.due(TIMER)

    async def _arm(self) -> None:
        if not self._stopped:
            self._set_timer(await self.db.next_due())

    def _set_timer(self, due: float | None) -> None:
        """Make the timer ring by *due* (an earlier timer stays)."""
        if due is not None and not self._stopped:
            self.scheduler.at(due, TIMER, self._run_due, earliest=True, retry=1.0)

    async def _run_due(self) -> None:
        """The timer rang: claim and fire what is due, then set the timer for the next one (the
        scheduler runs this one at a time; rung again meanwhile, it runs once more after)."""
        while not self._stopped:
            rows = await self.db.claim_due(time.time(), CLAIM_BATCH)
            if rows:
                await self._fire_all(rows, "its time came")
            if len(rows) < CLAIM_BATCH:
                break
        await self._arm()

    # -- helpers ----------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        spawn(coro, self._tasks, "A drafts task")

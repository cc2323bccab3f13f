"""Drafts (P5): server-stored drafts, their send triggers, reminders and roaming.

:class:`DraftService` owns the drafts of every user:

- **storage** (here): create, update, delete, list; numbered per author; only the
  author ever sees or touches a draft (anybody else gets :class:`DraftNotFound`);
  per-user limits (:class:`Limits`).
- **rules** (:mod:`.draft_rules`): the trigger, the limits, the checks a draft
  passes, the words for people.
- **triggers, the one timer, firing and roaming** (:mod:`.draft_triggers`, the
  base class :class:`~.draft_triggers.DraftTriggers`).

The service knows nothing of XMPP stanzas: it talks to a :class:`Notifier`.
"""

from __future__ import annotations

import logging
import time
import uuid

from ..store import MessageRow
from ..store.drafts import DELETED, PENDING, DraftRow, LimitReached
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
    take_time,
)
from .draft_rules import (
    NOTICE_ITEMS,
    Limits,
    Notifier,
    Trigger,
    check_action,
    check_body,
    check_target,
    check_trigger,
    describe_late,
    describe_trigger,
    draft_number,
)
from .draft_triggers import DraftTriggers

log = logging.getLogger(__name__)


class DraftService(DraftTriggers):
    """Every user's drafts, their triggers and their one timer."""

    # -- the author's operations -----------------------------------------------------------

    async def create(self, author: str, target: str, body: str, trigger: Trigger, action: str = "send") -> DraftRow:
        """Store a draft; durable when this returns (Courier's confirmation)."""
        now = time.time()
        target = check_target(author, target)
        body = check_body(body, self.limits)
        action = check_action(action)
        trigger = check_trigger(trigger, target, now, self.limits, self.domain)
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

    async def get(self, author: str, number: int | str) -> DraftRow:
        """One of the author's drafts (pending or sent); :class:`DraftNotFound` otherwise."""
        n = draft_number(number)
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
        new_target = check_target(author, target) if target else current.target
        new_body = check_body(body, self.limits) if body is not None else current.body
        new_action = check_action(action) if action else current.action
        if trigger is None:
            trigger = Trigger(current.trigger, current.due_at, current.tz, current.trigger_jid)
            if trigger.kind == "target-online" and new_target != current.target:
                trigger = check_trigger(trigger, new_target, now, self.limits, self.domain)
        else:
            trigger = check_trigger(trigger, new_target, now, self.limits, self.domain)
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
        n = draft_number(number)
        row = await self.db.claim_manual(author, n, time.time())
        if row is None:
            raise await self._gone(author, n)
        m = await self._send(row, "sent by hand", notify=False)
        await self._refresh(author)
        return row, m

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


__all__ = [
    "NOTICE_ITEMS",
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

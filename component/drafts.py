"""Drafts (P5) on the XMPP side: courier-drafts IQs answered from the
:class:`~component.delivery.drafts.DraftService`, and the messages Courier sends
about drafts (reminders, sent notices, the pending-drafts notice to a new device).

The service and its one timer live in :mod:`component.delivery.drafts`, the
SQL in :mod:`component.store.drafts`, the stanzas in :mod:`component.xep.drafts`,
the commands in :mod:`component.commands.drafts`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Any, TypeVar

from .delivery.drafts import (
    NOTICE_ITEMS,
    DraftInvalid,
    DraftService,
    Trigger,
    describe_late,
    describe_trigger,
    format_time,
    parse_instant,
)
from .errors import as_xmpp_errors
from .store.drafts import PENDING, REMINDING, DraftRow
from .util import stamp
from .when import local_time
from .xep.drafts import Draft, DraftInfo, TriggerInfo

T = TypeVar("T")

#: How much of a draft's text a one-line summary shows.
SNIPPET = 60


def snippet(text: str, size: int = SNIPPET) -> str:
    line = " ".join(text.split())
    return line if len(line) <= size else line[: size - 1] + "…"


def draft_info(row: DraftRow) -> DraftInfo:
    """A stored draft as the protocol carries it (times in the zone it was written in)."""
    trigger = TriggerInfo(row.trigger)
    if row.trigger == "at" and row.due_at is not None:
        spec = "seconds" if row.due_at == int(row.due_at) else "milliseconds"
        trigger.time = local_time(row.due_at, row.tz).isoformat(timespec=spec).replace("+00:00", "Z")
        trigger.tz = row.tz if "/" in row.tz else ""
    elif row.trigger == "message-from":
        trigger.jid = row.trigger_jid
    return DraftInfo(
        to=row.target,
        body=row.body,
        action=row.action,
        trigger=trigger,
        id=str(row.number),
        state=PENDING if row.state == REMINDING else row.state,  # (reminding: for the moment its reminder takes)
        created=stamp(row.created, ms=False),
        updated=stamp(row.updated, ms=False),
    )


def trigger_of(info: TriggerInfo) -> Trigger:
    """A protocol trigger as the service's :class:`Trigger`."""
    if info.type == "at":
        if not info.time:
            raise DraftInvalid("a time trigger needs its 'time'")
        instant = parse_instant(info.time)
        zone = info.tz or _zone_of(info.time)
        return Trigger("at", instant, zone)
    if info.type == "message-from":
        return Trigger("message-from", jid=info.jid)
    return Trigger(info.type)


def _zone_of(text: str) -> str:
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    offset = moment.utcoffset()
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


class DraftsAdapter:
    """courier-drafts requests answered from the service (the plugin's DraftsService)."""

    def __init__(self, service: DraftService) -> None:
        self.service = service

    @staticmethod
    async def _call(operation: Awaitable[T]) -> T:
        with as_xmpp_errors():
            return await operation

    async def store(self, requester: str, draft: DraftInfo) -> DraftInfo:
        async def run() -> DraftRow:
            trigger = trigger_of(draft.trigger) if draft.trigger else Trigger()
            return await self.service.create(requester, draft.to, draft.body or "", trigger, draft.action or "send")

        return draft_info(await self._call(run()))

    async def update(self, requester: str, draft_id: str, changes: DraftInfo) -> DraftInfo:
        async def run() -> DraftRow:
            trigger = trigger_of(changes.trigger) if changes.trigger else None
            return await self.service.update(
                requester, draft_id, target=changes.to or None, body=changes.body, trigger=trigger,
                action=changes.action or None,
            )  # fmt: skip

        return draft_info(await self._call(run()))

    async def delete(self, requester: str, draft_id: str) -> None:
        await self._call(self.service.delete(requester, draft_id))

    async def fire(self, requester: str, draft_id: str) -> str:
        _row, message = await self._call(self.service.fire(requester, draft_id))
        return message.msg_id

    async def drafts(self, requester: str) -> list[DraftInfo]:
        return [draft_info(row) for row in await self._call(self.service.drafts(requester))]


class DraftMessages:
    """The service's :class:`~component.delivery.drafts.Notifier`: messages from Courier's JID."""

    def __init__(self, xmpp: Any) -> None:
        self.xmpp = xmpp

    def _message(self, to: str, body: str, mtype: str) -> Any:
        msg = self.xmpp.make_message(mto=to, mfrom=self.xmpp.boundjid.bare, mbody=body, mtype=mtype)
        if mtype == "headline":
            msg.enable("no-store")  # XEP-0334 (the component registers xep_0334)
        return msg

    def reminder(self, draft: DraftRow) -> None:
        n = draft.number
        late = describe_late(draft)
        due = ""
        if draft.due_at is not None:
            due = f" (due {format_time(draft.due_at, draft.tz)}{', ' + late if late else ''})"
        body = (
            f"Reminder: draft {n} for {draft.target}{due}:\n{draft.body}\n"
            f"Reply “send draft {n}” to send it now, “draft {n} NEW TEXT” to change it first, "
            f"“postpone draft {n} in 1h” (or “at 18:00”), or “delete draft {n}” to drop it."
        )
        msg = self._message(draft.author, body, "chat")
        reminder = msg["drafts_reminder"]
        if draft.due_at is not None:
            reminder["due"] = stamp(draft.due_at, ms=False)
        if late:
            reminder["late"] = str(int(draft.late))
        item = Draft()
        item.from_info(draft_info(draft))
        reminder.append(item)
        # Through the outbox, as every message Courier originates: sent again after a reconnect
        # until the server confirms it routed it, so that a reminder lost in transit still arrives.
        self.xmpp.pipeline.originate_own(msg.xml)

    def fired(self, draft: DraftRow, how: str) -> None:
        late = describe_late(draft)
        if late and draft.due_at is not None:
            body = (
                f"Draft {draft.number} for {draft.target} was due {format_time(draft.due_at, draft.tz)} "
                f"and went out {late} (Courier was not running then): “{snippet(draft.body)}”"
            )
        else:
            body = f"Draft {draft.number} sent to {draft.target} ({how}): “{snippet(draft.body)}”"
        # Late: a chat message, so that an author who is offline learns it too.
        msg = self._message(draft.author, body, "chat" if late else "headline")
        fired = msg["drafts_fired"]
        fired["id"], fired["message_id"], fired["to"] = str(draft.number), draft.msg_id, draft.target
        if draft.due_at is not None and draft.trigger == "at":
            fired["due"] = stamp(draft.due_at, ms=False)
        if late:
            fired["late"] = str(int(draft.late))
        msg.send()

    def pending(self, device: str, drafts: list[DraftRow]) -> None:
        lines = [f"You have {len(drafts)} pending draft{'s' if len(drafts) != 1 else ''}:"]
        for row in drafts[:NOTICE_ITEMS]:
            lines.append(f"{row.number} for {row.target}, {describe_trigger(row)}: {snippet(row.body, 40)}")
        if len(drafts) > NOTICE_ITEMS:
            lines.append(f"… and {len(drafts) - NOTICE_ITEMS} more.")
        lines.append("Send “drafts” to list them, or use the ad-hoc command “My drafts”.")
        msg = self._message(device, "\n".join(lines), "headline")
        msg["drafts_pending"]["count"] = str(len(drafts))
        msg.send()


__all__ = ["DraftMessages", "DraftsAdapter", "draft_info", "trigger_of"]

"""Broadcast lists (P4): the rules, over the store and the delivery pipeline.

:class:`ListService` owns everything a list does, whichever way it is asked
(courier-lists IQ, a message to a list's JID, XEP-0033 addresses, ad-hoc
command, bot): the owner's lists and their limits, the **fan-out** of one
message into one individual tracked message per member, sent as the owner
(:meth:`Pipeline.originate <component.delivery.pipeline.Pipeline.originate>`:
held for offline members, released when they come online, hop-tracked and
reported like any message of the owner), the aggregate status of a fan-out and
its recall.  Members never see the list, its name or each other: their copy is
a plain 1:1 message from the owner's bare JID with its own id.

The lists themselves (names, members, lifetimes) are :class:`~.book.ListBook`, this
class's base; the values are in :mod:`.model`.  Expected failures raise
:class:`ListError` with an XMPP error condition and a sentence for the user; the XMPP
side and the commands show it as it is.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from xml.etree import ElementTree as ET

from slixmpp import JID

from .. import metrics
from ..delivery.pipeline import NotFound, TooLate
from ..delivery.states import DELIVERED, Event
from ..namespaces import NS_CORRECT, NS_FALLBACK, NS_HINTS, NS_MARKERS, NS_RECEIPTS, NS_RETRACT
from ..store.lists import CopyRow, FanoutRow, LimitReached, ListRow
from .book import ListBook
from .model import (
    AGGREGATE,
    CHUNK,
    RECENT,
    RETRACT_FALLBACK,
    FanoutStatus,
    Limits,
    ListError,
    aggregate_state,
    copy_state,
    is_jid,
)

log = logging.getLogger(__name__)


def _copy_extras() -> list[ET.Element]:
    """What every copy carries besides its body: a receipt request and a marker, so that the
    member's client reports received/read (P2) for this copy."""
    return [ET.Element(f"{{{NS_RECEIPTS}}}request"), ET.Element(f"{{{NS_MARKERS}}}markable")]


class ListService(ListBook):
    """Broadcast lists of the users of *domain*: the lists (:class:`ListBook`), their fan-outs."""

    async def start(self) -> None:
        """Load the caches and complete fan-outs a restart cut short (after ``Pipeline.start``)."""
        now = time.time()
        purged = await self.store.lists.purge_expired(now)
        if purged:
            log.info("%d temporary broadcast lists expired", purged)
        for owner, key, name, expires in await self.store.lists.names(now):
            self._names[owner][key] = (name, expires)
        for fanout in await self.store.lists.latest_fanouts(RECENT):
            self._recent[fanout.owner].append(fanout)
        for fanout, unsent in await self.store.lists.unsent_copies():
            await self._complete(fanout, unsent)

    # -- fan-outs ------------------------------------------------------------------------

    async def send_to_list(
        self,
        row: ListRow,
        body: str,
        *,
        source_id: str = "",
        source_origin: str = "",
        reports: bool = False,
        only: str = "",
    ) -> FanoutStatus:
        """Fan *body* out to every member of *row* (or to the one member *only*)."""
        recipients = row.members
        if only:
            member = self.member(only)
            if member not in row.members:
                raise ListError("item-not-found", f"{member} is not a member of “{row.name}”.")
            recipients = [member]
        if not recipients:
            raise ListError("not-acceptable", f"“{row.name}” has no members yet.")
        return await self.fanout(
            row.owner, recipients, body, list_name=row.name, source_id=source_id, source_origin=source_origin,
            reports=reports,
        )  # fmt: skip

    async def send_to_addresses(
        self,
        owner: str,
        addresses: Sequence[str],
        body: str,
        *,
        source_id: str = "",
        source_origin: str = "",
        reports: bool = False,
    ) -> FanoutStatus:
        """XEP-0033: fan *body* out to *addresses*; a list JID of the owner stands for its members."""
        recipients: list[str] = []
        for address in addresses:
            jid = JID(address) if is_jid(address) else JID()
            if jid.domain == self.component and jid.user:
                recipients += (await self.by_jid(owner, jid)).members
            else:
                recipients.append(self.member(address))
        recipients = list(dict.fromkeys(recipients))
        if not recipients:
            raise ListError("bad-request", "No address to send to.", "modify")
        return await self.fanout(
            owner, recipients, body, source_id=source_id, source_origin=source_origin, reports=reports
        )

    async def fanout(
        self,
        owner: str,
        recipients: Sequence[str],
        body: str,
        *,
        list_name: str = "",
        source_id: str = "",
        source_origin: str = "",
        reports: bool = False,
    ) -> FanoutStatus:
        """Record the fan-out, then send one tracked message per recipient, as *owner*."""
        if not body.strip():
            raise ListError("bad-request", "The message is empty.", "modify")
        if len(recipients) > self.limits.max_members:
            raise ListError("not-acceptable", f"At most {self.limits.max_members} recipients per message.", "modify")
        now = time.time()
        copies = [(member, uuid.uuid4().hex) for member in recipients]
        for _attempt in range(8):
            fanout = FanoutRow(owner, secrets.token_hex(4), list_name, source_id, source_origin, body, now, None)
            try:
                added = await self.store.lists.add_fanout(
                    fanout, copies, since=now - 60, max_since=self.limits.fanouts_per_minute
                )
            except LimitReached:
                metrics.rate_limited("fanouts")
                raise ListError(
                    "resource-constraint",
                    f"You can send at most {self.limits.fanouts_per_minute} messages to lists a minute; "
                    "wait a little and send again.",
                    "wait",
                ) from None
            if added:
                break
        else:
            raise RuntimeError("no free fan-out id")
        metrics.FANOUT_COPIES.inc(len(copies))
        self._recent[owner].insert(0, fanout)
        del self._recent[owner][RECENT:]
        await self._send(fanout, copies, reports)
        log.info("Fan-out %s of %s: %d copies", fanout.id, owner, len(copies))
        return await self.status(owner, fanout.id)

    async def _send(self, fanout: FanoutRow, copies: Sequence[tuple[str, str]], reports: bool) -> None:
        """Originate the copies, CHUNK at a time (one group commit each), and record their seqs."""
        note = f"fan-out {fanout.id}"
        for start in range(0, len(copies), CHUNK):
            chunk = copies[start : start + CHUNK]
            rows = await asyncio.gather(
                *(
                    self.pipeline.originate(
                        fanout.owner,
                        member,
                        fanout.body,
                        msg_id=msg_id,
                        reports=reports,
                        extra=_copy_extras(),
                        note=note,
                    )  # fmt: skip
                    for member, msg_id in chunk
                )
            )
            await self.store.lists.set_copy_seqs(
                fanout.owner, fanout.id, [(member, row.seq) for (member, _), row in zip(chunk, rows, strict=True)]
            )
            if self.pace is not None and start + CHUNK < len(copies):
                await self.pace()

    async def _complete(self, fanout: FanoutRow, unsent: list[CopyRow]) -> None:
        """Finish a fan-out cut short: copies already durable are recorded, the others sent."""
        done, todo = [], []
        for c in unsent:
            existing = await self.store.find_sent(fanout.owner, c.msg_id)
            if existing is not None:
                done.append((c.member, existing.seq))
            else:
                todo.append((c.member, c.msg_id))
        if done:
            await self.store.lists.set_copy_seqs(fanout.owner, fanout.id, done)
        if todo:
            await self._send(fanout, todo, reports=False)
        log.info("Fan-out %s of %s completed after a restart: %d copies sent now", fanout.id, fanout.owner, len(todo))

    async def status(self, owner: str, fanout_id: str) -> FanoutStatus:
        """Where every copy of *owner*'s fan-out is now."""
        fanout_id = fanout_id.strip()
        await self.store.flush()
        fanout = await self.store.lists.fanout(owner, fanout_id)
        if fanout is None:
            raise ListError("item-not-found", f"You have no fan-out {fanout_id}.")
        return FanoutStatus(fanout, await self.store.lists.copies(owner, fanout_id))

    async def by_source(self, owner: str, source_id: str) -> FanoutRow:
        """The fan-out of the owner's message *source_id* (its id or origin-id)."""
        fanout = await self.store.lists.fanout_by_source(owner, source_id)
        if fanout is None:
            raise ListError("item-not-found", f"No message of yours to a list has the id {source_id}.")
        return fanout

    async def recall(self, owner: str, fanout_id: str) -> FanoutStatus:
        """Recall every copy: held ones are never delivered, released ones get a XEP-0424 retraction."""
        status = await self.status(owner, fanout_id)
        fanout = status.fanout
        await self.store.lists.mark_recalled(owner, fanout.id, time.time())
        note = f"fan-out {fanout.id} recalled"
        held = {m.msg_id for m in self.pipeline.pending(owner)}
        to_recall = [c for c in status.copies if c.msg_id in held]
        for start in range(0, len(to_recall), CHUNK):
            results = await asyncio.gather(
                *(self.pipeline.recall(owner, c.msg_id, note) for c in to_recall[start : start + CHUNK]),
                return_exceptions=True,
            )
            for result in results:  # NotFound / TooLate: released meanwhile, retracted below
                if isinstance(result, Exception) and not isinstance(result, (NotFound, TooLate)):
                    raise result
        status = await self.status(owner, fanout.id)
        late = [c for c in status.copies if c.state in DELIVERED and not c.retraction_id]
        for start in range(0, len(late), CHUNK):
            await asyncio.gather(*(self._retract(fanout, c, note) for c in late[start : start + CHUNK]))
            if self.pace is not None and start + CHUNK < len(late):
                await self.pace()
        log.info("Fan-out %s of %s recalled: %d retracted after release", fanout.id, owner, len(late))
        return await self.status(owner, fanout.id)

    async def _retract(self, fanout: FanoutRow, c: CopyRow, note: str) -> None:
        retraction_id = uuid.uuid4().hex
        extra = [
            ET.Element(f"{{{NS_RETRACT}}}retract", id=c.msg_id),
            ET.Element(f"{{{NS_FALLBACK}}}fallback", {"for": NS_RETRACT}),
            ET.Element(f"{{{NS_HINTS}}}store"),
        ]
        await self.pipeline.originate(
            fanout.owner, c.member, RETRACT_FALLBACK, msg_id=retraction_id, extra=extra, note=f"retraction: {note}"
        )
        await self.store.lists.set_retraction(fanout.owner, fanout.id, c.member, retraction_id)
        if c.message_seq is not None:
            await self._passed_on(c.message_seq, Event.RETRACT, note)

    async def _passed_on(self, seq: int, event: Event, note: str) -> None:
        """Record (and report to the owner) on a delivered copy that a retraction or correction was passed on."""
        if self.pipeline.passed_on(await self.store.message(seq), event, f"passed on ({note})"):
            await self.store.flush()

    async def correct(self, owner: str, source_id: str, body: str) -> FanoutStatus:
        """XEP-0308 on a message to a list: held copies get the new text, released ones a correction."""
        if not body.strip():
            raise ListError("bad-request", "The new text is empty.", "modify")
        fanout = await self.by_source(owner, source_id)
        status = await self.status(owner, fanout.id)
        note = f"fan-out {fanout.id} corrected"
        held = {m.msg_id for m in self.pipeline.pending(owner)}
        for c in status.copies:
            if c.msg_id in held:
                try:
                    await self.pipeline.edit(owner, c.msg_id, body, note)
                    continue
                except (NotFound, TooLate):
                    c = next(x for x in (await self.status(owner, fanout.id)).copies if x.member == c.member)
            if c.state in DELIVERED:
                replace = ET.Element(f"{{{NS_CORRECT}}}replace", id=c.msg_id)
                await self.pipeline.originate(owner, c.member, body, extra=[replace], note=f"correction: {note}")
                if c.message_seq is not None:
                    await self._passed_on(c.message_seq, Event.EDIT, note)
        return await self.status(owner, fanout.id)


__all__ = ["AGGREGATE", "FanoutStatus", "Limits", "ListError", "ListService", "aggregate_state", "copy_state"]

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

Expected failures raise :class:`ListError` with an XMPP error condition and a
sentence for the user; the XMPP side and the commands show it as it is.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from slixmpp import JID
from slixmpp.jid import InvalidJID
from slixmpp.types import ErrorConditions, ErrorTypes

from .. import metrics
from ..delivery.pipeline import NotFound, Pipeline, TooLate
from ..delivery.states import DELIVERED, Event, State, hop_word
from ..namespaces import NS_CORRECT, NS_FALLBACK, NS_HINTS, NS_MARKERS, NS_RECEIPTS, NS_RETRACT
from ..store import Store
from ..store.lists import CopyRow, FanoutRow, LimitReached, ListRow, NameTaken
from . import names

log = logging.getLogger(__name__)


#: The body of a retraction, for clients without XEP-0424 (the text XEP-0424 suggests).
RETRACT_FALLBACK = "This person attempted to retract a previous message, but it's unsupported by your client."
#: Copies originated at once (one group commit); between chunks Courier waits for the server
#: to have routed the previous chunk (:attr:`ListService.pace`), so other traffic interleaves.
CHUNK = 10
#: Fan-outs per owner kept in memory for the commands' forms.
RECENT = 10
#: Aggregate states of a fan-out, each copy counted once, in its current state.
AGGREGATE = ("held", "released", "sms", "sms-delivered", "received", "read", "recalled", "retracted", "failed")


class ListError(Exception):
    """An expected failure: an XMPP error condition, its type, and a sentence for the user."""

    def __init__(self, condition: ErrorConditions, text: str, etype: ErrorTypes = "cancel") -> None:
        super().__init__(text)
        self.condition = condition
        self.text = text
        self.etype = etype


@dataclass(frozen=True)
class Limits:
    """Configurable limits (``lists.*`` options)."""

    max_members: int = 500
    max_lists: int = 100
    fanouts_per_minute: int = 10


def copy_state(c: CopyRow) -> str:
    """One copy's state in courier-hops words (a copy not durable yet counts as sent)."""
    return hop_word(c.state or State.ACCEPTED.value, c.hold_reason)


def aggregate_state(state: str) -> str:
    """A courier-hops state as counted in the aggregate: still at the server = held."""
    return "held" if state in ("sent", "cached", "held") else state


@dataclass(slots=True)
class FanoutStatus:
    """A fan-out and where each of its copies is now."""

    fanout: FanoutRow
    copies: list[CopyRow]

    @property
    def total(self) -> int:
        return len(self.copies)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(AGGREGATE, 0)
        for c in self.copies:
            state = aggregate_state(copy_state(c))
            counts[state] = counts.get(state, 0) + 1  # (a state added later is counted, not fatal)
        return counts

    def summary(self) -> str:
        """“5 members: 3 released, 2 held”."""
        parts = [f"{n} {state}" for state, n in self.counts.items() if n]
        noun = "member" if self.total == 1 else "members"
        return f"{self.total} {noun}: " + ", ".join(parts) if parts else f"{self.total} {noun}"


def _copy_extras() -> list[ET.Element]:
    """What every copy carries besides its body: a receipt request and a marker, so that the
    member's client reports received/read (P2) for this copy."""
    return [ET.Element(f"{{{NS_RECEIPTS}}}request"), ET.Element(f"{{{NS_MARKERS}}}markable")]


class ListService:
    """Broadcast lists of the users of *domain*, addressed under Courier's JID *component*."""

    def __init__(self, store: Store, pipeline: Pipeline, component: str, domain: str, limits: Limits) -> None:
        self.store = store
        self.pipeline = pipeline
        self.component = component
        self.domain = domain
        self.limits = limits
        # owner -> key -> (name, expires): for the commands' forms (which cannot wait for the store)
        self._names: defaultdict[str, dict[str, tuple[str, float | None]]] = defaultdict(dict)
        # owner -> newest fan-outs first
        self._recent: defaultdict[str, list[FanoutRow]] = defaultdict(list)
        #: Awaited after each chunk of copies: returns once the server has routed what was sent
        #: so far (the XMPP side pings the server); None sends chunk after chunk.
        self.pace: Callable[[], Awaitable[None]] | None = None
        #: Called with (owner, list JID) when a list's JID stops existing (deleted, renamed):
        #: the XMPP side withdraws the list's presence from the owner.
        self.on_gone: Callable[[str, str], None] | None = None

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

    # -- names, members, JIDs --------------------------------------------------------

    def names_of(self, owner: str) -> list[str]:
        """*owner*'s list names (from memory), ordered by key."""
        now = time.time()
        mine = self._names.get(owner, {})
        return [name for key, (name, expires) in sorted(mine.items()) if expires is None or expires > now]

    def list_jids(self) -> list[tuple[str, str]]:
        """(owner, list JID) of every list (from memory): the XMPP side answers their presence."""
        now = time.time()
        return [
            (owner, names.list_jid(owner, key, self.component))
            for owner, mine in self._names.items()
            for key, (_, expires) in mine.items()
            if expires is None or expires > now
        ]

    def recent_fanouts(self, owner: str) -> list[FanoutRow]:
        """*owner*'s newest fan-outs (from memory), newest first."""
        return list(self._recent.get(owner, []))

    def jid_of(self, row: ListRow) -> str:
        return names.list_jid(row.owner, row.key, self.component)

    @staticmethod
    def _key(name: str) -> str:
        try:
            return names.key_for(name)
        except names.BadName as exc:
            raise ListError("bad-request", str(exc), "modify") from None

    def member(self, text: str) -> str:
        """A member address as written → its bare JID; :class:`ListError` if it cannot be one."""
        text = text.strip().strip(",;")
        try:
            jid = JID(text)
        except InvalidJID:
            jid = JID()
        if not jid.user or not jid.domain:
            raise ListError("jid-malformed", f"“{text}” is not a user's address (user@domain).", "modify")
        if jid.domain == self.component:
            raise ListError("bad-request", f"{jid.bare} is an address of Courier itself, not a member.", "modify")
        return str(jid.bare)

    def members(self, texts: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(self.member(t) for t in texts if t.strip().strip(",;")))

    def _remember(self, row: ListRow) -> None:
        self._names[row.owner][row.key] = (row.name, row.expires)

    # -- lists -------------------------------------------------------------------------

    async def create(
        self, owner: str, name: str, members: Iterable[str], *, expires: float | None = None, temporary: bool = False
    ) -> ListRow:
        """A new list; temporary ones end at *expires*, by default at the end of the day (UTC)."""
        now = time.time()
        key = self._key(name)
        jids = self.members(members)
        if len(jids) > self.limits.max_members:
            raise ListError("not-acceptable", f"A list has at most {self.limits.max_members} members.", "modify")
        if temporary and expires is None:
            expires = names.end_of_day(now)
        if expires is not None and expires <= now:
            raise ListError("bad-request", "A temporary list must end in the future.", "modify")
        try:
            row = await self.store.lists.create(
                owner, names.clean_name(name), key, jids, expires=expires, now=now,
                max_lists=self.limits.max_lists, max_members=self.limits.max_members,
            )  # fmt: skip
        except NameTaken:
            raise ListError("conflict", f"You already have a list named “{names.clean_name(name)}”.") from None
        except LimitReached:
            raise ListError(
                "not-acceptable", f"You can have at most {self.limits.max_lists} lists.", "modify"
            ) from None
        self._remember(row)
        return row

    async def get(self, owner: str, name: str) -> ListRow:
        row = await self.store.lists.get(owner, self._key(name), time.time())
        if row is None:
            raise ListError("item-not-found", f"You have no list named “{name.strip()}”.")
        return row

    async def by_jid(self, requester: str, jid: JID) -> ListRow:
        """The list at *jid*, if *requester* owns it; anybody else learns nothing (item-not-found)."""
        parsed = names.parse_list_jid(jid, self.component, self.domain)
        row = None
        if parsed is not None and parsed[0] == requester:
            row = await self.store.lists.get(requester, parsed[1], time.time())
        if row is None:
            raise ListError("item-not-found", f"You have no list at {jid.bare}.")
        return row

    async def lists(self, owner: str) -> list[ListRow]:
        return await self.store.lists.of(owner, time.time())

    async def rename(self, owner: str, name: str, new_name: str) -> ListRow:
        old_key, new_key = self._key(name), self._key(new_name)
        try:
            row = await self.store.lists.rename(owner, old_key, names.clean_name(new_name), new_key, time.time())
        except NameTaken:
            raise ListError("conflict", f"You already have a list named “{names.clean_name(new_name)}”.") from None
        if row is None:
            raise ListError("item-not-found", f"You have no list named “{name.strip()}”.")
        self._names[owner].pop(old_key, None)
        self._remember(row)
        if old_key != new_key:
            self._gone(owner, old_key)
        return row

    async def add(self, owner: str, name: str, members: Iterable[str]) -> tuple[ListRow, list[str]]:
        """Add members; the list and the JIDs that were not members yet."""
        jids = self.members(members)
        try:
            result = await self.store.lists.add_members(
                owner, self._key(name), jids, now=time.time(), max_members=self.limits.max_members
            )
        except LimitReached:
            raise ListError(
                "not-acceptable", f"A list has at most {self.limits.max_members} members.", "modify"
            ) from None
        if result is None:
            raise ListError("item-not-found", f"You have no list named “{name.strip()}”.")
        return result

    async def remove(self, owner: str, name: str, members: Iterable[str]) -> tuple[ListRow, list[str]]:
        """Remove members; the list and the JIDs that were removed."""
        jids = [str(JID(m.strip()).bare) if _is_jid(m) else m.strip() for m in members if m.strip()]
        result = await self.store.lists.remove_members(owner, self._key(name), jids, time.time())
        if result is None:
            raise ListError("item-not-found", f"You have no list named “{name.strip()}”.")
        return result

    async def set_lifetime(self, owner: str, name: str, expires: float | None) -> ListRow:
        """Make a list permanent (None) or temporary until *expires*."""
        if expires is not None and expires <= time.time():
            raise ListError("bad-request", "A temporary list must end in the future.", "modify")
        row = await self.store.lists.set_expires(owner, self._key(name), expires, time.time())
        if row is None:
            raise ListError("item-not-found", f"You have no list named “{name.strip()}”.")
        self._remember(row)
        return row

    async def delete(self, owner: str, name: str) -> None:
        key = self._key(name)
        if not await self.store.lists.delete(owner, key, time.time()):
            raise ListError("item-not-found", f"You have no list named “{name.strip()}”.")
        self._names[owner].pop(key, None)
        self._gone(owner, key)

    def _gone(self, owner: str, key: str) -> None:
        if self.on_gone is not None:
            self.on_gone(owner, names.list_jid(owner, key, self.component))

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
            jid = JID(address) if _is_jid(address) else JID()
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


def _is_jid(text: str) -> bool:
    try:
        JID(text.strip())
    except InvalidJID:
        return False
    return True


__all__ = ["AGGREGATE", "FanoutStatus", "Limits", "ListError", "ListService", "aggregate_state", "copy_state"]

"""Broadcast lists (P4): the owners' lists — their names and JIDs, members, lifetimes and
limits — of :class:`~.service.ListService` (its base class), over the store."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable

from slixmpp import JID
from slixmpp.jid import InvalidJID

from ..delivery.pipeline import Pipeline
from ..store import Store
from ..store.lists import FanoutRow, LimitReached, ListRow, NameTaken
from . import names
from .model import Limits, ListError, is_jid


class ListBook:
    """The lists of the users of *domain*, addressed under Courier's JID *component*."""

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
        jids = [str(JID(m.strip()).bare) if is_jid(m) else m.strip() for m in members if m.strip()]
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

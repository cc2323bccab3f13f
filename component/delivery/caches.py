"""The pipeline's in-memory caches: who is online (presence), the users' delivery settings
(undo-send window, hop reports by default), and the refs of recalled messages.  Settings are
written through to the store and loaded at start; presence is learnt from the server (presence
stanzas, and its word on each hand-off)."""

from __future__ import annotations

from array import array
from collections import defaultdict

from ..store import Store
from .stanzas import bare


class Presence:
    """Local users' available resources (bare JID -> full JIDs; "?": the server says online)."""

    def __init__(self) -> None:
        self.available: defaultdict[str, set[str]] = defaultdict(set)

    def online(self, bare_jid: str) -> bool:
        return bool(self.available.get(bare_jid))

    def hint(self, bare_jid: str, where: str) -> None:
        """Remember what the server says about a hand-off's recipient right now."""
        if where == "online" and not self.available.get(bare_jid):
            self.available[bare_jid].add("?")
        elif where == "offline":
            self.available.pop(bare_jid, None)

    def update(self, full_jid: str, available: bool) -> tuple[bool, bool]:
        """A resource became (un)available: (the user came online, it is a new device)."""
        user = bare(full_jid)
        resources = self.available[user]
        if not available:
            resources.discard(full_jid)
            if not resources or resources == {"?"}:
                del self.available[user]
            return False, False
        came_online = not (resources - {"?"})
        new_device = full_jid not in resources
        resources.add(full_jid)
        resources.discard("?")
        return came_online, new_device


class Settings:
    """Per-user delivery settings, cached."""

    def __init__(self, store: Store, default_undo_window: float = 0.0) -> None:
        self.store = store
        self.default_undo_window = default_undo_window
        self.undo_windows: dict[str, float] = {}
        self.report_defaults: set[str] = set()

    async def load(self) -> None:
        self.undo_windows = await self.store.undo_windows()
        self.report_defaults = await self.store.report_defaults()

    def undo_window(self, sender: str) -> float:
        return self.undo_windows.get(sender, self.default_undo_window)

    async def set_undo_window(self, sender: str, seconds: float | None) -> None:
        await self.store.set_undo_window(sender, seconds)
        if seconds is None:
            self.undo_windows.pop(sender, None)
        else:
            self.undo_windows[sender] = seconds

    def reports_on(self, sender: str) -> bool:
        return sender in self.report_defaults

    async def set_reports(self, sender: str, on: bool) -> None:
        await self.store.set_reports(sender, on)
        (self.report_defaults.add if on else self.report_defaults.discard)(sender)


class ClosedRefs:
    """The refs of closed messages (recalled, or gone as SMS) whose late corrections and
    retractions are absorbed: ``(sender, recipient, id or origin-id) -> seq``, in closing order,
    forgotten oldest first (:meth:`forget`).

    Kept compact, since an operator's Courier holds up to a day of them: a key is its 64-bit
    ``hash()`` (Python's string hashing is keyed per process), and the closing order lives in
    arrays: 207 bytes a message with an id and an origin-id, against 591 as tuples of strings
    (``pytest -s tests/delivery/test_memory.py``, 2026-12-07).  Two keys of one hash would make
    a correction of the one absorbed as the other's: at 100,000 entries about 1 in 10^14 per
    lookup.
    """

    def __init__(self) -> None:
        self._index: dict[int, int] = {}  # key hash -> the position that set it
        self._times = array("d")  # per position, from _base on: when it closed
        self._seqs = array("q")  # its message
        self._hashes = array("q")  # its two key hashes (the same one twice for one ref)
        self._base = 0  # the position of the arrays' first item
        self._head = 0  # the first item not yet forgotten

    def __len__(self) -> int:
        return len(self._times) - self._head

    def add(self, keys: list[tuple[str, str, str]], seq: int, at: float) -> None:
        """Index *keys* (one or two) of closed message *seq*."""
        pos = self._base + len(self._times)
        hashes = [hash(k) for k in keys]
        for h in hashes:
            self._index[h] = pos
        self._times.append(at)
        self._seqs.append(seq)
        self._hashes.extend((hashes[0], hashes[-1]))

    def get(self, key: tuple[str, str, str]) -> int | None:
        pos = self._index.get(hash(key))
        return None if pos is None else self._seqs[pos - self._base]

    def discard(self, key: tuple[str, str, str]) -> None:
        """A newer message took the ref: it is that one's now."""
        self._index.pop(hash(key), None)

    def forget(self, now: float, memory: float, limit: int) -> None:
        """Forget the refs closed *memory* seconds ago or more, and the oldest beyond *limit*."""
        times, index, hashes = self._times, self._index, self._hashes
        head, end = self._head, len(times)
        while head < end and (now - times[head] >= memory or end - head > limit):
            pos = self._base + head
            for h in (hashes[2 * head], hashes[2 * head + 1]):
                if index.get(h) == pos:
                    del index[h]
            head += 1
        if head > 1024 and 2 * head > end:  # the forgotten half goes (amortised: each item moves once)
            del times[:head], self._seqs[:head], hashes[: 2 * head]
            self._base += head
            head = 0
        self._head = head

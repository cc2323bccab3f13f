"""The pipeline's in-memory caches: who is online (presence), and the users' delivery
settings (undo-send window, hop reports by default).  Settings are written through to the
store and loaded at start; presence is learnt from the server (presence stanzas, and its
word on each hand-off)."""

from __future__ import annotations

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

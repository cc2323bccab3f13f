"""``reports chat``: what only Courier knows, told in one chat line a stock client shows.

Hop reports are headlines without a body (courier-hops), invisible in stock
clients.  A user who turns on chat reports (off by default) gets one short chat
message from Courier's JID when a message of theirs that waited for an offline
recipient (*cached*) is finally delivered, and one when it is read — each once,
however many receipts or markers follow.  Only messages that were cached count:
every message waiting out an undo-send window would be noise.

"Once" is decided from the stored hops (the first delivery hop, the first read
hop), so it holds across restarts.  The line is sent after the hop is committed;
a crash between the two loses the line, never the message (at most once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..tasks import spawn
from .preview import preview
from .states import Hop

if TYPE_CHECKING:
    from ..store import MessageRow, Store


DELIVERED = ("released", "received")
READ = ("read",)


class ChatReports:
    """Per-user setting and the observer that turns hops into chat lines."""

    def __init__(self, store: Store, say: Callable[[str, str], None]) -> None:
        self.store = store
        self.say = say  # (user's bare JID, text): a chat message from Courier
        self.users: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.users = await self.store.chat_report_users()

    def on(self, user: str) -> bool:
        return user in self.users

    async def set(self, user: str, on: bool) -> None:
        await self.store.set_chat_reports(user, on)
        (self.users.add if on else self.users.discard)(user)

    def hop(self, m: MessageRow, hop: Hop) -> None:
        """Pipeline hop observer (after the commit): maybe tell the sender, in the background."""
        if m.sender not in self.users or m.kind != "message" or hop.label not in DELIVERED + READ:
            return
        spawn(self._tell(m, hop), self._tasks, "A chat report")

    async def _tell(self, m: MessageRow, hop: Hop) -> None:
        hops = await self.store.hops(m.seq)
        cached = [i for i, h in enumerate(hops) if h.label == "held" and h.note == "recipient-offline"]
        if not cached:
            return  # never waited for its recipient: nothing a stock client did not show
        kind = DELIVERED if hop.label in DELIVERED else READ
        # (after the wait: a message cached at the recipient's server was released toward it before)
        first = next((h for h in hops[cached[0] :] if h.label in kind), None)
        if first is None or (first.label, first.at) != (hop.label, hop.at):
            return  # told already (a receipt after the release, a second marker)
        if kind is DELIVERED:
            self.say(m.sender, f"Delivered to {m.recipient_bare}: “{preview(m)}”.")
        else:
            self.say(m.sender, f"{m.recipient_bare} read “{preview(m)}”.")


def attach(courier: Any) -> ChatReports:
    """Courier's "reports chat": lines sent as chat messages from its JID, fed by its pipeline's hops."""

    def say(user: str, text: str) -> None:  # stored like any chat message
        courier.make_message(mto=user, mfrom=courier.boundjid.bare, mtype="chat", mbody=text).send()

    reports = ChatReports(courier.store, say)
    courier.pipeline.hop_observers.append(reports.hop)
    return reports

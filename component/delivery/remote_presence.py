"""Federation, the sender's side, with a stock server on the other side: Courier A holds a
message for a remote recipient whose presence it can see, until they are online.

XEP-0356 ``presence="roster"`` (with ``roster="get"``) makes the server forward to Courier
the presence its users receive from their remote contacts.  A message to a remote recipient
is held like one to an offline local recipient (``cached``) when

- the recipient's server has no Courier peer (a peer holds the message itself),
- the *sender* is subscribed to the recipient's presence (roster subscription ``to`` or
  ``both``: Courier never tells a sender what she could not see herself), and
- the last presence seen from the recipient says offline.

Otherwise it is released at once ("to a remote server").  A held one is released when the
recipient's available presence arrives.  Remote presences are kept here, not in the
pipeline's map of local users' presence (drafts' and others' observers never see them).

The sender's roster is read (privileged roster get) when her messages may be held and the
copy is older than :data:`ROSTER_TTL`; hand-offs to that recipient wait for it, in order.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slixmpp.exceptions import IqError, IqTimeout

from ..tasks import spawn
from .pipeline import Handoff, Pipeline
from .remote import Peers

log = logging.getLogger(__name__)

ROSTER_TTL = 10.0
ROSTER_TIMEOUT = 5.0
SUBSCRIBED = ("to", "both")


def _bare(jid: str) -> str:
    return jid.partition("/")[0]


def _domain(jid: str) -> str:
    return _bare(jid).rpartition("@")[2]


class RemotePresence:
    """Remote contacts' presence and local users' rosters; the pipeline's ``remote_held``."""

    def __init__(self, courier: Any, pipeline: Pipeline, peers: Peers) -> None:
        self.courier = courier
        self.pipeline = pipeline
        self.peers = peers
        self.seen: set[str] = set()  # remote bare JIDs whose presence arrived (available or not)
        self.available: dict[str, set[str]] = {}  # remote bare JID -> its available full JIDs
        self.rosters: dict[str, tuple[float, dict[str, str]]] = {}  # local user -> (read at, contact -> subscription)
        self.waiting: dict[str, list[Handoff]] = {}  # remote recipient -> hand-offs waiting for a roster
        self._tasks: set[Any] = set()
        pipeline.remote_held = self.held

    # -- presence ---------------------------------------------------------------

    def on_presence(self, pres: Any) -> None:
        """A remote contact's presence, forwarded by the server (XEP-0356 presence='roster')."""
        sender = pres["from"]
        if not sender.user or sender.domain == self.pipeline.domain:
            return
        bare, full = str(sender.bare), str(sender.full)
        self.seen.add(bare)
        resources = self.available.get(bare)
        if pres["type"] != "unavailable":
            self.available.setdefault(bare, set()).add(full)
            if not resources:
                self.pipeline.flush(bare)  # came online: what waited for them goes
        elif resources is not None:
            resources.discard(full)
            resources.discard(bare)
            if not resources:
                del self.available[bare]

    def held(self, sender: str, recipient: str) -> bool:
        """Whether a message from local *sender* to remote *recipient* waits here now."""
        if recipient not in self.seen or recipient in self.available or self.peers.speaks(_domain(recipient)):
            return False
        roster = self.rosters.get(sender)
        return roster is not None and roster[1].get(recipient) in SUBSCRIBED

    # -- hand-offs: read the sender's roster first when it decides -----------------

    def handoff(self, h: Handoff) -> None:
        """The hand-off path: to the pipeline, after a roster read when one could hold it."""
        recipient = _bare(h.inner.get("to", ""))
        if recipient in self.waiting:
            self.waiting[recipient].append(h)
        elif self._needs_roster(_bare(h.inner.get("from", "")), recipient):
            self.waiting[recipient] = [h]
            spawn(self._drain(recipient), self._tasks, "Roster read")
        else:
            self.pipeline.handoff(h)

    def _needs_roster(self, sender: str, recipient: str) -> bool:
        local = self.pipeline.domain
        if _domain(sender) != local or _domain(recipient) == local or recipient not in self.seen:
            return False
        if recipient in self.available or self.peers.speaks(_domain(recipient)):
            return False
        roster = self.rosters.get(sender)
        return roster is None or roster[0] + ROSTER_TTL < time.monotonic()

    async def _drain(self, recipient: str) -> None:
        """Hand the waiting hand-offs for *recipient* to the pipeline in order, each after its
        sender's roster is read if it could be held."""
        queue = self.waiting[recipient]
        try:
            while queue:
                sender = _bare(queue[0].inner.get("from", ""))
                if self._needs_roster(sender, recipient):
                    await self._read_roster(sender)
                self.pipeline.handoff(queue.pop(0))
        finally:
            for h in self.waiting.pop(recipient, []):
                self.pipeline.handoff(h)

    async def _read_roster(self, sender: str) -> None:
        items: dict[str, str] = {}
        try:
            iq = await self.courier.plugin["xep_0356"].get_roster(sender, timeout=ROSTER_TIMEOUT)
            items = {str(jid): str(item["subscription"]) for jid, item in iq["roster"]["items"].items()}
        except (IqError, IqTimeout, PermissionError) as exc:
            log.warning("Could not read %s's roster (XEP-0356 roster='get'): %s", sender, exc)
        self.rosters[sender] = (time.monotonic(), items)  # (an unreadable one: not subscribed, for ROSTER_TTL)

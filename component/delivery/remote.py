"""Federation, the sender's side: Courier A tracks a message released toward a Courier peer.

- :class:`Peers`: which remote servers' Couriers speak courier-federation (XEP-0030 disco#info
  of ``courier.<domain>``, cached).  Only toward those does a release carry ``<tracked/>``;
  releases toward a domain not known yet wait, in order, for the answer.
- :class:`RemoteChanges`: hop reports from the peer become hops of the message (place: the
  recipient's domain) reported to the sender's devices; a recall or edit by command of a
  message released toward a peer is asked of the peer, whose answer is certain: done, or too
  late (then the standard XEP-0424 retraction / XEP-0308 correction is passed on).

The protocol and its rules: xeps/courier-federation.xml.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree as ET

from slixmpp.exceptions import IqError, IqTimeout

from ..namespaces import NS_CLIENT, NS_CORRECT, NS_ROUTE, TRACKED_TAG
from ..store import MessageRow
from ..tasks import spawn
from ..util import parse_stamp
from ..xep.federation import HOP_STATES, NS, NS_LISTS, XEP_CourierFederation, read_reports, speaks_for
from . import sender_copy, stanzas
from .pipeline import Encrypted, NotFound, Pipeline, TooLate, encrypted
from .ports import PassedOn
from .states import Event, Hop, State

log = logging.getLogger(__name__)

#: How long a peer's disco#info answer is believed: a Courier that speaks the protocol, or not.
KNOWN_TTL, UNKNOWN_TTL = 3600.0, 60.0
DISCO_TIMEOUT = 5.0
#: How long the sender's Courier waits for the peer's certain answer to a recall or edit.
CHANGE_TIMEOUT = 10.0


def _domain(jid: str) -> str:
    return jid.partition("/")[0].rpartition("@")[2]


def peer_jid(domain: str) -> str:
    return f"courier.{domain}"


class Peers:
    """Remote Couriers that speak courier-federation; the release path toward them."""

    def __init__(
        self,
        xmpp: Any,
        domain: str,
        send: Callable[[str, ET.Element, str], None],
        send_originated: Callable[[ET.Element, str, str | None], None] | None = None,
        send_copy: Callable[[str, ET.Element | None], None] | None = None,
    ) -> None:
        self.xmpp = xmpp
        self.domain = domain
        self.send = send  # route.release
        self.send_originated = send_originated  # route.originate
        self.send_copy = send_copy  # route.release_copy
        self.known: dict[str, tuple[bool, float]] = {}  # domain -> (speaks it, believed until)
        #: domain -> sends waiting for its discovery, in order (each told whether it speaks)
        self.waiting: dict[str, list[Callable[[bool], None]]] = {}
        self._answered: dict[str, asyncio.Event] = {}  # domain -> set when its discovery ends
        self.lists: set[str] = set()  # domains whose Courier reads <hops/> and <acks/> (0.4)
        self._tasks: set[Any] = set()

    def speaks(self, domain: str) -> bool | None:
        """Whether *domain*'s Courier speaks the protocol (None: not known now)."""
        known = self.known.get(domain)
        if known is None or known[1] < time.monotonic():
            return None
        return known[0]

    async def discovered(self, domain: str) -> bool:
        """Whether *domain*'s Courier speaks the protocol, asking it first when not known now."""
        speaks = self.speaks(domain)
        if speaks is not None:
            return speaks
        answered = self._answered.setdefault(domain, asyncio.Event())
        if domain not in self.waiting:
            self.waiting[domain] = []
            spawn(self._discover(domain), self._tasks, "Federation discovery")
        await answered.wait()
        return bool(self.speaks(domain))

    def after_discovery(self, domain: str, send: Callable[[bool], None]) -> None:
        if domain in self.waiting:
            self.waiting[domain].append(send)
            return
        speaks = self.speaks(domain)
        if speaks is None:
            self.waiting[domain] = [send]
            spawn(self._discover(domain), self._tasks, "Federation discovery")
            return
        send(speaks)

    def release(self, hid: str, inner: ET.Element, sender_bare: str) -> None:
        """The pipeline's release: toward a peer, with ``<tracked/>``."""
        for forged in inner.findall(TRACKED_TAG):
            inner.remove(forged)
        domain = _domain(inner.get("to", ""))
        if _domain(sender_bare) != self.domain or domain == self.domain:
            self.send(hid, inner, sender_bare)  # local, or a remote sender's message (<deliver/>)
            return

        def send(tracked: bool) -> None:
            if tracked:
                inner.append(self._tracked(hid))
            self.send(hid, inner, sender_bare)

        self.after_discovery(domain, send)

    def _tracked(self, hid: str) -> ET.Element:
        return ET.Element(TRACKED_TAG, {"by": self.xmpp.boundjid.bare, "id": hid})

    def release_copy(self, hid: str, to: str) -> None:
        """The pipeline's release by reference: toward a peer, the server adds ``<tracked/>``
        (given with the release) to its copy; in order with full releases toward the domain."""
        assert self.send_copy is not None
        domain = _domain(to)
        if not to or domain == self.domain:
            self.send_copy(hid, None)  # local, an acknowledgement, or a remote sender's message
            return

        def send(tracked: bool) -> None:
            assert self.send_copy is not None
            self.send_copy(hid, self._tracked(hid) if tracked else None)

        self.after_discovery(domain, send)

    def originate(self, inner: ET.Element, sender_bare: str, token: str | None = None) -> None:
        """A message Courier composed: one toward a remote domain that carries our own
        ``<tracked/>`` (RemoteChanges.tracking) waits for the peer's discovery, like a release,
        and keeps it only if the peer speaks the protocol."""
        assert self.send_originated is not None
        ours = [t for t in inner.findall(TRACKED_TAG) if t.get("by") == self.xmpp.boundjid.bare]
        for other in inner.findall(TRACKED_TAG):
            if other not in ours:
                inner.remove(other)
        domain = _domain(inner.get("to", ""))
        if not ours or domain == self.domain:
            for element in ours:
                inner.remove(element)
            self.send_originated(inner, sender_bare, token)
            return

        def send(tracked: bool) -> None:
            if not tracked:
                for element in ours:
                    inner.remove(element)
            assert self.send_originated is not None
            self.send_originated(inner, sender_bare, token)

        self.after_discovery(domain, send)

    async def _discover(self, domain: str) -> None:
        speaks = lists = False
        try:
            info = await self.xmpp.plugin["xep_0030"].get_info(
                jid=peer_jid(domain), ifrom=self.xmpp.boundjid.bare, timeout=DISCO_TIMEOUT, cached=False
            )
            features = info["disco_info"]["features"]
            speaks, lists = NS in features, NS_LISTS in features
        except (IqError, IqTimeout) as exc:
            log.debug("No courier-federation at %s: %s", peer_jid(domain), exc)
        finally:
            (self.lists.add if lists else self.lists.discard)(domain)
            self.known[domain] = (speaks, time.monotonic() + (KNOWN_TTL if speaks else UNKNOWN_TTL))
            log.info("%s %s courier-federation", peer_jid(domain), "speaks" if speaks else "does not speak")
            for send in self.waiting.pop(domain, []):
                send(speaks)
            answered = self._answered.pop(domain, None)
            if answered is not None:
                answered.set()


class RemoteChanges:
    """Hop reports from peers, and recall/edit of messages a peer holds (``Pipeline.remote``)."""

    def __init__(self, pipeline: Pipeline, plugin: XEP_CourierFederation, peers: Peers) -> None:
        self.pipeline = pipeline
        self.plugin = plugin
        self.peers = peers
        #: Messages the peer reported cached (and nothing later), with their tokens: the sender's
        #: "pending" lists them too, so that commands can pick them.  Kept in the store
        #: (peer_tracks.held_since) and read back at start-up (:meth:`load`).
        self.held_there: dict[int, MessageRow] = {}
        self.tokens: dict[int, str] = {}  # seq -> token, of the messages in held_there
        #: (seq, label, at, place) of hops from reports recorded lately, committed or not: a
        #: report sent again is recorded once (older ones are looked up in the store).
        self._recent: OrderedDict[tuple[int, str, float, str], None] = OrderedDict()

    async def load(self) -> None:
        """Read back which messages peers hold (at start-up, before the first connect)."""
        for token, m in await self.pipeline.store.peers.held():
            if m.state is State.RELEASED:
                self.held_there[m.seq] = dataclasses.replace(m, hold_reason="recipient-offline")
                self.tokens[m.seq] = token
        if self.held_there:
            log.info("%d messages are held at Courier peers", len(self.held_there))

    def pending(self, sender: str) -> list[MessageRow]:
        """*sender*'s messages held at a peer, oldest first (part of ``Pipeline.pending``)."""
        return sorted((m for m in self.held_there.values() if m.sender == sender), key=lambda m: m.seq)

    def _held(self, m: MessageRow, token: str, at: float) -> None:
        self.held_there[m.seq] = dataclasses.replace(m, hold_reason="recipient-offline")
        self.tokens[m.seq] = token
        self.pipeline.store.queue_peer_track(token, m.seq, at)

    def _not_held(self, m: MessageRow) -> None:
        self.held_there.pop(m.seq, None)
        token = self.tokens.pop(m.seq, None)
        if token is not None:
            self.pipeline.store.queue_peer_track(token, m.seq, None)

    def tracking(self, inner: ET.Element) -> str:
        """Mark a message Courier composes toward a remote domain as tracked by us (our own
        ``<tracked/>``, any other removed): its token.  Peers.originate keeps the mark only
        toward a peer that speaks the protocol."""
        for forged in inner.findall(TRACKED_TAG):
            inner.remove(forged)
        token = uuid.uuid4().hex
        ET.SubElement(inner, TRACKED_TAG, {"by": self.plugin.xmpp.boundjid.bare, "id": token})
        return token

    # -- hop reports in ------------------------------------------------------------

    async def _known(self, m: MessageRow, label: str, at: float, place: str) -> bool:
        """Whether this hop was recorded already (a report sent again, or our own answer's)."""
        if (m.seq, label, at, place) in self._recent:
            return True
        recorded = await self.pipeline.store.peers.recorded([m.seq])
        return self._remember((m.seq, label, at, place), recorded)

    def _remember(self, key: tuple[int, str, float, str], recorded: set[tuple[int, str, float, str]]) -> bool:
        """Whether *key* is known (recent, or *recorded* in the store); it is remembered now."""
        if key in self._recent or key in recorded:
            return True
        self._recent[key] = None
        while len(self._recent) > 10_000:
            self._recent.popitem(last=False)
        return False

    async def on_hop(self, msg: Any) -> None:
        """A message of ``<hop/>`` reports from a peer (one or more: the peer batches them)."""
        peer = str(msg["from"])
        reports = read_reports(msg.xml)  # <hop/> and <hops/> (0.4) alike
        store = self.pipeline.store
        # (in order with the receipts and markers that came after it: the recipient's server
        # reports "released" before the recipient's receipt can reach us, but this step reads twice)
        turn = self.pipeline.in_order.turn()
        acks: list[str] = []
        try:
            rows = await store.peers.by_tokens(list({t for t, state, *_ in reports if t and state in HOP_STATES}))
            recorded = await store.peers.recorded(list({m.seq for m in rows.values()}))
            await turn.wait()
            for token, state, at, note, report_id in reports:
                if token and state in HOP_STATES:
                    self._on_hop(peer, rows.get(token), token, state, at, note, report_id, recorded, acks)
        finally:
            turn.done()
        if acks:  # once their hops are stored (refused or known ones too: with the same commit)
            store.after_commit(lambda: self._ack(peer, acks))

    def _ack(self, peer: str, reports: list[str]) -> None:
        for report in reports:
            self.plugin.ack(peer, report)

    def _on_hop(
        self, peer: str, m: MessageRow | None, token: str, state: str, stamp_: str, note: str, report_id: str,
        recorded: set[tuple[int, str, float, str]], acks: list[str],
    ) -> None:  # fmt: skip
        p = self.pipeline
        if report_id:
            acks.append(report_id)
        if m is None or _domain(m.sender) != p.domain or not speaks_for(peer, m.recipient_bare):
            log.warning("Refused a hop report from %s for %s: not the recipient's server's Courier", peer, token)
            return  # (acknowledged: refused for good, not to be sent again)
        try:
            at = parse_stamp(stamp_)
        except ValueError:
            at = time.time()
        label, note = ("held", "recipient-offline") if state == "cached" else (state, note)
        place = _domain(m.recipient_bare)
        if (state == "recalled" and m.state is State.RECALLED) or self._remember((m.seq, label, at, place), recorded):
            return  # our own recall's answer recorded it already, or a report sent again
        if state in ("cached", "held"):
            self._held(m, token, at)
        elif state != "edited":
            self._not_held(m)  # it left the peer (released, recalled, sms, failed…)
        hop = Hop(label, m.state, at, place, note)
        # (reported in courier-hops words: "held" for an offline recipient is "cached")
        p._record(dataclasses.replace(m, hold_reason="recipient-offline") if state == "cached" else m, hop)

    # -- recall and edit by command (Pipeline.recall / edit, when not held here) -------

    async def _released_to_peer(self, sender: str, ref: str) -> tuple[MessageRow, str, str]:
        """*sender*'s message *ref* released toward a peer that tracks it: (message, domain, token)."""
        p = self.pipeline
        await p.store.flush()
        m = await p.store.find_sent(sender, ref)
        if m is None:
            raise NotFound(ref)
        domain = _domain(m.recipient_bare)
        if m.state is not State.RELEASED or domain == p.domain:
            raise TooLate(f"the message is already {m.state}")
        token = self.tokens.get(m.seq) or m.hid or await p.store.peers.token_of(m.seq)
        # (a peer that reported holding it tracks it; otherwise ask it whether it speaks the
        # protocol now: after a restart nothing is known of it until then)
        if token is None or (m.seq not in self.held_there and not await self.peers.discovered(domain)):
            raise TooLate(f"the message is already {m.state}")
        return m, domain, token

    async def _ask(self, m: MessageRow, domain: str, token: str, body: str | None) -> tuple[str | None, float]:
        """The peer's certain answer: (None, when its hop was) done, or (the state it left in, now)."""
        try:
            late, at = await self.plugin.change(
                peer_jid(domain), token, m.sender, m.recipient_bare, m.msg_id or m.origin_id, body,
                timeout=CHANGE_TIMEOUT,
            )  # fmt: skip
        except IqError as exc:
            condition = exc.iq["error"]["condition"]
            raise TooLate(f"released to {domain}, which does not hold it ({condition})") from None
        except IqTimeout:
            raise TooLate(f"released to {domain}, which did not answer in time") from None
        if body is None or late is not None:
            self._not_held(m)  # recalled or too late: it is not pending any more
        try:
            return late, parse_stamp(at) if at else time.time()
        except ValueError:
            return late, time.time()

    async def recall(self, sender: str, ref: str, note: str) -> MessageRow:
        m, domain, token = await self._released_to_peer(sender, ref)
        late, at = await self._ask(m, domain, token, None)
        p, now = self.pipeline, time.time()
        if late is None:
            m.state, m.updated = State.RECALLED, now
            if not await self._known(m, Event.RECALL.value, at, domain):  # (B's report may come first)
                p._record(m, Hop(Event.RECALL.value, State.RECALLED, at, domain, f"at {domain}, {note}"))
            p.store.queue_update(m)
            await p.store.flush()
            p.transport.originate(sender_copy.recalled(m), m.sender)  # her archive and devices
            return m
        retraction = sender_copy.recalled(m)
        for only in retraction.findall(f"{{{NS_ROUTE}}}sender-only"):
            retraction.remove(only)
        p._send_after_commit(None, stanzas.serialize(retraction), m.sender)
        p.passed_on(m, Event.RETRACT, f"passed on: too late at {domain} ({late})", now)
        await p.store.flush()
        raise PassedOn(f"{domain} already delivered it ({late}); the standard retraction was passed on")

    async def edit(self, sender: str, ref: str, body: str, note: str) -> MessageRow:
        m, domain, token = await self._released_to_peer(sender, ref)
        if encrypted(m):
            raise Encrypted()
        late, at = await self._ask(m, domain, token, body)
        p, now = self.pipeline, time.time()
        if late is None:
            original = ET.fromstring(m.stanza)
            text = original.find(f"{{{NS_CLIENT}}}body")
            if text is not None:
                text.text = body
            m.body, m.stanza, m.updated = body, stanzas.serialize(original), now
            if m.seq in self.held_there:
                self.held_there[m.seq] = dataclasses.replace(m, hold_reason="recipient-offline")
            # (B's time: its own report of this hop, before or after this answer, is recorded once)
            if not await self._known(m, Event.EDIT.value, at, domain):
                p._record(m, Hop(Event.EDIT.value, m.state, at, domain, f"at {domain}, {note}"))
            p.store.queue_update(m)
            await p.store.flush()
            return m
        correction = ET.Element(
            f"{{{NS_CLIENT}}}message",
            {"from": m.sender, "to": m.recipient_bare, "type": "chat", "id": uuid.uuid4().hex},
        )
        ET.SubElement(correction, f"{{{NS_CLIENT}}}body").text = body
        ET.SubElement(correction, f"{{{NS_CORRECT}}}replace", id=m.msg_id or m.origin_id)
        p._send_after_commit(None, stanzas.serialize(correction), m.sender)
        p.passed_on(m, Event.EDIT, f"passed on: too late at {domain} ({late})", now)
        await p.store.flush()
        raise PassedOn(f"{domain} already delivered it ({late}); the standard correction was passed on")

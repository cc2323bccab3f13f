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

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree as ET

from slixmpp.exceptions import IqError, IqTimeout

from ..namespaces import NS_CLIENT, NS_CORRECT, NS_ROUTE, TRACKED_TAG
from ..store import MessageRow
from ..tasks import spawn
from ..util import parse_stamp
from ..xep.federation import HOP_STATES, NS, XEP_CourierFederation, speaks_for
from . import sender_copy
from .pipeline import Encrypted, NotFound, Pipeline, TooLate, encrypted
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

    def __init__(self, xmpp: Any, domain: str, send: Callable[[str, ET.Element, str], None]) -> None:
        self.xmpp = xmpp
        self.domain = domain
        self.send = send  # route.release
        self.known: dict[str, tuple[bool, float]] = {}  # domain -> (speaks it, believed until)
        self.waiting: dict[str, list[tuple[str, ET.Element, str]]] = {}
        self._tasks: set[Any] = set()

    def speaks(self, domain: str) -> bool | None:
        """Whether *domain*'s Courier speaks the protocol (None: not known now)."""
        known = self.known.get(domain)
        if known is None or known[1] < time.monotonic():
            return None
        return known[0]

    def release(self, hid: str, inner: ET.Element, sender_bare: str) -> None:
        """The pipeline's release: toward a peer, with ``<tracked/>``."""
        for forged in inner.findall(TRACKED_TAG):
            inner.remove(forged)
        domain = _domain(inner.get("to", ""))
        if _domain(sender_bare) != self.domain or domain == self.domain:
            self.send(hid, inner, sender_bare)  # local, or a remote sender's message (<deliver/>)
            return
        if domain in self.waiting:
            self.waiting[domain].append((hid, inner, sender_bare))
            return
        speaks = self.speaks(domain)
        if speaks is None:
            self.waiting[domain] = [(hid, inner, sender_bare)]
            spawn(self._discover(domain), self._tasks, "Federation discovery")
            return
        self._send(hid, inner, sender_bare, speaks)

    def _send(self, hid: str, inner: ET.Element, sender_bare: str, tracked: bool) -> None:
        if tracked:
            ET.SubElement(inner, TRACKED_TAG, {"by": self.xmpp.boundjid.bare, "id": hid})
        self.send(hid, inner, sender_bare)

    async def _discover(self, domain: str) -> None:
        speaks = False
        try:
            info = await self.xmpp.plugin["xep_0030"].get_info(
                jid=peer_jid(domain), ifrom=self.xmpp.boundjid.bare, timeout=DISCO_TIMEOUT, cached=False
            )
            speaks = NS in info["disco_info"]["features"]
        except (IqError, IqTimeout) as exc:
            log.debug("No courier-federation at %s: %s", peer_jid(domain), exc)
        finally:
            self.known[domain] = (speaks, time.monotonic() + (KNOWN_TTL if speaks else UNKNOWN_TTL))
            log.info("%s %s courier-federation", peer_jid(domain), "speaks" if speaks else "does not speak")
            for hid, inner, sender in self.waiting.pop(domain, []):
                self._send(hid, inner, sender, speaks)


class RemoteChanges:
    """Hop reports from peers, and recall/edit of messages a peer holds (``Pipeline.remote``)."""

    def __init__(self, pipeline: Pipeline, plugin: XEP_CourierFederation, peers: Peers) -> None:
        self.pipeline = pipeline
        self.plugin = plugin
        self.peers = peers
        #: Messages the peer reported cached (and nothing later): the sender's "pending" lists them
        #: too, so that commands can pick them.  In memory: after a restart, by id only.
        self.held_there: dict[int, MessageRow] = {}

    def pending(self, sender: str) -> list[MessageRow]:
        """*sender*'s messages held at a peer, oldest first (part of ``Pipeline.pending``)."""
        return sorted((m for m in self.held_there.values() if m.sender == sender), key=lambda m: m.seq)

    # -- hop reports in ------------------------------------------------------------

    async def on_hop(self, msg: Any) -> None:
        report = msg["fed_hop"]
        peer, token, state = str(msg["from"]), report["id"], report["state"]
        if not token or state not in HOP_STATES:
            return
        p = self.pipeline
        m = await p.store.message_by_hid(token)  # (committed before its release: no flush needed)
        if m is None or _domain(m.sender) != p.domain or not speaks_for(peer, m.recipient_bare):
            log.warning("Refused a hop report from %s for %s: not the recipient's server's Courier", peer, token)
            return
        if state == "recalled" and m.state is State.RECALLED:
            return  # our own recall's answer recorded it already
        try:
            at = parse_stamp(report["at"])
        except ValueError:
            at = time.time()
        if state in ("cached", "held"):
            self.held_there[m.seq] = dataclasses.replace(m, hold_reason="recipient-offline")
        elif state != "edited":
            self.held_there.pop(m.seq, None)  # it left the peer (released, recalled, sms, failed…)
        label, note = ("held", "recipient-offline") if state == "cached" else (state, report["body"])
        hop = Hop(label, m.state, at, _domain(m.recipient_bare), note)
        # (reported in courier-hops words: "held" for an offline recipient is "cached")
        p._record(dataclasses.replace(m, hold_reason="recipient-offline") if state == "cached" else m, hop)

    # -- recall and edit by command (Pipeline.recall / edit, when not held here) -------

    async def _released_to_peer(self, sender: str, ref: str) -> tuple[MessageRow, str]:
        p = self.pipeline
        await p.store.flush()
        m = await p.store.find_sent(sender, ref)
        if m is None:
            raise NotFound(ref)
        domain = _domain(m.recipient_bare)
        if m.state is not State.RELEASED or m.hid is None or domain == p.domain or not self.peers.speaks(domain):
            raise TooLate(f"the message is already {m.state}")
        return m, domain

    async def _ask(self, m: MessageRow, domain: str, body: str | None) -> str | None:
        if body is None:
            self.held_there.pop(m.seq, None)  # recalled or too late: it is not pending any more
        try:
            return await self.plugin.change(
                peer_jid(domain), m.hid or "", m.sender, m.recipient_bare, m.msg_id or m.origin_id, body,
                timeout=CHANGE_TIMEOUT,
            )  # fmt: skip
        except IqError as exc:
            condition = exc.iq["error"]["condition"]
            raise TooLate(f"released to {domain}, which does not hold it ({condition})") from None
        except IqTimeout:
            raise TooLate(f"released to {domain}, which did not answer in time") from None

    async def recall(self, sender: str, ref: str, note: str) -> MessageRow:
        m, domain = await self._released_to_peer(sender, ref)
        late = await self._ask(m, domain, None)
        p, now = self.pipeline, time.time()
        if late is None:
            m.state, m.updated = State.RECALLED, now
            p._record(m, Hop(Event.RECALL.value, State.RECALLED, now, domain, f"at {domain}, {note}"))
            p.store.queue_update(m)
            await p.store.flush()
            p.transport.originate(sender_copy.recalled(m), m.sender)  # her archive and devices
            return m
        retraction = sender_copy.recalled(m)
        for only in retraction.findall(f"{{{NS_ROUTE}}}sender-only"):
            retraction.remove(only)
        p._send_after_commit(None, ET.tostring(retraction, encoding="unicode"), m.sender)
        p.passed_on(m, Event.RETRACT, f"passed on: too late at {domain} ({late})", now)
        await p.store.flush()
        raise TooLate(f"{domain} already delivered it ({late}); the standard retraction was passed on")

    async def edit(self, sender: str, ref: str, body: str, note: str) -> MessageRow:
        m, domain = await self._released_to_peer(sender, ref)
        if encrypted(m):
            raise Encrypted()
        late = await self._ask(m, domain, body)
        p, now = self.pipeline, time.time()
        if late is None:
            original = ET.fromstring(m.stanza)
            text = original.find(f"{{{NS_CLIENT}}}body")
            if text is not None:
                text.text = body
            m.body, m.stanza, m.updated = body, ET.tostring(original, encoding="unicode"), now
            if m.seq in self.held_there:
                self.held_there[m.seq] = dataclasses.replace(m, hold_reason="recipient-offline")
            p._record(m, Hop(Event.EDIT.value, m.state, now, domain, f"at {domain}, {note}"))
            p.store.queue_update(m)
            await p.store.flush()
            return m
        correction = ET.Element(
            f"{{{NS_CLIENT}}}message",
            {"from": m.sender, "to": m.recipient_bare, "type": "chat", "id": uuid.uuid4().hex},
        )
        ET.SubElement(correction, f"{{{NS_CLIENT}}}body").text = body
        ET.SubElement(correction, f"{{{NS_CORRECT}}}replace", id=m.msg_id or m.origin_id)
        self.held_there.pop(m.seq, None)
        p._send_after_commit(None, ET.tostring(correction, encoding="unicode"), m.sender)
        p.passed_on(m, Event.EDIT, f"passed on: too late at {domain} ({late})", now)
        await p.store.flush()
        raise TooLate(f"{domain} already delivered it ({late}); the standard correction was passed on")

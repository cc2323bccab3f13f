"""Federation: remote servers' bounces of released messages, and :func:`attach`, which wires
the courier-federation parts (remote.py: the sender's side; inbound.py: the recipient's;
remote_presence.py: holding for remote recipients whose presence is visible).

A message Courier released toward another server is re-injected from the
sender's bare JID, so the remote server's error comes back there;
mod_courier_route copies it to Courier (``<bounce/>``, xeps/courier-route.xml).
It becomes a ``failed`` hop with the remote condition, reported to the sender.
"""

from __future__ import annotations

import logging
from typing import Any
from xml.etree import ElementTree as ET

from ..namespaces import NS_CLIENT, NS_STANZAS
from ..store import MessageRow
from ..xep import federation as xep_federation
from ..xep.federation import XEP_CourierFederation
from .inbound import Inbound
from .pipeline import Handoff, Pipeline
from .remote import Peers, RemoteChanges
from .remote_presence import RemotePresence
from .states import Event

log = logging.getLogger(__name__)


def _bare(jid: str) -> str:
    return jid.partition("/")[0]


def _domain(jid: str) -> str:
    return _bare(jid).rpartition("@")[2]


def error_condition(error: ET.Element) -> tuple[str, str]:
    """(defined condition, text) of an error stanza; ("undefined-condition", "") when absent."""
    element = error.find(f"{{{NS_CLIENT}}}error")
    condition, text = "undefined-condition", ""
    if element is not None:
        for child in element:
            name = child.tag.rpartition("}")[2]
            if child.tag.startswith(f"{{{NS_STANZAS}}}"):
                if name == "text":
                    text = (child.text or "").strip()
                else:
                    condition = name
    return condition, text


async def bounced(pipeline: Pipeline, error: ET.Element) -> MessageRow | None:
    """Record a remote server's error for a released message as its ``failed`` hop.

    Only the recipient's own server can bounce a message: the error's ``from``
    (authenticated by s2s) must be the recipient of a message the local user
    sent with that id.  Anything else changes nothing.
    """
    sender, recipient, ref = _bare(error.get("to", "")), _bare(error.get("from", "")), error.get("id", "")
    if not ref or _domain(sender) != pipeline.domain or _domain(recipient) == pipeline.domain:
        return None
    await pipeline.store.flush()
    m = await pipeline.store.find_message(sender, recipient, ref)
    if m is None:
        return None
    condition, text = error_condition(error)
    if not pipeline.record_on(m, Event.FAIL, _domain(recipient), f"{condition}: {text}" if text else condition):
        return None  # e.g. already received or failed: the error says nothing new
    log.info("Message %d (%s -> %s) bounced by %s: %s", m.seq, sender, recipient, _domain(recipient), condition)
    await pipeline.store.flush()
    return m


class Federation:
    """Courier's federation parts (courier-federation, xeps/courier-federation.xml), attached to
    the component: the release path toward peers, hop reports both ways, remote recall/edit."""

    def __init__(self, courier: Any) -> None:
        pipeline: Pipeline = courier.pipeline
        self.inbound = Inbound(pipeline, courier, courier.config["federation.resend_after"])
        # the releases of a commit go before its hop reports: the server routes them first;
        # the reports' coalescing timers are on the one scheduler
        pconfig = {
            "service": self.inbound, "before_reports": courier.route.flush_answers, "scheduler": pipeline.scheduler,
            "reads_lists": self._reads_lists,
        }  # fmt: skip
        courier.register_plugin("courier_federation", module=xep_federation, pconfig=pconfig)
        self.plugin: XEP_CourierFederation = courier.plugin["courier_federation"]
        # a local user's receipt or marker goes after the reports waiting for its peer (the
        # hop it follows, e.g. "released", reaches the sender's Courier first)
        pipeline.before_acknowledgement = self.plugin.flush_hops
        route = courier.route
        self.peers = Peers(courier, pipeline.domain, route.release, route.originate, route.release_copy)
        self.remote = RemoteChanges(pipeline, self.plugin, self.peers)
        pipeline.remote = self.remote
        pipeline.hop_recorders.append(self.inbound.hop)  # durable reports: in the hop's commit
        pipeline.tracked_by_peer = self.inbound.tracked_by_peer  # relayed before B's commit
        courier.add_event_handler("federation_hop", self.remote.on_hop)
        courier.add_event_handler("federation_acked", self.inbound.on_acked)
        courier.add_event_handler("session_start", self._connected)
        courier.add_event_handler("route_bounce", self._bounce)
        self.presence = RemotePresence(courier, pipeline, self.peers)  # holds by remote presence (XEP-0356)
        courier.add_event_handler("presence_available", self.presence.on_presence)
        courier.add_event_handler("presence_unavailable", self.presence.on_presence)
        self._pipeline = pipeline

    def _reads_lists(self, peer: str) -> bool:
        """Whether the sender's Courier *peer* (``courier.<domain>``) reads ``<hops/>``
        (courier-federation 0.4): its disco#info, asked (in the background) when not known now;
        ``<hop/>`` elements until then."""
        domain = peer.removeprefix("courier.")
        if domain == peer or "@" in peer or "/" in peer:
            return False
        if self.peers.speaks(domain) is None:
            self.peers.after_discovery(domain, lambda _speaks: None)  # asked once, in the background
            return False
        return domain in self.peers.lists

    async def start(self) -> None:
        """Before the first connect: which messages peers hold (peer_tracks), so that a sender's
        "pending" lists them from the first command on."""
        await self.remote.load()

    async def _connected(self, _event: object) -> None:
        self.inbound.start()  # hop reports not acknowledged: sent again now, then periodically

    async def _bounce(self, error: ET.Element) -> None:
        await bounced(self._pipeline, error)

    def handoff(self, h: Handoff) -> None:
        """The hand-off path (a sender's roster may be read first: remote_presence.py)."""
        self.inbound.handoff(h)
        self.presence.handoff(h)

    def release(self, hid: str, inner: ET.Element, sender_bare: str) -> None:
        """The transport's release (toward a peer with ``<tracked/>``)."""
        self.peers.release(hid, inner, sender_bare)

    def release_copy(self, hid: str, to: str = "") -> None:
        """The transport's release by reference (toward a peer with ``<tracked/>``)."""
        self.peers.release_copy(hid, to)

    def originate(self, inner: ET.Element, sender_bare: str, token: str | None = None) -> None:
        """The transport's originate (toward a peer: ``<tracked/>`` kept if it speaks the protocol)."""
        self.peers.originate(inner, sender_bare, token)


def attach(courier: Any) -> Federation:
    return Federation(courier)

"""The courier-federation plugin: one Courier talking to another across servers.

Both roles live in every Courier.  As the *recipient's* Courier it answers ``<recall/>``
and ``<edit/>`` from the sender's Courier (``pconfig={"service": FederationService}``),
sends ``<hop/>`` reports (:meth:`XEP_CourierFederation.send_hops`, batched: one message per
peer and event-loop turn, after what ``pconfig["before_reports"]`` sends) and fires
``federation_acked`` (peer, report ids) for every ``<acked/>``.  As the *sender's* Courier
it asks (:meth:`XEP_CourierFederation.change`), fires ``federation_hop`` for every
``<hop/>`` that arrives and acknowledges reports (:meth:`XEP_CourierFederation.ack`,
batched: one ``<acked/>`` per peer and event-loop turn).  Who may ask and report is judged by the service, which
knows the messages; this plugin only checks the shape (xeps/courier-federation.xml).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol
from xml.sax.saxutils import escape, quoteattr

from slixmpp import JID
from slixmpp.exceptions import IqError, XMPPError
from slixmpp.plugins import BasePlugin
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import StanzaPath

from . import stanza
from .stanza import NS, speaks_for

log = logging.getLogger(__name__)

#: At most this many ``<hop/>`` reports in one message (a burst's reports go in few stanzas).
HOPS_PER_MESSAGE = 100


class TooLateError(Exception):
    """The message has left the recipient's server: its state there (released, sms, …)."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


class FederationService(Protocol):
    """The recipient side's answers (component/delivery/inbound.py)."""

    async def change(
        self, peer: str, token: str, sender: str, to: str, ref: str, body: str | None
    ) -> tuple[str, str] | None:
        """Recall (*body* None) or edit tracked message *token*: (state, at) of the hop recorded
        (None: nothing new, e.g. recalled already); raise TooLateError or XMPPError."""
        ...


class XEP_CourierFederation(BasePlugin):
    """courier-federation (xeps/courier-federation.xml)."""

    name = "courier_federation"
    description = "Courier federation: hop reports, recall and edit across servers"
    dependencies = {"xep_0030"}
    stanza = stanza

    def plugin_init(self) -> None:
        stanza.register()
        self.service: FederationService | None = self.config.get("service")
        #: called before reports are written: what the messages themselves need sent first
        #: (the route's batched releases by reference), so that no report delays a delivery
        self.before_reports: Callable[[], None] | None = self.config.get("before_reports")
        for name, path in (("Federation recall", "iq@type=set/fed_recall"),
                           ("Federation edit", "iq@type=set/fed_edit")):  # fmt: skip
            self.xmpp.register_handler(CoroutineCallback(name, StanzaPath(path), self._change))
        self.xmpp.register_handler(Callback("Federation hop", StanzaPath("message/fed_hop"), self._hop))
        self.xmpp.register_handler(Callback("Federation acked", StanzaPath("message/fed_acked"), self._acked))
        self._acks: dict[str, list[str]] = {}  # peer -> report ids to acknowledge this turn
        self._hops: dict[str, list[str]] = {}  # peer -> <hop/> reports to send this turn

    def plugin_end(self) -> None:
        for name in ("Federation recall", "Federation edit", "Federation hop", "Federation acked"):
            self.xmpp.remove_handler(name)
        self.xmpp.plugin["xep_0030"].del_feature(feature=NS)

    def session_bind(self, jid: Any) -> None:
        self.xmpp.plugin["xep_0030"].add_feature(NS)

    # -- the recipient's Courier --------------------------------------------------

    async def _change(self, iq: StanzaBase) -> None:
        edit = iq.xml.find(f"{{{NS}}}edit") is not None
        element = iq["fed_edit"] if edit else iq["fed_recall"]
        token, sender, to, ref = element["id"], element["sender"], element["to"], element["message"]
        if not (token and sender and to and ref) or (edit and not element["body"].strip()):
            raise XMPPError("bad-request", "id, sender, to and message are required (and a text to edit)")
        if self.service is None:
            raise XMPPError("service-unavailable")
        if not speaks_for(iq["from"], sender):
            raise XMPPError("forbidden", "only the sender's server may change its messages", etype="auth")
        try:
            done = await self.service.change(str(iq["from"]), token, sender, to, ref, element["body"] if edit else None)
        except TooLateError as exc:
            raise XMPPError(
                "not-allowed", f"too late: the message is already {exc.state}", etype="cancel",
                extension="too-late", extension_ns=NS, extension_args={"state": exc.state},
            ) from None  # fmt: skip
        reply = iq.reply(clear=True)
        if done is not None:  # the hop as recorded here: its later report is the same one
            reply["fed_hop"]["id"], reply["fed_hop"]["state"], reply["fed_hop"]["at"] = token, done[0], done[1]
        reply.send()

    @staticmethod
    def hop_xml(token: str, state: str, at: str, note: str, report: str = "") -> str:
        """The ``<hop/>`` of one hop of tracked message *token* (*report*: this report's id), as
        XML text: what the outbox keeps and :meth:`send_hops` sends."""
        attrs = f"id={quoteattr(token)} state={quoteattr(state)} at={quoteattr(at)}"
        if report:
            attrs += f" report={quoteattr(report)}"
        return f"<hop xmlns='{NS}' {attrs}>{escape(note)}</hop>" if note else f"<hop xmlns='{NS}' {attrs}/>"

    def send_hops(self, peer: str, hops: list[str]) -> None:
        """Queue ``<hop/>`` reports (:meth:`hop_xml`) to the sender's Courier *peer*: sent in
        the next event-loop turn, up to :data:`HOPS_PER_MESSAGE` in one headline."""
        if not self._hops:
            self.xmpp.loop.call_soon(self._send_hops)
        self._hops.setdefault(peer, []).extend(hops)

    def _send_hops(self) -> None:
        batches, self._hops = self._hops, {}
        if self.before_reports is not None:
            self.before_reports()
        sender = quoteattr(self.xmpp.boundjid.bare)
        for peer, hops in batches.items():
            for start in range(0, len(hops), HOPS_PER_MESSAGE):
                # through slixmpp's send queue (not send_raw, which would pass the stanzas
                # queued before it: the releases above)
                self.xmpp.send(
                    f"<message from={sender} to={quoteattr(peer)} type='headline'>"
                    + "".join(hops[start : start + HOPS_PER_MESSAGE])
                    + "<no-store xmlns='urn:xmpp:hints'/></message>"  # XEP-0334
                )

    def _acked(self, msg: StanzaBase) -> None:
        self.xmpp.event("federation_acked", (str(msg["from"]), msg["fed_acked"]["ids"]))

    # -- the sender's Courier ------------------------------------------------------

    def _hop(self, msg: StanzaBase) -> None:
        self.xmpp.event("federation_hop", msg)

    def ack(self, peer: str, report: str) -> None:
        """Acknowledge hop report *report* of *peer*: batched, one ``<acked/>`` per turn."""
        if not self._acks:
            self.xmpp.loop.call_soon(self._send_acks)
        self._acks.setdefault(peer, []).append(report)

    def _send_acks(self) -> None:
        acks, self._acks = self._acks, {}
        for peer, reports in acks.items():
            msg = self.xmpp.make_message(mto=peer, mfrom=self.xmpp.boundjid.bare, mtype="headline")
            msg["fed_acked"]["ids"] = reports
            msg.enable("no-store")  # XEP-0334
            msg.send()

    async def change(
        self, peer: str, token: str, sender: str, to: str, ref: str, body: str | None = None, timeout: float = 10
    ) -> tuple[str | None, str]:
        """Ask *peer* (the recipient's Courier) to recall (*body* None) or edit a tracked message.

        (None, at): done (*at*: the time of the peer's hop, '' when its answer has none).
        (state, ''): too late, the state it left in (``released``, ``sms``…).  Anything else
        raises (IqError for another error, IqTimeout)."""
        iq = self.xmpp.make_iq_set(ito=peer, ifrom=self.xmpp.boundjid.bare)
        element = iq["fed_edit"] if body is not None else iq["fed_recall"]
        element["id"], element["sender"], element["to"], element["message"] = token, sender, to, ref
        if body is not None:
            element["body"] = body
        try:
            result = await iq.send(timeout=timeout)
        except IqError as exc:
            late = exc.iq.xml.find(f".//{{{NS}}}too-late")
            if exc.iq["error"]["condition"] == "not-allowed" and late is not None:
                return late.get("state") or "released", ""
            raise
        hop = result.xml.find(f"{{{NS}}}hop")
        return None, hop.get("at", "") if hop is not None else ""


def peer_of(user: str) -> str:
    """The Courier of *user*'s server, as this protocol names it: ``courier.<domain>``."""
    return f"courier.{JID(user).domain}"

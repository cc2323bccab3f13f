"""The courier-federation plugin: one Courier talking to another across servers.

Both roles live in every Courier.  As the *recipient's* Courier it answers ``<recall/>``
and ``<edit/>`` from the sender's Courier (``pconfig={"service": FederationService}``),
sends ``<hop/>`` reports (:meth:`XEP_CourierFederation.send_hops`, coalesced: at most one
message per peer every :data:`HOPS_EVERY` seconds, after what ``pconfig["before_reports"]``
sends; :meth:`~XEP_CourierFederation.flush_hops` sends what waits at once) and fires
``federation_acked`` (peer, report ids) for every ``<acked/>``.  As the *sender's* Courier
it asks (:meth:`XEP_CourierFederation.change`), fires ``federation_hop`` for every
``<hop/>`` that arrives and acknowledges reports (:meth:`XEP_CourierFederation.ack`,
coalesced: at most one ``<acked/>`` per peer every :data:`ACKS_EVERY` seconds).  The
coalescing timers are on the one scheduler (``pconfig["scheduler"]``).  Who may ask and
report is judged by the service, which knows the messages; this plugin only checks the
shape (xeps/courier-federation.xml).
"""

from __future__ import annotations

import logging
import time
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
from .stanza import HOP_TAG, NS, NS_LISTS, hop_line, quote, read_hops, speaks_for

log = logging.getLogger(__name__)

#: At most this many ``<hop/>`` reports in one message (a burst's reports go in few stanzas).
HOPS_PER_MESSAGE = 100
#: ... and at most this many report ids in one ``<acked/>``.
ACKS_PER_MESSAGE = 500
#: Coalescing (courier-federation 0.3): a peer gets at most one message of ``<hop/>`` reports
#: every HOPS_EVERY seconds and one ``<acked/>`` every ACKS_EVERY seconds; what comes meanwhile
#: waits for it (the first after a quiet spell goes at once).
HOPS_EVERY, ACKS_EVERY = 0.05, 0.25
_HINTS = "<no-store xmlns='urn:xmpp:hints'/>"  # XEP-0334


class Timers(Protocol):
    """What the plugin needs of the one scheduler (component/scheduler.py)."""

    def at(self, when: float, key: Any, job: Callable[[], object], *, earliest: bool = False) -> None: ...

    def cancel(self, key: Any) -> bool: ...


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
        self.xmpp.register_handler(Callback("Federation hops", StanzaPath("message/fed_hops"), self._hops_in))
        self.xmpp.register_handler(Callback("Federation acked", StanzaPath("message/fed_acked"), self._acked))
        self.xmpp.register_handler(Callback("Federation acks", StanzaPath("message/fed_acks"), self._acks_in))
        #: whether the sender's Courier *peer* reads <hops/> (0.4: its disco#info says so)
        self.reads_lists: Callable[[str], bool] = self.config.get("reads_lists") or (lambda _peer: False)
        self._lists_from: set[str] = set()  # peers that sent <hops/>: acknowledged with <acks/>
        #: the coalescing timers' scheduler (keys ("federation", "hops" | "acked", peer))
        self.timers: Timers | None = self.config.get("scheduler")
        self._acks: dict[str, list[str]] = {}  # peer -> report ids waiting to be acknowledged
        self._hops: dict[str, list[str]] = {}  # peer -> <hop/> reports waiting to be sent
        self._sent: dict[tuple[str, str], float] = {}  # (kind, peer) -> when its last message went

    def plugin_end(self) -> None:
        if self.timers is not None:
            for kind, peer in [("hops", p) for p in self._hops] + [("acked", p) for p in self._acks]:
                self.timers.cancel(("federation", kind, peer))
        for name in ("Federation recall", "Federation edit", "Federation hop", "Federation hops", "Federation acked",
                     "Federation acks"):  # fmt: skip
            self.xmpp.remove_handler(name)
        self.xmpp.plugin["xep_0030"].del_feature(feature=NS)
        self.xmpp.plugin["xep_0030"].del_feature(feature=NS_LISTS)

    def session_bind(self, jid: Any) -> None:
        self.xmpp.plugin["xep_0030"].add_feature(NS)
        self.xmpp.plugin["xep_0030"].add_feature(NS_LISTS)

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
        XML text (what a 0.2/0.3 outbox kept; toward a peer that does not read ``<hops/>``)."""
        attrs = f"id={quoteattr(token)} state={quoteattr(state)} at={quoteattr(at)}"
        if report:
            attrs += f" report={quoteattr(report)}"
        return f"<hop xmlns='{NS}' {attrs}>{escape(note)}</hop>" if note else f"<hop xmlns='{NS}' {attrs}/>"

    #: One report as the outbox keeps it (a line of ``<hops/>``; older outboxes: a ``<hop/>``).
    hop_line = staticmethod(hop_line)

    def send_hops(self, peer: str, hops: list[str], at_once: bool = False) -> None:
        """Queue reports (:meth:`hop_line`, or :meth:`hop_xml`) to the sender's Courier *peer*:
        sent at most every :data:`HOPS_EVERY` seconds, up to :data:`HOPS_PER_MESSAGE` in one
        headline: as ``<hops/>`` when the peer reads it, else as ``<hop/>`` elements.  *at_once*:
        with what waits, without waiting for the 50 ms (a receipt may follow at once)."""
        self._hops.setdefault(peer, []).extend(hops)
        self._coalesce("hops", peer, 0.0 if at_once else HOPS_EVERY, self._send_hops)

    def flush_hops(self) -> None:
        """Send every waiting report now (before a receipt or marker they precede goes out)."""
        for peer in list(self._hops):
            if self.timers is not None:
                self.timers.cancel(("federation", "hops", peer))
            self._send_hops(peer)

    def _coalesce(self, kind: str, peer: str, every: float, send: Callable[[str], None]) -> None:
        if self.timers is None:  # (a plugin without the scheduler: at once, next turn)
            self.xmpp.loop.call_soon(send, peer)
            return
        when = self._sent.get((kind, peer), 0.0) + every if every else time.time()
        self.timers.at(when, ("federation", kind, peer), lambda: send(peer), earliest=True)

    def _send_hops(self, peer: str) -> None:
        hops = self._hops.pop(peer, None)
        if not hops:
            return
        self._sent[("hops", peer)] = time.time()
        if self.before_reports is not None:
            self.before_reports()
        head = f"<message from={quoteattr(self.xmpp.boundjid.bare)} to={quoteattr(peer)} type='headline'>"
        lines = [h for h in hops if not h.startswith("<")]
        elements = [h for h in hops if h.startswith("<")]  # (kept by a 0.3 outbox: re-sent as they are)
        if lines and not self.reads_lists(peer):
            elements += [self.hop_xml(*fields) for fields in read_hops("\n".join(lines))]
            lines = []
        for start in range(0, len(elements), HOPS_PER_MESSAGE):
            # through slixmpp's send queue (not send_raw, which would pass the stanzas
            # queued before it: the releases above)
            self.xmpp.send(head + "".join(elements[start : start + HOPS_PER_MESSAGE]) + _HINTS + "</message>")
        for start in range(0, len(lines), HOPS_PER_MESSAGE):
            text = escape("\n".join(lines[start : start + HOPS_PER_MESSAGE]))
            self.xmpp.send(f"{head}<hops xmlns='{NS}'>{text}</hops>{_HINTS}</message>")

    def _acked(self, msg: StanzaBase) -> None:
        self.xmpp.event("federation_acked", (str(msg["from"]), msg["fed_acked"]["ids"]))

    def _acks_in(self, msg: StanzaBase) -> None:
        self.xmpp.event("federation_acked", (str(msg["from"]), msg["fed_acks"]["ids"]))

    # -- the sender's Courier ------------------------------------------------------

    def _hop(self, msg: StanzaBase) -> None:
        """A message of reports (``<hop/>``, ``<hops/>`` or both: the service reads them all)."""
        if msg.xml.find(f"{{{NS}}}hops") is not None:
            self._lists_from.add(str(msg["from"]))
        self.xmpp.event("federation_hop", msg)

    def _hops_in(self, msg: StanzaBase) -> None:
        if msg.xml.find(HOP_TAG) is None:  # (one with <hop/> too: that handler takes it)
            self._hop(msg)

    def ack(self, peer: str, report: str) -> None:
        """Acknowledge hop report *report* of *peer*: at most one ``<acked/>`` per peer every
        :data:`ACKS_EVERY` seconds."""
        self._acks.setdefault(peer, []).append(report)
        self._coalesce("acked", peer, ACKS_EVERY, self._send_acks)

    def _send_acks(self, peer: str) -> None:
        reports = self._acks.pop(peer, None)
        if not reports:
            return
        self._sent[("acked", peer)] = time.time()
        # written as text: no stanza objects built for a list of ids; <acks/> to a peer that
        # sent <hops/> (0.4), <acked/> to the others
        head = f"<message from={quoteattr(self.xmpp.boundjid.bare)} to={quoteattr(peer)} type='headline'>"
        for start in range(0, len(reports), ACKS_PER_MESSAGE):
            chunk = reports[start : start + ACKS_PER_MESSAGE]
            if peer in self._lists_from:
                ids = escape(" ".join(map(quote, chunk)))
                self.xmpp.send(f"{head}<acks xmlns='{NS}'>{ids}</acks>{_HINTS}</message>")
                continue
            items = "".join(f"<item id={quoteattr(r)}/>" for r in chunk)
            self.xmpp.send(f"{head}<acked xmlns='{NS}'>{items}</acked>{_HINTS}</message>")

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

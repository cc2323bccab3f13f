"""The courier-hops plugin, for both sides.

Component side (``pconfig={"service": HopsService}``): answers ``<trace/>``,
``<pending/>``, ``<recall/>`` and ``<edit/>`` for the requesting user only, and
sends reports (:meth:`XEP_CourierHops.queue_report`): the reports queued in one
turn of the event loop (the effects of one store commit) go to each sender in one
message: one ``<report/>``, or the lines of one ``<reports/>`` for two or more
(courier-hops 0.5).
Client side: :meth:`XEP_CourierHops.get_trace` and friends, and the
``hops_report`` event for every report that arrives, in either form, one event each
(:func:`split_reports`), so that a handler reads ``msg["hops_report"]`` as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from copy import deepcopy
from typing import Any, Protocol, TypeVar
from xml.sax.saxutils import escape, quoteattr

from slixmpp import JID, Iq, Message
from slixmpp.exceptions import XMPPError
from slixmpp.plugins import BasePlugin
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import StanzaPath

from . import stanza
from .stanza import NS, NS_LISTS, REPORT_ATTRIBUTES, REPORT_TAG, REPORTS_TAG, read_reports, report_line

log = logging.getLogger(__name__)

S = TypeVar("S", bound=StanzaBase)

#: At most this many reports in one message: the lines of one ``<reports/>`` (about 130
#: bytes each, courier-hops 0.5).
REPORTS_PER_MESSAGE = 100

_HINTS = "<no-store xmlns='urn:xmpp:hints'/>"  # XEP-0334


def report_xml(fields: Mapping[str, str]) -> str:
    """One ``<report/>`` (*fields*: its interfaces) as XML text."""
    attrs = " ".join(f"{name}={quoteattr(fields[key])}" for key, name in REPORT_ATTRIBUTES if fields.get(key))
    note = fields.get("note")
    return f"<report xmlns='{NS}' {attrs}>{escape(note)}</report>" if note else f"<report xmlns='{NS}' {attrs}/>"


def split_reports(msg: S) -> list[S]:
    """*msg* once per report it carries (``<report/>`` elements and the lines of ``<reports/>``):
    copies with one ``<report/>`` each (*msg* itself if it has just one ``<report/>``)."""
    children = [c for c in msg.xml if c.tag in (REPORT_TAG, REPORTS_TAG)]
    if len(children) < 2 and all(c.tag == REPORT_TAG for c in children):
        return [msg]
    base = deepcopy(msg.xml)
    for child in [c for c in base if c.tag in (REPORT_TAG, REPORTS_TAG)]:
        base.remove(child)
    parts = []
    for fields in read_reports(msg.xml):
        part = msg.__class__(xml=deepcopy(base), stream=msg.stream)  # its plugins from this xml
        report = part["hops_report"]
        for key, value in fields.items():
            if value:
                report[key] = value
        parts.append(part)
    return parts


class HopsService(Protocol):
    """What the component side needs (implemented over the pipeline and store).

    Every method is scoped to *requester* (a bare JID): a message of anybody
    else is reported as not found, so ids do not leak.
    """

    async def trace(self, requester: str, msg_id: str) -> Iq | None: ...
    async def pending(self, requester: str) -> list[dict[str, str]]: ...
    async def recall(self, requester: str, msg_id: str) -> None: ...
    async def edit(self, requester: str, msg_id: str, body: str) -> None: ...


class XEP_CourierHops(BasePlugin):
    """courier-hops: hop reports and message traces (xeps/courier-hops.xml)."""

    name = "courier_hops"
    description = "Courier hops: hop reports, trace, pending, recall and edit"
    dependencies = {"xep_0030"}
    stanza = stanza

    def plugin_init(self) -> None:
        stanza.register()
        self.service: HopsService | None = self.config.get("service")
        self.local_domain: str | None = self.config.get("domain")
        self._queued: dict[str, list[dict[str, str]]] = {}  # sender's bare JID -> report fields
        if self.xmpp.is_component:
            for name, path, handler in (
                ("Hops trace", "iq@type=get/hops_trace", self._trace),
                ("Hops pending", "iq@type=get/hops_pending", self._pending),
                ("Hops recall", "iq@type=set/hops_recall", self._recall),
                ("Hops edit", "iq@type=set/hops_edit", self._edit),
            ):
                self.xmpp.register_handler(CoroutineCallback(name, StanzaPath(path), handler))
        else:
            self.xmpp.register_handler(Callback("Hops report", StanzaPath("message/hops_report"), self._report))
            self.xmpp.register_handler(Callback("Hops reports", StanzaPath("message/hops_reports"), self._report))

    def plugin_end(self) -> None:
        for name in ("Hops trace", "Hops pending", "Hops recall", "Hops edit", "Hops report", "Hops reports"):
            self.xmpp.remove_handler(name)
        for feature in (NS, NS_LISTS):
            self.xmpp.plugin["xep_0030"].del_feature(feature=feature)

    def session_bind(self, jid: Any) -> None:
        for feature in (NS, NS_LISTS):  # (NS_LISTS: reads and sends <reports/>, 0.5)
            self.xmpp.plugin["xep_0030"].add_feature(feature)

    # -- component side -------------------------------------------------------

    def _requester(self, iq: StanzaBase) -> str:
        sender: JID = iq["from"]
        if self.service is None:
            raise XMPPError("service-unavailable")
        if not sender.user or (self.local_domain and sender.domain != self.local_domain):
            raise XMPPError("forbidden", "only users of this server have messages here", etype="auth")
        return str(sender.bare)

    def _id(self, element: Any) -> str:
        msg_id = element["id"]
        if not msg_id:
            raise XMPPError("bad-request", "the id of one of your messages is required")
        return str(msg_id)

    async def _trace(self, iq: StanzaBase) -> None:
        requester = self._requester(iq)
        assert self.service is not None
        reply = await self.service.trace(requester, self._id(iq["hops_trace"]))
        if reply is None:
            raise XMPPError("item-not-found", "no message of yours has that id")
        reply["to"] = iq["from"]
        reply["from"] = iq["to"]
        reply["id"] = iq["id"]
        reply["type"] = "result"
        reply.send()

    async def _pending(self, iq: StanzaBase) -> None:
        requester = self._requester(iq)
        assert self.service is not None
        reply = iq.reply(clear=True)
        pending = reply["hops_pending"]
        for item in await self.service.pending(requester):
            element = stanza.PendingMessage()
            for key, value in item.items():
                element[key] = value
            pending.append(element)
        reply.send()

    async def _recall(self, iq: StanzaBase) -> None:
        requester = self._requester(iq)
        assert self.service is not None
        await self.service.recall(requester, self._id(iq["hops_recall"]))
        iq.reply(clear=True).send()

    async def _edit(self, iq: StanzaBase) -> None:
        requester = self._requester(iq)
        assert self.service is not None
        edit = iq["hops_edit"]
        await self.service.edit(requester, self._id(edit), edit["body"])
        iq.reply(clear=True).send()

    def queue_report(self, to: str, fields: dict[str, str]) -> None:
        """Report one hop to *to* (a sender's bare JID); *fields*: the ``<report/>``'s
        interfaces (id, origin_id, to, state, at, place, note).  Sent at the end of this turn
        of the event loop with the other reports queued for *to* meanwhile, in order."""
        if not self._queued:
            asyncio.get_running_loop().call_soon(self._send_queued)
        self._queued.setdefault(to, []).append(fields)

    def _send_queued(self) -> None:
        queued, self._queued = self._queued, {}
        for to, reports in queued.items():
            head = f"<message from={quoteattr(self.xmpp.boundjid.bare)} to={quoteattr(to)} type='headline'>"
            for start in range(0, len(reports), REPORTS_PER_MESSAGE):
                chunk = reports[start : start + REPORTS_PER_MESSAGE]
                if len(chunk) == 1:
                    payload = report_xml(chunk[0])
                else:  # one element for all: what the server parses, routes and collects (0.5)
                    payload = f"<reports xmlns='{NS}'>{escape(chr(10).join(map(report_line, chunk)))}</reports>"
                self.xmpp.send(head + payload + _HINTS + "</message>")  # (slixmpp's send queue, in order)

    # -- client side ------------------------------------------------------------

    def _report(self, msg: StanzaBase) -> None:
        for part in split_reports(msg):
            self.xmpp.event("hops_report", part)

    @staticmethod
    def request_reports(msg: Message) -> Message:
        """Add ``<request/>`` to *msg*: Courier reports every hop to the sender."""
        msg.enable("hops_request")
        return msg

    async def get_trace(self, courier: JID | str, msg_id: str, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_get(ito=courier)
        iq["hops_trace"]["id"] = msg_id
        return await iq.send(**iqkwargs)

    async def get_pending(self, courier: JID | str, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_get(ito=courier)
        iq.enable("hops_pending")
        return await iq.send(**iqkwargs)

    async def recall(self, courier: JID | str, msg_id: str, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_set(ito=courier)
        iq["hops_recall"]["id"] = msg_id
        return await iq.send(**iqkwargs)

    async def edit(self, courier: JID | str, msg_id: str, body: str, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_set(ito=courier)
        iq["hops_edit"]["id"] = msg_id
        iq["hops_edit"]["body"] = body
        return await iq.send(**iqkwargs)

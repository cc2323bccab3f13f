"""The courier-route plugin: receives hand-offs and fallback notices, sends acks and releases.

Callbacks (plugin config, required): ``handoff(handoff, inner, stamp)`` (the ``<handoff/>``
element of a valid hand-off, its forwarded message and its delay stamp, '' without) and
``routed(ids)`` (ids of releases / originated messages the server routed).  Events:
``route_fallback`` (a list of hand-off ids the server delivered itself) and ``route_bounce``
(a remote server's error to a local user's bare JID, as an Element).  The server's liveness
ping (XEP-0199) is answered once ``health`` (a coroutine function from the plugin config)
returns: after a store commit.

The two stanzas that come with every message — a hand-off and a ``<routed/>``
confirmation — are taken off the stream as XML (:meth:`XEP_CourierRoute.take`, called by
Courier for every stanza received before slixmpp builds a stanza object for it): no
stanza object, no filters, no matching against every registered handler (about 45 in
Courier).  Those were most of Courier's CPU per message (bench/README.md,
``courier_alone.py``).  Any other shape of these stanzas, or one not from the server,
goes the ordinary way to the handlers below, which check and answer it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from xml.etree.ElementTree import Element, SubElement
from xml.sax.saxutils import escape

from slixmpp import Iq, Message
from slixmpp.exceptions import XMPPError
from slixmpp.plugins import BasePlugin
from slixmpp.plugins.xep_0199.stanza import Ping
from slixmpp.xmlstream import StanzaBase, register_stanza_plugin, tostring
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import StanzaPath

from ...namespaces import NS_PRIVILEGE, TRACKED_TAG
from . import stanza
from .stanza import NS, NS_CLIENT

log = logging.getLogger(__name__)
_stream_log = logging.getLogger("slixmpp.xmlstream.xmlstream")  # slixmpp's "RECV:" lines

_ITEM = f"{{{NS}}}item"
_HANDOFF = f"{{{NS}}}handoff"
_ROUTED = f"{{{NS}}}routed"
_RELEASE = ' release="true"'  # an <ack/> item that releases by reference


class XEP_CourierRoute(BasePlugin):
    """Courier's side of courier-route (xeps/courier-route.xml)."""

    name = "courier_route"
    description = "Courier route: acknowledged hand-off from the server"
    dependencies = {"xep_0030"}
    stanza = stanza

    def plugin_init(self) -> None:
        stanza.register()
        register_stanza_plugin(Iq, Ping)
        self.server = self.config.get("server") or self.xmpp.boundjid.domain.split(".", 1)[-1]
        self.xmpp.register_handler(Callback("Route hand-off", StanzaPath("message/route_handoff"), self._handoff))
        self.xmpp.register_handler(Callback("Route fallback", StanzaPath("message/route_fallback"), self._fallback))
        self.xmpp.register_handler(Callback("Route bounce", StanzaPath("message/route_bounce"), self._bounce))
        self.xmpp.register_handler(Callback("Route forged", StanzaPath("message/route_ack"), self._forged))
        self.xmpp.register_handler(Callback("Route routed", StanzaPath("message/route_routed"), self._routed))
        self.xmpp.register_handler(CoroutineCallback("Route ping", StanzaPath("iq@type=get/ping"), self._ping))
        self.health: Callable[[], Awaitable[None]] | None = self.config.get("health")
        self.on_handoff: Callable[[Element, Element, str], None] = self.config["handoff"]
        self.on_routed: Callable[[list[str]], None] = self.config["routed"]
        self._answers: list[tuple[str, bool, Element | None]] = []  # (hand-off id, release, <tracked/>)
        #: what :meth:`take` takes: a message (as the stream's namespace or jabber:client has it)
        self._messages = {f"{{{self.xmpp.default_ns}}}message", Message.tag_name()}
        #: :meth:`routed`: the last release / deliver / originate sent, and who waits for which <routed/>
        self._last_sent: str | None = None
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}
        self.xmpp.add_event_handler("disconnected", self._stop_waiting)

    def plugin_end(self) -> None:
        for name in ("Route hand-off", "Route fallback", "Route bounce", "Route forged", "Route routed", "Route ping"):
            self.xmpp.remove_handler(name)
        self.xmpp.del_event_handler("disconnected", self._stop_waiting)
        self.xmpp.plugin["xep_0030"].del_feature(feature=NS)
        self.xmpp.plugin["xep_0030"].del_feature(feature=Ping.namespace)

    def session_bind(self, jid: object) -> None:
        self.xmpp.plugin["xep_0030"].add_feature(NS)
        self.xmpp.plugin["xep_0030"].add_feature(Ping.namespace)

    def take(self, xml: Element) -> bool:
        """A stanza received, before slixmpp builds a stanza object for it: a hand-off or a
        ``<routed/>`` from the server, valid and in the shape the server writes (from its
        address as it writes it, the element alone in the message), goes to its callback and
        True.  False for anything else: it goes the ordinary way (a malformed or forged one is
        answered there with its error, as before)."""
        if len(xml) != 1 or xml.get("from") != self.server or xml.tag not in self._messages:
            return False
        child = xml[0]
        if child.tag == _HANDOFF:
            handoff, inner, stamp = stanza.read_handoff(xml)
            if not _valid(handoff, inner):
                return False  # bad-request, on the ordinary path
            self._received(xml, self.on_handoff, handoff, inner, stamp)
            return True
        if child.tag == _ROUTED:
            self._received(xml, self._routed_ids, [item.get("id", "") for item in child if item.tag == _ITEM])
            return True
        return False

    def _received(self, xml: Element, handler: Callable[..., None], *args: object) -> None:
        if _stream_log.isEnabledFor(logging.DEBUG):
            _stream_log.debug("RECV: %s", tostring(xml, xmlns=self.xmpp.default_ns, stream=self.xmpp))
        try:
            handler(*args)
        except Exception as exc:
            Message(self.xmpp, xml, recv=True).exception(exc)  # as slixmpp answers a handler's (XMPPError: its error)

    def _from_server(self, msg: StanzaBase) -> bool:
        # the attribute as sent first (the server's own address, as it always writes it): parsing
        # a JID for every hand-off was a visible part of Courier's CPU per message
        return msg.xml.get("from") == self.server or msg["from"].full == self.server

    def _handoff(self, msg: StanzaBase) -> None:
        if not self._from_server(msg):
            log.warning("Refused a hand-off from %s: only %s may hand off messages", msg["from"], self.server)
            raise XMPPError("forbidden", f"only {self.server} may hand off messages", etype="auth")
        handoff, inner, stamp = stanza.read_handoff(msg.xml)
        if not _valid(handoff, inner):
            raise XMPPError("bad-request", "a hand-off needs an id and a forwarded jabber:client message")
        assert handoff is not None and inner is not None
        self.on_handoff(handoff, inner, stamp)

    def _fallback(self, msg: StanzaBase) -> None:
        if not self._from_server(msg):
            raise XMPPError("forbidden", f"only {self.server} may send fallback notices", etype="auth")
        self.xmpp.event("route_fallback", msg["route_fallback"]["ids"])

    def _bounce(self, msg: StanzaBase) -> None:
        if not self._from_server(msg):
            raise XMPPError("forbidden", f"only {self.server} may report bounces", etype="auth")
        inner = msg["route_bounce"].get_inner()
        if inner is None or inner.get("type") != "error" or not inner.get("from") or not inner.get("to"):
            raise XMPPError("bad-request", "a bounce forwards a jabber:client error message")
        self.xmpp.event("route_bounce", inner)

    def _routed(self, msg: StanzaBase) -> None:
        if not self._from_server(msg):
            raise XMPPError("forbidden", f"only {self.server} may confirm routing", etype="auth")
        self._routed_ids(msg["route_routed"]["ids"])

    def _routed_ids(self, ids: list[str]) -> None:
        if self._waiting:
            for hid in ids:
                for waiter in self._waiting.pop(hid, ()):
                    if not waiter.done():
                        waiter.set_result(None)
        self.on_routed(ids)

    def routed(self, timeout: float = 10.0) -> Awaitable[None]:
        """Done once the server confirmed (``<routed/>``, one per turn of its loop) the last
        release, deliver or originated message sent so far: it has routed everything before.
        Pacing for held messages flushed at login, cheaper than :meth:`settle` (no ping: the
        confirmation comes anyway).  Best effort: a disconnect or *timeout* ends the wait too."""
        waiter: asyncio.Future[None] = self.xmpp.loop.create_future()
        hid = self._last_sent
        if hid is None or not self.xmpp.is_connected():
            waiter.set_result(None)
        else:  # registered now, before the confirmation can come
            self._waiting.setdefault(hid, []).append(waiter)
        return self._wait(hid, waiter, timeout)

    async def _wait(self, hid: str | None, waiter: asyncio.Future[None], timeout: float) -> None:
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            log.debug("routed: no confirmation of %s within %gs", hid, timeout)
            waiting = self._waiting.get(hid or "", [])
            if waiter in waiting:
                waiting.remove(waiter)

    def _stop_waiting(self, _event: object = None) -> None:
        waiting, self._waiting = self._waiting, {}
        for waiter in (w for ws in waiting.values() for w in ws if not w.done()):
            waiter.set_result(None)

    async def _ping(self, iq: StanzaBase) -> None:
        """XEP-0199 from the server: alive means able to commit, so answer after a commit."""
        if iq["to"].bare != self.xmpp.boundjid.bare:
            return  # pings to other JIDs of ours (list JIDs, number JIDs) are not liveness checks
        if self.health is not None:
            try:
                await self.health()
            except Exception as exc:
                raise XMPPError("internal-server-error", f"the store cannot commit: {exc}", etype="wait") from None
        iq.reply().send()

    def _forged(self, msg: StanzaBase) -> None:
        # Acks only flow from Courier to the server; one arriving here is forged.
        raise XMPPError("forbidden", "route acknowledgements are not accepted here", etype="auth")

    def send_own(self, message: Element, token: str) -> None:
        """Send *message* (composed on this stream, from this component's own JID) marked with
        ``<originate id=token/>``: the server strips the element, routes the message as usual
        and confirms *token* with ``<routed/>``; a re-send it already routed is dropped."""
        self.flush_answers()
        for old in message.findall(f"{{{NS}}}originate"):
            message.remove(old)
        SubElement(message, f"{{{NS}}}originate", id=token)
        self._last_sent = token
        Message(self.xmpp, message).send()

    def ack(self, hid: str) -> None:
        """Tell the server hand-off *hid* is stored: batched, one ``<ack/>`` per event-loop turn."""
        self._answer(hid, False)

    def release_copy(self, hid: str, tracked: Element | None = None) -> None:
        """Release hand-off *hid* by reference (the server kept the original, ``copy='kept'``):
        an ``<ack/>`` item with ``release='true'``, batched with the acknowledgements.
        *tracked*: courier-federation's ``<tracked/>``, for the server to add to its copy (a
        hand-off marked ``adds='tracked'``)."""
        self._last_sent = hid
        self._answer(hid, True, tracked)

    def _answer(self, hid: str, release: bool, child: Element | None = None) -> None:
        if not self._answers:
            self.xmpp.loop.call_soon(self.flush_answers)
        self._answers.append((hid, release, child))

    def flush_answers(self) -> None:
        """Send the batched acknowledgements and releases by reference now.  Every other send
        of a message to a user calls this first, so the server routes everything in order.

        Written as text (the stanza slixmpp built was a visible part of Courier's CPU per
        message, bench/courier_alone.py), in the order of the sends: straight to the socket
        when slixmpp's send queue has nothing waiting (everything sent before is written
        already; through the queue it is one more task wake-up per hand-off), else through
        the queue, behind the rest."""
        answers, self._answers = self._answers, []
        if not answers:
            return
        items = []
        for hid, release, child in answers:
            item = f'<item{_RELEASE if release else ""} id="{_attr(hid)}"'
            if child is None:
                items.append(f"{item} />")
            else:  # courier-federation's <tracked/>, in its own namespace
                items.append(f"{item}>{_empty(child) or tostring(child, xmlns=NS, stream=self.xmpp)}</item>")
        text = (
            f'<message to="{_attr(self.server)}" from="{_attr(self.xmpp.boundjid.bare)}" id="{self.xmpp.new_id()}">'
            f'<ack xmlns="{NS}">{"".join(items)}</ack></message>'
        )
        queue = self.xmpp.waiting_queue
        # _unfinished_tasks: put and not yet written (run_filters marks each done after its write)
        if self.xmpp.transport is not None and self.xmpp._session_started and not queue._unfinished_tasks:  # type: ignore[attr-defined]
            self.xmpp.send_raw(text)
        else:
            self.xmpp.send(text)

    def release(self, hid: str, inner: Element, sender_bare: str) -> None:
        """Re-inject *inner* as *sender_bare* through XEP-0356, marked with ``<release/>``.

        A message from another server's user (federation) cannot be re-injected
        through XEP-0356: it goes back to the server inside ``<deliver/>``.
        """
        self.flush_answers()
        if sender_bare.rpartition("@")[2] != self.server:
            self.deliver(hid, inner)
            return
        SubElement(inner, f"{{{NS}}}release", id=hid)
        self._last_sent = hid
        self.originate(inner, sender_bare)

    def deliver(self, hid: str, inner: Element) -> None:
        """Hand a message that came over s2s back to the server for its local recipient."""
        self.flush_answers()
        inner.tag = f"{{{NS_CLIENT}}}message"
        for tracked in inner.findall(TRACKED_TAG):  # courier-federation's, for us only
            inner.remove(tracked)
        wrapper = Element(f"{{{NS}}}deliver", id=hid)
        self._last_sent = hid
        SubElement(wrapper, f"{{{stanza.NS_FORWARD}}}forwarded").append(inner)
        msg = self.xmpp.make_message(mto=self.server, mfrom=self.xmpp.boundjid.bare)
        msg.xml.append(wrapper)
        msg.send()

    async def settle(self, timeout: float = 10.0) -> None:
        """Return once the server has processed every stanza sent so far: a XEP-0199 ping to
        it (a server handles a component's stanzas in order).  Pacing for bulk sends (held
        messages flushed at login, fan-outs), best effort: an error or a timeout returns too."""
        if not self.xmpp.is_connected():
            return
        self.flush_answers()
        iq = self.xmpp.make_iq_get(ito=self.server)
        iq.xml.append(Element("{urn:xmpp:ping}ping"))
        try:
            await iq.send(timeout=timeout)
        except Exception as exc:
            log.debug("settle: %s", exc)

    def originate(self, inner: Element, sender_bare: str, token: str | None = None) -> None:
        """Send *inner* as *sender_bare* through XEP-0356.

        Without ``<release/>`` the server treats it as the user's own outgoing
        message: it is archived and copied to the user's other devices.  With
        *token* it carries ``<originate id=token/>``, confirmed by ``<routed/>``.
        """
        self.flush_answers()
        if token is not None:
            SubElement(inner, f"{{{NS}}}originate", id=token)
            self._last_sent = token
        inner.tag = f"{{{NS_CLIENT}}}message"
        inner.set("from", sender_bare)
        wrapper = Element(f"{{{NS_PRIVILEGE}}}privilege")
        forwarded = SubElement(wrapper, f"{{{stanza.NS_FORWARD}}}forwarded")
        forwarded.append(inner)
        msg = self.xmpp.make_message(mto=self.server, mfrom=self.xmpp.boundjid.bare)
        msg.xml.append(wrapper)
        msg.send()


def _valid(handoff: Element | None, inner: Element | None) -> bool:
    """A hand-off has an id and forwards a message with a sender and a recipient."""
    if handoff is None or inner is None:
        return False
    return bool(handoff.get("id") and inner.get("from") and inner.get("to"))


def _empty(element: Element) -> str:
    """*element* as text when it is empty and its attributes have no namespace (courier-federation's
    ``<tracked/>``: slixmpp's ``tostring`` was a visible part of a release toward a peer); else ""."""
    tag = element.tag
    if not isinstance(tag, str) or tag[:1] != "{" or len(element) or element.text:
        return ""
    if any(k[:1] == "{" for k in element.keys()):
        return ""
    ns, local = tag[1:].split("}", 1)
    attrs = "".join(f' {k}="{_attr(v)}"' for k, v in element.items())
    return f'<{local} xmlns="{_attr(ns)}"{attrs} />'


def _attr(value: str) -> str:
    """*value* escaped for an attribute in double quotes."""
    return escape(value, _QUOTE)


_QUOTE = {'"': "&quot;"}

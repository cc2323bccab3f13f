"""Stanzas of courier-route (namespace ``https://courier.chat/ns/route/0``)."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from slixmpp.stanza import Message
from slixmpp.xmlstream import ElementBase, register_stanza_plugin

from ...namespaces import NS_CLIENT, NS_DELAY, NS_FORWARD, NS_ROUTE

NS = NS_ROUTE


class Handoff(ElementBase):
    """``<handoff id recipient>``: a message the server hands to Courier (server → Courier)."""

    namespace = NS
    name = "handoff"
    plugin_attrib = "route_handoff"
    #: copy: "kept" when the server holds the original and accepts a release by reference;
    #: adds: "tracked" when it adds a <tracked/> given with that release (courier-federation)
    interfaces = {"id", "recipient", "stamp", "copy", "adds"}

    def get_inner(self) -> Element | None:
        """The forwarded ``jabber:client`` message, as an ElementTree element."""
        return read_forwarded(self.xml)[0]

    def set_inner(self, message: Element) -> None:
        self.del_inner()
        forwarded = Element(f"{{{NS_FORWARD}}}forwarded")
        forwarded.append(message)
        self.xml.append(forwarded)

    def del_inner(self) -> None:
        for forwarded in self.xml.findall(f"{{{NS_FORWARD}}}forwarded"):
            self.xml.remove(forwarded)

    def get_stamp(self) -> str:
        return read_forwarded(self.xml)[1]

    def set_stamp(self, value: str) -> None:
        forwarded = self.xml.find(f"{{{NS_FORWARD}}}forwarded")
        if forwarded is None:
            forwarded = Element(f"{{{NS_FORWARD}}}forwarded")
            self.xml.append(forwarded)
        delay = forwarded.find(f"{{{NS_DELAY}}}delay")
        if delay is None:
            delay = Element(f"{{{NS_DELAY}}}delay")
            forwarded.insert(0, delay)
        delay.set("stamp", value)

    def del_stamp(self) -> None:
        forwarded = self.xml.find(f"{{{NS_FORWARD}}}forwarded")
        if forwarded is not None:
            for delay in forwarded.findall(f"{{{NS_DELAY}}}delay"):
                forwarded.remove(delay)


def read_handoff(message: Element) -> tuple[Element | None, Element | None, str]:
    """The ``<handoff/>`` of a received message, its forwarded ``jabber:client`` message (each
    None if absent) and its delay stamp ('' without), read from the XML itself: the
    per-message path, where slixmpp's stanza interfaces (``msg["route_handoff"]["id"]``) and
    ElementTree's path searches cost more than the reading."""
    for handoff in message:
        if handoff.tag == _HANDOFF:
            return handoff, *read_forwarded(handoff)
    return None, None, ""


def read_forwarded(handoff: Element) -> tuple[Element | None, str]:
    """A hand-off element's forwarded ``jabber:client`` message (None if absent) and its
    ``<delay stamp/>`` ('' without), the first of each, in one walk of its children."""
    inner: Element | None = None
    stamp: str | None = None
    for forwarded in handoff:
        if forwarded.tag == _FORWARDED:
            for child in forwarded:
                if child.tag == _MESSAGE:
                    inner = child if inner is None else inner
                elif child.tag == _DELAY and stamp is None:
                    stamp = child.get("stamp", "")
    return inner, stamp or ""


_HANDOFF = f"{{{NS}}}handoff"
_FORWARDED = f"{{{NS_FORWARD}}}forwarded"
_MESSAGE = f"{{{NS_CLIENT}}}message"
_DELAY = f"{{{NS_DELAY}}}delay"


class AckItem(ElementBase):
    namespace = NS
    name = "item"
    plugin_attrib = "item"
    #: release: "true" in an <ack/> for a release by reference (stored; route your copy)
    interfaces = {"id", "release"}


class Ack(ElementBase):
    """``<ack><item id/>…</ack>``: Courier has stored these hand-offs (Courier → server); an
    item with ``release='true'`` also releases its hand-off by reference."""

    namespace = NS
    name = "ack"
    plugin_attrib = "route_ack"
    interfaces = {"ids"}
    item_class: type[AckItem] = AckItem

    def get_ids(self) -> list[str]:
        return [item["id"] for item in self["substanzas"] if type(item) is self.item_class]

    def set_ids(self, ids: list[str]) -> None:
        self.del_ids()
        for hid in ids:
            item = self.item_class()
            item["id"] = hid
            self.append(item)

    def del_ids(self) -> None:
        for item in [i for i in self.iterables if type(i) is self.item_class]:
            self.iterables.remove(item)
            self.xml.remove(item.xml)


class FallbackItem(AckItem):
    pass


class Fallback(Ack):
    """``<fallback><item id/>…</fallback>``: the server delivered these itself (server → Courier)."""

    name = "fallback"
    plugin_attrib = "route_fallback"
    item_class = FallbackItem


class Bounce(ElementBase):
    """``<bounce><forwarded>error</forwarded></bounce>``: a remote server's error to a local user's
    bare JID, copied to Courier (server → Courier; federation)."""

    namespace = NS
    name = "bounce"
    plugin_attrib = "route_bounce"
    interfaces = {"id"}  # (unused: the forwarded error says it all)

    def get_inner(self) -> Element | None:
        """The forwarded ``jabber:client`` error message."""
        return self.xml.find(f"{{{NS_FORWARD}}}forwarded/{{{NS_CLIENT}}}message")


class RoutedItem(AckItem):
    pass


class Routed(Ack):
    """``<routed><item id/>…</routed>``: the server routed these releases / originated messages
    (server → Courier); until then Courier re-sends them after every reconnect."""

    name = "routed"
    plugin_attrib = "route_routed"
    item_class = RoutedItem


class Release(ElementBase):
    """``<release id/>`` inside a privileged re-injection; the server strips it."""

    namespace = NS
    name = "release"
    plugin_attrib = "route_release"
    interfaces = {"id"}


class Originate(ElementBase):
    """``<originate id/>`` inside a privileged message Courier composed; the server strips it."""

    namespace = NS
    name = "originate"
    plugin_attrib = "route_originate"
    interfaces = {"id"}


def register() -> None:
    register_stanza_plugin(Message, Handoff)
    register_stanza_plugin(Message, Ack)
    register_stanza_plugin(Message, Fallback)
    register_stanza_plugin(Message, Release)
    register_stanza_plugin(Message, Bounce)
    register_stanza_plugin(Message, Routed)
    register_stanza_plugin(Message, Originate)
    register_stanza_plugin(Routed, RoutedItem, iterable=True)
    register_stanza_plugin(Ack, AckItem, iterable=True)
    register_stanza_plugin(Fallback, FallbackItem, iterable=True)

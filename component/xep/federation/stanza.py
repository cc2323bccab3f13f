"""Stanzas of courier-federation (namespace ``https://courier.chat/ns/federation/0``).

- ``<tracked by id/>`` on a message the sender's Courier released toward another server:
  *by* (the sender's Courier) tracks it under the opaque *id*.
- ``<hop id state at report>note</hop>`` in a message from the recipient's Courier to *by* (one
  or more in a message): one hop of tracked message *id* at the recipient's server; *report*
  names this report, which the recipient's Courier re-sends until *by* answers
  ``<acked><item id/></acked>``.
- ``<recall id sender to message/>`` / ``<edit …>text</edit>`` IQ set from *by* to the
  recipient's Courier: withdraw or change the message while it is held there.  An empty
  result means done; ``<not-allowed/>`` with ``<too-late state/>`` means already delivered.
"""

from __future__ import annotations

from slixmpp import JID
from slixmpp.stanza import Iq, Message
from slixmpp.xmlstream import ElementBase, register_stanza_plugin

from ...namespaces import NS_FEDERATION
from .. import TextBody

NS = NS_FEDERATION

#: The hop states a recipient's Courier reports (courier-hops words; received and read reach
#: the sender's server as the recipient's own receipts and markers).
HOP_STATES = ("cached", "held", "released", "edited", "recalled", "retracted", "failed", "sms", "sms-delivered")


def speaks_for(jid: JID | str, user: str) -> bool:
    """Whether *jid* may speak for the server of *user* in this protocol: a bare domain JID
    under *user*'s domain (``courier.a.example`` for ``alice@a.example``)."""
    jid = JID(jid)
    domain = JID(user).domain
    return not jid.user and not jid.resource and bool(domain) and jid.domain.endswith("." + domain)


class Tracked(ElementBase):
    """``<tracked by id/>``: the sender's Courier *by* tracks this message as *id*."""

    namespace = NS
    name = "tracked"
    plugin_attrib = "fed_tracked"
    interfaces = {"by", "id"}


class HopReport(TextBody, ElementBase):
    """``<hop id state at>note</hop>``: one hop of tracked message *id*."""

    namespace = NS
    name = "hop"
    plugin_attrib = "fed_hop"
    interfaces = {"id", "state", "at", "report", "body"}


class AckedItem(ElementBase):
    namespace = NS
    name = "item"
    plugin_attrib = "item"
    interfaces = {"id"}


class Acked(ElementBase):
    """``<acked><item id/>…</acked>``: the sender's Courier stored (or refused for good) these
    hop reports, named by their ``report``: the recipient's Courier stops re-sending them."""

    namespace = NS
    name = "acked"
    plugin_attrib = "fed_acked"
    interfaces = {"ids"}

    def get_ids(self) -> list[str]:
        return [item["id"] for item in self["substanzas"] if isinstance(item, AckedItem) and item["id"]]

    def set_ids(self, ids: list[str]) -> None:
        self.del_ids()
        for report in ids:
            item = AckedItem()
            item["id"] = report
            self.append(item)

    def del_ids(self) -> None:
        for item in [i for i in self.iterables if isinstance(i, AckedItem)]:
            self.iterables.remove(item)
            self.xml.remove(item.xml)


class _Change(ElementBase):
    namespace = NS
    interfaces = {"id", "sender", "to", "message"}


class Recall(_Change):
    """``<recall id sender to message/>``: withdraw tracked message *id* if still held."""

    name = "recall"
    plugin_attrib = "fed_recall"


class Edit(TextBody, _Change):
    """``<edit id sender to message>new text</edit>``: replace its text if still held."""

    name = "edit"
    plugin_attrib = "fed_edit"
    interfaces = _Change.interfaces | {"body"}


class TooLate(ElementBase):
    """``<too-late state/>`` in a ``<not-allowed/>`` error: the message has left the server."""

    namespace = NS
    name = "too-late"
    plugin_attrib = "fed_too_late"
    interfaces = {"state"}


def register() -> None:
    register_stanza_plugin(Message, Tracked)
    register_stanza_plugin(Message, HopReport)
    register_stanza_plugin(Message, Acked)
    register_stanza_plugin(Acked, AckedItem, iterable=True)
    register_stanza_plugin(Iq, HopReport)  # in the result of a recall / edit: the hop recorded
    register_stanza_plugin(Iq, Recall)
    register_stanza_plugin(Iq, Edit)

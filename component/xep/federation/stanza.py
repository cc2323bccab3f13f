"""Stanzas of courier-federation (namespace ``https://courier.chat/ns/federation/0``).

- ``<tracked by id/>`` on a message the sender's Courier released toward another server:
  *by* (the sender's Courier) tracks it under the opaque *id*.
- ``<hop id state at report>note</hop>`` in a message from the recipient's Courier to *by* (one
  or more in a message): one hop of tracked message *id* at the recipient's server; *report*
  names this report, which the recipient's Courier re-sends until *by* answers
  ``<acked><item id/></acked>``.
- ``<hops>`` (0.4, to a peer that advertises :data:`NS_LISTS`): the same reports as text, one a
  line, ``REPORT ID STATE AT[ NOTE]`` (:func:`hop_line`, :func:`read_hops`), answered by
  ``<acks>REPORT REPORT…</acks>``: one element for many reports instead of one each.
- ``<recall id sender to message/>`` / ``<edit …>text</edit>`` IQ set from *by* to the
  recipient's Courier: withdraw or change the message while it is held there.  An empty
  result means done; ``<not-allowed/>`` with ``<too-late state/>`` means already delivered.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from slixmpp import JID
from slixmpp.stanza import Iq, Message
from slixmpp.xmlstream import ElementBase, register_stanza_plugin

from ...namespaces import NS_FEDERATION
from .. import TextBody
from .. import quote_field as quote
from .. import unquote_field as unquote

NS = NS_FEDERATION
#: The disco#info feature of a Courier that reads ``<hops/>`` and ``<acks/>`` (0.4).
NS_LISTS = NS + "#lists"
HOP_TAG, HOPS_TAG = f"{{{NS}}}hop", f"{{{NS}}}hops"

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


class Hops(ElementBase):
    """``<hops>`` (0.4): hop reports as text, one a line (:func:`hop_line`)."""

    namespace = NS
    name = "hops"
    plugin_attrib = "fed_hops"


class Acks(ElementBase):
    """``<acks>REPORT …</acks>`` (0.4): the ``<acked/>`` of reports that came in ``<hops/>``."""

    namespace = NS
    name = "acks"
    plugin_attrib = "fed_acks"
    interfaces = {"ids"}

    def get_ids(self) -> list[str]:
        return [unquote(r) for r in (self.xml.text or "").split()]


def hop_line(report: str, token: str, state: str, at: str, note: str = "") -> str:
    """One report as a line of ``<hops/>``: ``REPORT ID STATE AT[ NOTE]`` (not XML-escaped)."""
    line = f"{quote(report)} {quote(token)} {state} {at}"
    return f"{line} {quote(note)}" if note else line


def read_hops(text: str) -> list[tuple[str, str, str, str, str]]:
    """The reports of a ``<hops/>`` text: (id, state, at, note, report) each, in order; a line
    that is not a report is skipped."""
    found = []
    for line in text.split("\n"):
        fields = line.split()
        if 4 <= len(fields) <= 5:
            report, token, state, at = map(unquote, fields[:4])
            found.append((token, state, at, unquote(fields[4]) if len(fields) == 5 else "", report))
    return found


def read_reports(message: ET.Element) -> list[tuple[str, str, str, str, str]]:
    """Every report of a message, ``<hop/>`` and ``<hops/>`` alike, in document order:
    (id, state, at, note, report) each."""
    found = []
    for child in message:
        if child.tag == HOP_TAG:
            found.append((child.get("id", ""), child.get("state", ""), child.get("at", ""), child.text or "",
                          child.get("report", "")))  # fmt: skip
        elif child.tag == HOPS_TAG:
            found += read_hops(child.text or "")
    return found


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
    register_stanza_plugin(Message, Hops)
    register_stanza_plugin(Message, Acks)
    register_stanza_plugin(Acked, AckedItem, iterable=True)
    register_stanza_plugin(Iq, HopReport)  # in the result of a recall / edit: the hop recorded
    register_stanza_plugin(Iq, Recall)
    register_stanza_plugin(Iq, Edit)

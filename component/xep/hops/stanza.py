"""Stanzas of courier-hops (namespace ``https://courier.chat/ns/hops/0``).

- ``<request/>`` on a message: the sender wants a report at every hop.
- ``<report/>`` in a message from Courier to the sender: one hop happened.
- ``<reports/>`` (0.5) instead, for two or more hops: one a line of text (:func:`report_line`);
  :func:`read_reports` reads both forms.
- ``<trace id/>`` IQ get: the whole route record of one of your messages.
- ``<pending/>`` IQ get: your messages still held at the server.
- ``<recall id/>`` / ``<edit id>text</edit>`` IQ set: change a held message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from slixmpp.stanza import Iq, Message
from slixmpp.xmlstream import ElementBase, register_stanza_plugin

from ...namespaces import NS_HOPS
from .. import TextBody, quote_field, unquote_field

NS = NS_HOPS
#: Courier's report messages may carry ``<reports/>`` (0.5, advertised in disco#info).
NS_LISTS = NS + "#lists"
REPORT_TAG, REPORTS_TAG = f"{{{NS}}}report", f"{{{NS}}}reports"

#: The states a report or trace names, in the order a message can pass them.
REPORT_STATES = (
    "sent",  # stored at the sender's server (the patent's "sent")
    "cached",  # held: the recipient is offline
    "held",  # held: the sender's undo-send window, or queued behind such a message
    "released",  # handed to the recipient's server
    "received",  # the recipient's client received it (XEP-0184 / XEP-0333)
    "read",  # the recipient's client displayed it (XEP-0333)
    "edited",  # corrected (before delivery: the stored text; after: passed on)
    "recalled",  # withdrawn before delivery: never forwarded
    "retracted",  # a retraction passed on after delivery
    "failed",  # not deliverable
    "sms",  # the recipient was offline: submitted to the SMS gateway instead (courier-sms)
    "sms-delivered",  # the SMS gateway reported delivery to the phone (courier-sms)
)


class Request(ElementBase):
    """``<request/>``: report every hop of this message to me."""

    namespace = NS
    name = "request"
    plugin_attrib = "hops_request"
    interfaces: ClassVar[set[str]] = set()


class _HopFields(ElementBase):
    """state, at (XEP-0082), place; the text is a note (reason, route detail)."""

    namespace = NS
    interfaces = {"state", "at", "place", "note"}

    def get_note(self) -> str:
        return self.xml.text or ""

    def set_note(self, value: str) -> None:
        self.xml.text = value or None

    def del_note(self) -> None:
        self.xml.text = None


class Report(_HopFields):
    """``<report id origin-id to state at place>note</report>``: one hop of message *id*."""

    name = "report"
    plugin_attrib = "hops_report"
    interfaces = _HopFields.interfaces | {"id", "origin_id", "to"}

    def get_origin_id(self) -> str:
        return self.xml.get("origin-id", "")

    def set_origin_id(self, value: str) -> None:
        if value:
            self.xml.set("origin-id", value)

    def del_origin_id(self) -> None:
        self.xml.attrib.pop("origin-id", None)


#: The ``<report/>`` attributes, by interface, in the order of a ``<reports/>`` line's fields.
REPORT_ATTRIBUTES = (("id", "id"), ("origin_id", "origin-id"), ("to", "to"), ("state", "state"), ("at", "at"),
                     ("place", "place"))  # fmt: skip
#: The fields of a ``<reports/>`` line, in order; the note (the seventh) only when there is one.
LINE_FIELDS = (*(key for key, _ in REPORT_ATTRIBUTES), "note")


def _quote(value: str) -> str:
    return quote_field(value) if value != "-" else "%2D"


def report_line(fields: Mapping[str, str]) -> str:
    """One report (the ``<report/>`` interfaces: id, origin_id, to, state, at, place, note) as
    a line of ``<reports/>``: ``ID ORIGIN-ID TO STATE AT PLACE[ NOTE]``, "-" for an empty field
    (not XML-escaped)."""
    line = " ".join(_quote(fields.get(key) or "") or "-" for key in LINE_FIELDS[:6])
    note = fields.get("note")
    return f"{line} {_quote(note)}" if note else line


def read_lines(text: str) -> list[dict[str, str]]:
    """The reports of a ``<reports/>`` text, in order (every key of :data:`LINE_FIELDS`); a line
    of fewer than six or more than seven fields is skipped."""
    found = []
    for line in text.split("\n"):
        parts = line.split()
        if 6 <= len(parts) <= 7:
            fields = dict.fromkeys(LINE_FIELDS, "")
            for key, part in zip(LINE_FIELDS, parts, strict=False):
                fields[key] = "" if part == "-" else unquote_field(part)
            found.append(fields)
    return found


def read_reports(message: Any) -> list[dict[str, str]]:
    """Every report of a message element, ``<report/>`` and ``<reports/>`` alike, in document
    order (every key of :data:`LINE_FIELDS`)."""
    found = []
    for child in message:
        if child.tag == REPORT_TAG:
            found.append({key: child.get(name, "") for key, name in REPORT_ATTRIBUTES} | {"note": child.text or ""})
        elif child.tag == REPORTS_TAG:
            found += read_lines(child.text or "")
    return found


class Reports(ElementBase):
    """``<reports>line…</reports>`` (0.5): two or more hops, one a line (:func:`report_line`)."""

    namespace = NS
    name = "reports"
    plugin_attrib = "hops_reports"
    interfaces = {"reports"}

    def get_reports(self) -> list[dict[str, str]]:
        return read_lines(self.xml.text or "")

    def set_reports(self, reports: list[Mapping[str, str]]) -> None:
        self.xml.text = "\n".join(map(report_line, reports)) or None

    def del_reports(self) -> None:
        self.xml.text = None


class Hop(_HopFields):
    """``<hop state at place>note</hop>`` inside a trace."""

    name = "hop"
    plugin_attrib = "hop"
    plugin_multi_attrib = "hops"


class Trace(Report):
    """``<trace id/>`` (get) and its result: the message's current state and every hop."""

    name = "trace"
    plugin_attrib = "hops_trace"
    interfaces = Report.interfaces | {"encrypted"}  # encrypted='true': end-to-end encrypted, no text shown


class PendingMessage(TextBody, ElementBase):
    """``<message id to state since>body</message>`` inside ``<pending/>``."""

    namespace = NS
    name = "message"
    plugin_attrib = "message"
    plugin_multi_attrib = "messages"
    interfaces = {"id", "to", "state", "since", "encrypted", "body"}  # encrypted='true': no body


class Pending(ElementBase):
    """``<pending/>`` (get) and its result: the requester's held messages."""

    namespace = NS
    name = "pending"
    plugin_attrib = "hops_pending"
    interfaces: ClassVar[set[str]] = set()


class Recall(ElementBase):
    """``<recall id/>`` (set): withdraw a held message."""

    namespace = NS
    name = "recall"
    plugin_attrib = "hops_recall"
    interfaces = {"id"}


class Edit(TextBody, ElementBase):
    """``<edit id>new text</edit>`` (set): replace the text of a held message."""

    namespace = NS
    name = "edit"
    plugin_attrib = "hops_edit"
    interfaces = {"id", "body"}


def register() -> None:
    register_stanza_plugin(Message, Request)
    register_stanza_plugin(Message, Report)
    register_stanza_plugin(Message, Reports)
    register_stanza_plugin(Iq, Trace)
    register_stanza_plugin(Trace, Hop, iterable=True)
    register_stanza_plugin(Iq, Pending)
    register_stanza_plugin(Pending, PendingMessage, iterable=True)
    register_stanza_plugin(Iq, Recall)
    register_stanza_plugin(Iq, Edit)

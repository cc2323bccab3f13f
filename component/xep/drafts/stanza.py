"""Stanzas of courier-drafts (namespace ``https://courier.chat/ns/drafts/0``).

Requests (IQ, to Courier's JID), each answered for the requesting user only:

- ``<store to action><body/><trigger/></store>`` (set): store a new draft; the
  result is the stored ``<draft id …/>`` (Courier confirms the storage).
- ``<update id [to] [action]>[<body/>][<trigger/>]</update>`` (set): change a
  pending draft; the result is the updated ``<draft/>``.
- ``<delete id/>`` (set): drop a pending draft.
- ``<fire id/>`` (set): send a pending draft now; the result is ``<fired id message-id/>``.
- ``<drafts/>`` (get): sync; the result holds every pending draft, grouped by
  target: ``<target jid><draft/>…</target>``.

Messages from Courier to the author: ``<pending count/>`` (a device came online
and drafts are pending), ``<reminder><draft/></reminder>`` (a remind trigger
fired), ``<fired/>`` (a draft was sent by its trigger).

:class:`DraftInfo` and :class:`TriggerInfo` are the same data as plain values,
for code on either side that should not handle XML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from slixmpp.stanza import Iq, Message
from slixmpp.xmlstream import ElementBase, register_stanza_plugin

from ...namespaces import NS_DRAFTS

NS = NS_DRAFTS

ACTIONS = ("send", "remind")
TRIGGERS = ("manual", "at", "target-online", "message-from")


@dataclass
class TriggerInfo:
    """When a draft fires: ``manual``, ``at`` (``time`` with an offset, ``tz`` optional),
    ``target-online``, or ``message-from`` (``jid``)."""

    type: str = "manual"
    time: str = ""  # at: XEP-0082 date-time with Z or an offset
    tz: str = ""  # at: the IANA zone the author wrote it in (display only)
    jid: str = ""  # message-from: the contact


@dataclass
class DraftInfo:
    """A draft as the protocol carries it.  In an update, empty / ``None`` fields stay as they are."""

    to: str = ""
    body: str | None = None
    action: str = ""
    trigger: TriggerInfo | None = None
    id: str = ""
    state: str = ""
    created: str = ""
    updated: str = ""


class Trigger(ElementBase):
    """``<trigger type time tz jid/>``."""

    namespace = NS
    name = "trigger"
    plugin_attrib = "trigger"
    interfaces = {"type", "time", "tz", "jid"}

    def to_info(self) -> TriggerInfo:
        return TriggerInfo(self["type"] or "manual", self["time"], self["tz"], self["jid"])

    def from_info(self, info: TriggerInfo) -> None:
        self["type"] = info.type
        for key in ("time", "tz", "jid"):
            value = getattr(info, key)
            if value:
                self[key] = value
            else:
                del self[key]


class _DraftFields(ElementBase):
    """The fields shared by ``<draft/>``, ``<store/>`` and ``<update/>``."""

    namespace = NS
    interfaces = {"id", "to", "action", "state", "created", "updated", "body"}
    sub_interfaces = {"body"}

    def has_body(self) -> bool:
        return self.xml.find(f"{{{NS}}}body") is not None

    def has_trigger(self) -> bool:
        return self.xml.find(f"{{{NS}}}trigger") is not None

    def to_info(self) -> DraftInfo:
        return DraftInfo(
            to=self["to"],
            body=self["body"] if self.has_body() else None,
            action=self["action"],
            trigger=self["trigger"].to_info() if self.has_trigger() else None,
            id=self["id"],
            state=self["state"],
            created=self["created"],
            updated=self["updated"],
        )

    def from_info(self, info: DraftInfo) -> None:
        for key in ("id", "to", "action", "state", "created", "updated"):
            value = getattr(info, key)
            if value:
                self[key] = value
        if info.body is not None:
            self["body"] = info.body
        if info.trigger is not None:
            self["trigger"].from_info(info.trigger)


class Draft(_DraftFields):
    """``<draft id to action state created updated><body/><trigger/></draft>``: a stored draft."""

    name = "draft"
    plugin_attrib = "drafts_draft"
    plugin_multi_attrib = "drafts"


class Store(_DraftFields):
    """``<store to action><body/><trigger/></store>`` (set): store a new draft."""

    name = "store"
    plugin_attrib = "drafts_store"


class Update(_DraftFields):
    """``<update id [to] [action]>[<body/>][<trigger/>]</update>`` (set): change a pending draft."""

    name = "update"
    plugin_attrib = "drafts_update"


class Delete(ElementBase):
    """``<delete id/>`` (set): drop a pending draft."""

    namespace = NS
    name = "delete"
    plugin_attrib = "drafts_delete"
    interfaces = {"id"}


class Fire(ElementBase):
    """``<fire id/>`` (set): send a pending draft now, whatever its trigger and action."""

    namespace = NS
    name = "fire"
    plugin_attrib = "drafts_fire"
    interfaces = {"id"}


class Fired(ElementBase):
    """``<fired id message-id [due] [late]/>``: a draft became a tracked message (IQ result or notice)."""

    namespace = NS
    name = "fired"
    plugin_attrib = "drafts_fired"
    interfaces = {"id", "message_id", "to", "due", "late"}

    def get_message_id(self) -> str:
        return self.xml.get("message-id", "")

    def set_message_id(self, value: str) -> None:
        self.xml.set("message-id", value)

    def del_message_id(self) -> None:
        self.xml.attrib.pop("message-id", None)


class Target(ElementBase):
    """``<target jid><draft/>…</target>`` inside ``<drafts/>``: the drafts for one contact."""

    namespace = NS
    name = "target"
    plugin_attrib = "target"
    plugin_multi_attrib = "targets"
    interfaces = {"jid"}


class Drafts(ElementBase):
    """``<drafts/>`` (get) and its result: every pending draft, grouped by target."""

    namespace = NS
    name = "drafts"
    plugin_attrib = "drafts_list"
    interfaces: ClassVar[set[str]] = set()

    def by_target(self) -> dict[str, list[DraftInfo]]:
        """The (target → drafts) map."""
        return {t["jid"]: [d.to_info() for d in t["drafts"]] for t in self["targets"]}


class Pending(ElementBase):
    """``<pending count/>`` in a message to a device that came online: drafts are waiting."""

    namespace = NS
    name = "pending"
    plugin_attrib = "drafts_pending"
    interfaces = {"count"}


class Reminder(ElementBase):
    """``<reminder [due] [late]><draft/></reminder>``: a remind trigger fired for this draft."""

    namespace = NS
    name = "reminder"
    plugin_attrib = "drafts_reminder"
    interfaces = {"due", "late"}


def register() -> None:
    for cls in (Draft, Store, Update):
        register_stanza_plugin(cls, Trigger)
    register_stanza_plugin(Iq, Store)
    register_stanza_plugin(Iq, Update)
    register_stanza_plugin(Iq, Draft)
    register_stanza_plugin(Iq, Delete)
    register_stanza_plugin(Iq, Fire)
    register_stanza_plugin(Iq, Fired)
    register_stanza_plugin(Iq, Drafts)
    register_stanza_plugin(Drafts, Target, iterable=True)
    register_stanza_plugin(Target, Draft, iterable=True)
    register_stanza_plugin(Message, Pending)
    register_stanza_plugin(Message, Reminder)
    register_stanza_plugin(Reminder, Draft)
    register_stanza_plugin(Message, Fired)

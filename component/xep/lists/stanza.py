"""Stanzas of courier-lists (namespace ``https://courier.chat/ns/lists/0``).

List management (IQ to Courier's JID):

- ``<lists/>`` get: the requester's lists, each a ``<list name jid count created [expires]/>``;
- ``<list name/>`` get: one list with its ``<member jid/>`` elements;
- ``<create name [temporary] [expires]><member/>…</create>`` set → ``<list/>``;
- ``<rename name new-name/>``, ``<add name><member/>…</add>``, ``<remove name><member/>…</remove>``
  set → ``<list/>``; ``<delete name/>`` set → empty result.

Fan-outs:

- ``<send name [only]>text</send>`` set → ``<fanout/>`` (a message to a list's JID does the same);
- ``<fanout id/>`` get → ``<fanout id list at total held released received read recalled retracted
  failed><copy to id state/>…</fanout>``: the aggregate status and every copy;
- ``<fanouts/>`` get → the requester's newest fan-outs (aggregate only);
- ``<recall id/>`` set → ``<fanout/>``: the whole fan-out recalled;
- ``<fanout/>`` also rides on the message Courier sends the owner after a fan-out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from slixmpp.stanza import Iq, Message
from slixmpp.xmlstream import ElementBase, register_stanza_plugin

from ...namespaces import NS_LISTS
from .. import TextBody

NS = NS_LISTS

#: Aggregate states of a fan-out, in the order a copy can reach them (attributes of <fanout/>).
COUNTS = ("held", "released", "sms", "sms-delivered", "received", "read", "recalled", "retracted", "failed")
#: States of one copy (courier-hops words).
COPY_STATES = (
    "sent", "cached", "held", "released", "sms", "sms-delivered", "received", "read", "recalled", "retracted", "failed",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ListInfo:
    """One list as the protocol shows it (``<list/>``)."""

    name: str
    jid: str
    members: list[str]
    created: float
    expires: float | None = None


@dataclass(frozen=True, slots=True)
class CopyInfo:
    """One member's copy of a fan-out (``<copy/>``): its message id and courier-hops state."""

    to: str
    id: str
    state: str


@dataclass(frozen=True, slots=True)
class FanoutInfo:
    """One fan-out as the protocol shows it (``<fanout/>``): the aggregate, and every copy."""

    id: str
    created: float
    list_name: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    copies: list[CopyInfo] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.copies)


class Member(ElementBase):
    """``<member jid/>``: one member of a list."""

    namespace = NS
    name = "member"
    plugin_attrib = "member"
    plugin_multi_attrib = "members"
    interfaces = {"jid"}


class _WithMembers(ElementBase):
    """An element carrying ``<member/>`` children, read and written as JID strings."""

    namespace = NS

    def jids(self) -> list[str]:
        """The members' JIDs, in document order."""
        return [m["jid"] for m in self["members"] if m["jid"]]

    def add_jids(self, jids: list[str]) -> None:
        """Append one ``<member/>`` per JID."""
        for jid in jids:
            member = Member()
            member["jid"] = jid
            self.append(member)


class ListItem(_WithMembers):
    """``<list name jid count created [expires]>`` (with ``<member/>`` when one list is asked for)."""

    name = "list"
    plugin_attrib = "lists_list"
    plugin_multi_attrib = "items"
    interfaces = {"name", "jid", "count", "created", "expires"}


class Lists(ElementBase):
    """``<lists/>`` (get) and its result: the requester's lists."""

    namespace = NS
    name = "lists"
    plugin_attrib = "lists_lists"
    interfaces: ClassVar[set[str]] = set()


class Create(_WithMembers):
    """``<create name [temporary='true'] [expires]><member/>…</create>`` (set)."""

    name = "create"
    plugin_attrib = "lists_create"
    interfaces = {"name", "temporary", "expires"}

    def get_temporary(self) -> bool:
        return self.xml.get("temporary", "false") in ("true", "1")

    def set_temporary(self, value: bool) -> None:
        if value:
            self.xml.set("temporary", "true")
        else:
            self.xml.attrib.pop("temporary", None)

    def del_temporary(self) -> None:
        self.xml.attrib.pop("temporary", None)


class Rename(ElementBase):
    """``<rename name new-name/>`` (set)."""

    namespace = NS
    name = "rename"
    plugin_attrib = "lists_rename"
    interfaces = {"name", "new_name"}

    def get_new_name(self) -> str:
        return self.xml.get("new-name", "")

    def set_new_name(self, value: str) -> None:
        self.xml.set("new-name", value)

    def del_new_name(self) -> None:
        self.xml.attrib.pop("new-name", None)


class Add(_WithMembers):
    """``<add name><member/>…</add>`` (set)."""

    name = "add"
    plugin_attrib = "lists_add"
    interfaces = {"name"}


class Remove(_WithMembers):
    """``<remove name><member/>…</remove>`` (set)."""

    name = "remove"
    plugin_attrib = "lists_remove"
    interfaces = {"name"}


class Delete(ElementBase):
    """``<delete name/>`` (set)."""

    namespace = NS
    name = "delete"
    plugin_attrib = "lists_delete"
    interfaces = {"name"}


class Send(TextBody, ElementBase):
    """``<send name [only]>text</send>`` (set): fan the text out to the list (or to one member)."""

    namespace = NS
    name = "send"
    plugin_attrib = "lists_send"
    interfaces = {"name", "only", "body"}


class Copy(ElementBase):
    """``<copy to id state/>``: one member's copy of a fan-out (``id`` is the copy's message id)."""

    namespace = NS
    name = "copy"
    plugin_attrib = "copy"
    plugin_multi_attrib = "copies"
    interfaces = {"to", "id", "state"}


class Fanout(ElementBase):
    """``<fanout id list at total held … failed>``: the aggregate status of one fan-out."""

    namespace = NS
    name = "fanout"
    plugin_attrib = "lists_fanout"
    plugin_multi_attrib = "fanouts"
    interfaces = {"id", "list", "at", "total", *COUNTS}

    def counts(self) -> dict[str, int]:
        """The aggregate as numbers (absent attributes count 0)."""
        return {state: int(self.xml.get(state) or 0) for state in COUNTS}


class Fanouts(ElementBase):
    """``<fanouts/>`` (get) and its result: the requester's newest fan-outs."""

    namespace = NS
    name = "fanouts"
    plugin_attrib = "lists_fanouts"
    interfaces: ClassVar[set[str]] = set()


class Recall(ElementBase):
    """``<recall id/>`` (set): recall every copy of a fan-out."""

    namespace = NS
    name = "recall"
    plugin_attrib = "lists_recall"
    interfaces = {"id"}


def register() -> None:
    for parent in (ListItem, Create, Add, Remove):
        register_stanza_plugin(parent, Member, iterable=True)
    register_stanza_plugin(Iq, Lists)
    register_stanza_plugin(Lists, ListItem, iterable=True)
    for plugin in (ListItem, Create, Rename, Add, Remove, Delete, Send, Fanout, Fanouts, Recall):
        register_stanza_plugin(Iq, plugin)
    register_stanza_plugin(Fanout, Copy, iterable=True)
    register_stanza_plugin(Fanouts, Fanout, iterable=True)
    register_stanza_plugin(Message, Fanout)

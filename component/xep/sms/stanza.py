"""Stanzas of courier-sms (namespace ``https://courier.chat/ns/sms/0``), and of XEP-0100's
``jabber:iq:gateway``, which courier-sms uses to map phone numbers to JIDs.

- ``<phone/>`` IQ get, and every result: your number, fallback, the number waiting for its code.
- ``<register number/>`` IQ set: verify this number (a code is sent to it by SMS).
- ``<verify code/>`` IQ set: the code; the number becomes active.
- ``<fallback enabled/>`` IQ set: SMS fallback on or off.
- ``<remove/>`` IQ set: forget your numbers.
- ``<sms number/>`` on a message: it arrived by SMS from that number.
- ``<query xmlns='jabber:iq:gateway'>`` (XEP-0100): ``<desc/>`` and ``<prompt/>``; ``<jid/>`` in
  the answer to a number.
"""

from __future__ import annotations

from typing import ClassVar

from slixmpp.stanza import Iq, Message
from slixmpp.xmlstream import ElementBase, register_stanza_plugin

from ...namespaces import NS_SMS

NS = NS_SMS
NS_GATEWAY = "jabber:iq:gateway"


def _flag(value: str) -> bool | None:
    return {"true": True, "1": True, "false": False, "0": False}.get(value)


class Phone(ElementBase):
    """``<phone number? fallback? pending? expires?/>``: a user's phone numbers."""

    namespace = NS
    name = "phone"
    plugin_attrib = "sms_phone"
    interfaces = {"number", "fallback", "pending", "expires"}

    def get_fallback(self) -> bool | None:
        return _flag(self.xml.get("fallback", ""))

    def set_fallback(self, value: bool | None) -> None:
        if value is None:
            self.xml.attrib.pop("fallback", None)
        else:
            self.xml.set("fallback", "true" if value else "false")

    def del_fallback(self) -> None:
        self.xml.attrib.pop("fallback", None)


class Register(ElementBase):
    """``<register number/>``: start verifying *number* (E.164, or as typed)."""

    namespace = NS
    name = "register"
    plugin_attrib = "sms_register"
    interfaces = {"number"}


class Verify(ElementBase):
    """``<verify code/>``: the code that was sent by SMS."""

    namespace = NS
    name = "verify"
    plugin_attrib = "sms_verify"
    interfaces = {"code"}


class Fallback(ElementBase):
    """``<fallback enabled/>``: SMS fallback on (true) or off (false)."""

    namespace = NS
    name = "fallback"
    plugin_attrib = "sms_fallback"
    interfaces = {"enabled"}

    def get_enabled(self) -> bool | None:
        return _flag(self.xml.get("enabled", ""))

    def set_enabled(self, value: bool) -> None:
        self.xml.set("enabled", "true" if value else "false")

    def del_enabled(self) -> None:
        self.xml.attrib.pop("enabled", None)


class Remove(ElementBase):
    """``<remove/>``: forget my numbers."""

    namespace = NS
    name = "remove"
    plugin_attrib = "sms_remove"
    interfaces: ClassVar[set[str]] = set()


class Sms(ElementBase):
    """``<sms number/>`` on a message: it arrived by SMS from *number*."""

    namespace = NS
    name = "sms"
    plugin_attrib = "sms"
    interfaces = {"number"}


class GatewayQuery(ElementBase):
    """XEP-0100 ``<query xmlns='jabber:iq:gateway'>`` with ``desc``, ``prompt`` and ``jid``."""

    namespace = NS_GATEWAY
    name = "query"
    plugin_attrib = "gateway"
    interfaces = {"desc", "prompt", "jid"}
    sub_interfaces = interfaces


def register() -> None:
    register_stanza_plugin(Iq, Phone)
    register_stanza_plugin(Iq, Register)
    register_stanza_plugin(Iq, Verify)
    register_stanza_plugin(Iq, Fallback)
    register_stanza_plugin(Iq, Remove)
    register_stanza_plugin(Iq, GatewayQuery)
    register_stanza_plugin(Message, Sms)

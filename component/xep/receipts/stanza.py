"""Stanzas of courier-receipts (namespace ``https://courier.chat/ns/receipts/0``).

- ``<no-request/>`` on a message: no processing receipts for this one.
- ``<policy/>`` IQ: get another user's policy toward you (``of``), set your own
  (default, or for one ``contact``).
- ``<policies/>`` IQ get: your default and per-contact policies.
- ``<notice jid policy/>`` in a message from Courier: that contact refuses receipts.
- ``<confirm id from/>`` IQ set: send the receipt for a message you received
  (what "manual" means).
"""

from __future__ import annotations

from typing import ClassVar

from slixmpp.stanza import Iq, Message
from slixmpp.xmlstream import ElementBase, register_stanza_plugin

from ...namespaces import NS_RECEIPTS_POLICY

NS = NS_RECEIPTS_POLICY
POLICIES = ("auto", "manual", "refuse")


class NoRequest(ElementBase):
    """``<no-request/>``: the sender wants no processing receipts for this message."""

    namespace = NS
    name = "no-request"
    plugin_attrib = "receipts_no_request"
    interfaces: ClassVar[set[str]] = set()


class Policy(ElementBase):
    """``<policy of? contact? value?/>``."""

    namespace = NS
    name = "policy"
    plugin_attrib = "receipts_policy"
    plugin_multi_attrib = "receipts_policy_items"
    interfaces = {"of", "contact", "value"}


class Policies(ElementBase):
    """``<policies default>`` with one ``<policy contact value/>`` per override."""

    namespace = NS
    name = "policies"
    plugin_attrib = "receipts_policies"
    interfaces = {"default"}


class Notice(ElementBase):
    """``<notice jid policy/>``: *jid* applies *policy* to your messages (sent once per conversation)."""

    namespace = NS
    name = "notice"
    plugin_attrib = "receipts_notice"
    interfaces = {"jid", "policy"}


class Confirm(ElementBase):
    """``<confirm id from/>``: confirm the receipt of message *id* that *from* sent you."""

    namespace = NS
    name = "confirm"
    plugin_attrib = "receipts_confirm"
    interfaces = {"id", "from"}


def register() -> None:
    register_stanza_plugin(Message, NoRequest)
    register_stanza_plugin(Message, Notice)
    register_stanza_plugin(Iq, Policy)
    register_stanza_plugin(Iq, Policies)
    register_stanza_plugin(Policies, Policy, iterable=True)
    register_stanza_plugin(Iq, Confirm)

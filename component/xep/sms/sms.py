"""The courier-sms plugin, for both sides.

Component side (``pconfig={"service": SmsIqService, "domain": ..., "gateway": True}``):
answers ``<phone/>``, ``<register/>``, ``<verify/>``, ``<fallback/>`` and
``<remove/>`` for the requesting user only, and XEP-0100 ``jabber:iq:gateway``
for anyone; advertises both namespaces and the ``gateway/sms`` identity.
Client side: :meth:`XEP_CourierSms.get_phone` and friends, and the
``sms_message`` event for every message marked ``<sms/>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from slixmpp import JID, Iq
from slixmpp.exceptions import XMPPError
from slixmpp.plugins import BasePlugin
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import StanzaPath

from ...util import stamp
from . import stanza
from .stanza import NS, NS_GATEWAY

GATEWAY_DESC = "Enter a phone number in international format, like +12025550143, to get the address to write to."
GATEWAY_PROMPT = "Phone number"
IDENTITY = ("gateway", "sms", "Courier SMS")


@dataclass(frozen=True, slots=True)
class PhoneInfo:
    """A user's numbers as the protocol carries them."""

    number: str | None
    fallback: bool
    pending: str | None = None
    expires: float | None = None


class SmsIqService(Protocol):
    """What the component side needs; expected failures raise ``XMPPError``."""

    def phone(self, user: str) -> PhoneInfo: ...
    async def register(self, user: str, number: str) -> PhoneInfo: ...
    async def verify(self, user: str, code: str) -> PhoneInfo: ...
    async def set_fallback(self, user: str, on: bool) -> PhoneInfo: ...
    async def remove(self, user: str) -> None: ...
    def jid_for(self, number: str) -> str: ...


class XEP_CourierSms(BasePlugin):
    """courier-sms: phone numbers, SMS fallback, number JIDs (xeps/courier-sms.xml)."""

    name = "courier_sms"
    description = "Courier SMS: phone numbers, SMS fallback and inbound SMS"
    dependencies = {"xep_0030"}
    stanza = stanza

    def plugin_init(self) -> None:
        stanza.register()
        self.service: SmsIqService | None = self.config.get("service")
        self.local_domain: str | None = self.config.get("domain")
        self._names = ["SMS message"]
        if self.xmpp.is_component:
            for name, path, handler in (
                ("SMS phone", "iq@type=get/sms_phone", self._phone),
                ("SMS register", "iq@type=set/sms_register", self._register),
                ("SMS verify", "iq@type=set/sms_verify", self._verify),
                ("SMS fallback", "iq@type=set/sms_fallback", self._fallback),
                ("SMS remove", "iq@type=set/sms_remove", self._remove),
                ("SMS gateway get", "iq@type=get/gateway", self._gateway_get),
                ("SMS gateway set", "iq@type=set/gateway", self._gateway_set),
            ):
                self.xmpp.register_handler(CoroutineCallback(name, StanzaPath(path), handler))
                self._names.append(name)
        else:
            self.xmpp.register_handler(Callback("SMS message", StanzaPath("message/sms"), self._sms_message))

    def plugin_end(self) -> None:
        for name in self._names:
            self.xmpp.remove_handler(name)
        disco = self.xmpp.plugin["xep_0030"]
        disco.del_feature(feature=NS)
        disco.del_feature(feature=NS_GATEWAY)

    def session_bind(self, jid: Any) -> None:
        if self.xmpp.is_component:
            self.advertise()

    def advertise(self) -> None:
        """Disco features and the gateway identity (call again after identities are reset)."""
        disco = self.xmpp.plugin["xep_0030"]
        disco.add_feature(NS)
        disco.add_feature(NS_GATEWAY)
        category, itype, name = IDENTITY
        # slixmpp's set_identities() drops the XML of earlier identities but remembers them, and
        # add_identity() then refuses them as duplicates: forget it first, then add it.
        disco.del_identity(category=category, itype=itype, name=name)
        disco.add_identity(category=category, itype=itype, name=name)

    # -- component side -----------------------------------------------------------------

    def _user(self, iq: StanzaBase) -> str:
        sender: JID = iq["from"]
        if self.service is None:
            raise XMPPError("service-unavailable")
        if not sender.user or (self.local_domain and sender.domain != self.local_domain):
            raise XMPPError("forbidden", "only users of this server have phone numbers here", etype="auth")
        return str(sender.bare)

    def _answer(self, iq: StanzaBase, info: PhoneInfo) -> None:
        reply = iq.reply(clear=True)
        phone = reply["sms_phone"]
        if info.number:
            phone["number"] = info.number
            phone["fallback"] = info.fallback
        if info.pending:
            phone["pending"] = info.pending
            if info.expires is not None:
                phone["expires"] = stamp(info.expires, ms=False)
        reply.send()

    async def _phone(self, iq: StanzaBase) -> None:
        user = self._user(iq)
        assert self.service is not None
        self._answer(iq, self.service.phone(user))

    async def _register(self, iq: StanzaBase) -> None:
        user = self._user(iq)
        assert self.service is not None
        number = iq["sms_register"]["number"]
        if not number:
            raise XMPPError("bad-request", "the number to register is required")
        self._answer(iq, await self.service.register(user, number))

    async def _verify(self, iq: StanzaBase) -> None:
        user = self._user(iq)
        assert self.service is not None
        code = iq["sms_verify"]["code"]
        if not code:
            raise XMPPError("bad-request", "the code is required")
        self._answer(iq, await self.service.verify(user, code))

    async def _fallback(self, iq: StanzaBase) -> None:
        user = self._user(iq)
        assert self.service is not None
        enabled = iq["sms_fallback"]["enabled"]
        if enabled is None:
            raise XMPPError("bad-request", "enabled='true' or enabled='false'")
        self._answer(iq, await self.service.set_fallback(user, enabled))

    async def _remove(self, iq: StanzaBase) -> None:
        user = self._user(iq)
        assert self.service is not None
        await self.service.remove(user)
        iq.reply(clear=True).send()

    async def _gateway_get(self, iq: StanzaBase) -> None:
        reply = iq.reply(clear=True)
        reply["gateway"]["desc"] = GATEWAY_DESC
        reply["gateway"]["prompt"] = GATEWAY_PROMPT
        reply.send()

    async def _gateway_set(self, iq: StanzaBase) -> None:
        if self.service is None:
            raise XMPPError("service-unavailable")
        prompt = iq["gateway"]["prompt"]
        if not prompt:
            raise XMPPError("bad-request", "the phone number goes in <prompt/>")
        jid = self.service.jid_for(prompt)
        reply = iq.reply(clear=True)
        reply["gateway"]["jid"] = jid
        reply.send()

    # -- client side ----------------------------------------------------------------------

    def _sms_message(self, msg: StanzaBase) -> None:
        self.xmpp.event("sms_message", msg)

    async def get_phone(self, courier: JID | str, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_get(ito=courier)
        iq.enable("sms_phone")
        return await iq.send(**iqkwargs)

    async def register_phone(self, courier: JID | str, number: str, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_set(ito=courier)
        iq["sms_register"]["number"] = number
        return await iq.send(**iqkwargs)

    async def verify_phone(self, courier: JID | str, code: str, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_set(ito=courier)
        iq["sms_verify"]["code"] = code
        return await iq.send(**iqkwargs)

    async def set_fallback(self, courier: JID | str, enabled: bool, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_set(ito=courier)
        iq["sms_fallback"]["enabled"] = enabled
        return await iq.send(**iqkwargs)

    async def remove_phone(self, courier: JID | str, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_set(ito=courier)
        iq.enable("sms_remove")
        return await iq.send(**iqkwargs)

    async def gateway_prompt(self, courier: JID | str, **iqkwargs: Any) -> Iq:
        """XEP-0100: ask the gateway what to enter."""
        iq = self.xmpp.make_iq_get(ito=courier)
        iq.enable("gateway")
        return await iq.send(**iqkwargs)

    async def gateway_jid(self, courier: JID | str, number: str, **iqkwargs: Any) -> str:
        """XEP-0100: the JID of a phone number."""
        iq = self.xmpp.make_iq_set(ito=courier)
        iq["gateway"]["prompt"] = number
        result = await iq.send(**iqkwargs)
        return str(result["gateway"]["jid"])

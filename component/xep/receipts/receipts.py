"""The courier-receipts plugin (component side answers; client side helpers)."""

from __future__ import annotations

from typing import Any, Protocol

from slixmpp import JID, Iq
from slixmpp.exceptions import XMPPError
from slixmpp.plugins import BasePlugin
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher import StanzaPath

from . import stanza
from .stanza import NS, POLICIES


class ReceiptsService(Protocol):
    """Policies and confirmations, scoped to the requesting user (a bare JID)."""

    def policy_of(self, user: str, contact: str) -> str: ...
    def policies(self, user: str) -> tuple[str, dict[str, str]]: ...
    async def set_policy(self, user: str, contact: str, policy: str | None) -> None: ...
    async def confirm(self, user: str, msg_id: str, sender: str | None) -> None: ...


class XEP_CourierReceipts(BasePlugin):
    """courier-receipts: receipt policies and processing receipts (xeps/courier-receipts.xml)."""

    name = "courier_receipts"
    description = "Courier receipts: receipt policies auto / manual / refuse"
    dependencies = {"xep_0030"}
    stanza = stanza

    def plugin_init(self) -> None:
        stanza.register()
        self.service: ReceiptsService | None = self.config.get("service")
        self.local_domain: str | None = self.config.get("domain")
        if self.xmpp.is_component:
            for name, path, handler in (
                ("Receipts policy get", "iq@type=get/receipts_policy", self._get_policy),
                ("Receipts policy set", "iq@type=set/receipts_policy", self._set_policy),
                ("Receipts policies", "iq@type=get/receipts_policies", self._get_policies),
                ("Receipts confirm", "iq@type=set/receipts_confirm", self._confirm),
            ):
                self.xmpp.register_handler(CoroutineCallback(name, StanzaPath(path), handler))

    def plugin_end(self) -> None:
        for name in ("Receipts policy get", "Receipts policy set", "Receipts policies", "Receipts confirm"):
            self.xmpp.remove_handler(name)
        self.xmpp.plugin["xep_0030"].del_feature(feature=NS)

    def session_bind(self, jid: Any) -> None:
        self.xmpp.plugin["xep_0030"].add_feature(NS)

    def _user(self, iq: StanzaBase) -> str:
        sender: JID = iq["from"]
        if self.service is None:
            raise XMPPError("service-unavailable")
        if not sender.user or (self.local_domain and sender.domain != self.local_domain):
            raise XMPPError("forbidden", "only users of this server have receipt policies here", etype="auth")
        return str(sender.bare)

    @staticmethod
    def _jid(value: str, what: str) -> str:
        try:
            jid = JID(value)
        except Exception:
            raise XMPPError("jid-malformed", f"{what} is not a JID") from None
        if not jid.user:
            raise XMPPError("bad-request", f"{what} must be a user's JID")
        return str(jid.bare)

    async def _get_policy(self, iq: StanzaBase) -> None:
        user = self._user(iq)
        assert self.service is not None
        of = iq["receipts_policy"]["of"]
        if not of:
            raise XMPPError("bad-request", "say whose policy: of='JID'")
        other = self._jid(of, "of")
        reply = iq.reply(clear=True)
        reply["receipts_policy"]["of"] = other
        reply["receipts_policy"]["value"] = self.service.policy_of(other, user)
        reply.send()

    async def _set_policy(self, iq: StanzaBase) -> None:
        user = self._user(iq)
        assert self.service is not None
        policy = iq["receipts_policy"]
        contact = self._jid(policy["contact"], "contact") if policy["contact"] else ""
        value = policy["value"] or None
        if value is not None and value not in POLICIES:
            raise XMPPError("bad-request", "value must be auto, manual or refuse")
        if value is None and not contact:
            raise XMPPError("bad-request", "your default policy cannot be removed, only changed")
        await self.service.set_policy(user, contact, value)
        iq.reply(clear=True).send()

    async def _get_policies(self, iq: StanzaBase) -> None:
        user = self._user(iq)
        assert self.service is not None
        default, overrides = self.service.policies(user)
        reply = iq.reply(clear=True)
        policies = reply["receipts_policies"]
        policies["default"] = default
        for contact, value in sorted(overrides.items()):
            item = stanza.Policy()
            item["contact"], item["value"] = contact, value
            policies.append(item)
        reply.send()

    async def _confirm(self, iq: StanzaBase) -> None:
        user = self._user(iq)
        assert self.service is not None
        confirm = iq["receipts_confirm"]
        if not confirm["id"]:
            raise XMPPError("bad-request", "the id of a message you received is required")
        sender = self._jid(confirm["from"], "from") if confirm["from"] else None
        await self.service.confirm(user, confirm["id"], sender)
        iq.reply(clear=True).send()

    # -- client side --------------------------------------------------------------

    async def get_policy(self, courier: JID | str, of: str, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_get(ito=courier)
        iq["receipts_policy"]["of"] = of
        return await iq.send(**iqkwargs)

    async def set_policy(self, courier: JID | str, value: str | None, contact: str = "", **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_set(ito=courier)
        iq["receipts_policy"]["value"] = value or ""
        if contact:
            iq["receipts_policy"]["contact"] = contact
        return await iq.send(**iqkwargs)

    async def get_policies(self, courier: JID | str, **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_get(ito=courier)
        iq.enable("receipts_policies")
        return await iq.send(**iqkwargs)

    async def confirm(self, courier: JID | str, msg_id: str, sender: str = "", **iqkwargs: Any) -> Iq:
        iq = self.xmpp.make_iq_set(ito=courier)
        iq["receipts_confirm"]["id"] = msg_id
        if sender:
            iq["receipts_confirm"]["from"] = sender
        return await iq.send(**iqkwargs)

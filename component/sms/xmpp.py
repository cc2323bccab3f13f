"""SMS fallback (P3) on the XMPP side: number JIDs, courier-sms IQs, XEP-0100, inbound SMS out.

:class:`SmsXmpp` is attached to the Courier component when ``sms.enabled`` is
set.  It builds the Kannel transport and the :class:`~.service.SmsService`,
hooks the service into the delivery pipeline (fallback), registers the
courier-sms plugin (IQs and ``jabber:iq:gateway``) and handles messages that
users send to ``+<E.164>@<Courier's JID>``:

- to a number that is another user's verified number: the message goes to that
  user's XMPP JID (network first, SMS fallback if they are offline);
- otherwise: a tracked message submitted as SMS (hops ``sent``, ``sms``,
  ``sms-delivered``); a XEP-0184 request is answered from the number JID once
  the gateway reports delivery.

It delivers inbound SMS as chat messages from the number JID, marked ``<sms/>``.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from slixmpp.exceptions import XMPPError
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher.base import MatcherBase

from ..errors import as_xmpp_errors, xmpp_error
from ..namespaces import NS_HOPS, NS_RECEIPTS, NS_RECEIPTS_POLICY, NS_SID
from ..xep import e2ee
from ..xep import sms as xep_sms
from ..xep.sms import PhoneInfo
from .kannel import KannelTransport
from .numbers import looks_like_number, number_jid
from .service import SmsError, SmsService, SmsSettings

if TYPE_CHECKING:
    from slixmpp import ComponentXMPP

    from ..config import Config
    from ..delivery.pipeline import Pipeline
    from ..store import Store

log = logging.getLogger(__name__)

NS_HOPS_REQUEST = f"{{{NS_HOPS}}}request"
NS_NO_REQUEST = f"{{{NS_RECEIPTS_POLICY}}}no-request"
#: The XMPP error type that goes with each condition the service raises.
class ToNumbers(MatcherBase):
    """Messages to a phone number's JID under Courier's JID (a string test, cheap on every stanza)."""

    def __init__(self, component: str) -> None:
        super().__init__(component)
        self.suffix = "@" + component

    def match(self, xml: StanzaBase) -> bool:
        if xml.xml.tag.rpartition("}")[2] != "message":
            return False
        bare = xml.xml.get("to", "").partition("/")[0]
        return bare.endswith(self.suffix) and looks_like_number(bare[: -len(self.suffix)])


class IqAdapter:
    """The courier-sms plugin's service, over :class:`SmsService` (errors as XMPP errors)."""

    def __init__(self, service: SmsService) -> None:
        self.service = service

    def phone(self, user: str) -> PhoneInfo:
        s = self.service.status(user)
        return PhoneInfo(s.number, s.fallback, s.pending, s.expires)

    async def register(self, user: str, number: str) -> PhoneInfo:
        with as_xmpp_errors():
            await self.service.register(user, number)
        return self.phone(user)

    async def verify(self, user: str, code: str) -> PhoneInfo:
        with as_xmpp_errors():
            await self.service.verify(user, code)
        return self.phone(user)

    async def set_fallback(self, user: str, on: bool) -> PhoneInfo:
        with as_xmpp_errors():
            await self.service.set_fallback(user, on)
        return self.phone(user)

    async def remove(self, user: str) -> None:
        await self.service.remove(user)

    def jid_for(self, number: str) -> str:
        with as_xmpp_errors():
            return self.service.jid_for(number)


class SmsXmpp:
    """SMS fallback wired into the Courier component (see the module docstring)."""

    def __init__(self, xmpp: ComponentXMPP, config: Config, store: Store, pipeline: Pipeline) -> None:
        self.xmpp = xmpp
        self.domain = config.domain
        self.component = config.jid
        transport = KannelTransport(
            config["sms.kannel_url"],
            config["sms.username"],
            config["sms.password"],
            config["sms.secret"],
            config["sms.listen_host"],
            config["sms.listen_port"],
            config["sms.public_url"],
        )
        self.service = SmsService(
            store,
            pipeline,
            transport,
            SmsSettings.from_config(config),
            component=self.component,
            delivery=self,
        )
        pipeline.sms = self.service
        pipeline.sms_domain = self.component
        xmpp.register_plugin(
            "courier_sms", module=xep_sms, pconfig={"service": IqAdapter(self.service), "domain": self.domain}
        )
        self.plugin: xep_sms.XEP_CourierSms = xmpp.plugin["courier_sms"]  # type: ignore[typeddict-item]
        xmpp.register_handler(CoroutineCallback("SMS to a number", ToNumbers(self.component), self._to_number))

    async def start(self) -> None:
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop()

    def advertise(self) -> None:
        """After Courier (re)sets its disco identities: add the gateway's."""
        self.plugin.advertise()

    # -- messages users send to number JIDs --------------------------------------------

    async def _to_number(self, msg: StanzaBase) -> None:
        if msg["type"] not in ("chat", "normal"):
            return  # errors, headlines, groupchat
        if e2ee.is_encrypted(msg.xml):
            raise XMPPError(
                "not-acceptable",
                "this message is end-to-end encrypted: an SMS cannot carry it, and Courier never sends "
                "its fallback sentence as if it were the message; turn encryption off to text a phone",
                etype="modify",
            )
        body = msg["body"]
        if not body:
            return  # chat states, receipts, markers: nothing to send by SMS
        sender = msg["from"]
        if not sender.user or sender.domain != self.domain:
            raise XMPPError("forbidden", f"Courier sends SMS for the users of {self.domain} only", etype="auth")
        asked = msg.xml.find(f"{{{NS_RECEIPTS}}}request") is not None
        declined = msg.xml.find(NS_NO_REQUEST) is not None
        wants_reports = not declined and (asked or msg.xml.find(NS_HOPS_REQUEST) is not None)
        origin = msg.xml.find(f"{{{NS_SID}}}origin-id")
        extra = [Element(f"{{{NS_RECEIPTS}}}request")] if asked else []
        try:
            await self.service.send_direct(
                str(sender),
                msg["to"].user,
                body,
                msg_id=msg["id"] or "",
                origin_id=origin.get("id", "") if origin is not None else "",
                wants_reports=wants_reports,
                extra=extra,
            )
        except SmsError as exc:
            log.info("SMS from %s to %s refused: %s", sender, msg["to"], exc.text)
            raise xmpp_error(exc) from None

    # -- SmsDelivery --------------------------------------------------------------------

    def inbound(self, number: str, user: str, text: str) -> None:
        msg = self.xmpp.make_message(mto=user, mfrom=number_jid(number, self.component), mbody=text, mtype="chat")
        msg["id"] = uuid.uuid4().hex
        msg["sms"]["number"] = number
        msg.send()

    def receipt(self, number: str, user: str, msg_id: str) -> None:
        if not msg_id:
            return
        msg = self.xmpp.make_message(mto=user, mfrom=number_jid(number, self.component), mtype="chat")
        msg.xml.append(Element(f"{{{NS_RECEIPTS}}}received", id=msg_id))
        msg.send()

    def notify(self, user: str, text: str) -> None:
        self.xmpp.make_message(mto=user, mfrom=self.xmpp.boundjid.bare, mbody=text, mtype="chat").send()

"""Round trips of the courier-sms stanzas and of XEP-0100's jabber:iq:gateway
(xeps/courier-sms.xml), slixmpp style: built through the interfaces, compared with the
document's examples, parsed back and rebuilt (``SlixTest.check`` does both directions)."""

from __future__ import annotations

from slixmpp import Iq, Message
from slixmpp.test import SlixTest

from component.xep.sms import stanza
from component.xep.sms.stanza import Fallback, GatewayQuery, Phone


class TestSmsStanzas(SlixTest):
    def setUp(self) -> None:
        stanza.register()

    def test_phone_get_and_result(self) -> None:
        iq = Iq()
        iq["type"], iq["id"], iq["to"] = "get", "phone-1", "courier.shakespeare.lit"
        iq.enable("sms_phone")
        self.check(
            iq,
            """<iq type='get' id='phone-1' to='courier.shakespeare.lit'>
                 <phone xmlns='https://courier.chat/ns/sms/0'/>
               </iq>""",
        )
        iq = Iq()
        iq["type"], iq["id"] = "result", "phone-1"
        iq["sms_phone"]["number"] = "+12025550143"
        iq["sms_phone"]["fallback"] = True
        iq["sms_phone"]["pending"] = "+33612345678"
        iq["sms_phone"]["expires"] = "2026-11-23T10:10:00Z"
        self.check(
            iq,
            """<iq type='result' id='phone-1'>
                 <phone xmlns='https://courier.chat/ns/sms/0' number='+12025550143' fallback='true'
                        pending='+33612345678' expires='2026-11-23T10:10:00Z'/>
               </iq>""",
        )
        assert iq["sms_phone"]["fallback"] is True
        assert isinstance(iq["sms_phone"], Phone)
        assert Phone()["fallback"] is None  # not said: neither on nor off

    def test_register_verify_fallback_remove(self) -> None:
        for attrib, values, xml in (
            ("sms_register", {"number": "+1 202 555 0143"}, "<register xmlns='{ns}' number='+1 202 555 0143'/>"),
            ("sms_verify", {"code": "493021"}, "<verify xmlns='{ns}' code='493021'/>"),
            ("sms_fallback", {"enabled": False}, "<fallback xmlns='{ns}' enabled='false'/>"),
            ("sms_remove", {}, "<remove xmlns='{ns}'/>"),
        ):
            iq = Iq()
            iq["type"], iq["id"] = "set", "s-1"
            iq.enable(attrib)
            for key, value in values.items():
                iq[attrib][key] = value
            self.check(iq, f"<iq type='set' id='s-1'>{xml.format(ns=stanza.NS)}</iq>")
        fallback = Fallback()
        fallback["enabled"] = True
        assert fallback.xml.get("enabled") == "true" and fallback["enabled"] is True

    def test_message_that_came_by_sms(self) -> None:
        msg = Message()
        msg["from"], msg["to"], msg["type"] = "+12025550177@courier.shakespeare.lit", "romeo@shakespeare.lit", "chat"
        msg["body"] = "Draw, if you be men"
        msg["sms"]["number"] = "+12025550177"
        self.check(
            msg,
            """<message from='+12025550177@courier.shakespeare.lit' to='romeo@shakespeare.lit' type='chat'>
                 <body>Draw, if you be men</body>
                 <sms xmlns='https://courier.chat/ns/sms/0' number='+12025550177'/>
               </message>""",
        )

    def test_gateway_prompt_and_jid(self) -> None:
        iq = Iq()
        iq["type"], iq["id"] = "result", "gw-1"
        iq["gateway"]["desc"] = "Enter a phone number"
        iq["gateway"]["prompt"] = "Phone number"
        self.check(
            iq,
            """<iq type='result' id='gw-1'>
                 <query xmlns='jabber:iq:gateway'><desc>Enter a phone number</desc><prompt>Phone number</prompt></query>
               </iq>""",
        )
        iq = Iq()
        iq["type"], iq["id"] = "result", "gw-2"
        iq["gateway"]["jid"] = "+12025550143@courier.shakespeare.lit"
        self.check(
            iq,
            """<iq type='result' id='gw-2'>
                 <query xmlns='jabber:iq:gateway'><jid>+12025550143@courier.shakespeare.lit</jid></query>
               </iq>""",
        )
        assert isinstance(iq["gateway"], GatewayQuery)

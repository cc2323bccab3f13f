"""Round trips of the courier-route stanzas (xeps/courier-route.xml), slixmpp style.

Every stanza is built through its interfaces and checked against an XML literal
taken from the document's examples; ``SlixTest.check`` also parses the literal
and rebuilds it, so both directions are covered.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from slixmpp import Message
from slixmpp.test import SlixTest

from component.delivery.pipeline import strip_ours
from component.xep.route import stanza
from component.xep.route.stanza import NS, NS_CLIENT, NS_DELAY, NS_FORWARD, Ack, Fallback, Handoff, Release

HID = "b7c3e2a0-5d4f-4e1a-9c8b-2f6d1e0a7c35"
MSG_ID = "8d2f6a51-3c7e-4f09-b1a4-5e6c0d9b2f73"
STAMP = "2026-11-23T10:00:00.123Z"

INNER = f"""
<message xmlns='jabber:client'
         from='juliet@shakespeare.lit/balcony'
         to='romeo@shakespeare.lit'
         type='chat'
         id='{MSG_ID}'>
  <body>Wherefore art thou Romeo?</body>
  <origin-id xmlns='urn:xmpp:sid:0' id='{MSG_ID}'/>
  <active xmlns='http://jabber.org/protocol/chatstates'/>
  <request xmlns='urn:xmpp:receipts'/>
</message>
"""

HANDOFF = f"""
<message from='shakespeare.lit'
         to='courier.shakespeare.lit'
         id='{HID}'>
  <handoff xmlns='https://courier.chat/ns/route/0'
           id='{HID}'
           recipient='online'>
    <forwarded xmlns='urn:xmpp:forward:0'>
      <delay xmlns='urn:xmpp:delay' stamp='{STAMP}'/>
      {INNER}
    </forwarded>
  </handoff>
</message>
"""


def _inner() -> ET.Element:
    return ET.fromstring(INNER)


class TestRouteStanzas(SlixTest):
    def setUp(self) -> None:
        stanza.register()

    # -- handoff -----------------------------------------------------------

    def test_handoff_built_matches_the_spec_example(self) -> None:
        msg = Message()
        msg["from"] = "shakespeare.lit"
        msg["to"] = "courier.shakespeare.lit"
        msg["id"] = HID
        h = msg["route_handoff"]
        h["id"] = HID
        h["recipient"] = "online"
        h.set_inner(_inner())
        h["stamp"] = STAMP  # after the message: the delay must still come first
        # use_values=False: the forwarded message is not an interface, so a
        # stanza rebuilt from .values alone cannot carry it.
        self.check(msg, HANDOFF, use_values=False)
        # check() ignores child order; XEP-0297 puts the delay before the message
        forwarded = h.xml.find(f"{{{NS_FORWARD}}}forwarded")
        assert [c.tag for c in forwarded] == [f"{{{NS_DELAY}}}delay", f"{{{NS_CLIENT}}}message"]

    def test_handoff_parsed_from_xml(self) -> None:
        msg = Message(xml=ET.fromstring(HANDOFF.replace("<message from=", "<message xmlns='jabber:client' from=", 1)))
        h = msg["route_handoff"]
        assert isinstance(h, Handoff)
        assert h["id"] == HID
        assert h["recipient"] == "online"
        assert h["stamp"] == STAMP
        inner = h.get_inner()
        assert inner is not None
        assert inner.tag == f"{{{NS_CLIENT}}}message"
        assert inner.get("from") == "juliet@shakespeare.lit/balcony"
        assert inner.get("id") == MSG_ID
        assert inner.findtext(f"{{{NS_CLIENT}}}body") == "Wherefore art thou Romeo?"

    def test_handoff_set_inner_replaces_and_keeps_one_forwarded(self) -> None:
        h = Handoff()
        h.set_inner(_inner())
        other = _inner()
        other.set("id", "0c9a3e5f-1b7d-4f26-8e4a-d6b2c8f0e193")
        h.set_inner(other)
        assert len(h.xml.findall(f"{{{NS_FORWARD}}}forwarded")) == 1
        inner = h.get_inner()
        assert inner is not None and inner.get("id") == "0c9a3e5f-1b7d-4f26-8e4a-d6b2c8f0e193"

    def test_handoff_stamp_set_twice_keeps_one_delay(self) -> None:
        h = Handoff()
        h["stamp"] = "2026-11-23T10:05:30.017Z"
        h["stamp"] = STAMP
        assert len(h.xml.findall(f"{{{NS_FORWARD}}}forwarded/{{{NS_DELAY}}}delay")) == 1
        assert h["stamp"] == STAMP
        del h["stamp"]
        assert h["stamp"] == ""

    def test_handoff_without_forwarded_message_has_no_inner(self) -> None:
        h = Handoff()
        h["id"] = HID
        h["recipient"] = "online"
        assert h.get_inner() is None
        # a forwarded element with only a delay is still no message
        h["stamp"] = STAMP
        assert h.get_inner() is None
        # nor is a forwarded message in another namespace than jabber:client
        forwarded = h.xml.find(f"{{{NS_FORWARD}}}forwarded")
        ET.SubElement(forwarded, "{jabber:server}message", {"from": "juliet@shakespeare.lit/balcony"})
        assert h.get_inner() is None
        h.del_inner()
        assert h.xml.find(f"{{{NS_FORWARD}}}forwarded") is None

    # -- ack -----------------------------------------------------------------

    def test_ack_with_several_items(self) -> None:
        hids = [HID, "1e9f4d62-3a7b-4c58-8e0d-6b2a9f5c4e17", "3f8a2c6d-4e1b-4a97-b5d0-c2e9f7a13b84"]
        msg = Message()
        msg["from"] = "courier.shakespeare.lit"
        msg["to"] = "shakespeare.lit"
        msg["route_ack"]["ids"] = hids
        self.check(
            msg,
            f"""
<message from='courier.shakespeare.lit' to='shakespeare.lit'>
  <ack xmlns='https://courier.chat/ns/route/0'>
    <item id='{hids[0]}'/>
    <item id='{hids[1]}'/>
    <item id='{hids[2]}'/>
  </ack>
</message>
""",
            use_values=False,
        )
        assert msg["route_ack"]["ids"] == hids

    def test_ack_ids_parsed_in_order_and_replaced(self) -> None:
        xml = ET.fromstring(
            f"<message xmlns='jabber:client'><ack xmlns='{NS}'>"
            "<item id='b'/><item id='a'/><item id='c'/></ack></message>"
        )
        ack = Message(xml=xml)["route_ack"]
        assert isinstance(ack, Ack)
        assert ack["ids"] == ["b", "a", "c"]
        ack["ids"] = ["z"]
        assert ack["ids"] == ["z"]
        assert [i.get("id") for i in ack.xml.findall(f"{{{NS}}}item")] == ["z"]
        del ack["ids"]
        assert ack["ids"] == []
        assert ack.xml.findall(f"{{{NS}}}item") == []

    def test_ack_item_releasing_by_reference(self) -> None:
        xml = ET.fromstring(
            f"<message xmlns='jabber:client'><ack xmlns='{NS}'>"
            f"<item id='a'/><item id='b' release='true'/></ack></message>"
        )
        ack = Message(xml=xml)["route_ack"]
        assert ack["ids"] == ["a", "b"]
        assert [item["release"] for item in ack["substanzas"]] == ["", "true"]

    def test_handoff_says_the_server_kept_its_copy(self) -> None:
        xml = ET.fromstring(HANDOFF.replace("recipient='online'", "recipient='online' copy='kept'"))
        assert Message(xml=xml)["route_handoff"]["copy"] == "kept"
        assert Message(xml=ET.fromstring(HANDOFF))["route_handoff"]["copy"] == ""

    # -- fallback --------------------------------------------------------------

    def test_fallback_matches_the_spec_example(self) -> None:
        msg = Message()
        msg["from"] = "shakespeare.lit"
        msg["to"] = "courier.shakespeare.lit"
        msg["route_fallback"]["ids"] = ["9c5e1f37-8a2d-4b6c-a0e4-d7f2b3c61a58"]
        self.check(
            msg,
            """
<message from='shakespeare.lit' to='courier.shakespeare.lit'>
  <fallback xmlns='https://courier.chat/ns/route/0'>
    <item id='9c5e1f37-8a2d-4b6c-a0e4-d7f2b3c61a58'/>
  </fallback>
</message>
""",
            use_values=False,
        )

    def test_fallback_parsed_with_several_items(self) -> None:
        xml = ET.fromstring(
            "<message xmlns='jabber:client' from='shakespeare.lit' to='courier.shakespeare.lit'>"
            f"<fallback xmlns='{NS}'><item id='9c5e1f37-8a2d-4b6c-a0e4-d7f2b3c61a58'/>"
            f"<item id='{HID}'/></fallback></message>"
        )
        msg = Message(xml=xml)
        fb = msg["route_fallback"]
        assert isinstance(fb, Fallback)
        assert fb["ids"] == ["9c5e1f37-8a2d-4b6c-a0e4-d7f2b3c61a58", HID]
        # a fallback is not an ack
        assert ET.fromstring(str(msg)).find(f"{{{NS}}}ack") is None

    # -- release ---------------------------------------------------------------

    def test_release(self) -> None:
        msg = Message()
        msg["from"] = "juliet@shakespeare.lit"
        msg["to"] = "romeo@shakespeare.lit"
        msg["type"] = "chat"
        msg["id"] = MSG_ID
        msg["body"] = "Wherefore art thou Romeo?"
        msg["route_release"]["id"] = HID
        self.check(
            msg,
            f"""
<message from='juliet@shakespeare.lit' to='romeo@shakespeare.lit' type='chat' id='{MSG_ID}'>
  <body>Wherefore art thou Romeo?</body>
  <release xmlns='https://courier.chat/ns/route/0' id='{HID}'/>
</message>
""",
        )

    def test_release_parsed(self) -> None:
        xml = ET.fromstring(f"<message xmlns='jabber:client'><release xmlns='{NS}' id='{HID}'/></message>")
        rel = Message(xml=xml)["route_release"]
        assert isinstance(rel, Release)
        assert rel["id"] == HID


# -- strip_ours -----------------------------------------------------------------


def test_strip_ours_removes_only_our_namespaces() -> None:
    inner = ET.fromstring(
        f"""
<message xmlns='jabber:client' from='juliet@shakespeare.lit/balcony' to='romeo@shakespeare.lit'
         type='chat' id='{MSG_ID}'>
  <body>Wherefore art thou Romeo?</body>
  <release xmlns='https://courier.chat/ns/route/0' id='{HID}'/>
  <origin-id xmlns='urn:xmpp:sid:0' id='{MSG_ID}'/>
  <schedule xmlns='https://courier.chat/ns/schedule/0' at='2026-11-24T08:00:00Z'/>
  <release xmlns='https://courier.chat/ns/route/0' id='second-forgery'/>
  <request xmlns='urn:xmpp:receipts'/>
  <x xmlns='https://courier.chat.example/ns/other'/>
</message>
"""
    )
    strip_ours(inner)
    assert [c.tag for c in inner] == [
        f"{{{NS_CLIENT}}}body",
        "{urn:xmpp:sid:0}origin-id",
        "{urn:xmpp:receipts}request",
        "{https://courier.chat.example/ns/other}x",
    ]
    assert inner.findtext(f"{{{NS_CLIENT}}}body") == "Wherefore art thou Romeo?"
    assert inner.get("from") == "juliet@shakespeare.lit/balcony"


def test_strip_ours_leaves_clean_message_alone() -> None:
    inner = _inner()
    before = ET.tostring(inner)
    strip_ours(inner)
    assert ET.tostring(inner) == before

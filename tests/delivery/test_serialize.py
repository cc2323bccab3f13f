"""The stored form of a stanza (component/delivery/stanzas.py, ``serialize``): exactly what
``ET.tostring(element, encoding="unicode")`` stored before, for every shape a hand-off brings."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from component.delivery.stanzas import chat, serialize

HANDOFF = (
    "<message xmlns='jabber:client' from='s1@localhost/bench' to='r1@localhost' type='chat' id='a-1'>"
    "<body>Hello</body><origin-id xmlns='urn:xmpp:sid:0' id='a-1'/></message>"
)
ESCAPED = (
    "<message xmlns='jabber:client' to='r@x' id='q&quot;&apos;&lt;&gt;&amp;&#10;&#13;&#9;'>"
    "<body>a &amp; b &lt;c&gt; \"d\" 'e' &#13; tab\there\nnew line — ünïcödé 🙂</body>"
    "<thread parent='p&amp;'>t&gt;</thread></message>"
)
NESTED = (  # namespaces reused at depth, attributes in a namespace, xml:lang, XHTML-IM (ET's "html")
    "<message xmlns='jabber:client' xml:lang='en' to='r@x'><body xml:lang='de'>Hallo</body>"
    "<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>"
    "<p style='font-weight:bold'>Hi <em>there</em> you</p><br/></body></html>"
    "<x xmlns='urn:a' xmlns:b='urn:b' b:attr='1'><b:y b:z='2'/><inner xmlns='jabber:client'/></x>"
    "<request xmlns='urn:xmpp:receipts'/><markable xmlns='urn:xmpp:chat-markers:0'/></message>"
)
MANY = (  # more than ten namespaces: ET sorts the declarations by prefix as strings (ns10 before ns2)
    "<message xmlns='jabber:client'>"
    + "".join(f"<e{i} xmlns='urn:n{i}'>{i}</e{i}>" for i in range(14))
    + "</message>"
)
OMEMO = (  # an encrypted message as Conversations sends it: whitespace between the elements
    "<message xmlns='jabber:client' to='romeo@montague.lit' id='m1' type='chat'>\n"
    "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='27183'><key rid='31415'>a2V5</key>\n"
    "<iv>aXY=</iv></header><payload>T0xE</payload></encrypted>\n"
    "<encryption xmlns='urn:xmpp:eme:0' name='OMEMO' namespace='eu.siacs.conversations.axolotl'/>\n"
    "<body>I sent you an OMEMO encrypted message but your client doesn't seem to support that.</body>\n"
    "<store xmlns='urn:xmpp:hints'/></message>"
)
TAILS = "<message xmlns='jabber:client'>\n  <body>x</body>\n  <empty/>tail &amp; more\n</message>"


@pytest.mark.parametrize("xml", [HANDOFF, ESCAPED, NESTED, MANY, TAILS, OMEMO])
def test_the_stored_form_is_what_elementtree_wrote(xml: str) -> None:
    element = ET.fromstring(xml)
    assert serialize(element) == ET.tostring(element, encoding="unicode")


def test_the_forwarded_message_of_a_hand_off_and_its_tail() -> None:
    handoff = ET.fromstring(
        "<handoff xmlns='https://courier.chat/ns/route/0' id='h1'><forwarded xmlns='urn:xmpp:forward:0'>"
        f"<delay xmlns='urn:xmpp:delay' stamp='2026-12-02T00:00:00Z'/>{HANDOFF} </forwarded></handoff>"
    )
    inner = handoff.find("{urn:xmpp:forward:0}forwarded/{jabber:client}message")
    assert inner is not None and inner.tail == " "
    assert serialize(inner) == ET.tostring(inner, encoding="unicode")


def test_elements_built_in_code() -> None:
    composed = chat("a@x", "b@x", "text & more", "m1", "o1", [ET.Element("{urn:xmpp:hints}store")])
    assert serialize(composed) == ET.tostring(composed, encoding="unicode")
    plain = ET.Element("message", {"to": "b@x"})  # no namespace at all
    ET.SubElement(plain, "body").text = "hi"
    ET.SubElement(plain, "{urn:q}q", {"{urn:q}a": "1", "b": ""})
    assert serialize(plain) == ET.tostring(plain, encoding="unicode")


def test_what_it_does_not_write_itself_goes_to_elementtree() -> None:
    element = ET.fromstring(HANDOFF)
    element.append(ET.Comment("a comment"))
    element.set("{urn:q}qualified", ET.QName("urn:q", "value"))  # type: ignore[arg-type]
    assert serialize(element) == ET.tostring(element, encoding="unicode")
    broken = ET.fromstring(HANDOFF)
    broken.set("n", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ET.tostring(broken, encoding="unicode")
    with pytest.raises(TypeError):
        serialize(broken)


def test_every_stanza_of_our_specifications() -> None:
    """The examples of xeps/*.xml: every shape of message, IQ and payload we specify."""
    compared = 0
    for path in sorted((Path(__file__).parents[2] / "xeps").glob("*.xml")):
        for example in ET.parse(path).iter("example"):
            try:
                wrapper = ET.fromstring(f"<stream xmlns='jabber:client'>{example.text or ''}</stream>")
            except ET.ParseError:
                continue  # an example with a placeholder (`…`) or an XML declaration
            for stanza in wrapper:
                where = f"{path.name}: {example.get('caption')}"
                assert serialize(stanza) == ET.tostring(stanza, encoding="unicode"), where
                compared += 1
    assert compared > 100

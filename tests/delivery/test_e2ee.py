"""The pure reading of end-to-end encrypted stanzas (component/xep/e2ee.py): no network."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from component.xep import e2ee

CONVERSATIONS = """<message xmlns='jabber:client' to='romeo@montague.lit' id='m1' type='chat'>
<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='27183'><key rid='31415'>a2V5</key>
<iv>aXY=</iv></header><payload>T0xE</payload></encrypted>
<request xmlns='urn:xmpp:receipts'/><markable xmlns='urn:xmpp:chat-markers:0'/>
<origin-id xmlns='urn:xmpp:sid:0' id='m1'/>
<encryption xmlns='urn:xmpp:eme:0' name='OMEMO' namespace='eu.siacs.conversations.axolotl'/>
<body>I sent you an OMEMO encrypted message but your client doesn't seem to support that.</body>
<store xmlns='urn:xmpp:hints'/></message>"""

CORRECTION = """<message xmlns='jabber:client' to='romeo@montague.lit' id='m1-fix' type='chat'>
<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='27183'><key rid='31415'>bmV3</key>
<iv>aXYy</iv></header><payload>TkVX</payload></encrypted>
<replace xmlns='urn:xmpp:message-correct:0' id='m1'/><origin-id xmlns='urn:xmpp:sid:0' id='m1-fix'/>
<encryption xmlns='urn:xmpp:eme:0' name='OMEMO' namespace='eu.siacs.conversations.axolotl'/>
<body>I sent you an OMEMO encrypted message but your client doesn't seem to support that.</body></message>"""


def tags(element: ET.Element) -> list[str]:
    return [c.tag.rpartition("}")[2] for c in element]


def test_known_schemes_and_eme_named_unknown_ones_are_encrypted() -> None:
    assert e2ee.scheme(ET.fromstring(CONVERSATIONS)) == "OMEMO"
    openpgp = ET.fromstring(
        "<message xmlns='jabber:client'><openpgp xmlns='urn:xmpp:openpgp:0'>b64</openpgp></message>"
    )
    assert e2ee.is_encrypted(openpgp) and e2ee.scheme(openpgp) == "OpenPGP"
    future = ET.fromstring(
        "<message xmlns='jabber:client'><sealed xmlns='urn:example:mls:0'>b64</sealed>"
        "<encryption xmlns='urn:xmpp:eme:0' namespace='urn:example:mls:0'/><body>fallback</body></message>"
    )
    assert e2ee.is_encrypted(future) and e2ee.scheme(future) == "urn:example:mls:0"
    assert [c.tag.rpartition("}")[2] for c in e2ee.payload(future)] == ["sealed", "encryption", "body"]
    plain = ET.fromstring("<message xmlns='jabber:client'><body>Hello</body></message>")
    assert not e2ee.is_encrypted(plain) and e2ee.scheme(plain) is None


def test_swap_payload_takes_the_whole_encrypted_part_and_keeps_the_rest() -> None:
    original = ET.fromstring(CONVERSATIONS)
    e2ee.swap_payload(original, ET.fromstring(CORRECTION))
    assert original.get("id") == "m1"
    assert [p.text for p in original.iter("{eu.siacs.conversations.axolotl}payload")] == ["TkVX"]
    assert original.find("{urn:xmpp:message-correct:0}replace") is None  # the correction's own reference
    assert [o.get("id") for o in original.iter("{urn:xmpp:sid:0}origin-id")] == ["m1"]
    assert tags(original) == ["encrypted", "encryption", "body", "request", "markable", "origin-id", "store"]


def test_a_plaintext_correction_of_an_encrypted_message_leaves_no_ciphertext() -> None:
    original = ET.fromstring(CONVERSATIONS)
    e2ee.swap_payload(original, ET.fromstring("<message xmlns='jabber:client'><body>Meet at ten</body></message>"))
    assert not e2ee.is_encrypted(original)
    assert original.findtext("{jabber:client}body") == "Meet at ten"
    assert tags(original) == ["body", "request", "markable", "origin-id", "store"]

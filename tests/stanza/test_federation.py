"""Round trips of the courier-federation stanzas (xeps/courier-federation.xml), slixmpp style,
and the rule of who may speak for a user's server."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from slixmpp import Iq, Message
from slixmpp.test import SlixTest

from component.delivery.pipeline import strip_ours
from component.namespaces import TRACKED_TAG
from component.xep.federation import speaks_for, stanza

TOKEN = "b7c3e2a0-5d4f-4e1a-9c8b-2f6d1e0a7c35"
MSG_ID = "8d2f6a51-3c7e-4f09-b1a4-5e6c0d9b2f73"


class TestFederationStanzas(SlixTest):
    def setUp(self) -> None:
        stanza.register()

    def test_tracked(self) -> None:
        msg = Message()
        msg["fed_tracked"]["by"], msg["fed_tracked"]["id"] = "courier.capulet.lit", TOKEN
        self.check(
            msg,
            f"<message><tracked xmlns='https://courier.chat/ns/federation/0' by='courier.capulet.lit' id='{TOKEN}'/>"
            "</message>",
        )

    def test_hop(self) -> None:
        msg = Message()
        hop = msg["fed_hop"]
        hop["id"], hop["state"], hop["at"], hop["body"] = TOKEN, "cached", "2026-12-02T10:00:00.412Z", "offline"
        self.check(
            msg,
            f"<message><hop xmlns='https://courier.chat/ns/federation/0' id='{TOKEN}' state='cached' "
            "at='2026-12-02T10:00:00.412Z'>offline</hop></message>",
        )

    def test_hop_with_its_report_id(self) -> None:
        msg = Message()
        hop = msg["fed_hop"]
        hop["id"], hop["state"], hop["at"], hop["report"] = TOKEN, "released", "2026-12-02T10:00:00.412Z", "r-1"
        self.check(
            msg,
            f"<message><hop xmlns='https://courier.chat/ns/federation/0' id='{TOKEN}' state='released' "
            "at='2026-12-02T10:00:00.412Z' report='r-1'/></message>",
        )

    def test_acked(self) -> None:
        msg = Message()
        msg["fed_acked"]["ids"] = ["r-1", "r-2"]
        self.check(
            msg,
            "<message><acked xmlns='https://courier.chat/ns/federation/0'><item id='r-1'/><item id='r-2'/></acked>"
            "</message>",
        )
        assert msg["fed_acked"]["ids"] == ["r-1", "r-2"]

    def test_edit(self) -> None:
        iq = Iq()
        edit = iq["fed_edit"]
        edit["id"], edit["sender"], edit["to"], edit["message"] = (
            TOKEN,
            "juliet@capulet.lit",
            "romeo@montague.lit",
            MSG_ID,
        )
        edit["body"] = "Wherefore art thou, Romeo?"
        self.check(
            iq,
            f"<iq><edit xmlns='https://courier.chat/ns/federation/0' id='{TOKEN}' sender='juliet@capulet.lit' "
            f"to='romeo@montague.lit' message='{MSG_ID}'>Wherefore art thou, Romeo?</edit></iq>",
        )


def test_only_a_domain_jid_under_the_users_domain_speaks_for_it() -> None:
    assert speaks_for("courier.a.example", "alice@a.example")
    assert not speaks_for("courier.c.example", "alice@a.example")  # a third server
    assert not speaks_for("bob@courier.a.example", "alice@a.example")  # a user, not a server
    assert not speaks_for("courier.a.example/x", "alice@a.example")
    assert not speaks_for("a.example", "alice@a.example")
    assert not speaks_for("courier.xa.example", "alice@a.example")  # not a subdomain


def test_strip_ours_keeps_the_tracked_element_only_when_asked() -> None:
    inner = ET.fromstring(
        "<message xmlns='jabber:client' from='juliet@capulet.lit' to='romeo@montague.lit'><body>hi</body>"
        f"<tracked xmlns='https://courier.chat/ns/federation/0' by='courier.capulet.lit' id='{TOKEN}'/>"
        "<request xmlns='https://courier.chat/ns/hops/0'/></message>"
    )
    kept = ET.fromstring(ET.tostring(inner))
    strip_ours(kept, TRACKED_TAG)
    assert [c.tag for c in kept] == ["{jabber:client}body", TRACKED_TAG]
    strip_ours(inner)
    assert [c.tag for c in inner] == ["{jabber:client}body"]

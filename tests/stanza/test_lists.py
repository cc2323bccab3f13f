"""Round trips of the courier-lists stanzas (xeps/courier-lists.xml), slixmpp style.

Every stanza is built through its interfaces and checked against an XML literal
in the form of the document's examples; ``SlixTest.check`` also parses the
literal and rebuilds it, so both directions are covered.  The list-JID rules
(:mod:`component.lists.names`) are pure and tested here too.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from slixmpp import JID, Iq, Message
from slixmpp.test import SlixTest

from component.lists import names
from component.lists.xmpp import ForLists
from component.xep.lists import stanza
from component.xep.lists.lists import parse_stamp, stamp
from component.xep.lists.stanza import COUNTS, Copy, Fanout, ListItem

NS = "https://courier.chat/ns/lists/0"
JULIET = "juliet@shakespeare.lit"
COURIER = "courier.shakespeare.lit"
AT = "2026-11-23T10:00:00.123Z"


class TestListsStanzas(SlixTest):
    def setUp(self) -> None:
        stanza.register()

    def _iq(self, itype: str = "set") -> Iq:
        iq = Iq()
        iq["from"], iq["to"], iq["type"], iq["id"] = f"{JULIET}/balcony", COURIER, itype, "l1"
        return iq

    def test_create_with_members(self) -> None:
        iq = self._iq()
        create = iq["lists_create"]
        create["name"] = "Capulets"
        create["temporary"] = True
        create.add_jids(["romeo@montague.lit", "nurse@shakespeare.lit"])
        self.check(
            iq,
            f"""
<iq from='{JULIET}/balcony' to='{COURIER}' type='set' id='l1'>
  <create xmlns='{NS}' name='Capulets' temporary='true'>
    <member jid='romeo@montague.lit'/>
    <member jid='nurse@shakespeare.lit'/>
  </create>
</iq>""",
        )
        assert create.jids() == ["romeo@montague.lit", "nurse@shakespeare.lit"]
        assert create["temporary"] is True
        create["temporary"] = False
        assert "temporary" not in create.xml.attrib

    def test_create_with_an_explicit_end(self) -> None:
        iq = self._iq()
        iq["lists_create"]["name"] = "Ball"
        iq["lists_create"]["expires"] = AT
        self.check(
            iq,
            f"""
<iq from='{JULIET}/balcony' to='{COURIER}' type='set' id='l1'>
  <create xmlns='{NS}' name='Ball' expires='{AT}'/>
</iq>""",
        )

    def test_list_result_with_members(self) -> None:
        iq = self._iq("result")
        item = iq["lists_list"]
        item["name"], item["jid"], item["count"], item["created"] = (
            "Book club",
            f"book\\20club+juliet@{COURIER}",
            "2",
            AT,
        )
        item.add_jids(["romeo@montague.lit", "benvolio@montague.lit"])
        self.check(
            iq,
            f"""
<iq from='{JULIET}/balcony' to='{COURIER}' type='result' id='l1'>
  <list xmlns='{NS}' name='Book club' jid='book\\20club+juliet@{COURIER}' count='2' created='{AT}'>
    <member jid='romeo@montague.lit'/>
    <member jid='benvolio@montague.lit'/>
  </list>
</iq>""",
        )
        parsed = Iq(xml=iq.xml)
        assert parsed["lists_list"].jids() == ["romeo@montague.lit", "benvolio@montague.lit"]

    def test_lists_result(self) -> None:
        iq = self._iq("result")
        lists = iq["lists_lists"]
        for name, count in (("Capulets", "3"), ("Montagues", "5")):
            item = ListItem()
            item["name"], item["jid"], item["count"], item["created"] = (
                name,
                f"{name.lower()}+juliet@{COURIER}",
                count,
                AT,
            )
            lists.append(item)
        lists["items"][1]["expires"] = "2026-11-24T00:00:00.000Z"
        self.check(
            iq,
            f"""
<iq from='{JULIET}/balcony' to='{COURIER}' type='result' id='l1'>
  <lists xmlns='{NS}'>
    <list name='Capulets' jid='capulets+juliet@{COURIER}' count='3' created='{AT}'/>
    <list name='Montagues' jid='montagues+juliet@{COURIER}' count='5' created='{AT}'
          expires='2026-11-24T00:00:00.000Z'/>
  </lists>
</iq>""",
        )
        assert [i["name"] for i in Iq(xml=iq.xml)["lists_lists"]["items"]] == ["Capulets", "Montagues"]

    def test_rename_add_remove_delete(self) -> None:
        iq = self._iq()
        iq["lists_rename"]["name"], iq["lists_rename"]["new_name"] = "Capulets", "House Capulet"
        self.check(
            iq,
            f"""<iq from='{JULIET}/balcony' to='{COURIER}' type='set' id='l1'>
  <rename xmlns='{NS}' name='Capulets' new-name='House Capulet'/></iq>""",
        )
        for plugin, tag in (("lists_add", "add"), ("lists_remove", "remove")):
            iq = self._iq()
            iq[plugin]["name"] = "Capulets"
            iq[plugin].add_jids(["tybalt@shakespeare.lit"])
            self.check(
                iq,
                f"""<iq from='{JULIET}/balcony' to='{COURIER}' type='set' id='l1'>
  <{tag} xmlns='{NS}' name='Capulets'><member jid='tybalt@shakespeare.lit'/></{tag}></iq>""",
            )
        iq = self._iq()
        iq["lists_delete"]["name"] = "Capulets"
        self.check(
            iq,
            f"""<iq from='{JULIET}/balcony' to='{COURIER}' type='set' id='l1'>
  <delete xmlns='{NS}' name='Capulets'/></iq>""",
        )

    def test_send_to_one_member(self) -> None:
        iq = self._iq()
        send = iq["lists_send"]
        send["name"], send["only"], send["body"] = "Capulets", "nurse@shakespeare.lit", "Go, ask his name."
        self.check(
            iq,
            f"""<iq from='{JULIET}/balcony' to='{COURIER}' type='set' id='l1'>
  <send xmlns='{NS}' name='Capulets' only='nurse@shakespeare.lit'>Go, ask his name.</send></iq>""",
        )

    def test_fanout_status_with_copies(self) -> None:
        iq = self._iq("result")
        fanout = iq["lists_fanout"]
        fanout["id"], fanout["list"], fanout["at"], fanout["total"] = "3f2a9c1e", "Capulets", AT, "3"
        for state in COUNTS:
            fanout[state] = "0"
        fanout["released"], fanout["held"], fanout["read"] = "1", "1", "1"
        for to, cid, state in (
            ("romeo@montague.lit", "c0a1", "released"),
            ("nurse@shakespeare.lit", "c0a2", "cached"),
            ("tybalt@shakespeare.lit", "c0a3", "read"),
        ):
            c = Copy()
            c["to"], c["id"], c["state"] = to, cid, state
            fanout.append(c)
        self.check(
            iq,
            f"""
<iq from='{JULIET}/balcony' to='{COURIER}' type='result' id='l1'>
  <fanout xmlns='{NS}' id='3f2a9c1e' list='Capulets' at='{AT}' total='3' held='1' released='1'
          sms='0' sms-delivered='0' received='0' read='1' recalled='0' retracted='0' failed='0'>
    <copy to='romeo@montague.lit' id='c0a1' state='released'/>
    <copy to='nurse@shakespeare.lit' id='c0a2' state='cached'/>
    <copy to='tybalt@shakespeare.lit' id='c0a3' state='read'/>
  </fanout>
</iq>""",
        )
        parsed = Iq(xml=iq.xml)["lists_fanout"]
        assert parsed.counts() == {"held": 1, "released": 1, "sms": 0, "sms-delivered": 0, "received": 0,
                                   "read": 1, "recalled": 0, "retracted": 0, "failed": 0}  # fmt: skip
        assert [c["state"] for c in parsed["copies"]] == ["released", "cached", "read"]

    def test_fanouts_and_recall(self) -> None:
        iq = self._iq("result")
        element = Fanout()
        element["id"], element["at"], element["total"], element["recalled"] = "3f2a9c1e", AT, "2", "2"
        iq["lists_fanouts"].append(element)
        self.check(
            iq,
            f"""<iq from='{JULIET}/balcony' to='{COURIER}' type='result' id='l1'>
  <fanouts xmlns='{NS}'><fanout id='3f2a9c1e' at='{AT}' total='2' recalled='2'/></fanouts></iq>""",
        )
        iq = self._iq()
        iq["lists_recall"]["id"] = "3f2a9c1e"
        self.check(
            iq,
            f"""<iq from='{JULIET}/balcony' to='{COURIER}' type='set' id='l1'>
  <recall xmlns='{NS}' id='3f2a9c1e'/></iq>""",
        )

    def test_notice_message_carries_the_aggregate(self) -> None:
        msg = Message()
        msg["from"], msg["to"], msg["type"] = f"capulets+juliet@{COURIER}", f"{JULIET}/balcony", "chat"
        msg["body"] = "Sent: 3 members: 2 released, 1 held."
        fanout = msg["lists_fanout"]
        fanout["id"], fanout["list"], fanout["at"], fanout["total"] = "3f2a9c1e", "Capulets", AT, "3"
        fanout["released"], fanout["held"] = "2", "1"
        self.check(
            msg,
            f"""
<message from='capulets+juliet@{COURIER}' to='{JULIET}/balcony' type='chat'>
  <body>Sent: 3 members: 2 released, 1 held.</body>
  <fanout xmlns='{NS}' id='3f2a9c1e' list='Capulets' at='{AT}' total='3' released='2' held='1'/>
</message>""",
        )


# -- list names and JIDs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Capulets", "capulets"),
        ("Book club", "book\\20club"),
        ("  Book club  ", "book\\20club"),
        ("Romeo & Juliet", "romeo\\20\\26\\20juliet"),
        ("a/b:c@d", "a\\2fb\\3ac\\40d"),
        ("Café", "café"),
    ],
)
def test_list_names_become_escaped_case_folded_keys(name: str, key: str) -> None:
    assert names.key_for(name) == key
    jid = names.list_jid(JULIET, key, COURIER)
    assert jid == f"{key}+juliet@{COURIER}"
    assert names.parse_list_jid(JID(jid), COURIER, "shakespeare.lit") == (JULIET, key)
    assert names.display_name(key) == name.strip().lower()


@pytest.mark.parametrize("bad", ["", "   ", "a+b", "x" * 65, "tab\there", "0049 friends"])
def test_bad_list_names(bad: str) -> None:
    with pytest.raises(names.BadName):
        names.key_for(bad)


def test_owner_localparts_may_contain_the_separator() -> None:
    jid = names.list_jid("romeo+work@shakespeare.lit", "capulets", COURIER)
    assert jid == f"capulets+romeo+work@{COURIER}"
    assert names.parse_list_jid(JID(jid), COURIER, "shakespeare.lit") == ("romeo+work@shakespeare.lit", "capulets")


@pytest.mark.parametrize(
    "jid",
    [
        COURIER,
        f"+15551234567@{COURIER}",
        f"0049301234+5@{COURIER}",
        f"capulets@{COURIER}",
        f"capulets+@{COURIER}",
        "a+b@shakespeare.lit",
    ],
)
def test_not_list_jids(jid: str) -> None:
    assert names.parse_list_jid(JID(jid), COURIER, "shakespeare.lit") is None


def test_temporary_lists_end_at_midnight_utc() -> None:
    now = datetime(2026, 11, 23, 22, 59, tzinfo=UTC).timestamp()
    assert names.end_of_day(now) == datetime(2026, 11, 24, tzinfo=UTC).timestamp()
    assert (
        names.end_of_day(datetime(2026, 11, 24, tzinfo=UTC).timestamp())
        == datetime(2026, 11, 25, tzinfo=UTC).timestamp()
    )


def test_stamps_round_trip() -> None:
    assert stamp(parse_stamp(AT)) == AT
    assert parse_stamp("2026-11-23T10:00:00") == parse_stamp("2026-11-23T10:00:00Z")


def test_the_matcher_takes_list_jids_and_multicast_only() -> None:
    matcher = ForLists(COURIER)

    def msg(to: str, addresses: bool = False) -> Message:
        m = Message()
        m["to"] = to
        if addresses:
            m.xml.append(Message(xml=None).xml.makeelement("{http://jabber.org/protocol/address}addresses", {}))
        return m

    assert matcher.match(msg(f"capulets+juliet@{COURIER}"))
    assert matcher.match(msg(f"capulets+juliet@{COURIER}/x"))
    assert matcher.match(msg(COURIER, addresses=True))
    assert not matcher.match(msg(COURIER))
    assert not matcher.match(msg(JULIET))
    assert not matcher.match(msg(f"x@sub.{COURIER}"))
    assert not matcher.match(msg(f"+15551234567@{COURIER}"))  # phone numbers are the SMS service's
    assert not matcher.match(msg(f"0049301234+5@{COURIER}"))
    assert not matcher.match(msg(f"plain@{COURIER}"))
    iq = Iq()
    iq["to"] = f"capulets+juliet@{COURIER}"
    assert not matcher.match(iq)

"""Round trips of the courier-drafts stanzas (xeps/courier-drafts.xml), slixmpp style.

Every stanza is built through its interfaces and checked against an XML literal
like the document's examples; ``SlixTest.check`` also parses the literal and
rebuilds it, so both directions are covered.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from slixmpp import Iq, Message
from slixmpp.test import SlixTest

from component.drafts import draft_info, trigger_of
from component.store.drafts import DraftRow
from component.xep.drafts import NS, Draft, DraftInfo, Target, TriggerInfo, fill_drafts, stanza

JULIET = "juliet@shakespeare.lit"
ROMEO = "romeo@shakespeare.lit"
NURSE = "nurse@shakespeare.lit"
COURIER = "courier.shakespeare.lit"

STORE = f"""
<iq type='set' id='store-1' from='{JULIET}/balcony' to='{COURIER}'>
  <store xmlns='{NS}' to='{ROMEO}' action='send'>
    <body>Meet me at the friar's cell</body>
    <trigger type='at' time='2026-11-24T09:00:00+01:00' tz='Europe/Paris'/>
  </store>
</iq>
"""

STORED = f"""
<iq type='result' id='store-1' from='{COURIER}' to='{JULIET}/balcony'>
  <draft xmlns='{NS}' id='3' to='{ROMEO}' action='send' state='pending'
         created='2026-11-23T21:14:05Z' updated='2026-11-23T21:14:05Z'>
    <body>Meet me at the friar's cell</body>
    <trigger type='at' time='2026-11-24T09:00:00+01:00' tz='Europe/Paris'/>
  </draft>
</iq>
"""

UPDATE = f"""
<iq type='set' id='update-1' to='{COURIER}'>
  <update xmlns='{NS}' id='3' action='remind'>
    <trigger type='message-from' jid='{NURSE}'/>
  </update>
</iq>
"""

SYNC = f"""
<iq type='result' id='sync-1' from='{COURIER}' to='{JULIET}/chamber'>
  <drafts xmlns='{NS}'>
    <target jid='{ROMEO}'>
      <draft id='3' to='{ROMEO}' action='send' state='pending'>
        <body>Meet me at the friar's cell</body>
        <trigger type='target-online'/>
      </draft>
      <draft id='5' to='{ROMEO}' action='remind' state='pending'>
        <body>Bring the rope ladder</body>
        <trigger type='manual'/>
      </draft>
    </target>
    <target jid='{NURSE}'>
      <draft id='4' to='{NURSE}' action='send' state='pending'>
        <body>Is he coming?</body>
        <trigger type='message-from' jid='{ROMEO}'/>
      </draft>
    </target>
  </drafts>
</iq>
"""

REMINDER = f"""
<message type='chat' from='{COURIER}' to='{JULIET}'>
  <body>Reminder: draft 5 for romeo@shakespeare.lit</body>
  <reminder xmlns='{NS}' due='2026-11-24T08:00:00Z' late='42'>
    <draft id='5' to='{ROMEO}' action='remind' state='pending'>
      <body>Bring the rope ladder</body>
      <trigger type='manual'/>
    </draft>
  </reminder>
</message>
"""


class TestDraftsStanzas(SlixTest):
    def setUp(self) -> None:
        stanza.register()

    def test_store_built_matches_the_example(self) -> None:
        iq = Iq()
        iq["type"], iq["id"], iq["from"], iq["to"] = "set", "store-1", f"{JULIET}/balcony", COURIER
        iq["drafts_store"].from_info(
            DraftInfo(
                to=ROMEO,
                body="Meet me at the friar's cell",
                action="send",
                trigger=TriggerInfo("at", time="2026-11-24T09:00:00+01:00", tz="Europe/Paris"),
            )
        )
        self.check(iq, STORE, use_values=False)

    def test_store_parsed(self) -> None:
        iq = Iq(xml=ET.fromstring(STORE.replace("<iq ", "<iq xmlns='jabber:client' ", 1)))
        info = iq["drafts_store"].to_info()
        assert info.to == ROMEO and info.body == "Meet me at the friar's cell" and info.action == "send"
        assert info.trigger == TriggerInfo("at", "2026-11-24T09:00:00+01:00", "Europe/Paris", "")
        assert info.id == "" and info.state == ""

    def test_stored_draft_round_trip(self) -> None:
        iq = Iq()
        iq["type"], iq["id"], iq["from"], iq["to"] = "result", "store-1", COURIER, f"{JULIET}/balcony"
        info = DraftInfo(
            to=ROMEO, body="Meet me at the friar's cell", action="send",
            trigger=TriggerInfo("at", time="2026-11-24T09:00:00+01:00", tz="Europe/Paris"),
            id="3", state="pending", created="2026-11-23T21:14:05Z", updated="2026-11-23T21:14:05Z",
        )  # fmt: skip
        iq["drafts_draft"].from_info(info)
        self.check(iq, STORED, use_values=False)
        parsed = Iq(xml=ET.fromstring(STORED.replace("<iq ", "<iq xmlns='jabber:client' ", 1)))
        assert parsed["drafts_draft"].to_info() == info

    def test_update_carries_only_what_changes(self) -> None:
        iq = Iq()
        iq["type"], iq["id"], iq["to"] = "set", "update-1", COURIER
        iq["drafts_update"].from_info(
            DraftInfo(id="3", action="remind", trigger=TriggerInfo("message-from", jid=NURSE))
        )
        self.check(iq, UPDATE, use_values=False)
        info = iq["drafts_update"].to_info()
        assert info.body is None and info.to == "" and info.trigger == TriggerInfo("message-from", jid=NURSE)

    def test_delete_fire_and_fired(self) -> None:
        iq = Iq()
        iq["type"], iq["id"], iq["to"] = "set", "del-1", COURIER
        iq["drafts_delete"]["id"] = "4"
        self.check(iq, f"<iq type='set' id='del-1' to='{COURIER}'><delete xmlns='{NS}' id='4'/></iq>")
        iq = Iq()
        iq["type"], iq["id"], iq["to"] = "set", "fire-1", COURIER
        iq["drafts_fire"]["id"] = "3"
        self.check(iq, f"<iq type='set' id='fire-1' to='{COURIER}'><fire xmlns='{NS}' id='3'/></iq>")
        iq = Iq()
        iq["type"], iq["id"] = "result", "fire-1"
        iq["drafts_fired"]["id"] = "3"
        iq["drafts_fired"]["message_id"] = "9c1f0e52a7d84b36"
        self.check(iq, f"<iq type='result' id='fire-1'><fired xmlns='{NS}' id='3' message-id='9c1f0e52a7d84b36'/></iq>")
        assert iq["drafts_fired"]["message_id"] == "9c1f0e52a7d84b36"

    def test_sync_result_is_the_target_to_drafts_map(self) -> None:
        iq = Iq()
        iq["type"], iq["id"], iq["from"], iq["to"] = "result", "sync-1", COURIER, f"{JULIET}/chamber"
        drafts = [
            DraftInfo(ROMEO, "Meet me at the friar's cell", "send", TriggerInfo("target-online"), "3", "pending"),
            DraftInfo(ROMEO, "Bring the rope ladder", "remind", TriggerInfo("manual"), "5", "pending"),
            DraftInfo(NURSE, "Is he coming?", "send", TriggerInfo("message-from", jid=ROMEO), "4", "pending"),
        ]
        fill_drafts(iq["drafts_list"], drafts)
        self.check(iq, SYNC, use_values=False)
        parsed = Iq(xml=ET.fromstring(SYNC.replace("<iq ", "<iq xmlns='jabber:client' ", 1)))
        by_target = parsed["drafts_list"].by_target()
        assert list(by_target) == [ROMEO, NURSE]
        assert [d.id for d in by_target[ROMEO]] == ["3", "5"]
        assert by_target[NURSE][0].trigger == TriggerInfo("message-from", jid=ROMEO)
        assert all(isinstance(t, Target) for t in parsed["drafts_list"]["targets"])

    def test_empty_sync(self) -> None:
        iq = Iq()
        iq["type"], iq["id"] = "get", "sync-0"
        iq.enable("drafts_list")
        self.check(iq, f"<iq type='get' id='sync-0'><drafts xmlns='{NS}'/></iq>")
        assert iq["drafts_list"].by_target() == {}

    def test_pending_notice(self) -> None:
        msg = Message()
        msg["type"], msg["from"], msg["to"] = "headline", COURIER, f"{JULIET}/chamber"
        msg["body"] = "You have 2 pending drafts"
        msg["drafts_pending"]["count"] = "2"
        self.check(
            msg,
            f"<message type='headline' from='{COURIER}' to='{JULIET}/chamber'>"
            f"<body>You have 2 pending drafts</body><pending xmlns='{NS}' count='2'/></message>",
        )

    def test_reminder_carries_the_draft(self) -> None:
        msg = Message()
        msg["type"], msg["from"], msg["to"] = "chat", COURIER, JULIET
        msg["body"] = "Reminder: draft 5 for romeo@shakespeare.lit"
        reminder = msg["drafts_reminder"]
        reminder["due"], reminder["late"] = "2026-11-24T08:00:00Z", "42"
        item = Draft()
        item.from_info(DraftInfo(ROMEO, "Bring the rope ladder", "remind", TriggerInfo("manual"), "5", "pending"))
        reminder.append(item)
        self.check(msg, REMINDER, use_values=False)
        parsed = Message(xml=ET.fromstring(REMINDER.replace("<message ", "<message xmlns='jabber:client' ", 1)))
        assert parsed["drafts_reminder"]["drafts_draft"].to_info().body == "Bring the rope ladder"
        assert parsed["drafts_reminder"]["late"] == "42"


def _row(**changes: object) -> DraftRow:
    values: dict[str, object] = dict(
        id=7, author=JULIET, number=3, target=ROMEO, body="Meet me at the friar's cell", action="send",
        trigger="at", due_at=1_795_507_200.0, tz="Europe/Paris", trigger_jid="", state="pending",
        msg_id="9c1f0e52a7d84b36", message_seq=None, created=1_795_468_445.0, updated=1_795_468_445.0,
        fired_at=None, late=0.0,
    )  # fmt: skip
    values.update(changes)
    return DraftRow(**values)  # type: ignore[arg-type]


def test_a_stored_draft_is_shown_in_the_zone_it_was_written_in() -> None:
    info = draft_info(_row())
    assert info.trigger == TriggerInfo("at", time="2026-11-24T09:00:00+01:00", tz="Europe/Paris")
    assert (info.id, info.created) == ("3", "2026-11-23T21:14:05Z")
    back = trigger_of(info.trigger)
    assert (back.kind, back.at, back.tz) == ("at", 1_795_507_200.0, "Europe/Paris")
    utc = draft_info(_row(tz="UTC"))
    assert utc.trigger == TriggerInfo("at", time="2026-11-24T08:00:00Z")
    assert trigger_of(TriggerInfo("at", time="2026-11-24T10:00:00+02:00")).tz == "+02:00"
    other = draft_info(_row(trigger="message-from", trigger_jid=NURSE, due_at=None, tz=""))
    assert other.trigger == TriggerInfo("message-from", jid=NURSE)

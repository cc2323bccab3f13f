"""Scenario 3 of issue 13: Courier on the recipient's server only.

The sender is on c.example, a stock Prosody (no Courier); the recipient is on
b.example, whose mod_courier_route hands off what arrives over s2s for local
users to Courier B: held while the recipient is offline (the stock sender's
XEP-0308/0424 applied to the held message), the recipient's receipt policy,
drafts' message-from triggers for remote contacts.
"""

from __future__ import annotations

from component.xep import drafts as xep_drafts
from component.xep import receipts
from component.xep.drafts import DraftInfo, TriggerInfo
from tests.conformance.conftest import read_store
from tests.conformance.helpers import eventually, states
from tests.federation.conftest import corrected_and_retracted_offline


async def test_offline_local_recipient_gets_the_remote_senders_final_text_only(federation, users, connect) -> None:
    bob, carol = users("bob@b.example", "carol@c.example")
    courier_b = federation["b.example"].courier
    c = await connect(carol)
    b = await corrected_and_retracted_offline(c, bob, courier_b, connect)
    await eventually(lambda: states(courier_b, carol).get("m1") == "released", 5, "m1 released")
    archived = await b.archive(carol)
    assert [m["body"] for m in archived] == ["Meet me at ten", "After login"]


async def test_online_local_recipient_gets_a_remote_message_through_courier(federation, users, connect) -> None:
    bob, carol = users("bob@b.example", "carol@c.example")
    b = await connect(bob)
    c = await connect(carol, "laptop")
    c.chat(bob, "Straight through", "s1")
    got = await b.next_message(timeout=15)
    assert (got["from"].full, got["body"]) == (f"{carol}/laptop", "Straight through")
    assert states(federation["b.example"].courier, carol) == {"s1": "released"}
    b.chat(carol, "Answer", "s2")
    assert (await c.next_message(timeout=15))["body"] == "Answer"


async def test_refuse_strips_a_remote_senders_request_and_tells_them_once(federation, users, connect) -> None:
    bob, carol = users("bob@b.example", "carol@c.example")
    b = await connect(bob)
    b.register_plugin("courier_receipts", module=receipts)
    await b.plugin["courier_receipts"].set_policy("courier.b.example", "refuse")
    c = await connect(carol)
    c.register_plugin("courier_receipts", module=receipts)
    for n in (1, 2):
        msg = c.make_message(mto=bob, mbody=f"Did you get this? {n}", mtype="chat")
        msg["id"] = f"r{n}"
        msg["request_receipt"] = True
        msg.enable("markable")
        msg.send()
        got = await b.next_message(timeout=15)
        assert got["body"] == f"Did you get this? {n}"
        assert not got["request_receipt"]
        assert got.xml.find("{urn:xmpp:chat-markers:0}markable") is None
    # Courier B sent any notice before it released r2; its bot's answer leaves later on the
    # same stream (courier.b.example -> c.example), so it is a marker for "nothing more".
    c.chat("courier.b.example", "help", "r-end")
    notices = []
    while True:
        m = await c.next_message(timeout=15)
        if m.xml.find(f"{{{receipts.NS}}}notice") is not None:
            notices.append((m["from"].bare, m["receipts_notice"]["jid"], m["receipts_notice"]["policy"]))
        elif m["from"].bare == "courier.b.example":
            break  # the bot's answer
    assert notices == [("courier.b.example", bob, "refuse")]


async def test_when_from_draft_fires_on_a_remote_contacts_message(federation, users, connect) -> None:
    bob, dave, carol = users("bob@b.example", "dave@b.example", "carol@c.example")
    b = await connect(bob)
    b.register_plugin("courier_drafts", module=xep_drafts)
    b.register_plugin("xep_0004")
    d = await connect(dave)
    c = await connect(carol)
    await b.plugin["courier_drafts"].store(
        "courier.b.example", DraftInfo(to=dave, body="Carol answered", trigger=TriggerInfo("message-from", jid=carol))
    )
    c.chat(bob, "Carol here", "c1")
    assert (await b.next_message(timeout=15))["body"] == "Carol here"
    got = await d.next_message(timeout=10)
    assert (got["from"].bare, got["body"]) == (bob, "Carol answered")

    def draft_states() -> list[str]:
        with read_store(federation["b.example"].courier) as db:
            return [r[0] for r in db.execute("SELECT state FROM drafts WHERE author=?", (bob,))]

    # the message can overtake the commit of the draft's own state (firing → sent)
    await eventually(lambda: draft_states() == ["sent"], 10, "the fired draft recorded as sent")


async def test_courier_elements_from_a_remote_user_are_stripped(federation, users, connect) -> None:
    alice, carol = users("alice@a.example", "carol@c.example")
    a = await connect(alice)
    c = await connect(carol)
    forged = c.make_message(mto=alice, mbody="Look, a report", mtype="chat")
    forged["id"] = "fr1"
    forged["hops_report"]["id"] = "whatever"
    forged["hops_report"]["state"] = "read"
    forged.send()
    got = await a.next_message(timeout=15)
    assert got["body"] == "Look, a report"
    assert not any(child.tag.startswith("{https://courier.chat/ns/") for child in got.xml)
    assert a.reports == []


async def test_the_recipients_courier_reports_to_a_stock_sender_who_asked(federation, users, connect) -> None:
    carol, bob = users("carol@c.example", "bob@b.example")
    a = await connect(carol)  # on a stock server: no Courier of its own to report to
    msg = a.make_message(mto=bob, mbody="Are you there?", mtype="chat")
    msg["id"] = "q1"
    msg["request_receipt"] = True
    msg.send()

    def from_b() -> list[tuple[str, str]]:
        return [
            (r["hops_report"]["state"], r["hops_report"]["place"])
            for r in a.reports
            if r["from"].bare == "courier.b.example"
        ]

    await eventually(lambda: ("cached", "b.example") in from_b(), 15, "cached at b.example, from courier.b.example")
    b = await connect(bob)
    assert (await b.next_message(timeout=15))["body"] == "Are you there?"
    await eventually(lambda: ("released", "b.example") in from_b(), 15, "released at b.example")

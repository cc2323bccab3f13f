"""Scenario 1 of issue 13: Courier on both servers (courier-federation, xeps/courier-federation.xml).

alice@a.example (Courier A) writes to bob@b.example (Courier B).  A's release carries
``<tracked/>``; B holds the message, reports its hops to courier.a.example, which records
them in Alice's trace (place b.example) and reports them to her devices; a recall or edit
by command of a message held at B gets B's certain answer.
"""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from slixmpp.exceptions import IqError

from component.namespaces import NS_HOPS, NS_ROUTE, TRACKED_TAG
from component.xep import receipts
from component.xep.federation import read_reports
from tests.conformance.helpers import cli, eventually, states
from tests.federation.conftest import corrected_and_retracted_offline, hop_labels, ours, trace


async def test_the_senders_trace_lists_every_hop_on_both_servers(federation, users, connect) -> None:
    alice, bob = users("alice@a.example", "bob@b.example")
    courier_b = federation["b.example"].courier
    a = await connect(alice)
    msg = a.make_message(mto=bob, mbody="Are you there?", mtype="chat")
    msg["id"] = "t1"
    msg["request_receipt"] = True
    msg.send()
    await eventually(lambda: states(courier_b, alice) == {"t1": "held"}, 15, "held at b.example")

    def reported() -> list[tuple[str, str, str]]:
        return [(r["from"].bare, r["hops_report"]["state"], r["hops_report"]["place"]) for r in a.reports]

    await eventually(lambda: ("courier.a.example", "cached", "b.example") in reported(), 15, "cached, via A")
    assert await trace(a, "t1") == [("sent", "a.example"), ("released", "b.example"), ("cached", "b.example")]

    b = await connect(bob)
    got = await b.next_message(timeout=15)
    assert (got["from"].bare, got["body"]) == (alice, "Are you there?")
    assert ours(got) == []  # the tracking element stays between the Couriers
    receipt = b.make_message(mto=got["from"], mtype="chat")
    receipt["receipt"] = "t1"
    receipt.send()
    b.plugin["xep_0333"].send_marker(got["from"], "t1", "displayed")
    await eventually(lambda: ("courier.a.example", "read", "b.example") in reported(), 15, "read")
    assert await trace(a, "t1") == [
        ("sent", "a.example"), ("released", "b.example"), ("cached", "b.example"), ("released", "b.example"),
        ("received", "b.example"), ("read", "b.example"),
    ]  # fmt: skip
    # Alice's devices got every hop from her own server's Courier, none straight from B's
    assert [s for f, s, _p in reported()] == ["sent", "released", "cached", "released", "received", "read"]
    assert {f for f, _s, _p in reported()} == {"courier.a.example"}


async def test_stock_correction_and_retraction_are_applied_at_b(federation, users, connect) -> None:
    alice, bob = users("alice@a.example", "bob@b.example")
    a = await connect(alice)
    await corrected_and_retracted_offline(a, bob, federation["b.example"].courier, connect)  # held at B
    await eventually(lambda: ("recalled", "b.example") in hop_labels(federation, alice, "m2"), 10, "m2 recalled at B")
    assert ("edited", "b.example") in hop_labels(federation, alice, "m1")


async def test_recall_by_command_of_a_message_held_at_b_is_certain(federation, users, connect) -> None:
    alice, bob = users("alice@a.example", "bob@b.example")
    courier_a, courier_b = federation["a.example"].courier, federation["b.example"].courier
    a = await connect(alice)
    a.chat(bob, "Do not read this", "r1")
    await eventually(lambda: states(courier_b, alice) == {"r1": "held"}, 15, "held at B")
    await a.plugin["courier_hops"].recall("courier.a.example", "r1", timeout=15)  # a result: recalled
    assert states(courier_a, alice) == {"r1": "recalled"}
    assert states(courier_b, alice) == {"r1": "recalled"}
    assert (await trace(a, "r1"))[-1] == ("recalled", "b.example")
    b = await connect(bob)
    a.chat(bob, "Only this", "r2")
    got = await b.next_message(timeout=15)
    assert got["body"] == "Only this"
    assert [m["body"] for m in b.all_received] == ["Only this"]


async def test_recall_after_delivery_is_too_late_and_the_retraction_is_passed_on(federation, users, connect) -> None:
    alice, bob = users("alice@a.example", "bob@b.example")
    a = await connect(alice)
    b = await connect(bob)
    a.chat(bob, "Already read", "d1")
    assert (await b.next_message(timeout=15))["body"] == "Already read"
    try:
        await a.plugin["courier_hops"].recall("courier.a.example", "d1", timeout=15)
        raise AssertionError("the recall should have been refused")
    except IqError as exc:
        assert exc.iq["error"]["condition"] == "not-allowed"
        assert "b.example already delivered it" in exc.iq["error"]["text"]
        assert exc.iq["error"].xml.find(f"{{{NS_HOPS}}}passed-on") is not None  # courier-hops 0.4.0
    got = await b.next_message(timeout=15)
    assert (got["from"].bare, got["retract"]["id"]) == (alice, "d1")
    assert states(federation["a.example"].courier, alice)["d1"] == "retracted"


async def test_courier_client_recall_retract_of_a_message_delivered_at_b_retracts_once(
    federation, users, connect
) -> None:
    """``courier client recall ID --retract``: B already delivered it, so Courier A passes the
    standard retraction on and says so (<passed-on/>); the client reports it done (exit 0) and
    sends no second one — and the same for ``edit ID TEXT --correct``."""
    alice, bob = users("alice@a.example", "bob@b.example")
    a = await connect(alice)
    b = await connect(bob)
    a.chat(bob, "Already read", "d2")
    a.chat(bob, "Typo hre", "d3")
    assert [(await b.next_message(timeout=15))["body"] for _ in range(2)] == ["Already read", "Typo hre"]
    a_example = federation["a.example"].setup
    recall = await cli(a_example, alice, "recall", "d2", "--retract")
    assert recall.code == 0, recall.err
    assert recall.out.startswith("retraction sent for d2 by Courier: b.example already delivered it"), recall.out
    edit = await cli(a_example, alice, "edit", "d3", "Typo here", "--correct")
    assert edit.code == 0, edit.err
    assert edit.out.startswith("correction sent for d3 by Courier: b.example already delivered it"), edit.out
    got = await b.next_message(timeout=15)
    assert (got["from"].bare, got["retract"]["id"]) == (alice, "d2")
    got = await b.next_message(timeout=15)
    assert (got["from"].bare, got["replace"]["id"], got["body"]) == (alice, "d3", "Typo here")
    await b.nothing_before_marker(a)  # one retraction and one correction, not two of each
    assert states(federation["a.example"].courier, alice)["d2"] == "retracted"


async def test_edit_by_the_bot_of_a_message_held_at_b(federation, users, connect) -> None:
    alice, bob = users("alice@a.example", "bob@b.example")
    courier_b = federation["b.example"].courier
    a = await connect(alice)
    a.chat(bob, "Meet me at nine", "e1")
    await eventually(lambda: states(courier_b, alice) == {"e1": "held"}, 15, "held at B")
    a.chat("courier.a.example", "edit e1 Meet me at ten", "cmd1")
    answer = await a.next_message(timeout=15)
    assert answer["body"].startswith(f"Edited your message to {bob}."), answer["body"]
    b = await connect(bob)
    got = await b.next_message(timeout=15)
    assert (got["id"], got["body"]) == ("e1", "Meet me at ten")


def sent_by(courier) -> list[ET.Element]:
    """Every stanza *courier* has sent so far (its record: ``COURIER_RECORD_SENT``)."""
    lines = courier.sent.read_text(encoding="utf-8").splitlines() if courier.sent.exists() else []
    texts = [json.loads(line).strip() for line in lines if line.strip()]
    headers = ("<stream:", "</stream", "<?xml")
    return [ET.fromstring(t) for t in texts if t.startswith("<") and not t.startswith(headers)]


async def test_a_message_to_a_peer_is_released_by_reference_with_tracked(federation, users, connect) -> None:
    """courier-route 0.8: A's release of a message toward B is the HID and its <tracked/> (the
    body never goes back to a.example's server), and B tracks it; Alice's archive and her other
    device have the message without the tracking element."""
    alice, bob = users("alice@a.example", "bob@b.example")
    a = await connect(alice)
    laptop = await connect(alice, "laptop")
    await laptop.plugin["xep_0280"].enable()
    b = await connect(bob)
    courier_a, courier_b = federation["a.example"].courier, federation["b.example"].courier
    before, before_b = len(sent_by(courier_a)), len(sent_by(courier_b))
    msg = a.make_message(mto=bob, mbody="By reference", mtype="chat")
    msg["id"] = "r1"
    msg["request_receipt"] = True  # (and hop reports)
    msg.send()
    got = await b.next_message(timeout=15)
    assert (got["body"], ours(got)) == ("By reference", [])
    # B tracks it: its hops reach Alice's devices through her own server's Courier.  Two at
    # b.example: A's release toward it, then B's own release to Bob (A's alone can come first)
    await eventually(
        lambda: len([r for r in a.reports if r["hops_report"]["place"] == "b.example"]) >= 2,
        15,
        "A's hop toward b.example and B's hop there",
    )
    sent = sent_by(courier_a)[before:]
    assert not [m for m in sent if "By reference" in ET.tostring(m, encoding="unicode")]  # nothing in full
    given = [
        item
        for m in sent
        for item in m.iter(f"{{{NS_ROUTE}}}item")
        if item.get("release") == "true" and item.find(TRACKED_TAG) is not None
    ]
    assert [(t.get("by"), t.get("id")) for i in given for t in i] == [("courier.a.example", given[0].get("id"))]
    # B sent its release to b.example before its report of that release went to A
    kinds = [
        "release" if m.find(f"{{{NS_ROUTE}}}ack/{{{NS_ROUTE}}}item[@release='true']") is not None
        else "report" if [r for r in read_reports(m) if r[1] == "released"]  # <hop/> or <hops/> (0.4)
        else None
        for m in sent_by(courier_b)[before_b:]
    ]  # fmt: skip
    assert [k for k in kinds if k] == ["release", "report"]
    carbon = await eventually(lambda: [c for c in laptop.carbons if c["id"] == "r1"], 15, "the carbon")
    assert carbon[0]["body"] == "By reference" and ours(carbon[0]) == []
    archived = [m for m in await a.archive(bob) if m["id"] == "r1"]
    assert [m["body"] for m in archived] == ["By reference"] and ours(archived[0]) == []


async def test_a_stock_server_gets_no_tracking(federation, users, connect) -> None:
    alice, carol = users("alice@a.example", "carol@c.example")
    a = await connect(alice)
    c = await connect(carol)
    a.chat(carol, "Plain XMPP", "p1")
    got = await c.next_message(timeout=15)
    assert got["body"] == "Plain XMPP"
    assert ours(got) == []


async def test_refuse_b_reports_nothing_after_cached(federation, users, connect) -> None:
    alice, dave, bob = users("alice@a.example", "dave@a.example", "bob@b.example")
    courier_b = federation["b.example"].courier
    b = await connect(bob)
    b.register_plugin("courier_receipts", module=receipts)
    await b.plugin["courier_receipts"].set_policy("courier.b.example", "refuse", contact=alice)
    await b.stop()
    a = await connect(alice)
    a.chat(bob, "Tell me when you are back", "q1")
    await eventually(lambda: states(courier_b, alice) == {"q1": "held"}, 15, "held at B")
    await eventually(lambda: ("held", "b.example") in hop_labels(federation, alice, "q1"), 15, "cached reported")
    b = await connect(bob, "laptop")
    assert (await b.next_message(timeout=15))["body"] == "Tell me when you are back"
    await eventually(lambda: states(courier_b, alice) == {"q1": "released"}, 15, "released at B")
    # B reports on one stream, in order: dave's hop (Bob does not refuse dave) comes after
    # anything B would have said of Alice's message.
    d = await connect(dave)
    d.chat(bob, "Dave here", "x1")
    assert (await b.next_message(timeout=15))["body"] == "Dave here"
    await eventually(lambda: ("released", "b.example") in hop_labels(federation, dave, "x1")[2:], 15, "dave's hop")
    assert hop_labels(federation, alice, "q1") == [("accepted", "a.example"), ("released", "b.example"),
                                                 ("held", "b.example")]  # fmt: skip


async def test_reports_chat_says_delivered_when_b_releases_a_cached_message(federation, users, connect) -> None:
    alice, bob = users("alice@a.example", "bob@b.example")
    a = await connect(alice)
    a.chat("courier.a.example", "reports chat", origin_id=False)
    assert (await a.next_message(timeout=15))["body"].endswith("Chat reports: on.")
    a.chat(bob, "See you at the station", "c1")
    await eventually(lambda: ("held", "b.example") in hop_labels(federation, alice, "c1"), 15, "cached at B")
    b = await connect(bob)
    await b.next_message(timeout=15)
    note = await a.next_message(timeout=15)
    assert (note["from"].bare, note["type"], note["body"]) == (
        "courier.a.example", "chat", f"Delivered to {bob}: “See you at the station”.",
    )  # fmt: skip


async def test_courier_client_recalls_a_message_held_at_b(federation, users, connect) -> None:
    from tests.conformance.helpers import cli

    alice, bob = users("alice@a.example", "bob@b.example")
    courier_b = federation["b.example"].courier
    a = await connect(alice)
    a.chat(bob, "Never mind", "k1")
    await eventually(lambda: states(courier_b, alice) == {"k1": "held"}, 15, "held at B")
    result = await cli(federation["a.example"].setup, alice, "recall", "k1")
    assert (result.code, result.out) == (0, "recalled k1\n"), result.err
    assert states(courier_b, alice) == {"k1": "recalled"}


async def test_adhoc_pending_lists_a_message_held_at_b_and_recalls_it(federation, users, connect) -> None:
    from tests.conformance.helpers import execute

    alice, bob = users("alice@a.example", "bob@b.example")
    courier_b = federation["b.example"].courier
    a = await connect(alice)
    a.register_plugin("xep_0004")
    a.register_plugin("xep_0050")
    a.chat(bob, "Held over there", "p1")
    await eventually(lambda: ("held", "b.example") in hop_labels(federation, alice, "p1"), 15, "cached at B")
    first = await execute(a, "courier.a.example", "pending")
    assert [o["value"] for o in first["form"].get_fields()["message"]["options"]] == ["p1"]
    done = await execute(
        a, "courier.a.example", "pending", "complete", first["sessionid"], {"message": "p1", "action": "recall"}
    )
    assert done["notes"][0][1].startswith(f"Recalled your message to {bob}.")
    assert states(courier_b, alice) == {"p1": "recalled"}
    again = await execute(a, "courier.a.example", "pending")
    assert (again["status"], again["notes"]) == ("completed", [("info", "You have no messages waiting at the server.")])

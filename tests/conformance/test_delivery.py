"""P1 end to end: hold, edit and recall before delivery; straight through when online.

Real Prosody (Debian), real Courier process, real slixmpp clients.
"""

from __future__ import annotations

import time

from .helpers import eventually, hops, states
from .xmpp import CourierProcess


async def test_offline_recipient_gets_one_corrected_message_and_nothing_recalled(courier, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    a.chat(bob, "Meet me at nine", "m1")
    a.chat(bob, "I love you", "m2")
    await eventually(lambda: states(courier, alice) == {"m1": "held", "m2": "held"}, what="both held")

    a.correct(bob, "m1", "Meet me at ten", "m1-fix")
    a.retract(bob, "m2", "m2-retract")
    await eventually(lambda: states(courier, alice) == {"m1": "held", "m2": "recalled"}, what="recall stored")

    b = await connect(bob)
    got = await b.next_message()
    assert got["from"].full == alice  # the bare JID of the sender
    assert got["body"] == "Meet me at ten"
    assert got["id"] == "m1"
    await b.nothing_before_marker(a)  # nothing of m2, no correction, no retraction

    assert states(courier, alice) == {"m1": "released", "m2": "recalled", "marker": "released"}
    m1 = hops(courier, alice, "m1")
    assert [h[0] for h in m1] == ["accepted", "held", "edited", "released"]
    assert [h[1] for h in m1] == sorted(h[1] for h in m1)  # times never go backwards
    assert all(h[2] == "localhost" for h in m1)
    assert [h[0] for h in hops(courier, alice, "m2")] == ["accepted", "held", "recalled"]


async def test_online_recipient_straight_through_with_carbons_and_archives(courier, users, connect) -> None:
    alice, bob = users("alice", "bob")
    phone = await connect(alice, "phone")
    laptop = await connect(alice, "laptop")
    await laptop.plugin["xep_0280"].enable()
    b = await connect(bob)
    await eventually(lambda: True)
    phone.chat(bob, "Hello Bob", "hello-1")
    got = await b.next_message()
    assert (got["from"].full, got["body"], got["id"]) == (alice, "Hello Bob", "hello-1")
    await eventually(lambda: len(laptop.carbons) >= 1, what="carbon on the laptop")
    phone.chat(bob, "Still there?", "hello-2")  # a later message: its carbon comes after any other
    assert (await b.next_message())["body"] == "Still there?"
    await eventually(lambda: len(laptop.carbons) >= 2, what="the second carbon")
    assert [c["body"] for c in laptop.carbons] == ["Hello Bob", "Still there?"]  # each exactly once
    assert [m["body"] for m in await phone.archive(bob)] == ["Hello Bob", "Still there?"]
    assert [m["body"] for m in await b.archive(alice)] == ["Hello Bob", "Still there?"]
    assert states(courier, alice) == {"hello-1": "released", "hello-2": "released"}
    assert [h[0] for h in hops(courier, alice, "hello-1")] == ["accepted", "released"]


async def test_correction_and_retraction_after_delivery_are_passed_on(courier, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    b = await connect(bob)
    a.chat(bob, "Wherefore art thou", "w1")
    assert (await b.next_message())["body"] == "Wherefore art thou"
    a.correct(bob, "w1", "Wherefore art thou, Romeo?")
    got = await b.next_message()
    assert (got["replace"]["id"], got["body"]) == ("w1", "Wherefore art thou, Romeo?")
    a.retract(bob, "w1")
    got = await b.next_message()
    assert got["retract"]["id"] == "w1"
    await eventually(lambda: states(courier, alice).get("w1") == "retracted", what="retracted recorded")
    assert [h[0] for h in hops(courier, alice, "w1")] == ["accepted", "released", "edited", "retracted"]


async def test_held_messages_flush_in_order_when_recipient_connects(courier, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    for i in range(5):
        a.chat(bob, f"line {i}", f"l{i}")
    await eventually(lambda: len(states(courier, alice)) == 5, what="5 stored")
    b = await connect(bob)
    bodies = [(await b.next_message())["body"] for _ in range(5)]
    assert bodies == [f"line {i}" for i in range(5)]


async def test_retraction_v0_fastening_recalls_a_held_message(courier, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    a.chat(bob, "oops", "v0-1")
    await eventually(lambda: states(courier, alice) == {"v0-1": "held"}, what="held")
    msg = a.make_message(mto=bob, mbody="retracted", mtype="chat")
    msg["apply_to"]["id"] = "v0-1"
    from xml.etree.ElementTree import SubElement

    SubElement(msg["apply_to"].xml, "{urn:xmpp:message-retract:0}retract")
    msg.send()
    await eventually(lambda: states(courier, alice) == {"v0-1": "recalled"}, what="recalled by v0")
    b = await connect(bob)
    await b.nothing_before_marker(a)


async def test_a_retraction_by_origin_id_recalls(courier, users, connect) -> None:
    """Converse retracts by the original's origin-id, which may differ from its id."""
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    msg = a.make_message(mto=bob, mbody="secret", mtype="chat")
    msg["id"] = "client-id-7"
    msg["origin_id"]["id"] = "origin-7"
    msg.send()
    await eventually(lambda: states(courier, alice) == {"client-id-7": "held"}, what="held")
    a.retract(bob, "origin-7")
    await eventually(lambda: states(courier, alice) == {"client-id-7": "recalled"}, what="recalled")


async def test_undo_window_holds_online_messages_until_it_passes(stack, users, connect, tmp_path) -> None:
    alice, bob = users("alice", "bob")
    courier = await CourierProcess(stack, tmp_path / "undo", COURIER_DELIVERY_UNDO_WINDOW="1.5").start_async()
    try:
        a = await connect(alice)
        b = await connect(bob)
        sent = time.monotonic()
        a.chat(bob, "Maybe not", "u1")
        a.chat(bob, "Second thoughts", "u2")
        await eventually(lambda: states(courier, alice) == {"u1": "held", "u2": "held"}, what="held in window")
        a.retract(bob, "u1")
        got = await b.next_message(5)
        assert got["body"] == "Second thoughts"
        assert time.monotonic() - sent >= 1.4
        await b.nothing_before_marker(a)  # (after its own undo window)
        assert states(courier, alice) == {"u1": "recalled", "u2": "released", "marker": "released"}
    finally:
        courier.stop()


async def test_recall_by_command_reaches_the_senders_archive_and_other_devices(courier, stack, users, connect) -> None:
    """Her message was archived and carbon-copied when she sent it; a recall by command puts a
    standard XEP-0424 retraction after it there, and nothing reaches the recipient."""
    retract = "{urn:xmpp:message-retract:1}retract"
    alice, bob = users("alice", "bob")
    phone = await connect(alice, "phone")
    laptop = await connect(alice, "laptop")
    await laptop.plugin["xep_0280"].enable()
    msg = phone.make_message(mto=bob, mbody="Sent in haste", mtype="chat")
    msg["id"], msg["origin_id"]["id"] = "haste-1", "haste-origin"
    msg.send()
    await eventually(lambda: states(courier, alice).get("haste-1") == "held", what="held for offline Bob")
    await phone.plugin["courier_hops"].recall(stack.component, "haste-1")

    def retractions() -> list:
        return [c for c in laptop.carbons if c.xml.find(retract) is not None]

    await eventually(retractions, what="the retraction's carbon on the laptop")
    (copy,) = retractions()
    assert (copy["to"].bare, copy.xml.find(retract).get("id")) == (bob, "haste-origin")
    assert [c["body"] for c in laptop.carbons][0] == "Sent in haste"
    assert not [e for e in copy.xml.iter() if isinstance(e.tag, str) and "courier.chat" in e.tag]
    archive = await phone.archive(bob)
    assert [(m["body"], m.xml.find(retract) is not None) for m in archive][-2:] == [
        ("Sent in haste", False),
        (copy["body"], True),
    ]
    b = await connect(bob)
    phone.chat(bob, "a later message", "after-recall")
    got = await b.next_message()  # the first thing Bob gets: neither the message nor its retraction
    assert got["id"] == "after-recall"
    assert [m["body"] for m in await b.archive(alice)] == ["a later message"]

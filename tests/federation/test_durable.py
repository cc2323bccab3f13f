"""courier-federation 0.2: what the two Couriers tell each other survives a Courier that is away.

- A hop report Courier B could not deliver (Courier A stopped) is sent again until A
  acknowledges it; one sent again after its acknowledgement was lost is recorded once.
- Which messages B holds is kept in A's store: after a restart of Courier A, Alice's pending
  list still names them and a recall by command gets B's certain answer.
- A message Courier A composes itself (a broadcast list's copy) is tracked at B like one
  Alice sent: B holds it, reports it, and the list's recall reaches it there.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from component.namespaces import TRACKED_TAG
from component.util import stamp
from tests.conformance.conftest import read_store
from tests.conformance.helpers import eventually, execute, owner, states
from tests.conformance.xmpp import CourierProcess
from tests.federation.conftest import hop_labels, ours, trace
from tests.storeview import connect as open_store


def unacknowledged(courier: CourierProcess) -> int:
    """Hop reports Courier B keeps because their tracker did not acknowledge them yet."""
    with read_store(courier) as db:
        return int(db.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'hop'").fetchone()[0])


def reported(client, msg_id: str) -> list[tuple[str, str, str]]:
    """(from, state, place) of the hop reports *client* got for its message *msg_id*."""
    return [
        (r["from"].bare, r["hops_report"]["state"], r["hops_report"]["place"])
        for r in client.reports
        if r["hops_report"]["id"] == msg_id
    ]


def pair(federation, users) -> tuple[str, str, CourierProcess, CourierProcess]:
    """Fresh alice@a.example and bob@b.example, and the two Couriers."""
    alice, bob = users("alice@a.example", "bob@b.example")
    return alice, bob, federation["a.example"].courier, federation["b.example"].courier


def request(client, to: str, body: str, msg_id: str) -> None:
    msg = client.make_message(mto=to, mbody=body, mtype="chat")
    msg["id"] = msg_id
    msg["request_receipt"] = True  # reports at every hop (courier-hops)
    msg.send()


async def cached_at_b(client, to: str, body: str, msg_id: str) -> None:
    """Send *body* to offline *to* asking for reports; return once B's ``cached`` reached the sender."""
    request(client, to, body, msg_id)
    await eventually(lambda: ("courier.a.example", "cached", "b.example") in reported(client, msg_id), 15, "cached")


async def test_a_report_made_while_courier_a_is_away_reaches_it_once_when_it_is_back(
    federation, users, connect
) -> None:
    alice, bob, courier_a, courier_b = pair(federation, users)
    a = await connect(alice)
    await cached_at_b(a, bob, "Are you there?", "t1")
    courier_a.stop()
    try:
        b = await connect(bob)
        assert (await b.next_message(timeout=15))["body"] == "Are you there?"
        await eventually(lambda: states(courier_b, alice) == {"t1": "released"}, 15, "released at B")
        await eventually(lambda: unacknowledged(courier_b) >= 1, 10, "B keeps its report")
    finally:
        await courier_a.start_async()
    # B sends it again (every 2 s here); A records it, reports it to Alice and acknowledges it
    await eventually(lambda: ("courier.a.example", "released", "b.example") in reported(a, "t1")[2:], 30, "released")
    await eventually(lambda: unacknowledged(courier_b) == 0, 15, "acknowledged")
    request(a, bob, "Still there?", "t2")  # a later positive marker: its report comes after any repeat
    assert (await b.next_message(timeout=15))["body"] == "Still there?"
    await eventually(lambda: ("courier.a.example", "released", "b.example") in reported(a, "t2")[1:], 15, "t2")
    assert await trace(a, "t1") == [
        ("sent", "a.example"), ("released", "b.example"), ("cached", "b.example"), ("released", "b.example"),
    ]  # fmt: skip
    assert [s for _f, s, _p in reported(a, "t1")] == ["sent", "released", "cached", "released"]


async def test_a_report_sent_again_after_its_acknowledgement_was_lost_is_recorded_once(
    federation, users, connect
) -> None:
    alice, bob, _courier_a, courier_b = pair(federation, users)
    a = await connect(alice)
    await cached_at_b(a, bob, "Once only", "o1")
    await eventually(lambda: unacknowledged(courier_b) == 0, 15, "acknowledged")
    # What a lost <acked/> leaves at B: the report still in its outbox.  Courier B is stopped,
    # the report put back as B stored it, and B started: it sends the report again at connect.
    courier_b.stop()
    try:
        with read_store(courier_b) as db:
            seq, at, note, stanza = db.execute(
                "SELECT m.seq, h.at, h.note, m.stanza FROM messages m JOIN hops h ON h.message_seq = m.seq "
                "WHERE m.sender = ? AND m.msg_id = 'o1' AND h.label = 'held'",
                (alice,),
            ).fetchone()
        token = ET.fromstring(stanza).find(TRACKED_TAG).get("id")
        hop = (
            f'<hop xmlns="https://courier.chat/ns/federation/0" id="{token}" state="cached" at="{stamp(at)}" '
            f'report="again-{seq}">{note}</hop>'
        )
        with open_store(courier_b.db) as db:
            db.execute(
                "INSERT INTO outbox (token, kind, sender, stanza, at) VALUES (?, 'hop', 'courier.a.example', ?, ?)",
                (f"again-{seq}", hop, at),
            )
            if hasattr(db, "commit"):
                db.commit()
        assert unacknowledged(courier_b) == 1
    finally:
        await courier_b.start_async()
    await eventually(lambda: unacknowledged(courier_b) == 0, 15, "the report sent again and acknowledged")
    await cached_at_b(a, bob, "Marker", "o2")  # a later positive marker
    assert await trace(a, "o1") == [("sent", "a.example"), ("released", "b.example"), ("cached", "b.example")]
    assert [s for _f, s, _p in reported(a, "o1")] == ["sent", "released", "cached"]


async def test_after_a_restart_of_courier_a_a_message_held_at_b_is_pending_and_recalled(
    federation, users, connect
) -> None:
    alice, bob, courier_a, courier_b = pair(federation, users)
    a = await connect(alice)
    a.register_plugin("xep_0004")
    a.register_plugin("xep_0050")
    a.chat(bob, "Held over there", "h1")
    await eventually(lambda: ("held", "b.example") in hop_labels(federation, alice, "h1"), 15, "cached at B")
    courier_a.stop()
    await courier_a.start_async()
    first = await execute(a, "courier.a.example", "pending")
    assert [o["value"] for o in first["form"].get_fields()["message"]["options"]] == ["h1"]
    await a.plugin["courier_hops"].recall("courier.a.example", "h1", timeout=15)  # a result: recalled at B
    assert states(courier_b, alice) == {"h1": "recalled"}
    assert states(courier_a, alice) == {"h1": "recalled"}
    assert (await trace(a, "h1"))[-1] == ("recalled", "b.example")
    b = await connect(bob)
    a.chat(bob, "Only this", "h2")
    assert (await b.next_message(timeout=15))["body"] == "Only this"
    assert [m["body"] for m in b.all_received] == ["Only this"]


async def test_a_list_copy_to_a_remote_member_is_held_at_b_reported_and_recalled_there(
    federation, users, connect
) -> None:
    alice, bob, courier_a, courier_b = pair(federation, users)
    a = await owner(connect, alice)
    laptop = await connect(alice, "laptop")  # her other device: a carbon of the copy
    await laptop.plugin["xep_0280"].enable()
    lists = a.plugin["courier_lists"]
    await lists.create("courier.a.example", "Far", [bob])
    sent = await lists.send("courier.a.example", "far", "Across the river")
    fanout_id = sent["lists_fanout"]["id"]
    await eventually(lambda: list(states(courier_b, alice).values()) == ["held"], 15, "the copy held at B")
    (copy_id,) = states(courier_a, alice)
    assert list(states(courier_b, alice)) == [copy_id]  # the very copy A composed
    await eventually(lambda: ("held", "b.example") in hop_labels(federation, alice, copy_id), 15, "B reported it")
    assert [label for label, _p in hop_labels(federation, alice, copy_id)] == ["accepted", "released", "held"]
    # Alice's own archive and devices have the copy, without the tracking element (for B only)
    carbon = await eventually(lambda: [c for c in laptop.carbons if c["id"] == copy_id], 15, "the carbon")
    assert carbon[0]["body"] == "Across the river" and ours(carbon[0]) == []
    archived = [m for m in await a.archive(bob) if m["id"] == copy_id]
    assert [m["body"] for m in archived] == ["Across the river"] and ours(archived[0]) == []
    recalled = await lists.recall("courier.a.example", fanout_id)
    assert {k: v for k, v in recalled["lists_fanout"].counts().items() if v} == {"recalled": 1}
    assert states(courier_b, alice) == {copy_id: "recalled"}
    b = await connect(bob)
    a.chat(bob, "Only this", "l2")
    assert (await b.next_message(timeout=15))["body"] == "Only this"
    assert [m["body"] for m in b.all_received] == ["Only this"]

"""courier-federation's security rules against the real servers: forged hop reports and
recall requests — from a third server's user, from a user of the right server, and from
the right server's Courier about somebody else's message — are refused and change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from slixmpp import ComponentXMPP
from slixmpp.exceptions import IqError

from component.xep import federation as xep_federation
from tests.conformance.conftest import read_store
from tests.conformance.helpers import eventually, hops, states


def token_of(courier, sender: str, msg_id: str) -> str:
    with read_store(courier) as db:
        return db.execute("SELECT hid FROM messages WHERE sender=? AND msg_id=?", (sender, msg_id)).fetchone()[0]


def forged_hop(client, to: str, token: str, state: str = "released"):
    client.register_plugin("courier_federation", module=xep_federation)
    msg = client.make_message(mto=to, mtype="headline")
    hop = msg["fed_hop"]
    hop["id"], hop["state"], hop["at"] = token, state, "2026-12-02T10:00:00.000Z"
    return msg


async def forged_recall(client, courier_jid: str, token: str, sender: str, to: str, ref: str) -> str:
    client.register_plugin("courier_federation", module=xep_federation)
    iq = client.make_iq_set(ito=courier_jid)
    recall = iq["fed_recall"]
    recall["id"], recall["sender"], recall["to"], recall["message"] = token, sender, to, ref
    try:
        await iq.send(timeout=15)
    except IqError as exc:
        return str(exc.iq["error"]["condition"])
    return "result"


def at_b(federation, sender: str, msg_id: str) -> list[tuple[str, str]]:
    return [(label, place) for label, _at, place in hops(federation["a.example"].courier, sender, msg_id)]


async def test_a_third_servers_user_can_neither_report_nor_recall(federation, users, connect) -> None:
    alice, bob, carol, eve = users("alice@a.example", "bob@b.example", "carol@c.example", "eve@b.example")
    courier_a, courier_b = federation["a.example"].courier, federation["b.example"].courier
    a = await connect(alice)
    a.chat(bob, "For Bob only", "f1")
    await eventually(lambda: states(courier_b, alice) == {"f1": "held"}, 15, "held at B")
    await eventually(lambda: ("held", "b.example") in at_b(federation, alice, "f1"), 15, "cached reported")
    token = token_of(courier_a, alice, "f1")  # the worst case: the forger knows the token
    c = await connect(carol)
    e = await connect(eve)
    for forger in (c, e):  # a third server's user; a user of the recipient's own server
        forged_hop(forger, "courier.a.example", token).send()
        answer = await forged_recall(forger, "courier.b.example", token, alice, bob, "f1")
        assert answer == "forbidden"
        needle = f"Refused a hop report from {forger.boundjid.full} for {token}"
        await courier_a.wait_log_async(needle, 15)
    assert states(courier_b, alice) == {"f1": "held"}
    assert at_b(federation, alice, "f1") == [("accepted", "a.example"), ("released", "b.example"),
                                             ("held", "b.example")]  # fmt: skip
    b = await connect(bob)
    assert (await b.next_message(timeout=15))["body"] == "For Bob only"


@asynccontextmanager
async def impostor(server) -> AsyncIterator[ComponentXMPP]:
    """Stand in for *server*'s Courier (stopped meanwhile) on its component port: what its
    Courier could send, without Courier's rules."""
    server.courier.stop()
    xmpp = ComponentXMPP(f"courier.{server.domain}", server.setup.secret, "127.0.0.1", server.setup.component_port)
    xmpp.register_plugin("courier_federation", module=xep_federation)
    up, down = asyncio.Event(), asyncio.Event()
    xmpp.add_event_handler("session_start", lambda _e: up.set())
    xmpp.add_event_handler("disconnected", lambda _e: down.set())
    xmpp.connect("127.0.0.1", server.setup.component_port)
    try:
        await asyncio.wait_for(up.wait(), 15)
        yield xmpp
    finally:
        xmpp.disconnect()
        await asyncio.wait_for(down.wait(), 10)  # the stream is closed before the real Courier connects
        await server.courier.start_async()  # (without blocking the test's clients)


async def test_a_peers_courier_cannot_speak_of_messages_to_or_from_others(federation, users, connect) -> None:
    alice, bob, carol, dave = users("alice@a.example", "bob@b.example", "carol@c.example", "dave@c.example")
    courier_a, courier_b = federation["a.example"].courier, federation["b.example"].courier
    a = await connect(alice)
    c = await connect(carol)
    a.chat(carol, "For Carol at a stock server", "o1")
    assert (await c.next_message(timeout=15))["body"] == "For Carol at a stock server"
    token = token_of(courier_a, alice, "o1")
    # courier.b.example reports on Alice's message to c.example: refused.
    async with impostor(federation["b.example"]) as fake_b:
        msg = fake_b.make_message(mto="courier.a.example", mfrom="courier.b.example", mtype="headline")
        msg["fed_hop"]["id"], msg["fed_hop"]["state"], msg["fed_hop"]["at"] = token, "released", "2026-12-02T10:00:00Z"
        msg.send()
        needle = f"Refused a hop report from courier.b.example for {token}"
        await courier_a.wait_log_async(needle, 15)
    assert states(courier_a, alice) == {"o1": "released"}
    assert [label for label, _at, _place in hops(courier_a, alice, "o1")] == ["accepted", "released"]

    # courier.a.example asks B to recall a message of a c.example user held at B: refused.
    d = await connect(dave)
    d.chat(bob, "From dave at a stock server", "s1")
    await eventually(lambda: states(courier_b, dave) == {"s1": "held"}, 15, "held at B")
    async with impostor(federation["a.example"]) as fake_a:
        iq = fake_a.make_iq_set(ito="courier.b.example", ifrom="courier.a.example")
        recall = iq["fed_recall"]
        recall["id"], recall["sender"], recall["to"], recall["message"] = "any", dave, bob, "s1"
        try:
            await iq.send(timeout=15)
            raise AssertionError("the recall should have been refused")
        except IqError as exc:
            assert exc.iq["error"]["condition"] == "forbidden"
    assert states(courier_b, dave) == {"s1": "held"}
    b = await connect(bob)
    assert (await b.next_message(timeout=15))["body"] == "From dave at a stock server"

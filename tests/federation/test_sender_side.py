"""Scenario 2 of issue 13: Courier on the sender's server, a stock server on the other side.

alice@a.example (Courier A) writes to c.example, a stock Prosody.
"""

from __future__ import annotations

import asyncio

from tests.conformance.helpers import eventually, hops, report_states, states


async def test_message_to_a_nonexistent_remote_user_is_a_failed_hop_reported_to_the_sender(
    federation, users, connect
) -> None:
    (alice,) = users("alice@a.example")
    courier_a = federation["a.example"].courier
    a = await connect(alice)
    msg = a.make_message(mto="nobody@c.example", mbody="Anybody there?", mtype="chat")
    msg["id"] = "n1"
    msg["request_receipt"] = True
    msg.send()
    await eventually(lambda: states(courier_a, alice) == {"n1": "failed"}, 15, "a failed hop")
    labels = [(label, place) for label, _at, place in hops(courier_a, alice, "n1")]
    assert labels[-1] == ("failed", "c.example")
    assert ("released", "c.example") in labels
    await eventually(lambda: "failed" in report_states(a), 10, "the failed report")
    failed = [r for r in a.reports if r["hops_report"]["state"] == "failed"][0]["hops_report"]
    assert failed["place"] == "c.example"
    assert "service-unavailable" in failed["note"]


async def test_an_error_from_a_third_party_about_alices_message_changes_nothing(federation, users, connect) -> None:
    alice, carol, dave = users("alice@a.example", "carol@c.example", "dave@c.example")
    courier_a = federation["a.example"].courier
    a = await connect(alice)
    c = await connect(carol)
    d = await connect(dave)
    a.chat(dave, "For dave only", "d1")
    assert (await d.next_message(timeout=15))["body"] == "For dave only"
    # carol (same remote server, not the recipient) claims the message d1 bounced
    forged = c.make_message(mto=alice, mtype="error")
    forged["id"] = "d1"
    forged["error"]["condition"] = "service-unavailable"
    forged.send()
    c.chat(alice, "marker", "c1")  # after the forged error, in order on the same s2s stream
    assert (await a.next_message(timeout=15))["body"] == "marker"
    # A genuine bounce, on the same stream after the forged error, is processed after it.
    a.chat("nobody@c.example", "Anybody?", "n2")
    await eventually(lambda: states(courier_a, alice).get("n2") == "failed", 15, "the genuine bounce recorded")
    assert states(courier_a, alice) == {"d1": "released", "n2": "failed"}
    assert "failed" not in [label for label, _at, _place in hops(courier_a, alice, "d1")]


async def test_remote_recipient_held_by_presence_subscription_else_released(federation, users, connect) -> None:
    """Courier A sees carol's presence (XEP-0356 presence='roster'): alice, subscribed, gets her
    message held while carol is offline and released when she is back; dave, not subscribed,
    gets his released at once (c.example's offline storage keeps it)."""
    alice, dave, carol = users("alice@a.example", "dave@a.example", "carol@c.example")
    courier_a = federation["a.example"].courier
    a = await connect(alice)
    c = await connect(carol)
    await a.get_roster()  # (roster pushes go to resources that asked for the roster)
    await c.get_roster()
    gone = asyncio.Event()
    a.add_event_handler("presence_unavailable", lambda p: gone.set() if p["from"].bare == carol else None)
    a.send_presence_subscription(pto=carol)  # carol's client approves (slixmpp's auto_authorize)
    await eventually(lambda: a.client_roster[carol]["subscription"] in ("to", "both"), 15, "subscribed")
    await eventually(lambda: bool(a.client_roster.presence(carol)), 15, "carol's presence seen")
    await c.stop()
    await asyncio.wait_for(gone.wait(), 15)  # Courier A got the same presence before alice did
    d = await connect(dave)
    d.chat(carol, "From dave, who cannot see carol", "v1")
    a.chat(carol, "From alice, who can", "h1")
    await eventually(lambda: states(courier_a, alice) == {"h1": "held"}, 15, "alice's held at a.example")
    assert states(courier_a, dave) == {"v1": "released"}
    assert [(label, place) for label, _at, place in hops(courier_a, alice, "h1")] == [
        ("accepted", "a.example"), ("held", "a.example"),
    ]  # fmt: skip
    c = await connect(carol, "laptop")
    bodies = {(await c.next_message(timeout=15))["body"], (await c.next_message(timeout=15))["body"]}
    assert bodies == {"From dave, who cannot see carol", "From alice, who can"}
    await eventually(lambda: states(courier_a, alice) == {"h1": "released"}, 10, "released when carol is back")
    assert hops(courier_a, alice, "h1")[-1][2] == "c.example"

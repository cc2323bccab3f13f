"""Scenario 2 of issue 13: Courier on the sender's server, a stock server on the other side.

alice@a.example (Courier A) writes to c.example, a stock Prosody.
"""

from __future__ import annotations

from tests.conformance.test_delivery import eventually, hops, states
from tests.conformance.test_receipts import reports


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
    await eventually(lambda: "failed" in reports(a), 10, "the failed report")
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

"""P2 receipt policies and processing receipts, stanza by stanza, against a real Prosody."""

from __future__ import annotations

import pytest

from component.xep import receipts

from .helpers import eventually, report_states, wire, wire_to_marker


async def courier_notices(client, component: str) -> list[tuple[str, str]]:
    return [
        (m["receipts_notice"]["jid"], m["receipts_notice"]["policy"])
        for m in client.all_received
        if m["from"].bare == component and m.xml.find(f"{{{receipts.NS}}}notice") is not None
    ]


@pytest.fixture
def receipt_clients(connect):
    async def make(jid, resource="phone"):
        client = await connect(jid, resource)
        client.register_plugin("courier_receipts", module=receipts)
        return client

    return make


EXPECTED = {
    #           what reaches Alice from Bob          Alice's reports after "released"
    "auto": (["receipt:m1", "displayed:m1"], ["received", "read"]),
    "manual": (["displayed:m1"], ["read"]),
    "refuse": ([], []),
}


@pytest.mark.parametrize("online", [True, False], ids=["online", "offline"])
@pytest.mark.parametrize("policy", ["auto", "manual", "refuse"])
async def test_policy_matrix(courier, stack, users, connect, receipt_clients, policy, online) -> None:
    alice, bob, carol = users("alice", "bob", "carol")
    a = await receipt_clients(alice)
    c = await connect(carol)
    b = await receipt_clients(bob, "desk")
    await b.plugin["courier_receipts"].set_policy(stack.component, policy)
    if not online:
        await b.stop()
    msg = a.make_message(mto=bob, mbody="Did you get this?", mtype="chat")
    msg["id"] = "m1"
    msg["request_receipt"] = True
    msg.enable("markable")
    msg.send()
    if not online:
        await eventually(lambda: report_states(a) == ["sent", "cached"], what="sent, cached")
        b = await receipt_clients(bob, "desk")
    got = await b.next_message()
    assert got["body"] == "Did you get this?"
    # refuse: Bob's client never sees a receipt request
    asked = got["request_receipt"] or got.xml.find("{urn:xmpp:chat-markers:0}markable") is not None
    assert asked == (policy != "refuse")
    await eventually(lambda: "released" in report_states(a), what="released")

    # Bob's client does what clients do: an automatic receipt, then a displayed marker
    receipt = b.make_message(mto=got["from"], mtype="chat")
    receipt["receipt"] = "m1"
    receipt.send()
    b.plugin["xep_0333"].send_marker(got["from"], "m1", "displayed")
    expected_stanzas, expected_reports = EXPECTED[policy]
    assert await wire_to_marker(a, b, bob) == [*expected_stanzas, "body:marker"]  # and nothing else before it
    before = ["sent", "cached", "released"] if not online else ["sent", "released"]
    await eventually(lambda: report_states(a) == before + expected_reports, what=f"{expected_reports}")
    notices = await courier_notices(a, stack.component)
    assert notices == ([(bob, "refuse")] if policy == "refuse" else [])
    assert c.all_received == [] and c.reports == []  # nothing leaks to anyone else


async def test_refusal_notice_once_per_conversation_and_policy_queryable(
    courier, stack, users, receipt_clients
) -> None:
    alice, bob = users("alice", "bob")
    a = await receipt_clients(alice)
    b = await receipt_clients(bob)
    await b.plugin["courier_receipts"].set_policy(stack.component, "refuse", contact=alice)
    for i in range(3):
        msg = a.make_message(mto=bob, mbody=f"Ping {i}", mtype="chat")
        msg["request_receipt"] = True
        msg.send()
    for _ in range(3):
        await b.next_message()
    # Each notice leaves Courier before the message it is about, so all three messages having
    # arrived, a round trip to Courier comes back after any notice of them.
    iq = await a.plugin["courier_receipts"].get_policy(stack.component, bob)
    assert iq["receipts_policy"]["value"] == "refuse"
    assert await courier_notices(a, stack.component) == [(bob, "refuse")]
    notice = [m for m in a.all_received if m["from"].bare == stack.component][0]
    assert notice["body"] == f"{bob} does not send receipts or read markers: do not wait for them."
    iq = await b.plugin["courier_receipts"].get_policy(stack.component, alice)  # alice's toward bob: default
    assert iq["receipts_policy"]["value"] == "auto"
    mine = (await b.plugin["courier_receipts"].get_policies(stack.component))["receipts_policies"]
    assert mine["default"] == "auto"
    assert [(p["contact"], p["value"]) for p in mine["receipts_policy_items"]] == [(alice, "refuse")]


async def test_manual_confirm_by_bot_sends_the_receipt(courier, stack, users, receipt_clients) -> None:
    alice, bob = users("alice", "bob")
    a = await receipt_clients(alice)
    b = await receipt_clients(bob)
    b.chat(stack.component, "receipts manual", origin_id=False)
    assert (await b.next_message())["body"].startswith("Saved. Your receipt policy: manual.")
    msg = a.make_message(mto=bob, mbody="Sign here", mtype="chat")
    msg["id"] = "sign-1"
    msg["request_receipt"] = True
    msg.send()
    got = await b.next_message()
    auto = b.make_message(mto=got["from"], mtype="chat")
    auto["receipt"] = "sign-1"
    auto.send()  # withheld
    assert await wire_to_marker(a, b, bob) == ["body:marker"]
    b.chat(stack.component, "confirm sign-1", origin_id=False)
    assert (await b.next_message())["body"] == f"Receipt sent to {alice}.\nFor “Sign here” (id sign-1)."
    await eventually(lambda: wire(a, bob) == ["body:marker", "receipt:sign-1"], what="confirmed receipt")
    await eventually(lambda: report_states(a)[-1:] == ["received"], what="received report")
    b.chat(stack.component, "confirm nope", origin_id=False)
    assert (await b.next_message())["body"] == "You received no message with the id nope."


async def test_message_to_a_nonexistent_user_fails_once(courier, stack, users, receipt_clients) -> None:
    (alice,) = users("alice")
    a = await receipt_clients(alice)
    ghost = f"nobody-{alice.split('@')[0]}@{stack.domain}"
    msg = a.make_message(mto=ghost, mbody="Anyone?", mtype="chat")
    msg["id"] = "ghost-1"
    msg["request_receipt"] = True
    msg.send()
    await eventually(lambda: report_states(a) == ["sent", "failed"], what="sent, failed")
    failed = a.reports[-1]["hops_report"]
    assert failed["note"] == "item-not-found: no such user"
    await eventually(lambda: any(m["type"] == "error" for m in a.all_received), what="Prosody's error")
    # no retry storm: a second message takes the same way, and its error is the only other one
    again = a.make_message(mto=ghost, mbody="Anyone at all?", mtype="chat")
    again["id"] = "ghost-2"
    again["request_receipt"] = True
    again.send()
    await eventually(lambda: [m["id"] for m in a.all_received if m["type"] == "error"][-1:] == ["ghost-2"],
                     what="the second message's error")  # fmt: skip
    errors = [m for m in a.all_received if m["type"] == "error"]
    assert [(m["id"], m["from"].bare) for m in errors] == [("ghost-1", ghost), ("ghost-2", ghost)]
    assert errors[0]["error"]["condition"] == "service-unavailable"
    await eventually(lambda: report_states(a) == ["sent", "failed", "sent", "failed"], what="sent, failed twice")


async def test_no_reports_when_the_sender_asks_for_none(courier, stack, users, receipt_clients, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await receipt_clients(alice)
    b = await connect(bob)
    a.chat(stack.component, "reports on", origin_id=False)
    await a.next_message()
    msg = a.make_message(mto=bob, mbody="Unreported", mtype="chat")
    msg.enable("receipts_no_request")
    msg.send()
    got = await b.next_message()
    assert got.xml.find(f"{{{receipts.NS}}}no-request") is None
    a.chat(bob, "Reported", "rep-2")
    await b.next_message()
    await eventually(lambda: report_states(a) == ["sent", "released"], what="reports for the second only")
    assert {r["hops_report"]["id"] for r in a.reports} == {"rep-2"}

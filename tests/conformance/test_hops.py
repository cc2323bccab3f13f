"""P1 hop reports and traces (courier-hops), end to end against a real Prosody."""

from __future__ import annotations

from xml.etree.ElementTree import SubElement

import pytest
from slixmpp.exceptions import IqError

from component.xep import hops

from .helpers import eventually, eventually_async, report_states


async def test_sender_who_asks_sees_every_hop_once_and_in_order(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    phone = await connect(alice, "phone")
    laptop = await connect(alice, "laptop")
    msg = phone.make_message(mto=bob, mbody="Thou art more lovely", mtype="chat")
    msg["id"] = "sonnet-18"
    msg["request_receipt"] = True  # what a stock client sends; counts as asking
    msg.send()
    await eventually(lambda: report_states(phone) == ["sent", "cached"], what="sent, cached")

    b = await connect(bob)
    got = await b.next_message()
    assert got["body"] == "Thou art more lovely"
    assert got["request_receipt"]  # the XEP-0184 request still reaches Bob's client
    assert got.xml.find(f"{{{hops.NS}}}request") is None
    await eventually(lambda: report_states(phone)[-1:] == ["released"], what="released")

    receipt = b.make_message(mto=got["from"], mtype="chat")
    receipt["receipt"] = "sonnet-18"
    receipt.send()
    await eventually(lambda: report_states(phone)[-1:] == ["received"], what="received")
    b.plugin["xep_0333"].send_marker(got["from"], "sonnet-18", "displayed")
    await eventually(lambda: report_states(phone)[-1:] == ["read"], what="read")

    assert report_states(phone) == ["sent", "cached", "released", "received", "read"]
    assert report_states(laptop) == report_states(phone)  # every device of the sender
    reports = [r["hops_report"] for r in phone.reports]
    assert {r["id"] for r in reports} == {"sonnet-18"}
    assert {r["to"] for r in reports} == {bob}
    assert [r["at"] for r in reports] == sorted(r["at"] for r in reports)  # monotonic times
    assert [r["place"] for r in reports] == ["localhost"] * 5
    # and Alice still gets Bob's receipt itself, as with plain Prosody
    assert [m["receipt"] for m in phone.all_received if m["receipt"]] == ["sonnet-18"]
    assert [r["from"].full for r in phone.reports] == [stack.component] * 5


async def test_hops_recorded_together_are_reported_in_one_message(courier, users, connect) -> None:
    """An online recipient: each message's "sent" and "released" become durable together and
    reach the sender in one report message (courier-hops 0.3); every hop once, in order."""
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    b = await connect(bob)
    ids = [f"burst-{i}" for i in range(10)]
    for msg_id in ids:
        msg = a.make_message(mto=bob, mbody=msg_id, mtype="chat")
        msg["id"] = msg_id
        hops.XEP_CourierHops.request_reports(msg)
        msg.send()
    assert [(await b.next_message())["body"] for _ in ids] == ids
    await eventually(lambda: len(a.reports) == 2 * len(ids), what="20 reports")
    assert [(r["hops_report"]["id"], r["hops_report"]["state"]) for r in a.reports] == [
        (msg_id, state) for msg_id in ids for state in ("sent", "released")
    ]
    carried = [[r["state"] for r in hops.read_reports(m.xml)] for m in a.report_messages]
    assert all(c[::2] == ["sent"] * (len(c) // 2) and len(c) % 2 == 0 for c in carried), carried  # pairs
    for m in a.report_messages:  # two or more hops: the lines of one <reports/> (courier-hops 0.5)
        kinds = [child.tag.rpartition("}")[2] for child in m.xml if child.tag.startswith(f"{{{hops.NS}}}")]
        assert kinds == (["reports"] if len(hops.read_reports(m.xml)) > 1 else ["report"]), kinds


async def test_no_reports_for_a_sender_who_did_not_ask(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    a.chat(bob, "Quietly", "q1")
    b = await connect(bob)
    assert (await b.next_message())["body"] == "Quietly"
    await b.nothing_before_marker(a)
    await a.round_trip(stack.component)  # Courier's answer comes after any report it sent for q1
    assert a.reports == []


async def test_our_own_request_element_asks_too_and_is_stripped(courier, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    b = await connect(bob)
    msg = a.make_message(mto=bob, mbody="Tracked", mtype="chat")
    msg["id"] = "t-1"
    a.plugin["courier_hops"].request_reports(msg)
    msg.send()
    got = await b.next_message()
    assert got.xml.find(f"{{{hops.NS}}}request") is None
    await eventually(lambda: report_states(a) == ["sent", "released"], what="sent, released")


async def test_trace_from_another_device_and_nobody_else(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    phone = await connect(alice, "phone")
    phone.chat(bob, "Where is this?", "where-1")
    await eventually(lambda: courier.log_text().count("where-1") or True)
    laptop = await connect(alice, "laptop")

    async def trace(client, msg_id):
        return (await client.plugin["courier_hops"].get_trace(stack.component, msg_id))["hops_trace"]

    result = await eventually_trace(trace, laptop, "where-1", "cached")
    assert (result["id"], result["to"], result["state"]) == ("where-1", bob, "cached")
    assert [(h["state"], h["place"]) for h in result["hops"]] == [("sent", "localhost"), ("cached", "localhost")]
    assert result["hops"][0]["note"] == f"from {alice}/phone"

    b = await connect(bob)
    await b.next_message()
    result = await eventually_trace(trace, laptop, "where-1", "released")
    assert [h["state"] for h in result["hops"]] == ["sent", "cached", "released"]

    for client, msg_id in ((b, "where-1"), (laptop, "no-such-id")):
        with pytest.raises(IqError) as err:
            await trace(client, msg_id)
        assert err.value.iq["error"]["condition"] == "item-not-found"


async def eventually_trace(trace, client, msg_id, state):
    return await eventually_async(lambda: trace(client, msg_id), lambda r: r["state"] == state, what=f"trace {state}")


async def test_pending_recall_and_edit_by_iq(courier, stack, users, connect) -> None:
    alice, bob, mallory = users("alice", "bob", "mallory")
    a = await connect(alice)
    m = await connect(mallory)
    a.chat(bob, "first draft", "p1")
    a.chat(bob, "regrettable", "p2")
    hops_a = a.plugin["courier_hops"]

    async def pending(client):
        return [
            (x["id"], x["to"], x["state"], x["body"])
            for x in (await client.plugin["courier_hops"].get_pending(stack.component))["hops_pending"]["messages"]
        ]

    await eventually_async(lambda: pending(a), lambda p: len(p) == 2)
    assert await pending(a) == [("p1", bob, "cached", "first draft"), ("p2", bob, "cached", "regrettable")]
    assert await pending(m) == []  # only the owner sees them

    for attempt in (m.plugin["courier_hops"].recall(stack.component, "p2"),
                    m.plugin["courier_hops"].edit(stack.component, "p1", "hacked")):  # fmt: skip
        with pytest.raises(IqError) as err:
            await attempt
        assert err.value.iq["error"]["condition"] == "item-not-found"

    await hops_a.edit(stack.component, "p1", "final text")
    await hops_a.recall(stack.component, "p2")
    assert await pending(a) == [("p1", bob, "cached", "final text")]
    with pytest.raises(IqError) as err:
        await hops_a.edit(stack.component, "p1", "")
    assert err.value.iq["error"]["condition"] == "bad-request"

    b = await connect(bob)
    got = await b.next_message()
    assert (got["id"], got["body"]) == ("p1", "final text")
    await b.nothing_before_marker(a)
    with pytest.raises(IqError) as err:
        await hops_a.recall(stack.component, "p1")
    assert err.value.iq["error"]["condition"] == "not-allowed"


async def test_forged_reports_are_stripped_before_delivery(courier, users, connect) -> None:
    mallory, bob = users("mallory", "bob")
    m = await connect(mallory)
    b = await connect(bob)
    for body in ("with body", None):
        msg = m.make_message(mto=bob, mbody=body, mtype="chat")
        report = SubElement(msg.xml, f"{{{hops.NS}}}report", id="x", state="read")
        report.text = "forged"
        lines = SubElement(msg.xml, f"{{{hops.NS}}}reports")  # the compact form (0.5) too
        lines.text = "\n".join(f"{i} - bob@localhost read 2026-12-07T10:00:00Z localhost" for i in "yz")
        SubElement(msg.xml, "{urn:xmpp:chat-markers:0}markable")
        msg.send()
    await eventually(lambda: len(b.all_received) + len(b.reports) >= 2, what="both messages")
    assert b.reports == []
    assert [hops.read_reports(g.xml) for g in b.all_received] == [[], []]


async def test_forgeries_nested_in_foreign_elements_are_stripped_too(courier, users, connect) -> None:
    """Courier's elements inside a client's own extension element are removed at any depth,
    from a handed-off message (held, then released) and from one that is not handed off."""
    mallory, bob = users("mallory", "bob")
    m = await connect(mallory)
    for body in ("nested forgery", None):
        msg = m.make_message(mto=bob, mbody=body, mtype="chat")
        wrapper = SubElement(msg.xml, "{urn:example:wrapper}wrapper")
        SubElement(wrapper, f"{{{hops.NS}}}report", id="x", state="read").text = "forged"
        deeper = SubElement(wrapper, "{urn:example:wrapper}deeper")
        SubElement(deeper, "{https://courier.chat/ns/route/0}release", id="forged-release")
        SubElement(msg.xml, "{urn:xmpp:chat-markers:0}markable")
        msg.send()
    b = await connect(bob)  # the message with a body was held for Bob and is released now
    await eventually(lambda: len(b.all_received) >= 2, what="both messages")
    for got in b.all_received[:2]:
        assert got.xml.find("{urn:example:wrapper}wrapper/{urn:example:wrapper}deeper") is not None
        ours = [e.tag for e in got.xml.iter() if isinstance(e.tag, str) and e.tag.startswith("{https://courier.chat/")]
        assert ours == []
    assert b.reports == []


async def test_disco_advertises_hops(courier, stack, users, connect) -> None:
    (alice,) = users("alice")
    a = await connect(alice)
    info = await a.plugin["xep_0030"].get_info(jid=stack.component)
    assert {hops.NS, hops.NS_LISTS} <= set(info["disco_info"]["features"])  # (#lists: <reports/>, 0.5)

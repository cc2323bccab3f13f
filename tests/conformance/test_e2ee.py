"""End-to-end encrypted messages (issue 17), end to end: real Prosody, real Courier, real slixmpp
clients sending the exact stanza shapes of Conversations (OMEMO 0.3), Kaidan/Dino (OMEMO 2 with
its fallback markers) and OpenPGP for XMPP (XEP-0374).  Courier never reads the payloads: it holds,
swaps and withdraws them whole."""

from __future__ import annotations

from collections.abc import Callable
from xml.etree import ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from component.xep import e2ee

from .helpers import (
    NEW,
    OLD,
    OMEMO_FALLBACK,
    bot,
    cli,
    encrypted,
    eventually,
    execute,
    fallback_body,
    hops,
    omemo_legacy,
    owner,
    payload_text,
    states,
)

OMEMO2_FALLBACK = "This message is encrypted with OMEMO 2 but could not be decrypted"
OPENPGP_FALLBACK = "This message is encrypted using OpenPGP for XMPP."


def omemo2(payload: str) -> list[ET.Element]:
    """OMEMO 2 (the SCE envelope is inside the payload), EME, fallback body and its XEP-0428 marker."""
    return [
        ET.fromstring(
            f"<encrypted xmlns='{e2ee.NS_OMEMO2}'><header sid='27183'>"
            f"<keys jid='juliet@capulet.lit'><key rid='31415'>b64k{payload[:6]}</key></keys>"
            f"<keys jid='romeo@montague.lit'><key kex='true' rid='12321'>b64x{payload[:6]}</key></keys>"
            f"</header><payload>{payload}</payload></encrypted>"
        ),
        ET.fromstring(f"<encryption xmlns='{e2ee.NS_EME}' name='OMEMO 2' namespace='{e2ee.NS_OMEMO2}'/>"),
        fallback_body(OMEMO2_FALLBACK),
        ET.fromstring(f"<fallback xmlns='{e2ee.NS_FALLBACK}' for='{e2ee.NS_OMEMO2}'/>"),
    ]


def openpgp(payload: str) -> list[ET.Element]:
    """XEP-0374: ``<openpgp>`` with the base64 OpenPGP message, EME, fallback body."""
    return [
        ET.fromstring(f"<openpgp xmlns='{e2ee.NS_OPENPGP}'>{payload}</openpgp>"),
        ET.fromstring(f"<encryption xmlns='{e2ee.NS_EME}' namespace='{e2ee.NS_OPENPGP}'/>"),
        fallback_body(OPENPGP_FALLBACK),
    ]


SHAPES: dict[str, Callable[[str], list[ET.Element]]] = {
    "omemo-0.3": omemo_legacy,
    "omemo-2": omemo2,
    "openpgp": openpgp,
}


def shape_of(element: ET.Element) -> tuple[object, ...]:
    """An element as a comparable tree (tag, attributes, text, children)."""
    return (element.tag, sorted(element.attrib.items()), element.text, [shape_of(c) for c in element])


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_held_and_corrected_reaches_the_recipient_once_with_only_the_new_payload(
    courier, stack, users, connect, shape
) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    make = SHAPES[shape]
    encrypted(a, bob, "m1", make(OLD))
    await eventually(lambda: states(courier, alice) == {"m1": "held"}, what="held")
    encrypted(a, bob, "m1-fix", make(NEW), replace="m1")  # XEP-0308, as Conversations sends it
    await eventually(lambda: [h[0] for h in hops(courier, alice, "m1")][-1:] == ["edited"], what="edited")
    a.chat(bob, "after", "marker-1")  # a later message: the positive marker that nothing else came

    b = await connect(bob)
    got = await b.next_message()
    assert got["id"] == "m1" and got["origin_id"]["id"] == "m1"  # under the original id
    assert payload_text(got) == [NEW]  # the correction's payload, and only it
    assert OLD not in str(got) and got.xml.find("{urn:xmpp:message-correct:0}replace") is None
    assert got["request_receipt"]  # what Courier does not own is kept
    assert [shape_of(p) for p in e2ee.payload(got.xml)] == [shape_of(p) for p in make(NEW)]
    assert (await b.next_message())["id"] == "marker-1"  # nothing of m1-fix, nothing twice
    assert [h[0] for h in hops(courier, alice, "m1")] == ["accepted", "held", "edited", "released"]


async def test_held_and_retracted_reaches_nobody(courier, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    encrypted(a, bob, "r1", omemo_legacy(OLD))
    await eventually(lambda: states(courier, alice) == {"r1": "held"}, what="held")
    retract = a.make_message(mto=bob, mbody="This person attempted to retract a previous message", mtype="chat")
    retract["id"] = "r1-retract"
    retract["retract"]["id"] = "r1"
    retract.send()
    await eventually(lambda: states(courier, alice).get("r1") == "recalled", what="recalled")
    a.chat(bob, "after", "marker-2")

    b = await connect(bob)
    assert (await b.next_message())["id"] == "marker-2"  # the first and only thing Bob gets
    assert all(OLD not in str(m) for m in b.all_received)


async def test_a_correction_only_inside_the_envelope_comes_as_a_new_message_after(courier, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    encrypted(a, bob, "e1", omemo2(OLD))
    await eventually(lambda: states(courier, alice) == {"e1": "held"}, what="held")
    encrypted(a, bob, "e2", omemo2(NEW))  # <replace/> inside the SCE envelope: invisible to servers
    await eventually(lambda: states(courier, alice) == {"e1": "held", "e2": "held"}, what="both held")

    b = await connect(bob)
    first, second = await b.next_message(), await b.next_message()
    assert (first["id"], payload_text(first)) == ("e1", [OLD])
    assert (second["id"], payload_text(second)) == ("e2", [NEW])


async def test_edit_by_command_is_refused_and_the_payload_untouched(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    a.register_plugin("xep_0004")
    a.register_plugin("xep_0050")
    encrypted(a, bob, "c1", omemo_legacy(OLD))
    await eventually(lambda: states(courier, alice) == {"c1": "held"}, what="held")

    reply = await bot(a, stack.component, "edit c1 Meet me at ten")
    assert reply == "This message is end-to-end encrypted; correct it from your client.", reply
    with pytest.raises(IqError) as err:
        await a.plugin["courier_hops"].edit(stack.component, "c1", "Meet me at ten", timeout=5)
    assert err.value.iq["error"]["condition"] == "not-acceptable"
    assert err.value.iq["error"]["text"] == e2ee.EDIT_REFUSED
    first = await execute(a, stack.component, "edit")
    values = {"id": "c1", "text": "Meet me at ten"}
    result = await execute(a, stack.component, "edit", "complete", first["sessionid"], values)
    assert result["notes"] == [("error", "This message is end-to-end encrypted; correct it from your client.")]
    client = await cli(stack, alice, "edit", "c1", "Meet me at ten")  # courier client edit
    assert client.code == 1 and f"not-acceptable: {e2ee.EDIT_REFUSED}" in client.err, client

    b = await connect(bob)
    got = await b.next_message()
    assert payload_text(got) == [OLD] and got["body"] == OMEMO_FALLBACK  # exactly as Alice's client sent it
    assert "edited" not in [h[0] for h in hops(courier, alice, "c1")]


async def test_trace_and_pending_say_encrypted_and_never_the_fallback(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    encrypted(a, bob, "p1", openpgp(OLD))
    a.chat(bob, "Plain words", "p2")
    await eventually(lambda: states(courier, alice) == {"p1": "held", "p2": "held"}, what="held")

    pending = (await a.plugin["courier_hops"].get_pending(stack.component, timeout=5))["hops_pending"]["messages"]
    assert [(m["id"], m["encrypted"], m["body"]) for m in pending] == [("p1", "true", ""), ("p2", "", "Plain words")]
    trace = (await a.plugin["courier_hops"].get_trace(stack.component, "p1", timeout=5))["hops_trace"]
    assert (trace["state"], trace["encrypted"]) == ("cached", "true")
    plain = (await a.plugin["courier_hops"].get_trace(stack.component, "p2", timeout=5))["hops_trace"]
    assert plain["encrypted"] == ""

    listing = await bot(a, stack.component, "pending")
    assert f"🔒 encrypted message to {bob}" in listing and "Plain words" in listing, listing
    assert OPENPGP_FALLBACK not in listing
    traced = await bot(a, stack.component, "trace p1")
    assert f"Your message to {bob} (🔒 encrypted) is cached." in traced and "(id p1)" in traced, traced
    client = await cli(stack, alice, "pending")  # courier client pending
    assert client.code == 0 and f"🔒 encrypted message to {bob}" in client.out and OPENPGP_FALLBACK not in client.out
    client = await cli(stack, alice, "trace", "p1")
    assert client.code == 0 and "(🔒 encrypted)" in client.out.splitlines()[0], client


async def test_an_encrypted_message_to_a_list_is_refused_with_a_sentence(courier, stack, users, connect) -> None:
    alice, m1, m2 = users("alice", "m1", "m2")
    a = await owner(connect, alice)
    created = await a.plugin["courier_lists"].create(stack.component, "Friends", [m1, m2])
    list_jid = created["lists_list"]["jid"]
    encrypted(a, list_jid, "l1", omemo_legacy(OLD))
    error = await a.next_message()
    assert error["type"] == "error" and error["id"] == "l1"
    assert error["error"]["condition"] == "not-acceptable"
    assert "end-to-end encrypted" in error["error"]["text"] and "each member" in error["error"]["text"]
    member = await connect(m1)
    a.chat(list_jid, "Plain supper at eight", "l2")  # a plain one still goes: the positive marker
    got = await member.next_message()
    assert got["body"] == "Plain supper at eight"
    assert OLD not in str(got)

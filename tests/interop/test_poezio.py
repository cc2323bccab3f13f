"""Poezio 0.14 (Debian, built on slixmpp) in tmux, against the real Prosody + Courier;
the other side is a slixmpp client that records every stanza.

Typed with ``send-keys``, read with ``capture-pane``; what Poezio put on the wire
is read back from its debug log.  Poezio refuses root: under root it runs as
``nobody`` (tests/interop/poezio.py).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import pytest

from component.commands import all_commands

from .conftest import PASSWORD, corrected_when_online, eventually, installed, states, wire, wire_to_marker
from .poezio import Poezio


@pytest.fixture
async def poezio(stack) -> AsyncIterator[Callable[[str], object]]:
    binary, tmux = installed("poezio", "poezio"), installed("tmux", "tmux")
    started: list[Poezio] = []

    async def login(jid: str) -> Poezio:
        p = Poezio(binary, tmux, jid, PASSWORD, stack.c2s_port)
        started.append(p)
        return await p.start()

    yield login
    for p in started:
        await p.stop()


async def open_command(p: Poezio, component: str, node: str) -> str:
    """/ad-hoc COMPONENT, move down to *node* in the list, Enter: the form's screen."""
    await p.type(f"/ad-hoc {component}")
    listing = await p.wait_screen(f"Ad-hoc commands of JID {component}")
    rows = re.findall(r"^\s*\S*\s*x(\S+) {2,}(\S.*?)\s*$", listing, re.M)
    assert [(c.node, c.name) for c in all_commands()] == [r for r in rows if r[0] in nodes_of()]
    nodes = [c.node for c in all_commands()]
    await p.keys(*["Down"] * nodes.index(node), "Enter")
    return await p.wait_screen("Ctrl+Y: send form, Ctrl+G: cancel")


def nodes_of() -> set[str]:
    return {c.node for c in all_commands()}


async def test_hold_and_correct(courier, users, connect, poezio) -> None:
    """Bob is offline; Alice types a message then /correct: Bob later gets one message, corrected."""
    alice, bob = users("alice", "bob")
    p = await poezio(alice)
    await p.type(f"/message {bob} Meet me at nine")
    await eventually(lambda: list(states(courier, alice).values()) == ["held"], what="held for offline Bob")
    (msg_id,) = states(courier, alice)
    await p.type("/correct Meet me at ten")
    await p.wait_screen(f"{alice.split('@')[0]}1> Meet me at ten")  # Poezio shows the text replaced (1 edit)
    correction = await eventually(lambda: [s for s in p.sent() if "message-correct" in s], what="the correction")
    assert f'<replace xmlns="urn:xmpp:message-correct:0" id="{msg_id}" />' in correction[0]
    assert "<body>Meet me at ten</body>" in correction[0]
    await corrected_when_online(courier, connect, p, alice, bob, msg_id, "Meet me at ten")


async def test_recall_by_picking_from_the_list(courier, stack, users, connect, poezio) -> None:
    """/ad-hoc → "Recall a pending message": the form offers the held messages by text (→ picks
    the second), Ctrl+Y; Poezio shows the answer's two lines; Bob gets only the first message."""
    alice, bob = users("alice", "bob")
    p = await poezio(alice)
    await p.type(f"/message {bob} Meet me at nine")
    await p.type("Bring the map")
    await eventually(lambda: list(states(courier, alice).values()) == ["held", "held"], what="both held")
    first, second = states(courier, alice)
    form = await open_command(p, stack.component, "recall")
    assert re.search(rf"xMessage\s+1\. to {bob}, just now: Meet me at nine", form)
    await p.keys("Right")
    await p.wait_screen(f"2. to {bob}, just now: Bring the map")
    await p.keys("C-y")
    shown = await p.wait_screen(f"Recalled your message to {bob}.")
    assert f"They will never receive “Bring the map” (id {second})." in shown
    submitted = re.findall(r'SEND: (<iq [^\n]*node="recall"[^\n]*)', p.log.read_text())[-1]
    assert 'action="next"' in submitted and f"<value>{second}</value>" in submitted  # Poezio's way
    assert states(courier, alice) == {first: "held", second: "recalled"}
    await p.close_form()

    b = await connect(bob)
    got = await b.next_message()
    assert (got["id"], got["body"]) == (first, "Meet me at nine")
    assert await wire_to_marker(b, p, alice, "Later") == ["body:Meet me at nine", "body:Later"]  # not the recalled one


async def test_pending_edit_and_the_bot(courier, stack, users, connect, poezio) -> None:
    """ "My pending messages": pick "Replace its text", type it, Ctrl+Y; then the bot in a chat
    tab: "pending" lists it, "trace 1" traces it. Bob gets only the new text."""
    alice, bob = users("alice", "bob")
    p = await poezio(alice)
    await open_command(p, stack.component, "pending")  # nothing held: single stage, completed at once
    await p.wait_screen("You have no messages waiting at the server.")
    await p.close_form()
    await p.type(f"/message {bob} Dinner at 7")
    await eventually(lambda: list(states(courier, alice).values()) == ["held"], what="held")
    (msg_id,) = states(courier, alice)
    form = await open_command(p, stack.component, "pending")
    assert re.search(rf"xMessage\s+1\. to {bob}, just now: Dinner at 7", form)
    await p.keys("Down", "Right")  # "What to do": show → recall → edit
    await p.keys("Right")
    await p.wait_screen("Replace its text")
    await p.keys("Down")
    await p.type("Dinner at 8", enter=False)
    await p.keys("C-y")
    shown = await p.wait_screen(f"Edited your message to {bob}.")
    assert f"They will receive only the new text: “Dinner at 8” (id {msg_id})." in shown
    await p.close_form()

    await p.type(f"/message {stack.component} pending")
    await p.wait_screen("1 message(s) waiting at the server.")
    await p.type("trace 1")
    await p.wait_screen(f"Your message to {bob} is cached.")
    b = await connect(bob)
    got = await b.next_message()
    assert (got["id"], got["body"]) == (msg_id, "Dinner at 8")
    assert await wire_to_marker(b, p, alice, "See you") == ["body:Dinner at 8", "body:See you"]  # not "Dinner at 7"


async def test_confirm_a_receipt_by_picking(courier, stack, users, connect, poezio) -> None:
    """Bob uses Poezio with the manual policy: Poezio's automatic receipt is withheld; "Confirm
    a receipt" offers Alice's message by sender and text; Ctrl+Y sends Alice the receipt."""
    alice, bob = users("alice", "bob")
    p = await poezio(bob)
    await p.type(f"/message {stack.component} receipts manual")
    await p.wait_screen("Saved. Your receipt policy: manual.")
    a = await connect(alice)
    msg = a.make_message(mto=bob, mbody="Sign the lease", mtype="chat")
    msg["id"], msg["request_receipt"] = "lease-1", True
    msg.send()
    await p.wait_log(r'SEND: <message [^\n]*<received xmlns="urn:xmpp:receipts" id="lease-1"')  # Poezio's own
    form = await open_command(p, stack.component, "confirm")
    assert re.search(rf"xMessage\s+1\. from {alice}, just now: Sign the lease", form)
    assert wire(a, bob) == [] and states(courier, alice) == {"lease-1": "released"}  # Poezio's was withheld
    await p.keys("C-y")
    await p.wait_screen(f"Receipt sent to {alice}.")
    await eventually(lambda: wire(a, bob) == ["receipt:lease-1"], what="the confirmed receipt at Alice")

"""Gajim 1.7.3 (Debian) on a virtual screen against the real Prosody + Courier; the other
side is a slixmpp client that records every stanza.

Driven as tests/interop/gajim.py says: Gajim's own actions over D-Bus open its windows,
xdotool types, and what Gajim shows is read (and its buttons pressed) through AT-SPI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from component.commands import all_commands

from .conftest import (
    PASSWORD,
    befriend,
    corrected_when_online,
    eventually,
    installed,
    require,
    states,
    wire,
    wire_to_marker,
)
from .gajim import Gajim, labels


@pytest.fixture
async def gajim(stack) -> AsyncIterator[Callable[[str], object]]:
    binary = installed("gajim", "gajim")
    tools = (("Xvfb", "xvfb"), ("xdotool", "xdotool"), ("dbus-run-session", "dbus-daemon"), ("gdbus", "libglib2.0-bin"))
    for program, package in tools:
        installed(program, package)
    require("pyatspi (apt: python3-pyatspi)", Path("/usr/lib/python3/dist-packages/pyatspi").is_dir())
    started: list[Gajim] = []

    async def login(jid: str) -> Gajim:
        g = Gajim(binary, jid, PASSWORD, stack.c2s_port)
        started.append(g)
        return await g.start()

    yield login
    for g in started:
        await g.stop()


async def test_hold_and_correct(courier, users, connect, gajim) -> None:
    """Bob is offline; Alice writes, then uses Gajim's Correct… (the message menu's action) and
    types the new text: Gajim shows only the new text, and Bob later gets one message, corrected."""
    alice, bob = users("alice", "bob")
    g = await gajim(alice)
    await g.open_chat(bob)
    await g.type("Meet me at nine")
    await eventually(lambda: list(states(courier, alice).values()) == ["held"], what="held for offline Bob")
    (msg_id,) = states(courier, alice)
    await g.action("correct-message", window=True)
    await g.xdotool("key", "ctrl+a")
    await g.type("Meet me at ten")
    correction = await eventually(lambda: [s for s in g.sent() if "message-correct" in s], what="the correction")
    assert f'<replace xmlns="urn:xmpp:message-correct:0" id="{msg_id}" />' in correction[0]
    shown = labels(await g.wait_screen("Meet me at ten"))
    assert "Meet me at nine" not in shown  # the chat and the chat list show the corrected text
    await corrected_when_online(courier, connect, g, alice, bob, msg_id, "Meet me at ten")


async def test_discover_services_then_execute_command_recall(courier, stack, users, connect, gajim) -> None:
    """docs/clients.md's recipe: Accounts → Discover Services lists Courier; select it, press
    Command: Gajim lists Courier's commands. "Recall a pending message" offers the held message
    by its text (no id to type); Complete shows the answer; Bob never gets the message."""
    alice, bob = users("alice", "bob")
    g = await gajim(alice)
    await g.open_chat(bob)
    await g.type("Dinner at 7")
    await eventually(lambda: list(states(courier, alice).values()) == ["held"], what="held")
    (msg_id,) = states(courier, alice)

    await g.action(f"{g.account}-services", f"[<'{g.account}'>]")  # Accounts → Discover Services
    await g.wait_screen(f"Courier\n{stack.component}")  # Courier's name, then its address
    await g.select(stack.component)
    await g.press("push button", "Command")
    shown = await g.wait_screen("Recall a pending message")
    names = [w["name"] for w in shown if w["role"] == "table cell"]
    assert [c.name for c in all_commands()] == names[names.index(all_commands()[0].name) :]
    await g.select("Recall a pending message")
    await g.press("push button", "Execute")
    shown = await g.wait_screen(f"1. to {bob}, just now: Dinner at 7")
    assert [w["role"] for w in shown if w["name"] == f"1. to {bob}, just now: Dinner at 7"] == ["combo box"]
    await g.press("push button", "Complete")
    shown = labels(await g.wait_screen(f"Recalled your message to {bob}."))
    assert f"They will never receive “Dinner at 7” (id {msg_id})." in shown
    assert states(courier, alice) == {msg_id: "recalled"}
    # Courier retracts the copy Alice's own devices got (XEP-0424); Gajim 1.7 shows its fallback
    await g.wait_screen("This person attempted to retract a previous message")

    b = await connect(bob)
    assert await wire_to_marker(b, g, alice, "See you") == ["body:See you"]  # the recalled one never came


async def test_bot_help_in_a_chat_with_courier(courier, stack, users, gajim) -> None:
    """Start Chat → bot@courier.localhost → "help": every command with an example, in Gajim's chat.
    (Gajim's Start Chat offers no chat with courier.localhost itself: it wants a user@ address.)"""
    (alice,) = users("alice")
    g = await gajim(alice)
    await g.open_chat(f"bot@{stack.component}")
    await g.type("help")
    shown = labels(await g.wait_screen("Courier commands (also as ad-hoc commands in your client):"))
    (answer,) = [text for text in shown if text.startswith("Courier commands")]
    for cmd in all_commands():
        assert f"{' | '.join(cmd.words)} — {cmd.help}. Example: {cmd.example}" in answer


async def test_confirm_a_receipt_by_picking(courier, stack, users, connect, gajim) -> None:
    """Bob uses Gajim with the manual policy (set by the bot): Gajim's automatic receipt is
    withheld; Execute Command → "Confirm a receipt" offers Alice's message by sender and text."""
    alice, bob = users("alice", "bob")
    a, setup = await connect(alice), await connect(bob, "setup")
    await befriend(a, setup)  # Gajim sends receipts only to contacts it shares presence with
    await setup.stop()
    g = await gajim(bob)
    await g.open_chat(f"bot@{stack.component}")
    await g.type("receipts manual")
    await g.wait_screen("Saved. Your receipt policy: manual.")
    msg = a.make_message(mto=bob, mbody="Sign the lease", mtype="chat")
    msg["id"], msg["request_receipt"] = "lease-1", True
    msg.send()
    receipt = '<received xmlns="urn:xmpp:receipts" id="lease-1"'
    await eventually(lambda: [s for s in g.sent() if receipt in s], what="Gajim's own receipt")
    await g.action(f"{g.account}-execute-command", f"[<'{stack.component}'>]")  # the account menu's item
    await g.select("Confirm a receipt")
    await g.press("push button", "Execute")
    await g.wait_screen(f"1. from {alice}, just now: Sign the lease")
    assert wire(a, bob) == [] and states(courier, alice) == {"lease-1": "released"}  # Gajim's was withheld
    await g.press("push button", "Complete")
    await g.wait_screen(f"Receipt sent to {alice}.")
    await eventually(lambda: wire(a, bob) == ["receipt:lease-1"], what="the confirmed receipt at Alice")

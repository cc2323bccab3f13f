"""Converse.js 14.0.0 (npm) in Debian's headless Chromium, against the real
Prosody + Courier; the other side is a slixmpp client that records every stanza.

Converse is driven through its UI (message box, ↑ to edit, the message menu's
Retract, the Commands tab); it builds every stanza itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from component.commands import all_commands

from .browser import BrowserError, Chromium
from .conftest import (
    CONVERSE_DIST,
    PASSWORD,
    befriend,
    corrected_when_online,
    eventually,
    installed,
    require,
    states,
    wire,
    wire_to_marker,
    with_body,
)
from .converse import Converse


@pytest.fixture
async def browser(tmp_path) -> AsyncIterator[Chromium]:
    binary = installed("chromium", "chromium")
    require("converse.js 14.0.0 (npm)", (CONVERSE_DIST / "converse.min.js").exists())
    b = await Chromium(binary, tmp_path / "chromium").start()
    yield b
    await b.close()


@pytest.fixture
def converse(browser, stack):
    async def login(jid: str) -> Converse:
        return await Converse.login(browser, stack, jid, PASSWORD)

    return login


async def test_hold_and_correct(courier, users, connect, converse) -> None:
    """Bob is offline; Alice sends, then edits (↑) in Converse: Bob later gets one message, corrected."""
    alice, bob = users("alice", "bob")
    c = await converse(alice)
    await c.open_chat(bob)
    sent = await c.say(bob, "Meet me at nine")
    msg_id = sent["msgid"]
    await eventually(lambda: states(courier, alice) == {msg_id: "held"}, what="held for offline Bob")
    await c.correct_last(bob, "Meet me at ten")
    correction = (await c.sent())[-1]
    assert f'<replace xmlns="urn:xmpp:message-correct:0" id="{msg_id}"/>' in correction
    await corrected_when_online(courier, connect, c, alice, bob, msg_id, "Meet me at ten")


async def test_hold_and_retract(courier, users, connect, converse) -> None:
    """Bob is offline; Alice retracts from the message menu: Bob never receives it."""
    alice, bob = users("alice", "bob")
    c = await converse(alice)
    await c.open_chat(bob)
    keep = await c.say(bob, "Good night")
    gone = await c.say(bob, "I love you")
    await eventually(lambda: states(courier, alice) == {keep["msgid"]: "held", gone["msgid"]: "held"}, what="both held")
    await c.retract(bob, gone["msgid"])
    retraction = (await c.sent())[-1]
    assert f'<retract xmlns="urn:xmpp:message-retract:1" id="{gone["origin_id"]}"/>' in retraction
    await eventually(lambda: states(courier, alice)[gone["msgid"]] == "recalled", what="recalled")

    b = await connect(bob)
    got = await with_body(b)
    assert (str(got["from"]), got["id"], got["body"]) == (alice, keep["msgid"], "Good night")
    assert await wire_to_marker(b, c, alice) == ["body:Good night", "body:marker"]  # no retraction, nothing else


async def test_commands_listed_and_settings_saved(courier, stack, users, connect, converse) -> None:
    """Converse's Commands tab lists every Courier command (it needs disco#items to echo
    node=commands), runs a single-stage one, and Settings (form → Complete, values only)."""
    (alice,) = users("alice")
    c = await converse(alice)
    listed = await c.adhoc_list(stack.component)
    assert listed == [{"node": cmd.node, "name": cmd.name} for cmd in all_commands()], await c.adhoc_alert()
    single = await c.adhoc_open("pending")  # nothing held: completes at once (single stage)
    assert "You have no messages waiting at the server." in single["alerts"]
    form = await c.adhoc_open("settings")
    assert form["fields"] == {"undo_window": "0", "reports": False, "chat_reports": False}
    assert form["buttons"] == ["Complete", "Cancel"]
    assert any(label.startswith("Undo-send window (seconds)") for label in form["labels"])
    await c.adhoc_fill("settings", {"undo_window": "5", "reports": True})
    await c.adhoc_press("settings", "Complete")
    done = "Saved. Undo-send window: 5 s. Hop reports: on. Chat reports: off."
    await c.page.wait_for(f"{c.ADHOC}.textContent.includes({done!r})", 5, "the completed note")
    assert await c.adhoc_alert() == "Completed"
    a = await connect(alice, "check")  # the other side: Alice's second device asks the bot
    a.chat(stack.component, "settings", origin_id=False)
    assert (await a.next_message())["body"] == "Undo-send window: 5 s. Hop reports: on. Chat reports: off."


async def test_pending_edit_through_commands(courier, stack, users, connect, converse) -> None:
    """Multi-stage: "My pending messages" lists the held message; Alice picks "Replace its text";
    Bob, connecting later, receives only the new text."""
    alice, bob = users("alice", "bob")
    c = await converse(alice)
    await c.open_chat(bob)
    sent = await c.say(bob, "Dinner at 7")
    await eventually(lambda: states(courier, alice) == {sent["msgid"]: "held"}, what="held")
    await c.adhoc_list(stack.component)
    form = await c.adhoc_open("pending")
    assert form["fields"] == {"message": sent["msgid"], "action": "show", "text": ""}
    assert f"1. to {bob}, just now: Dinner at 7" in form["text"]  # picked from a list, no id typed
    await c.adhoc_fill("pending", {"action": "edit", "text": "Dinner at 8"})
    await c.adhoc_press("pending", "Complete")
    done = f"Edited your message to {bob}."
    await c.page.wait_for(f"{c.ADHOC}.textContent.includes({done!r})", 5, "the completed note")
    await c.adhoc_close()

    b = await connect(bob)
    got = await with_body(b)
    assert (str(got["from"]), got["id"], got["body"]) == (alice, sent["msgid"], "Dinner at 8")
    assert await wire_to_marker(b, c, alice) == ["body:Dinner at 8", "body:marker"]


async def test_bot_via_bot_at_courier(courier, stack, users, converse) -> None:
    """Converse 14 opens chats only with user@domain JIDs (not courier.localhost), so the bot also
    answers as bot@courier.localhost: a chat opened there, `help` typed, the help shown in Converse."""
    (alice,) = users("alice")
    bot_jid = f"bot@{stack.component}"
    c = await converse(alice)
    with pytest.raises(BrowserError, match="api.contacts.add: Valid JID required"):
        await c.open_chat(stack.component)
    await c.open_chat(bot_jid)
    await c.say(bot_jid, "help")
    shown = await c.wait_message_from(bot_jid, "m.body?.startsWith('Courier commands')")
    for cmd in all_commands():
        assert f"{' | '.join(cmd.words)} — {cmd.help}. Example: {cmd.example}" in shown["body"]
    on_screen = await c.page.wait_for(
        f"document.querySelector('converse-chat[jid=\"{bot_jid}\"] .chat-content')?.textContent", 5, "the chat"
    )
    assert "Courier commands (also as ad-hoc commands in your client):" in on_screen
    await c.say(bot_jid, "settings")
    again = await c.wait_message_from(bot_jid, "m.body?.startsWith('Undo-send window')")
    assert again["body"] == "Undo-send window: 0 s. Hop reports: off. Chat reports: off."
    await c.say(bot_jid, "pending")  # the marker: the bot answers in order, so a chat state's answer comes first
    await c.wait_message_from(bot_jid, "m.body === 'You have no messages waiting at the server.'")
    replies = [x for x in await c.page.js("courier.received") if x.startswith("<message ") and "<body>" in x]
    assert len(replies) == 3 and all(f'from="{bot_jid}"' in x for x in replies), replies  # chat states drew none


async def test_notices_shown_under_announcements(courier, stack, users, connect, converse) -> None:
    """Courier's headline notices (from courier.localhost) show under "Announcements"."""
    alice, bob = users("alice", "bob")
    b = await connect(bob)
    b.chat(stack.component, "receipts refuse", origin_id=False)
    assert (await b.next_message())["body"].startswith("Saved. Your receipt policy: refuse.")
    c = await converse(alice)
    await c.open_chat(bob)
    await c.say(bob, "Are you there?")  # Converse always asks for a receipt
    notice = f"{bob} does not send receipts or read markers: do not wait for them."
    shown = await c.page.wait_for(
        f"courier.chat({stack.component!r})?.messages.toJSON().find(m => m.type === 'headline')",
        5,
        "the refusal notice",
    )
    assert shown["body"] == notice
    feeds = await c.page.js("document.querySelector('converse-headlines-feeds-list').textContent")
    assert "Announcements" in feeds and stack.component in feeds


# What reaches the sender from Converse (the recipient), by the recipient's policy.  Converse answers
# a receipt request with <received/> (XEP-0184) and a markable message with XEP-0333 "received",
# then "displayed" once the chat is on screen.
EXPECTED = {
    "auto": ["receipt:r1", "received:r1", "displayed:r1"],
    "manual": ["displayed:r1"],
    "refuse": [],
}


@pytest.mark.parametrize("policy", ["auto", "manual", "refuse"])
async def test_receipts_and_markers_follow_the_recipients_policy(
    courier, stack, users, connect, converse, policy
) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    b = await connect(bob)
    await befriend(a, b)
    b.chat(stack.component, f"receipts {policy}", origin_id=False)  # the bot, from Bob's other device
    assert (await b.next_message())["body"].startswith(f"Saved. Your receipt policy: {policy}.")
    await b.stop()

    c = await converse(bob)
    await c.open_chat(alice)  # on screen: Converse marks what arrives as displayed

    msg = a.make_message(mto=bob, mbody="Did you get this?", mtype="chat")
    msg["id"] = "r1"
    msg["request_receipt"] = True
    msg.enable("markable")
    msg.send()
    shown = await c.wait_message_from(alice, "m.body === 'Did you get this?'")
    # refuse: Courier removed the requests, so Converse was never asked
    assert bool(shown.get("is_markable")) == (policy != "refuse")
    # Converse sends "displayed" once its window has painted the message: slow on a loaded CI
    # machine, where the chat may count as scrolled up meanwhile; Bob then looks at it (until
    # Converse has marked it, where it was asked to)
    seen = await c.look_at(alice, displayed=None if policy == "refuse" else "r1")
    await eventually(lambda: wire(a, bob) == EXPECTED[policy], timeout=15, what=f"{EXPECTED[policy]} ({seen})")
    assert await wire_to_marker(a, c, bob) == [*EXPECTED[policy], "body:marker"]  # and nothing more came
    answers = [s for s in await c.sent() if "<body>" not in s]  # (the marker itself asks for a receipt)
    converse_sent = [s for s in answers if "urn:xmpp:receipts" in s or "urn:xmpp:chat-markers" in s]
    if policy == "refuse":
        assert converse_sent == []  # nothing to withhold: Converse was never asked
    else:
        assert any("<displayed" in s for s in converse_sent)  # Converse did its part; Courier filtered


async def test_broadcast_list_from_commands_then_sent_and_retracted_in_its_chat(
    courier, stack, users, connect, converse
) -> None:
    """Commands tab → "Broadcast lists" → create; a chat with the list's JID (a user@domain JID, so
    Converse opens it); one message there reaches each member as Alice's own; Retract recalls it."""
    alice, m1, m2 = users("alice", "m1", "m2")
    member = await connect(m1)
    c = await converse(alice)
    await c.adhoc_list(stack.component)
    form = await c.adhoc_open("lists")
    assert form["fields"] == {"action": "show", "name": "", "members": "", "new_name": "", "lifetime": "permanent"}
    await c.adhoc_fill("lists", {"action": "create", "name": "Team", "members": f"{m1}\n{m2}"})
    await c.adhoc_press("lists", "Complete")
    list_jid = f"team+{alice.partition('@')[0]}@{stack.component}"
    done = "Created “Team” with 2 member(s), permanent."
    await c.page.wait_for(f"{c.ADHOC}.textContent.includes({done!r})", 5, "the completed note")
    assert list_jid in await c.page.js(f"{c.ADHOC}.textContent")
    await c.adhoc_close()

    await c.open_chat(list_jid)
    sent = await c.say(list_jid, "Party at eight")
    copy = await member.next_message()
    assert (str(copy["from"]), copy["type"], copy["body"]) == (alice, "chat", "Party at eight")
    assert copy["id"] != sent["msgid"] and "team" not in str(copy).lower() and m2 not in str(copy)
    status = await c.wait_message_from(list_jid, "m.body?.startsWith('Sent: 2 members')")
    assert status["body"].startswith("Sent: 2 members: 1 held, 1 released. Fan-out ")
    await c.page.wait_for(
        f"courier.chat({list_jid!r}).messages.findWhere({{msgid: {sent['msgid']!r}}}).get('received')",
        5,
        "the receipt from the list's JID",
    )

    await c.retract(list_jid, sent["msgid"])
    retraction = await member.next_message()
    assert (str(retraction["from"]), retraction["retract"]["id"]) == (alice, copy["id"])
    await eventually(
        lambda: states(courier, alice)[copy["id"]] == "retracted" and "recalled" in states(courier, alice).values(),
        what="m1's copy retracted, m2's held copy recalled",
    )
    late = await connect(m2)
    await c.say(list_jid, "Who is coming?")  # a later fan-out: the positive marker for both
    for m in (late, member):  # m2's held copy was recalled: never delivered; m1 got nothing more
        assert (await m.next_message())["body"] == "Who is coming?"

"""Courier's command surface from a stock client's point of view: XEP-0050 ad-hoc
commands (every submission style of INTEROP.md) and the text bot."""

from __future__ import annotations

import pytest

from component.commands import all_commands

from .helpers import bot, eventually, execute, states


async def test_commands_are_listed_and_advertised(courier, stack, users, with_commands) -> None:
    (alice,) = users("alice")
    (a,) = await with_commands(alice)
    info = await a.plugin["xep_0030"].get_info(jid=stack.component)
    assert "http://jabber.org/protocol/commands" in info["disco_info"]["features"]
    items = await a.plugin["xep_0030"].get_items(jid=stack.component, node="http://jabber.org/protocol/commands")
    nodes = {item[1]: item[2] for item in items["disco_items"]["items"]}
    assert nodes == {c.node: c.name for c in all_commands()}
    assert {"pending", "recall", "edit", "trace", "settings"} <= set(nodes)


@pytest.mark.parametrize("style", ["no-action", "next", "complete", "echo-whole-form"])
async def test_settings_accepts_every_submission_style(courier, stack, users, with_commands, style) -> None:
    (alice,) = users("alice")
    (a,) = await with_commands(alice)
    first = await execute(a, stack.component, "settings")
    assert first["status"] == "executing"
    assert first["sessionid"] and first["node"] == "settings"
    form = first["form"]
    assert form.get_fields()["undo_window"]["value"] == "0"
    assert form.get_fields()["undo_window"]["label"] == "Undo-send window (seconds)"
    values = {"undo_window": "2.5", "reports": "1"}
    kwargs = {
        "no-action": {},
        "next": {"action": "next"},
        "complete": {"action": "complete"},
        "echo-whole-form": {"action": "complete", "echo": form},
    }[style]
    done = await execute(a, stack.component, "settings", sessionid=first["sessionid"], values=values, **kwargs)
    assert done["status"] == "completed"
    assert done["notes"] == [("info", "Saved. Undo-send window: 2.5 s. Hop reports: on. Chat reports: off.")]
    assert await bot(a, stack.component, "settings") == "Undo-send window: 2.5 s. Hop reports: on. Chat reports: off."


async def test_a_bad_value_comes_back_in_the_form_with_a_note(courier, stack, users, with_commands) -> None:
    (alice,) = users("alice")
    (a,) = await with_commands(alice)
    first = await execute(a, stack.component, "settings")
    again = await execute(
        a, stack.component, "settings", "complete", first["sessionid"], {"undo_window": "soon", "reports": "0"}
    )
    assert again["status"] == "executing"
    assert again["notes"] == [("error", "The undo-send window must be a number of seconds, not “soon”.")]
    assert again["form"].get_fields()["undo_window"]["value"] == "soon"
    fixed = await execute(a, stack.component, "settings", "complete", first["sessionid"], {"undo_window": "0"})
    assert fixed["status"] == "completed"


async def test_pending_recall_and_edit_through_adhoc(courier, stack, users, with_commands) -> None:
    alice, bob = users("alice", "bob")
    (a,) = await with_commands(alice)
    a.chat(bob, "To be fixed", "f1")
    a.chat(bob, "To be recalled", "r1")
    await eventually(lambda: states(courier, alice) == {"f1": "held", "r1": "held"}, what="held")
    first = await execute(a, stack.component, "pending")
    options = [o["value"] for o in first["form"].get_fields()["message"]["options"]]
    assert options == ["f1", "r1"]
    done = await execute(
        a, stack.component, "pending", "complete", first["sessionid"], {"message": "r1", "action": "recall"}
    )
    assert done["notes"] == [
        ("info", f"Recalled your message to {bob}.\nThey will never receive “To be recalled” (id r1).")
    ]
    done = await execute(a, stack.component, "edit", values=None)
    done = await execute(a, stack.component, "edit", "complete", done["sessionid"], {"id": "f1", "text": "Fixed"})
    assert done["notes"] == [
        ("info", f"Edited your message to {bob}.\nThey will receive only the new text: “Fixed” (id f1).")
    ]
    listing = await execute(a, stack.component, "pending")
    listing = await execute(a, stack.component, "pending", None, listing["sessionid"], {})
    rows = listing["form"]["items"]
    assert [(r["id"], r["to"], r["text"]) for r in rows] == [("f1", bob, "Fixed")]
    trace = await execute(a, stack.component, "trace")
    trace = await execute(a, stack.component, "trace", "complete", trace["sessionid"], {"id": "f1"})
    assert trace["notes"][0][1].splitlines()[0] == f"Your message to {bob} is cached."
    assert [r["state"] for r in trace["form"]["items"]] == ["sent", "cached", "edited"]
    assert states(courier, alice) == {"f1": "held", "r1": "recalled"}


async def test_strangers_and_other_users_messages(courier, stack, users, with_commands) -> None:
    alice, mallory, bob = users("alice", "mallory", "bob")
    a, m = await with_commands(alice, mallory)
    a.chat(bob, "Private", "priv-1")
    await eventually(lambda: states(courier, alice) == {"priv-1": "held"}, what="held")
    first = await execute(m, stack.component, "recall")  # nothing of Mallory's to pick: done at once
    assert first["status"] == "completed"
    assert first["notes"] == [("info", "Nothing to recall: no message of yours is waiting at the server.")]
    assert await bot(m, stack.component, "recall priv-1") == "No pending message of yours has that id; see “pending”."
    assert await bot(m, stack.component, "recall 1") == "You have no messages waiting at the server."
    assert await bot(m, stack.component, "trace priv-1") == "No message of yours has that id."
    assert await bot(m, stack.component, "pending") == "You have no messages waiting at the server."
    assert states(courier, alice) == {"priv-1": "held"}


async def test_bot_answers_every_documented_command(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    help_text = await bot(a, stack.component, "help")
    for word, example in (
        ("pending", "Example: pending"),
        ("recall", "Example: recall 1"),
        ("edit", "Example: edit 1 Meet me at ten"),
        ("trace", "Example: trace 1"),
        ("settings | undo | reports", "Example: undo 30"),
    ):
        assert f"{word} — " in help_text and example in help_text
    assert await bot(a, stack.component, "pending") == "You have no messages waiting at the server."
    a.chat(bob, "Hold me", "b1")
    a.chat(bob, "Drop me", "b2")
    await eventually(lambda: states(courier, alice) == {"b1": "held", "b2": "held"}, what="held")
    listing = await bot(a, stack.component, "pending")
    assert listing.splitlines()[0] == "2 message(s) waiting at the server."
    assert "b1" in listing and "Hold me" in listing and bob in listing
    edited = await bot(a, stack.component, "edit b1 Held and edited")
    assert edited.splitlines()[0] == f"Edited your message to {bob}."
    assert await bot(a, stack.component, "recall b2") == (
        f"Recalled your message to {bob}.\nThey will never receive “Drop me” (id b2)."
    )
    trace = await bot(a, stack.component, "trace b1")
    assert trace.splitlines()[0] == f"Your message to {bob} is cached."
    assert [line.split()[0] for line in trace.splitlines()[3:]] == ["sent", "cached", "edited"]
    assert await bot(a, stack.component, "recall") == (
        "Not understood; the usage follows.\nUsage: recall 1 (a number from “pending”, or a message id)"
    )
    assert await bot(a, stack.component, "undo soon") == "The undo-send window must be a number of seconds, not “soon”."
    assert (await bot(a, stack.component, "undo 0.5")).startswith("Saved. Undo-send window: 0.5 s.")
    assert (await bot(a, stack.component, "reports on")).endswith("Hop reports: on. Chat reports: off.")
    assert await bot(a, stack.component, "frobnicate") == "Unknown command “frobnicate”. Send “help” for the list."
    b = await connect(bob)
    got = await b.next_message()
    assert (got["id"], got["body"]) == ("b1", "Held and edited")
    await b.nothing_before_marker(a)  # nothing of the recalled b2 (its undo window too: 0.5 s)
    assert await bot(a, stack.component, "recall b1") == (
        "Too late: the message is already released.\nYour client can still send a retraction, which is passed on."
    )


async def test_reports_setting_applies_to_messages_without_a_request(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    assert (await bot(a, stack.component, "reports on")).startswith("Saved.")
    b = await connect(bob)
    a.chat(bob, "Reported anyway", "rep-1")
    await b.next_message()
    await eventually(lambda: [r["hops_report"]["state"] for r in a.reports] == ["sent", "released"], what="reports")


async def test_the_bot_also_answers_as_bot_at_courier(courier, stack, users, connect) -> None:
    """For clients that only open chats with user@domain addresses (Converse.js)."""
    (alice,) = users("alice")
    a = await connect(alice)
    a.chat(f"bot@{stack.component}", "settings", origin_id=False)
    reply = await a.next_message()
    assert reply["from"].bare == f"bot@{stack.component}"
    assert reply["body"].startswith("Undo-send window:")

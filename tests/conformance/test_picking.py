"""Issue 16: no form asks for an id a person cannot see; ``reports chat`` in one chat line."""

from __future__ import annotations

from .helpers import bot, eventually, execute, states


async def test_recall_and_edit_offer_the_pending_messages_to_pick(courier, stack, users, with_commands) -> None:
    alice, bob = users("alice", "bob")
    (a,) = await with_commands(alice)
    a.chat(bob, "First words", "p1")
    a.chat(bob, "Second thoughts, a rather long message indeed", "p2")
    await eventually(lambda: states(courier, alice) == {"p1": "held", "p2": "held"}, what="held")
    first = await execute(a, stack.component, "recall")
    field = first["form"].get_fields()["id"]
    assert field["type"] == "list-single" and field["required"]
    options = [(o["value"], o["label"]) for o in field["options"]]
    assert options == [
        ("p1", f"1. to {bob}, just now: First words"),
        ("p2", f"2. to {bob}, just now: Second thoughts, a rather lon…"),
    ]
    # Gajim/nbxmpp echo the whole form back with the option picked
    done = await execute(a, stack.component, "recall", "complete", first["sessionid"], {"id": "p2"}, echo=first["form"])
    assert done["notes"][0][1].splitlines()[0] == f"Recalled your message to {bob}."
    edit = await execute(a, stack.component, "edit")
    assert [o["value"] for o in edit["form"].get_fields()["id"]["options"]] == ["p1"]
    done = await execute(a, stack.component, "edit", "complete", edit["sessionid"], {"id": "p1", "text": "Fixed"})
    assert done["notes"][0][1].splitlines()[0] == f"Edited your message to {bob}."
    trace = await execute(a, stack.component, "trace")
    assert [o["value"] for o in trace["form"].get_fields()["id"]["options"]] == ["p2", "p1"]  # newest first
    assert states(courier, alice) == {"p1": "held", "p2": "recalled"}


async def test_the_bot_takes_the_number_shown_by_pending(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    for n, text in enumerate(("one", "two", "three"), 1):
        a.chat(bob, text, f"n{n}")
    await eventually(lambda: set(states(courier, alice).values()) == {"held"} and len(states(courier, alice)) == 3)
    listing = (await bot(a, stack.component, "pending")).splitlines()
    assert listing[0] == "3 message(s) waiting at the server."
    assert [line.split()[0] for line in listing[3:]] == ["1", "2", "3"]
    assert await bot(a, stack.component, "recall 2") == (
        f"Recalled your message to {bob}.\nThey will never receive “two” (id n2)."
    )
    assert (await bot(a, stack.component, "edit 2 THREE")).endswith("“THREE” (id n3).")  # n3 is now second
    assert await bot(a, stack.component, "recall 5") == "There is no message 5: “pending” lists 2."
    assert (await bot(a, stack.component, "recall n1")).startswith("Recalled")  # ids, for scripts
    latest = (await bot(a, stack.component, "trace 1")).splitlines()  # 1 = the latest sent
    assert latest[0] == f"Your message to {bob} is cached." and "(id n3)" in latest[1]
    assert states(courier, alice) == {"n1": "recalled", "n2": "recalled", "n3": "held"}


async def test_confirm_offers_the_messages_without_a_receipt(courier, stack, users, with_commands) -> None:
    """Bob's policy is manual: "Confirm a receipt" lists what he received without a receipt,
    newest first, as a form (Gajim/nbxmpp echo it back) and in the bot (“confirm 2”)."""
    alice, bob = users("alice", "bob")
    a, b = await with_commands(alice, bob)
    empty = await execute(b, stack.component, "confirm")  # nothing received yet: said at once
    assert empty["status"] == "completed" and empty["form"].get_fields().keys() == {"result"}
    assert empty["notes"][0][1] == "Nothing to confirm: every message you received has its receipt."
    assert (await bot(b, stack.component, "receipts manual")).startswith("Saved. Your receipt policy: manual.")
    for n, text in enumerate(("Sign here", "And here, on the second page"), 1):
        msg = a.make_message(mto=bob, mbody=text, mtype="chat")
        msg["id"], msg["request_receipt"] = f"s{n}", True
        msg.send()
        got = await b.next_message()
        auto = b.make_message(mto=got["from"], mtype="chat")
        auto["receipt"] = f"s{n}"
        auto.send()  # Bob's client's automatic receipt: withheld
    await eventually(lambda: states(courier, alice) == {"s1": "released", "s2": "released"}, what="delivered")
    first = await execute(b, stack.component, "confirm")
    field = first["form"].get_fields()["id"]
    assert field["type"] == "list-single" and field["required"]
    assert [(o["value"], o["label"]) for o in field["options"]] == [
        ("s2", f"1. from {alice}, just now: And here, on the second page"),
        ("s1", f"2. from {alice}, just now: Sign here"),
    ]
    done = await execute(b, stack.component, "confirm", "complete", first["sessionid"], {"id": "s1"}, first["form"])
    assert done["notes"][0][1] == f"Receipt sent to {alice}.\nFor “Sign here” (id s1)."
    receipts = lambda: [m["receipt"] for m in a.all_received if m["receipt"]]  # noqa: E731
    await eventually(lambda: receipts() == ["s1"], what="s1's receipt")
    listing = (await bot(b, stack.component, "confirm")).splitlines()
    assert listing[0] == "1 message(s) without a receipt, newest first."
    assert listing[3].split()[:2] == ["1", alice]
    assert await bot(b, stack.component, "confirm 2") == "There is no message 2: “confirm” lists 1."
    assert await bot(b, stack.component, "confirm 1") == (
        f"Receipt sent to {alice}.\nFor “And here, on the second page” (id s2)."
    )
    await eventually(lambda: receipts() == ["s1", "s2"], what="s2's receipt")
    assert await bot(b, stack.component, "confirm") == "Nothing to confirm: every message you received has its receipt."


async def test_trace_with_nothing_sent_says_so_at_once(courier, stack, users, with_commands) -> None:
    (alice,) = users("alice")
    (a,) = await with_commands(alice)
    done = await execute(a, stack.component, "trace")
    assert done["status"] == "completed"
    assert done["notes"][0][1] == "Nothing to trace: you have sent no message through Courier yet."


async def test_reports_chat_tells_once_when_a_cached_message_is_delivered_and_read(
    courier, stack, users, connect
) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    assert await bot(a, stack.component, "reports chat") == (
        "Saved. Undo-send window: 0 s. Hop reports: off. Chat reports: on."
    )
    a.chat(bob, "See you at the station", "c1")
    await eventually(lambda: states(courier, alice) == {"c1": "held"}, what="cached")
    b = await connect(bob)
    got = await b.next_message()
    note = await from_courier(a, stack.component)
    assert (str(note["from"]), note["type"], note["body"]) == (
        stack.component,
        "chat",
        f"Delivered to {bob}: “See you at the station”.",
    )
    receipt = b.make_message(mto=got["from"], mtype="chat")
    receipt["receipt"] = "c1"
    receipt.send()  # delivered again, in other words: no second line
    b.plugin["xep_0333"].send_marker(got["from"], "c1", "displayed")
    b.plugin["xep_0333"].send_marker(got["from"], "c1", "displayed")  # a second marker: still one line
    note = await from_courier(a, stack.component)
    assert note["body"] == f"{bob} read “See you at the station”."
    # Bob online now: a message straight through is not reported in chat.  The next line from
    # Courier is the bot's answer to a later command: nothing came between (no second line).
    a.chat(bob, "Straight through", "c2")
    await b.next_message()
    a.chat(stack.component, "reports off", origin_id=False)
    answer = await from_courier(a, stack.component)
    assert answer["body"] == "Saved. Undo-send window: 0 s. Hop reports: off. Chat reports: off."


async def from_courier(client, component: str):
    """The next message from Courier's JID (Bob's own receipts and markers to Alice are skipped)."""
    for _ in range(10):
        msg = await client.next_message()
        if msg["from"].bare == component:
            return msg
    raise AssertionError("nothing from Courier")

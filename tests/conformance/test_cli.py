"""``courier client`` (component/cli/): the real command, as a subprocess, against a real Prosody and Courier."""

from __future__ import annotations

import asyncio

from component import prosody

from .helpers import Streaming, argv, cli, eventually, spawn


async def test_send_watch_trace_pending_edit_recall(courier, stack, users, connect) -> None:
    alice, bob, mallory = users("alice", "bob", "mallory")

    # Alice's other device watches every report of the account
    watcher = Streaming(await spawn(argv(stack, alice, "watch", "--json")))
    await eventually(lambda: watcher.lines, timeout=8, what="the watcher to log in")
    assert watcher.lines == [{"type": "watching", "jid": alice}]
    send = argv(stack, alice, "send", bob, "first draft", "--id", "cli-1", "--watch", "9", "--json")
    sender = Streaming(await spawn(send))
    await eventually(lambda: sender.states() == ["sent", "cached"], timeout=8, what="sent, cached")
    assert sender.lines[0] == {"type": "sent", "id": "cli-1", "origin_id": "cli-1", "to": bob}
    report = sender.lines[-1]
    assert (report["id"], report["origin_id"], report["to"], report["place"]) == ("cli-1", "cli-1", bob, stack.domain)
    assert (await sender.interrupt()).code == 0

    plain = await cli(stack, alice, "send", bob, "regrettable", "--id", "cli-2")
    assert (plain.code, plain.out) == (0, "cli-2\n"), plain.err

    trace, human, pending, foreign = await asyncio.gather(
        cli(stack, alice, "trace", "cli-1", "--json"),
        cli(stack, alice, "trace", "cli-1"),
        cli(stack, alice, "pending", "--json"),
        cli(stack, mallory, "trace", "cli-1"),
    )
    assert trace.code == 0, trace.err
    (t,) = trace.objects()
    assert (t["type"], t["id"], t["to"]) == ("trace", "cli-1", bob)
    assert t["state"] == "cached"
    assert [(h["state"], h["place"]) for h in t["hops"]] == [("sent", stack.domain), ("cached", stack.domain)]
    assert t["hops"][0]["note"].startswith(f"from {alice}/courier-cli-")
    assert human.code == 0 and human.out.startswith(f"cli-1 → {bob}: ") and "  sent " in human.out
    assert pending.code == 0, pending.err
    assert [(p["id"], p["to"], p["state"], p["body"]) for p in pending.objects()] == [
        ("cli-1", bob, "cached", "first draft"),
        ("cli-2", bob, "cached", "regrettable"),
    ]
    assert foreign.code == 1 and foreign.out == ""
    assert "item-not-found" in foreign.err and "no message of yours has that id" in foreign.err

    edit, recall = await asyncio.gather(
        cli(stack, alice, "edit", "cli-1", "final text"), cli(stack, alice, "recall", "cli-2")
    )
    assert (edit.code, edit.out, recall.code, recall.out) == (0, "edited cli-1\n", 0, "recalled cli-2\n")
    await eventually(lambda: {"edited", "recalled"} <= set(watcher.states()), what="edited and recalled reports")

    b = await connect(bob)
    got = await b.next_message()
    assert (got["id"], got["body"]) == ("cli-1", "final text")
    await b.nothing_before_marker(await connect(alice))  # never cli-2 (it was held before the marker)

    late = await cli(stack, alice, "recall", "cli-1")
    assert late.code == 1 and late.out == ""
    assert "not-allowed" in late.err and "already released" in late.err and "XEP-0424 retraction" in late.err

    await eventually(lambda: watcher.states()[-1:] == ["released"], what="the released report")
    assert (await watcher.interrupt()).code == 0
    seen = [(x["id"], x["state"]) for x in watcher.lines if x["type"] == "report"]
    assert seen[:4] == [("cli-1", "sent"), ("cli-1", "cached"), ("cli-2", "sent"), ("cli-2", "cached")]
    assert sorted(seen[4:6]) == [("cli-1", "edited"), ("cli-2", "recalled")]
    assert seen[6:] == [("cli-1", "released")]


async def test_login_and_connection_errors_exit_2(stack, users) -> None:
    (alice,) = users("alice")
    wrong, refused = await asyncio.gather(
        cli(stack, alice, "pending", password="not-the-password"),
        cli(stack, alice, "pending", "--port", str(prosody.free_port())),
    )
    assert (wrong.code, wrong.out) == (2, "")
    assert f"authentication failed for {alice}" in wrong.err
    assert refused.code == 2 and "cannot connect to 127.0.0.1:" in refused.err


async def test_retract_and_correct_after_release(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    sent = await asyncio.gather(*(cli(stack, alice, "send", bob, f"text of {i}", "--id", i) for i in ("l-1", "l-2")))
    assert [r.code for r in sent] == [0, 0]
    b = await connect(bob)
    assert sorted([(await b.next_message())["id"] for _ in range(2)]) == ["l-1", "l-2"]
    retract, correct = await asyncio.gather(
        cli(stack, alice, "recall", "l-1", "--retract"), cli(stack, alice, "edit", "l-2", "corrected", "--correct")
    )
    assert (retract.code, correct.code) == (0, 0), retract.err + correct.err
    assert retract.out == f"retraction sent for l-1 to {bob}\n" and correct.out == f"correction sent for l-2 to {bob}\n"
    got = [await b.next_message(2) for _ in range(2)]
    assert {m["retract"]["id"] for m in got if m.xml.find("{urn:xmpp:message-retract:1}retract") is not None} == {"l-1"}
    assert [(m["replace"]["id"], m["body"]) for m in got if m["replace"]["id"]] == [("l-2", "corrected")]


async def test_receipt_policy_set_show_policy_of_clear(courier, stack, users) -> None:
    alice, bob = users("alice", "bob")
    refuse, no_contact, both = await asyncio.gather(
        cli(stack, bob, "policy", "refuse", "--contact", alice),
        cli(stack, bob, "policy", "--clear"),
        cli(stack, bob, "policy", "auto", "--clear", "--contact", alice),
    )
    assert (refuse.code, refuse.out) == (0, f"{alice}: refuse\n"), refuse.err
    assert (no_contact.code, no_contact.out) == (2, "") and "--clear needs --contact" in no_contact.err
    assert (both.code, both.out) == (2, "") and "not both" in both.err

    human, as_json, one, theirs, mine = await asyncio.gather(
        cli(stack, bob, "policy"),
        cli(stack, bob, "policy", "--json"),
        cli(stack, bob, "policy", "--contact", alice, "--json"),
        cli(stack, alice, "policy-of", bob, "--json"),  # what Bob applies to Alice, asked from her side
        cli(stack, bob, "policy-of", alice),  # and Alice to Bob: her default
    )
    assert (human.code, human.out) == (0, f"default: auto\n{alice}: refuse\n"), human.err
    assert as_json.objects() == [
        {"type": "policies", "default": "auto", "contacts": [{"contact": alice, "policy": "refuse"}]}
    ]
    assert one.objects() == [{"type": "policy", "contact": alice, "policy": "refuse", "own": True}]
    assert theirs.objects() == [{"type": "policy-of", "jid": bob, "policy": "refuse"}]
    assert (mine.code, mine.out) == (0, f"{alice}: auto\n"), mine.err

    cleared = await cli(stack, bob, "policy", "--clear", "--contact", alice, "--json")
    assert cleared.objects() == [{"type": "policy-cleared", "contact": alice}], cleared.err
    after, now_theirs = await asyncio.gather(cli(stack, bob, "policy", "--json"), cli(stack, alice, "policy-of", bob))
    assert after.objects() == [{"type": "policies", "default": "auto", "contacts": []}]
    assert (now_theirs.code, now_theirs.out) == (0, f"{bob}: auto\n"), now_theirs.err


async def test_manual_policy_receipt_goes_only_after_confirm(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    b = await connect(bob)
    manual, unknown = await asyncio.gather(
        cli(stack, bob, "policy", "manual", "--json"), cli(stack, bob, "confirm", "nope")
    )
    assert manual.objects() == [{"type": "policy-set", "contact": "", "policy": "manual"}], manual.err
    assert (unknown.code, unknown.out) == (1, "")
    assert "item-not-found: you received no message with that id (nope)" in unknown.err

    msg = a.make_message(mto=bob, mbody="Sign here", mtype="chat")
    msg["id"] = "man-1"
    msg["request_receipt"] = True
    msg.send()
    got = await b.next_message()
    assert (got["id"], got["body"]) == ("man-1", "Sign here")
    automatic = b.make_message(mto=got["from"], mtype="chat")
    automatic["receipt"] = "man-1"
    automatic.send()  # Bob's client acknowledges at once: withheld under "manual"
    await a.nothing_before_marker(b)  # Bob's later message comes, his receipt did not

    confirmed = await cli(stack, bob, "confirm", "man-1", "--from", alice)
    assert (confirmed.code, confirmed.out) == (0, f"receipt sent for man-1 to {alice}\n"), confirmed.err
    receipt = await a.next_message()
    assert (receipt["from"].bare, receipt["receipt"], receipt["body"]) == (bob, "man-1", "")
    await a.nothing_before_marker(b, "marker 2")  # exactly once

"""P4 broadcast lists end to end: real Prosody, real Courier process, real slixmpp clients.

One message from the owner to a list's JID (or with XEP-0033 addresses to
Courier) reaches every member as an individual 1:1 message from the owner's
bare JID, held for members who are offline; the owner sees one aggregate
status and can recall the whole fan-out.
"""

from __future__ import annotations

import pytest
from slixmpp import Message
from slixmpp.exceptions import IqError

from component.xep.lists import NS

from .helpers import bot, cli, eventually, execute, message_where, owner, states
from .xmpp import CourierProcess

NS_ADDRESS = "http://jabber.org/protocol/address"


def counts(iq) -> dict[str, int]:
    return {k: v for k, v in iq["lists_fanout"].counts().items() if v}


def assert_individual(copy: Message, owner_jid: str, others: list[str], words: list[str]) -> None:
    """A member's copy: from the owner's bare JID, no trace of the list or the other members."""
    assert copy["from"].full == owner_jid
    assert copy["type"] == "chat"
    raw = str(copy)
    for other in [*others, *words]:
        assert other not in raw, f"{other!r} leaked into a member's copy: {raw}"
    assert copy.xml.find(f"{{{NS_ADDRESS}}}addresses") is None
    assert not any(child.tag.startswith("{https://courier.chat/ns/") for child in copy.xml)


async def test_fanout_to_five_members_two_offline_status_reply_and_recall(courier, stack, users, connect) -> None:
    alice, *members = users("alice", "m1", "m2", "m3", "m4", "m5")
    a = await owner(connect, alice)
    online = [await connect(m) for m in members[:3]]
    lists = a.plugin["courier_lists"]

    created = await lists.create(stack.component, "Friends", members)
    list_jid = created["lists_list"]["jid"]
    assert list_jid == f"friends+{alice.partition('@')[0]}@{stack.component}"
    assert created["lists_list"].jids() == members

    # One message to the list's JID, as any client writes to a contact (with a receipt request).
    sent = a.make_message(mto=list_jid, mbody="Supper at the Capulets' at eight", mtype="chat")
    sent["id"] = "supper-1"
    sent["request_receipt"] = True
    sent.send()

    copies = [await m.next_message() for m in online]  # the three online members, at once
    for i, copy in enumerate(copies):
        assert copy["body"] == "Supper at the Capulets' at eight"
        assert_individual(copy, alice, [m for j, m in enumerate(members) if j != i], [list_jid, "Friends", "friends"])
    assert len({c["id"] for c in copies}) == 3  # each copy is a message of its own

    # The owner's device: a receipt and the aggregate status, from the list's JID.
    receipt = await message_where(a, lambda m: bool(m["receipt"]))
    assert (receipt["receipt"], receipt["from"].bare) == ("supper-1", list_jid)
    notice = await message_where(a, lambda m: m.xml.find(f"{{{NS}}}fanout") is not None)
    assert notice["from"].bare == list_jid
    fanout_id = notice["lists_fanout"]["id"]
    assert notice["lists_fanout"].counts()["released"] == 3 and notice["lists_fanout"].counts()["held"] == 2
    assert fanout_id in notice["body"]

    status = await lists.get_fanout(stack.component, fanout_id)
    assert counts(status) == {"released": 3, "held": 2}
    assert status["lists_fanout"]["list"] == "Friends" and status["lists_fanout"]["total"] == "5"
    assert {c["to"]: c["state"] for c in status["lists_fanout"]["copies"]} == {
        members[0]: "released", members[1]: "released", members[2]: "released",
        members[3]: "cached", members[4]: "cached",
    }  # fmt: skip

    # A member's reply reaches the owner only; a read marker shows in the aggregate.
    m1 = online[0]
    m1.chat(alice, "I'll be there", "reply-1")
    reply = await message_where(a, lambda m: m["body"] == "I'll be there")
    assert reply["from"].bare == members[0]
    m1.plugin["xep_0333"].send_marker(alice, copies[0]["id"], "displayed")
    await eventually(lambda: states(courier, alice).get(copies[0]["id"]) == "read", what="the read marker recorded")

    # Fan-outs survive a restart of Courier: status, and the held copies for offline members.
    courier.stop()
    await courier.start_async()
    status = await lists.get_fanout(stack.component, fanout_id)
    assert counts(status) == {"released": 2, "read": 1, "held": 2}
    m4 = await connect(members[3])
    late = await m4.next_message()
    assert late["body"] == "Supper at the Capulets' at eight"
    assert_individual(late, alice, members[:3] + members[4:], [list_jid, "Friends"])
    for other in [*online[1:], m4]:
        await other.nothing_before_marker(m1)  # m1's later message to each: nobody else saw the reply

    # A second fan-out, recalled as a whole: 4 released copies retracted, m5's held copy dropped.
    second = await lists.send(stack.component, "friends", "Supper is off")
    second_id = second["lists_fanout"]["id"]
    assert counts(second) == {"released": 4, "held": 1}
    second_copies = [await m.next_message() for m in [*online, m4]]
    assert {c["body"] for c in second_copies} == {"Supper is off"}
    recalled = await lists.recall(stack.component, second_id)
    assert counts(recalled) == {"retracted": 4, "recalled": 1}
    for member, copy in zip([*online, m4], second_copies, strict=True):
        retraction = await member.next_message()
        assert retraction["from"].full == alice
        assert retraction["retract"]["id"] == copy["id"]
    m5 = await connect(members[4])
    only = await m5.next_message()
    assert only["body"] == "Supper at the Capulets' at eight"  # the first fan-out only
    await m5.nothing_before_marker(a)  # nothing of the recalled one, not even a retraction
    assert counts(await lists.get_fanout(stack.component, fanout_id)) == {"released": 4, "read": 1}
    assert counts(await lists.get_fanout(stack.component, second_id)) == {"retracted": 4, "recalled": 1}


async def test_only_the_owner_can_read_or_use_a_list(courier, stack, users, connect) -> None:
    alice, mallory, romeo = users("alice", "mallory", "romeo")
    a = await owner(connect, alice)
    m = await owner(connect, mallory)
    r = await connect(romeo)
    list_jid = (await a.plugin["courier_lists"].create(stack.component, "secret", [romeo]))["lists_list"]["jid"]
    fanout = await a.plugin["courier_lists"].send(stack.component, "secret", "For your eyes only")
    assert (await r.next_message())["body"] == "For your eyes only"

    m.chat(list_jid, "Let me in", "mallory-1")
    error = await message_where(m, lambda msg: msg["type"] == "error")
    assert error["from"].bare == list_jid
    assert error["error"]["condition"] == "item-not-found"
    # not even the JID of a list that does not exist tells more
    m.chat(f"nothing+{alice.partition('@')[0]}@{stack.component}", "Anyone?", "mallory-2")
    await eventually(lambda: len([x for x in m.all_received if x["type"] == "error"]) == 2, what="second error")
    conditions = {x["error"]["condition"] for x in m.all_received if x["type"] == "error"}
    assert conditions == {"item-not-found"}

    for ask in (
        lambda: m.plugin["courier_lists"].get_list(stack.component, "secret"),
        lambda: m.plugin["courier_lists"].get_fanout(stack.component, fanout["lists_fanout"]["id"]),
        lambda: m.plugin["courier_lists"].recall(stack.component, fanout["lists_fanout"]["id"]),
        lambda: m.plugin["courier_lists"].send(stack.component, "secret", "Let me in"),
    ):
        with pytest.raises(IqError) as err:
            await ask()
        assert err.value.iq["error"]["condition"] == "item-not-found"
    mine = await m.plugin["courier_lists"].get_lists(stack.component)
    assert mine["lists_lists"]["items"] == []
    await r.nothing_before_marker(m)  # Mallory's own message to Romeo comes; nothing of hers reached him before


async def test_xep_0033_addresses_fan_out_as_individual_messages(courier, stack, users, connect) -> None:
    alice, b1, b2, b3, b4 = users("alice", "b1", "b2", "b3", "b4")
    a = await owner(connect, alice)
    info = await a.plugin["xep_0030"].get_info(jid=stack.component)
    features = set(info["disco_info"]["features"])
    assert {NS_ADDRESS, NS} <= features
    clients = [await connect(b) for b in (b1, b2, b3, b4)]
    await a.plugin["courier_lists"].create(stack.component, "pair", [b3, b4])

    msg = a.make_message(mto=stack.component, mbody="Hark!", mtype="chat")
    msg["addresses"].add_address(atype="to", jid=b1)
    msg["addresses"].add_address(atype="cc", jid=b2)
    msg["addresses"].add_address(atype="bcc", jid=f"pair+{alice.partition('@')[0]}@{stack.component}")
    msg["addresses"].add_address(atype="replyto", jid=alice)
    msg.send()
    everyone = [b1, b2, b3, b4]
    for i, c in enumerate(clients):
        copy = await c.next_message()
        assert copy["body"] == "Hark!"
        assert_individual(copy, alice, [x for j, x in enumerate(everyone) if j != i], ["pair"])
    notice = await message_where(a, lambda m: m.xml.find(f"{{{NS}}}fanout") is not None)
    assert notice["from"].full == stack.component
    assert notice["lists_fanout"].counts()["released"] == 4
    # the bot did not take the message for a command
    assert not [m for m in a.all_received if m["body"].startswith("Unknown command")]

    bad = a.make_message(mto=stack.component, mbody="To nobody", mtype="chat")
    bad["addresses"].add_address(atype="to", jid="not a jid@")
    bad.send()
    error = await message_where(a, lambda m: m["type"] == "error")
    assert error["error"]["condition"] == "jid-malformed"


async def test_bot_and_adhoc_commands(courier, stack, users, connect) -> None:
    alice, romeo, juliet = users("alice", "romeo", "juliet")
    a = await owner(connect, alice)
    r = await connect(romeo)
    node = alice.partition("@")[0]
    created = await bot(a, stack.component, f"list create team {romeo} {juliet}")
    assert created.startswith("Created “team” with 2 member(s), permanent.")
    assert f"team+{node}@{stack.component}" in created
    assert (
        await bot(a, stack.component, "list create team nobody@localhost")
    ) == "You already have a list named “team”."
    assert (await bot(a, stack.component, f"list remove team {juliet}")) == (
        "Removed 1 member(s); “team” has 1 member(s)."
    )
    listing = await bot(a, stack.component, "lists")
    assert listing.splitlines()[0] == "1 list(s)." and f"team+{node}@{stack.component}" in listing
    sent = await bot(a, stack.component, "list send team Hello from the bot")
    assert sent.startswith("Sent to “team”: 1 member: 1 released.\nFan-out ")
    fanout_id = sent.split("Fan-out ")[1].split(" ")[0]
    assert (await r.next_message())["body"] == "Hello from the bot"
    status = await bot(a, stack.component, f"list status {fanout_id}")
    assert status.splitlines()[0].startswith(f"Fan-out {fanout_id} to “team”")
    assert romeo in status
    recent = await bot(a, stack.component, "list status")
    assert fanout_id in recent
    assert (await bot(a, stack.component, f"list recall {fanout_id}")).startswith(
        f"Recalled fan-out {fanout_id}.\n0 held cop(ies) will never be delivered, 1 delivered cop(ies) retracted."
    )
    assert (await r.next_message())["retract"]["id"]
    assert (await bot(a, stack.component, "list frob")).splitlines()[1].startswith("Usage: lists | list show NAME")
    assert (await bot(a, stack.component, "list send nothing hi")) == "You have no list named “nothing”."

    # ad hoc: create a temporary list, send to it, look at the status
    first = await execute(a, stack.component, "lists")
    done = await execute(
        a, stack.component, "lists", "complete", first["sessionid"],
        {"action": "create", "name": "Tonight", "members": [romeo], "lifetime": "today"},
    )  # fmt: skip
    assert done["status"] == "completed"
    assert done["notes"][0][1].startswith("Created “Tonight” with 1 member(s), until ")
    first = await execute(a, stack.component, "list-send")
    options = [o["value"] for o in first["form"].get_fields()["name"]["options"]]
    assert options == ["team", "Tonight"]
    done = await execute(
        a, stack.component, "list-send", "complete", first["sessionid"], {"name": "Tonight", "text": "See you"}
    )
    assert done["notes"][0][1].startswith("Sent to “Tonight”: 1 member: 1 released.")
    assert (await r.next_message())["body"] == "See you"
    first = await execute(a, stack.component, "fanout-status")
    newest = first["form"].get_fields()["id"]["value"]  # the newest fan-out is offered first
    done = await execute(a, stack.component, "fanout-status", "complete", first["sessionid"], {"id": newest})
    assert [(row["to"], row["state"]) for row in done["form"]["items"]] == [(romeo, "released")]
    assert done["notes"][0][1].startswith(f"Fan-out {newest} to “Tonight”")


async def test_limits_are_configurable_with_clear_errors(stack, users, connect, tmp_path) -> None:
    process = await CourierProcess(
        stack, tmp_path / "limited", COURIER_LISTS_MAX_MEMBERS="2", COURIER_LISTS_FANOUTS_PER_MINUTE="1"
    ).start_async()
    try:
        alice, b1, b2, b3 = users("alice", "b1", "b2", "b3")
        a = await owner(connect, alice)
        lists = a.plugin["courier_lists"]
        with pytest.raises(IqError) as err:
            await lists.create(stack.component, "big", [b1, b2, b3])
        assert err.value.iq["error"]["condition"] == "not-acceptable"
        assert err.value.iq["error"]["text"] == "A list has at most 2 members."
        await lists.create(stack.component, "small", [b1, b2])
        with pytest.raises(IqError) as err:
            await lists.add(stack.component, "small", [b3])
        assert err.value.iq["error"]["condition"] == "not-acceptable"
        await lists.send(stack.component, "small", "One")
        with pytest.raises(IqError) as err:
            await lists.send(stack.component, "small", "Two")
        assert err.value.iq["error"]["condition"] == "resource-constraint"
        assert err.value.iq["error"]["type"] == "wait"
        assert "at most 1 messages to lists a minute" in err.value.iq["error"]["text"]
    finally:
        process.stop()


async def test_a_list_is_a_contact_its_owner_can_subscribe_to(courier, stack, users, connect) -> None:
    alice, mallory, romeo = users("alice", "mallory", "romeo")
    a = await owner(connect, alice)
    m = await connect(mallory)
    list_jid = (await a.plugin["courier_lists"].create(stack.component, "Verona", [romeo]))["lists_list"]["jid"]
    presences: dict[str, list[str]] = {"a": [], "m": []}
    a.add_event_handler("presence", lambda p: presences["a"].append(f"{p['from'].bare} {p['type']}"))
    m.add_event_handler("presence", lambda p: presences["m"].append(f"{p['from'].bare} {p['type']}"))
    a.send_presence(pto=list_jid, ptype="subscribe")
    await eventually(lambda: f"{list_jid} available" in presences["a"], what="the list's presence")
    roster = await a.get_roster()
    assert roster["roster"]["items"][list_jid]["subscription"] == "to"
    m.send_presence(pto=list_jid, ptype="subscribe")
    await eventually(lambda: f"{list_jid} unavailable" in presences["m"], what="mallory refused")
    assert f"{list_jid} available" not in presences["m"]
    refused = (await m.get_roster())["roster"]["items"][list_jid]
    assert (refused["subscription"], refused["ask"]) == ("none", "")  # the request was declined
    # after a restart of Courier the owner's server's probe still gets the presence, never "unsubscribed"
    courier.stop()
    await courier.start_async()
    again = await connect(alice, "laptop", presence=False)  # the handler first, then the presence
    seen: list[str] = []
    again.add_event_handler("presence", lambda p: seen.append(f"{p['from'].bare} {p['type']}"))
    again.send_presence()  # an initial presence: the server probes the list's JID
    await eventually(lambda: f"{list_jid} available" in seen, what="presence after a restart")
    assert f"{list_jid} unsubscribed" not in seen + presences["a"]
    # a deleted list withdraws its presence and the subscription
    await a.plugin["courier_lists"].delete(stack.component, "Verona")
    await eventually(lambda: f"{list_jid} unavailable" in seen, what="the deleted list goes offline")
    gone = (await again.get_roster())["roster"]["items"][list_jid]
    assert gone["subscription"] == "none"


async def test_the_client_tool(courier, stack, users, connect) -> None:
    alice, romeo, juliet = users("alice", "romeo", "juliet")
    r = await connect(romeo)
    made = await cli(stack, alice, "list-create", "Montagues", romeo, juliet, "--temporary", "--json")
    assert made.code == 0, made.err
    (created,) = made.objects()
    assert (created["type"], created["name"], created["members"]) == ("created", "Montagues", [romeo, juliet])
    assert created["jid"] == f"montagues+{alice.partition('@')[0]}@{stack.component}" and created["expires"]
    sent = await cli(stack, alice, "list-send", "montagues", "Hence, banished is banish'd from the world", "--json")
    assert sent.code == 0, sent.err
    (fanout,) = sent.objects()
    assert (fanout["total"], fanout["released"], fanout["held"]) == (2, 1, 1)
    assert (await r.next_message())["body"] == "Hence, banished is banish'd from the world"
    shown = await cli(stack, alice, "fanout", fanout["id"])
    assert shown.out.startswith(f"fan-out {fanout['id']} to “Montagues” at ") and romeo in shown.out
    recalled = await cli(stack, alice, "fanout-recall", fanout["id"], "--json")
    assert {c["state"] for c in recalled.objects()[0]["copies"]} == {"retracted", "recalled"}
    missing = await cli(stack, alice, "list", "Capulets")
    assert missing.code == 1 and "item-not-found: You have no list named “Capulets”." in missing.err


async def test_correction_and_retraction_sent_to_the_list_jid(courier, stack, users, connect) -> None:
    """A stock client's "edit" and "delete for everyone" in the list's conversation act on every copy."""
    alice, romeo, juliet = users("alice", "romeo", "juliet")
    a = await owner(connect, alice)
    r = await connect(romeo)
    list_jid = (await a.plugin["courier_lists"].create(stack.component, "lovers", [romeo, juliet]))["lists_list"]["jid"]
    a.chat(list_jid, "Meet me at nine", "nine")
    first = await r.next_message()
    a.correct(list_jid, "nine", "Meet me at ten", "nine-fix")
    correction = await r.next_message()
    assert (correction["body"], correction["replace"]["id"]) == ("Meet me at ten", first["id"])
    a.chat(list_jid, "I love thee", "love")
    second = await r.next_message()
    a.retract(list_jid, "love", "love-retract")
    retraction = await r.next_message()
    assert retraction["retract"]["id"] == second["id"]
    j = await connect(juliet)
    only = await j.next_message()
    assert only["body"] == "Meet me at ten"  # the held copy was edited, the recalled one never comes
    await j.nothing_before_marker(a)


async def test_the_owner_gets_edited_and_retracted_reports_for_delivered_copies(courier, stack, users, connect) -> None:
    """Corrections and retractions of a list's delivered copies reach the owner as hop reports."""
    alice, romeo = users("alice", "romeo")
    a = await owner(connect, alice)
    r = await connect(romeo)
    assert (await bot(a, stack.component, "reports on")).startswith("Saved.")
    list_jid = (await a.plugin["courier_lists"].create(stack.component, "verona", [romeo]))["lists_list"]["jid"]
    a.chat(list_jid, "Meet me at nine", "nine")
    copy = await r.next_message()

    def states(copy_id: str) -> list[str]:
        return [x["hops_report"]["state"] for x in a.reports if x["hops_report"]["id"] == copy_id]

    await eventually(lambda: states(copy["id"]) == ["sent", "released"], what="the copy's first reports")
    a.correct(list_jid, "nine", "Meet me at ten", "nine-fix")
    assert (await r.next_message())["replace"]["id"] == copy["id"]
    await eventually(lambda: states(copy["id"])[-1:] == ["edited"], what="an edited report for the copy")
    a.retract(list_jid, "nine", "nine-retract")
    assert (await r.next_message())["retract"]["id"] == copy["id"]
    await eventually(lambda: states(copy["id"])[-1:] == ["retracted"], what="a retracted report for the copy")
    report = [x["hops_report"] for x in a.reports if x["hops_report"]["state"] == "retracted"][0]
    assert report["to"] == romeo

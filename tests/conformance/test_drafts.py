"""P5 drafts end to end against a real Prosody: every trigger × every action,
roaming between devices, restarts, and edits/deletions racing a firing trigger."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from slixmpp.exceptions import IqError

from component import prosody
from component.xep import drafts as xep_drafts
from component.xep.drafts import NS, DraftInfo, TriggerInfo

from .conftest import read_store
from .helpers import cli, eventually, execute
from .xmpp import Client, CourierProcess


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def at(t: float) -> TriggerInfo:
    return TriggerInfo("at", time=iso(t))


async def with_drafts(connect, jid: str, resource: str = "phone") -> Client:
    client = await connect(jid, resource)
    client.register_plugin("courier_drafts", module=xep_drafts)
    client.register_plugin("xep_0004")
    client.register_plugin("xep_0050")
    return client


def api(client: Client) -> xep_drafts.XEP_CourierDrafts:
    return client.plugin["courier_drafts"]  # type: ignore[no-any-return]


def from_courier(client: Client, stack: prosody.ProsodySetup, element: str) -> list:
    return [
        m
        for m in client.all_received
        if m["from"].bare == stack.component and m.xml.find(f"{{{NS}}}{element}") is not None
    ]


def bodies_from(client: Client, sender: str) -> list[str]:
    return [m["body"] for m in client.all_received if m["from"].bare == sender and m["body"]]


def draft_rows(courier: CourierProcess, author: str) -> dict[int, str]:
    with read_store(courier) as db:
        return {
            r["number"]: r["state"] for r in db.execute("SELECT number, state FROM drafts WHERE author=?", (author,))
        }


def messages_with_ids(courier: CourierProcess, sender: str) -> dict[str, int]:
    with read_store(courier) as db:
        rows = db.execute("SELECT msg_id, count(*) AS n FROM messages WHERE sender=? GROUP BY msg_id", (sender,))
        return {r["msg_id"]: r["n"] for r in rows}


async def ask(client: Client, component: str, text: str) -> str:
    """One bot exchange; Courier's own notices (reminders, notices) in between are skipped."""
    while not client.received.empty():
        client.received.get_nowait()
    client.chat(component, text, origin_id=False)
    while True:
        reply = await client.next_message()
        if reply["from"].bare == component and not any(c.tag.startswith(f"{{{NS}}}") for c in reply.xml):
            return str(reply["body"])


async def error_of(attempt) -> str:
    with pytest.raises(IqError) as err:
        await attempt
    return str(err.value.iq["error"]["condition"])


# -- each trigger × each action -----------------------------------------------------------


async def test_time_trigger_sends_and_reminds(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await with_drafts(connect, alice)
    b = await connect(bob)
    due = time.time() + 1.5
    sent = await api(a).store(stack.component, DraftInfo(to=bob, body="At the stroke of time", trigger=at(due)))
    assert (sent.id, sent.state, sent.action, sent.to) == ("1", "pending", "send", bob)  # Courier confirms storage
    assert sent.trigger is not None and sent.trigger.type == "at"
    remind = await api(a).store(
        stack.component, DraftInfo(to=bob, body="Ask about the ball", action="remind", trigger=at(due))
    )
    assert remind.id == "2"
    got = await b.next_message(due - time.time() + 4)  # the first thing Bob gets, and not before its time
    assert (got["from"].bare, got["body"]) == (alice, "At the stroke of time")
    assert time.time() >= due
    await eventually(lambda: from_courier(a, stack, "reminder"), what="the reminder")
    (reminder,) = from_courier(a, stack, "reminder")
    assert reminder["type"] == "chat" and "Ask about the ball" in reminder["body"]
    assert "send draft 2" in reminder["body"] and "postpone draft 2" in reminder["body"]
    assert reminder["drafts_reminder"]["drafts_draft"]["id"] == "2"
    await eventually(lambda: from_courier(a, stack, "fired"), what="the sent notice")
    assert from_courier(a, stack, "fired")[0]["drafts_fired"]["id"] == "1"
    # the one-step way to send a reminded draft
    assert (await ask(a, stack.component, "send draft 2")).startswith(f"Draft 2 sent to {bob}")
    assert (await b.next_message())["body"] == "Ask about the ball"
    await b.nothing_before_marker(a)
    assert draft_rows(courier, alice) == {1: "sent", 2: "sent"}


async def test_target_online_sends_and_reminds_once(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await with_drafts(connect, alice)
    online = TriggerInfo("target-online")
    await api(a).store(stack.component, DraftInfo(to=bob, body="Welcome back", trigger=online))
    await api(a).store(stack.component, DraftInfo(to=bob, body="Tell him the news", action="remind", trigger=online))
    # bob is offline: both wait (a round trip to Courier, after what storing them set off)
    assert [d.state for d in (await api(a).sync(stack.component))[bob]] == ["pending", "pending"]
    assert bodies_from(a, stack.component) == []
    b = await connect(bob)
    assert (await b.next_message())["body"] == "Welcome back"
    await eventually(lambda: from_courier(a, stack, "reminder"), what="the reminder")
    assert "Tell him the news" in from_courier(a, stack, "reminder")[0]["body"]
    await b.stop()
    a.chat(bob, "While you were away", "away-1")  # held for bob: released when he is back
    laptop = await connect(bob, "laptop")  # coming online again fires nothing more
    assert (await laptop.next_message())["body"] == "While you were away"  # Courier saw him come back
    await api(a).sync(stack.component)  # and a round trip after what that set off
    assert len(from_courier(a, stack, "reminder")) == 1
    assert draft_rows(courier, alice) == {1: "sent", 2: "pending"}  # the reminded draft waits for "send"


async def test_message_from_a_contact_sends_and_reminds(courier, stack, users, connect) -> None:
    alice, bob, carol, dave = users("alice", "bob", "carol", "dave")
    a = await with_drafts(connect, alice)
    b = await connect(bob)
    c = await connect(carol)
    d = await connect(dave)
    when_carol = TriggerInfo("message-from", jid=carol)
    await api(a).store(stack.component, DraftInfo(to=bob, body="Carol answered", trigger=when_carol))
    await api(a).store(stack.component, DraftInfo(to=bob, body="Thank carol", action="remind", trigger=when_carol))
    d.chat(alice, "Dave here", "d1")  # somebody else: nothing fires
    c.chat(bob, "Carol to bob", "c0")  # carol writing to somebody else: nothing fires
    assert (await b.next_message())["body"] == "Carol to bob"
    await eventually(lambda: bodies_from(a, dave) == ["Dave here"], what="dave's message")  # (handed off)
    # neither fired: both drafts still wait (a round trip, after any claim those messages set off)
    assert [d.body for d in (await api(a).sync(stack.component))[bob]] == ["Carol answered", "Thank carol"]
    assert b.received.empty()
    c.chat(alice, "Carol here", "c1")
    got = await b.next_message()
    assert (got["from"].bare, got["body"]) == (alice, "Carol answered")
    await eventually(lambda: from_courier(a, stack, "reminder"), what="the reminder")
    assert "Thank carol" in from_courier(a, stack, "reminder")[0]["body"]
    c.chat(alice, "Carol again", "c2")
    await eventually(lambda: "Carol again" in bodies_from(a, carol), what="carol's second message")
    await api(a).sync(stack.component)  # a round trip, after any claim it set off
    assert b.received.empty()
    assert draft_rows(courier, alice) == {1: "sent", 2: "pending"}


async def test_manual_fire_sends_a_tracked_message_whatever_the_action(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await with_drafts(connect, alice)
    plain = await api(a).store(stack.component, DraftInfo(to=bob, body="Sent by hand"))
    assert plain.trigger == TriggerInfo("manual")
    later = await api(a).store(stack.component, DraftInfo(to=bob, body="Reminder draft, sent", action="remind"))
    message_id = await api(a).fire(stack.component, plain.id)
    await api(a).fire(stack.component, later.id)
    # a tracked message from alice (P1): held while bob is offline, traceable by its id
    trace = (await a.plugin["courier_hops"].get_trace(stack.component, message_id))["hops_trace"]
    assert (trace["to"], trace["state"]) == (bob, "cached")
    assert trace["hops"][0]["note"] == f"draft 1 of {alice}, sent by hand"
    b = await connect(bob)
    assert [(await b.next_message())["body"] for _ in range(2)] == ["Sent by hand", "Reminder draft, sent"]
    assert await error_of(api(a).fire(stack.component, plain.id)) == "not-allowed"  # once only
    assert messages_with_ids(courier, alice)[message_id] == 1


# -- roaming ----------------------------------------------------------------------------------


async def test_roaming_between_devices_and_nobody_else(courier, stack, users, connect) -> None:
    alice, bob, carol, mallory = users("alice", "bob", "carol", "mallory")
    phone = await with_drafts(connect, alice, "phone")
    info = await phone.plugin["xep_0030"].get_info(jid=stack.component)
    assert NS in info["disco_info"]["features"]
    await api(phone).store(stack.component, DraftInfo(to=bob, body="For bob"))
    await api(phone).store(stack.component, DraftInfo(to=carol, body="For carol", trigger=TriggerInfo("target-online")))
    await api(phone).store(stack.component, DraftInfo(to=bob, body="Also for bob", action="remind"))

    laptop = await with_drafts(connect, alice, "laptop")
    await eventually(lambda: from_courier(laptop, stack, "pending"), what="the pending-drafts notice")
    await api(laptop).sync(stack.component)  # a round trip: any second notice would be here by now
    (notice,) = from_courier(laptop, stack, "pending")  # once, to the device that came online
    assert notice["drafts_pending"]["count"] == "3" and notice["type"] == "headline"
    assert "3 pending drafts" in notice["body"]
    assert from_courier(phone, stack, "pending") == []
    laptop.send_presence(pstatus="away")  # a presence update is not a new session
    await api(laptop).sync(stack.component)  # (Courier gets the presence before this IQ)
    assert len(from_courier(laptop, stack, "pending")) == 1

    synced = await api(laptop).sync(stack.component)
    assert {t: [(d.id, d.body) for d in ds] for t, ds in synced.items()} == {
        bob: [("1", "For bob"), ("3", "Also for bob")],
        carol: [("2", "For carol")],
    }
    changed = await api(laptop).update(stack.component, "1", DraftInfo(body="For bob, edited on the laptop"))
    assert changed.body == "For bob, edited on the laptop" and changed.to == bob
    await api(laptop).fire(stack.component, "1")
    await api(laptop).delete(stack.component, "3")

    m = await with_drafts(connect, mallory, "c")
    assert await api(m).sync(stack.component) == {}
    for attempt in (
        api(m).fire(stack.component, "2"),
        api(m).delete(stack.component, "2"),
        api(m).update(stack.component, "2", DraftInfo(body="hijacked")),
    ):
        assert await error_of(attempt) == "item-not-found"
    assert await ask(m, stack.component, "send draft 2") == "You have no draft 2."
    assert await ask(m, stack.component, "drafts") == "You have no pending drafts."
    assert {t: [d.id for d in ds] for t, ds in (await api(phone).sync(stack.component)).items()} == {carol: ["2"]}
    b = await connect(bob)
    assert (await b.next_message())["body"] == "For bob, edited on the laptop"
    await api(phone).sync(stack.component)  # a round trip, after any claim bob's coming online set off
    assert b.received.empty()
    assert draft_rows(courier, alice) == {1: "sent", 2: "pending", 3: "deleted"}


# -- restart ----------------------------------------------------------------------------------


async def test_drafts_and_triggers_survive_a_restart_and_an_overdue_one_fires_once(
    courier, stack, users, connect
) -> None:
    alice, bob, carol, dave = users("alice", "bob", "carol", "dave")
    a = await with_drafts(connect, alice)
    b = await connect(bob)
    c = await connect(carol)
    due = time.time() + 1.0
    await api(a).store(stack.component, DraftInfo(to=bob, body="Due while Courier was down", trigger=at(due)))
    await api(a).store(
        stack.component, DraftInfo(to=dave, body="For dave, later", trigger=TriggerInfo("target-online"))
    )
    await api(a).store(
        stack.component,
        DraftInfo(to=bob, body="When carol writes", action="remind", trigger=TriggerInfo("message-from", jid=carol)),
    )
    courier.stop()
    await asyncio.sleep(max(0.0, due + 2.5 - time.time()))
    await courier.start_async()
    got = await b.next_message()
    assert (got["from"].bare, got["body"]) == (alice, "Due while Courier was down")
    await eventually(lambda: [m for m in from_courier(a, stack, "fired") if m["drafts_fired"]["late"]], what="late")
    (late,) = from_courier(a, stack, "fired")
    assert late["type"] == "chat" and "late" in late["body"] and int(late["drafts_fired"]["late"]) >= 2
    assert "fired" in courier.log_text() and "late" in courier.log_text()
    synced = await api(a).sync(stack.component)
    await b.nothing_before_marker(a)  # once
    assert {t: [d.body for d in ds] for t, ds in synced.items()} == {
        bob: ["When carol writes"],
        dave: ["For dave, later"],
    }
    c.chat(alice, "Hello alice", "c1")
    await eventually(lambda: from_courier(a, stack, "reminder"), what="the reminder after the restart")
    d = await connect(dave)
    assert (await d.next_message())["body"] == "For dave, later"
    # the copy reaches dave before the draft's "sent" is committed: wait for the commit
    expected = {1: "sent", 2: "sent", 3: "pending"}
    await eventually(lambda: draft_rows(courier, alice) == expected, what="drafts 1 and 2 sent")


# -- races ------------------------------------------------------------------------------------


async def test_edit_and_delete_racing_the_trigger_fire_once_or_not_at_all(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    phone = await with_drafts(connect, alice, "phone")
    laptop = await with_drafts(connect, alice, "laptop")
    b = await connect(bob)
    n = 12
    due = time.time() + 1.2
    for i in range(n):
        await api(phone).store(stack.component, DraftInfo(to=bob, body=f"original {i}", trigger=at(due)))

    async def race(i: int) -> tuple[str, bool]:
        # spread around the due time, so that some land before the claim and some after
        await asyncio.sleep(max(0.0, due - time.time() + (i - n / 2) * 0.012))
        try:
            if i % 2:
                await api(laptop).delete(stack.component, str(i + 1))
            else:
                await api(laptop).update(stack.component, str(i + 1), DraftInfo(body=f"edited {i}"))
            return ("delete" if i % 2 else "edit"), True
        except IqError as exc:
            assert exc.iq["error"]["condition"] == "not-allowed"  # "already sent", nothing else
            return ("delete" if i % 2 else "edit"), False

    # the manual path races too: "send" from one device, "delete" from the other, at once
    extra = [await api(phone).store(stack.component, DraftInfo(to=bob, body=f"duel {k}")) for k in range(4)]

    async def duel(draft_id: str) -> tuple[bool, bool]:
        fired, deleted = await asyncio.gather(
            api(phone).fire(stack.component, draft_id), api(laptop).delete(stack.component, draft_id),
            return_exceptions=True,
        )  # fmt: skip
        return not isinstance(fired, Exception), not isinstance(deleted, Exception)

    outcomes = await asyncio.gather(*(race(i) for i in range(n)))
    duels = await asyncio.gather(*(duel(d.id) for d in extra))
    arriving = sum(1 for what, ok in outcomes if not (what == "delete" and ok)) + sum(f for f, _ in duels)
    await eventually(lambda: len(bodies_from(b, alice)) >= arriving, what=f"{arriving} messages")
    # Anything more would be a duplicate: once no draft is firing every send is committed (and
    # released), so a later message of alice's to bob arrives after any of them.
    await eventually(lambda: "firing" not in draft_rows(courier, alice).values(), what="no draft firing")
    phone.chat(bob, "marker", "marker")
    await eventually(lambda: bodies_from(b, alice)[-1:] == ["marker"], what="the marker")
    got = bodies_from(b, alice)[:-1]
    for i, (what, ok) in enumerate(outcomes):
        if what == "delete":
            expected = [] if ok else [f"original {i}"]
        else:
            expected = [f"edited {i}"] if ok else [f"original {i}"]
        mine = [g for g in got if g.endswith(f" {i}") and not g.startswith("duel")]
        assert mine == expected, (i, what, ok, got)
    for k, (fired, deleted) in enumerate(duels):
        assert fired != deleted, (k, fired, deleted)  # exactly one of them won
        assert got.count(f"duel {k}") == (1 if fired else 0)
    assert all(count == 1 for count in messages_with_ids(courier, alice).values())
    assert len(got) == len(set(got))


# -- commands ---------------------------------------------------------------------------------


async def test_bot_and_adhoc_commands(courier, stack, users, connect) -> None:
    alice, bob, carol = users("alice", "bob", "carol")
    a = await with_drafts(connect, alice)
    help_text = await ask(a, stack.component, "help")
    assert "draft | remind — " in help_text and "Example: draft bob@localhost at 09:00 Europe/Paris" in help_text
    assert "drafts | send | postpone | delete — " in help_text and "Example: send draft 3" in help_text
    answer = await ask(a, stack.component, f"draft {bob} at tomorrow 09:00 Europe/Paris Good morning!\nSecond line")
    assert answer.startswith(f"Draft 1 stored for {bob}.\nIt will be sent at ")
    assert "09:00 Europe/Paris" in answer
    assert (await ask(a, stack.component, f"remind {bob} in 10m Call him")).startswith(f"Draft 2 stored for {bob}")
    assert "when-online" in await ask(a, stack.component, "draft")  # usage
    answer = await ask(a, stack.component, f"draft {bob} when-from {carol} When carol writes")
    assert answer == (
        f"Draft 3 stored for {bob}.\nIt will be sent when {carol} writes to you; “send draft 3” sends it now."
    )
    assert (await ask(a, stack.component, f"draft {bob} when-online Bob is here")).startswith("Draft 4 stored")
    assert await ask(a, stack.component, f"draft {bob} Just a note") == (
        f"Draft 5 stored for {bob}: “send draft 5” sends it."
    )
    assert "is not a time" in await ask(a, stack.component, f"draft {bob} at 25:99 Nope")
    assert "has passed" in await ask(a, stack.component, f"draft {bob} at 2020-01-01T00:00Z Nope")
    listing = await ask(a, stack.component, "drafts")
    assert listing.splitlines()[0] == "5 pending draft(s)."
    assert "Good morning! Second line" in listing and "remind me" in listing and f"when {bob} comes online" in listing
    assert (await ask(a, stack.component, "draft 5 Just a better note")).startswith(f"Draft 5 for {bob} now reads")
    assert (await ask(a, stack.component, "postpone draft 2 in 1h")).startswith(f"Draft 2 for {bob} postponed.\nYou")
    assert await ask(a, stack.component, "delete draft 4") == f"Draft 4 for {bob} deleted: it will never be sent."
    assert await ask(a, stack.component, "delete draft 4") == "Draft 4 was deleted."
    assert await ask(a, stack.component, "send draft 9") == "You have no draft 9."
    assert (await ask(a, stack.component, "send draft 5")).startswith(f"Draft 5 sent to {bob}.\nMessage id ")
    assert await ask(a, stack.component, "send draft 5") == f"Draft 5 was already sent to {bob}."

    # ad-hoc: New draft (a form), then My drafts (choose one, act on it)
    first = await execute(a, stack.component, "draft")
    assert first["form"].get_fields()["trigger"]["value"] == "manual"
    done = await execute(
        a, stack.component, "draft", "complete", first["sessionid"],
        {"to": bob, "text": "From the form", "trigger": "at", "when": "in 2h", "action": "remind"},
    )  # fmt: skip
    assert done["status"] == "completed"
    assert done["notes"][0][1].startswith(f"Draft 6 stored for {bob}.\nYou will be reminded at ")
    bad = await execute(a, stack.component, "draft")
    bad = await execute(
        a, stack.component, "draft", "complete", bad["sessionid"],
        {"to": "not a jid", "text": "x", "trigger": "manual", "action": "send"},
    )  # fmt: skip
    assert bad["status"] == "executing" and bad["notes"][0][0] == "error"
    mine = await execute(a, stack.component, "drafts")
    options = [o["value"] for o in mine["form"].get_fields()["draft"]["options"]]
    assert options == ["1", "2", "3", "6"]
    done = await execute(a, stack.component, "drafts", "complete", mine["sessionid"], {"draft": "6", "action": "send"})
    assert done["notes"][0][1].startswith(f"Draft 6 sent to {bob}")
    listing = await execute(a, stack.component, "drafts")
    listing = await execute(a, stack.component, "drafts", "complete", listing["sessionid"], {"action": "show"})
    assert [r["id"] for r in listing["form"]["items"]] == ["1", "2", "3"]
    b = await connect(bob)
    assert [(await b.next_message())["body"] for _ in range(2)] == ["Just a better note", "From the form"]


async def test_the_command_line_client(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    stored = await cli(stack, alice, "draft", bob, "From the terminal", "--at", "tomorrow 09:00 Europe/Paris", "--json")
    assert stored.code == 0, stored.err
    (obj,) = stored.objects()
    assert (obj["type"], obj["id"], obj["to"], obj["trigger"], obj["tz"]) == ("stored", "1", bob, "at", "Europe/Paris")
    listed = await cli(stack, alice, "drafts")
    assert listed.code == 0 and listed.out.startswith(f"1  → {bob}  send at ") and "From the terminal" in listed.out
    sent = await cli(stack, alice, "draft-send", "1", "--json")
    assert sent.code == 0 and sent.objects()[0]["type"] == "fired"
    b = await connect(bob)
    assert (await b.next_message())["body"] == "From the terminal"


# -- limits -----------------------------------------------------------------------------------


@pytest.fixture
def limited_courier(stack: prosody.ProsodySetup, tmp_path: Path) -> Iterator[CourierProcess]:
    process = CourierProcess(
        stack, tmp_path / "limited", COURIER_DRAFTS_MAX_PENDING="2", COURIER_DRAFTS_MAX_LENGTH="20",
        COURIER_DRAFTS_MAX_DAYS_AHEAD="7",
    ).start()  # fmt: skip
    yield process
    process.stop()


async def test_limits_and_bad_requests_have_clear_errors(limited_courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await with_drafts(connect, alice)
    store = api(a).store
    too_long = DraftInfo(to=bob, body="x" * 21)
    assert await error_of(store(stack.component, too_long)) == "not-acceptable"
    far = DraftInfo(to=bob, body="Next month", trigger=at(time.time() + 8 * 86400))
    assert await error_of(store(stack.component, far)) == "not-acceptable"
    naive = DraftInfo(to=bob, body="No zone", trigger=TriggerInfo("at", time="2030-01-01T09:00:00"))
    assert await error_of(store(stack.component, naive)) == "bad-request"
    remote = DraftInfo(to="juliet@example.org", body="Remote", trigger=TriggerInfo("target-online"))
    assert await error_of(store(stack.component, remote)) == "bad-request"
    assert await error_of(store(stack.component, DraftInfo(to=alice, body="Myself"))) == "bad-request"
    await store(stack.component, DraftInfo(to=bob, body="one"))
    await store(stack.component, DraftInfo(to=bob, body="two"))
    with pytest.raises(IqError) as err:
        await store(stack.component, DraftInfo(to=bob, body="three"))
    assert err.value.iq["error"]["condition"] == "resource-constraint"
    assert "2 pending drafts, the most allowed" in err.value.iq["error"]["text"]
    assert (await ask(a, stack.component, f"draft {bob} three")).startswith("You already have 2 pending drafts")
    assert "at most 20 are allowed" in await ask(a, stack.component, "draft 1 " + "y" * 30)


async def test_a_time_too_far_ahead_gets_a_sentence_from_the_bot(courier, stack, users, connect) -> None:
    """``in 99999999d`` (year 275817) used to fail while the error was being written."""
    alice, carol = users("alice", "carol")
    a = await connect(alice)
    answer = await ask(a, stack.component, f"draft {carol} in 99999999d hi")
    assert "too far ahead" in answer and "Sorry, that failed" not in answer
    assert "draft" in await ask(a, stack.component, "drafts")  # the bot is still there, nothing stored
    assert "hi" not in await ask(a, stack.component, "drafts")

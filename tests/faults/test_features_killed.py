"""Courier SIGKILLed while it sends on users' behalf: broadcast fan-outs going out, drafts
firing.  Real Prosody and Courier processes, real clients; each test prints
``FAULT <name>: sent=… accepted=… delivered=… duplicated=… lost=…``, counted per recipient
by body (each fan-out's and each draft's text is its own).  What Courier accepted (a fan-out
recorded in its store, a draft whose storage it confirmed) must reach each recipient once."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

from slixmpp import Message

from component.xep import drafts as xep_drafts
from component.xep import lists as xep_lists
from component.xep.drafts import DraftInfo, TriggerInfo
from tests import storeview
from tests.conformance.helpers import eventually

from ..conformance.xmpp import Client
from .harness import Proxy, Stack, read_while

MEMBERS, ONLINE, FANOUTS = 50, 10, 8
DRAFTS = 200


async def read_bodies(client: Client, marker: str, seen: Counter[str], expected: set[str], timeout: float) -> None:
    """Count *client*'s messages by body until the body *marker* arrived and every *expected*
    body was seen (re-sends may overtake the marker), or *timeout*: what is missing is lost."""
    await read_while(client, seen, lambda: marker not in seen or not expected <= set(seen), timeout, key="body")


def resent(log: str) -> int:
    """How many sends Courier re-sent from its outbox at its connections (its log)."""
    return sum(int(n) for n in re.findall(r"Re-sending (\d+) releases", log))


def count(name: str, sent: int, recipients: list[tuple[set[str], Counter[str]]]) -> tuple[int, int]:
    """Print and return (duplicated, lost): for each recipient, the bodies it should get and
    what it got."""
    accepted = sum(len(expected) for expected, _ in recipients)
    delivered = sum(1 for expected, seen in recipients for body in expected if seen[body])
    duplicated = sum(seen[body] - 1 for expected, seen in recipients for body in expected if seen[body] > 1)
    lost = accepted - delivered
    print(f"FAULT {name}: sent={sent} accepted={accepted} delivered={delivered} "
          f"duplicated={duplicated} lost={lost}")  # fmt: skip
    return duplicated, lost


async def test_courier_sigkill_while_fan_outs_go_out(fault_stack: Stack) -> None:
    s = fault_stack
    courier = s.start_courier()
    alice, *members = s.adduser("alice", *(f"member{i}" for i in range(MEMBERS)))
    a = await s.connect(alice)
    a.register_plugin("courier_lists", module=xep_lists)
    lists = a.plugin["courier_lists"]
    online = [await s.connect(m) for m in members[:ONLINE]]
    await lists.create(s.setup.component, "Everyone", members)
    sends = [asyncio.ensure_future(lists.send(s.setup.component, "Everyone", f"fan-out {k}", timeout=20))
             for k in range(FANOUTS)]  # fmt: skip
    await eventually(lambda: sum(c.received.qsize() for c in online) >= 5, 30, "the first copies")
    courier.kill()
    at_kill = sum(c.received.qsize() for c in online)
    with storeview.connect(courier.db, read_only=True) as db:  # what Courier had accepted
        accepted = {r[0] for r in db.execute("SELECT body FROM fanouts WHERE owner=?", (alice,))}
    await courier.start_async()  # completes the fan-outs cut short, re-sends what Prosody did not confirm
    await asyncio.gather(*sends, return_exceptions=True)  # answered, or lost with the killed process
    assert accepted and at_kill < len(accepted) * ONLINE, "the kill came too late to test anything"

    seen: dict[str, Counter[str]] = {m: Counter() for m in members}
    for member, client in zip(members, online, strict=False):
        a.chat(member, "end", f"end-{member}")
        await read_bodies(client, "end", seen[member], accepted, 60)
    for member in members[ONLINE:]:
        a.chat(member, "end", f"end-{member}")  # held behind the copies: it comes last
        await read_bodies(await s.connect(member), "end", seen[member], accepted, 60)
    log = courier.log_text()  # since the restart
    print(f"after the restart: {log.count('completed after a restart')} fan-outs completed; "
          f"{resent(log)} sends Prosody had not confirmed re-sent")  # fmt: skip
    duplicated, lost = count(
        "courier SIGKILL while fan-outs go out", FANOUTS * MEMBERS, [(accepted, seen[m]) for m in members]
    )
    assert (duplicated, lost) == (0, 0)


async def test_courier_sigkill_while_drafts_fire(fault_stack: Stack) -> None:
    s = fault_stack
    courier = s.start_courier(COURIER_DRAFTS_MAX_PENDING=str(DRAFTS), COURIER_REQUESTS_BURST=str(2 * DRAFTS))
    alice, bob, carol, eve = s.adduser("alice", "bob", "carol", "eve")
    a, b, e = await s.connect(alice), await s.connect(bob), await s.connect(eve)
    a.register_plugin("courier_drafts", module=xep_drafts)
    trigger = TriggerInfo("message-from", jid=eve)  # they all fire when Eve writes to Alice
    drafts = {f"draft {i}": bob if i % 2 == 0 else carol for i in range(DRAFTS)}  # Carol is offline
    stored = await asyncio.gather(*(
        a.plugin["courier_drafts"].store(s.setup.component, DraftInfo(to=to, body=body, trigger=trigger))
        for body, to in drafts.items()
    ))  # fmt: skip
    assert len(stored) == DRAFTS  # each one confirmed: accepted
    e.chat(alice, "Eve writes: every draft fires", "eve-1")
    await eventually(lambda: b.received.qsize() >= 10, 30, "the first drafts delivered")
    courier.kill()
    at_kill = b.received.qsize()
    await courier.start_async()  # repairs sends cut short (state 'firing'), without sending twice
    assert at_kill < DRAFTS // 2, "the kill came too late to test anything"

    expected = {to: {body for body, r in drafts.items() if r == to} for to in (bob, carol)}
    seen: dict[str, Counter[str]] = {bob: Counter(), carol: Counter()}
    a.chat(bob, "end", "end-bob")
    await read_bodies(b, "end", seen[bob], expected[bob], 60)
    a.chat(carol, "end", "end-carol")  # held behind Carol's drafts: it comes last
    await read_bodies(await s.connect(carol), "end", seen[carol], expected[carol], 60)
    log = courier.log_text()
    print(f"after the restart: {log.count('its message was stored before the restart')} drafts claimed before "
          f"the kill found their message stored, {log.count('interrupted by a restart')} sent now; "
          f"{resent(log)} sends Prosody had not confirmed re-sent")  # fmt: skip
    duplicated, lost = count(
        f"courier SIGKILL while {DRAFTS} drafts fire", DRAFTS, [(expected[to], seen[to]) for to in (bob, carol)]
    )
    assert (duplicated, lost) == (0, 0)
    with storeview.connect(courier.db, read_only=True) as db:
        states = Counter(r[0] for r in db.execute("SELECT state FROM drafts WHERE author=?", (alice,)))
    assert states == {"sent": DRAFTS}


async def test_a_reminder_lost_in_transit_arrives_after_the_reconnect(fault_stack: Stack) -> None:
    """Issue 12 (5): a draft's reminder that Courier committed and sent, lost with the component
    connection before Prosody read it, arrives once Courier has reconnected, once."""
    s = fault_stack
    proxy = await Proxy(s.setup.component_port).start()
    try:
        courier = await asyncio.to_thread(s.start_courier, proxy.port)  # (the proxy runs on this loop)
        alice, bob, eve = s.adduser("alice", "bob", "eve")
        a, e = await s.connect(alice), await s.connect(eve)
        a.register_plugin("courier_drafts", module=xep_drafts)
        trigger = TriggerInfo("message-from", jid=eve)
        draft = DraftInfo(to=bob, body="Ask Bob about the ball", action="remind", trigger=trigger)
        await a.plugin["courier_drafts"].store(s.setup.component, draft)
        proxy.swallow = True  # from now on nothing Courier sends reaches Prosody
        e.chat(alice, "Eve writes: the reminder fires", "eve-1")
        await eventually(lambda: b"Reminder: draft 1" in proxy.swallowed, 20, "the reminder sent into the dead link")
        proxy.swallow = False
        proxy.cut()
        await eventually(lambda: courier.log_text().count("connected to") >= 2, 30, "Courier reconnected")

        def reminders() -> list[Message]:
            return [m for m in a.all_received if m.xml.find(f"{{{xep_drafts.NS}}}reminder") is not None]

        await eventually(lambda: bool(reminders()), 20, "the reminder, sent again")
        seen = len(a.all_received)
        a.chat(s.setup.component, "drafts", origin_id=False)  # Courier's later answer: nothing else on its way

        def answered() -> bool:
            return any(m["from"].bare == s.setup.component and m not in reminders() for m in a.all_received[seen:])

        await eventually(answered, 20, "the bot's answer")
        (reminder,) = reminders()
        assert "Ask Bob about the ball" in reminder["body"]
        assert reminder["from"].bare == s.setup.component
        assert not [c for c in reminder.xml if c.tag.startswith("{https://courier.chat/ns/route/")]

        def unconfirmed() -> int:  # Prosody confirmed it (<routed/>): not sent again at later reconnects
            with storeview.connect(courier.db, read_only=True) as db:
                return int(db.execute("SELECT COUNT(*) FROM outbox WHERE kind='own'").fetchone()[0])

        await eventually(lambda: unconfirmed() == 0, 10, "Prosody's confirmation of the reminder")
    finally:
        proxy.close()

"""Faults an operator meets, with real Prosody and Courier processes: nothing lost.

Each test prints ``FAULT <name>: sent=… accepted=… delivered=… duplicated=… lost=…``.
A duplicate is allowed only after a crash of Prosody, as a re-send with the same id
and origin-id (counted by id here); every other fault must deliver each message once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter

from tests.conformance.helpers import eventually
from tests.conformance.xmpp import CourierProcess

from .harness import Proxy, Stack, account, burst, collect_until, deliver_all, fallbacks, settle, stored_ids


async def _drain(client_queue_owner, seen: Counter[str]) -> None:  # type: ignore[no-untyped-def]
    while not client_queue_owner.received.empty():
        seen[client_queue_owner.received.get_nowait()["id"]] += 1


async def _reconnected(stack: Stack, times: int) -> None:
    assert stack.courier is not None
    await eventually(lambda: stack.courier.log_text().count("connected to") >= times, 30, "Courier reconnected")


async def test_prosody_sigkill_mid_burst_online_recipient(fault_stack: Stack) -> None:
    s = fault_stack
    courier = s.start_courier()
    alice, bob = s.adduser("alice", "bob")
    a, b = await s.connect(alice), await s.connect(bob)
    sent = burst(a, bob, 1000, "pk")
    await eventually(lambda: b.received.qsize() >= 200, 30, "200 delivered before the kill")
    s.kill_prosody()
    seen: Counter[str] = Counter()
    await _drain(b, seen)
    s.restart_prosody()
    await _reconnected(s, 2)
    b2 = await s.connect(bob, "desk")  # offline messages (re-sent releases while Bob was away) arrive at login
    a2 = await s.connect(alice, "laptop")
    a2.chat(bob, "end", "pk-end")
    await collect_until(b2, "pk-end", seen, 60)
    stored = stored_ids(courier, alice)
    await settle(b2, a2, bob, [i for i in sent if i in stored], seen, "pk")
    assert 200 <= sum(seen.values()), "the kill came too late"
    _, duplicated, lost = account("prosody SIGKILL mid-burst (online)", sent, seen, stored)
    assert lost == 0


async def test_courier_sigkill_mid_burst_online_and_offline_recipients(fault_stack: Stack) -> None:
    s = fault_stack
    courier = s.start_courier()
    alice, bob, carol = s.adduser("alice", "bob", "carol")
    a, b = await s.connect(alice), await s.connect(bob)
    to_bob = burst(a, bob, 600, "ck-b")
    to_carol = burst(a, carol, 600, "ck-c")  # carol is offline: held by Courier (or Prosody's offline store)
    await eventually(lambda: b.received.qsize() >= 100, 30, "100 delivered before the kill")
    courier.kill()
    await courier.start_async()
    a.chat(bob, "end", "ck-b-end")
    seen_b: Counter[str] = Counter()
    await collect_until(b, "ck-b-end", seen_b, 60)
    await settle(b, a, bob, to_bob, seen_b, "ck-b")
    c = await s.connect(carol)
    a.chat(carol, "end", "ck-c-end")
    seen_c: Counter[str] = Counter()
    await collect_until(c, "ck-c-end", seen_c, 60)
    await settle(c, a, carol, to_carol, seen_c, "ck-c")
    for name, sent, seen in (("online", to_bob, seen_b), ("offline", to_carol, seen_c)):
        _, duplicated, lost = account(f"courier SIGKILL mid-burst ({name})", sent, seen)
        assert (duplicated, lost) == (0, 0)


async def test_component_connection_dropped_mid_burst(fault_stack: Stack) -> None:
    s = fault_stack
    proxy = await Proxy(s.setup.component_port).start()
    try:
        await asyncio.to_thread(s.start_courier, proxy.port)  # (the proxy runs on this loop)
        alice, bob = s.adduser("alice", "bob")
        a, b = await s.connect(alice), await s.connect(bob)
        sent = burst(a, bob, 1000, "cd")
        await eventually(lambda: b.received.qsize() >= 150, 30, "150 delivered before the drop")
        proxy.cut()
        await _reconnected(s, 2)
        a.chat(bob, "end", "cd-end")
        seen: Counter[str] = Counter()
        await collect_until(b, "cd-end", seen, 60)
        await settle(b, a, bob, sent, seen, "cd")
        _, duplicated, lost = account("component connection dropped mid-burst", sent, seen)
        assert (duplicated, lost) == (0, 0)
    finally:
        proxy.close()


async def test_prosody_restarted_with_pending_handoffs(fault_stack: Stack) -> None:
    s = fault_stack
    courier = s.start_courier()
    alice, bob = s.adduser("alice", "bob")
    a, b = await s.connect(alice), await s.connect(bob)
    assert courier.proc is not None
    os.kill(courier.proc.pid, signal.SIGSTOP)  # Courier hangs: its hand-offs stay pending at the server
    try:
        sent = burst(a, bob, 50, "pr")
        await a.plugin["xep_0199"].ping(jid=s.setup.domain, timeout=10)  # the server has handled all 50
        s.restart_prosody(clean=True)  # pending hand-offs are delivered normally (and remembered) at shutdown
    finally:
        os.kill(courier.proc.pid, signal.SIGCONT)  # Courier wakes up, stores what it had read, reconnects
    await _reconnected(s, 2)
    seen: Counter[str] = Counter()
    await _drain(b, seen)
    b2 = await s.connect(bob, "desk")
    a2 = await s.connect(alice, "laptop")
    a2.chat(bob, "end", "pr-end")
    await collect_until(b2, "pr-end", seen, 60)
    await settle(b2, a2, bob, sent, seen, "pr")
    _, duplicated, lost = account("prosody restarted with pending hand-offs", sent, seen)
    assert (duplicated, lost) == (0, 0)


async def test_burst_of_5000_without_a_single_fallback(fault_stack: Stack) -> None:
    s = fault_stack
    s.start_courier()
    alice, bob = s.adduser("alice", "bob")
    a, b = await s.connect(alice), await s.connect(bob)
    sent = burst(a, bob, 5000, "ld")
    a.chat(bob, "end", "ld-end")
    seen: Counter[str] = Counter()
    await collect_until(b, "ld-end", seen, 150)
    await settle(b, a, bob, sent, seen, "ld")
    _, duplicated, lost = account("5,000-message burst", sent, seen)
    n = fallbacks(s.prosody_log())
    print(f"FAULT 5,000-message burst: fallbacks={n}")
    assert (duplicated, lost, n) == (0, 0, 0)


async def test_courier_frozen_messages_fall_back_once_and_late_releases_are_dropped(fault_stack: Stack) -> None:
    s = fault_stack
    courier = s.start_courier()
    alice, bob = s.adduser("alice", "bob")
    a, b = await s.connect(alice), await s.connect(bob)
    assert courier.proc is not None
    os.kill(courier.proc.pid, signal.SIGSTOP)  # connected but silent: no ack, no ping answer
    seen: Counter[str] = Counter()
    try:
        sent = burst(a, bob, 20, "fz")
        await eventually(lambda: b.received.qsize() >= 20, 30, "the fallback deliveries")
        await _drain(b, seen)
    finally:
        os.kill(courier.proc.pid, signal.SIGCONT)  # it stores the hand-offs it had read, then learns of the fallback
    a.chat(bob, "end", "fz-end")
    await collect_until(b, "fz-end", seen, 60)
    await settle(b, a, bob, sent, seen, "fz")
    _, duplicated, lost = account("courier frozen (connected, silent)", sent, seen)
    assert (duplicated, lost) == (0, 0)
    assert s.prosody_log().count("Courier has not answered for") == 20


def _released(courier: CourierProcess, sender: str) -> int:
    from tests import storeview

    with storeview.connect(courier.db, read_only=True) as db:
        return db.execute("SELECT count(*) FROM messages WHERE sender=? AND state='released'", (sender,)).fetchone()[0]


async def test_prosody_paused_while_courier_answers_falls_nothing_back(fault_stack: Stack) -> None:
    """Prosody stopped past its ack timeout (a VM pause, swap, an overloaded host) with Courier's
    answers on their way: they wait unread in Prosody's socket, and on waking Prosody runs its
    timers before it reads them.  Courier did answer: nothing may be delivered around it."""
    s = fault_stack
    proxy = await Proxy(s.setup.component_port).start()  # to have the answers in flight at the pause
    try:
        courier = await asyncio.to_thread(s.start_courier, proxy.port)
        alice, bob = s.adduser("alice", "bob")
        a, b = await s.connect(alice), await s.connect(bob)
        assert s.proc is not None
        proxy.swallow = True  # Courier's answers held in transit (well within the ack timeout) ...
        started = time.monotonic()
        sent = burst(a, bob, 50, "pp")
        await eventually(lambda: _released(courier, alice) == 50, 10, "Courier's releases of all 50")
        os.kill(s.proc.pid, signal.SIGSTOP)  # ... Prosody pauses ...
        try:
            await proxy.pass_swallowed()  # ... and the answers reach its socket, unread
            await asyncio.sleep(max(0.0, started + s.setup.ack_timeout + 1.5 - time.monotonic()))  # the pause
        finally:
            os.kill(s.proc.pid, signal.SIGCONT)
        _, duplicated, lost = await deliver_all("prosody paused while Courier answers", b, a, bob, sent, "pp")
    finally:
        proxy.close()
    log = s.prosody_log()
    # (Usually Prosody's first sweep after the pause finds the answers waiting and says so; when the
    # stop fell between its timers and its poll, it reads them first.  Either way: no fall-back.)
    print("prosody's sweep put the fall-back off:", "Courier's answers are waiting unread" in log)
    assert (duplicated, lost, fallbacks(log)) == (0, 0, 0)

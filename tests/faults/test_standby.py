"""Active/standby on PostgreSQL (component/standby.py), with real Prosody, PostgreSQL and Courier
processes: SIGKILL the active Courier mid-burst and the standby takes over within 10 s with
nothing lost or duplicated; two active Couriers are impossible; a lost lease disconnects at once.
Always on PostgreSQL (tests/pgserver.py), whatever COURIER_TEST_STORE says."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from component import prosody
from component.standby import LOST_LEASE_EXIT
from tests import pgserver, storeview
from tests.conformance.helpers import eventually
from tests.conformance.xmpp import REPO, CourierProcess

from .harness import Stack, account, burst, collect_until, settle

HOLDERS = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@contextmanager
def pair(s: Stack) -> Iterator[tuple[CourierProcess, CourierProcess, str]]:
    """Two Couriers for one component on one PostgreSQL database: the first active, the second standby."""
    url = pgserver.server().create_database()
    env = {"COURIER_STORE_URL": url, "COURIER_STORE_LEASE_POLL": "0.2"}
    active = CourierProcess(s.setup, s.tmp / "active", COURIER_METRICS_PORT=str(prosody.free_port()), **env).start()
    standby = CourierProcess(s.setup, s.tmp / "standby", COURIER_METRICS_PORT=str(prosody.free_port()), **env)
    standby.start(ready="Standby:")
    try:
        yield active, standby, url
    finally:
        for c in (active, standby):
            c.stop()


async def bot(client, component: str, text: str) -> str:  # type: ignore[no-untyped-def]
    """One bot exchange; Courier's headline notices in between (a pending-drafts notice) are skipped."""
    client.chat(component, text, origin_id=False)
    while True:
        reply = await client.next_message(20)
        if reply["from"].bare == component and reply["type"] != "headline":
            return str(reply["body"])


async def status(c: CourierProcess) -> tuple[int, dict[str, str]]:
    """`courier status` of *c*: exit code and its lines by first word."""
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "component", "status", "--port", c.env["COURIER_METRICS_PORT"]],
        capture_output=True, text=True, cwd=REPO, timeout=30,
    )  # fmt: skip
    return out.returncode, {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}


def active_gauge(c: CourierProcess) -> float:
    url = f"http://127.0.0.1:{c.env['COURIER_METRICS_PORT']}/metrics"
    request = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    text = urllib.request.urlopen(request, timeout=10).read()
    return sum(s.value for f in text_string_to_metric_families(text.decode()) for s in f.samples
               if s.name == "courier_active")  # fmt: skip


async def holders(url: str) -> list[str]:
    """The sessions holding an advisory lock in this database (psql, off the event loop)."""
    return (await asyncio.to_thread(pgserver.server().psql, url, HOLDERS)).split()


def states(url: str, recipient: str) -> Counter[str]:
    with storeview.connect(url) as db:
        return Counter(r[0] for r in db.execute("SELECT state FROM messages WHERE recipient_bare = ?", (recipient,)))


async def test_standby_takes_over_within_10s_of_a_sigkill_mid_burst(fault_stack: Stack) -> None:
    s = fault_stack
    alice, bob, carol, dave = s.adduser("alice", "bob", "carol", "dave")
    with pair(s) as (active, standby, url):
        a, b, d = await s.connect(alice), await s.connect(bob), await s.connect(dave)
        # dave's list and draft, made with the bot before the kill, must be there after it
        assert (await bot(d, s.setup.component, f"list create team {bob} {carol}")).startswith("Created “team”")
        assert (await bot(d, s.setup.component, f"draft {carol} when-from {bob} Tell carol")).startswith("Draft 1")
        to_bob = burst(a, bob, 600, "sb-b")
        to_carol = burst(a, carol, 600, "sb-c")  # carol is offline: held by Courier (or Prosody's offline store)
        await eventually(lambda: b.received.qsize() >= 100, 30, "100 delivered before the kill")
        active.kill()
        killed = time.monotonic()
        await eventually(lambda: "connected to" in standby.log_text(), 10, "the standby connected within 10 s")
        took = time.monotonic() - killed
        a.chat(bob, "end", "sb-b-end")
        seen_b: Counter[str] = Counter()
        await collect_until(b, "sb-b-end", seen_b, 60)
        await settle(b, a, bob, to_bob, seen_b, "sb-b")
        held = await asyncio.to_thread(states, url, carol)
        assert f"team+dave@{s.setup.component}" in await bot(d, s.setup.component, "lists")
        assert "Tell carol" in await bot(d, s.setup.component, "drafts")
        assert held["held"] > 0 and set(held) <= {"held", "accepted"}, held  # still held: nothing went early
        c = await s.connect(carol)
        a.chat(carol, "end", "sb-c-end")
        seen_c: Counter[str] = Counter()
        await collect_until(c, "sb-c-end", seen_c, 60)
        await settle(c, a, carol, to_carol, seen_c, "sb-c")
        print(f"TAKEOVER standby connected {took:.2f} s after the SIGKILL; {held['held']} of carol's still held; "
              "dave's list and draft intact")  # fmt: skip
        assert took <= 10
        for name, sent, seen in (("online", to_bob, seen_b), ("offline", to_carol, seen_c)):
            _, duplicated, lost = account(f"active SIGKILL mid-burst, standby takes over ({name})", sent, seen)
            assert (duplicated, lost) == (0, 0)


async def test_two_actives_are_impossible_and_a_lost_lease_disconnects_at_once(fault_stack: Stack) -> None:
    s = fault_stack
    alice, bob = s.adduser("alice", "bob")
    with pair(s) as (active, standby, url):
        a, b = await s.connect(alice), await s.connect(bob)
        a.chat(bob, "one", "two-1")
        assert (await b.next_message(10))["id"] == "two-1"  # the active one serves...
        # ...and the standby waits: one lease holder, the standby never connected to Prosody
        assert len(await holders(url)) == 1
        assert "connected to" not in standby.log_text() and standby.proc is not None and standby.proc.poll() is None
        # what an operator sees: `courier status` and the courier_active gauge of each
        code, lines = await status(standby)
        assert code == 1 and "NOT connected" in lines["Connection"] and "STANDBY" in lines["Store"], lines
        code, lines = await status(active)
        assert code == 0 and "lease held (the active Courier)" in lines["Store"], lines
        assert (await asyncio.to_thread(active_gauge, active), await asyncio.to_thread(active_gauge, standby)) == (1, 0)
        # Its lease connection goes (the server ends that session): it disconnects and exits at once.
        await asyncio.to_thread(pgserver.server().psql, url, f"SELECT pg_terminate_backend(pid) FROM ({HOLDERS}) AS h")
        cut = time.monotonic()
        assert active.proc is not None
        await eventually(lambda: active.proc is not None and active.proc.poll() is not None, 5, "the active one exited")
        gone = time.monotonic() - cut
        assert active.proc.returncode == LOST_LEASE_EXIT
        assert "Lease of" in active.log_text() and "lost" in active.log_text()
        await eventually(lambda: "connected to" in standby.log_text(), 10, "the standby took over")
        a.chat(bob, "two", "two-2")
        assert (await b.next_message(20))["id"] == "two-2"
        code, lines = await status(standby)  # the same port now serves the active Courier's figures
        assert code == 0 and "lease held (the active Courier)" in lines["Store"], lines
        assert await asyncio.to_thread(active_gauge, standby) == 1
        assert len(await holders(url)) == 1
        print(f"LEASE lost: the active Courier exited {gone:.2f} s after its lease session ended")


async def test_a_standby_and_then_the_active_one_told_to_stop_stop_cleanly(fault_stack: Stack) -> None:
    with pair(fault_stack) as (active, standby, url):
        assert standby.proc is not None
        standby.stop()  # SIGTERM while it waits for the lease
        assert "Courier stopped (it was the standby)" in standby.log_text()
        assert "connected to" not in standby.log_text() and "store migration" not in standby.log_text()
        assert active.proc is not None and active.proc.poll() is None
        assert len(await holders(url)) == 1
        active.proc.terminate()  # a clean stop of the active one is not a lost lease
        assert active.proc.wait(20) == 0
        assert "Courier stopped" in active.log_text() and "lost" not in active.log_text()
        assert await holders(url) == []  # its lease went with it

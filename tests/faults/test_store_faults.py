"""Faults of the store's disk, against a real Prosody and a real Courier process whose SQLite
file lives on a small tmpfs that really fills up. Each test prints what it counted."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from tests.conformance.test_delivery import eventually, states
from tests.conformance.xmpp import CourierProcess

HELD, BIG = 100, 40
pytestmark = pytest.mark.sqlite_only  # faults of SQLite's own disk


def courier_on(disk, stack, tmp_path) -> CourierProcess:
    """A Courier whose store is on *disk* (its log is not: logging must outlive the fault)."""
    c = CourierProcess(stack, tmp_path / "courier")
    c.db = disk.path / "courier.sqlite"
    c.config.write_text(c.config.read_text().replace(str(tmp_path / "courier" / "courier.sqlite"), str(c.db)))
    return c.start()


async def receive(client, total: int, timeout: float) -> list[str]:
    ids: list[str] = []
    deadline = time.monotonic() + timeout
    while len(ids) < total and time.monotonic() < deadline:
        try:
            ids.append((await client.next_message(max(0.1, deadline - time.monotonic())))["id"])
        except TimeoutError:
            break
    return ids


def tally(what: str, sent: list[str], ids: list[str]) -> tuple[int, int]:
    counts = Counter(ids)
    lost = [i for i in sent if i not in counts]
    duplicated = sum(n - 1 for n in counts.values() if n > 1)
    print(f"{what}: sent {len(sent)}, delivered {len(counts)}, duplicated {duplicated}, lost {len(lost)}")
    return len(lost), duplicated


async def test_disk_full_then_freed_delivers_every_held_message_once_without_a_restart(
    stack, users, connect, small_disk, tmp_path
) -> None:
    courier = courier_on(small_disk, stack, tmp_path)
    try:
        alice, bob = users("alice", "bob")
        a = await connect(alice)
        held = [f"held-{i}" for i in range(HELD)]
        for i, msg_id in enumerate(held):
            a.chat(bob, f"kept for Bob {i}", msg_id)
        await eventually(lambda: sum(s == "held" for s in states(courier, alice).values()) == HELD,
                         timeout=20, what="every message held and stored")  # fmt: skip

        small_disk.fill()
        # Large messages need new space in the store: commits now fail for certain. Courier keeps
        # them queued and does not acknowledge them; Prosody delivers them itself after its timeout.
        big = [f"big-{i}" for i in range(BIG)]
        for msg_id in big:
            a.chat(bob, "x" * 60_000, msg_id)
        await asyncio.to_thread(courier.wait_log, "Store cannot commit", 20)

        # The first of them may have fitted before the disk was full: stored, so held for Bob.
        stored = {i for i in states(courier, alice) if i.startswith("big-")}
        fallen = [i for i in big if i not in stored]
        assert fallen, "the disk filled up too late to test anything"

        b = await connect(bob)  # Bob comes online: his held messages cannot be released yet
        early = await receive(b, len(fallen), stack.ack_timeout + 10)  # what Prosody delivered itself
        assert sorted(early) == sorted(fallen), "while the store is full only Prosody's fallbacks arrive"

        small_disk.free()
        await asyncio.to_thread(courier.wait_log, "Store commits again", 20)
        late = await receive(b, HELD + len(stored), 30)
        a.chat(bob, "marker after the recovery", "marker")  # a later message: nothing else is on its way
        late += await receive(b, 1, 10)
        assert late[-1] == "marker"
        print(f"disk full: {len(fallen)} of {BIG} new messages delivered by Prosody itself, {len(stored)} stored first")
        lost, duplicated = tally("disk full, then freed", held + big + ["marker"], early + late)
        assert (lost, duplicated) == (0, 0)
        assert courier.proc is not None and courier.proc.poll() is None, "Courier kept running"
    finally:
        courier.stop()


async def test_sigterm_stops_courier_within_5_s_while_the_store_cannot_commit(
    stack, users, connect, small_disk, tmp_path
) -> None:
    courier = courier_on(small_disk, stack, tmp_path)
    try:
        alice, bob = users("alice", "bob")
        a = await connect(alice)
        small_disk.fill()
        for i in range(BIG):
            a.chat(bob, "y" * 60_000, f"stuck-{i}")
        await asyncio.to_thread(courier.wait_log, "Store cannot commit", 20)
        assert courier.proc is not None
        started = time.monotonic()
        courier.proc.terminate()
        await asyncio.to_thread(courier.proc.wait, 10)
        took = time.monotonic() - started
        print(f"SIGTERM with a full store: stopped in {took:.2f} s")
        assert took < 5, f"took {took:.1f} s"
        assert "operations were not stored" in courier.log_text()
        courier.proc = None
        # Nothing lost: what Courier never acknowledged, Prosody delivers itself; what it
        # stored before the disk was full (a message or two may still fit) it holds for Bob,
        # and delivers once it runs again.
        small_disk.free()
        await courier.start_async()
        b = await connect(bob)
        ids = await receive(b, BIG, stack.ack_timeout + 15)
        lost, duplicated = tally("SIGTERM with a full store", [f"stuck-{i}" for i in range(BIG)], ids)
        assert (lost, duplicated) == (0, 0)
    finally:
        courier.stop()

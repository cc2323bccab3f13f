"""Faults of the store's disk, against a real Prosody and a real Courier process whose SQLite
file lives on a small tmpfs that really fills up. Each test prints what it counted."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from tests.conformance.helpers import eventually, states
from tests.conformance.xmpp import CourierProcess

from .harness import fallbacks

HELD, BIG = 100, 40
pytestmark = pytest.mark.sqlite_only  # faults of SQLite's own disk


def courier_on(disk, stack, tmp_path) -> CourierProcess:
    """A Courier whose store is on *disk* (its log is not: logging must outlive the fault)."""
    c = CourierProcess(stack, tmp_path / "courier")
    c.db = disk.path / "courier.sqlite"
    c.config.write_text(c.config.read_text().replace(str(tmp_path / "courier" / "courier.sqlite"), str(c.db)))
    return c.start()


async def hold(courier: CourierProcess, a, alice: str, bob: str, prefix: str) -> list[str]:
    """HELD messages from Alice to Bob, who is offline: held by Courier and stored."""
    held = [f"{prefix}-{i}" for i in range(HELD)]
    for i, msg_id in enumerate(held):
        a.chat(bob, f"kept for Bob {i}", msg_id)
    await eventually(lambda: sum(s == "held" for s in states(courier, alice).values()) == HELD,
                     timeout=20, what="every message held and stored")  # fmt: skip
    return held


async def receive(client, total: int, timeout: float) -> list[str]:
    ids: list[str] = []
    deadline = time.monotonic() + timeout
    while len(ids) < total and time.monotonic() < deadline:
        try:
            ids.append((await client.next_message(max(0.1, deadline - time.monotonic())))["id"])
        except TimeoutError:
            break
    return ids


async def stopped_within_5_s(courier: CourierProcess, what: str) -> None:
    """SIGTERM while the store cannot commit: Courier stops within 5 s, saying what it did not store."""
    assert courier.proc is not None
    started = time.monotonic()
    courier.proc.terminate()
    await asyncio.to_thread(courier.proc.wait, 10)
    took = time.monotonic() - started
    print(f"{what}: stopped in {took:.2f} s")
    assert took < 5, f"took {took:.1f} s"
    assert "operations were not stored" in courier.log_text()
    courier.proc = None


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
        held = await hold(courier, a, alice, bob, "held")

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
        await stopped_within_5_s(courier, "SIGTERM with a full store")
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


# -- faults of the store's system calls (strace attached to the running Courier) ------------------

#: what SQLite writes a database and its WAL with; on a read-only filesystem each fails with EROFS
WRITES = "pwrite64,pwritev,pwritev2,write,writev,ftruncate,fallocate,fsync,fdatasync"


def read_only(courier: CourierProcess) -> list[str]:
    """strace arguments: every write to the store's files fails as on a read-only filesystem.

    Why not ``mount -o remount,ro``: the kernel refuses it while a file on it is open for
    writing (EBUSY: Courier keeps its database and WAL open), and ext4's own remount-ro after
    an error (``errors=remount-ro``) cannot be undone without an unmount.  What Courier sees
    of a read-only store is the same: EROFS from every write, until it is writable again."""
    paths = [a for f in (str(courier.db), f"{courier.db}-wal") for a in ("-P", f)]
    return ["-qq", "-e", f"trace={WRITES}", *paths, "-e", f"inject={WRITES}:error=EROFS"]


async def test_store_read_only_then_writable_delivers_every_held_message_once_without_a_restart(
    courier, stack, users, connect, strace
) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    held = await hold(courier, a, alice, bob, "ro-held")

    fault = strace(courier.proc.pid, read_only(courier))
    new = [f"ro-new-{i}" for i in range(BIG)]
    for i, msg_id in enumerate(new):
        a.chat(bob, f"while the store is read-only {i}", msg_id)
    await courier.wait_log_async("Store cannot commit", 20)
    assert not any(i.startswith("ro-new-") for i in states(courier, alice)), "stored while read-only?"

    b = await connect(bob)  # Bob comes online: his held messages cannot be released yet
    early = await receive(b, BIG, stack.ack_timeout + 10)  # what Prosody delivered itself
    assert sorted(early) == sorted(new), "while the store is read-only only Prosody's fallbacks arrive"

    injected = fault.injected()
    fault.detach()  # writable again
    await courier.wait_log_async("Store commits again", 20)
    late = await receive(b, HELD, 30)
    a.chat(bob, "marker after the recovery", "marker")  # a later message: nothing else is on its way
    late += await receive(b, 1, 10)
    assert late[-1] == "marker"
    print(f"store read-only: {injected} writes failed with EROFS; {len(early)} of {BIG} new messages "
          "delivered by Prosody itself")  # fmt: skip
    lost, duplicated = tally("FAULT store read-only, then writable", held + new + ["marker"], early + late)
    assert (lost, duplicated) == (0, 0)
    assert held == late[:-1], "the held messages, in order"
    assert courier.proc is not None and courier.proc.poll() is None, "Courier kept running"


async def test_sigterm_stops_courier_within_5_s_while_the_store_is_read_only(
    courier, stack, users, connect, strace
) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    strace(courier.proc.pid, read_only(courier))
    sent = [f"ro-stuck-{i}" for i in range(BIG)]
    for msg_id in sent:
        a.chat(bob, "never stored", msg_id)
    await courier.wait_log_async("Store cannot commit", 20)
    await stopped_within_5_s(courier, "SIGTERM with a read-only store")
    await courier.start_async()  # the store is writable again (strace ended with its tracee)
    b = await connect(bob)
    ids = await receive(b, BIG, stack.ack_timeout + 15)
    lost, duplicated = tally("FAULT SIGTERM with a read-only store", sent, ids)
    assert (lost, duplicated) == (0, 0)


SLOW_MS, BURST = 200, 500


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def timed_burst(a, b, to: str, prefix: str, size: int = BURST) -> tuple[list[str], list[str], list[float]]:
    """*size* messages as fast as the client sends; what arrived, and each one's latency (ms)."""
    sent_at: dict[str, float] = {}
    for i in range(size):
        msg_id = f"{prefix}-{i}"
        sent_at[msg_id] = time.monotonic()
        a.chat(to, f"{prefix} {i}", msg_id)
    ids, latencies = [], []
    deadline = time.monotonic() + 60
    while len(ids) < size and time.monotonic() < deadline:
        try:
            msg_id = (await b.next_message(max(0.1, deadline - time.monotonic())))["id"]
        except TimeoutError:
            break
        ids.append(msg_id)
        if msg_id in sent_at:
            latencies.append((time.monotonic() - sent_at[msg_id]) * 1000)
    return list(sent_at), ids, latencies


def figures(latencies: list[float]) -> str:
    if not latencies:
        return "none arrived"
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(latencies):.0f} ms"


@pytest.mark.parametrize("synchronous", ["normal", "full"])
async def test_slow_store_fsync_delayed_loses_nothing_and_falls_back_never(
    stack, users, connect, strace, tmp_path, synchronous
) -> None:
    """Every fsync/fdatasync of the running Courier takes SLOW_MS longer (strace).  SQLite in WAL
    mode syncs at a commit only with ``synchronous = full``; with the default ``normal`` only the
    checkpoint (Courier's second connection, off the commit path) does."""
    courier = CourierProcess(stack, tmp_path / "courier")
    config = courier.config.read_text()
    courier.config.write_text(config.replace("[store]\n", f'[store]\nsynchronous = "{synchronous}"\n'))
    courier.start()
    try:
        alice, bob = users("alice", "bob")
        a, b = await connect(alice), await connect(bob)
        before = fallbacks(stack.log_file.read_text(errors="replace"))
        _, base_ids, base = await timed_burst(a, b, bob, "fast")
        # strace stops Courier at every system call (ptrace): its cost alone, then with the fault
        tracing = strace(courier.proc.pid, ["-qq", "-e", "trace=fsync,fdatasync"])
        _, traced_ids, traced = await timed_burst(a, b, bob, "traced")
        tracing.detach()
        fault = strace(courier.proc.pid, ["-qq", "-e", "trace=fsync,fdatasync",
                                          "-e", f"inject=fsync,fdatasync:delay_exit={SLOW_MS * 1000}"])  # fmt: skip
        sent, ids, slow = await timed_burst(a, b, bob, "slow")
        alone: list[float] = []  # one message at a time: each waits for its own commit
        for i in range(5):
            one, got, latency = await timed_burst(a, b, bob, f"alone{i}", size=1)
            sent, ids, alone = sent + one, ids + got, alone + latency
        a.chat(bob, "marker", "marker")  # a later message: nothing else is on its way
        ids += await receive(b, 1, 30)
        # with synchronous = normal only the checkpoint syncs (about a second after commits):
        # wait for the fault to have met one rather than hoping the bursts overlapped one
        deadline = time.monotonic() + 15
        while fault.injected() == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        delayed = fault.injected()
        fault.detach()
        assert (len(base_ids), len(traced_ids)) == (BURST, BURST)
        n = fallbacks(stack.log_file.read_text(errors="replace")) - before
        print(f"slow store (fsync +{SLOW_MS} ms, synchronous={synchronous}): {delayed} syncs delayed; "
              f"{BURST}-message burst latency: untraced {figures(base)}; traced {figures(traced)}; "
              f"traced and slow {figures(slow)}; one at a time, traced and slow {figures(alone)}; "
              f"fallbacks {n}")  # fmt: skip
        lost, duplicated = tally(f"FAULT slow store (synchronous={synchronous})", [*sent, "marker"], ids)
        assert (lost, duplicated, n) == (0, 0, 0)
        assert delayed > 0, "no fsync was delayed: the fault was not there"
    finally:
        courier.stop()

"""Back-pressure, not bypass: a sender with ``courier_sender_limit`` hand-offs that Courier has
not answered yet is not read from until half of them are answered (mod_courier_route's
route_pressure part). Courier frozen (SIGSTOP) for less than its liveness timeout while a
client floods: the server's pending hand-offs of that sender never exceed the limit, nothing
falls back, and every message arrives exactly once when Courier wakes up. Courier killed
while the sender is paused: the sender is read again at once, and nothing is lost."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from .harness import Stack, burst, deliver_all, fallbacks, wait_for

LIMIT = 25
PAUSED = re.compile(r"has (\d+) hand-offs not yet answered by Courier \(limit (\d+)\)")
RESUMED = re.compile(r"stream again \(([^)]*)\): (\d+) hand-offs pending, at most (\d+)")


async def test_a_flooding_sender_is_paused_while_courier_is_frozen_and_nothing_falls_back(tmp_path: Path) -> None:
    s = Stack(tmp_path, ack_timeout=10.0, sender_limit=LIMIT)  # frozen well within the liveness timeout
    try:
        courier = s.start_courier()
        alice, bob = s.adduser("alice", "bob")
        a, b = await s.connect(alice), await s.connect(bob)
        assert courier.proc is not None
        os.kill(courier.proc.pid, signal.SIGSTOP)  # connected but answering nothing: no ack, no ping answer
        try:
            sent = burst(a, bob, 12 * LIMIT, "bp")
            await wait_for(lambda: PAUSED.search(s.prosody_log()) is not None, 5, "the server to stop reading alice")
        finally:
            os.kill(courier.proc.pid, signal.SIGCONT)
        _, duplicated, lost = await deliver_all(
            "sender flooding a frozen Courier (back-pressure)", b, a, bob, sent, "bp"
        )
        log = s.prosody_log()
        paused = [(int(n), int(limit)) for n, limit in PAUSED.findall(log)]
        resumed = [(why, int(peak)) for why, _, peak in RESUMED.findall(log)]
        n = fallbacks(log)
        print(f"FAULT back-pressure: pauses={len(paused)} resumes={len(resumed)} "
              f"peak={max(p for _, p in resumed)} limit={LIMIT} fallbacks={n}")  # fmt: skip
        assert paused and all(p == (LIMIT, LIMIT) for p in paused), paused
        # each pause ended when Courier had answered half, and the sender never had more than the limit pending
        assert len(resumed) == len(paused) and all(why == "fewer pending" and peak <= LIMIT for why, peak in resumed)
        assert (duplicated, lost, n) == (0, 0, 0)
    finally:
        await s.close()


async def test_a_paused_sender_is_read_again_when_courier_dies_and_nothing_is_lost(tmp_path: Path) -> None:
    s = Stack(tmp_path, sender_limit=LIMIT)
    try:
        courier = s.start_courier()
        alice, bob = s.adduser("alice", "bob")
        a, b = await s.connect(alice), await s.connect(bob)
        assert courier.proc is not None
        os.kill(courier.proc.pid, signal.SIGSTOP)
        sent = burst(a, bob, 12 * LIMIT, "bk")
        await wait_for(lambda: PAUSED.search(s.prosody_log()) is not None, 5, "the server to stop reading alice")
        courier.kill()  # the paused sender's hand-offs were never stored: re-sent, or delivered normally
        await wait_for(lambda: "(Courier disconnected)" in s.prosody_log(), 10, "alice read again")
        await courier.start_async()
        name = "Courier SIGKILL while the sender is paused (back-pressure)"
        _, duplicated, lost = await deliver_all(name, b, a, bob, sent, "bk")
        assert (duplicated, lost) == (0, 0)
    finally:
        await s.close()

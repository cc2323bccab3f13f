"""Back-pressure, not bypass: a sender with ``courier_sender_limit`` hand-offs that Courier has
not answered yet is not read from until half of them are answered (mod_courier_route's
route_pressure part). Courier frozen (SIGSTOP) for less than its liveness timeout while a
client floods: the server's pending hand-offs of that sender never exceed the limit, nothing
falls back, and every message arrives exactly once when Courier wakes up. Courier killed
while the sender is paused: the sender is read again at once, and nothing is lost. Over s2s:
a stock server's stream is paused the same way."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from component import prosody

from ..conformance.conftest import PASSWORD
from ..conformance.helpers import eventually
from ..conformance.xmpp import Client, CourierProcess
from .harness import Stack, burst, deliver_all, fallbacks

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
            await eventually(lambda: PAUSED.search(s.prosody_log()) is not None, 5, "the server to stop reading alice")
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
              f"peak={max((p for _, p in resumed), default=0)} limit={LIMIT} fallbacks={n}")  # fmt: skip
        assert paused and all(p == (LIMIT, LIMIT) for p in paused), paused
        # each pause ended when Courier had answered half, and the sender never had more than the limit pending
        assert len(resumed) == len(paused) and all(
            why == "fewer pending" and 0 < peak <= LIMIT for why, peak in resumed
        )
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
        await eventually(lambda: PAUSED.search(s.prosody_log()) is not None, 5, "the server to stop reading alice")
        courier.kill()  # the paused sender's hand-offs were never stored: re-sent, or delivered normally
        await eventually(lambda: "(Courier disconnected)" in s.prosody_log(), 10, "alice read again")
        await courier.start_async()
        name = "Courier SIGKILL while the sender is paused (back-pressure)"
        _, duplicated, lost = await deliver_all(name, b, a, bob, sent, "bk")
        assert (duplicated, lost) == (0, 0)
    finally:
        await s.close()


async def test_an_s2s_stream_flooding_a_frozen_courier_is_paused_and_nothing_falls_back(tmp_path: Path) -> None:
    """The same over s2s: a stock server's user floods a user of ours; our server stops reading that stream."""
    ports = {"b.example": prosody.free_port(), "c.example": prosody.free_port()}
    setups = {
        domain: prosody.ProsodySetup(
            data=tmp_path / domain, domain=domain, c2s_port=prosody.free_port(), component_port=prosody.free_port(),
            ack_timeout=10.0, log_level="info", route=domain == "b.example", sender_limit=LIMIT,
            s2s_port=port, peers={d: f"127.0.0.1:{p}" for d, p in ports.items() if d != domain},
        )
        for domain, port in ports.items()
    }  # fmt: skip
    for setup in setups.values():
        setup.render()
    procs = [prosody.start(setup) for setup in setups.values()]
    courier = CourierProcess(setups["b.example"], tmp_path / "courier")
    clients: list[Client] = []
    try:
        courier.start()
        for setup, name in ((setups["b.example"], "bob"), (setups["c.example"], "carol")):
            prosody.adduser(setup, f"{name}@{setup.domain}", PASSWORD)
            clients.append(await Client(f"{name}@{setup.domain}/phone", PASSWORD, setup.c2s_port).start(timeout=20))
        b, c = clients
        log = setups["b.example"].log_file
        assert courier.proc is not None
        os.kill(courier.proc.pid, signal.SIGSTOP)
        try:
            sent = burst(c, "bob@b.example", 12 * LIMIT, "bs")
            await eventually(
                lambda: f"c.example has {LIMIT} hand-offs not yet answered" in log.read_text(), 10, "b to pause c"
            )
        finally:
            os.kill(courier.proc.pid, signal.SIGCONT)
        _, duplicated, lost = await deliver_all(
            "s2s stream flooding a frozen Courier", b, c, "bob@b.example", sent, "bs"
        )
        text = log.read_text()
        peak = max((int(peak) for _, _, peak in RESUMED.findall(text)), default=0)
        pauses, n = len(PAUSED.findall(text)), fallbacks(text)
        print(f"FAULT back-pressure (s2s): pauses={pauses} peak={peak} limit={LIMIT} fallbacks={n}")
        assert pauses and 0 < peak <= LIMIT
        assert (duplicated, lost, n) == (0, 0, 0)
    finally:
        for client in clients:
            await client.stop()
        courier.stop()
        for proc in procs:
            prosody.stop(proc)

"""Where a message's latency goes: each leg of its path, from a capture of the loopback traffic.

    python -m bench.legs [--federation] [--inside] [--messages N] [--warmup W] [--prosody-gc MODE] [--keep]

One message at a time (each sent once the previous one arrived), as the latency
part of ``throughput_latency.py`` and ``federation.py``, through a plain stack and
a Courier stack, both up for the whole run, while ``tcpdump`` captures their ports
on the loopback interface.  Every packet is then matched to its message by the
message's body (and a hand-off's acknowledgement by the hand-off's id), which gives
the time of each step of its path, as seen on the wire:

* one server: ``c2s in`` (the sender's client wrote it) -> ``hand-off`` (Prosody handed it
  to Courier) -> ``ack`` (Courier's answer: stored, deliver your copy) -> ``c2s out``
  (Prosody wrote it to the recipient's client); plain: ``c2s in`` -> ``c2s out``;
* ``--federation`` (a.example -> b.example over s2s, Courier on both): ``c2s in`` ->
  ``hand-off A`` -> ``ack A`` -> ``s2s`` (A's Prosody wrote it to B) -> ``hand-off B`` ->
  ``ack B`` -> ``c2s out``; plain: ``c2s in`` -> ``s2s`` -> ``c2s out``.

Each leg's p50 / p90 / mean (ms) is printed, and the whole path's; a leg between two
Prosody steps is Prosody's work (and its waits), one between a hand-off and its
acknowledgement is Courier's.  A diagnostic, not a benchmark with targets: it needs
``tcpdump`` (Debian's package of that name) and the right to capture (root, or
CAP_NET_RAW), which the rest of bench/ does not.

``--inside`` also splits Courier's leg by Courier's own clock (parse, decide, commit, write…:
bench/inside.py), which costs Courier a few microseconds a step: the legs on the wire are
then those of a slightly slower Courier.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from . import common, inside
from .common import (
    BODY_PREFIX,
    BenchClient,
    BenchFailure,
    body_for,
    exit_on_sigterm,
    free_ports,
    machine_line,
    one_at_a_time,
    percentile,
)
from .federation import Federation
from .stacks import Stack

TAG = "L"
_PACKET = re.compile(r"(\d+\.\d+) IP 127\.0\.0\.1\.(\d+) > 127\.0\.0\.1\.(\d+): .* length (\d+)")
_HID = re.compile(r"<handoff xmlns=['\"]https://courier\.chat/ns/route/0['\"] id=['\"]([^'\"]+)")
_ACK = re.compile(r"<ack xmlns=['\"]https://courier\.chat/ns/route/0['\"]")


@dataclass
class Packet:
    t: float
    src: int
    dst: int
    data: str


def read_capture(pcap: Path) -> list[Packet]:
    """The capture's packets that carry data, with their ASCII payload (tcpdump -A)."""
    text = subprocess.run(
        ["tcpdump", "-r", str(pcap), "-tt", "-nn", "-A", "-s", "0"], capture_output=True, text=True, check=True
    ).stdout
    packets: list[Packet] = []
    length = 0
    for line in text.splitlines():
        m = _PACKET.match(line)
        if m:
            length = int(m[4])
            if length:
                packets.append(Packet(float(m[1]), int(m[2]), int(m[3]), ""))
        elif length and packets:
            packets[-1].data += line
    return packets


#: a step of a message's path: its name and a test of a packet (the packet, the message's
#: body, what the earlier steps found: the hand-off ids)
Step = tuple[str, Callable[[Packet, str, dict[str, str]], bool]]


def to(port: int) -> Callable[[Packet, str, dict[str, str]], bool]:
    """Toward *port* (a server's listening port): this message."""
    return lambda p, body, _found: p.dst == port and body in p.data


def handoff(port: int, key: str) -> Callable[[Packet, str, dict[str, str]], bool]:
    """Prosody -> Courier on the component port *port*: the hand-off of this message (its id kept)."""

    def test(p: Packet, body: str, found: dict[str, str]) -> bool:
        if p.src != port or body not in p.data:
            return False
        m = _HID.search(p.data)
        found[key] = m[1] if m else ""
        return True

    return test


def ack(port: int, key: str) -> Callable[[Packet, str, dict[str, str]], bool]:
    """Courier -> Prosody: the acknowledgement (release by reference) of the hand-off *key*."""
    return lambda p, _body, found: (
        p.dst == port and bool(found.get(key)) and found[key] in p.data and bool(_ACK.search(p.data))
    )


def out_of(port: int) -> Callable[[Packet, str, dict[str, str]], bool]:
    """From *port* (the server's side of a client's connection): this message."""
    return lambda p, body, _found: p.src == port and body in p.data


_NUMBER = re.compile(re.escape(BODY_PREFIX + TAG) + r" (\d{6}) ")


def legs(packets: list[Packet], steps: list[Step], count: int) -> tuple[dict[str, list[float]], int]:
    """Per leg (named by the step it ends at), the time (ms) of each message from the step before;
    and how many messages were not fully in the capture (tcpdump can drop packets under load)."""
    found: dict[str, list[float]] = {name: [] for name, _ in steps[1:]}
    found["whole path"] = []
    carrying: dict[int, list[int]] = {}  # message number -> the packets that carry its body
    for j, packet in enumerate(packets):
        for number in _NUMBER.findall(packet.data):
            carrying.setdefault(int(number), []).append(j)
    incomplete = 0
    for i in range(count):
        body = body_for(TAG, i).strip()
        times: list[float] = []
        seen: dict[str, str] = {}
        at = -1
        for name, test in steps:
            if name.startswith("ack"):  # the acknowledgement carries the hand-off's id, not the body
                candidates: list[int] = list(range(at + 1, min(len(packets), at + 2000)))
            else:
                candidates = [j for j in carrying.get(i, []) if j > at]
            at = next((j for j in candidates if test(packets[j], body, seen)), -1)
            if at < 0:
                break
            times.append(packets[at].t)
        if len(times) < len(steps):
            incomplete += 1
            continue
        for k in range(1, len(steps)):
            found[steps[k][0]].append((times[k] - times[k - 1]) * 1000)
        found["whole path"].append((times[-1] - times[0]) * 1000)
    return found, incomplete


async def capture(ports: list[int], pcap: Path, run: Callable[[], Awaitable[object]]) -> None:
    """Capture *ports* on lo into *pcap* while *run* (a coroutine function) runs."""
    flt = " or ".join(f"tcp port {p}" for p in ports)
    dump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "--immediate-mode", "-B", "32768", "-U", "-s", "0", "-w", str(pcap), flt],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        await asyncio.sleep(1.0)  # (tcpdump's start-up: it prints nothing once it listens)
        if dump.poll() is not None:
            raise BenchFailure(f"tcpdump exited: {dump.stderr.read().strip() if dump.stderr else ''}")
        await run()
        await asyncio.sleep(0.5)  # (the last packets written out before tcpdump stops)
    finally:
        dump.send_signal(signal.SIGINT)
        dump.wait(10)


def report(name: str, result: tuple[dict[str, list[float]], int], count: int) -> list[str]:
    found, incomplete = result
    if incomplete > count // 10:
        raise BenchFailure(
            f"{name}: {incomplete} of {count} messages not fully in the capture (tcpdump dropped packets)"
        )
    lines = [
        f"{name}: {count - incomplete} messages"
        + (f" ({incomplete} not fully captured, left out)" if incomplete else "")
    ]
    for leg, values in found.items():
        lines.append(
            f"  {leg:<14} p50 {percentile(values, 50):6.3f}   p90 {percentile(values, 90):6.3f}   "
            f"mean {statistics.mean(values):6.3f} ms"
        )
    return lines


async def trace(
    name: str,
    clients: tuple[BenchClient, BenchClient],
    ports: list[int],
    steps: list[Step],
    root: Path,
    args: argparse.Namespace,
) -> list[str]:
    """Warm up, then capture *ports* while one message at a time goes from sender to recipient;
    the report of the legs, *steps*, and the clients stopped."""
    sender, recipient = clients
    await one_at_a_time(sender, recipient, "w", args.warmup)
    pcap = root / f"{name}.pcap"
    await capture(ports, pcap, partial(one_at_a_time, sender, recipient, TAG, args.messages))
    lines = report(name, legs(read_capture(pcap), steps, args.messages), args.messages)
    await sender.stop()
    await recipient.stop()
    return lines


async def measure_local(args: argparse.Namespace, root: Path) -> list[str]:
    out = []
    ports = free_ports(4)
    for i, (name, route) in enumerate((("plain", False), ("Courier", True))):
        stack = Stack(name, route, root, 1)
        try:  # (a Courier that fails to start: its Prosody is stopped too)
            stack.start((ports[2 * i], ports[2 * i + 1]))
            c2s, comp = stack.setup.c2s_port, stack.setup.component_port
            steps: list[Step] = [("c2s in", to(c2s))]
            if route:
                steps += [("hand-off", handoff(comp, "h")), ("ack", ack(comp, "h"))]
            steps.append(("c2s out", out_of(c2s)))
            out += await trace(name, await stack.pair(), [c2s, comp], steps, root, args)
        finally:
            stack.stop()
    return out


async def measure_federation(args: argparse.Namespace, root: Path) -> list[str]:
    out = []
    for name, route, domains in (("plain", False, ("pa.example", "pb.example")),
                                 ("Courier", True, ("ca.example", "cb.example"))):  # fmt: skip
        fed = Federation(name, route, root / name, domains)
        try:
            fed.start(1)
            a, b = fed.setups
            assert b.s2s_port is not None
            steps: list[Step] = [("c2s in", to(a.c2s_port))]
            if route:
                steps += [("hand-off A", handoff(a.component_port, "a")), ("ack A", ack(a.component_port, "a"))]
            steps.append(("s2s", to(b.s2s_port)))
            if route:
                steps += [("hand-off B", handoff(b.component_port, "b")), ("ack B", ack(b.component_port, "b"))]
            steps.append(("c2s out", out_of(b.c2s_port)))
            ports = [a.c2s_port, a.component_port, b.s2s_port, b.component_port, b.c2s_port]
            out += await trace(name, await fed.pair(), ports, steps, root, args)
        finally:
            fed.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.legs", description=__doc__.split("\n")[0])
    p.add_argument("--federation", action="store_true", help="across two servers (s2s), Courier on both")
    p.add_argument("--messages", type=int, default=300, help="messages one at a time (default 300)")
    p.add_argument("--warmup", type=int, default=30, help="messages before the capture (default 30)")
    p.add_argument("--inside", action="store_true", help="also split Courier's leg by its own clock")
    p.add_argument("--keep", action="store_true", help="keep the work directory (the captures)")
    common.add_gc_option(p)
    args = p.parse_args(argv)
    common.use_gc_option(args)
    if shutil.which("tcpdump") is None:
        print("bench.legs needs tcpdump: apt-get install tcpdump (and root or CAP_NET_RAW)", file=sys.stderr)
        return 2
    exit_on_sigterm()
    root = Path(tempfile.mkdtemp(prefix="courier-legs-"))
    print(f"courier bench (legs); work dir {root}\n{machine_line()}", flush=True)
    if args.inside:  # (the environment of the processes started from here on: Courier's)
        os.environ.update(inside.environment(root / "inside"))
    try:
        measure = measure_federation if args.federation else measure_local
        lines = asyncio.run(measure(args, root))
    except (BenchFailure, TimeoutError, subprocess.CalledProcessError) as exc:
        print(f"FAILED: {exc} (work dir {root})", file=sys.stderr)
        return 1
    path = "a.example -> b.example over s2s" if args.federation else "one server"
    print(f"\nLegs of one message at a time ({path}), {args.messages} messages, ms:")
    print("\n".join(lines))
    if args.inside:
        print("\n".join(inside.report(root / "inside", args.warmup)))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

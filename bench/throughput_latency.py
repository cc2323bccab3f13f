"""Throughput and latency of 1:1 chat through Courier, against a plain Prosody.

    python -m bench.throughput_latency [--messages N] [--latency-samples M] [--repeat R]
                                       [--warmup W] [--max-seconds S] [--keep]

Two stacks on free loopback ports, both running for the whole run:

* **plain**: Debian's Prosody rendered from prosody-config/ with
  ``ProsodySetup(route=False)`` (no hand-off; same modules, MAM on);
* **Courier**: the same Prosody with ``mod_courier_route`` plus a real Courier
  process (``python -m component run``; SQLite WAL, ``synchronous=normal``,
  group commit).

Each measurement uses a fresh pair of users (so MAM archives start empty) and
two real slixmpp clients (:class:`tests.conformance.xmpp.Client`) in this
process.  Burst: the sender writes N pre-serialised ``<message type='chat'/>``
(with XEP-0359 origin-id, ~40-byte bodies) to its socket in one tight loop;
the time runs from the first write to the N-th arrival at the recipient.  The
bursts alternate plain/Courier (ABBA order) ``--repeat`` times; medians are
reported.  Latency: M messages, each written only after the previous one was
parsed at the recipient; p50/p99 by nearest rank.  Every measurement checks
that each message arrived exactly once and in order, and fails loudly if not.

See bench/README.md for how to read the output and the figures measured.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import slixmpp

from component import prosody
from tests.conformance.xmpp import Client, CourierProcess

PASSWORD = "bench-pw"
BODY_PREFIX = "bench "
FILLER = "the quick brown fox jumps over the lazy dog " * 2
BODY_LEN = 40

# Targets (Courier relative to plain Prosody on the same machine).
TARGET_THROUGHPUT_RATIO = 0.55  # Courier msg/s >= 55 % of plain
TARGET_ADDED_P50_MS = 1.5
TARGET_ADDED_P99_MS = 4.0

CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchFailure(AssertionError):
    """Messages lost, duplicated or reordered, or a stack that does not work: the run is void."""


class Deadline(Exception):
    """--max-seconds ran out."""


# -- helpers -------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of *pid* (all its threads) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def body_for(tag: str, i: int) -> str:
    head = f"{BODY_PREFIX}{tag} {i:06d} "
    return head + FILLER[: max(0, BODY_LEN - len(head))]


def stanza_for(to: str, tag: str, i: int) -> str:
    """One chat message as a client writes it (id and XEP-0359 origin-id, like Client.chat)."""
    mid = f"{tag}-{i}"
    return (
        f"<message to='{to}' type='chat' id='{mid}'><body>{body_for(tag, i)}</body>"
        f"<origin-id xmlns='urn:xmpp:sid:0' id='{mid}'/></message>"
    )


def verify(received: list[str], expected: list[str], what: str) -> None:
    """Every message exactly once and in order, or BenchFailure with the details."""
    if received == expected:
        return
    counts = Counter(received)
    missing = [b for b in expected if b not in counts]
    dups = {b: c for b, c in counts.items() if c > 1}
    wanted = set(expected)
    unexpected = [b for b in counts if b not in wanted]
    pairs = zip(received, expected, strict=False)
    first_bad = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(received), len(expected)))
    raise BenchFailure(
        f"{what}: {len(received)} received for {len(expected)} sent; {len(missing)} missing "
        f"(first: {missing[:3]}), {len(dups)} duplicated (first: {list(dups.items())[:3]}), "
        f"{len(unexpected)} unexpected; sequences differ first at index {first_bad}"
    )


def package_version(name: str) -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


# -- the clients -----------------------------------------------------------------


class BenchClient(Client):
    """:class:`Client` that timestamps benchmark messages as soon as they are parsed.

    An incoming-stanza filter records (perf_counter, body) for messages whose
    body starts with ``bench `` and drops them before slixmpp's handler
    matching, so the recipient costs as little CPU as a client can; every
    other stanza takes the normal path of :class:`Client`.
    """

    def __init__(self, jid: str, password: str, port: int) -> None:
        super().__init__(jid, password, port)
        self.arrivals: list[tuple[float, str]] = []
        self.target = 0
        self.reached = asyncio.Event()
        self.add_filter("in", self._bench_filter)

    def _bench_filter(self, stanza: Any) -> Any:
        xml = stanza.xml
        if xml.tag == "{jabber:client}message" and xml.get("type") != "error":
            body = xml.find("{jabber:client}body")
            if body is not None and body.text and body.text.startswith(BODY_PREFIX):
                self.arrivals.append((time.perf_counter(), body.text))
                if len(self.arrivals) >= self.target:
                    self.reached.set()
                return None
        return stanza

    def expect(self, target: int) -> None:
        self.target = target
        self.reached.clear()
        if len(self.arrivals) >= target:
            self.reached.set()

    async def wait_target(self, stall: float, what: str) -> None:
        """Wait until ``target`` messages arrived; fail if none arrives for *stall* seconds."""
        last_count, last_progress = -1, time.monotonic()
        while not self.reached.is_set():
            try:
                await asyncio.wait_for(asyncio.shield(self.reached.wait()), 0.5)
            except TimeoutError:
                pass
            count = len(self.arrivals)
            if count != last_count:
                last_count, last_progress = count, time.monotonic()
            elif time.monotonic() - last_progress > stall:
                raise BenchFailure(f"{what}: stalled at {count} of {self.target} messages for {stall:.0f}s")


# -- the stacks ------------------------------------------------------------------


@dataclass
class Stack:
    name: str  # "plain" | "Courier"
    route: bool
    root: Path
    pairs: int
    setup: prosody.ProsodySetup = field(init=False)
    proc: Any = None
    courier: CourierProcess | None = None
    _next_pair: int = 0
    # Clients stay referenced until the loop ends: slixmpp cancels its send task on
    # disconnect, and a task collected before it ran its cancellation warns.
    clients: list[BenchClient] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.setup = prosody.ProsodySetup(data=self.root / self.name.lower(), route=self.route)

    def start(self, ports: tuple[int, int]) -> None:
        self.setup.c2s_port, self.setup.component_port = ports
        self.setup.render()
        for k in range(self.pairs):
            for who in ("s", "r"):
                prosody.adduser(self.setup, f"{who}{k}@{self.setup.domain}", PASSWORD)
        self.proc = prosody.start(self.setup)
        if self.route:
            # CourierProcess writes log level DEBUG (for the tests); the benchmark runs
            # Courier at its production default, INFO (the environment overrides the file).
            self.courier = CourierProcess(self.setup, self.root / "courier-work", COURIER_LOG_LEVEL="INFO").start()

    def pids(self) -> dict[str, int]:
        pids = {"prosody": self.proc.pid}
        if self.courier is not None and self.courier.proc is not None:
            pids["courier"] = self.courier.proc.pid
        return pids

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchFailure(f"{self.name} Prosody exited with {self.proc.returncode} (log: {self.setup.log_file})")
        if self.courier is not None and (self.courier.proc is None or self.courier.proc.poll() is not None):
            raise BenchFailure(f"Courier exited (log: {self.courier.log})")

    async def pair(self, cls: type[BenchClient] | None = None) -> tuple[BenchClient, BenchClient]:
        """A fresh (sender, recipient), logged in and online; *cls*: a :class:`BenchClient` subclass."""
        cls = cls or BenchClient
        k = self._next_pair
        self._next_pair += 1
        if k >= self.pairs:
            raise RuntimeError("not enough users registered")
        d = self.setup.domain
        sender = cls(f"s{k}@{d}/bench", PASSWORD, self.setup.c2s_port)
        recipient = cls(f"r{k}@{d}/bench", PASSWORD, self.setup.c2s_port)
        self.clients += [sender, recipient]
        await recipient.start()
        await sender.start()
        # Let Prosody process the initial presences and Courier see them (XEP-0356 managed_entity).
        await asyncio.sleep(0.3)
        return sender, recipient

    def stop(self) -> None:
        if self.courier is not None:
            self.courier.stop()
        if self.proc is not None:
            prosody.stop(self.proc)

    def fallbacks(self) -> int:
        """Hand-offs Prosody delivered itself while Courier was connected (mod_courier_route's warnings)."""
        try:
            log = self.setup.log_file.read_text(errors="replace")
        except OSError:
            return 0
        return log.count("Courier has not answered for") + log.count("did not acknowledge")


# -- measurements ------------------------------------------------------------------


@dataclass
class Burst:
    n: int
    seconds: float
    write_seconds: float  # how long the sender took to write all N to its socket
    cpu: dict[str, float]  # process -> CPU seconds during the burst
    idle_cpu: float  # CPU seconds the other (idle) stack used meanwhile

    @property
    def rate(self) -> float:
        return self.n / self.seconds


@dataclass
class Latency:
    samples_ms: list[float]

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples_ms, 99)


async def one_at_a_time(sender: BenchClient, recipient: BenchClient, tag: str, count: int) -> list[float]:
    """Send *count* messages, each after the previous arrived; per-message latency in ms."""
    to = recipient.boundjid.bare
    recipient.arrivals.clear()
    latencies = []
    for i in range(count):
        line = stanza_for(to, tag, i)
        recipient.expect(i + 1)
        t0 = time.perf_counter()
        sender.send_raw(line)
        try:
            await asyncio.wait_for(recipient.reached.wait(), 10)
        except TimeoutError:
            raise BenchFailure(f"{tag}: message {i} did not arrive within 10s") from None
        latencies.append((recipient.arrivals[i][0] - t0) * 1000)
    verify([b for _, b in recipient.arrivals], [body_for(tag, i) for i in range(count)], tag)
    return latencies


async def measure_burst(stack: Stack, idle: Stack, rep: int, n: int, warmup: int, settle: float) -> Burst:
    sender, recipient = await stack.pair()
    try:
        await one_at_a_time(sender, recipient, f"{stack.name[0]}w{rep}", warmup)
        tag = f"{stack.name[0]}{rep}"
        to = recipient.boundjid.bare
        lines = [stanza_for(to, tag, i) for i in range(n)]
        expected = [body_for(tag, i) for i in range(n)]
        recipient.arrivals.clear()
        recipient.expect(n)
        pids = stack.pids()
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        idle0 = sum(cpu_seconds(pid) for pid in idle.pids().values())
        own0 = own_cpu_seconds()
        t0 = time.perf_counter()
        for line in lines:
            sender.send_raw(line)
        t_written = time.perf_counter()
        await recipient.wait_target(15, f"{stack.name} burst {rep}")
        cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
        cpu["bench clients"] = own_cpu_seconds() - own0
        idle_cpu = sum(cpu_seconds(pid) for pid in idle.pids().values()) - idle0
        t_last = recipient.arrivals[n - 1][0]
        await asyncio.sleep(settle)  # anything arriving now is a duplicate
        verify([b for _, b in recipient.arrivals], expected, f"{stack.name} burst {rep}")
        stack.check_alive()
        return Burst(n, t_last - t0, t_written - t0, cpu, idle_cpu)
    finally:
        await sender.stop()
        await recipient.stop()


async def measure_latency(stack: Stack, m: int, warmup: int) -> Latency:
    sender, recipient = await stack.pair()
    try:
        await one_at_a_time(sender, recipient, f"{stack.name[0]}wl", warmup)
        samples = await one_at_a_time(sender, recipient, f"{stack.name[0]}L", m)
        stack.check_alive()
        return Latency(samples)
    finally:
        await sender.stop()
        await recipient.stop()


def check_courier_store(stack: Stack, expected_total: int) -> str:
    """Courier's own record: one tracked message per message sent, all released."""
    assert stack.courier is not None
    conn = sqlite3.connect(f"file:{stack.courier.db}?mode=ro", uri=True)
    try:
        states = dict(conn.execute("SELECT state, count(*) FROM messages GROUP BY state").fetchall())
        hids = conn.execute("SELECT count(DISTINCT hid) FROM messages").fetchone()[0]
    finally:
        conn.close()
    total = sum(states.values())
    if total != expected_total or hids != expected_total or set(states) != {"released"}:
        raise BenchFailure(
            f"Courier's store holds {total} tracked messages ({hids} distinct hand-offs, states {states}); "
            f"{expected_total} were sent through it, all should be released"
        )
    return f"Courier's store: {total} tracked messages, one per message sent, all 'released'"


# -- report ----------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(args: argparse.Namespace, bursts: dict[str, list[Burst]], lat: dict[str, Latency], notes: list[str]) -> str:
    plain_rate = statistics.median(b.rate for b in bursts["plain"])
    courier_rate = statistics.median(b.rate for b in bursts["Courier"])
    ratio = courier_rate / plain_rate
    add50 = lat["Courier"].p50 - lat["plain"].p50
    add99 = lat["Courier"].p99 - lat["plain"].p99
    out = []
    w = out.append
    w("")
    w(f"Courier vs plain Prosody — {args.messages} msg bursts x {args.repeat} (median), "
      f"{args.latency_samples} latency samples")
    w("")
    w(f"{'':24}{'plain':>10}{'Courier':>10}   {'Courier vs plain':<18}{'target':<14}result")
    w(f"{'throughput (msg/s)':24}{plain_rate:10.0f}{courier_rate:10.0f}   {f'{ratio * 100:.1f} %':<18}"
      f"{f'>= {TARGET_THROUGHPUT_RATIO * 100:.0f} %':<14}{verdict(ratio >= TARGET_THROUGHPUT_RATIO)}")
    w(f"{'latency p50 (ms)':24}{lat['plain'].p50:10.2f}{lat['Courier'].p50:10.2f}   {f'{add50:+.2f} ms':<18}"
      f"{f'<= +{TARGET_ADDED_P50_MS} ms':<14}{verdict(add50 <= TARGET_ADDED_P50_MS)}")
    w(f"{'latency p99 (ms)':24}{lat['plain'].p99:10.2f}{lat['Courier'].p99:10.2f}   {f'{add99:+.2f} ms':<18}"
      f"{f'<= +{TARGET_ADDED_P99_MS} ms':<14}{verdict(add99 <= TARGET_ADDED_P99_MS)}")
    w("")
    w("Bursts (msg/s, in run order):")
    for name in ("plain", "Courier"):
        write_ms = statistics.median(b.write_seconds for b in bursts[name]) * 1000
        w(f"  {name:8} " + "  ".join(f"{b.rate:7.0f}" for b in bursts[name])
          + f"   sender wrote all {args.messages} in {write_ms:.0f} ms (median)")
    w("")
    w("CPU seconds during a burst (median over runs; % = share of one core over the burst's wall time;"
      " ms/msg = CPU per message):")
    for name in ("plain", "Courier"):
        wall = statistics.median(b.seconds for b in bursts[name])
        parts = []
        for proc in bursts[name][0].cpu:
            sec = statistics.median(b.cpu[proc] for b in bursts[name])
            parts.append(f"{proc} {sec:.2f}s ({sec / wall * 100:.0f} %, {sec / args.messages * 1000:.3f} ms/msg)")
        w(f"  {name:8} wall {wall:.2f}s: " + "; ".join(parts))
    idle_max = max(b.idle_cpu for runs in bursts.values() for b in runs)
    w(f"  (the other, idle stack used at most {idle_max:.2f}s CPU during any burst)")
    w("")
    w("Latency (ms): " + "; ".join(
        f"{name} min {min(lat[name].samples_ms):.2f} p50 {lat[name].p50:.2f} "
        f"p90 {percentile(lat[name].samples_ms, 90):.2f} "
        f"p99 {lat[name].p99:.2f} max {max(lat[name].samples_ms):.2f}" for name in ("plain", "Courier")))
    for name in ("plain", "Courier"):
        slow = sorted(enumerate(lat[name].samples_ms), key=lambda x: -x[1])[:6]
        w(f"  slowest {name}: " + ", ".join(f"#{i} {v:.2f}" for i, v in sorted(slow)))
    w("")
    w("Checks: every message arrived exactly once and in order (all bursts, warm-ups and latency runs).")
    for note in notes:
        w(note)
    return "\n".join(out)


# -- main ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.throughput_latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=2000, help="messages per burst (default 2000)")
    p.add_argument("--latency-samples", type=int, default=300, help="one-at-a-time messages (default 300)")
    p.add_argument("--repeat", type=int, default=3, help="bursts per stack, alternating; median reported (default 3)")
    p.add_argument("--warmup", type=int, default=20, help="one-at-a-time messages before each measurement (default 20)")
    p.add_argument("--settle", type=float, default=0.5,
                   help="seconds to wait for duplicates after a burst (default 0.5)")
    p.add_argument("--max-seconds", type=float, default=300, help="abort the whole run after this long (default 300)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs, Courier's store)")
    args = p.parse_args(argv)
    for name in ("messages", "latency_samples", "repeat"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.messages + args.warmup > 9000 or args.latency_samples + args.warmup > 9000:
        p.error("at most 9000 messages per measurement: Prosody's internal MAM store caps an archive at 10000 items "
                "and cleaning it would be measured too")
    return args


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = prosody.free_port()
        if port not in ports:
            ports.append(port)
    return ports


async def measure(args: argparse.Namespace, stacks: dict[str, Stack], phase: list[str]) -> tuple[dict, dict]:
    bursts: dict[str, list[Burst]] = {"plain": [], "Courier": []}
    for rep in range(args.repeat):
        order = ("plain", "Courier") if rep % 2 == 0 else ("Courier", "plain")  # ABBA
        for name in order:
            phase[0] = f"{name} burst {rep + 1}/{args.repeat}"
            idle = stacks["Courier" if name == "plain" else "plain"]
            b = await measure_burst(stacks[name], idle, rep, args.messages, args.warmup, args.settle)
            bursts[name].append(b)
            print(f"  {phase[0]}: {b.rate:.0f} msg/s ({b.seconds:.2f}s; CPU "
                  + ", ".join(f"{k} {v:.2f}s" for k, v in b.cpu.items()) + ")", flush=True)
    lat: dict[str, Latency] = {}
    for name in ("plain", "Courier"):
        phase[0] = f"{name} latency"
        lat[name] = await measure_latency(stacks[name], args.latency_samples, args.warmup)
        print(f"  {phase[0]}: p50 {lat[name].p50:.2f} ms, p99 {lat[name].p99:.2f} ms", flush=True)
    await asyncio.sleep(0.2)  # let the stopped clients' tasks finish their cancellation
    return bursts, lat


def run_side_by_side(
    args: argparse.Namespace,
    title: str,
    pairs: int,
    measure_all: Callable[[argparse.Namespace, dict[str, Stack], list[str]], Awaitable[Any]],
    conclude: Callable[[dict[str, Stack], Any], list[str]],
    render: Callable[[Any, list[str]], str],
) -> int:
    """Start a plain and a Courier stack, run *measure_all* within ``--max-seconds``, print the report.

    *conclude* turns the result into notes (store checks…); *render* prints the
    result with the notes.  Exit code 0, 1 when a check failed, 2 on time-out.
    """
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="courier-bench-"))
    stacks = {"plain": Stack("plain", False, root, pairs), "Courier": Stack("Courier", True, root, pairs)}
    phase = ["start-up"]
    print(f"courier bench{title}: {os.cpu_count()} CPUs ({cpu_model()}), Prosody {package_version('prosody')}, "
          f"slixmpp {slixmpp.__version__}, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; "
          f"work dir {root}", flush=True)
    try:
        ports = free_ports(4)
        for i, name in enumerate(("plain", "Courier")):
            phase[0] = f"starting the {name} stack"
            stacks[name].start((ports[2 * i], ports[2 * i + 1]))
            if time.monotonic() - started > args.max_seconds:
                raise Deadline()
        print(f"  stacks up in {time.monotonic() - started:.1f}s: plain c2s {stacks['plain'].setup.c2s_port}, "
              f"Courier c2s {stacks['Courier'].setup.c2s_port}", flush=True)
        remaining = args.max_seconds - (time.monotonic() - started)

        async def bounded() -> Any:
            try:
                return await asyncio.wait_for(measure_all(args, stacks, phase), remaining)
            except TimeoutError:
                raise Deadline() from None

        result = asyncio.run(bounded())
        phase[0] = "final checks"
        notes = conclude(stacks, result)
        fb = stacks["Courier"].fallbacks()
        notes.append(
            f"Prosody's fallback deliveries while Courier was connected "
            f"(silence limit {stacks['Courier'].setup.ack_timeout:g}s): {fb}"
            + ("  <-- FAILED RUN: stanzas bypassed Courier while it was connected" if fb else "")
        )
        notes.append(f"Total run time {time.monotonic() - started:.0f}s.")
        print(render(result, notes), flush=True)
        return 1 if fb else 0  # a fallback while Courier is connected makes the run a failure
    except Deadline:
        print(f"\nABORTED: --max-seconds={args.max_seconds:g} exceeded during {phase[0]} "
              f"(after {time.monotonic() - started:.0f}s). Use smaller counts or a larger --max-seconds. "
              f"Work dir: {root}", file=sys.stderr)
        args.keep = True
        return 2
    except BenchFailure as exc:
        print(f"\nFAILED during {phase[0]}: {exc}\nLogs and stores kept in {root}", file=sys.stderr)
        args.keep = True
        return 1
    finally:
        for stack in stacks.values():
            stack.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    total = args.repeat * (args.messages + args.warmup) + args.latency_samples + args.warmup
    return run_side_by_side(
        args,
        "",
        args.repeat + 1,  # a fresh sender/recipient pair per measurement
        measure,
        lambda stacks, _result: [check_courier_store(stacks["Courier"], total)],
        lambda result, notes: report(args, result[0], result[1], notes),
    )

if __name__ == "__main__":
    sys.exit(main())

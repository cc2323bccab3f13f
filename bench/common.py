"""What every benchmark shares: message shapes, the exactly-once check, the client, CPU/RSS probes,
the machine line and the report helpers (the two stacks are in :mod:`bench.stacks`).  See bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import os
import platform
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import slixmpp

from component import prosody
from tests.conformance.xmpp import Client

PASSWORD = "bench-pw"
BODY_PREFIX = "bench "
FILLER = "the quick brown fox jumps over the lazy dog " * 2
BODY_LEN = 40

CLK_TCK = os.sysconf("SC_CLK_TCK")
#: mod_courier_route's warning for each message it delivered itself (fall_back in the module)
FALLBACK_LINE = re.compile(r"\bwarn\s+(.+?): delivering \S+ \(.*? -> .*?\) normally")


class BenchFailure(AssertionError):
    """Messages lost, duplicated or reordered, or a stack that does not work: the run is void."""


class Deadline(Exception):
    """--max-seconds ran out."""


# -- helpers -------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of *pid* (all its threads) from /proc/<pid>/stat."""
    return cpu_seconds_of(f"/proc/{pid}/stat")


def cpu_seconds_of(stat: str) -> float:
    """utime + stime from a proc(5) stat file: a process's, or one thread's (/proc/<pid>/task/<tid>/stat)."""
    with open(stat) as f:
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

def rss_mb(pid: int) -> float:
    """Resident set size of *pid* in MB (VmRSS of /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


#: Prosody's GC mode for every Prosody a benchmark starts ("": Prosody's default, incremental);
#: ``--prosody-gc`` of the benchmarks that start Prosody (:func:`add_gc_option`).
PROSODY_GC = ""


def add_gc_option(p: argparse.ArgumentParser) -> None:
    """``--prosody-gc``: the GC mode of every Prosody the benchmark starts, plain and Courier alike."""
    p.add_argument(
        "--prosody-gc",
        choices=prosody.GC_CHOICES,
        default="default",
        help="Lua GC mode of every Prosody started, plain and Courier alike (default: Prosody's own, incremental)",
    )


def use_gc_option(args: argparse.Namespace) -> None:
    global PROSODY_GC
    PROSODY_GC = prosody.gc_mode(args.prosody_gc)


def fallbacks_in(log_file: Path) -> Counter[str]:
    """Hand-offs a Prosody delivered itself (mod_courier_route's fallback warnings in its log), by reason.

    One log line per message: "<reason>: delivering <hid> (<from> -> <to>) normally".
    """
    try:
        log = log_file.read_text(errors="replace")
    except OSError:
        return Counter()
    return Counter(m.group(1) for m in FALLBACK_LINE.finditer(log))


def machine_line() -> str:
    """CPU model, cores, versions, kernel, load and the date: printed by every benchmark."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"machine: {os.cpu_count()} cores ({cpu_model()}), Linux {platform.release()}, "
        f"Prosody {package_version('prosody')}, slixmpp {slixmpp.__version__}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}; Prosody GC {PROSODY_GC or 'default (incremental)'}; "
        f"load average {load}; {now}"
    )


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(min, median, max)."""
    return min(values), statistics.median(values), max(values)


def fmt_spread(values: Sequence[float], fmt: str) -> str:
    lo, mid, hi = spread(values)
    return f"{format(lo, fmt)} / {format(mid, fmt)} / {format(hi, fmt)}"

# -- measurements shared by the benchmarks ------------------------------------------


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

def exit_on_sigterm() -> None:
    """SIGTERM (``timeout``, a CI runner) raises SystemExit, so the ``finally`` that stops the servers runs:
    Prosody and Courier run in their own sessions and would otherwise outlive the benchmark."""

    def _exit(_signum: int, _frame: object) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, _exit)


def failed_run(exc: BaseException, args: Any, root: Path, during: str) -> int:
    """A run cut short: say why and where, keep the work dir; the exit status (2: --max-seconds
    ran out, 1: a check failed)."""
    args.keep = True
    if isinstance(exc, TimeoutError):
        message = f"\nABORTED: --max-seconds={args.max_seconds:g} exceeded during {during}; work dir {root}"
        print(message, file=sys.stderr)
        return 2
    print(f"\nFAILED during {during}: {exc}\nLogs and store kept in {root}", file=sys.stderr)
    return 1


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = prosody.free_port()
        if port not in ports:
            ports.append(port)
    return ports

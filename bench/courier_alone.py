"""Courier alone: a synthetic feed of hand-offs over a real XEP-0114 component connection.

    python -m bench.courier_alone [--messages N] [--repeat R] [--pairs P] [--chunk C] [--window W]
                                  [--stall S] [--max-seconds T] [--profile FILE] [--keep]

No Prosody: this process plays the server.  It listens on a free loopback
port, accepts a real Courier process (``python -m component run``, its durable
SQLite store, log level INFO) with the XEP-0114 handshake, and then writes N
pre-serialised hand-offs (``<handoff recipient='online' copy='kept'/>`` around a
chat message with id, origin-id and a 40-byte body, exactly as mod_courier_route
writes them) as fast as the socket takes them, C per write, with at most W
written and not yet released.  It reads what
Courier sends back with a byte scan (no XML parser, so that this side stays
cheap): every release — by reference, an ``<ack/>`` item with ``release='true'``,
or a full ``<release/>`` (for an online recipient the release is the acknowledgement) —
and any plain ``<ack/>`` item, and answers each read
with one ``<routed/>`` confirmation of the releases in it, as the module does.
Throughput = N / (first write to the N-th release); Courier's CPU seconds over
that time come from /proc/<pid>/stat.  Target (issue #14): Courier sustains
>= 10,000 messages/s on one core, so ``1 / (Courier CPU per message)`` is the
figure judged (PASS/MISS); the wall rate is printed beside it.  Every hand-off
must be released once (and not acknowledged separately), in order per recipient, and the
store must hold one released message per hand-off, or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import pstats
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from component import prosody
from tests.conformance.xmpp import REPO, CourierProcess

from .common import (
    BenchFailure,
    body_for,
    cpu_seconds,
    cpu_seconds_of,
    exit_on_sigterm,
    failed_run,
    fmt_spread,
    machine_line,
    own_cpu_seconds,
    rss_mb,
    verdict,
)

TARGET_RATE = 10_000  # messages per second on one core
NS_ROUTE = "https://courier.chat/ns/route/0"
DOMAIN = "localhost"
COMPONENT = f"courier.{DOMAIN}"
#: an <ack/> item (the tag, its attributes): a release by reference when it has release='true'
ITEM = re.compile(rb"<item\b([^>]*)>")
ITEM_ID = re.compile(rb"\bid=[\"'](bh\d+)[\"']")
BY_REFERENCE = re.compile(rb"\brelease=[\"'](?:true|1)[\"']")
RELEASE = re.compile(rb"<release[^>]*?\bid=[\"'](bh\d+)[\"']")


def handoff(seq: int, pairs: int, stamp: str) -> bytes:
    """One hand-off as mod_courier_route writes it on the component stream."""
    hid, k, mid = f"bh{seq}", seq % pairs, f"a-{seq}"
    return (
        f"<message from='{DOMAIN}' to='{COMPONENT}' id='{hid}'><handoff xmlns='{NS_ROUTE}' id='{hid}' "
        f"recipient='online' copy='kept'><forwarded xmlns='urn:xmpp:forward:0'>"
        f"<delay xmlns='urn:xmpp:delay' stamp='{stamp}'/>"
        f"<message xmlns='jabber:client' from='s{k}@{DOMAIN}/bench' to='r{k}@{DOMAIN}' type='chat' id='{mid}'>"
        f"<body>{body_for('alone', seq)}</body><origin-id xmlns='urn:xmpp:sid:0' id='{mid}'/></message>"
        f"</forwarded></handoff></message>"
    ).encode()


class FakeServer:
    """The server's side of one component connection: handshake, feed, byte scan of the answers."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.acks: list[int] = []
        self.releases: list[tuple[float, int]] = []
        self.progress = asyncio.Event()

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.writer is not None:
            writer.close()  # one Courier only
            return
        head = await reader.readuntil(b">")
        if head.startswith(b"<?xml"):
            head = await reader.readuntil(b">")
        if b"stream" not in head:
            raise BenchFailure(f"not a component stream: {head[:200]!r}")
        writer.write(
            f"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
            f"xmlns='jabber:component:accept' id='{uuid.uuid4().hex}' from='{COMPONENT}'>".encode()
        )
        await reader.readuntil(b"</handshake>")  # (the secret is not checked: nobody else connects)
        writer.write(b"<handshake/>")
        await writer.drain()
        self.reader, self.writer = reader, writer
        self.connected.set()

    async def read_loop(self) -> None:
        assert self.reader is not None and self.writer is not None
        rest = b""
        while True:
            data = await self.reader.read(262144)
            if not data:
                return
            buf = rest + data
            cut = buf.rfind(b">") + 1  # tags complete up to here; the tail waits for the next read
            buf, rest = buf[:cut], buf[cut:]
            now = time.perf_counter()
            released = [int(m[2:]) for m in RELEASE.findall(buf)]
            for attrs in ITEM.findall(buf):
                hid = ITEM_ID.search(attrs)
                if hid is not None:
                    (released if BY_REFERENCE.search(attrs) else self.acks).append(int(hid[1][2:]))
            if released:
                self.releases.extend((now, seq) for seq in released)
                items = "".join(f"<item id='bh{seq}'/>" for seq in released)
                self.writer.write(
                    f"<message from='{DOMAIN}' to='{COMPONENT}'><routed xmlns='{NS_ROUTE}'>{items}</routed></message>"
                    .encode()
                )  # fmt: skip
            self.progress.set()

    async def wait(self, target: int, stall: float, what: str) -> None:
        """Until *target* releases and acks arrived; BenchFailure after *stall* seconds without progress."""
        while len(self.releases) < target:
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(), stall)
            except TimeoutError:
                raise BenchFailure(
                    f"{what}: stalled at {len(self.releases)} releases of {target} ({len(self.acks)} acks)"
                ) from None


class ProfiledCourier(CourierProcess):
    """:class:`CourierProcess` run under cProfile (the profile is written when it stops on SIGTERM)."""

    def __init__(self, *args: object, profile: Path, **env: str) -> None:
        super().__init__(*args, **env)  # type: ignore[arg-type]
        self.profile = profile

    def start(self, timeout: float = 15) -> CourierProcess:
        out = self.log.open("ab")
        cmd = [sys.executable, "-m", "cProfile", "-o", str(self.profile), "-m", "component", "run"]
        self.proc = subprocess.Popen(
            [*cmd, "--config", str(self.config)], stdout=out, stderr=out, env=self.env, cwd=REPO,
            start_new_session=True,
        )  # fmt: skip
        out.close()
        self.wait_log("connected to", timeout)
        return self


def profile_top(path: Path, n: int = 20) -> str:
    """The profile's top *n* functions by own time."""
    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:n]  # type: ignore[attr-defined]
    lines = [f"cProfile of Courier, top {n} by own time (of {total:.2f}s; cProfile itself slows Courier down):"]
    for (file, line, func), (_cc, calls, tt, ct, _callers) in rows:
        where = f"{Path(file).name}:{line}({func})" if line else func
        lines.append(f"  {tt:7.3f}s own {ct:7.3f}s cum {calls:9d} calls  {where}")
    return "\n".join(lines)


@dataclass
class Run:
    n: int
    seconds: float  # first write to the N-th release
    write_seconds: float
    courier_cpu: float
    own_cpu: float
    first_release: float  # seconds from the first write to the first release
    loop_cpu: float  # of courier_cpu, its main thread's (the event loop; the rest is aiosqlite's threads)

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    @property
    def cpu_per_msg(self) -> float:
        return self.courier_cpu / self.n


def loop_cpu_seconds(pid: int) -> float:
    """The CPU seconds of *pid*'s main thread (Courier's event loop) alone."""
    return cpu_seconds_of(f"/proc/{pid}/task/{pid}/stat")


def check_exactly_once(server: FakeServer, first: int, n: int, pairs: int, what: str) -> None:
    """Each hand-off released once (the release is its acknowledgement: no <ack/> for it), in order."""
    seqs = [seq for _, seq in server.releases]
    counts = Counter(seqs)
    want = set(range(first, first + n))
    dups = sum(c - 1 for c in counts.values() if c > 1)
    missing = len(want - counts.keys())
    if dups or missing or len(counts.keys() - want) or server.acks:
        raise BenchFailure(
            f"{what}: {len(seqs)} releases for {n} hand-offs, {dups} duplicated, {missing} missing; "
            f"{len(server.acks)} acks (none expected: every recipient is online)"
        )
    last: dict[int, int] = {}
    for seq in seqs:
        k = seq % pairs
        if last.get(k, -1) > seq:
            raise BenchFailure(f"{what}: recipient r{k} got hand-off {seq} after {last[k]}")
        last[k] = seq


async def feed(server: FakeServer, pid: int, first: int, n: int, args: argparse.Namespace, what: str) -> Run:
    assert server.writer is not None
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    data = [handoff(seq, args.pairs, stamp) for seq in range(first, first + n)]
    chunks = [b"".join(data[i : i + args.chunk]) for i in range(0, n, args.chunk)]
    server.acks.clear()
    server.releases.clear()
    cpu0, own0, loop0 = cpu_seconds(pid), own_cpu_seconds(), loop_cpu_seconds(pid)
    t0 = time.perf_counter()
    for i, chunk in enumerate(chunks):
        # --window: at most that many hand-offs written and not yet released (0: no limit)
        while args.window and i * args.chunk - len(server.releases) >= args.window:
            server.progress.clear()
            try:
                await asyncio.wait_for(server.progress.wait(), args.stall)
            except TimeoutError:
                raise BenchFailure(f"{what}: no release for {args.stall:g}s at {len(server.releases)}") from None
        server.writer.write(chunk)
        await server.writer.drain()  # the socket's back-pressure: Courier reads as fast as it can
    t_written = time.perf_counter()
    await server.wait(n, args.stall, what)
    t_last = server.releases[n - 1][0]
    run = Run(n, t_last - t0, t_written - t0, cpu_seconds(pid) - cpu0, own_cpu_seconds() - own0,
              server.releases[0][0] - t0, loop_cpu_seconds(pid) - loop0)  # fmt: skip
    check_exactly_once(server, first, n, args.pairs, what)
    return run


def check_store(db: Path, total: int) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        states = dict(conn.execute("SELECT state, count(*) FROM messages GROUP BY state").fetchall())
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    finally:
        conn.close()
    if sum(states.values()) != total or set(states) != {"released"}:
        raise BenchFailure(f"Courier's store holds {states} for {total} hand-offs, all should be released")
    return f"Courier's store: {total} tracked messages, all 'released'; {outbox} releases unconfirmed in its outbox"


async def measure(args: argparse.Namespace, root: Path, phase: list[str]) -> tuple[list[Run], list[str]]:
    server = FakeServer()
    listener = await asyncio.start_server(server.accept, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    setup = prosody.ProsodySetup(data=root / "no-prosody", component_port=port)
    work = root / "courier-work"
    # production's log level; the sent stanzas not recorded (as bench/stacks.py: the tests' schema
    # check logs every send at DEBUG to a file, +56 us a message here on 2026-12-02)
    env = {"COURIER_LOG_LEVEL": "INFO", "COURIER_RECORD_SENT": ""}
    courier = (
        ProfiledCourier(setup, work, profile=args.profile, **env)
        if args.profile
        else CourierProcess(setup, work, **env)
    )
    try:
        phase[0] = "starting Courier"
        await asyncio.to_thread(courier.start)
        await asyncio.wait_for(server.connected.wait(), 5)
        assert courier.proc is not None
        pid = courier.proc.pid
        reading = asyncio.ensure_future(server.read_loop())
        await asyncio.sleep(0.5)  # Courier's start-up (disco, ad-hoc registration) out of the way
        phase[0] = "warm-up"
        await feed(server, pid, 0, args.warmup, args, "warm-up")
        runs: list[Run] = []
        first = args.warmup
        for rep in range(args.repeat):
            phase[0] = f"run {rep + 1}/{args.repeat}"
            run = await feed(server, pid, first, args.messages, args, phase[0])
            first += args.messages
            runs.append(run)
            print(f"  {phase[0]}: {run.rate:.0f} msg/s wall, Courier CPU {run.cpu_per_msg * 1e6:.0f} us/msg "
                  f"({run.courier_cpu / run.seconds * 100:.0f} % of a core), this process "
                  f"{run.own_cpu / run.seconds * 100:.0f} %", flush=True)  # fmt: skip
        await asyncio.sleep(0.5)  # the last routed confirmations
        notes = [f"Courier RSS at the end: {rss_mb(pid):.1f} MB"]
        if courier.proc.poll() is not None:
            raise BenchFailure(f"Courier exited (log: {courier.log})")
        reading.cancel()
        courier.stop()
        notes.append(check_store(courier.db, first))
        if args.profile:
            notes.append(profile_top(args.profile))
        return runs, notes
    finally:
        courier.stop()
        listener.close()


def report(args: argparse.Namespace, runs: list[Run], notes: list[str]) -> str:
    ceiling = [1 / r.cpu_per_msg for r in runs]
    out = [
        "",
        f"Courier alone (issue #14): {args.repeat} runs of {args.messages} hand-offs (recipient online, "
        f"{args.pairs} pairs, window {args.window or 'unlimited'}) over a real component connection, "
        "durable SQLite store",
        "",
        f"{'':34}{'min / median / max':<30}{'target':<16}result",
        f"{'msg per CPU-second of Courier':34}{fmt_spread(ceiling, '.0f'):<30}{f'>= {TARGET_RATE}':<16}"
        f"{verdict(statistics.median(ceiling) >= TARGET_RATE)}",
        f"{'Courier CPU per message (us)':34}{fmt_spread([r.cpu_per_msg * 1e6 for r in runs], '.0f')}",
        f"{'  of which the event loop (us)':34}{fmt_spread([r.loop_cpu / r.n * 1e6 for r in runs], '.0f'):<30}"
        "(the rest: aiosqlite's threads, SQLite)",
        f"{'wall rate (msg/s)':34}{fmt_spread([r.rate for r in runs], '.0f'):<30}"
        f"(the machine is shared: judged on CPU)",
        f"{'Courier share of one core (%)':34}{fmt_spread([r.courier_cpu / r.seconds * 100 for r in runs], '.0f')}",
        f"{'feed written in (ms)':34}{fmt_spread([r.write_seconds * 1000 for r in runs], '.0f')}",
        f"{'first release after (ms)':34}{fmt_spread([r.first_release * 1000 for r in runs], '.0f')}",
        "",
        "Checks: every hand-off released once (no separate ack), in order per recipient.",
        *notes,
    ]
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.courier_alone", description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=20000, help="hand-offs per run (default 20000)")
    p.add_argument("--repeat", type=int, default=3, help="runs; min/median/max reported (default 3)")
    p.add_argument("--warmup", type=int, default=500, help="hand-offs before the first run (default 500)")
    p.add_argument("--pairs", type=int, default=20, help="sender/recipient pairs the hand-offs rotate over")
    p.add_argument("--chunk", type=int, default=100, help="hand-offs per socket write (default 100)")
    p.add_argument("--window", type=int, default=2000,
                   help="at most this many hand-offs written and not yet released (default 2000; 0: no limit)")
    p.add_argument("--stall", type=float, default=60, help="fail after this many seconds without a release")
    p.add_argument("--max-seconds", type=float, default=180, help="abort the whole run after this long")
    p.add_argument("--keep", action="store_true", help="keep the work dir (Courier's config, log and store)")
    p.add_argument("--profile", type=Path, help="run Courier under cProfile, write the profile here, print its top")
    args = p.parse_args(argv)
    for name in ("messages", "repeat", "warmup", "pairs", "chunk", "stall"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="courier-alone-"))
    print(f"courier bench (Courier alone); work dir {root}\n{machine_line()}", flush=True)
    phase = ["start-up"]
    try:
        runs, notes = asyncio.run(asyncio.wait_for(measure(args, root, phase), args.max_seconds))
        notes.append(f"Total run time {time.monotonic() - started:.0f}s.")
        print(report(args, runs, notes), flush=True)
        return 0
    except (TimeoutError, BenchFailure) as exc:
        return failed_run(exc, args, root, phase[0])
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

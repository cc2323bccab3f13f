"""Throughput and latency of 1:1 chat through Courier, against a plain Prosody: the spread of R rounds.

    python -m bench.throughput_latency [--messages N] [--latency-samples M] [--repeat R]
                                       [--warmup W] [--settle S] [--max-seconds T] [--keep]

Two stacks on free loopback ports, both running for the whole run:

* **plain**: Debian's Prosody rendered from prosody-config/ with
  ``ProsodySetup(route=False)`` (no hand-off; same modules, MAM on);
* **Courier**: the same Prosody with ``mod_courier_route`` plus a real Courier
  process (``python -m component run``; SQLite WAL, ``synchronous=normal``,
  group commit).

R rounds.  In each round each stack (ABBA order across rounds) gets a fresh
pair of users (MAM archives start empty) and two real slixmpp clients
(:class:`tests.conformance.xmpp.Client`) in this process: W warm-up messages,
a burst of N pre-serialised ``<message type='chat'/>`` written in one loop
(first write to N-th arrival, with the CPU seconds of Prosody and Courier),
then M one-at-a-time messages (p50/p99 by nearest rank).  Each round gives one
value of each ratio (throughput %, added p50, added p99, Prosody CPU per
message x plain); the report prints min / median / max over the rounds and each
target of issue #14 with PASS/MISS (on the median; the rounds that pass are
counted too).  Every message must arrive exactly once and in order, and any
fallback delivery fails the run.

See bench/README.md for how to read the output and the figures measured.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass

from .common import (
    add_gc_option,
    body_for,
    cpu_seconds,
    fmt_spread,
    one_at_a_time,
    own_cpu_seconds,
    percentile,
    stanza_for,
    use_gc_option,
    verdict,
    verify,
)
from .stacks import Stack, check_courier_released, run_side_by_side

# Targets of issue #14 (online recipient, transparent path), Courier against plain in the same run.
TARGET_THROUGHPUT_RATIO = 0.80  # Courier msg/s >= 80 % of plain
TARGET_ADDED_P50_MS = 0.5
TARGET_ADDED_P99_MS = 1.5
TARGET_PROSODY_CPU_RATIO = 1.3  # Prosody CPU per message, Courier path / plain


@dataclass
class Side:
    """One stack's measurements in one round."""

    n: int
    seconds: float  # first write to the N-th arrival
    write_seconds: float  # how long the sender took to write all N to its socket
    cpu: dict[str, float]  # process -> CPU seconds during the burst
    idle_cpu: float  # CPU seconds the other (idle) stack used meanwhile
    latency_ms: list[float]

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    @property
    def p50(self) -> float:
        return percentile(self.latency_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latency_ms, 99)

    def cpu_per_msg(self, proc: str) -> float:
        return self.cpu.get(proc, 0.0) / self.n


@dataclass
class Round:
    plain: Side
    courier: Side

    @property
    def throughput(self) -> float:
        return self.courier.rate / self.plain.rate

    @property
    def added_p50(self) -> float:
        return self.courier.p50 - self.plain.p50

    @property
    def added_p99(self) -> float:
        return self.courier.p99 - self.plain.p99

    @property
    def prosody_cpu(self) -> float:
        return self.courier.cpu_per_msg("prosody") / self.plain.cpu_per_msg("prosody")


async def measure_side(stack: Stack, idle: Stack, rnd: int, args: argparse.Namespace) -> Side:
    """Warm-up, burst and one-at-a-time latency on a fresh pair of *stack*."""
    n = args.messages
    sender, recipient = await stack.pair()
    try:
        await one_at_a_time(sender, recipient, f"{stack.name[0]}w{rnd}", args.warmup)
        tag = f"{stack.name[0]}{rnd}"
        to = recipient.boundjid.bare
        lines = [stanza_for(to, tag, i) for i in range(n)]
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
        await recipient.wait_target(15, f"{stack.name} burst {rnd}")
        cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
        cpu["bench clients"] = own_cpu_seconds() - own0
        idle_cpu = sum(cpu_seconds(pid) for pid in idle.pids().values()) - idle0
        t_last = recipient.arrivals[n - 1][0]
        await asyncio.sleep(args.settle)  # anything arriving now is a duplicate
        verify([b for _, b in recipient.arrivals], [body_for(tag, i) for i in range(n)], f"{stack.name} burst {rnd}")
        latency = await one_at_a_time(sender, recipient, f"{stack.name[0]}L{rnd}", args.latency_samples)
        stack.check_alive()
        return Side(n, t_last - t0, t_written - t0, cpu, idle_cpu, latency)
    finally:
        await sender.stop()
        await recipient.stop()


async def measure(args: argparse.Namespace, stacks: dict[str, Stack], phase: list[str]) -> list[Round]:
    rounds: list[Round] = []
    for rnd in range(args.repeat):
        order = ("plain", "Courier") if rnd % 2 == 0 else ("Courier", "plain")  # ABBA
        sides: dict[str, Side] = {}
        for name in order:
            phase[0] = f"{name}, round {rnd + 1}/{args.repeat}"
            idle = stacks["Courier" if name == "plain" else "plain"]
            sides[name] = await measure_side(stacks[name], idle, rnd, args)
        r = Round(sides["plain"], sides["Courier"])
        rounds.append(r)
        print(
            f"  round {rnd + 1}/{args.repeat}: plain {r.plain.rate:.0f} msg/s, Courier {r.courier.rate:.0f} msg/s "
            f"({r.throughput * 100:.1f} %); added p50 {r.added_p50:+.2f} ms, p99 {r.added_p99:+.2f} ms; "
            f"Prosody CPU/msg x{r.prosody_cpu:.2f}",
            flush=True,
        )
    await asyncio.sleep(0.2)  # let the stopped clients' tasks finish their cancellation
    return rounds


# -- report ----------------------------------------------------------------------


def report(args: argparse.Namespace, rounds: list[Round], notes: list[str], fallbacks: int) -> str:
    out: list[str] = []
    w = out.append
    R = len(rounds)  # noqa: N806
    thr = [r.throughput * 100 for r in rounds]
    a50 = [r.added_p50 for r in rounds]
    a99 = [r.added_p99 for r in rounds]
    cpu = [r.prosody_cpu for r in rounds]
    rows = [
        ("throughput, % of plain", thr, ".1f", f">= {TARGET_THROUGHPUT_RATIO * 100:.0f} %",
         lambda v: v >= TARGET_THROUGHPUT_RATIO * 100),
        ("added latency p50 (ms)", a50, "+.2f", f"<= +{TARGET_ADDED_P50_MS} ms", lambda v: v <= TARGET_ADDED_P50_MS),
        ("added latency p99 (ms)", a99, "+.2f", f"<= +{TARGET_ADDED_P99_MS} ms", lambda v: v <= TARGET_ADDED_P99_MS),
        ("Prosody CPU/msg, x plain", cpu, ".2f", f"<= {TARGET_PROSODY_CPU_RATIO} x",
         lambda v: v <= TARGET_PROSODY_CPU_RATIO),
    ]  # fmt: skip
    w("")
    w(f"Courier vs plain Prosody (issue #14, transparent path) — {R} rounds; each: a {args.messages}-message burst "
      f"and {args.latency_samples} one-at-a-time messages per stack")  # fmt: skip
    w("")
    w(f"{'':26}{'min / median / max':<28}{'target':<14}{'result':<8}rounds passing")
    for label, values, fmt, target, ok in rows:
        passing = sum(1 for v in values if ok(v))
        result = verdict(ok(statistics.median(values)))
        w(f"{label:26}{fmt_spread(values, fmt):<28}{target:<14}{result:<8}{passing}/{R}")
    w(f"{'fallback deliveries':26}{fallbacks:<28}{'0':<14}{verdict(fallbacks == 0):<8}"
      + ("(any fallback: FAILED RUN)" if fallbacks else ""))
    w(f"{'duplicates / lost':26}{'0 / 0':<28}{'0 / 0':<14}PASS    (checked: a duplicate or a loss stops the run)")
    w("(PASS/MISS is decided on the median of the rounds.)")
    w("")
    w("Per round (msg/s plain / Courier; p50 and p99 in ms plain / Courier; Prosody, Courier CPU in ms per message):")
    for i, r in enumerate(rounds):
        w(f"  {i + 1:2}: {r.plain.rate:6.0f} / {r.courier.rate:6.0f}   p50 {r.plain.p50:5.2f} / {r.courier.p50:5.2f}"
          f"   p99 {r.plain.p99:5.2f} / {r.courier.p99:5.2f}   prosody {r.plain.cpu_per_msg('prosody') * 1000:.3f} / "
          f"{r.courier.cpu_per_msg('prosody') * 1000:.3f}, courier {r.courier.cpu_per_msg('courier') * 1000:.3f}"
          f"   (wrote {args.messages} in {r.plain.write_seconds * 1000:.0f} / "
          f"{r.courier.write_seconds * 1000:.0f} ms)")  # fmt: skip
    w("")
    w("CPU during a burst (median over rounds; % = share of one core over the burst's wall time):")
    for name, sides in (("plain", [r.plain for r in rounds]), ("Courier", [r.courier for r in rounds])):
        wall = statistics.median(s.seconds for s in sides)
        parts = []
        for proc in sides[0].cpu:
            sec = statistics.median(s.cpu[proc] for s in sides)
            parts.append(f"{proc} {sec:.2f}s ({sec / wall * 100:.0f} %, {sec / args.messages * 1000:.3f} ms/msg)")
        w(f"  {name:8} wall {wall:.2f}s: " + "; ".join(parts))
    idle_max = max(s.idle_cpu for r in rounds for s in (r.plain, r.courier))
    w(f"  (the other, idle stack used at most {idle_max:.2f}s CPU during any burst)")
    for name, sides in (("plain", [r.plain for r in rounds]), ("Courier", [r.courier for r in rounds])):
        pooled = [v for s in sides for v in s.latency_ms]
        w(f"  latency {name:8} all {len(pooled)} samples: min {min(pooled):.2f} p50 {percentile(pooled, 50):.2f} "
          f"p90 {percentile(pooled, 90):.2f} p99 {percentile(pooled, 99):.2f} max {max(pooled):.2f} ms")  # fmt: skip
    w("")
    w("Checks: every message arrived exactly once and in order (all bursts, warm-ups and latency runs).")
    out.extend(notes)
    return "\n".join(out)


# -- main ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.throughput_latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=2000, help="messages per burst (default 2000)")
    p.add_argument("--latency-samples", type=int, default=300, help="one-at-a-time messages per round (default 300)")
    p.add_argument("--repeat", type=int, default=5, help="rounds; min/median/max reported (default 5)")
    p.add_argument("--warmup", type=int, default=20, help="one-at-a-time messages before each burst (default 20)")
    p.add_argument("--settle", type=float, default=0.5, help="seconds to wait for duplicates after a burst")
    p.add_argument("--max-seconds", type=float, default=300, help="abort the whole run after this long (default 300)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs, Courier's store)")
    p.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite",
                   help="Courier's store: its SQLite file (default) or a PostgreSQL of its own (fsync on)")
    add_gc_option(p)
    args = p.parse_args(argv)
    use_gc_option(args)
    for name in ("messages", "latency_samples", "repeat"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.messages + args.warmup + args.latency_samples > 9000:
        p.error("at most 9000 messages per pair: Prosody's internal MAM store caps an archive at 10000 items "
                "and cleaning it would be measured too")  # fmt: skip
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    total = args.repeat * (args.messages + args.warmup + args.latency_samples)
    return run_side_by_side(
        args,
        " (throughput and latency, issue #14)",
        args.repeat,  # a fresh sender/recipient pair per round and stack
        measure,
        lambda stacks, _result: [check_courier_released(stacks["Courier"], total)],
        lambda result, notes, fb: report(args, result, notes, fb),
    )


if __name__ == "__main__":
    sys.exit(main())

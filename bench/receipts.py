"""What XEP-0184 receipts cost through Courier, against a plain Prosody.

    python -m bench.receipts [--messages N] [--latency-samples M] [--repeat R]
                             [--warmup W] [--settle S] [--max-seconds T] [--keep]

The same two stacks as :mod:`bench.throughput_latency` (whose helpers this
reuses), side by side for the whole run.  Every message asks for a XEP-0184
receipt (``<request xmlns='urn:xmpp:receipts'/>``, as stock clients send it)
and the recipient answers each one with ``<received id/>`` to the ``from`` it
saw, as soon as it has parsed it.  On the Courier stack the receipt is handed
off too: Courier applies the recipient's receipt policy (``auto`` here) and
releases it at once, without waiting for a store commit; it then records the
``received`` hop.  Three variants:

* ``plain``: plain Prosody;
* ``Courier``: a stock client's message.  Its receipt request also asks Courier
  for hop reports, so the sender gets ``sent``, ``released`` and ``received``
  reports (``headline``) on top of the receipt;
* ``Courier, no reports``: the same message with courier-receipts'
  ``<no-request/>``: no hop reports, only the receipt passes through Courier.

Burst: N messages written in one loop; complete when the sender has all N
receipts; throughput = 2N (messages + receipts) / (first write to N-th
receipt).  Bursts rotate plain, Courier, no-reports, then the reverse, R
times each; medians are reported.  Round trip: M messages, each written
when the previous one's receipt arrived; message to receipt at the sender,
p50/p99 nearest rank.  Every measurement checks that every message and every
receipt arrived exactly once and in order, and that each hop report arrived
exactly once (none where none was asked for); it fails loudly if not.

See bench/README.md for the figures measured.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import time
from dataclasses import dataclass
from typing import cast

from .common import (
    BenchFailure,
    add_gc_option,
    body_for,
    cpu_seconds,
    fmt_spread,
    own_cpu_seconds,
    percentile,
    use_gc_option,
    verdict,
    verify,
)
from .receipt_client import REPORT_STATES, ReceiptClient, check_reports, request_stanza, wait_count
from .stacks import Stack, run_side_by_side

#: Issue #14: every message answered by a receipt, hop reports on: Courier >= 65 % of plain, 0 fallbacks.
TARGET_RATIO = 0.65


VARIANTS = ("plain", "Courier", "Courier, no reports")
STACK_OF = {"plain": "plain", "Courier": "Courier", "Courier, no reports": "Courier"}
TAG_OF = {"plain": "p", "Courier": "c", "Courier, no reports": "n"}


# -- measurements ------------------------------------------------------------------


@dataclass
class Burst:
    n: int
    seconds: float  # first write to the N-th receipt at the sender
    reports_after: float | None  # the last hop report, seconds after the N-th receipt
    write_seconds: float
    cpu: dict[str, float]  # process -> CPU seconds until everything (receipts and reports) arrived
    idle_cpu: float
    report_messages: int = 0  # the messages that carried the hop reports (several per message since hops 0.3)

    @property
    def rate(self) -> float:
        """Messages + receipts per second."""
        return 2 * self.n / self.seconds


@dataclass
class RoundTrips:
    samples_ms: list[float]  # message written -> its receipt parsed at the sender
    message_ms: list[float]  # message written -> message parsed at the recipient

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples_ms, 99)


async def one_at_a_time(
    sender: ReceiptClient, recipient: ReceiptClient, tag: str, count: int, variant: str, settle: float
) -> RoundTrips:
    """*count* messages, each after the previous one's receipt arrived; then the exactly-once checks."""
    to = recipient.boundjid.bare
    no_reports = variant == "Courier, no reports"
    sender.reset()
    recipient.reset()
    rtt, leg = [], []
    for i in range(count):
        sender.expect_receipts(i + 1)
        t0 = time.perf_counter()
        sender.send_raw(request_stanza(to, tag, i, no_reports))
        try:
            await asyncio.wait_for(sender.receipts_reached.wait(), 10)
        except TimeoutError:
            raise BenchFailure(f"{tag}: no receipt for message {i} within 10s") from None
        rtt.append((sender.receipts[i][0] - t0) * 1000)
        leg.append((recipient.arrivals[i][0] - t0) * 1000)
    ids = [f"{tag}-{i}" for i in range(count)]
    if variant == "Courier":
        await wait_count(lambda: len(sender.hop_reports), len(REPORT_STATES) * count, 10, f"{tag} hop reports")
    await asyncio.sleep(settle)  # anything arriving now is a duplicate
    verify([b for _, b in recipient.arrivals], [body_for(tag, i) for i in range(count)], tag)
    verify([r for _, r in sender.receipts], ids, f"{tag} receipts")
    check_reports(sender, ids, variant == "Courier", tag)
    return RoundTrips(rtt, leg)


async def measure_burst(
    stacks: dict[str, Stack], variant: str, rep: int, n: int, warmup: int, settle: float, stall: float = 15
) -> Burst:
    stack = stacks[STACK_OF[variant]]
    idle = stacks["plain" if STACK_OF[variant] == "Courier" else "Courier"]
    sender, recipient = cast(tuple[ReceiptClient, ReceiptClient], await stack.pair(ReceiptClient))
    recipient.answer = True
    try:
        await one_at_a_time(sender, recipient, f"{TAG_OF[variant]}w{rep}", warmup, variant, 0)
        tag = f"{TAG_OF[variant]}{rep}"
        to = recipient.boundjid.bare
        lines = [request_stanza(to, tag, i, variant == "Courier, no reports") for i in range(n)]
        ids = [f"{tag}-{i}" for i in range(n)]
        sender.reset()
        recipient.reset()
        sender.expect_receipts(n)
        pids = stack.pids()
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        idle0 = sum(cpu_seconds(pid) for pid in idle.pids().values())
        own0 = own_cpu_seconds()
        t0 = time.perf_counter()
        for line in lines:
            sender.send_raw(line)
        t_written = time.perf_counter()
        await wait_count(lambda: len(sender.receipts), n, stall, f"{variant} burst {rep} receipts")
        reports_after = None
        if variant == "Courier":
            count = len(REPORT_STATES) * n
            await wait_count(lambda: len(sender.hop_reports), count, stall, f"{variant} burst {rep} hop reports")
            reports_after = sender.hop_reports[count - 1][0] - sender.receipts[n - 1][0]
        cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
        cpu["bench clients"] = own_cpu_seconds() - own0
        idle_cpu = sum(cpu_seconds(pid) for pid in idle.pids().values()) - idle0
        t_last = sender.receipts[n - 1][0]
        await asyncio.sleep(settle)  # anything arriving now is a duplicate
        verify([b for _, b in recipient.arrivals], [body_for(tag, i) for i in range(n)], f"{variant} burst {rep}")
        verify([r for _, r in sender.receipts], ids, f"{variant} burst {rep} receipts")
        check_reports(sender, ids, variant == "Courier", f"{variant} burst {rep}")
        stack.check_alive()
        return Burst(n, t_last - t0, reports_after, t_written - t0, cpu, idle_cpu, sender.report_messages)
    finally:
        await sender.stop()
        await recipient.stop()


async def measure_round_trips(stack: Stack, variant: str, m: int, warmup: int, settle: float) -> RoundTrips:
    sender, recipient = cast(tuple[ReceiptClient, ReceiptClient], await stack.pair(ReceiptClient))
    recipient.answer = True
    try:
        tag = TAG_OF[variant]
        await one_at_a_time(sender, recipient, f"{tag}wl", warmup, variant, 0)
        result = await one_at_a_time(sender, recipient, f"{tag}L", m, variant, settle)
        stack.check_alive()
        return result
    finally:
        await sender.stop()
        await recipient.stop()


def check_courier_store(stack: Stack, expected_total: int) -> str:
    """Courier's record: one tracked message per message sent, each 'received' with its three hops."""
    assert stack.courier is not None
    conn = sqlite3.connect(f"file:{stack.courier.db}?mode=ro", uri=True)
    try:
        states = dict(conn.execute("SELECT state, count(*) FROM messages GROUP BY state").fetchall())
        hops = dict(conn.execute("SELECT label, count(*) FROM hops GROUP BY label").fetchall())
    finally:
        conn.close()
    total = sum(states.values())
    want_hops = {"accepted": expected_total, "released": expected_total, "received": expected_total}
    if total != expected_total or set(states) != {"received"} or hops != want_hops:
        raise BenchFailure(
            f"Courier's store holds {total} tracked messages (states {states}, hops {hops}); "
            f"{expected_total} were sent through it, each should be 'received' with hops {want_hops}"
        )
    return (
        f"Courier's store: {total} tracked messages, one per message sent, all 'received' "
        f"(hops accepted, released, received: one each)"
    )


# -- report ----------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    bursts: dict[str, list[Burst]],
    rtt: dict[str, RoundTrips],
    notes: list[str],
    fallbacks: int,
) -> str:
    out: list[str] = []
    w = out.append
    rate = {v: statistics.median(b.rate for b in bursts[v]) for v in VARIANTS}
    w("")
    w(
        f"Receipts: Courier vs plain Prosody — bursts of {args.messages} messages + {args.messages} XEP-0184 "
        f"receipts x {args.repeat} (median), {args.latency_samples} round trips"
    )
    w("")
    w(f"{'':30}{'plain':>10}{'Courier':>12}{'no reports':>12}")
    w(f"{'burst (msgs+receipts/s)':30}" + "".join(f"{rate[v]:{10 if v == 'plain' else 12}.0f}" for v in VARIANTS))
    w(f"{'  vs plain':30}{'':10}" + "".join(f"{rate[v] / rate['plain'] * 100:11.1f}%" for v in VARIANTS[1:]))
    for p in (50, 99):
        vals = {v: percentile(rtt[v].samples_ms, p) for v in VARIANTS}
        w(f"{f'round trip p{p} (ms)':30}" + "".join(f"{vals[v]:{10 if v == 'plain' else 12}.2f}" for v in VARIANTS))
        added = [f"{vals[v] - vals['plain']:+.2f}" for v in VARIANTS[1:]]
        w(f"{'  added':30}{'':10}" + "".join(f"{a:>12}" for a in added))
    w("")
    per_rep = [c.rate / p.rate * 100 for c, p in zip(bursts["Courier"], bursts["plain"], strict=True)]
    ratio = rate["Courier"] / rate["plain"]
    w(f"Target (issue #14, receipts path with hop reports): Courier >= {TARGET_RATIO * 100:.0f} % of plain: "
      f"{ratio * 100:.1f} % (per repeat min / median / max {fmt_spread(per_rep, '.1f')} %)  "
      f"{verdict(ratio >= TARGET_RATIO)}")  # fmt: skip
    w(f"        fallback deliveries: {fallbacks} (target 0)  {verdict(fallbacks == 0)}"
      + ("  <-- FAILED RUN: the Courier figures include messages that bypassed it" if fallbacks else ""))
    w("")
    w("Bursts (msgs+receipts/s, in run order):")
    for v in VARIANTS:
        write_ms = statistics.median(b.write_seconds for b in bursts[v]) * 1000
        extra = ""
        if v == "Courier":
            after = statistics.median(b.reports_after or 0.0 for b in bursts[v]) * 1000
            carriers = statistics.median(b.report_messages for b in bursts[v])
            extra = (
                f"; last hop report {after:.1f} ms after the last receipt (median); "
                f"{len(REPORT_STATES) * args.messages} hop reports in {carriers:.0f} messages (median)"
            )
        w(
            f"  {v:20} "
            + "  ".join(f"{b.rate:7.0f}" for b in bursts[v])
            + f"   sender wrote all {args.messages} in {write_ms:.0f} ms (median){extra}"
        )
    w("")
    w(
        "CPU during a burst, until every receipt (and hop report) arrived (median over runs;"
        " % = share of one core over the wall time to the last receipt; ms/pair = CPU per message + its receipt):"
    )
    for v in VARIANTS:
        wall = statistics.median(b.seconds for b in bursts[v])
        parts = []
        for proc in bursts[v][0].cpu:
            sec = statistics.median(b.cpu[proc] for b in bursts[v])
            parts.append(f"{proc} {sec:.2f}s ({sec / wall * 100:.0f} %, {sec / args.messages * 1000:.3f} ms/pair)")
        w(f"  {v:20} wall {wall:.2f}s: " + "; ".join(parts))
    idle_max = max(b.idle_cpu for runs in bursts.values() for b in runs)
    w(f"  (the other, idle stack used at most {idle_max:.2f}s CPU during any burst)")
    w("")
    w("Round trips (ms): message written -> receipt parsed at the sender; 'message' = the message leg alone:")
    for v in VARIANTS:
        s, leg = rtt[v].samples_ms, rtt[v].message_ms
        w(
            f"  {v:20} min {min(s):.2f} p50 {percentile(s, 50):.2f} p90 {percentile(s, 90):.2f} "
            f"p99 {percentile(s, 99):.2f} max {max(s):.2f}; message p50 {percentile(leg, 50):.2f}, "
            f"receipt leg p50 {percentile([a - b for a, b in zip(s, leg, strict=True)], 50):.2f}"
        )
    w("")
    w(
        "Checks: every message and every receipt arrived exactly once and in order (bursts, warm-ups, round trips);"
        " each hop report exactly once for 'Courier', none otherwise."
    )
    for note in notes:
        w(note)
    return "\n".join(out)


# -- main ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.receipts", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--messages", type=int, default=2000, help="messages (each with its receipt) per burst (default 2000)"
    )
    p.add_argument("--latency-samples", type=int, default=300, help="one-at-a-time round trips (default 300)")
    p.add_argument("--repeat", type=int, default=3, help="bursts per variant, rotating; median reported (default 3)")
    p.add_argument("--warmup", type=int, default=20, help="round trips before each measurement (default 20)")
    p.add_argument(
        "--settle", type=float, default=0.5, help="seconds to wait for duplicates after a measurement (default 0.5)"
    )
    p.add_argument("--max-seconds", type=float, default=300, help="abort the whole run after this long (default 300)")
    p.add_argument("--stall", type=float, default=15, help="fail a burst after this many seconds without progress")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs, Courier's store)")
    add_gc_option(p)
    args = p.parse_args(argv)
    use_gc_option(args)
    for name in ("messages", "latency_samples", "repeat"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.messages + args.warmup > 4500 or args.latency_samples + args.warmup > 4500:
        p.error("at most 4500 messages per measurement: Prosody's internal MAM store caps an archive at 10000 items")
    return args


async def measure(
    args: argparse.Namespace, stacks: dict[str, Stack], phase: list[str]
) -> tuple[dict[str, list[Burst]], dict[str, RoundTrips]]:
    bursts: dict[str, list[Burst]] = {v: [] for v in VARIANTS}
    for rep in range(args.repeat):
        order = VARIANTS if rep % 2 == 0 else tuple(reversed(VARIANTS))
        for variant in order:
            phase[0] = f"{variant} burst {rep + 1}/{args.repeat}"
            b = await measure_burst(stacks, variant, rep, args.messages, args.warmup, args.settle, args.stall)
            bursts[variant].append(b)
            print(
                f"  {phase[0]}: {b.rate:.0f} msgs+receipts/s ({b.seconds:.2f}s; CPU "
                + ", ".join(f"{k} {v:.2f}s" for k, v in b.cpu.items())
                + ")",
                flush=True,
            )
    rtt: dict[str, RoundTrips] = {}
    for variant in VARIANTS:
        phase[0] = f"{variant} round trips"
        rtt[variant] = await measure_round_trips(
            stacks[STACK_OF[variant]], variant, args.latency_samples, args.warmup, args.settle
        )
        print(f"  {phase[0]}: p50 {rtt[variant].p50:.2f} ms, p99 {rtt[variant].p99:.2f} ms", flush=True)
    await asyncio.sleep(0.2)  # let the stopped clients' tasks finish their cancellation
    return bursts, rtt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    through_courier = 2 * (args.repeat * (args.messages + args.warmup) + args.latency_samples + args.warmup)
    return run_side_by_side(
        args,
        " (receipts)",
        2 * (args.repeat + 1),  # a fresh sender/recipient pair per measurement
        measure,
        lambda stacks, _result: [check_courier_store(stacks["Courier"], through_courier)],
        lambda result, notes, fb: report(args, result[0], result[1], notes, fb),
    )


if __name__ == "__main__":
    sys.exit(main())

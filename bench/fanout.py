"""A 200-member broadcast-list fan-out, and a 1:1 conversation going on meanwhile.

    python -m bench.fanout [--members N] [--repeat R] [--baseline M] [--max-seconds S] [--keep]

One stack: Debian's Prosody rendered from prosody-config/ with
``mod_courier_route``, and a real Courier process (SQLite WAL,
``synchronous=normal``, log level INFO; ``lists.fanouts_per_minute`` raised for
the run).  N members (default 200), a list owner and a 1:1 pair log in as real
slixmpp clients (:class:`bench.throughput_latency.BenchClient`, which
timestamps a message as soon as it is parsed) and send presence; the owner
creates one list of the N members (courier-lists IQ).

Baseline: M one-at-a-time 1:1 messages (each sent once the previous one
arrived), with nothing else going on.  Then R times: the owner writes one
message to the list's JID (as a stock client would) and, from that moment,
the 1:1 sender keeps sending one-at-a-time messages until every member has
its copy.  Reported per fan-out: the time from the owner's write to the first
and to the N-th copy parsed at a member, when the owner's device got the
aggregate status, and the 1:1 latencies during the fan-out (p50, max)
against the baseline.  Every member must get exactly one copy, from the
owner's bare JID; the run fails loudly otherwise.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from component import prosody
from component.xep import lists as xep_lists
from tests.conformance.xmpp import CourierProcess

from .common import (
    BenchClient,
    BenchFailure,
    cpu_model,
    cpu_seconds,
    own_cpu_seconds,
    package_version,
    percentile,
)

PASSWORD = "bench-pw"
LOGIN_BATCH = 25  # clients logging in at once


@dataclass
class Fanout:
    first: float  # seconds from the owner's write to the first copy parsed
    last: float  # ... to the N-th copy
    notice: float  # ... to the aggregate status at the owner's device
    latencies_ms: list[float]  # 1:1 messages sent while the fan-out ran
    cpu: dict[str, float]


def register(setup: prosody.ProsodySetup, names: list[str]) -> None:
    """Register the first name with prosodyctl and give the others the same account file.

    Prosody's internal store keeps SCRAM keys and salt, not the name, in
    ``accounts/<user>.dat``: one file serves every account with the same password
    (registering 200 accounts one prosodyctl call at a time would take half a minute).
    """
    prosody.adduser(setup, f"{names[0]}@{setup.domain}", PASSWORD)
    accounts = setup.data / "prosody" / setup.domain / "accounts"
    template = accounts / f"{names[0]}.dat"
    for name in names[1:]:
        shutil.copyfile(template, accounts / f"{name}.dat")


async def login(setup: prosody.ProsodySetup, names: list[str], keep: list[BenchClient]) -> list[BenchClient]:
    clients = [BenchClient(f"{n}@{setup.domain}/bench", PASSWORD, setup.c2s_port) for n in names]
    keep += clients
    for start in range(0, len(clients), LOGIN_BATCH):
        await asyncio.gather(*(c.start(30) for c in clients[start : start + LOGIN_BATCH]))
    return clients


async def one_to_one(sender: BenchClient, recipient: BenchClient, tag: str, i: int) -> float:
    """One 1:1 message, sent once the previous one arrived; its latency in ms."""
    to = recipient.boundjid.bare
    body = f"bench {tag} {i:06d}"
    recipient.expect(len(recipient.arrivals) + 1)
    t0 = time.perf_counter()
    sender.send_raw(f"<message to='{to}' type='chat' id='{tag}-{i}'><body>{body}</body></message>")
    try:
        await asyncio.wait_for(recipient.reached.wait(), 10)
    except TimeoutError:
        raise BenchFailure(f"1:1 message {tag} {i} did not arrive within 10s") from None
    t_arrived, got = recipient.arrivals[-1]
    if got != body:
        raise BenchFailure(f"1:1: expected {body!r}, got {got!r}")
    return (t_arrived - t0) * 1000


async def measure(args: argparse.Namespace, setup: prosody.ProsodySetup, pids: dict[str, int]) -> str:
    keep: list[BenchClient] = []
    members = await login(setup, [f"m{i}" for i in range(args.members)], keep)
    owner, sender, recipient = await login(setup, ["owner", "s", "r"], keep)
    owner.register_plugin("courier_lists", module=xep_lists)
    notices: list[float] = []
    owner.add_event_handler("lists_fanout", lambda _msg: notices.append(time.perf_counter()))
    await asyncio.sleep(1.0)  # Courier learns every presence through XEP-0356 (managed_entity)
    created = await owner.plugin["courier_lists"].create(
        setup.component, "everyone", [m.boundjid.bare for m in members], timeout=30
    )
    list_jid = created["lists_list"]["jid"]
    print(f"  {args.members} members, owner, 1:1 pair logged in; list {list_jid}", flush=True)

    baseline = [await one_to_one(sender, recipient, "base", i) for i in range(args.baseline)]
    print(f"  baseline 1:1 latency: p50 {percentile(baseline, 50):.2f} ms, max {max(baseline):.2f} ms", flush=True)

    runs: list[Fanout] = []
    for rep in range(args.repeat):
        body = f"bench F{rep} to everyone"
        for m in members:
            m.arrivals.clear()
        notices.clear()
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        own0 = own_cpu_seconds()
        t0 = time.perf_counter()
        owner.send_raw(f"<message to='{list_jid}' type='chat' id='f{rep}'><body>{body}</body></message>")
        latencies: list[float] = []
        deadline = time.monotonic() + 60
        i = 0
        while not all(m.arrivals for m in members):
            if time.monotonic() > deadline:
                missing = sum(1 for m in members if not m.arrivals)
                raise BenchFailure(f"fan-out {rep}: {missing} of {args.members} members got nothing in 60s")
            latencies.append(await one_to_one(sender, recipient, f"during{rep}", i))
            i += 1
        cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
        cpu["bench clients"] = own_cpu_seconds() - own0
        await asyncio.sleep(0.5)  # duplicates would arrive now
        for m in members:
            if [b for _, b in m.arrivals] != [body]:
                raise BenchFailure(f"{m.boundjid.bare} got {[b for _, b in m.arrivals]!r}, expected one copy")
        times = sorted(t for m in members for t, _ in m.arrivals)
        notice = (notices[0] - t0) if notices else float("nan")
        runs.append(Fanout(times[0] - t0, times[-1] - t0, notice, latencies, cpu))
        print(f"  fan-out {rep + 1}/{args.repeat}: first copy {runs[-1].first * 1000:.0f} ms, "
              f"all {args.members} in {runs[-1].last * 1000:.0f} ms; {len(latencies)} 1:1 messages meanwhile, "
              f"p50 {percentile(latencies, 50):.2f} ms, max {max(latencies):.2f} ms", flush=True)  # fmt: skip
    for c in keep:
        await c.stop()
    return report(args, baseline, runs)


def report(args: argparse.Namespace, baseline: list[float], runs: list[Fanout]) -> str:
    during = [x for r in runs for x in r.latencies_ms]
    last = statistics.median(r.last for r in runs)
    out = [
        "",
        f"Broadcast-list fan-out to {args.members} online members x {args.repeat} (median), with a 1:1 "
        "conversation going on",
        "",
        f"  time to deliver all {args.members} copies (owner's write -> N-th copy parsed): "
        f"{last * 1000:.0f} ms median (runs: {', '.join(f'{r.last * 1000:.0f}' for r in runs)} ms), "
        f"{args.members / last:.0f} copies/s",
        f"  first copy after {statistics.median(r.first for r in runs) * 1000:.0f} ms; aggregate status at the "
        f"owner after {statistics.median(r.notice for r in runs) * 1000:.0f} ms",
        f"  1:1 latency, baseline ({len(baseline)} msgs): p50 {percentile(baseline, 50):.2f} ms, "
        f"p99 {percentile(baseline, 99):.2f} ms, max {max(baseline):.2f} ms",
        f"  1:1 latency during the fan-outs ({len(during)} msgs): p50 {percentile(during, 50):.2f} ms, "
        f"p99 {percentile(during, 99):.2f} ms, max {max(during):.2f} ms",
        "  CPU seconds per fan-out (median): "
        + ", ".join(f"{k} {statistics.median(r.cpu[k] for r in runs):.2f}s" for k in runs[0].cpu),
        "",
        f"Checks: every member got exactly one copy per fan-out, from the owner's bare JID "
        f"({args.members * args.repeat} copies); every 1:1 message arrived, in order.",
    ]
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=200, help="list members, all online (default 200)")
    p.add_argument("--repeat", type=int, default=3, help="fan-outs; medians reported (default 3)")
    p.add_argument("--baseline", type=int, default=100, help="1:1 messages before the fan-outs (default 100)")
    p.add_argument("--max-seconds", type=float, default=240, help="give up after this long (default 240)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs, Courier's store)")
    args = p.parse_args(argv)
    if args.members < 1 or args.repeat < 1 or args.baseline < 1:
        p.error("--members, --repeat and --baseline must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="courier-bench-fanout-"))
    print(f"courier fan-out bench: {os.cpu_count()} CPUs ({cpu_model()}), Prosody {package_version('prosody')}; "
          f"work dir {root}", flush=True)  # fmt: skip
    setup = prosody.ProsodySetup(
        data=root / "prosody", c2s_port=prosody.free_port(), component_port=prosody.free_port()
    )
    setup.render()
    proc: Any = None
    courier: CourierProcess | None = None
    failed = True
    try:
        register(setup, [f"m{i}" for i in range(args.members)] + ["owner", "s", "r"])
        proc = prosody.start(setup)
        courier = CourierProcess(
            setup, root / "courier-work", COURIER_LOG_LEVEL="INFO", COURIER_LISTS_FANOUTS_PER_MINUTE="1000",
            COURIER_LISTS_MAX_MEMBERS=str(max(500, args.members)),
        ).start()  # fmt: skip
        assert courier.proc is not None
        pids = {"prosody": proc.pid, "courier": courier.proc.pid}
        print(asyncio.run(asyncio.wait_for(measure(args, setup, pids), args.max_seconds)), flush=True)
        failed = False
        return 0
    except (BenchFailure, TimeoutError) as exc:
        print(f"\nFAILED: {exc or 'ran out of --max-seconds'}\nLogs and store kept in {root}", file=sys.stderr)
        return 1
    finally:
        if courier is not None:
            courier.stop()
        if proc is not None:
            prosody.stop(proc)
        if not failed and not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

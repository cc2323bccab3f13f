"""Do 100,000 pending drafts slow Courier's start-up or its live traffic?

    python -m bench.drafts [--drafts N] [--starts S] [--latency-samples M] [--repeat R] [--keep]

One Prosody (prosody-config/, with mod_courier_route) and two Courier stores:
``empty`` (no drafts) and ``loaded`` (N pending drafts, written straight into
the store: 70 % time triggers spread over the next year, 15 % waiting for one
of 5,000 targets to come online, 15 % waiting for a message from a contact;
2,000 authors).  Courier runs at its production log level (INFO).

* **Start-up**: the store's and the draft service's start alone, in this
  process (``Store.open`` + ``DraftService.start``: repair, the next-due query,
  the timer), and the whole process: from spawning ``python -m component run``
  until its log says it is connected to Prosody, and until the draft trigger
  sets (loaded in the background after start-up) are in memory.  S starts per
  store, alternating.
* **Live traffic**: one-at-a-time latency of M chat messages between two
  online users through Courier (each message passes the drafts' message
  observer), R runs per store, alternating ABBA; p50 and p99 by nearest rank.
  Courier's resident memory is read from /proc after each run.

See bench/README.md ("Drafts") for the figures measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import PASSWORD, BenchClient, BenchFailure, one_at_a_time, percentile
from component import prosody
from component.delivery.drafts import DraftService, Limits
from component.scheduler import Scheduler
from component.store import Store
from tests.conformance.xmpp import REPO, CourierProcess

AUTHORS = 2000
TARGETS = 5000
DOMAIN = "localhost"


# -- the stores ----------------------------------------------------------------------------


async def populate(path: Path, n: int) -> float:
    """Write *n* pending drafts into a fresh store at *path*; seconds taken."""
    rng = random.Random(5)
    now = time.time()
    store = await Store.open(path)
    started = time.perf_counter()
    numbers = [0] * AUTHORS
    rows = []
    for i in range(n):
        a = i % AUTHORS
        numbers[a] += 1
        author = f"author{a}@{DOMAIN}"
        target = f"target{rng.randrange(TARGETS)}@{DOMAIN}"
        kind = rng.random()
        if kind < 0.70:
            trigger, due, tz, jid = "at", now + 3600 + rng.random() * 365 * 86400, "Europe/Paris", ""
        elif kind < 0.85:
            trigger, due, tz, jid = "target-online", None, "", ""
        else:
            trigger, due, tz, jid = "message-from", None, "", f"contact{rng.randrange(TARGETS)}@{DOMAIN}"
        body = f"draft {i}: " + "the quick brown fox jumps over the lazy dog " * 2
        rows.append((author, numbers[a], target, body, "send", trigger, due, tz, jid, f"bench-{i}", now))
        if len(rows) == 10_000:
            await store.drafts.insert_many(rows)
            rows = []
    if rows:
        await store.drafts.insert_many(rows)
    took = time.perf_counter() - started
    await store.close()
    return took


class NullPipeline:
    """The pipeline as the draft service sees it at start-up (nothing is sent)."""

    domain = DOMAIN

    def __init__(self) -> None:
        self.available_observers: list[object] = []
        self.resource_observers: list[object] = []
        self.message_observers: list[object] = []
        self.scheduler = Scheduler()

    def online(self, bare: str) -> bool:
        return False


class NullNotifier:
    def reminder(self, draft: object) -> None: ...
    def fired(self, draft: object, how: str) -> None: ...
    def pending(self, device: str, drafts: list[object]) -> None: ...


async def service_start(path: Path) -> tuple[float, float, float]:
    """(Store.open ms, DraftService.start ms, background trigger-set load ms), in this process."""
    t0 = time.perf_counter()
    store = await Store.open(path)
    t1 = time.perf_counter()
    service = DraftService(store, NullPipeline(), NullNotifier(), Limits())  # type: ignore[arg-type]
    await service.start()
    t2 = time.perf_counter()
    await service.drain()
    t3 = time.perf_counter()
    service.stop()
    await store.close()
    return (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000


# -- Courier processes ----------------------------------------------------------------------


def courier_for(setup: prosody.ProsodySetup, workdir: Path) -> CourierProcess:
    return CourierProcess(setup, workdir, COURIER_LOG_LEVEL="INFO")


def process_start(courier: CourierProcess, timeout: float = 60) -> tuple[float, float]:
    """Spawn Courier; seconds until it is connected, and until its draft trigger sets are loaded."""
    courier._log_offset = courier.log.stat().st_size if courier.log.exists() else 0
    out = courier.log.open("ab")
    t0 = time.perf_counter()
    courier.proc = subprocess.Popen(
        [sys.executable, "-m", "component", "run", "--config", str(courier.config)],
        stdout=out, stderr=out, env=courier.env, cwd=REPO, start_new_session=True,
    )  # fmt: skip
    out.close()
    connected = loaded = None
    while time.perf_counter() - t0 < timeout and (connected is None or loaded is None):
        text = courier.log_text()
        now = time.perf_counter() - t0
        if connected is None and "connected to" in text:
            connected = now
        if loaded is None and "trigger sets loaded" in text:
            loaded = now
        if courier.proc.poll() is not None:
            raise BenchFailure(f"Courier exited: {courier.log_text()[-2000:]}")
        time.sleep(0.005)
    if connected is None or loaded is None:
        raise BenchFailure(f"Courier did not start within {timeout}s: {courier.log_text()[-2000:]}")
    return connected, loaded


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def latency_run(setup: prosody.ProsodySetup, k: int, warmup: int, samples: int, tag: str) -> list[float]:
    sender = BenchClient(f"s{k}@{DOMAIN}/bench", PASSWORD, setup.c2s_port)
    recipient = BenchClient(f"r{k}@{DOMAIN}/bench", PASSWORD, setup.c2s_port)
    await recipient.start()
    await sender.start()
    await asyncio.sleep(0.3)  # let Courier see both online
    try:
        await one_at_a_time(sender, recipient, f"{tag}w", warmup)
        return await one_at_a_time(sender, recipient, tag, samples)
    finally:
        await sender.stop()
        await recipient.stop()


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.drafts", description=__doc__.split("\n\n")[0])
    p.add_argument("--drafts", type=int, default=100_000, help="pending drafts in the loaded store (100000)")
    p.add_argument("--starts", type=int, default=3, help="process starts per store (3)")
    p.add_argument("--latency-samples", type=int, default=300, help="one-at-a-time messages per run (300)")
    p.add_argument("--repeat", type=int, default=2, help="latency runs per store, ABBA (2)")
    p.add_argument("--warmup", type=int, default=20, help="messages before each latency run (20)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="courier-bench-drafts-"))
    started = time.monotonic()
    setup = prosody.ProsodySetup(
        data=root / "prosody", c2s_port=prosody.free_port(), component_port=prosody.free_port()
    )
    couriers = {"empty": courier_for(setup, root / "empty"), "loaded": courier_for(setup, root / "loaded")}
    proc = None
    try:
        fill = asyncio.run(populate(couriers["loaded"].db, args.drafts))
        asyncio.run(populate(couriers["empty"].db, 0))
        size = couriers["loaded"].db.stat().st_size / 1e6
        print(f"courier bench drafts: {os.cpu_count()} CPUs; {args.drafts} pending drafts written in {fill:.1f}s "
              f"({size:.0f} MB store); work dir {root}", flush=True)  # fmt: skip

        inproc: dict[str, list[tuple[float, float, float]]] = {"empty": [], "loaded": []}
        for _ in range(args.starts):
            for name in ("empty", "loaded"):
                inproc[name].append(asyncio.run(service_start(couriers[name].db)))

        setup.render()
        pairs = args.repeat * 2
        for k in range(pairs):
            for who in ("s", "r"):
                prosody.adduser(setup, f"{who}{k}@{DOMAIN}", PASSWORD)
        proc = prosody.start(setup)

        starts: dict[str, list[tuple[float, float]]] = {"empty": [], "loaded": []}
        for _ in range(args.starts):
            for name in ("empty", "loaded"):
                starts[name].append(process_start(couriers[name]))
                couriers[name].stop()
                print(f"  {name}: connected after {starts[name][-1][0]:.3f}s, trigger sets after "
                      f"{starts[name][-1][1]:.3f}s", flush=True)  # fmt: skip

        lat: dict[str, list[float]] = {"empty": [], "loaded": []}
        rss: dict[str, list[float]] = {"empty": [], "loaded": []}
        k = 0
        for rep in range(args.repeat):
            for name in ("empty", "loaded") if rep % 2 == 0 else ("loaded", "empty"):
                courier = couriers[name]
                process_start(courier)
                assert courier.proc is not None
                samples = asyncio.run(latency_run(setup, k, args.warmup, args.latency_samples, f"{name[0]}{rep}"))
                rss[name].append(rss_mb(courier.proc.pid))
                courier.stop()
                k += 1
                lat[name] += samples
                print(f"  {name} latency run {rep + 1}: p50 {percentile(samples, 50):.2f} ms, "
                      f"p99 {percentile(samples, 99):.2f} ms", flush=True)  # fmt: skip

        def med(values: list[float]) -> float:
            return statistics.median(values)

        print()
        print(f"Drafts — {args.drafts} pending vs none; medians of {args.starts} starts, "
              f"{args.repeat} x {args.latency_samples} latency samples per store")  # fmt: skip
        print(f"{'':46}{'0 drafts':>12}{f'{args.drafts} drafts':>16}{'difference':>14}")
        rows = [
            ("Store.open (ms, in process)", [x[0] for x in inproc["empty"]], [x[0] for x in inproc["loaded"]], "ms"),
            ("DraftService.start (ms, in process)", [x[1] for x in inproc["empty"]],
             [x[1] for x in inproc["loaded"]], "ms"),
            ("trigger sets, background (ms, in process)", [x[2] for x in inproc["empty"]],
             [x[2] for x in inproc["loaded"]], "ms"),
            ("process start → connected (s)", [x[0] for x in starts["empty"]], [x[0] for x in starts["loaded"]], "s"),
            ("process start → trigger sets (s)", [x[1] for x in starts["empty"]],
             [x[1] for x in starts["loaded"]], "s"),
            ("latency p50 (ms)", [percentile(lat["empty"], 50)], [percentile(lat["loaded"], 50)], "ms"),
            ("latency p99 (ms)", [percentile(lat["empty"], 99)], [percentile(lat["loaded"], 99)], "ms"),
            ("Courier RSS after a latency run (MB)", rss["empty"], rss["loaded"], "MB"),
        ]  # fmt: skip
        for label, a, b, unit in rows:
            digits = 3 if unit == "s" else 2 if unit == "ms" else 1
            print(f"{label:46}{med(a):12.{digits}f}{med(b):16.{digits}f}{med(b) - med(a):+14.{digits}f}")
        print(f"\nEvery latency message arrived exactly once and in order. Total run time "
              f"{time.monotonic() - started:.0f}s.")  # fmt: skip
        return 0
    except BenchFailure as exc:
        print(f"\nFAILED: {exc}\nWork dir kept: {root}", file=sys.stderr)
        args.keep = True
        return 1
    finally:
        for courier in couriers.values():
            courier.stop()
        if proc is not None:
            prosody.stop(proc)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

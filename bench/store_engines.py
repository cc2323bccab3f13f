"""The store's group commit on each engine: throughput and commit latency through ``Store``.

```
.venv/bin/python -m bench.store_engines [--messages N] [--latency-samples M] [--baseline CHECKOUT]
                                        [--latency-gap MS]
```

What the message path asks of the store, without XMPP around it: per message one row
(``queue_message``), one hop (``queue_hop``) and one after-commit callback (the hand-off's
acknowledgement).  *Throughput*: N messages queued at once, until the last callback ran.
*Latency*: M messages one at a time, each from queue to its callback (one commit each).
Engines: SQLite as on this branch (WAL, ``synchronous=normal``); with ``--baseline`` SQLite
again through another checkout's ``component`` (e.g. main: the regression check of the
SQLite path); PostgreSQL (a cluster of its own from Debian's binaries, ``fsync=on``,
``synchronous_commit=on``: every commit reaches the disk).  Each engine runs in its own
process, in ABBA order; figures are medians of ``--repeat`` runs.  Numbers on a shared machine are noisy:
compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


async def measure(target: str, messages: int, samples: int, gap: float = 0.0) -> dict[str, float]:
    from component.delivery.states import Hop, State
    from component.store import MessageRow, Store

    def row(seq: int) -> MessageRow:
        return MessageRow(
            seq=seq, hid=f"h{seq}", sender="alice@example.org", sender_resource="phone",
            recipient="bob@example.org", recipient_bare="bob@example.org", msg_id=f"m{seq}", origin_id=f"m{seq}",
            kind="message", body=f"message {seq}", stanza=f"<message id='m{seq}'><body>message {seq}</body></message>",
            state=State.ACCEPTED, hold_reason="", release_at=None, created=time.time(), updated=time.time(),
        )  # fmt: skip

    store = await Store.open(target)
    try:
        done = asyncio.Event()
        acked = 0

        def ack() -> None:
            nonlocal acked
            acked += 1
            if acked == messages:
                done.set()

        started = time.perf_counter()
        for seq in range(1, messages + 1):
            store.queue_message(row(seq))
            store.queue_hop(seq, Hop("accepted", State.ACCEPTED, time.time(), "example.org"))
            store.after_commit(ack)
        await done.wait()
        throughput = messages / (time.perf_counter() - started)
        commits = store.commits
        latencies = []
        for seq in range(messages + 1, messages + samples + 1):
            t0 = time.perf_counter()
            store.queue_message(row(seq))
            store.queue_hop(seq, Hop("accepted", State.ACCEPTED, time.time(), "example.org"))
            await store.flush()
            latencies.append((time.perf_counter() - t0) * 1000)
            if gap:  # --latency-gap: the loop idle between messages, as with one-at-a-time chat
                await asyncio.sleep(gap / 1000)
        latencies.sort()
        return {
            "msgs_per_s": throughput,
            "commits": commits,
            "p50_ms": latencies[len(latencies) // 2],
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        }
    finally:
        await store.close()


def run_one(
    target: str, messages: int, samples: int, pythonpath: str | None = None, gap: float = 0.0
) -> dict[str, float]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--one", target, "--messages", str(messages),
         "--latency-samples", str(samples), "--latency-gap", str(gap)],
        env=env, check=True, capture_output=True, text=True, cwd=pythonpath or REPO,
    ).stdout  # fmt: skip
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--latency-samples", type=int, default=300)
    ap.add_argument("--latency-gap", type=float, default=0.0,
                    help="milliseconds of pause after each one-at-a-time commit (default 0: back to back)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", help="another checkout whose SQLite store to measure too (e.g. a clone of main)")
    ap.add_argument("--no-postgresql", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        import component

        result = asyncio.run(measure(args.one, args.messages, args.latency_samples, args.latency_gap))
        print(json.dumps({**result, "code": str(Path(component.__file__).parent.parent)}))
        return 0
    sys.path.insert(0, str(REPO))
    from tests.pgserver import PostgresServer

    server = None if args.no_postgresql else PostgresServer().start(fsync=True)
    results: dict[str, list[dict[str, float]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="courier-bench-store-") as tmp:
            for r in range(args.repeat):
                runs = [("SQLite (this branch)", str(Path(tmp) / f"b{r}.sqlite"), None)]
                if args.baseline:
                    runs.append((f"SQLite ({args.baseline})", str(Path(tmp) / f"a{r}.sqlite"), args.baseline))
                if server is not None:
                    runs.append(("PostgreSQL (fsync on)", server.create_database(), None))
                for name, target, path in runs if r % 2 == 0 else runs[::-1]:  # ABBA: no order effect
                    result = run_one(target, args.messages, args.latency_samples, path, args.latency_gap)
                    results.setdefault(name, []).append(result)
    finally:
        if server is not None:
            server.stop()
    print(f"store group commit: {args.messages} messages at once, then {args.latency_samples} one at a time; "
          f"median of {args.repeat}")  # fmt: skip
    print(f"{'engine':34} {'msgs/s':>9} {'commits':>8} {'p50 ms':>7} {'p99 ms':>7}  code")
    for name, rs in results.items():
        med = {k: statistics.median(float(r[k]) for r in rs) for k in ("msgs_per_s", "commits", "p50_ms", "p99_ms")}
        print(f"{name:34} {med['msgs_per_s']:9.0f} {med['commits']:8.0f} {med['p50_ms']:7.2f} {med['p99_ms']:7.2f}"
              f"  {rs[0].get('code', '')}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

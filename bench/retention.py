"""Retention at scale: how long deleting 1 M closed messages (and their hops) takes.

    .venv/bin/python -m bench.retention [--rows 1000000]

Builds a throw-away store with *rows* closed messages past the retention (two hops each)
plus as many recent ones, then runs the same purge Courier runs hourly
(component/store/retention.py) and prints the time, the rate and the longest chunk — the
longest time the purge holds the store's transaction lock (commits wait that long at most).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from component.store import Store

DAY = 86400.0


def fill(path: Path, rows: int, now: float) -> None:
    conn = sqlite3.connect(path)
    old, new = now - 40 * DAY, now - DAY
    msgs = (
        (seq, f"h{seq}", "juliet@localhost", "phone", "romeo@localhost", "romeo@localhost", f"m{seq}", f"o{seq}",
         "message", "hi", "<message/>", "read" if seq % 3 else "released", "", None,
         old if seq <= rows else new, old if seq <= rows else new, 0)
        for seq in range(1, 2 * rows + 1)
    )  # fmt: skip
    conn.executemany(f"INSERT INTO messages VALUES ({', '.join('?' * 17)})", msgs)
    hops = (
        (seq, label, label, old, "localhost", "")
        for seq in range(1, 2 * rows + 1)
        for label in ("accepted", "released")
    )
    conn.executemany("INSERT INTO hops (message_seq, label, state, at, place, note) VALUES (?, ?, ?, ?, ?, ?)", hops)
    conn.commit()
    conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="closed messages past the retention")
    parser.add_argument("--chunk", type=int, default=500, help="messages per transaction (as Courier)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "retention.sqlite"
        store = await Store.open(path)
        now = time.time()
        t0 = time.perf_counter()
        fill(path, args.rows, now)
        print(f"filled {2 * args.rows:,} messages, {4 * args.rows:,} hops in {time.perf_counter() - t0:.1f} s")
        longest, total = 0.0, 0
        t0 = time.perf_counter()
        while True:
            c0 = time.perf_counter()
            n = await store.retention.purge_chunk(now - 30 * DAY, args.chunk)
            longest = max(longest, time.perf_counter() - c0)
            total += n
            if n < args.chunk:
                break
        elapsed = time.perf_counter() - t0
        left = await store.max_seq()
        await store.close()
        assert total == args.rows, f"deleted {total}, expected {args.rows}"
        print(
            f"deleted {total:,} closed messages (+{2 * total:,} hops) in {elapsed:.1f} s "
            f"({total / elapsed:,.0f} messages/s); longest chunk {longest * 1000:.0f} ms; newest seq left {left:,}"
        )


if __name__ == "__main__":
    asyncio.run(main())

"""The held recipient of bench/held_flush.py, in a process of its own.

    python -m bench.held_receiver JID PASSWORD PORT N SETTLE

The user whose N held messages are flushed is on a device of their own: in the
benchmark's process its client would parse the flush in the same event loop as
the live pair whose latency is measured, and every live arrival could wait
behind a read of the flush.  Driven by lines on stdin/stdout: it prints
``ready`` once imported; on ``go`` it logs in (initial presence: Courier starts
the flush), waits for the N messages (a stall of 30 s fails) and prints
``done``, waits SETTLE seconds for late duplicates, checks that each arrived exactly once and in
order, and prints one JSON line — its login, first and last arrival on
``time.perf_counter`` (CLOCK_MONOTONIC, the same clock in every process here),
its CPU seconds, and ``error`` ("" when the checks passed); on ``stop`` it logs
out and exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from .common import BenchClient, BenchFailure, body_for, verify

STALL = 30.0


async def run(jid: str, password: str, port: int, n: int, settle: float) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    if (await reader.readline()).strip() != b"go":
        return
    client = BenchClient(jid, password, port)
    client.expect(n)
    result: dict[str, object] = {"error": ""}
    try:
        t_login = time.perf_counter()
        await client.start()
        result["t_login"], result["t_online"] = t_login, time.perf_counter()
        await client.wait_target(STALL, "held flush")
        print("done", flush=True)  # the N-th arrived: the live pair's measurement ends here
        await asyncio.sleep(settle)  # (late duplicates: the count is checked below)
        verify([b for _, b in client.arrivals], [body_for("held", i) for i in range(n)], "held flush")
        result["t_first"], result["t_last"] = client.arrivals[0][0], client.arrivals[n - 1][0]
    except (BenchFailure, TimeoutError) as exc:
        result["error"] = str(exc) or type(exc).__name__
    times = os.times()
    result["cpu"] = times.user + times.system
    print(json.dumps(result), flush=True)
    await reader.readline()  # stop
    await client.stop()


def main(argv: list[str] | None = None) -> int:
    jid, password, port, n, settle = argv if argv is not None else sys.argv[1:]
    asyncio.run(run(jid, password, int(port), int(n), float(settle)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

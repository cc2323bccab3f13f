"""The two stacks every side-by-side benchmark runs: plain Prosody, and Prosody + mod_courier_route + Courier.

:class:`Stack` is one Prosody (plain, or with ``mod_courier_route`` and a real
Courier process); :func:`run_side_by_side` runs a plain and a Courier stack on
free loopback ports for a whole run, bounded by ``--max-seconds``, and prints
the machine line first.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from component import prosody
from tests import pgserver, storeview
from tests.conformance.xmpp import CourierProcess

from . import common
from .common import (
    PASSWORD,
    BenchClient,
    BenchFailure,
    Deadline,
    exit_on_sigterm,
    free_ports,
    machine_line,
)


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
    #: extra environment for the Courier process (COURIER_* options)
    courier_env: dict[str, str] = field(default_factory=dict)
    # Clients stay referenced until the loop ends: slixmpp cancels its send task on
    # disconnect, and a task collected before it ran its cancellation warns.
    clients: list[BenchClient] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.setup = prosody.ProsodySetup(data=self.root / self.name.lower(), route=self.route, gc=common.PROSODY_GC)

    def start(self, ports: tuple[int, int]) -> None:
        self.setup.c2s_port, self.setup.component_port = ports
        self.setup.render()
        for k in range(self.pairs):
            for who in ("s", "r"):
                prosody.adduser(self.setup, f"{who}{k}@{self.setup.domain}", PASSWORD)
        self.proc = prosody.start(self.setup)
        if self.route:
            # CourierProcess writes log level DEBUG and records every stanza sent (for the
            # tests); the benchmark runs Courier as in production: INFO (the environment
            # overrides the file), nothing recorded (an empty COURIER_RECORD_SENT).
            env = {"COURIER_LOG_LEVEL": "INFO", "COURIER_RECORD_SENT": "", **self.courier_env}
            self.courier = CourierProcess(self.setup, self.root / "courier-work", **env).start()

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

    def fallbacks(self) -> Counter[str]:
        """Hand-offs Prosody delivered itself, by reason (:func:`~bench.common.fallbacks_in`)."""
        return common.fallbacks_in(self.setup.log_file)


def run_side_by_side(
    args: argparse.Namespace,
    title: str,
    pairs: int,
    measure_all: Callable[[argparse.Namespace, dict[str, Stack], list[str]], Awaitable[Any]],
    conclude: Callable[[dict[str, Stack], Any], list[str]],
    render: Callable[[Any, list[str], int], str],
) -> int:
    """Start a plain and a Courier stack, run *measure_all* within ``--max-seconds``, print the report.

    *conclude* turns the result into notes (store checks…); *render* prints the
    result with the notes and the number of fallback deliveries (any makes the run fail).
    Exit code 0, 1 when a check failed (a fallback included), 2 on time-out.
    """
    exit_on_sigterm()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="courier-bench-"))
    stacks = {"plain": Stack("plain", False, root, pairs), "Courier": Stack("Courier", True, root, pairs)}
    phase = ["start-up"]
    if getattr(args, "store", "sqlite") == "postgresql":  # CourierProcess takes a fresh database of this cluster
        os.environ["COURIER_TEST_STORE"] = "postgresql"
        title += f", store PostgreSQL (fsync on, port {pgserver.server(fsync=True).port})"
    print(f"courier bench{title}; work dir {root}\n{machine_line()}", flush=True)
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
        reasons = stacks["Courier"].fallbacks()
        fb = sum(reasons.values())
        notes.append(
            f"Prosody's fallback deliveries (mod_courier_route delivered a hand-off itself; silence limit "
            f"{stacks['Courier'].setup.ack_timeout:g}s): {fb}"
            + ("".join(f"\n  {n} x {why}" for why, n in reasons.most_common()))
            + ("\n  <-- FAILED RUN: stanzas bypassed Courier" if fb else "")
        )
        notes.append(f"Total run time {time.monotonic() - started:.0f}s.")
        print(render(result, notes, fb), flush=True)
        return 1 if fb else 0  # a fallback while Courier is connected makes the run a failure
    except Deadline:
        print(f"\nABORTED: --max-seconds={args.max_seconds:g} exceeded during {phase[0]} "
              f"(after {time.monotonic() - started:.0f}s). Use smaller counts or a larger --max-seconds. "
              f"Work dir: {root}", file=sys.stderr)
        print(f"Prosody's fallback deliveries so far: {sum(stacks['Courier'].fallbacks().values())}", file=sys.stderr)
        args.keep = True
        return 2
    except BenchFailure as exc:
        print(f"\nFAILED during {phase[0]}: {exc}\nLogs and stores kept in {root}", file=sys.stderr)
        print(f"Prosody's fallback deliveries so far: {sum(stacks['Courier'].fallbacks().values())}", file=sys.stderr)
        args.keep = True
        return 1
    finally:
        for stack in stacks.values():
            stack.stop()
        pgserver.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def check_courier_released(stack: Stack, expected_total: int) -> str:
    """Courier's own record: one tracked message per message sent, all released."""
    assert stack.courier is not None
    conn = storeview.connect(stack.courier.db, read_only=True)  # SQLite, or PostgreSQL with --store
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

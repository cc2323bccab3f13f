"""Fault-suite helpers: a Prosody of the test's own (it gets killed), bursts, counts.

Every fault test prints one line ``FAULT <name>: sent=… delivered=… duplicated=… lost=…``
(run with ``-s`` to see them; docs/reliability.md collects them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from component import prosody

from ..conformance.conftest import PASSWORD
from ..conformance.xmpp import Client, CourierProcess


class Stack:
    """One Prosody (killable, restartable on the same data) and one Courier, for one test."""

    def __init__(self, tmp: Path, ack_timeout: float = 3.0, sender_limit: int | None = None) -> None:
        self.setup = prosody.ProsodySetup(
            data=tmp / "prosody", c2s_port=prosody.free_port(), component_port=prosody.free_port(),
            ack_timeout=ack_timeout, log_level="info", sender_limit=sender_limit,
        )  # fmt: skip
        self.setup.render()
        self.proc: subprocess.Popen[bytes] | None = prosody.start(self.setup)
        self.tmp = tmp
        self.courier: CourierProcess | None = None
        self.clients: list[Client] = []

    def start_courier(self, component_port: int | None = None, **env: str) -> CourierProcess:
        """Start this test's Courier (*env*: ``COURIER_*`` options)."""
        setup = self.setup if component_port is None else dataclasses.replace(self.setup, component_port=component_port)
        self.courier = CourierProcess(setup, self.tmp / "courier", **env).start()
        return self.courier

    def adduser(self, *names: str) -> list[str]:
        jids = [f"{n}@{self.setup.domain}" for n in names]
        for jid in jids:
            prosody.adduser(self.setup, jid, PASSWORD)
        return jids

    async def connect(self, jid: str, resource: str = "phone") -> Client:
        client = Client(f"{jid}/{resource}", PASSWORD, self.setup.c2s_port)
        self.clients.append(client)
        return await client.start(timeout=20)

    def kill_prosody(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def restart_prosody(self, clean: bool = True) -> None:
        if self.proc is not None:
            if clean:
                prosody.stop(self.proc)
            else:
                self.kill_prosody()
        self.proc = prosody.start(self.setup)

    def prosody_log(self) -> str:
        return self.setup.log_file.read_text(errors="replace")

    async def close(self) -> None:
        for c in self.clients:
            await c.stop()
        if self.courier is not None:
            if self.courier.proc is not None and self.courier.proc.poll() is None:
                os.kill(self.courier.proc.pid, signal.SIGCONT)  # in case a test froze it
            self.courier.stop()
        if self.proc is not None:
            prosody.stop(self.proc)


class Proxy:
    """A loopback TCP proxy between Courier and Prosody's component port: ``cut()`` drops the link.
    While ``swallow`` is set, what Courier sends is kept in ``swallowed`` instead of reaching
    Prosody (lost in transit, as in a link that dies before the bytes get through)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = prosody.free_port()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.swallow = False
        self.swallowed = bytearray()
        self.upward: asyncio.StreamWriter | None = None

    async def start(self) -> Proxy:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]
        self.upward = up_writer

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, upward: bool) -> None:
            try:
                while data := await src.read(65536):
                    if upward and self.swallow:
                        self.swallowed += data
                        continue
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    async def pass_swallowed(self) -> None:
        """Stop swallowing; send on what was swallowed (held in transit, not lost)."""
        assert self.upward is not None
        self.swallow = False
        data, self.swallowed = bytes(self.swallowed), bytearray()
        self.upward.write(data)
        await self.upward.drain()

    def cut(self) -> None:
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()

    def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


def burst(sender: Client, to: str, total: int, prefix: str) -> list[str]:
    """Send *total* chat messages (id = origin-id) as fast as the client can."""
    ids = [f"{prefix}{i}" for i in range(total)]
    for i, msg_id in enumerate(ids):
        sender.chat(to, f"{prefix} {i}", msg_id)
    return ids


async def collect_until(client: Client, marker_id: str, seen: Counter[str], timeout: float) -> None:
    """Read *client*'s messages into *seen* until the message *marker_id* arrives (a positive end)."""
    deadline = time.monotonic() + timeout
    while marker_id not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the end marker {marker_id} never arrived ({sum(seen.values())} messages seen)")
        try:
            msg = await client.next_message(left)
        except TimeoutError:
            continue
        seen[msg["id"]] += 1


async def read_while(
    client: Client, seen: Counter[str], more: Callable[[], bool], timeout: float, key: str = "id"
) -> None:
    """Count *client*'s messages in *seen* by *key* (``id`` or ``body``) while *more*() says
    something is still missing, for at most *timeout* seconds (what is missing then is lost)."""
    deadline = time.monotonic() + timeout
    while more():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            seen[(await client.next_message(left))[key]] += 1
        except TimeoutError:
            break


def account(name: str, sent: list[str], seen: Counter[str], stored: set[str] | None = None) -> tuple[int, int, int]:
    """Print and return (delivered, duplicated, lost) for *sent* ids.

    *stored*: when given, only messages the server accepted count as sent (a kill of the
    server also kills what the client had not yet written to it): Courier's store, plus
    what arrived.
    """
    accepted = [i for i in sent if stored is None or i in stored or i in seen]
    delivered = sum(1 for i in accepted if seen[i] > 0)
    duplicated = sum(seen[i] - 1 for i in accepted if seen[i] > 1)
    lost = len(accepted) - delivered
    print(f"FAULT {name}: sent={len(sent)} accepted={len(accepted)} delivered={delivered} "
          f"duplicated={duplicated} lost={lost}")  # fmt: skip
    return delivered, duplicated, lost


def stored_ids(courier: CourierProcess, sender: str) -> set[str]:
    from tests import storeview

    with storeview.connect(courier.db, read_only=True) as db:
        return {r[0] for r in db.execute("SELECT msg_id FROM messages WHERE sender=?", (sender,))}


def fallbacks(log: str) -> int:
    """Hand-offs Prosody delivered without Courier while Courier was connected."""
    return log.count("Courier has not answered for") + log.count("Courier answers but did not acknowledge")


async def settle(
    client: Client, sender: Client, to: str, expected: list[str], seen: Counter[str], tag: str, timeout: float = 60
) -> None:
    """After the first end marker: re-sent releases may still overtake it, so read until every
    *expected* id arrived (or *timeout*: the rest count as lost), then send a second marker and
    read up to it, so that a late duplicate is counted too."""
    await read_while(client, seen, lambda: not all(seen[i] for i in expected), timeout)
    sender.chat(to, "end", f"{tag}-end2")
    await collect_until(client, f"{tag}-end2", seen, 60)


async def deliver_all(
    name: str, client: Client, sender: Client, to: str, sent: list[str], tag: str
) -> tuple[int, int, int]:
    """An end marker from *sender*, read up to it and :func:`settle`; then :func:`account` for *sent*."""
    sender.chat(to, "end", f"{tag}-end")
    seen: Counter[str] = Counter()
    await collect_until(client, f"{tag}-end", seen, 60)
    await settle(client, sender, to, sent, seen, tag)
    return account(name, sent, seen)

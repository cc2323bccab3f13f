"""The test side of :mod:`tests.interop.nbxmpp_agent`: starts it in the nbxmpp
venv, sends it commands, waits for its events.  :meth:`NbxmppClient.stop` always
ends the process."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

AGENT = Path(__file__).resolve().parent / "nbxmpp_agent.py"


class NbxmppClient:
    def __init__(self, python: Path, jid: str, password: str, port: int, log: Path) -> None:
        self.python = python
        self.args = [jid, password, str(port)]
        self.log = log
        self.events: list[dict[str, Any]] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._seen = 0

    async def start(self, timeout: float = 15) -> NbxmppClient:
        with self.log.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                str(self.python), "-u", str(AGENT), *self.args,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err, start_new_session=True,
            )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        await self.wait("connected", timeout=timeout)
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.events.append(json.loads(line))

    async def send(self, **command: Any) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self._seen = len(self.events)
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()

    async def wait(self, event: str, op: str | None = None, timeout: float = 10) -> dict[str, Any]:
        """The next *event* (for *op*) since the last command, or an error event for it."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events[self._seen :]:
                if e["event"] == event and (op is None or e.get("op") == op):
                    return e
                if e["event"] == "error" and (op is None or e.get("op") == op):
                    return e
                if e["event"] in ("connection-failed", "disconnected"):
                    raise AssertionError(f"nbxmpp: {e['event']} (log: {self.log})")
            if time.monotonic() > deadline:
                raise AssertionError(f"nbxmpp: no {event} {op or ''} in {timeout}s; events: {self.events[-5:]}")
            await asyncio.sleep(0.05)

    async def request(self, op: str, **args: Any) -> dict[str, Any]:
        await self.send(op=op, **args)
        return await self.wait("result", op)

    async def write(self, to: str, body: str) -> None:
        """A chat message as Gajim sends one (origin-id, receipt request, markable); its id is its text."""
        await self.request("send", to=to, body=body, id=body)

    def messages(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == "message"]

    async def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.returncode is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write(b'{"op": "quit"}\n')
                await proc.stdin.drain()
                await asyncio.wait_for(proc.wait(), 3)
            except (TimeoutError, ConnectionError):
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            self._reader.cancel()

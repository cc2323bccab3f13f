"""Debian's headless Chromium, driven over the DevTools protocol on a pipe.

No Playwright, no chromedriver: Chromium's ``--remote-debugging-pipe`` reads
JSON commands on fd 3 and writes answers and events on fd 4, each ended by a
NUL byte.  One browser per test; :meth:`Chromium.close` ends it (and its whole
process group) whatever happens.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--window-size=1280,900",
]


class BrowserError(Exception):
    """A DevTools command failed, or JavaScript threw."""


class Chromium:
    """One headless Chromium process and its DevTools pipe."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.log = workdir / "chromium.log"
        self.proc: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> Chromium:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            # fd 3 ← our stdin pipe, fd 4 → our stdout pipe (the DevTools pipe's fixed numbers)
            self.proc = await asyncio.create_subprocess_exec(
                "sh", "-c", 'exec "$@" 3<&0 4>&1 0</dev/null 1>&2', "sh",
                self.binary, *FLAGS, f"--user-data-dir={self.workdir / 'profile'}", "--remote-debugging-pipe",
                "about:blank",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                start_new_session=True, limit=64 * 1024 * 1024,
            )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        await self.send("Browser.getVersion")
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            try:
                raw = await self.proc.stdout.readuntil(b"\0")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            msg = json.loads(raw[:-1])
            if "id" in msg:
                future = self._waiting.pop(msg["id"], None)
                if future is not None and not future.done():
                    future.set_result(msg)
            else:
                for listener in list(self._listeners):
                    listener(msg)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(BrowserError("Chromium closed its DevTools pipe"))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None, timeout: float = 20
    ) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        msg_id = next(self._ids)
        command: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = future
        self.proc.stdin.write(json.dumps(command).encode() + b"\0")
        await self.proc.stdin.drain()
        answer = await asyncio.wait_for(future, timeout)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        return dict(answer.get("result", {}))

    async def new_page(self) -> Page:
        """A fresh tab (its own isolated storage), attached."""
        context = await self.send("Target.createBrowserContext", {"disposeOnDetach": True})
        target = await self.send(
            "Target.createTarget", {"url": "about:blank", "browserContextId": context["browserContextId"]}
        )
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        self._listeners.append(page._event)
        await page.send("Runtime.enable")
        await page.send("Page.enable")
        return page

    async def close(self) -> None:
        """Browser.close, then SIGKILL to the whole process group (renderers, zygotes) in any case."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            try:
                await self.send("Browser.close", timeout=3)
                await asyncio.wait_for(proc.wait(), 5)
            except (BrowserError, TimeoutError, ConnectionError):
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()
        self.proc = None
        if self._reader is not None:
            self._reader.cancel()


class Page:
    """One tab: evaluate JavaScript, wait for conditions, keep the console."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session
        self.console: list[str] = []

    def _event(self, msg: dict[str, Any]) -> None:
        if msg.get("sessionId") != self.session:
            return
        if msg.get("method") == "Runtime.consoleAPICalled":
            args = msg["params"].get("args", [])
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
        elif msg.get("method") == "Runtime.exceptionThrown":
            self.console.append("exception: " + json.dumps(msg["params"]["exceptionDetails"])[:2000])

    async def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 20) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session, timeout)

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})

    async def js(self, expression: str, timeout: float = 20) -> Any:
        """The value of *expression* (awaited if it is a promise), as JSON."""
        answer = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True, "userGesture": True},
            timeout,
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"{text}\n  in: {expression[:300]}")
        return answer["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 10, what: str = "") -> Any:
        """Poll *expression* until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                tail = "\n".join(self.console[-15:])
                raise AssertionError(f"timed out waiting for {what or expression}\nconsole:\n{tail}")
            await asyncio.sleep(0.05)

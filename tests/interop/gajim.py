"""Gajim 1.7 (Debian, GTK 3 over nbxmpp) on its own virtual screen (Xvfb), driven the way a
person would, without screen coordinates:

- windows are opened with Gajim's own application actions (the menu items' actions, called
  over its D-Bus session bus: ``open-chat``, ``win.correct-message``, ``<account>-services``…);
- text is typed with xdotool into the focused window;
- what Gajim shows is read, and buttons are pressed, through AT-SPI (the accessibility tree
  that screen readers use), by ``gajim_helper.py`` under Debian's Python.

Gajim refuses root: under root it runs as ``nobody`` (setpriv) in a folder of its own under
/tmp, its settings database written before start (``gajim_helper.py settings``), inside its
own ``dbus-run-session``.  :meth:`Gajim.stop` ends the whole process group it started and
removes the folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

NOBODY = 65534
HELPER = Path(__file__).resolve().parent / "gajim_helper.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # with -P: this folder (gajim.py) must not shadow Gajim


def labels(shown: list[dict[str, str]]) -> list[str]:
    return [w["name"] for w in shown if w["role"] == "label"]


class Gajim:
    """One Gajim logged in as *jid* over plain TCP on loopback."""

    def __init__(self, binary: str, jid: str, password: str, port: int) -> None:
        self.binary = binary
        self.jid = jid
        self.account = jid.split("@")[0]
        self.password = password
        self.port = port
        self.workdir = Path(tempfile.mkdtemp(prefix="courier-gajim-"))
        self.workdir.chmod(0o755)
        self.xvfb: subprocess.Popen[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.display = ""
        self.bus = ""
        self.helper = str(self.workdir / HELPER.name)  # a copy: nobody may not read the checkout
        self.chat_with = ""  # the chat open_chat() last opened

    @property
    def log(self) -> Path:
        return self.workdir / "gajim.log"

    def _user(self) -> list[str]:
        drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if os.geteuid() == 0 else []
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.workdir), "LANG": "C.UTF-8", "DISPLAY": self.display}
        env |= {"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring", "NO_AT_BRIDGE": "0"}
        if self.bus:
            env["DBUS_SESSION_BUS_ADDRESS"] = self.bus
        return [*drop, "env", "-i", *(f"{k}={v}" for k, v in env.items())]

    async def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        def run() -> subprocess.CompletedProcess[str]:
            return subprocess.run([*self._user(), *argv], capture_output=True, text=True, timeout=20)

        result = await asyncio.to_thread(run)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()[-2000:]}")
        return result

    async def start(self, timeout: float = 30) -> Gajim:
        config = self.workdir / "config"
        config.mkdir()
        shutil.copy(HELPER, self.helper)
        subprocess.run(
            [SYSTEM_PYTHON, "-P", self.helper, "settings", str(config), self.jid, self.password, str(self.port)],
            check=True,
            capture_output=True,
        )
        if os.geteuid() == 0:
            for path in [self.workdir, *self.workdir.rglob("*")]:
                os.chown(path, NOBODY, NOBODY)
        read, write = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x900x24", "-nolisten", "tcp", "-ac"],
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(write)
        with os.fdopen(read) as pipe:
            self.display = ":" + (await asyncio.to_thread(pipe.readline)).strip()
        bus_file = self.workdir / "bus"
        script = f'echo "$DBUS_SESSION_BUS_ADDRESS" > {bus_file}; exec {self.binary} -c {config} -v'
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [*self._user(), "dbus-run-session", "--", "sh", "-c", script],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        await self.wait_log("Raise event: account-connected", timeout)
        self.bus = bus_file.read_text().strip()
        return self

    async def wait_log(self, needle: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.log.read_text(errors="replace"):
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"Gajim exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not in Gajim's log ({self.log}) after {timeout}s")
            await asyncio.sleep(0.1)

    def sent(self) -> list[str]:
        """The message stanzas Gajim logged as sent (``-v``)."""
        text = self.log.read_text(errors="replace")
        return re.findall(r"::::: DATA SENT ::::\s*(<message .*?</message>)", text, re.S)

    async def action(self, name: str, param: str = "[]", window: bool = False) -> None:
        """Activate one of Gajim's actions (app.NAME, or win.NAME with *window*); *param*: a GVariant list."""
        path = "/org/gajim/Gajim/window/1" if window else "/org/gajim/Gajim"
        await self._run(
            "gdbus", "call", "--session", "--dest", "org.gajim.Gajim", "--object-path", path,
            "--method", "org.gtk.Actions.Activate", name, param, "{}",
        )  # fmt: skip

    async def xdotool(self, *args: str) -> None:
        await asyncio.to_thread(
            subprocess.run, ["xdotool", *args], check=True, env={"DISPLAY": self.display}, timeout=20
        )

    async def focus(self, title: str) -> None:
        """Give the keyboard to Gajim's visible window titled *title* (there is no window manager)."""
        await self.xdotool("search", "--sync", "--onlyvisible", "--name", f"^{title}$", "windowfocus", "--sync")

    async def type(self, text: str, enter: bool = True) -> None:
        await self.xdotool("type", "--delay", "20", text)
        if enter:
            await self.xdotool("key", "Return")

    async def screen(self) -> list[dict[str, str]]:
        """Every showing widget with a name or text: {"role", "name", "text"}."""
        out = (await self._run(SYSTEM_PYTHON, "-P", self.helper, "screen")).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    async def wait_screen(self, text: str, timeout: float = 10) -> list[dict[str, str]]:
        """Wait until a showing widget's name or text contains *text*."""
        deadline = time.monotonic() + timeout
        while True:
            shown = await self.screen()
            if any(text in w["name"] or text in w["text"] for w in shown):
                return shown
            if time.monotonic() > deadline:
                lines = "\n".join(f"[{w['role']}] {w['name']!r} {w['text']!r}" for w in shown)
                raise AssertionError(f"{text!r} not on Gajim's screen after {timeout}s:\n{lines}")
            await asyncio.sleep(0.2)

    async def shows_label(self, name: str, timeout: float) -> bool:
        """Whether a label reading exactly *name* shows within *timeout* seconds."""
        deadline = time.monotonic() + timeout
        while name not in labels(await self.screen()):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.2)
        return True

    async def open_chat(self, jid: str) -> None:
        """Start Chat with a JID not in the roster: Gajim's dialog offers "Start New Chat"; Enter."""
        name = jid.split("@", 1)[0]  # what the chat's banner shows for a JID not in the roster
        for _attempt in range(3):
            await self.action("open-chat", f"[<['{self.account}', '{jid}']>]")
            await self.wait_screen("Start New Chat")
            await self.focus("Start / Join Chat")
            await self.xdotool("key", "Return")
            await self.wait_screen("There is no more history")
            if await self.shows_label(name, 5.0):  # the banner may be painted after the history
                break
            # Return reached another row or window first (seen once in CI: "Note to myself" opened)
        else:
            raise AssertionError(f"Gajim did not open a chat with {jid}")
        await self.focus("Gajim")
        self.chat_with = jid

    async def write(self, to: str, body: str) -> None:
        """Typed in the chat with *to* (opened if it is not the one on screen), then Return."""
        if self.chat_with != to:
            await self.open_chat(to)
        await self.focus("Gajim")  # back from any dialog
        await self.type(body)

    async def press(self, role: str, name: str, timeout: float = 10) -> None:
        """Press the showing widget *role* / *name* (e.g. "push button", "Execute Command")."""
        deadline = time.monotonic() + timeout
        while (await self._run(SYSTEM_PYTHON, "-P", self.helper, "press", role, name, check=False)).returncode:
            if time.monotonic() > deadline:
                raise AssertionError(f"no showing {role} {name!r} on Gajim's screen")
            await asyncio.sleep(0.2)

    async def select(self, name: str, timeout: float = 10) -> None:
        """Select the showing row (table cell or list item) named *name*."""
        deadline = time.monotonic() + timeout
        while (await self._run(SYSTEM_PYTHON, "-P", self.helper, "select", name, check=False)).returncode:
            if time.monotonic() > deadline:
                raise AssertionError(f"no showing row {name!r} on Gajim's screen")
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """End Gajim's process group (dbus-run-session, its bus, Gajim) and Xvfb; remove the folder."""
        for proc in (self.proc, self.xvfb):
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                await asyncio.to_thread(proc.wait, 5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.wait, 5)
        shutil.rmtree(self.workdir, ignore_errors=True)

"""Profanity 0.13 (Debian, libstrophe) in its own tmux server: typed with
``send-keys``, read with ``capture-pane``.  Its HOME and XDG folders are the
test's own; :meth:`Profanity.stop` kills the tmux server (and Profanity) always.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
import time
from pathlib import Path


class Profanity:
    """One Profanity logged in as *jid* over plain TCP on loopback."""

    def __init__(self, binary: str, tmux: str, workdir: Path, jid: str, password: str, port: int) -> None:
        self.binary = binary
        self.tmux_binary = tmux
        self.workdir = workdir
        self.jid = jid
        self.socket = f"courier-prof-{workdir.parent.name}-{id(self):x}"
        self.password = password
        self.port = port
        self.started = False

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(
            [self.tmux_binary, "-L", self.socket, "-f", "/dev/null", *args], capture_output=True, text=True, timeout=10
        )
        if result.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def _write_config(self) -> dict[str, str]:
        home = self.workdir / "home"
        config, data = home / ".config" / "profanity", home / ".local" / "share" / "profanity"
        config.mkdir(parents=True, exist_ok=True)
        data.mkdir(parents=True, exist_ok=True)
        (config / "profrc").write_text(
            "[ui]\nsplash=false\nvercheck=false\nbeep=false\nflash=false\ntitlebar=false\nmouse=false\n"
            "intype=false\n"
            "[connection]\nautoping=0\nreconnect=0\nreceipts.send=true\nreceipts.request=true\n"
            "[chatstates]\nenabled=false\n"
            "[notifications]\nremind=0\nmessage=false\nroom=off\ntyping=false\ninvite=false\nsub=false\n"
            "[logging]\nchlog=false\ngrlog=false\n"
        )
        (data / "accounts").write_text(
            f"[{self.jid}]\nenabled=true\njid={self.jid}\nserver=127.0.0.1\nport={self.port}\n"
            f"resource=profanity\npassword={self.password}\ntls.policy=disable\n"
        )
        (data / "accounts").chmod(0o600)
        return {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local/share"),
        }

    @property
    def log(self) -> Path:
        return self.workdir / "home" / ".local" / "share" / "profanity" / "logs" / "profanity.log"

    async def start(self, timeout: float = 10) -> Profanity:
        env = self._write_config()
        command = " ".join(
            ["env", "TERM=xterm-256color", "LANG=C.UTF-8"]
            + [f"{k}={shlex.quote(v)}" for k, v in env.items()]
            + [self.binary, "-a", shlex.quote(self.jid), "-l", "DEBUG"]
        )
        self._tmux("new-session", "-d", "-s", "prof", "-x", "400", "-y", "150", command)
        self.started = True
        await self.wait_screen(f"{self.jid}/profanity logged in successfully", timeout)
        # /cmd needs the server's disco (Courier is one of its items) to have advertised XEP-0050
        await self.wait_log(r'RECV: <iq [^\n]*<feature var="http://jabber.org/protocol/commands"/>', timeout)
        return self

    async def wait_log(self, pattern: str, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while not (self.log.exists() and re.search(pattern, self.log.read_text(errors="replace"))):
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not in Profanity's log ({self.log}) after {timeout}s")
            await asyncio.sleep(0.05)

    def screen(self) -> str:
        """The pane's text, wrapped lines joined, with its scroll-back."""
        return self._tmux("capture-pane", "-p", "-J", "-S", "-2000", "-t", "prof")

    async def wait_screen(self, pattern: str, timeout: float = 5, regex: bool = False) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if re.search(pattern, text) if regex else " ".join(pattern.split()) in " ".join(text.split()):
                return text  # (plain text is compared with runs of white space as one: Profanity wraps lines)
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on Profanity's screen after {timeout}s:\n{text[-3000:]}")
            await asyncio.sleep(0.1)

    async def type(self, line: str) -> None:
        """Type *line* and press Enter."""
        self._tmux("send-keys", "-t", "prof", "-l", line)
        self._tmux("send-keys", "-t", "prof", "Enter")
        await asyncio.sleep(0.1)

    async def write(self, to: str, body: str) -> None:
        """``/msg TO BODY``: the message goes, and Profanity's window is the chat with *to*."""
        await self.type(f"/msg {to} {body}")

    def sent(self) -> list[str]:
        """Stanzas libstrophe logged as sent (Profanity's DEBUG log)."""
        if not self.log.exists():
            return []
        return re.findall(r"SENT: (<message.*?</message>)", self.log.read_text(errors="replace"))

    async def stop(self) -> None:
        """/quit, wait for Profanity to exit (its session then ends), kill the tmux server regardless."""
        if not self.started:
            return
        try:
            await self.type("/quit")
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                self._tmux("has-session", "-t", "prof")
                await asyncio.sleep(0.05)
        except RuntimeError:
            pass  # the session is gone: Profanity exited
        subprocess.run([self.tmux_binary, "-L", self.socket, "kill-server"], capture_output=True, timeout=10)
        self.started = False

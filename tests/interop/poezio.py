"""Poezio 0.14 (Debian, built on slixmpp) in its own tmux server: typed with
``send-keys``, read with ``capture-pane``; what it put on the wire is read back
from its debug log (``-d``: slixmpp's ``SEND:`` / ``RECV:`` lines).

Poezio refuses to run as root, so under root (CI) it runs as ``nobody``
(setpriv) in a folder of its own under /tmp that ``nobody`` owns (pytest's
temporary folders are private to root).  :meth:`Poezio.stop` kills the tmux
server (and so Poezio) and removes that folder, always.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

NOBODY = 65534  # uid and gid of nobody / nogroup on Debian


class Poezio:
    """One Poezio logged in as *jid* over plain TCP on loopback."""

    def __init__(self, binary: str, tmux: str, jid: str, password: str, port: int) -> None:
        self.binary = binary
        self.tmux_binary = tmux
        self.jid = jid
        self.password = password
        self.port = port
        self.workdir = Path(tempfile.mkdtemp(prefix="courier-poezio-"))
        self.socket = f"courier-poezio-{self.workdir.name}"
        self.started = False

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(
            [self.tmux_binary, "-L", self.socket, "-f", "/dev/null", *args], capture_output=True, text=True, timeout=10
        )
        if result.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    @property
    def log(self) -> Path:
        return self.workdir / "debug.log"

    def _write_config(self) -> Path:
        home = self.workdir / "home"
        for sub in (".config/poezio", ".local/share/poezio", ".cache/poezio"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        config = home / ".config" / "poezio" / "poezio.cfg"
        config.write_text(
            "[Poezio]\n"
            f"jid = {self.jid}/poezio\npassword = {self.password}\n"
            f"custom_host = 127.0.0.1\ncustom_port = {self.port}\n"
            "force_encryption = false\nauto_reconnect = false\nwhitespace_interval = 0\n"
            "connection_check_interval = 0\nmam_sync = false\nuse_remote_bookmarks = false\n"
            "use_bookmarks_method = local\nsend_os_info = false\n"
            "send_poezio_info = false\nsend_time = false\nuse_log = false\nbeep_on =\n"
            "request_message_receipts = true\nack_message_receipts = true\nshow_composing_tabs =\n"
            "send_chat_states = false\nplugins_autoload =\ninformation_buffer_popup_on =\n"
            "show_tab_names = true\nenable_user_tune = false\nenable_user_mood = false\n"
            "enable_user_activity = false\nenable_user_gaming = false\nenable_user_nick = false\n"
            "enable_avatars = false\nenable_css_parsing = false\n"
        )
        config.chmod(0o600)
        if os.geteuid() == 0:
            for path in [self.workdir, *self.workdir.rglob("*")]:
                os.chown(path, NOBODY, NOBODY)
        return config

    async def start(self, timeout: float = 15) -> Poezio:
        config = self._write_config()
        home = self.workdir / "home"
        env = {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "PATH": "/usr/bin:/bin",
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
        }
        drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if os.geteuid() == 0 else []
        command = " ".join(
            [*drop, "env", "-i", *(f"{k}={shlex.quote(v)}" for k, v in env.items())]
            + [self.binary, "-f", shlex.quote(str(config)), "-d", shlex.quote(str(self.log))]
        )
        self._tmux("new-session", "-d", "-s", "poezio", "-x", "200", "-y", "60", command)
        self.started = True
        try:
            await self.wait_log(r"SEND: <presence", timeout)  # logged in, initial presence sent
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nPoezio's screen:\n{self.screen()}") from None
        return self

    async def wait_log(self, pattern: str, timeout: float = 5) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            if re.search(pattern, text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not in Poezio's log ({self.log}) after {timeout}s:\n{text[-3000:]}")
            await asyncio.sleep(0.05)

    def screen(self) -> str:
        """The visible pane (Poezio draws with curses: no scroll-back)."""
        return self._tmux("capture-pane", "-p", "-J", "-t", "poezio")

    async def wait_screen(self, pattern: str, timeout: float = 5, regex: bool = False) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if re.search(pattern, text) if regex else " ".join(pattern.split()) in " ".join(text.split()):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on Poezio's screen after {timeout}s:\n{text}")
            await asyncio.sleep(0.1)

    async def keys(self, *keys: str) -> None:
        """Press tmux key names (``Enter``, ``Right``, ``C-y``…), one read at a time."""
        for key in keys:
            self._tmux("send-keys", "-t", "poezio", key)
            await asyncio.sleep(0.1)

    async def close_form(self) -> None:
        """Ctrl+G on a form or a result: its tab closes."""
        await self.keys("C-g")
        deadline = time.monotonic() + 5
        while "Ctrl+Y: send form, Ctrl+G: cancel" in self.screen():
            if time.monotonic() > deadline:
                raise AssertionError(f"the form did not close:\n{self.screen()}")
            await asyncio.sleep(0.05)

    async def type(self, line: str, enter: bool = True) -> None:
        """Type *line* (and press Enter).  A command's "/" goes alone, and the rest once the
        input line shows it: Poezio takes several keys read at once as a paste, which tabs
        without a text input (roster, lists) drop — the "/" is what opens their command line."""
        typed = ""
        if line.startswith("/"):
            self._tmux("send-keys", "-t", "poezio", "-l", "/")
            await self._input_shows(typed := "/")
        if line[len(typed) :]:
            self._tmux("send-keys", "-t", "poezio", "-l", line[len(typed) :])
        if enter:  # Enter read together with the text would be part of the paste: wait for the text first
            await self._input_shows(line)
            self._tmux("send-keys", "-t", "poezio", "Enter")
            await asyncio.sleep(0.1)

    async def write(self, to: str, body: str) -> None:
        """``/message TO BODY``: the message goes, in the chat tab with *to* (opened if it is not)."""
        await self.type(f"/message {to} {body}")

    async def _input_shows(self, text: str, timeout: float = 5) -> None:
        """Wait until the input line (the screen's last) ends with *text*."""
        deadline = time.monotonic() + timeout
        while not self.screen().rstrip("\n").splitlines()[-1].rstrip().endswith(text[-40:]):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on Poezio's input line:\n{self.screen()}")
            await asyncio.sleep(0.03)

    def sent(self) -> list[str]:
        """Message stanzas slixmpp logged as sent."""
        if not self.log.exists():
            return []
        return re.findall(r"SEND: (<message.*?</message>)", self.log.read_text(errors="replace"))

    async def stop(self) -> None:
        """Kill the tmux server (Poezio gets SIGHUP; Prosody ends its session), remove the folder."""
        if self.started:
            subprocess.run([self.tmux_binary, "-L", self.socket, "kill-server"], capture_output=True, timeout=10)
            self.started = False
            sockets = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
            (sockets / self.socket).unlink(missing_ok=True)  # tmux leaves it behind
        shutil.rmtree(self.workdir, ignore_errors=True)

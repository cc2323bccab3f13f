"""Prosody beside Courier: render its configuration, start it, add users.

Used by ``courier up`` (the embedded default: SQLite, one machine, loopback),
``courier adduser`` and the test fixtures.  Prosody is Debian's binary.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_DIR_ENV = "COURIER_PROSODY_CONFIG_DIR"


def config_dir() -> Path:
    """prosody-config/ of this checkout (or where ``COURIER_PROSODY_CONFIG_DIR`` says)."""
    if CONFIG_DIR_ENV in os.environ:
        return Path(os.environ[CONFIG_DIR_ENV])
    here = Path(__file__).resolve().parent.parent / "prosody-config"
    if not here.is_dir():
        raise FileNotFoundError(
            f"prosody-config/ not found at {here}; install Courier from its checkout (pip install -e .) "
            f"or set {CONFIG_DIR_ENV}"
        )
    return here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ProsodySetup:
    """Everything one rendered Prosody needs; ``data`` holds config, data, pid and log."""

    data: Path
    domain: str = "localhost"
    c2s_port: int = 5222
    component_port: int = 5347
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    ack_timeout: float = 5.0
    log_level: str = "info"
    route: bool = True  # False: plain Prosody, no hand-off to Courier (benchmarks' baseline)
    #: courier_sender_limit (back-pressure: hand-offs pending per sender); None: the module's default
    sender_limit: int | None = None
    #: storage_archive_item_limit (mod_storage_internal's cap on one user's archive; Prosody's
    #: default 10,000, past which mod_mam cleans the archive on every message); None: the default
    archive_item_limit: int | None = None
    #: s2s (federation) on 127.0.0.1:s2s_port with dialback; None: an island (no s2s at all)
    s2s_port: int | None = None
    #: fixed s2s addresses {domain: "HOST:PORT"} (mod_courier_peers), for networks without DNS
    peers: dict[str, str] = field(default_factory=dict)
    #: Lua's garbage collector mode (``gc = { mode = ... }``, Prosody's "Advanced GC
    #: configuration"): "" keeps Prosody's default (incremental); see GC_MODES
    gc: str = ""

    @property
    def component(self) -> str:
        return f"courier.{self.domain}"

    @property
    def config_file(self) -> Path:
        return self.data / "prosody.cfg.lua"

    @property
    def log_file(self) -> Path:
        return self.data / "prosody.log"

    def render(self) -> Path:
        """Write the config from prosody-config/prosody.cfg.lua.in; return its path."""
        self.data = self.data.resolve()
        (self.data / "prosody").mkdir(parents=True, exist_ok=True)
        template = string.Template((config_dir() / "prosody.cfg.lua.in").read_text())
        text = template.substitute(
            data=self.data,
            domain=self.domain,
            component=self.component,
            secret=self.secret,
            c2s_port=self.c2s_port,
            component_port=self.component_port,
            modules=config_dir(),
            run_as_root="true" if os.geteuid() == 0 else "false",
            ack_timeout=self.ack_timeout,
            log_level=self.log_level,
            host_modules='"courier_route"' if self.route else "",
            sender_limit="" if self.sender_limit is None else f"courier_sender_limit = {self.sender_limit}",
            archive_limit=(
                "" if self.archive_item_limit is None else f"storage_archive_item_limit = {self.archive_item_limit}"
            ),
            gc=_gc_option(self.gc),
            **self._s2s_options(),
        )
        self.config_file.write_text(text)
        return self.config_file

    def _s2s_options(self) -> dict[str, str]:
        """The template's s2s parts: federation with dialback on loopback, or none."""
        if self.s2s_port is None:
            return {"s2s": "", "s2s_modules": "", "disabled": '"s2s"; "tls"'}
        # A peer's Courier (courier.<peer>) sends over its own s2s stream, to be verified
        # by dialback at the same server: it gets the peer's address unless given its own.
        fixed = {f"courier.{d}": a for d, a in self.peers.items()} | self.peers
        peers = "".join(f"\t[{_lua(d)}] = {_lua(a)};\n" for d, a in sorted(fixed.items()))
        s2s = (
            "-- Federation (courier up --s2s-port): plain s2s with dialback on loopback.\n"
            f"s2s_ports = {{ {self.s2s_port} }}\n"
            's2s_interfaces = { "127.0.0.1" }\n'
            "s2s_secure_auth = false\n"
            f"courier_s2s_peers = {{\n{peers}}}"
        )
        return {"s2s": s2s, "s2s_modules": '"dialback"; "courier_peers";', "disabled": '"tls"'}


#: ``courier up --prosody-gc`` / ``ProsodySetup.gc``: Prosody 0.12's GC modes on Lua 5.4.
#: generational: measured here (bench/README.md, "Prosody's garbage collector") at 25-55 % less
#: Prosody CPU per message than its default, incremental mode, without its 1.5-2 ms pauses, for
#: more memory.
GC_MODES = ("incremental", "generational")
#: what ``--prosody-gc`` takes: a mode, or "default" (Prosody's own: no ``gc`` line)
GC_CHOICES = ("default", *GC_MODES)


def gc_mode(choice: str) -> str:
    """``ProsodySetup.gc`` for a ``--prosody-gc`` choice."""
    return "" if choice == "default" else choice


def _gc_option(mode: str) -> str:
    """The template's ``gc`` line: none (Prosody's default) or the mode asked for."""
    if not mode:
        return "-- gc: Prosody's default (incremental); courier up --prosody-gc generational changes it"
    if mode not in GC_MODES:
        raise ValueError(f"Prosody GC mode {mode!r}: expected one of {', '.join(GC_MODES)}")
    return f"gc = {{ mode = {_lua(mode)} }}"


def _lua(text: str) -> str:
    """A Lua string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def find_binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        raise FileNotFoundError(
            f"{name} not found: install Debian's prosody and prosody-modules (apt-get install prosody prosody-modules)"
        )
    return path


def start(setup: ProsodySetup, timeout: float = 15.0) -> subprocess.Popen[bytes]:
    """Start Prosody in the foreground on *setup*'s rendered config; wait until c2s listens."""
    proc = subprocess.Popen(
        [find_binary("prosody"), "--config", str(setup.config_file), "-F"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"Prosody exited with {proc.returncode}: {err.strip()} (log: {setup.log_file})")
        if (
            _listening(setup.c2s_port)
            and _listening(setup.component_port)
            and (setup.s2s_port is None or _listening(setup.s2s_port))
        ):
            return proc
        time.sleep(0.05)
    stop(proc)
    raise TimeoutError(f"Prosody did not listen on {setup.c2s_port} within {timeout}s (log: {setup.log_file})")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after *timeout*."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def adduser(setup: ProsodySetup, jid: str, password: str) -> None:
    """Register *jid* with prosodyctl against the rendered config."""
    user, _, host = jid.partition("@")
    if not user or host != setup.domain:
        raise ValueError(f"{jid!r} is not a user of {setup.domain}")
    result = subprocess.run(
        [find_binary("prosodyctl"), "--config", str(setup.config_file), "register", user, host, password],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"prosodyctl register {jid} failed: {(result.stdout + result.stderr).strip()}")

"""A local Kannel for trying SMS on one machine: bearerbox + smsbox with a fake SMSC.

Used by ``courier up --sms`` and the conformance tests.  Debian's ``kannel``
package provides the binaries (``scripts/install-system.sh`` installs it; its
init script never starts here, and we run our own boxes with our own
configuration and ports, all on 127.0.0.1).

The fake SMSC is the phone network: connect to its TCP port and every SMS
Kannel sends comes out as one line ``FROM TO text HELLO`` (``data``/``ucs-2``
with URL-encoded bytes for other texts, ``udh …`` for the parts of a long one),
and every line ``FROM TO text Hello`` you write is an SMS from ``FROM`` to
``TO``.  One client at a time; SMS sent while none is connected wait for one.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .kannel import kannel_conf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def find_box(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if path is None:
        raise FileNotFoundError(f"{name} not found: install Debian's kannel (apt-get install kannel)")
    return path


@dataclass
class KannelSetup:
    """One local Kannel: its directory (config, logs), ports and credentials."""

    data: Path
    courier_port: int  # where Courier serves /sms/mo and /sms/dlr (sms.listen_port)
    admin_port: int = field(default_factory=free_port)
    smsbox_port: int = field(default_factory=free_port)
    smsc_port: int = field(default_factory=free_port)
    sendsms_port: int = field(default_factory=free_port)
    username: str = "courier"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    @property
    def config_file(self) -> Path:
        return self.data / "kannel.conf"

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}"

    def courier_options(self) -> dict[str, object]:
        """The sms.* options that point Courier at this Kannel."""
        return {
            "sms.enabled": True,
            "sms.kannel_url": self.sendsms_url,
            "sms.username": self.username,
            "sms.password": self.password,
            "sms.secret": self.secret,
            "sms.listen_host": "127.0.0.1",
            "sms.listen_port": self.courier_port,
        }

    def render(self) -> Path:
        self.data = self.data.resolve()
        self.data.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            kannel_conf(
                log_dir=str(self.data),
                admin_port=self.admin_port,
                smsbox_port=self.smsbox_port,
                smsc_port=self.smsc_port,
                sendsms_port=self.sendsms_port,
                username=self.username,
                password=self.password,
                courier_url=f"http://127.0.0.1:{self.courier_port}",
                secret=self.secret,
            )
        )
        self.config_file.chmod(0o600)
        return self.config_file


@dataclass
class KannelProcesses:
    bearerbox: subprocess.Popen[bytes]
    smsbox: subprocess.Popen[bytes]


def _wait(port: int, proc: subprocess.Popen[bytes], what: str, setup: KannelSetup, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} (logs in {setup.data})")
        if listening(port):
            return
        time.sleep(0.02)
    raise TimeoutError(f"{what} did not listen on {port} within {timeout}s (logs in {setup.data})")


def start(setup: KannelSetup, timeout: float = 10.0) -> KannelProcesses:
    """bearerbox, then — once its smsbox port listens (smsbox exits rather than wait) — smsbox."""
    out = (setup.data / "boxes.out").open("ab")
    bearerbox = subprocess.Popen(
        [find_box("bearerbox"), str(setup.config_file)], stdout=out, stderr=out, start_new_session=True
    )
    try:
        _wait(setup.smsbox_port, bearerbox, "bearerbox", setup, timeout)
        smsbox = subprocess.Popen(
            [find_box("smsbox"), str(setup.config_file)], stdout=out, stderr=out, start_new_session=True
        )
        try:
            _wait(setup.sendsms_port, smsbox, "smsbox", setup, timeout)
        except BaseException:
            _stop(smsbox)
            raise
    except BaseException:
        _stop(bearerbox)
        raise
    finally:
        out.close()
    return KannelProcesses(bearerbox, smsbox)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop(procs: KannelProcesses) -> None:
    """smsbox first, then bearerbox (each SIGTERM, SIGKILL after a timeout)."""
    _stop(procs.smsbox)
    _stop(procs.bearerbox)


def instructions(setup: KannelSetup, example_to: str = "+12025550101") -> str:
    """How a person plays the phone network of this Kannel."""
    return (
        f"SMS      Kannel (fake SMSC) on 127.0.0.1:{setup.smsc_port}; sendsms {setup.sendsms_url}; "
        f"config {setup.config_file}\n"
        f"         Be the phone network: python -m component.sms.sandbox {setup.smsc_port}  "
        f"(or: nc 127.0.0.1 {setup.smsc_port})\n"
        f"         — every SMS Courier sends appears as a line 'FROM TO text …' (codes too);\n"
        f"         — type '+12025550199 {example_to} text Hello' to send an SMS from +12025550199 to the\n"
        f"           user whose verified number is {example_to} (register one: send 'phone {example_to}'\n"
        f"           to the bot, then 'verify CODE' with the code from the line above)."
    )


#: The sandbox gateway's own number (fictional: +1 202 555 01xx).
SANDBOX_SENDER = "+12025550100"


@dataclass
class Sandbox:
    """A running local Kannel and the sms.* options that point Courier at it."""

    setup: KannelSetup
    procs: KannelProcesses
    options: dict[str, object]

    def stop(self) -> None:
        stop(self.procs)


def up(data: Path) -> Sandbox:
    """``courier up --sms``: a Kannel with a fake SMSC in ``<data>/kannel``, on free ports."""
    setup = KannelSetup(data=data / "kannel", courier_port=free_port())
    setup.render()
    procs = start(setup)
    return Sandbox(setup, procs, {**setup.courier_options(), "sms.sender": SANDBOX_SENDER})


def phone(port: int) -> None:
    """Be the phone network from a terminal: print every SMS sent, send each line typed."""
    import sys
    import threading

    with socket.create_connection(("127.0.0.1", port)) as sock:

        def show() -> None:
            for line in sock.makefile("r", encoding="latin-1"):
                print(f"SMS out: {line.rstrip()}", flush=True)

        threading.Thread(target=show, daemon=True).start()
        print("Type 'FROM TO text Hello' to send an SMS; Ctrl-D ends.", flush=True)
        for line in sys.stdin:
            if line.strip():
                sock.sendall(line.rstrip("\n").encode() + b"\n")


if __name__ == "__main__":
    import sys

    phone(int(sys.argv[1]))

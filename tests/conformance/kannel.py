"""A real Kannel for the SMS tests, and the phone network behind it.

:class:`Kannel` runs Debian's bearerbox + smsbox (component/sms/sandbox.py) on
free loopback ports for the whole session and can be stopped and started
again (gateway-down tests).  :class:`PhoneNetwork` is the client of
bearerbox's fake SMSC port (the ``fakesmsc`` binary is not needed): it reads
every SMS Kannel sends (reassembling the parts of long ones and decoding
UCS-2) and injects mobile-originated SMS.  It runs in a thread and reconnects
after a restart, so any test's event loop can use it.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest

from component import prosody
from component.sms import sandbox
from component.xep import sms as xep_sms

from .xmpp import CourierProcess


@dataclass(frozen=True)
class Sms:
    """One SMS that reached the phone network (parts joined)."""

    sender: str
    recipient: str
    text: str
    parts: int = 1


def _payload(kind: str, data: str) -> str:
    if kind == "text":
        return data
    raw = unquote_to_bytes(data.replace("+", " "))
    if kind == "ucs-2":
        return raw.decode("utf-16-be", errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class PhoneNetwork:
    """The fake SMSC's one client: every SMS sent, and a way to send MO SMS."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sms: list[Sms] = []
        self.lines: list[str] = []
        self._parts: dict[tuple[str, str, int], dict[int, bytes | str]] = {}
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._closed = False
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-smsc-client", daemon=True)
        self._thread.start()

    def wait_connected(self, timeout: float = 10.0) -> None:
        if not self._connected.wait(timeout):
            raise TimeoutError(f"could not connect to the fake SMSC on {self.port}")

    def _run(self) -> None:
        while not self._closed:
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            except OSError:
                time.sleep(0.05)
                continue
            sock.settimeout(None)
            self._sock = sock
            self._connected.set()
            buffer = b""
            try:
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        self._line(line.decode("latin-1").rstrip("\r"))
            except OSError:
                pass
            finally:
                self._connected.clear()
                self._sock = None
                sock.close()

    def _line(self, line: str) -> None:
        fields = line.split(" ", 3)
        if len(fields) < 4:
            return
        sender, recipient, kind, rest = fields
        with self._lock:
            self.lines.append(line)
            if kind != "udh":
                self.sms.append(Sms(sender, recipient, _payload(kind, rest)))
                return
            udh_text, kind, data = rest.split(" ", 2)
            udh = unquote_to_bytes(udh_text.replace("+", " "))
            ref, total, seq = udh[3], udh[4], udh[5]  # IEI 0 (8-bit reference): 05 00 03 ref total seq
            key = (sender, recipient, ref)
            self._parts.setdefault(key, {})[seq] = _payload(kind, data)
            if len(self._parts[key]) == total:
                parts = self._parts.pop(key)
                text = "".join(str(parts[i]) for i in sorted(parts))
                self.sms.append(Sms(sender, recipient, text, total))

    def inject(self, sender: str, recipient: str, text: str) -> None:
        """An SMS from *sender*'s phone to *recipient* (ASCII text)."""
        self.wait_connected()
        assert self._sock is not None
        self._sock.sendall(f"{sender} {recipient} text {text}\n".encode())

    def to(self, number: str) -> list[Sms]:
        with self._lock:
            return [s for s in self.sms if s.recipient == number]

    async def wait_for(self, predicate: Callable[[Sms], bool], timeout: float = 10.0) -> Sms:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for s in self.sms:
                    if predicate(s):
                        return s
            await asyncio.sleep(0.02)
        raise AssertionError(f"no such SMS within {timeout}s; the network saw: {self.lines[-10:]}")

    def close(self) -> None:
        self._closed = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(2)


class Kannel:
    """Debian's Kannel (bearerbox + smsbox + fake SMSC) on free loopback ports."""

    def __init__(self, data: Path) -> None:
        self.setup = sandbox.KannelSetup(data=data, courier_port=sandbox.free_port())
        self.setup.render()
        self.procs: sandbox.KannelProcesses | None = None

    def start(self) -> Kannel:
        self.procs = sandbox.start(self.setup)
        return self

    def stop(self) -> None:
        if self.procs is not None:
            sandbox.stop(self.procs)
            self.procs = None

    @property
    def running(self) -> bool:
        return self.procs is not None

    def courier_env(self, **extra: str) -> dict[str, str]:
        """COURIER_* variables that point a Courier process at this Kannel."""
        env = {
            "COURIER_" + name.replace(".", "_").upper(): str(value).lower() if isinstance(value, bool) else str(value)
            for name, value in self.setup.courier_options().items()
        }
        env.update(extra)
        return env


# -- Courier with SMS, and a user with a verified number ------------------------------------

GATEWAY = "+12025550100"  # sms.sender: the gateway's own number


_numbers = itertools.count(101)


def new_number() -> str:
    """A fresh, valid number per use (+1 202 555 01xx: reserved for fiction, valid for libphonenumber)."""
    return f"+1202555{next(_numbers):04d}"


@pytest.fixture(scope="session")
def kannel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kannel]:
    k = Kannel(tmp_path_factory.mktemp("kannel")).start()
    yield k
    k.stop()


@pytest.fixture(scope="session")
def network(kannel: Kannel) -> Iterator[PhoneNetwork]:
    net = PhoneNetwork(kannel.setup.smsc_port)
    net.wait_connected()
    yield net
    net.close()


def sms_process(stack: prosody.ProsodySetup, kannel: Kannel, workdir: Path, **env: str) -> CourierProcess:
    """Courier with SMS on, pointed at *kannel*; not started yet (``start()``, or ``start_async()`` in a test)."""
    return CourierProcess(stack, workdir, **kannel.courier_env(COURIER_SMS_SENDER=GATEWAY, **env))


def sms_courier(stack: prosody.ProsodySetup, kannel: Kannel, workdir: Path, **env: str) -> CourierProcess:
    return sms_process(stack, kannel, workdir, **env).start()


async def verified(client, component: str, network: PhoneNetwork, number: str) -> None:
    """Register *number* through courier-sms IQs; the code travels through Kannel."""
    plugin = client.plugin["courier_sms"]
    answer = await plugin.register_phone(component, number, timeout=5)
    assert answer["sms_phone"]["pending"] == number
    code_sms = await network.wait_for(lambda s: s.recipient == number and "code" in s.text)
    code = re.search(r"\b(\d{6})\b", code_sms.text)
    assert code is not None, code_sms.text
    answer = await plugin.verify_phone(component, code.group(1), timeout=5)
    assert answer["sms_phone"]["number"] == number
    assert answer["sms_phone"]["fallback"] is True


async def with_sms(connect, jid: str, resource: str = "phone", presence: bool = True):
    client = await connect(jid, resource, presence)
    client.register_plugin("courier_sms", module=xep_sms)
    return client

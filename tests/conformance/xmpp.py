"""Test-side XMPP pieces: real slixmpp clients and the processes under test."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar, Protocol

from slixmpp import JID, ClientXMPP, Message
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from component import prosody
from component.xep import hops
from tests import pgserver

REPO = Path(__file__).resolve().parents[2]
RETRACTED = "This person attempted to retract a previous message"  # XEP-0424's fallback body


class Writer(Protocol):
    """Anything that writes a chat message as a user: this module's :class:`Client`, and each
    third-party client's driver in ``tests/interop/`` (Converse, Gajim, Poezio, Profanity, nbxmpp)."""

    async def write(self, to: str, body: str) -> object: ...


class Client(ClientXMPP):
    """A real XMPP client (slixmpp) that records every message it receives."""

    def __init__(self, jid: str, password: str, port: int, *, presence: bool = True) -> None:
        super().__init__(jid, password)
        self.port = port
        self.send_presence_on_start = presence
        self.received: asyncio.Queue[Message] = asyncio.Queue()
        self.all_received: list[Message] = []
        self.ready = asyncio.Event()
        for plugin in (
            "xep_0030", "xep_0184", "xep_0199", "xep_0280", "xep_0308", "xep_0313", "xep_0333", "xep_0359",
            "xep_0422", "xep_0424",
        ):  # fmt: skip
            self.register_plugin(plugin)
        self.plugin["xep_0184"].auto_ack = False  # tests send receipts explicitly
        self.plugin["xep_0184"].auto_request = False
        self.register_plugin("courier_hops", module=hops)
        self.reports: list[Message] = []  # one per hop reported
        self.report_messages: list[Message] = []
        self.privilege_notices: list[Message] = []
        self.add_event_handler("session_start", self._start)
        # every message, with or without a body (slixmpp's "message" event needs a body)
        self.register_handler(Callback("Test: every message", MatchXPath("{jabber:client}message"), self._message))
        self.add_event_handler("carbon_sent", self._carbon)
        self.carbons: list[Message] = []
        self.plugin["feature_mechanisms"].unencrypted_plain = True
        self.enable_plaintext = True
        self.enable_starttls = False
        self.enable_direct_tls = False

    async def _start(self, _event: Any) -> None:
        if self.send_presence_on_start:
            self.send_presence()
        self.ready.set()

    def _message(self, msg: Message) -> None:
        if msg.xml.find("{urn:xmpp:privilege:2}privilege") is not None:
            self.privilege_notices.append(msg)  # mod_privilege's advertisement: meant for components only
            return
        if msg.xml.find(f"{{{hops.NS}}}report") is not None or msg.xml.find(f"{{{hops.NS}}}reports") is not None:
            self.report_messages.append(msg)  # as they came: several hops may share one (courier-hops 0.3, 0.5)
            self.reports.extend(hops.split_reports(msg))  # one entry per hop
            return
        if msg.xml.find("{urn:xmpp:mam:2}result") is not None:
            return  # archive results are read through archive()
        if (
            msg.xml.find("{urn:xmpp:carbons:2}sent") is not None
            or msg.xml.find("{urn:xmpp:carbons:2}received") is not None
        ):
            return
        self.all_received.append(msg)
        self.received.put_nowait(msg)

    def _carbon(self, msg: Message) -> None:
        self.carbons.append(msg["carbon_sent"])

    async def start(self, timeout: float = 10) -> Client:
        self.connect("127.0.0.1", self.port)
        await asyncio.wait_for(self.ready.wait(), timeout)
        # A round trip to the server: it handles one stream in order, so once the
        # ping is answered our initial presence has been processed (we count as online).
        await self.plugin["xep_0199"].ping(jid=self.boundjid.domain, timeout=timeout)
        return self

    async def stop(self) -> None:
        if self.is_connected():
            done = asyncio.Event()
            self.add_event_handler("disconnected", lambda _e: done.set())
            self.disconnect()
            try:
                await asyncio.wait_for(done.wait(), 3)
            except TimeoutError:
                pass

    async def next_message(self, timeout: float = 5) -> Message:
        return await asyncio.wait_for(self.received.get(), timeout)

    async def until_marker(
        self, sender: Writer, marker: str = "marker", to: str | None = None, timeout: float = 5
    ) -> list[Message]:
        """A positive end: *sender* writes *marker* (to this client, or to *to*: a list's JID);
        every message that arrives here before it, in order.  Courier releases a user's
        messages to one recipient in order (those held first), and sends everything on one
        stream, so whatever of *sender*'s (or of Courier's) was still on its way comes first."""
        await sender.write(to or self.boundjid.bare, marker)
        before = []
        while (msg := await self.next_message(timeout))["body"] != marker:
            before.append(msg)
        return before

    async def nothing_before_marker(
        self, sender: Writer, marker: str = "marker", to: str | None = None, timeout: float = 5
    ) -> None:
        """Assert nothing else arrives: the marker (:meth:`until_marker`) is the next message."""
        before = await self.until_marker(sender, marker, to, timeout)
        assert before == [], f"unexpected before the marker {marker!r}: {before}"

    async def write(self, to: str, body: str) -> Message:
        """A chat message whose id is its text (a marker's id is the marker)."""
        return self.chat(to, body, body, origin_id=False)

    async def round_trip(self, jid: str, timeout: float = 5) -> None:
        """A ping to *jid* answered: the positive marker for "nothing more from *jid*" (Courier
        answers after a store commit, on the same stream as everything it sends)."""
        await self.plugin["xep_0199"].ping(jid=JID(jid), timeout=timeout)

    async def archive(self, with_jid: str) -> list[Message]:
        """This account's MAM archive with *with_jid* (XEP-0313), oldest first."""
        iq = await self.plugin["xep_0313"].retrieve(with_jid=JID(with_jid), rsm={"max": 100})
        return [r["mam_result"]["forwarded"]["stanza"] for r in iq["mam"]["results"]]

    def chat(self, to: str, body: str, msg_id: str | None = None, origin_id: bool = True) -> Message:
        msg = self.make_message(mto=to, mbody=body, mtype="chat")
        if msg_id:
            msg["id"] = msg_id
        if origin_id:
            msg["origin_id"]["id"] = msg["id"]
        msg.send()
        return msg

    def correct(self, to: str, ref: str, body: str, msg_id: str | None = None) -> Message:
        """A XEP-0308 correction of message *ref*: its new text."""
        return self._about(to, ref, "replace", body, msg_id)

    def retract(self, to: str, ref: str, msg_id: str | None = None, body: str = RETRACTED) -> Message:
        """A XEP-0424 retraction of message *ref*, with the fallback text clients send."""
        return self._about(to, ref, "retract", body, msg_id)

    def _about(self, to: str, ref: str, plugin: str, body: str, msg_id: str | None) -> Message:
        msg = self.make_message(mto=to, mbody=body, mtype="chat")
        if msg_id:
            msg["id"] = msg_id
        msg[plugin]["id"] = ref
        msg.send()
        return msg


class CourierProcess:
    """A real Courier process (``python -m component run``) with its own store and log.

    Every stanza it sends is recorded (``COURIER_RECORD_SENT``) and checked after each
    test against the XML Schemas of ``xeps/`` (``tests/conftest.py``)."""

    #: every process made in this test session, for the check of what they sent
    made: ClassVar[list[CourierProcess]] = []

    def __init__(self, setup: prosody.ProsodySetup, workdir: Path, **env: str) -> None:
        self.setup = setup
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        # the store: a SQLite file, or a fresh PostgreSQL database (COURIER_TEST_STORE=postgresql)
        self.db: Path | str = workdir / "courier.sqlite"
        store = f'path = "{self.db}"'
        if pgserver.engine() == "postgresql":
            self.db = pgserver.server().create_database()
            store = f'url = "{self.db}"'
        self.log = workdir / "courier.log"
        self.config = workdir / "courier.toml"
        self.config.write_text(
            f'[xmpp]\ndomain = "{setup.domain}"\nsecret = "{setup.secret}"\nport = {setup.component_port}\n'
            f'[store]\n{store}\n[log]\nlevel = "DEBUG"\n'
        )
        self.sent = workdir / "sent.jsonl"
        self.env = {**os.environ, "COURIER_RECORD_SENT": str(self.sent), **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._sent_checked = 0
        CourierProcess.made.append(self)

    def unchecked_sent(self) -> list[str]:
        """The stanzas sent since the last call (complete lines only)."""
        if not self.sent.exists():
            return []
        with self.sent.open("rb") as f:
            f.seek(self._sent_checked)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._sent_checked += len(complete)
        return [json.loads(line) for line in complete.decode("utf-8").splitlines() if line.strip()]

    def _spawn(self) -> None:
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "component", "run", "--config", str(self.config)],
            stdout=out,
            stderr=out,
            env=self.env,
            cwd=REPO,
            start_new_session=True,
        )
        out.close()

    def start(self, timeout: float = 15, ready: str = "connected to") -> CourierProcess:
        """Start it; wait until its log says *ready* (a standby on PostgreSQL: ``"Standby:"``).
        For sync fixtures: an async test uses :meth:`start_async`."""
        self._spawn()
        try:
            self.wait_log(ready, timeout)
        except BaseException:
            self.kill()  # never leave a half-started Courier behind
            raise
        return self

    async def start_async(self, timeout: float = 15, ready: str = "connected to") -> CourierProcess:
        """:meth:`start` without blocking the event loop: the test's clients keep their streams."""
        self._spawn()
        try:
            await self.wait_log_async(ready, timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[self._log_offset :] if self.log.exists() else ""

    def _logged(self, needle: str) -> bool:
        """Whether the log says *needle* yet; RuntimeError if Courier exited without it."""
        if needle in self.log_text():
            return True
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"Courier exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
        return False

    def _not_logged(self, needle: str, timeout: float) -> TimeoutError:
        return TimeoutError(f"{needle!r} not in Courier's log after {timeout}s:\n{self.log_text()[-3000:]}")

    def wait_log(self, needle: str, timeout: float = 10) -> None:
        """Wait (blocking: sync fixtures) until the log says *needle*."""
        deadline = time.monotonic() + timeout
        while not self._logged(needle):
            if time.monotonic() > deadline:
                raise self._not_logged(needle, timeout)
            time.sleep(0.05)

    async def wait_log_async(self, needle: str, timeout: float = 10) -> None:
        """:meth:`wait_log` without blocking the event loop (async tests)."""
        deadline = time.monotonic() + timeout
        while not self._logged(needle):
            if time.monotonic() > deadline:
                raise self._not_logged(needle, timeout)
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            prosody.stop(self.proc)
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

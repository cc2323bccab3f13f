"""What the conformance tests (and the federation, interop and fault tests) share: waiting on a
condition, reading Courier's store, the bot and ad-hoc commands, the client tool as a
subprocess, /metrics, list owners, encrypted stanzas.  Test modules import from here (and from
:mod:`tests.conformance.xmpp`, :mod:`tests.conformance.kannel`), never from one another."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

import aiohttp
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from slixmpp import Message

from component import prosody
from component.xep import e2ee
from component.xep import lists as xep_lists

from .conftest import PASSWORD, read_store
from .xmpp import REPO, Client, CourierProcess, Writer

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


async def eventually(check: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> Any:
    """Wait until *check()* is truthy (a state, never a fixed time); its value."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def eventually_async(
    fetch: Callable[[], Awaitable[Any]], ok: Callable[[Any], object], timeout: float = 5.0, what: str = ""
) -> Any:
    """:func:`eventually` for a value fetched by a round trip (an IQ, a scrape): until ``ok(value)``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or 'a value'}; the last: {value}")
        await asyncio.sleep(0.05)


def states(courier: CourierProcess, sender: str) -> dict[str, str]:
    with read_store(courier) as db:
        return {
            r["msg_id"]: r["state"] for r in db.execute("SELECT msg_id, state FROM messages WHERE sender=?", (sender,))
        }


def hops(courier: CourierProcess, sender: str, msg_id: str) -> list[tuple[str, float, str]]:
    with read_store(courier) as db:
        rows = db.execute(
            "SELECT h.label, h.at, h.place FROM hops h JOIN messages m ON m.seq = h.message_seq "
            "WHERE m.sender=? AND m.msg_id=? ORDER BY h.id",
            (sender, msg_id),
        )
        return [(r["label"], r["at"], r["place"]) for r in rows]


def wire(client: Client, sender: str) -> list[str]:
    """What *client* got from *sender*, in order: ``body:TEXT``, ``receipt:ID``,
    ``received:ID`` / ``displayed:ID`` (XEP-0333), ``retract:ID``, ``replace:ID``."""
    seen = []
    for m in client.all_received:
        if m["from"].bare != sender:
            continue
        if m["receipt"]:
            seen.append(f"receipt:{m['receipt']}")
        for marker in ("received", "displayed", "acknowledged"):
            el = m.xml.find(f"{{urn:xmpp:chat-markers:0}}{marker}")
            if el is not None:
                seen.append(f"{marker}:{el.get('id')}")
        if m.xml.find("{urn:xmpp:message-retract:1}retract") is not None:
            seen.append(f"retract:{m['retract']['id']}")
        elif m.xml.find("{urn:xmpp:message-correct:0}replace") is not None:
            seen.append(f"replace:{m['replace']['id']}:{m['body']}")
        elif m["body"]:
            seen.append(f"body:{m['body']}")
    return seen


async def wire_to_marker(client: Client, sender: Writer, sender_jid: str, marker: str = "marker") -> list[str]:
    """The positive end of "nothing else arrives": *sender* (a third-party client's driver, or a
    slixmpp client) writes *marker* to *client*; once it is there, :func:`wire` from *sender_jid*.
    Courier releases a user's messages to one recipient in order (those held first), so anything
    unwanted (a second copy, a passed-on correction, a receipt) shows before ``body:MARKER``."""
    await sender.write(client.boundjid.bare, marker)
    await eventually(lambda: f"body:{marker}" in wire(client, sender_jid), timeout=10, what=f"the marker {marker!r}")
    return wire(client, sender_jid)


def report_states(client) -> list[str]:
    return [r["hops_report"]["state"] for r in client.reports]


async def execute(client, component: str, node: str, action=None, sessionid=None, values=None, echo=None):
    """One XEP-0050 request the way a given client sends it."""
    iq = client.make_iq_set(ito=component)
    iq["command"]["node"] = node
    if action:
        iq["command"]["action"] = action
    if sessionid:
        iq["command"]["sessionid"] = sessionid
    if echo is not None:  # Gajim/nbxmpp: the whole form back, labels and options included
        form = echo
        form["type"] = "submit"
        for var, value in (values or {}).items():
            form.get_fields()[var]["value"] = value
        iq["command"].append(form)
    elif values is not None:
        form = client.plugin["xep_0004"].make_form(ftype="submit")
        for var, value in values.items():
            form.add_field(var=var, value=value)
        iq["command"].append(form)
    return (await iq.send(timeout=5))["command"]


async def bot(client, component: str, text: str) -> str:
    client.chat(component, text, origin_id=False)
    reply = await client.next_message()
    assert reply["from"].bare == component
    return reply["body"]


async def owner(connect, jid: str, resource: str = "phone") -> Client:
    """A client that speaks courier-lists (and XEP-0050 for the ad-hoc commands)."""
    client = await connect(jid, resource)
    client.register_plugin("courier_lists", module=xep_lists)
    for plugin in ("xep_0004", "xep_0033", "xep_0050"):
        client.register_plugin(plugin)
    return client


async def message_where(client: Client, check: Callable[[Message], bool], timeout: float = 5) -> Message:
    """The first message (already received or arriving) that passes *check*; others stay."""
    return await eventually(lambda: next((m for m in client.all_received if check(m)), None), timeout, "such a message")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def objects(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def argv(stack: prosody.ProsodySetup, jid: str, command: str, *args: str, password: str = PASSWORD) -> list[str]:
    return [
        sys.executable, "-m", "component", "client", command,
        "--jid", jid, "--password", password, "--port", str(stack.c2s_port), "--timeout", "5", *args,
    ]  # fmt: skip


async def spawn(command: list[str]) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    return await asyncio.create_subprocess_exec(
        *command, cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def cli(stack: prosody.ProsodySetup, jid: str, command: str, *args: str, password: str = PASSWORD) -> Result:
    proc = await spawn(argv(stack, jid, command, *args, password=password))
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)  # a cold start on a loaded machine
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


class Streaming:
    """A running ``send --watch`` / ``watch`` whose JSON lines are read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def states(self) -> list[str]:
        return [x["state"] for x in self.lines if x["type"] == "report"]

    async def interrupt(self) -> Result:
        """Ctrl-C: the tool logs out and exits 0."""
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.stderr is not None
        try:
            await asyncio.wait_for(asyncio.gather(self.proc.wait(), self._reader), 5)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
        return Result(await self.proc.wait(), "", (await self.proc.stderr.read()).decode())


class Scrape(dict):
    """One /metrics scrape, parsed by prometheus_client's OpenMetrics parser: (name, labels) → value."""

    def total(self, name: str) -> float:
        return sum(v for (n, _), v in self.items() if n == name)

    def one(self, name: str, **labels: str) -> float:
        return self[(name, tuple(sorted(labels.items())))]


async def scrape(port: int) -> Scrape:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics", headers={"Accept": OPENMETRICS}) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
        text = await response.text()
    assert text.endswith("# EOF\n")
    result = Scrape()
    for family in text_string_to_metric_families(text):  # raises on anything that is not OpenMetrics
        for s in family.samples:
            result[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return result


async def scrape_until(port: int, check: Callable[[Scrape], bool], timeout: float = 10, what: str = "") -> Scrape:
    """Scrape until *check* holds (figures that follow an event outside Courier, e.g. the gateway's answer)."""
    return await eventually_async(lambda: scrape(port), check, timeout, what)


# -- encrypted messages as the clients send them (OMEMO 0.3) ----------------------------------

OLD, NEW = "T0xEIHBheWxvYWQgbWVldCBhdCBuaW5l", "TkVXIHBheWxvYWQgbWVldCBhdCB0ZW4="


# The fallback bodies the clients send (Conversations', QXmpp's, XEP-0374's example).
OMEMO_FALLBACK = (
    "I sent you an OMEMO encrypted message but your client doesn’t seem to support that. "
    "Find more information on https://conversations.im/omemo"
)


def fallback_body(text: str) -> ET.Element:
    body = ET.Element("{jabber:client}body")
    body.text = text
    return body


def omemo_legacy(payload: str) -> list[ET.Element]:
    """Conversations: ``<encrypted>`` with header (keys, iv) and payload, the EME hint, fallback body."""
    return [
        ET.fromstring(
            f"<encrypted xmlns='{e2ee.NS_OMEMO_LEGACY}'><header sid='27183'>"
            f"<key rid='31415'>MwohBcJzhALU5ZiB{payload[:6]}</key>"
            f"<key prekey='true' rid='12321'>MwohBRb3d8Ks{payload[:6]}</key>"
            f"<iv>8/pXK3Y8y8gKu{payload[:3]}</iv></header><payload>{payload}</payload></encrypted>"
        ),
        ET.fromstring(f"<encryption xmlns='{e2ee.NS_EME}' name='OMEMO' namespace='{e2ee.NS_OMEMO_LEGACY}'/>"),
        fallback_body(OMEMO_FALLBACK),
    ]


def encrypted(client: Client, to: str, msg_id: str, parts: list[ET.Element], replace: str | None = None) -> Message:
    """Send an encrypted message the way the clients do: receipt request, markable, origin-id,
    the encrypted element(s), a store hint; a correction carries ``<replace/>`` outside them."""
    msg = client.make_message(mto=to, mtype="chat")
    msg["id"] = msg_id
    msg["request_receipt"] = True
    msg.xml.append(ET.Element("{urn:xmpp:chat-markers:0}markable"))
    msg["origin_id"]["id"] = msg_id
    for part in parts:
        msg.xml.append(part)
    msg.xml.append(ET.Element("{urn:xmpp:hints}store"))
    if replace:
        msg["replace"]["id"] = replace
    msg.send()
    return msg


def payload_text(msg: Message) -> list[str]:
    """The payload(s) a recipient's client would decrypt."""
    return [p.text or "" for p in msg.xml.iter() if p.tag.endswith("}payload") or p.tag.endswith("}openpgp")]

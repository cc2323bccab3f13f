"""Fixtures: real Prosody servers federating over s2s on loopback.

a.example and b.example each run their own Courier; c.example is a stock
Prosody (no Courier, no mod_courier_route).  They know each other's s2s address through mod_courier_peers
(fixed peers, no DNS); both run dialback over plain loopback s2s.  The servers
and the Couriers live for the test session; users are fresh per test.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest

from component import prosody
from component.namespaces import NS_BASE
from tests.conformance.helpers import eventually, hops, states
from tests.conformance.xmpp import Client, CourierProcess

PASSWORD = "pw-4-tests"
DOMAINS = ("a.example", "b.example", "c.example")
STOCK = "c.example"  # a stock server: no mod_courier_route, no Courier
RESEND_AFTER = "2"  # seconds before an unacknowledged hop report is sent again (15 by default)
_counter = itertools.count(1)


@dataclass
class Server:
    """One federating server: its Prosody setup and its Courier."""

    setup: prosody.ProsodySetup
    courier: CourierProcess | None  # None: a stock server

    @property
    def domain(self) -> str:
        return self.setup.domain


@pytest.fixture(scope="session")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """a.example and b.example with a Courier each, stock c.example, federating on loopback: {domain: Server}."""
    s2s = {domain: prosody.free_port() for domain in DOMAINS}
    setups = {
        domain: prosody.ProsodySetup(
            data=tmp_path_factory.mktemp(domain),
            domain=domain,
            c2s_port=prosody.free_port(),
            component_port=prosody.free_port(),
            ack_timeout=3.0,
            log_level="debug",
            route=domain != STOCK,
            s2s_port=s2s[domain],
            peers={other: f"127.0.0.1:{port}" for other, port in s2s.items() if other != domain},
        )
        for domain in DOMAINS
    }
    procs = []
    servers: dict[str, Server] = {}
    try:
        for setup in setups.values():
            setup.render()
            procs.append(prosody.start(setup))
        for domain, setup in setups.items():
            courier = (
                CourierProcess(setup, setup.data / "courier", COURIER_FEDERATION_RESEND_AFTER=RESEND_AFTER).start()
                if domain != STOCK
                else None
            )
            servers[domain] = Server(setup, courier)
        yield servers
    finally:
        for server in servers.values():
            if server.courier is not None:
                server.courier.stop()
        for proc in procs:
            prosody.stop(proc)


@pytest.fixture
def users(federation: dict[str, Server]) -> Callable[..., list[str]]:
    """``users("alice@a.example", "bob@b.example")``: fresh accounts (a number added to each name)."""

    def make(*specs: str) -> list[str]:
        n = next(_counter)
        jids = []
        for spec in specs:
            name, _, domain = spec.partition("@")
            jid = f"{name}{n}@{domain}"
            prosody.adduser(federation[domain].setup, jid, PASSWORD)
            jids.append(jid)
        return jids

    return make


@pytest.fixture
async def connect(federation: dict[str, Server]) -> AsyncIterator[Callable[..., object]]:
    """``await connect(jid)`` logs a real client in to its own server; all are logged out after the test."""
    clients: list[Client] = []

    async def make(jid: str, resource: str = "phone", presence: bool = True) -> Client:
        server = federation[jid.partition("@")[2]]
        client = Client(f"{jid}/{resource}", PASSWORD, server.setup.c2s_port, presence=presence)
        clients.append(client)
        return await client.start()

    yield make
    for client in clients:
        await client.stop()


async def corrected_and_retracted_offline(
    sender: Client, recipient: str, courier: CourierProcess, connect: Callable[..., Awaitable[Client]]
) -> Client:
    """*sender* writes m1 and m2 to offline *recipient*, both held at *courier* (the recipient's
    server's), then corrects m1 (XEP-0308) and retracts m2 (XEP-0424), as stock clients do.  The
    recipient connects: m1 with its final text, then nothing before the sender's next message
    (a second copy, the correction or the retraction would come first).  The recipient's client."""
    who = sender.boundjid.bare
    sender.chat(recipient, "Meet me at nine", "m1")
    sender.chat(recipient, "Forget it", "m2")
    await eventually(lambda: states(courier, who) == {"m1": "held", "m2": "held"}, 15, "both held")
    sender.correct(recipient, "m1", "Meet me at ten", "m1-fix")
    sender.retract(recipient, "m2", "m2-retract")
    await eventually(lambda: states(courier, who) == {"m1": "held", "m2": "recalled"}, 15, "the retraction applied")
    b = await connect(recipient)
    got = await b.next_message(timeout=15)
    assert (got["from"].bare, got["id"], got["body"]) == (who, "m1", "Meet me at ten")
    await b.nothing_before_marker(sender, "After login", timeout=15)
    return b


async def trace(client, msg_id: str) -> list[tuple[str, str]]:
    """Alice's trace of *msg_id*, as her client sees it: (state, place) per hop."""
    iq = await client.plugin["courier_hops"].get_trace("courier.a.example", msg_id, timeout=10)
    return [(h["state"], h["place"]) for h in iq["hops_trace"]["hops"]]


def ours(msg) -> list[str]:
    return [child.tag for child in msg.xml.iter() if child.tag.startswith("{" + NS_BASE)]


def hop_labels(federation: dict[str, Server], sender: str, msg_id: str) -> list[tuple[str, str]]:
    """(label, place) of the hops Courier A recorded for *sender*'s *msg_id*."""
    return [(label, place) for label, _at, place in hops(federation["a.example"].courier, sender, msg_id)]

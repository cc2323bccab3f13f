"""Fixtures: one real Prosody per test session, a real Courier process per test, fresh users per test."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from component import prosody
from tests import storeview

from .xmpp import Client, CourierProcess

PASSWORD = "pw-4-tests"
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[prosody.ProsodySetup]:
    """Debian's Prosody with prosody-config/ rendered on free loopback ports."""
    setup = prosody.ProsodySetup(
        data=tmp_path_factory.mktemp("prosody"),
        c2s_port=prosody.free_port(),
        component_port=prosody.free_port(),
        ack_timeout=3.0,
        log_level="debug",
    )
    setup.render()
    proc = prosody.start(setup)
    yield setup
    prosody.stop(proc)


@pytest.fixture
def users(stack: prosody.ProsodySetup) -> Callable[..., list[str]]:
    """``users("alice", "bob")`` registers fresh accounts for this test and returns their JIDs."""

    def make(*names: str) -> list[str]:
        n = next(_counter)
        jids = [f"{name}{n}@{stack.domain}" for name in names]
        for jid in jids:
            prosody.adduser(stack, jid, PASSWORD)
        return jids

    return make


@pytest.fixture
def courier(stack: prosody.ProsodySetup, tmp_path: Path) -> Iterator[CourierProcess]:
    """A real Courier process connected to the session's Prosody, with its own store."""
    process = CourierProcess(stack, tmp_path / "courier").start()
    yield process
    process.stop()


@pytest.fixture
async def connect(stack: prosody.ProsodySetup) -> AsyncIterator[Callable[..., object]]:
    """``await connect(jid, resource)`` logs a real client in; all are logged out after the test."""
    clients: list[Client] = []

    async def make(jid: str, resource: str = "phone", presence: bool = True) -> Client:
        client = Client(f"{jid}/{resource}", PASSWORD, stack.c2s_port, presence=presence)
        clients.append(client)
        return await client.start()

    yield make
    for client in clients:
        await client.stop()


def read_store(courier: CourierProcess) -> Any:
    """A read-only view of Courier's store beside the running process (SQLite's WAL allows it)."""
    return storeview.connect(courier.db, read_only=True)


@pytest.fixture
def with_commands(connect):
    async def make(*jids):
        clients = []
        for jid in jids:
            c = await connect(jid)
            c.register_plugin("xep_0004")
            c.register_plugin("xep_0050")
            clients.append(c)
        return clients

    return make

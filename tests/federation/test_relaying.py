"""courier-federation 0.5, relaying (xeps/courier-federation.xml, Business Rules): Courier A
stored Alice's message before releasing it, so Courier B releases it to an online Bob before
its own commit, and records it in the commit after."""

from __future__ import annotations

import sqlite3

import pytest

from tests.conformance.helpers import eventually_async
from tests.faults.harness import fallbacks
from tests.federation.conftest import trace

pytestmark = pytest.mark.sqlite_only  # B's store is locked from outside, as only a file store can be


async def test_an_online_recipient_gets_a_relayed_message_while_bs_store_cannot_write(
    federation, users, connect
) -> None:
    """Another process holds Courier B's database write lock: Bob still gets Alice's message at
    once from Courier B, not from Prosody B's fallback after its ack timeout; once the lock goes,
    B records the message and Alice's trace gets B's release, once."""
    alice, bob = users("alice@a.example", "bob@b.example")
    server_b = federation["b.example"]
    a, b = await connect(alice), await connect(bob)
    a.chat(bob, "Hello", "r0")  # (A knows B speaks courier-federation; B has nothing left to commit)
    assert (await b.next_message(timeout=15))["id"] == "r0"
    released_at_b = [("sent", "a.example"), ("released", "b.example"), ("released", "b.example")]
    await eventually_async(lambda: trace(a, "r0"), released_at_b.__eq__, 20, "r0's hops at B in Alice's trace")
    fell_back = fallbacks(server_b.setup.log_file.read_text())

    lock = sqlite3.connect(str(server_b.courier.db), timeout=0, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # Courier B's commits wait (and then fail) meanwhile
    try:
        a.chat(bob, "Are you there?", "r1")
        got = await b.next_message(timeout=15)
        assert (got["from"].bare, got["id"], got["body"]) == (alice, "r1", "Are you there?")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    await eventually_async(lambda: trace(a, "r1"), released_at_b.__eq__, 20, "r1 recorded at B, reported to A")
    assert fallbacks(server_b.setup.log_file.read_text()) == fell_back  # Courier B released it itself
    await b.nothing_before_marker(a, "After r1", timeout=15)  # and once

"""Either Courier SIGKILLed in the middle of a cross-server burst, then restarted:
every message delivered exactly once; Courier B down: B's Prosody delivers normally."""

from __future__ import annotations

import time

import pytest

from tests.conformance.helpers import eventually

TOTAL = 1000


async def _burst_through_a_kill(federation, users, connect, sender_domain: str, killed_domain: str) -> None:
    sender, bob = users(f"sender@{sender_domain}", "bob@b.example")
    courier = federation[killed_domain].courier
    s = await connect(sender)
    b = await connect(bob)
    for i in range(TOTAL):
        s.chat(bob, f"burst {i}", f"b{i}", origin_id=False)
    try:
        await eventually(lambda: b.received.qsize() >= 150, timeout=30, what="150 delivered before the kill")
        courier.kill()
        killed_at = b.received.qsize()
    finally:
        await courier.start_async()
    ids: list[str] = []
    deadline = time.monotonic() + 90
    while len(ids) < TOTAL and time.monotonic() < deadline:
        try:
            ids.append((await b.next_message(15))["id"])
        except TimeoutError:
            break
    s.chat(bob, "the end", "end")  # a later positive marker: no duplicate came before it
    while (last := await b.next_message(20))["id"] != "end":
        ids.append(last["id"])
    assert killed_at < TOTAL, "the kill came too late to test anything"
    assert len(set(ids)) == TOTAL, f"{TOTAL - len(set(ids))} messages lost"
    assert len(ids) == TOTAL, f"{len(ids) - len(set(ids))} duplicates"


@pytest.mark.parametrize(
    "sender_domain, killed_domain",
    [("c.example", "b.example"), ("a.example", "b.example"), ("a.example", "a.example")],
    ids=["stock-sender-kill-B", "courier-pair-kill-B", "courier-pair-kill-A"],
)
async def test_sigkill_mid_cross_server_burst_delivers_every_message_once(
    federation, users, connect, sender_domain, killed_domain
) -> None:
    await _burst_through_a_kill(federation, users, connect, sender_domain, killed_domain)


async def test_courier_b_down_remote_messages_are_delivered_normally(federation, users, connect) -> None:
    alice, bob, dave = users("alice@a.example", "bob@b.example", "dave@b.example")
    server_b = federation["b.example"]
    server_b.courier.stop()
    try:
        a = await connect(alice)
        b = await connect(bob)
        a.chat(bob, "Courier B is away", "w1")
        got = await b.next_message(timeout=15)
        assert (got["body"], got["from"].bare) == ("Courier B is away", alice)
        a.chat(dave, "Keep this for Dave", "w2")  # offline: Prosody B's own offline storage
        d = await connect(dave)
        assert (await d.next_message(timeout=15))["body"] == "Keep this for Dave"
        assert f"is not connected: delivering {alice}" in server_b.setup.log_file.read_text()
    finally:
        await server_b.courier.start_async()

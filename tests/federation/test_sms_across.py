"""Scenario 3 of issue 13, SMS fallback: a stock remote sender, an offline local recipient
with a verified number → exactly one SMS through a real Kannel; nothing when they log in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.helpers import eventually, states
from tests.conformance.kannel import kannel, network, new_number, sms_courier, verified, with_sms
from tests.conformance.xmpp import CourierProcess

__all__ = ["kannel", "network"]  # session fixtures of tests/conformance/test_sms.py, used here too


@pytest.fixture
def sms_courier_b(federation, kannel, network, tmp_path: Path) -> Iterator[CourierProcess]:
    """b.example's Courier with SMS on (the session's Courier B steps aside for this test)."""
    server = federation["b.example"]
    server.courier.stop()
    process = sms_courier(server.setup, kannel, tmp_path / "courier-sms")
    try:
        process.wait_log("SMS fallback on")
        yield process
    finally:
        process.stop()
        server.courier.start()


async def test_remote_message_to_an_offline_local_user_becomes_one_sms(sms_courier_b, users, connect, network) -> None:
    bob, carol = users("bob@b.example", "carol@c.example")
    number = new_number()
    b = await with_sms(connect, bob)
    await verified(b, "courier.b.example", network, number)
    await b.stop()

    c = await connect(carol)
    c.chat(bob, "Meet me at the fountain", "f1")
    sms = await network.wait_for(lambda s: s.recipient == number and "fountain" in s.text)
    assert sms.text == f"{carol}: Meet me at the fountain"
    await eventually(lambda: states(sms_courier_b, carol).get("f1") in ("sms", "sms-delivered"), 10, "sms state")

    b = await connect(bob, "laptop")  # Bob comes online: nothing is delivered a second time
    c.chat(bob, "After the SMS", "f2")  # a later positive marker
    assert (await b.next_message(timeout=15))["body"] == "After the SMS"
    assert [m["body"] for m in b.all_received] == ["After the SMS"]
    assert len(network.to(number)) == 2  # the code and the one message

"""Per-user rate limits on requests to Courier (bot, ad-hoc, IQs), against a real Prosody."""

from __future__ import annotations

import asyncio

from slixmpp.exceptions import IqError

from .helpers import eventually
from .xmpp import CourierProcess


async def test_a_flooding_user_gets_wait_errors_and_others_are_served(stack, users, connect, tmp_path) -> None:
    courier = await CourierProcess(
        stack, tmp_path / "limited", COURIER_REQUESTS_BURST="5", COURIER_REQUESTS_PER_SECOND="1"
    ).start_async()
    try:
        mallory, alice, bob = users("mallory", "alice", "bob")
        m = await connect(mallory)
        a = await connect(alice)
        b = await connect(bob)
        component = stack.component
        for _ in range(40):
            m.chat(component, "help", origin_id=False)
        await eventually(lambda: len(m.all_received) >= 40, timeout=15, what="an answer to every bot command")
        answers = [g for g in m.all_received if g["type"] != "error"]
        errors = [g for g in m.all_received if g["type"] == "error"]
        assert 5 <= len(answers) < 40 and len(answers) + len(errors) == 40
        error = errors[0]["error"]
        assert (error["type"], error["condition"]) == ("wait", "resource-constraint")
        assert "Too many requests" in error["text"] and "Wait a moment" in error["text"]

        # an IQ over the limit: the same error, never a hang
        try:
            await m.plugin["xep_0030"].get_info(jid=component, timeout=5)
        except IqError as exc:
            assert exc.iq["error"]["condition"] == "resource-constraint"
        else:
            raise AssertionError("mallory's bucket should still be empty")

        # other users are not limited by mallory's flood: their commands and messages go through
        info = await a.plugin["xep_0030"].get_info(jid=component, timeout=5)
        assert "http://jabber.org/protocol/commands" in info["disco_info"]["features"]
        a.chat(bob, "unhindered", "after-the-flood")
        got = await b.next_message()
        assert got["body"] == "unhindered"

        # mallory's bucket refills: one second later a command is answered again
        await asyncio.sleep(1.2)  # the refill rate under test (1 a second), not a wait for silence
        m.all_received.clear()
        m.chat(component, "help", origin_id=False)
        await eventually(lambda: m.all_received, what="the answer")
        assert m.all_received[0]["type"] != "error"
    finally:
        courier.stop()

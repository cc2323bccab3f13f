"""Federation smoke test: two real Prosody servers over s2s (dialback, fixed peers), each with a Courier."""

from __future__ import annotations


async def test_message_crosses_from_a_to_b_and_the_answer_comes_back(users, connect) -> None:
    alice, bob = users("alice@a.example", "bob@b.example")
    a = await connect(alice)
    b = await connect(bob)
    a.chat(bob, "Hello across servers", "x1")
    got = await b.next_message(timeout=15)  # the first s2s stream (dialback) is set up on demand
    assert got["body"] == "Hello across servers"
    assert got["from"].bare == alice
    b.chat(alice, "Hello back", "x2")
    back = await a.next_message(timeout=15)
    assert back["body"] == "Hello back"
    assert back["from"].bare == bob

"""Messages tracked at a peer Courier (migration 0011) and hop reports in the outbox, on either
engine: written in the group commit, read back after a reopen (what a restart sees)."""

from __future__ import annotations

from pathlib import Path

from component.delivery.states import Hop, State
from component.store import Store
from tests.store.rows import T0, flush, row


async def test_a_peer_track_and_its_hold_survive_a_reopen(db: Path) -> None:  # noqa: F811
    s = await Store.open(db)
    try:
        s.queue_message(row(1, state=State.RELEASED, hid=None))
        s.queue_message(row(2, state=State.RELEASED))
        s.queue_peer_track("token-1", 1, None)  # a composed message: its own token
        await flush(s)
        s.queue_peer_track("token-1", 1, T0 + 5)  # the peer said it holds it
        s.queue_peer_track("hid-0002", 2, T0 + 6)
        s.queue_peer_track("hid-0002", 2, None)  # ... and later that it left
        await flush(s)
    finally:
        await s.close()
    s = await Store.open(db)
    try:
        assert await s.peers.seq_of("token-1") == 1
        assert await s.peers.token_of(1) == "token-1"
        assert await s.peers.seq_of("nothing") is None
        held = await s.peers.held()
        assert [(token, m.seq, m.state) for token, m in held] == [("token-1", 1, State.RELEASED)]
        found = await s.peers.by_tokens(["token-1", "hid-0002", "nothing"])  # a composed one, a hand-off
        assert {token: m.seq for token, m in found.items()} == {"token-1": 1, "hid-0002": 2}
    finally:
        await s.close()


async def test_recorded_hops_of_several_messages(store: Store) -> None:  # noqa: F811
    store.queue_message(row(1, state=State.RELEASED))
    store.queue_hop(1, Hop("held", State.RELEASED, T0 + 0.25, "b.example", "recipient-offline"))
    store.queue_message(row(2, state=State.RELEASED))
    await flush(store)
    assert await store.peers.recorded([1, 2, 3]) == {(1, "held", T0 + 0.25, "b.example")}


async def test_hop_reports_are_not_releases(store: Store) -> None:  # noqa: F811
    store.queue_outbox("r-1", "hop", "courier.a.example", "<hop/>", T0)
    store.queue_outbox("h-1", "release", "juliet@shakespeare.lit", "<message/>", T0 + 1)
    await flush(store)
    assert [r.token for r in await store.outbox.unconfirmed()] == ["h-1"]
    assert [r.token for r in await store.outbox.unacknowledged_hops(T0 + 10)] == ["r-1"]
    assert await store.outbox.unacknowledged_hops(T0) == []  # queued at T0: not before it
    store.queue_routed(["r-1"])  # the peer's <acked/>
    await flush(store)
    assert await store.outbox.unacknowledged_hops(T0 + 10) == []

"""Retention (issue 12 #6): closed messages and their hops go after the retention; held ones never."""

from __future__ import annotations

from component.delivery.states import Hop, State
from component.store import Store
from tests.store.rows import T0, row


async def test_closed_messages_older_than_the_retention_go_with_their_hops_held_ones_stay(store_target) -> None:
    store = await Store.open(store_target)
    try:
        states = [State.RELEASED, State.READ, State.RECALLED, State.FAILED, State.HELD, State.ACCEPTED, State.SMS]
        for seq, state in enumerate(states, 1):
            m = row(seq, state=state, created=T0)
            store.queue_message(m)
            store.queue_hop(seq, Hop("accepted", State.ACCEPTED, T0, "shakespeare.lit", ""))
        store.queue_message(row(99, state=State.RELEASED, created=T0 + 40 * 86400))  # recent: kept
        store.queue_absorbed("absorbed-1", 3, "recalled", T0)
        await store.flush()
        n = await store.retention.purge(T0 + 31 * 86400, limit=2)  # chunks of 2: every chunk runs
        assert n == 4
        assert (await store.message(1)) is None and await store.hops(1) == []
        assert (await store.message(3)) is None
        for seq in (5, 6, 7, 99):  # held, accepted, waiting for an SMS report, recent
            assert (await store.message(seq)) is not None
        assert len(await store.hops(5)) == 1
        assert sorted((await store.recent_handoffs(0)).values()) == [5, 6, 7, 99]
    finally:
        await store.close()

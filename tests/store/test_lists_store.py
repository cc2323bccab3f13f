"""``Store.lists`` on a throw-away database: lists, members, expiry, fan-outs and their copies."""

from __future__ import annotations

import asyncio

import pytest

from component.delivery.states import State
from component.store import MessageRow, Store
from component.store.lists import FanoutRow, LimitReached, NameTaken

T0 = 1_795_000_000.0  # 2026-11-19, a pinned clock
JULIET = "juliet@shakespeare.lit"
ROMEO = "romeo@montague.lit"
NURSE = "nurse@shakespeare.lit"
TYBALT = "tybalt@shakespeare.lit"
BIG = 1000


async def create(store: Store, name: str, key: str, members: list[str], **kw: object) -> object:
    args: dict = {"expires": None, "now": T0, "max_lists": BIG, "max_members": BIG} | kw
    return await store.lists.create(JULIET, name, key, members, **args)


def copy_message(seq: int, recipient: str, msg_id: str, state: State, hold_reason: str = "") -> MessageRow:
    """A member's copy as the pipeline stores it: originated (no hand-off id), from the owner."""
    stanza = f"<message xmlns='jabber:client' to='{recipient}' id='{msg_id}'><body>Hark</body></message>"
    return MessageRow(seq, None, JULIET, "courier", recipient, recipient, msg_id, msg_id, "message", "Hark", stanza,
                      state, hold_reason, None, T0, T0)  # fmt: skip


def fanout(fid: str, created: float = T0, owner: str = JULIET, **kw: object) -> FanoutRow:
    values: dict = {"list_name": "Capulets", "source_id": "", "source_origin": "", "body": "Hark", "recalled": None}
    values |= kw
    return FanoutRow(owner, fid, values["list_name"], values["source_id"], values["source_origin"], values["body"],
                     created, values["recalled"])  # fmt: skip


async def test_create_get_and_members_in_order(store: Store) -> None:
    made = await create(store, "Capulets", "capulets", [ROMEO, NURSE, ROMEO, TYBALT])
    got = await store.lists.get(JULIET, "capulets", T0 + 1)
    assert got == made
    assert got is not None and got.members == [ROMEO, NURSE, TYBALT]  # duplicates dropped, order kept
    assert (got.name, got.key, got.created, got.expires) == ("Capulets", "capulets", T0, None)
    assert await store.lists.get(ROMEO, "capulets", T0) is None  # lists are per owner


async def test_names_are_unique_per_owner_only(store: Store) -> None:
    await create(store, "Capulets", "capulets", [ROMEO])
    with pytest.raises(NameTaken):
        await create(store, "CAPULETS", "capulets", [NURSE])
    other = await store.lists.create(ROMEO, "Capulets", "capulets", [NURSE], expires=None, now=T0,
                                     max_lists=BIG, max_members=BIG)  # fmt: skip
    assert other.owner == ROMEO


async def test_limits(store: Store) -> None:
    with pytest.raises(LimitReached):
        await create(store, "Big", "big", [ROMEO, NURSE, TYBALT], max_members=2)
    await create(store, "One", "one", [ROMEO], max_lists=1)
    with pytest.raises(LimitReached):
        await create(store, "Two", "two", [ROMEO], max_lists=1)
    with pytest.raises(LimitReached):
        await store.lists.add_members(JULIET, "one", [NURSE, TYBALT], now=T0, max_members=2)
    assert (await store.lists.get(JULIET, "one", T0)).members == [ROMEO]  # type: ignore[union-attr]


async def test_add_remove_rename_delete(store: Store) -> None:
    await create(store, "Capulets", "capulets", [ROMEO])
    result = await store.lists.add_members(JULIET, "capulets", [ROMEO, NURSE], now=T0 + 1, max_members=BIG)
    assert result is not None
    listed, added = result
    assert (listed.members, added) == ([ROMEO, NURSE], [NURSE])
    result = await store.lists.remove_members(JULIET, "capulets", [ROMEO, TYBALT], T0 + 2)
    assert result is not None and result[0].members == [NURSE] and result[1] == [ROMEO]
    await create(store, "Montagues", "montagues", [])
    with pytest.raises(NameTaken):
        await store.lists.rename(JULIET, "capulets", "Montagues", "montagues", T0)
    renamed = await store.lists.rename(JULIET, "capulets", "House Capulet", "house\\20capulet", T0)
    assert renamed is not None and (renamed.name, renamed.members) == ("House Capulet", [NURSE])
    assert await store.lists.get(JULIET, "capulets", T0) is None
    assert await store.lists.rename(JULIET, "nothing", "x", "x", T0) is None
    assert [r.name for r in await store.lists.of(JULIET, T0)] == ["House Capulet", "Montagues"]
    assert await store.lists.delete(JULIET, "house\\20capulet", T0)
    assert not await store.lists.delete(JULIET, "house\\20capulet", T0)
    assert await store.lists.add_members(JULIET, "house\\20capulet", [ROMEO], now=T0, max_members=BIG) is None


async def test_temporary_lists_expire(store: Store) -> None:
    await create(store, "Tonight", "tonight", [ROMEO], expires=T0 + 60)
    await create(store, "Always", "always", [NURSE])
    assert (await store.lists.get(JULIET, "tonight", T0 + 59)) is not None
    assert (await store.lists.get(JULIET, "tonight", T0 + 60)) is None  # gone at its instant
    assert [r.key for r in await store.lists.of(JULIET, T0 + 61)] == ["always"]
    assert await store.lists.names(T0 + 61) == [(JULIET, "always", "Always", None)]
    # its name is free again once it expired
    await create(store, "Tonight", "tonight", [TYBALT], now=T0 + 61)
    assert await store.lists.purge_expired(T0 + 61) == 0
    await store.lists.set_expires(JULIET, "always", T0 + 100, T0 + 61)
    assert await store.lists.purge_expired(T0 + 100) == 1
    made = await store.lists.set_expires(JULIET, "tonight", None, T0 + 101)
    assert made is not None and made.expires is None


async def test_fanouts_copies_and_their_message_states(store: Store) -> None:
    f = fanout("3f2a9c1e", source_id="m1", source_origin="o1")
    copies = [(ROMEO, "c1"), (NURSE, "c2"), (TYBALT, "c3")]
    assert await store.lists.add_fanout(f, copies, since=T0 - 60, max_since=10)
    assert not await store.lists.add_fanout(f, copies, since=T0 - 60, max_since=10)  # id taken
    # two copies became tracked messages; the third is not sent yet
    store.queue_message(copy_message(1, ROMEO, "c1", State.RELEASED))
    store.queue_message(copy_message(2, NURSE, "c2", State.HELD, "recipient-offline"))
    await asyncio.wait_for(store.flush(), 10)
    await store.lists.set_copy_seqs(JULIET, f.id, [(ROMEO, 1), (NURSE, 2)])
    got = await store.lists.copies(JULIET, f.id)
    assert [(c.member, c.msg_id, c.message_seq, c.state, c.hold_reason) for c in got] == [
        (ROMEO, "c1", 1, "released", ""),
        (NURSE, "c2", 2, "held", "recipient-offline"),
        (TYBALT, "c3", None, None, ""),
    ]
    unsent = await store.lists.unsent_copies()
    assert [(fo.id, [c.member for c in cs]) for fo, cs in unsent] == [(f.id, [TYBALT])]
    await store.lists.set_retraction(JULIET, f.id, ROMEO, "r1")
    assert (await store.lists.copies(JULIET, f.id))[0].retraction_id == "r1"
    assert await store.lists.fanout(JULIET, f.id) == f
    assert await store.lists.fanout(ROMEO, f.id) is None  # per owner
    assert (await store.lists.fanout_by_source(JULIET, "m1")) == f
    assert (await store.lists.fanout_by_source(JULIET, "o1")) == f
    await store.lists.mark_recalled(JULIET, f.id, T0 + 5)
    await store.lists.mark_recalled(JULIET, f.id, T0 + 9)  # the first recall time stays
    recalled = await store.lists.fanout(JULIET, f.id)
    assert recalled is not None and recalled.recalled == T0 + 5
    assert await store.lists.unsent_copies() == []  # a recalled fan-out is never completed


async def test_fanout_rate_limit_and_recent(store: Store) -> None:
    for i in range(3):
        assert await store.lists.add_fanout(fanout(f"f{i}", T0 + i), [(ROMEO, f"c{i}")], since=T0 - 60, max_since=3)
    with pytest.raises(LimitReached):
        await store.lists.add_fanout(fanout("f3", T0 + 3), [(ROMEO, "c3")], since=T0 + 3 - 60, max_since=3)
    # a minute later there is room again
    assert await store.lists.add_fanout(fanout("f4", T0 + 61), [(ROMEO, "c4")], since=T0 + 1, max_since=3)
    await store.lists.add_fanout(fanout("g0", T0, owner=ROMEO), [(JULIET, "d0")], since=T0 - 60, max_since=3)
    assert [f.id for f in await store.lists.recent_fanouts(JULIET, 2)] == ["f4", "f2"]
    latest = await store.lists.latest_fanouts(2)
    assert [(f.owner, f.id) for f in latest] == [(JULIET, "f4"), (JULIET, "f2"), (ROMEO, "g0")]


async def test_deleting_a_list_keeps_its_fanouts(store: Store) -> None:
    await create(store, "Capulets", "capulets", [ROMEO])
    await store.lists.add_fanout(fanout("f1"), [(ROMEO, "c1")], since=T0 - 60, max_since=10)
    assert await store.lists.delete(JULIET, "capulets", T0)
    assert (await store.lists.fanout(JULIET, "f1")) is not None
    assert [c.member for c in await store.lists.copies(JULIET, "f1")] == [ROMEO]

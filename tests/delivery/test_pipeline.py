"""The pipeline's decisions with a real store and a recording transport (no network).

End-to-end behaviour is covered by tests/conformance; these pin the paths that
are hard to provoke there: re-sent hand-offs, fallback notices, ordering.
"""

from __future__ import annotations

import asyncio
import time
from xml.etree import ElementTree as ET

import pytest

from component.delivery.inbound import Inbound
from component.delivery.pipeline import Handoff, Pipeline
from component.namespaces import TRACKED_TAG
from component.store import Store
from tests import pgserver

JULIET = "juliet@shakespeare.lit"
ROMEO = "romeo@shakespeare.lit"


class Recorder:
    def __init__(self) -> None:
        self.acks: list[str] = []
        self.releases: list[tuple[str, str, str | None]] = []
        self.originated: list[tuple[str, str, str | None]] = []
        self.reports: list[object] = []
        self.own: list[tuple[str, str]] = []  # (token, body) of messages from Courier's own JID

    def send_own(self, message: ET.Element, token: str) -> None:
        body = message.find("{jabber:component:accept}body")
        self.own.append((token, body.text if body is not None and body.text else ""))

    def report(self, report: object) -> None:
        self.reports.append(report)

    def originate(self, inner: ET.Element, sender_bare: str, token: str | None = None) -> None:
        body = inner.find("{jabber:client}body")
        self.originated.append((inner.get("to", ""), sender_bare, body.text if body is not None else None))

    def ack(self, hid: str) -> None:
        self.acks.append(hid)

    def release(self, hid: str, inner: ET.Element, sender_bare: str) -> None:
        body = inner.find("{jabber:client}body")
        self.releases.append((hid, sender_bare, body.text if body is not None else None))

    def release_copy(self, hid: str, to: str = "", now: bool = False) -> None:
        self.releases.append((hid, "by reference", None))


def message(msg_id: str, body: str | None = "hi", to: str = ROMEO, **children: str) -> ET.Element:
    m = ET.Element("{jabber:client}message", {"from": f"{JULIET}/balcony", "to": to, "type": "chat", "id": msg_id})
    if body is not None:
        ET.SubElement(m, "{jabber:client}body").text = body
    for tag, ref in children.items():
        ns = {"replace": "urn:xmpp:message-correct:0", "retract": "urn:xmpp:message-retract:1"}[tag]
        ET.SubElement(m, f"{{{ns}}}{tag}", id=ref)
    return m


@pytest.fixture
async def pipeline(tmp_path):
    store = await Store.open(pgserver.store_at(tmp_path / "c.sqlite"))
    recorder = Recorder()
    p = Pipeline(store, recorder, "shakespeare.lit")
    await p.start()
    p.recorder = recorder  # type: ignore[attr-defined]
    yield p
    p.stop()
    await store.close()


async def test_nothing_is_acknowledged_or_released_before_the_commit(pipeline) -> None:
    pipeline.handoff(Handoff("h1", "offline", message("m1", "one"), time.time()))
    pipeline.handoff(Handoff("h2", "offline", message("m2", "two"), time.time()))
    assert pipeline.recorder.acks == [] and pipeline.recorder.releases == []
    await pipeline.drain()
    assert pipeline.recorder.acks == ["h1", "h2"]
    # Romeo came online (the server says so in the next hand-off): everything goes, in order
    pipeline.handoff(Handoff("h3", "online", message("m3", "three"), time.time()))
    assert pipeline.recorder.releases == []
    await pipeline.drain()
    assert [r[2] for r in pipeline.recorder.releases] == ["one", "two", "three"]


async def test_a_resent_handoff_is_answered_again_and_never_stored_twice(pipeline) -> None:
    pipeline.handoff(Handoff("h1", "offline", message("m1"), time.time()))
    await pipeline.drain()
    pipeline.handoff(Handoff("h1", "offline", message("m1"), time.time()))
    await pipeline.drain()
    assert pipeline.recorder.acks == ["h1", "h1"]
    assert len(await pipeline.store.messages_between(JULIET, ROMEO)) == 1

    pipeline.handoff(Handoff("h2", "remote", message("m2", to="benvolio@verona.lit"), time.time()))
    await pipeline.drain()
    pipeline.handoff(Handoff("h2", "remote", message("m2", to="benvolio@verona.lit"), time.time()))
    await pipeline.drain()
    # the release may have been lost with the connection: it is sent again (the server drops duplicates)
    assert [r[0] for r in pipeline.recorder.releases] == ["h2", "h2"]


async def test_fallback_notice_means_never_release(pipeline) -> None:
    pipeline.handoff(Handoff("h1", "offline", message("m1"), time.time()))
    await pipeline.drain()
    pipeline.fallback(["h1", "unknown-hid"])
    pipeline.presence(f"{ROMEO}/orchard", True)
    await pipeline.drain()
    assert pipeline.recorder.releases == []
    (m,) = await pipeline.store.messages_between(JULIET, ROMEO)
    assert m.state == "released"
    assert (await pipeline.store.hops(m.seq))[-1].note.startswith("delivered by the server")


async def test_edit_then_recall_of_held_messages_and_flush_in_order(pipeline) -> None:
    now = time.time()
    pipeline.handoff(Handoff("h1", "offline", message("m1", "first"), now))
    pipeline.handoff(Handoff("h2", "offline", message("m2", "second"), now))
    pipeline.handoff(Handoff("h3", "offline", message("m3", "third"), now))
    pipeline.handoff(Handoff("h4", "offline", message("m1-fix", "first, fixed", replace="m1"), now))
    pipeline.handoff(Handoff("h5", "offline", message("m2-del", None, retract="m2"), now))
    await pipeline.drain()
    assert pipeline.recorder.acks == ["h1", "h2", "h3", "h4", "h5"]
    pipeline.presence(f"{ROMEO}/orchard", True)
    await pipeline.drain()
    assert pipeline.recorder.releases == [
        ("h1", JULIET, "first, fixed"),
        ("h3", JULIET, "third"),
    ]
    # a late correction of the recalled message is dropped, not delivered
    pipeline.handoff(Handoff("h6", "online", message("m2-fix", "never", replace="m2"), time.time()))
    await pipeline.drain()
    assert [r[0] for r in pipeline.recorder.releases] == ["h1", "h3"]
    assert pipeline.recorder.acks[-1] == "h6"


async def test_held_messages_survive_a_restart(tmp_path) -> None:
    store = await Store.open(pgserver.store_at(tmp_path / "c.sqlite"))
    first = Pipeline(store, Recorder(), "shakespeare.lit")
    await first.start()
    first.handoff(Handoff("h1", "offline", message("m1", "kept"), time.time()))
    await first.drain()
    first.stop()
    await store.close()

    store = await Store.open(pgserver.store_at(tmp_path / "c.sqlite"))
    recorder = Recorder()
    second = Pipeline(store, recorder, "shakespeare.lit")
    await second.start()
    second.handoff(Handoff("h1", "offline", message("m1", "kept"), time.time()))  # re-sent: known
    await second.drain()
    second.presence(f"{ROMEO}/orchard", True)
    await second.drain()
    assert recorder.acks == ["h1"]
    assert recorder.releases == [("h1", JULIET, "kept")]
    second.stop()
    await store.close()


async def test_the_undo_window_ends_on_time_after_a_restart(tmp_path) -> None:
    """A message in its undo-send window when Courier stops: its end comes back from the store
    and the scheduler releases it then, not before (the recipient is online throughout)."""
    store = await Store.open(pgserver.store_at(tmp_path / "c.sqlite"))
    before = Recorder()
    first = Pipeline(store, before, "shakespeare.lit")
    await first.start()
    await first.set_undo_window(JULIET, 1.5)
    stamp = time.time()
    first.presence(f"{ROMEO}/orchard", True)
    first.handoff(Handoff("h1", "online", message("m1", "take it back?"), stamp))
    await first.drain()
    assert before.releases == [] and before.acks == ["h1"]  # held for the window
    (held,) = first.open.values()
    assert held.release_at == stamp + 1.5
    first.stop()
    await store.close()

    store = await Store.open(pgserver.store_at(tmp_path / "c.sqlite"))
    recorder = Recorder()
    second = Pipeline(store, recorder, "shakespeare.lit")
    second.presence(f"{ROMEO}/orchard", True)
    await second.start()
    assert second.scheduler.due(("release", held.seq)) == stamp + 1.5  # the timer, from the store
    released = asyncio.Event()
    second.hop_observers.append(lambda m, hop: released.set() if hop.label == "released" else None)
    await asyncio.wait_for(released.wait(), 10)
    assert time.time() >= stamp + 1.5
    assert recorder.releases == [("h1", JULIET, "take it back?")]
    second.stop()
    await store.close()


async def test_originated_messages_are_tracked_held_and_sent_without_a_handoff(pipeline) -> None:
    seen: list[tuple[str, str]] = []
    came: list[str] = []
    devices: list[str] = []
    pipeline.message_observers.append(lambda s, r: seen.append((s, r)))
    pipeline.available_observers.append(came.append)
    pipeline.resource_observers.append(devices.append)
    held = await pipeline.originate(JULIET, ROMEO, "From a list", msg_id="o-1")
    assert (held.state, held.hold_reason, held.hid) == ("held", "recipient-offline", None)
    assert pipeline.recorder.originated == [] and pipeline.recorder.acks == []
    pipeline.presence(f"{ROMEO}/orchard", True)
    pipeline.presence(f"{ROMEO}/garden", True)  # a second device: not "came online" again
    await pipeline.drain()
    assert pipeline.recorder.originated == [(ROMEO, JULIET, "From a list")]
    assert came == [ROMEO]
    pipeline.presence(f"{ROMEO}/garden", True)  # a presence update of a known device
    assert devices == [f"{ROMEO}/orchard", f"{ROMEO}/garden"]
    sent = await pipeline.originate(JULIET, ROMEO, "Straight away")
    assert sent.state == "released"
    await pipeline.drain()
    assert pipeline.recorder.originated[-1] == (ROMEO, JULIET, "Straight away")
    assert [h.label for h in await pipeline.store.hops(sent.seq)] == ["accepted", "released"]
    assert seen == []  # observers hear of users' own messages, not Courier's
    pipeline.handoff(Handoff("h9", "online", message("m9", "hello"), time.time()))
    assert seen == [(JULIET, ROMEO)]


async def test_a_correction_after_a_held_message_was_released_is_passed_on(pipeline) -> None:
    pipeline.handoff(Handoff("h1", "offline", message("m1", "draft"), time.time()))
    await pipeline.drain()
    pipeline.presence(f"{ROMEO}/orchard", True)
    await pipeline.drain()
    pipeline.handoff(Handoff("h2", "online", message("m1-fix", "final", replace="m1"), time.time()))
    pipeline.handoff(Handoff("h3", "online", message("m1-gone", None, retract="m1"), time.time()))
    await pipeline.drain()
    assert [(r[0], r[2]) for r in pipeline.recorder.releases] == [("h1", "draft"), ("h2", "final"), ("h3", None)]
    (original,) = [m for m in await pipeline.store.messages_between(JULIET, ROMEO) if m.msg_id == "m1"]
    assert [h.label for h in await pipeline.store.hops(original.seq)] == [
        "accepted", "held", "released", "edited", "retracted",
    ]  # fmt: skip


async def test_refs_of_recalled_messages_are_bounded_in_count_and_time(pipeline, monkeypatch) -> None:
    """Issue 12 #6: by_ref entries of recalled messages used to stay for ever."""
    from component.delivery import pipeline as module

    monkeypatch.setattr(module, "REF_MAX", 3)
    now = time.time()
    for i in range(6):
        pipeline.handoff(Handoff(f"h{i}", "offline", message(f"m{i}", f"text {i}"), now))
        pipeline.handoff(Handoff(f"r{i}", "offline", message(f"m{i}-del", None, retract=f"m{i}"), now))
    await pipeline.drain()
    # one more hand-off prunes: only the newest REF_MAX recalled messages keep their refs
    pipeline.handoff(Handoff("late", "offline", message("m5-fix", "never", replace="m5"), time.time()))
    await pipeline.drain()
    assert len(pipeline.closed_refs) == 3 and pipeline.by_ref == {}
    assert [i for i in range(6) if pipeline.ref_of(JULIET, ROMEO, f"m{i}") is not None] == [3, 4, 5]
    # within the bound a late correction of a recalled message is still absorbed (never delivered)
    pipeline.presence(f"{ROMEO}/orchard", True)
    await pipeline.drain()
    assert pipeline.recorder.releases == []
    # and after REF_MEMORY every ref of a closed message is forgotten
    pipeline._forget_closed_refs(time.time() + module.REF_MEMORY + 1)
    assert not pipeline.closed_refs and all(pipeline.ref_of(JULIET, ROMEO, f"m{i}") is None for i in range(6))


async def test_a_reused_id_is_the_newest_messages(pipeline) -> None:
    """A recalled message's id used again by a later one: a correction with it is the later one's."""
    now = time.time()
    pipeline.handoff(Handoff("h1", "offline", message("m1", "first"), now))
    pipeline.handoff(Handoff("r1", "offline", message("m1-del", None, retract="m1"), now))  # recalled
    pipeline.handoff(Handoff("h2", "offline", message("m1", "second"), now))  # the same id, held
    await pipeline.drain()
    pipeline.presence(f"{ROMEO}/orchard", True)
    await pipeline.drain()
    pipeline.handoff(Handoff("h3", "online", message("m1-fix", "second!", replace="m1"), time.time()))
    await pipeline.drain()
    assert [(r[0], r[2]) for r in pipeline.recorder.releases] == [("h2", "second"), ("h3", "second!")]


async def test_refs_of_released_messages_are_not_kept(pipeline) -> None:
    pipeline.handoff(Handoff("h1", "offline", message("m1", "one"), time.time()))
    await pipeline.drain()
    pipeline.presence(f"{ROMEO}/orchard", True)
    await pipeline.drain()
    assert [r[2] for r in pipeline.recorder.releases] == ["one"]
    assert pipeline.by_ref == {} and not pipeline.closed_refs


async def test_known_handoff_ids_are_bounded_in_count(pipeline, monkeypatch) -> None:
    """Issue 12 #6: known_hids was kept 900 s whatever the rate (~1.2 M entries at full rate)."""
    from component.delivery import pipeline as module

    monkeypatch.setattr(module, "HID_MAX", 5)
    now = time.time()
    for i in range(20):
        pipeline.handoff(Handoff(f"h{i}", "offline", message(f"m{i}"), now))
    await pipeline.drain()
    assert len(pipeline.known_hids) <= 6  # pruned before each hand-off, which then adds one
    # a re-sent recent hand-off is still recognised: answered again, never stored twice
    pipeline.handoff(Handoff("h19", "offline", message("m19"), now))
    await pipeline.drain()
    assert pipeline.recorder.acks.count("h19") == 2
    assert len(await pipeline.store.messages_between(JULIET, ROMEO)) == 20


async def test_released_at_once_and_unchanged_goes_by_reference_others_in_full(pipeline) -> None:
    """Release by reference (courier-route 0.6): only a message released at once, exactly as the
    server kept it; held ones, and ones the receipt policy changed, are re-injected in full."""
    now = time.time()
    pipeline.handoff(Handoff("h1", "offline", message("m1", "held"), now, copy_kept=True))
    await pipeline.drain()
    assert pipeline.recorder.acks == ["h1"]
    pipeline.handoff(Handoff("h2", "online", message("m2", "behind"), now, copy_kept=True))
    await pipeline.drain()
    pipeline.handoff(Handoff("h3", "online", message("m3", "live"), now, copy_kept=True))
    pipeline.handoff(Handoff("h4", "online", message("m4", "old server"), now))
    await pipeline.drain()
    assert pipeline.recorder.releases == [
        ("h1", JULIET, "held"),  # it waited: the server's copy is not the one to release
        ("h2", JULIET, "behind"),  # queued behind h1 for a moment (order): released by the flush
        ("h3", "by reference", None),
        ("h4", JULIET, "old server"),  # no copy='kept': in full
    ]
    # kept in full in the outbox until <routed/> (a server that lost its copy gets it re-sent)
    assert {r.token for r in await pipeline.store.outbox.unconfirmed()} == {"h1", "h2", "h3", "h4"}

    await pipeline.set_policy(ROMEO, "", "refuse")
    asking = message("m5", "asks for a receipt")
    ET.SubElement(asking, "{urn:xmpp:receipts}request")
    pipeline.handoff(Handoff("h5", "online", asking, now, copy_kept=True))
    pipeline.handoff(Handoff("h6", "online", message("m6", "asks nothing"), now, copy_kept=True))
    await pipeline.drain()
    assert pipeline.recorder.releases[4:] == [("h5", JULIET, "asks for a receipt"), ("h6", "by reference", None)]


async def test_toward_another_server_by_reference_only_where_the_server_adds_tracked(pipeline) -> None:
    """courier-route 0.8: a message for a remote recipient goes by reference only from a hand-off
    marked adds='tracked' (the server adds courier-federation's <tracked/> to its copy)."""
    now, remote = time.time(), "mercutio@verona.lit"
    pipeline.handoff(Handoff("h1", "remote", message("m1", "old server", to=remote), now, copy_kept=True))
    pipeline.handoff(Handoff("h2", "remote", message("m2", "adds", to=remote), now, True, adds_tracked=True))
    await pipeline.drain()
    assert pipeline.recorder.releases == [("h1", JULIET, "old server"), ("h2", "by reference", None)]


async def test_a_long_held_queue_is_flushed_in_chunks_paced_by_the_server(pipeline) -> None:
    """Issue 14, held traffic: held messages go out FLUSH_CHUNK at a time, each chunk after the
    server has routed the previous one (pace), so another user's live message is released
    between chunks instead of behind all of them; a new message for the same recipient meanwhile
    waits behind the held ones."""
    from component.delivery import core

    chunk = core.FLUSH_CHUNK
    total = 2 * chunk + chunk // 2
    now = time.time()
    for i in range(total):
        pipeline.handoff(Handoff(f"h{i}", "offline", message(f"m{i}", f"held {i}"), now))
    await pipeline.drain()
    released_at_pace: list[int] = []

    async def pace() -> None:
        released_at_pace.append(len(pipeline.recorder.releases))
        if len(released_at_pace) == 1:  # Benvolio writes to someone online meanwhile
            live = ET.Element(
                "{jabber:client}message",
                {
                    "from": "benvolio@shakespeare.lit/street",
                    "to": "mercutio@shakespeare.lit",
                    "type": "chat",
                    "id": "x",
                },
            )
            ET.SubElement(live, "{jabber:client}body").text = "live"
            pipeline.handoff(Handoff("live", "online", live, time.time()))
            await pipeline.store.flush()
        elif len(released_at_pace) == 2:  # Juliet to Romeo while the last held ones wait: after them
            pipeline.handoff(Handoff("new", "online", message("new", "new"), time.time()))
            await pipeline.store.flush()

    pipeline.pace = pace
    pipeline.presence(f"{ROMEO}/orchard", True)
    await pipeline.drain()
    bodies = [r[2] for r in pipeline.recorder.releases]
    assert released_at_pace == [chunk, 2 * chunk + 1, total + 1]  # ("new" is one more chunk)
    assert [b for b in bodies if b != "live"] == [f"held {i}" for i in range(total)] + ["new"]  # in order, once
    assert pipeline.recorder.releases[chunk][0] == "live"  # between the first chunk and the second


async def test_a_message_from_courier_itself_is_kept_until_the_server_routed_it(pipeline) -> None:
    """A draft's reminder (from Courier's own JID) goes through the outbox like every message
    Courier originates: sent once committed, sent again at a reconnect until confirmed."""
    ns = "jabber:component:accept"
    reminder = ET.Element(f"{{{ns}}}message", {"from": "courier.shakespeare.lit", "to": JULIET, "type": "chat"})
    ET.SubElement(reminder, f"{{{ns}}}body").text = "Reminder: draft 1"
    pipeline.originate_own(reminder)
    assert pipeline.recorder.own == []  # nothing before the commit
    await pipeline.drain()
    ((token, body),) = pipeline.recorder.own
    assert body == "Reminder: draft 1"
    (row,) = await pipeline.store.outbox.unconfirmed()
    assert (row.token, row.kind, row.sender) == (token, "own", "courier.shakespeare.lit")
    await pipeline.resend_unconfirmed()  # a reconnect before the server confirmed it: the same token again
    assert pipeline.recorder.own == [(token, body), (token, body)]
    pipeline.store.queue_routed([token])  # deleted with the next commit, or ROUTED_DELAY later
    deadline = time.monotonic() + 5
    while await pipeline.store.outbox.unconfirmed() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert await pipeline.store.outbox.unconfirmed() == []


REMOTE = "mercutio@verona.lit"


def from_peer(msg_id: str, by: str | None = "courier.verona.lit") -> ET.Element:
    """A chat message from another server's user to Romeo; with courier-federation's
    ``<tracked/>`` of *by* (the sender's Courier) unless None."""
    m = ET.Element("{jabber:client}message", {"from": f"{REMOTE}/home", "to": ROMEO, "type": "chat", "id": msg_id})
    ET.SubElement(m, "{jabber:client}body").text = f"text of {msg_id}"
    if by is not None:
        ET.SubElement(m, TRACKED_TAG, by=by, id=f"token-{msg_id}")
    return m


@pytest.fixture
def relaying(pipeline):
    """The pipeline with courier-federation's recipient side (delivery/inbound.py) in front."""
    inbound = Inbound(pipeline, None)
    pipeline.tracked_by_peer = inbound.tracked_by_peer

    def handoff(h: Handoff) -> None:
        inbound.handoff(h)
        pipeline.handoff(h)

    pipeline.relay = handoff  # type: ignore[attr-defined]
    return pipeline


async def test_a_message_its_senders_courier_tracks_is_released_before_the_commit_here(relaying) -> None:
    """courier-federation 0.5, relaying: the sender's Courier stored it; released to the online
    recipient at once, recorded right after, and kept in the outbox until the server routed it."""
    relaying.relay(Handoff("h1", "online", from_peer("m1"), time.time(), copy_kept=True))
    assert relaying.recorder.releases == [("h1", "by reference", None)]  # before any commit
    await relaying.drain()
    (stored,) = await relaying.store.messages_between(REMOTE, ROMEO)
    assert stored.state.value == "released" and stored.hid == "h1"
    assert [h.label for h in await relaying.store.hops(stored.seq)] == ["accepted", "released"]
    assert {r.token for r in await relaying.store.outbox.unconfirmed()} == {"h1"}

    # the server's confirmation may come before the commit: the outbox entry still goes
    relaying.relay(Handoff("h2", "online", from_peer("m2"), time.time(), copy_kept=True))
    relaying.store.queue_routed(["h1", "h2"])
    await relaying.drain()
    deadline = time.monotonic() + 5
    while await relaying.store.outbox.unconfirmed() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert await relaying.store.outbox.unconfirmed() == []
    assert relaying.recorder.releases == [("h1", "by reference", None), ("h2", "by reference", None)]


async def test_relaying_never_overtakes_and_needs_a_believable_tracked(relaying) -> None:
    """Before the commit only when nothing waits for one (order kept), and only for a
    ``<tracked/>`` of the sender's own server's Courier; everything else after its commit."""
    now = time.time()
    relaying.relay(Handoff("h1", "online", message("m1", "local"), now, copy_kept=True))
    relaying.relay(Handoff("h2", "online", from_peer("m2"), now, copy_kept=True))
    assert relaying.recorder.releases == []  # h1 waits for its commit, so h2 does too
    await relaying.drain()
    assert [r[0] for r in relaying.recorder.releases] == ["h1", "h2"]

    for hid, by in (("h3", None), ("h4", "courier.montague.lit"), ("h5", "mercutio@verona.lit")):
        before = list(relaying.recorder.releases)
        relaying.relay(Handoff(hid, "online", from_peer(f"m-{hid}", by), now, copy_kept=True))
        assert relaying.recorder.releases == before  # a stock server's, or a forged <tracked/>
        await relaying.drain()
    assert [r[0] for r in relaying.recorder.releases] == ["h1", "h2", "h3", "h4", "h5"]

    relaying.relay(Handoff("h6", "offline", from_peer("m6"), now, copy_kept=True))
    await relaying.drain()
    assert relaying.recorder.acks == ["h6"]  # held for the offline recipient, stored first

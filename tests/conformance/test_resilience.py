"""Nothing lost, nothing twice: Courier killed, stopped, restarted; hostile input.

Real Prosody (Debian), real Courier processes, real slixmpp clients.
"""

from __future__ import annotations

import asyncio
import time
from xml.etree.ElementTree import SubElement, fromstring

import pytest

from component.xep.route.stanza import NS as ROUTE

from .helpers import eventually, states


async def test_sigkill_mid_burst_then_restart_delivers_every_message_once(courier, stack, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    b = await connect(bob)
    total = 2000
    for i in range(total):
        a.chat(bob, f"burst {i}", f"b{i}", origin_id=False)
    await eventually(lambda: b.received.qsize() >= 300, timeout=20, what="300 delivered before the kill")
    courier.kill()
    killed_at = b.received.qsize()
    await courier.start_async()
    ids: list[str] = []
    deadline = time.monotonic() + 60
    while len(ids) < total and time.monotonic() < deadline:
        try:
            ids.append((await b.next_message(10))["id"])
        except TimeoutError:
            break
    # a later message: a duplicate (a re-send, or Prosody's fallback) would come before it
    ids += [m["id"] for m in await b.until_marker(a, timeout=20)]
    assert killed_at < total, "the kill came too late to test anything"
    assert len(ids) == total, f"{total - len(ids)} messages lost"
    assert len(set(ids)) == total, f"{len(ids) - len(set(ids))} duplicates"


async def test_courier_stopped_messages_are_delivered_normally_and_logged(courier, stack, users, connect) -> None:
    alice, bob, carol = users("alice", "bob", "carol")
    courier.stop()
    a = await connect(alice)
    b = await connect(bob)
    a.chat(bob, "Courier is away", "s1")
    got = await b.next_message()
    assert (got["body"], got["from"].bare) == ("Courier is away", alice)
    a.chat(carol, "Keep this for Carol", "s2")  # offline: Prosody's own offline storage
    c = await connect(carol)
    assert (await c.next_message())["body"] == "Keep this for Carol"
    log = stack.log_file.read_text()
    assert f"is not connected: delivering {alice}/phone -> {bob} normally" in log


async def test_restart_keeps_held_messages_until_the_recipient_connects(courier, users, connect) -> None:
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    for i in range(3):
        a.chat(bob, f"kept {i}", f"k{i}")
    await eventually(lambda: states(courier, alice) == {f"k{i}": "held" for i in range(3)}, what="held")
    courier.stop()
    await courier.start_async()
    b = await connect(bob)
    assert [(await b.next_message())["body"] for _ in range(3)] == [f"kept {i}" for i in range(3)]
    await b.nothing_before_marker(a)  # none twice


async def test_forged_route_stanzas_from_users_are_refused(courier, stack, users, connect) -> None:
    (mallory,) = users("mallory")
    m = await connect(mallory)
    for element in (
        f"<handoff xmlns='{ROUTE}' id='forged-1' recipient='online'><forwarded xmlns='urn:xmpp:forward:0'>"
        f"<message xmlns='jabber:client' from='x@{stack.domain}/a' to='y@{stack.domain}'><body>x</body></message>"
        "</forwarded></handoff>",
        f"<handoff xmlns='{ROUTE}' id='forged-2'><forwarded xmlns='urn:xmpp:forward:0'>not xml at all &lt;"
        "</forwarded></handoff>",
        f"<ack xmlns='{ROUTE}'><item id='forged-3'/></ack>",
        f"<fallback xmlns='{ROUTE}'><item id='forged-4'/></fallback>",
    ):
        msg = m.make_message(mto=stack.component)
        msg.append(fromstring(element))
        msg.send()
        err = await m.next_message()
        assert err["type"] == "error"
        assert (err["error"]["type"], err["error"]["condition"]) == ("auth", "forbidden")
    assert courier.proc is not None and courier.proc.poll() is None


async def test_route_elements_a_client_adds_are_stripped(courier, users, connect) -> None:
    mallory, bob = users("mallory", "bob")
    m = await connect(mallory)
    b = await connect(bob)
    msg = m.make_message(mto=bob, mbody="nothing to see", mtype="chat")
    SubElement(msg.xml, f"{{{ROUTE}}}release", id="0000")
    SubElement(msg.xml, f"{{{ROUTE}}}handoff", id="0001")
    msg.send()
    got = await b.next_message()
    assert got["body"] == "nothing to see"
    assert not [child for child in got.xml if child.tag.startswith(f"{{{ROUTE}}}")]


async def test_nobody_edits_or_recalls_someone_elses_message(courier, users, connect) -> None:
    alice, mallory, bob = users("alice", "mallory", "bob")
    a = await connect(alice)
    m = await connect(mallory)
    a.chat(bob, "From Alice, untouched", "a-1")
    await eventually(lambda: states(courier, alice) == {"a-1": "held"}, what="held")
    m.correct(bob, "a-1", "From Alice, changed", "m-fix")
    m.retract(bob, "a-1", "m-retract")
    await eventually(lambda: len(states(courier, mallory)) == 2, what="mallory's stanzas stored as her own")
    assert states(courier, alice) == {"a-1": "held"}
    b = await connect(bob)
    got = [await b.next_message() for _ in range(3)]
    from_alice = [g for g in got if g["from"].bare == alice]
    assert [g["body"] for g in from_alice] == ["From Alice, untouched"]
    # Mallory's stanzas reach Bob as hers, where XEP-0308/0424 tell his client to ignore them.
    assert {g["from"].bare for g in got if g not in from_alice} == {mallory}


async def test_courier_survives_and_keeps_working_after_hostile_input(courier, stack, users, connect) -> None:
    mallory, bob = users("mallory", "bob")
    m = await connect(mallory)
    b = await connect(bob)
    odd = m.make_message(mto=bob, mtype="chat")
    SubElement(odd.xml, "{urn:xmpp:message-retract:1}retract")  # no id, no body
    odd.send()
    m.correct(bob, "", "")  # an empty correction of no id
    m.chat(bob, "still alive?", "alive-1")
    bodies = set()
    deadline = time.monotonic() + 5
    while "still alive?" not in bodies and time.monotonic() < deadline:
        bodies.add((await b.next_message())["body"])
    assert "still alive?" in bodies
    assert courier.proc is not None and courier.proc.poll() is None
    assert "Traceback" not in courier.log_text()


async def test_prosody_restart_keeps_held_messages_and_courier_reconnects(users, tmp_path) -> None:
    """Its own Prosody, restarted under a running Courier."""
    from component import prosody

    from .conftest import PASSWORD
    from .xmpp import Client, CourierProcess

    setup = prosody.ProsodySetup(
        data=tmp_path / "prosody", c2s_port=prosody.free_port(), component_port=prosody.free_port()
    )
    setup.render()
    proc = prosody.start(setup)
    clients: list[Client] = []
    courier = CourierProcess(setup, tmp_path / "courier")
    try:
        for user in ("alice", "bob"):
            prosody.adduser(setup, f"{user}@localhost", PASSWORD)
        await courier.start_async()
        a = await Client("alice@localhost/phone", PASSWORD, setup.c2s_port).start()
        clients.append(a)
        a.chat("bob@localhost", "Through the restart", "r1")
        await eventually(lambda: states(courier, "alice@localhost") == {"r1": "held"}, what="held")
        await a.stop()
        prosody.stop(proc)
        proc = prosody.start(setup)
        deadline = time.monotonic() + 20
        while courier.log_text().count("connected to") < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert courier.log_text().count("connected to") >= 2, "Courier did not reconnect"
        b = await Client("bob@localhost/desk", PASSWORD, setup.c2s_port).start()
        clients.append(b)
        got = await b.next_message()
        assert (got["body"], got["from"].full) == ("Through the restart", "alice@localhost")
        a = await Client("alice@localhost/laptop", PASSWORD, setup.c2s_port).start()
        clients.append(a)
        await b.nothing_before_marker(a)  # once
    finally:
        for c in clients:
            await c.stop()
        courier.stop()
        prosody.stop(proc)


@pytest.mark.sqlite_only  # on PostgreSQL the second one is the standby: tests/faults/test_standby.py
async def test_a_second_courier_on_the_same_store_exits_with_a_sentence(courier, users, connect) -> None:
    """One Courier per store: a second process on the running one's store refuses to start
    (before it touches the store or Prosody), and the first goes on serving."""
    import subprocess
    import sys

    from .xmpp import REPO

    second = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "component", "run", "--config", str(courier.config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert second.returncode == 3, second.stderr[-2000:]
    assert f"is in use by another Courier (pid {courier.proc.pid})" in second.stderr
    assert "Traceback" not in second.stderr
    alice, bob = users("alice", "bob")
    a = await connect(alice)
    b = await connect(bob)
    a.chat(bob, "still served by the first", "one-per-store")
    got = await b.next_message()
    assert got["body"] == "still served by the first"
    # tracked by the first Courier (not a fallback delivery of a Courier gone missing)
    await eventually(lambda: states(courier, alice).get("one-per-store") == "released", what="released by Courier")

"""The SMS core (component/sms/service.py) with a real store and pipeline and a scripted
transport: no network.  These pin what is hard to provoke against a real Kannel: races between
XMPP and SMS, retries, unknown outcomes, restarts, duplicates, limits."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Callable
from xml.etree import ElementTree as ET

import pytest

from component.delivery.pipeline import Handoff, Pipeline, TooLate
from component.delivery.states import State
from component.sms import transport as tp
from component.sms.service import NS_SMS, SmsError, SmsService, SmsSettings
from component.store import Store
from tests import pgserver

DOMAIN = "shakespeare.lit"
COURIER = "courier.shakespeare.lit"
JULIET, ROMEO, NURSE = f"juliet@{DOMAIN}", f"romeo@{DOMAIN}", f"nurse@{DOMAIN}"
GATEWAY, ROMEO_NO, JULIET_NO, TYBALT_NO = "+12025550100", "+12025550101", "+12025550102", "+12025550177"
NURSE_NO = "+12025550103"


class Gateway(tp.SmsTransport):
    """A scripted gateway: *script* says how each send ends (an exception, or None for accepted)."""

    name = "scripted"

    def __init__(self) -> None:
        self.sent: list[tp.OutgoingSms] = []
        self.tried: list[tp.OutgoingSms] = []
        self.script: list[Exception | None] = []
        self.gate: asyncio.Event | None = None  # when set: send waits for it (an SMS "in flight")
        self.entered = asyncio.Event()

    async def start(self, on_inbound: tp.InboundHandler, on_report: tp.ReportHandler) -> None:
        self.on_inbound, self.on_report = on_inbound, on_report

    async def send(self, sms: tp.OutgoingSms) -> list[str]:
        self.tried.append(sms)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        self.sent.append(sms)
        return [sms.ref]

    async def stop(self) -> None:
        pass


class Phone:
    """The XMPP side: what users would see."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, str]] = []
        self.receipts: list[tuple[str, str, str]] = []
        self.notices: list[tuple[str, str]] = []

    def inbound(self, number: str, user: str, text: str) -> None:
        self.got.append((number, user, text))

    def receipt(self, number: str, user: str, msg_id: str) -> None:
        self.receipts.append((number, user, msg_id))

    def notify(self, user: str, text: str) -> None:
        self.notices.append((user, text))


class Recorder:
    """The pipeline's XMPP transport."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, str]] = []
        self.releases: list[str] = []
        self.originated: list[tuple[str, str, str]] = []

    def report(self, report) -> None:  # type: ignore[no-untyped-def]
        self.reports.append((report.msg_id, report.state))

    def originate(self, inner: ET.Element, sender_bare: str, token: str | None = None) -> None:
        body = inner.find("{jabber:client}body")
        self.originated.append((sender_bare, inner.get("to", ""), body.text or "" if body is not None else ""))

    def ack(self, hid: str) -> None:
        pass

    def release(self, hid: str, inner: ET.Element, sender_bare: str) -> None:
        self.releases.append(inner.get("id", ""))

    def notice(self, sender: str, recipient: str, policy: str) -> None:
        pass


class World:
    def __init__(self, store: Store, settings: SmsSettings) -> None:
        self.store = store
        self.settings = settings
        self.recorder = Recorder()
        self.gateway = Gateway()
        self.phone = Phone()
        self.pipeline = Pipeline(store, self.recorder, DOMAIN)
        self.service = self._service()

    def _service(self) -> SmsService:
        s = SmsService(self.store, self.pipeline, self.gateway, self.settings, component=COURIER, delivery=self.phone)
        self.pipeline.sms, self.pipeline.sms_domain = s, COURIER
        return s

    async def start(self) -> None:
        await self.pipeline.start()
        await self.service.start()

    async def restart(self) -> None:
        """A new pipeline and service on the same store (what a Courier restart does)."""
        await self.service.stop()
        self.pipeline.stop()
        self.pipeline = Pipeline(self.store, self.recorder, DOMAIN)
        self.service = self._service()
        await self.start()

    async def settle(self, until: Callable[[], object] = lambda: True, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            await self.service.drain()
            await self.pipeline.drain()
            if until() and not self.service._busy and not await self.store.sms.due(time.time()):
                return
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.01)

    async def verify(self, user: str, number: str) -> None:
        await self.service.register(user, number)
        await self.settle(lambda: any(s.recipient == number for s in self.gateway.sent))
        code = re.search(r"\b(\d{6})\b", [s for s in self.gateway.sent if s.recipient == number][-1].text)
        assert code is not None
        await self.service.verify(user, code.group(1))
        self.gateway.sent.clear()
        self.gateway.tried.clear()
        self.gateway.entered.clear()

    def send(self, msg_id: str, body: str, to: str = ROMEO, where: str = "offline") -> None:
        inner = ET.Element(
            "{jabber:client}message", {"from": f"{JULIET}/balcony", "to": to, "type": "chat", "id": msg_id}
        )
        ET.SubElement(inner, "{jabber:client}body").text = body
        ET.SubElement(inner, "{https://courier.chat/ns/hops/0}request")
        self.pipeline.handoff(Handoff("h-" + msg_id, where, inner, time.time()))

    def states(self, msg_id: str) -> list[str]:
        return [s for i, s in self.recorder.reports if i == msg_id]

    async def outbox(self) -> list[tuple[str, str, int]]:
        async with self.store._conn.execute("SELECT purpose, state, attempts FROM sms_outbox ORDER BY id") as cur:
            return [tuple(r) for r in await cur.fetchall()]  # type: ignore[misc]


SETTINGS = SmsSettings(sender=GATEWAY, max_attempts=3, retry_delay=0.05, code_ttl=60, codes_per_hour=2)


@pytest.fixture
async def world(tmp_path):
    store = await Store.open(pgserver.store_at(tmp_path / "c.sqlite"))
    w = World(store, SETTINGS)
    await w.start()
    await w.verify(ROMEO, ROMEO_NO)
    yield w
    await w.service.stop()
    w.pipeline.stop()
    await store.close()


async def report(w: World, outcome: str, sms: tp.OutgoingSms | None = None, detail: str = "") -> None:
    await w.gateway.on_report(tp.DeliveryReport((sms or w.gateway.sent[-1]).ref, outcome, detail))


# -- numbers -------------------------------------------------------------------------------


async def test_a_number_is_active_only_with_its_code(tmp_path) -> None:
    store = await Store.open(pgserver.store_at(tmp_path / "c.sqlite"))
    w = World(store, SETTINGS)
    await w.start()
    try:
        status = await w.service.register(JULIET, "+1 202 555 0102")
        assert (status.number, status.pending) == (None, JULIET_NO)
        await w.settle(lambda: w.gateway.sent)
        code_sms = w.gateway.sent[-1]
        assert (code_sms.sender, code_sms.recipient) == (GATEWAY, JULIET_NO)
        with pytest.raises(SmsError, match="not the code") as err:
            await w.service.verify(JULIET, "000000" if "000000" not in code_sms.text else "999999")
        assert err.value.condition == "not-acceptable"
        code = re.search(r"\b(\d{6})\b", code_sms.text).group(1)  # type: ignore[union-attr]
        status = await w.service.verify(JULIET, code[:3] + " " + code[3:])  # spaces are fine
        assert (status.number, status.fallback, status.pending) == (JULIET_NO, True, None)
        # another account cannot take it
        with pytest.raises(SmsError) as err:
            await w.service.register(NURSE, JULIET_NO)
        assert err.value.condition == "conflict"
        # it survives a restart; removing it ends fallback
        await w.restart()
        assert w.service.status(JULIET).number == JULIET_NO
        await w.service.remove(JULIET)
        assert w.service.status(JULIET).number is None and JULIET_NO not in w.service.owners
    finally:
        await w.service.stop()
        await store.close()


async def test_codes_expire_are_limited_and_wrong_ones_counted(world: World) -> None:
    w = world
    await w.service.register(JULIET, JULIET_NO)
    await w.service.register(JULIET, JULIET_NO)  # the same pending number: no second code
    await w.settle()
    assert len([s for s in w.gateway.sent if s.recipient == JULIET_NO]) == 1
    for _ in range(SmsSettings().code_tries):
        with pytest.raises(SmsError):
            await w.service.verify(JULIET, "12345x")
    with pytest.raises(SmsError, match="Too many wrong codes"):
        await w.service.verify(JULIET, "whatever")
    w.service.rows[JULIET].code_expires = time.time() - 1  # (time passes)
    with pytest.raises(SmsError, match="expired"):
        await w.service.verify(JULIET, "123456")
    await w.service.register(JULIET, JULIET_NO)  # a new code: the second this hour
    with pytest.raises(SmsError) as err:
        w.service.rows[JULIET].code_expires = time.time() - 1
        await w.service.register(JULIET, JULIET_NO)  # the third: over codes_per_hour
    assert err.value.condition == "resource-constraint"
    with pytest.raises(SmsError) as err:
        await w.service.register(JULIET, "+1555123")
    assert err.value.condition == "bad-request"


# -- fallback ------------------------------------------------------------------------------


async def test_offline_recipient_gets_one_sms_then_the_report(world: World) -> None:
    w = world
    w.send("m1", "Come at nine")
    await w.settle(lambda: w.states("m1")[-1:] == ["sms"])
    assert [(s.sender, s.recipient, s.text) for s in w.gateway.sent] == [(GATEWAY, ROMEO_NO, f"{JULIET}: Come at nine")]
    await report(w, tp.ACCEPTED)
    await report(w, tp.DELIVERED)
    await report(w, tp.DELIVERED)  # a duplicate report changes nothing
    await w.settle()
    assert w.states("m1") == ["sent", "cached", "sms", "sms-delivered"]
    # Romeo comes online: nothing is released, ever
    w.pipeline.presence(f"{ROMEO}/orchard", True)
    await w.settle()
    assert w.recorder.releases == []
    assert (await w.store.find_sent(JULIET, "m1")).state is State.SMS_DELIVERED  # type: ignore[union-attr]


async def test_the_outbox_survives_an_error_in_its_loop(world: World, caplog) -> None:
    """One exception used to end the outbox task, and with it every later SMS, silently."""
    w = world
    real_due, failures = w.store.sms.due, []

    async def due_once_broken(now: float):  # type: ignore[no-untyped-def]
        if not failures:
            failures.append(now)
            raise sqlite3.OperationalError("disk I/O error")
        return await real_due(now)

    w.store.sms.due = due_once_broken  # type: ignore[method-assign]
    w.service._wake()  # the outbox's timer rings: the error
    await w.settle(lambda: failures)
    w.send("m1", "Still there?")
    await w.settle(lambda: w.states("m1")[-1:] == ["sms"], timeout=5)
    assert [s.text for s in w.gateway.sent] == [f"{JULIET}: Still there?"]
    assert "sms outbox failed; trying again in 0.5 s" in caplog.text


async def test_a_verified_sender_texts_from_her_own_number(world: World) -> None:
    w = world
    await w.verify(JULIET, JULIET_NO)
    w.send("m1", "It is I")
    await w.settle(lambda: w.gateway.sent)
    assert (w.gateway.sent[0].sender, w.gateway.sent[0].text) == (JULIET_NO, "It is I")


async def test_xmpp_wins_before_the_sms_goes(tmp_path) -> None:
    store = await Store.open(pgserver.store_at(tmp_path / "c.sqlite"))
    w = World(store, SmsSettings(sender=GATEWAY, fallback_delay=0.3))
    await w.start()
    try:
        await w.verify(ROMEO, ROMEO_NO)
        await w.verify(NURSE, NURSE_NO)
        w.send("m1", "Quick")
        w.send("m2", "Marker", to=NURSE)  # due after m1's: its SMS going is the positive marker
        await w.settle()
        w.pipeline.presence(f"{ROMEO}/orchard", True)  # back before the delay is over
        await w.settle(lambda: w.gateway.tried)  # (settle also waits until nothing else is due)
        assert [s.recipient for s in w.gateway.tried] == [NURSE_NO]
        assert w.recorder.releases == ["m1"]
        assert w.states("m1") == ["sent", "cached", "released"]
        assert ("fallback", "cancelled", 0) in await w.outbox()
    finally:
        await w.service.stop()
        await store.close()


async def test_never_both_when_the_recipient_comes_online_during_the_submission(world: World) -> None:
    w = world
    w.gateway.gate = asyncio.Event()
    w.send("m1", "In flight")
    await asyncio.wait_for(w.gateway.entered.wait(), 2)  # m1 is being submitted right now
    w.pipeline.presence(f"{ROMEO}/orchard", True)
    w.send("m2", "Behind it", where="online")
    await w.pipeline.drain()
    assert w.recorder.releases == []  # m1 waits for the outcome, and m2 behind it (order)
    with pytest.raises(TooLate, match="being sent as SMS"):
        await w.pipeline.recall(JULIET, "m1")  # no recall nor edit of what may already be on its way
    w.gateway.gate.set()
    await w.settle(lambda: w.recorder.releases)
    assert [s.text for s in w.gateway.sent] == [f"{JULIET}: In flight"]
    assert w.recorder.releases == ["m2"]  # m1 went as SMS, so never over XMPP; m2 over XMPP only
    assert w.states("m1") == ["sent", "cached", "sms"]
    assert w.states("m2") == ["sent", "held", "released"]


async def test_gateway_down_is_retried_then_failed(world: World) -> None:
    w = world
    w.gateway.script = [tp.GatewayUnavailable("connection refused")] * 3
    w.send("m1", "Into the void")
    await w.settle(lambda: "failed" in w.states("m1"))
    assert w.states("m1") == ["sent", "cached", "failed"]
    assert len(w.gateway.tried) == 3 and w.gateway.sent == []
    assert ("fallback", "failed", 3) in await w.outbox()
    w.pipeline.presence(f"{ROMEO}/orchard", True)
    await w.settle()
    assert w.recorder.releases == []  # failed is final


async def test_gateway_back_in_time_sends_once(world: World) -> None:
    w = world
    w.gateway.script = [tp.GatewayUnavailable("refused"), tp.GatewayUnavailable("HTTP 503")]
    w.send("m1", "Third time lucky")
    await w.settle(lambda: "sms" in w.states("m1"))
    assert len(w.gateway.tried) == 3 and len(w.gateway.sent) == 1
    assert ("fallback", "submitted", 3) in await w.outbox()


async def test_refused_for_good_fails_at_once_and_an_unknown_outcome_is_never_resent(world: World) -> None:
    w = world
    w.gateway.script = [tp.GatewayRejected("HTTP 403 Authorization failed")]
    w.send("m1", "One")
    await w.settle(lambda: "failed" in w.states("m1"))
    assert len(w.gateway.tried) == 1
    w.gateway.script = [tp.GatewayUncertain("no answer")]
    w.send("m2", "Two")
    await w.settle(lambda: "sms" in w.states("m2"))
    assert len(w.gateway.tried) == 2  # assumed submitted: not tried again
    await w.gateway.on_report(tp.DeliveryReport(w.gateway.tried[-1].ref, tp.DELIVERED))
    await w.settle()
    assert w.states("m2")[-1] == "sms-delivered"


async def test_a_submission_cut_short_by_a_restart_is_not_resent(world: World) -> None:
    w = world
    w.gateway.gate = asyncio.Event()
    w.send("m1", "Interrupted")
    await asyncio.wait_for(w.gateway.entered.wait(), 2)
    # Courier dies while the request is out: the outbox says "sending"
    assert ("fallback", "sending", 1) in await w.outbox()
    w.service.scheduler.stop()
    for task in list(w.service._tasks):
        task.cancel()
    w.service._busy.clear()
    w.gateway.gate = None
    w.pipeline.stop()
    w.pipeline = Pipeline(w.store, w.recorder, DOMAIN)
    w.service = w._service()
    w.gateway.tried.clear()
    await w.start()
    await w.settle(lambda: "sms" in w.states("m1"))
    assert w.gateway.tried == []
    assert ("fallback", "submitted", 1) in await w.outbox()


async def test_over_the_hourly_limit_the_message_waits_for_xmpp(tmp_path) -> None:
    store = await Store.open(pgserver.store_at(tmp_path / "c.sqlite"))
    w = World(store, SmsSettings(sender=GATEWAY, parts_per_hour=1))
    await w.start()
    try:
        await w.verify(ROMEO, ROMEO_NO)
        w.send("m1", "First")
        w.send("m2", "Second")
        await w.settle(lambda: "sms" in w.states("m1"))  # (and nothing due nor under way)
        assert w.states("m2") == ["sent", "cached"]  # still waiting, over XMPP later
        w.pipeline.presence(f"{ROMEO}/orchard", True)
        await w.settle(lambda: w.recorder.releases)
        assert w.recorder.releases == ["m2"]
    finally:
        await w.service.stop()
        await store.close()


async def test_fallback_off_means_waiting(world: World) -> None:
    w = world
    await w.service.set_fallback(ROMEO, False)
    w.send("m1", "Patience")
    await w.settle()  # nothing due nor under way
    assert w.gateway.tried == [] and w.states("m1") == ["sent", "cached"]


# -- inbound and number JIDs --------------------------------------------------------------


async def test_inbound_sms_reaches_the_owner_of_the_number_once(world: World) -> None:
    w = world
    sms = tp.InboundSms("kannel-1", TYBALT_NO, ROMEO_NO, "Draw, if you be men")
    await w.gateway.on_inbound(sms)
    await w.gateway.on_inbound(sms)  # the gateway called twice
    assert w.phone.got == [(TYBALT_NO, ROMEO, "Draw, if you be men")]
    await w.gateway.on_inbound(tp.InboundSms("kannel-2", TYBALT_NO, "+12025550199", "Nobody's"))
    assert len(w.phone.got) == 1


async def test_inbound_from_a_users_number_comes_from_their_jid_and_is_not_texted_back(world: World) -> None:
    w = world
    await w.verify(JULIET, JULIET_NO)
    await w.gateway.on_inbound(tp.InboundSms("k-1", JULIET_NO, ROMEO_NO, "By SMS, love"))
    await w.settle()
    assert w.phone.got == []
    m = (await w.store.messages_between(JULIET, ROMEO))[-1]
    assert m.body == "By SMS, love" and NS_SMS in m.stanza and m.state is State.HELD  # Romeo is offline
    await w.settle()  # nothing due nor under way
    assert w.gateway.tried == []  # his phone has it already


async def test_a_message_to_a_number_jid_goes_as_sms_and_replies_come_back(world: World) -> None:
    w = world
    await w.service.send_direct(
        f"{JULIET}/balcony", TYBALT_NO, "Hold, Tybalt", msg_id="d1", wants_reports=True,
        extra=[ET.Element("{urn:xmpp:receipts}request")],
    )  # fmt: skip
    await w.settle(lambda: w.gateway.sent)
    assert (w.gateway.sent[0].sender, w.gateway.sent[0].text) == (GATEWAY, f"{JULIET}: Hold, Tybalt")
    await report(w, tp.DELIVERED)
    await w.settle()
    assert w.states("d1") == ["sent", "sms", "sms-delivered"]
    assert w.phone.receipts == [(TYBALT_NO, JULIET, "d1")]
    # Tybalt answers the gateway's number: it goes to whoever last wrote to him from it
    await w.gateway.on_inbound(tp.InboundSms("", TYBALT_NO, GATEWAY, "Boy, this shall not excuse"))
    assert w.phone.got == [(TYBALT_NO, JULIET, "Boy, this shall not excuse")]


async def test_a_number_jid_of_a_user_is_their_xmpp_jid(world: World) -> None:
    w = world
    await w.service.send_direct(f"{JULIET}/balcony", ROMEO_NO, "Romeo, it is me", msg_id="x1")
    await w.settle()
    m = (await w.store.messages_between(JULIET, ROMEO))[-1]
    assert m.body == "Romeo, it is me" and m.recipient_bare == ROMEO  # network first, then fallback
    with pytest.raises(SmsError) as err:
        await w.service.send_direct(f"{JULIET}/balcony", "+1555", "?", msg_id="x2")
    assert err.value.condition == "item-not-found"


async def test_a_failed_code_is_told_to_the_user(world: World) -> None:
    w = world
    w.gateway.script = [tp.GatewayRejected("HTTP 400 bad number")]
    await w.service.register(JULIET, JULIET_NO)
    await w.settle(lambda: w.phone.notices)
    assert w.phone.notices[0][0] == JULIET and "could not be sent" in w.phone.notices[0][1]

"""P3 SMS fallback end to end: a real Prosody, a real Courier and a real Kannel (Debian's
bearerbox + smsbox with its fake SMSC); the test plays the phone network on the fake SMSC's
port.  Kannel is installed by scripts/install-system.sh: these tests never skip."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from slixmpp.exceptions import IqError

from component import prosody
from component.xep import sms as xep_sms

from .conftest import read_store
from .helpers import OLD, OMEMO_FALLBACK, encrypted, eventually, omemo_legacy, payload_text, report_states
from .kannel import GATEWAY, Kannel, PhoneNetwork, kannel, network, new_number, sms_courier, verified, with_sms
from .xmpp import CourierProcess

__all__ = ["kannel", "network"]  # the session's Kannel and phone network (tests/conformance/kannel.py)


@pytest.fixture
def courier(
    stack: prosody.ProsodySetup, kannel: Kannel, network: PhoneNetwork, tmp_path: Path
) -> Iterator[CourierProcess]:
    """Courier with SMS on, pointed at the session's Kannel (replaces conftest's ``courier`` here)."""
    process = sms_courier(stack, kannel, tmp_path / "courier")
    process.wait_log("SMS fallback on")
    yield process
    process.stop()


def fallback_states(process: CourierProcess, number: str) -> list[str]:
    """The states of the fallback SMS Courier queued for *number*, oldest first."""
    with read_store(process) as db:
        query = "SELECT state FROM sms_outbox WHERE purpose='fallback' AND recipient=? ORDER BY id"
        return [r[0] for r in db.execute(query, (number,))]


async def offline_with_fallback(stack, users, connect, network):
    """Alice online; Bob offline, with a verified number and SMS fallback on: (alice, bob, number, a)."""
    alice, bob = users("alice", "bob")
    number = new_number()
    b = await with_sms(connect, bob)
    await verified(b, stack.component, network, number)
    await b.stop()
    return alice, bob, number, await connect(alice)


async def test_register_and_verify_by_bot_end_to_end(courier, stack, users, connect, network) -> None:
    (bob,) = users("bob")
    number = new_number()
    b = await with_sms(connect, bob)

    b.chat(stack.component, f"phone {number[:2]} {number[2:5]} {number[5:8]} {number[8:]}", origin_id=False)
    reply = (await b.next_message())["body"]
    assert "code is on its way" in reply, reply
    code_sms = await network.wait_for(lambda s: s.recipient == number)
    assert code_sms.sender == GATEWAY
    assert f"code for {bob} is" in code_sms.text
    code = re.search(r"\b(\d{6})\b", code_sms.text).group(1)  # type: ignore[union-attr]

    b.chat(stack.component, "verify 000000" if code != "000000" else "verify 111111", origin_id=False)
    assert "not the code" in (await b.next_message())["body"]
    b.chat(stack.component, f"verify {code}", origin_id=False)
    reply = (await b.next_message())["body"]
    assert reply.startswith("Verified.") and "SMS fallback: on" in reply, reply

    phone = (await b.plugin["courier_sms"].get_phone(stack.component, timeout=5))["sms_phone"]
    assert (phone["number"], phone["fallback"], phone["pending"]) == (number, True, "")
    b.chat(stack.component, "phone fallback off", origin_id=False)
    assert "SMS fallback: off" in (await b.next_message())["body"]
    assert len(network.to(number)) == 1  # the code, and nothing else

    # Disco: our namespace, XEP-0100 and the gateway identity.
    info = (await b.plugin["xep_0030"].get_info(jid=stack.component, timeout=5))["disco_info"]
    assert {xep_sms.NS, "jabber:iq:gateway"} <= set(info["features"])
    assert ("gateway", "sms", None, "Courier SMS") in info["identities"]
    # XEP-0100: the JID of a number, however it is typed.
    prompt = await b.plugin["courier_sms"].gateway_prompt(stack.component, timeout=5)
    assert prompt["gateway"]["prompt"]
    assert await b.plugin["courier_sms"].gateway_jid(stack.component, "+1 (202) 555-0177") == (
        f"+12025550177@{stack.component}"
    )
    with pytest.raises(IqError) as err:
        await b.plugin["courier_sms"].gateway_jid(stack.component, "12345", timeout=5)
    assert err.value.condition == "bad-request"


async def test_offline_recipient_gets_exactly_one_sms_and_nothing_later(
    courier, stack, users, connect, network
) -> None:
    alice, bob, number, a = await offline_with_fallback(stack, users, connect, network)
    msg = a.make_message(mto=bob, mbody="Meet me at the fountain", mtype="chat")
    msg["id"] = "fountain-1"
    msg["request_receipt"] = True
    msg.send()
    await eventually(lambda: "sms-delivered" in report_states(a), what="sms-delivered")
    assert report_states(a) == ["sent", "cached", "sms", "sms-delivered"]
    sms = network.to(number)[-1]
    assert (sms.sender, sms.text) == (GATEWAY, f"{alice}: Meet me at the fountain")
    reports = {r["hops_report"]["state"]: r["hops_report"] for r in a.reports}
    assert number.removeprefix("+1") in reports["sms"]["note"].replace(" ", "").replace("-", "")
    assert reports["sms-delivered"]["place"] == f"{number}@{stack.component}"

    b = await connect(bob, "laptop")  # Bob comes online: nothing is delivered a second time
    await b.nothing_before_marker(a)
    assert len(network.to(number)) == 2  # the code and the one message
    trace = await a.plugin["courier_hops"].get_trace(stack.component, "fountain-1", timeout=5)
    assert trace["hops_trace"]["state"] == "sms-delivered"


async def test_online_recipient_gets_no_sms(courier, stack, users, connect, network) -> None:
    alice, bob = users("alice", "bob")
    number = new_number()
    b = await with_sms(connect, bob)
    await verified(b, stack.component, network, number)
    a = await connect(alice)
    a.chat(bob, "Are you there?", "there-1")
    assert (await b.next_message())["body"] == "Are you there?"
    # the marker: Bob goes offline and Alice writes again, so an SMS goes; it is the first one
    await b.stop()
    a.chat(bob, "Now you are not", "there-2")
    await network.wait_for(lambda s: s.recipient == number and "Now you are not" in s.text)
    assert [s.text for s in network.to(number) if "code" not in s.text] == [f"{alice}: Now you are not"]


async def test_inbound_sms_and_the_reply(courier, stack, users, connect, network) -> None:
    (bob,) = users("bob")
    number, stranger = new_number(), new_number()
    b = await with_sms(connect, bob)
    await verified(b, stack.component, network, number)

    network.inject(stranger, number, "Hi Bob, it is Tybalt")
    got = await b.next_message()
    assert got["from"].full == f"{stranger}@{stack.component}"
    assert got["body"] == "Hi Bob, it is Tybalt"
    assert got["sms"]["number"] == stranger

    reply = b.make_message(mto=got["from"].bare, mbody="Keep thy distance", mtype="chat")
    reply["id"] = "distance-1"
    reply["request_receipt"] = True
    reply.send()
    sms = await network.wait_for(lambda s: s.recipient == stranger)
    assert (sms.sender, sms.text) == (number, "Keep thy distance")  # from Bob's own verified number
    receipt = await b.next_message()  # XEP-0184 from the number once the gateway reported delivery
    assert receipt["type"] != "error", f"refused: {receipt}"
    assert receipt["from"].bare == f"{stranger}@{stack.component}" and receipt["receipt"] == "distance-1"
    await eventually(lambda: report_states(b)[-1:] == ["sms-delivered"], what="sms-delivered")
    assert report_states(b) == ["sent", "sms", "sms-delivered"]
    assert len(network.to(stranger)) == 1


async def test_gateway_down_retried_then_failed_or_delivered_once(
    stack, users, connect, network, kannel, tmp_path
) -> None:
    process = sms_courier(
        stack, kannel, tmp_path / "courier", COURIER_SMS_MAX_ATTEMPTS="4", COURIER_SMS_RETRY_DELAY="0.4"
    )
    try:
        alice, bob, number, a = await offline_with_fallback(stack, users, connect, network)
        kannel.stop()
        try:
            # Down for good: 4 attempts (0.4 + 0.8 + 1.6 s apart), then failed, and nothing sent.
            msg = a.make_message(mto=bob, mbody="Lost in the post", mtype="chat")
            msg["id"] = "lost-1"
            msg["request_receipt"] = True
            msg.send()
            await eventually(lambda: "failed" in report_states(a), timeout=8, what="failed")
            failed = [r["hops_report"] for r in a.reports if r["hops_report"]["state"] == "failed"][0]
            assert "after 4 attempts" in failed["note"], failed["note"]
            assert report_states(a) == ["sent", "cached", "failed"]

            # Down, and back in time: retried, then submitted once.
            a.reports.clear()
            msg = a.make_message(mto=bob, mbody="Second try", mtype="chat")
            msg["id"] = "second-1"
            msg["request_receipt"] = True
            msg.send()
            await eventually(lambda: "not taken (attempt 1)" in process.log_text(), what="a first refusal")
        finally:
            kannel.start()
            network.wait_connected()
        await eventually(lambda: "sms-delivered" in report_states(a), timeout=8, what="sms-delivered")
        assert report_states(a) == ["sent", "cached", "sms", "sms-delivered"]
        texts = [s.text for s in network.to(number)]
        assert texts.count(f"{alice}: Second try") == 1
        assert not [t for t in texts if "Lost in the post" in t]
        b = await connect(bob, "laptop")
        await b.nothing_before_marker(a)  # neither comes over XMPP afterwards
    finally:
        process.stop()


async def test_recipient_back_online_while_the_gateway_is_down_gets_it_over_xmpp(
    stack, users, connect, network, kannel, tmp_path
) -> None:
    process = sms_courier(stack, kannel, tmp_path / "courier", COURIER_SMS_RETRY_DELAY="0.3")
    try:
        alice, bob, number, a = await offline_with_fallback(stack, users, connect, network)
        kannel.stop()
        try:
            msg = a.make_message(mto=bob, mbody="XMPP wins", mtype="chat")
            msg["request_receipt"] = True
            msg.send()
            await eventually(lambda: "not taken (attempt 1)" in process.log_text(), what="a first refusal")
            b = await connect(bob, "laptop")
            assert (await b.next_message())["body"] == "XMPP wins"
        finally:
            kannel.start()
            network.wait_connected()
        await eventually(lambda: "released" in report_states(a), what="released")
        # its SMS is cancelled for good (a retry takes only queued ones), and nothing comes twice
        await eventually(lambda: fallback_states(process, number) == ["cancelled"], what="the SMS cancelled")
        await b.nothing_before_marker(a)
        await a.round_trip(stack.component)  # after any report Courier sent
        assert report_states(a) == ["sent", "cached", "released"]
        assert [s for s in network.to(number) if "XMPP wins" in s.text] == []
    finally:
        process.stop()


async def test_an_encrypted_message_gets_a_notice_by_sms_and_waits_for_xmpp(
    courier, stack, users, connect, network
) -> None:
    """Issue 17: never the fallback sentence as SMS; a notice, and the message stays held for XMPP."""
    alice, bob, number, a = await offline_with_fallback(stack, users, connect, network)
    encrypted(a, bob, "secret-1", omemo_legacy(OLD))  # Conversations' shape, with a receipt request
    sms = await network.wait_for(lambda s: s.recipient == number and "code" not in s.text)
    assert (sms.sender, sms.text) == (
        GATEWAY,
        f"{alice} sent you an end-to-end encrypted message; open your XMPP app to read it.",
    )
    await eventually(lambda: report_states(a)[-1:] == ["sms"], what="the sms hop")
    assert report_states(a) == ["sent", "cached", "sms"]
    notice = a.reports[-1]["hops_report"]
    assert (notice["note"], notice["place"]) == ("notice: encrypted", stack.component)
    trace = await a.plugin["courier_hops"].get_trace(stack.component, "secret-1", timeout=5)
    assert trace["hops_trace"]["state"] == "cached"  # still held for XMPP

    b = await connect(bob, "laptop")
    got = await b.next_message()
    assert got["id"] == "secret-1" and payload_text(got) == [OLD]
    await eventually(lambda: report_states(a)[-1:] == ["released"], what="released")
    assert all(OMEMO_FALLBACK not in s.text and OLD not in s.text for s in network.to(number))
    assert len(network.to(number)) == 2  # the code and the notice


async def test_an_encrypted_message_to_a_number_is_refused_and_never_texted(
    courier, stack, users, connect, network
) -> None:
    (alice,) = users("alice")
    number = new_number()
    a = await connect(alice)
    encrypted(a, f"{number}@{stack.component}", "secret-2", omemo_legacy(OLD))
    error = await a.next_message()
    assert (error["type"], error["id"], error["error"]["condition"]) == ("error", "secret-2", "not-acceptable")
    assert "end-to-end encrypted" in error["error"]["text"] and "SMS" in error["error"]["text"]
    a.chat(f"{number}@{stack.component}", "Plain words for a phone", "plain-2")  # the positive marker
    sms = await network.wait_for(lambda s: s.recipient == number)
    assert sms.text == f"{alice}: Plain words for a phone"
    assert [s.text for s in network.to(number)] == [sms.text]

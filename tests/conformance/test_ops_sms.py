"""SMS figures on /metrics: a verification code and a fallback SMS through a real Kannel."""

from __future__ import annotations

from component import prosody

from .helpers import scrape, scrape_until
from .kannel import kannel, network, new_number, sms_process, verified, with_sms

__all__ = ["kannel", "network"]  # the session's Kannel and phone network, as in test_sms


async def test_sms_sent_counted_and_outbox_drained(stack, kannel, network, users, connect, tmp_path) -> None:
    port = prosody.free_port()
    courier = await sms_process(stack, kannel, tmp_path / "courier", COURIER_METRICS_PORT=str(port)).start_async()
    try:
        await courier.wait_log_async("SMS fallback on")
        alice, bob = users("alice", "bob")
        number = new_number()
        before = await scrape(port)
        b = await with_sms(connect, bob)
        await verified(b, stack.component, network, number)  # the code: one SMS
        await b.stop()
        a = await connect(alice)
        a.chat(bob, "By SMS, please", "sms-1")
        await network.wait_for(lambda s: s.recipient == number and "By SMS, please" in s.text)

        sent = before.one("courier_sms_sent_total") + 2  # the gateway's answer follows the SMS at the SMSC
        after = await scrape_until(port, lambda f: f.one("courier_sms_sent_total") >= sent, what="2 SMS sent")
        assert after.one("courier_sms_sent_total") - before.one("courier_sms_sent_total") == 2
        assert after.one("courier_sms_failed_total") == before.one("courier_sms_failed_total")
        assert after.one("courier_sms_outbox") == 0
        assert after.one("courier_hops_total", event="sms") - before.one("courier_hops_total", event="sms") == 1
    finally:
        courier.stop()

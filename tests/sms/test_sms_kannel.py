"""The Kannel transport's HTTP both ways, against a stand-in smsbox (aiohttp, loopback):
what each sendsms answer means, and the secret on the callbacks.  The real Kannel is in
tests/conformance/test_sms.py."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from component.sms import transport as tp
from component.sms.kannel import KannelTransport, kannel_conf
from component.sms.sandbox import free_port


class Smsbox:
    """Answers /cgi-bin/sendsms with a scripted status; remembers the requests."""

    def __init__(self) -> None:
        self.status, self.body = 202, "0: Accepted for delivery"
        self.requests: list[dict[str, str]] = []

    async def sendsms(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.query))
        return web.Response(status=self.status, text=self.body)


@pytest.fixture
async def kannel():
    box = Smsbox()
    app = web.Application()
    app.router.add_get("/cgi-bin/sendsms", box.sendsms)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    got: list[object] = []

    async def on_inbound(sms: tp.InboundSms) -> None:
        if sms.text == "explode":
            raise RuntimeError("not now")
        got.append(sms)

    async def on_report(report: tp.DeliveryReport) -> None:
        got.append(report)

    transport = KannelTransport(f"http://127.0.0.1:{port}", "courier", "pw", "s3cret", "127.0.0.1", free_port())
    await transport.start(on_inbound, on_report)
    yield transport, box, got
    await transport.stop()
    await runner.cleanup()


SMS = tp.OutgoingSms("ref-1", "+12025550100", "+12025550101", "Hello", "GSM-7")


async def test_sendsms_request_and_answers(kannel) -> None:
    transport, box, _ = kannel
    assert await transport.send(SMS) == ["ref-1"]
    q = box.requests[-1]
    assert (q["username"], q["password"], q["from"], q["to"], q["text"], q["charset"]) == (
        "courier", "pw", "+12025550100", "+12025550101", "Hello", "UTF-8",
    )  # fmt: skip
    assert "coding" not in q and q["dlr-mask"] == "31"
    dlr = urlsplit(q["dlr-url"])
    assert parse_qs(dlr.query)["id"] == ["ref-1"] and dlr.query.endswith("&status=%d&answer=%A")
    await transport.send(tp.OutgoingSms("ref-2", "", "+12025550101", "漢字", "UCS-2"))
    assert box.requests[-1]["coding"] == "2" and "from" not in box.requests[-1]

    box.status, box.body = 503, "Temporal failure, try again later."
    with pytest.raises(tp.GatewayUnavailable):
        await transport.send(SMS)
    box.status, box.body = 403, "Authorization failed for sendsms"
    with pytest.raises(tp.GatewayRejected):
        await transport.send(SMS)


async def test_no_gateway_is_unavailable_not_uncertain() -> None:
    transport = KannelTransport(f"http://127.0.0.1:{free_port()}", "u", "p", "s", "127.0.0.1", free_port())
    transport._session = aiohttp.ClientSession()  # (without the callback server)
    try:
        with pytest.raises(tp.GatewayUnavailable):
            await transport.send(SMS)
    finally:
        await transport._session.close()


async def test_callbacks_need_the_secret(kannel) -> None:
    transport, _, got = kannel
    base = f"http://127.0.0.1:{transport.listen_port}/sms"
    async with aiohttp.ClientSession() as http:
        mo = {"from": "+12025550177", "to": "+12025550101", "text": "Hi", "id": "k-1"}
        async with http.get(f"{base}/mo", params={**mo, "secret": "wrong"}) as r:
            assert r.status == 403
        async with http.get(f"{base}/mo", params={**mo, "secret": "s3cret"}) as r:
            assert r.status == 200 and await r.text() == ""  # nothing goes back by SMS
        async with http.post(f"{base}/dlr", data={"secret": "s3cret", "id": "ref-1", "status": "1"}) as r:
            assert r.status == 200
        async with http.get(f"{base}/dlr", params={"secret": "s3cret", "id": "ref-1", "status": "99"}) as r:
            assert r.status == 400
        async with http.get(f"{base}/mo", params={**mo, "text": "explode", "secret": "s3cret"}) as r:
            assert r.status == 500  # not taken: Kannel may try again
    assert got == [
        tp.InboundSms("k-1", "+12025550177", "+12025550101", "Hi"),
        tp.DeliveryReport("ref-1", tp.DELIVERED, ""),
    ]


def test_the_rendered_kannel_configuration() -> None:
    conf = kannel_conf(
        log_dir="/tmp/k", admin_port=1, smsbox_port=2, smsc_port=3, sendsms_port=4, username="courier",
        password="pw", courier_url="http://127.0.0.1:5/", secret="s3",
    )  # fmt: skip
    assert "smsc = fake" in conf and "port = 3" in conf and "sendsms-port = 4" in conf
    assert "max-messages = 0" in conf and "catch-all = true" in conf and "concatenation = true" in conf
    assert 'get-url = "http://127.0.0.1:5/sms/mo?secret=s3&from=%p&to=%P&text=%a&id=%I' in conf

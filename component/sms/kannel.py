"""The Kannel transport: HTTP ``sendsms`` out, MO messages and delivery reports in.

Out: ``GET <kannel_url>/cgi-bin/sendsms`` on smsbox's sendsms port, with
``charset=UTF-8``, ``coding=2`` for UCS-2 texts, ``dlr-mask=31`` and a
``dlr-url`` that carries our id for the SMS (the transport id), so every
delivery report names it.  Kannel answers ``202 0: Accepted for delivery`` (or
``3: Queued for later delivery``); 4xx means refused for good, 5xx (``503
Temporal failure``) and no connection mean try again later.

In: Courier serves two endpoints (aiohttp) that Kannel calls, both requiring
``secret=<sms.secret>``:

- ``/sms/mo?from=%p&to=%P&text=%a&id=%I`` — the ``get-url`` of a catch-all
  ``sms-service`` with ``max-messages = 0`` (Courier answers nothing by SMS);
- ``/sms/dlr?id=<ours>&status=%d&answer=%A`` — the ``dlr-url`` of each SMS.

Kannel's DLR statuses: 1 delivered, 2 failed, 4 buffered, 8 accepted by the
SMSC, 16 rejected by the SMSC.  :func:`kannel_conf` renders a whole Kannel
configuration for this (used by the tests and ``courier up --sms``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from .encoding import UCS2
from .transport import (
    ACCEPTED,
    BUFFERED,
    DELIVERED,
    FAILED,
    DeliveryReport,
    GatewayRejected,
    GatewayUnavailable,
    GatewayUncertain,
    InboundHandler,
    InboundSms,
    OutgoingSms,
    ReportHandler,
    SmsTransport,
)

log = logging.getLogger(__name__)

#: Kannel's dlr status codes (%d) → our report outcomes.
DLR_STATUS = {1: DELIVERED, 2: FAILED, 4: BUFFERED, 8: ACCEPTED, 16: FAILED}
DLR_MASK = 31
#: A connection that could not even be opened in time (aiohttp ≥ 3.10 tells it apart).
_ConnectTimeout: type[Exception] = getattr(aiohttp, "ConnectionTimeoutError", aiohttp.ClientConnectorError)


class KannelTransport(SmsTransport):
    """SMS through a Kannel smsbox (``sendsms``), reports and MO through our HTTP endpoint."""

    name = "kannel"

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        secret: str,
        listen_host: str = "127.0.0.1",
        listen_port: int = 13080,
        public_url: str = "",
        timeout: float = 10.0,
    ) -> None:
        if not secret:
            raise ValueError("the Kannel transport needs a shared secret (sms.secret)")
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.secret = secret
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.public_url = (public_url or f"http://{listen_host}:{listen_port}").rstrip("/")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._on_inbound: InboundHandler | None = None
        self._on_report: ReportHandler | None = None

    # -- life cycle ------------------------------------------------------------

    async def start(self, on_inbound: InboundHandler, on_report: ReportHandler) -> None:
        self._on_inbound, self._on_report = on_inbound, on_report
        # One connection per request: a kept-alive connection to a Kannel that restarted would
        # fail *after* the request was written, which cannot be told from a lost answer.
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout, connect=min(5.0, self.timeout)),
            connector=aiohttp.TCPConnector(force_close=True),
        )
        app = web.Application()
        for path, handler in (("/sms/mo", self._mo), ("/sms/dlr", self._dlr)):
            app.router.add_get(path, handler)
            app.router.add_post(path, handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.listen_host, self.listen_port).start()
        log.info(
            "SMS: Kannel transport, sendsms at %s, reports and MO at http://%s:%d/sms/",
            self.url,
            self.listen_host,
            self.listen_port,
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- out ---------------------------------------------------------------------

    def dlr_url(self, ref: str) -> str:
        query = urlencode({"secret": self.secret, "id": ref})
        # %d and %A are Kannel's escapes, filled in by Kannel: they must stay unencoded.
        return f"{self.public_url}/sms/dlr?{query}&status=%d&answer=%A"

    async def send(self, sms: OutgoingSms) -> list[str]:
        if self._session is None:
            raise GatewayUnavailable("the Kannel transport is not started")
        params = {
            "username": self.username,
            "password": self.password,
            "to": sms.recipient,
            "text": sms.text,
            "charset": "UTF-8",
            "dlr-mask": str(DLR_MASK),
            "dlr-url": self.dlr_url(sms.ref),
        }
        if sms.sender:
            params["from"] = sms.sender
        if sms.encoding == UCS2:
            params["coding"] = "2"
        try:
            async with self._session.get(f"{self.url}/cgi-bin/sendsms", params=params) as response:
                answer = (await response.text()).strip()
                status = response.status
        except (aiohttp.ClientConnectorError, _ConnectTimeout) as exc:
            raise GatewayUnavailable(f"Kannel unreachable: {exc}") from exc  # the request never left
        except TimeoutError as exc:
            raise GatewayUncertain(f"Kannel did not answer within {self.timeout:.0f} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise GatewayUncertain(f"the connection to Kannel broke during the request: {exc!r}") from exc
        if status in (200, 202):
            return [sms.ref]
        if status >= 500:
            raise GatewayUnavailable(f"Kannel: HTTP {status} {answer}")
        raise GatewayRejected(f"Kannel refused it: HTTP {status} {answer}")

    # -- in ------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, str]:
        params = dict(request.query)
        if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        if not hmac.compare_digest(params.get("secret", "").encode(), self.secret.encode()):
            log.warning("SMS: refused a %s from %s: wrong secret", request.path, request.remote)
            raise web.HTTPForbidden(text="wrong secret\n")
        return params

    async def _mo(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        sms = InboundSms(
            transport_id=params.get("id", ""),
            sender=params.get("from", ""),
            recipient=params.get("to", ""),
            text=params.get("text", ""),
        )
        if not sms.sender:
            raise web.HTTPBadRequest(text="from is required\n")
        assert self._on_inbound is not None
        await self._call(self._on_inbound(sms))
        return web.Response(text="")  # nothing goes back by SMS (max-messages = 0)

    async def _dlr(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        try:
            outcome = DLR_STATUS[int(params.get("status", ""))]
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text="unknown status\n") from None
        report = DeliveryReport(params.get("id", ""), outcome, params.get("answer", ""))
        assert self._on_report is not None
        await self._call(self._on_report(report))
        return web.Response(text="")

    @staticmethod
    async def _call(handling: object) -> None:
        try:
            await handling  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("SMS: handling a gateway callback failed")
            raise web.HTTPInternalServerError(text="not taken, try again\n") from None


def kannel_conf(
    *,
    log_dir: str,
    admin_port: int,
    smsbox_port: int,
    smsc_port: int,
    sendsms_port: int,
    username: str,
    password: str,
    courier_url: str,
    secret: str,
    admin_password: str = "courier-admin",
) -> str:
    """A Kannel configuration: bearerbox with a fake SMSC (``smsc = fake``, a TCP port where a
    test or a person plays the phone network), smsbox with sendsms for Courier and a catch-all
    service that passes every MO to Courier.  Everything on 127.0.0.1."""
    mo_url = (
        f"{courier_url.rstrip('/')}/sms/mo?{urlencode({'secret': secret})}"
        "&from=%p&to=%P&text=%a&id=%I&coding=%c&charset=%C"
    )
    return f"""# Kannel for Courier's SMS fallback, rendered by component/sms/kannel.py:kannel_conf().
group = core
admin-port = {admin_port}
admin-interface = 127.0.0.1
admin-password = {admin_password}
admin-allow-ip = 127.0.0.1
smsbox-port = {smsbox_port}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "{log_dir}/bearerbox.log"
log-level = 1
dlr-storage = internal

# The phone network: a fake SMSC.  Connect to its port; every SMS sent comes out as a line
# "FROM TO text …", and a line "FROM TO text Hello" you write is an SMS from FROM to TO.
group = smsc
smsc = fake
smsc-id = fake
port = {smsc_port}
our-host = 127.0.0.1
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox_port}
sendsms-port = {sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{log_dir}/smsbox.log"
log-level = 1
mo-recode = true

group = sendsms-user
username = {username}
password = {password}
concatenation = true
max-messages = 10

group = sms-service
keyword = default
catch-all = true
max-messages = 0
get-url = "{mo_url}"
"""

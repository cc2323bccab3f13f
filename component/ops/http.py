"""``GET /metrics`` (OpenMetrics, or Prometheus text for old scrapers) and ``GET /status``
(JSON for ``courier status``: the connection, uptime, the last warnings and errors).

One aiohttp server (aiohttp is there already for Kannel's callbacks), bound to
``metrics.host`` (loopback by default) on ``metrics.port``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web
from prometheus_client import exposition

from .. import __version__, metrics
from . import service

log = logging.getLogger("courier.metrics")


class MetricsServer:
    """The endpoint of one Courier instance."""

    def __init__(self, courier: Any, host: str, port: int) -> None:
        self.courier = courier
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("Metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        await metrics.refresh(self.courier)
        # OpenMetrics when the scraper asks for it (Prometheus does), else the classic text format
        encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        body = encoder(metrics.REGISTRY)
        log.debug("served /metrics to %s (%s)", request.remote, content_type.split(";")[0])
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _status(self, _request: web.Request) -> web.Response:
        await metrics.refresh(self.courier)
        engine = self.courier.store.engine  # the active Courier: on PostgreSQL it holds the lease
        return web.json_response(status(self.courier.config, engine, "held" if engine == "postgresql" else ""))


def status(config: Any, engine: str, lease: str) -> dict[str, Any]:
    """What ``/status`` says (``courier status`` reads it)."""
    return {
        "version": __version__,
        "jid": config.jid,
        "server": f"{config['xmpp.host']}:{config['xmpp.port']}",
        "connected": bool(metrics.value("courier_connected")),
        "uptime": round(service.uptime(), 1),
        "now": time.time(),
        "log_level": config["log.level"].upper(),
        "store": engine,
        "lease": lease,  # held | standby | '' (SQLite)
        "last_errors": [
            {"at": at, "level": level, "logger": name, "message": text} for at, level, name, text in service.LAST_ERRORS
        ],
    }


class StandbyServer(MetricsServer):
    """The endpoint of a standby Courier (PostgreSQL, waiting for the lease): its status and
    ``courier_active 0``; nothing else runs yet. It stops when the lease is taken, and the
    active Courier's :class:`MetricsServer` takes the port."""

    def __init__(self, config: Any) -> None:
        super().__init__(None, config["metrics.host"], config["metrics.port"])
        self.config = config

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(metrics.REGISTRY), headers={"Content-Type": content_type})

    async def _status(self, _request: web.Request) -> web.Response:
        return web.json_response(status(self.config, "postgresql", "standby"))

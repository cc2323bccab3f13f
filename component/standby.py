"""Active/standby on PostgreSQL: one lease per component JID, held by one Courier at a time.

Prosody takes one connection per component, so a second Courier is a *standby*, not a second
active one. The lease is a PostgreSQL session advisory lock (``pg_try_advisory_lock``) on a
connection of its own: the server releases it the moment that session ends — the Courier
exits, is killed, or its host or network goes — and no lease row can be left stale.

- :func:`take` runs before the store is opened: a Courier that finds the lease held logs that it
  is the standby and tries again every ``store.lease_poll`` seconds, touching nothing else (no
  store, no component connection). When it gets the lease it goes on as the active Courier.
- :func:`fence` watches the lease connection of the active Courier (a termination listener,
  and a ping every second), and the store's connection: if either is lost, Courier drops
  its component connection *at once* and exits with status 4 — another Courier may hold the
  lease a moment later, and two active ones must never write the same store. What it had not committed was never
  acknowledged to Prosody, which re-sends or delivers it itself, as after a SIGKILL.

SQLite needs none of this: its store is a local file behind an flock (store/lock.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Callable
from typing import Any

from . import metrics
from .config import Config
from .ops.http import StandbyServer
from .store.engine import DB_ERRORS, parse_url

log = logging.getLogger(__name__)

LOST_LEASE_EXIT = 4
_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *DB_ERRORS)


class Stopped(Exception):
    """Told to stop (SIGTERM) while waiting as the standby."""


def lease_key(jid: str) -> int:
    """The advisory-lock key of a component JID: one lease per Prosody domain's Courier."""
    return int.from_bytes(hashlib.sha256(f"courier-lease:{jid}".encode()).digest()[:8], "big", signed=True)


class Lease:
    """The lease of *jid* on the PostgreSQL server at *dsn*."""

    def __init__(self, dsn: str, jid: str, poll: float = 0.5) -> None:
        self.dsn, self.jid, self.poll = dsn, jid, poll
        self.key = lease_key(jid)
        self.conn: Any = None
        self._watch: asyncio.Task[None] | None = None
        self._lost = False

    async def _try(self) -> bool:
        import asyncpg

        if self.conn is None or self.conn.is_closed():
            self.conn = await asyncpg.connect(self.dsn, timeout=5)
        return bool(await self.conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key))

    async def acquire(self, stop: asyncio.Event) -> None:
        """Wait until this Courier holds the lease; :class:`Stopped` if *stop* is set first."""
        told = ""
        while not stop.is_set():
            try:
                if await self._try():
                    log.info("Lease of %s taken: this Courier is the active one", self.jid)
                    return
                note = "standby"
                if told != note:
                    log.warning(
                        "Standby: another Courier holds the lease of %s; taking over when it goes "
                        "(checking every %.1f s)",
                        self.jid,
                        self.poll,
                    )
            except _ERRORS as exc:
                note = "unreachable"
                if told != note:
                    log.warning("Standby: cannot reach PostgreSQL for the lease (%s); retrying", exc)
                await self._drop()
            told = note
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll)
        await self._drop()
        raise Stopped()

    def watch(self, on_lost: Callable[[str], None], interval: float = 1.0) -> None:
        """Call *on_lost* (once) when the lease connection goes."""

        def lost(why: str) -> None:
            if not self._lost:
                self._lost = True
                on_lost(why)

        self.conn.add_termination_listener(lambda _conn: lost("the lease connection was closed"))

        async def ping() -> None:
            while not self._lost:
                await asyncio.sleep(interval)
                try:
                    await asyncio.wait_for(self.conn.fetchval("SELECT 1"), max(interval, 2.0))
                except _ERRORS as exc:
                    lost(f"the lease connection does not answer ({exc or type(exc).__name__})")

        self._watch = asyncio.create_task(ping(), name="courier-lease-watch")

    async def _drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.terminate()
            self.conn = None


async def take(config: Config, stop: asyncio.Event) -> Lease | None:
    """PostgreSQL: wait to be the active Courier (the lease); SQLite: nothing to take (None)."""
    engine, dsn = parse_url(config.store_url)
    if engine != "postgresql":
        metrics.ACTIVE.set(1)
        return None
    lease = Lease(dsn, config.jid, config["store.lease_poll"])
    endpoint = StandbyServer(config) if config["metrics.port"] else None  # `courier status` says "standby"
    if endpoint is not None:
        try:
            await endpoint.start()
        except OSError as exc:  # e.g. the active Courier on this machine has the port: wait without it
            log.warning("Standby: no metrics endpoint on port %s (%s)", config["metrics.port"], exc)
            endpoint = None
    try:
        await lease.acquire(stop)
    finally:
        if endpoint is not None:
            await endpoint.stop()
    metrics.ACTIVE.set(1)
    return lease


def fence(lease: Lease | None, xmpp: Any) -> None:
    """Losing the lease: drop the component connection at once, then exit (status 4)."""
    if lease is None:
        return

    store = getattr(xmpp, "store", None)

    def lost(why: str) -> None:
        if getattr(store, "_closing", False):  # a clean stop closes the store's connection itself
            return
        log.critical("Lease of %s lost (%s): disconnecting now and exiting; a standby takes over", lease.jid, why)
        with contextlib.suppress(Exception):
            xmpp.abort()  # slixmpp: close the transport now, no stream end, no waiting
        logging.shutdown()
        os._exit(LOST_LEASE_EXIT)

    lease.watch(lost)
    raw = getattr(getattr(store, "_conn", None), "raw", None)  # the store's asyncpg session
    if raw is not None:  # it went (the server restarted, an admin ended it): the same, rather than retry for ever
        raw.add_termination_listener(lambda _conn: lost("the store's connection was closed"))


__all__ = ["LOST_LEASE_EXIT", "Lease", "Stopped", "fence", "lease_key", "take"]

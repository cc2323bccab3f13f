"""What every ``courier client`` command shares: exit codes, :class:`Problem`, :class:`Output`,
the :class:`CourierClient` session (slixmpp's ``ClientXMPP`` with our protocol-only plugins)
and the :data:`COMMANDS` registry each feature module (:mod:`.client` for courier-hops,
:mod:`.receipts`, :mod:`.drafts`, :mod:`.lists`) adds its commands to.  Client side only:
nothing here (or in ``cli/``) imports the server."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from slixmpp import ClientXMPP

from ..xep import hops, receipts

OK, XMPP_ERROR, USAGE = 0, 1, 2

#: Report states after which nothing more happens to a message.
TERMINAL = frozenset({"read", "recalled", "retracted", "failed", "sms-delivered"})

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

NOT_FOUND = "no message of yours has that id"
NOT_RECEIVED = "you received no message with that id"

log = logging.getLogger("component.cli.client")


class Problem(Exception):
    """A failure reported to the user: *message* on stderr, exit *code*."""

    def __init__(self, message: str, code: int = USAGE, **fields: Any) -> None:
        super().__init__(message)
        self.code = code
        self.fields = fields


class Output:
    """Human lines or one JSON object per line, on stdout; errors on stderr."""

    def __init__(self, as_json: bool) -> None:
        self.json = as_json

    def emit(self, line: str, /, **fields: Any) -> None:
        print(json.dumps(fields, ensure_ascii=False) if self.json else line, flush=True)

    def status(self, line: str, /, **fields: Any) -> None:
        """A progress line: on stderr for humans, a JSON object on stdout."""
        if self.json:
            print(json.dumps(fields, ensure_ascii=False), flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def error(self, problem: Problem) -> None:
        print(f"courier client: {problem}", file=sys.stderr, flush=True)
        if self.json:
            print(json.dumps({"type": "error", "message": str(problem), **problem.fields}), flush=True)


# -- the XMPP session ------------------------------------------------------------


class CourierClient(ClientXMPP):
    """A ``ClientXMPP`` with the courier-hops plugin, for one command."""

    def __init__(self, jid: str, password: str, *, plain: bool) -> None:
        super().__init__(jid, password)
        for plugin in ("xep_0030", "xep_0184", "xep_0308", "xep_0333", "xep_0359", "xep_0424"):
            self.register_plugin(plugin)
        self.register_plugin("courier_hops", module=hops)
        self.hops: hops.XEP_CourierHops = self.plugin["courier_hops"]  # type: ignore[typeddict-item]
        self.register_plugin("courier_receipts", module=receipts)
        self.receipts: receipts.XEP_CourierReceipts = self.plugin["courier_receipts"]  # type: ignore[typeddict-item]
        # a terminal tool displays nothing it receives: never claim receipt of anything
        self.plugin["xep_0184"].auto_ack = False
        self.plugin["xep_0184"].auto_request = False
        if plain:
            self.plugin["feature_mechanisms"].unencrypted_plain = True
            self.enable_plaintext = True
            self.enable_starttls = False
            self.enable_direct_tls = False
        else:
            self.enable_plaintext = False
            self.enable_starttls = True
            self.enable_direct_tls = False

    async def login(self, host: str, port: int, timeout: float) -> None:
        """Connect, authenticate and bind, or raise :class:`Problem` (exit 2)."""
        outcome: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        auth_failed = False
        who = self.boundjid.bare

        def settle(error: str | None) -> None:
            if not outcome.done():
                outcome.set_result(error)

        def on_failed_auth(_event: Any) -> None:
            nonlocal auth_failed
            auth_failed = True

        def on_disconnected(_event: Any) -> None:
            settle(f"authentication failed for {who}" if auth_failed else f"{host}:{port} closed the connection")

        def on_connection_failed(error: Any) -> None:
            errno = getattr(error, "errno", None)
            reason = os.strerror(errno) if errno else str(error)
            settle(f"cannot connect to {host}:{port}: {reason}")

        handlers: dict[str, Callable[[Any], None]] = {
            "session_start": lambda _e: settle(None),
            "failed_auth": on_failed_auth,
            "failed_all_auth": lambda _e: settle(f"authentication failed for {who}"),
            "connection_failed": on_connection_failed,
            "disconnected": on_disconnected,
        }
        for name, handler in handlers.items():
            self.add_event_handler(name, handler)
        self.connect(host, port)
        try:
            error = await asyncio.wait_for(asyncio.shield(outcome), timeout)
        except TimeoutError:
            error = f"no XMPP session with {host}:{port} within {timeout:g} s"
        finally:
            for name, handler in handlers.items():
                self.del_event_handler(name, handler)
        if error is not None:
            self.cancel_connection_attempt()
            self.abort()
            raise Problem(error, USAGE, condition="connection")

    async def logout(self, wait: float = 2.0) -> None:
        """Close the stream (after what is queued is sent); force it closed after *wait*."""
        self.cancel_connection_attempt()
        if self.transport is None:
            return
        try:
            await asyncio.wait_for(self.disconnect(wait=wait), wait + 1)
        except TimeoutError:
            self.abort()


async def wait_any(events: list[asyncio.Event], seconds: float | None) -> None:
    """Until one of *events* is set, or *seconds* pass (``None``: no limit)."""
    tasks = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


#: subcommand -> its coroutine (client, args, output, stop event) -> exit code.
Command = Callable[["CourierClient", argparse.Namespace, Output, asyncio.Event], Awaitable[int]]
COMMANDS: dict[str, Command] = {}


__all__ = ["COMMANDS", "OK", "USAGE", "XMPP_ERROR", "CourierClient", "Output", "Problem", "wait_any"]


def connection_options(*, defaults: bool) -> argparse.ArgumentParser:
    """The connection options. They are accepted before the subcommand
    (``courier client --jid A send …``, with the defaults) and after it
    (``courier client send --jid A …``, without defaults, so that they never
    overwrite a value given before the subcommand)."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument("--jid", default=default(None), help="your account, USER@DOMAIN (default: $COURIER_JID)")
    group.add_argument("--password", default=default(None), help="your password (default: $COURIER_PASSWORD)")
    group.add_argument("--host", default=default("127.0.0.1"), help="the server's address (default: 127.0.0.1)")
    group.add_argument("--port", type=int, default=default(5222), help="the server's client port (default: 5222)")
    group.add_argument(
        "--courier", default=default(None), help="Courier's JID (default: courier.<the domain of --jid>)"
    )
    group.add_argument(
        "--plain",
        action=argparse.BooleanOptionalAction,
        default=default(None),
        help="log in with a plain-text password without TLS (default: on for 127.0.0.1/localhost only)",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=default(10.0),
        help="seconds for login and each request (default: 10)",
    )
    group.add_argument(
        "--json", action="store_true", default=default(False), help="machine-readable output: one JSON object per line"
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=default(False), help="log the XMPP traffic to stderr"
    )
    return common

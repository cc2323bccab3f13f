"""``courier client``: the client side of courier-hops (xeps/courier-hops.xml), from a terminal.

One short-lived XMPP session per command, on slixmpp's ``ClientXMPP`` with the
``courier_hops`` plugin of :mod:`component.xep.hops` and the standard
XEP-0184/0308/0333/0359/0424 plugins:

- ``send TO TEXT`` sends a chat message that asks for hop reports (``<request/>``,
  a XEP-0184 request and a XEP-0333 markable) with a XEP-0359 origin-id, prints its
  id and, with ``--watch``, every report until a terminal state;
- ``watch`` prints every report for this account, whichever device sent the message;
- ``trace ID``, ``pending``, ``recall ID``, ``edit ID TEXT`` are the plugin's IQs;
- receipt policies (:mod:`.receipts`), drafts (:mod:`.drafts`) and lists (:mod:`.lists`)
  add their own subcommands; the shared parts are in :mod:`.base`.

``--json`` prints one JSON object per line on stdout (``type`` says which).
Exit codes: 0 ok; 1 an XMPP error answered (or the message was reported failed);
2 usage, connection, login or time-out problem.  Human-readable errors go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import uuid
from collections.abc import Callable
from typing import Any

from slixmpp import JID, Message
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.jid import InvalidJID

from ..namespaces import NS_HOPS
from .base import (
    COMMANDS,
    LOOPBACK,
    NOT_FOUND,
    NOT_RECEIVED,
    OK,
    TERMINAL,
    XMPP_ERROR,
    CourierClient,
    Output,
    Problem,
    connection_options,
    log,
    wait_any,
)
from .drafts import add_parsers as add_draft_parsers  # courier-drafts: draft, drafts, draft-send…
from .lists import add_parsers as add_list_parsers  # courier-lists: lists, list-create, list-send…
from .receipts import add_parsers as add_receipt_parsers  # courier-receipts: policy, policy-of, confirm
from .receipts import check_usage

# -- reports -------------------------------------------------------------------


def report_fields(msg: Message) -> dict[str, str]:
    r = msg["hops_report"]
    return {
        "type": "report",
        "id": r["id"],
        "origin_id": r["origin_id"],
        "to": r["to"],
        "state": r["state"],
        "at": r["at"],
        "place": r["place"],
        "note": r["note"],
    }


def hop_line(at: str, state: str, place: str, note: str) -> str:
    return f"{at}  {state:<9}  {place}" + (f"  {note}" if note else "")


def on_reports(client: CourierClient, courier: str, handler: Callable[[dict[str, str]], None]) -> None:
    """Call *handler* with every report from *courier* (reports from anybody else are ignored)."""

    def check(msg: Message) -> None:
        if msg["from"].bare != courier:
            log.warning("ignored a report from %s (not %s)", msg["from"], courier)
            return
        handler(report_fields(msg))

    client.add_event_handler("hops_report", check)


# -- commands ------------------------------------------------------------------


async def cmd_send(client: CourierClient, args: argparse.Namespace, out: Output, stop: asyncio.Event) -> int:
    try:
        to = JID(args.to)
    except InvalidJID as exc:
        raise Problem(f"not a JID: {args.to!r} ({exc})") from None
    if not to.user:
        raise Problem(f"send to a user JID (USER@DOMAIN), not {args.to!r}")
    msg_id = args.id or str(uuid.uuid4())
    done = asyncio.Event()
    final: list[str] = []

    def report(fields: dict[str, str]) -> None:
        if msg_id not in (fields["id"], fields["origin_id"]):
            return
        out.emit(hop_line(fields["at"], fields["state"], fields["place"], fields["note"]), **fields)
        if fields["state"] in TERMINAL:
            final.append(fields["state"])
            done.set()

    def bounced(msg: Message) -> None:
        if msg["id"] != msg_id:
            return
        condition, text = msg["error"]["condition"], msg["error"]["text"]
        out.emit(f"error  {condition}  {text}", type="error", id=msg_id, condition=condition, text=text)
        final.append("failed")
        done.set()

    if args.watch is not None:
        on_reports(client, args.courier, report)
        client.add_event_handler("message_error", bounced)
        client.send_presence()  # reports go to the bare JID: only available resources get them
    msg = client.make_message(mto=to.bare, mbody=args.text, mtype="chat")
    msg["id"] = msg_id
    msg["origin_id"]["id"] = msg_id
    msg["request_receipt"] = True  # so the recipient's client acknowledges: "received"
    msg.enable("markable")  # ... and marks it displayed: "read"
    client.hops.request_reports(msg)
    msg.send()
    out.emit(msg_id, type="sent", id=msg_id, origin_id=msg_id, to=to.bare)
    if args.watch is not None:
        await wait_any([done, stop], args.watch)
    return XMPP_ERROR if final == ["failed"] else OK


async def cmd_watch(client: CourierClient, args: argparse.Namespace, out: Output, stop: asyncio.Event) -> int:
    def report(fields: dict[str, str]) -> None:
        line = hop_line(fields["at"], fields["state"], fields["place"], fields["note"])
        out.emit(f"{fields['id']} → {fields['to']}  {line}", **fields)

    on_reports(client, args.courier, report)
    client.send_presence()
    # a round trip: once it is answered the server has our presence, so every later report reaches us
    await client.plugin["xep_0030"].get_info(jid=client.boundjid.domain, timeout=args.timeout)
    who = client.boundjid.bare
    out.status(f"watching the hop reports of {who} (Ctrl-C stops)", type="watching", jid=who)
    await wait_any([stop], args.seconds)
    return OK


async def cmd_trace(client: CourierClient, args: argparse.Namespace, out: Output, stop: asyncio.Event) -> int:
    t = (await client.hops.get_trace(args.courier, args.id, timeout=args.timeout))["hops_trace"]
    hop_list = [{"state": h["state"], "at": h["at"], "place": h["place"], "note": h["note"]} for h in t["hops"]]
    lines = [f"{t['id']} → {t['to']}: {t['state']}" + (" (🔒 encrypted)" if t["encrypted"] == "true" else "")]
    if t["origin_id"] and t["origin_id"] != t["id"]:
        lines[0] += f" (origin-id {t['origin_id']})"
    lines += ["  " + hop_line(h["at"], h["state"], h["place"], h["note"]) for h in hop_list]
    out.emit(
        "\n".join(lines),
        type="trace",
        id=t["id"],
        origin_id=t["origin_id"],
        to=t["to"],
        state=t["state"],
        hops=hop_list,
    )
    return OK


async def cmd_pending(client: CourierClient, args: argparse.Namespace, out: Output, stop: asyncio.Event) -> int:
    messages = (await client.hops.get_pending(args.courier, timeout=args.timeout))["hops_pending"]["messages"]
    if not messages and not out.json:
        out.emit("no held messages")
    for m in messages:
        text = f"🔒 encrypted message to {m['to']}" if m["encrypted"] == "true" else m["body"]  # never a fallback
        out.emit(
            f"{m['id']}  → {m['to']}  {m['state']:<6}  since {m['since']}  {text}",
            type="pending",
            id=m["id"],
            to=m["to"],
            state=m["state"],
            since=m["since"],
            body=m["body"], encrypted=m["encrypted"] == "true",
        )
    return OK


async def cmd_recall(client: CourierClient, args: argparse.Namespace, out: Output, stop: asyncio.Event) -> int:
    try:
        await client.hops.recall(args.courier, args.id, timeout=args.timeout)
    except IqError as exc:
        if exc.iq["error"]["condition"] != "not-allowed" or not args.retract:
            raise
        if passed_on(exc):  # the recipient's server had delivered it: Courier sent the retraction
            out.emit(f"retraction sent for {args.id} by Courier: {exc.iq['error']['text']}",
                     type="retraction-sent", id=args.id, by="courier")  # fmt: skip
            return OK
        return await _after_release(client, args, out, "retract")
    out.emit(f"recalled {args.id}", type="recalled", id=args.id)
    return OK


async def cmd_edit(client: CourierClient, args: argparse.Namespace, out: Output, stop: asyncio.Event) -> int:
    try:
        await client.hops.edit(args.courier, args.id, args.text, timeout=args.timeout)
    except IqError as exc:
        if exc.iq["error"]["condition"] != "not-allowed" or not args.correct:
            raise
        if passed_on(exc):  # the recipient's server had delivered it: Courier sent the correction
            out.emit(f"correction sent for {args.id} by Courier: {exc.iq['error']['text']}",
                     type="correction-sent", id=args.id, by="courier", body=args.text)  # fmt: skip
            return OK
        return await _after_release(client, args, out, "correct")
    out.emit(f"edited {args.id}", type="edited", id=args.id, body=args.text)
    return OK


def passed_on(exc: IqError) -> bool:
    """courier-hops 0.4.0: Courier passed the standard retraction / correction on itself
    (``<passed-on/>`` in the not-allowed error): it must not be sent a second time."""
    return exc.iq["error"].xml.find(f"{{{NS_HOPS}}}passed-on") is not None


async def _after_release(client: CourierClient, args: argparse.Namespace, out: Output, action: str) -> int:
    """The message has left the server: send the standard retraction / correction to its recipient."""
    t = (await client.hops.get_trace(args.courier, args.id, timeout=args.timeout))["hops_trace"]
    if t["state"] in ("recalled", "retracted", "failed"):
        raise Problem(f"message {args.id} is {t['state']}: there is nothing to change", XMPP_ERROR)
    if action == "retract":
        # XEP-0424 names the message by its origin-id when it has one
        client.plugin["xep_0424"].send_retraction(JID(t["to"]), t["origin_id"] or t["id"])
        out.emit(f"retraction sent for {args.id} to {t['to']}", type="retraction-sent", id=args.id, to=t["to"])
    else:
        correction = client.plugin["xep_0308"].build_correction(t["id"], JID(t["to"]), mbody=args.text)
        correction["origin_id"]["id"] = correction["id"]
        correction.send()
        out.emit(
            f"correction sent for {args.id} to {t['to']}",
            type="correction-sent",
            id=args.id,
            to=t["to"],
            body=args.text,
        )
    return OK


def explain(exc: IqError, args: argparse.Namespace) -> Problem:
    """An error answer as a message for the user (exit 1)."""
    error = exc.iq["error"]
    condition, text = error["condition"], error["text"]
    message = f"{condition}: {text}" if text else condition
    msg_id = getattr(args, "id", None)
    if condition == "item-not-found" and args.client_command == "confirm":
        message = f"item-not-found: {NOT_RECEIVED} ({msg_id})"
    elif condition == "item-not-found" and msg_id is not None:
        message = f"item-not-found: {NOT_FOUND} ({msg_id})"
    elif condition == "not-allowed" and passed_on(exc):
        pass  # (the text says it: Courier passed the standard retraction / correction on)
    elif condition == "not-allowed" and args.client_command == "recall":
        message += (
            f"\nmessage {msg_id} is no longer held (it was already released), so it cannot be recalled;"
            f" a XEP-0424 retraction can be sent to the recipient instead: courier client recall {msg_id} --retract"
        )
    elif condition == "not-allowed" and args.client_command == "edit":
        message += (
            f"\nmessage {msg_id} is no longer held (it was already released), so it cannot be edited;"
            f" a XEP-0308 correction can be sent to the recipient instead: courier client edit {msg_id} TEXT --correct"
        )
    elif condition == "service-unavailable":
        message += f" (is Courier running at {args.courier}?)"
    return Problem(message, XMPP_ERROR, condition=condition, text=text)


COMMANDS.update(
    {
        "send": cmd_send,
        "watch": cmd_watch,
        "trace": cmd_trace,
        "pending": cmd_pending,
        "recall": cmd_recall,
        "edit": cmd_edit,
    }
)


# -- entry points ------------------------------------------------------------------


async def _session(args: argparse.Namespace, out: Output) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    client = CourierClient(args.jid, args.password, plain=args.plain)
    try:
        await client.login(args.host, args.port, args.timeout)
        try:
            return await COMMANDS[args.client_command](client, args, out, stop)
        except IqError as exc:
            raise explain(exc, args) from None
        except IqTimeout:
            raise Problem(f"no answer from {args.courier} within {args.timeout:g} s (is Courier running?)") from None
    finally:
        await client.logout()


def _resolve(args: argparse.Namespace) -> None:
    """Environment defaults and derived options; :class:`Problem` on bad usage."""
    args.jid = args.jid or os.environ.get("COURIER_JID")
    if not args.jid:
        raise Problem("--jid USER@DOMAIN is required (or set COURIER_JID)")
    try:
        jid = JID(args.jid)
    except InvalidJID as exc:
        raise Problem(f"--jid: not a JID: {args.jid!r} ({exc})") from None
    if not jid.user:
        raise Problem(f"--jid must be USER@DOMAIN, not {args.jid!r}")
    if not jid.resource:  # one resource per run, so that concurrent runs do not replace each other
        jid.resource = f"courier-cli-{uuid.uuid4().hex[:8]}"
    args.jid = jid.full
    args.password = args.password if args.password is not None else os.environ.get("COURIER_PASSWORD")
    if args.password is None:
        raise Problem("--password is required (or set COURIER_PASSWORD)")
    args.courier = args.courier or f"courier.{jid.domain}"
    if args.plain is None:
        args.plain = args.host in LOOPBACK
    if args.timeout <= 0:
        raise Problem("--timeout must be positive")
    check_usage(args)


def run(args: argparse.Namespace) -> int:
    """Run one ``courier client`` command; the exit code."""
    out = Output(args.json)
    logging.getLogger("slixmpp").setLevel(logging.DEBUG if args.verbose else logging.CRITICAL)
    logging.getLogger(__name__).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        _resolve(args)
        return asyncio.run(_session(args, out))
    except Problem as problem:
        out.error(problem)
        return problem.code
    except KeyboardInterrupt:
        return OK


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``courier client`` and its subcommands on *subparsers*."""
    common = connection_options(defaults=False)
    client = subparsers.add_parser(
        "client",
        parents=[connection_options(defaults=True)],
        help="the client side of Courier: send with hop reports, watch, trace, pending, recall, edit, receipt policies",
        description="A client of Courier (courier-hops). Exit codes: 0 ok, 1 XMPP error, 2 usage or connection error.",
    )
    sub = client.add_subparsers(dest="client_command", required=True, metavar="COMMAND")

    send = sub.add_parser("send", parents=[common], help="send a chat message that asks for hop reports")
    send.add_argument("to", metavar="TO", help="the recipient, USER@DOMAIN")
    send.add_argument("text", metavar="TEXT")
    send.add_argument("--id", help="the message id and XEP-0359 origin-id (default: a UUID)")
    send.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="print its hop reports for up to SECONDS, or until read/recalled/retracted/failed",
    )

    watch = sub.add_parser("watch", parents=[common], help="print every hop report for this account")
    watch.add_argument("--seconds", type=float, default=None, help="stop after N seconds (default: at Ctrl-C)")

    trace = sub.add_parser("trace", parents=[common], help="the route record of one of your messages")
    trace.add_argument("id", metavar="ID", help="the message's id or origin-id")

    sub.add_parser("pending", parents=[common], help="your messages still held at the server")

    recall = sub.add_parser("recall", parents=[common], help="withdraw a held message: it is never delivered")
    recall.add_argument("id", metavar="ID")
    recall.add_argument(
        "--retract", action="store_true", help="if it was already released, send a XEP-0424 retraction instead"
    )

    edit = sub.add_parser("edit", parents=[common], help="replace the text of a held message")
    edit.add_argument("id", metavar="ID")
    edit.add_argument("text", metavar="TEXT")
    edit.add_argument(
        "--correct", action="store_true", help="if it was already released, send a XEP-0308 correction instead"
    )

    add_receipt_parsers(sub, common)
    add_draft_parsers(sub, common)
    add_list_parsers(sub, common)
    client.set_defaults(func=run)
    return client


__all__ = ["CourierClient", "add_parser", "run"]

"""``courier client draft …``: the client side of courier-drafts (xeps/courier-drafts.xml).

- ``draft TO TEXT [--at TIME | --in DURATION | --when-online | --when-from JID] [--remind]``
  stores a draft and prints Courier's confirmation (its id);
- ``drafts`` prints every pending draft (the target → drafts map);
- ``draft-send N``, ``draft-edit N TEXT``, ``draft-postpone N WHEN``, ``draft-delete N``.

TIME is what the bot understands (``09:00 Europe/Paris``, ``tomorrow 18:30``,
ISO 8601, ``in 10m``); the client turns it into an instant with its offset.
Registered into :data:`component.cli.base.COMMANDS` by :func:`add_parsers`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from ..when import DraftError, local_time, parse_when
from ..xep import drafts as xep_drafts
from ..xep.drafts import DraftInfo, TriggerInfo
from . import base as cli

TRIGGER_WORDS = {
    "at": "at {time}",
    "target-online": "when {to} comes online",
    "message-from": "when {jid} writes",
    "manual": "when you send it",
}


def _plugin(client: cli.CourierClient) -> xep_drafts.XEP_CourierDrafts:
    client.register_plugin("courier_drafts", module=xep_drafts)  # once: enabling again is a no-op
    return client.plugin["courier_drafts"]  # type: ignore[typeddict-item,no-any-return]


def _time(text: str) -> TriggerInfo:
    try:
        instant, zone = parse_when(text, time.time())
    except DraftError as exc:
        raise cli.Problem(str(exc)) from None
    moment = local_time(instant, zone).isoformat(timespec="seconds").replace("+00:00", "Z")
    return TriggerInfo("at", time=moment, tz=zone if "/" in zone else "")


def _fields(info: DraftInfo) -> dict[str, Any]:
    trigger = info.trigger or TriggerInfo()
    return {
        "id": info.id, "to": info.to, "body": info.body or "", "action": info.action, "state": info.state,
        "trigger": trigger.type, "time": trigger.time, "tz": trigger.tz, "jid": trigger.jid,
    }  # fmt: skip


def _line(info: DraftInfo) -> str:
    trigger = info.trigger or TriggerInfo()
    when = TRIGGER_WORDS.get(trigger.type, trigger.type).format(
        time=f"{trigger.time}{' ' + trigger.tz if trigger.tz else ''}", to=info.to, jid=trigger.jid
    )
    then = "remind me" if info.action == "remind" else "send"
    return f"{info.id}  → {info.to}  {then} {when}  {info.body}"


async def cmd_draft(client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event) -> int:
    given = [x for x in (args.at, args.within, args.when_from) if x] + (["online"] if args.when_online else [])
    if len(given) > 1:
        raise cli.Problem("give one of --at, --in, --when-online, --when-from")
    trigger = TriggerInfo()
    if args.at:
        trigger = _time(args.at)
    elif args.within:
        trigger = _time("in " + args.within)
    elif args.when_online:
        trigger = TriggerInfo("target-online")
    elif args.when_from:
        trigger = TriggerInfo("message-from", jid=args.when_from)
    info = DraftInfo(to=args.to, body=args.text, action="remind" if args.remind else "send", trigger=trigger)
    stored = await _plugin(client).store(args.courier, info, timeout=args.timeout)
    out.emit(f"stored draft {stored.id}: {_line(stored)}", type="stored", **_fields(stored))
    return cli.OK


async def cmd_drafts(client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event) -> int:
    by_target = await _plugin(client).sync(args.courier, timeout=args.timeout)
    if not by_target and not out.json:
        out.emit("no pending drafts")
    for drafts in by_target.values():
        for info in drafts:
            out.emit(_line(info), type="draft", **_fields(info))
    return cli.OK


async def cmd_draft_send(
    client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event
) -> int:
    message_id = await _plugin(client).fire(args.courier, args.draft, timeout=args.timeout)
    out.emit(f"sent draft {args.draft} (message id {message_id})", type="fired", id=args.draft, message_id=message_id)
    return cli.OK


async def cmd_draft_edit(
    client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event
) -> int:
    info = await _plugin(client).update(args.courier, args.draft, DraftInfo(body=args.text), timeout=args.timeout)
    out.emit(f"changed draft {info.id}: {_line(info)}", type="updated", **_fields(info))
    return cli.OK


async def cmd_draft_postpone(
    client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event
) -> int:
    changes = DraftInfo(trigger=_time(args.when))
    info = await _plugin(client).update(args.courier, args.draft, changes, timeout=args.timeout)
    out.emit(f"postponed draft {info.id}: {_line(info)}", type="updated", **_fields(info))
    return cli.OK


async def cmd_draft_delete(
    client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event
) -> int:
    await _plugin(client).delete(args.courier, args.draft, timeout=args.timeout)
    out.emit(f"deleted draft {args.draft}", type="deleted", id=args.draft)
    return cli.OK


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the draft subcommands to ``courier client`` (and their handlers to its COMMANDS)."""
    cli.COMMANDS.update(
        {
            "draft": cmd_draft,
            "drafts": cmd_drafts,
            "draft-send": cmd_draft_send,
            "draft-edit": cmd_draft_edit,
            "draft-postpone": cmd_draft_postpone,
            "draft-delete": cmd_draft_delete,
        }
    )
    when = "TIME: 09:00 [ZONE], tomorrow 18:30 [ZONE], ISO 8601 with an offset, or in 10m"
    draft = sub.add_parser(
        "draft", parents=[common], help="store a draft on the server, sent (or a reminder) when its trigger fires"
    )
    draft.add_argument("to", metavar="TO", help="the contact, USER@DOMAIN")
    draft.add_argument("text", metavar="TEXT")
    draft.add_argument("--at", metavar="TIME", help=f"send at a time; {when}")
    draft.add_argument("--in", dest="within", metavar="DURATION", help="send after a while: 10m, 2h30m, 1d")
    draft.add_argument("--when-online", action="store_true", help="send when TO comes online")
    draft.add_argument("--when-from", metavar="JID", help="send when a message from JID reaches you")
    draft.add_argument("--remind", action="store_true", help="remind me instead of sending it")
    sub.add_parser("drafts", parents=[common], help="your pending drafts, by contact")
    for name, help_text in (("draft-send", "send a draft now"), ("draft-delete", "delete a draft")):
        p = sub.add_parser(name, parents=[common], help=help_text)
        p.add_argument("draft", metavar="N", help="the draft's number")
    edit = sub.add_parser("draft-edit", parents=[common], help="replace a draft's text")
    edit.add_argument("draft", metavar="N")
    edit.add_argument("text", metavar="TEXT")
    postpone = sub.add_parser("draft-postpone", parents=[common], help="a new time for a draft")
    postpone.add_argument("draft", metavar="N")
    postpone.add_argument("when", metavar="TIME", help=when)


__all__ = ["add_parsers"]

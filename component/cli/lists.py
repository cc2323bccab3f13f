"""``courier client list …``: the client side of courier-lists (xeps/courier-lists.xml).

- ``lists`` prints your lists; ``list NAME`` one list with its members;
- ``list-create NAME JID… [--temporary | --until TIME]``, ``list-add NAME JID…``,
  ``list-remove NAME JID…``, ``list-rename NAME NEW``, ``list-delete NAME``;
- ``list-send NAME TEXT [--only JID]`` fans TEXT out and prints the aggregate status;
- ``fanouts`` prints your newest fan-outs; ``fanout ID`` one with every copy;
  ``fanout-recall ID`` recalls it.

TIME is ISO 8601 (``2026-11-24T02:00Z``; no offset means UTC).  Registered into
:data:`component.cli.base.COMMANDS` by :func:`add_parsers`.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from ..xep import lists as xep_lists
from . import base as cli


def _plugin(client: cli.CourierClient) -> xep_lists.XEP_CourierLists:
    client.register_plugin("courier_lists", module=xep_lists)  # once: enabling again is a no-op
    return client.plugin["courier_lists"]  # type: ignore[typeddict-item,no-any-return]


def _list_fields(item: Any) -> dict[str, Any]:
    return {
        "name": item["name"], "jid": item["jid"], "count": int(item["count"] or 0), "created": item["created"],
        "expires": item["expires"], "members": item.jids(),
    }  # fmt: skip


def _list_line(item: Any) -> str:
    until = f", until {item['expires']}" if item["expires"] else ""
    return f"{item['name']}  {item['jid']}  {item['count']} member(s){until}"


def _fanout_fields(element: Any) -> dict[str, Any]:
    return {
        "id": element["id"], "list": element["list"], "at": element["at"], "total": int(element["total"] or 0),
        **element.counts(), "copies": [{"to": c["to"], "id": c["id"], "state": c["state"]} for c in element["copies"]],
    }  # fmt: skip


def _fanout_line(element: Any) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in element.counts().items() if n)
    target = f"“{element['list']}”" if element["list"] else "addresses"
    return f"fan-out {element['id']} to {target} at {element['at']}: {element['total']} copies: {counts}"


async def _show_list(out: cli.Output, iq: Any, kind: str) -> int:
    item = iq["lists_list"]
    lines = [_list_line(item)] + [f"  {jid}" for jid in item.jids()]
    out.emit("\n".join(lines), type=kind, **_list_fields(item))
    return cli.OK


async def _show_fanout(out: cli.Output, iq: Any, kind: str) -> int:
    element = iq["lists_fanout"]
    lines = [_fanout_line(element)] + [f"  {c['to']}  {c['state']}  {c['id']}" for c in element["copies"]]
    out.emit("\n".join(lines), type=kind, **_fanout_fields(element))
    return cli.OK


async def cmd_lists(client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event) -> int:
    items = (await _plugin(client).get_lists(args.courier, timeout=args.timeout))["lists_lists"]["items"]
    if not items and not out.json:
        out.emit("no lists")
    for item in items:
        out.emit(_list_line(item), type="list", **_list_fields(item))
    return cli.OK


async def cmd_list(client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event) -> int:
    return await _show_list(out, await _plugin(client).get_list(args.courier, args.name, timeout=args.timeout), "list")


async def cmd_list_create(
    client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event
) -> int:
    expires = None
    if args.until:
        try:
            moment = datetime.fromisoformat(args.until.replace("Z", "+00:00"))
        except ValueError:
            raise cli.Problem(f"--until: “{args.until}” is not an ISO 8601 time") from None
        expires = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    iq = await _plugin(client).create(
        args.courier, args.name, args.members, temporary=args.temporary, expires=expires, timeout=args.timeout
    )
    return await _show_list(out, iq, "created")


async def cmd_list_change(
    client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event
) -> int:
    plugin = _plugin(client)
    change = plugin.add if args.client_command == "list-add" else plugin.remove
    return await _show_list(out, await change(args.courier, args.name, args.members, timeout=args.timeout), "list")


async def cmd_list_rename(
    client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event
) -> int:
    iq = await _plugin(client).rename(args.courier, args.name, args.new_name, timeout=args.timeout)
    return await _show_list(out, iq, "renamed")


async def cmd_list_delete(
    client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event
) -> int:
    await _plugin(client).delete(args.courier, args.name, timeout=args.timeout)
    out.emit(f"deleted {args.name}", type="deleted", name=args.name)
    return cli.OK


async def cmd_list_send(
    client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event
) -> int:
    iq = await _plugin(client).send(args.courier, args.name, args.text, only=args.only or "", timeout=args.timeout)
    return await _show_fanout(out, iq, "fanout")


async def cmd_fanouts(client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event) -> int:
    fanouts = (await _plugin(client).get_fanouts(args.courier, timeout=args.timeout))["lists_fanouts"]["fanouts"]
    if not fanouts and not out.json:
        out.emit("no fan-outs")
    for element in fanouts:
        out.emit(_fanout_line(element), type="fanout", **_fanout_fields(element))
    return cli.OK


async def cmd_fanout(client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event) -> int:
    iq = await _plugin(client).get_fanout(args.courier, args.fanout, timeout=args.timeout)
    return await _show_fanout(out, iq, "fanout")


async def cmd_fanout_recall(
    client: cli.CourierClient, args: argparse.Namespace, out: cli.Output, stop: asyncio.Event
) -> int:
    iq = await _plugin(client).recall(args.courier, args.fanout, timeout=args.timeout)
    return await _show_fanout(out, iq, "recalled")


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the list subcommands to ``courier client`` (and their handlers to its COMMANDS)."""
    cli.COMMANDS.update(
        {
            "lists": cmd_lists,
            "list": cmd_list,
            "list-create": cmd_list_create,
            "list-add": cmd_list_change,
            "list-remove": cmd_list_change,
            "list-rename": cmd_list_rename,
            "list-delete": cmd_list_delete,
            "list-send": cmd_list_send,
            "fanouts": cmd_fanouts,
            "fanout": cmd_fanout,
            "fanout-recall": cmd_fanout_recall,
        }
    )
    sub.add_parser("lists", parents=[common], help="your broadcast lists")
    show = sub.add_parser("list", parents=[common], help="one of your lists, with its members")
    show.add_argument("name", metavar="NAME")
    create = sub.add_parser("list-create", parents=[common], help="create a broadcast list")
    create.add_argument("name", metavar="NAME")
    create.add_argument("members", metavar="JID", nargs="*")
    lifetime = create.add_mutually_exclusive_group()
    lifetime.add_argument("--temporary", action="store_true", help="until the end of the day (UTC)")
    lifetime.add_argument("--until", metavar="TIME", help="until this ISO 8601 time")
    for name, help_text in (("list-add", "add members to a list"), ("list-remove", "remove members from a list")):
        p = sub.add_parser(name, parents=[common], help=help_text)
        p.add_argument("name", metavar="NAME")
        p.add_argument("members", metavar="JID", nargs="+")
    rename = sub.add_parser("list-rename", parents=[common], help="rename a list (its JID changes)")
    rename.add_argument("name", metavar="NAME")
    rename.add_argument("new_name", metavar="NEW")
    delete = sub.add_parser("list-delete", parents=[common], help="delete a list (its fan-outs stay)")
    delete.add_argument("name", metavar="NAME")
    send = sub.add_parser("list-send", parents=[common], help="send TEXT to every member, each as your own message")
    send.add_argument("name", metavar="NAME")
    send.add_argument("text", metavar="TEXT")
    send.add_argument("--only", metavar="JID", help="send to this member only")
    sub.add_parser("fanouts", parents=[common], help="your newest fan-outs (aggregate status)")
    for name, help_text in (
        ("fanout", "where every copy of a fan-out is"),
        ("fanout-recall", "recall a fan-out: held copies dropped, delivered ones retracted"),
    ):
        p = sub.add_parser(name, parents=[common], help=help_text)
        p.add_argument("fanout", metavar="ID")


__all__ = ["add_parsers"]

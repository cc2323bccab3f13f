"""Broadcast-list commands (P4): manage lists, send to a list, fan-out status, recall a fan-out.

The bot knows them all under one verb: ``lists``, ``list show NAME``, ``list create NAME JID…``,
``list temp NAME JID…`` (until the end of the day, UTC), ``list add NAME JID…``,
``list remove NAME JID…``, ``list rename NAME NEW``, ``list delete NAME``,
``list send NAME TEXT``, ``list status [FANOUT]``, ``list recall FANOUT``.  A bot
NAME is one word; the ad-hoc forms take any name.
"""

from __future__ import annotations

import re
import time
from typing import Any

from ..lists import ListService, copy_state
from ..lists.names import end_of_day
from ..store.lists import FanoutRow, ListRow
from . import Command, CommandError, Context, Field, Result, text_value
from .builtin import when

#: Lifetimes offered by the forms: value -> (label, seconds; None = permanent, 0 = end of day UTC).
LIFETIMES: dict[str, tuple[str, float | None]] = {
    "permanent": ("Permanent", None),
    "today": ("Until the end of the day (UTC)", 0.0),
    "1h": ("For one hour", 3600.0),
    "24h": ("For 24 hours", 86400.0),
    "7d": ("For seven days", 7 * 86400.0),
}
ACTIONS = [
    ("show", "Show my lists (or the one named)"),
    ("create", "Create a list"),
    ("add", "Add members"),
    ("remove", "Remove members"),
    ("rename", "Rename a list"),
    ("lifetime", "Change how long a list lasts"),
    ("delete", "Delete a list"),
]
USAGE = (
    "Usage: lists | list show NAME | list create NAME JID… | list temp NAME JID… | list add NAME JID… | "
    "list remove NAME JID… | list rename NAME NEW | list delete NAME | list send NAME TEXT | "
    "list status [FANOUT] | list recall FANOUT"
)


def _service(ctx: Context) -> ListService:
    if ctx.lists is None:
        raise CommandError("Broadcast lists are not available on this server.")
    return ctx.lists


def _words(text: str) -> list[str]:
    """Addresses separated by blanks, commas or new lines."""
    return [w for w in re.split(r"[\s,;]+", text) if w]


def _expires(lifetime: str, now: float) -> tuple[bool, float | None]:
    """(temporary, end) for a form's lifetime value."""
    if lifetime not in LIFETIMES:
        raise CommandError(f"Lifetime: choose one of {', '.join(LIFETIMES)}.")
    seconds = LIFETIMES[lifetime][1]
    if seconds is None:
        return False, None
    return True, (end_of_day(now) if seconds == 0 else now + seconds)


def _until(row: ListRow) -> str:
    return "permanent" if row.expires is None else f"until {when(row.expires)}"


def _fanout_label(f: FanoutRow) -> str:
    target = f"“{f.list_name}”" if f.list_name else "addresses"
    body = f.body if len(f.body) <= 30 else f.body[:29] + "…"
    return f"{f.id}: {target}, {when(f.created)}: {body}"


# -- the operations, shared by the bot's “list …” and the ad-hoc commands -----------------


async def send(ctx: Context, name: str, text: str, only: str = "") -> Result:
    svc = _service(ctx)
    if not name:
        raise CommandError("Which list? Give its name (see “lists”).")
    row = await svc.get(ctx.requester, name)
    status = await svc.send_to_list(row, text, only=only)
    fid = status.fanout.id
    return Result(
        f"Sent to “{row.name}”: {status.summary()}. Fan-out {fid} (“list status {fid}”, “list recall {fid}”)."
    )


async def status(ctx: Context, fanout_id: str) -> Result:
    svc = _service(ctx)
    if not fanout_id:
        recent = svc.recent_fanouts(ctx.requester)
        if not recent:
            return Result("You have not sent anything to a list yet.")
        rows = []
        for f in recent:
            s = await svc.status(ctx.requester, f.id)
            rows.append({"id": f.id, "to": f.list_name or "(addresses)", "at": when(f.created), "status": s.summary()})
        columns = [("id", "Fan-out"), ("to", "List"), ("at", "Sent"), ("status", "Status")]
        return Result(f"Your {len(rows)} most recent fan-out(s).", columns, rows)
    s = await svc.status(ctx.requester, fanout_id)
    target = f"“{s.fanout.list_name}”" if s.fanout.list_name else "addresses"
    rows = [{"to": c.member, "state": copy_state(c), "id": c.msg_id} for c in s.copies]
    recalled = " Recalled." if s.fanout.recalled else ""
    return Result(
        f"Fan-out {s.fanout.id} to {target} ({when(s.fanout.created)}): {s.summary()}.{recalled}",
        [("to", "Member"), ("state", "State"), ("id", "Message id")],
        rows,
    )


async def recall(ctx: Context, fanout_id: str) -> Result:
    svc = _service(ctx)
    if not fanout_id:
        raise CommandError("Which fan-out? Give its id (see “list status”).")
    s = await svc.recall(ctx.requester, fanout_id)
    counts = s.counts
    return Result(
        f"Recalled fan-out {s.fanout.id}: {counts['recalled']} held cop(ies) will never be delivered, "
        f"{counts['retracted']} delivered cop(ies) retracted. {s.summary()}."
    )


def _fanout_field(ctx: Context, required: bool) -> list[Field]:
    recent = _service(ctx).recent_fanouts(ctx.requester)
    if not recent:
        return []
    options = [(f.id, _fanout_label(f)) for f in recent]
    return [Field("id", "Fan-out", "list-single", required=required, options=options, default=options[0][0])]


class ManageLists(Command):
    node = "lists"
    name = "Broadcast lists"
    help = (
        "your broadcast lists: “lists”, “list create NAME JID…”, “list temp NAME JID…” (until midnight UTC), "
        "“list add|remove NAME JID…”, “list rename NAME NEW”, “list delete NAME”, “list show NAME”"
    )
    example = "list create friends romeo@example.org mercutio@example.org"
    words = ("lists", "list")

    def fields(self, ctx: Context) -> list[Field]:
        mine = _service(ctx).names_of(ctx.requester)
        return [
            Field("action", "What to do", "list-single", options=ACTIONS, default="show"),
            Field("name", "List", desc="Your lists: " + (", ".join(mine) if mine else "none yet")),
            Field("members", "Members (create, add, remove)", "text-multi", desc="One address per line"),
            Field("new_name", "New name (rename)"),
            Field(
                "lifetime",
                "Lifetime (create, change)",
                "list-single",
                options=[(k, label) for k, (label, _) in LIFETIMES.items()],
                default="permanent",
            ),
        ]

    def parse(self, word: str, args: str) -> dict[str, str]:
        if word == "lists" and not args:
            return {"action": "show"}
        verb, _, rest = args.partition(" ")
        verb = verb.lower()
        name, _, tail = rest.strip().partition(" ")
        tail = tail.strip()
        if verb in ("", "show"):
            return {"action": "show", "name": name}
        if verb in ("create", "temp", "add", "remove") and name:
            lifetime = "today" if verb == "temp" else "permanent"
            return {"action": "create" if verb == "temp" else verb, "name": name, "members": tail,
                    "lifetime": lifetime}  # fmt: skip
        if verb == "rename" and name and tail:
            return {"action": "rename", "name": name, "new_name": tail}
        if verb == "delete" and name:
            return {"action": "delete", "name": name}
        if verb == "send" and name and tail:
            return {"action": "send", "name": name, "text": tail}
        if verb == "status":
            return {"action": "status", "id": name}
        if verb == "recall" and name:
            return {"action": "recall", "id": name}
        raise CommandError(USAGE)

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        svc = _service(ctx)
        me = ctx.requester
        action = text_value(values, "action") or "show"
        name = text_value(values, "name")
        members = _words(text_value(values, "members"))
        if action == "send":
            return await send(ctx, name, text_value(values, "text"))
        if action == "status":
            return await status(ctx, text_value(values, "id"))
        if action == "recall":
            return await recall(ctx, text_value(values, "id"))
        if action == "show":
            if name:
                row = await svc.get(me, name)
                return Result(
                    f"“{row.name}” ({svc.jid_of(row)}, {_until(row)}): {len(row.members)} member(s).",
                    [("jid", "Member")],
                    [{"jid": m} for m in row.members],
                )
            rows = [
                {"name": r.name, "jid": svc.jid_of(r), "members": str(len(r.members)), "until": _until(r)}
                for r in await svc.lists(me)
            ]
            if not rows:
                return Result(f"You have no broadcast lists. {self.example[0].upper()}{self.example[1:]}")
            columns = [("name", "List"), ("jid", "Address"), ("members", "Members"), ("until", "Lasts")]
            return Result(f"{len(rows)} list(s).", columns, rows)
        if not name:
            raise CommandError("Which list? Give its name.")
        if action == "create":
            temporary, expires = _expires(text_value(values, "lifetime") or "permanent", time.time())
            row = await svc.create(me, name, members, expires=expires, temporary=temporary)
            how = f"send “list send {row.name} TEXT” here" if " " not in row.name else "use “Send to a list”"
            return Result(
                f"Created “{row.name}” with {len(row.members)} member(s), {_until(row)}. Its address is "
                f"{svc.jid_of(row)}: write to it (add it as a contact), or {how}."
            )
        if action in ("add", "remove"):
            if not members:
                raise CommandError("Which members? Give one address or more.")
            change = svc.add if action == "add" else svc.remove
            row, changed = await change(me, name, members)
            verb = "Added" if action == "add" else "Removed"
            return Result(f"{verb} {len(changed)} member(s); “{row.name}” has {len(row.members)} member(s).")
        if action == "rename":
            new_name = text_value(values, "new_name")
            if not new_name:
                raise CommandError("The new name is empty.")
            row = await svc.rename(me, name, new_name)
            return Result(f"Renamed to “{row.name}”; its address is now {svc.jid_of(row)}.")
        if action == "lifetime":
            temporary, expires = _expires(text_value(values, "lifetime") or "permanent", time.time())
            row = await svc.set_lifetime(me, name, expires if temporary else None)
            return Result(f"“{row.name}” is now {_until(row)}.")
        if action == "delete":
            await svc.delete(me, name)
            return Result(f"Deleted “{name}”. Its fan-outs keep their status and can still be recalled.")
        raise CommandError(f"Unknown action “{action}”.")


class SendToList(Command):
    node = "list-send"
    name = "Send to a list"
    help = "send one message to every member of a list, each as your own 1:1 message"
    example = "list send friends Party at eight!"
    words = ("list send",)  # reached through “list” (ManageLists); listed in the help under this name

    def fields(self, ctx: Context) -> list[Field]:
        mine = _service(ctx).names_of(ctx.requester)
        options = [(n, n) for n in mine]
        return [
            Field("name", "List", "list-single", required=True, options=options, default=mine[0] if mine else ""),
            Field("text", "Message", "text-multi", required=True),
            Field("only", "Only to this member", desc="Leave empty to send to every member"),
        ]

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        return await send(ctx, text_value(values, "name"), text_value(values, "text"), text_value(values, "only"))


class FanoutStatusCommand(Command):
    node = "fanout-status"
    name = "Fan-out status"
    help = "where the copies of a message to a list are: held, released, received, read, recalled…"
    example = "list status 3f2a9c1e"
    words = ("list status",)  # reached through “list” (ManageLists)

    def fields(self, ctx: Context) -> list[Field]:
        return _fanout_field(ctx, required=False)

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        return await status(ctx, text_value(values, "id"))


class RecallFanout(Command):
    node = "fanout-recall"
    name = "Recall a fan-out"
    help = "take back a message to a list: held copies are dropped, delivered ones retracted"
    example = "list recall 3f2a9c1e"
    words = ("list recall",)  # reached through “list” (ManageLists)

    def fields(self, ctx: Context) -> list[Field]:
        return _fanout_field(ctx, required=True) or [Field("id", "Fan-out id", required=True)]

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        return await recall(ctx, text_value(values, "id"))


COMMANDS: list[type[Command]] = [ManageLists, SendToList, FanoutStatusCommand, RecallFanout]

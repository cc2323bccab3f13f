"""The built-in commands: pending, recall, edit, trace, settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..delivery.pipeline import Encrypted, NotFound, TooLate, encrypted
from ..delivery.states import State, hop_word
from ..store import MessageRow
from . import Command, CommandError, Context, Field, Result, bool_value, text_value

MAX_UNDO_WINDOW = 3600.0


def when(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def preview(m: MessageRow, width: int = 40) -> str:
    """What a pending message is called in a list: its text, or never the fallback sentence of an
    end-to-end encrypted one."""
    if encrypted(m):
        return f"🔒 encrypted message to {m.recipient_bare}"
    return (m.body or "")[:width]


def _state(hold_reason: str) -> str:
    word = hop_word(State.HELD.value, hold_reason)
    return "cached (recipient offline)" if word == "cached" else word


async def _change(ctx: Context, action: str, msg_id: str, text: str = "") -> Result:
    if not msg_id:
        raise CommandError("Which message? Give its id (see “pending”).")
    try:
        if action == "recall":
            m = await ctx.pipeline.recall(ctx.requester, msg_id)
            return Result(f"Recalled {msg_id}: {m.recipient_bare} will never receive it.")
        if not text:
            raise CommandError("The new text is empty.")
        m = await ctx.pipeline.edit(ctx.requester, msg_id, text)
        return Result(f"Edited {msg_id}: {m.recipient_bare} will receive only the new text.")
    except NotFound:
        raise CommandError(f"No message of yours has the id {msg_id}.") from None
    except TooLate as exc:
        verb = "a retraction" if action == "recall" else "a correction"
        raise CommandError(f"Too late: {exc}. Your client can still send {verb}, which is passed on.") from None
    except Encrypted as exc:
        raise CommandError(f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None


class Pending(Command):
    node = "pending"
    name = "My pending messages"
    help = "list your messages still held at the server (recipient offline or undo window)"
    example = "pending"
    words = ("pending",)

    def fields(self, ctx: Context) -> list[Field]:
        held = ctx.pipeline.pending(ctx.requester)
        if not held:
            return []
        options = [
            (m.msg_id or m.origin_id, preview(m) if encrypted(m) else f"{m.recipient_bare}: {preview(m)}") for m in held
        ]
        return [
            Field("message", "Message", "list-single", options=options, default=options[0][0]),
            Field(
                "action",
                "What to do",
                "list-single",
                options=[("show", "Nothing, just list them"), ("recall", "Recall it"), ("edit", "Replace its text")],
                default="show",
            ),
            Field("text", "New text (to edit)", desc="Only for “Replace its text”"),
        ]

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        action = text_value(values, "action") or "show"
        if action in ("recall", "edit"):
            return await _change(ctx, action, text_value(values, "message"), text_value(values, "text"))
        held = ctx.pipeline.pending(ctx.requester)
        if not held:
            return Result("You have no messages waiting at the server.")
        rows = [
            {
                "id": m.msg_id or m.origin_id,
                "to": m.recipient_bare,
                "state": _state(m.hold_reason),
                "since": when(m.created),
                "text": preview(m, 1000),
            }
            for m in held
        ]
        columns = [("id", "Id"), ("to", "To"), ("state", "State"), ("since", "Since"), ("text", "Text")]
        return Result(f"{len(held)} message(s) waiting at the server.", columns, rows)


class Recall(Command):
    node = "recall"
    name = "Recall a pending message"
    help = "withdraw a held message: its recipient never receives it"
    example = "recall 1a2b3c"
    words = ("recall",)

    def fields(self, ctx: Context) -> list[Field]:
        return [Field("id", "Message id", required=True)]

    def parse(self, word: str, args: str) -> dict[str, str]:
        if not args:
            raise CommandError(f"Usage: {self.example}")
        return {"id": args.split()[0]}

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        return await _change(ctx, "recall", text_value(values, "id"))


class Edit(Command):
    node = "edit"
    name = "Edit a pending message"
    help = "replace the text of a held message before it is delivered"
    example = "edit 1a2b3c Meet me at ten"
    words = ("edit",)

    def fields(self, ctx: Context) -> list[Field]:
        return [Field("id", "Message id", required=True), Field("text", "New text", required=True)]

    def parse(self, word: str, args: str) -> dict[str, str]:
        msg_id, _, text = args.partition(" ")
        if not msg_id or not text.strip():
            raise CommandError(f"Usage: {self.example}")
        return {"id": msg_id, "text": text.strip()}

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        return await _change(ctx, "edit", text_value(values, "id"), text_value(values, "text"))


class Trace(Command):
    node = "trace"
    name = "Trace a message"
    help = "where one of your messages is now, and every hop it took"
    example = "trace 1a2b3c"
    words = ("trace",)

    def fields(self, ctx: Context) -> list[Field]:
        return [Field("id", "Message id", required=True, desc="The id (or origin-id) of a message you sent")]

    def parse(self, word: str, args: str) -> dict[str, str]:
        if not args:
            raise CommandError(f"Usage: {self.example}")
        return {"id": args.split()[0]}

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        msg_id = text_value(values, "id")
        if not msg_id:
            raise CommandError("Which message? Give its id.")
        try:
            m, hops = await ctx.pipeline.trace(ctx.requester, msg_id)
        except NotFound:
            raise CommandError(f"No message of yours has the id {msg_id}.") from None
        rows = [{"state": hop_word(h.label, h.note), "at": when(h.at), "place": h.place, "note": h.note} for h in hops]
        columns = [("state", "Hop"), ("at", "Time"), ("place", "Where"), ("note", "Note")]
        lock = " (🔒 encrypted)" if encrypted(m) else ""
        return Result(f"{msg_id} to {m.recipient_bare}{lock}: {hop_word(m.state.value, m.hold_reason)}.", columns, rows)


class Settings(Command):
    node = "settings"
    name = "Settings"
    help = "your undo-send window and hop reports; “undo 30”, “reports on”"
    example = "undo 30"
    words = ("settings", "undo", "reports")

    def fields(self, ctx: Context) -> list[Field]:
        p = ctx.pipeline
        return [
            Field(
                "undo_window",
                "Undo-send window (seconds)",
                default=f"{p.undo_window(ctx.requester):g}",
                desc=f"Messages wait this long at the server, so you can still recall them (0 to {MAX_UNDO_WINDOW:g})",
            ),
            Field(
                "reports",
                "Report every hop of my messages",
                "boolean",
                default="1" if p.reports_on(ctx.requester) else "0",
            ),
        ]

    def parse(self, word: str, args: str) -> dict[str, str]:
        if word == "settings":
            word, _, args = args.partition(" ")
            if not word:
                return {}
        if word == "undo":
            if not args:
                raise CommandError("Usage: undo SECONDS (0 turns the window off)")
            return {"undo_window": args.split()[0]}
        if word == "reports":
            if args.strip().lower() not in ("on", "off"):
                raise CommandError("Usage: reports on|off")
            return {"reports": args.strip().lower()}
        raise CommandError("Usage: settings | undo SECONDS | reports on|off")

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        p = ctx.pipeline
        changed = []
        undo = text_value(values, "undo_window")
        if undo:
            try:
                seconds = float(undo)
            except ValueError:
                raise CommandError(f"The undo-send window must be a number of seconds, not “{undo}”.") from None
            if not 0 <= seconds <= MAX_UNDO_WINDOW:
                raise CommandError(f"The undo-send window must be between 0 and {MAX_UNDO_WINDOW:g} seconds.")
            if seconds != p.undo_window(ctx.requester):
                await p.set_undo_window(ctx.requester, seconds)
                changed.append("undo-send window")
        reports = bool_value(values, "reports")
        if reports is not None and reports != p.reports_on(ctx.requester):
            await p.set_reports(ctx.requester, reports)
            changed.append("hop reports")
        state = (
            f"Undo-send window: {p.undo_window(ctx.requester):g} s. "
            f"Hop reports for every message: {'on' if p.reports_on(ctx.requester) else 'off'}."
        )
        return Result(("Saved. " if changed else "") + state)


COMMANDS: list[type[Command]] = [Pending, Recall, Edit, Trace, Settings]

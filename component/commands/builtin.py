"""The built-in commands: pending, recall, edit, trace, settings."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..delivery.pipeline import NotFound, TooLate, encrypted
from ..delivery.states import State, hop_word
from . import Command, CommandError, Context, Field, Result, bool_value, pick, text_value

if TYPE_CHECKING:
    from ..store import MessageRow

MAX_UNDO_WINDOW = 3600.0


def when(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _state(hold_reason: str) -> str:
    word = hop_word(State.HELD.value, hold_reason)
    return "cached (recipient offline)" if word == "cached" else word


async def _change(ctx: Context, action: str, ref: str, text: str = "") -> Result:
    msg_id = pick.resolve(ctx, ref)
    try:
        if action == "recall":
            m = await ctx.pipeline.recall(ctx.requester, msg_id)
            return Result(
                f"Recalled your message to {m.recipient_bare}.",
                details=f"They will never receive “{pick.preview(m)}” (id {msg_id}).",
            )
        if not text:
            raise CommandError("The new text is empty.")
        m = await ctx.pipeline.edit(ctx.requester, msg_id, text)
        return Result(
            f"Edited your message to {m.recipient_bare}.",
            details=f"They will receive only the new text: “{pick.preview(m)}” (id {msg_id}).",
        )
    except NotFound:
        raise CommandError("No pending message of yours has that id; see “pending”.") from None
    except TooLate as exc:
        verb = "a retraction" if action == "recall" else "a correction"
        raise CommandError(f"Too late: {exc}.\nYour client can still send {verb}, which is passed on.") from None


def _nothing_pending(action: str) -> Result:
    return Result(f"Nothing to {action}: no message of yours is waiting at the server.")


class Pending(Command):
    node = "pending"
    name = "My pending messages"
    help = "list your messages still held at the server (recipient offline or undo window)"
    example = "pending"
    words = ("pending",)

    def fields(self, ctx: Context) -> list[Field]:
        chooser = pick.message_field(ctx, "message", required=False)
        if chooser is None:
            return []
        return [
            chooser,
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
        now = time.time()
        rows = [
            {
                "n": str(n),
                "to": m.recipient_bare,
                "state": _state(m.hold_reason),
                "since": pick.age(m.created, now),
                "text": pick.preview(m),
                "id": pick.ref_of(m),
            }
            for n, m in enumerate(held, 1)
        ]
        columns = [("n", "#"), ("to", "To"), ("state", "State"), ("since", "Since"), ("text", "Text"), ("id", "Id")]
        return Result(
            f"{len(held)} message(s) waiting at the server.",
            columns,
            rows,
            details="“recall 1” recalls the first, “edit 1 NEW TEXT” replaces its text.",
        )


class Recall(Command):
    node = "recall"
    name = "Recall a pending message"
    help = "withdraw a held message: its recipient never receives it (1 = first of “pending”)"
    example = "recall 1"
    words = ("recall",)

    def fields(self, ctx: Context) -> list[Field]:
        chooser = pick.message_field(ctx)
        return [chooser] if chooser else []

    def parse(self, word: str, args: str) -> dict[str, str]:
        if not args:
            raise CommandError(f"Usage: {self.example} (a number from “pending”, or a message id)")
        return {"id": args.split()[0]}

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        ref = text_value(values, "id")
        if not ref and not ctx.pipeline.pending(ctx.requester):
            return _nothing_pending("recall")
        return await _change(ctx, "recall", ref)


class Edit(Command):
    node = "edit"
    name = "Edit a pending message"
    help = "replace the text of a held message before it is delivered (1 = first of “pending”)"
    example = "edit 1 Meet me at ten"
    words = ("edit",)

    def fields(self, ctx: Context) -> list[Field]:
        chooser = pick.message_field(ctx)
        return [chooser, Field("text", "New text", required=True)] if chooser else []

    def parse(self, word: str, args: str) -> dict[str, str]:
        ref, _, text = args.partition(" ")
        if not ref or not text.strip():
            raise CommandError(f"Usage: {self.example} (a number from “pending”, or a message id)")
        return {"id": ref, "text": text.strip()}

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        ref = text_value(values, "id")
        if not ref and not ctx.pipeline.pending(ctx.requester):
            return _nothing_pending("edit")
        return await _change(ctx, "edit", ref, text_value(values, "text"))


class Trace(Command):
    node = "trace"
    name = "Trace a message"
    help = "where one of your messages is now, and every hop it took (1 = your latest)"
    example = "trace 1"
    words = ("trace",)
    RECENT = 10  # messages offered to pick from

    async def form(self, ctx: Context) -> list[Field]:
        recent = await self._recent(ctx)
        if not recent:
            return []  # nothing to pick: said at once (ids are still taken from scripts)
        now = time.time()
        choices = [
            (pick.ref_of(m), f"{n}. to {m.recipient_bare}, {pick.age(m.created, now)}: {pick.preview(m)}")
            for n, m in enumerate(recent, 1)
        ]
        desc = "One of your latest messages"
        return [Field("id", "Message", "list-single", True, choices, choices[0][0], desc)]

    async def _recent(self, ctx: Context) -> list[MessageRow]:
        await ctx.pipeline.store.flush()
        return [m for m in await ctx.pipeline.store.recent_sent(ctx.requester, self.RECENT) if pick.ref_of(m)]

    def parse(self, word: str, args: str) -> dict[str, str]:
        if not args:
            raise CommandError(f"Usage: {self.example} (1 = your latest message, or a message id)")
        return {"id": args.split()[0]}

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        msg_id = text_value(values, "id")
        if not msg_id:
            if not await self._recent(ctx):
                return Result("Nothing to trace: you have sent no message through Courier yet.")
            raise CommandError("Which message? “trace 1” traces your latest.")
        if msg_id.isdigit() and len(msg_id) <= len(str(self.RECENT)):
            recent = await self._recent(ctx)
            if 1 <= int(msg_id) <= len(recent) and not any(msg_id in (m.msg_id, m.origin_id) for m in recent):
                msg_id = pick.ref_of(recent[int(msg_id) - 1])
        try:
            m, hops = await ctx.pipeline.trace(ctx.requester, msg_id)
        except NotFound:
            raise CommandError("No message of yours has that id.") from None
        rows = [{"state": hop_word(h.label, h.note), "at": when(h.at), "place": h.place, "note": h.note} for h in hops]
        columns = [("state", "Hop"), ("at", "Time"), ("place", "Where"), ("note", "Note")]
        lock = " (🔒 encrypted)" if encrypted(m) else ""
        return Result(
            f"Your message to {m.recipient_bare}{lock} is {hop_word(m.state.value, m.hold_reason)}.",
            columns,
            rows,
            details=f"“{pick.preview(m)}” (id {msg_id}), sent {when(m.created)}.",
        )


class Settings(Command):
    node = "settings"
    name = "Settings"
    help = "undo-send window and reports; “undo 30”, “reports on|chat|off”"
    example = "undo 30"
    words = ("settings", "undo", "reports")

    def fields(self, ctx: Context) -> list[Field]:
        p = ctx.pipeline
        fields = [
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
        if ctx.chat is not None:
            fields.append(
                Field(
                    "chat_reports",
                    "Tell me in a chat message when a message that waited is delivered or read",
                    "boolean",
                    default="1" if ctx.chat.on(ctx.requester) else "0",
                )
            )
        return fields

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
            words = args.strip().lower().split()
            if words == ["on"]:
                return {"reports": "on"}
            if words == ["off"]:  # both kinds off
                return {"reports": "off", "chat_reports": "off"}
            if words in (["chat"], ["chat", "on"]):
                return {"chat_reports": "on"}
            if words == ["chat", "off"]:
                return {"chat_reports": "off"}
            raise CommandError("Usage: reports on|off | reports chat [on|off]")
        raise CommandError("Usage: settings | undo SECONDS | reports on|off | reports chat [on|off]")

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
        chat = bool_value(values, "chat_reports")
        if chat is not None and ctx.chat is not None and chat != ctx.chat.on(ctx.requester):
            await ctx.chat.set(ctx.requester, chat)
            changed.append("chat reports")
        state = (
            f"Undo-send window: {p.undo_window(ctx.requester):g} s. "
            f"Hop reports: {_on(p.reports_on(ctx.requester))}. "
            f"Chat reports: {_on(ctx.chat is not None and ctx.chat.on(ctx.requester))}."
        )
        return Result(("Saved. " if changed else "") + state)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


COMMANDS: list[type[Command]] = [Pending, Recall, Edit, Trace, Settings]

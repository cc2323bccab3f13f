"""Draft commands (P5): "New draft" and "My drafts", as ad-hoc commands and bot words.

Bot syntax (also in the README)::

    draft JID [TRIGGER] TEXT        store a draft that is sent when TRIGGER happens
    remind JID [TRIGGER] TEXT       ... that reminds you instead (you then send, change, postpone or drop it)
    draft N NEW TEXT                change the text of draft N
    drafts                          list your pending drafts
    send draft N                    send draft N now
    postpone draft N WHEN           a new time for draft N (in 1h, at 18:00…)
    delete draft N                  drop draft N

    TRIGGER: at TIME | in DURATION | when-online | when-from JID   (none: only when you send it)
"""

from __future__ import annotations

import re
import time
from typing import Any

from ..delivery.drafts import (
    TIME_SYNTAX,
    DraftError,
    DraftService,
    Trigger,
    describe_trigger,
    parse_duration,
    parse_when,
    take_time,
)
from ..store.drafts import DraftRow
from . import Command, CommandError, Context, Field, Result, text_value

USAGE = (
    "Usage: draft JID [at TIME | in 10m | when-online | when-from JID] TEXT — sent then; "
    "“remind …” (same words) reminds you instead; “draft N NEW TEXT” changes draft N. "
)
TRIGGER_OPTIONS = [
    ("manual", "Only when I send it"),
    ("at", "At a time (below)"),
    ("target-online", "When the contact comes online"),
    ("message-from", "When a message from a contact (below) arrives"),
]
ACTION_OPTIONS = [("send", "Send it"), ("remind", "Remind me, so that I can send it")]
_NUMBER = re.compile(r"^(?:draft\s+)?#?(\d+)(?:\s+(.*))?$", re.IGNORECASE | re.DOTALL)


def _service(ctx: Context) -> DraftService:
    if ctx.drafts is None:
        raise CommandError("Drafts are not available on this server.")
    return ctx.drafts


def _words(text: str, n: int) -> tuple[list[str], str]:
    """The first *n* words of *text* and the rest, as written (newlines kept)."""
    words: list[str] = []
    rest = text
    for _ in range(n):
        m = re.match(r"\s*(\S+)", rest)
        if not m:
            break
        words.append(m.group(1))
        rest = rest[m.end() :]
    return words, rest.strip()


def _snippet(text: str, size: int = 40) -> str:
    line = " ".join(text.split())
    return line if len(line) <= size else line[: size - 1] + "…"


def _plan(row: DraftRow) -> str:
    what = "you will be reminded" if row.action == "remind" else "it will be sent"
    return f"{what} {describe_trigger(row)}"


class NewDraft(Command):
    node = "draft"
    name = "New draft"
    help = (
        "store a message on the server for later: “draft JID [at TIME | in 10m | when-online | when-from JID] TEXT” "
        "sends it then (no trigger: when you say “send draft N”); “remind …” reminds you instead; "
        "“draft N TEXT” changes draft N's text"
    )
    example = "draft bob@localhost at 09:00 Europe/Paris Good morning!"
    words = ("draft", "remind")

    def fields(self, ctx: Context) -> list[Field]:
        return [
            Field("to", "To", "jid-single", required=True, desc="The contact the draft is for"),
            Field("text", "Text", "text-multi", required=True),
            Field("trigger", "Send occasion", "list-single", options=TRIGGER_OPTIONS, default="manual"),
            Field("when", "Time (for “at a time”)", desc=TIME_SYNTAX),
            Field("from", "Contact (for “when a message arrives”)", "jid-single"),
            Field("action", "Then", "list-single", options=ACTION_OPTIONS, default="send"),
        ]

    def parse(self, word: str, args: str) -> dict[str, str]:
        action = "remind" if word == "remind" else "send"
        if not args:
            raise CommandError(USAGE + TIME_SYNTAX)
        edit = _NUMBER.match(args)
        if edit and word == "draft":
            if not (edit.group(2) or "").strip():
                raise CommandError(f"Usage: draft {edit.group(1)} NEW TEXT")
            return {"edit": edit.group(1), "text": edit.group(2).strip()}
        (to,), rest = _words(args, 1)
        values = {"to": to, "action": action, "trigger": "manual"}
        head, after = _words(rest, 1)
        keyword = head[0].lower() if head else ""
        if keyword == "when-online":
            values["trigger"], rest = "target-online", after
        elif keyword == "when-from":
            contact, after = _words(after, 1)
            if not contact:
                raise CommandError("Usage: draft JID when-from CONTACT TEXT")
            values["trigger"], values["from"], rest = "message-from", contact[0], after
        elif keyword == "in":
            amount, after2 = _words(after, 1)
            if amount and parse_duration(amount[0]) is not None:
                values["trigger"], values["when"], rest = "at", "in " + amount[0], after2
        elif keyword == "at":
            upcoming, _ = _words(after, 4)
            if upcoming and (upcoming[0][:1].isdigit() or upcoming[0].lower() in ("today", "tomorrow")):
                try:
                    _, _, used = take_time(upcoming, time.time())
                except DraftError as exc:
                    raise CommandError(str(exc)) from None
                when, rest = _words(after, used)
                values["trigger"], values["when"] = "at", "at " + " ".join(when)
        if not rest:
            raise CommandError("The draft's text is missing. " + USAGE)
        values["text"] = rest
        return values

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        service = _service(ctx)
        text = text_value(values, "text")
        edit = text_value(values, "edit")
        if edit:
            row = await service.update(ctx.requester, edit, body=text)
            return Result(f"Draft {row.number} for {row.target} now reads “{_snippet(row.body)}”; {_plan(row)}.")
        kind = text_value(values, "trigger") or "manual"
        when, contact = text_value(values, "when"), text_value(values, "from")
        if kind == "manual" and when:
            kind = "at"  # a time was given: that is the occasion
        elif kind == "manual" and contact:
            kind = "message-from"
        if kind == "at":
            if not when:
                raise CommandError("At what time? " + TIME_SYNTAX)
            instant, zone = parse_when(when, time.time())
            trigger = Trigger("at", instant, zone)
        elif kind == "message-from":
            if not contact:
                raise CommandError("Whose message should send it? Fill in the contact.")
            trigger = Trigger("message-from", jid=contact)
        else:
            trigger = Trigger(kind)
        row = await service.create(
            ctx.requester, text_value(values, "to"), text, trigger, text_value(values, "action") or "send"
        )
        n = row.number
        if row.trigger == "target-online" and service.pipeline.online(row.target):
            plan = f"{row.target} is online: " + ("you are reminded now" if row.action == "remind" else "sent now")
        elif row.trigger == "manual":
            plan = f"“send draft {n}” sends it"
        else:
            plan = f"{_plan(row)}; “send draft {n}” sends it now"
        return Result(f"Draft {n} stored for {row.target}: {plan}.")


class MyDrafts(Command):
    node = "drafts"
    name = "My drafts"
    help = (
        "your pending drafts: “drafts” lists them; “send draft N” sends one now, "
        "“postpone draft N in 1h” (or at TIME), “delete draft N” drops it"
    )
    example = "send draft 3"
    words = ("drafts", "send", "postpone", "delete")

    def fields(self, ctx: Context) -> list[Field]:
        known = _service(ctx).known(ctx.requester)
        if known == []:
            return []  # nothing to choose from: the listing ("no drafts") at once
        if known:
            options = [(str(r.number), f"{r.number} → {r.target}: {_snippet(r.body)}") for r in known]
            choice = Field("draft", "Draft", "list-single", options=options, default=options[0][0])
        else:
            choice = Field("draft", "Draft number", desc="Leave empty and choose “just list them” to see them")
        return [
            choice,
            Field(
                "action",
                "What to do",
                "list-single",
                options=[
                    ("show", "Nothing, just list them"),
                    ("send", "Send it now"),
                    ("edit", "Replace its text"),
                    ("postpone", "Postpone it (new time below)"),
                    ("delete", "Delete it"),
                ],
                default="show",
            ),
            Field("text", "New text (to replace)", "text-multi"),
            Field("when", "New time (to postpone)", desc=TIME_SYNTAX),
        ]

    def parse(self, word: str, args: str) -> dict[str, str]:
        if word == "drafts":
            return {}
        m = _NUMBER.match(args)
        usage = {"send": "send draft 3", "delete": "delete draft 3", "postpone": "postpone draft 3 in 1h"}[word]
        if not m:
            raise CommandError(f"Usage: {usage}" + (f". {TIME_SYNTAX}" if word == "postpone" else ""))
        values = {"draft": m.group(1), "action": word}
        if word == "postpone":
            if not (m.group(2) or "").strip():
                raise CommandError(f"Until when? Usage: {usage}. {TIME_SYNTAX}")
            values["when"] = m.group(2).strip()
        return values

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        service = _service(ctx)
        action = text_value(values, "action") or "show"
        number = text_value(values, "draft")
        if action != "show" and not number:
            raise CommandError("Which draft? Give its number (see “drafts”).")
        if action == "send":
            row, message = await service.fire(ctx.requester, number)
            return Result(f"Draft {row.number} sent to {row.target}.", details=f"Message id {message.msg_id}.")
        if action == "delete":
            row = await service.delete(ctx.requester, number)
            return Result(f"Draft {row.number} for {row.target} deleted: it will never be sent.")
        if action == "edit":
            text = text_value(values, "text")
            if not text:
                raise CommandError("The new text is empty.")
            row = await service.update(ctx.requester, number, body=text)
            return Result(f"Draft {row.number} for {row.target} now reads “{_snippet(row.body)}”; {_plan(row)}.")
        if action == "postpone":
            when = text_value(values, "when")
            if not when:
                raise CommandError("Until when? " + TIME_SYNTAX)
            row = await service.postpone(ctx.requester, number, when)
            return Result(f"Draft {row.number} for {row.target} postponed: {_plan(row)}.")
        drafts = await service.drafts(ctx.requester)
        if not drafts:
            return Result("You have no pending drafts.")
        rows = [
            {
                "id": str(r.number),
                "to": r.target,
                "when": describe_trigger(r),
                "then": "remind me" if r.action == "remind" else "send",
                "text": _snippet(r.body),
            }
            for r in sorted(drafts, key=lambda r: r.number)
        ]
        columns = [("id", "Draft"), ("to", "To"), ("when", "When"), ("then", "Then"), ("text", "Text")]
        return Result(f"{len(drafts)} pending draft(s).", columns, rows)


COMMANDS: list[type[Command]] = [NewDraft, MyDrafts]

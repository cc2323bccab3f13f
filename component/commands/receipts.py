"""Receipt-policy commands (P2): set your policy, see a contact's, confirm a receipt by hand."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from slixmpp import JID
from slixmpp.jid import InvalidJID

from ..delivery.pipeline import POLICIES, NotFound
from . import Command, CommandError, Context, Field, Result, pick, text_value

if TYPE_CHECKING:
    from ..store import MessageRow

EXPLAINED = {
    "auto": "receipts and read markers go to senders as your client sends them",
    "manual": "your client's automatic receipts are withheld; only what you confirm (read markers, “confirm”) goes",
    "refuse": "no receipts or read markers go; senders are told once, and their requests are removed",
}


def _bare(value: str, what: str = "contact") -> str:
    try:
        jid = JID(value)
    except InvalidJID:
        raise CommandError(f"“{value}” is not a JID.") from None
    if not jid.user:
        raise CommandError(f"The {what} must be a user's address, like bob@example.org.")
    return str(jid.bare)


def _describe(ctx: Context) -> Result:
    default, overrides = ctx.pipeline.policies_of(ctx.requester)
    rows = [{"contact": "(everyone else)", "policy": default, "meaning": EXPLAINED[default]}]
    rows += [{"contact": c, "policy": p, "meaning": EXPLAINED[p]} for c, p in sorted(overrides.items())]
    return Result(
        f"Your receipt policy: {default}.",
        [("contact", "Contact"), ("policy", "Policy"), ("meaning", "Meaning")],
        rows,
    )


class ReceiptPolicy(Command):
    node = "receipts"
    name = "Receipt policy"
    help = "who gets your receipts: auto, manual or refuse, for everyone or one contact"
    example = "receipts refuse carol@example.org"
    words = ("receipts",)

    def fields(self, ctx: Context) -> list[Field]:
        default, _ = ctx.pipeline.policies_of(ctx.requester)
        options = [(p, f"{p}: {EXPLAINED[p]}") for p in POLICIES]
        return [
            Field("policy", "Policy", "list-single", required=True, options=options, default=default),
            Field("contact", "Only for this contact (empty: everyone)", desc="A JID, or empty for your default"),
            Field(
                "clear",
                "Remove this contact's own policy instead",
                "boolean",
                default="0",
                desc="The contact then gets your default again",
            ),
        ]

    def parse(self, word: str, args: str) -> dict[str, str]:
        parts = args.split()
        if not parts:
            return {}
        if parts[0] == "clear" and len(parts) == 2:
            return {"contact": parts[1], "clear": "1"}
        if parts[0] not in POLICIES or len(parts) > 2:
            raise CommandError("Usage: receipts | receipts auto|manual|refuse [CONTACT] | receipts clear CONTACT")
        return {"policy": parts[0], "contact": parts[1] if len(parts) == 2 else ""}

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        policy = text_value(values, "policy")
        contact = text_value(values, "contact")
        clear = text_value(values, "clear").lower() in ("1", "true", "yes", "on")
        if not policy and not clear:
            return _describe(ctx)
        contact = _bare(contact) if contact else ""
        if clear:
            if not contact:
                raise CommandError("Which contact's own policy should be removed?")
            await ctx.pipeline.set_policy(ctx.requester, contact, None)
        else:
            if policy not in POLICIES:
                raise CommandError("The policy is auto, manual or refuse.")
            await ctx.pipeline.set_policy(ctx.requester, contact, policy)
        result = _describe(ctx)
        result.text = "Saved. " + result.text
        return result


class ContactPolicy(Command):
    node = "receipts-of"
    name = "A contact's receipt policy"
    help = "whether a contact sends you receipts (auto, manual or refuse)"
    example = "policy bob@example.org"
    words = ("policy",)

    def fields(self, ctx: Context) -> list[Field]:
        return [Field("contact", "Contact", required=True)]

    def parse(self, word: str, args: str) -> dict[str, str]:
        if not args:
            raise CommandError(f"Usage: {self.example}")
        return {"contact": args.split()[0]}

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        contact = _bare(text_value(values, "contact"))
        policy = ctx.pipeline.policy_of(contact, ctx.requester)
        return Result(f"{contact}: {policy} — {EXPLAINED[policy]}.")


class Confirm(Command):
    node = "confirm"
    name = "Confirm a receipt"
    help = "send the receipt for a message you received (manual policy); “confirm” lists them"
    example = "confirm 1"
    words = ("confirm",)
    RECENT = 10  # unconfirmed messages offered to pick from

    async def _unconfirmed(self, ctx: Context) -> list[MessageRow]:
        await ctx.pipeline.store.flush()
        return [m for m in await ctx.pipeline.store.unconfirmed(ctx.requester, self.RECENT) if pick.ref_of(m)]

    async def form(self, ctx: Context) -> list[Field]:
        recent = await self._unconfirmed(ctx)
        if not recent:
            return []  # nothing to confirm: said at once
        now = time.time()
        choices = [
            (pick.ref_of(m), f"{n}. from {m.sender}, {pick.age(m.created, now)}: {pick.preview(m)}")
            for n, m in enumerate(recent, 1)
        ]
        desc = "A message you received that has no receipt yet (newest first)"
        return [Field("id", "Message", "list-single", True, choices, choices[0][0], desc)]

    def parse(self, word: str, args: str) -> dict[str, str]:
        parts = args.split()
        if len(parts) > 2:
            raise CommandError("Usage: confirm [N | ID [FROM]] (N: a number from “confirm”)")
        return {"id": parts[0], "from": parts[1] if len(parts) == 2 else ""} if parts else {}

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        msg_id = text_value(values, "id")
        sender = text_value(values, "from")
        recent = await self._unconfirmed(ctx)
        if not msg_id:
            if not recent:
                return Result("Nothing to confirm: every message you received has its receipt.")
            now = time.time()
            rows = [
                {"n": str(n), "from": m.sender, "since": pick.age(m.created, now), "text": pick.preview(m)}
                for n, m in enumerate(recent, 1)
            ]
            return Result(
                f"{len(recent)} message(s) without a receipt, newest first.",
                [("n", "#"), ("from", "From"), ("since", "Received"), ("text", "Text")],
                rows,
                details="“confirm 1” sends the receipt for the first.",
            )
        match = [m for m in recent if msg_id in (m.msg_id, m.origin_id) and (not sender or m.sender == sender)]
        number = msg_id.isdigit() and len(msg_id) <= len(str(self.RECENT))
        if not match and number and 1 <= int(msg_id) <= len(recent):
            match = [recent[int(msg_id) - 1]]  # "confirm 2": the second of the list "confirm" shows
        if match:
            msg_id, sender = pick.ref_of(match[0]), match[0].sender
        try:
            m = await ctx.pipeline.confirm(ctx.requester, msg_id, _bare(sender, "sender") if sender else None)
        except NotFound:
            if number:
                raise CommandError(f"There is no message {msg_id}: “confirm” lists {len(recent)}.") from None
            raise CommandError(f"You received no message with the id {msg_id}.") from None
        return Result(f"Receipt sent to {m.sender}.", details=f"For “{pick.preview(m)}” (id {msg_id}).")


COMMANDS: list[type[Command]] = [ReceiptPolicy, ContactPolicy, Confirm]
